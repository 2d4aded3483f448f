//! Milestone waits (`await_event`) on a real restate-server: engine-native,
//! parked on a `ProcessMilestone` awakeable that the append logging the
//! event completes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use restate_process_registry::restate::wire::MilestoneWait;
use restate_process_registry::testing::support::{typed, FINISHED, NOTE, PING, PROGRESS};
use restate_process_registry::{
    ProcessAttach, ProcessAwaitOutput, ProcessError, ProcessEvent, ProcessEventAppendRequest,
    ProcessRegistry, ProcessResult, ProcessWorkDriver, RestateProcessAttach,
    RestateProcessRegistry,
};
use restate_process_registry_testkit::admin::Admin;
use restate_process_registry_testkit::local_stack::LocalStack;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const PATIENCE: Duration = Duration::from_secs(30);

fn note(n: u64) -> ProcessEventAppendRequest {
    ProcessEventAppendRequest::new(NOTE, json!({ "n": n }))
}

/// A waiter on its own client, as a host elsewhere would have.
fn wait_for(
    attach: &RestateProcessAttach,
    id: &str,
    event_type: &str,
    after: u64,
) -> JoinHandle<ProcessResult<ProcessEvent>> {
    let (attach, id, event_type) = (attach.clone(), id.to_owned(), event_type.to_owned());
    tokio::spawn(async move {
        attach
            .await_event(&id, &event_type, after)
            .await
            .expect("the Restate attach has milestone waits")
    })
}

async fn answer(waiter: JoinHandle<ProcessResult<ProcessEvent>>) -> ProcessResult<ProcessEvent> {
    tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the waiter resumes")
        .expect("the waiter task ends")
}

fn expect_terminal(result: ProcessResult<ProcessEvent>, id: &str) {
    match result {
        Err(ProcessError::AlreadyTerminal { process_id }) => assert_eq!(process_id, id),
        other => panic!("expected AlreadyTerminal for `{id}`, got {other:?}"),
    }
}

/// Waits parked on `id` as the engine stores them (`mw/` keys of its
/// object for ready waits, `mf/` for waits beyond the log).
async fn parked_on(admin: &str, id: &str) -> usize {
    let rows = query(
        admin,
        &format!(
            "SELECT key FROM state WHERE service_name = 'ProcessObject' \
             AND service_key = '{id}' AND (key LIKE 'mw/%' OR key LIKE 'mf/%')"
        ),
    )
    .await;
    rows.len()
}

async fn query(admin: &str, sql: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .post(format!("{admin}/query"))
        .header("accept", "application/json")
        .json(&json!({ "query": sql }))
        .send()
        .await
        .expect("admin query is answered");
    let body: Value = response.json().await.expect("admin query answers JSON");
    body["rows"].as_array().cloned().unwrap_or_default()
}

/// Waits until `count` waits are parked on `id`.
async fn until_parked(admin: &str, id: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while parked_on(admin, id).await != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} waits never parked on `{id}`"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_waiter_on_another_client_wakes_on_the_append() {
    let writer = common::registry();
    let id = common::unique("milestone-live");
    writer.register_process(typed(&id)).await.unwrap();

    // The waiter goes through a driver on its own client.
    let reader = common::registry();
    let driver = ProcessWorkDriver::new(Arc::new(reader.clone()), Arc::new(common::NoRuns))
        .with_attach(Arc::new(RestateProcessAttach::new(reader)));
    let waiter = tokio::spawn({
        let id = id.clone();
        async move { driver.await_event(&id, NOTE, 0).await }
    });
    until_parked(&common::urls().admin, &id, 1).await;
    assert!(!waiter.is_finished(), "nothing matches yet");

    writer
        .append_event(
            &id,
            ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 5 })),
        )
        .await
        .unwrap();
    let appended = writer.append_event(&id, note(1)).await.unwrap().event;
    let woken = answer(waiter).await.unwrap();
    assert_eq!(woken, appended);
    assert_eq!(woken.sequence, 2, "the progress event does not match");
    assert_eq!(
        parked_on(&common::urls().admin, &id).await,
        0,
        "a completed wait leaves no state behind"
    );
    let looks = common::admin_query(&format!(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessObject' \
         AND target_service_key = '{id}' AND target_handler_name = 'milestone'"
    ))
    .await;
    assert_eq!(
        looks.len(),
        1,
        "the waiter looked once, then parked: {looks:?}"
    );
}

