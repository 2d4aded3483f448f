//! `procreg bench`: registry operations against the raw engine, measured
//! in one run on one fresh local stack.
//!
//! The baseline is `EngineBaseline/noop`, an exclusive no-op virtual-object
//! call through ingress: what Restate itself costs per keyed invocation.
//! Registry throughput is reported next to it and as a ratio of it. Then
//! the bench measures how fast a terminal wait wakes (Restate attach versus
//! a polling awaiter), whether append cost stays flat as a process's
//! history grows, and how long listing ten thousand live rows takes.
//!
//! It meters the no-op, registration, append and get phases (`meter`): CPU
//! per call of restate-server, the endpoint (on a runtime of its own) and
//! the clients, and the engine's journal entries, completions and log
//! records per call. A second server on Restate's defaults runs the no-op
//! first, so the shipped config is measured against them in the same run.
//! `docs/bench.md` reads the breakdown.
//!
//! Rows are printed as each phase ends; the last line is one
//! `key=value` summary for scripts.

mod baseline;
mod meter;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use restate_process_registry::rules::limits::MAX_GRANTS_PER_PROCESS;
use restate_process_registry::{
    ProcessAttach, ProcessAwaitOutput, ProcessAwaiter, ProcessEventAppendRequest, ProcessEventType,
    ProcessHandleDescriptor, ProcessInput, ProcessProvenance, ProcessRegistration, ProcessRegistry,
    ProcessValueSelector, ProcessWakeDedupeKey, ProcessWakeSpec, RestateProcessAttach,
    RestateProcessRegistry, SessionScope,
};
use restate_process_registry_services::bind_services;
use restate_process_registry_testkit::local_server::LocalRestate;
use restate_process_registry_testkit::local_stack::LocalStack;
use tokio::runtime::{Handle, Runtime};

use baseline::EngineBaseline;
use restate_sdk::endpoint::Endpoint;
use restate_sdk::ingress::{Client, RequestTarget};
use serde_json::json;

use crate::common::{
    bar, ensure, ms, quantile, run_concurrent, start_cluster_on, start_stack_on, CliError,
    CliResult, Context, Load,
};
use meter::{print_costs, Meter, OpCost, ENDPOINT_THREADS};
use report::Report;
use restate_process_registry_testkit::cluster_stack::ClusterStack;

/// The benchmark's event type.
const TICK: &str = "bench.tick";
/// The benchmark's wake-carrying event type.
const WAKE: &str = "bench.wake";
/// Upper bound on one terminal wait.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// How long waiters get to reach the engine before outcomes are written.
const WAIT_SETTLE: Duration = Duration::from_millis(1500);
/// History of the small process in the append-cost comparison.
const SMALL_HISTORY: usize = 10;
/// `list_non_terminal` repetitions (the median is reported).
const LIST_RUNS: usize = 3;

/// Options of `procreg bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Processes registered for the throughput phases [default: 1000; 100 with --quick].
    #[arg(long)]
    processes: Option<usize>,
    /// Requests in flight during load phases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Calls per process in each throughput phase.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Shrink everything for a fast smoke run (100 processes, 20 waiters,
    /// a 1,000-event history, 1,000 listed rows).
    #[arg(long)]
    quick: bool,
    /// Run on a local cluster of this many restate-server nodes
    /// (replication 2) instead of a single node.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Also write every figure and table row to this file as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw the wake latency distributions and each phase's ops/s
    /// beside the no-op baseline into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Run the single-node stack on this restate-server config file instead
    /// of the shipped `restate.toml` (to measure a tuning).
    #[arg(long, value_name = "FILE", conflicts_with = "nodes")]
    server_config: Option<PathBuf>,
}

/// The config Restate's defaults run on: nothing set but what a run
/// without internet needs (ports come from the environment).
const RESTATE_DEFAULTS: &str = "disable-telemetry = true\n";

