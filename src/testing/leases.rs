//! Fenced worker leases: claim, re-entry, renew, reclaim, release and expiry.

use super::support::{
    assert_unchanged_after, assert_unknown, assert_within, complete, expect_unknown, owner,
    refused, register_typed, snapshot, unique_id, ErrorKind, Namespace, LONG_TTL_MS,
    PAST_SHORT_TTL_MS, SHORT_TTL_MS,
};
use super::ConformanceTarget;
use crate::model::{
    LeaseOwnerIdentity, ProcessLease, ProcessLeaseClaimOutcome, ProcessLeaseCompletion,
};

async fn claim(
    target: &ConformanceTarget,
    process_id: &str,
    owner: &LeaseOwnerIdentity,
    ttl_ms: u64,
) -> ProcessLeaseClaimOutcome {
    target
        .registry
        .claim_process_lease(process_id, owner, ttl_ms)
        .await
        .unwrap_or_else(|err| panic!("claiming `{process_id}` failed: {err}"))
}

async fn acquire(
    target: &ConformanceTarget,
    process_id: &str,
    owner: &LeaseOwnerIdentity,
    ttl_ms: u64,
) -> ProcessLease {
    match claim(target, process_id, owner, ttl_ms).await {
        ProcessLeaseClaimOutcome::Acquired(lease) => lease,
        ProcessLeaseClaimOutcome::Busy { holder } => {
            panic!("claiming `{process_id}` found it busy with {holder:?}")
        }
    }
}

async fn stored_lease(target: &ConformanceTarget, process_id: &str) -> Option<ProcessLease> {
    target
        .registry
        .get_process_lease(process_id)
        .await
        .unwrap_or_else(|err| panic!("get_process_lease(`{process_id}`) failed: {err}"))
}

async fn release(target: &ConformanceTarget, lease: &ProcessLease) {
    target
        .registry
        .complete_process_lease(&ProcessLeaseCompletion::from(lease))
        .await
        .unwrap_or_else(|err| {
            panic!(
                "releasing the lease on `{}` failed: {err}",
                lease.process_id
            )
        });
}

fn expect_busy(outcome: ProcessLeaseClaimOutcome, holder: &ProcessLease, what: &str) {
    assert_eq!(
        outcome,
        ProcessLeaseClaimOutcome::Busy {
            holder: holder.clone()
        },
        "{what}: expected Busy naming the current holder"
    );
}

/// A free lease is acquired with fencing token 1 and the registry's times;
/// another owner then finds it busy, naming the holder.
pub async fn claim_acquires_then_reports_busy(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-claim");
    let id = ns.id("p");
    register_typed(target, &id).await;
    let worker = owner("worker-a");

    let before = target.clock.now_ms();
    let lease = acquire(target, &id, &worker, LONG_TTL_MS).await;
    let after = target.clock.now_ms();
    assert_eq!(lease.process_id, id);
    assert_eq!(lease.owner, worker);
    assert_eq!(
        lease.fencing_token, 1,
        "the first acquisition has fencing token 1"
    );
    assert!(!lease.lease_token.is_empty(), "a lease token is issued");
    assert_within(
        lease.claimed_at_epoch_ms,
        before,
        after,
        "claimed_at_epoch_ms",
    );
    assert_eq!(
        lease.expires_at_epoch_ms,
        lease.claimed_at_epoch_ms + LONG_TTL_MS
    );
    assert_eq!(stored_lease(target, &id).await, Some(lease.clone()));

    let unchanged = snapshot(target, &id).await;
    let rival = owner("worker-b");
    expect_busy(
        claim(target, &id, &rival, LONG_TTL_MS).await,
        &lease,
        "a rival claim",
    );
    assert_unchanged_after(target, &id, &unchanged, "a busy claim").await;

    let restarted = LeaseOwnerIdentity {
        incarnation: unique_id("incarnation"),
        ..worker
    };
    expect_busy(
        claim(target, &id, &restarted, LONG_TTL_MS).await,
        &lease,
        "a new incarnation of the same worker",
    );
    assert_unchanged_after(target, &id, &unchanged, "a busy claim").await;
}

/// The holding incarnation re-entering its live lease keeps both tokens and
/// gets a later expiry.
pub async fn same_incarnation_reentry_extends(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-reentry");
    let id = ns.id("p");
    register_typed(target, &id).await;
    let worker = owner("worker");
    let lease = acquire(target, &id, &worker, LONG_TTL_MS).await;

    let before = target.clock.now_ms();
    let again = acquire(target, &id, &worker, 2 * LONG_TTL_MS).await;
    let after = target.clock.now_ms();
    assert_eq!(
        again.lease_token, lease.lease_token,
        "re-entry keeps the lease token"
    );
    assert_eq!(
        again.fencing_token, lease.fencing_token,
        "re-entry keeps the fencing token"
    );
    assert_eq!(again.owner, worker);
    assert_within(
        again.expires_at_epoch_ms,
        before + 2 * LONG_TTL_MS,
        after + 2 * LONG_TTL_MS,
        "expiry after re-entry",
    );
    assert!(again.expires_at_epoch_ms > lease.expires_at_epoch_ms);
    assert_eq!(stored_lease(target, &id).await, Some(again));
}

