//! The stored process row and the facts written onto it after registration.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    LeaseOwnerIdentity, ProcessEventType, ProcessIdentity, ProcessInput, ProcessProvenance,
    ProcessRegistration, ProcessStatus, RecoveryDisposition, SessionScope,
};

/// A durable reference to where the work really lives (a job id, a run id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessExternalRef {
    /// The system holding the work.
    pub backend: String,
    /// The id inside that system.
    pub id: String,
    /// Anything else the host wants to keep with it.
    #[serde(default)]
    pub metadata: Value,
}

/// The fact that execution began, by whom and when; written once (first
/// writer wins, no lease needed). Rows written before this shape also
/// carry a `fencing_token`, ignored on read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStarted {
    /// The worker that started it.
    pub owner: LeaseOwnerIdentity,
    /// When it started, by the worker's clock.
    pub started_at_ms: u64,
}

/// A standing, non-terminal request to abandon a process; written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbandonRequest {
    /// Who asked.
    pub requested_by: String,
    /// Why.
    pub reason: String,
    /// When, by the requester's clock.
    pub requested_at_ms: u64,
}

/// What a waiting process waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WaitKind {
    /// The `ordinal`-th event of `event_type` resolves the wait on `key`.
    Signal {
        /// Signal name.
        name: String,
        /// The event type that delivers it.
        event_type: String,
        /// The durable wait key.
        key: String,
        /// Which occurrence of the event resolves it (1-based).
        ordinal: u64,
    },
}

/// A process's current wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitState {
    /// What it waits for.
    pub kind: WaitKind,
    /// Since when, by the caller's clock.
    pub since_ms: u64,
}

/// One process row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Process id.
    pub id: String,
    /// The durable input.
    pub input: ProcessInput,
    /// What workers may do after a crash.
    pub disposition: RecoveryDisposition,
    /// Searchable identity.
    pub identity: ProcessIdentity,
    /// Declared event types beyond the built-ins.
    pub event_types: Vec<ProcessEventType>,
    /// Who registered it.
    pub provenance: ProcessProvenance,
    /// Session receiving wakes; cleared when that session is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_target: Option<SessionScope>,
    /// Canonical hash of the registration, for idempotent re-registration.
    pub registration_hash: String,
    /// Registry clock at registration.
    pub created_at_ms: u64,
    /// Registry clock at the last change to the row.
    pub updated_at_ms: u64,
    /// Where the work lives, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<ProcessExternalRef>,
    /// The first recorded start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_started: Option<ProcessStarted>,
    /// A standing abandon request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandon_request: Option<AbandonRequest>,
    /// The current wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitState>,
    /// Running or terminal with its outcome.
    pub status: ProcessStatus,
}

impl ProcessRecord {
    /// The registration this row was created from (with the current wake target).
    pub fn registration(&self) -> ProcessRegistration {
        ProcessRegistration {
            id: self.id.clone(),
            input: self.input.clone(),
            disposition: self.disposition,
            identity: self.identity.clone(),
            event_types: self.event_types.clone(),
            provenance: self.provenance.clone(),
            wake_target: self.wake_target.clone(),
        }
    }

    /// Whether the process has ended.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}
