//! Change hub, watched decorator, event sink and awaiter behaviour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use restate_process_registry::testing::support::{descriptor, typed, FINISHED};
use restate_process_registry::{
    watch_process_registry, watch_process_registry_with_sink, InMemoryProcessRegistry,
    ProcessAwaitOutput, ProcessAwaiter, ProcessChangeHub, ProcessError, ProcessEvent,
    ProcessEventAppendRequest, ProcessEventSink, ProcessEventType, ProcessInput, ProcessProvenance,
    ProcessRegistration, ProcessRegistry, ProcessRunHandle, ProcessWorkDriver, SessionScope,
    WatchedProcessRegistry,
};
use serde_json::json;
use tokio::time::{timeout, Instant};

fn memory() -> Arc<dyn ProcessRegistry> {
    Arc::new(InMemoryProcessRegistry::new())
}

fn registration(id: &str, types: &[&str]) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::External {
            metadata: json!({}),
        },
        ProcessProvenance::host(),
    )
    .with_extra_event_types(types.iter().map(|name| ProcessEventType::any(*name)))
}

/// Records `(event_type, sequence)` in the order the sink saw them.
#[derive(Clone, Default)]
struct RecordingSink(Arc<Mutex<Vec<(String, u64)>>>);

impl RecordingSink {
    fn seen(&self) -> Vec<(String, u64)> {
        self.0.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ProcessEventSink for RecordingSink {
    async fn emit(&self, event: &ProcessEvent) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((event.event_type.clone(), event.sequence));
        }
    }
}

async fn bumped(rx: &mut tokio::sync::watch::Receiver<u64>) -> bool {
    matches!(
        timeout(Duration::from_millis(200), rx.changed()).await,
        Ok(Ok(()))
    )
}

#[tokio::test]
async fn hub_wakes_subscribers_and_forgets_ids_nobody_watches() {
    let hub = ProcessChangeHub::new();
    let mut rx = hub.subscribe("p");
    assert_eq!(hub.tracked_processes(), 1);
    hub.notify("p");
    assert!(bumped(&mut rx).await, "a notify wakes the subscriber");
    hub.notify("never-subscribed");
    assert_eq!(
        hub.tracked_processes(),
        1,
        "notifying an unknown id creates nothing"
    );
    drop(rx);
    hub.notify("p");
    assert_eq!(
        hub.tracked_processes(),
        0,
        "an entry with no receivers is dropped"
    );
}

#[tokio::test]
async fn watched_registry_bumps_on_mutations_only() {
    let (registry, hub) = watch_process_registry(memory());
    let mut rx = hub.subscribe("p");
    registry
        .register_process(registration("p", &["t"]))
        .await
        .unwrap();
    assert!(bumped(&mut rx).await, "register bumps");
    registry
        .append_event("p", ProcessEventAppendRequest::new("t", json!({})))
        .await
        .unwrap();
    assert!(bumped(&mut rx).await, "append bumps");
    registry.events_after("p", 0).await.unwrap();
    registry.get_process("p").await;
    assert!(!rx.has_changed().unwrap(), "reads do not bump");
    let refused = registry
        .append_event("p", ProcessEventAppendRequest::new("undeclared", json!({})))
        .await;
    assert!(matches!(refused, Err(ProcessError::InvalidInput(_))));
    assert!(!rx.has_changed().unwrap(), "a refused write does not bump");
    registry
        .complete_process("p", ProcessAwaitOutput::success(json!(1)))
        .await
        .unwrap();
    assert!(bumped(&mut rx).await, "completion bumps");
}

#[tokio::test]
async fn await_event_returns_a_historical_event_at_once() {
    let (registry, hub) = watch_process_registry(memory());
    registry
        .register_process(registration("p", &[]))
        .await
        .unwrap();
    let appended = registry
        .append_event(
            "p",
            ProcessEventAppendRequest::cancel_requested("p", Some("stop".into())),
        )
        .await
        .unwrap();
    let awaiter = ProcessAwaiter::new(registry, hub);
    let event = timeout(
        Duration::from_millis(20),
        awaiter.await_event("p", "process.cancel_requested", 0),
    )
    .await
    .expect("no waiting for history")
    .unwrap();
    assert_eq!(event, appended.event);
}