/// Renewing the held lease extends it; a zero TTL, a lease that was never
/// issued, a released lease and a superseded lease are refused.
pub async fn renew_extends_and_refuses_superseded(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-renew");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let worker = owner("worker-a");
    let lease = acquire(target, &id, &worker, LONG_TTL_MS).await;

    let before = target.clock.now_ms();
    let renewed = registry
        .renew_process_lease(&lease, 2 * LONG_TTL_MS)
        .await
        .expect("renew_process_lease");
    let after = target.clock.now_ms();
    assert_eq!(renewed.lease_token, lease.lease_token);
    assert_eq!(renewed.fencing_token, lease.fencing_token);
    assert_eq!(renewed.owner, lease.owner);
    assert_eq!(renewed.process_id, id);
    assert_within(
        renewed.expires_at_epoch_ms,
        before + 2 * LONG_TTL_MS,
        after + 2 * LONG_TTL_MS,
        "expiry after renewal",
    );
    assert_eq!(stored_lease(target, &id).await, Some(renewed.clone()));
    let renewed_again = registry
        .renew_process_lease(&lease, 2 * LONG_TTL_MS)
        .await
        .expect("renewing with the originally issued lease");
    assert_eq!(renewed_again.lease_token, lease.lease_token);

    let unchanged = snapshot(target, &id).await;
    let result = registry.renew_process_lease(&lease, 0).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::InvalidInput,
        "renewing with a zero TTL",
    )
    .await;

    let forgeries = [
        (
            ProcessLease {
                lease_token: unique_id("forged"),
                ..lease.clone()
            },
            "renewing another token",
        ),
        (
            ProcessLease {
                fencing_token: lease.fencing_token + 1,
                ..lease.clone()
            },
            "renewing another fence",
        ),
        (
            ProcessLease {
                owner: owner("impostor"),
                ..lease.clone()
            },
            "renewing as another owner",
        ),
    ];
    for (forged, what) in forgeries {
        let result = registry.renew_process_lease(&forged, LONG_TTL_MS).await;
        refused(
            target,
            &id,
            &unchanged,
            result,
            ErrorKind::LeaseSuperseded,
            what,
        )
        .await;
    }

    let rival = owner("worker-b");
    let taken = match registry
        .reclaim_process_lease(&id, &rival, &renewed_again, LONG_TTL_MS)
        .await
        .expect("reclaim_process_lease")
    {
        ProcessLeaseClaimOutcome::Acquired(taken) => taken,
        busy => panic!("reclaiming the observed holder must succeed, got {busy:?}"),
    };
    let unchanged = snapshot(target, &id).await;
    let result = registry.renew_process_lease(&lease, LONG_TTL_MS).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::LeaseSuperseded,
        "renewing a lease taken over by reclaim",
    )
    .await;

    release(target, &taken).await;
    let unchanged = snapshot(target, &id).await;
    let result = registry.renew_process_lease(&taken, LONG_TTL_MS).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::LeaseSuperseded,
        "renewing a released lease",
    )
    .await;
}

/// Releasing clears the lease; releasing again succeeds; the next claim
/// bumps the fence. A stale completion cannot release the live lease.
pub async fn complete_lease_releases_idempotently(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-complete");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let first_owner = owner("worker-a");
    let first = acquire(target, &id, &first_owner, LONG_TTL_MS).await;

    release(target, &first).await;
    assert_eq!(
        stored_lease(target, &id).await,
        None,
        "a released lease is gone"
    );
    let unchanged = snapshot(target, &id).await;
    release(target, &first).await;
    assert_unchanged_after(
        target,
        &id,
        &unchanged,
        "releasing an already-released lease",
    )
    .await;

    let second_owner = owner("worker-b");
    let second = acquire(target, &id, &second_owner, LONG_TTL_MS).await;
    assert_eq!(second.fencing_token, 2, "every acquisition bumps the fence");
    assert_ne!(
        second.lease_token, first.lease_token,
        "every acquisition issues a new token"
    );

    let unchanged = snapshot(target, &id).await;
    release(target, &first).await;
    assert_unchanged_after(target, &id, &unchanged, "a stale completion").await;
    registry
        .complete_process_lease(&ProcessLeaseCompletion {
            process_id: id.clone(),
            lease_token: unique_id("never-issued"),
        })
        .await
        .expect("completing with a token never issued");
    assert_unchanged_after(target, &id, &unchanged, "a completion with a foreign token").await;
    assert_eq!(stored_lease(target, &id).await, Some(second.clone()));

    let re_entered = acquire(target, &id, &second_owner, LONG_TTL_MS).await;
    assert_eq!(re_entered.fencing_token, 2);
    release(target, &second).await;
    assert_eq!(stored_lease(target, &id).await, None);
    let third = acquire(target, &id, &first_owner, LONG_TTL_MS).await;
    assert_eq!(
        third.fencing_token, 3,
        "a former holder claiming again gets a new fence"
    );
}

