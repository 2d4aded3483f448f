//! Appends and completions: what a new event looks like and what it does
//! to the row.

use serde_json::Value;

use super::limits::check_key;
use super::schema::check_payload;
use super::selector::{is_truthy, key_text, select};
use crate::digest::canonical_sha256_hex;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    ProcessAwaitOutput, ProcessEvent, ProcessEventAppendRequest, ProcessEventAppendResult,
    ProcessEventSemantics, ProcessEventType, ProcessRecord, ProcessStatus, ProcessTerminalSpec,
    ProcessTerminalState, ProcessWake, ProcessWakeDedupeKey, ProcessWakeDelivery, ProcessWakeSpec,
    SessionScope, EVENT_CANCEL_REQUESTED,
};

/// What an append's replay key found in the store.
#[derive(Debug, Clone)]
pub enum Prior {
    /// The key is new (or the request carries none).
    Fresh,
    /// The key maps to this stored event.
    Found(ProcessEvent),
    /// The key maps to a sequence whose event is not stored: the store is
    /// damaged, and the append is refused rather than written twice.
    Lost(u64),
}

/// Everything one append does, decided once for every registry: either an
/// answer with nothing to write, or the whole write set.
#[derive(Debug, Clone)]
pub enum AppendPlan {
    /// The replay key was used before for this same event: answer the
    /// first event and its delivery again, write nothing.
    Replayed(Box<ProcessEventAppendResult>),
    /// A new event and what it changes.
    Write(Box<AppendWrite>),
}

/// The write set of an accepted append. A registry stores all of it in one
/// atomic step (a mutex, one exclusive handler).
#[derive(Debug, Clone)]
pub struct AppendWrite {
    /// The event to store at the next sequence; its `replay_key`, when
    /// set, is mapped to its sequence.
    pub event: ProcessEvent,
    /// The event carries a wake: keep it unacknowledged until acked,
    /// remembering the scope it was aimed at (none without a target).
    pub pending_wake: Option<Option<SessionScope>>,
    /// The delivery to answer (set when the wake has a target).
    pub delivery: Option<ProcessWakeDelivery>,
    /// The row after the append, when the append ends the process; settle
    /// the process's waits (terminal and milestone) with it.
    pub ended: Option<ProcessRecord>,
}

impl AppendWrite {
    /// The answer once the write set is stored.
    pub fn result(&self) -> ProcessEventAppendResult {
        ProcessEventAppendResult {
            event: self.event.clone(),
            wake_delivery: self.delivery.clone(),
            deduplicated: false,
        }
    }
}

/// Decides an append against the row, what its replay key found, and the
/// next free sequence.
pub fn plan_append(
    record: &ProcessRecord,
    request: &ProcessEventAppendRequest,
    prior: Prior,
    next_sequence: u64,
    now_ms: u64,
) -> ProcessResult<AppendPlan> {
    match prior {
        Prior::Found(original) => {
            check_replay(&original, request)?;
            let delivery = deliver(record, request, &original);
            return Ok(AppendPlan::Replayed(Box::new(ProcessEventAppendResult {
                event: original,
                wake_delivery: delivery,
                deduplicated: true,
            })));
        }
        Prior::Lost(sequence) => {
            return Err(ProcessError::unavailable(format!(
                "replay key `{}` names event {sequence} of process `{}`, which is not stored",
                request.replay_key.as_deref().unwrap_or_default(),
                record.id
            )));
        }
        Prior::Fresh => {}
    }
    if record.is_terminal() {
        return Err(ProcessError::terminal(&record.id));
    }
    let name = request.event_type.as_str();
    if ProcessEventType::is_reserved_terminal(name) {
        return Err(ProcessError::invalid(format!(
            "event type `{name}` is reserved: only complete_process writes it"
        )));
    }
    let event_type = declared_type(record, name).ok_or_else(|| {
        ProcessError::invalid(format!(
            "event type `{name}` is not declared by process `{}`",
            record.id
        ))
    })?;
    check_payload(name, &event_type.payload_schema, &request.payload)?;
    let terminal = event_type.semantics.terminal.as_ref();
    if (terminal.is_some() || name == EVENT_CANCEL_REQUESTED) && request.replay_key.is_none() {
        return Err(ProcessError::invalid(format!(
            "event type `{name}` requires a deterministic replay key"
        )));
    }
    let wake = match &event_type.semantics.wake {
        Some(spec) => materialize_wake(spec, record, &request.payload, next_sequence)?,
        None => None,
    };
    let event = ProcessEvent {
        process_id: record.id.clone(),
        sequence: next_sequence,
        event_type: name.to_owned(),
        payload: request.payload.clone(),
        semantics: ProcessEventSemantics {
            terminal: terminal.map(|spec| spec.state),
            wake,
        },
        occurred_at_ms: now_ms,
        replay_key: request.replay_key.clone(),
    };
    // Derived from a validated payload, the outcome nests at most two levels
    // deeper and weighs a few payloads at most: always readable. It is not
    // held to the caller-facing text limits (a derived failure message is
    // the payload's text when it names none).
    let ended = match terminal {
        Some(spec) => Some(ended(
            record,
            terminal_output(spec, &request.payload)?,
            now_ms,
        )),
        None => None,
    };
    let delivery = deliver(record, request, &event);
    let pending_wake = event
        .semantics
        .wake
        .as_ref()
        .map(|_| delivery.as_ref().map(|d| d.scope.clone()));
    Ok(AppendPlan::Write(Box::new(AppendWrite {
        pending_wake,
        delivery,
        ended,
        event,
    })))
}