/// A runtime of its own for the endpoint, so the meter can tell its CPU
/// time from the clients'; shut down without blocking when dropped.
struct EndpointRuntime(Option<Runtime>);

impl EndpointRuntime {
    fn start() -> CliResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(ENDPOINT_THREADS)
            .enable_all()
            .build()
            .context("starting the endpoint's runtime")?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> Handle {
        self.0
            .as_ref()
            .map_or_else(Handle::current, |runtime| runtime.handle().clone())
    }
}

impl Drop for EndpointRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The registry's services and the no-op baseline on one endpoint.
fn bench_endpoint() -> Endpoint {
    bind_services(Endpoint::builder())
        .bind(EngineBaseline)
        .build()
}

/// The stack the bench runs on; dropped at the end.
enum BenchStack {
    Single(Box<LocalStack>),
    Cluster(ClusterStack),
}

impl BenchStack {
    async fn start(
        nodes: usize,
        runtime: &Handle,
        config: Option<&str>,
    ) -> CliResult<(Self, Duration)> {
        if nodes > 1 {
            let (stack, took) = start_cluster_on(nodes, bench_endpoint(), runtime).await?;
            Ok((Self::Cluster(stack), took))
        } else {
            let (stack, took) = start_stack_on(bench_endpoint(), runtime, config).await?;
            Ok((Self::Single(Box::new(stack)), took))
        }
    }

    /// A meter on every server of the stack.
    fn meter(&self) -> CliResult<Meter> {
        match self {
            Self::Single(stack) => Meter::on(&[stack.server()]),
            Self::Cluster(stack) => {
                let nodes: Vec<&LocalRestate> = stack.cluster.nodes().iter().collect();
                Meter::on(&nodes)
            }
        }
    }

    fn ingress_url(&self) -> String {
        match self {
            Self::Single(stack) => stack.ingress_url(),
            Self::Cluster(stack) => stack.ingress_url(),
        }
    }
}

/// Sizes of every phase.
#[derive(Debug, Clone, Copy)]
struct Plan {
    processes: usize,
    concurrency: usize,
    rounds: usize,
    waiters: usize,
    history: usize,
    samples: usize,
    listed: usize,
    /// Live rows for the registration-at-scale and first-page phases.
    rows: usize,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> CliResult<Self> {
        ensure(args.concurrency >= 1, || {
            "--concurrency must be at least 1".into()
        })?;
        ensure(args.rounds >= 1, || "--rounds must be at least 1".into())?;
        let (processes, waiters, history, samples, listed, rows) = if args.quick {
            (100, 20, 1_000, 50, 1_000, 3_000)
        } else {
            (1_000, 100, 10_000, 200, 10_000, 50_000)
        };
        let processes = args.processes.unwrap_or(processes);
        ensure(processes >= 1, || "--processes must be at least 1".into())?;
        Ok(Self {
            processes,
            concurrency: args.concurrency,
            rounds: args.rounds,
            waiters,
            history,
            samples,
            listed,
            rows,
        })
    }

    fn throughput_ops(&self) -> usize {
        self.processes * self.rounds
    }

    /// The ids (and baseline keys) the throughput phases spread over.
    fn process_ids(&self) -> Arc<Vec<String>> {
        Arc::new(
            (0..self.processes)
                .map(|i| format!("bench-{i:06}"))
                .collect(),
        )
    }
}

