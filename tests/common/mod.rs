//! One local Restate stack per test binary.
//!
//! Each `#[tokio::test]` runs on its own runtime, so the stack (server
//! child, endpoint task) lives on a dedicated runtime thread that outlasts
//! every test; tests only share its URLs and build their own clients.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::OnceLock;

use restate_process_registry::{RestateProcessAttach, RestateProcessRegistry};
use restate_process_registry_services::local_stack::LocalStack;
use serde_json::{json, Value};

/// Where this binary's stack listens.
#[derive(Debug, Clone)]
pub struct Urls {
    pub ingress: String,
    pub admin: String,
}

/// This binary's stack, started on first use.
pub fn urls() -> Urls {
    static URLS: OnceLock<Result<Urls, String>> = OnceLock::new();
    let urls = URLS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => return drop(tx.send(Err(err.to_string()))),
            };
            runtime.block_on(async move {
                match LocalStack::start().await {
                    Ok(mut stack) => {
                        let urls = Urls {
                            ingress: stack.ingress_url(),
                            admin: stack.server_mut().admin_url(),
                        };
                        let _ = tx.send(Ok(urls));
                        // Keep the stack alive for the life of the test binary.
                        std::future::pending::<()>().await;
                        drop(stack);
                    }
                    Err(err) => drop(tx.send(Err(err.to_string()))),
                }
            });
        });
        rx.recv()
            .unwrap_or_else(|_| Err("stack thread died before starting".into()))
    });
    match urls {
        Ok(urls) => urls.clone(),
        Err(err) => panic!("local Restate stack failed to start: {err}"),
    }
}

/// A fresh registry client (its connections belong to the calling test's runtime).
pub fn registry() -> RestateProcessRegistry {
    RestateProcessRegistry::connect(&urls().ingress).expect("ingress url is valid")
}

/// A fresh attach client.
pub fn attach() -> RestateProcessAttach {
    RestateProcessAttach::new(registry())
}

/// Rows of a query on the server's introspection tables (admin `/query`).
pub async fn admin_query(sql: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .post(format!("{}/query", urls().admin))
        .header("accept", "application/json")
        .json(&json!({ "query": sql }))
        .send()
        .await
        .expect("admin query is answered");
    let status = response.status();
    let body: Value = response.json().await.expect("admin query answers JSON");
    assert!(status.is_success(), "admin query failed: {status} {body}");
    body["rows"].as_array().cloned().unwrap_or_default()
}

/// A unique id for this test run.
pub fn unique(tag: &str) -> String {
    restate_process_registry::testing::support::unique_id(tag)
}
