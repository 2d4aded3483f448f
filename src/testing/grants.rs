//! Session handle grants: upsert, revoke, transfer, listings, and deleting
//! a session's process state.

use serde_json::json;

use super::support::{
    assert_unchanged_after, assert_unknown, complete, descriptor, expect_error, expect_unknown,
    register, register_typed, snapshot, typed, unique_id, ErrorKind, Namespace, ALERT,
};
use super::ConformanceTarget;
use crate::model::{
    ProcessEventAppendRequest, ProcessHandleDescriptor, ProcessHandleGrant,
    ProcessHandleGrantEntry, ProcessSessionDeleteReport, SessionScope,
};

async fn grant(
    target: &ConformanceTarget,
    scope: &SessionScope,
    process_id: &str,
    label: &str,
) -> ProcessHandleGrant {
    target
        .registry
        .grant_handle(scope, process_id, descriptor(label))
        .await
        .unwrap_or_else(|err| panic!("granting `{}` on `{process_id}` failed: {err}", scope.id()))
}

async fn listed(target: &ConformanceTarget, scope: &SessionScope) -> Vec<ProcessHandleGrantEntry> {
    target
        .registry
        .list_handle_grants(scope)
        .await
        .unwrap_or_else(|err| panic!("list_handle_grants(`{}`) failed: {err}", scope.id()))
}

async fn live(target: &ConformanceTarget, scope: &SessionScope) -> Vec<ProcessHandleGrantEntry> {
    target
        .registry
        .list_live_handle_grants(scope)
        .await
        .unwrap_or_else(|err| panic!("list_live_handle_grants(`{}`) failed: {err}", scope.id()))
}

async fn grants_on(target: &ConformanceTarget, process_id: &str) -> Vec<ProcessHandleGrant> {
    target
        .registry
        .handle_grants_for_process(process_id)
        .await
        .unwrap_or_else(|err| panic!("handle_grants_for_process(`{process_id}`) failed: {err}"))
}

async fn has(target: &ConformanceTarget, scope: &SessionScope, process_id: &str) -> bool {
    target
        .registry
        .has_handle_grant(scope, process_id)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "has_handle_grant(`{}`, `{process_id}`) failed: {err}",
                scope.id()
            )
        })
}

fn listed_ids(entries: &[ProcessHandleGrantEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|(grant, _)| grant.process_id.clone())
        .collect()
}

/// Grants carry their scope and descriptor, upsert per scope, list per exact
/// scope sorted by process id with the current rows, and list per process
/// sorted by scope id.
pub async fn grants_upsert_and_list(target: &ConformanceTarget) {
    let ns = Namespace::new("grants-list");
    let (a, b, c) = (ns.id("a"), ns.id("b"), ns.id("c"));
    for id in [&c, &a, &b] {
        register_typed(target, id).await;
    }
    let session = ns.id("session");
    let whole = SessionScope::session(&session);
    let frame = SessionScope::frame(&session, "frame-1");
    let other_frame = SessionScope::frame(&session, "frame-2");

    let granted = grant(target, &whole, &b, "b-handle").await;
    assert_eq!(
        granted,
        ProcessHandleGrant {
            session_id: session.clone(),
            // Namespaced ids hold `/`, which scope ids escape.
            scope_id: format!("session:{}", session.replace('/', "%2F")),
            process_id: b.clone(),
            descriptor: descriptor("b-handle"),
        }
    );
    grant(target, &whole, &a, "a-handle").await;
    let frame_grant = grant(target, &frame, &c, "c-in-frame").await;
    assert_eq!(frame_grant.session_id, session);
    assert_eq!(
        frame_grant.scope_id,
        format!("session:{}/frame:frame-1", session.replace('/', "%2F"))
    );
    grant(target, &other_frame, &a, "a-in-frame-2").await;

    let entries = listed(target, &whole).await;
    assert_eq!(
        listed_ids(&entries),
        vec![a.clone(), b.clone()],
        "sorted by process id"
    );
    for (grant, record) in &entries {
        assert_eq!(grant.scope_id, whole.id());
        assert_eq!(
            Some(record.clone()),
            target.registry.get_process(&grant.process_id).await
        );
    }
    assert_eq!(entries[0].0.descriptor, descriptor("a-handle"));
    assert_eq!(
        listed_ids(&listed(target, &frame).await),
        vec![c.clone()],
        "scopes are exact"
    );
    assert_eq!(
        listed_ids(&listed(target, &other_frame).await),
        vec![a.clone()]
    );

    let upserted = target
        .registry
        .grant_handle(
            &whole,
            &a,
            ProcessHandleDescriptor {
                kind: "tool_call".to_owned(),
                label: "renamed".to_owned(),
            },
        )
        .await
        .expect("re-granting");
    let entries = listed(target, &whole).await;
    assert_eq!(
        listed_ids(&entries),
        vec![a.clone(), b.clone()],
        "an upsert adds no second grant"
    );
    assert_eq!(entries[0].0, upserted);
    assert_eq!(entries[0].0.descriptor.label, "renamed");

    let on_a = grants_on(target, &a).await;
    let scope_ids: Vec<String> = on_a.iter().map(|grant| grant.scope_id.clone()).collect();
    assert_eq!(
        scope_ids,
        vec![whole.id(), other_frame.id()],
        "sorted by scope id"
    );
    assert_eq!(on_a[0], upserted);

    assert!(has(target, &whole, &a).await);
    assert!(has(target, &other_frame, &a).await);
    assert!(
        !has(target, &frame, &a).await,
        "a session grant is not a frame grant"
    );
    assert!(has(target, &frame, &c).await);
    assert!(
        !has(target, &whole, &c).await,
        "a frame grant is not a session grant"
    );
}