/// Runs every phase and prints the table and the summary line.
pub async fn run(args: BenchArgs) -> CliResult<()> {
    let plan = Plan::from_args(&args)?;
    let wall = Instant::now();
    let config = match &args.server_config {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let runtime = EndpointRuntime::start()?;
    // The no-op on Restate's defaults, on a server of its own, first.
    let untuned = default_noop(&plan, &runtime.handle()).await?;
    let (stack, took) = BenchStack::start(args.nodes, &runtime.handle(), config.as_deref()).await?;
    let meter = stack.meter()?;
    println!(
        "procreg bench: {} processes, concurrency {}, {} calls per process per phase{}",
        plan.processes,
        plan.concurrency,
        plan.rounds,
        if args.quick { " (--quick)" } else { "" }
    );
    println!(
        "local stack of {} node(s) up in {:.0} ms (ingress {})\n",
        args.nodes.max(1),
        ms(took),
        stack.ingress_url()
    );
    let registry =
        RestateProcessRegistry::connect(&stack.ingress_url()).context("connecting to ingress")?;
    let baseline = Baseline::connect(&stack.ingress_url())?;
    let mut table = Table::new();
    table.load("EngineBaseline/noop on Restate's defaults", &untuned.0);
    let mut costs = vec![("noop on defaults", untuned.1)];
    let mut summary = Summary::default();
    summary.push("nodes", args.nodes.max(1));
    summary.push("processes", plan.processes);
    summary.push("concurrency", plan.concurrency);

    // Setup: the processes every throughput phase spreads over.
    let ids = plan.process_ids();
    let load = register_all(&registry, Arc::clone(&ids), plan.concurrency, "register").await?;
    table.load("register_process (setup)", &load);

    // Registration with only the setup rows live (compared at scale below).
    let (few_rows, cost) = register_batch(&registry, &meter, &plan, "few-rows", &mut table).await?;
    costs.push(("register", cost));
    summary.push("register_per_s", format!("{:.0}", few_rows.per_second()));

    // Warm connections and the endpoint before anything is measured.
    let warm = (plan.concurrency * 4).min(plan.throughput_ops());
    noop_phase(&baseline, &ids, warm, plan.concurrency, "warm-up", false).await?;
    get_phase(&registry, &ids, warm, plan.concurrency, "warm-up").await?;

    let (noop_before, cost) =
        metered_noop(&baseline, &meter, &ids, &plan, "EngineBaseline/noop").await?;
    costs.push(("noop", cost));
    table.load("EngineBaseline/noop (baseline)", &noop_before);
    // The same call with an idempotency key: what the engine charges for
    // the deduplication every registry write asks for.
    let noop_keyed = noop_phase(
        &baseline,
        &ids,
        plan.throughput_ops(),
        plan.concurrency,
        "EngineBaseline/noop + idempotency key",
        true,
    )
    .await?;
    table.load("EngineBaseline/noop + idempotency key", &noop_keyed);
    let (append, cost) = meter
        .measure(append_phase(
            &registry,
            &ids,
            plan.throughput_ops(),
            plan.concurrency,
        ))
        .await?;
    costs.push(("append", cost));
    table.load("append_event", &append);
    let (get, cost) = meter
        .measure(get_phase(
            &registry,
            &ids,
            plan.throughput_ops(),
            plan.concurrency,
            "get_process",
        ))
        .await?;
    costs.push(("get", cost));
    table.load("get_process", &get);
    let noop_after = noop_phase(
        &baseline,
        &ids,
        plan.throughput_ops(),
        plan.concurrency,
        "EngineBaseline/noop again",
        false,
    )
    .await?;
    table.load("EngineBaseline/noop (again)", &noop_after);
    // The baseline brackets the registry phases; its mean absorbs drift.
    let noop_per_s = (noop_before.per_second() + noop_after.per_second()) / 2.0;
    summary.push("noop_per_s", format!("{noop_per_s:.0}"));
    summary.push(
        "noop_default_per_s",
        format!("{:.0}", untuned.0.per_second()),
    );
    summary.push(
        "noop_tuned_vs_default",
        format!("{:.3}", noop_per_s / untuned.0.per_second()),
    );
    summary.push("append_per_s", format!("{:.0}", append.per_second()));
    summary.push(
        "append_vs_noop",
        format!("{:.3}", append.per_second() / noop_per_s),
    );
    summary.push(
        "noop_keyed_per_s",
        format!("{:.0}", noop_keyed.per_second()),
    );
    summary.push(
        "append_vs_noop_keyed",
        format!("{:.3}", append.per_second() / noop_keyed.per_second()),
    );
    summary.push(
        "register_vs_noop",
        format!("{:.3}", few_rows.per_second() / noop_per_s),
    );
    summary.push("get_per_s", format!("{:.0}", get.per_second()));
    summary.push(
        "get_vs_noop",
        format!("{:.3}", get.per_second() / noop_per_s),
    );

    // Terminal waits: engine attach, then a host that can only poll.
    let attach = Waiter::Attach(RestateProcessAttach::new(registry.clone()));
    let wakes = wake_phase(
        &registry,
        &attach,
        Awaited::Terminal,
        "attach",
        plan.waiters,
    )
    .await?;
    table.latencies(
        &format!("wake via attach ({} early)", wakes.early),
        &wakes.latencies,
        wakes.elapsed,
    );
    summary.push("attach_wake_p50_ms", format!("{:.1}", ms(wakes.p50())));
    summary.push("attach_wake_p99_ms", format!("{:.1}", ms(wakes.p99())));
    let other_host = RestateProcessRegistry::connect(&stack.ingress_url())
        .context("connecting a second ingress client")?;
    let polling = Waiter::Poll(ProcessAwaiter::polling(Arc::new(other_host)));
    let wakes = wake_phase(&registry, &polling, Awaited::Terminal, "poll", plan.waiters).await?;
    table.latencies(
        &format!("wake via polling ({} early)", wakes.early),
        &wakes.latencies,
        wakes.elapsed,
    );
    summary.push("poll_wake_p50_ms", format!("{:.1}", ms(wakes.p50())));
    summary.push("poll_wake_p99_ms", format!("{:.1}", ms(wakes.p99())));

    // Milestone waits on a second client: engine-native, then polling.
    let waiter_host = RestateProcessRegistry::connect(&stack.ingress_url())
        .context("connecting a waiter's ingress client")?;
    let engine = Waiter::Attach(RestateProcessAttach::new(waiter_host.clone()));
    let wakes = wake_phase(
        &registry,
        &engine,
        Awaited::Milestone,
        "event",
        plan.waiters,
    )
    .await?;
    table.latencies(
        &format!("milestone via attach ({} early)", wakes.early),
        &wakes.latencies,
        wakes.elapsed,
    );
    summary.push("event_wake_p50_ms", format!("{:.1}", ms(wakes.p50())));
    summary.push("event_wake_p99_ms", format!("{:.1}", ms(wakes.p99())));
    let polling = Waiter::Poll(ProcessAwaiter::polling(Arc::new(waiter_host)));
    let wakes = wake_phase(
        &registry,
        &polling,
        Awaited::Milestone,
        "event-poll",
        plan.waiters,
    )
    .await?;
    table.latencies(
        &format!("milestone via polling ({} early)", wakes.early),
        &wakes.latencies,
        wakes.elapsed,
    );
    summary.push("event_poll_wake_p50_ms", format!("{:.1}", ms(wakes.p50())));
    summary.push("event_poll_wake_p99_ms", format!("{:.1}", ms(wakes.p99())));

    // Append cost as history grows.
    let cost = append_cost(&registry, &plan, &mut table).await?;
    summary.push("history", plan.history);
    summary.push(
        &format!("append_{SMALL_HISTORY}_ms"),
        format!("{:.2}", ms(cost.small)),
    );
    summary.push(
        &format!("append_{}_ms", size(plan.history)),
        format!("{:.2}", ms(cost.big)),
    );
    summary.push(
        &format!("append_cost_{}_vs_{SMALL_HISTORY}", size(plan.history)),
        format!("{:.3}", cost.ratio()),
    );
    // The engine's own share: the same growth for a no-op on a key that
    // took as many keyed invocations.
    let floor = noop_cost(&baseline, &plan, &mut table).await?;
    summary.push(
        &format!("noop_cost_{}_vs_{SMALL_HISTORY}", size(plan.history)),
        format!("{:.3}", floor.ratio()),
    );
    let grants = grant_cost(&registry, &plan, &mut table).await?;
    summary.push(
        &format!("grant_cost_{}_vs_{SMALL_HISTORY}", size(plan.history)),
        format!("{:.3}", grants.ratio()),
    );
    let wakes = wake_append_cost(&registry, &plan, &mut table).await?;
    summary.push(
        &format!("wake_append_cost_{}_vs_{SMALL_HISTORY}", size(plan.history)),
        format!("{:.3}", wakes.ratio()),
    );

    // Listing every live row.
    let (rows, median) = list_phase(&registry, &plan, &mut table).await?;
    summary.push("listed", rows);
    summary.push(
        &format!("list_non_terminal_{}_ms", size(rows)),
        format!("{:.0}", ms(median)),
    );

    // Registration and the first listing page as rows pile up.
    let scale = scale_phase(&registry, &meter, &plan, &few_rows, &mut table).await?;
    summary.push(
        &format!(
            "register_at_{}_vs_{}",
            size(scale.big_rows),
            size(scale.small_rows)
        ),
        format!("{:.3}", scale.big_rate / scale.small_rate),
    );
    summary.push(
        &format!("list_page_{}_ms", size(scale.big_rows)),
        format!("{:.1}", ms(scale.first_page)),
    );

    for (key, value) in print_costs(&costs, plan.concurrency) {
        summary.push(&key, value);
    }
    summary.push("wall_s", format!("{:.1}", wall.elapsed().as_secs_f64()));
    println!(
        "\nwake rows: latency from complete_process returning to the waiter resuming, \
         {} waiters started at once; \"early\" waiters resumed before the call returned \
         (counted as 0 ms).\nappend @N rows: sequential appends alternating between the two \
         processes; ratios divide by the mean of the two noop runs.",
        plan.waiters
    );
    println!();
    println!("{}", summary.line());
    if let Some(path) = &args.json {
        table.report.write_json(path, &summary.pairs)?;
        println!("figures written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        table.report.plot(path)?;
        println!("plot drawn to {}", path.display());
    }
    Ok(())
}

/// The no-op baseline on a single server running Restate's defaults, and
/// what one call cost there; that server is gone when this returns.
async fn default_noop(plan: &Plan, runtime: &Handle) -> CliResult<(Load, OpCost)> {
    let (stack, _) = start_stack_on(bench_endpoint(), runtime, Some(RESTATE_DEFAULTS)).await?;
    let baseline = Baseline::connect(&stack.ingress_url())?;
    let meter = Meter::on(&[stack.server()])?;
    let keys = plan.process_ids();
    let warm = (plan.concurrency * 4).min(plan.throughput_ops());
    noop_phase(&baseline, &keys, warm, plan.concurrency, "warm-up", false).await?;
    metered_noop(&baseline, &meter, &keys, plan, "noop on Restate's defaults").await
}

/// One throughput phase of no-op calls (no idempotency key) and what one
/// call cost.
async fn metered_noop(
    baseline: &Baseline,
    meter: &Meter,
    keys: &Arc<Vec<String>>,
    plan: &Plan,
    label: &str,
) -> CliResult<(Load, OpCost)> {
    meter
        .measure(noop_phase(
            baseline,
            keys,
            plan.throughput_ops(),
            plan.concurrency,
            label,
            false,
        ))
        .await
}

/// Exclusive no-op calls to the engine-baseline object, through ingress.
#[derive(Clone)]
struct Baseline {
    client: Client<reqwest::Client>,
}

impl Baseline {
    fn connect(ingress_url: &str) -> CliResult<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?;
        let uri = ingress_url
            .parse()
            .context(format!("parsing the ingress url {ingress_url}"))?;
        let client = Client::new(uri, http).context("building the ingress client")?;
        Ok(Self { client })
    }

    /// `EngineBaseline/{key}/noop`: no body, no content type, empty answer;
    /// with an idempotency key when one is given (as every registry write has).
    async fn noop(&self, key: String, idempotency_key: Option<String>) -> CliResult<()> {
        let target = RequestTarget::object("EngineBaseline", key, "noop");
        let mut request = self.client.request::<(), ()>(target, ());
        if let Some(idempotency_key) = idempotency_key {
            request = request.idempotency_key(idempotency_key);
        }
        let response = request
            .call()
            .await
            .context("calling EngineBaseline/noop")?;
        let status = response.status();
        ensure(status.is_success(), || {
            let body = response.into_raw_http_response().into_body();
            format!(
                "EngineBaseline/noop answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
        })
    }
}

fn registration(id: &str) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::Engine {
            kind: "bench".into(),
            payload: json!({}),
        },
        ProcessProvenance::host(),
    )
    .with_extra_event_types([
        ProcessEventType::any(TICK),
        ProcessEventType::any(WAKE).with_wake(ProcessWakeSpec {
            when: None,
            input: ProcessValueSelector::Payload,
            dedupe_key: ProcessWakeDedupeKey::EventIdentity,
        }),
    ])
}

