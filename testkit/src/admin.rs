//! The server's admin API as tests and operators use it: SQL over the
//! introspection tables, and killing or cancelling one invocation.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A failed admin request.
#[derive(Debug, thiserror::Error)]
#[error("admin API: {0}")]
pub struct AdminError(String);

fn failed(what: &str, err: impl std::fmt::Display) -> AdminError {
    AdminError(format!("{what}: {err}"))
}

/// The admin API at one base URL (e.g. `http://127.0.0.1:9070`).
#[derive(Debug, Clone)]
pub struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    /// The admin API at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The rows of one query over the introspection tables (`/query`).
    pub async fn query(&self, sql: &str) -> Result<Vec<Value>, AdminError> {
        let response = self
            .http
            .post(format!("{}/query", self.base))
            .header("accept", "application/json")
            .json(&json!({ "query": sql }))
            .send()
            .await
            .map_err(|err| failed("query", err))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|err| failed("query", err))?;
        if !status.is_success() {
            return Err(AdminError(format!("query answered {status}: {body}")));
        }
        Ok(body["rows"].as_array().cloned().unwrap_or_default())
    }

    /// Runs `sql` every 50 ms until `found` picks an answer from its rows,
    /// for up to `patience`; then fails with `waited_for`. A server just
    /// started answers queries only once its partitions run, so until the
    /// deadline a failed query counts as "not yet".
    async fn poll<T>(
        &self,
        sql: &str,
        patience: Duration,
        waited_for: impl FnOnce() -> String,
        mut found: impl FnMut(&[Value]) -> Option<T>,
    ) -> Result<T, AdminError> {
        let deadline = Instant::now() + patience;
        loop {
            let rows = match self.query(sql).await {
                Ok(rows) => rows,
                Err(err) if Instant::now() >= deadline => return Err(err),
                Err(_) => Vec::new(),
            };
            if let Some(answer) = found(&rows) {
                return Ok(answer);
            }
            if Instant::now() >= deadline {
                return Err(AdminError(format!("{} within {patience:?}", waited_for())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The id of the one invocation of `service/handler` on object `key`
    /// that is not completed, once it exists (waiting up to `patience`).
    pub async fn live_invocation(
        &self,
        service: &str,
        handler: &str,
        key: &str,
        patience: Duration,
    ) -> Result<String, AdminError> {
        let sql = format!(
            "SELECT id FROM sys_invocation WHERE target_service_name = '{service}' \
             AND target_handler_name = '{handler}' AND target_service_key = '{}' \
             AND status <> 'completed'",
            key.replace('\'', "''")
        );
        let waited_for = || format!("no live {service}/{handler} invocation on `{key}`");
        self.poll(&sql, patience, waited_for, |rows| {
            rows.first()
                .and_then(|row| row["id"].as_str())
                .map(str::to_owned)
        })
        .await
    }

    /// The id of the live `service/handler` invocation on `key` once it
    /// holds at a cut point (its journal has the point's step, a `Run`
    /// named `cut.{point}`; see the services' `cut` module), waiting up to
    /// `patience`.
    pub async fn held_invocation(
        &self,
        service: &str,
        handler: &str,
        key: &str,
        patience: Duration,
    ) -> Result<String, AdminError> {
        let id = self
            .live_invocation(service, handler, key, patience)
            .await?;
        let sql = format!(
            "SELECT index FROM sys_journal WHERE id = '{id}' \
             AND entry_type = 'Command: Run' AND name LIKE 'cut.%'"
        );
        let waited_for = || format!("{service}/{handler} on `{key}` reached no cut point");
        self.poll(&sql, patience, waited_for, |rows| {
            (!rows.is_empty()).then_some(())
        })
        .await?;
        Ok(id)
    }

    /// Kills an invocation: it stops where it is, nothing of it runs again.
    pub async fn kill(&self, invocation_id: &str) -> Result<(), AdminError> {
        self.act(invocation_id, "kill").await
    }

    /// Cancels an invocation: its next await fails with the engine's 409.
    pub async fn cancel(&self, invocation_id: &str) -> Result<(), AdminError> {
        self.act(invocation_id, "cancel").await
    }

    async fn act(&self, invocation_id: &str, verb: &str) -> Result<(), AdminError> {
        let response = self
            .http
            .patch(format!("{}/invocations/{invocation_id}/{verb}", self.base))
            .send()
            .await
            .map_err(|err| failed(verb, err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(AdminError(format!("{verb} answered {status}: {body}")))
    }

    /// Waits until `invocation_id` is completed (killed, cancelled or done).
    pub async fn await_completed(
        &self,
        invocation_id: &str,
        patience: Duration,
    ) -> Result<(), AdminError> {
        let sql = format!("SELECT status FROM sys_invocation WHERE id = '{invocation_id}'");
        let waited_for = || format!("invocation {invocation_id} did not complete");
        self.poll(&sql, patience, waited_for, |rows| {
            let status = rows.first().and_then(|row| row["status"].as_str());
            matches!(status, Some("completed") | None).then_some(())
        })
        .await
    }
}
