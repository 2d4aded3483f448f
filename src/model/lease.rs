//! Fenced single-owner worker leases.

use serde::{Deserialize, Deserializer, Serialize};

/// Who holds (or wants) a lease: one running worker incarnation, and what
/// is known about whether it still runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct LeaseOwnerIdentity {
    /// Stable worker id.
    pub owner_id: String,
    /// Unique per start of the worker, so a restarted worker is a new owner.
    pub incarnation_id: String,
    /// What a claimant may use to prove this owner dead.
    pub liveness: LeaseOwnerLiveness,
}

/// What is recorded about an owner's process, so a claimant on the same
/// host can prove it gone (see `rules::lease::provably_dead`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LeaseOwnerLiveness {
    /// An OS process: dead when a claimant on the same host and boot finds
    /// its pid gone or running a process started at another time.
    LocalProcess {
        /// The host id the owner reported (chosen by the host).
        host_id: String,
        /// The kernel boot id when the owner started (empty: unknown).
        boot_id: String,
        /// The OS process id.
        pid: u32,
        /// The process start time as the OS reports it (empty: unknown).
        process_start: String,
    },
    /// Nothing checkable: never provably dead, only lease expiry frees it.
    #[default]
    Opaque,
}

impl LeaseOwnerIdentity {
    /// An owner whose death can never be proven (a remote or virtual worker).
    pub fn opaque(owner_id: impl Into<String>, incarnation_id: impl Into<String>) -> Self {
        Self {
            owner_id: owner_id.into(),
            incarnation_id: incarnation_id.into(),
            liveness: LeaseOwnerLiveness::Opaque,
        }
    }

    /// True when both name the same worker start, whatever liveness each
    /// carries: re-entry, renewal and the compare-and-set go by this.
    pub fn same_incarnation(&self, other: &LeaseOwnerIdentity) -> bool {
        self.owner_id == other.owner_id && self.incarnation_id == other.incarnation_id
    }
}

impl LeaseOwnerLiveness {
    /// The host id a local process reported; `None` when opaque.
    pub fn host_id(&self) -> Option<&str> {
        match self {
            Self::LocalProcess { host_id, .. } => Some(host_id),
            Self::Opaque => None,
        }
    }

    /// A local-process liveness with the given facts (for hosts that read
    /// them themselves, and for tests).
    pub fn local_process_with(
        host_id: impl Into<String>,
        boot_id: impl Into<String>,
        pid: u32,
        process_start: impl Into<String>,
    ) -> Self {
        Self::LocalProcess {
            host_id: host_id.into(),
            boot_id: boot_id.into(),
            pid,
            process_start: process_start.into(),
        }
    }
}

/// Reads both the current shape and the one releases before liveness
/// wrote (`{owner_id, incarnation, host, pid}`, kept in lease ledgers,
/// records and journals). An old owner becomes a local process with
/// unknown boot and start, which no claimant can ever prove dead. Release
/// fb6834a (and those before it) also accepted an empty `host`; such an
/// owner names no host a local process could be checked on, so it reads
/// as opaque (a local process needs a host id: one with an empty host
/// would fail validation, and the lease could never be renewed or named
/// as the observed holder of a reclaim).
impl<'de> Deserialize<'de> for LeaseOwnerIdentity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct AnyShape {
            owner_id: String,
            #[serde(alias = "incarnation")]
            incarnation_id: String,
            #[serde(default)]
            liveness: Option<LeaseOwnerLiveness>,
            #[serde(default)]
            host: Option<String>,
            #[serde(default)]
            pid: Option<u32>,
        }
        let any = AnyShape::deserialize(deserializer)?;
        let liveness = match (any.liveness, any.host) {
            (Some(liveness), _) => liveness,
            (None, Some(host)) if host.is_empty() => LeaseOwnerLiveness::Opaque,
            (None, Some(host)) => LeaseOwnerLiveness::LocalProcess {
                host_id: host,
                boot_id: String::new(),
                pid: any.pid.unwrap_or(0),
                process_start: String::new(),
            },
            (None, None) => LeaseOwnerLiveness::Opaque,
        };
        Ok(Self {
            owner_id: any.owner_id,
            incarnation_id: any.incarnation_id,
            liveness,
        })
    }
}

