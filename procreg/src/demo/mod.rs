//! `procreg demo`: a short, readable tour of the registry on a real local
//! Restate stack — registration, the event sink, the work driver with
//! success, failure and cancellation, waits resolved through ingress
//! attach, a fenced lease contest, session grants, prune, and a durable
//! body on the engine's runner surviving a kill of its endpoint.

pub mod body;
mod runner;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use restate_process_registry::{
    local_owner, DurableProcessWorker, ProcessAwaitOutput, ProcessError, ProcessEvent,
    ProcessEventAppendRequest, ProcessEventSink, ProcessEventType, ProcessExecution,
    ProcessExecutor, ProcessHandleDescriptor, ProcessInput, ProcessLeaseClaimOutcome,
    ProcessListFilter, ProcessProvenance, ProcessRegistration, ProcessRegistry, ProcessResult,
    ProcessWorkDriver, SessionScope, WatchedProcessRegistry, EVENT_CANCEL_REQUESTED,
};
use serde_json::json;

use crate::common::{ensure, ms, start_stack, CliError, CliResult, Context};

/// Event type the demo's executor appends as it works.
const PROGRESS: &str = "demo.progress";
/// Upper bound on any single wait in the demo.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// Lease TTL used in the lease contest.
const LEASE_TTL_MS: u64 = 30_000;

