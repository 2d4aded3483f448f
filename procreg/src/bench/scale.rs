//! The registry at scale: registration rates with few and with many live
//! rows, the first listing page with many, and listing every live row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_process_registry::{ProcessRegistry, RestateProcessRegistry};

use super::meter::{Meter, OpCost};
use super::report::{size, Table};
use super::{register_all, Bench, Plan};
use crate::common::{bar, ensure, ms, quantile, CliResult, Context, Load};

/// `list_non_terminal` repetitions (the median is reported).
const LIST_RUNS: usize = 3;

/// Registration rates with few and with many live rows, and the first
/// page of a listing with many.
pub(super) struct Scale {
    small_rows: usize,
    big_rows: usize,
    small_rate: f64,
    big_rate: f64,
    first_page: Duration,
}

/// Registrations timed in one batch.
pub(super) const BATCH: usize = 500;
/// Longest wait for the server to come to rest before a timed batch.
pub(super) const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Registers one timed batch of `BATCH` rows, started once the server is
/// at rest (so a batch right after a fill does not pay the storage's
/// compaction of that fill; the fill's own rate shows that cost), and what
/// one registration of it cost.
pub(super) async fn register_batch(
    registry: &RestateProcessRegistry,
    meter: &Meter,
    plan: &Plan,
    tag: &str,
    table: &mut Table,
) -> CliResult<(Load, OpCost)> {
    let ids = Arc::new((0..BATCH).map(|i| format!("scale-{tag}-{i:04}")).collect());
    let live = count_rows(registry).await?;
    meter.settle(SETTLE_LIMIT).await;
    let (load, cost) = meter
        .measure(register_all(
            registry,
            ids,
            plan.concurrency,
            &format!("register ({tag})"),
        ))
        .await?;
    table.load(&format!("register_process x{BATCH} @{live} rows"), &load);
    Ok((load, cost))
}

pub(super) async fn count_rows(registry: &RestateProcessRegistry) -> CliResult<usize> {
    Ok(registry
        .directory_entries(&restate_process_registry::ProcessListFilter::any())
        .await
        .context("counting rows")?
        .len())
}

pub(super) async fn scale_phase(
    registry: &RestateProcessRegistry,
    meter: &Meter,
    plan: &Plan,
    small: &Load,
    table: &mut Table,
) -> CliResult<Scale> {
    let live = count_rows(registry).await?;
    let fill_to = plan.rows.saturating_sub(live + BATCH);
    let ids: Arc<Vec<String>> = Arc::new((0..fill_to).map(|i| format!("fill-{i:06}")).collect());
    let fill = register_all(
        registry,
        ids,
        plan.concurrency,
        &format!("registering up to {} rows", plan.rows),
    )
    .await?;
    table.load(&format!("register_process (fill to {})", plan.rows), &fill);
    let (big, _) = register_batch(registry, meter, plan, "many-rows", table).await?;
    let mut pages = Vec::with_capacity(LIST_RUNS);
    for _ in 0..LIST_RUNS {
        let call = Instant::now();
        let (rows, _) = registry
            .list_processes_page(
                &restate_process_registry::ProcessListFilter::any(),
                None,
                256,
            )
            .await
            .context("list_processes_page")?;
        pages.push(call.elapsed());
        ensure(rows.len() >= 256, || {
            format!("the first page held {} rows", rows.len())
        })?;
    }
    let total = pages.iter().sum();
    table.latencies(
        &format!("list_processes first page @{} rows", plan.rows),
        &pages,
        total,
    );
    Ok(Scale {
        small_rows: plan.processes,
        big_rows: plan.rows,
        small_rate: small.per_second(),
        big_rate: big.per_second(),
        first_page: quantile(&pages, 0.5),
    })
}

/// Registers rows until `plan.listed` are live, then times
/// `list_non_terminal`; returns the row count and the median time.
pub(super) async fn list_phase(
    registry: &RestateProcessRegistry,
    plan: &Plan,
    table: &mut Table,
) -> CliResult<(usize, Duration)> {
    let spin = crate::common::spinner("counting live rows");
    let live = registry.list_non_terminal().await;
    spin.finish_and_clear();
    let live = live.context("list_non_terminal")?.len();
    let missing = plan.listed.saturating_sub(live);
    if missing > 0 {
        let ids: Arc<Vec<String>> =
            Arc::new((0..missing).map(|i| format!("list-{i:06}")).collect());
        let load = register_all(
            registry,
            ids,
            plan.concurrency,
            &format!("registering up to {} live", plan.listed),
        )
        .await?;
        table.load(
            &format!("register_process (to {} live)", plan.listed),
            &load,
        );
    }
    let progress = bar(LIST_RUNS, "list_non_terminal");
    let mut times = Vec::with_capacity(LIST_RUNS);
    let mut rows = 0;
    for _ in 0..LIST_RUNS {
        let call = Instant::now();
        let listed = registry
            .list_non_terminal()
            .await
            .context("list_non_terminal")?;
        times.push(call.elapsed());
        rows = listed.len();
        ensure(rows >= plan.listed, || {
            format!(
                "list_non_terminal returned {rows} rows, expected at least {}",
                plan.listed
            )
        })?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let total = times.iter().sum();
    table.latencies(&format!("list_non_terminal ({rows} rows)"), &times, total);
    Ok((rows, quantile(&times, 0.5)))
}

/// Listing every live row, then registration and the first listing page
/// as rows pile up (against `few_rows`, registration with only the bench
/// processes live).
pub(super) async fn run(bench: &mut Bench, few_rows: &Load) -> CliResult<()> {
    let Bench {
        plan,
        registry,
        meter,
        table,
        summary,
        ..
    } = bench;
    let (rows, median) = list_phase(registry, plan, table).await?;
    summary.push("listed", rows);
    summary.push(
        &format!("list_non_terminal_{}_ms", size(rows)),
        format!("{:.0}", ms(median)),
    );
    let scale = scale_phase(registry, meter, plan, few_rows, table).await?;
    summary.push(
        &format!(
            "register_at_{}_vs_{}",
            size(scale.big_rows),
            size(scale.small_rows)
        ),
        format!("{:.3}", scale.big_rate / scale.small_rate),
    );
    summary.push(
        &format!("list_page_{}_ms", size(scale.big_rows)),
        format!("{:.1}", ms(scale.first_page)),
    );
    Ok(())
}
