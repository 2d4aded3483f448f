//! What a process is: its input, identity, provenance and recovery rule.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SessionScope;

/// The durable input a process was registered with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProcessInput {
    /// Work owned by something outside the engine; only metadata is kept.
    External {
        /// Free-form description of the external work.
        metadata: Value,
    },
    /// Work the host's executor runs from `kind` and `payload`.
    Engine {
        /// What kind of work this is (routes to an executor).
        kind: String,
        /// The executor's input.
        payload: Value,
    },
}

/// What a worker may do with a row after a crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryDisposition {
    /// Safe to run again from its input.
    #[default]
    Rerunnable,
    /// Once started, only its owner may finish it; never re-run.
    OwnerBound,
    /// Driven by an outside system; workers never execute it.
    ExternallyOwned,
}

/// Searchable identity of a process, derived from its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// `external` or `engine`.
    pub kind: String,
    /// A short human label.
    pub label: String,
    /// The definition the process runs, when one is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

impl ProcessIdentity {
    /// Identity of an input: external rows take `label`/`definition` from
    /// their metadata; engine rows use their kind as label and take
    /// `definition` from their payload.
    pub fn from_input(input: &ProcessInput) -> Self {
        let text =
            |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        match input {
            ProcessInput::External { metadata } => Self {
                kind: "external".to_owned(),
                label: text(metadata, "label").unwrap_or_else(|| "external".to_owned()),
                definition: text(metadata, "definition"),
            },
            ProcessInput::Engine { kind, payload } => Self {
                kind: "engine".to_owned(),
                label: kind.clone(),
                definition: text(payload, "definition"),
            },
        }
    }
}

/// Who started a process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProcessOriginator {
    /// The host itself, under a host scope id.
    Host {
        /// The host scope id (`host` by default).
        scope: String,
    },
    /// A session.
    Session {
        /// The originating session scope.
        scope: SessionScope,
    },
}

impl ProcessOriginator {
    /// The scope id list filters match on.
    pub fn scope_id(&self) -> String {
        match self {
            Self::Host { scope } => scope.clone(),
            Self::Session { scope } => scope.id(),
        }
    }
}

/// Where a process came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessProvenance {
    /// Who registered it.
    pub originator: ProcessOriginator,
    /// What caused it, as the host describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Value>,
}

impl ProcessProvenance {
    /// Registered by the host, scope `host`, no cause.
    pub fn host() -> Self {
        Self {
            originator: ProcessOriginator::Host {
                scope: "host".to_owned(),
            },
            caused_by: None,
        }
    }

    /// Registered by a session.
    pub fn session(scope: SessionScope) -> Self {
        Self {
            originator: ProcessOriginator::Session { scope },
            caused_by: None,
        }
    }

    /// The same provenance with a cause attached.
    pub fn caused_by(mut self, cause: Value) -> Self {
        self.caused_by = Some(cause);
        self
    }
}