/// A replayed append must repeat the original one exactly.
fn check_replay(original: &ProcessEvent, request: &ProcessEventAppendRequest) -> ProcessResult<()> {
    if original.event_type == request.event_type && original.payload == request.payload {
        Ok(())
    } else {
        Err(ProcessError::conflict(format!(
            "replay key `{}` was already used for a different event (sequence {})",
            request.replay_key.as_deref().unwrap_or_default(),
            original.sequence
        )))
    }
}

/// The delivery of `event`'s wake: to the request's scope, else the
/// process's wake target; none without a wake or a target.
fn deliver(
    record: &ProcessRecord,
    request: &ProcessEventAppendRequest,
    event: &ProcessEvent,
) -> Option<ProcessWakeDelivery> {
    let wake = event.semantics.wake.as_ref()?;
    let scope = request
        .wake_target_scope
        .clone()
        .or_else(|| record.wake_target.clone())?;
    Some(ProcessWakeDelivery {
        wake_id: wake_id(&scope, &wake.dedupe_key),
        scope,
        process_id: event.process_id.clone(),
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        process_caused_by: record.provenance.caused_by.clone(),
        input: wake.input.clone(),
        dedupe_key: wake.dedupe_key.clone(),
        created_at_ms: event.occurred_at_ms,
    })
}

/// `wake:{sha256}` of the target scope id and the dedupe key.
pub fn wake_id(scope: &SessionScope, dedupe_key: &str) -> String {
    let digest = canonical_sha256_hex(&serde_json::json!([scope.id(), dedupe_key]));
    format!("wake:{digest}")
}

/// What `complete_process` does to a row.
#[derive(Debug, Clone)]
pub enum CompletionPlan {
    /// The same outcome is already recorded; nothing to write.
    AlreadyDone,
    /// Store this terminal event and row.
    Write {
        /// The reserved terminal event at the planned sequence.
        event: ProcessEvent,
        /// The terminal row.
        record: Box<ProcessRecord>,
    },
}

/// Plans the terminal event and row for an outcome.
pub fn plan_completion(
    record: &ProcessRecord,
    output: ProcessAwaitOutput,
    sequence: u64,
    now_ms: u64,
) -> ProcessResult<CompletionPlan> {
    if let Some(existing) = record.status.await_output() {
        return if existing == &output {
            Ok(CompletionPlan::AlreadyDone)
        } else {
            Err(ProcessError::conflict(format!(
                "process `{}` already ended with a different outcome",
                record.id
            )))
        };
    }
    let state = output.terminal_state();
    let payload = serde_json::to_value(&output)
        .map_err(|err| ProcessError::invalid(format!("outcome is not valid JSON: {err}")))?;
    let event = ProcessEvent {
        process_id: record.id.clone(),
        sequence,
        event_type: state.event_type().to_owned(),
        payload,
        semantics: ProcessEventSemantics {
            terminal: Some(state),
            wake: None,
        },
        occurred_at_ms: now_ms,
        replay_key: None,
    };
    Ok(CompletionPlan::Write {
        event,
        record: Box::new(ended(record, output, now_ms)),
    })
}

