//! [`RestateProcessAttach`]: terminal and milestone waits on the engine's
//! durable promises.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::attach::ProcessAttach;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{ProcessAwaitOutput, ProcessEvent};
use crate::restate::ingress::decode_failure;
use crate::restate::registry::{attach_target, milestone, start_terminal, RestateProcessRegistry};
use crate::restate::wire::{Milestone, MilestoneWait, PROCESS_MILESTONE, PROCESS_TERMINAL};

/// How long an attach cut off by the engine (a restart, a lost connection)
/// keeps attaching again before the wait fails with `Unavailable`.
pub const REATTACH_WINDOW: Duration = Duration::from_secs(300);
/// First pause before attaching again; doubles up to [`REATTACH_PAUSE_MAX`].
const REATTACH_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between attach attempts.
const REATTACH_PAUSE_MAX: Duration = Duration::from_secs(2);

/// Waits through Restate ingress attach: one long-lived request that the
/// engine answers when a durable promise resolves. No polling.
///
/// - Terminal waits attach to the process's `ProcessTerminal` workflow; an
///   already-terminal process answers from its row.
/// - Milestone waits ([`ProcessAttach::await_event`]) answer an event
///   already logged at once; otherwise they start the milestone's
///   `ProcessMilestone` workflow, parked on an awakeable that the append
///   logging the event completes, and attach to it. Waiters on the same
///   milestone share one run.
///
/// An attach cut off before the engine answers (the server restarting, the
/// connection lost) attaches again, for up to [`REATTACH_WINDOW`].
#[derive(Clone)]
pub struct RestateProcessAttach {
    registry: RestateProcessRegistry,
}

impl std::fmt::Debug for RestateProcessAttach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestateProcessAttach")
            .field("registry", &self.registry)
            .finish()
    }
}

/// One attach attempt's result.
enum Attached<T> {
    Answer(T),
    /// The engine does not know the workflow.
    Unknown,
    /// No answer: the request or the engine failed on the way.
    Cut(ProcessError),
}

impl RestateProcessAttach {
    /// Attaches through the same ingress as `registry`.
    pub fn new(registry: RestateProcessRegistry) -> Self {
        Self { registry }
    }

    /// `{ingress}/{segments…}`, each segment escaped.
    fn url(&self, segments: &[&str]) -> ProcessResult<reqwest::Url> {
        let (_, base) = self.registry.ingress().http();
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| ProcessError::invalid(format!("ingress url `{base}` cannot be a base")))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn attach_once<T: DeserializeOwned>(
        &self,
        service: &str,
        key: &str,
    ) -> ProcessResult<Attached<T>> {
        let (http, _) = self.registry.ingress().http();
        let cut = |err: reqwest::Error| {
            Attached::Cut(ProcessError::unavailable_because("attach failed", err))
        };
        let response = match http
            .get(self.url(&["restate", "workflow", service, key, "attach"])?)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return Ok(cut(err)),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => return Ok(cut(err)),
        };
        match status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map(Attached::Answer)
                .map_err(|err| {
                    ProcessError::unavailable_because("attach answered an unreadable value", err)
                }),
            StatusCode::NOT_FOUND => Ok(Attached::Unknown),
            // The ingress or a partition is not serving yet (a restart).
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                Ok(Attached::Cut(decode_failure(status.as_u16(), &body)))
            }
            _ => Err(decode_failure(status.as_u16(), &body)),
        }
    }

    /// Attaches to workflow `service/key` until it answers. `start` has the
    /// workflow started when the engine does not know it (`started`: it was
    /// just started); a cut attach attaches again (see [`REATTACH_WINDOW`]).
    async fn attach<T, F, Fut>(
        &self,
        service: &str,
        key: &str,
        mut started: bool,
        mut start: F,
    ) -> ProcessResult<T>
    where
        T: DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ProcessResult<()>>,
    {
        let mut cut_since: Option<Instant> = None;
        let mut pause = REATTACH_PAUSE;
        loop {
            let failure = match self.attach_once(service, key).await? {
                Attached::Answer(answer) => return Ok(answer),
                Attached::Unknown if !started => {
                    start().await?;
                    started = true;
                    continue;
                }
                Attached::Unknown => ProcessError::unavailable(format!(
                    "workflow {service}/{key} is unknown to the engine"
                )),
                Attached::Cut(failure) => failure,
            };
            let since = *cut_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= REATTACH_WINDOW {
                return Err(failure);
            }
            tracing::debug!(%failure, ?pause, "attach cut off; attaching again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(REATTACH_PAUSE_MAX);
            // After a restart the engine may have lost a run it never
            // stored; starting again is a no-op when it has it.
            started = false;
        }
    }

    /// The next event above `after_sequence`, of any type, through the
    /// engine: at once when logged, else when appended. Fails with
    /// `AlreadyTerminal` once the process has ended and no event follows
    /// (`procreg events --follow` reads a log this way).
    pub async fn await_next_event(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<ProcessEvent> {
        self.milestone(process_id, None, after_sequence).await
    }

    async fn milestone(
        &self,
        process_id: &str,
        event_type: Option<&str>,
        after_sequence: u64,
    ) -> ProcessResult<ProcessEvent> {
        let incarnation =
            match milestone(&self.registry, process_id, event_type, after_sequence).await? {
                Milestone::Found { event } => return Ok(event),
                Milestone::Pending { incarnation } => incarnation,
            };
        let wait = MilestoneWait {
            process_id: process_id.to_owned(),
            incarnation,
            event_type: event_type.map(str::to_owned),
            after_sequence,
        };
        self.start_milestone(&wait).await?;
        self.attach(PROCESS_MILESTONE, &wait.key(), true, || {
            self.start_milestone(&wait)
        })
        .await
    }

    /// Submits the run of the milestone wait's workflow (a no-op when the
    /// engine already has it).
    async fn start_milestone(&self, wait: &MilestoneWait) -> ProcessResult<()> {
        let (http, _) = self.registry.ingress().http();
        let url = self.url(&[PROCESS_MILESTONE, &wait.key(), "run", "send"])?;
        let unavailable = |err: reqwest::Error| {
            ProcessError::unavailable_because("starting a milestone wait failed", err)
        };
        let response = http
            .post(url)
            .json(wait)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.map_err(unavailable)?;
        Err(decode_failure(status.as_u16(), &body))
    }
}

#[async_trait]
impl ProcessAttach for RestateProcessAttach {
    async fn await_terminal(&self, process_id: &str) -> ProcessResult<ProcessAwaitOutput> {
        let target = attach_target(&self.registry, process_id).await?;
        if let Some(output) = target.output {
            return Ok(output);
        }
        // The run starts lazily: if the engine does not know it yet, the
        // process submits it (idempotent per key; `run` itself is private).
        self.attach(PROCESS_TERMINAL, &target.workflow_key, false, || {
            start_terminal(&self.registry, process_id)
        })
        .await
    }

    async fn await_event(
        &self,
        process_id: &str,
        event_type: &str,
        after_sequence: u64,
    ) -> Option<ProcessResult<ProcessEvent>> {
        Some(
            self.milestone(process_id, Some(event_type), after_sequence)
                .await,
        )
    }
}
