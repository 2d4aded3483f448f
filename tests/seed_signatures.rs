//! A small host written against the signatures of seed 002
//! (`ProcessWorkDriver`) and seed 004 (`ProcessChangeHub`, the watched
//! decorator, `ProcessAwaiter`, `ProcessAttach`). It names only what those
//! seeds name, with `ProcessError` where they say `PluginError`; the
//! function-pointer bindings pin every constructor's exact parameter
//! types, and each piece then runs on the in-memory registry.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use restate_process_registry::{
    watch_process_registry, watch_process_registry_with_sink, DurableProcessWorker,
    InMemoryProcessRegistry, ProcessAttach, ProcessAwaitOutput, ProcessAwaiter, ProcessChangeHub,
    ProcessError, ProcessEvent, ProcessEventAppendRequest, ProcessEventSink, ProcessEventType,
    ProcessExecution, ProcessExecutor, ProcessInput, ProcessProvenance, ProcessRegistration,
    ProcessRegistry, ProcessRunHandle, ProcessWorkDriver,
};
use serde_json::json;
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(5);

type Registry = Arc<dyn ProcessRegistry>;
type RunHandle = Arc<dyn ProcessRunHandle>;
type Sink = Arc<dyn ProcessEventSink>;

/// The constructors exactly as the seeds declare them.
#[test]
fn constructors_have_the_seed_signatures() {
    let _: fn(Registry, RunHandle) -> ProcessWorkDriver = ProcessWorkDriver::new;
    let _: fn(Registry, RunHandle, Option<Sink>) -> ProcessWorkDriver =
        ProcessWorkDriver::new_with_sink;
    let _: fn(Registry, ProcessChangeHub, RunHandle) -> ProcessWorkDriver =
        ProcessWorkDriver::from_watched;
    let _: fn(Registry, DurableProcessWorker) -> ProcessWorkDriver = ProcessWorkDriver::inline;
    let _: fn(ProcessWorkDriver, Arc<dyn ProcessAttach>) -> ProcessWorkDriver =
        ProcessWorkDriver::with_attach;
    let _: fn(&ProcessWorkDriver) -> Registry = ProcessWorkDriver::process_registry;
    let _: fn(&ProcessWorkDriver) -> ProcessChangeHub = ProcessWorkDriver::change_hub;
    let _: fn(&ProcessWorkDriver) -> ProcessAwaiter = ProcessWorkDriver::awaiter;
    let _: fn(Registry) -> (Registry, ProcessChangeHub) = watch_process_registry;
    let _: fn(Registry, Option<Sink>) -> (Registry, ProcessChangeHub) =
        watch_process_registry_with_sink;
    let _: fn(Registry, ProcessChangeHub) -> ProcessAwaiter = ProcessAwaiter::new;
    let _: fn(Registry) -> ProcessAwaiter = ProcessAwaiter::polling;
    let _: fn() -> ProcessChangeHub = ProcessChangeHub::new;
}

fn memory() -> Registry {
    Arc::new(InMemoryProcessRegistry::new())
}

fn job(id: &str) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::External {
            metadata: json!({}),
        },
        ProcessProvenance::host(),
    )
    .with_extra_event_types([ProcessEventType::any("job.step")])
}

fn done(value: serde_json::Value) -> ProcessAwaitOutput {
    ProcessAwaitOutput::success(value)
}

/// A host's run handle: completes every pending row through the registry
/// it is told to use (the driver's, so waiters wake).
#[derive(Default)]
struct FinishPending {
    registry: OnceLock<Registry>,
}

#[async_trait]
impl ProcessRunHandle for FinishPending {
    async fn claim_and_run_pending(&self) -> Result<(), ProcessError> {
        let registry = self
            .registry
            .get()
            .ok_or_else(|| ProcessError::unavailable("no registry yet"))?;
        for record in registry.list_non_terminal().await? {
            registry
                .complete_process(&record.id, done(json!({ "ran": record.id })))
                .await?;
        }
        Ok(())
    }
}

/// A host's sink: remembers event types.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn types(&self) -> Vec<String> {
        self.0.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ProcessEventSink for Seen {
    async fn emit(&self, event: &ProcessEvent) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(event.event_type.clone());
        }
    }
}

/// A host's attach: implements only `await_terminal`, as seed 004 does.
struct FixedAttach;

#[async_trait]
impl ProcessAttach for FixedAttach {
    async fn await_terminal(&self, _process_id: &str) -> Result<ProcessAwaitOutput, ProcessError> {
        Ok(done(json!("from attach")))
    }
}

/// Seed 002's bounded wait, written by the host.
async fn bounded(
    driver: &ProcessWorkDriver,
    process_id: &str,
) -> Result<Option<ProcessAwaitOutput>, ProcessError> {
    match timeout(BOUND, driver.await_terminal(process_id)).await {
        Ok(Ok(output)) => Ok(Some(output)),
        Ok(Err(err)) => Err(err),
        Err(_elapsed) => Ok(None),
    }
}

#[tokio::test]
async fn new_drives_and_awaits_through_its_watched_registry() {
    let handle = Arc::new(FinishPending::default());
    let driver = ProcessWorkDriver::new(memory(), handle.clone());
    let registry = driver.process_registry();
    assert!(handle.registry.set(Arc::clone(&registry)).is_ok());
    registry.register_process(job("a")).await.unwrap();

    let changes = driver.change_hub().subscribe("a");
    let waiter = {
        let driver = driver.clone();
        tokio::spawn(async move { bounded(&driver, "a").await })
    };
    driver.claim_and_run_pending("registered a").await.unwrap();
    let output = waiter.await.unwrap().unwrap();
    assert_eq!(output, Some(done(json!({ "ran": "a" }))));
    assert!(
        changes.has_changed().unwrap(),
        "the driver's registry bumps the driver's hub"
    );
    let err = bounded(&driver, "missing").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown process `missing`");
}

