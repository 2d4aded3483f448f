//! The event log: appends, replay keys, schemas, terminal and wake
//! semantics, reads, wake acknowledgements and completion.

use serde_json::{json, Value};

use super::support::{
    assert_unchanged_after, assert_unknown, assert_within, complete, expect_unknown, refused,
    register, register_typed, signal_wait, snapshot, typed, unique_id, ErrorKind, Namespace, ALERT,
    BEACON, CRASHED, FINISHED, NOTE, PING, PROGRESS,
};
use super::ConformanceTarget;
use crate::model::{
    ProcessAwaitOutput, ProcessEvent, ProcessEventAppendRequest, ProcessEventAppendResult,
    ProcessEventSemantics, ProcessProvenance, ProcessStatus, ProcessTerminalState, ProcessWake,
    ProcessWakeDelivery, SessionScope, EVENT_CANCEL_REQUESTED, EVENT_RESUMED, EVENT_WAITING,
};
use crate::rules::limits::MAX_PAYLOAD_BYTES;

async fn append(
    target: &ConformanceTarget,
    process_id: &str,
    request: ProcessEventAppendRequest,
) -> ProcessEventAppendResult {
    let event_type = request.event_type.clone();
    target
        .registry
        .append_event(process_id, request)
        .await
        .unwrap_or_else(|err| panic!("appending `{event_type}` to `{process_id}` failed: {err}"))
}

async fn log(target: &ConformanceTarget, process_id: &str) -> Vec<ProcessEvent> {
    target
        .registry
        .events_after(process_id, 0)
        .await
        .unwrap_or_else(|err| panic!("events_after(`{process_id}`, 0) failed: {err}"))
}

async fn wakes_after(
    target: &ConformanceTarget,
    process_id: &str,
    after: u64,
) -> Vec<ProcessEvent> {
    target
        .registry
        .wake_events_after(process_id, after)
        .await
        .unwrap_or_else(|err| panic!("wake_events_after(`{process_id}`, {after}) failed: {err}"))
}

fn sequences(events: &[ProcessEvent]) -> Vec<u64> {
    events.iter().map(|event| event.sequence).collect()
}

/// Appends get sequences 1, 2, 3, … with the registry's time; the log reads
/// back exactly what was appended, from any point.
pub async fn append_assigns_gapless_sequences(target: &ConformanceTarget) {
    let ns = Namespace::new("events-append");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;

    let requests = [
        ProcessEventAppendRequest::new(NOTE, json!({ "n": 1 })),
        ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 10 })),
        ProcessEventAppendRequest::new(EVENT_WAITING, json!({ "on": "approval" })),
        ProcessEventAppendRequest::new(EVENT_RESUMED, json!(null)),
        ProcessEventAppendRequest::cancel_requested(&id, Some("stop".to_owned())),
        ProcessEventAppendRequest::cancel_requested(&id, None),
        ProcessEventAppendRequest::new(NOTE, json!("text")).with_replay_key("note-7"),
        ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 100 })),
    ];
    let mut appended = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let before = target.clock.now_ms();
        let result = append(target, &id, request.clone()).await;
        let after = target.clock.now_ms();
        let event = &result.event;
        assert!(!result.deduplicated, "a first append is never deduplicated");
        assert_eq!(
            result.wake_delivery, None,
            "`{}` carries no wake",
            request.event_type
        );
        assert_eq!(event.process_id, id);
        assert_eq!(
            event.sequence,
            index as u64 + 1,
            "sequences start at 1 without gaps"
        );
        assert_eq!(event.event_type, request.event_type);
        assert_eq!(event.payload, request.payload);
        assert_eq!(event.replay_key, request.replay_key);
        assert_eq!(event.semantics, ProcessEventSemantics::default());
        assert_within(event.occurred_at_ms, before, after, "occurred_at_ms");
        appended.push(result.event);
    }

    assert_eq!(
        log(target, &id).await,
        appended,
        "events_after(id, 0) is the whole log"
    );
    for after in 0..=appended.len() {
        let read = registry
            .events_after(&id, after as u64)
            .await
            .expect("events_after");
        assert_eq!(read, appended[after..], "events_after(id, {after})");
    }
    let beyond = registry
        .events_after(&id, appended.len() as u64 + 10)
        .await
        .expect("events_after beyond the end");
    assert!(beyond.is_empty());
    let record = registry.get_process(&id).await.expect("row");
    assert_eq!(
        record.status,
        ProcessStatus::Running,
        "plain events do not end a process"
    );
}

