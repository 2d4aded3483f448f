//! The `procreg demo` section on durable bodies: a multi-step process run
//! by the engine's `ProcessRunner`, its endpoint killed with SIGKILL in the
//! middle, the body resuming from its journal when the endpoint is back,
//! and the waiter woken through attach.
//!
//! The endpoint is this binary (`procreg serve --runner demo`) as a child
//! process, so the kill is a real one; it serves a restate-server of its
//! own, so the tour's other sections are untouched.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_process_registry::{
    ProcessAwaitOutput, ProcessRegistry, ProcessWorkDriver, RestateProcessAttach,
    RestateProcessRegistry, RestateProcessRuns,
};
use restate_process_registry_testkit::local_server::LocalRestate;
use restate_process_registry_testkit::ports::Ports;
use tokio::process::{Child, Command};

use super::body::{registration, Plan, PROGRESS};
use crate::common::{ensure, ms, spinner, CliError, CliResult, Context};
use crate::demo::describe;

/// Steps of the demo process.
const STEPS: u32 = 6;
/// How long each step works.
const STEP_DELAY_MS: u64 = 300;
/// The endpoint is killed once this many steps are journaled.
const KILL_AFTER: usize = 2;
/// How long the endpoint stays dead.
const DOWN_FOR: Duration = Duration::from_millis(500);
/// Upper bound on any single wait in this section.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// The runner endpoint: this binary serving `--runner demo` on `port`.
struct RunnerEndpoint {
    port: u16,
    child: Child,
    /// Holds `port` for the endpoint across its restart.
    _reserved: Ports,
}

impl RunnerEndpoint {
    async fn start() -> CliResult<Self> {
        let reserved =
            Ports::reserve(1).context("reserving a loopback port for the runner endpoint")?;
        let port = reserved.ports()[0];
        let child = spawn(port).await?;
        Ok(Self {
            port,
            child,
            _reserved: reserved,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: the endpoint dies mid-step, like a crashed host.
    async fn kill(&mut self) -> CliResult<()> {
        self.child
            .kill()
            .await
            .context("killing the runner endpoint")
    }

    /// The same endpoint again, on the same port.
    async fn restart(&mut self) -> CliResult<()> {
        self.child = spawn(self.port).await?;
        Ok(())
    }
}

/// Starts `procreg serve --runner demo --port {port}` and waits until it listens.
async fn spawn(port: u16) -> CliResult<Child> {
    let exe = std::env::current_exe().context("finding the procreg binary")?;
    let child = Command::new(exe)
        .args(["serve", "--runner", "demo", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting procreg serve --runner demo")?;
    let deadline = Instant::now() + WAIT_LIMIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        ensure(Instant::now() < deadline, || {
            format!("the runner endpoint did not listen on {port}")
        })?;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(child)
}

/// Removes the side-effect file when the section ends, however it ends.
/// Runs the section; any surprise is an error.
pub async fn run() -> CliResult<()> {
    let spin = spinner("starting a second restate-server and the runner endpoint");
    let server = LocalRestate::start().await;
    spin.finish_and_clear();
    let server = server.context("starting restate-server")?;
    let mut endpoint = RunnerEndpoint::start().await?;
    server
        .register_deployment(&endpoint.url())
        .await
        .context("registering the runner endpoint")?;
    println!(
        "   endpoint {} = procreg serve --runner demo (a child process)",
        endpoint.url()
    );

    // The whole host-side setup: runs go to the engine, waits attach.
    let registry =
        RestateProcessRegistry::connect(&server.ingress_url()).context("connecting to ingress")?;
    let runs = Arc::new(RestateProcessRuns::new(registry.clone()));
    let attach = Arc::new(RestateProcessAttach::new(registry.clone()));
    let driver = ProcessWorkDriver::new(Arc::new(registry.clone()), runs).with_attach(attach);

    // The body's side-effect file, removed when the section ends.
    let file = tempfile::Builder::new()
        .prefix("procreg-demo-durable-")
        .suffix(".txt")
        .tempfile()
        .context("creating the side-effect file")?
        .into_temp_path();
    let plan = Plan {
        steps: STEPS,
        delay_ms: STEP_DELAY_MS,
        file: file.to_path_buf(),
        fail_at: None,
        panic_at: None,
        flaky_at: None,
        reason: None,
        stop_on_abandon: true,
    };
    let id = "demo-durable";
    driver
        .process_registry()
        .register_process(registration(id, &plan))
        .await
        .context("registering demo-durable")?;
    driver
        .claim_and_run_pending("demo: durable body")
        .await
        .context("submitting pending runs")?;
    println!(
        "   registered {id}: {STEPS} steps of {STEP_DELAY_MS} ms, each appending a line to {}",
        file.display()
    );

    let since = Instant::now();
    let waiter = {
        let driver = driver.clone();
        tokio::spawn(
            async move { tokio::time::timeout(WAIT_LIMIT, driver.await_terminal(id)).await },
        )
    };

    let journaled = wait_progress(&registry, id, KILL_AFTER).await?;
    endpoint.kill().await?;
    println!(
        "   +{:>5.0} ms  steps {journaled:?} journaled -> endpoint killed (SIGKILL)",
        ms(since.elapsed())
    );
    tokio::time::sleep(DOWN_FOR).await;
    endpoint.restart().await?;
    println!(
        "   +{:>5.0} ms  endpoint restarted; the engine replays the run's journal",
        ms(since.elapsed())
    );

    let output = waiter
        .await
        .map_err(|error| CliError::new(format!("the waiter failed: {error}")))?
        .map_err(|_| CliError::new(format!("waiting for {id} timed out after {WAIT_LIMIT:?}")))?
        .context(format!("waiting for {id}"))?;
    println!(
        "   +{:>5.0} ms  waiter woken through attach: {}",
        ms(since.elapsed()),
        describe(&output)
    );
    ensure(matches!(output, ProcessAwaitOutput::Success { .. }), || {
        format!("{id} ended {output:?}")
    })?;
    report_side_effects(&file, &journaled)
}

/// Polls the log until `count` `progress` events are there; answers their steps.
async fn wait_progress(
    registry: &RestateProcessRegistry,
    id: &str,
    count: usize,
) -> CliResult<Vec<u64>> {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let events = registry
            .events_after(id, 0)
            .await
            .context(format!("reading {id}'s log"))?;
        let steps: Vec<u64> = events
            .iter()
            .filter(|event| event.event_type == PROGRESS)
            .filter_map(|event| event.payload["step"].as_u64())
            .collect();
        if steps.len() >= count {
            return Ok(steps);
        }
        ensure(Instant::now() < deadline, || {
            format!("{id} made no progress in {WAIT_LIMIT:?}")
        })?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints how often each step's side effect happened; a step journaled
/// before the kill must have happened exactly once.
fn report_side_effects(file: &Path, journaled: &[u64]) -> CliResult<()> {
    let text = std::fs::read_to_string(file).context(format!("reading {}", file.display()))?;
    let mut line = Vec::new();
    for step in 1..=u64::from(STEPS) {
        let times = text
            .lines()
            .filter(|l| *l == format!("step {step}"))
            .count();
        ensure(times >= 1, || format!("step {step} never ran"))?;
        ensure(!journaled.contains(&step) || times == 1, || {
            format!("step {step} was journaled before the kill, yet ran {times} times")
        })?;
        line.push(format!("{step}×{times}"));
    }
    println!(
        "   side effects per step: {} (journaled steps never ran again; one cut off mid-step may repeat)",
        line.join(" ")
    );
    Ok(())
}
