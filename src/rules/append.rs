//! Appends and completions: what a new event looks like and what it does
//! to the row.

use serde_json::Value;

use super::limits::check_key;
use super::schema::check_payload;
use super::selector::{is_truthy, key_text, select};
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    ProcessAwaitOutput, ProcessEvent, ProcessEventAppendRequest, ProcessEventSemantics,
    ProcessEventType, ProcessRecord, ProcessStatus, ProcessTerminalSpec, ProcessTerminalState,
    ProcessWake, ProcessWakeDedupeKey, ProcessWakeDelivery, ProcessWakeSpec, SessionScope,
};

/// An accepted append, ready to store.
#[derive(Debug, Clone)]
pub struct AppendPlan {
    /// The event to store at the planned sequence.
    pub event: ProcessEvent,
    /// The row after the append, when the append ends the process.
    pub terminal_record: Option<ProcessRecord>,
    /// Where the event's wake goes, when it carries one and has a target.
    pub wake_target: Option<SessionScope>,
}

/// A replayed append must repeat the original one exactly.
pub fn check_replay(
    original: &ProcessEvent,
    request: &ProcessEventAppendRequest,
) -> ProcessResult<()> {
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

/// Validates an append against the row and builds the event at `sequence`.
pub fn plan_append(
    record: &ProcessRecord,
    request: &ProcessEventAppendRequest,
    sequence: u64,
    now_ms: u64,
) -> ProcessResult<AppendPlan> {
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
    if terminal.is_some() && request.replay_key.is_none() {
        return Err(ProcessError::invalid(format!(
            "event type `{name}` ends the process, so its appends must carry a replay key"
        )));
    }
    let wake = match &event_type.semantics.wake {
        Some(spec) => materialize_wake(spec, record, &request.payload, sequence)?,
        None => None,
    };
    let wake_target = wake.as_ref().and(
        request
            .wake_target_scope
            .clone()
            .or_else(|| record.wake_target.clone()),
    );
    let event = ProcessEvent {
        process_id: record.id.clone(),
        sequence,
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
    let terminal_record =
        terminal.map(|spec| ended(record, terminal_output(spec, &request.payload), now_ms));
    Ok(AppendPlan {
        event,
        terminal_record,
        wake_target,
    })
}

/// The delivery for a planned wake, unless its key was delivered before.
pub fn wake_delivery(plan: &AppendPlan, already_delivered: bool) -> Option<ProcessWakeDelivery> {
    let wake = plan.event.semantics.wake.as_ref()?;
    let scope = plan.wake_target.clone()?;
    (!already_delivered).then(|| ProcessWakeDelivery {
        scope,
        process_id: plan.event.process_id.clone(),
        sequence: plan.event.sequence,
        input: wake.input.clone(),
        dedupe_key: wake.dedupe_key.clone(),
    })
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
/// from the payload must be a valid key (it is stored under it).
fn materialize_wake(
    spec: &ProcessWakeSpec,
    record: &ProcessRecord,
    payload: &Value,
    sequence: u64,
) -> ProcessResult<Option<ProcessWake>> {
    if let Some(when) = &spec.when {
        if !is_truthy(select(when, payload).as_ref()) {
            return Ok(None);
        }
    }
    let event_identity = || format!("{}#{sequence}", record.id);
    let dedupe_key = match &spec.dedupe_key {
        ProcessWakeDedupeKey::EventIdentity => event_identity(),
        ProcessWakeDedupeKey::Const(key) => key.clone(),
        ProcessWakeDedupeKey::Selector(selector) => match select(selector, payload) {
            Some(value) => {
                let key = key_text(&value);
                check_key("wake dedupe key selected from the payload", &key)?;
                key
            }
            None => event_identity(),
        },
    };
    Ok(Some(ProcessWake {
        input: select(&spec.input, payload).unwrap_or(Value::Null),
        dedupe_key,
    }))
}

fn terminal_output(spec: &ProcessTerminalSpec, payload: &Value) -> ProcessAwaitOutput {
    let value = spec
        .await_output
        .as_ref()
        .map_or_else(
            || Some(payload.clone()),
            |selector| select(selector, payload),
        )
        .unwrap_or(Value::Null);
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    match spec.state {
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
    }
}

fn ended(record: &ProcessRecord, output: ProcessAwaitOutput, now_ms: u64) -> ProcessRecord {
    let mut ended = record.clone();
    ended.status = ProcessStatus::terminal(output);
    ended.wait = None;
    ended.updated_at_ms = now_ms;
    ended
}