/// Undeclared types, the reserved terminal types, payloads failing their
/// schema and oversized payloads are invalid input and write nothing.
pub async fn append_refuses_invalid_events(target: &ConformanceTarget) {
    let ns = Namespace::new("events-invalid");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    append(
        target,
        &id,
        ProcessEventAppendRequest::new(NOTE, json!({ "n": 1 })),
    )
    .await;
    let before = snapshot(target, &id).await;

    let mut cases = vec![
        (
            "an undeclared type".to_owned(),
            ProcessEventAppendRequest::new("undeclared", json!({})),
        ),
        (
            "a payload missing a required field".to_owned(),
            ProcessEventAppendRequest::new(PROGRESS, json!({})),
        ),
        (
            "a payload of the wrong type".to_owned(),
            ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": "ten" })),
        ),
        (
            "a payload out of range".to_owned(),
            ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 101 })),
        ),
        (
            "a cancel request with a non-text reason".to_owned(),
            ProcessEventAppendRequest::new(EVENT_CANCEL_REQUESTED, json!({ "reason": 5 })),
        ),
        (
            "a payload over the size limit".to_owned(),
            ProcessEventAppendRequest::new(NOTE, json!({ "blob": "x".repeat(MAX_PAYLOAD_BYTES) })),
        ),
    ];
    for state in ProcessTerminalState::ALL {
        cases.push((
            format!("the reserved terminal type `{}`", state.event_type()),
            ProcessEventAppendRequest::new(state.event_type(), json!({})),
        ));
    }
    for (what, request) in cases {
        let result = registry.append_event(&id, request.clone()).await;
        refused(target, &id, &before, result, ErrorKind::InvalidInput, &what).await;
        let keyed = request.with_replay_key("refused-key");
        let result = registry.append_event(&id, keyed).await;
        refused(target, &id, &before, result, ErrorKind::InvalidInput, &what).await;
    }

    let accepted = append(
        target,
        &id,
        ProcessEventAppendRequest::new(NOTE, json!({ "n": 2 })).with_replay_key("refused-key"),
    )
    .await;
    assert!(
        !accepted.deduplicated,
        "a refused append must not consume its replay key"
    );
    assert_eq!(
        accepted.event.sequence, 2,
        "refused appends must not take sequences"
    );
}

/// A repeated replay key returns the first event and writes nothing; the
/// same key with a different event is a conflict. Keys are per process.
pub async fn replay_key_deduplicates(target: &ConformanceTarget) {
    let ns = Namespace::new("events-replay");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;

    let request = ProcessEventAppendRequest::new(NOTE, json!({ "a": 1 })).with_replay_key("k1");
    let first = append(target, &id, request.clone()).await;
    assert!(!first.deduplicated);
    assert_eq!(first.event.sequence, 1);
    assert_eq!(first.event.replay_key.as_deref(), Some("k1"));

    let before = snapshot(target, &id).await;
    let replayed = append(target, &id, request.clone()).await;
    assert!(
        replayed.deduplicated,
        "a repeated replay key must be reported as deduplicated"
    );
    assert_eq!(
        replayed.event, first.event,
        "a replay returns the first event"
    );
    assert_unchanged_after(target, &id, &before, "a replayed append").await;

    let other_payload =
        ProcessEventAppendRequest::new(NOTE, json!({ "a": 2 })).with_replay_key("k1");
    let result = registry.append_event(&id, other_payload).await;
    refused(
        target,
        &id,
        &before,
        result,
        ErrorKind::Conflict,
        "the replay key with another payload",
    )
    .await;
    let other_type =
        ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 1 })).with_replay_key("k1");
    let result = registry.append_event(&id, other_type).await;
    refused(
        target,
        &id,
        &before,
        result,
        ErrorKind::Conflict,
        "the replay key with another type",
    )
    .await;

    let second = append(
        target,
        &id,
        ProcessEventAppendRequest::new(NOTE, json!({ "a": 1 })).with_replay_key("k2"),
    )
    .await;
    assert!(!second.deduplicated);
    assert_eq!(second.event.sequence, 2);
    let unkeyed = append(
        target,
        &id,
        ProcessEventAppendRequest::new(NOTE, json!({ "a": 1 })),
    )
    .await;
    assert!(
        !unkeyed.deduplicated,
        "appends without a replay key are never deduplicated"
    );
    assert_eq!(unkeyed.event.sequence, 3);

    let other = ns.id("other");
    register_typed(target, &other).await;
    let elsewhere = append(target, &other, request).await;
    assert!(
        !elsewhere.deduplicated,
        "replay keys are scoped to their process"
    );
    assert_eq!(elsewhere.event.sequence, 1);
    assert_eq!(sequences(&log(target, &id).await), vec![1, 2, 3]);
}