#[tokio::test]
async fn new_with_sink_feeds_appends_but_not_completion() {
    let seen = Seen::default();
    let handle = Arc::new(FinishPending::default());
    let driver = ProcessWorkDriver::new_with_sink(
        memory(),
        handle.clone(),
        Some(Arc::new(seen.clone()) as Sink),
    );
    let registry = driver.process_registry();
    assert!(handle.registry.set(Arc::clone(&registry)).is_ok());
    registry.register_process(job("s")).await.unwrap();
    registry
        .append_event("s", ProcessEventAppendRequest::new("job.step", json!(1)))
        .await
        .unwrap();
    driver.claim_and_run_pending("step seen").await.unwrap();
    assert_eq!(
        driver.await_terminal("s").await.unwrap(),
        done(json!({ "ran": "s" }))
    );
    assert_eq!(seen.types(), vec!["job.step".to_owned()]);

    let silent =
        ProcessWorkDriver::new_with_sink(memory(), Arc::new(FinishPending::default()), None);
    silent
        .process_registry()
        .register_process(job("q"))
        .await
        .unwrap();
    assert!(silent.process_registry().get_process("q").await.is_some());
}

#[tokio::test]
async fn from_watched_waits_on_the_hub_it_was_given() {
    let (registry, hub) = watch_process_registry(memory());
    let driver = ProcessWorkDriver::from_watched(
        Arc::clone(&registry),
        hub.clone(),
        Arc::new(FinishPending::default()),
    );
    registry.register_process(job("w")).await.unwrap();
    let waiter = {
        let driver = driver.clone();
        tokio::spawn(async move { driver.await_event("w", "job.step", 0).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let appended = registry
        .append_event("w", ProcessEventAppendRequest::new("job.step", json!(2)))
        .await
        .unwrap();
    let event = timeout(BOUND, waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(event.sequence, appended.event.sequence);

    let rx = driver.change_hub().subscribe("w");
    hub.notify("w");
    assert!(rx.has_changed().unwrap(), "change_hub is the hub passed in");
    let historical = driver
        .awaiter()
        .await_event("w", "job.step", 0)
        .await
        .unwrap();
    assert_eq!(historical, event);
}

#[tokio::test]
async fn with_attach_answers_for_running_rows_only() {
    let registry = memory();
    registry.register_process(job("running")).await.unwrap();
    registry.register_process(job("ended")).await.unwrap();
    registry
        .complete_process("ended", done(json!("stored")))
        .await
        .unwrap();
    let driver = ProcessWorkDriver::new(registry, Arc::new(FinishPending::default()))
        .with_attach(Arc::new(FixedAttach));
    assert_eq!(
        driver.await_terminal("running").await.unwrap(),
        done(json!("from attach"))
    );
    assert_eq!(
        driver.await_terminal("ended").await.unwrap(),
        done(json!("stored")),
        "an already-terminal row answers from the registry"
    );
}

struct Echo;

#[async_trait]
impl ProcessExecutor for Echo {
    async fn execute(
        &self,
        execution: ProcessExecution,
    ) -> Result<ProcessAwaitOutput, ProcessError> {
        Ok(done(json!({ "echo": execution.record.id })))
    }
}

fn runnable(id: &str) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::Engine {
            kind: "echo".into(),
            payload: json!({}),
        },
        ProcessProvenance::host(),
    )
}

#[tokio::test]
async fn inline_runs_pending_rows_in_process() {
    let driver = ProcessWorkDriver::inline(memory(), DurableProcessWorker::new(Arc::new(Echo)));
    driver
        .process_registry()
        .register_process(runnable("i"))
        .await
        .unwrap();
    driver.claim_and_run_pending("inline").await.unwrap();
    assert_eq!(
        timeout(BOUND, driver.await_terminal("i"))
            .await
            .unwrap()
            .unwrap(),
        done(json!({ "echo": "i" }))
    );
}

#[tokio::test]
async fn awaiters_and_the_hub_stand_alone() {
    let hub = ProcessChangeHub::new();
    let rx = hub.subscribe("h");
    hub.notify("h");
    assert!(rx.has_changed().unwrap());

    let seen = Seen::default();
    let (registry, hub) =
        watch_process_registry_with_sink(memory(), Some(Arc::new(seen.clone()) as Sink));
    registry.register_process(job("x")).await.unwrap();
    let watched = ProcessAwaiter::new(Arc::clone(&registry), hub);
    let waiter = tokio::spawn(async move { watched.await_terminal("x").await });
    registry
        .complete_process("x", done(json!(3)))
        .await
        .unwrap();
    assert_eq!(
        timeout(BOUND, waiter).await.unwrap().unwrap().unwrap(),
        done(json!(3))
    );
    assert!(seen.types().is_empty(), "completion never reaches the sink");

    let polling = ProcessAwaiter::polling(registry);
    assert_eq!(polling.await_terminal("x").await.unwrap(), done(json!(3)));
    let err = polling.await_terminal("nobody").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown process `nobody`");
}
