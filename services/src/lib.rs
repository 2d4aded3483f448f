//! The Restate services behind the durable process registry: the objects
//! and workflows below, [`bind_services`] and the endpoint — nothing else.
//! The local test harness (`local_server`, `local_stack`, `local_cluster`,
//! `signing`) moved to `restate-process-registry-testkit` under the same
//! module names, and the consistency check (`check`) and the `procreg`
//! binary to the `procreg` package (`procreg::check`); `docs/architecture.md`
//! draws the crates and layers and lists where each cross-object invariant
//! is argued.
//!
//! | Service | Kind | Key | Holds |
//! |---|---|---|---|
//! | `ProcessObject` | virtual object (lazy state) | process id | row, event log (a key per event), lease, replay keys, unacked wakes (a key each), a mirror of its grants (≤ 64) and where those a transfer moved in come from until confirmed |
//! | `ProcessTerminal` | workflow | process id + incarnation | the durable promise of the outcome |
//! | `ProcessMilestone` | workflow | incarnation + event type + sequence | one parked milestone wait (an awakeable) |
//! | `ProcessDirectory` | virtual object (lazy state) | shard `0`..`31` | one small entry per row (summary, plus the row when ≤ 4 KiB), in a keyed set |
//! | `SessionGrants` | virtual object (lazy state) | session id | **the authority** for the session's grants, a key each; the intents of its unfinished transfers out and deletes |
//! | `SessionWakes` | virtual object (lazy state) | session id | the processes whose wake target (or delivered wakes) aim at the session |
//! | `ProcessCoordinator` | service | — | nothing: journals transfers, session deletes, prunes, repairs |
//! | `ProcessRunner` (optional) | workflow | process id + incarnation | a process body's journal: its steps and registry calls |
//!
//! No state value grows with the number of rows, events, grants or wakes:
//! collections are keyed sets (a key per member and a small fixed head),
//! except a process's grant mirror, bounded by the 64-grant limit.
//!
//! Call graph (an arrow is a call an exclusive handler waits on; `send` is
//! one-way). Between keyed objects the exclusive calls only ever go
//! `SessionGrants → ProcessObject → {ProcessDirectory, SessionWakes}`, so
//! no exclusive handler ever waits on one that waits on it. The directory's
//! `prune_page` calls `ProcessObject::prune`, which calls the directory
//! back, but `prune_page` is a shared handler and holds no lock.
//!
//! ```text
//! ingress ──► SessionGrants ──► ProcessObject        (mirror_put / mirror_drop / mirror_move /
//!    │                                                mirror_settle / get)
//!    │
//!    ├──────► ProcessObject ──► ProcessDirectory     (put / remove; leaf)
//!    │             ├──────────► SessionWakes         (note / drop; leaf)
//!    │             ├──send────► SessionGrants        (drop_pruned, at prune)
//!    │             └──send────► ProcessTerminal      (finish and run at the outcome)
//!    ├──────► ProcessCoordinator ──► SessionGrants   (take / give / settle / begin_delete /
//!    │                         │                      drain / end_delete / resume; pending, shared)
//!    │                         ├──► SessionWakes     (holders, shared)
//!    │                         ├──► ProcessObject    (forget_wakes)
//!    │                         └──► ProcessDirectory (prune_page, shared ──► ProcessObject prune)
//!    ├──────► ProcessDirectory / SessionGrants       (list, shared)
//!    ├──────► ProcessTerminal                        (attach; ProcessObject
//!    │                                                start_terminal first)
//!    └──────► ProcessMilestone ──► ProcessObject     (park; the object
//!                                                     completes the awakeable)
//!
//! ProcessObject ──send──► ProcessRunner              (run, at register / start_run; runner bound only)
//! ProcessRunner ──► ProcessObject                    (attach_target, get, claim_lease,
//!                                                     record_first_started, append, set_wait,
//!                                                     clear_wait, complete, complete_lease)
//! ```
//!
//! `ProcessRunner` only calls `ProcessObject`, and `ProcessObject` only
//! sends to it, so the runner adds no cycle: its body runs between those
//! calls, holding no object's lock.
//!
//! Milestone waits: `ProcessObject.milestone` (shared) answers an event
//! already logged; otherwise the host starts the wait's `ProcessMilestone`
//! run and attaches to it. The run parks an awakeable through
//! `ProcessObject.park`; the append that logs the event completes it, and
//! the step that ends the process rejects it with `AlreadyTerminal`. Why
//! none is lost or completed twice is argued in `process_object::milestones`.
//!
//! How transfers, session deletes and prunes stay atomic under races, kills
//! and cancels is argued in the coordinator's docs ([`ProcessCoordinator`]):
//! the source `SessionGrants` records a transfer's or delete's intent
//! before anything leaves it, every later step is idempotent and keyed by
//! an id from the coordinator's journal, and an intent cut off by a kill is
//! completed by the next transfer or delete of that session or by
//! `ProcessCoordinator/repair_session` (`procreg check --repair`).
//!
//! ## Cancellation, per service
//!
//! - `ProcessCoordinator`: **absorbed**. A cancel fails one await with 409
//!   "cancelled"; the coordinator issues that step again, so the operation
//!   completes and is acknowledged.
//! - `SessionGrants`: **absorbed** at its process calls and cut points; a
//!   cancel landing on a state read fails the handler before its next
//!   write, and what it had recorded is finished by the session's next
//!   exclusive handler (or issued again by the coordinator).
//! - `ProcessObject`'s mirror handlers, `ProcessDirectory`, `SessionWakes`:
//!   **refused by design**: a single read-then-write step, so a cancel
//!   fails it before it wrote anything and its caller issues it again.
//!   The other `ProcessObject` handlers keep the behaviour they had.
//!
//! Bind them all into your own endpoint with [`bind_services`], or run
//! `procreg serve`. To have the engine run process bodies durably too,
//! bind them with [`bind_services_with_runner`] (see [`runner`]).
//!
//! ## What ingress can reach
//!
//! Callers reach the `ProcessObject` handlers that implement the
//! `ProcessRegistry` methods, the listing reads of `ProcessDirectory` and
//! `SessionGrants`, the reads `procreg check` needs (`SessionGrants/pending`,
//! `ProcessObject/transits`), `ProcessCoordinator` (including
//! `repair_session`), and attach to `ProcessTerminal`.
//! Index writers, the per-process steps of cross-process calls and the
//! workflow's `run` and `finish` are `ingress_private`: only these services
//! call them. So is `ProcessRunner.run`: hosts ask for a run through
//! `ProcessObject.start_run`, which only sends it for the row's current
//! incarnation, and only when a runner is bound. Every ingress-facing
//! handler decodes its request through `Input`, which runs the library's
//! whole validation layer (`rules::validate`) before the handler body
//! starts.
//!
//! ## Retry policy
//!
//! A handler that fails with a terminal error (every model error, every
//! refused input, a stored value that cannot be decoded) is never retried.
//! Anything else (the endpoint unreachable, the server restarting, a bug)
//! is retried by the engine with [`RETRY_POLICY`]: from 100 ms, doubling,
//! at most 10 s apart, 30 attempts (about four minutes), then the
//! invocation is **paused**, not killed. A paused invocation keeps its
//! journal, so nothing it already did is lost or half applied; it shows as
//! `paused` in the server's invocation table (`restate invocations list`)
//! and an operator resumes it once the cause is fixed (`restate
//! invocations resume`) or kills it. Killing instead would free the key at
//! the price of leaving a multi-step write half done.
//!
//! A `ProcessRunner` run follows the same policy for what is not its
//! body's fault (the endpoint killed or unreachable: the engine replays
//! the journal and the body resumes). Its body's own failures are not
//! retried as a whole: a step retries under its [bounded step
//! policy](runner#step-retry-policy) (5 attempts from 100 ms), and a body
//! that returns an error or panics ends its process `Failed` with the
//! reason.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod cancel;
mod coordinator;
mod cut;
mod directory;
mod errors;
mod input;
mod journal;
mod keyed_set;
mod milestone;
mod process_object;
pub mod runner;
mod session_grants;
mod session_wakes;
mod state;
mod terminal;

