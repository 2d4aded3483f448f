//! Helpers shared by the vectors: unique ids, registration builders, owners,
//! before/after snapshots of one process, and error assertions.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::ConformanceTarget;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    LeaseOwnerIdentity, LeaseOwnerLiveness, PayloadSchema, ProcessAwaitOutput, ProcessEvent,
    ProcessEventType, ProcessHandleDescriptor, ProcessHandleGrant, ProcessInput, ProcessLease,
    ProcessProvenance, ProcessRecord, ProcessRegistration, ProcessTerminalSpec,
    ProcessTerminalState, ProcessValueSelector, ProcessWakeDedupeKey, ProcessWakeSpec, WaitKind,
    WaitState,
};

/// A lease TTL no vector outlives: shared vectors use it for live leases.
pub const LONG_TTL_MS: u64 = 60 * 60 * 1000;
/// A short lease TTL for expiry vectors.
pub const SHORT_TTL_MS: u64 = 1_000;
/// How far expiry vectors advance the clock past [`SHORT_TTL_MS`].
pub const PAST_SHORT_TTL_MS: u64 = 1_500;

/// Declared type accepting any payload.
pub const NOTE: &str = "note";
/// Declared type whose payload must be `{ "pct": 0..=100 }`.
pub const PROGRESS: &str = "progress";
/// Wake type: wakes when `/wake` is truthy, with input `/input`,
/// deduplicated by `/key`.
pub const PING: &str = "ping";
/// Wake type: every event wakes with the whole payload (event identity key).
pub const ALERT: &str = "alert";
/// Wake type: wakes once per process (constant key `beacon`).
pub const BEACON: &str = "beacon";
/// Terminal type: completes the process with the payload's `/result`.
pub const FINISHED: &str = "finished";
/// Terminal type: fails the process with the whole payload.
pub const CRASHED: &str = "crashed";

/// A fresh id: `{tag}-{unix nanos}-{counter}`, unique within and across runs.
pub fn unique_id(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{nanos}-{n}")
}

/// A vector's own id space: every id it creates starts with `{prefix}/`.
#[derive(Debug, Clone)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    /// A namespace under a fresh unique prefix.
    pub fn new(tag: &str) -> Self {
        Self {
            prefix: unique_id(tag),
        }
    }

    /// The id `{prefix}/{name}`.
    pub fn id(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Whether `id` belongs to this namespace.
    pub fn owns(&self, id: &str) -> bool {
        id.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The ids of the records that belong to this namespace, in the order given.
    pub fn own_ids(&self, records: &[ProcessRecord]) -> Vec<String> {
        records
            .iter()
            .filter(|record| self.owns(&record.id))
            .map(|record| record.id.clone())
            .collect()
    }
}

/// An external process registered by the host, with a label and definition
/// in its metadata.
pub fn external(id: &str) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::External {
            metadata: json!({ "label": "conformance", "definition": "conformance/external" }),
        },
        ProcessProvenance::host(),
    )
}

/// An engine process of `kind` with `payload` as its input.
pub fn engine(id: &str, kind: &str, payload: Value) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::Engine {
            kind: kind.to_owned(),
            payload,
        },
        ProcessProvenance::host(),
    )
}

