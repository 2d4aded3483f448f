//! An endpoint outage longer than the client's retry budget, with writes in
//! flight, on a real restate-server with the endpoint as its own process.
//!
//! During the outage every caller gets `Unavailable` within its budget
//! instead of hanging. When the endpoint is back, every object the
//! in-flight writes hold (their directory shards, their sessions, their
//! processes) serves again within a minute with no operator, the
//! in-flight writes land exactly once, and nothing is left paused.

use std::time::{Duration, Instant};

use procreg::check::check_stored;
use restate_process_registry::restate::wire::directory_shard;
use restate_process_registry::testing::support::{typed, unique_id, NOTE};
use restate_process_registry::{
    IngressOptions, ProcessError, ProcessEventAppendRequest, ProcessHandleDescriptor,
    ProcessRegistry, RestateProcessRegistry, SessionScope,
};
use restate_process_registry_testkit::admin::Admin;
use restate_process_registry_testkit::child_endpoint::ChildEndpoint;
use restate_process_registry_testkit::local_server::LocalRestate;
use serde_json::json;

/// Longer than the client's whole retry budget below.
const DOWN: Duration = Duration::from_secs(25);
/// The client of the calls in flight: short, so the test stays short.
const IMPATIENT: IngressOptions = IngressOptions {
    request_timeout: Duration::from_secs(3),
    retry_budget: Duration::from_secs(8),
};
/// How long an object may take to serve again once the endpoint is back.
const RECOVERY: Duration = Duration::from_secs(60);

fn descriptor() -> ProcessHandleDescriptor {
    ProcessHandleDescriptor {
        kind: "job".into(),
        label: "outage".into(),
    }
}

/// A fresh id in `shard`.
fn id_in(shard: &str, tag: &str) -> String {
    loop {
        let id = unique_id(tag);
        if directory_shard(&id) == shard {
            return id;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_longer_than_the_retry_budget_heals_without_an_operator() {
    let server = LocalRestate::start().await.expect("restate-server");
    let mut endpoint = ChildEndpoint::start(env!("CARGO_BIN_EXE_procreg")).await;
    server
        .register_deployment(&endpoint.url())
        .await
        .expect("deployment");
    let patient = RestateProcessRegistry::connect(&server.ingress_url()).unwrap();
    let impatient = RestateProcessRegistry::connect_with(&server.ingress_url(), IMPATIENT).unwrap();
    let admin = Admin::new(server.admin_url());

    // What the in-flight writes will touch: one busy process, one session.
    let busy = unique_id("outage-busy");
    patient.register_process(typed(&busy)).await.unwrap();
    let session = SessionScope::session(unique_id("outage-session"));
    let granted: Vec<String> = (0..4).map(|n| unique_id(&format!("outage-g{n}"))).collect();
    for id in &granted {
        patient.register_process(typed(id)).await.unwrap();
    }

    endpoint.kill().await;
    let registers: Vec<String> = (0..8).map(|n| unique_id(&format!("outage-r{n}"))).collect();
    let mut in_flight = tokio::task::JoinSet::new();
    for id in registers.clone() {
        let registry = impatient.clone();
        in_flight.spawn(async move { registry.register_process(typed(&id)).await.map(drop) });
    }
    for n in 0..6 {
        let (registry, busy) = (impatient.clone(), busy.clone());
        let append = ProcessEventAppendRequest::new(NOTE, json!({ "n": n }))
            .with_replay_key(format!("outage-{n}"));
        in_flight.spawn(async move { registry.append_event(&busy, append).await.map(drop) });
    }
    for id in granted.clone() {
        let (registry, session) = (impatient.clone(), session.clone());
        in_flight.spawn(async move {
            registry
                .grant_handle(&session, &id, descriptor())
                .await
                .map(drop)
        });
    }
    let fired = Instant::now();
    let budget = IMPATIENT.retry_budget + IMPATIENT.request_timeout + Duration::from_secs(5);
    let answers = tokio::time::timeout(budget, async {
        let mut answers = Vec::new();
        while let Some(answer) = in_flight.join_next().await {
            answers.push(answer.expect("a call task"));
        }
        answers
    })
    .await
    .expect("callers get an answer within their budget, not after the outage");
    for answer in answers {
        assert!(
            matches!(answer, Err(ProcessError::Unavailable { .. })),
            "a call during the outage is unavailable: {answer:?}"
        );
    }

    tokio::time::sleep(DOWN.saturating_sub(fired.elapsed())).await;
    endpoint.restart().await;
    let back = Instant::now();

    // Every object the in-flight writes held serves again: the busy
    // process, the session, and the directory shards of the registers.
    let mut fresh = tokio::task::JoinSet::new();
    {
        let (registry, busy) = (patient.clone(), busy.clone());
        fresh.spawn(async move {
            let append = ProcessEventAppendRequest::new(NOTE, json!({ "after": true }));
            registry.append_event(&busy, append).await.map(drop)
        });
    }
    {
        let (registry, session) = (patient.clone(), session.clone());
        let id = unique_id("outage-late");
        fresh.spawn(async move {
            registry.register_process(typed(&id)).await?;
            registry
                .grant_handle(&session, &id, descriptor())
                .await
                .map(drop)
        });
    }
    for id in &registers {
        let (registry, id) = (patient.clone(), id_in(&directory_shard(id), "outage-next"));
        fresh.spawn(async move { registry.register_process(typed(&id)).await.map(drop) });
    }
    while let Some(answer) = fresh.join_next().await {
        answer
            .expect("a call task")
            .expect("an object the outage touched serves again");
    }
    let recovered = back.elapsed();
    assert!(recovered < RECOVERY, "recovered in {recovered:?}");

    // The writes the callers gave up on landed, each exactly once.
    let deadline = Instant::now() + RECOVERY;
    loop {
        let events = patient.events_after(&busy, 0).await.unwrap();
        let keyed = events
            .iter()
            .filter(|event| event.replay_key.is_some())
            .count();
        let registered = registered_count(&patient, &registers).await;
        let held = patient.session_grants(&session.session_id).await.unwrap();
        if keyed == 6 && registered == registers.len() && held.len() == granted.len() + 1 {
            let mut keys: Vec<_> = events.iter().filter_map(|e| e.replay_key.clone()).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), 6, "each in-flight append once: {events:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in-flight writes land: {keyed} appends, {registered} registers, {} grants",
            held.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stuck = admin
        .query(
            "SELECT target, status FROM sys_invocation \
             WHERE status IN ('paused', 'backing-off')",
        )
        .await
        .unwrap();
    assert!(stuck.is_empty(), "nothing paused or retrying: {stuck:?}");
    let report = check_stored(&patient, &admin).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

/// How many of `ids` are registered.
async fn registered_count(registry: &RestateProcessRegistry, ids: &[String]) -> usize {
    let mut found = 0;
    for id in ids {
        if registry.try_get_process(id).await.unwrap().is_some() {
            found += 1;
        }
    }
    found
}
