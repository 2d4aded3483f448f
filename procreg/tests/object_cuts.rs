//! Every multi-step `ProcessObject` handler, killed and cancelled through
//! the admin API at each of its cut points (see the services' `cut` and
//! `cancel` modules), on a real restate-server.
//!
//! For every point × {kill, cancel}:
//! - **cancel**: the call still succeeds (past its first write a handler
//!   absorbs the cancel and finishes), and `check` is clean at once;
//! - **kill**: the call fails, what the prefix wrote is invisible or
//!   repaired by the next call touching the row (a lease claim, which
//!   itself changes no record, or the caller's retry of the same call) or
//!   by `check --repair`; then `check` is clean and every acknowledged
//!   call's effect is present exactly once.

#[path = "../../services/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use procreg::check::{check_stored, repair};
use restate_process_registry::testing::support::{owner, typed, FINISHED, NOTE, PING};
use restate_process_registry::{
    AbandonRequest, ProcessAttach, ProcessAwaitOutput, ProcessEventAppendRequest,
    ProcessExternalRef, ProcessListFilter, ProcessRegistry, ProcessStarted, RestateProcessRegistry,
    SessionScope, WaitKind, WaitState,
};
use restate_process_registry_testkit::admin::Admin;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(30);

/// One test at a time: a prune here removes every old terminal row of the
/// shared server, which another test of this binary may still be reading.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Kill,
    Cancel,
}

/// A handler step to cut: the handler held, and how to drive it.
#[derive(Debug, Clone, Copy)]
enum Case {
    Register,
    SetExternalRef,
    RecordFirstStarted,
    RequestAbandon,
    SetWait,
    ClearWait,
    Complete,
    /// An append that ends the process, held at its directory write.
    AppendEnding,
    /// A plain append, held between its event and its row write.
    AppendBeforeRow,
    /// A wake-carrying append, held at its wake's record.
    AppendWake,
}

impl Case {
    const ALL: [Case; 10] = [
        Case::Register,
        Case::SetExternalRef,
        Case::RecordFirstStarted,
        Case::RequestAbandon,
        Case::SetWait,
        Case::ClearWait,
        Case::Complete,
        Case::AppendEnding,
        Case::AppendBeforeRow,
        Case::AppendWake,
    ];

    /// The cut point, and the handler that reaches it.
    fn point(self) -> (&'static str, &'static str) {
        match self {
            Case::Register => ("register", "register"),
            Case::SetExternalRef => ("set_external_ref", "set_external_ref"),
            Case::RecordFirstStarted => ("record_first_started", "record_first_started"),
            Case::RequestAbandon => ("request_abandon", "request_abandon"),
            Case::SetWait => ("set_wait", "set_wait"),
            Case::ClearWait => ("clear_wait", "clear_wait"),
            Case::Complete => ("complete", "complete"),
            Case::AppendEnding => ("append", "append"),
            Case::AppendBeforeRow => ("append_before_row", "append"),
            Case::AppendWake => ("append_wake", "append"),
        }
    }

    fn append(self) -> Option<ProcessEventAppendRequest> {
        let request = match self {
            Case::AppendEnding => {
                ProcessEventAppendRequest::new(FINISHED, json!({ "result": { "ok": true } }))
            }
            Case::AppendBeforeRow => ProcessEventAppendRequest::new(NOTE, json!({ "n": 1 })),
            Case::AppendWake => ProcessEventAppendRequest::new(
                PING,
                json!({ "wake": true, "input": "hi", "key": "k" }),
            ),
            _ => return None,
        };
        Some(request.with_replay_key("cut-replay"))
    }

    /// Whether a kill here leaves something `check` sees (a row ahead of
    /// its directory entry); the append's own prefix leaves nothing visible.
    fn visible_to_check(self) -> bool {
        !matches!(self, Case::AppendBeforeRow | Case::AppendWake)
    }

    /// Whatever must exist before the held call.
    async fn prepare(self, registry: &RestateProcessRegistry, id: &str) {
        if matches!(self, Case::Register) {
            return;
        }
        registry
            .register_process(typed(id))
            .await
            .expect("setup registers");
        if matches!(self, Case::ClearWait) {
            registry
                .set_process_wait(id, wait())
                .await
                .expect("setup sets a wait");
        }
    }