/// A terminal process refuses appends.
pub async fn append_after_terminal_is_refused(target: &ConformanceTarget) {
    let ns = Namespace::new("events-after-terminal");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    append(target, &id, ProcessEventAppendRequest::new(NOTE, json!({}))).await;
    complete(target, &id).await;
    let before = snapshot(target, &id).await;

    let requests = [
        ProcessEventAppendRequest::new(NOTE, json!({})),
        ProcessEventAppendRequest::new(NOTE, json!({})).with_replay_key("fresh"),
        ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 5 })),
        ProcessEventAppendRequest::new(ALERT, json!({ "x": 1 })),
        ProcessEventAppendRequest::cancel_requested(&id, None),
    ];
    for request in requests {
        let what = format!("appending `{}` after the end", request.event_type);
        let result = registry.append_event(&id, request).await;
        refused(
            target,
            &id,
            &before,
            result,
            ErrorKind::AlreadyTerminal,
            &what,
        )
        .await;
    }
}

/// A type with terminal semantics needs a replay key, ends the process with
/// the selected output like `complete_process`, and replays idempotently.
pub async fn terminal_semantics_end_the_process(target: &ConformanceTarget) {
    let ns = Namespace::new("events-terminal-type");
    let registry = &target.registry;
    let id = ns.id("completed");
    register_typed(target, &id).await;
    append(target, &id, ProcessEventAppendRequest::new(NOTE, json!({}))).await;
    registry
        .set_process_wait(&id, signal_wait("k", 1))
        .await
        .expect("set_process_wait");
    let before = snapshot(target, &id).await;

    let payload = json!({ "result": { "ok": true }, "note": "finished" });
    let unkeyed = ProcessEventAppendRequest::new(FINISHED, payload.clone());
    let result = registry.append_event(&id, unkeyed).await;
    refused(
        target,
        &id,
        &before,
        result,
        ErrorKind::InvalidInput,
        "a terminal-semantics append without a replay key",
    )
    .await;

    let request = ProcessEventAppendRequest::new(FINISHED, payload).with_replay_key("finish");
    let ended = append(target, &id, request.clone()).await;
    assert!(!ended.deduplicated);
    assert_eq!(ended.event.sequence, 2);
    assert_eq!(ended.event.event_type, FINISHED);
    assert_eq!(
        ended.event.semantics.terminal,
        Some(ProcessTerminalState::Completed)
    );
    let output = ProcessAwaitOutput::success(json!({ "ok": true }));
    let record = registry.get_process(&id).await.expect("row");
    assert_eq!(record.status, ProcessStatus::Completed(output.clone()));
    assert_eq!(record.wait, None, "ending the process clears its wait");
    assert_eq!(
        sequences(&log(target, &id).await),
        vec![1, 2],
        "a terminal-semantics append writes only its own event"
    );

    let before = snapshot(target, &id).await;
    let replayed = append(target, &id, request).await;
    assert!(
        replayed.deduplicated,
        "replaying the ending append returns the original"
    );
    assert_eq!(replayed.event, ended.event);
    assert_unchanged_after(target, &id, &before, "replaying the ending append").await;

    let same = registry
        .complete_process(&id, output)
        .await
        .expect("completing with the recorded outcome");
    assert_eq!(same, record);
    assert_unchanged_after(target, &id, &before, "completing with the recorded outcome").await;
    let result = registry
        .complete_process(&id, ProcessAwaitOutput::success(json!({ "ok": false })))
        .await;
    refused(
        target,
        &id,
        &before,
        result,
        ErrorKind::Conflict,
        "a second, different outcome",
    )
    .await;

    let failed = ns.id("failed");
    register_typed(target, &failed).await;
    let payload = json!({ "code": "E42", "message": "boom" });
    let crashed = append(
        target,
        &failed,
        ProcessEventAppendRequest::new(CRASHED, payload.clone()).with_replay_key("crash"),
    )
    .await;
    assert_eq!(
        crashed.event.semantics.terminal,
        Some(ProcessTerminalState::Failed)
    );
    let record = registry.get_process(&failed).await.expect("row");
    assert_eq!(
        record.status,
        ProcessStatus::Failed(ProcessAwaitOutput::Failure {
            code: "E42".to_owned(),
            message: "boom".to_owned(),
            raw: Some(payload),
            control: None,
        })
    );
    let before = snapshot(target, &failed).await;
    let result = registry
        .append_event(&failed, ProcessEventAppendRequest::new(NOTE, json!({})))
        .await;
    refused(
        target,
        &failed,
        &before,
        result,
        ErrorKind::AlreadyTerminal,
        "an append after the end",
    )
    .await;
}