#[tokio::test]
async fn an_event_already_logged_answers_without_parking() {
    let registry = common::registry();
    let id = common::unique("milestone-present");
    registry.register_process(typed(&id)).await.unwrap();
    for n in 1..=3 {
        registry.append_event(&id, note(n)).await.unwrap();
    }
    registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 9 })),
        )
        .await
        .unwrap();
    let attach = common::attach();
    for (after, expected) in [(0, 1), (1, 2), (2, 3)] {
        let event = answer(wait_for(&attach, &id, NOTE, after)).await.unwrap();
        assert_eq!(
            (event.event_type.as_str(), event.sequence),
            (NOTE, expected)
        );
    }
    let progress = answer(wait_for(&attach, &id, PROGRESS, 0)).await.unwrap();
    assert_eq!(progress.sequence, 4);
    let runs = common::admin_query(&format!(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessMilestone' \
         AND target_service_key LIKE '%{id}%'"
    ))
    .await;
    assert!(runs.is_empty(), "found events need no parked run: {runs:?}");
}

#[tokio::test]
async fn ending_the_process_settles_every_parked_waiter() {
    let registry = common::registry();
    let attach = common::attach();
    let admin = common::urls().admin;

    // Completed: every parked wait fails with AlreadyTerminal.
    let id = common::unique("milestone-complete");
    registry.register_process(typed(&id)).await.unwrap();
    let waiters = [
        wait_for(&attach, &id, NOTE, 0),
        wait_for(&attach, &id, PING, 0),
        // Beyond the log: parked apart, rejected all the same.
        wait_for(&attach, &id, NOTE, 50),
    ];
    until_parked(&admin, &id, 3).await;
    registry
        .complete_process(&id, ProcessAwaitOutput::success(json!("done")))
        .await
        .unwrap();
    for waiter in waiters {
        expect_terminal(answer(waiter).await, &id);
    }
    assert_eq!(parked_on(&admin, &id).await, 0);

    // A terminal append of the awaited type is the milestone itself.
    let id = common::unique("milestone-terminal-append");
    registry.register_process(typed(&id)).await.unwrap();
    let finished = wait_for(&attach, &id, FINISHED, 0);
    let other = wait_for(&attach, &id, NOTE, 0);
    until_parked(&admin, &id, 2).await;
    let last = registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(FINISHED, json!({ "result": 1 }))
                .with_replay_key("finish"),
        )
        .await
        .unwrap()
        .event;
    assert_eq!(answer(finished).await.unwrap(), last);
    expect_terminal(answer(other).await, &id);
    assert_eq!(parked_on(&admin, &id).await, 0);
}