#[tokio::test]
async fn await_event_skips_events_at_or_before_the_cursor() {
    let (registry, hub) = watch_process_registry(memory());
    registry
        .register_process(registration("p", &["tick"]))
        .await
        .unwrap();
    let first = registry
        .append_event("p", ProcessEventAppendRequest::new("tick", json!(1)))
        .await
        .unwrap();
    let awaiter = ProcessAwaiter::new(Arc::clone(&registry), hub);
    let waiter =
        tokio::spawn(async move { awaiter.await_event("p", "tick", first.event.sequence).await });
    tokio::task::yield_now().await;
    let second = registry
        .append_event("p", ProcessEventAppendRequest::new("tick", json!(2)))
        .await
        .unwrap();
    let event = timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.sequence, second.event.sequence);
    assert_eq!(event.payload, json!(2));
}

#[tokio::test]
async fn await_event_fails_when_the_process_ends_without_it() {
    let (registry, hub) = watch_process_registry(memory());
    registry
        .register_process(registration("p", &["milestone"]))
        .await
        .unwrap();
    registry
        .complete_process("p", ProcessAwaitOutput::success(json!(null)))
        .await
        .unwrap();
    let err = ProcessAwaiter::new(registry, hub)
        .await_event("p", "milestone", 0)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProcessError::AlreadyTerminal {
            process_id: "p".into()
        }
    );
}

#[tokio::test]
async fn await_event_at_or_past_the_terminal_event_fails_at_once() {
    let (registry, hub) = watch_process_registry(memory());
    registry
        .register_process(registration("p", &["milestone"]))
        .await
        .unwrap();
    registry
        .append_event("p", ProcessEventAppendRequest::new("milestone", json!(1)))
        .await
        .unwrap();
    let ended = registry
        .complete_process("p", ProcessAwaitOutput::success(json!(null)))
        .await
        .unwrap();
    assert!(ended.is_terminal());
    let last = registry.events_after("p", 0).await.unwrap().len() as u64;
    let awaiters = [
        ProcessAwaiter::new(Arc::clone(&registry), hub),
        ProcessAwaiter::polling(Arc::clone(&registry)),
    ];
    for awaiter in awaiters {
        for after in [last, last + 5] {
            let result = timeout(
                Duration::from_secs(5),
                awaiter.await_event("p", "milestone", after),
            )
            .await
            .expect("the wait ends instead of polling forever");
            assert_eq!(
                result,
                Err(ProcessError::AlreadyTerminal {
                    process_id: "p".into()
                }),
                "after {after}"
            );
        }
        // What was logged before the end still answers.
        let found = awaiter.await_event("p", "milestone", 0).await.unwrap();
        assert_eq!(found.sequence, 1);
        let completed = awaiter
            .await_event("p", "process.completed", 1)
            .await
            .unwrap();
        assert_eq!(completed.sequence, last);
    }
}

#[tokio::test]
async fn awaiting_an_unknown_process_is_a_typed_error() {
    let registry = memory();
    let terminal = ProcessAwaiter::polling(Arc::clone(&registry))
        .await_terminal("missing")
        .await
        .unwrap_err();
    assert_eq!(
        terminal,
        ProcessError::UnknownProcess {
            process_id: "missing".into()
        }
    );
    assert_eq!(terminal.to_string(), "unknown process `missing`");
    let event = ProcessAwaiter::polling(registry)
        .await_event("missing", "t", 0)
        .await
        .unwrap_err();
    assert_eq!(
        event,
        ProcessError::UnknownProcess {
            process_id: "missing".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn polling_awaiter_resolves_through_backoff() {
    let registry = memory();
    registry
        .register_process(registration("p", &[]))
        .await
        .unwrap();
    let writer = Arc::clone(&registry);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        writer
            .complete_process("p", ProcessAwaitOutput::success(json!({"ok": true})))
            .await
    });
    let start = Instant::now();
    let output = ProcessAwaiter::polling(registry)
        .await_terminal("p")
        .await
        .unwrap();
    assert_eq!(output, ProcessAwaitOutput::success(json!({"ok": true})));
    // Reads at 0, 25, 75, 175, 375 and 775 ms: the completion at 500 ms is
    // seen by the read at 775 ms, which proves the delay doubles from 25 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(775));
}

#[tokio::test(start_paused = true)]
async fn polling_backoff_caps_at_one_second() {
    let registry = memory();
    registry
        .register_process(registration("p", &[]))
        .await
        .unwrap();
    let writer = Arc::clone(&registry);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        writer
            .complete_process("p", ProcessAwaitOutput::success(json!(1)))
            .await
    });
    let start = Instant::now();
    ProcessAwaiter::polling(registry)
        .await_terminal("p")
        .await
        .unwrap();
    // 25+50+100+200+400+800 = 1575 ms, then one read per second: 2575,
    // 3575, 4575, 5575.
    assert_eq!(start.elapsed(), Duration::from_millis(5_575));
}