/// `complete_process` writes the reserved terminal event and the terminal
/// status in one step and clears the wait; the same outcome again changes
/// nothing, a different one is a conflict.
pub async fn complete_process_writes_terminal_event(target: &ConformanceTarget) {
    let ns = Namespace::new("events-complete");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    append(target, &id, ProcessEventAppendRequest::new(NOTE, json!({}))).await;
    registry
        .set_process_wait(&id, signal_wait("k", 1))
        .await
        .expect("set_process_wait");
    let unchanged = snapshot(target, &id).await;
    let oversized = ProcessAwaitOutput::success(json!("x".repeat(MAX_PAYLOAD_BYTES)));
    let result = registry.complete_process(&id, oversized).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::InvalidInput,
        "an outcome over the size limit",
    )
    .await;

    let output = ProcessAwaitOutput::Success {
        value: json!({ "artifact": "a.tar" }),
        control: Some(json!({ "host": "kept" })),
    };
    let before = target.clock.now_ms();
    let record = registry
        .complete_process(&id, output.clone())
        .await
        .expect("complete_process");
    let after = target.clock.now_ms();
    assert_eq!(record.status, ProcessStatus::Completed(output.clone()));
    assert!(record.is_terminal());
    assert_eq!(record.wait, None, "completion clears the wait");
    assert_within(
        record.updated_at_ms,
        before,
        after,
        "updated_at_ms after completion",
    );
    assert_eq!(registry.get_process(&id).await, Some(record.clone()));

    let events = log(target, &id).await;
    assert_eq!(sequences(&events), vec![1, 2]);
    let terminal = &events[1];
    assert_eq!(terminal.event_type, "process.completed");
    assert_eq!(
        terminal.semantics.terminal,
        Some(ProcessTerminalState::Completed)
    );
    assert_eq!(terminal.semantics.wake, None);
    assert_eq!(terminal.replay_key, None);
    assert_within(
        terminal.occurred_at_ms,
        before,
        after,
        "terminal event occurred_at_ms",
    );
    let carried: ProcessAwaitOutput = serde_json::from_value(terminal.payload.clone())
        .expect("the terminal payload is the outcome");
    assert_eq!(carried, output);

    let unchanged = snapshot(target, &id).await;
    let again = registry
        .complete_process(&id, output)
        .await
        .expect("repeating the same completion");
    assert_eq!(again, record, "the same completion again returns the row");
    assert_unchanged_after(target, &id, &unchanged, "a repeated completion").await;
    for other in [
        ProcessAwaitOutput::success(json!({ "artifact": "b.tar" })),
        ProcessAwaitOutput::failure("E1", "late failure"),
        ProcessAwaitOutput::cancelled(None),
        ProcessAwaitOutput::abandoned(json!({})),
    ] {
        let result = registry.complete_process(&id, other).await;
        refused(
            target,
            &id,
            &unchanged,
            result,
            ErrorKind::Conflict,
            "a second, different outcome",
        )
        .await;
    }

    let outcomes = [
        (
            ProcessAwaitOutput::failure("E7", "it broke"),
            ProcessTerminalState::Failed,
        ),
        (
            ProcessAwaitOutput::cancelled(Some("user asked".to_owned())),
            ProcessTerminalState::Cancelled,
        ),
        (
            ProcessAwaitOutput::abandoned(json!({ "owner": "gone" })),
            ProcessTerminalState::Abandoned,
        ),
    ];
    for (output, state) in outcomes {
        let id = ns.id(state.event_type());
        register_typed(target, &id).await;
        let record = registry
            .complete_process(&id, output.clone())
            .await
            .expect("complete_process");
        assert_eq!(record.status, ProcessStatus::terminal(output.clone()));
        assert_eq!(record.status.await_output(), Some(&output));
        let events = log(target, &id).await;
        assert_eq!(
            sequences(&events),
            vec![1],
            "the terminal event of an empty log is 1"
        );
        assert_eq!(events[0].event_type, state.event_type());
        assert_eq!(events[0].semantics.terminal, Some(state));
    }
}

