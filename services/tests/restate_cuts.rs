//! Cut points on a real server: every step of a transfer and of a session
//! delete is held, then killed or cancelled there, and afterwards (once the
//! repair has run) every grant is in exactly one place, nothing is
//! recorded as pending and an acknowledged call's effect is present once.
//! Also: a session delete under a steady stream of grants ends within a
//! bound; a late prune message cannot erase the next incarnation's grant;
//! keyed sets shrink after removals.
//!
//! The scenarios share one server and run one after another in a single
//! test, so each finds the one invocation it holds without ambiguity.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use restate_process_registry::restate::wire::directory_shard;
use restate_process_registry::testing::support::{descriptor, typed};
use restate_process_registry::{
    ProcessAwaitOutput, ProcessRegistry, RestateProcessRegistry, SessionScope,
};
use restate_process_registry_testkit::admin::Admin;
use serde_json::{json, Value};

/// How long a held invocation may take to show up, and a call to answer.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Kill,
    Cancel,
}

/// Where a point holds: the invocation's service, handler and key (`None`
/// for the unkeyed coordinator).
struct Point {
    name: &'static str,
    service: &'static str,
    handler: &'static str,
}

const TRANSFER_POINTS: &[Point] = &[
    Point {
        name: "take.after_intent",
        service: "SessionGrants",
        handler: "take",
    },
    Point {
        name: "take.after_first_move",
        service: "SessionGrants",
        handler: "take",
    },
    Point {
        name: "transfer.after_take",
        service: "ProcessCoordinator",
        handler: "transfer_grants_v2",
    },
    Point {
        name: "give.after_first",
        service: "SessionGrants",
        handler: "give",
    },
    Point {
        name: "transfer.after_give",
        service: "ProcessCoordinator",
        handler: "transfer_grants_v2",
    },
];

const DELETE_POINTS: &[Point] = &[
    Point {
        name: "delete.after_begin",
        service: "ProcessCoordinator",
        handler: "delete_session_v2",
    },
    Point {
        name: "drain.after_first",
        service: "SessionGrants",
        handler: "drain",
    },
    Point {
        name: "delete.after_drain",
        service: "ProcessCoordinator",
        handler: "delete_session_v2",
    },
];

const GRANT_POINTS: &[Point] = &[
    Point {
        name: "grant.after_mirror",
        service: "SessionGrants",
        handler: "grant",
    },
    Point {
        name: "revoke.after_mirror",
        service: "SessionGrants",
        handler: "revoke",
    },
];

fn admin() -> Admin {
    Admin::new(common::urls().admin)
}

