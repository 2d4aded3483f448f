//! Facts written onto a row after registration: the external ref, the first
//! start, the abandon request and the wait; and reading rows back.

use serde_json::json;

use super::support::{
    assert_unchanged_after, assert_unknown, assert_within, complete, expect_unknown, owner,
    refused, register, register_typed, signal_wait, snapshot, unique_id, ErrorKind, Namespace,
};
use super::ConformanceTarget;
use crate::model::{AbandonRequest, LeaseOwnerIdentity, ProcessExternalRef, ProcessStarted};

fn external_ref(id: &str) -> ProcessExternalRef {
    ProcessExternalRef {
        backend: "ci".to_owned(),
        id: id.to_owned(),
        metadata: json!({ "url": format!("https://ci.example/{id}") }),
    }
}

fn started(tag: &str, at_ms: u64) -> ProcessStarted {
    started_by(owner(tag), at_ms)
}

fn started_by(owner: LeaseOwnerIdentity, at_ms: u64) -> ProcessStarted {
    ProcessStarted {
        owner,
        started_at_ms: at_ms,
    }
}

fn abandon(by: &str) -> AbandonRequest {
    AbandonRequest {
        requested_by: by.to_owned(),
        reason: format!("{by} gave up"),
        requested_at_ms: 7,
    }
}

/// The first external ref is stored; the same one again changes nothing; a
/// different one is a conflict.
pub async fn external_ref_is_set_once(target: &ConformanceTarget) {
    let ns = Namespace::new("row-external-ref");
    let registry = &target.registry;
    let id = ns.id("p");
    let created = register_typed(target, &id).await;

    let before = target.clock.now_ms();
    let stored = registry
        .set_external_ref(&id, external_ref("run-1"))
        .await
        .expect("first set_external_ref");
    let after = target.clock.now_ms();
    assert_eq!(stored.external_ref, Some(external_ref("run-1")));
    assert_within(
        stored.updated_at_ms,
        before,
        after,
        "updated_at_ms after set_external_ref",
    );
    assert_eq!(stored.created_at_ms, created.created_at_ms);
    assert_eq!(registry.get_process(&id).await, Some(stored.clone()));

    let unchanged = snapshot(target, &id).await;
    let again = registry
        .set_external_ref(&id, external_ref("run-1"))
        .await
        .expect("repeated set_external_ref");
    assert_eq!(
        again, stored,
        "the same external ref again must return the row unchanged"
    );
    assert_unchanged_after(target, &id, &unchanged, "a repeated set_external_ref").await;

    let result = registry.set_external_ref(&id, external_ref("run-2")).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::Conflict,
        "a different external ref",
    )
    .await;

    let result = registry
        .set_external_ref(
            &id,
            ProcessExternalRef {
                metadata: json!({ "other": true }),
                ..external_ref("run-1")
            },
        )
        .await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::Conflict,
        "the same external id with other metadata",
    )
    .await;
}

/// The first recorded start wins and needs no lease (as in the original):
/// later starts, by anyone, return the row unchanged, also once the row is
/// terminal.
pub async fn first_started_first_writer_wins(target: &ConformanceTarget) {
    let ns = Namespace::new("row-first-started");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;

    let first = started("worker-a", 1_001);
    let stored = registry
        .record_first_started(&id, first.clone())
        .await
        .expect("a first start with no lease held is recorded");
    assert_eq!(stored.first_started, Some(first.clone()));
    assert_eq!(registry.get_process(&id).await, Some(stored.clone()));

    let unchanged = snapshot(target, &id).await;
    for later in [first.clone(), started("worker-b", 1_002)] {
        let again = registry
            .record_first_started(&id, later)
            .await
            .expect("later record_first_started");
        assert_eq!(again, stored, "a later start must return the row unchanged");
        assert_unchanged_after(target, &id, &unchanged, "a later record_first_started").await;
    }

    let ended = complete(target, &id).await;
    assert_eq!(ended.first_started, Some(first));
    let unchanged = snapshot(target, &id).await;
    let again = registry
        .record_first_started(&id, started("worker-c", 1_003))
        .await
        .expect("record_first_started on a started terminal row");
    assert_eq!(again, ended);
    assert_unchanged_after(
        target,
        &id,
        &unchanged,
        "record_first_started on a terminal row",
    )
    .await;
}

/// While another owner holds a live lease, its rivals cannot record the
/// first start (`LeaseSuperseded`, nothing changed); the holder can. A
/// lapsed lease (here one claimed with a TTL of 0) fences no one.
pub async fn first_started_refuses_rivals_of_a_live_lease(target: &ConformanceTarget) {
    let ns = Namespace::new("row-first-started-fence");
    let registry = &target.registry;
    let id = ns.id("held");
    register_typed(target, &id).await;
    let holder = owner("holder");
    registry
        .claim_process_lease(&id, &holder, 60_000)
        .await
        .expect("claim")
        .acquired()
        .expect("a free lease is acquired");
    let fenced = snapshot(target, &id).await;
    refused(
        target,
        &id,
        &fenced,
        registry
            .record_first_started(&id, started("rival", 1_001))
            .await,
        ErrorKind::LeaseSuperseded,
        "a start by a rival of the live lease",
    )
    .await;
    let first = started_by(holder, 1_002);
    let stored = registry
        .record_first_started(&id, first.clone())
        .await
        .expect("the holder records the start");
    assert_eq!(stored.first_started, Some(first));

    let lapsed = ns.id("lapsed");
    register_typed(target, &lapsed).await;
    registry
        .claim_process_lease(&lapsed, &owner("gone"), 0)
        .await
        .expect("a zero TTL claim")
        .acquired()
        .expect("a free lease is acquired");
    let other = started("other", 1_003);
    let stored = registry
        .record_first_started(&lapsed, other.clone())
        .await
        .expect("a lapsed lease fences no one");
    assert_eq!(stored.first_started, Some(other));
}