/// Wake specs materialize on events (or not, when `when` is falsy) and are
/// delivered to the request's scope, else the process's wake target, every
/// time: wakes sharing a dedupe key share a wake id per target (the host
/// collapses them), as in the original.
pub async fn wake_semantics_materialize_and_deliver(target: &ConformanceTarget) {
    let ns = Namespace::new("events-wake");
    let id = ns.id("targeted");
    let scope = SessionScope::frame(ns.id("session"), "frame-1");
    let elsewhere = SessionScope::session(ns.id("elsewhere"));
    let cause = json!({ "trigger": "button", "node": 7 });
    let mut registration = typed(&id).with_wake_target(scope.clone());
    registration.provenance = ProcessProvenance::host().caused_by(cause.clone());
    register(target, registration).await;

    for payload in [
        json!({ "wake": false, "input": 1, "key": "a" }),
        json!({ "wake": "", "input": 1, "key": "a" }),
        json!({ "wake": [], "input": 1, "key": "a" }),
        json!({ "wake": {}, "input": 1, "key": "a" }),
        json!({ "wake": null, "input": 1, "key": "a" }),
        json!({ "input": 1, "key": "a" }),
    ] {
        let result = append(
            target,
            &id,
            ProcessEventAppendRequest::new(PING, payload.clone()),
        )
        .await;
        assert_eq!(
            result.event.semantics.wake, None,
            "a falsy `when` skips the wake: {payload}"
        );
        assert_eq!(
            result.wake_delivery, None,
            "a falsy `when` delivers nothing: {payload}"
        );
    }

    let caused_by = Some(cause.clone());
    let expect_delivery =
        |result: &ProcessEventAppendResult, scope: &SessionScope, input: Value, key: &str| {
            let wake = ProcessWake {
                input: input.clone(),
                dedupe_key: key.to_owned(),
            };
            assert_eq!(
                result.event.semantics.wake,
                Some(wake),
                "the wake on event {}",
                result.event.sequence
            );
            assert_eq!(
                result.wake_delivery,
                Some(ProcessWakeDelivery {
                    wake_id: expected_wake_id(scope, key),
                    scope: scope.clone(),
                    process_id: result.event.process_id.clone(),
                    sequence: result.event.sequence,
                    event_type: result.event.event_type.clone(),
                    process_caused_by: caused_by.clone(),
                    input,
                    dedupe_key: key.to_owned(),
                    created_at_ms: result.event.occurred_at_ms,
                }),
                "the delivery of event {}",
                result.event.sequence
            );
        };

    let first = append(
        target,
        &id,
        ProcessEventAppendRequest::new(
            PING,
            json!({ "wake": true, "input": { "n": 1 }, "key": "k1" }),
        ),
    )
    .await;
    expect_delivery(&first, &scope, json!({ "n": 1 }), "k1");

    let repeat = append(
        target,
        &id,
        ProcessEventAppendRequest::new(
            PING,
            json!({ "wake": true, "input": { "n": 2 }, "key": "k1" }),
        ),
    )
    .await;
    assert_eq!(
        repeat.event.semantics.wake,
        Some(ProcessWake {
            input: json!({ "n": 2 }),
            dedupe_key: "k1".to_owned(),
        }),
        "the wake still materializes on the event"
    );
    expect_delivery(&repeat, &scope, json!({ "n": 2 }), "k1");
    assert_eq!(
        repeat.wake_delivery.as_ref().map(|d| &d.wake_id),
        first.wake_delivery.as_ref().map(|d| &d.wake_id),
        "a repeated dedupe key is delivered again under the same wake id"
    );

    let redirected = append(
        target,
        &id,
        ProcessEventAppendRequest::new(PING, json!({ "wake": "yes", "input": 3, "key": "k2" }))
            .with_wake_target_scope(elsewhere.clone()),
    )
    .await;
    expect_delivery(&redirected, &elsewhere, json!(3), "k2");

    let numeric = append(
        target,
        &id,
        // Every number is truthy in the original, 0 included.
        ProcessEventAppendRequest::new(PING, json!({ "wake": 0, "input": null, "key": 7 })),
    )
    .await;
    expect_delivery(&numeric, &scope, json!(null), "7");

    for _ in 0..2 {
        let payload = json!({ "x": unique_id("alert") });
        let alert = append(
            target,
            &id,
            ProcessEventAppendRequest::new(ALERT, payload.clone()),
        )
        .await;
        let key = format!("{id}:{}", alert.event.sequence);
        expect_delivery(&alert, &scope, payload, &key);
    }

    let beacon = append(
        target,
        &id,
        ProcessEventAppendRequest::new(BEACON, json!({ "i": 1 })),
    )
    .await;
    expect_delivery(&beacon, &scope, json!("beacon"), "beacon");
    let beacon_again = append(
        target,
        &id,
        ProcessEventAppendRequest::new(BEACON, json!({ "i": 2 })),
    )
    .await;
    expect_delivery(&beacon_again, &scope, json!("beacon"), "beacon");
    assert_eq!(
        beacon_again.wake_delivery.map(|d| d.wake_id),
        beacon.wake_delivery.map(|d| d.wake_id),
        "a constant key gives every wake one wake id"
    );

    let plain = append(
        target,
        &id,
        ProcessEventAppendRequest::new(NOTE, json!({})).with_wake_target_scope(elsewhere.clone()),
    )
    .await;
    assert_eq!(plain.event.semantics.wake, None);
    assert_eq!(
        plain.wake_delivery, None,
        "a type without wake semantics wakes no one"
    );

    let untargeted = ns.id("untargeted");
    let mut registration = typed(&untargeted);
    registration.provenance = ProcessProvenance::host().caused_by(cause);
    register(target, registration).await;
    let silent = append(
        target,
        &untargeted,
        ProcessEventAppendRequest::new(ALERT, json!({ "x": 1 })),
    )
    .await;
    assert_eq!(
        silent.event.semantics.wake,
        Some(ProcessWake {
            input: json!({ "x": 1 }),
            dedupe_key: format!("{untargeted}:1"),
        })
    );
    assert_eq!(
        silent.wake_delivery, None,
        "without a wake target nothing is delivered"
    );
    let aimed = append(
        target,
        &untargeted,
        ProcessEventAppendRequest::new(ALERT, json!({ "x": 2 }))
            .with_wake_target_scope(elsewhere.clone()),
    )
    .await;
    expect_delivery(
        &aimed,
        &elsewhere,
        json!({ "x": 2 }),
        &format!("{untargeted}:2"),
    );
}

