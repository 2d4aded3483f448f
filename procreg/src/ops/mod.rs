//! The operator's verbs against a running registry: `get`, `ls`,
//! `events`, `await`, `grants`, `prune`, `check`. Each takes `--ingress` (default
//! `PROCREG_INGRESS`, else `http://127.0.0.1:8080`) and `--json`; tables
//! for people by default, one JSON document (or NDJSON for streams) for
//! scripts.

pub mod await_outcome;
pub mod check;
pub mod events;
pub mod get;
pub mod grants;
pub mod ls;
pub mod prune;
mod time;

use clap::Args;
use restate_process_registry::{
    ProcessAwaitOutput, ProcessEvent, ProcessRecord, RestateProcessAttach, RestateProcessRegistry,
};
use serde::Serialize;

use crate::common::{CliResult, Context};

/// Where the registry is and how to print.
#[derive(Debug, Args)]
pub struct Target {
    /// Restate ingress of the registry.
    #[arg(
        long,
        env = "PROCREG_INGRESS",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    ingress: String,
    /// Print JSON (one document, or one per line for streams) instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

impl Target {
    fn registry(&self) -> CliResult<RestateProcessRegistry> {
        RestateProcessRegistry::connect(&self.ingress).context("--ingress")
    }

    fn attach(&self) -> CliResult<RestateProcessAttach> {
        Ok(RestateProcessAttach::new(self.registry()?))
    }
}

/// Prints `value` as one line of JSON.
fn print_json(value: &impl Serialize) -> CliResult<()> {
    let line = serde_json::to_string(value).context("encoding JSON")?;
    println!("{line}");
    Ok(())
}

/// `completed`, `failed`, …: the outcome's kind.
fn outcome_kind(output: &ProcessAwaitOutput) -> &'static str {
    match output {
        ProcessAwaitOutput::Success { .. } => "completed",
        ProcessAwaitOutput::Failure { .. } => "failed",
        ProcessAwaitOutput::Cancelled { .. } => "cancelled",
        ProcessAwaitOutput::Abandoned { .. } => "abandoned",
    }
}

/// The row's status as one word.
fn status_word(record: &ProcessRecord) -> &'static str {
    record.status.await_output().map_or("running", outcome_kind)
}

/// At most `width` characters of `text`, marked when cut.
fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// One event as a table line.
fn event_line(event: &ProcessEvent) -> String {
    let payload = serde_json::to_string(&event.payload).unwrap_or_default();
    format!(
        "#{:<5} {}  {:<24} {}",
        event.sequence,
        time::utc(event.occurred_at_ms),
        event.event_type,
        clip(&payload, 100)
    )
}
