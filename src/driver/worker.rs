//! The in-process worker: runs pending rows under fenced leases and
//! honours each row's recovery disposition.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::executor::{ProcessExecution, ProcessExecutor};
use super::liveness::{local_owner, LivenessProbe, LocalLiveness};
use super::work_driver::ProcessRunHandle;
use crate::clock::unix_now_ms;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    LeaseOwnerIdentity, ProcessAwaitOutput, ProcessLease, ProcessLeaseClaimOutcome, ProcessRecord,
    ProcessStarted, RecoveryDisposition,
};
use crate::registry::ProcessRegistry;

/// Default lease TTL; the worker renews at a third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
/// Default bound on bodies one bound worker runs at once.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 16;

/// Runs a host's [`ProcessExecutor`] over the registry's pending rows.
///
/// For each non-terminal row it claims a fenced lease, records the first
/// start, renews the lease while the executor runs, records the outcome and
/// releases the lease. It never executes `ExternallyOwned` rows and never
/// re-runs a started `OwnerBound` row: such a row stays non-terminal until
/// its holder is provably dead (see [`LivenessProbe`]) or an abandon request
/// is pending and its lease has lapsed; then it is recorded `Abandoned` with
/// the evidence. Elapsed time alone never writes a terminal.
///
/// A renewal that fails with `Unavailable` is retried within the lease; a
/// run stops only when the lease is refused (expired, superseded, the row
/// ended) or lapses before a renewal gets through. At most
/// [`with_max_concurrent_runs`](Self::with_max_concurrent_runs) bodies run
/// at once; a row that ended or went between listing and claiming is
/// skipped.
pub struct DurableProcessWorker {
    executor: Arc<dyn ProcessExecutor>,
    owner: LeaseOwnerIdentity,
    lease_ttl: Duration,
    liveness: Arc<dyn LivenessProbe>,
    max_concurrent_runs: usize,
}

impl std::fmt::Debug for DurableProcessWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableProcessWorker")
            .field("owner", &self.owner)
            .field("lease_ttl", &self.lease_ttl)
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .finish_non_exhaustive()
    }
}

impl DurableProcessWorker {
    /// A worker for this OS process with the default TTL and local liveness.
    pub fn new(executor: Arc<dyn ProcessExecutor>) -> Self {
        Self {
            executor,
            owner: local_owner("process-worker"),
            lease_ttl: DEFAULT_LEASE_TTL,
            liveness: Arc::new(LocalLiveness::new()),
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
        }
    }

    /// Runs at most `limit` bodies at once (at least one), across every
    /// `claim_and_run_pending` call of the bound worker. Rows past the
    /// limit wait for a permit inside the call that listed them; a call
    /// never waits for bodies another call started.
    pub fn with_max_concurrent_runs(mut self, limit: usize) -> Self {
        self.max_concurrent_runs = limit.max(1);
        self
    }

    /// Presents `owner` on every lease.
    pub fn with_owner(mut self, owner: LeaseOwnerIdentity) -> Self {
        self.owner = owner;
        self
    }

    /// Uses `ttl` for leases (renewed every third of it).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Decides holder death with `liveness`.
    pub fn with_liveness(mut self, liveness: Arc<dyn LivenessProbe>) -> Self {
        self.liveness = liveness;
        self
    }

    /// The identity this worker leases under.
    pub fn owner(&self) -> &LeaseOwnerIdentity {
        &self.owner
    }

    /// A run handle driving `registry` with this worker.
    pub fn bind(self, registry: Arc<dyn ProcessRegistry>) -> Arc<dyn ProcessRunHandle> {
        let permits = Arc::new(Semaphore::new(self.max_concurrent_runs));
        Arc::new(BoundWorker(Arc::new(Bound {
            worker: self,
            registry,
            running: Mutex::new(HashSet::new()),
            permits,
        })))
    }
}

struct BoundWorker(Arc<Bound>);

struct Bound {
    worker: DurableProcessWorker,
    registry: Arc<dyn ProcessRegistry>,
    /// Processes this worker is handling now; a second pass skips them.
    running: Mutex<HashSet<String>>,
    /// One permit per body allowed to run at once.
    permits: Arc<Semaphore>,
}

/// Removes a process from the running set when its handling ends.
struct Running<'a> {
    set: &'a Mutex<HashSet<String>>,
    process_id: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.process_id);
    }
}