/// The original's wake id: `wake:` and the hex SHA-256 of the JSON array
/// `[scope id, dedupe key]`, written out here independently of the rules.
fn expected_wake_id(scope: &SessionScope, dedupe_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let text = serde_json::to_string(&(scope.id(), dedupe_key)).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("wake:{hex}")
}

/// `wake_events_after` lists the wake-carrying events above a sequence that
/// are not acknowledged; `ack_wake` is idempotent and leaves the log alone.
pub async fn wake_events_track_acks(target: &ConformanceTarget) {
    let ns = Namespace::new("events-wake-ack");
    let registry = &target.registry;
    let id = ns.id("p");
    register(
        target,
        typed(&id).with_wake_target(SessionScope::session(ns.id("session"))),
    )
    .await;
    let requests = [
        ProcessEventAppendRequest::new(NOTE, json!({})),
        ProcessEventAppendRequest::new(ALERT, json!({ "n": 2 })),
        ProcessEventAppendRequest::new(PING, json!({ "wake": false })),
        ProcessEventAppendRequest::new(ALERT, json!({ "n": 4 })),
        ProcessEventAppendRequest::new(BEACON, json!({})),
        ProcessEventAppendRequest::new(NOTE, json!({})),
        ProcessEventAppendRequest::new(BEACON, json!({})),
    ];
    for request in requests {
        append(target, &id, request).await;
    }
    let events = log(target, &id).await;
    let carrying: Vec<ProcessEvent> = events
        .iter()
        .filter(|event| event.semantics.wake.is_some())
        .cloned()
        .collect();
    assert_eq!(sequences(&carrying), vec![2, 4, 5, 7]);
    assert_eq!(wakes_after(target, &id, 0).await, carrying);
    assert_eq!(sequences(&wakes_after(target, &id, 2).await), vec![4, 5, 7]);
    assert_eq!(sequences(&wakes_after(target, &id, 6).await), vec![7]);
    assert!(wakes_after(target, &id, 7).await.is_empty());

    registry.ack_wake(&id, 4).await.expect("ack_wake");
    assert_eq!(sequences(&wakes_after(target, &id, 0).await), vec![2, 5, 7]);
    registry.ack_wake(&id, 4).await.expect("repeating ack_wake");
    assert_eq!(sequences(&wakes_after(target, &id, 0).await), vec![2, 5, 7]);
    for sequence in [2, 5, 7] {
        registry.ack_wake(&id, sequence).await.expect("ack_wake");
    }
    assert!(wakes_after(target, &id, 0).await.is_empty());
    assert_eq!(
        log(target, &id).await,
        events,
        "acknowledging wakes leaves the log alone"
    );

    let untargeted = ns.id("untargeted");
    register_typed(target, &untargeted).await;
    let alert = append(
        target,
        &untargeted,
        ProcessEventAppendRequest::new(ALERT, json!({})),
    )
    .await;
    assert_eq!(
        wakes_after(target, &untargeted, 0).await,
        vec![alert.event],
        "a wake-carrying event is listed whether or not it was delivered"
    );
}

/// `count_events_through` and `recent_events` answer exactly what the full
/// log says, for every type, bound and limit.
pub async fn counts_and_tails_agree_with_log(target: &ConformanceTarget) {
    let ns = Namespace::new("events-count");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    assert_eq!(registry.count_events_through(&id, NOTE, 10).await, Ok(0));
    assert_eq!(registry.recent_events(&id, 5).await, Ok(Vec::new()));

    let requests = [
        ProcessEventAppendRequest::new(NOTE, json!(1)),
        ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 1 })),
        ProcessEventAppendRequest::new(NOTE, json!(2)),
        ProcessEventAppendRequest::new(ALERT, json!(3)),
        ProcessEventAppendRequest::new(NOTE, json!(4)),
        ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 2 })),
        ProcessEventAppendRequest::new(EVENT_WAITING, json!(5)),
        ProcessEventAppendRequest::new(NOTE, json!(6)),
    ];
    for request in requests {
        append(target, &id, request).await;
    }
    complete(target, &id).await;
    let events = log(target, &id).await;
    assert_eq!(events.len(), 9);

    let types = [
        NOTE,
        PROGRESS,
        ALERT,
        EVENT_WAITING,
        "process.completed",
        "never-appended",
    ];
    for event_type in types {
        for through in 0..=events.len() as u64 + 2 {
            let expected = events
                .iter()
                .filter(|event| event.sequence <= through && event.event_type == event_type)
                .count() as u64;
            assert_eq!(
                registry
                    .count_events_through(&id, event_type, through)
                    .await,
                Ok(expected),
                "count_events_through(`{event_type}`, {through})"
            );
        }
    }
    for limit in 0..=events.len() + 2 {
        let skip = events.len().saturating_sub(limit);
        assert_eq!(
            registry.recent_events(&id, limit).await,
            Ok(events[skip..].to_vec()),
            "recent_events({limit})"
        );
    }
}

