//! Durable process bodies on a real restate-server: the endpoint runs as
//! its own OS process (`procreg serve --runner demo`) so a test can kill
//! it with SIGKILL in the middle of a body and start it again.
//!
//! One server and one endpoint serve the whole binary, on a thread of
//! their own that outlives every test. The kill test holds the endpoint
//! exclusively; the others share it and never see a kill.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use restate_process_registry::testing::support::unique_id;
use restate_process_registry::unix_now_ms;
use restate_process_registry::{
    AbandonRequest, ProcessAttach, ProcessAwaitOutput, ProcessEventType, ProcessInput,
    ProcessProvenance, ProcessRegistration, ProcessRegistry, ProcessWorkDriver,
    RecoveryDisposition, RestateProcessAttach, RestateProcessRegistry, RestateProcessRuns,
};
use restate_process_registry_services::runner::STEP_ATTEMPTS;
use restate_process_registry_testkit::local_server::{die_with_parent, LocalRestate};
use restate_process_registry_testkit::ports::Ports;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, RwLock};
use tokio::task::JoinSet;

/// The event type the demo body appends after each step.
const PROGRESS: &str = "progress";
/// Longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// Held for reading by every test, for writing by the one that kills the
/// endpoint: no other body is mid-step when it dies.
static ENDPOINT_GATE: RwLock<()> = RwLock::const_new(());

/// What the stack thread does for a test.
enum Control {
    /// SIGKILL the endpoint and wait until it is gone.
    Kill(oneshot::Sender<()>),
    /// Start the endpoint again on its port and wait until it listens.
    Start(oneshot::Sender<()>),
}

/// The shared stack, as tests see it.
struct Stack {
    ingress: String,
    control: mpsc::UnboundedSender<Control>,
}

impl Stack {
    /// This binary's stack, started on first use.
    fn get() -> &'static Stack {
        static STACK: OnceLock<Stack> = OnceLock::new();
        STACK.get_or_init(|| {
            let (ready, started) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the stack");
                runtime.block_on(run_stack(ready));
            });
            started.recv().expect("the stack thread starts the stack")
        })
    }

    fn registry(&self) -> RestateProcessRegistry {
        RestateProcessRegistry::connect(&self.ingress).expect("ingress url")
    }

    async fn order(&self, command: impl FnOnce(oneshot::Sender<()>) -> Control) {
        let (done, finished) = oneshot::channel();
        self.control
            .send(command(done))
            .expect("the stack thread is alive");
        finished.await.expect("the stack thread answers");
    }

    /// SIGKILL, a pause, and the same endpoint again on the same port.
    async fn kill_and_restart_endpoint(&self, down_for: Duration) {
        self.order(Control::Kill).await;
        tokio::time::sleep(down_for).await;
        self.order(Control::Start).await;
    }
}

/// Runs on the stack thread for the life of the test binary: the server,
/// the endpoint child, and the kill/start orders.
async fn run_stack(ready: std::sync::mpsc::Sender<Stack>) {
    let server = LocalRestate::start().await.expect("restate-server starts");
    // Held for the binary's life: the endpoint restarts on the same port.
    let reserved = Ports::reserve(1).expect("a free port");
    let port = reserved.ports()[0];
    // In the server's temp dir, which a later run sweeps away.
    let log = server.base_dir().join("endpoint.log");
    let mut endpoint = spawn_endpoint(port, &log).await;
    server
        .register_deployment(&format!("http://127.0.0.1:{port}/"))
        .await
        .expect("the deployment registers");
    let (control, mut orders) = mpsc::unbounded_channel();
    let stack = Stack {
        ingress: server.ingress_url(),
        control,
    };
    if ready.send(stack).is_err() {
        return;
    }
    while let Some(order) = orders.recv().await {
        match order {
            Control::Kill(done) => {
                endpoint.kill().await.expect("SIGKILL the endpoint");
                let _ = done.send(());
            }
            Control::Start(done) => {
                endpoint = spawn_endpoint(port, &log).await;
                let _ = done.send(());
            }
        }
    }
    drop(server);
    drop(reserved);
}

