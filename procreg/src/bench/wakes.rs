//! How fast a waiter wakes: terminal and milestone waits through engine
//! attach against a host that can only poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_process_registry::{
    ProcessAttach, ProcessAwaitOutput, ProcessAwaiter, ProcessEventAppendRequest, ProcessRegistry,
    RestateProcessAttach, RestateProcessRegistry,
};
use serde_json::json;

use super::{register_all, Bench, TICK};
use crate::common::{bar, ensure, ms, quantile, CliError, CliResult, Context};

/// Upper bound on one terminal wait.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// How long waiters get to reach the engine before outcomes are written.
const WAIT_SETTLE: Duration = Duration::from_millis(1500);

/// How a host waits for an outcome.
#[derive(Clone)]
pub(super) enum Waiter {
    /// Restate ingress attach to the process's terminal workflow.
    Attach(RestateProcessAttach),
    /// Point reads on a backoff, from a host with no change hub.
    Poll(ProcessAwaiter),
}

/// What a wake phase waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Awaited {
    /// The outcome, written by `complete_process`.
    Terminal,
    /// The first `TICK` event, written by `append_event`.
    Milestone,
}

impl Awaited {
    /// The value the `i`-th waiter must resume with, as JSON.
    pub(super) fn expected(self, i: usize) -> serde_json::Value {
        json!({ "i": i })
    }

    /// Writes what the `i`-th waiter waits for.
    pub(super) async fn write(
        self,
        registry: &RestateProcessRegistry,
        id: &str,
        i: usize,
    ) -> CliResult<()> {
        match self {
            Self::Terminal => registry
                .complete_process(id, ProcessAwaitOutput::success(self.expected(i)))
                .await
                .map(drop)
                .context(format!("complete_process {id}")),
            Self::Milestone => registry
                .append_event(id, ProcessEventAppendRequest::new(TICK, self.expected(i)))
                .await
                .map(drop)
                .context(format!("append_event {id}")),
        }
    }
}

impl Waiter {
    /// Waits for `awaited` on `id`; answers the value it resumed with.
    pub(super) async fn wait(&self, awaited: Awaited, id: &str) -> CliResult<serde_json::Value> {
        match awaited {
            Awaited::Terminal => {
                let output = match self {
                    Self::Attach(attach) => attach.await_terminal(id).await,
                    Self::Poll(awaiter) => awaiter.await_terminal(id).await,
                };
                match output.context(format!("await_terminal {id}"))? {
                    ProcessAwaitOutput::Success { value, .. } => Ok(value),
                    other => Err(CliError::new(format!("{id} ended with {other:?}"))),
                }
            }
            Awaited::Milestone => {
                let event = match self {
                    Self::Attach(attach) => {
                        attach.await_event(id, TICK, 0).await.ok_or_else(|| {
                            CliError::new("the Restate attach offers no milestone waits")
                        })?
                    }
                    Self::Poll(awaiter) => awaiter.await_event(id, TICK, 0).await,
                };
                Ok(event.context(format!("await_event {id}"))?.payload)
            }
        }
    }
}

/// Wake latencies of one waiting strategy.
pub(super) struct Wakes {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// Waiters that resumed before `complete_process` returned to us.
    early: usize,
}

impl Wakes {
    pub(super) fn p50(&self) -> Duration {
        quantile(&self.latencies, 0.5)
    }

    pub(super) fn p99(&self) -> Duration {
        quantile(&self.latencies, 0.99)
    }
}

/// Starts `count` waiters at once, lets them settle, then writes what
/// they wait for, process by process; a latency runs from the write
/// returning to the waiter resuming (zero if it resumed first).
pub(super) async fn wake_phase(
    registry: &RestateProcessRegistry,
    waiter: &Waiter,
    awaited: Awaited,
    name: &str,
    count: usize,
) -> CliResult<Wakes> {
    let ids: Arc<Vec<String>> =
        Arc::new((0..count).map(|i| format!("wake-{name}-{i:04}")).collect());
    register_all(
        registry,
        Arc::clone(&ids),
        16,
        &format!("register {name} waiters"),
    )
    .await?;
    let started = Instant::now();
    let mut waiting = Vec::with_capacity(count);
    for id in ids.iter() {
        let (waiter, id) = (waiter.clone(), id.clone());
        waiting.push(tokio::spawn(async move {
            let output = tokio::time::timeout(WAIT_LIMIT, waiter.wait(awaited, &id)).await;
            (Instant::now(), output)
        }));
    }
    tokio::time::sleep(WAIT_SETTLE).await;
    let progress = bar(count, format!("write + wake ({name})"));
    let mut completed_at = Vec::with_capacity(count);
    for (i, id) in ids.iter().enumerate() {
        awaited.write(registry, id, i).await?;
        completed_at.push(Instant::now());
        progress.inc(1);
    }
    let mut latencies = Vec::with_capacity(count);
    let mut early = 0;
    for (i, (handle, completed)) in waiting.into_iter().zip(completed_at).enumerate() {
        let (resumed, output) = handle
            .await
            .map_err(|error| CliError::new(format!("{name} waiter task failed: {error}")))?;
        let output = output.map_err(|_| {
            CliError::new(format!(
                "{name} waiter for {} timed out after {WAIT_LIMIT:?}",
                ids[i]
            ))
        })??;
        ensure(output == awaited.expected(i), || {
            format!("{name} waiter for {} resumed with {output:?}", ids[i])
        })?;
        if resumed < completed {
            early += 1;
        }
        latencies.push(resumed.saturating_duration_since(completed));
    }
    progress.finish_and_clear();
    Ok(Wakes {
        latencies,
        elapsed: started.elapsed(),
        early,
    })
}

/// Terminal waits (engine attach, then a host that can only poll), then
/// milestone waits on a second client (engine-native, then polling).
pub(super) async fn run(bench: &mut Bench) -> CliResult<()> {
    let second_client = |what: &str| {
        RestateProcessRegistry::connect(&bench.ingress).context(format!("connecting {what}"))
    };
    let other_host = second_client("a second ingress client")?;
    let waiter_host = second_client("a waiter's ingress client")?;
    let strategies = [
        (
            Waiter::Attach(RestateProcessAttach::new(bench.registry.clone())),
            Awaited::Terminal,
            "attach",
            "wake via attach",
        ),
        (
            Waiter::Poll(ProcessAwaiter::polling(Arc::new(other_host))),
            Awaited::Terminal,
            "poll",
            "wake via polling",
        ),
        (
            Waiter::Attach(RestateProcessAttach::new(waiter_host.clone())),
            Awaited::Milestone,
            "event",
            "milestone via attach",
        ),
        (
            Waiter::Poll(ProcessAwaiter::polling(Arc::new(waiter_host))),
            Awaited::Milestone,
            "event-poll",
            "milestone via polling",
        ),
    ];
    for (waiter, awaited, tag, row) in strategies {
        let wakes = wake_phase(&bench.registry, &waiter, awaited, tag, bench.plan.waiters).await?;
        bench.table.latencies(
            &format!("{row} ({} early)", wakes.early),
            &wakes.latencies,
            wakes.elapsed,
        );
        let key = tag.replace('-', "_");
        bench.summary.push(
            &format!("{key}_wake_p50_ms"),
            format!("{:.1}", ms(wakes.p50())),
        );
        bench.summary.push(
            &format!("{key}_wake_p99_ms"),
            format!("{:.1}", ms(wakes.p99())),
        );
    }
    Ok(())
}