/// A held lease. `(owner, lease_token, fencing_token)` is what a worker presents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLease {
    /// The leased process.
    pub process_id: String,
    /// The holder.
    pub owner: LeaseOwnerIdentity,
    /// Opaque token, new on every acquisition.
    pub lease_token: String,
    /// Grows by one on every acquisition; never reused.
    pub fencing_token: u64,
    /// Registry clock at acquisition.
    pub claimed_at_epoch_ms: u64,
    /// Registry clock after which the lease has lapsed.
    pub expires_at_epoch_ms: u64,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProcessLeaseClaimOutcome {
    /// The caller holds the lease; present it from now on.
    Acquired(ProcessLease),
    /// Someone else holds it.
    Busy {
        /// The current holder.
        holder: ProcessLease,
    },
}

impl ProcessLeaseClaimOutcome {
    /// The acquired lease, if any.
    pub fn acquired(self) -> Option<ProcessLease> {
        match self {
            Self::Acquired(lease) => Some(lease),
            Self::Busy { .. } => None,
        }
    }
}

/// Releases a lease; fenced by the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLeaseCompletion {
    /// The leased process.
    pub process_id: String,
    /// The token of the lease being released.
    pub lease_token: String,
}

impl From<&ProcessLease> for ProcessLeaseCompletion {
    fn from(lease: &ProcessLease) -> Self {
        Self {
            process_id: lease.process_id.clone(),
            lease_token: lease.lease_token.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ProcessStarted;
    use crate::rules::lease::LeaseLedger;

    #[test]
    fn the_previous_owner_shape_still_reads_and_can_never_be_proven_dead() {
        let old = json!({ "owner_id": "w", "incarnation": "w-1", "host": "h", "pid": 7 });
        let owner: LeaseOwnerIdentity = serde_json::from_value(old).expect("old owner");
        assert_eq!(owner.owner_id, "w");
        assert_eq!(owner.incarnation_id, "w-1");
        assert_eq!(
            owner.liveness,
            LeaseOwnerLiveness::local_process_with("h", "", 7, "")
        );
        let claimant = LeaseOwnerIdentity {
            liveness: LeaseOwnerLiveness::local_process_with("h", "", 8, ""),
            ..LeaseOwnerIdentity::opaque("c", "c-1")
        };
        assert_eq!(crate::rules::lease::comparable(&owner, &claimant), None);
    }

    /// Release fb6834a accepted an owner without a host (`"host": ""`).
    #[test]
    fn a_previous_owner_without_a_host_reads_as_opaque_and_validates() {
        use crate::rules::validate::Validate;
        let old = json!({ "owner_id": "w", "incarnation": "w-1", "host": "", "pid": 0 });
        let owner: LeaseOwnerIdentity = serde_json::from_value(old).expect("old owner");
        assert_eq!(owner, LeaseOwnerIdentity::opaque("w", "w-1"));
        assert!(owner.validate().is_ok(), "its lease can be presented again");
    }

    #[test]
    fn a_lease_ledger_and_a_start_the_previous_release_stored_still_read() {
        let old_owner = json!({ "owner_id": "w", "incarnation": "w-1", "host": "h", "pid": 7 });
        let ledger: LeaseLedger = serde_json::from_value(json!({
            "lease": {
                "process_id": "p",
                "owner": old_owner,
                "lease_token": "t",
                "fencing_token": 3,
                "claimed_at_epoch_ms": 1,
                "expires_at_epoch_ms": 2
            },
            "last_fencing_token": 3
        }))
        .expect("old lease ledger");
        assert_eq!(ledger.last_fencing_token, 3);
        assert_eq!(ledger.lease.expect("lease").owner.incarnation_id, "w-1");
        let started: ProcessStarted = serde_json::from_value(json!({
            "owner": old_owner, "fencing_token": 3, "started_at_ms": 4
        }))
        .expect("old start");
        assert_eq!(started.started_at_ms, 4);
    }

    #[test]
    fn an_owner_without_liveness_is_opaque_and_the_new_shape_round_trips() {
        let bare: LeaseOwnerIdentity =
            serde_json::from_value(json!({ "owner_id": "w", "incarnation_id": "w-1" }))
                .expect("bare owner");
        assert_eq!(bare, LeaseOwnerIdentity::opaque("w", "w-1"));
        let owner = LeaseOwnerIdentity {
            liveness: LeaseOwnerLiveness::local_process_with("h", "b", 7, "99"),
            ..LeaseOwnerIdentity::opaque("w", "w-1")
        };
        let wire = serde_json::to_value(&owner).expect("serializes");
        assert_eq!(
            wire,
            json!({
                "owner_id": "w",
                "incarnation_id": "w-1",
                "liveness": {
                    "kind": "local_process", "host_id": "h", "boot_id": "b",
                    "pid": 7, "process_start": "99"
                }
            })
        );
        assert_eq!(
            serde_json::from_value::<LeaseOwnerIdentity>(wire).ok(),
            Some(owner)
        );
    }
}
