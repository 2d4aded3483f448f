//! Reports returned by bulk operations, and the durability tier.

use serde::{Deserialize, Serialize};

/// What deleting a session's process state did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSessionDeleteReport {
    /// The deleted session.
    pub session_id: String,
    /// Grants revoked across the session and its frames.
    pub revoked_handle_count: u64,
    /// Wake events deleted: always 0, since a session delete keeps every
    /// wake event (as the original library does); kept for the shape.
    pub deleted_wake_count: u64,
    /// Live processes that lost their last grant, sorted.
    pub orphaned_process_ids: Vec<String>,
    /// Live processes that lost a grant but are still granted elsewhere,
    /// sorted. An ended process is in neither list.
    pub preserved_process_ids: Vec<String>,
}

/// What a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPruneReport {
    /// Terminal rows deleted.
    pub pruned_processes: u64,
    /// Events deleted with them.
    pub pruned_events: u64,
}

/// How much of a registry's state survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityTier {
    /// Lives and dies with the host process.
    Inline,
    /// Survives host and engine restarts.
    Durable,
}