/// Runs the scenario; any surprise is an error.
pub async fn run() -> CliResult<()> {
    let demo_started = Instant::now();
    println!("procreg demo: a durable process registry inside Restate\n");
    let (stack, took) = start_stack(restate_process_registry_services::endpoint()).await?;
    println!(
        "local stack up in {:.0} ms: restate-server ingress {}, endpoint {}",
        ms(took),
        stack.ingress_url(),
        stack.endpoint_url()
    );

    // The host's view: the Restate registry, watched so every appended
    // event reaches our printing sink, driven by an in-process worker, and
    // waiting through Restate attach instead of polling.
    let registry: Arc<dyn ProcessRegistry> =
        Arc::new(stack.registry().context("connecting to ingress")?);
    let sink: Arc<dyn ProcessEventSink> = Arc::new(PrintingSink {
        since: Instant::now(),
    });
    let watched = WatchedProcessRegistry::new(registry).with_sink(sink);
    let worker = DurableProcessWorker::new(Arc::new(DemoExecutor));
    let attach = stack.attach().context("connecting to ingress")?;
    let driver = ProcessWorkDriver::inline_watched(watched, worker).with_attach(Arc::new(attach));
    let processes = driver.process_registry();
    let mut steps = Steps::default();

    // 1. Register.
    let t = steps.begin("register four processes");
    let jobs = [
        ("demo-build", "build", "ok"),
        ("demo-test", "test", "ok"),
        ("demo-deploy", "deploy", "fail"),
        ("demo-flaky", "flaky", "ok"),
    ];
    for (id, kind, mode) in jobs {
        let record = processes
            .register_process(job(id, kind, mode))
            .await
            .context(format!("registering {id}"))?;
        println!(
            "   {id:<12} {:<8} status={}  identity={}/{}",
            format!("[{mode}]"),
            status_name(&record.status),
            record.identity.kind,
            record.identity.label
        );
    }
    steps.done(t);

    // 2. Cancel request before anything runs.
    let t = steps.begin("request cancellation of demo-flaky (a built-in event)");
    let cancel = processes
        .append_event(
            "demo-flaky",
            ProcessEventAppendRequest::cancel_requested("demo-flaky", Some("operator".into())),
        )
        .await
        .context("appending the cancel request")?;
    println!(
        "   appended #{} {}",
        cancel.event.sequence, cancel.event.event_type
    );
    steps.done(t);

    // 3. Waiters attach, the worker runs, the waits resolve.
    let t = steps.begin("attach waiters, then run the worker (sink prints events as they land)");
    let mut waiters = Vec::new();
    for (id, _, _) in jobs {
        let driver = driver.clone();
        let since = Instant::now();
        waiters.push((
            id,
            tokio::spawn(async move {
                let output = tokio::time::timeout(WAIT_LIMIT, driver.await_terminal(id)).await;
                (output, since.elapsed())
            }),
        ));
    }
    // Let the waiters reach the engine before the outcomes exist.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let run_started = Instant::now();
    driver
        .claim_and_run_pending("demo: four processes registered")
        .await
        .context("running pending processes")?;
    println!(
        "   worker pass finished in {:.0} ms",
        ms(run_started.elapsed())
    );
    steps.done(t);

    let t = steps.begin("waits resolved through Restate attach (driver.await_terminal)");
    for (id, waiter) in waiters {
        let (output, waited) = waiter
            .await
            .map_err(|error| CliError::new(format!("waiter for {id} failed: {error}")))?;
        let output = output
            .map_err(|_| CliError::new(format!("waiting for {id} timed out after {WAIT_LIMIT:?}")))?
            .context(format!("waiting for {id}"))?;
        println!(
            "   {id:<12} after {:>4.0} ms  {}",
            ms(waited),
            describe(&output)
        );
    }
    let log = processes
        .events_after("demo-build", 0)
        .await
        .context("reading demo-build's log")?;
    let log: Vec<String> = log
        .iter()
        .map(|event| format!("#{} {}", event.sequence, event.event_type))
        .collect();
    println!(
        "   demo-build's log: {} (the terminal event never reaches the sink)",
        log.join(", ")
    );
    expect_state(&processes, "demo-build", "completed").await?;
    expect_state(&processes, "demo-deploy", "failed").await?;
    expect_state(&processes, "demo-flaky", "cancelled").await?;
    steps.done(t);

    // 4. Lease contest.
    let t = steps.begin("lease contest on demo-lease: two owners, fenced tokens");
    processes
        .register_process(job("demo-lease", "lease", "ok"))
        .await
        .context("registering demo-lease")?;
    let alpha = local_owner("alpha");
    let beta = local_owner("beta");
    let first = processes
        .claim_process_lease("demo-lease", &alpha, LEASE_TTL_MS)
        .await
        .context("alpha claiming")?;
    let ProcessLeaseClaimOutcome::Acquired(alpha_lease) = first else {
        return Err(CliError::new("alpha should have acquired a free lease"));
    };
    println!(
        "   alpha claims  -> acquired, fencing token {}",
        alpha_lease.fencing_token
    );
    match processes
        .claim_process_lease("demo-lease", &beta, LEASE_TTL_MS)
        .await
        .context("beta claiming")?
    {
        ProcessLeaseClaimOutcome::Busy { holder } => println!(
            "   beta claims   -> busy, held by {} (fencing token {})",
            holder.owner.owner_id, holder.fencing_token
        ),
        ProcessLeaseClaimOutcome::Acquired(_) => {
            return Err(CliError::new("beta acquired a lease alpha still holds"))
        }
    }
    processes
        .complete_process_lease(&(&alpha_lease).into())
        .await
        .context("alpha releasing")?;
    println!("   alpha releases");
    let beta_lease = processes
        .claim_process_lease("demo-lease", &beta, LEASE_TTL_MS)
        .await
        .context("beta claiming again")?
        .acquired()
        .ok_or_else(|| CliError::new("beta should have acquired the released lease"))?;
    println!(
        "   beta claims   -> acquired, fencing token {}",
        beta_lease.fencing_token
    );
    match processes
        .renew_process_lease(&alpha_lease, LEASE_TTL_MS)
        .await
    {
        Err(error @ ProcessError::LeaseSuperseded { .. }) => {
            println!("   alpha renews its old lease -> refused: {error}")
        }
        Err(error) => return Err(CliError::new(format!("alpha's stale renew: {error}"))),
        Ok(_) => return Err(CliError::new("alpha renewed a superseded lease")),
    }
    processes
        .complete_process(
            "demo-lease",
            ProcessAwaitOutput::success(json!({ "by": "beta" })),
        )
        .await
        .context("beta completing demo-lease")?;
    processes
        .complete_process_lease(&(&beta_lease).into())
        .await
        .context("beta releasing")?;
    println!("   beta completes demo-lease and releases");
    steps.done(t);

    // 5. Session grants.
    let t = steps.begin("session grants: grant, list, transfer, delete a session");
    let alice = SessionScope::session("alice");
    let planner = SessionScope::frame("alice", "planner");
    let bob = SessionScope::session("bob");
    for (scope, id) in [
        (&alice, "demo-build"),
        (&alice, "demo-test"),
        (&planner, "demo-deploy"),
        (&bob, "demo-test"),
    ] {
        let descriptor = ProcessHandleDescriptor {
            kind: "job".into(),
            label: id.trim_start_matches("demo-").into(),
        };
        processes
            .grant_handle(scope, id, descriptor)
            .await
            .context(format!("granting {id} to {}", scope.id()))?;
    }
    println!("   granted: session:alice {{build, test}}, session:alice/frame:planner {{deploy}}, session:bob {{test}}");
    let listed = processes
        .list_handle_grants(&alice)
        .await
        .context("listing alice's grants")?;
    println!("   session:alice holds  {}", grant_ids(&listed));
    processes
        .transfer_handle_grants(&alice, &bob, &["demo-build".to_owned()])
        .await
        .context("transferring demo-build to bob")?;
    let listed = processes
        .list_handle_grants(&bob)
        .await
        .context("listing bob's grants")?;
    println!(
        "   moved demo-build alice -> bob; session:bob holds {}",
        grant_ids(&listed)
    );
    let report = processes
        .delete_session_process_state("alice")
        .await
        .context("deleting session alice")?;
    println!(
        "   delete session alice -> revoked {}, orphaned {:?}, preserved {:?}",
        report.revoked_handle_count, report.orphaned_process_ids, report.preserved_process_ids
    );
    steps.done(t);

    // 6. Prune.
    let t = steps.begin("prune terminal rows (cutoff one minute in the future)");
    let cutoff = restate_process_registry::unix_now_ms() + 60_000;
    let before = processes
        .list_processes(&ProcessListFilter::any())
        .await
        .context("listing processes")?;
    let pruned = processes
        .prune_terminal_processes(cutoff)
        .await
        .context("pruning")?;
    let after = processes
        .list_processes(&ProcessListFilter::any())
        .await
        .context("listing processes")?;
    println!(
        "   {} rows before -> pruned {} processes with {} events -> {} rows left",
        before.len(),
        pruned.pruned_processes,
        pruned.pruned_events,
        after.len()
    );
    ensure(after.is_empty(), || {
        format!("{} rows survived the prune", after.len())
    })?;
    let gone = processes
        .try_get_process("demo-build")
        .await
        .context("reading demo-build")?;
    ensure(gone.is_none(), || "demo-build survived the prune".into())?;
    steps.done(t);

    // 7. A durable body on the engine's runner.
    let t = steps.begin("a durable body on ProcessRunner: kill -9 its endpoint mid-body");
    runner::run().await?;
    steps.done(t);

    println!(
        "\ndemo finished in {:.1} s; the stack shuts down with it",
        demo_started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A registration for the demo: engine input carrying the desired `mode`.
fn job(id: &str, kind: &str, mode: &str) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::Engine {
            kind: kind.into(),
            payload: json!({ "mode": mode }),
        },
        ProcessProvenance::host(),
    )
    .with_extra_event_types([ProcessEventType::any(PROGRESS)])
}

