//! `procreg check`: reports every disagreement between the directory, the
//! rows and the session grant authorities of a running registry.

use clap::Args;
use procreg::check::check;
use restate_process_registry::RestateProcessRegistry;

use crate::common::{CliError, CliResult, Context};

/// Options of `procreg check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Restate ingress to check through.
    #[arg(long, env = "PROCREG_INGRESS", default_value = "http://127.0.0.1:8080")]
    ingress: String,
}

/// Runs the check; fails (non-zero exit) on any disagreement.
pub async fn run(args: CheckArgs) -> CliResult<()> {
    let registry = RestateProcessRegistry::connect(&args.ingress).context("ingress url")?;
    let report = check(&registry).await.context("reading the registry")?;
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
