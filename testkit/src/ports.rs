//! Loopback ports for the servers this harness starts, reserved so that
//! nothing else takes them between the pick and the server's bind.
//!
//! A port the kernel hands out for `bind(:0)` comes from the ephemeral
//! range, the same range every outgoing connection's source port comes
//! from, so it can be gone by the time the server binds it. Ports are
//! picked instead just below that range (where the kernel never picks a
//! source port), and each one is held, for as long as its server may use
//! it, by an exclusive lock on `<temp>/procreg-ports/<port>.lock`, which
//! every run of this harness honours and the kernel drops when the holder
//! dies. A port some other program listens on fails the bind probe and is
//! skipped.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many ports below the ephemeral range are candidates.
const WINDOW: u16 = 10_000;
/// Where the ephemeral range starts when the kernel does not say.
const EPHEMERAL_START: u16 = 32_768;
/// Lowest candidate port (above the well-known and common service ports).
const LOWEST: u16 = 10_000;

/// Loopback ports held for one server or cluster; released on drop.
#[derive(Debug)]
pub struct Ports {
    ports: Vec<u16>,
    _locks: Vec<File>,
}

impl Ports {
    /// `count` distinct ports nothing listens on, each locked for this
    /// process.
    pub fn reserve(count: usize) -> std::io::Result<Self> {
        let (low, high) = window();
        let span = u32::from(high - low);
        let dir = lock_dir()?;
        let mut reserved = Self {
            ports: Vec::with_capacity(count),
            _locks: Vec::with_capacity(count),
        };
        // Start somewhere different in each process so concurrent runs
        // rarely contend for the same locks.
        let start = seed() % span;
        for step in 0..span {
            if reserved.ports.len() == count {
                break;
            }
            let port = low + ((start + step) % span) as u16;
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("{port}.lock")))?;
            if fs4::FileExt::try_lock(&lock).is_err() {
                continue; // another run holds it
            }
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue; // someone else listens there
            }
            reserved.ports.push(port);
            reserved._locks.push(lock);
        }
        if reserved.ports.len() < count {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("no {count} free loopback ports in {low}..{high}"),
            ));
        }
        Ok(reserved)
    }

    /// The ports, in reservation order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether some other program now listens on one of these ports
    /// (probed while none of ours does).
    pub fn any_taken(&self) -> bool {
        self.ports
            .iter()
            .any(|&port| TcpListener::bind(("127.0.0.1", port)).is_err())
    }
}

/// The candidate ports: the `WINDOW` ports below the kernel's ephemeral
/// range (`/proc/sys/net/ipv4/ip_local_port_range`).
fn window() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(EPHEMERAL_START);
    let high = start.max(LOWEST + WINDOW);
    (high - WINDOW, high)
}

/// The shared dir of port locks.
fn lock_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join("procreg-ports");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn seed() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    nanos ^ std::process::id().wrapping_mul(2_654_435_761)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let first = Ports::reserve(3).expect("three ports");
        let second = Ports::reserve(3).expect("three more");
        let (low, high) = window();
        let mut all: Vec<u16> = first
            .ports()
            .iter()
            .chain(second.ports())
            .copied()
            .collect();
        assert!(all.iter().all(|port| (low..high).contains(port)), "{all:?}");
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6, "a held port is never handed out twice");
        assert!(!first.any_taken());
        let squatter = TcpListener::bind(("127.0.0.1", first.ports()[0])).unwrap();
        assert!(first.any_taken());
        drop(squatter);
    }
}
