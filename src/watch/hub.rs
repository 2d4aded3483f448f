//! In-process change notifications per process id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// Per-process version counters that wake in-process waiters.
///
/// Waiters subscribe *before* reading the row, then re-read after every
/// bump, so a change between read and wait is never lost. Entries nobody
/// listens to are dropped on the next notify.
#[derive(Clone, Default)]
pub struct ProcessChangeHub {
    channels: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl std::fmt::Debug for ProcessChangeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessChangeHub").finish_non_exhaustive()
    }
}

impl ProcessChangeHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver that changes whenever `process_id` is notified.
    pub fn subscribe(&self, process_id: &str) -> watch::Receiver<u64> {
        self.channels()
            .entry(process_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Bumps `process_id`'s version; drops the entry if nobody listens.
    pub fn notify(&self, process_id: &str) {
        let mut channels = self.channels();
        let Some(sender) = channels.get(process_id) else {
            return;
        };
        if sender.receiver_count() == 0 {
            channels.remove(process_id);
        } else {
            sender.send_modify(|version| *version = version.wrapping_add(1));
        }
    }

    /// Bumps every process id somebody listens to, dropping the entries
    /// nobody does: for a change whose rows the caller cannot name (a
    /// bump only makes a waiter re-read, so an extra one is harmless).
    pub fn notify_all(&self) {
        self.channels().retain(|_, sender| {
            let listened = sender.receiver_count() > 0;
            if listened {
                sender.send_modify(|version| *version = version.wrapping_add(1));
            }
            listened
        });
    }

    /// How many process ids currently have an entry.
    pub fn tracked_processes(&self) -> usize {
        self.channels().len()
    }
}
