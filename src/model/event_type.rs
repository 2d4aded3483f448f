//! Declared event types: their payload schema and wake/terminal semantics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Built-in type: someone asked the process to stop.
pub const EVENT_CANCEL_REQUESTED: &str = "process.cancel_requested";
/// Built-in type: the process started waiting.
pub const EVENT_WAITING: &str = "process.waiting";
/// Built-in type: the process resumed after a wait.
pub const EVENT_RESUMED: &str = "process.resumed";

/// A JSON Schema for event payloads (`true` accepts everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PayloadSchema(pub Value);

impl PayloadSchema {
    /// Accepts every payload.
    pub fn any() -> Self {
        Self(Value::Bool(true))
    }

    /// A schema from its JSON form; checked when the process registers.
    pub fn new(schema: Value) -> Self {
        Self(schema)
    }

    /// The schema document.
    pub fn as_json(&self) -> &Value {
        &self.0
    }
}

impl Default for PayloadSchema {
    fn default() -> Self {
        Self::any()
    }
}

/// Picks one value out of an event payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ProcessValueSelector {
    /// The whole payload.
    Payload,
    /// The value at a JSON Pointer (RFC 6901) into the payload.
    Pointer(String),
    /// A fixed value.
    Const(Value),
    /// A string: `template` with each `{name}` replaced by what `fields[name]`
    /// selects (strings as they are, other values as JSON text).
    Template {
        /// The text with `{name}` placeholders.
        template: String,
        /// The selector behind each placeholder name.
        fields: BTreeMap<String, ProcessValueSelector>,
    },
    /// `true` when the JSON Pointer finds a value in the payload, else `false`.
    Present(String),
}

/// How wakes from one event type are deduplicated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ProcessWakeDedupeKey {
    /// Every event is its own wake (`{process_id}:{sequence}`).
    EventIdentity,
    /// The selected payload value, as a string.
    Selector(ProcessValueSelector),
    /// One fixed key: every such wake shares one wake id per target.
    Const(String),
}

/// Events of this type wake the process's target session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessWakeSpec {
    /// Only wake when this selects a truthy value (not null, false, or an
    /// empty string, array or object; numbers are truthy); always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<ProcessValueSelector>,
    /// What the woken session receives.
    pub input: ProcessValueSelector,
    /// How repeated wakes collapse.
    pub dedupe_key: ProcessWakeDedupeKey,
}

/// The terminal states a process can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessTerminalState {
    /// Finished with a value.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped on request.
    Cancelled,
    /// Given up on: its owner is gone or abandonment was requested.
    Abandoned,
}

impl ProcessTerminalState {
    /// Every terminal state.
    pub const ALL: [Self; 4] = [
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Abandoned,
    ];

    /// The reserved event type `complete_process` writes for this state.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Completed => "process.completed",
            Self::Failed => "process.failed",
            Self::Cancelled => "process.cancelled",
            Self::Abandoned => "process.abandoned",
        }
    }
}

/// Events of this type end the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessTerminalSpec {
    /// The state the process ends in.
    pub state: ProcessTerminalState,
    /// The value recorded as the outcome; the whole payload when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub await_output: Option<ProcessValueSelector>,
}

/// Declared semantics of an event type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessEventSemanticsSpec {
    /// Set when events of this type end the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<ProcessTerminalSpec>,
    /// Set when events of this type wake a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<ProcessWakeSpec>,
}

/// One event type a process accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEventType {
    /// Unique name within the process (e.g. `build.progress`).
    pub name: String,
    /// Schema every payload of this type must satisfy.
    #[serde(default)]
    pub payload_schema: PayloadSchema,
    /// Wake and terminal behaviour.
    #[serde(default)]
    pub semantics: ProcessEventSemanticsSpec,
}

impl ProcessEventType {
    /// A type with a schema and no special semantics.
    pub fn new(name: impl Into<String>, payload_schema: PayloadSchema) -> Self {
        Self {
            name: name.into(),
            payload_schema,
            semantics: ProcessEventSemanticsSpec::default(),
        }
    }

    /// A type that accepts any payload.
    pub fn any(name: impl Into<String>) -> Self {
        Self::new(name, PayloadSchema::any())
    }

    /// The same type, waking the target session.
    pub fn with_wake(mut self, wake: ProcessWakeSpec) -> Self {
        self.semantics.wake = Some(wake);
        self
    }

    /// The same type, ending the process.
    pub fn with_terminal(mut self, terminal: ProcessTerminalSpec) -> Self {
        self.semantics.terminal = Some(terminal);
        self
    }

    /// The built-in types every process accepts through `append_event`.
    pub fn builtins() -> Vec<Self> {
        vec![
            Self::new(
                EVENT_CANCEL_REQUESTED,
                PayloadSchema::new(serde_json::json!({
                    "type": "object",
                    "properties": { "reason": { "type": ["string", "null"] } }
                })),
            ),
            Self::any(EVENT_WAITING),
            Self::any(EVENT_RESUMED),
        ]
    }

    /// Whether `name` is one of the built-in types every registration
    /// carries, which a registration may therefore not declare itself.
    pub fn is_core(name: &str) -> bool {
        [EVENT_CANCEL_REQUESTED, EVENT_WAITING, EVENT_RESUMED].contains(&name)
            || Self::is_reserved_terminal(name)
    }

    /// Whether `name` is one of the terminal types only `complete_process` writes.
    pub fn is_reserved_terminal(name: &str) -> bool {
        ProcessTerminalState::ALL
            .iter()
            .any(|state| state.event_type() == name)
    }
}
