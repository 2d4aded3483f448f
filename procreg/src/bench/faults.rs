//! `--faults`: the endpoint down for longer than every retry budget (the
//! client's, and the engine's pause budget before this release) with
//! writes in flight, then how long until every object those writes
//! touched serves again (`outage_recovery_s`), and how many of the writes
//! their callers gave up on landed, each once.
//!
//! It runs on a server and an endpoint of its own (the endpoint as a
//! child `procreg serve`, so it can be killed), after the other phases.

use std::time::{Duration, Instant};

use restate_process_registry::restate::wire::directory_shard;
use restate_process_registry::{
    IngressOptions, ProcessEventAppendRequest, ProcessHandleDescriptor, ProcessRegistry,
    RestateProcessRegistry, SessionScope,
};
use restate_process_registry_testkit::child_endpoint::ChildEndpoint;
use restate_process_registry_testkit::local_server::LocalRestate;
use serde_json::json;
use tokio::task::JoinSet;

use super::{registration, Bench, TICK};
use crate::common::{bar, CliResult, Context};

/// Processes the in-flight writes touch.
const BUSY: usize = 20;
/// Sessions the in-flight grants go to.
const SESSIONS: usize = 4;
/// How long the probes after the outage may keep trying.
const PROBE_BUDGET: Duration = Duration::from_secs(600);

fn descriptor() -> ProcessHandleDescriptor {
    ProcessHandleDescriptor {
        kind: "job".into(),
        label: "bench outage".into(),
    }
}

/// An id no other phase uses that lands in directory `shard`.
fn id_in(shard: &str, n: usize) -> String {
    (0..)
        .map(|k| format!("outage-probe-{n}-{k}"))
        .find(|id| directory_shard(id) == shard)
        .unwrap_or_default()
}

/// Runs the outage and reports it.
pub(super) async fn run(bench: &mut Bench, outage: Duration) -> CliResult<()> {
    let server = LocalRestate::start()
        .await
        .context("a server for the outage")?;
    let program = std::env::current_exe().context("locating the procreg binary")?;
    let mut endpoint = ChildEndpoint::start(program).await;
    server
        .register_deployment(&endpoint.url())
        .await
        .context("registering the outage endpoint")?;
    let registry =
        RestateProcessRegistry::connect(&server.ingress_url()).context("connecting to ingress")?;
    let busy: Vec<String> = (0..BUSY).map(|n| format!("outage-busy-{n}")).collect();
    let sessions: Vec<SessionScope> = (0..SESSIONS)
        .map(|n| SessionScope::session(format!("outage-session-{n}")))
        .collect();
    for id in &busy {
        registry
            .register_process(registration(id))
            .await
            .context("registering the outage's processes")?;
    }

    endpoint.kill().await;
    // Writes in flight when it went down; their callers give up after the
    // client's default budget, the engine keeps them.
    let mut in_flight = JoinSet::new();
    for (n, id) in busy.iter().enumerate() {
        let (appender, id) = (registry.clone(), id.clone());
        let append = ProcessEventAppendRequest::new(TICK, json!({ "n": n }))
            .with_replay_key(format!("outage-{n}"));
        in_flight.spawn(async move { appender.append_event(&id, append).await.map(drop) });
        let session = sessions[n % SESSIONS].clone();
        let (granter, id) = (registry.clone(), busy[n].clone());
        in_flight.spawn(async move {
            granter
                .grant_handle(&session, &id, descriptor())
                .await
                .map(drop)
        });
    }
    let progress = bar(outage.as_secs() as usize, "endpoint down");
    let down = Instant::now();
    while down.elapsed() < outage {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress.set_position(down.elapsed().as_secs());
    }
    progress.finish_and_clear();
    let mut gave_up = 0;
    while let Some(answer) = in_flight.join_next().await {
        if !matches!(answer, Ok(Ok(()))) {
            gave_up += 1;
        }
    }

    endpoint.restart().await;
    let back = Instant::now();
    let patient = RestateProcessRegistry::connect_with(
        &server.ingress_url(),
        IngressOptions {
            retry_budget: PROBE_BUDGET,
            ..IngressOptions::default()
        },
    )
    .context("connecting to ingress")?;
    // One fresh write to every object the in-flight writes held: each
    // process, each session, each directory shard.
    let mut probes = JoinSet::new();
    for (n, id) in busy.iter().enumerate() {
        let (registry, id) = (patient.clone(), id.clone());
        probes.spawn(async move {
            let append = ProcessEventAppendRequest::new(TICK, json!({ "probe": true }));
            registry.append_event(&id, append).await.map(drop)
        });
        let (registry, fresh) = (patient.clone(), id_in(&directory_shard(&busy[n]), n));
        probes.spawn(async move {
            registry
                .register_process(registration(&fresh))
                .await
                .map(drop)
        });
    }
    for (n, session) in sessions.iter().enumerate() {
        let (registry, session, id) = (patient.clone(), session.clone(), busy[n].clone());
        probes.spawn(async move { registry.revoke_handle(&session, &id).await.map(drop) });
    }
    while let Some(answer) = probes.join_next().await {
        answer
            .context("an outage probe")?
            .context("an object the outage touched")?;
    }
    let recovery = back.elapsed();

    let mut landed = 0;
    for id in &busy {
        let events = patient.events_after(id, 0).await.context("reading back")?;
        let keyed = events.iter().filter(|e| e.replay_key.is_some()).count();
        landed += usize::from(keyed == 1);
    }
    println!(
        "outage: endpoint down {:.0} s with {} writes in flight ({gave_up} given up by their \
         callers); every touched object served again {:.1} s after it returned; {landed}/{BUSY} \
         in-flight appends landed once",
        outage.as_secs_f64(),
        2 * BUSY,
        recovery.as_secs_f64()
    );
    bench.summary.push("outage_s", outage.as_secs());
    bench.summary.push(
        "outage_recovery_s",
        format!("{:.1}", recovery.as_secs_f64()),
    );
    bench
        .summary
        .push("outage_in_flight_landed", format!("{landed}/{BUSY}"));
    Ok(())
}
