//! Appended events and the append request/result pair.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ProcessTerminalState, SessionScope, EVENT_CANCEL_REQUESTED};
use crate::digest::canonical_sha256_hex;

/// A wake materialized on an event from its type's wake spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessWake {
    /// What the woken session receives.
    pub input: Value,
    /// Deliveries of wakes sharing a key to one scope share a wake id.
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

    /// A `process.cancel_requested` event with an optional reason, under a
    /// replay key derived from the process id and the payload: the same
    /// request sent twice is one event.
    pub fn cancel_requested(process_id: &str, reason: Option<String>) -> Self {
        let payload = serde_json::json!({ "reason": reason });
        let digest = canonical_sha256_hex(&serde_json::json!([EVENT_CANCEL_REQUESTED, payload]));
        Self::new(EVENT_CANCEL_REQUESTED, payload)
            .with_replay_key(format!("process:{process_id}:cancel_requested:{digest}"))
    }
}

/// A wake the host should deliver to a session. Every wake-carrying event
/// with a target yields one (a replayed append yields the first one again);
/// the host collapses repeats by `wake_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessWakeDelivery {
    /// `wake:{sha256}` of the target scope id and the dedupe key: equal for
    /// every wake that should reach the session once.
    #[serde(default)]
    pub wake_id: String,
    /// The session scope to wake.
    pub scope: SessionScope,
    /// The process that woke it.
    pub process_id: String,
    /// The waking event.
    pub sequence: u64,
    /// The waking event's type.
    #[serde(default)]
    pub event_type: String,
    /// The process's provenance cause, so the woken session can trace why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_caused_by: Option<Value>,
    /// What the session receives.
    pub input: Value,
    /// The dedupe key the delivery was made under.
    pub dedupe_key: String,
    /// When the waking event was written (registry clock).
    #[serde(default)]
    pub created_at_ms: u64,
}

/// What an append produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEventAppendResult {
    /// The stored event (the original one when deduplicated).
    pub event: ProcessEvent,
    /// A wake to deliver, when the event carries one and has a target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_delivery: Option<ProcessWakeDelivery>,
    /// True when the replay key matched an earlier append and nothing was written.
    pub deduplicated: bool,
}
