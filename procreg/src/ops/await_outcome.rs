//! `procreg await ID`: waits for the outcome through the engine and tells
//! it apart by exit status.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | completed (success) |
//! | 1 | the wait itself failed (unknown id, ingress unreachable, …) |
//! | 2 | bad flags |
//! | 3 | failed |
//! | 4 | cancelled |
//! | 5 | abandoned |
//! | 124 | `--timeout` passed first (as `timeout(1)` reports it) |

use std::time::Duration;

use clap::Args;
use restate_process_registry::{ProcessAttach, ProcessAwaitOutput};

use super::{outcome_kind, print_json, time, Target};
use crate::common::{CliError, CliResult, Context};

/// Exit status when the process failed.
pub const EXIT_FAILED: u8 = 3;
/// Exit status when the process was cancelled.
pub const EXIT_CANCELLED: u8 = 4;
/// Exit status when the process was abandoned.
pub const EXIT_ABANDONED: u8 = 5;
/// Exit status when the timeout passed first.
pub const EXIT_TIMEOUT: u8 = 124;

/// Options of `procreg await`.
#[derive(Debug, Args)]
pub struct AwaitArgs {
    /// The process id.
    id: String,
    /// Give up after this long (`30s`, `5m`, `250ms`).
    #[arg(long, default_value = "30s", value_parser = time::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    target: Target,
}

/// Prints the outcome; the exit status says which it was.
pub async fn run(args: AwaitArgs) -> CliResult<()> {
    let attach = args.target.attach()?;
    let waited = tokio::time::timeout(args.timeout, attach.await_terminal(&args.id)).await;
    let Ok(output) = waited else {
        return Err(CliError::exit(
            EXIT_TIMEOUT,
            format!("`{}` did not end within {:?}", args.id, args.timeout),
        ));
    };
    let output = output.context("waiting for the outcome")?;
    if args.target.json {
        print_json(&output)?;
    } else {
        let detail = match &output {
            ProcessAwaitOutput::Success { value, .. } => serde_json::to_string(value),
            ProcessAwaitOutput::Failure { code, message, .. } => Ok(format!("{code}: {message}")),
            ProcessAwaitOutput::Cancelled { message, .. } => {
                Ok(message.clone().unwrap_or_default())
            }
            ProcessAwaitOutput::Abandoned { evidence, .. } => serde_json::to_string(evidence),
        }
        .unwrap_or_default();
        println!("{} {detail}", outcome_kind(&output));
    }
    match output {
        ProcessAwaitOutput::Success { .. } => Ok(()),
        ProcessAwaitOutput::Failure { .. } => Err(CliError::exit(EXIT_FAILED, "")),
        ProcessAwaitOutput::Cancelled { .. } => Err(CliError::exit(EXIT_CANCELLED, "")),
        ProcessAwaitOutput::Abandoned { .. } => Err(CliError::exit(EXIT_ABANDONED, "")),
    }
}
