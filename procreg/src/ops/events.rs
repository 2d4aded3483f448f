//! `procreg events ID`: the log above a sequence, and with `--follow` each
//! new event as the engine appends it, until the process ends.

use clap::Args;
use restate_process_registry::{ProcessError, ProcessEvent, ProcessRegistry};

use super::{event_line, print_json, Target};
use crate::common::{CliError, CliResult, Context};

/// Options of `procreg events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The process id.
    id: String,
    /// Only events with a greater sequence.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// Keep printing events as they are appended (each one wakes this
    /// command through the engine; no polling); ends when the process does.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    target: Target,
}

/// Prints the events; follows them when asked.
pub async fn run(args: EventsArgs) -> CliResult<()> {
    let registry = args.target.registry()?;
    let id = &args.id;
    if registry
        .try_get_process(id)
        .await
        .context("reading the process")?
        .is_none()
    {
        return Err(CliError::new(ProcessError::unknown(id).to_string()));
    }
    let mut last = args.after;
    for event in registry
        .events_after(id, args.after)
        .await
        .context("reading the events")?
    {
        last = event.sequence;
        print_event(&event, args.target.json)?;
    }
    if !args.follow {
        return Ok(());
    }
    let attach = args.target.attach()?;
    loop {
        match attach.await_next_event(id, last).await {
            Ok(event) => {
                last = event.sequence;
                print_event(&event, args.target.json)?;
            }
            // Ended, and nothing follows its last event.
            Err(ProcessError::AlreadyTerminal { .. }) => return Ok(()),
            Err(error) => return Err(CliError::new(format!("following the events: {error}"))),
        }
    }
}

fn print_event(event: &ProcessEvent, json: bool) -> CliResult<()> {
    if json {
        print_json(event)
    } else {
        println!("{}", event_line(event));
        Ok(())
    }
}
