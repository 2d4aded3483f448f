//! `check` finds a disagreement between a process's grant mirror and its
//! session's authority: here the session's state is wiped behind the
//! registry's back through the admin API, so only the process remembers
//! the grant.

use std::time::Duration;

use procreg::check::check;
use restate_process_registry::testing::support::{descriptor, typed, unique_id};
use restate_process_registry::{ProcessRegistry, SessionScope};
use restate_process_registry_testkit::local_stack::LocalStack;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_clean_then_reports_a_grant_its_session_lost() {
    let mut stack = LocalStack::start().await.expect("local stack");
    let registry = stack.registry().unwrap();
    let id = unique_id("check");
    let session = unique_id("check-session");
    registry.register_process(typed(&id)).await.unwrap();
    registry
        .grant_handle(&SessionScope::session(&session), &id, descriptor("d"))
        .await
        .unwrap();
    let clean = check(&registry).await.expect("check runs");
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert_eq!((clean.processes, clean.sessions, clean.grants), (1, 1, 1));

    let admin = stack.server_mut().admin_url();
    let wiped = reqwest::Client::new()
        .post(format!("{admin}/services/SessionGrants/state"))
        .json(&json!({ "object_key": session, "new_state": {} }))
        .send()
        .await
        .expect("admin answers");
    assert!(wiped.status().is_success(), "{:?}", wiped.text().await);
    // The admin API applies the change asynchronously.
    let mut report = check(&registry).await.expect("check runs");
    for _ in 0..100 {
        if !report.is_clean() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        report = check(&registry).await.expect("check runs");
    }
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("that its session does not hold"),
        "{:?}",
        report.problems
    );
}