    /// The held call; its answer only says whether it succeeded.
    async fn call(self, registry: RestateProcessRegistry, id: String) -> Result<(), String> {
        let done = match self {
            Case::Register => registry.register_process(typed(&id)).await.map(drop),
            Case::SetExternalRef => {
                let external = ProcessExternalRef {
                    backend: "ext".into(),
                    id: "ref-1".into(),
                    metadata: json!({}),
                };
                registry.set_external_ref(&id, external).await.map(drop)
            }
            Case::RecordFirstStarted => {
                let started = ProcessStarted {
                    owner: owner("cut"),
                    started_at_ms: 1,
                };
                registry.record_first_started(&id, started).await.map(drop)
            }
            Case::RequestAbandon => {
                let request = AbandonRequest {
                    requested_by: "cut".into(),
                    reason: "cut test".into(),
                    requested_at_ms: 1,
                };
                registry
                    .request_process_abandon(&id, request)
                    .await
                    .map(drop)
            }
            Case::SetWait => registry.set_process_wait(&id, wait()).await.map(drop),
            Case::ClearWait => registry.clear_process_wait(&id).await.map(drop),
            Case::Complete => registry
                .complete_process(&id, ProcessAwaitOutput::success(json!({ "done": 1 })))
                .await
                .map(drop),
            Case::AppendEnding | Case::AppendBeforeRow | Case::AppendWake => {
                let request = self.append().expect("an append case");
                registry.append_event(&id, request).await.map(drop)
            }
        };
        done.map_err(|err| err.to_string())
    }

    /// After the call acknowledged (or, killed, was retried): its effect
    /// is there exactly once.
    async fn verify_once(self, registry: &RestateProcessRegistry, id: &str) {
        let row = registry
            .try_get_process(id)
            .await
            .expect("row reads")
            .expect("the row exists");
        let events = registry.events_after(id, 0).await.expect("events read");
        match self {
            Case::Register => assert!(events.is_empty(), "{events:?}"),
            Case::SetExternalRef => assert!(row.external_ref.is_some(), "{row:?}"),
            Case::RecordFirstStarted => assert!(row.first_started.is_some(), "{row:?}"),
            Case::RequestAbandon => assert!(row.abandon_request.is_some(), "{row:?}"),
            Case::SetWait => assert!(row.wait.is_some(), "{row:?}"),
            Case::ClearWait => assert!(row.wait.is_none(), "{row:?}"),
            Case::Complete | Case::AppendEnding => {
                assert!(row.is_terminal(), "{row:?}");
                let ended: Vec<_> = events
                    .iter()
                    .filter(|e| e.semantics.terminal.is_some())
                    .collect();
                assert_eq!(ended.len(), 1, "one terminal event: {events:?}");
                // The outcome reached the terminal workflow too.
                let waited = tokio::time::timeout(PATIENCE, common::attach().await_terminal(id))
                    .await
                    .expect("the outcome is announced");
                assert!(waited.is_ok(), "{waited:?}");
            }
            Case::AppendBeforeRow | Case::AppendWake => {
                assert_eq!(events.len(), 1, "appended exactly once: {events:?}");
                assert_eq!(events[0].sequence, 1);
                if matches!(self, Case::AppendWake) {
                    let wakes = registry.wake_events_after(id, 0).await.expect("wakes");
                    assert_eq!(wakes.len(), 1, "one unacked wake: {wakes:?}");
                }
            }
        }
    }
}

fn wait() -> WaitState {
    WaitState {
        kind: WaitKind::Signal {
            name: "go".into(),
            event_type: NOTE.into(),
            key: "cut-wait".into(),
            ordinal: 1,
        },
        since_ms: 1,
    }
}

/// The problems `check` reports about `id` (other tests share the server).
async fn problems_of(registry: &RestateProcessRegistry, admin: &Admin, id: &str) -> Vec<String> {
    let report = check_stored(registry, admin).await.expect("check runs");
    report
        .problems
        .into_iter()
        .filter(|problem| problem.contains(id))
        .collect()
}

