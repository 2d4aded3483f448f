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
use crate::restate::wire::{
    new_wait_id, Milestone, MilestoneOutcome, PROCESS_MILESTONE, PROCESS_TERMINAL,
};

/// How long an attach keeps attaching again while the engine cannot be
/// reached (a restart, a lost connection) before the wait fails with
/// `Unavailable`, by default. The budget starts again after every attempt
/// that reached the engine and was held, so a wait lasts as long as its
/// process, across any number of restarts; change it with
/// [`RestateProcessAttach::with_reattach_window`].
pub const REATTACH_WINDOW: Duration = Duration::from_secs(300);
/// First pause before attaching again; doubles up to [`REATTACH_PAUSE_MAX`].
const REATTACH_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between attach attempts.
const REATTACH_PAUSE_MAX: Duration = Duration::from_secs(2);
/// A wait that expires sooner than this was expired to make room (the
/// shortest park TTL is one second).
const EVICTED_BEFORE: Duration = Duration::from_millis(900);

/// Waits through Restate ingress attach: one long-lived request that the
/// engine answers when a durable promise resolves. No polling.
///
/// - Terminal waits attach to the process's `ProcessTerminal` workflow; an
///   already-terminal process answers from its row.
/// - Milestone waits ([`ProcessAttach::await_event`]) answer an event
///   already logged at once; otherwise the process's `ProcessObject`
///   starts a `ProcessMilestone` run for this waiter alone (keyed by a
///   fresh random wait id), parked on an awakeable that the append logging
///   the event completes, and the waiter attaches to it. A parked run
///   expires after its park TTL ([`with_park_ttl`](Self::with_park_ttl),
///   five minutes by default) and the waiter, still waiting, starts a fresh
///   one; a waiter that gave up leaves nothing behind for longer than that.
///   An unknown process fails with `UnknownProcess` at once.
///
/// An attach cut off before the engine answers (the server restarting, the
/// connection lost) attaches again; it gives up only when the engine stays
/// unreachable for the re-attach window ([`REATTACH_WINDOW`] unless set).
#[derive(Clone)]
pub struct RestateProcessAttach {
    registry: RestateProcessRegistry,
    reattach_window: Duration,
    park_ttl: Option<Duration>,
}

impl std::fmt::Debug for RestateProcessAttach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestateProcessAttach")
            .field("registry", &self.registry)
            .field("reattach_window", &self.reattach_window)
            .field("park_ttl", &self.park_ttl)
            .finish()
    }
}

/// One attach attempt's result.
enum Attached<T> {
    Answer(T),
    /// The engine does not know the workflow.
    Unknown,
    /// No answer: the request or the engine failed on the way. `held`:
    /// the attempt had reached the engine and was waiting when it was cut.
    Cut {
        failure: ProcessError,
        held: bool,
    },
}

impl RestateProcessAttach {
    /// Attaches through the same ingress as `registry`.
    pub fn new(registry: RestateProcessRegistry) -> Self {
        Self {
            registry,
            reattach_window: REATTACH_WINDOW,
            park_ttl: None,
        }
    }

    /// How long the engine may stay unreachable before a wait fails with
    /// `Unavailable` (default [`REATTACH_WINDOW`]). Measured from the first
    /// failed attempt after the last one that was held, so it bounds one
    /// outage, not the wait.
    pub fn with_reattach_window(mut self, window: Duration) -> Self {
        self.reattach_window = window;
        self
    }

    /// How long one milestone wait stays parked before the engine drops it
    /// and this client parks a fresh one (the services clamp it to one
    /// second .. five minutes; five minutes by default). Shorter frees an
    /// abandoned wait sooner at the price of a re-park per period.
    pub fn with_park_ttl(mut self, ttl: Duration) -> Self {
        self.park_ttl = Some(ttl);
        self
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
        // A connection refused never reached the engine; anything cut
        // after the request went out was held.
        let cut = |err: reqwest::Error| Attached::Cut {
            held: !err.is_connect(),
            failure: ProcessError::unavailable_because("attach failed", err),
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
            StatusCode::NOT_FOUND => match decode_failure(status.as_u16(), &body) {
                // A run that failed with a model error (a release before
                // runs answered data): that is its answer, never a reason
                // to attach again.
                error @ ProcessError::UnknownProcess { .. } => Err(error),
                _ => Ok(Attached::Unknown),
            },
            // The ingress or a partition is not serving yet (a restart).
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Ok(Attached::Cut {
                failure: decode_failure(status.as_u16(), &body),
                held: false,
            }),
            _ => Err(decode_failure(status.as_u16(), &body)),
        }
    }

