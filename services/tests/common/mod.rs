//! One local Restate stack per test binary (`testkit::shared::stack`),
//! and the clients and queries the tests build on it.

#![allow(dead_code)] // each test binary uses a different part

use async_trait::async_trait;
use restate_process_registry::{
    ProcessResult, ProcessRunHandle, RestateProcessAttach, RestateProcessRegistry,
};
use restate_process_registry_testkit::shared;
use serde_json::{json, Value};

pub use restate_process_registry_testkit::shared::StackUrls as Urls;

/// This binary's stack, started on first use.
pub fn urls() -> Urls {
    shared::stack()
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

/// A run handle that runs nothing: for drivers that only wait.
pub struct NoRuns;

#[async_trait]
impl ProcessRunHandle for NoRuns {
    async fn claim_and_run_pending(&self) -> ProcessResult<()> {
        Ok(())
    }
}