/// Runs `case` held at its point, cut by `cut`; `repair_by_check` repairs a
/// kill with `check --repair` instead of the next call on the row.
async fn run(case: Case, cut: Cut, repair_by_check: bool) {
    let _serial = SERIAL.lock().await;
    let (point, handler) = case.point();
    let id = format!("cut.{point}.{}", common::unique(&format!("{cut:?}")));
    let registry = common::registry();
    let admin = Admin::new(common::urls().admin);
    case.prepare(&registry, &id).await;

    let call = tokio::spawn(case.call(common::registry(), id.clone()));
    let invocation = admin
        .held_invocation("ProcessObject", handler, &id, PATIENCE)
        .await
        .unwrap_or_else(|err| panic!("{case:?}: {err}"));
    match cut {
        Cut::Cancel => admin.cancel(&invocation).await.expect("cancel"),
        Cut::Kill => admin.kill(&invocation).await.expect("kill"),
    }
    let answer = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the held call returns")
        .expect("the call task");

    match cut {
        Cut::Cancel => {
            assert_eq!(
                answer,
                Ok(()),
                "{case:?}: a cancel past the first write is absorbed"
            );
            let problems = problems_of(&registry, &admin, &id).await;
            assert!(problems.is_empty(), "{case:?} cancelled: {problems:?}");
        }
        Cut::Kill => {
            assert!(answer.is_err(), "{case:?}: a killed call fails: {answer:?}");
            admin
                .await_completed(&invocation, PATIENCE)
                .await
                .expect("the kill lands");
            if repair_by_check {
                let report = check_stored(&registry, &admin).await.expect("check runs");
                let repaired = repair(&registry, &report).await.expect("repair runs");
                let ours: Vec<_> = repaired
                    .rows
                    .iter()
                    .filter(|line| line.contains(&id))
                    .collect();
                assert_eq!(
                    !ours.is_empty(),
                    case.visible_to_check(),
                    "{case:?}: what check finds of the cut: {repaired:?}"
                );
                // Repairing again finds nothing of this row.
                let again = check_stored(&registry, &admin).await.expect("check runs");
                assert!(
                    !again.reindex.contains(&id),
                    "{case:?}: repair is idempotent"
                );
            } else {
                // The next call touching the row finishes what the killed
                // one started; a claim changes no record itself (and with a
                // zero TTL holds nothing against the retry below).
                let _ = registry.claim_process_lease(&id, &owner("next"), 0).await;
            }
            let problems = problems_of(&registry, &admin, &id).await;
            assert!(
                problems.is_empty(),
                "{case:?} killed, then repaired: {problems:?}"
            );
            // The caller, told the call failed, calls again: acknowledged
            // once. (A cut point holds once per object, so the retry runs
            // through it.)
            case.call(common::registry(), id.clone())
                .await
                .unwrap_or_else(|err| panic!("{case:?}: the retry succeeds: {err}"));
        }
    }
    case.verify_once(&registry, &id).await;
    let problems = problems_of(&registry, &admin, &id).await;
    assert!(
        problems.is_empty(),
        "{case:?} {cut:?} at the end: {problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_handler_survives_a_cancel_at_each_cut() {
    for case in Case::ALL {
        run(case, Cut::Cancel, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_handler_killed_at_each_cut_is_repaired_by_the_next_call() {
    for case in Case::ALL {
        run(case, Cut::Kill, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_handler_killed_at_each_cut_is_repaired_by_check() {
    for case in Case::ALL {
        run(case, Cut::Kill, true).await;
    }
}

/// A step `ProcessObject` runs for the coordinator, which issues a killed
/// step again (or fails, and its caller repeats the whole operation).
#[derive(Debug, Clone, Copy)]
enum Indirect {
    /// Prune, held before a session wake index drop (state already gone).
    PruneWakes,
    /// Prune, held before its directory entry's removal.
    PruneDirectory,
    /// Session delete clearing a wake target, held at its row write.
    ForgetWakes,
    /// Session delete, held before the session wake index drop.
    ForgetWakesIndex,
}

impl Indirect {
    const ALL: [Indirect; 4] = [
        Indirect::PruneWakes,
        Indirect::PruneDirectory,
        Indirect::ForgetWakes,
        Indirect::ForgetWakesIndex,
    ];

    fn point(self) -> (&'static str, &'static str) {
        match self {
            Indirect::PruneWakes => ("prune_wakes", "prune"),
            Indirect::PruneDirectory => ("prune_directory", "prune"),
            Indirect::ForgetWakes => ("forget_wakes", "forget_wakes"),
            Indirect::ForgetWakesIndex => ("forget_wakes_index", "forget_wakes"),
        }
    }

    fn prunes(self) -> bool {
        matches!(self, Indirect::PruneWakes | Indirect::PruneDirectory)
    }

    /// The coordinator operation that reaches the step.
    async fn operate(
        self,
        registry: RestateProcessRegistry,
        session: String,
        cutoff_ms: u64,
    ) -> Result<(), String> {
        let done = if self.prunes() {
            registry.prune_terminal_processes(cutoff_ms).await.map(drop)
        } else {
            registry
                .delete_session_process_state(&session)
                .await
                .map(drop)
        };
        done.map_err(|err| err.to_string())
    }
}

async fn run_indirect(step: Indirect, cut: Cut) {
    let _serial = SERIAL.lock().await;
    let (point, handler) = step.point();
    let id = format!("cut.{point}.{}", common::unique(&format!("{cut:?}")));
    let session = format!("{id}-session");
    let registry = common::registry();
    let admin = Admin::new(common::urls().admin);
    registry
        .register_process(typed(&id).with_wake_target(SessionScope::session(&session)))
        .await
        .expect("setup registers");
    let mut cutoff_ms = 0;
    if step.prunes() {
        let ended = registry
            .complete_process(&id, ProcessAwaitOutput::success(json!({ "done": 1 })))
            .await
            .expect("setup completes");
        cutoff_ms = ended.updated_at_ms + 1;
    }

    let operation = tokio::spawn(step.operate(common::registry(), session.clone(), cutoff_ms));
    let invocation = admin
        .held_invocation("ProcessObject", handler, &id, PATIENCE)
        .await
        .unwrap_or_else(|err| panic!("{step:?}: {err}"));
    match cut {
        Cut::Cancel => admin.cancel(&invocation).await.expect("cancel"),
        Cut::Kill => admin.kill(&invocation).await.expect("kill"),
    }
    let answer = tokio::time::timeout(PATIENCE, operation)
        .await
        .expect("the operation returns")
        .expect("the operation task");
    match cut {
        Cut::Cancel => assert_eq!(answer, Ok(()), "{step:?}: the cancel is absorbed"),
        Cut::Kill => {
            admin
                .await_completed(&invocation, PATIENCE)
                .await
                .expect("the kill lands");
            // The coordinator issues a killed step again (every step is
            // idempotent), so the operation may still succeed; if it
            // failed, its caller repeats it. Either way what the killed
            // step started is finished.
            if answer.is_err() {
                step.operate(common::registry(), session.clone(), cutoff_ms)
                    .await
                    .unwrap_or_else(|err| panic!("{step:?}: the repeat succeeds: {err}"));
            }
        }
    }
    let row = registry.try_get_process(&id).await.expect("row reads");
    if step.prunes() {
        assert_eq!(row, None, "{step:?}: pruned");
        let listed = registry
            .directory_entries(&ProcessListFilter::any())
            .await
            .expect("directory reads");
        assert!(
            listed.iter().all(|entry| entry.id != id),
            "{step:?}: no directory entry survives its row"
        );
    } else {
        let row = row.expect("the row stays");
        assert_eq!(row.wake_target, None, "{step:?}: the target is cleared");
    }
    let problems = problems_of(&registry, &admin, &id).await;
    assert!(problems.is_empty(), "{step:?} {cut:?}: {problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_and_session_delete_steps_survive_a_cancel() {
    for step in Indirect::ALL {
        run_indirect(step, Cut::Cancel).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_and_session_delete_steps_killed_are_finished_by_the_repeat() {
    for step in Indirect::ALL {
        run_indirect(step, Cut::Kill).await;
    }
}
