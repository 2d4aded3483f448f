//! Handle grants: what a grant looks like, how many a process may carry,
//! what a transfer refuses, and how a session delete classifies the
//! processes it touched.

use std::collections::BTreeMap;

use super::limits::MAX_GRANTS_PER_PROCESS;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    ProcessHandleDescriptor, ProcessHandleGrant, ProcessSessionDeleteReport, SessionScope,
};

/// The grant `scope` holds on `process_id`.
pub fn grant_for(
    scope: &SessionScope,
    process_id: &str,
    descriptor: ProcessHandleDescriptor,
) -> ProcessHandleGrant {
    ProcessHandleGrant {
        session_id: scope.session_id.clone(),
        scope_id: scope.id(),
        process_id: process_id.to_owned(),
        descriptor,
    }
}

/// A new grant on a process already carrying `held` grants. `exempt`
/// grants always fit: replacing a held scope's grant, or (in the Restate
/// registry) a grant a transfer moves in, whose source side just lowered
/// the count.
pub fn check_capacity(process_id: &str, held: usize, exempt: bool) -> ProcessResult<()> {
    if !exempt && held >= MAX_GRANTS_PER_PROCESS {
        return Err(ProcessError::invalid(format!(
            "process `{process_id}` already carries {held} grants; the limit is {MAX_GRANTS_PER_PROCESS}"
        )));
    }
    Ok(())
}

/// The refusal of a transfer naming a process `from` does not hold.
pub fn not_held(from: &SessionScope, process_id: &str) -> ProcessError {
    ProcessError::invalid(format!(
        "scope `{}` holds no grant on process `{process_id}`",
        from.id()
    ))
}

/// Whether `scope` holds a grant, given the process's grants as
/// `handle_grants_for_process` answered: an unknown (or pruned) process
/// holds none, so the answer is `false`, not an error.
pub fn scope_holds(
    scope: &SessionScope,
    grants: ProcessResult<Vec<ProcessHandleGrant>>,
) -> ProcessResult<bool> {
    match grants {
        Ok(grants) => {
            let scope_id = scope.id();
            Ok(grants.iter().any(|grant| grant.scope_id == scope_id))
        }
        Err(ProcessError::UnknownProcess { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

/// What a session delete did, tallied process by process.
///
/// A session delete revokes grants and clears wake targets; it deletes no
/// wake event. Every wake event keeps the scope it was aimed at, stays in
/// the log and in `wake_events_after` until acknowledged, so
/// `deleted_wake_count` is always 0 (the field stays for the report's
/// shape).
#[derive(Debug, Clone, Default)]
pub struct SessionDeleteTally {
    revoked: u64,
    /// Grants left on each live process after its last revocation here;
    /// terminal processes are counted as revoked but classified as neither.
    remaining: BTreeMap<String, usize>,
}

impl SessionDeleteTally {
    /// One grant revoked on `process_id`, leaving `remaining` grants on it;
    /// `terminal` when the process has ended.
    pub fn revoked(&mut self, process_id: &str, remaining: usize, terminal: bool) {
        self.revoked += 1;
        if terminal {
            self.remaining.remove(process_id);
        } else {
            self.remaining.insert(process_id.to_owned(), remaining);
        }
    }

    /// The report: a live process that lost its last grant is orphaned,
    /// one still granted elsewhere is preserved (both sorted by id); a
    /// terminal process is neither, whatever grants it lost.
    pub fn report(self, session_id: &str) -> ProcessSessionDeleteReport {
        let (orphaned, preserved): (Vec<_>, Vec<_>) = self
            .remaining
            .into_iter()
            .partition(|(_, remaining)| *remaining == 0);
        ProcessSessionDeleteReport {
            session_id: session_id.to_owned(),
            revoked_handle_count: self.revoked,
            deleted_wake_count: 0,
            orphaned_process_ids: orphaned.into_iter().map(|(id, _)| id).collect(),
            preserved_process_ids: preserved.into_iter().map(|(id, _)| id).collect(),
        }
    }
}
