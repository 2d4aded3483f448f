//! Fenced single-owner worker leases.

use serde::{Deserialize, Serialize};

/// Who holds (or wants) a lease: one running worker incarnation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseOwnerIdentity {
    /// Stable worker id.
    pub owner_id: String,
    /// Unique per start of the worker, so a restarted worker is a new owner.
    pub incarnation: String,
    /// Host the worker runs on.
    pub host: String,
    /// OS process id on that host.
    pub pid: u32,
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