    /// Attaches to workflow `service/key` until it answers. `start` has the
    /// workflow started when the engine does not know it (`started`: it was
    /// just started), and may answer in its place; a cut attach attaches
    /// again (see [`with_reattach_window`](Self::with_reattach_window)).
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
        Fut: std::future::Future<Output = ProcessResult<Option<T>>>,
    {
        let mut cut_since: Option<Instant> = None;
        let mut pause = REATTACH_PAUSE;
        loop {
            let (failure, held) = match self.attach_once(service, key).await? {
                Attached::Answer(answer) => return Ok(answer),
                Attached::Unknown if !started => {
                    if let Some(answer) = start().await? {
                        return Ok(answer);
                    }
                    started = true;
                    continue;
                }
                Attached::Unknown => (
                    ProcessError::unavailable(format!(
                        "workflow {service}/{key} is unknown to the engine"
                    )),
                    false,
                ),
                Attached::Cut { failure, held } => (failure, held),
            };
            if held {
                // The engine had it: a fresh outage starts a fresh budget.
                cut_since = None;
                pause = REATTACH_PAUSE;
            }
            let since = *cut_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.reattach_window {
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

    /// Waits until the event is logged, parking a fresh wait each time one
    /// expires.
    async fn milestone(
        &self,
        process_id: &str,
        event_type: Option<&str>,
        after_sequence: u64,
    ) -> ProcessResult<ProcessEvent> {
        let mut pause = REATTACH_PAUSE;
        loop {
            let wait_id = new_wait_id()?;
            let parked_at = Instant::now();
            match self
                .wait_once(process_id, event_type, after_sequence, &wait_id)
                .await?
            {
                MilestoneOutcome::Found { event } => return Ok(event),
                MilestoneOutcome::Ended => return Err(ProcessError::terminal(process_id)),
                MilestoneOutcome::Expired => {
                    tracing::debug!(process_id, "milestone wait expired; parking a fresh one");
                }
            }
            // Expired well before its TTL: it made room for newer waits
            // (more waiters than the process parks). Back off before
            // taking a place again, so live waiters past the cap do not
            // expire one another in a tight loop.
            if parked_at.elapsed() < EVICTED_BEFORE {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(REATTACH_PAUSE_MAX);
            } else {
                pause = REATTACH_PAUSE;
            }
        }
    }

    /// One wait under `wait_id`: the object's answer when the event is
    /// logged, else its run's.
    async fn wait_once(
        &self,
        process_id: &str,
        event_type: Option<&str>,
        after_sequence: u64,
        wait_id: &str,
    ) -> ProcessResult<MilestoneOutcome> {
        let park_ttl_ms = self
            .park_ttl
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        // Asking again with the same id is harmless: the run is one per key.
        let ask = || async move {
            let found = milestone(
                &self.registry,
                process_id,
                event_type,
                after_sequence,
                Some(wait_id),
                park_ttl_ms,
            )
            .await?;
            Ok::<_, ProcessError>(match found {
                Milestone::Found { event } => Err(MilestoneOutcome::Found { event }),
                Milestone::Pending {
                    wait_key: Some(key),
                    ..
                } => Ok(key),
                Milestone::Pending { wait_key: None, .. } => {
                    return Err(ProcessError::unavailable(
                        "the registry's services predate per-waiter milestone runs; \
                         upgrade the endpoint",
                    ))
                }
            })
        };
        let key = match ask().await? {
            Ok(key) => key,
            Err(found) => return Ok(found),
        };
        self.attach(PROCESS_MILESTONE, &key, true, || async {
            Ok(ask().await?.err())
        })
        .await
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
        self.attach(PROCESS_TERMINAL, &target.workflow_key, false, || async {
            start_terminal(&self.registry, process_id).await?;
            Ok(None)
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