pub use coordinator::ProcessCoordinator;
pub use directory::ProcessDirectory;
pub use milestone::ProcessMilestone;
pub use process_object::ProcessObject;
pub use runner::{BodyError, ProcessBody, ProcessRunner, RunContext};
pub use session_grants::SessionGrants;
pub use session_wakes::SessionWakes;
pub use terminal::ProcessTerminal;

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use restate_sdk::endpoint::{Builder, Endpoint, HandlerOptions, ServiceOptions};
use restate_sdk::hyper::HyperEndpoint;
use restate_sdk::service::{IntoServiceDefinition, ServiceDefinition};
use tokio::net::TcpListener;

/// The engine's retry policy for every registry service (see the crate docs).
pub const RETRY_POLICY: RetryPolicy = RetryPolicy {
    initial_interval: Duration::from_millis(100),
    factor: 2.0,
    max_interval: Duration::from_secs(10),
    max_attempts: 30,
};

/// How long a `ProcessTerminal` run may sit idle awaiting its outcome
/// before the engine suspends it. Every awaited process has a run that
/// waits (often for minutes) on its promise; at the engine's default (one
/// minute) thousands of them stay "running", each holding an invocation
/// slot and an HTTP/2 stream to the endpoint, and new calls queue behind
/// them. Suspended, a run costs nothing until its promise resolves.
pub const TERMINAL_SUSPEND_AFTER: Duration = Duration::from_secs(1);