/// The invocation held at `point` on `key`, once it has reached the point.
async fn held_at(point: &Point, key: &str) -> String {
    let admin = admin();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let keyed = if point.service == "ProcessCoordinator" {
            String::new()
        } else {
            format!("AND i.target_service_key = '{key}'")
        };
        let sql = format!(
            "SELECT i.id AS id FROM sys_invocation i JOIN sys_journal j ON i.id = j.id \
             WHERE i.target_service_name = '{}' AND i.target_handler_name = '{}' {keyed} \
             AND i.status <> 'completed' AND j.name = 'cut.{}'",
            point.service, point.handler, point.name
        );
        let rows = admin.query(&sql).await.expect("admin query");
        if let Some(id) = rows.first().and_then(|row| row["id"].as_str()) {
            return id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "nothing held at `{}` on `{key}` within {PATIENCE:?}",
            point.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn act_on(point: &Point, key: &str, act: Act) {
    let id = held_at(point, key).await;
    let admin = admin();
    match act {
        Act::Kill => admin.kill(&id).await.expect("kill"),
        Act::Cancel => admin.cancel(&id).await.expect("cancel"),
    }
    admin
        .await_completed(&id, PATIENCE)
        .await
        .unwrap_or_else(|err| {
            // A cancelled invocation that absorbed the cancel goes on; it
            // completes with the operation.
            assert_eq!(act, Act::Cancel, "{err}");
        });
}

/// Where each process's grants are, by the session authorities and by the
/// processes' own mirrors, over `sessions`.
async fn placement(
    registry: &RestateProcessRegistry,
    sessions: &[&str],
    processes: &[String],
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut placed: BTreeMap<String, (Vec<String>, Vec<String>)> = processes
        .iter()
        .map(|id| (id.clone(), (Vec::new(), Vec::new())))
        .collect();
    for session in sessions {
        for grant in registry
            .session_grants(session)
            .await
            .expect("session grants")
        {
            if let Some(entry) = placed.get_mut(&grant.process_id) {
                entry.0.push(grant.scope_id.clone());
            }
        }
    }
    for id in processes {
        let mirror = registry
            .handle_grants_for_process(id)
            .await
            .expect("mirror");
        if let Some(entry) = placed.get_mut(id) {
            entry.1 = mirror.into_iter().map(|grant| grant.scope_id).collect();
            entry.0.sort();
            entry.1.sort();
        }
    }
    placed
}

/// The library equivalent of `procreg check` over what a scenario touched:
/// no session records an intent, no mirror a transit, and each process's
/// mirror equals what the authorities hold for it.
async fn assert_settled(
    registry: &RestateProcessRegistry,
    sessions: &[&str],
    processes: &[String],
    what: &str,
) {
    for session in sessions {
        let pending = registry.pending_intents(session).await.expect("pending");
        assert!(
            pending.is_empty(),
            "{what}: `{session}` still records {pending:?}"
        );
    }
    for id in processes {
        let transits = registry.grant_transits(id).await.expect("transits");
        assert!(
            transits.is_empty(),
            "{what}: `{id}` still in transit {transits:?}"
        );
    }
    for (id, (held, mirrored)) in placement(registry, sessions, processes).await {
        assert_eq!(held, mirrored, "{what}: `{id}` authority ≠ mirror");
    }
}

async fn register_granted(
    registry: &RestateProcessRegistry,
    scope: &SessionScope,
    tag: &str,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let id = common::unique(&format!("{tag}-{n}"));
        registry
            .register_process(typed(&id))
            .await
            .expect("register");
        registry
            .grant_handle(scope, &id, descriptor("d"))
            .await
            .expect("grant");
        ids.push(id);
    }
    ids
}

async fn transfer_cut(point: &Point, act: Act) {
    let registry = common::registry();
    let tag = common::unique(point.name);
    let mut source = format!("src-{tag}");
    let mut destination = format!("dst-{tag}");
    // The point's subject: the source session, or the destination for give.
    if point.name.starts_with("give.") {
        destination = format!("cut.{}.{tag}", point.name);
    } else {
        source = format!("cut.{}.{tag}", point.name);
    }
    let (from, to) = (
        SessionScope::session(&source),
        SessionScope::session(&destination),
    );
    let ids = register_granted(&registry, &from, "xfer", 4).await;
    let moving = ids.clone();
    let caller = registry.clone();
    let (from_c, to_c) = (from.clone(), to.clone());
    let call =
        tokio::spawn(async move { caller.transfer_handle_grants(&from_c, &to_c, &moving).await });
    let key = if point.name.starts_with("give.") {
        &destination
    } else {
        &source
    };
    act_on(point, key, act).await;
    let answered = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the transfer answers")
        .expect("task");
    let what = format!("transfer {} {act:?}", point.name);
    eprintln!("{what}: answered {:?}", answered.as_ref().map(|_| ()));
    if act == Act::Cancel {
        assert!(
            answered.is_ok(),
            "{what}: a cancel is absorbed: {answered:?}"
        );
    }
    // The repair: what `procreg check --repair` runs for the source.
    registry.repair_session(&source).await.expect("repair");
    assert_settled(&registry, &[&source, &destination], &ids, &what).await;
    // The intent is recorded before any grant leaves, and every cut point
    // is after it: once repaired, every grant is at the destination, once.
    for (id, (held, mirrored)) in placement(&registry, &[&source, &destination], &ids).await {
        assert_eq!(held, vec![to.id()], "{what}: `{id}` held {held:?}");
        assert_eq!(
            mirrored,
            vec![to.id()],
            "{what}: `{id}` mirrored {mirrored:?}"
        );
    }
}

async fn delete_cut(point: &Point, act: Act) {
    let registry = common::registry();
    let tag = common::unique(point.name);
    let session = format!("cut.{}.{tag}", point.name);
    let other = format!("other-{tag}");
    let scope = SessionScope::session(&session);
    let ids = register_granted(&registry, &scope, "del", 4).await;
    // One process is granted elsewhere too: preserved, not orphaned.
    registry
        .grant_handle(&SessionScope::session(&other), &ids[0], descriptor("o"))
        .await
        .expect("grant elsewhere");
    let caller = registry.clone();
    let target = session.clone();
    let call = tokio::spawn(async move { caller.delete_session_process_state(&target).await });
    act_on(point, &session, act).await;
    let answered = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the delete answers")
        .expect("task");
    let what = format!("delete {} {act:?}", point.name);
    eprintln!("{what}: answered {:?}", answered.as_ref().map(|_| ()));
    if act == Act::Cancel {
        assert!(answered.is_ok(), "{what}: cancel absorbed: {answered:?}");
    }
    // Acknowledged (a cancel, or a killed step the coordinator issued
    // again): every revocation reported exactly once.
    if let Ok(report) = &answered {
        assert_eq!(report.revoked_handle_count, 4, "{what}: {report:?}");
        assert_eq!(report.preserved_process_ids, vec![ids[0].clone()], "{what}");
        assert_eq!(report.orphaned_process_ids.len(), 3, "{what}: {report:?}");
    }
    registry.repair_session(&session).await.expect("repair");
    assert_settled(&registry, &[&session, &other], &ids, &what).await;
    assert!(
        registry
            .session_grants(&session)
            .await
            .expect("grants")
            .is_empty(),
        "{what}: the deleted session still holds grants"
    );
    let survivors = registry.session_grants(&other).await.expect("grants");
    assert_eq!(
        survivors.len(),
        1,
        "{what}: the other session keeps its grant"
    );
}

/// A grant or revoke held between its two writes (the process's mirror,
/// then the session's authority): after the repair, both agree, and an
/// acknowledged call's effect is there.
async fn grant_cut(point: &Point, act: Act) {
    let registry = common::registry();
    let tag = common::unique(point.name);
    let session = format!("s-{tag}");
    let scope = SessionScope::session(&session);
    let id = format!("cut.{}.{tag}", point.name);
    registry
        .register_process(typed(&id))
        .await
        .expect("register");
    let revoking = point.name.starts_with("revoke.");
    if revoking {
        registry
            .grant_handle(&scope, &id, descriptor("d"))
            .await
            .expect("grant");
    }
    let (caller, scope_c, id_c) = (registry.clone(), scope.clone(), id.clone());
    let call = tokio::spawn(async move {
        if revoking {
            caller.revoke_handle(&scope_c, &id_c).await
        } else {
            caller
                .grant_handle(&scope_c, &id_c, descriptor("d"))
                .await
                .map(|_| ())
        }
    });
    act_on(point, &session, act).await;
    let answered = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the call answers")
        .expect("task");
    let what = format!("{} {act:?}", point.name);
    eprintln!("{what}: answered {:?}", answered.as_ref().map(|_| ()));
    if act == Act::Cancel {
        assert!(
            answered.is_ok(),
            "{what}: a cancel is absorbed: {answered:?}"
        );
    }
    registry.repair_session(&session).await.expect("repair");
    let ids = [id.clone()];
    assert_settled(&registry, &[&session], &ids, &what).await;
    // Begun, so finished: granted, or revoked, in both places.
    let (held, _) = placement(&registry, &[&session], &ids)
        .await
        .remove(&id)
        .unwrap_or_default();
    let expected = if revoking { vec![] } else { vec![scope.id()] };
    assert_eq!(held, expected, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cut_of_a_transfer_or_delete_finishes_or_is_repaired() {
    for point in GRANT_POINTS {
        for act in [Act::Kill, Act::Cancel] {
            grant_cut(point, act).await;
        }
    }
    for point in TRANSFER_POINTS {
        for act in [Act::Kill, Act::Cancel] {
            transfer_cut(point, act).await;
        }
    }
    for point in DELETE_POINTS {
        for act in [Act::Kill, Act::Cancel] {
            delete_cut(point, act).await;
        }
    }
    a_transfer_cut_midway_moves_all_or_nothing(Act::Cancel).await;
    a_transfer_cut_midway_moves_all_or_nothing(Act::Kill).await;
    the_next_transfer_or_delete_completes_a_cut_off_transfer().await;
}

/// The live coordinator invocation of `handler` (one at a time here).
async fn live_coordinator(handler: &str) -> String {
    let sql = format!(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessCoordinator' \
         AND target_handler_name = '{handler}' AND status <> 'completed'"
    );
    let rows = admin().query(&sql).await.expect("query");
    rows.first()
        .and_then(|row| row["id"].as_str())
        .map(str::to_owned)
        .expect("a live coordinator invocation")
}

/// Without `repair_session`: a transfer whose coordinator was killed (and
/// its take with it) is completed by the next transfer out of the same
/// session, and one killed after its take by the next delete of it.
async fn the_next_transfer_or_delete_completes_a_cut_off_transfer() {
    let registry = common::registry();
    let admin = admin();

    // (a) Coordinator killed while its take was held after the intent.
    let tag = common::unique("next");
    let source = format!("cut.take.after_intent.{tag}");
    let destination = format!("next-dst-{tag}");
    let (from, to) = (
        SessionScope::session(&source),
        SessionScope::session(&destination),
    );
    let ids = register_granted(&registry, &from, "next", 4).await;
    let (caller, from_c, to_c, first) = (
        registry.clone(),
        from.clone(),
        to.clone(),
        ids[..3].to_vec(),
    );
    let call =
        tokio::spawn(async move { caller.transfer_handle_grants(&from_c, &to_c, &first).await });
    held_at(&TRANSFER_POINTS[0], &source).await;
    let coordinator = live_coordinator("transfer_grants_v2").await;
    admin.kill(&coordinator).await.expect("kill");
    admin
        .await_completed(&coordinator, PATIENCE)
        .await
        .expect("killed");
    assert!(
        call.await.expect("task").is_err(),
        "a killed transfer is not acknowledged"
    );
    registry
        .transfer_handle_grants(&from, &to, &ids[3..])
        .await
        .expect("the next transfer");
    assert_settled(&registry, &[&source, &destination], &ids, "next transfer").await;
    for (id, (held, _)) in placement(&registry, &[&source, &destination], &ids).await {
        assert_eq!(held, vec![to.id()], "next transfer: `{id}`");
    }

    // (b) Coordinator killed between take and give; then the session is
    // deleted: the transfer completes first, so the delete finds nothing.
    let tag = common::unique("next-del");
    let source = format!("cut.transfer.after_take.{tag}");
    let destination = format!("next-del-dst-{tag}");
    let (from, to) = (
        SessionScope::session(&source),
        SessionScope::session(&destination),
    );
    let ids = register_granted(&registry, &from, "nextdel", 3).await;
    let (caller, from_c, to_c, moving) = (registry.clone(), from.clone(), to.clone(), ids.clone());
    let call =
        tokio::spawn(async move { caller.transfer_handle_grants(&from_c, &to_c, &moving).await });
    let coordinator = held_at(&TRANSFER_POINTS[2], &source).await;
    admin.kill(&coordinator).await.expect("kill");
    admin
        .await_completed(&coordinator, PATIENCE)
        .await
        .expect("killed");
    assert!(call.await.expect("task").is_err());
    let report = registry
        .delete_session_process_state(&source)
        .await
        .expect("the next delete");
    assert_eq!(report.revoked_handle_count, 0, "{report:?}");
    assert_settled(&registry, &[&source, &destination], &ids, "next delete").await;
    for (id, (held, _)) in placement(&registry, &[&source, &destination], &ids).await {
        assert_eq!(held, vec![to.id()], "next delete: `{id}`");
    }
}

/// The original report: 200 grants in A transferred to B, the coordinator
/// cancelled (or killed) through the admin API a while in, at whatever
/// await it is on (no cut point). Cancelled, the transfer completes and is
/// acknowledged; killed, it is not, and after the repair every grant is in
/// A or every grant is in B (never some in neither). Runs in the sequence
/// above: it acts on whatever transfer is live.
async fn a_transfer_cut_midway_moves_all_or_nothing(act: Act) {
    let registry = common::registry();
    let tag = common::unique("midway");
    let (source, destination) = (format!("mid-src-{tag}"), format!("mid-dst-{tag}"));
    let (from, to) = (
        SessionScope::session(&source),
        SessionScope::session(&destination),
    );
    let ids = register_granted(&registry, &from, "mid", 200).await;
    let caller = registry.clone();
    let (from_c, to_c, moving) = (from.clone(), to.clone(), ids.clone());
    let call =
        tokio::spawn(async move { caller.transfer_handle_grants(&from_c, &to_c, &moving).await });
    let admin = admin();
    let sql = "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessCoordinator' \
               AND target_handler_name = 'transfer_grants_v2' AND status <> 'completed'";
    let deadline = Instant::now() + PATIENCE;
    let mut acted = None;
    while Instant::now() < deadline && !call.is_finished() {
        if let Some(id) = admin
            .query(sql)
            .await
            .expect("query")
            .first()
            .and_then(|row| row["id"].as_str().map(str::to_owned))
        {
            let since = Instant::now();
            tokio::time::sleep(Duration::from_millis(600)).await;
            match act {
                Act::Kill => admin.kill(&id).await.ok(),
                Act::Cancel => admin.cancel(&id).await.ok(),
            };
            acted = Some(since.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("answers")
        .expect("task");
    let what = format!("midway {act:?} (after {acted:?})");
    eprintln!("{what}: answered {:?}", answered.as_ref().map(|_| ()));
    if act == Act::Cancel {
        assert!(answered.is_ok(), "{what}: cancel absorbed: {answered:?}");
    }
    registry.repair_session(&source).await.expect("repair");
    assert_settled(&registry, &[&source, &destination], &ids, &what).await;
    let placed = placement(&registry, &[&source, &destination], &ids).await;
    let in_source = placed
        .values()
        .filter(|(held, _)| *held == vec![from.id()])
        .count();
    let in_destination = placed
        .values()
        .filter(|(held, _)| *held == vec![to.id()])
        .count();
    assert!(
        in_destination == ids.len() || (in_source == ids.len() && answered.is_err()),
        "{what}: {in_source} in A, {in_destination} in B of {}",
        ids.len()
    );
}

/// A session delete while a task grants a new process into the session
/// every ~30 ms: it returns within a bound, reports only grants made before
/// it returned, revokes every grant made before it began, and keeps every
/// grant made after it returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_delete_under_a_grant_stream_ends() {
    let registry = common::registry();
    let session = common::unique("stream");
    let scope = SessionScope::session(&session);
    let before = register_granted(&registry, &scope, "pre", 30).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (granter, flag, stream_scope) = (registry.clone(), stop.clone(), scope.clone());
    // (process id, grant started, grant acknowledged)
    let stream = tokio::spawn(async move {
        let mut made = Vec::new();
        let started_at = Instant::now();
        while !flag.load(std::sync::atomic::Ordering::Relaxed)
            && started_at.elapsed() < Duration::from_secs(60)
        {
            let id = common::unique("streamed");
            granter
                .register_process(typed(&id))
                .await
                .expect("register");
            let started = Instant::now();
            granter
                .grant_handle(&stream_scope, &id, descriptor("s"))
                .await
                .expect("grant");
            made.push((id, started, Instant::now()));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        made
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delete_started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        registry.delete_session_process_state(&session),
    )
    .await
    .expect("the delete returns while grants keep arriving")
    .expect("delete");
    let delete_returned = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = stream.await.expect("stream");
    let may_report: BTreeSet<&str> = before
        .iter()
        .map(String::as_str)
        .chain(
            made.iter()
                .filter(|(_, started, _)| *started < delete_returned)
                .map(|(id, _, _)| id.as_str()),
        )
        .collect();
    for id in &report.orphaned_process_ids {
        assert!(
            may_report.contains(id.as_str()),
            "reported `{id}`, granted after"
        );
    }
    assert!(report.revoked_handle_count as usize <= may_report.len());
    assert!(report.revoked_handle_count >= before.len() as u64);
    let left: BTreeSet<String> = registry
        .session_grants(&session)
        .await
        .expect("grants")
        .into_iter()
        .map(|grant| grant.process_id)
        .collect();
    for id in &before {
        assert!(
            !left.contains(id),
            "`{id}`, granted before the delete, survived it"
        );
    }
    let acknowledged_before: Vec<&String> = made
        .iter()
        .filter(|(_, _, acked)| *acked < delete_started)
        .map(|(id, _, _)| id)
        .collect();
    for id in acknowledged_before {
        assert!(
            !left.contains(id),
            "`{id}`, granted before the delete, survived it"
        );
    }
    let after: Vec<&String> = made
        .iter()
        .filter(|(_, started, _)| *started > delete_returned)
        .map(|(id, _, _)| id)
        .collect();
    assert!(!after.is_empty(), "the stream went on after the delete");
    for id in after {
        assert!(
            left.contains(id),
            "`{id}`, granted after the delete, was lost"
        );
        assert!(!report.orphaned_process_ids.contains(id));
    }
    // Every grant is exactly where its process says it is.
    let all: Vec<String> = made.iter().map(|(id, _, _)| id.clone()).collect();
    assert_settled(&registry, &[&session], &all, "stream").await;
    assert!(
        delete_returned - delete_started < Duration::from_secs(20),
        "took {:?}",
        delete_returned - delete_started
    );
}

/// A prune's one-way `drop_pruned` delivered late (here certainly, by the
/// `prune.late_drop` point) cannot erase the grant the re-registered id got.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_prune_message_keeps_the_next_incarnations_grant() {
    let registry = common::registry();
    let id = format!("cut.prune.late_drop.{}", common::unique("p"));
    let session = common::unique("late");
    let scope = SessionScope::session(&session);
    registry
        .register_process(typed(&id))
        .await
        .expect("register");
    registry
        .grant_handle(&scope, &id, descriptor("d"))
        .await
        .expect("grant");
    registry
        .complete_process(&id, ProcessAwaitOutput::success(json!({})))
        .await
        .expect("complete");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = restate_process_registry::unix_now_ms() + 1;
    let pruned = registry
        .prune_terminal_processes(cutoff)
        .await
        .expect("prune");
    assert!(pruned.pruned_processes >= 1);
    registry
        .register_process(typed(&id))
        .await
        .expect("re-register");
    registry
        .grant_handle(&scope, &id, descriptor("d"))
        .await
        .expect("grant again");
    // The late message lands (3 s after the prune) and is handled.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = registry.session_grants(&session).await.expect("grants");
    assert_eq!(
        held.len(),
        1,
        "the session lost the new incarnation's grant"
    );
    let mirrored = registry
        .handle_grants_for_process(&id)
        .await
        .expect("mirror");
    assert_eq!(mirrored.len(), 1);
    assert_settled(&registry, &[&session], &[id], "late drop").await;
}

/// Raw ingress call answering JSON.
async fn call(path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/{path}", common::urls().ingress))
        .json(&body)
        .send()
        .await
        .expect("ingress answers");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// After most members leave, a walk over a keyed set reads few pages: the
/// session's grant set (revokes) and a directory shard (prune).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_sets_shrink_after_removals() {
    let registry = common::registry();
    // Grants: 300 in, 290 revoked; one page of 256 slots holds the rest.
    let session = common::unique("shrink");
    let scope = SessionScope::session(&session);
    let ids = register_granted(&registry, &scope, "shrink", 300).await;
    for id in &ids[..290] {
        registry.revoke_handle(&scope, id).await.expect("revoke");
    }
    let page = call(&format!("SessionGrants/{session}/all"), json!(0)).await;
    assert_eq!(page["grants"].as_array().map(Vec::len), Some(10), "{page}");
    assert_eq!(
        page["next_cursor"],
        Value::Null,
        "one page holds every member"
    );

    // Directory: 300 rows in one shard, 295 pruned; a walk of 16-slot pages
    // over the shard reads at most a page per 16 live rows, plus one.
    let shard = directory_shard(&common::unique("probe"));
    let mut rows = Vec::new();
    while rows.len() < 300 {
        let id = common::unique("dir");
        if directory_shard(&id) == shard {
            rows.push(id);
        }
    }
    for id in &rows {
        registry
            .register_process(typed(id))
            .await
            .expect("register");
    }
    for id in &rows[..295] {
        registry
            .complete_process(id, ProcessAwaitOutput::success(json!({})))
            .await
            .expect("complete");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    registry
        .prune_terminal_processes(restate_process_registry::unix_now_ms() + 1)
        .await
        .expect("prune");
    let mut pages = 0;
    let mut listed = 0;
    let mut cursor = 0u64;
    loop {
        pages += 1;
        let page = call(
            &format!("ProcessDirectory/{shard}/list"),
            json!({ "filter": null, "cursor": cursor, "limit": 16 }),
        )
        .await;
        listed += page["rows"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_u64() {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert!(listed >= 5, "the live rows are listed ({listed})");
    // Live rows of the shard: ours and whatever other tests left there.
    assert!(
        pages <= listed.div_ceil(16) + 2,
        "{pages} pages for {listed} live rows"
    );
}

/// A session whose grant set the previous release wrote, with holes on a
/// free list, still reads and works: inserts refill the holes, a removal
/// whose last slot is a hole threads the list as before, one whose last
/// slot is a member swap-removes, and a delete revokes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_set_with_an_old_free_list_reads_and_works() {
    let registry = common::registry();
    let session = common::unique("legacy");
    let scope = SessionScope::session(&session);
    let ids = register_granted(&registry, &scope, "legacy", 3).await;
    let grants: BTreeMap<String, Value> = registry
        .session_grants(&session)
        .await
        .expect("grants")
        .into_iter()
        .map(|grant| {
            let json = serde_json::to_value(&grant).expect("grant json");
            (grant.process_id, json)
        })
        .collect();
    let member = |id: &str| format!("{}\n{id}", scope.id());
    let bytes = |value: Value| json!(serde_json::to_vec(&value).expect("bytes"));
    // Slots: 0 = ids[0], 1 = hole → 3, 2 = ids[2], 3 = hole (end); ids[1]
    // is left out (revoked below, through the registry, to clear its mirror).
    let mut state = serde_json::Map::new();
    state.insert(
        "grants/head".into(),
        bytes(json!({ "slots": 4, "len": 2, "free": 1 })),
    );
    state.insert(
        "grants/s/0".into(),
        bytes(json!({ "Member": member(&ids[0]) })),
    );
    state.insert("grants/s/1".into(), bytes(json!({ "Free": 3 })));
    state.insert(
        "grants/s/2".into(),
        bytes(json!({ "Member": member(&ids[2]) })),
    );
    state.insert("grants/s/3".into(), bytes(json!({ "Free": null })));
    for (slot, id) in [(0, &ids[0]), (2, &ids[2])] {
        state.insert(format!("grants/m/{}", member(id)), bytes(json!(slot)));
        state.insert(format!("g/{}", member(id)), bytes(grants[id].clone()));
    }
    let written = reqwest::Client::new()
        .post(format!(
            "{}/services/SessionGrants/state",
            common::urls().admin
        ))
        .json(&json!({ "object_key": session, "new_state": state }))
        .send()
        .await
        .expect("admin answers");
    assert!(written.status().is_success(), "{:?}", written.text().await);
    // The admin API applies the change asynchronously.
    let deadline = Instant::now() + PATIENCE;
    while registry
        .session_grants(&session)
        .await
        .expect("grants")
        .len()
        != 2
    {
        assert!(Instant::now() < deadline, "the old layout never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    registry
        .revoke_handle(&scope, &ids[1])
        .await
        .expect("revoke");
    // Last slot a hole: the freed slot goes onto the list (2 → 1 → 3).
    registry
        .revoke_handle(&scope, &ids[2])
        .await
        .expect("revoke");
    let mut more = Vec::new();
    for n in 0..4 {
        let id = common::unique(&format!("legacy-new-{n}"));
        registry
            .register_process(typed(&id))
            .await
            .expect("register");
        registry
            .grant_handle(&scope, &id, descriptor("n"))
            .await
            .expect("grant into a refilled hole");
        more.push(id);
    }
    // Dense again: the last member swap-removes into slot 0.
    registry
        .revoke_handle(&scope, &ids[0])
        .await
        .expect("revoke");
    let page = call(&format!("SessionGrants/{session}/all"), json!(0)).await;
    let listed: BTreeSet<String> = page["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(|grant| grant["process_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(listed, more.iter().cloned().collect(), "{page}");
    let every: Vec<String> = ids.iter().chain(&more).cloned().collect();
    assert_settled(&registry, &[&session], &every, "old free list").await;
    let report = registry
        .delete_session_process_state(&session)
        .await
        .expect("delete");
    assert_eq!(report.revoked_handle_count, 4, "{report:?}");
    assert!(registry
        .session_grants(&session)
        .await
        .expect("grants")
        .is_empty());
    assert_settled(&registry, &[&session], &every, "old free list, deleted").await;
}