/// Runs `total` operations under a progress bar named `label`.
async fn phase<F, Fut>(label: &str, total: usize, concurrency: usize, op: F) -> CliResult<Load>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = CliResult<()>> + Send + 'static,
{
    let progress = bar(total, label);
    let load = run_concurrent(total, concurrency, &progress, op).await;
    progress.finish_and_clear();
    load.context(label.to_owned())
}

async fn register_all(
    registry: &RestateProcessRegistry,
    ids: Arc<Vec<String>>,
    concurrency: usize,
    label: &str,
) -> CliResult<Load> {
    let registry = registry.clone();
    phase(label, ids.len(), concurrency, move |i| {
        let (registry, id) = (registry.clone(), ids[i].clone());
        async move {
            let record = registry
                .register_process(registration(&id))
                .await
                .context(format!("register_process {id}"))?;
            ensure(!record.is_terminal(), || {
                format!("{id} registered terminal")
            })
        }
    })
    .await
}

/// No-op calls; `idempotent` gives each one a fresh idempotency key.
async fn noop_phase(
    baseline: &Baseline,
    ids: &Arc<Vec<String>>,
    total: usize,
    concurrency: usize,
    label: &str,
    idempotent: bool,
) -> CliResult<Load> {
    let (baseline, ids) = (baseline.clone(), Arc::clone(ids));
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    phase(label, total, concurrency, move |i| {
        let (baseline, key) = (baseline.clone(), ids[i % ids.len()].clone());
        let idempotency_key = idempotent.then(|| format!("bench-noop-{run}-{i}"));
        async move { baseline.noop(key, idempotency_key).await }
    })
    .await
}

