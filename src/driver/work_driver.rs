//! The work driver: the one place hosts run pending work and wait on it.

use std::sync::Arc;

use async_trait::async_trait;

use super::worker::DurableProcessWorker;
use crate::attach::ProcessAttach;
use crate::awaiter::{terminal_output, ProcessAwaiter};
use crate::error::ProcessResult;
use crate::model::{ProcessAwaitOutput, ProcessEvent};
use crate::registry::ProcessRegistry;
use crate::watch::{
    watch_process_registry_with_sink, ProcessChangeHub, ProcessEventSink, WatchedProcessRegistry,
};

/// Runs the registry's pending rows when the host asks.
#[async_trait]
pub trait ProcessRunHandle: Send + Sync {
    /// Claims and runs whatever is pending now; returns when those runs end.
    async fn claim_and_run_pending(&self) -> ProcessResult<()>;
}

/// Registry plus run handle for work owned outside the caller.
///
/// The registry's non-terminal rows are the durable work queue; hosts call
/// [`claim_and_run_pending`](Self::claim_and_run_pending) when something
/// happens, and wait with [`await_terminal`](Self::await_terminal) or
/// [`await_event`](Self::await_event). Built by [`new`](Self::new),
/// [`new_with_sink`](Self::new_with_sink) or [`inline`](Self::inline), the
/// driver watches the registry itself, so every change made through
/// [`process_registry`](Self::process_registry) wakes in-process waiters.
/// [`from_watched`](Self::from_watched) trusts the caller to pass a
/// registry and the hub its writes bump; [`from_watched_registry`] and
/// [`inline_watched`](Self::inline_watched) take a
/// [`WatchedProcessRegistry`], whose hub cannot be mismatched.
///
/// [`from_watched_registry`]: Self::from_watched_registry
#[derive(Clone)]
pub struct ProcessWorkDriver {
    registry: Arc<dyn ProcessRegistry>,
    hub: ProcessChangeHub,
    run_handle: Arc<dyn ProcessRunHandle>,
    attach: Option<Arc<dyn ProcessAttach>>,
}

impl std::fmt::Debug for ProcessWorkDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessWorkDriver")
            .field("durability", &self.registry.durability_tier())
            .field("attach", &self.attach.is_some())
            .finish_non_exhaustive()
    }
}

impl ProcessWorkDriver {
    /// Watches `registry` and drives it with `run_handle`.
    pub fn new(registry: Arc<dyn ProcessRegistry>, run_handle: Arc<dyn ProcessRunHandle>) -> Self {
        Self::new_with_sink(registry, run_handle, None)
    }

    /// Like [`new`](Self::new), also emitting appends made through the
    /// driver's registry to `sink` (best effort; see [`ProcessEventSink`]).
    pub fn new_with_sink(
        registry: Arc<dyn ProcessRegistry>,
        run_handle: Arc<dyn ProcessRunHandle>,
        sink: Option<Arc<dyn ProcessEventSink>>,
    ) -> Self {
        let (registry, hub) = watch_process_registry_with_sink(registry, sink);
        Self::from_watched(registry, hub, run_handle)
    }

    /// Drives a registry the caller already watches, `hub` being the hub
    /// its writes bump (the pair [`watch_process_registry`] returns). The
    /// pairing is not checked: waiters on a hub the writes never bump still
    /// end, on the polling backoff. [`from_watched_registry`] cannot be
    /// mismatched.
    ///
    /// [`watch_process_registry`]: crate::watch_process_registry
    /// [`from_watched_registry`]: Self::from_watched_registry
    pub fn from_watched(
        registry: Arc<dyn ProcessRegistry>,
        hub: ProcessChangeHub,
        run_handle: Arc<dyn ProcessRunHandle>,
    ) -> Self {
        Self {
            registry,
            hub,
            run_handle,
            attach: None,
        }
    }

    /// Drives an already watched registry (e.g. one with a sink:
    /// `WatchedProcessRegistry::new(inner).with_sink(sink)`), waiting on
    /// its own hub.
    pub fn from_watched_registry(
        registry: WatchedProcessRegistry,
        run_handle: Arc<dyn ProcessRunHandle>,
    ) -> Self {
        let hub = registry.hub().clone();
        Self::from_watched(Arc::new(registry), hub, run_handle)
    }

    /// Runs pending rows in this process with `worker`, which writes
    /// through the driver's watched registry.
    pub fn inline(registry: Arc<dyn ProcessRegistry>, worker: DurableProcessWorker) -> Self {
        Self::inline_watched(WatchedProcessRegistry::new(registry), worker)
    }

    /// Like [`inline`](Self::inline) on an already watched registry; the
    /// worker writes through it, so its appends reach the sink too.
    pub fn inline_watched(registry: WatchedProcessRegistry, worker: DurableProcessWorker) -> Self {
        let run_handle = worker.bind(Arc::new(registry.clone()));
        Self::from_watched_registry(registry, run_handle)
    }

    /// Waits through `attach` instead of the change hub: outcomes always,
    /// milestone events when the attach offers them.
    pub fn with_attach(mut self, attach: Arc<dyn ProcessAttach>) -> Self {
        self.attach = Some(attach);
        self
    }

    /// The watched registry; write through it so waiters wake.
    pub fn process_registry(&self) -> Arc<dyn ProcessRegistry> {
        Arc::clone(&self.registry)
    }

    /// The hub the watched registry bumps.
    pub fn change_hub(&self) -> ProcessChangeHub {
        self.hub.clone()
    }

    /// An awaiter on the watched registry and its hub.
    pub fn awaiter(&self) -> ProcessAwaiter {
        ProcessAwaiter::new(self.process_registry(), self.change_hub())
    }

    /// The outcome of `process_id` once terminal. An already-terminal row
    /// answers at once; otherwise the attach (when installed) is
    /// authoritative, with no polling fallback, else the awaiter waits.
    /// Unbounded: wrap it in `tokio::time::timeout`.
    pub async fn await_terminal(&self, process_id: &str) -> ProcessResult<ProcessAwaitOutput> {
        if let Some(output) = terminal_output(self.registry.as_ref(), process_id).await? {
            return Ok(output);
        }
        match &self.attach {
            Some(attach) => attach.await_terminal(process_id).await,
            None => self.awaiter().await_terminal(process_id).await,
        }
    }

    /// The first `event_type` event above `after_sequence`; fails with
    /// `AlreadyTerminal` when the process ends without one. Through the
    /// attach when it has engine-native milestone waits (authoritative, no
    /// polling fallback), else through the awaiter
    /// ([`ProcessAwaiter::await_event`]). Unbounded: wrap it in a timeout.
    pub async fn await_event(
        &self,
        process_id: &str,
        event_type: &str,
        after_sequence: u64,
    ) -> ProcessResult<ProcessEvent> {
        if let Some(attach) = &self.attach {
            if let Some(answer) = attach
                .await_event(process_id, event_type, after_sequence)
                .await
            {
                return answer;
            }
        }
        self.awaiter()
            .await_event(process_id, event_type, after_sequence)
            .await
    }

    /// Claims and runs pending rows; `reason` is logged.
    pub async fn claim_and_run_pending(&self, reason: &str) -> ProcessResult<()> {
        tracing::debug!(reason, "claim_and_run_pending");
        self.run_handle.claim_and_run_pending().await
    }
}