/// Every declared type the event vectors use (see the constants above).
pub fn catalog() -> Vec<ProcessEventType> {
    vec![
        ProcessEventType::any(NOTE),
        ProcessEventType::new(
            PROGRESS,
            PayloadSchema::new(json!({
                "type": "object",
                "required": ["pct"],
                "properties": { "pct": { "type": "integer", "minimum": 0, "maximum": 100 } }
            })),
        ),
        ProcessEventType::any(PING).with_wake(ProcessWakeSpec {
            when: Some(ProcessValueSelector::Pointer("/wake".to_owned())),
            input: ProcessValueSelector::Pointer("/input".to_owned()),
            dedupe_key: ProcessWakeDedupeKey::Selector(ProcessValueSelector::Pointer(
                "/key".to_owned(),
            )),
        }),
        ProcessEventType::any(ALERT).with_wake(ProcessWakeSpec {
            when: None,
            input: ProcessValueSelector::Payload,
            dedupe_key: ProcessWakeDedupeKey::EventIdentity,
        }),
        ProcessEventType::any(BEACON).with_wake(ProcessWakeSpec {
            when: None,
            input: ProcessValueSelector::Const(json!("beacon")),
            dedupe_key: ProcessWakeDedupeKey::Const("beacon".to_owned()),
        }),
        ProcessEventType::any(FINISHED).with_terminal(ProcessTerminalSpec {
            state: ProcessTerminalState::Completed,
            await_output: Some(ProcessValueSelector::Pointer("/result".to_owned())),
        }),
        ProcessEventType::any(CRASHED).with_terminal(ProcessTerminalSpec {
            state: ProcessTerminalState::Failed,
            await_output: None,
        }),
    ]
}

/// An external registration declaring the whole [`catalog`].
pub fn typed(id: &str) -> ProcessRegistration {
    external(id).with_extra_event_types(catalog())
}

/// Registers, panicking when the registry refuses.
pub async fn register(
    target: &ConformanceTarget,
    registration: ProcessRegistration,
) -> ProcessRecord {
    let id = registration.id.clone();
    target
        .registry
        .register_process(registration)
        .await
        .unwrap_or_else(|err| panic!("registering `{id}` failed: {err}"))
}

/// Registers `id` as [`typed`].
pub async fn register_typed(target: &ConformanceTarget, id: &str) -> ProcessRecord {
    register(target, typed(id)).await
}

/// Completes `id` with a success, panicking when refused.
pub async fn complete(target: &ConformanceTarget, id: &str) -> ProcessRecord {
    target
        .registry
        .complete_process(id, ProcessAwaitOutput::success(json!({ "done": id })))
        .await
        .unwrap_or_else(|err| panic!("completing `{id}` failed: {err}"))
}

/// A lease owner with a unique id and incarnation, opaque (never provably
/// dead).
pub fn owner(tag: &str) -> LeaseOwnerIdentity {
    LeaseOwnerIdentity::opaque(unique_id(tag), unique_id("incarnation"))
}

/// The host id local-process owners in the vectors report.
pub const CONFORMANCE_HOST: &str = "conformance-host";

/// A lease owner running as this test process on `host`, with this boot's
/// id and this process's start: alive, so never provably dead. `None`
/// where the process facts cannot be read (not Linux).
pub fn live_local_owner(tag: &str, host: &str) -> Option<LeaseOwnerIdentity> {
    let owner = LeaseOwnerIdentity::local_process(unique_id(tag), unique_id("incarnation"), host);
    matches!(owner.liveness, LeaseOwnerLiveness::LocalProcess { .. }).then_some(owner)
}

/// A lease owner on `host` and this boot whose recorded process is gone:
/// this process's pid with another start time, i.e. a process that held
/// the pid before and was replaced. Provably dead for a claimant on the
/// same host and boot. `None` where process facts cannot be read.
pub fn dead_local_owner(tag: &str, host: &str) -> Option<LeaseOwnerIdentity> {
    let mut owner = live_local_owner(tag, host)?;
    if let LeaseOwnerLiveness::LocalProcess { process_start, .. } = &mut owner.liveness {
        *process_start = format!("{process_start}-replaced");
    }
    Some(owner)
}

/// A handle descriptor.
pub fn descriptor(label: &str) -> ProcessHandleDescriptor {
    ProcessHandleDescriptor {
        kind: "job".to_owned(),
        label: label.to_owned(),
    }
}

/// A signal wait on `key`.
pub fn signal_wait(key: &str, since_ms: u64) -> WaitState {
    WaitState {
        kind: WaitKind::Signal {
            name: "approval".to_owned(),
            event_type: NOTE.to_owned(),
            key: key.to_owned(),
            ordinal: 1,
        },
        since_ms,
    }
}

