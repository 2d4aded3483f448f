//! The operator's verbs, run as the real `procreg` binary against a real
//! stack: what they print, `--json`, and the exit status of every error.

use std::process::Output;
use std::time::Duration;

use restate_process_registry::testing::support::{descriptor, typed, unique_id, NOTE};
use restate_process_registry::{
    AbandonRequest, ProcessAwaitOutput, ProcessEventAppendRequest, ProcessRegistry,
    RestateProcessRegistry, SessionScope,
};
use restate_process_registry_testkit::local_stack::LocalStack;
use serde_json::{json, Value};
use tokio::process::Command;

fn procreg(ingress: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_procreg"));
    command
        .args(args)
        .env("PROCREG_INGRESS", ingress)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run(ingress: &str, args: &[&str]) -> Output {
    procreg(ingress, args).output().await.expect("procreg runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn status(output: &Output) -> i32 {
    output.status.code().expect("an exit status")
}

fn json_doc(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

#[tokio::test]
async fn operator_verbs_against_a_running_stack() {
    let stack = LocalStack::start().await.expect("a local stack");
    let ingress = stack.ingress_url();
    let registry: RestateProcessRegistry = stack.registry().unwrap();
    let id = unique_id("ops-get");
    registry.register_process(typed(&id)).await.unwrap();
    for n in 1..=3 {
        registry
            .append_event(&id, ProcessEventAppendRequest::new(NOTE, json!({ "n": n })))
            .await
            .unwrap();
    }
    let session = unique_id("ops-session");
    registry
        .grant_handle(&SessionScope::session(&session), &id, descriptor("ops"))
        .await
        .unwrap();

    // get: a table, JSON, and typed failures.
    let got = run(&ingress, &["get", &id]).await;
    assert_eq!(status(&got), 0, "{}", stderr(&got));
    let text = stdout(&got);
    assert!(text.contains(&id) && text.contains("running") && text.contains("grants      1"));
    assert_eq!(text.matches(" note ").count(), 3, "{text}");
    let got = json_doc(&run(&ingress, &["get", &id, "--json"]).await);
    assert_eq!(got["record"]["id"], json!(id));
    assert_eq!(got["recent_events"].as_array().map(Vec::len), Some(3));
    assert_eq!(got["grants"][0]["process_id"], json!(id));
    let missing = run(&ingress, &["get", "ops-nobody"]).await;
    assert_eq!(status(&missing), 1);
    assert_eq!(
        stderr(&missing).trim(),
        "procreg: error: unknown process `ops-nobody`"
    );
    let unreachable = run("http://127.0.0.1:9", &["get", &id]).await;
    assert_eq!(status(&unreachable), 1);
    assert_eq!(stderr(&unreachable).lines().count(), 1, "one line");
    assert!(
        stderr(&unreachable).contains("error sending request"),
        "the cause chain is printed: {}",
        stderr(&unreachable)
    );
    assert_eq!(status(&run(&ingress, &["ls", "--bogus"]).await), 2);
    assert_eq!(status(&run(&ingress, &["ls", "--since", "soon"]).await), 2);

    // ls: filters, pages with a continuation, and everything with --all.
    let label = unique_id("ops-label");
    let mut labelled = Vec::new();
    for n in 0..5 {
        let row = unique_id(&format!("ops-ls-{n}"));
        let mut registration = typed(&row);
        registration.identity.label = label.clone();
        registry.register_process(registration).await.unwrap();
        labelled.push(row);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["ls", "--label", &label, "--limit", "2", "--json"];
        if let Some(cursor) = &after {
            args.extend(["--after", cursor]);
        }
        let page = json_doc(&run(&ingress, &args).await);
        for row in page["rows"].as_array().unwrap() {
            seen.push(row["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort();
    labelled.sort();
    assert_eq!(seen, labelled, "pages cover the filter once each");
    let all = run(&ingress, &["ls", "--label", &label, "--all", "--json"]).await;
    assert_eq!(stdout(&all).lines().count(), 5, "NDJSON, a row a line");
    let none = run(&ingress, &["ls", "--label", &label, "--status", "failed"]).await;
    assert!(stdout(&none).contains("no matching processes"));
    let table = stdout(&run(&ingress, &["ls", "--label", &label, "--all"]).await);
    assert_eq!(table.lines().count(), 6, "a header and five rows: {table}");

    // grants.
    let grants = json_doc(&run(&ingress, &["grants", &session, "--json"]).await);
    assert_eq!(grants["grants"][0]["grant"]["process_id"], json!(id));
    assert!(stdout(&run(&ingress, &["grants", &session]).await).contains(&id));

    // events --follow: woken by each append, ends with the process.
    let after_two = run(&ingress, &["events", &id, "--after", "2", "--json"]).await;
    assert_eq!(stdout(&after_two).lines().count(), 1);
    let follower = procreg(&ingress, &["events", &id, "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    registry
        .append_event(&id, ProcessEventAppendRequest::new(NOTE, json!({ "n": 4 })))
        .await
        .unwrap();
    registry
        .complete_process(&id, ProcessAwaitOutput::success(json!("done")))
        .await
        .unwrap();
    let followed = tokio::time::timeout(Duration::from_secs(30), follower.wait_with_output())
        .await
        .expect("--follow ends when the process does")
        .unwrap();
    assert_eq!(status(&followed), 0, "{}", stderr(&followed));
    let sequences: Vec<u64> = stdout(&followed)
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["sequence"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(sequences, vec![1, 2, 3, 4, 5]);

    // await: one exit status per outcome, and the timeout.
    let done = run(&ingress, &["await", &id, "--json"]).await;
    assert_eq!(status(&done), 0);
    assert_eq!(
        json_doc(&done),
        json!({ "type": "success", "value": "done" })
    );
    let outcomes = [
        (ProcessAwaitOutput::failure("boom", "it broke"), 3),
        (ProcessAwaitOutput::cancelled(Some("stop".to_owned())), 4),
        (ProcessAwaitOutput::abandoned(json!({ "why": "gone" })), 5),
    ];
    for (output, expected) in outcomes {
        let row = unique_id("ops-await");
        registry.register_process(typed(&row)).await.unwrap();
        let waiter = procreg(&ingress, &["await", &row]).output();
        let complete = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            registry
                .complete_process(&row, output.clone())
                .await
                .unwrap();
        };
        let (waited, ()) = tokio::join!(waiter, complete);
        let waited = waited.unwrap();
        assert_eq!(status(&waited), expected, "{output:?}: {}", stderr(&waited));
        assert!(stderr(&waited).is_empty(), "an outcome is no error");
    }
    let pending = unique_id("ops-pending");
    registry.register_process(typed(&pending)).await.unwrap();
    let timed_out = run(&ingress, &["await", &pending, "--timeout", "300ms"]).await;
    assert_eq!(status(&timed_out), 124);
    registry
        .request_process_abandon(
            &pending,
            AbandonRequest {
                requested_by: "ops".into(),
                reason: "test".into(),
                requested_at_ms: 1,
            },
        )
        .await
        .unwrap();
    let shown = stdout(&run(&ingress, &["get", &pending]).await);
    assert!(shown.contains("abandon     requested by ops"), "{shown}");

    // prune: refuses without a terminal or --yes, then prunes.
    let refused = run(&ingress, &["prune", "--before", "0s"]).await;
    assert_eq!(status(&refused), 1);
    assert!(stderr(&refused).contains("--yes"));
    assert!(registry.get_process(&id).await.is_some(), "nothing pruned");
    let pruned = run(&ingress, &["prune", "--before", "0s", "--yes", "--json"]).await;
    assert_eq!(status(&pruned), 0, "{}", stderr(&pruned));
    assert!(json_doc(&pruned)["pruned_processes"].as_u64().unwrap() >= 4);
    assert!(registry.get_process(&id).await.is_none());
    assert_eq!(status(&run(&ingress, &["events", &id]).await), 1);
}
