//! [`RestateProcessAttach`]: terminal waits on the engine's durable promise.

use async_trait::async_trait;
use reqwest::StatusCode;

use crate::attach::ProcessAttach;
use crate::error::{ProcessError, ProcessResult};
use crate::model::ProcessAwaitOutput;
use crate::restate::ingress::decode_failure;
use crate::restate::registry::{attach_target, start_terminal, RestateProcessRegistry};
use crate::restate::wire::PROCESS_TERMINAL;

/// Waits for outcomes through Restate ingress attach to the
/// `ProcessTerminal` workflow of the process: one long-lived request that the
/// engine answers when the process's durable promise resolves. No polling.
///
/// An already-terminal process answers from its row without attaching.
#[derive(Clone)]
pub struct RestateProcessAttach {
    registry: RestateProcessRegistry,
}

impl RestateProcessAttach {
    /// Attaches through the same ingress as `registry`.
    pub fn new(registry: RestateProcessRegistry) -> Self {
        Self { registry }
    }

    fn url(&self, key: &str, tail: &[&str]) -> ProcessResult<reqwest::Url> {
        let (_, base) = self.registry.ingress().http();
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| ProcessError::invalid(format!("ingress url `{base}` cannot be a base")))?
            .pop_if_empty()
            .extend(["restate", "workflow", PROCESS_TERMINAL, key])
            .extend(tail);
        Ok(url)
    }

    /// Attaches to the workflow; `None` when the engine does not know it.
    async fn attach(&self, key: &str) -> ProcessResult<Option<ProcessAwaitOutput>> {
        let (http, _) = self.registry.ingress().http();
        let response = http
            .get(self.url(key, &["attach"])?)
            .send()
            .await
            .map_err(|err| ProcessError::Unavailable(format!("attach failed: {err}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| ProcessError::Unavailable(format!("attach failed: {err}")))?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body).map(Some).map_err(|err| {
                ProcessError::Unavailable(format!("attach answered an unreadable outcome: {err}"))
            }),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(decode_failure(status.as_u16(), &body)),
        }
    }

    /// Has the process start its workflow run; a no-op when it exists.
    async fn start(&self, process_id: &str) -> ProcessResult<()> {
        start_terminal(&self.registry, process_id).await
    }
}

#[async_trait]
impl ProcessAttach for RestateProcessAttach {
    async fn await_terminal(&self, process_id: &str) -> ProcessResult<ProcessAwaitOutput> {
        let target = attach_target(&self.registry, process_id).await?;
        if let Some(output) = target.output {
            return Ok(output);
        }
        if let Some(output) = self.attach(&target.workflow_key).await? {
            return Ok(output);
        }
        // Registration submits the workflow one-way; if the engine has not
        // created it yet, have the process submit it again (idempotent per
        // key; `run` itself is private) and attach.
        self.start(process_id).await?;
        self.attach(&target.workflow_key).await?.ok_or_else(|| {
            ProcessError::Unavailable(format!(
                "workflow {PROCESS_TERMINAL}/{} is unknown to the engine",
                target.workflow_key
            ))
        })
    }
}
