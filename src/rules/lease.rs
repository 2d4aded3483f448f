//! The lease state machine. A registry keeps the current lease (if any) and
//! the highest fencing token ever issued for the process id (kept through
//! prune, so a re-registered id never sees a token again); these functions
//! decide every move, including when a holder is provably dead.

use serde::{Deserialize, Serialize};

use super::limits::check_ttl;
use super::validate::Validate;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    LeaseOwnerIdentity, LeaseOwnerLiveness, ProcessLease, ProcessLeaseClaimOutcome,
    ProcessLeaseCompletion, ProcessRecord, ProcessStarted,
};

/// What a registry stores per process for leases: the current lease
/// (possibly expired) and the highest fencing token ever issued.
/// (Its JSON is unchanged from when it was called `LeaseSlot`.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLedger {
    /// The stored lease, possibly expired.
    pub lease: Option<ProcessLease>,
    /// The highest fencing token issued so far (0 when never leased).
    pub last_fencing_token: u64,
}

/// The name [`LeaseLedger`] had before "slot" was kept for positions in
/// a keyed set.
#[deprecated(note = "renamed `LeaseLedger`")]
pub type LeaseSlot = LeaseLedger;

impl LeaseLedger {
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

    /// What survives a prune of the process: the fence high-water alone (no
    /// lease), or `None` when no lease was ever issued. A later claim on a
    /// re-registered id then continues above every token issued before, so
    /// a system fencing on the highest token seen admits the new one.
    pub fn after_prune(&self) -> Option<LeaseLedger> {
        (self.last_fencing_token > 0).then_some(LeaseLedger {
            lease: None,
            last_fencing_token: self.last_fencing_token,
        })
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
        Some(held) if held.owner.same_incarnation(owner) => {
            ProcessLeaseClaimOutcome::Acquired(ProcessLease {
                expires_at_epoch_ms: state.now_ms.saturating_add(ttl_ms),
                ..held.clone()
            })
        }
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

/// Reclaim: a free or lapsed lease is acquired with the next fence, as by
/// a claim. A live one is taken over only when it is still exactly the
/// observed holder (owner with its liveness, lease token, fencing token:
/// compare-and-set) and `holder_dead` proves that stored holder dead
/// ([`provably_dead`]); otherwise the current holder comes back as `Busy`.
pub fn reclaim(
    record: &ProcessRecord,
    state: LeaseState<'_>,
    owner: &LeaseOwnerIdentity,
    observed_holder: &ProcessLease,
    ttl_ms: u64,
    holder_dead: impl FnOnce(&ProcessLease) -> bool,
    new_token: impl FnOnce() -> String,
) -> ProcessResult<ProcessLeaseClaimOutcome> {
    check_claimable(record, owner, ttl_ms)?;
    if observed_holder.process_id != record.id {
        return Err(ProcessError::invalid(format!(
            "observed lease is for `{}`, not `{}`",
            observed_holder.process_id, record.id
        )));
    }
    Ok(match state.live() {
        Some(current)
            if !(same_lease(current, observed_holder)
                && current.owner.liveness == observed_holder.owner.liveness
                && holder_dead(current)) =>
        {
            ProcessLeaseClaimOutcome::Busy {
                holder: current.clone(),
            }
        }
        _ => ProcessLeaseClaimOutcome::Acquired(state.acquire(
            &record.id,
            owner,
            ttl_ms,
            new_token(),
        )),
    })
}

/// The part of the death proof that needs no process table: both are local
/// processes with a known boot and start, reported on the same host id and
/// boot. Answers the holder's pid, start and boot to probe; `None` means no
/// claimant can ever prove this holder dead (another host or boot, an
/// opaque side, or an identity stored before liveness was recorded).
pub fn comparable<'a>(
    holder: &'a LeaseOwnerIdentity,
    claimant: &LeaseOwnerIdentity,
) -> Option<(u32, &'a str, &'a str)> {
    let (
        LeaseOwnerLiveness::LocalProcess {
            host_id,
            boot_id,
            pid,
            process_start,
        },
        LeaseOwnerLiveness::LocalProcess {
            host_id: claimant_host,
            boot_id: claimant_boot,
            ..
        },
    ) = (&holder.liveness, &claimant.liveness)
    else {
        return None;
    };
    let known = !boot_id.is_empty() && !process_start.is_empty();
    (known && host_id == claimant_host && boot_id == claimant_boot).then_some((
        *pid,
        process_start.as_str(),
        boot_id.as_str(),
    ))
}

/// Whether `holder` is provably dead for `claimant`, probing the host the
/// caller runs on: the two are [`comparable`], this host's boot is theirs
/// (so the claimant really is here), and the holder's pid is gone or runs
/// a process started at another time (`process_alive` answers
/// `Some(false)`). Anything unknown is "not proven".
pub fn provably_dead(
    holder: &LeaseOwnerIdentity,
    claimant: &LeaseOwnerIdentity,
    host_boot_id: Option<&str>,
    process_alive: impl FnOnce(u32, &str) -> Option<bool>,
) -> bool {
    let Some((pid, start, boot)) = comparable(holder, claimant) else {
        return false;
    };
    host_boot_id == Some(boot) && process_alive(pid, start) == Some(false)
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

/// Who may record the first start: anyone, unless another owner holds a
/// live lease (then `LeaseSuperseded`). No lease is required: a start is a
/// fact about the process (first writer wins), not a fenced write.
pub fn check_started_writer(
    process_id: &str,
    state: LeaseState<'_>,
    started: &ProcessStarted,
) -> ProcessResult<()> {
    match state.live() {
        Some(held) if !held.owner.same_incarnation(&started.owner) => {
            Err(ProcessError::LeaseSuperseded {
                process_id: process_id.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// Release: true when the stored lease carries the completion's token and
/// must be cleared; a stale or repeated completion changes nothing.
pub fn releases(current: Option<&ProcessLease>, completion: &ProcessLeaseCompletion) -> bool {
    current.is_some_and(|lease| lease.lease_token == completion.lease_token)
}

fn same_lease(a: &ProcessLease, b: &ProcessLease) -> bool {
    a.owner.same_incarnation(&b.owner)
        && a.lease_token == b.lease_token
        && a.fencing_token == b.fencing_token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(host: &str, boot: &str, pid: u32, start: &str) -> LeaseOwnerIdentity {
        LeaseOwnerIdentity {
            liveness: LeaseOwnerLiveness::local_process_with(host, boot, pid, start),
            ..LeaseOwnerIdentity::opaque("o", format!("{host}-{boot}-{pid}"))
        }
    }

    #[test]
    fn only_a_same_host_same_boot_gone_process_is_provably_dead() {
        let holder = local("h", "b", 10, "100");
        let claimant = local("h", "b", 11, "200");
        let gone = |_: u32, _: &str| Some(false);
        assert!(provably_dead(&holder, &claimant, Some("b"), gone));
        // Alive, or the table cannot tell.
        assert!(!provably_dead(&holder, &claimant, Some("b"), |_, _| Some(
            true
        )));
        assert!(!provably_dead(&holder, &claimant, Some("b"), |_, _| None));
        // The claimant's boot is not this host's.
        assert!(!provably_dead(&holder, &claimant, Some("other"), gone));
        assert!(!provably_dead(&holder, &claimant, None, gone));
        // Another host or boot, or an opaque side.
        assert!(!provably_dead(
            &holder,
            &local("h2", "b", 11, "2"),
            Some("b"),
            gone
        ));
        assert!(!provably_dead(
            &holder,
            &local("h", "b2", 11, "2"),
            Some("b2"),
            gone
        ));
        let opaque = LeaseOwnerIdentity::opaque("x", "y");
        assert!(!provably_dead(&holder, &opaque, Some("b"), gone));
        assert!(!provably_dead(&opaque, &claimant, Some("b"), gone));
        // Unknown boot or start (identities stored before liveness).
        assert!(!provably_dead(
            &local("h", "", 10, ""),
            &claimant,
            Some(""),
            gone
        ));
    }
}