fn declared_type<'a>(
    record: &'a ProcessRecord,
    name: &str,
) -> Option<std::borrow::Cow<'a, ProcessEventType>> {
    if let Some(declared) = record.event_types.iter().find(|t| t.name == name) {
        return Some(std::borrow::Cow::Borrowed(declared));
    }
    ProcessEventType::builtins()
        .into_iter()
        .find(|t| t.name == name)
        .map(std::borrow::Cow::Owned)
}

/// The wake an event carries, if its `when` holds. A dedupe key selected
/// from the payload must be a valid key (it names the wake).
fn materialize_wake(
    spec: &ProcessWakeSpec,
    record: &ProcessRecord,
    payload: &Value,
    sequence: u64,
) -> ProcessResult<Option<ProcessWake>> {
    if let Some(when) = &spec.when {
        if !is_truthy(select(when, payload)?.as_ref()) {
            return Ok(None);
        }
    }
    let event_identity = || format!("{}:{sequence}", record.id);
    let dedupe_key = match &spec.dedupe_key {
        ProcessWakeDedupeKey::EventIdentity => event_identity(),
        ProcessWakeDedupeKey::Const(key) => key.clone(),
        ProcessWakeDedupeKey::Selector(selector) => match select(selector, payload)? {
            Some(value) => {
                let key = key_text(&value);
                check_key("wake dedupe key selected from the payload", &key)?;
                key
            }
            None => event_identity(),
        },
    };
    Ok(Some(ProcessWake {
        input: select(&spec.input, payload)?.unwrap_or(Value::Null),
        dedupe_key,
    }))
}

fn terminal_output(
    spec: &ProcessTerminalSpec,
    payload: &Value,
) -> ProcessResult<ProcessAwaitOutput> {
    let value = match &spec.await_output {
        Some(selector) => select(selector, payload)?,
        None => Some(payload.clone()),
    }
    .unwrap_or(Value::Null);
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(match spec.state {
        ProcessTerminalState::Completed => ProcessAwaitOutput::success(value),
        ProcessTerminalState::Failed => ProcessAwaitOutput::Failure {
            code: text("code").unwrap_or_else(|| "failed".to_owned()),
            message: text("message").unwrap_or_else(|| key_text(&value)),
            raw: Some(value),
            control: None,
        },
        ProcessTerminalState::Cancelled => ProcessAwaitOutput::Cancelled {
            message: text("message").or_else(|| text("reason")),
            raw: Some(value),
            control: None,
        },
        ProcessTerminalState::Abandoned => ProcessAwaitOutput::abandoned(value),
    })
}

fn ended(record: &ProcessRecord, output: ProcessAwaitOutput, now_ms: u64) -> ProcessRecord {
    let mut ended = record.clone();
    ended.status = ProcessStatus::terminal(output);
    ended.wait = None;
    ended.updated_at_ms = now_ms;
    ended
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{ProcessInput, ProcessProvenance, ProcessRegistration};
    use crate::rules::registration::{new_record, registration_hash};

    fn record() -> ProcessRecord {
        let registration = ProcessRegistration::new(
            "p",
            ProcessInput::External {
                metadata: json!({}),
            },
            ProcessProvenance::host(),
        )
        .with_extra_event_types([ProcessEventType::any("note")]);
        let hash = registration_hash(&registration).unwrap();
        new_record(registration, hash, 1)
    }

    #[test]
    fn a_replay_key_naming_a_lost_event_is_refused_as_unavailable() {
        let request = ProcessEventAppendRequest::new("note", json!({})).with_replay_key("k");
        let err = plan_append(&record(), &request, Prior::Lost(4), 5, 9).unwrap_err();
        assert!(matches!(err, ProcessError::Unavailable { .. }), "{err}");
    }

    #[test]
    fn a_fresh_append_plans_its_whole_write_set() {
        let request = ProcessEventAppendRequest::new("note", json!({"a": 1})).with_replay_key("k");
        let AppendPlan::Write(write) =
            plan_append(&record(), &request, Prior::Fresh, 3, 9).unwrap()
        else {
            panic!("a fresh append writes");
        };
        assert_eq!(write.event.sequence, 3);
        assert_eq!(write.event.occurred_at_ms, 9);
        assert_eq!(write.event.replay_key.as_deref(), Some("k"));
        assert_eq!(write.pending_wake, None);
        assert_eq!(write.delivery, None);
        assert!(write.ended.is_none());
        let answer = write.result();
        assert!(!answer.deduplicated);
        assert_eq!(answer.event, write.event);
    }
}