/// Asserts `before <= value <= after`: a registry time taken during a call.
pub fn assert_within(value: u64, before: u64, after: u64, what: &str) {
    assert!(
        before <= value && value <= after,
        "{what}: {value} is outside the call's window [{before}, {after}]"
    );
}

/// Everything observable about one process through the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSnapshot {
    /// The row.
    pub record: ProcessRecord,
    /// `events_after(id, 0)`.
    pub events: Vec<ProcessEvent>,
    /// `wake_events_after(id, 0)`.
    pub wake_events: Vec<ProcessEvent>,
    /// `get_process_lease(id)`.
    pub lease: Option<ProcessLease>,
    /// `handle_grants_for_process(id)`.
    pub grants: Vec<ProcessHandleGrant>,
}

/// Reads the snapshot of a known process.
pub async fn snapshot(target: &ConformanceTarget, process_id: &str) -> ProcessSnapshot {
    let registry = &target.registry;
    ProcessSnapshot {
        record: registry
            .get_process(process_id)
            .await
            .unwrap_or_else(|| panic!("snapshot of `{process_id}`: the process is unknown")),
        events: registry
            .events_after(process_id, 0)
            .await
            .unwrap_or_else(|err| snapshot_failed(process_id, "events_after", &err)),
        wake_events: registry
            .wake_events_after(process_id, 0)
            .await
            .unwrap_or_else(|err| snapshot_failed(process_id, "wake_events_after", &err)),
        lease: registry
            .get_process_lease(process_id)
            .await
            .unwrap_or_else(|err| snapshot_failed(process_id, "get_process_lease", &err)),
        grants: registry
            .handle_grants_for_process(process_id)
            .await
            .unwrap_or_else(|err| snapshot_failed(process_id, "handle_grants_for_process", &err)),
    }
}

fn snapshot_failed<T>(process_id: &str, what: &str, err: &ProcessError) -> T {
    panic!("snapshot of `{process_id}`: {what} failed: {err}")
}

/// Asserts that nothing observable about `process_id` changed since `before`.
pub async fn assert_unchanged(
    target: &ConformanceTarget,
    process_id: &str,
    before: &ProcessSnapshot,
) {
    assert_unchanged_after(target, process_id, before, "a refused call").await;
}

/// [`assert_unchanged`], naming the call that must not have changed anything.
pub async fn assert_unchanged_after(
    target: &ConformanceTarget,
    process_id: &str,
    before: &ProcessSnapshot,
    what: &str,
) {
    let after = snapshot(target, process_id).await;
    assert_eq!(
        before.record, after.record,
        "{what} changed the row of `{process_id}`"
    );
    assert_eq!(
        before.events, after.events,
        "{what} changed the event log of `{process_id}`"
    );
    assert_eq!(
        before.wake_events, after.wake_events,
        "{what} changed the pending wakes of `{process_id}`"
    );
    assert_eq!(
        before.lease, after.lease,
        "{what} changed the lease of `{process_id}`"
    );
    assert_eq!(
        before.grants, after.grants,
        "{what} changed the grants on `{process_id}`"
    );
}

/// The variants of [`ProcessError`], without their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// [`ProcessError::UnknownProcess`].
    UnknownProcess,
    /// [`ProcessError::Conflict`].
    Conflict,
    /// [`ProcessError::InvalidInput`].
    InvalidInput,
    /// [`ProcessError::AlreadyTerminal`].
    AlreadyTerminal,
    /// [`ProcessError::LeaseSuperseded`].
    LeaseSuperseded,
    /// [`ProcessError::LeaseExpired`].
    LeaseExpired,
    /// [`ProcessError::Unavailable`].
    Unavailable,
}