/// Every event method refuses an unknown id with `UnknownProcess` and
/// creates no row.
pub async fn events_unknown_process(target: &ConformanceTarget) {
    let registry = &target.registry;
    let id = unique_id("events-unknown");
    expect_unknown(
        registry
            .append_event(&id, ProcessEventAppendRequest::new(NOTE, json!({})))
            .await,
        &id,
        "append_event",
    );
    expect_unknown(registry.events_after(&id, 0).await, &id, "events_after");
    expect_unknown(
        registry.wake_events_after(&id, 0).await,
        &id,
        "wake_events_after",
    );
    expect_unknown(registry.ack_wake(&id, 1).await, &id, "ack_wake");
    expect_unknown(
        registry
            .complete_process(&id, ProcessAwaitOutput::success(json!(null)))
            .await,
        &id,
        "complete_process",
    );
    expect_unknown(
        registry.count_events_through(&id, NOTE, 10).await,
        &id,
        "count_events_through",
    );
    expect_unknown(registry.recent_events(&id, 10).await, &id, "recent_events");
    assert_unknown(target, &id, "after refused event calls").await;
}

/// `process.cancel_requested` must carry a replay key, like terminal types;
/// `cancel_requested(id, reason)` derives one, so the same request twice is
/// one event and another reason is another.
pub async fn cancel_requests_need_a_replay_key(target: &ConformanceTarget) {
    let ns = Namespace::new("events-cancel");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;

    let before = snapshot(target, &id).await;
    let keyless =
        ProcessEventAppendRequest::new(EVENT_CANCEL_REQUESTED, json!({ "reason": "stop" }));
    let result = registry.append_event(&id, keyless).await;
    refused(
        target,
        &id,
        &before,
        result,
        ErrorKind::InvalidInput,
        "a cancel request without a replay key",
    )
    .await;

    let stop = ProcessEventAppendRequest::cancel_requested(&id, Some("stop".to_owned()));
    let first = append(target, &id, stop.clone()).await;
    assert!(!first.deduplicated);
    assert_eq!(first.event.sequence, 1);
    assert_eq!(first.event.payload, json!({ "reason": "stop" }));
    let again = append(target, &id, stop).await;
    assert!(again.deduplicated, "the same cancel request is one event");
    assert_eq!(again.event, first.event);
    let other = append(
        target,
        &id,
        ProcessEventAppendRequest::cancel_requested(&id, None),
    )
    .await;
    assert!(!other.deduplicated, "another reason is another request");
    assert_eq!(other.event.sequence, 2);
    assert_eq!(sequences(&log(target, &id).await), vec![1, 2]);
}

/// A replayed wake-carrying append answers the first append's delivery
/// again (same wake id, same event), and writes nothing.
pub async fn replayed_appends_repeat_their_delivery(target: &ConformanceTarget) {
    let ns = Namespace::new("events-replay-wake");
    let id = ns.id("p");
    let scope = SessionScope::frame(ns.id("session"), "f");
    register(target, typed(&id).with_wake_target(scope.clone())).await;

    let request =
        ProcessEventAppendRequest::new(ALERT, json!({ "build": "failed" })).with_replay_key("r1");
    let first = append(target, &id, request.clone()).await;
    let delivery = first
        .wake_delivery
        .clone()
        .unwrap_or_else(|| panic!("a targeted wake must be delivered"));
    assert_eq!(delivery.dedupe_key, format!("{id}:1"));
    assert_eq!(delivery.scope, scope);
    let before = snapshot(target, &id).await;
    let replayed = append(target, &id, request).await;
    assert!(replayed.deduplicated);
    assert_eq!(replayed.event, first.event);
    assert_eq!(
        replayed.wake_delivery,
        Some(delivery),
        "a replay answers the same delivery"
    );
    assert_unchanged_after(target, &id, &before, "a replayed wake append").await;
    assert_eq!(sequences(&wakes_after(target, &id, 0).await), vec![1]);
}

