//! The work driver and the inline worker: leases, dispositions, abandonment
//! on proof only, and the attach rules.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use restate_process_registry::{
    local_owner, AbandonRequest, DurableProcessWorker, InMemoryProcessRegistry, LeaseOwnerIdentity,
    ManualClock, ProcessAttach, ProcessAwaitOutput, ProcessError, ProcessEventAppendRequest,
    ProcessEventType, ProcessExecution, ProcessExecutor, ProcessInput, ProcessLeaseClaimOutcome,
    ProcessProvenance, ProcessRegistration, ProcessRegistry, ProcessResult, ProcessRunHandle,
    ProcessStarted, ProcessStatus, ProcessWorkDriver, RecoveryDisposition,
};
use serde_json::json;
use tokio::sync::Notify;

const HOUR_MS: u64 = 3_600_000;

/// Appends a milestone, then succeeds with the input payload; counts runs.
#[derive(Default)]
struct EchoExecutor {
    runs: AtomicUsize,
}

#[async_trait]
impl ProcessExecutor for EchoExecutor {
    async fn execute(&self, execution: ProcessExecution) -> ProcessResult<ProcessAwaitOutput> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        execution
            .append(ProcessEventAppendRequest::new(
                "job.milestone",
                json!({"step": 1}),
            ))
            .await?;
        match &execution.record.input {
            ProcessInput::Engine { payload, .. } => {
                Ok(ProcessAwaitOutput::success(payload.clone()))
            }
            ProcessInput::External { .. } => {
                Ok(ProcessAwaitOutput::failure("unexpected", "external input"))
            }
        }
    }
}

/// Blocks until released, so a test can act while a run is in flight.
struct GatedExecutor {
    started: Notify,
    release: Notify,
    runs: AtomicUsize,
}

impl GatedExecutor {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Notify::new(),
            release: Notify::new(),
            runs: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl ProcessExecutor for GatedExecutor {
    async fn execute(&self, _execution: ProcessExecution) -> ProcessResult<ProcessAwaitOutput> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        self.release.notified().await;
        Ok(ProcessAwaitOutput::success(json!("released")))
    }
}

struct FailingExecutor;

#[async_trait]
impl ProcessExecutor for FailingExecutor {
    async fn execute(&self, _execution: ProcessExecution) -> ProcessResult<ProcessAwaitOutput> {
        Err(ProcessError::Unavailable("downstream is down".into()))
    }
}

fn job(id: &str, disposition: RecoveryDisposition) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::Engine {
            kind: "echo".into(),
            payload: json!({"answer": 42}),
        },
        ProcessProvenance::host(),
    )
    .with_disposition(disposition)
    .with_extra_event_types([ProcessEventType::any("job.milestone")])
}

fn stranger(host: &str, pid: u32) -> LeaseOwnerIdentity {
    LeaseOwnerIdentity {
        owner_id: "other-worker".into(),
        incarnation: format!("other-{pid}"),
        host: host.into(),
        pid,
    }
}

/// A pid that existed on this host and has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait for true");
    pid
}

struct Setup {
    clock: ManualClock,
    driver: ProcessWorkDriver,
    registry: Arc<dyn ProcessRegistry>,
}

fn setup(executor: Arc<dyn ProcessExecutor>, ttl: Duration) -> Setup {
    let clock = ManualClock::new(1_000_000);
    let raw: Arc<dyn ProcessRegistry> =
        Arc::new(InMemoryProcessRegistry::with_clock(Arc::new(clock.clone())));
    let worker = DurableProcessWorker::new(executor).with_lease_ttl(ttl);
    let driver = ProcessWorkDriver::inline(raw, worker);
    let registry = driver.process_registry();
    Setup {
        clock,
        driver,
        registry,
    }
}