#[tokio::test(start_paused = true)]
async fn watched_awaiter_wakes_on_the_change_not_the_backoff() {
    // Time is paused: only the hub can wake the waiter before 25 ms pass.
    for _ in 0..50 {
        let (registry, hub) = watch_process_registry(memory());
        registry
            .register_process(registration("p", &[]))
            .await
            .unwrap();
        let awaiter = ProcessAwaiter::new(Arc::clone(&registry), hub);
        let waiter = tokio::spawn(async move { awaiter.await_terminal("p").await });
        tokio::task::yield_now().await;
        let start = Instant::now();
        registry
            .complete_process("p", ProcessAwaitOutput::success(json!("done")))
            .await
            .unwrap();
        let output = waiter.await.unwrap().unwrap();
        assert_eq!(output, ProcessAwaitOutput::success(json!("done")));
        assert!(
            start.elapsed() < Duration::from_millis(25),
            "woken by the hub, not a backoff read"
        );
    }
}

#[tokio::test]
async fn sink_sees_appends_in_order_after_their_write() {
    let sink = RecordingSink::default();
    let (registry, _hub) = watch_process_registry_with_sink(memory(), Some(Arc::new(sink.clone())));
    registry
        .register_process(registration("p", &["a", "b"]))
        .await
        .unwrap();
    for name in ["a", "b", "a"] {
        registry
            .append_event("p", ProcessEventAppendRequest::new(name, json!({})))
            .await
            .unwrap();
    }
    assert_eq!(
        sink.seen(),
        vec![("a".into(), 1), ("b".into(), 2), ("a".into(), 3)]
    );
    let events = registry.events_after("p", 0).await.unwrap();
    assert_eq!(events.len(), 3, "the durable log holds what the sink saw");
}

#[tokio::test]
async fn no_sink_leaves_appends_working() {
    let (registry, _hub) = watch_process_registry_with_sink(memory(), None);
    registry
        .register_process(registration("p", &["a"]))
        .await
        .unwrap();
    let appended = registry
        .append_event("p", ProcessEventAppendRequest::new("a", json!({})))
        .await
        .unwrap();
    assert_eq!(appended.event.sequence, 1);
}

#[tokio::test]
async fn sink_never_sees_terminal_or_refused_events() {
    let sink = RecordingSink::default();
    let (registry, _hub) = watch_process_registry_with_sink(memory(), Some(Arc::new(sink.clone())));
    registry
        .register_process(registration("p", &["a"]))
        .await
        .unwrap();
    registry
        .append_event("p", ProcessEventAppendRequest::new("a", json!({})))
        .await
        .unwrap();
    let refused = registry
        .append_event("p", ProcessEventAppendRequest::new("nope", json!({})))
        .await;
    assert!(refused.is_err());
    registry
        .complete_process("p", ProcessAwaitOutput::success(json!("done")))
        .await
        .unwrap();
    assert_eq!(sink.seen(), vec![("a".into(), 1)]);
    let log = registry.events_after("p", 0).await.unwrap();
    assert_eq!(
        log.last().map(|e| e.event_type.as_str()),
        Some("process.completed")
    );
}

/// The decision documented on `ProcessEventSink`: an `append_event` of a
/// type the process declares terminal is emitted (after the write that
/// ended the process), as the original library's decorator does; the
/// terminal event `complete_process` writes never is.
#[tokio::test]
async fn sink_sees_a_declared_terminal_append_but_not_complete_process() {
    let sink = RecordingSink::default();
    let (registry, _hub) = watch_process_registry_with_sink(memory(), Some(Arc::new(sink.clone())));
    registry
        .register_process(typed("ended-by-append"))
        .await
        .unwrap();
    registry.register_process(typed("completed")).await.unwrap();
    let appended = registry
        .append_event(
            "ended-by-append",
            ProcessEventAppendRequest::new(FINISHED, json!({ "result": 7 }))
                .with_replay_key("finish-once"),
        )
        .await
        .unwrap();
    assert!(
        registry
            .get_process("ended-by-append")
            .await
            .unwrap()
            .is_terminal(),
        "the declared type ended it"
    );
    registry
        .complete_process("completed", ProcessAwaitOutput::success(json!("done")))
        .await
        .unwrap();
    assert_eq!(
        sink.seen(),
        vec![(FINISHED.to_owned(), appended.event.sequence)],
        "only the appended terminal event reached the sink"
    );
    let completed_log = registry.events_after("completed", 0).await.unwrap();
    assert_eq!(
        completed_log.len(),
        1,
        "complete_process did write its event"
    );
}

