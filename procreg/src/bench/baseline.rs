//! `EngineBaseline`: the engine baseline for `procreg bench`.
//!
//! A virtual object whose one exclusive handler does nothing. Calling it
//! through ingress costs exactly what Restate charges for an exclusive
//! keyed invocation (ingress, journal, per-key lock, endpoint round trip)
//! and nothing of ours, so `procreg bench` divides the registry's
//! throughput by it to report registry operations as a ratio of the raw
//! engine. It holds no state and calls nothing.

use std::sync::Arc;

use restate_sdk::ingress::{Client, RequestTarget};
use restate_sdk::prelude::*;
use tokio::runtime::Handle;

use super::meter::{Meter, OpCost};
use super::{bench_endpoint, phase, Plan, RESTATE_DEFAULTS};
use crate::common::{ensure, start_stack_on, CliResult, Context, Load};

/// The no-op virtual object `procreg bench` measures as the engine baseline.
#[derive(Debug)]
pub struct EngineBaseline;

#[restate_sdk::object(name = "EngineBaseline")]
impl EngineBaseline {
    /// Does nothing, exclusively: one keyed invocation with no state.
    /// Takes no input, so call it with no body and no content type.
    #[handler]
    async fn noop(&self, _ctx: ObjectContext<'_>) -> Result<(), TerminalError> {
        Ok(())
    }
}

/// The no-op baseline on a single server running Restate's defaults, and
/// what one call cost there; that server is gone when this returns.
pub(super) async fn default_noop(plan: &Plan, runtime: &Handle) -> CliResult<(Load, OpCost)> {
    let (stack, _) = start_stack_on(bench_endpoint(), runtime, Some(RESTATE_DEFAULTS)).await?;
    let baseline = Baseline::connect(&stack.ingress_url())?;
    let meter = Meter::on(&[stack.server()])?;
    let keys = plan.process_ids();
    let warm = (plan.concurrency * 4).min(plan.throughput_ops());
    noop_phase(&baseline, &keys, warm, plan.concurrency, "warm-up", false).await?;
    metered_noop(&baseline, &meter, &keys, plan, "noop on Restate's defaults").await
}

/// One throughput phase of no-op calls (no idempotency key) and what one
/// call cost.
pub(super) async fn metered_noop(
    baseline: &Baseline,
    meter: &Meter,
    keys: &Arc<Vec<String>>,
    plan: &Plan,
    label: &str,
) -> CliResult<(Load, OpCost)> {
    meter
        .measure(noop_phase(
            baseline,
            keys,
            plan.throughput_ops(),
            plan.concurrency,
            label,
            false,
        ))
        .await
}

/// Exclusive no-op calls to the engine-baseline object, through ingress.
#[derive(Clone)]
pub(super) struct Baseline {
    client: Client<reqwest::Client>,
}

impl Baseline {
    pub(super) fn connect(ingress_url: &str) -> CliResult<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?;
        let uri = ingress_url
            .parse()
            .context(format!("parsing the ingress url {ingress_url}"))?;
        let client = Client::new(uri, http).context("building the ingress client")?;
        Ok(Self { client })
    }

    /// `EngineBaseline/{key}/noop`: no body, no content type, empty answer;
    /// with an idempotency key when one is given (as every registry write has).
    pub(super) async fn noop(&self, key: String, idempotency_key: Option<String>) -> CliResult<()> {
        let target = RequestTarget::object("EngineBaseline", key, "noop");
        let mut request = self.client.request::<(), ()>(target, ());
        if let Some(idempotency_key) = idempotency_key {
            request = request.idempotency_key(idempotency_key);
        }
        let response = request
            .call()
            .await
            .context("calling EngineBaseline/noop")?;
        let status = response.status();
        ensure(status.is_success(), || {
            let body = response.into_raw_http_response().into_body();
            format!(
                "EngineBaseline/noop answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
        })
    }
}

/// No-op calls; `idempotent` gives each one a fresh idempotency key.
pub(super) async fn noop_phase(
    baseline: &Baseline,
    ids: &Arc<Vec<String>>,
    total: usize,
    concurrency: usize,
    label: &str,
    idempotent: bool,
) -> CliResult<Load> {
    let (baseline, ids) = (baseline.clone(), Arc::clone(ids));
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    phase(label, total, concurrency, move |i| {
        let (baseline, key) = (baseline.clone(), ids[i % ids.len()].clone());
        let idempotency_key = idempotent.then(|| format!("bench-noop-{run}-{i}"));
        async move { baseline.noop(key, idempotency_key).await }
    })
    .await
}
