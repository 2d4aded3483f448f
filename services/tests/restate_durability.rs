//! Durability: everything acknowledged survives a restate-server restart
//! (graceful stop and `kill -9`) on the same base dir.

use std::time::Duration;

use restate_process_registry::testing::support::{descriptor, owner, typed, unique_id, NOTE};
use restate_process_registry::{
    IngressOptions, ProcessAwaitOutput, ProcessEventAppendRequest, ProcessLease, ProcessListFilter,
    ProcessRecord, ProcessRegistry, RestateProcessRegistry, SessionScope,
};
use restate_process_registry_testkit::local_stack::LocalStack;
use serde_json::json;

/// What the test wrote and expects back.
struct Written {
    running: ProcessRecord,
    done: ProcessRecord,
    lease: ProcessLease,
    scope: SessionScope,
}

async fn write(registry: &RestateProcessRegistry) -> Written {
    let running = unique_id("durable-running");
    let done = unique_id("durable-done");
    registry.register_process(typed(&running)).await.unwrap();
    registry.register_process(typed(&done)).await.unwrap();
    for n in 0..25 {
        let note = ProcessEventAppendRequest::new(NOTE, json!({ "n": n }))
            .with_replay_key(format!("note-{n}"));
        registry.append_event(&running, note).await.unwrap();
    }
    let lease = registry
        .claim_process_lease(&running, &owner("durable"), 600_000)
        .await
        .unwrap()
        .acquired()
        .expect("a free process is acquired");
    let scope = SessionScope::session(unique_id("durable-session"));
    registry
        .grant_handle(&scope, &running, descriptor("kept"))
        .await
        .unwrap();
    registry
        .complete_process(&done, ProcessAwaitOutput::success(json!("kept")))
        .await
        .unwrap();
    Written {
        running: registry.get_process(&running).await.unwrap(),
        done: registry.get_process(&done).await.unwrap(),
        lease,
        scope,
    }
}

async fn check(registry: &RestateProcessRegistry, written: &Written, what: &str) {
    let running = &written.running.id;
    assert_eq!(
        registry.try_get_process(running).await.unwrap().as_ref(),
        Some(&written.running),
        "{what}: running row"
    );
    assert_eq!(
        registry
            .try_get_process(&written.done.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&written.done),
        "{what}: terminal row"
    );
    let events = registry.events_after(running, 0).await.unwrap();
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=25).collect::<Vec<_>>(), "{what}: event log");
    assert_eq!(
        registry.get_process_lease(running).await.unwrap().as_ref(),
        Some(&written.lease),
        "{what}: lease"
    );
    let grants = registry.list_handle_grants(&written.scope).await.unwrap();
    assert_eq!(grants.len(), 1, "{what}: grants");
    assert_eq!(&grants[0].1.id, running);
    let listed = registry
        .list_processes(&ProcessListFilter::any())
        .await
        .unwrap();
    for id in [running, &written.done.id] {
        assert!(listed.iter().any(|r| &r.id == id), "{what}: {id} listed");
    }
    // Replays after the restart still deduplicate against the old log.
    let replay = ProcessEventAppendRequest::new(NOTE, json!({ "n": 3 })).with_replay_key("note-3");
    let replayed = registry.append_event(running, replay).await.unwrap();
    assert!(replayed.deduplicated, "{what}: replay key index");
    assert_eq!(replayed.event.sequence, 4);
    // And the attach promise of the finished process still answers.
    let attach = restate_process_registry::RestateProcessAttach::new(registry.clone());
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        restate_process_registry::ProcessAttach::await_terminal(&attach, &written.done.id),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        output,
        ProcessAwaitOutput::success(json!("kept")),
        "{what}: outcome"
    );
}

#[tokio::test]
async fn acknowledged_state_survives_restarts() {
    let mut stack = LocalStack::start().await.unwrap();
    let registry = stack.registry().unwrap();
    let written = write(&registry).await;
    check(&registry, &written, "before restart").await;

    stack.server_mut().stop().await.unwrap();
    stack.server_mut().restart().await.unwrap();
    let registry = stack.registry().unwrap();
    check(&registry, &written, "after a graceful restart").await;

    stack.server_mut().kill().await.unwrap();
    stack.server_mut().restart().await.unwrap();
    let registry = stack.registry().unwrap();
    check(&registry, &written, "after kill -9").await;
}

/// Appends `count` notes with replay keys, retrying each until it is
/// acknowledged (as a host does across an outage). Returns how many calls
/// failed along the way.
async fn append_through_outages(registry: RestateProcessRegistry, id: String, count: u64) -> u64 {
    let mut failures = 0;
    for n in 0..count {
        let note = ProcessEventAppendRequest::new(NOTE, json!({ "n": n }))
            .with_replay_key(format!("note-{n}"));
        while registry.append_event(&id, note.clone()).await.is_err() {
            failures += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    failures
}

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_append_and_doubles_none() {
    const WRITERS: usize = 6;
    const NOTES: u64 = 60;
    let mut stack = LocalStack::start().await.unwrap();
    // A retry budget shorter than the outage below, so the writers see
    // failures and retry at the application level (same replay keys).
    let impatient = IngressOptions {
        request_timeout: Duration::from_secs(2),
        retry_budget: Duration::from_millis(500),
    };
    let registry = RestateProcessRegistry::connect_with(&stack.ingress_url(), impatient).unwrap();
    let ids: Vec<String> = (0..WRITERS).map(|_| unique_id("fault")).collect();
    for id in &ids {
        registry.register_process(typed(id)).await.unwrap();
    }
    let writers: Vec<_> = ids
        .iter()
        .map(|id| tokio::spawn(append_through_outages(registry.clone(), id.clone(), NOTES)))
        .collect();

    // Let the load run, then crash the server in the middle of it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stack.server_mut().kill().await.unwrap();
    // Down for longer than the client's retry budget.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stack.server_mut().restart().await.unwrap();

    let mut failures = 0;
    for writer in writers {
        failures += tokio::time::timeout(Duration::from_secs(120), writer)
            .await
            .expect("writers finish after the restart")
            .unwrap();
    }
    assert!(failures > 0, "the crash must have hit the load");
    for id in &ids {
        let events = registry.events_after(id, 0).await.unwrap();
        let notes: Vec<u64> = events
            .iter()
            .map(|e| e.payload["n"].as_u64().unwrap())
            .collect();
        assert_eq!(
            notes,
            (0..NOTES).collect::<Vec<_>>(),
            "{id}: each note once, in order"
        );
    }
}
