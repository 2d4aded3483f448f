//! Who a worker is, and whether a lease holder is provably dead.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::unix_now_ms;
use crate::model::LeaseOwnerIdentity;

/// Decides whether a lease holder can never finish its work.
///
/// Only proof counts: a probe that cannot tell must answer `false`, so a
/// slow or partitioned owner is never declared dead.
pub trait LivenessProbe: Send + Sync {
    /// True only when `owner` is certainly gone.
    fn is_provably_dead(&self, owner: &LeaseOwnerIdentity) -> bool;
}

/// Proof from this host's process table: the owner ran on this host and
/// its pid no longer exists. Holders on other hosts are never proven dead.
#[derive(Debug, Clone)]
pub struct LocalLiveness {
    host: String,
}

impl LocalLiveness {
    /// A probe for this host.
    pub fn new() -> Self {
        Self { host: host_name() }
    }
}

impl Default for LocalLiveness {
    fn default() -> Self {
        Self::new()
    }
}

impl LivenessProbe for LocalLiveness {
    fn is_provably_dead(&self, owner: &LeaseOwnerIdentity) -> bool {
        owner.host == self.host && !pid_exists(owner.pid)
    }
}

#[cfg(target_os = "linux")]
fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Without a process table to read, nothing is ever proven dead.
#[cfg(not(target_os = "linux"))]
fn pid_exists(_pid: u32) -> bool {
    true
}

/// This machine's host name (`localhost` when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// An owner identity for this OS process, with a fresh incarnation so two
/// workers (or two starts of one) are never the same owner.
pub fn local_owner(owner_id: impl Into<String>) -> LeaseOwnerIdentity {
    static STARTS: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let start = STARTS.fetch_add(1, Ordering::Relaxed);
    LeaseOwnerIdentity {
        owner_id: owner_id.into(),
        incarnation: format!("{pid}-{}-{start}", unix_now_ms()),
        host: host_name(),
        pid,
    }
}
