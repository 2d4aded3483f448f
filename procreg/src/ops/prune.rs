//! `procreg prune --before …`: deletes terminal processes last changed
//! before an instant, asking first unless `--yes`, with a progress bar
//! over the registry's prune parts.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;
use restate_process_registry::{ProcessPruneReport, RestateProcessRegistry};

use super::{print_json, time, Target};
use crate::common::{bar, CliError, CliResult, Context};

/// Options of `procreg prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Prune terminal processes last changed before this: a span before
    /// now (`7d`, `12h`) or epoch milliseconds.
    #[arg(long, value_parser = time::parse_instant)]
    before: u64,
    /// Do not ask.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    target: Target,
}

/// Prunes after confirmation and reports what went.
pub async fn run(args: PruneArgs) -> CliResult<()> {
    let registry = args.target.registry()?;
    let cutoff = time::utc(args.before);
    if !args.yes && !confirm(&cutoff)? {
        return Err(CliError::new("not confirmed; nothing pruned"));
    }
    let parts = RestateProcessRegistry::PRUNE_PARTS;
    let progress = bar(
        parts as usize,
        format!("pruning terminal processes changed before {cutoff}"),
    );
    let mut report = ProcessPruneReport::default();
    for part in 0..parts {
        let pruned = registry
            .prune_part(args.before, part)
            .await
            .with_context(|| format!("pruning (part {} of {parts})", part + 1))?;
        report.pruned_processes += pruned.pruned_processes;
        report.pruned_events += pruned.pruned_events;
        progress.inc(1);
    }
    progress.finish_and_clear();
    if args.target.json {
        return print_json(&report);
    }
    println!(
        "pruned {} processes and {} events changed before {cutoff}",
        report.pruned_processes, report.pruned_events
    );
    Ok(())
}

/// Asks on the terminal; refuses to guess when there is none.
fn confirm(cutoff: &str) -> CliResult<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::new(
            "refusing to prune without --yes: standard input is not a terminal",
        ));
    }
    print!("delete every terminal process last changed before {cutoff}? [y/N] ");
    std::io::stdout().flush().context("writing the prompt")?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