/// Revoking removes exactly one scope's grant; revoking again, or a grant
/// never made, succeeds and changes nothing.
pub async fn revoke_is_idempotent(target: &ConformanceTarget) {
    let ns = Namespace::new("grants-revoke");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let whole = SessionScope::session(ns.id("session"));
    let frame = SessionScope::frame(ns.id("session"), "f");
    grant(target, &whole, &id, "h").await;
    let kept = grant(target, &frame, &id, "h").await;

    registry
        .revoke_handle(&whole, &id)
        .await
        .expect("revoke_handle");
    assert_eq!(grants_on(target, &id).await, vec![kept]);
    assert!(listed(target, &whole).await.is_empty());
    assert!(!has(target, &whole, &id).await);

    let unchanged = snapshot(target, &id).await;
    registry
        .revoke_handle(&whole, &id)
        .await
        .expect("revoking again");
    let stranger = SessionScope::session(ns.id("stranger"));
    registry
        .revoke_handle(&stranger, &id)
        .await
        .expect("revoking a grant never made");
    assert_unchanged_after(target, &id, &unchanged, "revoking absent grants").await;
}

/// Processes nobody holds list no grants.
pub async fn zero_grant_process(target: &ConformanceTarget) {
    let ns = Namespace::new("grants-none");
    let id = ns.id("p");
    register_typed(target, &id).await;
    assert!(grants_on(target, &id).await.is_empty());
    assert!(!has(target, &SessionScope::session(ns.id("s")), &id).await);
    assert!(listed(target, &SessionScope::session(ns.id("s")))
        .await
        .is_empty());
    assert!(live(target, &SessionScope::session(ns.id("s")))
        .await
        .is_empty());
}

