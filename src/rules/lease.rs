//! The lease state machine. A registry keeps the current lease (if any) and
//! the highest fencing token ever issued; these functions decide every move.

use serde::{Deserialize, Serialize};

use super::limits::check_ttl;
use super::validate::Validate;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    LeaseOwnerIdentity, ProcessLease, ProcessLeaseClaimOutcome, ProcessLeaseCompletion,
    ProcessRecord, ProcessStarted,
};

/// What a registry stores per process for leases: the current lease
/// (possibly expired) and the highest fencing token ever issued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseSlot {
    /// The stored lease, possibly expired.
    pub lease: Option<ProcessLease>,
    /// The highest fencing token issued so far (0 when never leased).
    pub last_fencing_token: u64,
}

impl LeaseSlot {
    /// What the lease rules decide on, at `now_ms`.
    pub fn state(&self, now_ms: u64) -> LeaseState<'_> {
        LeaseState {
            current: self.lease.as_ref(),
            last_fencing_token: self.last_fencing_token,
            now_ms,
        }
    }

    /// Keeps an acquired lease and its fence; true when anything changed.
    pub fn store_claim(&mut self, outcome: &ProcessLeaseClaimOutcome) -> bool {
        let ProcessLeaseClaimOutcome::Acquired(lease) = outcome else {
            return false;
        };
        self.last_fencing_token = lease.fencing_token;
        self.lease = Some(lease.clone());
        true
    }

    /// Releases the lease when `completion` names it; true when it did.
    pub fn release(&mut self, completion: &ProcessLeaseCompletion) -> bool {
        let matched = releases(self.lease.as_ref(), completion);
        if matched {
            self.lease = None;
        }
        matched
    }
}

/// Everything a lease decision needs to know about the stored state.
#[derive(Debug, Clone, Copy)]
pub struct LeaseState<'a> {
    /// The stored lease, possibly expired.
    pub current: Option<&'a ProcessLease>,
    /// The highest fencing token issued so far (0 when never leased).
    pub last_fencing_token: u64,
    /// The registry's clock.
    pub now_ms: u64,
}

impl LeaseState<'_> {
    fn live(&self) -> Option<&ProcessLease> {
        self.current
            .filter(|lease| lease.expires_at_epoch_ms > self.now_ms)
    }

    fn acquire(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        ttl_ms: u64,
        token: String,
    ) -> ProcessLease {
        ProcessLease {
            process_id: process_id.to_owned(),
            owner: owner.clone(),
            lease_token: token,
            fencing_token: self.last_fencing_token + 1,
            claimed_at_epoch_ms: self.now_ms,
            expires_at_epoch_ms: self.now_ms.saturating_add(ttl_ms),
        }
    }
}

fn check_claimable(
    record: &ProcessRecord,
    owner: &LeaseOwnerIdentity,
    ttl_ms: u64,
) -> ProcessResult<()> {
    check_ttl(ttl_ms)?;
    owner.validate()?;
    if record.is_terminal() {
        return Err(ProcessError::terminal(&record.id));
    }
    Ok(())
}

/// Claim: a free or lapsed lease is acquired with the next fence; the same
/// incarnation re-entering its live lease extends it with tokens unchanged;
/// anyone else gets `Busy`. An `Acquired` outcome is the lease to store.
pub fn claim(
    record: &ProcessRecord,
    state: LeaseState<'_>,
    owner: &LeaseOwnerIdentity,
    ttl_ms: u64,
    new_token: impl FnOnce() -> String,
) -> ProcessResult<ProcessLeaseClaimOutcome> {
    check_claimable(record, owner, ttl_ms)?;
    Ok(match state.live() {
        Some(held) if held.owner == *owner => ProcessLeaseClaimOutcome::Acquired(ProcessLease {
            expires_at_epoch_ms: state.now_ms.saturating_add(ttl_ms),
            ..held.clone()
        }),
        Some(held) => ProcessLeaseClaimOutcome::Busy {
            holder: held.clone(),
        },
        None => ProcessLeaseClaimOutcome::Acquired(state.acquire(
            &record.id,
            owner,
            ttl_ms,
            new_token(),
        )),
    })
}

/// Reclaim: compare-and-set on the observed holder. When the stored lease is
/// still exactly that holder (or was released), the caller acquires it with
/// the next fence; when it changed, the new holder comes back as `Busy`.
pub fn reclaim(
    record: &ProcessRecord,
    state: LeaseState<'_>,
    owner: &LeaseOwnerIdentity,
    observed_holder: &ProcessLease,
    ttl_ms: u64,
    new_token: impl FnOnce() -> String,
) -> ProcessResult<ProcessLeaseClaimOutcome> {
    check_claimable(record, owner, ttl_ms)?;
    if observed_holder.process_id != record.id {
        return Err(ProcessError::invalid(format!(
            "observed lease is for `{}`, not `{}`",
            observed_holder.process_id, record.id
        )));
    }
    Ok(match state.current {
        Some(current) if !same_lease(current, observed_holder) => ProcessLeaseClaimOutcome::Busy {
            holder: current.clone(),
        },
        _ => ProcessLeaseClaimOutcome::Acquired(state.acquire(
            &record.id,
            owner,
            ttl_ms,
            new_token(),
        )),
    })
}

/// Renew: the presented lease must be the stored one and unexpired.
pub fn renew(
    state: LeaseState<'_>,
    presented: &ProcessLease,
    ttl_ms: u64,
) -> ProcessResult<ProcessLease> {
    check_ttl(ttl_ms)?;
    let superseded = || ProcessError::LeaseSuperseded {
        process_id: presented.process_id.clone(),
    };
    let current = state.current.ok_or_else(superseded)?;
    if !same_lease(current, presented) {
        return Err(superseded());
    }
    if current.expires_at_epoch_ms <= state.now_ms {
        return Err(ProcessError::LeaseExpired {
            process_id: presented.process_id.clone(),
        });
    }
    Ok(ProcessLease {
        expires_at_epoch_ms: state.now_ms.saturating_add(ttl_ms),
        ..current.clone()
    })
}

/// The fence on `record_first_started`: only the holder of the live lease
/// may record that execution began. The presented owner and fencing token
/// must be the stored lease's; a token that was never issued, a superseded
/// one, or no lease at all is `LeaseSuperseded`, a lapsed one `LeaseExpired`.
pub fn check_started_fence(
    process_id: &str,
    state: LeaseState<'_>,
    started: &ProcessStarted,
) -> ProcessResult<()> {
    let held = state.current.filter(|lease| {
        lease.owner == started.owner && lease.fencing_token == started.fencing_token
    });
    match held {
        None => Err(ProcessError::LeaseSuperseded {
            process_id: process_id.to_owned(),
        }),
        Some(lease) if lease.expires_at_epoch_ms <= state.now_ms => {
            Err(ProcessError::LeaseExpired {
                process_id: process_id.to_owned(),
            })
        }
        Some(_) => Ok(()),
    }
}

/// Release: true when the stored lease carries the completion's token and
/// must be cleared; a stale or repeated completion changes nothing.
pub fn releases(current: Option<&ProcessLease>, completion: &ProcessLeaseCompletion) -> bool {
    current.is_some_and(|lease| lease.lease_token == completion.lease_token)
}

fn same_lease(a: &ProcessLease, b: &ProcessLease) -> bool {
    a.owner == b.owner && a.lease_token == b.lease_token && a.fencing_token == b.fencing_token
}