/// How long the engine keeps a finished `ProcessMilestone` run, so a waiter
/// cut off by a restart attaches again to the same answer. After that the
/// next waiter on the same milestone starts a fresh run, which finds the
/// same answer (it never changes for a key).
pub const MILESTONE_RETENTION: Duration = Duration::from_secs(3600);

/// How long a `ProcessRunner` run may keep computing (a step in flight)
/// after its inactivity timeout ([`TERMINAL_SUSPEND_AFTER`]) asked it to
/// suspend, before the engine aborts the attempt and retries it. A run
/// parked in a sleep or a call suspends at once; a step longer than this
/// is cut off and retried, so keep steps shorter.
pub const RUNNER_ABORT_AFTER: Duration = Duration::from_secs(10 * 60);

/// Bounded retries for failures that are not terminal, then pause.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial_interval: Duration,
    /// Growth of the delay per attempt.
    pub factor: f64,
    /// Longest delay between attempts.
    pub max_interval: Duration,
    /// Attempts before the invocation is paused.
    pub max_attempts: u64,
}

impl RetryPolicy {
    fn options(&self) -> ServiceOptions {
        ServiceOptions::new()
            .retry_policy_initial_interval(self.initial_interval)
            .retry_policy_exponentiation_factor(self.factor)
            .retry_policy_max_interval(self.max_interval)
            .retry_policy_max_attempts(self.max_attempts)
            .retry_policy_pause_on_max_attempts()
    }
}

/// Adds every registry service to an endpoint builder, each with
/// [`RETRY_POLICY`].
pub fn bind_services(builder: Builder) -> Builder {
    bind_registry(builder, ProcessObject::default())
}

/// Adds every registry service plus a [`ProcessRunner`] running `body`
/// (with [`RETRY_POLICY`], suspending after [`TERMINAL_SUSPEND_AFTER`]
/// idle, aborting a step after [`RUNNER_ABORT_AFTER`]). Registering an
/// engine process that is not `ExternallyOwned` then starts its run.
pub fn bind_services_with_runner(builder: Builder, body: impl ProcessBody) -> Builder {
    let object = ProcessObject { runs_bodies: true };
    bind_registry(builder, object).bind(
        ProcessRunner::new(body).into_service_definition().options(
            RETRY_POLICY
                .options()
                .inactivity_timeout(TERMINAL_SUSPEND_AFTER)
                .abort_timeout(RUNNER_ABORT_AFTER),
        ),
    )
}

fn bind_registry(builder: Builder, object: ProcessObject) -> Builder {
    let with_policy = |service: ServiceDefinition| service.options(RETRY_POLICY.options());
    builder
        .bind(with_policy(object.into_service_definition()))
        .bind(
            ProcessTerminal.into_service_definition().options(
                RETRY_POLICY
                    .options()
                    .inactivity_timeout(TERMINAL_SUSPEND_AFTER),
            ),
        )
        .bind(
            ProcessMilestone.into_service_definition().options(
                RETRY_POLICY
                    .options()
                    .inactivity_timeout(TERMINAL_SUSPEND_AFTER)
                    .handler(
                        "run",
                        HandlerOptions::new().workflow_retention(MILESTONE_RETENTION),
                    ),
            ),
        )
        .bind(with_policy(ProcessDirectory.into_service_definition()))
        .bind(with_policy(SessionGrants.into_service_definition()))
        .bind(with_policy(SessionWakes.into_service_definition()))
        .bind(with_policy(ProcessCoordinator.into_service_definition()))
}

/// An endpoint serving just the registry services.
pub fn endpoint() -> Endpoint {
    bind_services(Endpoint::builder()).build()
}

/// Serves the registry endpoint (HTTP/2) on `listener` until the task is
/// dropped or the process ends.
pub async fn serve(listener: TcpListener) {
    serve_endpoint(endpoint(), listener).await;
}

/// Serves any endpoint (HTTP/2) on `listener`, e.g. the registry plus
/// services of your own, until the task is dropped.
///
/// Unlike the SDK's `HttpServer` it turns Nagle's algorithm off on every
/// connection: the engine and the endpoint exchange many small HTTP/2
/// frames, and with Nagle on a response that ends in a small frame waits
/// for the peer's delayed ACK (about 40 ms) before it leaves.
pub async fn serve_endpoint(endpoint: Endpoint, listener: TcpListener) {
    let service = HyperEndpoint::new(endpoint);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "could not disable Nagle on {remote}");
        }
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service.clone());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection from {remote} ended");
            }
        });
    }
}