async fn append_phase(
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

async fn append_tick(registry: &RestateProcessRegistry, id: &str, n: usize) -> CliResult<()> {
    let result = registry
        .append_event(id, ProcessEventAppendRequest::new(TICK, json!({ "n": n })))
        .await
        .context(format!("append_event {id}"))?;
    ensure(!result.deduplicated && result.event.sequence > 0, || {
        format!("append_event {id} wrote nothing")
    })
}

async fn get_phase(
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

/// How a host waits for an outcome.
#[derive(Clone)]
enum Waiter {
    /// Restate ingress attach to the process's terminal workflow.
    Attach(RestateProcessAttach),
    /// Point reads on a backoff, from a host with no change hub.
    Poll(ProcessAwaiter),
}

/// What a wake phase waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    /// The outcome, written by `complete_process`.
    Terminal,
    /// The first `TICK` event, written by `append_event`.
    Milestone,
}

impl Awaited {
    /// The value the `i`-th waiter must resume with, as JSON.
    fn expected(self, i: usize) -> serde_json::Value {
        json!({ "i": i })
    }

    /// Writes what the `i`-th waiter waits for.
    async fn write(self, registry: &RestateProcessRegistry, id: &str, i: usize) -> CliResult<()> {
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
    async fn wait(&self, awaited: Awaited, id: &str) -> CliResult<serde_json::Value> {
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
struct Wakes {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// Waiters that resumed before `complete_process` returned to us.
    early: usize,
}

impl Wakes {
    fn p50(&self) -> Duration {
        quantile(&self.latencies, 0.5)
    }

    fn p99(&self) -> Duration {
        quantile(&self.latencies, 0.99)
    }
}

/// Starts `count` waiters at once, lets them settle, then writes what
/// they wait for, process by process; a latency runs from the write
/// returning to the waiter resuming (zero if it resumed first).
async fn wake_phase(
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

/// Median latencies of one operation on a small and a big subject.
struct AppendCost {
    small: Duration,
    big: Duration,
}

impl AppendCost {
    fn ratio(&self) -> f64 {
        self.big.as_secs_f64() / self.small.as_secs_f64()
    }
}

/// `10`, `1k`, `50k`: how a size reads in a summary key.
fn size(n: usize) -> String {
    if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Alternates `samples` sequential calls of `op` on the small and the big
/// subject (so drift hits both alike) and returns the two medians.
async fn alternate<F, Fut>(
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
async fn cost_at_two_sizes<F, Fut>(
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
async fn noop_cost(baseline: &Baseline, plan: &Plan, table: &mut Table) -> CliResult<AppendCost> {
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
async fn grant_cost(
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
async fn wake_append_cost(
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

/// Registration rates with few and with many live rows, and the first
/// page of a listing with many.
struct Scale {
    small_rows: usize,
    big_rows: usize,
    small_rate: f64,
    big_rate: f64,
    first_page: Duration,
}

/// Registrations timed in one batch.
const BATCH: usize = 500;
/// Longest wait for the server to come to rest before a timed batch.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Registers one timed batch of `BATCH` rows, started once the server is
/// at rest (so a batch right after a fill does not pay the storage's
/// compaction of that fill; the fill's own rate shows that cost), and what
/// one registration of it cost.
async fn register_batch(
    registry: &RestateProcessRegistry,
    meter: &Meter,
    plan: &Plan,
    tag: &str,
    table: &mut Table,
) -> CliResult<(Load, OpCost)> {
    let ids = Arc::new((0..BATCH).map(|i| format!("scale-{tag}-{i:04}")).collect());
    let live = count_rows(registry).await?;
    meter.settle(SETTLE_LIMIT).await;
    let (load, cost) = meter
        .measure(register_all(
            registry,
            ids,
            plan.concurrency,
            &format!("register ({tag})"),
        ))
        .await?;
    table.load(&format!("register_process x{BATCH} @{live} rows"), &load);
    Ok((load, cost))
}

async fn count_rows(registry: &RestateProcessRegistry) -> CliResult<usize> {
    Ok(registry
        .directory_entries(&restate_process_registry::ProcessListFilter::any())
        .await
        .context("counting rows")?
        .len())
}

async fn scale_phase(
    registry: &RestateProcessRegistry,
    meter: &Meter,
    plan: &Plan,
    small: &Load,
    table: &mut Table,
) -> CliResult<Scale> {
    let live = count_rows(registry).await?;
    let fill_to = plan.rows.saturating_sub(live + BATCH);
    let ids: Arc<Vec<String>> = Arc::new((0..fill_to).map(|i| format!("fill-{i:06}")).collect());
    let fill = register_all(
        registry,
        ids,
        plan.concurrency,
        &format!("registering up to {} rows", plan.rows),
    )
    .await?;
    table.load(&format!("register_process (fill to {})", plan.rows), &fill);
    let (big, _) = register_batch(registry, meter, plan, "many-rows", table).await?;
    let mut pages = Vec::with_capacity(LIST_RUNS);
    for _ in 0..LIST_RUNS {
        let call = Instant::now();
        let (rows, _) = registry
            .list_processes_page(
                &restate_process_registry::ProcessListFilter::any(),
                None,
                256,
            )
            .await
            .context("list_processes_page")?;
        pages.push(call.elapsed());
        ensure(rows.len() >= 256, || {
            format!("the first page held {} rows", rows.len())
        })?;
    }
    let total = pages.iter().sum();
    table.latencies(
        &format!("list_processes first page @{} rows", plan.rows),
        &pages,
        total,
    );
    Ok(Scale {
        small_rows: plan.processes,
        big_rows: plan.rows,
        small_rate: small.per_second(),
        big_rate: big.per_second(),
        first_page: quantile(&pages, 0.5),
    })
}

async fn append_cost(
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

/// Registers rows until `plan.listed` are live, then times
/// `list_non_terminal`; returns the row count and the median time.
async fn list_phase(
    registry: &RestateProcessRegistry,
    plan: &Plan,
    table: &mut Table,
) -> CliResult<(usize, Duration)> {
    let spin = crate::common::spinner("counting live rows");
    let live = registry.list_non_terminal().await;
    spin.finish_and_clear();
    let live = live.context("list_non_terminal")?.len();
    let missing = plan.listed.saturating_sub(live);
    if missing > 0 {
        let ids: Arc<Vec<String>> =
            Arc::new((0..missing).map(|i| format!("list-{i:06}")).collect());
        let load = register_all(
            registry,
            ids,
            plan.concurrency,
            &format!("registering up to {} live", plan.listed),
        )
        .await?;
        table.load(
            &format!("register_process (to {} live)", plan.listed),
            &load,
        );
    }
    let progress = bar(LIST_RUNS, "list_non_terminal");
    let mut times = Vec::with_capacity(LIST_RUNS);
    let mut rows = 0;
    for _ in 0..LIST_RUNS {
        let call = Instant::now();
        let listed = registry
            .list_non_terminal()
            .await
            .context("list_non_terminal")?;
        times.push(call.elapsed());
        rows = listed.len();
        ensure(rows >= plan.listed, || {
            format!(
                "list_non_terminal returned {rows} rows, expected at least {}",
                plan.listed
            )
        })?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let total = times.iter().sum();
    table.latencies(&format!("list_non_terminal ({rows} rows)"), &times, total);
    Ok((rows, quantile(&times, 0.5)))
}

/// The result table, printed a row at a time as phases end.
struct Table {
    report: Report,
}

impl Table {
    fn new() -> Self {
        println!(
            "{:<42} {:>7} {:>8} {:>9} {:>9} {:>9}",
            "phase", "ops", "secs", "ops/s", "p50 ms", "p99 ms"
        );
        println!("{}", "-".repeat(89));
        Self {
            report: Report::default(),
        }
    }

    fn load(&mut self, name: &str, load: &Load) {
        self.report
            .load(name, load.ops(), load.elapsed, &load.latencies);
        println!(
            "{:<42} {:>7} {:>8.2} {:>9.0} {:>9.2} {:>9.2}",
            name,
            load.ops(),
            load.elapsed.as_secs_f64(),
            load.per_second(),
            ms(quantile(&load.latencies, 0.5)),
            ms(quantile(&load.latencies, 0.99)),
        );
    }

    fn latencies(&mut self, name: &str, samples: &[Duration], elapsed: Duration) {
        self.report.latencies(name, samples, elapsed);
        println!(
            "{:<42} {:>7} {:>8.2} {:>9} {:>9.2} {:>9.2}",
            name,
            samples.len(),
            elapsed.as_secs_f64(),
            "-",
            ms(quantile(samples, 0.5)),
            ms(quantile(samples, 0.99)),
        );
    }
}

/// The final `key=value` line.
#[derive(Default)]
struct Summary {
    pairs: Vec<(String, String)>,
}

impl Summary {
    fn push(&mut self, key: &str, value: impl ToString) {
        self.pairs.push((key.to_owned(), value.to_string()));
    }

    fn line(&self) -> String {
        self.pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
