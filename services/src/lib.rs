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
//! | `ProcessMilestone` | workflow | wait id + incarnation + event type + sequence | one waiter's milestone wait (an awakeable raced against its park TTL) |
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
//!    └──────► ProcessMilestone                       (attach only; ProcessObject
//!                                                     milestone sends the run)
//!
//! ProcessObject ──send──► ProcessMilestone           (run, from milestone, shared)
//! ProcessMilestone ──► ProcessObject                 (park_wait, unpark; the object
//!                                                     completes the awakeable)
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
//! `ProcessMilestone` calls only `ProcessObject`, and the object only sends
//! to it (from a shared handler), so milestones add no cycle.
//!
//! Milestone waits: `ProcessObject.milestone` (shared) answers an event
//! already logged; otherwise, given the waiter's random wait id, it sends
//! that waiter's `ProcessMilestone` run, built from its own key and row,
//! and answers the run's key, which the host attaches to. The run parks an
//! awakeable through `ProcessObject.park_wait` and races it against a
//! durable sleep (the park TTL, at most five minutes); the append that
//! logs the event completes it, the step that ends the process rejects it,
//! and an expired run removes its park by id (`unpark`) and answers
//! `Expired`, after which a host still waiting parks a fresh one. At 256
//! parks on a process the oldest is expired to make room. A run answers
//! data (the event, `Ended`, `Expired`), never a refusal. Why no wait is
//! lost, completed twice or left parked, and why an append reads only the
//! waits it resolves, is argued in `process_object::milestones`.
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
//! - The other `ProcessObject` handlers: **absorbed after the first
//!   write**. Before it, a cancel ends the call with nothing written (the
//!   caller reads `Unavailable`); after it, the interrupted step (a
//!   directory put, a wake record, an index drop) is issued again and the
//!   handler finishes (`cancel::finish_step`).
//! - `ProcessTerminal`: **refused by design**: its run awaits the outcome
//!   again, since a cancelled run would answer every waiter of the
//!   incarnation with the cancel.
//! - `ProcessMilestone`: **handled as an early expiry**: the run removes its
//!   park and answers `Expired`, and a host still waiting parks again.
//! - `ProcessRunner`: unchanged: a cancel reaches the body's step.
//!
//! A kill runs nothing more, so every handler records its intent with its
//! first write and the next handler on the same object (or `procreg check
//! --repair`) completes it: `publish_row` in `process_object::layout` for
//! rows, the coordinator's docs for grants.
//!
//! Bind them all into your own endpoint with [`bind_services`], or run
//! `procreg serve`. To have the engine run process bodies durably too,
//! bind them with [`bind_services_with_runner`] (see [`runner`]).
//!
//! ## What ingress can reach
//!
//! Every handler's wire name is pinned (`#[handler(name = …)]`, never the
//! function name by accident) and listed, with how it runs and who may
//! call it, in the library's `restate::contract::HANDLERS`, which the
//! client calls by; `tests/restate_wire.rs` compares the deployment a real
//! server registered from this endpoint with that table.
//!
//! Callers reach the `ProcessObject` handlers that implement the
//! `ProcessRegistry` methods, the listing reads of `ProcessDirectory` and
//! `SessionGrants`, the reads `procreg check` needs (`SessionGrants/pending`,
//! `ProcessObject/transits`) and its row repair (`ProcessObject/reindex`,
//! idempotent), `ProcessCoordinator` (including `repair_session`), and
//! attach to `ProcessTerminal` and `ProcessMilestone` runs. Index writers,
//! the per-process steps of cross-process calls, the terminal workflow's
//! `run` and `finish` and the milestone workflow's `run` are
//! `ingress_private`: only these services call them, so no caller can
//! start a milestone run or plant its answer; hosts ask
//! `ProcessObject.milestone`, which sends the run itself, built from its
//! own key and row. So is `ProcessRunner.run`: hosts ask for a run through
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
//! then every 10 s for as long as it takes (100,000 attempts, about eleven
//! days, before an invocation is paused). An invocation keeps its object's
//! lock while it retries, so an outage of the endpoint stalls the objects
//! its invocations hold; but since every input failure is terminal, what
//! is left to retry is an outage, and the first attempt after the endpoint
//! is back (at most 10 s later) runs it: every object serves again within
//! seconds, with no operator. A pause after a short budget (30 attempts,
//! about four minutes, before this release) kept the lock until an
//! operator resumed or killed the invocation. Killing any registry
//! invocation is safe (each handler's docs argue its cuts, and the next
//! handler on the same object or `procreg check --repair` completes what it
//! started); so is cancelling one (see `cancel`).
//!
//! Callers do not wait through an outage: the ingress client gives each
//! attempt a request timeout and each call a retry budget
//! (`restate_process_registry::restate::IngressOptions`), then answers
//! `Unavailable`; a write retried within its budget carries the same
//! idempotency key, so it attaches to the invocation already in flight.
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
    max_attempts: 100_000,
};

/// How long a `ProcessTerminal` run may sit idle awaiting its outcome
/// before the engine suspends it. Every awaited process has a run that
/// waits (often for minutes) on its promise; at the engine's default (one
/// minute) thousands of them stay "running", each holding an invocation
/// slot and an HTTP/2 stream to the endpoint, and new calls queue behind
/// them. Suspended, a run costs nothing until its promise resolves.
pub const TERMINAL_SUSPEND_AFTER: Duration = Duration::from_secs(1);

/// How long the engine keeps a finished `ProcessMilestone` run: long enough
/// for its one waiter, cut off just as it finished, to attach again within
/// the client's re-attach window (`REATTACH_WINDOW`, five minutes). Nothing
/// depends on it beyond that: a waiter that finds its run purged asks the
/// process again, which answers from the log (the event, or the end) or
/// starts the run afresh. A run only ever answers what the log says, never
/// a refusal, so nothing wrong is kept for this long either.
pub const MILESTONE_RETENTION: Duration = Duration::from_secs(300);

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