/// Numbered steps with their timing.
#[derive(Default)]
struct Steps {
    count: usize,
}

impl Steps {
    fn begin(&mut self, title: &str) -> Instant {
        self.count += 1;
        println!("\n{}. {title}", self.count);
        Instant::now()
    }

    fn done(&self, started: Instant) {
        println!("   ✓ {:.0} ms", ms(started.elapsed()));
    }
}

/// Prints each appended event as the sink sees it.
struct PrintingSink {
    since: Instant,
}

#[async_trait]
impl ProcessEventSink for PrintingSink {
    async fn emit(&self, event: &ProcessEvent) {
        println!(
            "   sink  +{:>5.0} ms  {:<12} #{} {:<26} {}",
            ms(self.since.elapsed()),
            event.process_id,
            event.sequence,
            event.event_type,
            event.payload
        );
    }
}

/// Works through three steps, honouring a pending cancel request and
/// failing when the input asks for it.
struct DemoExecutor;

#[async_trait]
impl ProcessExecutor for DemoExecutor {
    async fn execute(&self, run: ProcessExecution) -> ProcessResult<ProcessAwaitOutput> {
        let id = run.record.id.clone();
        let log = run.registry().events_after(&id, 0).await?;
        if let Some(cancel) = log.iter().find(|e| e.event_type == EVENT_CANCEL_REQUESTED) {
            let reason = cancel.payload["reason"].as_str().unwrap_or("unspecified");
            return Ok(ProcessAwaitOutput::cancelled(Some(format!(
                "cancel requested by {reason}"
            ))));
        }
        let mode = match &run.record.input {
            ProcessInput::Engine { payload, .. } => payload["mode"].as_str().unwrap_or("ok"),
            ProcessInput::External { .. } => "ok",
        };
        let steps = ["fetch", "work", "publish"];
        for (done, step) in steps.iter().enumerate() {
            if mode == "fail" && *step == "publish" {
                return Ok(ProcessAwaitOutput::failure(
                    "publish_refused",
                    "the target environment is frozen",
                ));
            }
            let percent = (done + 1) * 100 / steps.len();
            run.append(
                ProcessEventAppendRequest::new(
                    PROGRESS,
                    json!({ "step": step, "percent": percent }),
                )
                // Safe to re-run: a repeated step is deduplicated.
                .with_replay_key(format!("{id}/{step}")),
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Ok(ProcessAwaitOutput::success(
            json!({ "steps": steps.len(), "fencing_token": run.lease.fencing_token }),
        ))
    }
}

/// A one-line rendering of an outcome.
pub(crate) fn describe(output: &ProcessAwaitOutput) -> String {
    match output {
        ProcessAwaitOutput::Success { value, .. } => format!("completed {value}"),
        ProcessAwaitOutput::Failure { code, message, .. } => format!("failed {code}: {message}"),
        ProcessAwaitOutput::Cancelled { message, .. } => {
            format!("cancelled: {}", message.as_deref().unwrap_or("-"))
        }
        ProcessAwaitOutput::Abandoned { evidence, .. } => format!("abandoned {evidence}"),
    }
}

fn status_name(status: &restate_process_registry::ProcessStatus) -> &'static str {
    use restate_process_registry::ProcessStatus::*;
    match status {
        Running => "running",
        Completed(_) => "completed",
        Failed(_) => "failed",
        Cancelled(_) => "cancelled",
        Abandoned(_) => "abandoned",
    }
}

async fn expect_state(
    registry: &Arc<dyn ProcessRegistry>,
    id: &str,
    expected: &str,
) -> CliResult<()> {
    let record = registry
        .try_get_process(id)
        .await
        .context(format!("reading {id}"))?
        .ok_or_else(|| CliError::new(format!("{id} vanished")))?;
    let actual = status_name(&record.status);
    ensure(actual == expected, || {
        format!("{id} ended {actual}, expected {expected}")
    })
}

fn grant_ids(entries: &[restate_process_registry::ProcessHandleGrantEntry]) -> String {
    let ids: Vec<String> = entries
        .iter()
        .map(|(grant, record)| format!("{} ({})", grant.process_id, status_name(&record.status)))
        .collect();
    format!("[{}]", ids.join(", "))
}