#[tokio::test]
async fn inline_worker_runs_a_pending_row_to_its_outcome() {
    let executor = Arc::new(EchoExecutor::default());
    let Setup {
        driver, registry, ..
    } = setup(executor.clone(), Duration::from_secs(30));
    registry
        .register_process(job("job-1", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();

    driver.claim_and_run_pending("registered").await.unwrap();

    let output = driver.await_terminal("job-1").await.unwrap();
    assert_eq!(output, ProcessAwaitOutput::success(json!({"answer": 42})));
    let record = registry.get_process("job-1").await.unwrap();
    let started = record.first_started.expect("start recorded");
    assert_eq!(started.fencing_token, 1);
    let events = registry.events_after("job-1", 0).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["job.milestone", "process.completed"]);
    assert_eq!(
        registry.get_process_lease("job-1").await.unwrap(),
        None,
        "lease released"
    );

    driver.claim_and_run_pending("again").await.unwrap();
    assert_eq!(
        executor.runs.load(Ordering::SeqCst),
        1,
        "a terminal row is never run again"
    );
}

#[tokio::test]
async fn externally_owned_rows_are_never_executed() {
    let executor = Arc::new(EchoExecutor::default());
    let Setup {
        driver, registry, ..
    } = setup(executor.clone(), Duration::from_secs(30));
    registry
        .register_process(job("ext", RecoveryDisposition::ExternallyOwned))
        .await
        .unwrap();
    driver.claim_and_run_pending("tick").await.unwrap();
    assert_eq!(executor.runs.load(Ordering::SeqCst), 0);
    let record = registry.get_process("ext").await.unwrap();
    assert_eq!(record.status, ProcessStatus::Running);
    assert_eq!(record.first_started, None);
    assert_eq!(registry.get_process_lease("ext").await.unwrap(), None);
}

#[tokio::test]
async fn a_busy_lease_is_left_to_its_holder() {
    let executor = Arc::new(EchoExecutor::default());
    let Setup {
        driver, registry, ..
    } = setup(executor.clone(), Duration::from_secs(30));
    registry
        .register_process(job("held", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let holder = local_owner("someone-else");
    registry
        .claim_process_lease("held", &holder, HOUR_MS)
        .await
        .unwrap();
    driver.claim_and_run_pending("tick").await.unwrap();
    assert_eq!(executor.runs.load(Ordering::SeqCst), 0);
    let lease = registry.get_process_lease("held").await.unwrap().unwrap();
    assert_eq!(lease.owner, holder, "the holder keeps its lease");
}

#[tokio::test]
async fn started_owner_bound_rows_are_never_rerun_while_the_holder_may_live() {
    let executor = Arc::new(EchoExecutor::default());
    let Setup {
        clock,
        driver,
        registry,
    } = setup(executor.clone(), Duration::from_secs(30));
    registry
        .register_process(job("bound", RecoveryDisposition::OwnerBound))
        .await
        .unwrap();
    // A live holder on this host (this very test process) and one elsewhere.
    for (id, holder) in [
        ("bound", local_owner("other-worker")),
        ("bound-remote", stranger("some-other-host", dead_pid())),
    ] {
        if id != "bound" {
            registry
                .register_process(job(id, RecoveryDisposition::OwnerBound))
                .await
                .unwrap();
        }
        let lease = registry
            .claim_process_lease(id, &holder, 1_000)
            .await
            .unwrap()
            .acquired()
            .unwrap();
        registry
            .record_first_started(
                id,
                ProcessStarted {
                    owner: holder,
                    fencing_token: lease.fencing_token,
                    started_at_ms: 1,
                },
            )
            .await
            .unwrap();
    }
    clock.advance(HOUR_MS);
    driver.claim_and_run_pending("sweep").await.unwrap();
    assert_eq!(executor.runs.load(Ordering::SeqCst), 0, "never re-run");
    for id in ["bound", "bound-remote"] {
        let record = registry.get_process(id).await.unwrap();
        assert_eq!(
            record.status,
            ProcessStatus::Running,
            "elapsed time alone never ends {id}"
        );
    }
}

#[tokio::test]
async fn a_started_owner_bound_row_whose_holder_died_is_abandoned_with_evidence() {
    let executor = Arc::new(EchoExecutor::default());
    let Setup {
        driver, registry, ..
    } = setup(executor.clone(), Duration::from_secs(30));
    registry
        .register_process(job("orphan", RecoveryDisposition::OwnerBound))
        .await
        .unwrap();
    let mut holder = local_owner("crashed-worker");
    holder.pid = dead_pid();
    let lease = registry
        .claim_process_lease("orphan", &holder, HOUR_MS)
        .await
        .unwrap()
        .acquired()
        .unwrap();
    registry
        .record_first_started(
            "orphan",
            ProcessStarted {
                owner: holder.clone(),
                fencing_token: lease.fencing_token,
                started_at_ms: 1,
            },
        )
        .await
        .unwrap();

    driver.claim_and_run_pending("sweep").await.unwrap();

    assert_eq!(executor.runs.load(Ordering::SeqCst), 0);
    let output = driver.await_terminal("orphan").await.unwrap();
    let ProcessAwaitOutput::Abandoned { evidence, .. } = output else {
        panic!("expected abandoned, got {output:?}");
    };
    assert_eq!(evidence["reason"], "owner_gone");
    assert_eq!(evidence["owner"]["pid"], json!(holder.pid));
    assert_eq!(
        registry.get_process_lease("orphan").await.unwrap(),
        None,
        "reclaimed lease released"
    );
}

#[tokio::test]
async fn an_abandon_request_takes_effect_only_once_the_lease_lapses() {
    let executor = Arc::new(EchoExecutor::default());
    let Setup {
        clock,
        driver,
        registry,
    } = setup(executor.clone(), Duration::from_secs(30));
    registry
        .register_process(job("stop-me", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let holder = local_owner("slow-worker");
    registry
        .claim_process_lease("stop-me", &holder, 10_000)
        .await
        .unwrap();
    let request = AbandonRequest {
        requested_by: "operator".into(),
        reason: "no longer needed".into(),
        requested_at_ms: 5,
    };
    registry
        .request_process_abandon("stop-me", request.clone())
        .await
        .unwrap();

    driver.claim_and_run_pending("first").await.unwrap();
    assert_eq!(
        registry.get_process("stop-me").await.unwrap().status,
        ProcessStatus::Running
    );

    clock.advance(10_001);
    driver.claim_and_run_pending("after lapse").await.unwrap();
    let output = driver.await_terminal("stop-me").await.unwrap();
    let ProcessAwaitOutput::Abandoned { evidence, .. } = output else {
        panic!("expected abandoned, got {output:?}");
    };
    assert_eq!(evidence["reason"], "abandon_requested");
    assert_eq!(evidence["request"]["requested_by"], "operator");
    assert_eq!(
        executor.runs.load(Ordering::SeqCst),
        0,
        "an abandon request stops runs"
    );
}

#[tokio::test]
async fn an_executor_error_leaves_the_row_pending_and_the_lease_free() {
    let Setup {
        driver, registry, ..
    } = setup(Arc::new(FailingExecutor), Duration::from_secs(30));
    registry
        .register_process(job("flaky", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let err = driver.claim_and_run_pending("tick").await.unwrap_err();
    assert_eq!(err, ProcessError::Unavailable("downstream is down".into()));
    let record = registry.get_process("flaky").await.unwrap();
    assert_eq!(record.status, ProcessStatus::Running);
    assert_eq!(registry.get_process_lease("flaky").await.unwrap(), None);
    let err = driver.claim_and_run_pending("retry").await.unwrap_err();
    assert_eq!(
        err,
        ProcessError::Unavailable("downstream is down".into()),
        "a rerunnable row is tried again"
    );
}

#[tokio::test]
async fn overlapping_passes_run_a_row_once() {
    let executor = GatedExecutor::new();
    let Setup {
        driver, registry, ..
    } = setup(executor.clone(), Duration::from_secs(30));
    registry
        .register_process(job("once", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let first = tokio::spawn({
        let driver = driver.clone();
        async move { driver.claim_and_run_pending("first").await }
    });
    executor.started.notified().await;
    driver.claim_and_run_pending("second").await.unwrap();
    executor.release.notify_one();
    first.await.unwrap().unwrap();
    assert_eq!(executor.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        driver.await_terminal("once").await.unwrap(),
        ProcessAwaitOutput::success(json!("released"))
    );
}

#[tokio::test]
async fn a_run_that_loses_its_lease_stops_and_records_nothing() {
    let executor = GatedExecutor::new();
    let Setup {
        driver, registry, ..
    } = setup(executor.clone(), Duration::from_millis(150));
    registry
        .register_process(job("fenced", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let run = tokio::spawn({
        let driver = driver.clone();
        async move { driver.claim_and_run_pending("run").await }
    });
    executor.started.notified().await;
    let observed = registry.get_process_lease("fenced").await.unwrap().unwrap();
    let usurper = stranger("another-host", 1);
    let outcome = registry
        .reclaim_process_lease("fenced", &usurper, &observed, HOUR_MS)
        .await
        .unwrap();
    assert!(matches!(outcome, ProcessLeaseClaimOutcome::Acquired(_)));

    let err = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        ProcessError::LeaseSuperseded {
            process_id: "fenced".into()
        }
    );
    assert_eq!(
        registry.get_process("fenced").await.unwrap().status,
        ProcessStatus::Running
    );
    let lease = registry.get_process_lease("fenced").await.unwrap().unwrap();
    assert_eq!(
        lease.owner, usurper,
        "the stale run's release cannot free the new lease"
    );
}

struct NoRuns;

#[async_trait]
impl ProcessRunHandle for NoRuns {
    async fn claim_and_run_pending(&self) -> ProcessResult<()> {
        Ok(())
    }
}

/// Counts calls and answers with a fixed result.
struct ScriptedAttach {
    calls: AtomicUsize,
    answer: ProcessResult<ProcessAwaitOutput>,
}

#[async_trait]
impl ProcessAttach for ScriptedAttach {
    async fn await_terminal(&self, _process_id: &str) -> ProcessResult<ProcessAwaitOutput> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
}

fn attach_driver(
    answer: ProcessResult<ProcessAwaitOutput>,
) -> (ProcessWorkDriver, Arc<ScriptedAttach>) {
    let attach = Arc::new(ScriptedAttach {
        calls: AtomicUsize::new(0),
        answer,
    });
    let driver = ProcessWorkDriver::new(Arc::new(InMemoryProcessRegistry::new()), Arc::new(NoRuns))
        .with_attach(attach.clone());
    (driver, attach)
}

#[tokio::test]
async fn a_terminal_row_short_circuits_before_attach() {
    let (driver, attach) =
        attach_driver(Err(ProcessError::Unavailable("must not be called".into())));
    let registry = driver.process_registry();
    registry
        .register_process(job("done", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    registry
        .complete_process("done", ProcessAwaitOutput::success(json!("ready")))
        .await
        .unwrap();
    let output = driver.await_terminal("done").await.unwrap();
    assert_eq!(output, ProcessAwaitOutput::success(json!("ready")));
    assert_eq!(attach.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn attach_errors_propagate_with_no_poll_fallback() {
    let (driver, attach) = attach_driver(Err(ProcessError::Unavailable("attach failed".into())));
    let registry = driver.process_registry();
    registry
        .register_process(job("live", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(2), driver.await_terminal("live"))
        .await
        .expect("an attach error returns at once")
        .unwrap_err();
    assert_eq!(err, ProcessError::Unavailable("attach failed".into()));
    assert_eq!(attach.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn attach_answers_for_a_live_row() {
    let (driver, attach) = attach_driver(Ok(ProcessAwaitOutput::success(json!("from attach"))));
    driver
        .process_registry()
        .register_process(job("live", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let output = driver.await_terminal("live").await.unwrap();
    assert_eq!(output, ProcessAwaitOutput::success(json!("from attach")));
    assert_eq!(attach.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn driver_waits_report_unknown_processes() {
    let (driver, attach) = attach_driver(Ok(ProcessAwaitOutput::success(json!(0))));
    let err = driver.await_terminal("ghost").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown process `ghost`");
    assert_eq!(attach.calls.load(Ordering::SeqCst), 0);
    let err = driver.await_event("ghost", "t", 0).await.unwrap_err();
    assert_eq!(
        err,
        ProcessError::UnknownProcess {
            process_id: "ghost".into()
        }
    );
}

#[tokio::test]
async fn driver_hands_out_the_watched_registry_and_its_hub() {
    let (driver, _) = attach_driver(Ok(ProcessAwaitOutput::success(json!(0))));
    let mut rx = driver.change_hub().subscribe("p");
    driver
        .clone()
        .process_registry()
        .register_process(job("p", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_millis(200), rx.changed())
        .await
        .unwrap()
        .unwrap();
    let waiter = tokio::spawn({
        let awaiter = driver.awaiter();
        async move { awaiter.await_event("p", "job.milestone", 0).await }
    });
    driver
        .process_registry()
        .append_event(
            "p",
            ProcessEventAppendRequest::new("job.milestone", json!({"step": 2})),
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.payload, json!({"step": 2}));
}