#[tokio::test]
async fn waits_that_cannot_be_met_fail_with_typed_errors() {
    let registry = common::registry();
    let attach = common::attach();
    let id = common::unique("milestone-ended");
    registry.register_process(typed(&id)).await.unwrap();
    registry.append_event(&id, note(1)).await.unwrap();
    let ended = registry
        .complete_process(&id, ProcessAwaitOutput::success(json!("done")))
        .await
        .unwrap();
    assert!(ended.is_terminal());

    // At and past the terminal event, and a type the log never had.
    expect_terminal(answer(wait_for(&attach, &id, NOTE, 2)).await, &id);
    expect_terminal(answer(wait_for(&attach, &id, NOTE, 99)).await, &id);
    expect_terminal(answer(wait_for(&attach, &id, PING, 0)).await, &id);
    // What was logged before the end still answers.
    assert_eq!(
        answer(wait_for(&attach, &id, NOTE, 0))
            .await
            .unwrap()
            .sequence,
        1
    );

    let missing = common::unique("milestone-missing");
    match answer(wait_for(&attach, &missing, NOTE, 0)).await {
        Err(ProcessError::UnknownProcess { process_id }) => assert_eq!(process_id, missing),
        other => panic!("expected UnknownProcess, got {other:?}"),
    }
    let long_type = "t".repeat(300);
    assert!(matches!(
        answer(wait_for(&attach, &id, &long_type, 0)).await,
        Err(ProcessError::InvalidInput(_))
    ));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn an_old_incarnation_never_resolves_a_new_waiter() {
    // Its own stack: the prune would race the other tests' rows.
    let mut stack = LocalStack::start().await.unwrap();
    let admin = stack.server_mut().admin_url();
    let ingress = stack.ingress_url();
    let registry = stack.registry().unwrap();
    let attach = stack.attach().unwrap();
    let id = common::unique("milestone-incarnation");
    registry.register_process(typed(&id)).await.unwrap();
    let old_incarnation = incarnation_of(&ingress, &id).await;

    let parked = wait_for(&attach, &id, NOTE, 0);
    until_parked(&admin, &id, 1).await;
    registry
        .complete_process(&id, ProcessAwaitOutput::success(json!(1)))
        .await
        .unwrap();
    expect_terminal(answer(parked).await, &id);
    let far_future = u64::MAX / 2;
    let report = registry.prune_terminal_processes(far_future).await.unwrap();
    assert!(report.pruned_processes >= 1);

    registry.register_process(typed(&id)).await.unwrap();
    assert_ne!(incarnation_of(&ingress, &id).await, old_incarnation);
    let logged = registry.append_event(&id, note(1)).await.unwrap().event;
    // The new incarnation answers its own waiters…
    assert_eq!(
        answer(wait_for(&attach, &id, NOTE, 0)).await.unwrap(),
        logged
    );
    // …and nothing of the old incarnation's waits is left.
    assert_eq!(parked_on(&admin, &id).await, 0);
}

#[tokio::test]
async fn waiters_on_one_milestone_each_park_their_own_wait() {
    let registry = common::registry();
    let attach = common::attach();
    let admin = common::urls().admin;
    let id = common::unique("milestone-many");
    registry.register_process(typed(&id)).await.unwrap();
    let same: Vec<_> = (0..20).map(|_| wait_for(&attach, &id, NOTE, 0)).collect();
    until_parked(&admin, &id, 20).await;
    let runs = common::admin_query(&format!(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessMilestone' \
         AND target_service_key LIKE '%{id}%'"
    ))
    .await;
    assert_eq!(runs.len(), 20, "one run per waiter, shared with nobody");

    let first = registry.append_event(&id, note(1)).await.unwrap().event;
    for waiter in same {
        assert_eq!(answer(waiter).await.unwrap(), first);
    }
    assert_eq!(parked_on(&admin, &id).await, 0);
}

#[tokio::test]
async fn parked_waiters_survive_a_server_kill() {
    let mut stack = LocalStack::start().await.unwrap();
    let admin = stack.server_mut().admin_url();
    let registry: RestateProcessRegistry = stack.registry().unwrap();
    let attach = stack.attach().unwrap();
    let id = common::unique("milestone-kill");
    registry.register_process(typed(&id)).await.unwrap();
    let note_waiter = wait_for(&attach, &id, NOTE, 0);
    let progress_waiter = wait_for(&attach, &id, PROGRESS, 0);
    let ending_waiter = wait_for(&attach, &id, PING, 0);
    let terminal_waiter = tokio::spawn({
        let (attach, id) = (attach.clone(), id.clone());
        async move { attach.await_terminal(&id).await }
    });
    until_parked(&admin, &id, 3).await;

    stack.server_mut().kill().await.unwrap();
    stack.server_mut().restart().await.unwrap();

    let logged = registry.append_event(&id, note(1)).await.unwrap().event;
    assert_eq!(answer(note_waiter).await.unwrap(), logged);
    let progress = registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 50 })),
        )
        .await
        .unwrap()
        .event;
    assert_eq!(answer(progress_waiter).await.unwrap(), progress);
    let outcome = ProcessAwaitOutput::success(json!("done"));
    registry
        .complete_process(&id, outcome.clone())
        .await
        .unwrap();
    expect_terminal(answer(ending_waiter).await, &id);
    let terminal = tokio::time::timeout(PATIENCE, terminal_waiter)
        .await
        .expect("the terminal waiter attaches again and resumes")
        .unwrap();
    assert_eq!(terminal.unwrap(), outcome);
    assert_eq!(parked_on(&admin, &id).await, 0);
}

#[tokio::test]
async fn the_next_event_of_any_type_wakes_a_follower() {
    let registry = common::registry();
    let attach = common::attach();
    let admin = common::urls().admin;
    let id = common::unique("milestone-next");
    registry.register_process(typed(&id)).await.unwrap();
    registry.append_event(&id, note(1)).await.unwrap();
    // Logged: answers at once.
    assert_eq!(attach.await_next_event(&id, 0).await.unwrap().sequence, 1);

    // Not yet: parks, and any type wakes it, next to a typed wait.
    let next = tokio::spawn({
        let (attach, id) = (attach.clone(), id.clone());
        async move { attach.await_next_event(&id, 1).await }
    });
    let typed_wait = wait_for(&attach, &id, NOTE, 1);
    until_parked(&admin, &id, 2).await;
    let progress = registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(PROGRESS, json!({ "pct": 1 })),
        )
        .await
        .unwrap()
        .event;
    assert_eq!(answer(next).await.unwrap(), progress);
    assert!(!typed_wait.is_finished(), "a progress event is no note");
    let ended = registry
        .complete_process(&id, ProcessAwaitOutput::success(json!("done")))
        .await
        .unwrap();
    assert!(ended.is_terminal());
    expect_terminal(answer(typed_wait).await, &id);
    // The terminal event is itself the next event; past it, the log is closed.
    let last = attach.await_next_event(&id, 2).await.unwrap();
    assert_eq!(last.event_type, "process.completed");
    expect_terminal(attach.await_next_event(&id, last.sequence).await, &id);
    assert_eq!(parked_on(&admin, &id).await, 0);
}

