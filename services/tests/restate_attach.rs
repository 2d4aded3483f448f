//! `RestateProcessAttach` against a real restate-server: terminal waits
//! resolve through ingress attach to the `ProcessTerminal` workflow's
//! durable promise.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_process_registry::testing::support::external;
use restate_process_registry::{
    ProcessAttach, ProcessAwaitOutput, ProcessAwaiter, ProcessError, ProcessRegistry,
    ProcessResult, ProcessWorkDriver, RestateProcessRegistry,
};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);

/// Shared-handler reads of `process_id` the engine has run so far
/// (completed invocations are retained, so the engine counts them).
async fn reads_of(process_id: &str) -> usize {
    common::admin_query(&format!(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessObject' \
         AND target_service_key = '{process_id}' AND target_handler_name = 'get'"
    ))
    .await
    .len()
}

/// Completes `process_id` with `output`; `waiter` must then resume with it.
async fn complete_and_expect(
    registry: &RestateProcessRegistry,
    process_id: &str,
    output: &ProcessAwaitOutput,
    waiter: tokio::task::JoinHandle<ProcessResult<ProcessAwaitOutput>>,
) {
    registry
        .complete_process(process_id, output.clone())
        .await
        .unwrap();
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the attached waiter resumes")
        .unwrap()
        .unwrap();
    assert_eq!(&got, output);
}