/// Reclaim is a compare-and-set on the observed holder: it succeeds with
/// the next fence while that holder is current, and reports the new holder
/// as busy once it changed.
pub async fn reclaim_compares_and_sets(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-reclaim");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let dead = owner("dead-worker");
    let observed = acquire(target, &id, &dead, LONG_TTL_MS).await;

    let unchanged = snapshot(target, &id).await;
    let result = registry
        .reclaim_process_lease(&id, &owner("x"), &observed, 0)
        .await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::InvalidInput,
        "reclaiming with a zero TTL",
    )
    .await;

    let rescuer = owner("rescuer");
    let before = target.clock.now_ms();
    let outcome = registry
        .reclaim_process_lease(&id, &rescuer, &observed, LONG_TTL_MS)
        .await
        .expect("reclaim_process_lease");
    let after = target.clock.now_ms();
    let taken = match outcome {
        ProcessLeaseClaimOutcome::Acquired(taken) => taken,
        busy => panic!("reclaiming the current holder must succeed, got {busy:?}"),
    };
    assert_eq!(taken.owner, rescuer);
    assert_eq!(taken.process_id, id);
    assert_eq!(
        taken.fencing_token,
        observed.fencing_token + 1,
        "reclaim bumps the fence"
    );
    assert_ne!(
        taken.lease_token, observed.lease_token,
        "reclaim issues a new token"
    );
    assert_within(
        taken.claimed_at_epoch_ms,
        before,
        after,
        "claimed_at after reclaim",
    );
    assert_eq!(
        taken.expires_at_epoch_ms,
        taken.claimed_at_epoch_ms + LONG_TTL_MS
    );
    assert_eq!(stored_lease(target, &id).await, Some(taken.clone()));

    let unchanged = snapshot(target, &id).await;
    let late = owner("late-rescuer");
    let outcome = registry
        .reclaim_process_lease(&id, &late, &observed, LONG_TTL_MS)
        .await
        .expect("a stale reclaim");
    expect_busy(outcome, &taken, "reclaiming a holder that already changed");
    assert_unchanged_after(target, &id, &unchanged, "a failed reclaim").await;

    release(target, &observed).await;
    assert_unchanged_after(
        target,
        &id,
        &unchanged,
        "the dead holder's stale completion",
    )
    .await;

    let next = owner("next");
    let outcome = registry
        .reclaim_process_lease(&id, &next, &taken, LONG_TTL_MS)
        .await
        .expect("reclaim of the current holder");
    let next_lease = outcome
        .acquired()
        .expect("reclaiming the current holder succeeds");
    assert_eq!(next_lease.fencing_token, taken.fencing_token + 1);
}

/// A terminal process refuses claims and reclaims; a zero TTL is refused.
pub async fn claim_refusals_change_nothing(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-refusals");
    let registry = &target.registry;

    let id = ns.id("live");
    register_typed(target, &id).await;
    let unchanged = snapshot(target, &id).await;
    let result = registry.claim_process_lease(&id, &owner("w"), 0).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::InvalidInput,
        "claiming with a zero TTL",
    )
    .await;

    let worker = owner("worker");
    let lease = acquire(target, &id, &worker, LONG_TTL_MS).await;
    let unchanged = snapshot(target, &id).await;
    let result = registry.claim_process_lease(&id, &worker, 0).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::InvalidInput,
        "re-entering with a zero TTL",
    )
    .await;

    let ended = ns.id("terminal");
    register_typed(target, &ended).await;
    complete(target, &ended).await;
    let unchanged = snapshot(target, &ended).await;
    let result = registry
        .claim_process_lease(&ended, &worker, LONG_TTL_MS)
        .await;
    refused(
        target,
        &ended,
        &unchanged,
        result,
        ErrorKind::AlreadyTerminal,
        "claiming a terminal process",
    )
    .await;

    let held = ns.id("held-then-terminal");
    register_typed(target, &held).await;
    let held_lease = acquire(target, &held, &worker, LONG_TTL_MS).await;
    complete(target, &held).await;
    let unchanged = snapshot(target, &held).await;
    let result = registry
        .claim_process_lease(&held, &worker, LONG_TTL_MS)
        .await;
    refused(
        target,
        &held,
        &unchanged,
        result,
        ErrorKind::AlreadyTerminal,
        "re-entering a lease on a terminal process",
    )
    .await;
    let result = registry
        .reclaim_process_lease(&held, &owner("rescuer"), &held_lease, LONG_TTL_MS)
        .await;
    refused(
        target,
        &held,
        &unchanged,
        result,
        ErrorKind::AlreadyTerminal,
        "reclaiming a lease on a terminal process",
    )
    .await;
    assert_eq!(stored_lease(target, &id).await, Some(lease));
}

