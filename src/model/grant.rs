//! Session handle grants: which sessions may see and steer which processes.

use serde::{Deserialize, Serialize};

use super::ProcessRecord;

/// How a session refers to a process it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessHandleDescriptor {
    /// Handle kind as the session sees it (`tool_call`, `job`, …).
    pub kind: String,
    /// Display label.
    pub label: String,
}

/// One scope's grant on one process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessHandleGrant {
    /// The session holding it.
    pub session_id: String,
    /// The exact scope id (`session:…` or `session:…/frame:…`).
    pub scope_id: String,
    /// The granted process.
    pub process_id: String,
    /// How the session refers to it.
    pub descriptor: ProcessHandleDescriptor,
}

/// A grant with the current row of its process.
pub type ProcessHandleGrantEntry = (ProcessHandleGrant, ProcessRecord);
