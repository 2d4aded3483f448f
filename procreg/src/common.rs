//! Helpers every verb shares: errors and exit statuses, progress bars and
//! spinners, the local stack and cluster started behind a spinner, timing, and a
//! bounded-concurrency load runner.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use restate_process_registry_testkit::cluster_stack::ClusterStack;
use restate_process_registry_testkit::local_server::LocalRestate;
use restate_process_registry_testkit::local_stack::LocalStack;
use restate_sdk::endpoint::Endpoint;
use tokio::runtime::Handle;
use tokio::task::JoinSet;

/// What every verb returns: an `anyhow` error whose context chain is
/// printed on one line (`procreg: error: what: why: cause`).
pub type CliResult<T> = anyhow::Result<T>;

pub use anyhow::Context;

/// An error with this message (exit status 1).
pub struct CliError;

impl CliError {
    /// A plain failure with `message`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(message: impl Display) -> anyhow::Error {
        anyhow::Error::msg(message.to_string())
    }

    /// Ends the process with `status`; nothing is printed when `message` is
    /// empty (the verb already said what happened).
    pub fn exit(status: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            status,
            message: message.into(),
        })
    }
}

/// A failure that ends with its own exit status (see [`CliError::exit`]).
#[derive(Debug)]
pub struct Exit {
    /// The exit status.
    pub status: u8,
    /// What to print; empty for nothing.
    pub message: String,
}

impl Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Fails with `message` unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> CliResult<()> {
    if condition {
        Ok(())
    } else {
        Err(CliError::new(message()))
    }
}

/// Milliseconds, fractional.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The `q` quantile (0..=1) of `samples` (nearest rank); zero when empty.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[rank]
}

/// A spinner with a message, ticking on its own.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}") {
        bar.set_style(style.tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "));
    }
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A progress bar over `len` steps.
pub fn bar(len: usize, message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner:.cyan} {msg:<30} [{bar:32.cyan/blue}] {pos:>6}/{len:<6} {per_sec:>10} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Starts a [`LocalStack`] (installing restate-server when missing) behind
/// a spinner; returns it with how long it took.
pub async fn start_stack(endpoint: Endpoint) -> CliResult<(LocalStack, Duration)> {
    start_stack_on(endpoint, &Handle::current(), None).await
}

/// Like [`start_stack`], the endpoint running on `runtime` and the server
/// on `config` (the whole config file) when given.
pub async fn start_stack_on(
    endpoint: Endpoint,
    runtime: &Handle,
    config: Option<&str>,
) -> CliResult<(LocalStack, Duration)> {
    let started = Instant::now();
    let spin = spinner("starting restate-server and the registry endpoint");
    let stack = async {
        let server = match config {
            Some(config) => LocalRestate::start_configured(config).await?,
            None => LocalRestate::start().await?,
        };
        LocalStack::on(server, endpoint, runtime).await
    }
    .await;
    spin.finish_and_clear();
    let stack = stack.context("starting the local Restate stack")?;
    Ok((stack, started.elapsed()))
}

/// Starts a [`ClusterStack`] of `nodes` serving `endpoint` on `runtime`
/// behind a spinner; returns it with how long it took.
pub async fn start_cluster_on(
    nodes: usize,
    endpoint: Endpoint,
    runtime: &Handle,
) -> CliResult<(ClusterStack, Duration)> {
    let started = Instant::now();
    let spin = spinner(format!("starting a {nodes}-node restate-server cluster"));
    let stack = ClusterStack::start(nodes, endpoint, runtime).await;
    spin.finish_and_clear();
    let stack = stack.context("starting the local cluster stack")?;
    Ok((stack, started.elapsed()))
}

/// The outcome of a load phase: wall time and per-operation latencies.
pub struct Load {
    /// From the first call to the last answer.
    pub elapsed: Duration,
    /// One latency per operation, unordered.
    pub latencies: Vec<Duration>,
}

impl Load {
    /// Operations run.
    pub fn ops(&self) -> usize {
        self.latencies.len()
    }

    /// Operations per second.
    pub fn per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops() as f64 / secs
        } else {
            0.0
        }
    }
}

/// Runs `op(0..total)` on `concurrency` tasks, ticking `progress` per
/// operation. The first error stops every task and is returned.
pub async fn run_concurrent<F, Fut>(
    total: usize,
    concurrency: usize,
    progress: &ProgressBar,
    op: F,
) -> CliResult<Load>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CliResult<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, total.max(1)) {
        let (op, next, failed, progress) = (
            Arc::clone(&op),
            Arc::clone(&next),
            Arc::clone(&failed),
            progress.clone(),
        );
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total || failed.load(Ordering::Relaxed) {
                    return Ok(latencies);
                }
                let call = Instant::now();
                if let Err(error) = op(index).await {
                    failed.store(true, Ordering::Relaxed);
                    return Err(error);
                }
                latencies.push(call.elapsed());
                progress.inc(1);
            }
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(mut some)) => latencies.append(&mut some),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join) => {
                first_error.get_or_insert(CliError::new(format!("load task failed: {join}")));
            }
        }
    }
    let elapsed = started.elapsed();
    match first_error {
        Some(error) => Err(error),
        None => Ok(Load { elapsed, latencies }),
    }
}
