//! `procreg ls`: rows matching a `ProcessListFilter`, a page at a time.

use clap::{Args, ValueEnum};
use restate_process_registry::ListCursor;
use restate_process_registry::{ProcessListFilter, ProcessRecord, ProcessStatusFilter};
use serde_json::json;

use super::{clip, print_json, status_word, time, Target};
use crate::common::{CliError, CliResult, Context};

/// Statuses `--status` takes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Status {
    Running,
    Completed,
    Failed,
    Cancelled,
    Abandoned,
    Terminal,
    Any,
}

impl From<Status> for ProcessStatusFilter {
    fn from(status: Status) -> Self {
        match status {
            Status::Running => Self::Running,
            Status::Completed => Self::Completed,
            Status::Failed => Self::Failed,
            Status::Cancelled => Self::Cancelled,
            Status::Abandoned => Self::Abandoned,
            Status::Terminal => Self::Terminal,
            Status::Any => Self::Any,
        }
    }
}

/// Options of `procreg ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Rows in this status.
    #[arg(long, value_enum, default_value = "running")]
    status: Status,
    /// Only rows with (`true`) or without (`false`) a wait set.
    #[arg(long)]
    waiting: Option<bool>,
    /// Identity kind (`engine`, `external`).
    #[arg(long)]
    kind: Option<String>,
    /// Identity label.
    #[arg(long)]
    label: Option<String>,
    /// Identity definition.
    #[arg(long)]
    definition: Option<String>,
    /// Originator scope id (`session:…` or a host scope).
    #[arg(long)]
    scope: Option<String>,
    /// Created at or after: a span before now (`10m`, `2h`, `7d`) or epoch ms.
    #[arg(long, value_parser = time::parse_instant)]
    since: Option<u64>,
    /// Created before: a span before now or epoch ms.
    #[arg(long, value_parser = time::parse_instant)]
    until: Option<u64>,
    /// Rows per page.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue after a page (the `next` a previous page printed).
    #[arg(long, value_parser = parse_cursor)]
    after: Option<ListCursor>,
    /// Every matching row, page after page (NDJSON with `--json`).
    #[arg(long, conflicts_with = "after")]
    all: bool,
    #[command(flatten)]
    target: Target,
}

impl LsArgs {
    fn filter(&self) -> ProcessListFilter {
        ProcessListFilter {
            status: self.status.into(),
            waiting: self.waiting,
            originator_scope_id: self.scope.clone(),
            identity_kind: self.kind.clone(),
            identity_label: self.label.clone(),
            definition: self.definition.clone(),
            created_at_start_ms: self.since,
            created_at_end_ms: self.until,
        }
    }
}

/// `{shard}.{slot}`, as pages print it.
fn parse_cursor(text: &str) -> Result<ListCursor, String> {
    let bad = || format!("`{text}` is not a cursor (`next` of an earlier page, like 3.17)");
    let (shard, slot) = text.split_once('.').ok_or_else(bad)?;
    Ok(ListCursor {
        shard: shard.parse().map_err(|_| bad())?,
        slot: slot.parse().map_err(|_| bad())?,
    })
}

fn cursor_text(cursor: &ListCursor) -> String {
    format!("{}.{}", cursor.shard, cursor.slot)
}

/// Prints one page, or every page with `--all`.
pub async fn run(args: LsArgs) -> CliResult<()> {
    if args.limit == 0 {
        return Err(CliError::new("--limit must be at least 1"));
    }
    let registry = args.target.registry()?;
    let filter = args.filter();
    let mut cursor = args.after;
    let mut header = !args.target.json;
    let mut total = 0;
    loop {
        let (rows, next) = registry
            .list_processes_page(&filter, cursor, args.limit)
            .await
            .context("listing processes")?;
        total += rows.len();
        if args.target.json && !args.all {
            return print_json(&json!({
                "rows": rows,
                "next": next.as_ref().map(cursor_text),
            }));
        }
        for row in &rows {
            if args.target.json {
                print_json(row)?;
            } else {
                if header {
                    println!(
                        "{:<40} {:<10} {:<9} {:<24} {:<24} WAIT",
                        "ID", "STATUS", "KIND", "LABEL", "CREATED"
                    );
                    header = false;
                }
                println!("{}", row_line(row));
            }
        }
        match next {
            Some(next) if args.all => cursor = Some(next),
            Some(next) => {
                if !args.target.json {
                    println!(
                        "next: procreg ls --after {} (same filters)",
                        cursor_text(&next)
                    );
                }
                return Ok(());
            }
            None => {
                if !args.target.json && total == 0 {
                    println!("no matching processes");
                }
                return Ok(());
            }
        }
    }
}

fn row_line(row: &ProcessRecord) -> String {
    format!(
        "{:<40} {:<10} {:<9} {:<24} {:<24} {}",
        clip(&row.id, 40),
        status_word(row),
        clip(&row.identity.kind, 9),
        clip(&row.identity.label, 24),
        time::utc(row.created_at_ms),
        if row.wait.is_some() { "yes" } else { "-" }
    )
}
