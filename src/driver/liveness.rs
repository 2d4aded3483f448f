//! Who a worker is, and the host facts that prove a lease holder dead.
//!
//! The decision itself is a pure rule (`rules::lease::provably_dead`);
//! this module reads the OS: the kernel boot id and a process's start
//! time (Linux `/proc`). Elsewhere nothing can be read, so identities are
//! opaque and nothing is ever proven dead.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::unix_now_ms;
use crate::model::{LeaseOwnerIdentity, LeaseOwnerLiveness};
use crate::rules::lease::provably_dead;

const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The facts about one host a claimant needs to prove a holder dead.
///
/// Only proof counts: a probe that cannot tell answers `None`, so a slow
/// or partitioned owner is never declared dead.
pub trait LivenessProbe: Send + Sync {
    /// The boot id of the host this probe inspects, if readable.
    fn boot_id(&self) -> Option<String>;

    /// Whether `pid` runs on this host as the process started at
    /// `process_start`: `Some(false)` when the pid is gone or now belongs
    /// to another process, `None` when it cannot be told.
    fn process_alive(&self, pid: u32, process_start: &str) -> Option<bool>;

    /// True only when `holder` is certainly gone as seen by `claimant` on
    /// this probe's host (the rule is `rules::lease::provably_dead`).
    fn is_provably_dead_for(
        &self,
        holder: &LeaseOwnerIdentity,
        claimant: &LeaseOwnerIdentity,
    ) -> bool {
        provably_dead(holder, claimant, self.boot_id().as_deref(), |pid, start| {
            self.process_alive(pid, start)
        })
    }
}

/// This host's process table.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalLiveness;

impl LocalLiveness {
    /// A probe for this host.
    pub fn new() -> Self {
        Self
    }
}

impl LivenessProbe for LocalLiveness {
    fn boot_id(&self) -> Option<String> {
        read_boot_id()
    }

    fn process_alive(&self, pid: u32, process_start: &str) -> Option<bool> {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => parse_process_start(&stat).map(|start| start == process_start),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && cfg!(target_os = "linux") => {
                Some(false)
            }
            Err(_) => None,
        }
    }
}

fn read_boot_id() -> Option<String> {
    std::fs::read_to_string(BOOT_ID_PATH)
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// The start time of `pid` (field 22 of `/proc/{pid}/stat`, in clock ticks
/// since boot), as text.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_start(&stat)
}

/// Field 22 of a stat line. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from its last `)`.
fn parse_process_start(stat: &str) -> Option<String> {
    let (_, after_name) = stat.rsplit_once(") ")?;
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

impl LeaseOwnerLiveness {
    /// This OS process on the host named `host_id`, or `None` when the boot
    /// id or the process start cannot be read (not Linux).
    pub fn current_local_process(host_id: impl Into<String>) -> Option<Self> {
        let boot_id = read_boot_id()?;
        let pid = std::process::id();
        let process_start = process_start(pid)?;
        Some(Self::local_process_with(
            host_id,
            boot_id,
            pid,
            process_start,
        ))
    }
}

impl LeaseOwnerIdentity {
    /// An owner running as this OS process on the host named `host_id`,
    /// provable dead by a claimant on the same host; opaque where the
    /// process facts cannot be read.
    pub fn local_process(
        owner_id: impl Into<String>,
        incarnation_id: impl Into<String>,
        host_id: impl Into<String>,
    ) -> Self {
        Self {
            owner_id: owner_id.into(),
            incarnation_id: incarnation_id.into(),
            liveness: LeaseOwnerLiveness::current_local_process(host_id)
                .unwrap_or(LeaseOwnerLiveness::Opaque),
        }
    }
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

/// An owner identity for this OS process on this host (local-process
/// liveness), with a fresh incarnation so two workers (or two starts of
/// one) are never the same owner.
pub fn local_owner(owner_id: impl Into<String>) -> LeaseOwnerIdentity {
    static STARTS: AtomicU64 = AtomicU64::new(0);
    let start = STARTS.fetch_add(1, Ordering::Relaxed);
    let incarnation = format!("{}-{}-{start}", std::process::id(), unix_now_ms());
    LeaseOwnerIdentity::local_process(owner_id, incarnation, host_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_even_with_odd_command_names() {
        let stat = "42 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20";
        assert_eq!(parse_process_start(stat).as_deref(), Some("777"));
        assert_eq!(parse_process_start("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_and_a_replaced_one_is_not() {
        let me = LeaseOwnerLiveness::current_local_process("h").expect("linux facts");
        let LeaseOwnerLiveness::LocalProcess {
            pid, process_start, ..
        } = me
        else {
            panic!("local process expected");
        };
        assert_eq!(LocalLiveness.process_alive(pid, &process_start), Some(true));
        assert_eq!(LocalLiveness.process_alive(pid, "other-start"), Some(false));
        assert_eq!(LocalLiveness.process_alive(u32::MAX, "1"), Some(false));
    }
}
