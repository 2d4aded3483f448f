//! Waits last as long as their process: a terminal wait and a milestone
//! wait each outlive two server restarts further apart than the client's
//! re-attach window. Its own binary: restarting a server disturbs every
//! test sharing it.

use std::time::Duration;

use restate_process_registry::testing::support::{typed, unique_id, NOTE};
use restate_process_registry::{
    ProcessAttach, ProcessAwaitOutput, ProcessEventAppendRequest, ProcessRegistry,
};
use restate_process_registry_testkit::local_stack::LocalStack;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn waits_outlive_restarts_further_apart_than_the_reattach_window() {
    let mut stack = LocalStack::start().await.unwrap();
    let registry = stack.registry().unwrap();
    // Longer than one restart takes, shorter than the gap between two.
    let window = Duration::from_secs(8);
    let attach = stack.attach().unwrap().with_reattach_window(window);
    let id = unique_id("wait-restarts");
    registry.register_process(typed(&id)).await.unwrap();
    let terminal = tokio::spawn({
        let (attach, id) = (attach.clone(), id.clone());
        async move { attach.await_terminal(&id).await }
    });
    let milestone = tokio::spawn({
        let (attach, id) = (attach.clone(), id.clone());
        async move { attach.await_event(&id, NOTE, 0).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    for restart in 1..=2 {
        stack.server_mut().stop().await.unwrap();
        stack.server_mut().restart().await.unwrap();
        // Attached again and held, for longer than the window.
        tokio::time::sleep(window + Duration::from_secs(3)).await;
        assert!(
            !terminal.is_finished(),
            "terminal wait ended at restart {restart}"
        );
        assert!(
            !milestone.is_finished(),
            "milestone wait ended at restart {restart}"
        );
    }

    let registry = stack.registry().unwrap();
    let note = registry
        .append_event(&id, ProcessEventAppendRequest::new(NOTE, json!({ "n": 1 })))
        .await
        .unwrap()
        .event;
    let woken = tokio::time::timeout(PATIENCE, milestone)
        .await
        .expect("the milestone waiter resumes")
        .unwrap()
        .expect("the Restate attach has milestone waits");
    assert_eq!(woken.unwrap(), note);
    let outcome = ProcessAwaitOutput::success(json!("done"));
    registry
        .complete_process(&id, outcome.clone())
        .await
        .unwrap();
    let answered = tokio::time::timeout(PATIENCE, terminal)
        .await
        .expect("the terminal waiter resumes")
        .unwrap();
    assert_eq!(answered.unwrap(), outcome);
}
