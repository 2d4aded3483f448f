//! The consistency check behind `procreg check`: walks the directory, every
//! process it lists and every session those processes are granted to, and
//! reports each disagreement between them.
//!
//! What it compares:
//! - directory ↔ row: every entry names a live process, and an inline copy
//!   equals the row;
//! - row's grant mirror ↔ session authority: every grant a process carries
//!   is held by its session (same descriptor), and every grant a session
//!   holds on a listed process is carried by that process.
//!
//! - intents: every session visited (those the mirrors name, and the
//!   sources of grants a transfer moved and its destination has not yet
//!   confirmed) is asked for transfers out of it and deletes of it that
//!   were begun and not completed (their coordinator was killed). Each is
//!   a problem; its grants in transit are reported through it, not again
//!   one by one. [`repair`] completes them (`procreg check --repair`).
//!
//! Run it on a quiet registry: a write in flight can show as a transient
//! disagreement.

use std::collections::{BTreeMap, BTreeSet};

use restate_process_registry::restate::wire::RepairReport;
use restate_process_registry::{
    ProcessHandleGrant, ProcessListFilter, ProcessRegistry, ProcessResult, RestateProcessRegistry,
};

/// What the check saw and every disagreement it found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Processes listed by the directory.
    pub processes: usize,
    /// Sessions visited.
    pub sessions: usize,
    /// Grants compared.
    pub grants: usize,
    /// One line per disagreement; empty when consistent.
    pub problems: Vec<String>,
    /// Sessions recording an unfinished transfer or delete ([`repair`]
    /// completes them).
    pub pending_sessions: Vec<String>,
}

impl CheckReport {
    /// Whether everything agreed.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

type GrantKey = (String, String);

fn key(grant: &ProcessHandleGrant) -> GrantKey {
    (grant.scope_id.clone(), grant.process_id.clone())
}

/// Checks the registry behind `registry`.
pub async fn check(registry: &RestateProcessRegistry) -> ProcessResult<CheckReport> {
    let mut report = CheckReport::default();
    let entries = registry
        .directory_entries(&ProcessListFilter::any())
        .await?;
    report.processes = entries.len();
    let mut listed = BTreeSet::new();
    let mut mirrored: BTreeMap<GrantKey, ProcessHandleGrant> = BTreeMap::new();
    // (destination scope, process) → (source session, transfer id)
    let mut transits: BTreeMap<GrantKey, (String, String)> = BTreeMap::new();
    for entry in entries {
        if !listed.insert(entry.id.clone()) {
            report
                .problems
                .push(format!("directory lists `{}` twice", entry.id));
        }
        let Some(row) = registry.try_get_process(&entry.id).await? else {
            report.problems.push(format!(
                "directory lists `{}`, which does not exist",
                entry.id
            ));
            continue;
        };
        if entry.record.as_ref().is_some_and(|copy| *copy != row) {
            report.problems.push(format!(
                "directory copy of `{}` differs from the row",
                row.id
            ));
        }
        for grant in registry.handle_grants_for_process(&row.id).await? {
            mirrored.insert(key(&grant), grant);
        }
        for (scope_id, source, transfer_id) in registry.grant_transits(&row.id).await? {
            transits.insert((scope_id, row.id.clone()), (source, transfer_id));
        }
    }
    let mut sessions: BTreeSet<String> = mirrored.values().map(|g| g.session_id.clone()).collect();
    sessions.extend(transits.values().map(|(source, _)| source.clone()));
    report.sessions = sessions.len();
    // Grants an unfinished transfer accounts for, by both scopes.
    let mut in_transit: BTreeSet<GrantKey> = BTreeSet::new();
    let mut recorded: BTreeSet<String> = BTreeSet::new();
    for session_id in &sessions {
        let pending = registry.pending_intents(session_id).await?;
        if pending.is_empty() {
            continue;
        }
        report.pending_sessions.push(session_id.clone());
        for transfer in &pending.transfers {
            recorded.insert(transfer.transfer_id.clone());
            report.problems.push(format!(
                "session `{session_id}` has an unfinished transfer `{}` of {} grant(s) from `{}` to `{}` ({})",
                transfer.transfer_id,
                transfer.grants.len(),
                transfer.from.id(),
                transfer.to.id(),
                if transfer.taken { "taken, not yet given" } else { "being taken" },
            ));
            for grant in &transfer.grants {
                in_transit.insert((transfer.from.id(), grant.process_id.clone()));
                in_transit.insert((transfer.to.id(), grant.process_id.clone()));
            }
        }
        for step in &pending.steps {
            report
                .problems
                .push(format!("session `{session_id}` has a half-done {step}"));
        }
        for delete in &pending.deletes {
            report.problems.push(format!(
                "session `{session_id}` has an unfinished delete `{}` (begun at {} ms)",
                delete.delete_id, delete.begun_at_ms
            ));
        }
    }
    for ((scope_id, process_id), (source, transfer_id)) in &transits {
        if !recorded.contains(transfer_id) {
            report.problems.push(format!(
                "process `{process_id}` carries a grant of `{scope_id}` moving from session \
                 `{source}` by transfer `{transfer_id}`, which that session no longer records"
            ));
        }
    }
    let mut held: BTreeMap<GrantKey, ProcessHandleGrant> = BTreeMap::new();
    for session_id in &sessions {
        for grant in registry.session_grants(session_id).await? {
            if listed.contains(&grant.process_id) {
                held.insert(key(&grant), grant);
            }
        }
    }
    report.grants = held.len().max(mirrored.len());
    for (grant_key, grant) in &mirrored {
        if in_transit.contains(grant_key) && !held.contains_key(grant_key) {
            continue;
        }
        match held.get(grant_key) {
            None => report.problems.push(format!(
                "process `{}` carries a grant of `{}` that its session does not hold",
                grant.process_id, grant.scope_id
            )),
            Some(authority) if authority != grant => report.problems.push(format!(
                "grant of `{}` on `{}` differs between session and process",
                grant.scope_id, grant.process_id
            )),
            Some(_) => {}
        }
    }
    for (grant_key, grant) in &held {
        if !mirrored.contains_key(grant_key) && !in_transit.contains(grant_key) {
            report.problems.push(format!(
                "session `{}` holds a grant on `{}` that the process does not carry",
                grant.session_id, grant.process_id
            ));
        }
    }
    Ok(report)
}

/// Completes every unfinished transfer and delete `report` found (through
/// `ProcessCoordinator/repair_session`, idempotent: running it twice, or
/// while the cut-off coordinator is somehow still going, does no harm) and
/// answers what each session's repair completed.
pub async fn repair(
    registry: &RestateProcessRegistry,
    report: &CheckReport,
) -> ProcessResult<Vec<RepairReport>> {
    let mut repaired = Vec::new();
    for session_id in &report.pending_sessions {
        repaired.push(registry.repair_session(session_id).await?);
    }
    Ok(repaired)
}
