//! `procreg check`: reports every disagreement between the directory, the
//! rows and the session grant authorities of a running registry, and with
//! `--repair` fixes what it found (completes the transfers and session
//! deletes it finds cut off, indexes misindexed rows again) and says how.

use clap::Args;
use procreg::check::{check, check_stored, repair, CheckReport};
use restate_process_registry::RestateProcessRegistry;
use restate_process_registry_testkit::admin::Admin;

use crate::common::{CliError, CliResult, Context};

/// Options of `procreg check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Restate ingress to check through.
    #[arg(long, env = "PROCREG_INGRESS", default_value = "http://127.0.0.1:8080")]
    ingress: String,
    /// Restate admin API: also find the rows the server stores that the
    /// directory does not list (a write killed between the two).
    #[arg(long, env = "PROCREG_ADMIN")]
    admin: Option<String>,
    /// Repair what the check finds (each step is idempotent), print what
    /// was done, and check again.
    #[arg(long)]
    repair: bool,
}

async fn walk(registry: &RestateProcessRegistry, admin: Option<&Admin>) -> CliResult<CheckReport> {
    let report = match admin {
        Some(admin) => check_stored(registry, admin).await,
        None => check(registry).await,
    };
    report.context("reading the registry")
}

/// Runs the check; fails (non-zero exit) on any disagreement.
pub async fn run(args: CheckArgs) -> CliResult<()> {
    let registry = RestateProcessRegistry::connect(&args.ingress).context("ingress url")?;
    let admin = args.admin.as_deref().map(Admin::new);
    if admin.is_none() {
        println!("(no --admin: rows the directory does not list are not looked for)");
    }
    let mut report = walk(&registry, admin.as_ref()).await?;
    if args.repair && !(report.pending_sessions.is_empty() && report.reindex.is_empty()) {
        for line in &report.problems {
            println!("  found: {line}");
        }
        let repaired = repair(&registry, &report).await.context("repairing")?;
        for done in &repaired.sessions {
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
        for line in &repaired.rows {
            println!("repaired: {line}");
        }
        report = walk(&registry, admin.as_ref()).await?;
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