/// The incarnation of `id` (its `ProcessTerminal` key), as ingress tells it.
async fn incarnation_of(ingress: &str, id: &str) -> String {
    let target: Value = reqwest::Client::new()
        .get(format!(
            "{ingress}/ProcessObject/{}/attach_target",
            urlencode(id)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    target["workflow_key"].as_str().unwrap().to_owned()
}

/// The journal length of the one `handler` invocation on `id`'s object:
/// every state read and write, call and completion is one entry.
async fn journal_of(admin: &Admin, id: &str, handler: &str) -> u64 {
    let rows = admin
        .query(&format!(
            "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessObject' \
             AND target_service_key = '{id}' AND target_handler_name = '{handler}'"
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one {handler} on `{id}`: {rows:?}");
    let invocation = rows[0]["id"].as_str().unwrap();
    let entries = admin
        .query(&format!(
            "SELECT index FROM sys_journal WHERE id = '{invocation}'"
        ))
        .await
        .unwrap();
    assert!(!entries.is_empty(), "the journal of {invocation} is kept");
    entries.len() as u64
}

/// `ProcessObject/park_wait` invocations on `id` not completed yet.
async fn parks_in_flight(admin: &Admin, id: &str) -> usize {
    admin
        .query(&format!(
            "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessObject' \
             AND target_service_key = '{id}' AND target_handler_name = 'park_wait' \
             AND status <> 'completed'"
        ))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn abandoned_waits_neither_refuse_a_new_wait_nor_cost_an_append() {
    let registry = common::registry();
    let attach = common::attach();
    let urls = common::urls();
    let admin = Admin::new(urls.admin.clone());
    let quiet = common::unique("milestone-quiet");
    let busy = common::unique("milestone-abandoned");
    for id in [&quiet, &busy] {
        registry.register_process(typed(id)).await.unwrap();
    }
    // 300 hosts each wait a moment and give up (a loop of `await_event`
    // with a timeout): a third on a type nothing appends, a third on notes
    // and a third on any event far beyond the log.
    for batch in 0..10u64 {
        let tries: Vec<_> = (0..30u64)
            .map(|n| {
                let (attach, id) = (attach.clone(), busy.clone());
                let n = batch * 30 + n;
                tokio::spawn(async move {
                    let far = 1_000_000 + n;
                    let wait = async {
                        match n % 3 {
                            0 => attach.await_event(&id, PING, 0).await.unwrap(),
                            1 => attach.await_event(&id, NOTE, far).await.unwrap(),
                            _ => attach.await_next_event(&id, far).await,
                        }
                    };
                    tokio::time::timeout(Duration::from_millis(1500), wait).await
                })
            })
            .collect();
        for attempt in tries {
            let outcome = attempt.await.unwrap();
            assert!(
                outcome.is_err(),
                "an abandoned wait had an answer: {outcome:?}"
            );
        }
    }
    // Every run has parked (the cap expired the oldest for the last 44).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while parks_in_flight(&admin, &busy).await > 0 || parked_on(&urls.admin, &busy).await != 256 {
        assert!(tokio::time::Instant::now() < deadline, "the parks settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An append does the same work with 300 abandoned waits as with none.
    registry.append_event(&quiet, note(1)).await.unwrap();
    registry.append_event(&busy, note(1)).await.unwrap();
    let (alone, crowded) = (
        journal_of(&admin, &quiet, "append").await,
        journal_of(&admin, &busy, "append").await,
    );
    assert_eq!(
        crowded, alone,
        "an append reads and writes nothing for waits it does not resolve"
    );

    // A fresh wait still parks (expiring the oldest, no Conflict) and wakes.
    let fresh = wait_for(&attach, &busy, NOTE, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!fresh.is_finished(), "nothing matches yet");
    let logged = registry.append_event(&busy, note(2)).await.unwrap().event;
    assert_eq!(answer(fresh).await.unwrap(), logged);
}

#[tokio::test]
async fn an_abandoned_wait_expires_and_a_patient_one_parks_again() {
    let registry = common::registry();
    let attach = common::attach().with_park_ttl(Duration::from_secs(1));
    let admin = common::urls().admin;
    let id = common::unique("milestone-ttl");
    registry.register_process(typed(&id)).await.unwrap();

    let gave_up =
        tokio::time::timeout(Duration::from_millis(500), attach.await_event(&id, PING, 0)).await;
    assert!(gave_up.is_err());
    // Its park goes when its TTL runs out, with nobody waiting.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while parked_on(&admin, &id).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the park expires");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A waiter that outlasts several TTLs still gets its event.
    let patient = wait_for(&attach, &id, NOTE, 0);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!patient.is_finished());
    let logged = registry.append_event(&id, note(1)).await.unwrap().event;
    assert_eq!(answer(patient).await.unwrap(), logged);
    assert_eq!(parked_on(&admin, &id).await, 0);
}

#[tokio::test]
async fn ingress_cannot_start_or_answer_a_milestone_run() {
    let registry = common::registry();
    let attach = common::attach();
    let urls = common::urls();
    let id = common::unique("milestone-planted");
    let other = common::unique("milestone-other");
    registry.register_process(typed(&id)).await.unwrap();
    let honest = wait_for(&attach, &id, NOTE, 0);
    until_parked(&urls.admin, &id, 1).await;

    // A run for this process's waits naming another (unknown) process, in
    // the previous release's key shape and in the current one.
    let incarnation = incarnation_of(&urls.ingress, &id).await;
    let planted = MilestoneWait {
        process_id: other.clone(),
        incarnation,
        event_type: Some(NOTE.to_owned()),
        after_sequence: 0,
        wait_id: None,
        park_ttl_ms: None,
    };
    let with_id = MilestoneWait {
        wait_id: Some("planted".to_owned()),
        ..planted.clone()
    };
    let http = reqwest::Client::new();
    for wait in [&planted, &with_id] {
        let key = urlencode(&wait.key());
        for verb in ["run", "run/send"] {
            let status = http
                .post(format!("{}/ProcessMilestone/{key}/{verb}", urls.ingress))
                .json(wait)
                .send()
                .await
                .unwrap()
                .status();
            assert!(!status.is_success(), "{verb} from ingress: {status}");
        }
        let runs = common::admin_query(&format!(
            "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessMilestone' \
             AND target_service_key = '{}'",
            wait.key().replace('\'', "''")
        ))
        .await;
        assert!(runs.is_empty(), "nothing started: {runs:?}");
    }

    // The honest waiter gets the real event.
    let logged = registry.append_event(&id, note(1)).await.unwrap().event;
    assert_eq!(answer(honest).await.unwrap(), logged);

    // An unknown process is `UnknownProcess` at once: one look, no run.
    let before = tokio::time::Instant::now();
    match answer(wait_for(&attach, &other, NOTE, 0)).await {
        Err(ProcessError::UnknownProcess { process_id }) => assert_eq!(process_id, other),
        wrong => panic!("expected UnknownProcess, got {wrong:?}"),
    }
    assert!(before.elapsed() < Duration::from_secs(5));
    let looks = common::admin_query(&format!(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessObject' \
         AND target_service_key = '{other}'"
    ))
    .await;
    assert_eq!(looks.len(), 1, "one look, no re-attach loop: {looks:?}");
}

/// `id`'s object state as the engine stores it: key → JSON value.
async fn object_state(id: &str) -> serde_json::Map<String, Value> {
    let rows = common::admin_query(&format!(
        "SELECT key, value_utf8 FROM state WHERE service_name = 'ProcessObject' \
         AND service_key = '{id}'"
    ))
    .await;
    rows.iter()
        .map(|row| {
            let key = row["key"].as_str().unwrap().to_owned();
            let value = serde_json::from_str(row["value_utf8"].as_str().unwrap()).unwrap();
            (key, value)
        })
        .collect()
}

/// Replaces `id`'s object state through the admin API.
async fn replace_state(id: &str, state: &serde_json::Map<String, Value>) {
    let bytes: serde_json::Map<String, Value> = state
        .iter()
        .map(|(key, value)| (key.clone(), json!(serde_json::to_vec(value).unwrap())))
        .collect();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/services/ProcessObject/state",
            common::urls().admin
        ))
        .json(&json!({ "object_key": id, "new_state": bytes }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while object_state(id).await != *state {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the state is written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_wait_the_previous_release_parked_past_the_head_still_wakes() {
    let registry = common::registry();
    let attach = common::attach();
    let admin = common::urls().admin;
    let id = common::unique("milestone-legacy");
    registry.register_process(typed(&id)).await.unwrap();
    let waiter = wait_for(&attach, &id, NOTE, 0);
    until_parked(&admin, &id, 1).await;

    // Rewrite the park as the previous release stored it: in the note
    // range although it waits past the head (after 2 at head 0), with no
    // park id, and no `parks` summary in the head.
    let mut state = object_state(&id).await;
    let row = state.get_mut("row").unwrap();
    assert!(row["head"]["parks"].is_object(), "{row}");
    row["head"].as_object_mut().unwrap().remove("parks");
    assert!(state.remove("mp/0").is_some(), "{state:?}");
    let park = state.get_mut(&format!("mw/0/{NOTE}")).unwrap();
    park.as_object_mut().unwrap().remove("id");
    park["after_sequence"] = json!(2);
    replace_state(&id, &state).await;

    // The first note moves it beyond the log, the second brings the log to
    // it, the third is its event.
    registry.append_event(&id, note(1)).await.unwrap();
    let moved = object_state(&id).await;
    assert!(moved.contains_key("mf/2/0"), "{moved:?}");
    registry.append_event(&id, note(2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "notes 1 and 2 are not past 2");
    let third = registry.append_event(&id, note(3)).await.unwrap().event;
    assert_eq!(answer(waiter).await.unwrap(), third);
    assert_eq!(parked_on(&admin, &id).await, 0);
}

#[tokio::test]
async fn the_oldest_wait_makes_room_and_its_waiter_parks_again() {
    let registry = common::registry();
    let attach = common::attach();
    let admin = common::urls().admin;
    let id = common::unique("milestone-room");
    registry.register_process(typed(&id)).await.unwrap();
    let live = wait_for(&attach, &id, NOTE, 0);
    until_parked(&admin, &id, 1).await;
    // 256 newer waits, abandoned: the live one is the oldest and expires
    // first; its waiter parks again (expiring an abandoned one).
    let abandoned: Vec<_> = (0..256u64)
        .map(|n| {
            let (attach, id) = (attach.clone(), id.clone());
            tokio::spawn(async move {
                let wait = attach.await_event(&id, PING, n);
                tokio::time::timeout(Duration::from_secs(3), wait).await
            })
        })
        .collect();
    for wait in abandoned {
        assert!(
            wait.await.unwrap().is_err(),
            "nothing answers an abandoned wait"
        );
    }
    assert!(
        !live.is_finished(),
        "an expired park is no answer to the waiter"
    );
    let logged = registry.append_event(&id, note(1)).await.unwrap().event;
    assert_eq!(answer(live).await.unwrap(), logged);
    let expired = common::admin_query(&format!(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessMilestone' \
         AND target_service_key LIKE '%{id}%' AND status = 'completed'"
    ))
    .await;
    assert!(
        expired.len() >= 2,
        "the live wait's first run expired: {expired:?}"
    );
}

/// A milestone run cancelled from the admin API gives its wait back: the
/// park goes, and the waiter, still waiting, parks again and gets its
/// event.
#[tokio::test]
async fn a_cancelled_wait_is_asked_again_by_its_waiter() {
    let registry = common::registry();
    let id = common::unique("milestone-cancel");
    registry.register_process(typed(&id)).await.unwrap();
    let admin_url = common::urls().admin;
    let waiter = tokio::spawn({
        let id = id.clone();
        async move { common::attach().await_event(&id, NOTE, 0).await.unwrap() }
    });
    until_parked(&admin_url, &id, 1).await;
    let admin = Admin::new(admin_url.clone());
    let runs = admin
        .query(&format!(
            "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessMilestone' \
             AND target_service_key LIKE '%{id}%' AND status <> 'completed'"
        ))
        .await
        .unwrap();
    let run = runs[0]["id"].as_str().expect("the parked run").to_owned();
    admin.cancel(&run).await.unwrap();
    admin.await_completed(&run, PATIENCE).await.unwrap();
    // The waiter's next wait parks (the cancelled one's park is gone).
    until_parked(&admin_url, &id, 1).await;
    let appended = registry.append_event(&id, note(1)).await.unwrap().event;
    assert_eq!(answer(waiter).await.unwrap(), appended);
}