/// Transfer moves the listed grants with their descriptors; if `from` does
/// not hold one of them, or one is unknown, nothing moves.
pub async fn transfer_moves_all_or_nothing(target: &ConformanceTarget) {
    let ns = Namespace::new("grants-transfer");
    let registry = &target.registry;
    let (a, b, c) = (ns.id("a"), ns.id("b"), ns.id("c"));
    for id in [&a, &b, &c] {
        register_typed(target, id).await;
    }
    let from = SessionScope::frame(ns.id("session"), "parent");
    let to = SessionScope::frame(ns.id("session"), "child");
    let other = SessionScope::session(ns.id("other"));
    for id in [&a, &b, &c] {
        grant(target, &from, id, &format!("label of {id}")).await;
    }

    registry
        .transfer_handle_grants(&from, &to, &[a.clone(), b.clone()])
        .await
        .expect("transfer_handle_grants");
    let moved = listed(target, &to).await;
    assert_eq!(listed_ids(&moved), vec![a.clone(), b.clone()]);
    for (grant, _) in &moved {
        assert_eq!(grant.scope_id, to.id());
        assert_eq!(grant.session_id, to.session_id);
        assert_eq!(
            grant.descriptor,
            descriptor(&format!("label of {}", grant.process_id)),
            "a transfer keeps the descriptor"
        );
    }
    assert_eq!(listed_ids(&listed(target, &from).await), vec![c.clone()]);
    assert!(!has(target, &from, &a).await);
    assert!(has(target, &to, &a).await);

    let before: Vec<_> = [
        (a.clone(), snapshot(target, &a).await),
        (c.clone(), snapshot(target, &c).await),
    ]
    .into();
    let result = registry
        .transfer_handle_grants(&from, &other, &[c.clone(), a.clone()])
        .await;
    expect_error(
        result,
        ErrorKind::InvalidInput,
        "transferring a grant `from` does not hold",
    );
    for (id, snapshot) in &before {
        assert_unchanged_after(target, id, snapshot, "a refused transfer").await;
    }
    assert!(
        listed(target, &other).await.is_empty(),
        "a refused transfer moves nothing"
    );

    let missing = ns.id("missing");
    let result = registry
        .transfer_handle_grants(&from, &other, &[c.clone(), missing.clone()])
        .await;
    expect_unknown(result, &missing, "transferring an unknown process");
    for (id, snapshot) in &before {
        assert_unchanged_after(target, id, snapshot, "a refused transfer").await;
    }
    assert!(
        listed(target, &other).await.is_empty(),
        "a refused transfer moves nothing"
    );
    assert_unknown(target, &missing, "after a refused transfer").await;

    let unchanged = snapshot(target, &c).await;
    registry
        .transfer_handle_grants(&from, &from, std::slice::from_ref(&c))
        .await
        .expect("transferring onto the same scope");
    assert_unchanged_after(target, &c, &unchanged, "a transfer onto the same scope").await;
    registry
        .transfer_handle_grants(&from, &other, &[])
        .await
        .expect("transferring nothing");
}

/// Listing keeps terminal processes; the live listing drops them.
pub async fn live_grants_drop_terminal(target: &ConformanceTarget) {
    let ns = Namespace::new("grants-live");
    let (running, ended) = (ns.id("running"), ns.id("ended"));
    register_typed(target, &running).await;
    register_typed(target, &ended).await;
    let scope = SessionScope::session(ns.id("session"));
    grant(target, &scope, &running, "r").await;
    grant(target, &scope, &ended, "e").await;
    let terminal = complete(target, &ended).await;

    let all = listed(target, &scope).await;
    assert_eq!(listed_ids(&all), vec![ended.clone(), running.clone()]);
    assert_eq!(all[0].1, terminal, "entries carry the current row");
    let live_entries = live(target, &scope).await;
    assert_eq!(listed_ids(&live_entries), vec![running.clone()]);
    assert!(!live_entries[0].1.is_terminal());
    assert!(
        has(target, &scope, &ended).await,
        "a terminal process keeps its grants"
    );
}

