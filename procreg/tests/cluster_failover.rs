//! A node of a three-node cluster dies under a mixed load: every
//! acknowledged call is present exactly once, logs stay gapless, indexes
//! agree, parked waiters resolve, and the node rejoins after a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procreg::check::check;
use restate_process_registry::testing::support::{descriptor, typed, unique_id, NOTE};
use restate_process_registry::{
    ProcessAttach, ProcessAwaitOutput, ProcessError, ProcessEventAppendRequest, ProcessRegistry,
    ProcessResult, RestateProcessAttach, RestateProcessRegistry, SessionScope,
};
use restate_process_registry_testkit::cluster_stack::{writable, ClusterStack};
use serde_json::json;

/// Nodes of the test cluster.
const NODES: usize = 3;
/// Writers running the mixed load.
const WRITERS: usize = 6;
/// Appends per process.
const NOTES: u64 = 3;
/// How long the load runs before and after the kill.
const LOAD: Duration = Duration::from_secs(3);

/// What the load had acknowledged for one process.
#[derive(Debug, Default, Clone)]
struct Acked {
    notes: u64,
    granted: bool,
    completed: Option<ProcessAwaitOutput>,
}

type Ledger = Arc<Mutex<BTreeMap<String, Acked>>>;

/// Retries `call` through an outage until it answers: the calls are
/// idempotent (replay keys, same registration, same grant, same outcome).
async fn until_acked<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ProcessResult<T>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Ok(value) => return value,
            Err(ProcessError::Unavailable {
                message: reason, ..
            }) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "no answer for a minute: {reason}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("a model error under load: {other:?}"),
        }
    }
}

/// One writer: register, append, grant, complete, again and again.
async fn writer(registry: RestateProcessRegistry, n: usize, until: Instant, ledger: Ledger) {
    let scope = SessionScope::session(format!("cluster-session-{n}"));
    let mut round = 0;
    while Instant::now() < until {
        round += 1;
        let id = unique_id(&format!("cluster-{n}-{round}"));
        until_acked(|| registry.register_process(typed(&id))).await;
        ledger.lock().unwrap().insert(id.clone(), Acked::default());
        for k in 1..=NOTES {
            let note = ProcessEventAppendRequest::new(NOTE, json!({ "k": k }))
                .with_replay_key(format!("note-{k}"));
            until_acked(|| registry.append_event(&id, note.clone())).await;
            ledger.lock().unwrap().entry(id.clone()).or_default().notes = k;
        }
        until_acked(|| registry.grant_handle(&scope, &id, descriptor("cluster"))).await;
        ledger
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_default()
            .granted = true;
        let output = ProcessAwaitOutput::success(json!({ "round": round }));
        until_acked(|| registry.complete_process(&id, output.clone())).await;
        ledger
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_default()
            .completed = Some(output);
    }
}