/// The first abandon request wins; later ones return the row unchanged; a
/// terminal row refuses it.
pub async fn abandon_request_first_writer_wins(target: &ConformanceTarget) {
    let ns = Namespace::new("row-abandon");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;

    let stored = registry
        .request_process_abandon(&id, abandon("operator"))
        .await
        .expect("first request_process_abandon");
    assert_eq!(stored.abandon_request, Some(abandon("operator")));
    assert!(
        !stored.is_terminal(),
        "an abandon request does not end the process"
    );
    assert_eq!(registry.get_process(&id).await, Some(stored.clone()));

    let unchanged = snapshot(target, &id).await;
    for later in [abandon("operator"), abandon("sweeper")] {
        let again = registry
            .request_process_abandon(&id, later)
            .await
            .expect("later request_process_abandon");
        assert_eq!(
            again, stored,
            "a later abandon request must return the row unchanged"
        );
        assert_unchanged_after(target, &id, &unchanged, "a later request_process_abandon").await;
    }

    let terminal = ns.id("terminal");
    register_typed(target, &terminal).await;
    complete(target, &terminal).await;
    let unchanged = snapshot(target, &terminal).await;
    let result = registry
        .request_process_abandon(&terminal, abandon("late"))
        .await;
    refused(
        target,
        &terminal,
        &unchanged,
        result,
        ErrorKind::AlreadyTerminal,
        "request_process_abandon on a terminal row",
    )
    .await;
}

/// Waits are set, replaced and cleared; clearing twice is a no-op; a
/// terminal row refuses a new wait.
pub async fn waits_are_set_and_cleared(target: &ConformanceTarget) {
    let ns = Namespace::new("row-wait");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;

    let first = signal_wait("key-1", 11);
    let waiting = registry
        .set_process_wait(&id, first.clone())
        .await
        .expect("set_process_wait");
    assert_eq!(waiting.wait, Some(first.clone()));
    assert_eq!(registry.get_process(&id).await, Some(waiting.clone()));

    let unchanged = snapshot(target, &id).await;
    let again = registry
        .set_process_wait(&id, first.clone())
        .await
        .expect("repeated set_process_wait");
    assert_eq!(
        again, waiting,
        "the same wait again must return the row unchanged"
    );
    assert_unchanged_after(target, &id, &unchanged, "a repeated set_process_wait").await;

    let second = signal_wait("key-2", 12);
    let replaced = registry
        .set_process_wait(&id, second.clone())
        .await
        .expect("replacing the wait");
    assert_eq!(replaced.wait, Some(second));

    let cleared = registry
        .clear_process_wait(&id)
        .await
        .expect("clear_process_wait");
    assert_eq!(cleared.wait, None);
    assert_eq!(registry.get_process(&id).await, Some(cleared.clone()));

    let unchanged = snapshot(target, &id).await;
    let again = registry
        .clear_process_wait(&id)
        .await
        .expect("clearing an absent wait");
    assert_eq!(
        again, cleared,
        "clearing an absent wait must return the row unchanged"
    );
    assert_unchanged_after(target, &id, &unchanged, "clearing an absent wait").await;

    complete(target, &id).await;
    let unchanged = snapshot(target, &id).await;
    let result = registry.set_process_wait(&id, first).await;
    refused(
        target,
        &id,
        &unchanged,
        result,
        ErrorKind::AlreadyTerminal,
        "set_process_wait on a terminal row",
    )
    .await;
}

/// `get_process` and `try_get_process` agree: the row when known, `None`
/// (and `Ok(None)`) when unknown.
pub async fn get_and_try_get_agree(target: &ConformanceTarget) {
    let ns = Namespace::new("row-get");
    let registry = &target.registry;
    let id = ns.id("p");
    let record = register(target, super::support::external(&id)).await;
    assert_eq!(registry.get_process(&id).await, Some(record.clone()));
    assert_eq!(registry.try_get_process(&id).await, Ok(Some(record)));

    let missing = ns.id("missing");
    assert_unknown(target, &missing, "a never-registered id").await;
}

/// Every row-fact method refuses an unknown id with `UnknownProcess` and
/// creates no row.
pub async fn row_facts_unknown_process(target: &ConformanceTarget) {
    let registry = &target.registry;
    let id = unique_id("row-unknown");

    expect_unknown(
        registry.set_external_ref(&id, external_ref("run")).await,
        &id,
        "set_external_ref",
    );
    expect_unknown(
        registry.record_first_started(&id, started("w", 1)).await,
        &id,
        "record_first_started",
    );
    expect_unknown(
        registry.request_process_abandon(&id, abandon("op")).await,
        &id,
        "request_process_abandon",
    );
    expect_unknown(
        registry.set_process_wait(&id, signal_wait("k", 1)).await,
        &id,
        "set_process_wait",
    );
    expect_unknown(
        registry.clear_process_wait(&id).await,
        &id,
        "clear_process_wait",
    );
    assert_unknown(target, &id, "after refused row-fact calls").await;
}
