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
//!
//! One file per phase: `throughput` (registration, appends, reads against
//! the no-op), `wakes`, `costs` (cost against subject size), `scale`
//! (registration and listing as rows pile up), `faults` (an endpoint
//! outage with writes in flight, with `--faults`); `baseline` is the no-op
//! service and its client, `meter` what a call costs, `report` the table,
//! the summary line, `--json` and `--plot`. This file holds the options,
//! the stacks and [`run`], which calls the phases in order.

mod baseline;
mod costs;
mod faults;
mod meter;
mod report;
mod scale;
mod throughput;
mod wakes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use restate_process_registry::{
    ProcessEventType, ProcessInput, ProcessProvenance, ProcessRegistration, ProcessRegistry,
    ProcessValueSelector, ProcessWakeDedupeKey, ProcessWakeSpec, RestateProcessRegistry,
};
use restate_process_registry_services::bind_services;
use restate_process_registry_testkit::cluster_stack::ClusterStack;
use restate_process_registry_testkit::local_server::LocalRestate;
use restate_process_registry_testkit::local_stack::LocalStack;
use restate_sdk::endpoint::Endpoint;
use serde_json::json;
use tokio::runtime::{Handle, Runtime};

use crate::common::{
    bar, ensure, ms, run_concurrent, start_cluster_on, start_stack_on, CliResult, Context, Load,
};
use baseline::{default_noop, Baseline, EngineBaseline};
use meter::{print_costs, Meter, OpCost, ENDPOINT_THREADS};
use report::{Summary, Table};

/// The benchmark's event type.
const TICK: &str = "bench.tick";
/// The benchmark's wake-carrying event type.
const WAKE: &str = "bench.wake";
/// History of the small process in the append-cost comparison.
pub(super) const SMALL_HISTORY: usize = 10;

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
    /// Also take the endpoint down with writes in flight and report how
    /// long every touched object takes to serve again (`outage_recovery_s`).
    #[arg(long)]
    faults: bool,
    /// How long `--faults` keeps the endpoint down: past the client's
    /// retry budget and the four minutes after which earlier releases
    /// paused an invocation.
    #[arg(long, default_value_t = 300)]
    outage_secs: u64,
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

/// What every phase measures with and reports to.
struct Bench {
    plan: Plan,
    /// Ingress of the stack under test.
    ingress: String,
    registry: RestateProcessRegistry,
    baseline: Baseline,
    meter: Meter,
    /// The processes (and baseline keys) the throughput phases spread over.
    ids: Arc<Vec<String>>,
    table: Table,
    summary: Summary,
    /// What one call of each metered phase cost, in the order measured.
    costs: Vec<(&'static str, OpCost)>,
}

impl Bench {
    /// Clients on `stack`, the table started with the no-op on Restate's
    /// defaults (`untuned`), and the run's shape in the summary.
    fn on(
        stack: &BenchStack,
        plan: Plan,
        nodes: usize,
        untuned: &(Load, OpCost),
    ) -> CliResult<Self> {
        let ingress = stack.ingress_url();
        let registry =
            RestateProcessRegistry::connect(&ingress).context("connecting to ingress")?;
        let baseline = Baseline::connect(&ingress)?;
        let mut table = Table::new();
        table.load("EngineBaseline/noop on Restate's defaults", &untuned.0);
        let mut summary = Summary::default();
        summary.push("nodes", nodes);
        summary.push("processes", plan.processes);
        summary.push("concurrency", plan.concurrency);
        Ok(Self {
            ids: plan.process_ids(),
            plan,
            ingress,
            registry,
            baseline,
            meter: stack.meter()?,
            table,
            summary,
            costs: vec![("noop on defaults", untuned.1.clone())],
        })
    }

    /// Prints the costs, the notes and the summary line; writes `--json`
    /// and `--plot`.
    fn finish(mut self, args: &BenchArgs, wall: Instant) -> CliResult<()> {
        for (key, value) in print_costs(&self.costs, self.plan.concurrency) {
            self.summary.push(&key, value);
        }
        self.summary
            .push("wall_s", format!("{:.1}", wall.elapsed().as_secs_f64()));
        println!(
            "\nwake rows: latency from complete_process returning to the waiter resuming, \
             {} waiters started at once; \"early\" waiters resumed before the call returned \
             (counted as 0 ms).\nappend @N rows: sequential appends alternating between the two \
             processes; ratios divide by the mean of the two noop runs.",
            self.plan.waiters
        );
        println!();
        println!("{}", self.summary.line());
        if let Some(path) = &args.json {
            self.table.report.write_json(path, &self.summary.pairs)?;
            println!("figures written to {}", path.display());
        }
        if let Some(path) = &args.plot {
            self.table.report.plot(path)?;
            println!("plot drawn to {}", path.display());
        }
        Ok(())
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
    let mut bench = Bench::on(&stack, plan, args.nodes.max(1), &untuned)?;
    let few_rows = throughput::run(&mut bench, &untuned.0).await?;
    wakes::run(&mut bench).await?;
    costs::run(&mut bench).await?;
    scale::run(&mut bench, &few_rows).await?;
    if args.faults {
        faults::run(&mut bench, Duration::from_secs(args.outage_secs)).await?;
    }
    bench.finish(&args, wall)
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
