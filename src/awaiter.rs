//! Waiting for outcomes and milestones with point reads.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ProcessError, ProcessResult};
use crate::model::{ProcessAwaitOutput, ProcessEvent};
use crate::registry::ProcessRegistry;
use crate::watch::ProcessChangeHub;

/// First wait between reads when nothing signals a change.
pub const AWAIT_BACKOFF_MIN: Duration = Duration::from_millis(25);
/// Longest wait between reads.
pub const AWAIT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Waits on a registry by re-reading it: immediately on every change-hub
/// bump, otherwise on a backoff of 25 ms doubling to 1 s.
///
/// Waits are unbounded; wrap them in `tokio::time::timeout`.
#[derive(Clone)]
pub struct ProcessAwaiter {
    registry: Arc<dyn ProcessRegistry>,
    hub: Option<ProcessChangeHub>,
}

impl std::fmt::Debug for ProcessAwaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessAwaiter")
            .field("wakes_on_hub", &self.hub.is_some())
            .finish_non_exhaustive()
    }
}

impl ProcessAwaiter {
    /// Wakes on `hub` bumps (the hub of the watched `registry`).
    pub fn new(registry: Arc<dyn ProcessRegistry>, hub: ProcessChangeHub) -> Self {
        Self {
            registry,
            hub: Some(hub),
        }
    }

    /// Backoff reads only, for registries changed by other hosts.
    pub fn polling(registry: Arc<dyn ProcessRegistry>) -> Self {
        Self {
            registry,
            hub: None,
        }
    }

    /// The outcome of `process_id` once it is terminal.
    pub async fn await_terminal(&self, process_id: &str) -> ProcessResult<ProcessAwaitOutput> {
        self.wait(process_id, || {
            terminal_output(self.registry.as_ref(), process_id)
        })
        .await
    }

    /// The first `event_type` event above `after_sequence`. Events already
    /// in the log resolve at once; if the process ends without one (also
    /// when `after_sequence` is at or past its terminal event), the wait
    /// fails with `AlreadyTerminal`.
    pub async fn await_event(
        &self,
        process_id: &str,
        event_type: &str,
        after_sequence: u64,
    ) -> ProcessResult<ProcessEvent> {
        let cursor = AtomicU64::new(after_sequence);
        self.wait(process_id, || async {
            // The row first: if it had ended by then, the log read next
            // holds every event it will ever have.
            let ended = terminal_output(self.registry.as_ref(), process_id)
                .await?
                .is_some();
            let from = cursor.load(Ordering::Relaxed);
            let events = self.registry.events_after(process_id, from).await?;
            if let Some(found) = events.iter().find(|event| event.event_type == event_type) {
                return Ok(Some(found.clone()));
            }
            if ended {
                return Err(ProcessError::terminal(process_id));
            }
            if let Some(last) = events.last() {
                cursor.store(last.sequence, Ordering::Relaxed);
            }
            Ok(None)
        })
        .await
    }

    /// Re-reads until `read` finds something, subscribing before the first
    /// read so no change is missed.
    async fn wait<T, F, Fut>(&self, process_id: &str, mut read: F) -> ProcessResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ProcessResult<Option<T>>>,
    {
        let mut changes = self.hub.as_ref().map(|hub| hub.subscribe(process_id));
        let mut backoff = AWAIT_BACKOFF_MIN;
        loop {
            if let Some(found) = read().await? {
                return Ok(found);
            }
            let Some(receiver) = changes.as_mut() else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(AWAIT_BACKOFF_MAX);
                continue;
            };
            let mut hub_gone = false;
            tokio::select! {
                changed = receiver.changed() => match changed {
                    Ok(()) => backoff = AWAIT_BACKOFF_MIN,
                    Err(_) => hub_gone = true,
                },
                () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(AWAIT_BACKOFF_MAX),
            }
            if hub_gone {
                // A closed channel would fire on every turn; poll instead.
                changes = None;
            }
        }
    }
}

/// The outcome if the process is terminal, `None` while it runs, and
/// `UnknownProcess` when there is no such row.
pub(crate) async fn terminal_output(
    registry: &dyn ProcessRegistry,
    process_id: &str,
) -> ProcessResult<Option<ProcessAwaitOutput>> {
    let record = registry
        .try_get_process(process_id)
        .await?
        .ok_or_else(|| ProcessError::unknown(process_id))?;
    Ok(record.status.await_output().cloned())
}
