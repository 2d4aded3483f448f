//! The throughput phases on the bench processes: appends and point reads
//! (registration is in `mod.rs`, the no-op baseline in `baseline.rs`).

use std::sync::Arc;

use restate_process_registry::{
    ProcessEventAppendRequest, ProcessRegistry, RestateProcessRegistry,
};
use serde_json::json;

use super::baseline::{metered_noop, noop_phase};
use super::scale::register_batch;
use super::{phase, register_all, Bench, TICK};
use crate::common::{ensure, CliResult, Context, Load};

pub(super) async fn append_phase(
    registry: &RestateProcessRegistry,
    ids: &Arc<Vec<String>>,
    total: usize,
    concurrency: usize,
) -> CliResult<Load> {
    let (registry, ids) = (registry.clone(), Arc::clone(ids));
    phase("append_event", total, concurrency, move |i| {
        let (registry, id) = (registry.clone(), ids[i % ids.len()].clone());
        async move { append_tick(&registry, &id, i).await }
    })
    .await
}

pub(super) async fn append_tick(
    registry: &RestateProcessRegistry,
    id: &str,
    n: usize,
) -> CliResult<()> {
    let result = registry
        .append_event(id, ProcessEventAppendRequest::new(TICK, json!({ "n": n })))
        .await
        .context(format!("append_event {id}"))?;
    ensure(!result.deduplicated && result.event.sequence > 0, || {
        format!("append_event {id} wrote nothing")
    })
}

pub(super) async fn get_phase(
    registry: &RestateProcessRegistry,
    ids: &Arc<Vec<String>>,
    total: usize,
    concurrency: usize,
    label: &str,
) -> CliResult<Load> {
    let (registry, ids) = (registry.clone(), Arc::clone(ids));
    phase(label, total, concurrency, move |i| {
        let (registry, id) = (registry.clone(), ids[i % ids.len()].clone());
        async move {
            let record = registry
                .try_get_process(&id)
                .await
                .context(format!("get_process {id}"))?;
            ensure(record.is_some(), || format!("get_process {id}: unknown"))
        }
    })
    .await
}

/// Registers the bench processes, then measures registration with only
/// them live, the no-op (plain, keyed, and again after the registry's
/// phases), appends and point reads; answers the few-rows registration
/// load that the scale phases compare against.
pub(super) async fn run(bench: &mut Bench, untuned: &Load) -> CliResult<Load> {
    let Bench {
        plan,
        registry,
        baseline,
        meter,
        ids,
        table,
        summary,
        costs,
        ..
    } = bench;
    let ops = plan.throughput_ops();

    // Setup: the processes every throughput phase spreads over.
    let load = register_all(registry, Arc::clone(ids), plan.concurrency, "register").await?;
    table.load("register_process (setup)", &load);

    // Registration with only the setup rows live (compared at scale later).
    let (few_rows, cost) = register_batch(registry, meter, plan, "few-rows", table).await?;
    costs.push(("register", cost));
    summary.push("register_per_s", format!("{:.0}", few_rows.per_second()));

    // Warm connections and the endpoint before anything is measured.
    let warm = (plan.concurrency * 4).min(ops);
    noop_phase(baseline, ids, warm, plan.concurrency, "warm-up", false).await?;
    get_phase(registry, ids, warm, plan.concurrency, "warm-up").await?;

    let (noop_before, cost) =
        metered_noop(baseline, meter, ids, plan, "EngineBaseline/noop").await?;
    costs.push(("noop", cost));
    table.load("EngineBaseline/noop (baseline)", &noop_before);
    // The same call with an idempotency key: what the engine charges for
    // the deduplication every registry write asks for.
    let noop_keyed = noop_phase(
        baseline,
        ids,
        ops,
        plan.concurrency,
        "EngineBaseline/noop + idempotency key",
        true,
    )
    .await?;
    table.load("EngineBaseline/noop + idempotency key", &noop_keyed);
    let (append, cost) = meter
        .measure(append_phase(registry, ids, ops, plan.concurrency))
        .await?;
    costs.push(("append", cost));
    table.load("append_event", &append);
    let (get, cost) = meter
        .measure(get_phase(
            registry,
            ids,
            ops,
            plan.concurrency,
            "get_process",
        ))
        .await?;
    costs.push(("get", cost));
    table.load("get_process", &get);
    let noop_after = noop_phase(
        baseline,
        ids,
        ops,
        plan.concurrency,
        "EngineBaseline/noop again",
        false,
    )
    .await?;
    table.load("EngineBaseline/noop (again)", &noop_after);

    // The baseline brackets the registry phases; its mean absorbs drift.
    let noop_per_s = (noop_before.per_second() + noop_after.per_second()) / 2.0;
    let ratio = |rate: f64, to: f64| format!("{:.3}", rate / to);
    summary.push("noop_per_s", format!("{noop_per_s:.0}"));
    summary.push("noop_default_per_s", format!("{:.0}", untuned.per_second()));
    summary.push(
        "noop_tuned_vs_default",
        ratio(noop_per_s, untuned.per_second()),
    );
    summary.push("append_per_s", format!("{:.0}", append.per_second()));
    summary.push("append_vs_noop", ratio(append.per_second(), noop_per_s));
    summary.push(
        "noop_keyed_per_s",
        format!("{:.0}", noop_keyed.per_second()),
    );
    summary.push(
        "append_vs_noop_keyed",
        ratio(append.per_second(), noop_keyed.per_second()),
    );
    summary.push("register_vs_noop", ratio(few_rows.per_second(), noop_per_s));
    summary.push("get_per_s", format!("{:.0}", get.per_second()));
    summary.push("get_vs_noop", ratio(get.per_second(), noop_per_s));
    Ok(few_rows)
}
