//! `procreg check`: reports every disagreement between the directory, the
//! rows and the session grant authorities of a running registry, and with
//! `--repair` completes the transfers and session deletes it finds cut off.

use clap::Args;
use procreg::check::{check, repair};
use restate_process_registry::RestateProcessRegistry;

use crate::common::{CliError, CliResult, Context};

/// Options of `procreg check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Restate ingress to check through.
    #[arg(long, env = "PROCREG_INGRESS", default_value = "http://127.0.0.1:8080")]
    ingress: String,
    /// Complete every unfinished transfer and session delete found (each
    /// step is idempotent), print what was done, and check again.
    #[arg(long)]
    repair: bool,
}

/// Runs the check; fails (non-zero exit) on any disagreement.
pub async fn run(args: CheckArgs) -> CliResult<()> {
    let registry = RestateProcessRegistry::connect(&args.ingress).context("ingress url")?;
    let mut report = check(&registry).await.context("reading the registry")?;
    if args.repair && !report.pending_sessions.is_empty() {
        for line in &report.problems {
            println!("  found: {line}");
        }
        let repaired = repair(&registry, &report).await.context("repairing")?;
        for done in &repaired {
            println!(
                "repaired session `{}`: {}{} transfer(s) completed {:?}, {} delete(s) completed {:?}",
                done.session_id,
                if done.finished_step { "a half-done step finished, " } else { "" },
                done.transfers.len(),
                done.transfers,
                done.deletes.len(),
                done.deletes
            );
        }
        report = check(&registry)
            .await
            .context("reading the registry again")?;
    }
    println!(
        "checked {} processes, {} sessions, {} grants",
        report.processes, report.sessions, report.grants
    );
    for problem in &report.problems {
        println!("  {problem}");
    }
    if report.is_clean() {
        println!("consistent");
        Ok(())
    } else {
        Err(CliError::new(format!(
            "{} disagreement(s) found",
            report.problems.len()
        )))
    }
}
