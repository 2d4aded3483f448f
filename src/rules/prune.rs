//! Retention: which rows a prune removes.

use crate::model::ProcessSummary;

/// Terminal and last changed before `cutoff_ms`; live rows never are.
pub fn prunable(row: &ProcessSummary, cutoff_ms: u64) -> bool {
    row.status.is_terminal() && row.updated_at_ms < cutoff_ms
}