#[tokio::test]
async fn a_waiter_started_before_completion_gets_the_recorded_output() {
    let registry = common::registry();
    let id = common::unique("attach-live");
    registry.register_process(external(&id)).await.unwrap();

    let attach = common::attach();
    let waiter = tokio::spawn({
        let id = id.clone();
        async move { attach.await_terminal(&id).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter must wait for the outcome"
    );

    let output = ProcessAwaitOutput::success(json!({ "answer": 42 }));
    complete_and_expect(&registry, &id, &output, waiter).await;
    let stored = registry.get_process(&id).await.unwrap();
    assert_eq!(stored.status.await_output(), Some(&output));
}

#[tokio::test]
async fn a_terminal_append_also_resolves_the_waiter() {
    use restate_process_registry::testing::support::typed;
    use restate_process_registry::ProcessEventAppendRequest;

    let registry = common::registry();
    let id = common::unique("attach-append");
    registry.register_process(typed(&id)).await.unwrap();
    let attach = common::attach();
    let waiter = tokio::spawn({
        let id = id.clone();
        async move { attach.await_terminal(&id).await }
    });
    let record = registry.get_process(&id).await.unwrap();
    let terminal_type = record
        .event_types
        .iter()
        .find(|t| t.semantics.terminal.is_some())
        .expect("the typed catalog declares a terminal type")
        .name
        .clone();
    let payload = json!({ "result": "done", "ok": true, "reason": "finished" });
    let appended = registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(&terminal_type, payload).with_replay_key("end"),
        )
        .await;
    if let Err(err) = &appended {
        panic!("terminal append `{terminal_type}` refused: {err}");
    }
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the attached waiter resumes")
        .unwrap()
        .unwrap();
    let stored = registry.get_process(&id).await.unwrap();
    assert_eq!(stored.status.await_output(), Some(&got));
}

#[tokio::test]
async fn an_already_terminal_process_answers_without_attaching() {
    let registry = common::registry();
    let id = common::unique("attach-done");
    registry.register_process(external(&id)).await.unwrap();
    let output = ProcessAwaitOutput::failure("boom", "it broke");
    registry
        .complete_process(&id, output.clone())
        .await
        .unwrap();

    // Purge the finished workflow: attaching now would find nothing to
    // attach to and block on a fresh, never-resolved run.
    let deadline = Instant::now() + PATIENCE;
    let invocation = loop {
        let rows = common::admin_query(&format!(
            "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessTerminal' \
             AND target_service_key LIKE '{id}#%' AND status = 'completed'"
        ))
        .await;
        if let Some(row) = rows.first() {
            break row["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the workflow run completes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let purged = reqwest::Client::new()
        .patch(format!(
            "{}/invocations/{invocation}/purge",
            common::urls().admin
        ))
        .send()
        .await
        .unwrap();
    assert!(purged.status().is_success(), "purge: {}", purged.status());

    let got = tokio::time::timeout(Duration::from_secs(5), common::attach().await_terminal(&id))
        .await
        .expect("a terminal process answers from its row, without attaching")
        .unwrap();
    assert_eq!(got, output);

    // A run started now (a waiter that looked before the end and attaches
    // after the engine forgot the first run) still gets the outcome: the
    // ended row sends it with the run.
    let http = reqwest::Client::new();
    let ingress = common::urls().ingress;
    let started = http
        .post(format!("{ingress}/ProcessObject/{id}/start_terminal"))
        .send()
        .await
        .unwrap();
    assert!(
        started.status().is_success(),
        "start_terminal: {}",
        started.status()
    );
    let workflow_key = loop {
        let rows = common::admin_query(&format!(
            "SELECT target_service_key FROM sys_invocation WHERE target_service_name = \
             'ProcessTerminal' AND target_service_key LIKE '{id}#%' LIMIT 1"
        ))
        .await;
        if let Some(key) = rows
            .first()
            .and_then(|row| row["target_service_key"].as_str())
        {
            break key.to_owned();
        }
        assert!(
            Instant::now() < deadline + PATIENCE,
            "the run is started again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attached = tokio::time::timeout(
        PATIENCE,
        http.get(format!(
            "{ingress}/restate/workflow/ProcessTerminal/{}/attach",
            workflow_key.replace('#', "%23")
        ))
        .send(),
    )
    .await
    .expect("a run started after the end resolves")
    .unwrap();
    assert!(
        attached.status().is_success(),
        "attach: {}",
        attached.status()
    );
    let answered: ProcessAwaitOutput = attached.json().await.unwrap();
    assert_eq!(answered, output);
}

#[tokio::test]
async fn unknown_process_is_a_typed_error() {
    let id = common::unique("attach-unknown");
    let err = common::attach().await_terminal(&id).await.unwrap_err();
    assert_eq!(err, ProcessError::unknown(&id));
}

#[tokio::test]
async fn the_driver_with_attach_never_polls() {
    let registry = Arc::new(common::registry());
    let driver = ProcessWorkDriver::new(registry.clone(), Arc::new(common::NoRuns))
        .with_attach(Arc::new(common::attach()));
    let id = common::unique("attach-driver");
    registry.register_process(external(&id)).await.unwrap();

    let waiter = tokio::spawn({
        let driver = driver.clone();
        let id = id.clone();
        async move { driver.await_terminal(&id).await }
    });
    // Long enough for a polling awaiter to read several times (25 ms
    // doubling: 25, 50, 100, 200, 400, 800 ms).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let output = ProcessAwaitOutput::success(json!("attached"));
    complete_and_expect(&registry, &id, &output, waiter).await;
    // One read: the driver's "already terminal?" check. Then only the attach.
    assert_eq!(reads_of(&id).await, 1, "the driver must not poll");

    // Control: the polling awaiter over the same span reads many times, so
    // the count above would have caught polling.
    let polled = common::unique("attach-poll");
    registry.register_process(external(&polled)).await.unwrap();
    let awaiter = ProcessAwaiter::polling(registry.clone());
    let waiter = tokio::spawn({
        let polled = polled.clone();
        async move { awaiter.await_terminal(&polled).await }
    });
    tokio::time::sleep(Duration::from_millis(1600)).await;
    registry
        .complete_process(&polled, output.clone())
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(reads_of(&polled).await >= 4, "polling reads repeatedly");
}

#[tokio::test]
async fn restarting_the_terminal_run_answers_a_json_body() {
    let registry = common::registry();
    let id = common::unique("attach-restart");
    registry.register_process(external(&id)).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/ProcessObject/{id}/start_terminal",
            common::urls().ingress
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.bytes().await.unwrap();
    // The ingress client decodes every answer as JSON (`()` as `null`): an
    // empty body failed every attach that had to restart the run.
    serde_json::from_slice::<()>(&body).expect("a JSON body");
}

/// `ProcessTerminal` runs of `process_id` the engine knows, by status.
async fn terminal_runs_of(process_id: &str) -> Vec<String> {
    common::admin_query(&format!(
        "SELECT status FROM sys_invocation WHERE target_service_name = 'ProcessTerminal' \
         AND target_handler_name = 'run' AND target_service_key LIKE '{process_id}#%'"
    ))
    .await
    .iter()
    .map(|row| row["status"].as_str().unwrap_or_default().to_owned())
    .collect()
}

/// Polls `terminal_runs_of` until `done` holds (the engine's tables lag a
/// little behind the call that changed them).
async fn terminal_runs_until(process_id: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let runs = terminal_runs_of(process_id).await;
        if done(&runs) || Instant::now() >= deadline {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_terminal_run_starts_for_its_first_waiter_or_at_the_outcome() {
    let registry = common::registry();
    let unawaited = common::unique("attach-lazy-none");
    let awaited = common::unique("attach-lazy-waiter");
    registry
        .register_process(external(&unawaited))
        .await
        .unwrap();
    registry.register_process(external(&awaited)).await.unwrap();
    // A read of each row after registration: had registration sent a run,
    // the engine would know it by now.
    registry.get_process(&unawaited).await.unwrap();
    registry.get_process(&awaited).await.unwrap();
    assert_eq!(terminal_runs_of(&unawaited).await, Vec::<String>::new());
    assert_eq!(terminal_runs_of(&awaited).await, Vec::<String>::new());

    let attach = common::attach();
    let waiter = tokio::spawn({
        let id = awaited.clone();
        async move { attach.await_terminal(&id).await }
    });
    let runs = terminal_runs_until(&awaited, |runs| runs.len() == 1).await;
    assert_eq!(runs.len(), 1, "the waiter started one run: {runs:?}");
    assert!(!waiter.is_finished(), "the waiter waits for the outcome");

    let output = ProcessAwaitOutput::success(json!({ "lazy": true }));
    complete_and_expect(&registry, &awaited, &output, waiter).await;

    // Nobody waited: the outcome starts the run, which ends at once.
    registry
        .complete_process(&unawaited, output.clone())
        .await
        .unwrap();
    for id in [&unawaited, &awaited] {
        let runs = terminal_runs_until(id, |runs| runs == ["completed"]).await;
        assert_eq!(runs, ["completed"], "{id}: one run, ended");
    }
}

/// A cancel of the terminal run from the admin API is refused: the waiter
/// attached to it still gets the outcome.
#[tokio::test]
async fn a_cancelled_terminal_run_still_answers_its_waiter() {
    let registry = common::registry();
    let id = common::unique("attach-cancel");
    registry.register_process(external(&id)).await.unwrap();
    let waiter = {
        let id = id.clone();
        tokio::spawn(async move { common::attach().await_terminal(&id).await })
    };
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        let rows = common::admin_query(&format!(
            "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessTerminal' \
             AND target_handler_name = 'run' AND target_service_key LIKE '{id}#%'"
        ))
        .await;
        if let Some(run) = rows.first().and_then(|row| row["id"].as_str()) {
            break run.to_owned();
        }
        assert!(Instant::now() < deadline, "the waiter starts the run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cancelled = reqwest::Client::new()
        .patch(format!("{}/invocations/{run}/cancel", common::urls().admin))
        .send()
        .await
        .unwrap();
    assert!(
        cancelled.status().is_success(),
        "cancel: {}",
        cancelled.status()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let output = ProcessAwaitOutput::success(json!({ "after": "cancel" }));
    registry
        .complete_process(&id, output.clone())
        .await
        .unwrap();
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the waiter resumes")
        .unwrap()
        .unwrap();
    assert_eq!(got, output);
}
