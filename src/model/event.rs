//! Appended events and the append request/result pair.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ProcessTerminalState, SessionScope, EVENT_CANCEL_REQUESTED};

/// A wake materialized on an event from its type's wake spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessWake {
    /// What the woken session receives.
    pub input: Value,
    /// Wakes sharing a key are delivered once.
    pub dedupe_key: String,
}

/// Semantics an event actually carried when it was written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessEventSemantics {
    /// Set when the event ended the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<ProcessTerminalState>,
    /// Set when the event carries a wake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<ProcessWake>,
}

/// One entry of a process's append-only log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEvent {
    /// The process it belongs to.
    pub process_id: String,
    /// 1, 2, 3, … per process, without gaps.
    pub sequence: u64,
    /// Declared or built-in type name.
    pub event_type: String,
    /// The validated payload.
    pub payload: Value,
    /// What the event did.
    #[serde(default)]
    pub semantics: ProcessEventSemantics,
    /// Registry clock when written.
    pub occurred_at_ms: u64,
    /// The caller's dedupe key, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_key: Option<String>,
}

/// A request to append one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEventAppendRequest {
    /// The type to append.
    pub event_type: String,
    /// Its payload; must satisfy the type's schema.
    pub payload: Value,
    /// Makes the append idempotent: a repeat returns the first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_key: Option<String>,
    /// Sends this event's wake to this scope instead of the process's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_target_scope: Option<SessionScope>,
}

impl ProcessEventAppendRequest {
    /// An append without replay key or wake target override.
    pub fn new(event_type: impl Into<String>, payload: Value) -> Self {
        Self {
            event_type: event_type.into(),
            payload,
            replay_key: None,
            wake_target_scope: None,
        }
    }

    /// The same append, made idempotent under `replay_key`.
    pub fn with_replay_key(mut self, replay_key: impl Into<String>) -> Self {
        self.replay_key = Some(replay_key.into());
        self
    }

    /// The same append, waking `scope`.
    pub fn with_wake_target_scope(mut self, scope: SessionScope) -> Self {
        self.wake_target_scope = Some(scope);
        self
    }

    /// A `process.cancel_requested` event with an optional reason.
    pub fn cancel_requested(process_id: &str, reason: Option<String>) -> Self {
        Self::new(
            EVENT_CANCEL_REQUESTED,
            serde_json::json!({ "process_id": process_id, "reason": reason }),
        )
    }
}

/// A wake the host should deliver to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessWakeDelivery {
    /// The session scope to wake.
    pub scope: SessionScope,
    /// The process that woke it.
    pub process_id: String,
    /// The waking event.
    pub sequence: u64,
    /// What the session receives.
    pub input: Value,
    /// The dedupe key the delivery was made under.
    pub dedupe_key: String,
}

/// What an append produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEventAppendResult {
    /// The stored event (the original one when deduplicated).
    pub event: ProcessEvent,
    /// A wake to deliver, when the event carries one with a target and its
    /// dedupe key was not delivered before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_delivery: Option<ProcessWakeDelivery>,
    /// True when the replay key matched an earlier append and nothing was written.
    pub deduplicated: bool,
}