/// Deleting a session revokes every grant of the session and its frames
/// (counting each), reports the live processes that lost their last grant
/// as orphaned and those still granted elsewhere as preserved (an ended
/// process is neither), and clears wake targets aimed at it, ended rows
/// included. It deletes no wake event: undelivered wakes aimed at the
/// session stay pending, and `deleted_wake_count` is 0 (as the original
/// library reports). Rows and logs stay.
pub async fn delete_session_reports_and_clears(target: &ConformanceTarget) {
    let ns = Namespace::new("grants-delete-session");
    let registry = &target.registry;
    let session = ns.id("doomed");
    let whole = SessionScope::session(&session);
    let frame = SessionScope::frame(&session, "frame-1");
    let survivor = SessionScope::session(ns.id("survivor"));

    let only_session = ns.id("1-only-session");
    let session_and_frame = ns.id("2-session-and-frame");
    let shared = ns.id("3-shared");
    let untouched = ns.id("4-untouched");
    let woken = ns.id("5-woken");
    let redirected = ns.id("6-redirected");
    let elsewhere = ns.id("7-elsewhere");
    let ended = ns.id("8-ended");
    for id in [
        &only_session,
        &session_and_frame,
        &shared,
        &untouched,
        &redirected,
    ] {
        register_typed(target, id).await;
    }
    register(target, typed(&woken).with_wake_target(frame.clone())).await;
    register(target, typed(&elsewhere).with_wake_target(survivor.clone())).await;
    register(target, typed(&ended).with_wake_target(whole.clone())).await;

    grant(target, &whole, &only_session, "h").await;
    grant(target, &whole, &session_and_frame, "h").await;
    grant(target, &frame, &session_and_frame, "h").await;
    grant(target, &frame, &shared, "h").await;
    grant(target, &survivor, &shared, "h").await;
    grant(target, &survivor, &untouched, "h").await;
    grant(target, &frame, &ended, "h").await;
    complete(target, &ended).await;

    let alert = |n: u64| ProcessEventAppendRequest::new(ALERT, json!({ "n": n }));
    let append = |id: String, request: ProcessEventAppendRequest| async move {
        registry
            .append_event(&id, request)
            .await
            .unwrap_or_else(|err| panic!("append to `{id}` failed: {err}"))
    };
    let acked = append(woken.clone(), alert(1)).await;
    assert!(acked.wake_delivery.is_some());
    registry
        .ack_wake(&woken, acked.event.sequence)
        .await
        .expect("ack_wake");
    let pending_two = append(woken.clone(), alert(2)).await;
    assert!(pending_two.wake_delivery.is_some());
    let pending_three = append(woken.clone(), alert(3)).await;
    assert!(pending_three.wake_delivery.is_some());
    let aimed = append(
        redirected.clone(),
        alert(4).with_wake_target_scope(whole.clone()),
    )
    .await;
    assert!(aimed.wake_delivery.is_some());
    let kept_wake = append(elsewhere.clone(), alert(5)).await;
    assert_eq!(
        kept_wake.wake_delivery.map(|delivery| delivery.scope),
        Some(survivor.clone())
    );

    let rows_before = {
        let mut rows = Vec::new();
        for id in [
            &only_session,
            &session_and_frame,
            &shared,
            &untouched,
            &redirected,
            &elsewhere,
        ] {
            rows.push(snapshot(target, id).await);
        }
        rows
    };

    let report = registry
        .delete_session_process_state(&session)
        .await
        .expect("delete_session_process_state");
    assert_eq!(
        report,
        ProcessSessionDeleteReport {
            session_id: session.clone(),
            revoked_handle_count: 5,
            deleted_wake_count: 0,
            orphaned_process_ids: vec![only_session.clone(), session_and_frame.clone()],
            preserved_process_ids: vec![shared.clone()],
        },
        "the ended process's grant is revoked and counted, but it is neither orphaned nor preserved"
    );
    assert!(grants_on(target, &ended).await.is_empty());
    let ended_row = registry.get_process(&ended).await.expect("rows stay");
    assert!(ended_row.is_terminal());
    assert_eq!(
        ended_row.wake_target, None,
        "an ended row's wake target at the session is cleared too"
    );

    assert!(listed(target, &whole).await.is_empty());
    assert!(listed(target, &frame).await.is_empty());
    assert!(grants_on(target, &only_session).await.is_empty());
    assert!(grants_on(target, &session_and_frame).await.is_empty());
    let left: Vec<String> = grants_on(target, &shared)
        .await
        .into_iter()
        .map(|grant| grant.scope_id)
        .collect();
    assert_eq!(left, vec![survivor.id()]);
    assert_eq!(
        listed_ids(&listed(target, &survivor).await),
        vec![shared.clone(), untouched.clone()]
    );

    let woken_row = registry.get_process(&woken).await.expect("rows stay");
    assert_eq!(
        woken_row.wake_target, None,
        "the deleted session's wake target is cleared"
    );
    assert!(!woken_row.is_terminal());
    assert_eq!(
        registry
            .wake_events_after(&woken, 0)
            .await
            .expect("wake_events_after"),
        vec![pending_two.event, pending_three.event],
        "undelivered wakes aimed at the session stay pending; the acked one stays acked"
    );
    assert_eq!(
        registry
            .wake_events_after(&redirected, 0)
            .await
            .expect("wake_events_after"),
        vec![aimed.event],
        "a wake aimed at the session by its append stays pending"
    );
    assert_eq!(
        registry
            .events_after(&woken, 0)
            .await
            .expect("events_after")
            .len(),
        3,
        "the event log stays"
    );
    let elsewhere_row = registry.get_process(&elsewhere).await.expect("rows stay");
    assert_eq!(elsewhere_row.wake_target, Some(survivor.clone()));
    assert_eq!(
        registry
            .wake_events_after(&elsewhere, 0)
            .await
            .expect("wake_events_after"),
        vec![kept_wake.event],
        "wakes aimed at other sessions stay"
    );
    for before in &rows_before {
        let after = registry.get_process(&before.record.id).await;
        assert_eq!(
            after,
            Some(before.record.clone()),
            "process rows stay as they were"
        );
        if [&untouched, &elsewhere].contains(&&before.record.id) {
            assert_unchanged_after(
                target,
                &before.record.id,
                before,
                "deleting another session",
            )
            .await;
        }
    }

    let after_delete = append(woken.clone(), alert(6)).await;
    assert_eq!(
        after_delete.wake_delivery, None,
        "a cleared wake target receives nothing"
    );

    let again = registry
        .delete_session_process_state(&session)
        .await
        .expect("deleting the session again");
    assert_eq!(
        again,
        ProcessSessionDeleteReport {
            session_id: session,
            ..ProcessSessionDeleteReport::default()
        },
        "a second delete finds nothing"
    );
    let never = unique_id("never-a-session");
    let empty = registry
        .delete_session_process_state(&never)
        .await
        .expect("deleting an unknown session");
    assert_eq!(
        empty,
        ProcessSessionDeleteReport {
            session_id: never,
            ..ProcessSessionDeleteReport::default()
        }
    );
}

