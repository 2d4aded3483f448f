//! The work driver and the inline worker: leases, dispositions, abandonment
//! on proof only, and the attach rules.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use restate_process_registry::{
    host_name, local_owner, AbandonRequest, DurableProcessWorker, InMemoryProcessRegistry,
    LeaseOwnerIdentity, LeaseOwnerLiveness, LivenessProbe, LocalLiveness, ManualClock,
    ProcessAttach, ProcessAwaitOutput, ProcessError, ProcessEvent, ProcessEventAppendRequest,
    ProcessEventAppendResult, ProcessEventType, ProcessExecution, ProcessExecutor,
    ProcessExternalRef, ProcessHandleDescriptor, ProcessHandleGrant, ProcessHandleGrantEntry,
    ProcessInput, ProcessLease, ProcessLeaseClaimOutcome, ProcessLeaseCompletion,
    ProcessListFilter, ProcessProvenance, ProcessPruneReport, ProcessRecord, ProcessRegistration,
    ProcessRegistry, ProcessResult, ProcessRunHandle, ProcessSessionDeleteReport, ProcessStarted,
    ProcessStatus, ProcessWorkDriver, RecoveryDisposition, SessionScope, WaitState,
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
        Err(ProcessError::unavailable("downstream is down"))
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

/// A worker on `host` (this boot) running as `pid`.
fn stranger(host: &str, pid: u32) -> LeaseOwnerIdentity {
    LeaseOwnerIdentity {
        liveness: with_pid(host, pid),
        ..LeaseOwnerIdentity::opaque("other-worker", format!("other-{pid}"))
    }
}

/// A local-process liveness on `host` and this boot, for `pid`.
fn with_pid(host: &str, pid: u32) -> LeaseOwnerLiveness {
    let boot = LocalLiveness.boot_id().unwrap_or_default();
    LeaseOwnerLiveness::local_process_with(host, boot, pid, "1")
}

/// Takes every process on this host for gone.
struct EveryoneGone;

impl LivenessProbe for EveryoneGone {
    fn boot_id(&self) -> Option<String> {
        LocalLiveness.boot_id()
    }