/// An expired lease is still readable raw, cannot be renewed, and is taken
/// by the next claimant with the next fence; the old holder is then
/// superseded and its completion is a no-op. Moves the clock.
pub async fn expired_lease_is_claimable(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-expiry");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let old_owner = owner("old");
    let old = acquire(target, &id, &old_owner, SHORT_TTL_MS).await;

    target.clock.advance(PAST_SHORT_TTL_MS).await;
    let now = target.clock.now_ms();
    let raw = stored_lease(target, &id).await;
    assert_eq!(
        raw,
        Some(old.clone()),
        "get_process_lease shows the expired lease as stored"
    );
    assert!(
        old.expires_at_epoch_ms <= now,
        "the lease has expired by the registry's clock"
    );

    let unchanged = snapshot(target, &id).await;
    let result = registry.renew_process_lease(&old, LONG_TTL_MS).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::LeaseExpired,
        "renewing an expired lease",
    )
    .await;

    let new_owner = owner("new");
    let new = acquire(target, &id, &new_owner, LONG_TTL_MS).await;
    assert_eq!(new.owner, new_owner);
    assert_eq!(
        new.fencing_token,
        old.fencing_token + 1,
        "claiming a lapsed lease bumps the fence"
    );
    assert_ne!(new.lease_token, old.lease_token);
    assert!(new.claimed_at_epoch_ms >= old.expires_at_epoch_ms);

    let unchanged = snapshot(target, &id).await;
    let result = registry.renew_process_lease(&old, LONG_TTL_MS).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::LeaseSuperseded,
        "renewing a lease that lapsed and was claimed",
    )
    .await;
    release(target, &old).await;
    assert_unchanged_after(target, &id, &unchanged, "the lapsed holder's completion").await;
    expect_busy(
        claim(target, &id, &old_owner, LONG_TTL_MS).await,
        &new,
        "the lapsed holder claiming again",
    );

    let reentry = ns.id("reentry");
    register_typed(target, &reentry).await;
    let worker = owner("worker");
    let lapsed = acquire(target, &reentry, &worker, SHORT_TTL_MS).await;
    target.clock.advance(PAST_SHORT_TTL_MS).await;
    let fresh = acquire(target, &reentry, &worker, LONG_TTL_MS).await;
    assert_eq!(
        fresh.fencing_token,
        lapsed.fencing_token + 1,
        "re-claiming one's own lapsed lease is a new acquisition"
    );
    assert_ne!(fresh.lease_token, lapsed.lease_token);
}

/// Every lease method refuses an unknown id, except `get_process_lease`,
/// which reads `None`.
pub async fn leases_unknown_process(target: &ConformanceTarget) {
    let registry = &target.registry;
    let id = unique_id("lease-unknown");
    let worker = owner("worker");
    let phantom = ProcessLease {
        process_id: id.clone(),
        owner: worker.clone(),
        lease_token: unique_id("token"),
        fencing_token: 1,
        claimed_at_epoch_ms: target.clock.now_ms(),
        expires_at_epoch_ms: target.clock.now_ms() + LONG_TTL_MS,
    };
    expect_unknown(
        registry
            .claim_process_lease(&id, &worker, LONG_TTL_MS)
            .await,
        &id,
        "claim_process_lease",
    );
    expect_unknown(
        registry
            .reclaim_process_lease(&id, &owner("rescuer"), &phantom, LONG_TTL_MS)
            .await,
        &id,
        "reclaim_process_lease",
    );
    expect_unknown(
        registry.renew_process_lease(&phantom, LONG_TTL_MS).await,
        &id,
        "renew_process_lease",
    );
    expect_unknown(
        registry
            .complete_process_lease(&ProcessLeaseCompletion::from(&phantom))
            .await,
        &id,
        "complete_process_lease",
    );
    assert_eq!(registry.get_process_lease(&id).await, Ok(None));
    assert_unknown(target, &id, "after refused lease calls").await;
}
