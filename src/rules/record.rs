//! Changes to a row after registration. Each returns the new row to store,
//! or `None` when the call is an idempotent repeat that changes nothing.

use super::lease::{check_started_writer, LeaseState};
use crate::error::{ProcessError, ProcessResult};
use crate::model::{AbandonRequest, ProcessExternalRef, ProcessRecord, ProcessStarted, WaitState};

/// Stores the first external ref; the same again is a no-op, another a conflict.
pub fn set_external_ref(
    record: &ProcessRecord,
    external_ref: ProcessExternalRef,
    now_ms: u64,
) -> ProcessResult<Option<ProcessRecord>> {
    match &record.external_ref {
        Some(existing) if *existing == external_ref => Ok(None),
        Some(existing) => Err(ProcessError::conflict(format!(
            "process `{}` already has external ref `{}:{}`",
            record.id, existing.backend, existing.id
        ))),
        None => Ok(Some(touched(record, now_ms, |row| {
            row.external_ref = Some(external_ref)
        }))),
    }
}

/// Stores the first start; later starts change nothing. A terminal row that
/// never started cannot start now. No lease is needed, but while another
/// owner holds a live lease its rivals are refused ([`check_started_writer`]).
pub fn record_first_started(
    record: &ProcessRecord,
    lease: LeaseState<'_>,
    started: ProcessStarted,
    now_ms: u64,
) -> ProcessResult<Option<ProcessRecord>> {
    if record.first_started.is_some() {
        return Ok(None);
    }
    if record.is_terminal() {
        return Err(ProcessError::terminal(&record.id));
    }
    check_started_writer(&record.id, lease, &started)?;
    Ok(Some(touched(record, now_ms, |row| {
        row.first_started = Some(started)
    })))
}

/// Stores the first abandon request; refused on a terminal row.
pub fn request_abandon(
    record: &ProcessRecord,
    request: AbandonRequest,
    now_ms: u64,
) -> ProcessResult<Option<ProcessRecord>> {
    if record.is_terminal() {
        return Err(ProcessError::terminal(&record.id));
    }
    if record.abandon_request.is_some() {
        return Ok(None);
    }
    Ok(Some(touched(record, now_ms, |row| {
        row.abandon_request = Some(request)
    })))
}

/// Sets the wait; refused on a terminal row.
pub fn set_wait(
    record: &ProcessRecord,
    wait: WaitState,
    now_ms: u64,
) -> ProcessResult<Option<ProcessRecord>> {
    if record.is_terminal() {
        return Err(ProcessError::terminal(&record.id));
    }
    if record.wait.as_ref() == Some(&wait) {
        return Ok(None);
    }
    Ok(Some(touched(record, now_ms, |row| row.wait = Some(wait))))
}

/// Clears the wait; a no-op when none is set.
pub fn clear_wait(record: &ProcessRecord, now_ms: u64) -> Option<ProcessRecord> {
    record.wait.as_ref()?;
    Some(touched(record, now_ms, |row| row.wait = None))
}

/// Whether the row's wake target is a scope of `session_id`.
pub fn wake_target_aims_at(record: &ProcessRecord, session_id: &str) -> bool {
    record
        .wake_target
        .as_ref()
        .is_some_and(|target| target.session_id == session_id)
}

/// Clears the wake target when it aims at `session_id` (a session delete);
/// a no-op otherwise, terminal rows included.
pub fn clear_wake_target_of(
    record: &ProcessRecord,
    session_id: &str,
    now_ms: u64,
) -> Option<ProcessRecord> {
    wake_target_aims_at(record, session_id)
        .then(|| touched(record, now_ms, |row| row.wake_target = None))
}

fn touched(
    record: &ProcessRecord,
    now_ms: u64,
    change: impl FnOnce(&mut ProcessRecord),
) -> ProcessRecord {
    let mut row = record.clone();
    change(&mut row);
    row.updated_at_ms = now_ms;
    row
}
