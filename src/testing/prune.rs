//! Retention: pruning terminal rows older than a cutoff. Runs alone.

use serde_json::json;

use super::support::{
    assert_unknown, descriptor, expect_unknown, owner, register, register_typed, snapshot, typed,
    Namespace, ProcessSnapshot, ALERT, LONG_TTL_MS, NOTE,
};
use super::ConformanceTarget;
use crate::model::{
    ProcessAwaitOutput, ProcessEventAppendRequest, ProcessPruneReport, ProcessSessionDeleteReport,
    SessionScope,
};

/// How far past "now" the backlog-clearing prune reaches, so rows other
/// vectors finished are gone even with a little clock skew.
const BACKLOG_MARGIN_MS: u64 = 60 * 60 * 1000;
/// How long the pruned rows sit finished before the cutoff.
const AGE_MS: u64 = 1_500;
/// How long after the cutoff the late row finishes.
const AFTER_CUTOFF_MS: u64 = 50;

async fn add_events(target: &ConformanceTarget, process_id: &str, count: u64) {
    for n in 0..count {
        target
            .registry
            .append_event(
                process_id,
                ProcessEventAppendRequest::new(ALERT, json!({ "n": n })),
            )
            .await
            .unwrap_or_else(|err| panic!("append to `{process_id}` failed: {err}"));
    }
}