/// A session delete bumps every row it changed: the processes that lost a
/// grant (live or ended) and those whose wake target it cleared; rows it
/// left alone need no bump (an extra one only makes a waiter re-read).
#[tokio::test]
async fn session_delete_bumps_every_row_it_changed() {
    let (registry, hub) = watch_process_registry(memory());
    let doomed = SessionScope::session("doomed");
    let frame = SessionScope::frame("doomed", "f");
    for id in ["orphaned", "preserved", "ended"] {
        registry.register_process(typed(id)).await.unwrap();
        registry
            .grant_handle(&doomed, id, descriptor("h"))
            .await
            .unwrap();
    }
    registry
        .grant_handle(
            &SessionScope::session("other"),
            "preserved",
            descriptor("h"),
        )
        .await
        .unwrap();
    registry
        .complete_process("ended", ProcessAwaitOutput::success(json!(1)))
        .await
        .unwrap();
    registry
        .register_process(typed("targeted").with_wake_target(frame.clone()))
        .await
        .unwrap();
    let mut receivers: Vec<_> = ["orphaned", "preserved", "ended", "targeted"]
        .into_iter()
        .map(|id| (id, hub.subscribe(id)))
        .collect();

    let report = registry
        .delete_session_process_state("doomed")
        .await
        .unwrap();
    assert_eq!(report.revoked_handle_count, 3);
    assert_eq!(report.orphaned_process_ids, vec!["orphaned".to_owned()]);
    assert_eq!(report.preserved_process_ids, vec!["preserved".to_owned()]);
    assert_eq!(
        registry.get_process("targeted").await.unwrap().wake_target,
        None
    );
    for (id, rx) in &mut receivers {
        assert!(
            bumped(rx).await,
            "the session delete changed `{id}` and must bump it"
        );
    }
}

#[tokio::test]
async fn hub_still_bumps_with_a_sink_installed() {
    let sink = RecordingSink::default();
    let (registry, hub) = watch_process_registry_with_sink(memory(), Some(Arc::new(sink.clone())));
    let mut rx = hub.subscribe("p");
    registry
        .register_process(registration("p", &["a"]))
        .await
        .unwrap();
    assert!(bumped(&mut rx).await);
    registry
        .append_event("p", ProcessEventAppendRequest::new("a", json!({})))
        .await
        .unwrap();
    assert!(bumped(&mut rx).await);
    assert_eq!(sink.seen().len(), 1);
}

#[tokio::test]
async fn the_watched_registry_owns_its_hub_and_sink() {
    let inner = memory();
    let sink = RecordingSink::default();
    let watched = WatchedProcessRegistry::new(Arc::clone(&inner)).with_sink(Arc::new(sink.clone()));
    let mut through_watched = watched.hub().subscribe("p");
    watched
        .register_process(registration("p", &["milestone"]))
        .await
        .unwrap();
    assert!(
        bumped(&mut through_watched).await,
        "a write through it bumps its hub"
    );
    watched
        .append_event("p", ProcessEventAppendRequest::new("milestone", json!(1)))
        .await
        .unwrap();
    assert_eq!(sink.seen(), vec![("milestone".to_owned(), 1)]);

    // Writes past the decorator change the row but bump nothing.
    let mut quiet = watched.hub().subscribe("p");
    watched
        .get_ref()
        .append_event("p", ProcessEventAppendRequest::new("milestone", json!(2)))
        .await
        .unwrap();
    assert!(!bumped(&mut quiet).await);

    // A clone shares hub and sink; the driver waits on the hub writes bump.
    let driver = ProcessWorkDriver::from_watched_registry(watched.clone(), Arc::new(Idle));
    let waiter = tokio::spawn(async move { driver.await_event("p", "milestone", 2).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    watched
        .append_event("p", ProcessEventAppendRequest::new("milestone", json!(3)))
        .await
        .unwrap();
    let event = timeout(Duration::from_secs(2), waiter)
        .await
        .expect("the driver's awaiter wakes on the watched registry's hub")
        .unwrap()
        .unwrap();
    assert_eq!(event.sequence, 3);
    assert_eq!(sink.seen().len(), 2, "the clone fed the same sink");
    assert_eq!(
        watched
            .into_inner()
            .events_after("p", 0)
            .await
            .unwrap()
            .len(),
        3
    );
}

struct Idle;

#[async_trait]
impl ProcessRunHandle for Idle {
    async fn claim_and_run_pending(&self) -> restate_process_registry::ProcessResult<()> {
        Ok(())
    }
}
