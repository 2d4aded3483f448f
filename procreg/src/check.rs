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
//! - with the admin API ([`check_stored`]): every row the server stores
//!   has a directory entry (a write killed between its row and its
//!   directory entry leaves one unlisted).
//!
//! [`repair`] also indexes again, from the row, every process whose
//! directory entry is missing, names nothing or differs
//! (`RestateProcessRegistry::reindex`, idempotent).
//!
//! Run it on a quiet registry: a write in flight can show as a transient
//! disagreement.

use std::collections::{BTreeMap, BTreeSet};

use restate_process_registry::restate::wire::RepairReport;
use restate_process_registry::{
    ProcessError, ProcessHandleGrant, ProcessListFilter, ProcessRegistry, ProcessResult,
    RestateProcessRegistry,
};
use restate_process_registry_testkit::admin::Admin;

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
    /// Processes whose directory entry is missing, names nothing or
    /// differs from the row ([`repair`] indexes them again).
    pub reindex: BTreeSet<String>,
}

/// What [`repair`] did.
#[derive(Debug, Clone, Default)]
pub struct Repaired {
    /// Per pending session, what its repair completed.
    pub sessions: Vec<RepairReport>,
    /// One line per process indexed again.
    pub rows: Vec<String>,
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
    Ok(walk(registry).await?.0)
}

/// [`check`], and the ids the directory listed (for [`check_stored`],
/// so the directory is walked once).
async fn walk(registry: &RestateProcessRegistry) -> ProcessResult<(CheckReport, BTreeSet<String>)> {
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
            report.reindex.insert(entry.id.clone());
            continue;
        };
        if entry.record.as_ref().is_some_and(|copy| *copy != row) {
            report.problems.push(format!(
                "directory copy of `{}` differs from the row",
                row.id
            ));
            report.reindex.insert(row.id.clone());
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
    Ok((report, listed))
}

/// [`check`], plus the rows the server stores that the directory does not
/// list, read from the server's `state` table through the admin API.
pub async fn check_stored(
    registry: &RestateProcessRegistry,
    admin: &Admin,
) -> ProcessResult<CheckReport> {
    let (mut report, listed) = walk(registry).await?;
    let rows = admin
        .query(
            "SELECT service_key FROM state \
             WHERE service_name = 'ProcessObject' AND key = 'row'",
        )
        .await
        .map_err(|err| ProcessError::unavailable(err.to_string()))?;
    for id in rows.iter().filter_map(|row| row["service_key"].as_str()) {
        if !listed.contains(id) {
            report.problems.push(format!(
                "process `{id}` is stored but the directory misses it"
            ));
            report.reindex.insert(id.to_owned());
        }
    }
    Ok(report)
}

/// Repairs what `report` found: completes every unfinished transfer and
/// delete (through `ProcessCoordinator/repair_session`) and indexes every
/// misindexed process again from its row. Idempotent: running it twice,
/// or while a cut-off coordinator is somehow still going, does no harm.
pub async fn repair(
    registry: &RestateProcessRegistry,
    report: &CheckReport,
) -> ProcessResult<Repaired> {
    let mut repaired = Repaired::default();
    for session_id in &report.pending_sessions {
        repaired
            .sessions
            .push(registry.repair_session(session_id).await?);
    }
    for id in &report.reindex {
        let exists = registry.reindex(id).await?;
        repaired.rows.push(if exists {
            format!("indexed `{id}` again from its row")
        } else {
            format!("removed the directory entry of `{id}`, which names no row")
        });
    }
    Ok(repaired)
}