/// Terminal rows last updated before the cutoff are deleted with their
/// events, wakes, grants and leases, and become unknown; live rows and rows
/// finished at or after the cutoff stay as they were. Report counts are
/// exact. Fencing tokens never go backwards for an id: re-registered after
/// the prune, it inherits nothing (no lease, no grants) but its next claim
/// gets a token above every token issued before. Moves the clock and
/// prunes, so it runs alone.
pub async fn prune_deletes_old_terminal_rows(target: &ConformanceTarget) {
    let ns = Namespace::new("prune");
    let registry = &target.registry;

    let backlog_cutoff = target.clock.now_ms() + BACKLOG_MARGIN_MS;
    registry
        .prune_terminal_processes(backlog_cutoff)
        .await
        .expect("clearing the backlog");

    let scope = SessionScope::session(ns.id("session"));
    let (old_completed, old_failed) = (ns.id("old-completed"), ns.id("old-failed"));
    let (live, live_leased) = (ns.id("live"), ns.id("live-leased"));
    let (edge, late) = (ns.id("edge"), ns.id("late"));
    for id in [&old_completed, &live_leased, &edge, &late] {
        register_typed(target, id).await;
    }
    for id in [&live, &old_failed] {
        register(target, typed(id).with_wake_target(scope.clone())).await;
    }

    add_events(target, &old_completed, 3).await;
    add_events(target, &old_failed, 2).await;
    add_events(target, &live, 4).await;
    add_events(target, &late, 1).await;
    for id in [&old_completed, &old_failed, &live, &late] {
        registry
            .grant_handle(&scope, id, descriptor("h"))
            .await
            .expect("grant_handle");
    }
    let worker = owner("worker");
    for id in [&old_completed, &live_leased] {
        registry
            .claim_process_lease(id, &worker, LONG_TTL_MS)
            .await
            .expect("claim_process_lease");
    }
    // Two acquisitions on `old_completed`: its high-water is 2.
    registry
        .claim_process_lease(&old_completed, &worker, 0)
        .await
        .expect("re-entering with a zero TTL");
    let old_fence = registry
        .claim_process_lease(&old_completed, &owner("second"), LONG_TTL_MS)
        .await
        .expect("claim_process_lease")
        .acquired()
        .expect("a lapsed lease is acquired")
        .fencing_token;
    registry
        .complete_process(&old_completed, ProcessAwaitOutput::success(json!("old")))
        .await
        .expect("complete_process");
    registry
        .complete_process(&old_failed, ProcessAwaitOutput::failure("E", "old"))
        .await
        .expect("complete_process");
    let old_events = registry
        .events_after(&old_completed, 0)
        .await
        .expect("events")
        .len()
        + registry
            .events_after(&old_failed, 0)
            .await
            .expect("events")
            .len();
    assert_eq!(
        old_events,
        4 + 3,
        "each old row has its events plus the terminal one"
    );

    target.clock.advance(AGE_MS).await;
    let edge_record = registry
        .complete_process(&edge, ProcessAwaitOutput::success(json!("edge")))
        .await
        .expect("complete_process");
    // The cutoff is the registry's own "now": the time it stamped on `edge`.
    // Only rows updated strictly before it are old enough.
    let cutoff = edge_record.updated_at_ms;
    target.clock.advance(AFTER_CUTOFF_MS).await;
    registry
        .complete_process(&late, ProcessAwaitOutput::success(json!("late")))
        .await
        .expect("complete_process");
    let kept: Vec<ProcessSnapshot> = {
        let mut kept = Vec::new();
        for id in [&live, &live_leased, &edge, &late] {
            kept.push(snapshot(target, id).await);
        }
        kept
    };
    assert!(
        kept[3].record.updated_at_ms >= cutoff,
        "the late row finished after the cutoff"
    );

    let report = registry
        .prune_terminal_processes(cutoff)
        .await
        .expect("prune_terminal_processes");
    assert_eq!(
        report,
        ProcessPruneReport {
            pruned_processes: 2,
            pruned_events: old_events as u64,
        }
    );

    for id in [&old_completed, &old_failed] {
        assert_unknown(target, id, "a pruned row").await;
        expect_unknown(
            registry.wake_events_after(id, 0).await,
            id,
            "wake_events_after on a pruned row",
        );
        assert!(
            !registry
                .has_handle_grant(&scope, id)
                .await
                .expect("has_handle_grant on a pruned row answers, not errs"),
            "a pruned row holds no grant"
        );
        expect_unknown(
            registry
                .append_event(id, ProcessEventAppendRequest::new(NOTE, json!({})))
                .await,
            id,
            "append_event on a pruned row",
        );
    }
    let granted: Vec<String> = registry
        .list_handle_grants(&scope)
        .await
        .expect("list_handle_grants")
        .into_iter()
        .map(|(grant, _)| grant.process_id)
        .collect();
    assert_eq!(
        granted,
        vec![late.clone(), live.clone()],
        "pruned rows take their grants along"
    );
    for before in &kept {
        assert_eq!(
            snapshot(target, &before.record.id).await,
            *before,
            "prune must not touch `{}`",
            before.record.id
        );
    }

    let again = registry
        .prune_terminal_processes(cutoff)
        .await
        .expect("pruning again");
    assert_eq!(
        again,
        ProcessPruneReport::default(),
        "a second prune finds nothing"
    );

    let deleted = registry
        .delete_session_process_state(&scope.session_id)
        .await
        .expect("delete_session_process_state");
    assert_eq!(
        deleted,
        ProcessSessionDeleteReport {
            session_id: scope.session_id.clone(),
            revoked_handle_count: 2,
            deleted_wake_count: 0,
            orphaned_process_ids: vec![live],
            preserved_process_ids: Vec::new(),
        },
        "pruned rows leave no grants behind; the ended `late` row is not orphaned"
    );

    let again = register_typed(target, &old_completed).await;
    assert!(!again.is_terminal(), "a re-registered id starts afresh");
    assert_eq!(registry.get_process_lease(&old_completed).await, Ok(None));
    assert_eq!(
        registry.handle_grants_for_process(&old_completed).await,
        Ok(Vec::new()),
        "a re-registered id inherits no grants"
    );
    let fresh = registry
        .claim_process_lease(&old_completed, &owner("new-incarnation"), LONG_TTL_MS)
        .await
        .expect("claim after re-registration")
        .acquired()
        .expect("a fresh row's lease is free");
    assert!(
        fresh.fencing_token > old_fence,
        "the new incarnation's fence {} must exceed every fence issued before ({old_fence})",
        fresh.fencing_token
    );
}