/// Every grant method that takes a process id refuses an unknown one and
/// creates no row (`has_handle_grant` answers instead: see
/// [`has_grant_on_unknown_is_false`]).
pub async fn grants_unknown_process(target: &ConformanceTarget) {
    let registry = &target.registry;
    let id = unique_id("grants-unknown");
    let scope = SessionScope::session(unique_id("grants-unknown-session"));
    expect_unknown(
        registry.grant_handle(&scope, &id, descriptor("h")).await,
        &id,
        "grant_handle",
    );
    expect_unknown(
        registry.revoke_handle(&scope, &id).await,
        &id,
        "revoke_handle",
    );
    expect_unknown(
        registry.handle_grants_for_process(&id).await,
        &id,
        "handle_grants_for_process",
    );
    expect_unknown(
        registry
            .transfer_handle_grants(
                &scope,
                &SessionScope::session("elsewhere"),
                std::slice::from_ref(&id),
            )
            .await,
        &id,
        "transfer_handle_grants",
    );
    assert!(listed(target, &scope).await.is_empty());
    assert_unknown(target, &id, "after refused grant calls").await;
}

/// `has_handle_grant` on an unknown id answers `false`, not an error (as
/// the original library does: an unknown id holds no grant), and creates
/// no row; an ended process keeps answering for the grants it holds.
pub async fn has_grant_on_unknown_is_false(target: &ConformanceTarget) {
    let ns = Namespace::new("grants-has-unknown");
    let registry = &target.registry;
    let scope = SessionScope::session(ns.id("session"));
    let missing = ns.id("missing");
    assert_eq!(
        registry
            .has_handle_grant(&scope, &missing)
            .await
            .map_err(|err| err.to_string()),
        Ok(false),
        "an unknown process holds no grant"
    );
    assert_unknown(target, &missing, "after has_handle_grant").await;

    let ended = ns.id("ended");
    register_typed(target, &ended).await;
    grant(target, &scope, &ended, "h").await;
    complete(target, &ended).await;
    assert!(has(target, &scope, &ended).await);
    assert!(!has(target, &SessionScope::frame(&scope.session_id, "f"), &ended).await);
}
