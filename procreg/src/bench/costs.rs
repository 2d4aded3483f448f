//! Whether a call's cost stays flat as its subject grows: appends as a
//! process's history grows, grants as a session's, wake-carrying appends
//! as a process's unacknowledged wakes, appends as abandoned milestone
//! waits pile up on a process, and the engine's own no-op floor.

use std::time::{Duration, Instant};

use restate_process_registry::rules::limits::MAX_GRANTS_PER_PROCESS;
use restate_process_registry::{
    ProcessAttach, ProcessEventAppendRequest, ProcessHandleDescriptor, ProcessRegistry,
    RestateProcessAttach, RestateProcessRegistry, SessionScope,
};
use serde_json::json;

use super::baseline::Baseline;
use super::report::{size, Table};
use super::throughput::append_tick;
use super::{phase, registration, Bench, Plan, SMALL_HISTORY, TICK, WAKE};
use crate::common::{bar, ensure, ms, quantile, CliResult, Context};

/// Median latencies of one operation on a small and a big subject.
pub(super) struct AppendCost {
    small: Duration,
    big: Duration,
}

impl AppendCost {
    pub(super) fn ratio(&self) -> f64 {
        self.big.as_secs_f64() / self.small.as_secs_f64()
    }
}

/// Alternates `samples` sequential calls of `op` on the small and the big
/// subject (so drift hits both alike) and returns the two medians.
pub(super) async fn alternate<F, Fut>(
    label: &str,
    samples: usize,
    table: &mut Table,
    mut op: F,
) -> CliResult<AppendCost>
where
    F: FnMut(bool, usize) -> Fut,
    Fut: std::future::Future<Output = CliResult<()>>,
{
    let progress = bar(samples * 2, label);
    let (mut on_small, mut on_big) = (Vec::new(), Vec::new());
    for i in 0..samples {
        for (big, samples) in [(false, &mut on_small), (true, &mut on_big)] {
            let call = Instant::now();
            op(big, i).await?;
            samples.push(call.elapsed());
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let sum = |samples: &[Duration]| samples.iter().sum::<Duration>();
    table.latencies(&format!("{label} (small)"), &on_small, sum(&on_small));
    table.latencies(&format!("{label} (big)"), &on_big, sum(&on_big));
    Ok(AppendCost {
        small: quantile(&on_small, 0.5),
        big: quantile(&on_big, 0.5),
    })
}

/// The cost of `op` on a subject that took `plan.history` calls of it
/// against one that took `SMALL_HISTORY`: fills the big subject under load,
/// seeds the small one, then alternates fresh calls on both.
/// `op(big, n)` makes the `n`-th call on the big or the small subject.
pub(super) async fn cost_at_two_sizes<F, Fut>(
    what: &str,
    plan: &Plan,
    table: &mut Table,
    op: F,
) -> CliResult<AppendCost>
where
    F: Fn(bool, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = CliResult<()>> + Send + 'static,
{
    let filler = op.clone();
    let fill = phase(
        &format!("{what}: filling {}", plan.history),
        plan.history,
        plan.concurrency,
        move |n| filler(true, n),
    )
    .await?;
    table.load(&format!("{what} (fill {})", plan.history), &fill);
    for n in 0..SMALL_HISTORY {
        op(false, n).await?;
    }
    alternate(
        &format!("{what} @{SMALL_HISTORY} vs @{}", plan.history),
        plan.samples,
        table,
        |big, i| op(big, i + if big { plan.history } else { SMALL_HISTORY }),
    )
    .await
}

/// The no-op with an idempotency key on a key that took `plan.history`
/// such calls against one that took `SMALL_HISTORY`: how much of a growth
/// in per-key cost the engine itself shows (retained invocations, journals).
pub(super) async fn noop_cost(
    baseline: &Baseline,
    plan: &Plan,
    table: &mut Table,
) -> CliResult<AppendCost> {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let baseline = baseline.clone();
    cost_at_two_sizes("noop + key", plan, table, move |big, n| {
        let baseline = baseline.clone();
        let key = if big {
            "noop-history-big"
        } else {
            "noop-history-small"
        };
        async move {
            let idempotency_key = format!("bench-floor-{run}-{key}-{n}");
            baseline.noop(key.to_owned(), Some(idempotency_key)).await
        }
    })
    .await
}

/// A grant into a session holding `SMALL_HISTORY` grants against one
/// holding `plan.history`, spread over the bench processes one frame per
/// round of them, so no process nears its grant cap.
pub(super) async fn grant_cost(
    registry: &RestateProcessRegistry,
    plan: &Plan,
    table: &mut Table,
) -> CliResult<AppendCost> {
    let processes = plan.processes;
    ensure(
        plan.history.div_ceil(processes) < MAX_GRANTS_PER_PROCESS,
        || {
            format!(
                "{} grants over {processes} processes would pass the per-process cap",
                plan.history
            )
        },
    )?;
    let registry = registry.clone();
    cost_at_two_sizes("grant_handle", plan, table, move |big, n| {
        let registry = registry.clone();
        let session = if big {
            "bench-big-session"
        } else {
            "bench-small-session"
        };
        async move {
            let scope = SessionScope::frame(session, format!("f{}", n / processes));
            let descriptor = ProcessHandleDescriptor {
                kind: "bench".into(),
                label: format!("grant {n}"),
            };
            registry
                .grant_handle(&scope, &format!("bench-{:06}", n % processes), descriptor)
                .await
                .map(drop)
                .context(format!("grant_handle {session} {n}"))
        }
    })
    .await
}

/// An append of a wake-carrying event on a process with `SMALL_HISTORY`
/// unacknowledged wakes against one with `plan.history`.
pub(super) async fn wake_append_cost(
    registry: &RestateProcessRegistry,
    plan: &Plan,
    table: &mut Table,
) -> CliResult<AppendCost> {
    let (big, small) = ("wakes-big", "wakes-small");
    let target = SessionScope::session("bench-wake-target");
    for id in [big, small] {
        registry
            .register_process(registration(id).with_wake_target(target.clone()))
            .await
            .context(format!("register_process {id}"))?;
    }
    let registry = registry.clone();
    cost_at_two_sizes("wake append", plan, table, move |is_big, n| {
        let registry = registry.clone();
        let id = if is_big { big } else { small };
        async move {
            let append = ProcessEventAppendRequest::new(WAKE, json!({ "n": n }));
            let result = registry
                .append_event(id, append)
                .await
                .context(format!("append_event {id}"))?;
            ensure(result.wake_delivery.is_some(), || {
                format!("append_event {id} delivered no wake")
            })
        }
    })
    .await
}

pub(super) async fn append_cost(
    registry: &RestateProcessRegistry,
    plan: &Plan,
    table: &mut Table,
) -> CliResult<AppendCost> {
    let (big, small) = ("history-big", "history-small");
    for id in [big, small] {
        registry
            .register_process(registration(id))
            .await
            .context(format!("register_process {id}"))?;
    }
    let filler = registry.clone();
    let fill = phase(
        &format!("filling {} events", plan.history),
        plan.history,
        plan.concurrency,
        move |i| {
            let registry = filler.clone();
            async move { append_tick(&registry, big, i).await }
        },
    )
    .await?;
    table.load(
        &format!("append_event, one key (fill {})", plan.history),
        &fill,
    );
    for i in 0..SMALL_HISTORY {
        append_tick(registry, small, i).await?;
    }
    // Alternate the two so drift hits both alike.
    let progress = bar(plan.samples * 2, "append latency 10 vs 10k");
    let (mut on_small, mut on_big) = (Vec::new(), Vec::new());
    for i in 0..plan.samples {
        for (id, samples) in [(small, &mut on_small), (big, &mut on_big)] {
            let call = Instant::now();
            append_tick(registry, id, plan.history + i).await?;
            samples.push(call.elapsed());
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let sum = |samples: &[Duration]| samples.iter().sum::<Duration>();
    table.latencies(
        &format!("append @{SMALL_HISTORY} events (sequential)"),
        &on_small,
        sum(&on_small),
    );
    table.latencies(
        &format!("append @{} events (sequential)", plan.history),
        &on_big,
        sum(&on_big),
    );
    Ok(AppendCost {
        small: quantile(&on_small, 0.5),
        big: quantile(&on_big, 0.5),
    })
}

/// Milestone waits a host abandons in the abandoned-waits comparison.
pub(super) const ABANDONED_WAITS: usize = 300;

/// An append on a process where [`ABANDONED_WAITS`] hosts each waited a
/// moment for a milestone and gave up (a third on a type nothing appends,
/// a third on this type and a third on any event, both far beyond the
/// log), against one nobody waited on; alternated, in the same run.
pub(super) async fn abandoned_waits_cost(
    registry: &RestateProcessRegistry,
    plan: &Plan,
    table: &mut Table,
) -> CliResult<AppendCost> {
    let (crowded, quiet) = ("waits-abandoned", "waits-none");
    for id in [crowded, quiet] {
        registry
            .register_process(registration(id))
            .await
            .context(format!("register_process {id}"))?;
    }
    let attach = RestateProcessAttach::new(registry.clone());
    let abandon = phase(
        &format!("abandoning {ABANDONED_WAITS} waits"),
        ABANDONED_WAITS,
        plan.concurrency,
        move |n| {
            let attach = attach.clone();
            async move {
                let far = 1_000_000 + n as u64;
                let wait = async {
                    match n % 3 {
                        0 => attach.await_event(crowded, "bench.never", 0).await,
                        1 => attach.await_event(crowded, TICK, far).await,
                        _ => Some(attach.await_next_event(crowded, far).await),
                    }
                };
                let answer = tokio::time::timeout(Duration::from_millis(500), wait).await;
                ensure(answer.is_err(), || {
                    format!("an abandoned wait was answered: {answer:?}")
                })
            }
        },
    )
    .await?;
    table.load(&format!("abandon {ABANDONED_WAITS} waits"), &abandon);
    // Let the last runs park.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 0..SMALL_HISTORY {
        append_tick(registry, quiet, n).await?;
        append_tick(registry, crowded, n).await?;
    }
    alternate(
        &format!("append @0 vs @{ABANDONED_WAITS} abandoned waits"),
        plan.samples,
        table,
        |abandoned, n| {
            let id = if abandoned { crowded } else { quiet };
            async move { append_tick(registry, id, SMALL_HISTORY + n).await }
        },
    )
    .await
}

/// Each cost at two sizes, and its ratio in the summary.
pub(super) async fn run(bench: &mut Bench) -> CliResult<()> {
    let Bench {
        plan,
        registry,
        baseline,
        table,
        summary,
        ..
    } = bench;
    let big = size(plan.history);
    // Append cost as history grows.
    let cost = append_cost(registry, plan, table).await?;
    summary.push("history", plan.history);
    summary.push(
        &format!("append_{SMALL_HISTORY}_ms"),
        format!("{:.2}", ms(cost.small)),
    );
    summary.push(&format!("append_{big}_ms"), format!("{:.2}", ms(cost.big)));
    summary.push(
        &format!("append_cost_{big}_vs_{SMALL_HISTORY}"),
        format!("{:.3}", cost.ratio()),
    );
    // The engine's own share: the same growth for a no-op on a key that
    // took as many keyed invocations.
    let floor = noop_cost(baseline, plan, table).await?;
    summary.push(
        &format!("noop_cost_{big}_vs_{SMALL_HISTORY}"),
        format!("{:.3}", floor.ratio()),
    );
    let grants = grant_cost(registry, plan, table).await?;
    summary.push(
        &format!("grant_cost_{big}_vs_{SMALL_HISTORY}"),
        format!("{:.3}", grants.ratio()),
    );
    let wakes = wake_append_cost(registry, plan, table).await?;
    summary.push(
        &format!("wake_append_cost_{big}_vs_{SMALL_HISTORY}"),
        format!("{:.3}", wakes.ratio()),
    );
    let waits = abandoned_waits_cost(registry, plan, table).await?;
    summary.push(
        &format!("append_cost_{ABANDONED_WAITS}_abandoned_waits_vs_0"),
        format!("{:.3}", waits.ratio()),
    );
    Ok(())
}