/// `procreg serve --runner demo` on `port`, dying with this thread.
async fn spawn_endpoint(port: u16, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the endpoint log opens");
    let mut command = Command::new(env!("CARGO_BIN_EXE_procreg"));
    command
        .args(["serve", "--runner", "demo", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the endpoint log"))
        .stderr(log)
        .kill_on_drop(true);
    // The stack is a static nobody drops: the endpoint must die with us.
    die_with_parent(&mut command);
    let child = command.spawn().expect("procreg serve starts");
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("procreg serve did not listen on {port}");
}

/// A demo process: its id, side-effect file and registration.
struct Demo {
    id: String,
    /// Removed on drop.
    file: tempfile::TempPath,
}

impl Demo {
    fn new(tag: &str) -> Self {
        let id = unique_id(tag);
        let file = tempfile::Builder::new()
            .prefix("procreg-runner-")
            .suffix(".txt")
            .tempfile()
            .expect("a side-effect file")
            .into_temp_path();
        Self { id, file }
    }

    /// The registration of a demo body with `steps` steps of `delay_ms`,
    /// plus the `extra` payload fields.
    fn registration(&self, steps: u32, delay_ms: u64, extra: Value) -> ProcessRegistration {
        let mut payload = json!({
            "steps": steps,
            "delay_ms": delay_ms,
            "file": &*self.file,
        });
        if let (Some(payload), Some(extra)) = (payload.as_object_mut(), extra.as_object()) {
            payload.extend(extra.clone());
        }
        ProcessRegistration::new(
            &self.id,
            ProcessInput::Engine {
                kind: "demo.steps".into(),
                payload,
            },
            ProcessProvenance::host(),
        )
        .with_extra_event_types([ProcessEventType::any(PROGRESS)])
    }

    /// How often each line appears in the side-effect file.
    fn lines(&self) -> BTreeMap<String, usize> {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            *counts.entry(line.to_owned()).or_default() += 1;
        }
        counts
    }

    /// The steps whose `progress` event is in the log.
    async fn progressed(&self, registry: &RestateProcessRegistry) -> Vec<u64> {
        let events = registry.events_after(&self.id, 0).await.expect("the log");
        events
            .iter()
            .filter(|event| event.event_type == PROGRESS)
            .filter_map(|event| event.payload["step"].as_u64())
            .collect()
    }

    /// Waits until at least `steps` progress events are in the log.
    async fn wait_progress(&self, registry: &RestateProcessRegistry, steps: usize) -> Vec<u64> {
        let reached = tokio::time::timeout(PATIENCE, async {
            loop {
                let done = self.progressed(registry).await;
                if done.len() >= steps {
                    return done;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        reached.await.expect("the body makes progress")
    }
}

/// The outcome, waited for through ingress attach.
async fn outcome(registry: &RestateProcessRegistry, id: &str) -> ProcessAwaitOutput {
    let attach = RestateProcessAttach::new(registry.clone());
    tokio::time::timeout(PATIENCE, attach.await_terminal(id))
        .await
        .expect("the process ends in time")
        .expect("attach answers")
}

fn failure_of(output: &ProcessAwaitOutput) -> (&str, &str) {
    match output {
        ProcessAwaitOutput::Failure { code, message, .. } => (code, message),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn step_lines(steps: u32) -> BTreeMap<String, usize> {
    (1..=steps)
        .map(|step| (format!("step {step}"), 1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_endpoint_resumes_the_body_without_redoing_journaled_steps() {
    let stack = Stack::get();
    let _exclusive = ENDPOINT_GATE.write().await;
    let registry = stack.registry();
    let demo = Demo::new("runner-kill");
    let steps = 8;
    registry
        .register_process(demo.registration(steps, 250, json!({})))
        .await
        .expect("register");
    let waiter = {
        let (registry, id) = (registry.clone(), demo.id.clone());
        tokio::spawn(async move { outcome(&registry, &id).await })
    };

    let journaled = demo.wait_progress(&registry, 3).await;
    assert!(
        journaled.len() < steps as usize,
        "the body ended before the kill"
    );
    stack
        .kill_and_restart_endpoint(Duration::from_millis(300))
        .await;

    let output = waiter.await.expect("the waiter");
    assert_eq!(
        output,
        ProcessAwaitOutput::success(json!({ "steps": steps }))
    );
    let lines = demo.lines();
    for step in 1..=steps {
        let seen = lines.get(&format!("step {step}")).copied().unwrap_or(0);
        // A step cut off before its result was journaled may run twice.
        assert!((1..=2).contains(&seen), "step {step} ran {seen} times");
    }
    for step in &journaled {
        assert_eq!(
            lines.get(&format!("step {step}")),
            Some(&1),
            "step {step} was journaled before the kill, yet ran again: {lines:?}"
        );
    }
    let progressed = demo.progressed(&registry).await;
    assert_eq!(progressed, (1..=u64::from(steps)).collect::<Vec<_>>());
    let record = registry.get_process(&demo.id).await.expect("the row");
    assert_eq!(
        record.first_started.map(|s| s.owner.owner_id),
        Some("ProcessRunner".to_owned())
    );
    let lease = registry.get_process_lease(&demo.id).await.expect("lease");
    assert!(lease.is_none(), "the run released its lease: {lease:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandon_request_stops_the_running_body_cancelled() {
    let stack = Stack::get();
    let _shared = ENDPOINT_GATE.read().await;
    let registry = stack.registry();
    let demo = Demo::new("runner-abandon");
    registry
        .register_process(demo.registration(100, 50, json!({})))
        .await
        .expect("register");
    demo.wait_progress(&registry, 1).await;
    let request = AbandonRequest {
        requested_by: "operator".into(),
        reason: "no longer needed".into(),
        requested_at_ms: unix_now_ms(),
    };
    registry
        .request_process_abandon(&demo.id, request)
        .await
        .expect("abandon request");
    match outcome(&registry, &demo.id).await {
        ProcessAwaitOutput::Cancelled {
            message: Some(message),
            ..
        } => assert!(
            message.contains("abandon requested by operator: no longer needed"),
            "{message}"
        ),
        other => panic!("expected Cancelled with a reason, got {other:?}"),
    }
    let ran = demo.lines().len();
    assert!(ran < 100, "the body stopped early ({ran} steps ran)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_body_ends_failed_with_its_reason() {
    let stack = Stack::get();
    let _shared = ENDPOINT_GATE.read().await;
    let registry = stack.registry();
    let demo = Demo::new("runner-fail");
    let extra = json!({ "fail_at": 2, "reason": "the disk is full" });
    registry
        .register_process(demo.registration(3, 0, extra))
        .await
        .expect("register");
    let output = outcome(&registry, &demo.id).await;
    let (code, message) = failure_of(&output);
    assert_eq!(code, "body_failed");
    assert_eq!(message, "step 2 failed: the disk is full");
    assert_eq!(demo.lines(), step_lines(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_body_ends_failed_with_its_reason() {
    let stack = Stack::get();
    let _shared = ENDPOINT_GATE.read().await;
    let registry = stack.registry();
    let demo = Demo::new("runner-panic");
    let extra = json!({ "panic_at": 3, "reason": "an invariant broke" });
    registry
        .register_process(demo.registration(4, 0, extra))
        .await
        .expect("register");
    let output = outcome(&registry, &demo.id).await;
    let (code, message) = failure_of(&output);
    assert_eq!(code, "body_panicked");
    assert_eq!(message, "step 3 panicked: an invariant broke");
    assert_eq!(demo.lines(), step_lines(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_keeps_failing_gives_up_after_its_attempts() {
    let stack = Stack::get();
    let _shared = ENDPOINT_GATE.read().await;
    let registry = stack.registry();
    let demo = Demo::new("runner-flaky");
    let extra = json!({ "flaky_at": 2, "reason": "the service is down" });
    registry
        .register_process(demo.registration(3, 0, extra))
        .await
        .expect("register");
    let output = outcome(&registry, &demo.id).await;
    let (code, message) = failure_of(&output);
    assert_eq!(code, "body_failed");
    assert_eq!(message, "step 2 failed: the service is down");
    let mut expected = step_lines(1);
    let attempts = usize::try_from(STEP_ATTEMPTS).expect("a count");
    expected.insert("step 2 attempt".into(), attempts);
    assert_eq!(demo.lines(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_processes_registered_at_once_all_finish() {
    let stack = Stack::get();
    let _shared = ENDPOINT_GATE.read().await;
    let registry = stack.registry();
    let demos: Vec<Arc<Demo>> = (0..100)
        .map(|_| Arc::new(Demo::new("runner-many")))
        .collect();
    let mut runs = JoinSet::new();
    for demo in &demos {
        let (registry, demo) = (registry.clone(), Arc::clone(demo));
        runs.spawn(async move {
            registry
                .register_process(demo.registration(2, 10, json!({})))
                .await
                .expect("register");
            outcome(&registry, &demo.id).await
        });
    }
    while let Some(output) = runs.join_next().await {
        let output = output.expect("a run task");
        assert_eq!(output, ProcessAwaitOutput::success(json!({ "steps": 2 })));
    }
    for demo in &demos {
        assert_eq!(demo.lines(), step_lines(2), "{}", demo.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_externally_owned_engine_row_is_never_run() {
    let stack = Stack::get();
    let _shared = ENDPOINT_GATE.read().await;
    let registry = stack.registry();
    let demo = Demo::new("runner-external");
    let registration = demo
        .registration(2, 0, json!({}))
        .with_disposition(RecoveryDisposition::ExternallyOwned);
    registry
        .register_process(registration)
        .await
        .expect("register");
    let runs = RestateProcessRuns::new(registry.clone());
    assert!(!runs.start(&demo.id).await.expect("start answers"));
    let driver = ProcessWorkDriver::new(Arc::new(registry.clone()), Arc::new(runs));
    driver
        .claim_and_run_pending("test: an externally owned row")
        .await
        .expect("runs are submitted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = registry.get_process(&demo.id).await.expect("the row");
    assert!(!record.is_terminal());
    assert_eq!(record.first_started, None);
    assert!(demo.lines().is_empty(), "the body ran: {:?}", demo.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_twice_and_submitting_again_runs_the_body_once() {
    let stack = Stack::get();
    let _shared = ENDPOINT_GATE.read().await;
    let registry = stack.registry();
    let demo = Demo::new("runner-twice");
    let registration = demo.registration(4, 100, json!({}));
    let (first, second) = tokio::join!(
        registry.register_process(registration.clone()),
        registry.register_process(registration.clone()),
    );
    assert_eq!(first.expect("first"), second.expect("second"));
    registry
        .register_process(registration)
        .await
        .expect("a third time");

    // The whole host-side setup: submit pending rows, wait through attach.
    let attach = RestateProcessAttach::new(registry.clone());
    let runs = RestateProcessRuns::new(registry.clone());
    let driver = ProcessWorkDriver::new(Arc::new(registry.clone()), Arc::new(runs))
        .with_attach(Arc::new(attach));
    driver
        .claim_and_run_pending("test: submit again")
        .await
        .expect("runs are submitted");
    let output = tokio::time::timeout(PATIENCE, driver.await_terminal(&demo.id))
        .await
        .expect("the process ends in time")
        .expect("the outcome");
    assert_eq!(output, ProcessAwaitOutput::success(json!({ "steps": 4 })));
    assert!(RestateProcessRuns::new(registry.clone())
        .start(&demo.id)
        .await
        .map(|started| !started)
        .expect("start answers"));
    assert_eq!(demo.lines(), step_lines(4));
}
