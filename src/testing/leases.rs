//! Fenced worker leases: claim, re-entry, renew, reclaim, release and expiry.

use super::support::{
    assert_unchanged_after, assert_unknown, assert_within, complete, dead_local_owner,
    expect_unknown, live_local_owner, owner, refused, register_typed, snapshot, unique_id,
    ErrorKind, Namespace, CONFORMANCE_HOST, LONG_TTL_MS, PAST_SHORT_TTL_MS, SHORT_TTL_MS,
};
use super::ConformanceTarget;
use crate::model::{
    LeaseOwnerIdentity, LeaseOwnerLiveness, ProcessLease, ProcessLeaseClaimOutcome,
    ProcessLeaseCompletion,
};
use crate::rules::limits::MAX_LEASE_TTL_MS;

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
        incarnation_id: unique_id("incarnation"),
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

/// Renewing the held lease extends it; a lease that was never issued, a
/// released lease and a superseded lease are refused, and the refusal says
/// "missing or expired" (the text hosts ported from the original match).
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
        let error = refused(
            target,
            &id,
            &unchanged,
            result,
            ErrorKind::LeaseSuperseded,
            what,
        )
        .await;
        assert!(
            error.to_string().contains("missing or expired"),
            "{what}: the refusal must say \"missing or expired\", said `{error}`"
        );
    }

    // A renewal with a TTL of 0 lapses the lease at once; a rival takes it.
    registry
        .renew_process_lease(&lease, 0)
        .await
        .expect("renewing with a zero TTL");
    let rival = owner("worker-b");
    let taken = acquire(target, &id, &rival, LONG_TTL_MS).await;
    assert_eq!(taken.fencing_token, lease.fencing_token + 1);
    let unchanged = snapshot(target, &id).await;
    let result = registry.renew_process_lease(&lease, LONG_TTL_MS).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::LeaseSuperseded,
        "renewing a lease another owner took over",
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

/// The death-proof vectors use this process's own facts; without them
/// (no `/proc`) they fail rather than pass untested.
const NEEDS_PROCESS_FACTS: &str =
    "this vector needs a host whose process facts can be read (Linux /proc)";