/// The selector matrix of the original: a false `when` materializes no
/// wake; payload, constant and template inputs; `present` tests a pointer;
/// selector and constant dedupe keys give repeated wakes one wake id.
pub async fn wake_selectors_cover_the_matrix(target: &ConformanceTarget) {
    use crate::model::{
        ProcessEventType, ProcessValueSelector, ProcessWakeDedupeKey, ProcessWakeSpec,
    };
    let ns = Namespace::new("events-wake-matrix");
    let id = ns.id("p");
    let scope = SessionScope::session(ns.id("root"));
    let pointer = |path: &str| ProcessValueSelector::Pointer(path.to_owned());
    let wake = |name: &str, when, input, dedupe_key| {
        ProcessEventType::any(name).with_wake(ProcessWakeSpec {
            when,
            input,
            dedupe_key,
        })
    };
    let identity = || ProcessWakeDedupeKey::EventIdentity;
    let types = vec![
        wake(
            "m.never",
            Some(ProcessValueSelector::Const(json!(false))),
            ProcessValueSelector::Const(json!("no")),
            identity(),
        ),
        wake(
            "m.present",
            Some(ProcessValueSelector::Present("/wake_input".to_owned())),
            pointer("/wake_input"),
            identity(),
        ),
        wake("m.payload", None, ProcessValueSelector::Payload, identity()),
        wake(
            "m.template",
            None,
            ProcessValueSelector::Template {
                template: "line {line} #{n}".to_owned(),
                fields: [
                    ("line".to_owned(), pointer("/line")),
                    ("n".to_owned(), pointer("/n")),
                ]
                .into_iter()
                .collect(),
            },
            identity(),
        ),
        wake(
            "m.by_selector",
            None,
            pointer("/wake_input"),
            ProcessWakeDedupeKey::Selector(pointer("/group")),
        ),
        wake(
            "m.by_const",
            None,
            pointer("/wake_input"),
            ProcessWakeDedupeKey::Const("constant".to_owned()),
        ),
    ];
    register(
        target,
        super::support::external(&id)
            .with_extra_event_types(types)
            .with_wake_target(scope.clone()),
    )
    .await;
    let send = |event_type: &str, payload: Value| {
        let request = ProcessEventAppendRequest::new(event_type, payload);
        let id = id.clone();
        async move { append(target, &id, request).await }
    };

    let never = send("m.never", json!({})).await;
    assert_eq!(never.event.semantics.wake, None);
    assert_eq!(never.wake_delivery, None, "a false `when` wakes no one");
    let absent = send("m.present", json!({ "line": "x" })).await;
    assert_eq!(
        absent.wake_delivery, None,
        "`present` of a missing pointer is false"
    );
    let present = send("m.present", json!({ "wake_input": "" })).await;
    let delivered = |result: &ProcessEventAppendResult| {
        result
            .wake_delivery
            .clone()
            .unwrap_or_else(|| panic!("event {} must wake", result.event.sequence))
    };
    assert_eq!(
        delivered(&present).input,
        json!(""),
        "`present` is true for any value, even a falsy one"
    );
    let payload = delivered(&send("m.payload", json!("payload wake")).await);
    assert_eq!(payload.input, json!("payload wake"));
    assert_eq!(payload.dedupe_key, format!("{id}:4"));
    let rendered = delivered(&send("m.template", json!({ "line": "done", "n": 7 })).await);
    assert_eq!(rendered.input, json!("line done #7"));
    let one = delivered(
        &send(
            "m.by_selector",
            json!({ "wake_input": "one", "group": "a" }),
        )
        .await,
    );
    let two = delivered(
        &send(
            "m.by_selector",
            json!({ "wake_input": "two", "group": "a" }),
        )
        .await,
    );
    let three = delivered(
        &send(
            "m.by_selector",
            json!({ "wake_input": "three", "group": "b" }),
        )
        .await,
    );
    assert_eq!(one.dedupe_key, "a");
    assert_eq!((one.input, two.input.clone()), (json!("one"), json!("two")));
    assert_eq!(one.wake_id, two.wake_id, "one selected key, one wake id");
    assert_ne!(one.wake_id, three.wake_id, "another key, another wake id");
    let first = delivered(&send("m.by_const", json!({ "wake_input": "1" })).await);
    let second = delivered(&send("m.by_const", json!({ "wake_input": "2" })).await);
    assert_eq!(first.dedupe_key, "constant");
    assert_eq!(first.wake_id, second.wake_id);
    assert_eq!(
        sequences(&wakes_after(target, &id, 0).await),
        vec![3, 4, 5, 6, 7, 8, 9, 10],
        "only events whose wake materialized are wake events"
    );
}
