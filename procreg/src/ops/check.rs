//! `procreg check`: reports every disagreement between the directory, the
//! rows and the session grant authorities of a running registry, and with
//! `--repair` fixes them and says how.

use clap::Args;
use procreg::check::{check_stored, repair};
use restate_process_registry::RestateProcessRegistry;
use restate_process_registry_testkit::admin::Admin;

use crate::common::{CliError, CliResult, Context};

/// Options of `procreg check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Restate ingress to check through.
    #[arg(long, env = "PROCREG_INGRESS", default_value = "http://127.0.0.1:8080")]
    ingress: String,
    /// Restate admin API, for the rows the server stores.
    #[arg(long, env = "PROCREG_ADMIN", default_value = "http://127.0.0.1:9070")]
    admin: String,
    /// Repair what the check finds (idempotent), then check again.
    #[arg(long)]
    repair: bool,
}

/// Runs the check; fails (non-zero exit) on any disagreement.
pub async fn run(args: CheckArgs) -> CliResult<()> {
    let registry = RestateProcessRegistry::connect(&args.ingress).context("ingress url")?;
    let admin = Admin::new(&args.admin);
    let mut report = check_stored(&registry, &admin)
        .await
        .context("reading the registry")?;
    if args.repair && !report.is_clean() {
        for problem in &report.problems {
            println!("found: {problem}");
        }
        for action in repair(&registry, &report).await.context("repairing")? {
            println!("repaired: {action}");
        }
        report = check_stored(&registry, &admin)
            .await
            .context("reading the registry")?;
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
