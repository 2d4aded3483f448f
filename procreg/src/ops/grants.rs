//! `procreg grants SESSION`: the handle grants a session holds.

use clap::Args;
use restate_process_registry::{ProcessRegistry, SessionScope};
use serde_json::json;

use super::{clip, print_json, status_word, Target};
use crate::common::{CliResult, Context};

/// Options of `procreg grants`.
#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// The session id.
    session: String,
    /// Only the grants of this agent frame of the session.
    #[arg(long)]
    frame: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// Prints the session's grants with their processes' status.
pub async fn run(args: GrantsArgs) -> CliResult<()> {
    let registry = args.target.registry()?;
    let scope = match args.frame {
        Some(frame) => SessionScope::frame(args.session, frame),
        None => SessionScope::session(args.session),
    };
    let grants = registry
        .list_handle_grants(&scope)
        .await
        .context("listing the grants")?;
    if args.target.json {
        let rows: Vec<_> = grants
            .iter()
            .map(|(grant, record)| json!({ "grant": grant, "status": status_word(record) }))
            .collect();
        return print_json(&json!({ "scope": scope.id(), "grants": rows }));
    }
    if grants.is_empty() {
        println!("{} holds no grants", scope.id());
        return Ok(());
    }
    println!(
        "{:<40} {:<10} {:<16} {:<24} SCOPE",
        "PROCESS", "STATUS", "KIND", "LABEL"
    );
    for (grant, record) in &grants {
        println!(
            "{:<40} {:<10} {:<16} {:<24} {}",
            clip(&grant.process_id, 40),
            status_word(record),
            clip(&grant.descriptor.kind, 16),
            clip(&grant.descriptor.label, 24),
            grant.scope_id
        );
    }
    Ok(())
}