    fn process_alive(&self, _pid: u32, _process_start: &str) -> Option<bool> {
        Some(false)
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
    assert_eq!(started.owner.owner_id, "process-worker");
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
        registry
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
    holder.liveness = with_pid(&host_name(), dead_pid());
    registry
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
    assert_eq!(evidence["owner"], json!(holder));
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
    assert_eq!(err, ProcessError::unavailable("downstream is down"));
    let record = registry.get_process("flaky").await.unwrap();
    assert_eq!(record.status, ProcessStatus::Running);
    assert_eq!(registry.get_process_lease("flaky").await.unwrap(), None);
    let err = driver.claim_and_run_pending("retry").await.unwrap_err();
    assert_eq!(
        err,
        ProcessError::unavailable("downstream is down"),
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
    let raw = InMemoryProcessRegistry::with_clock(Arc::new(ManualClock::new(1_000_000)));
    // The usurper's view of the same state proves the running worker dead.
    let usurping = raw.clone().with_liveness(Arc::new(EveryoneGone));
    let worker =
        DurableProcessWorker::new(executor.clone()).with_lease_ttl(Duration::from_millis(150));
    let driver = ProcessWorkDriver::inline(Arc::new(raw), worker);
    let registry = driver.process_registry();
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
    let usurper = LeaseOwnerIdentity::local_process("usurper", "u-1", host_name());
    let outcome = usurping
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
    let (driver, attach) = attach_driver(Err(ProcessError::unavailable("must not be called")));
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
    let (driver, attach) = attach_driver(Err(ProcessError::unavailable("attach failed")));
    let registry = driver.process_registry();
    registry
        .register_process(job("live", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(2), driver.await_terminal("live"))
        .await
        .expect("an attach error returns at once")
        .unwrap_err();
    assert_eq!(err, ProcessError::unavailable("attach failed"));
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

/// The in-memory registry with faults a test switches on: renewals that
/// fail with `Unavailable` a number of times, and a stale listing.
struct Faulty {
    inner: Arc<dyn ProcessRegistry>,
    failing_renewals: AtomicUsize,
    renewals: AtomicUsize,
    stale_listing: std::sync::Mutex<Option<Vec<ProcessRecord>>>,
}

impl Faulty {
    fn new(inner: Arc<dyn ProcessRegistry>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            failing_renewals: AtomicUsize::new(0),
            renewals: AtomicUsize::new(0),
            stale_listing: std::sync::Mutex::new(None),
        })
    }
}

#[async_trait]
impl ProcessRegistry for Faulty {
    async fn register_process(&self, r: ProcessRegistration) -> ProcessResult<ProcessRecord> {
        self.inner.register_process(r).await
    }
    async fn set_external_ref(
        &self,
        id: &str,
        external_ref: ProcessExternalRef,
    ) -> ProcessResult<ProcessRecord> {
        self.inner.set_external_ref(id, external_ref).await
    }
    async fn grant_handle(
        &self,
        scope: &SessionScope,
        id: &str,
        descriptor: ProcessHandleDescriptor,
    ) -> ProcessResult<ProcessHandleGrant> {
        self.inner.grant_handle(scope, id, descriptor).await
    }
    async fn revoke_handle(&self, scope: &SessionScope, id: &str) -> ProcessResult<()> {
        self.inner.revoke_handle(scope, id).await
    }
    async fn transfer_handle_grants(
        &self,
        from: &SessionScope,
        to: &SessionScope,
        ids: &[String],
    ) -> ProcessResult<()> {
        self.inner.transfer_handle_grants(from, to, ids).await
    }
    async fn list_handle_grants(
        &self,
        scope: &SessionScope,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>> {
        self.inner.list_handle_grants(scope).await
    }
    async fn handle_grants_for_process(&self, id: &str) -> ProcessResult<Vec<ProcessHandleGrant>> {
        self.inner.handle_grants_for_process(id).await
    }
    async fn delete_session_process_state(
        &self,
        session_id: &str,
    ) -> ProcessResult<ProcessSessionDeleteReport> {
        self.inner.delete_session_process_state(session_id).await
    }
    async fn append_event(
        &self,
        id: &str,
        request: ProcessEventAppendRequest,
    ) -> ProcessResult<ProcessEventAppendResult> {
        self.inner.append_event(id, request).await
    }
    async fn events_after(&self, id: &str, after: u64) -> ProcessResult<Vec<ProcessEvent>> {
        self.inner.events_after(id, after).await
    }
    async fn wake_events_after(&self, id: &str, after: u64) -> ProcessResult<Vec<ProcessEvent>> {
        self.inner.wake_events_after(id, after).await
    }
    async fn complete_process(
        &self,
        id: &str,
        output: ProcessAwaitOutput,
    ) -> ProcessResult<ProcessRecord> {
        self.inner.complete_process(id, output).await
    }
    async fn record_first_started(
        &self,
        id: &str,
        started: ProcessStarted,
    ) -> ProcessResult<ProcessRecord> {
        self.inner.record_first_started(id, started).await
    }
    async fn request_process_abandon(
        &self,
        id: &str,
        request: AbandonRequest,
    ) -> ProcessResult<ProcessRecord> {
        self.inner.request_process_abandon(id, request).await
    }
    async fn set_process_wait(&self, id: &str, wait: WaitState) -> ProcessResult<ProcessRecord> {
        self.inner.set_process_wait(id, wait).await
    }
    async fn clear_process_wait(&self, id: &str) -> ProcessResult<ProcessRecord> {
        self.inner.clear_process_wait(id).await
    }
    async fn get_process(&self, id: &str) -> Option<ProcessRecord> {
        self.inner.get_process(id).await
    }
    async fn list_processes(
        &self,
        filter: &ProcessListFilter,
    ) -> ProcessResult<Vec<ProcessRecord>> {
        self.inner.list_processes(filter).await
    }
    async fn ack_wake(&self, id: &str, sequence: u64) -> ProcessResult<()> {
        self.inner.ack_wake(id, sequence).await
    }
    async fn list_non_terminal(&self) -> ProcessResult<Vec<ProcessRecord>> {
        let stale = self
            .stale_listing
            .lock()
            .map(|stale| stale.clone())
            .unwrap_or_default();
        match stale {
            Some(rows) => Ok(rows),
            None => self.inner.list_non_terminal().await,
        }
    }
    async fn claim_process_lease(
        &self,
        id: &str,
        owner: &LeaseOwnerIdentity,
        ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        self.inner.claim_process_lease(id, owner, ttl_ms).await
    }
    async fn reclaim_process_lease(
        &self,
        id: &str,
        owner: &LeaseOwnerIdentity,
        observed: &ProcessLease,
        ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        self.inner
            .reclaim_process_lease(id, owner, observed, ttl_ms)
            .await
    }
    async fn renew_process_lease(
        &self,
        lease: &ProcessLease,
        ttl_ms: u64,
    ) -> ProcessResult<ProcessLease> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        let failing =
            self.failing_renewals
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                });
        if failing.is_ok() {
            return Err(ProcessError::unavailable("renewal lost on the way"));
        }
        self.inner.renew_process_lease(lease, ttl_ms).await
    }
    async fn get_process_lease(&self, id: &str) -> ProcessResult<Option<ProcessLease>> {
        self.inner.get_process_lease(id).await
    }
    async fn complete_process_lease(
        &self,
        completion: &ProcessLeaseCompletion,
    ) -> ProcessResult<()> {
        self.inner.complete_process_lease(completion).await
    }
    async fn prune_terminal_processes(&self, cutoff_ms: u64) -> ProcessResult<ProcessPruneReport> {
        self.inner.prune_terminal_processes(cutoff_ms).await
    }
}

