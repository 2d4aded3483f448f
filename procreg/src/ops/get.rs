//! `procreg get ID`: a process's row, lease, wait, grants and last events.

use clap::Args;
use restate_process_registry::{ProcessError, ProcessRegistry};
use serde_json::json;

use super::{event_line, print_json, status_word, time, Target};
use crate::common::{CliError, CliResult, Context};

/// Events shown with the row.
const LAST_EVENTS: usize = 10;

/// Options of `procreg get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The process id.
    id: String,
    #[command(flatten)]
    target: Target,
}

/// Prints the process, or fails when there is none.
pub async fn run(args: GetArgs) -> CliResult<()> {
    let registry = args.target.registry()?;
    let id = &args.id;
    let record = registry
        .try_get_process(id)
        .await
        .context("reading the process")?
        .ok_or_else(|| CliError::new(ProcessError::unknown(id).to_string()))?;
    let lease = registry
        .get_process_lease(id)
        .await
        .context("reading the lease")?;
    let grants = registry
        .handle_grants_for_process(id)
        .await
        .context("reading the grants")?;
    let events = registry
        .recent_events(id, LAST_EVENTS)
        .await
        .context("reading the events")?;
    if args.target.json {
        return print_json(&json!({
            "record": record,
            "lease": lease,
            "grants": grants,
            "recent_events": events,
        }));
    }
    let identity = &record.identity;
    println!("id          {}", record.id);
    println!("status      {}", status_word(&record));
    println!(
        "identity    {}/{}{}",
        identity.kind,
        identity.label,
        identity
            .definition
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    println!("created     {}", time::utc(record.created_at_ms));
    println!("updated     {}", time::utc(record.updated_at_ms));
    if let Some(output) = record.status.await_output() {
        let outcome = serde_json::to_string(output).unwrap_or_default();
        println!("outcome     {outcome}");
    }
    if let Some(started) = &record.first_started {
        println!(
            "started     {} by {}@{}",
            time::utc(started.started_at_ms),
            started.owner.owner_id,
            started.owner.liveness.host_id().unwrap_or("-")
        );
    }
    match &lease {
        Some(lease) => println!(
            "lease       {}@{} fencing {} until {}",
            lease.owner.owner_id,
            lease.owner.liveness.host_id().unwrap_or("-"),
            lease.fencing_token,
            time::utc(lease.expires_at_epoch_ms)
        ),
        None => println!("lease       -"),
    }
    match &record.wait {
        Some(wait) => println!(
            "wait        {} since {}",
            serde_json::to_string(&wait.kind).unwrap_or_default(),
            time::utc(wait.since_ms)
        ),
        None => println!("wait        -"),
    }
    if let Some(request) = &record.abandon_request {
        println!(
            "abandon     requested by {}: {}",
            request.requested_by, request.reason
        );
    }
    println!("grants      {}", grants.len());
    for grant in &grants {
        println!(
            "  {}  {} {}",
            grant.scope_id, grant.descriptor.kind, grant.descriptor.label
        );
    }
    println!("events      last {} shown", events.len());
    for event in &events {
        println!("  {}", event_line(event));
    }
    Ok(())
}