#[async_trait]
impl ProcessRunHandle for BoundWorker {
    async fn claim_and_run_pending(&self) -> ProcessResult<()> {
        let rows = self.0.registry.list_non_terminal().await?;
        let mut runs = JoinSet::new();
        for record in rows {
            if record.disposition == RecoveryDisposition::ExternallyOwned {
                continue;
            }
            let this = Arc::clone(&self.0);
            runs.spawn(async move { this.handle(record).await });
        }
        let mut first_error = None;
        while let Some(joined) = runs.join_next().await {
            let result = joined.unwrap_or_else(|err| {
                Err(ProcessError::unavailable_because("worker task failed", err))
            });
            if let Err(err) = result {
                tracing::warn!(error = %err, "process run failed");
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Bound {
    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.worker.lease_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, process_id: &str) -> Option<Running<'_>> {
        let fresh = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(process_id.to_owned());
        fresh.then(|| Running {
            set: &self.running,
            process_id: process_id.to_owned(),
        })
    }

    async fn handle(&self, record: ProcessRecord) -> ProcessResult<()> {
        let Some(_running) = self.enter(&record.id) else {
            return Ok(());
        };
        let started_owner_bound =
            record.disposition == RecoveryDisposition::OwnerBound && record.first_started.is_some();
        let handled = if record.abandon_request.is_some() || started_owner_bound {
            self.sweep(&record).await
        } else {
            let Ok(_permit) = Arc::clone(&self.permits).acquire_owned().await else {
                return Err(ProcessError::unavailable("worker permits closed"));
            };
            self.execute(&record).await
        };
        match handled {
            // The row ended or was pruned since it was listed: nothing to do.
            Err(ProcessError::AlreadyTerminal { .. } | ProcessError::UnknownProcess { .. }) => {
                tracing::debug!(process_id = %record.id, "row ended before it was claimed");
                Ok(())
            }
            other => other,
        }
    }

    /// Rows that must not run: abandon them when that is proven safe.
    async fn sweep(&self, record: &ProcessRecord) -> ProcessResult<()> {
        let ttl = self.ttl_ms();
        let owner = &self.worker.owner;
        if let Some(request) = &record.abandon_request {
            // A claim succeeds only when the lease is free or lapsed.
            if let ProcessLeaseClaimOutcome::Acquired(lease) = self
                .registry
                .claim_process_lease(&record.id, owner, ttl)
                .await?
            {
                let evidence = json!({ "reason": "abandon_requested", "request": request });
                return self.abandon(&lease, evidence).await;
            }
            return Ok(());
        }
        let lease = self.registry.get_process_lease(&record.id).await?;
        let holder = match (&lease, &record.first_started) {
            (Some(lease), _) => lease.owner.clone(),
            (None, Some(started)) => started.owner.clone(),
            (None, None) => return Ok(()),
        };
        if !self.worker.liveness.is_provably_dead_for(&holder, owner) {
            return Ok(());
        }
        let outcome = match &lease {
            Some(observed) => {
                self.registry
                    .reclaim_process_lease(&record.id, owner, observed, ttl)
                    .await?
            }
            None => {
                self.registry
                    .claim_process_lease(&record.id, owner, ttl)
                    .await?
            }
        };
        if let ProcessLeaseClaimOutcome::Acquired(lease) = outcome {
            let evidence = json!({ "reason": "owner_gone", "owner": holder, "checked_by": self.worker.owner.liveness });
            return self.abandon(&lease, evidence).await;
        }
        Ok(())
    }

    async fn abandon(
        &self,
        lease: &ProcessLease,
        evidence: serde_json::Value,
    ) -> ProcessResult<()> {
        let outcome = self
            .registry
            .complete_process(&lease.process_id, ProcessAwaitOutput::abandoned(evidence))
            .await;
        let released = self.registry.complete_process_lease(&lease.into()).await;
        outcome.and(released)
    }

    async fn execute(&self, record: &ProcessRecord) -> ProcessResult<()> {
        let outcome = self
            .registry
            .claim_process_lease(&record.id, &self.worker.owner, self.ttl_ms())
            .await?;
        let ProcessLeaseClaimOutcome::Acquired(lease) = outcome else {
            return Ok(());
        };
        let result = self.run_leased(&lease).await;
        let released = self.registry.complete_process_lease(&(&lease).into()).await;
        result.and(released)
    }

    async fn run_leased(&self, lease: &ProcessLease) -> ProcessResult<()> {
        // The row may have ended, started or been flagged since it was listed.
        let Some(record) = self.registry.try_get_process(&lease.process_id).await? else {
            return Ok(());
        };
        let owner_bound_started =
            record.disposition == RecoveryDisposition::OwnerBound && record.first_started.is_some();
        if record.is_terminal() || owner_bound_started || record.abandon_request.is_some() {
            return Ok(());
        }
        let started = ProcessStarted {
            owner: self.worker.owner.clone(),
            started_at_ms: unix_now_ms(),
        };
        let record = self
            .registry
            .record_first_started(&record.id, started)
            .await?;
        let execution = ProcessExecution::new(record, lease.clone(), Arc::clone(&self.registry));
        let output = tokio::select! {
            output = self.worker.executor.execute(execution) => output?,
            lost = self.keep_renewing(lease) => return Err(lost),
        };
        // Fence the write: only a worker still holding the lease records it.
        self.registry
            .renew_process_lease(lease, self.ttl_ms())
            .await?;
        self.registry
            .complete_process(&lease.process_id, output)
            .await
            .map(drop)
    }

    /// Renews every third of the TTL until the lease is lost; returns why.
    /// A renewal failing with `Unavailable` is tried again (from a
    /// twentieth of the TTL, doubling) while the lease it would extend
    /// still holds.
    async fn keep_renewing(&self, lease: &ProcessLease) -> ProcessError {
        let ttl = self.worker.lease_ttl;
        let mut holds_until = Instant::now() + ttl;
        loop {
            tokio::time::sleep(ttl / 3).await;
            let mut pause = ttl / 20;
            loop {
                match self
                    .registry
                    .renew_process_lease(lease, self.ttl_ms())
                    .await
                {
                    Ok(_) => {
                        holds_until = Instant::now() + ttl;
                        break;
                    }
                    Err(err @ ProcessError::Unavailable { .. })
                        if Instant::now() + pause < holds_until =>
                    {
                        tracing::debug!(process_id = %lease.process_id, error = %err, ?pause, "renewal failed; retrying within the lease");
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                    Err(err) => {
                        tracing::warn!(process_id = %lease.process_id, error = %err, "lease lost; run stopped");
                        return err;
                    }
                }
            }
        }
    }
}