/// Runs for `hold`, then succeeds; records how many run at once.
#[derive(Default)]
struct SlowExecutor {
    hold: Duration,
    running: AtomicUsize,
    most: AtomicUsize,
    runs: AtomicUsize,
}

#[async_trait]
impl ProcessExecutor for SlowExecutor {
    async fn execute(&self, _execution: ProcessExecution) -> ProcessResult<ProcessAwaitOutput> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.hold).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(ProcessAwaitOutput::success(json!("slow")))
    }
}

fn faulty_driver(
    executor: Arc<dyn ProcessExecutor>,
    ttl: Duration,
    limit: usize,
) -> (Arc<Faulty>, ProcessWorkDriver) {
    let faulty = Faulty::new(Arc::new(InMemoryProcessRegistry::new()));
    let worker = DurableProcessWorker::new(executor)
        .with_lease_ttl(ttl)
        .with_max_concurrent_runs(limit);
    let driver = ProcessWorkDriver::inline(faulty.clone(), worker);
    (faulty, driver)
}

#[tokio::test]
async fn a_transient_renewal_failure_is_retried_within_the_lease() {
    let executor = Arc::new(SlowExecutor {
        hold: Duration::from_millis(900),
        ..SlowExecutor::default()
    });
    let (faulty, driver) = faulty_driver(executor.clone(), Duration::from_millis(600), 4);
    faulty.failing_renewals.store(3, Ordering::SeqCst);
    let registry = driver.process_registry();
    registry
        .register_process(job("flaky", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    driver.claim_and_run_pending("flaky").await.unwrap();
    assert_eq!(
        registry
            .get_process("flaky")
            .await
            .unwrap()
            .status
            .await_output(),
        Some(&ProcessAwaitOutput::success(json!("slow")))
    );
    assert!(
        faulty.renewals.load(Ordering::SeqCst) > 3,
        "the failed renewals were retried"
    );
}

#[tokio::test]
async fn runs_are_bounded_and_a_call_waits_only_for_its_own() {
    let executor = Arc::new(SlowExecutor {
        hold: Duration::from_millis(200),
        ..SlowExecutor::default()
    });
    let (_, driver) = faulty_driver(executor.clone(), Duration::from_secs(30), 2);
    let registry = driver.process_registry();
    for n in 0..5 {
        registry
            .register_process(job(
                &format!("bounded-{n}"),
                RecoveryDisposition::Rerunnable,
            ))
            .await
            .unwrap();
    }
    let first = tokio::spawn({
        let driver = driver.clone();
        async move { driver.claim_and_run_pending("first").await }
    });
    while executor.running.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Every row is taken by the first call: the second returns without
    // waiting for them.
    tokio::time::timeout(
        Duration::from_millis(150),
        driver.claim_and_run_pending("second"),
    )
    .await
    .expect("the second call does not wait for the first call's bodies")
    .unwrap();
    first.await.unwrap().unwrap();
    assert_eq!(executor.runs.load(Ordering::SeqCst), 5);
    assert_eq!(executor.most.load(Ordering::SeqCst), 2);
    assert!(registry.list_non_terminal().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_row_that_ended_after_listing_is_skipped() {
    let executor = Arc::new(SlowExecutor::default());
    let (faulty, driver) = faulty_driver(executor.clone(), Duration::from_secs(30), 4);
    let registry = driver.process_registry();
    registry
        .register_process(job("ended", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    registry
        .register_process(job("gone", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    let listed = registry.list_non_terminal().await.unwrap();
    assert_eq!(listed.len(), 2);
    *faulty.stale_listing.lock().unwrap() = Some(listed);
    for id in ["ended", "gone"] {
        registry
            .complete_process(id, ProcessAwaitOutput::success(json!("before")))
            .await
            .unwrap();
    }
    let far_future = u64::MAX / 2;
    registry.prune_terminal_processes(far_future).await.unwrap();
    registry
        .register_process(job("ended", RecoveryDisposition::Rerunnable))
        .await
        .unwrap();
    registry
        .complete_process("ended", ProcessAwaitOutput::success(json!("before")))
        .await
        .unwrap();
    driver.claim_and_run_pending("stale").await.unwrap();
    assert_eq!(executor.runs.load(Ordering::SeqCst), 0);
}
