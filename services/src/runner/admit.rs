//! Which rows a `ProcessRunner` runs, and under which lease owner.
//!
//! A run is keyed by its process's incarnation key (`{process id}#i-{16
//! hex}`, the key of its `ProcessTerminal` workflow too), so there is at
//! most one run per incarnation. It runs the body only for the current
//! incarnation of a non-terminal row with engine input that is not
//! `ExternallyOwned` and that nobody has started yet. Within one run a
//! restart is a replay of its journal, never a fresh start, so a started
//! `OwnerBound` body is resumed, not re-run.

use restate_process_registry::rules::limits::MAX_LEASE_TTL_MS;
use restate_process_registry::{
    LeaseOwnerIdentity, ProcessInput, ProcessRecord, RecoveryDisposition,
};

/// The owner id every runner lease carries.
pub const RUNNER_OWNER_ID: &str = "ProcessRunner";
/// A run's lease lasts the longest the registry allows (30 days); the run
/// releases it when it ends.
pub const RUNNER_LEASE_TTL_MS: u64 = MAX_LEASE_TTL_MS;

/// Whether a runner runs this row's body: engine input, not
/// `ExternallyOwned`, not terminal.
pub(crate) fn runs_body(record: &ProcessRecord) -> bool {
    matches!(record.input, ProcessInput::Engine { .. })
        && record.disposition != RecoveryDisposition::ExternallyOwned
        && !record.is_terminal()
}

/// The process id in an incarnation key, if `key` is one.
pub(super) fn process_of(key: &str) -> Option<&str> {
    let (process_id, incarnation) = key.rsplit_once('#')?;
    (!process_id.is_empty() && incarnation.starts_with("i-")).then_some(process_id)
}

/// The lease owner of the run keyed `key`: the runner, with the
/// incarnation part of its key (the process id is the lease's own). Opaque:
/// a run lives in the engine, not in a process a host could see die, so no
/// claimant ever proves a runner dead.
pub(super) fn runner_owner(key: &str) -> LeaseOwnerIdentity {
    let incarnation = key.rsplit_once('#').map_or(key, |(_, tail)| tail);
    LeaseOwnerIdentity::opaque(RUNNER_OWNER_ID, incarnation)
}

/// The row to run, or why the run `key` leaves it alone. `current_key` is
/// the process's current incarnation key.
pub(super) fn admit(
    key: &str,
    current_key: &str,
    row: Option<ProcessRecord>,
) -> Result<ProcessRecord, String> {
    let Some(row) = row else {
        return Err("the process is unknown".to_owned());
    };
    if current_key != key {
        return Err(format!(
            "`{key}` is not the process's current incarnation `{current_key}`"
        ));
    }
    if row.is_terminal() {
        return Err("the process is already terminal".to_owned());
    }
    if row.disposition == RecoveryDisposition::ExternallyOwned {
        return Err("the process is externally owned".to_owned());
    }
    if !matches!(row.input, ProcessInput::Engine { .. }) {
        return Err("the process has no engine input".to_owned());
    }
    if let Some(started) = &row.first_started {
        return Err(format!(
            "the process was already started by `{}`",
            started.owner.owner_id
        ));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_process_registry::{
        ProcessAwaitOutput, ProcessProvenance, ProcessRegistration, ProcessStarted, ProcessStatus,
    };
    use serde_json::json;

    const KEY: &str = "job#1#i-00000000000000ff";

    fn row(input: ProcessInput) -> ProcessRecord {
        let registration = ProcessRegistration::new("job#1", input, ProcessProvenance::host());
        restate_process_registry::rules::registration::new_record(registration, "h".into(), 1)
    }

    fn engine() -> ProcessRecord {
        row(ProcessInput::Engine {
            kind: "k".into(),
            payload: json!({}),
        })
    }

    #[test]
    fn keys_name_their_process_and_incarnation() {
        assert_eq!(process_of(KEY), Some("job#1"));
        assert_eq!(process_of("job"), None);
        assert_eq!(process_of("#i-1"), None);
        assert_eq!(process_of("job#x-1"), None);
        let owner = runner_owner(KEY);
        assert_eq!(owner.incarnation_id, "i-00000000000000ff");
        assert_eq!(owner.owner_id, RUNNER_OWNER_ID);
    }

    #[test]
    fn only_fresh_current_engine_rows_run() {
        assert!(admit(KEY, KEY, Some(engine())).is_ok());
        assert!(admit(KEY, KEY, None).is_err());
        assert!(admit(KEY, "job#1#i-0000000000000001", Some(engine())).is_err());

        let mut ended = engine();
        ended.status = ProcessStatus::terminal(ProcessAwaitOutput::success(json!(1)));
        assert!(admit(KEY, KEY, Some(ended)).is_err());

        let owned = engine();
        let owned = ProcessRecord {
            disposition: RecoveryDisposition::ExternallyOwned,
            ..owned
        };
        assert!(!runs_body(&owned));
        assert!(admit(KEY, KEY, Some(owned)).is_err());

        let external = row(ProcessInput::External {
            metadata: json!({}),
        });
        assert!(!runs_body(&external));
        assert!(admit(KEY, KEY, Some(external)).is_err());

        let mut started = engine();
        started.first_started = Some(ProcessStarted {
            owner: runner_owner("job#1#i-0000000000000001"),
            started_at_ms: 2,
        });
        assert!(admit(KEY, KEY, Some(started)).is_err());
        assert!(runs_body(&engine()));
    }
}