impl ErrorKind {
    /// The variant of `error`.
    pub fn of(error: &ProcessError) -> Self {
        match error {
            ProcessError::UnknownProcess { .. } => Self::UnknownProcess,
            ProcessError::Conflict(_) => Self::Conflict,
            ProcessError::InvalidInput(_) => Self::InvalidInput,
            ProcessError::AlreadyTerminal { .. } => Self::AlreadyTerminal,
            ProcessError::LeaseSuperseded { .. } => Self::LeaseSuperseded,
            ProcessError::LeaseExpired { .. } => Self::LeaseExpired,
            ProcessError::Unavailable { .. } => Self::Unavailable,
        }
    }
}

/// The process an error names, for the variants that carry one.
pub fn named_process(error: &ProcessError) -> Option<&str> {
    match error {
        ProcessError::UnknownProcess { process_id }
        | ProcessError::AlreadyTerminal { process_id }
        | ProcessError::LeaseSuperseded { process_id }
        | ProcessError::LeaseExpired { process_id } => Some(process_id),
        ProcessError::Conflict(_)
        | ProcessError::InvalidInput(_)
        | ProcessError::Unavailable { .. } => None,
    }
}

/// Asserts the call failed with `expected` and returns the error.
pub fn expect_error<T: Debug>(
    result: ProcessResult<T>,
    expected: ErrorKind,
    what: &str,
) -> ProcessError {
    match result {
        Ok(value) => panic!("{what}: expected {expected:?}, got Ok({value:?})"),
        Err(error) => {
            assert_eq!(
                ErrorKind::of(&error),
                expected,
                "{what}: expected {expected:?}, got `{error}`"
            );
            error
        }
    }
}

/// [`expect_error`], also requiring a variant that names `process_id` to name it.
pub fn expect_error_on<T: Debug>(
    result: ProcessResult<T>,
    expected: ErrorKind,
    process_id: &str,
    what: &str,
) -> ProcessError {
    let error = expect_error(result, expected, what);
    if let Some(named) = named_process(&error) {
        assert_eq!(
            named, process_id,
            "{what}: the error names the wrong process"
        );
    }
    error
}

/// Asserts the call failed with `UnknownProcess` for `process_id`, with the
/// documented text ``unknown process `id` ``.
pub fn expect_unknown<T: Debug>(result: ProcessResult<T>, process_id: &str, what: &str) {
    let error = expect_error_on(result, ErrorKind::UnknownProcess, process_id, what);
    assert_eq!(
        error.to_string(),
        format!("unknown process `{process_id}`"),
        "{what}: unexpected error text"
    );
}

/// Asserts a refused call: it failed with `expected` (naming `process_id`
/// when the variant names a process) and changed nothing since `before`.
pub async fn refused<T: Debug>(
    target: &ConformanceTarget,
    process_id: &str,
    before: &ProcessSnapshot,
    result: ProcessResult<T>,
    expected: ErrorKind,
    what: &str,
) -> ProcessError {
    let error = expect_error_on(result, expected, process_id, what);
    assert_unchanged_after(target, process_id, before, what).await;
    error
}

/// Asserts `process_id` is (still) unknown to every read.
pub async fn assert_unknown(target: &ConformanceTarget, process_id: &str, what: &str) {
    let registry = &target.registry;
    assert_eq!(
        registry.get_process(process_id).await,
        None,
        "{what}: get_process(`{process_id}`) must be None"
    );
    assert_eq!(
        registry.try_get_process(process_id).await,
        Ok(None),
        "{what}: try_get_process(`{process_id}`) must be Ok(None)"
    );
    assert_eq!(
        registry.get_process_lease(process_id).await,
        Ok(None),
        "{what}: get_process_lease(`{process_id}`) must be Ok(None)"
    );
    expect_unknown(
        registry.events_after(process_id, 0).await,
        process_id,
        &format!("{what}: events_after"),
    );
    expect_unknown(
        registry.handle_grants_for_process(process_id).await,
        process_id,
        &format!("{what}: handle_grants_for_process"),
    );
}
