//! The searchable facts of a row: what listings filter on and what the
//! Restate directory indexes instead of a copy of the row.

use serde::{Deserialize, Serialize};

use super::{ProcessIdentity, ProcessRecord, ProcessStatus};

/// A status without its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatusKind {
    /// Not terminal.
    Running,
    /// Finished with a value.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped on request.
    Cancelled,
    /// Given up on.
    Abandoned,
}

impl ProcessStatusKind {
    /// The kind of a status.
    pub fn of(status: &ProcessStatus) -> Self {
        match status {
            ProcessStatus::Running => Self::Running,
            ProcessStatus::Completed(_) => Self::Completed,
            ProcessStatus::Failed(_) => Self::Failed,
            ProcessStatus::Cancelled(_) => Self::Cancelled,
            ProcessStatus::Abandoned(_) => Self::Abandoned,
        }
    }

    /// Whether the process has ended.
    pub fn is_terminal(self) -> bool {
        self != Self::Running
    }
}

/// Everything a [`ProcessListFilter`](super::ProcessListFilter) or the
/// prune test looks at, and nothing else: bounded by the input limits,
/// whatever the row's documents weigh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSummary {
    /// Process id.
    pub id: String,
    /// Status kind.
    pub status: ProcessStatusKind,
    /// Whether a wait is set.
    pub waiting: bool,
    /// The originator's scope id.
    pub originator_scope_id: String,
    /// Searchable identity.
    pub identity: ProcessIdentity,
    /// Registry clock at registration.
    pub created_at_ms: u64,
    /// Registry clock at the last row change.
    pub updated_at_ms: u64,
}

impl ProcessSummary {
    /// The summary of a row.
    pub fn of(record: &ProcessRecord) -> Self {
        Self {
            id: record.id.clone(),
            status: ProcessStatusKind::of(&record.status),
            waiting: record.wait.is_some(),
            originator_scope_id: record.provenance.originator.scope_id(),
            identity: record.identity.clone(),
            created_at_ms: record.created_at_ms,
            updated_at_ms: record.updated_at_ms,
        }
    }
}
