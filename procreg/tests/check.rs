//! `check` finds a disagreement between a process's grant mirror and its
//! session's authority: here the session's state is wiped behind the
//! registry's back through the admin API, so only the process remembers
//! the grant.

use std::time::Duration;

use std::time::Instant;

use procreg::check::check;
use restate_process_registry::testing::support::{descriptor, typed, unique_id};
use restate_process_registry::{ProcessRegistry, SessionScope};
use restate_process_registry_testkit::admin::Admin;
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

/// A transfer whose coordinator is killed between take and give (held at
/// the `transfer.after_take` cut point): `check` reports the intent the
/// source recorded, and `procreg check --repair` completes it, prints what
/// it did, and leaves the registry consistent with every grant moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_cut_off_transfer_and_repair_completes_it() {
    let mut stack = LocalStack::start().await.expect("local stack");
    let registry = stack.registry().unwrap();
    let source = format!("cut.transfer.after_take.{}", unique_id("src"));
    let destination = unique_id("dst");
    let (from, to) = (
        SessionScope::session(&source),
        SessionScope::session(&destination),
    );
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = unique_id(&format!("cutoff-{n}"));
        registry.register_process(typed(&id)).await.unwrap();
        registry
            .grant_handle(&from, &id, descriptor("d"))
            .await
            .unwrap();
        ids.push(id);
    }
    let (caller, from_c, to_c, moving) = (registry.clone(), from.clone(), to.clone(), ids.clone());
    let call =
        tokio::spawn(async move { caller.transfer_handle_grants(&from_c, &to_c, &moving).await });
    let admin = Admin::new(stack.server_mut().admin_url());
    let sql = "SELECT i.id AS id FROM sys_invocation i JOIN sys_journal j ON i.id = j.id \
               WHERE i.target_handler_name = 'transfer_grants_v2' AND i.status <> 'completed' \
               AND j.name = 'cut.transfer.after_take'";
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        let rows = admin.query(sql).await.expect("query");
        if let Some(id) = rows.first().and_then(|row| row["id"].as_str()) {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the transfer never reached the cut point"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    admin.kill(&held).await.expect("kill");
    admin
        .await_completed(&held, Duration::from_secs(30))
        .await
        .expect("killed");
    assert!(
        call.await.unwrap().is_err(),
        "a killed transfer is not acknowledged"
    );

    let report = check(&registry).await.expect("check runs");
    assert_eq!(
        report.pending_sessions,
        vec![source.clone()],
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("unfinished transfer")),
        "{:?}",
        report.problems
    );

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_procreg"))
        .args(["check", "--repair", "--ingress", &stack.ingress_url()])
        .output()
        .await
        .expect("procreg check --repair runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("repaired session `{source}`: 1 transfer(s)")),
        "{stdout}"
    );
    assert!(stdout.contains("consistent"), "{stdout}");

    let after = check(&registry).await.expect("check runs");
    assert!(after.is_clean(), "{:?}", after.problems);
    assert!(registry.session_grants(&source).await.unwrap().is_empty());
    assert_eq!(
        registry.session_grants(&destination).await.unwrap().len(),
        3
    );
}