#[tokio::test]
async fn a_killed_node_loses_nothing_and_rejoins() {
    let started = Instant::now();
    let mut stack = ClusterStack::start(
        NODES,
        restate_process_registry_services::endpoint(),
        &tokio::runtime::Handle::current(),
    )
    .await
    .expect("the cluster starts");
    for ingress in stack.cluster.ingress_urls() {
        writable(&ingress, Duration::from_secs(60))
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }
    eprintln!("cluster of {NODES} ready in {:?}", started.elapsed());
    let leaders = stack.cluster.leaders().await.expect("restatectl answers");
    let (&victim, &led) = leaders
        .iter()
        .max_by_key(|(_, count)| **count)
        .expect("some node leads a partition");
    assert!(led >= 1);
    let urls = stack.cluster.ingress_urls();
    let survivors: Vec<String> = urls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, url)| url.clone())
        .collect();
    let registry = |i: usize| {
        RestateProcessRegistry::connect(&survivors[i % survivors.len()]).expect("a valid url")
    };

    // Waiters parked before the kill, on processes completed after it.
    let mut parked = Vec::new();
    for i in 0..4 {
        let id = unique_id(&format!("cluster-parked-{i}"));
        registry(i).register_process(typed(&id)).await.unwrap();
        let attach = RestateProcessAttach::new(registry(i + 1));
        let terminal = tokio::spawn({
            let (attach, id) = (attach.clone(), id.clone());
            async move { attach.await_terminal(&id).await }
        });
        let milestone = tokio::spawn({
            let id = id.clone();
            async move {
                attach
                    .await_event(&id, NOTE, 0)
                    .await
                    .expect("engine waits")
            }
        });
        parked.push((id, terminal, milestone));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ledger: Ledger = Arc::default();
    let until = Instant::now() + LOAD * 2;
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| tokio::spawn(writer(registry(n), n, until, Arc::clone(&ledger))))
        .collect();
    tokio::time::sleep(LOAD).await;

    let node = stack.cluster.node_mut(victim).expect("the victim");
    node.kill().await.expect("kill -9");
    let killed_at = Instant::now();
    let failover = writable(&survivors[0], Duration::from_secs(60))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    eprintln!(
        "leaders per node {leaders:?}; node {} (leading {led}) killed; writes succeed again after {:?} \
         (probe started {:?} after the kill)",
        victim + 1,
        failover,
        killed_at.elapsed() - failover
    );

    for writer in writers {
        writer.await.expect("a writer finishes");
    }
    for (i, (id, _, _)) in parked.iter().enumerate() {
        let r = registry(i);
        until_acked(|| r.append_event(id, ProcessEventAppendRequest::new(NOTE, json!(i)))).await;
        until_acked(|| r.complete_process(id, ProcessAwaitOutput::success(json!(i)))).await;
    }
    for (i, (id, terminal, milestone)) in parked.into_iter().enumerate() {
        let patience = Duration::from_secs(60);
        let event = tokio::time::timeout(patience, milestone)
            .await
            .expect("the parked milestone waiter resumes")
            .unwrap()
            .expect("the milestone");
        assert_eq!((event.sequence, event.payload), (1, json!(i)), "{id}");
        let outcome = tokio::time::timeout(patience, terminal)
            .await
            .expect("the parked terminal waiter resumes")
            .unwrap()
            .expect("the outcome");
        assert_eq!(outcome, ProcessAwaitOutput::success(json!(i)), "{id}");
    }

    // Every acknowledged call exactly once, logs gapless.
    let acked = ledger.lock().unwrap().clone();
    assert!(
        acked.len() >= WRITERS,
        "the load ran: {} processes",
        acked.len()
    );
    let reader = registry(0);
    for (id, acked) in &acked {
        let events = reader.events_after(id, 0).await.unwrap();
        let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
        let gapless: Vec<u64> = (1..=events.len() as u64).collect();
        assert_eq!(sequences, gapless, "{id}: gapless log");
        let notes = events.iter().filter(|e| e.event_type == NOTE).count() as u64;
        assert!(
            notes >= acked.notes && notes <= NOTES,
            "{id}: {notes} notes, {} acknowledged",
            acked.notes
        );
        let record = reader.get_process(id).await.expect("an acknowledged row");
        if let Some(output) = &acked.completed {
            assert_eq!(record.status.await_output(), Some(output), "{id}");
            assert_eq!(notes, NOTES, "{id}: every note before the end");
        }
        if acked.granted {
            assert_eq!(
                reader.handle_grants_for_process(id).await.unwrap().len(),
                1,
                "{id}: one grant"
            );
        }
    }
    let report = check(&reader).await.expect("check runs");
    assert!(report.is_clean(), "indexes disagree: {report:?}");

    // The node comes back and serves again.
    let node = stack.cluster.node_mut(victim).expect("the victim");
    node.restart().await.expect("the node restarts");
    let rejoined = RestateProcessRegistry::connect(&urls[victim]).expect("a valid url");
    let (some_id, _) = acked.iter().next().expect("a row");
    let started = Instant::now();
    loop {
        match rejoined.try_get_process(some_id).await {
            Ok(Some(_)) => break,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the restarted node never served: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    writable(&urls[victim], Duration::from_secs(60))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    eprintln!(
        "{} processes under load; node {} rejoined in {:?}",
        acked.len(),
        victim + 1,
        started.elapsed()
    );
    stack.stop_endpoint();
}
