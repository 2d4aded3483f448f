//! The request that creates a process row.

use serde::{Deserialize, Serialize};

use super::{
    ProcessEventType, ProcessIdentity, ProcessInput, ProcessProvenance, RecoveryDisposition,
    SessionScope,
};

/// Everything fixed about a process when it is registered.
///
/// `event_types` holds the types declared on top of the built-ins
/// ([`ProcessEventType::builtins`]), which every process accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRegistration {
    /// Unique process id (non-empty, at most 256 bytes, no control characters).
    pub id: String,
    /// The durable input.
    pub input: ProcessInput,
    /// What workers may do after a crash.
    #[serde(default)]
    pub disposition: RecoveryDisposition,
    /// Searchable identity; derived from the input by [`ProcessRegistration::new`].
    pub identity: ProcessIdentity,
    /// Declared event types beyond the built-ins.
    #[serde(default)]
    pub event_types: Vec<ProcessEventType>,
    /// Who registered it and why.
    pub provenance: ProcessProvenance,
    /// Session that receives this process's wakes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_target: Option<SessionScope>,
}

impl ProcessRegistration {
    /// A rerunnable process with no extra event types and no wake target.
    pub fn new(id: impl Into<String>, input: ProcessInput, provenance: ProcessProvenance) -> Self {
        let identity = ProcessIdentity::from_input(&input);
        Self {
            id: id.into(),
            input,
            disposition: RecoveryDisposition::default(),
            identity,
            event_types: Vec::new(),
            provenance,
            wake_target: None,
        }
    }

    /// Declares more event types.
    pub fn with_extra_event_types(
        mut self,
        event_types: impl IntoIterator<Item = ProcessEventType>,
    ) -> Self {
        self.event_types.extend(event_types);
        self
    }

    /// Sets the recovery disposition.
    pub fn with_disposition(mut self, disposition: RecoveryDisposition) -> Self {
        self.disposition = disposition;
        self
    }

    /// Names the session that receives wakes.
    pub fn with_wake_target(mut self, scope: SessionScope) -> Self {
        self.wake_target = Some(scope);
        self
    }

    /// Overrides the derived identity.
    pub fn with_identity(mut self, identity: ProcessIdentity) -> Self {
        self.identity = identity;
        self
    }
}