/// Reclaim takes over a live lease whose observed holder is provably dead
/// (here: this host and boot, its process replaced) with the next fence,
/// as a compare-and-set: once the holder changed, a stale reclaim reports
/// the new holder as busy. Needs a host whose process facts can be read.
pub async fn reclaim_compares_and_sets(target: &ConformanceTarget) {
    let (Some(dead), Some(rescuer), Some(late)) = (
        dead_local_owner("dead-worker", CONFORMANCE_HOST),
        live_local_owner("rescuer", CONFORMANCE_HOST),
        live_local_owner("late-rescuer", CONFORMANCE_HOST),
    ) else {
        panic!("{NEEDS_PROCESS_FACTS}");
    };
    let ns = Namespace::new("lease-reclaim");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let observed = acquire(target, &id, &dead, LONG_TTL_MS).await;

    let before = target.clock.now_ms();
    let outcome = registry
        .reclaim_process_lease(&id, &rescuer, &observed, LONG_TTL_MS)
        .await
        .expect("reclaim_process_lease");
    let after = target.clock.now_ms();
    let taken = match outcome {
        ProcessLeaseClaimOutcome::Acquired(taken) => taken,
        busy => panic!("reclaiming a provably dead holder must succeed, got {busy:?}"),
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

    // Released: anyone reclaims it, with the next fence and no proof.
    release(target, &taken).await;
    let next = owner("next");
    let next_lease = registry
        .reclaim_process_lease(&id, &next, &taken, LONG_TTL_MS)
        .await
        .expect("reclaim of a released lease")
        .acquired()
        .expect("a released lease is reclaimed");
    assert_eq!(next_lease.fencing_token, taken.fencing_token + 1);
}

/// A live lease is never taken over without proof its holder is dead: a
/// live holder on this host, a holder on another host or boot, an opaque
/// holder, an opaque claimant, and an observed holder whose liveness was
/// altered all get `Busy` with nothing changed. A lapsed lease (a TTL of
/// 0) needs no proof. Needs a host whose process facts can be read.
pub async fn reclaim_needs_a_provably_dead_holder(target: &ConformanceTarget) {
    let (Some(alive), Some(claimant), Some(dead_here)) = (
        live_local_owner("alive", CONFORMANCE_HOST),
        live_local_owner("claimant", CONFORMANCE_HOST),
        dead_local_owner("dead-here", CONFORMANCE_HOST),
    ) else {
        panic!("{NEEDS_PROCESS_FACTS}");
    };
    let Some(dead_elsewhere) = dead_local_owner("dead-elsewhere", "another-host") else {
        panic!("{NEEDS_PROCESS_FACTS}");
    };
    let mut dead_other_boot = dead_here.clone();
    dead_other_boot.incarnation_id = unique_id("other-boot");
    if let LeaseOwnerLiveness::LocalProcess { boot_id, .. } = &mut dead_other_boot.liveness {
        *boot_id = unique_id("boot");
    }
    let ns = Namespace::new("lease-reclaim-proof");
    let registry = &target.registry;
    let cases = [
        (
            alive.clone(),
            claimant.clone(),
            "a live holder on this host",
        ),
        (dead_elsewhere, claimant.clone(), "a holder on another host"),
        (
            dead_other_boot,
            claimant.clone(),
            "a holder from another boot",
        ),
        (owner("opaque"), claimant.clone(), "an opaque holder"),
        (dead_here.clone(), owner("opaque"), "an opaque claimant"),
    ];
    for (n, (holder, claimant, what)) in cases.into_iter().enumerate() {
        let id = ns.id(&format!("case-{n}"));
        register_typed(target, &id).await;
        let held = acquire(target, &id, &holder, LONG_TTL_MS).await;
        let unchanged = snapshot(target, &id).await;
        let outcome = registry
            .reclaim_process_lease(&id, &claimant, &held, LONG_TTL_MS)
            .await
            .unwrap_or_else(|err| panic!("{what}: reclaim failed: {err}"));
        expect_busy(outcome, &held, what);
        assert_unchanged_after(target, &id, &unchanged, what).await;
    }

    let id = ns.id("forged");
    register_typed(target, &id).await;
    let held = acquire(target, &id, &alive, LONG_TTL_MS).await;
    let forged = ProcessLease {
        owner: LeaseOwnerIdentity {
            liveness: dead_here.liveness.clone(),
            ..alive.clone()
        },
        ..held.clone()
    };
    let unchanged = snapshot(target, &id).await;
    let outcome = registry
        .reclaim_process_lease(&id, &claimant, &forged, LONG_TTL_MS)
        .await
        .expect("reclaim with an altered observed holder");
    expect_busy(outcome, &held, "an observed holder with altered liveness");
    assert_unchanged_after(target, &id, &unchanged, "a forged reclaim").await;

    let id = ns.id("lapsed");
    register_typed(target, &id).await;
    let lapsed = acquire(target, &id, &alive, 0).await;
    let taken = registry
        .reclaim_process_lease(&id, &owner("anyone"), &lapsed, LONG_TTL_MS)
        .await
        .expect("reclaim of a lapsed lease")
        .acquired()
        .expect("a lapsed lease needs no proof");
    assert_eq!(taken.fencing_token, lapsed.fencing_token + 1);
}

/// A TTL of 0 is accepted and gives a lease that has already lapsed: it
/// expires when claimed, and the next owner's claim acquires it with the
/// next fence (as in the original).
pub async fn zero_ttl_lease_is_already_expired(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-zero-ttl");
    let id = ns.id("p");
    register_typed(target, &id).await;
    let first = acquire(target, &id, &owner("first"), 0).await;
    assert_eq!(
        first.expires_at_epoch_ms, first.claimed_at_epoch_ms,
        "a zero TTL lease expires when claimed"
    );
    assert_eq!(stored_lease(target, &id).await, Some(first.clone()));
    let second = acquire(target, &id, &owner("second"), LONG_TTL_MS).await;
    assert_eq!(second.fencing_token, first.fencing_token + 1);
    // Re-entering with 0 lapses one's own live lease, tokens unchanged.
    let second_owner = second.owner.clone();
    let re_entered = acquire(target, &id, &second_owner, 0).await;
    assert_eq!(re_entered.lease_token, second.lease_token);
    assert_eq!(re_entered.fencing_token, second.fencing_token);
    let third = acquire(target, &id, &owner("third"), LONG_TTL_MS).await;
    assert_eq!(third.fencing_token, second.fencing_token + 1);
}

/// A terminal process refuses claims and reclaims; a TTL past the limit
/// is refused.
pub async fn claim_refusals_change_nothing(target: &ConformanceTarget) {
    let ns = Namespace::new("lease-refusals");
    let registry = &target.registry;

    let id = ns.id("live");
    register_typed(target, &id).await;
    let worker = owner("worker");
    let lease = acquire(target, &id, &worker, LONG_TTL_MS).await;
    let unchanged = snapshot(target, &id).await;
    let result = registry
        .claim_process_lease(&id, &worker, MAX_LEASE_TTL_MS + 1)
        .await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::InvalidInput,
        "re-entering with a TTL past the limit",
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
