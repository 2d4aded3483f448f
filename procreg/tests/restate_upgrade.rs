//! Upgrade: state that the previous release (fb6834a) really wrote, read
//! and driven by this release.
//!
//! `procreg/tests/fixtures/state-fb6834a.json` was captured by running that
//! release's own `RestateProcessRegistry` against its own services on a
//! real restate-server and dumping the server's `state` table; it also
//! holds what that release's client answered for every read. This test
//! writes those state rows, byte for byte, into a fresh server serving
//! the CURRENT services (admin API), then checks that every read answers
//! what the old release answered, modulo the documented shape changes, and
//! that every write path still works on the old state.

// The services tests' stack helpers; this test lives here because it also
// runs the `check` walk, which is procreg's.
#[path = "../../services/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use procreg::check::check;
use restate_process_registry::rules::append::wake_id;
use restate_process_registry::testing::support::{ALERT, BEACON, NOTE, PING};
use restate_process_registry::{
    unix_now_ms, LeaseOwnerIdentity, LeaseOwnerLiveness, ProcessAwaitOutput, ProcessEvent,
    ProcessEventAppendRequest, ProcessLease, ProcessLeaseClaimOutcome, ProcessLeaseCompletion,
    ProcessListFilter, ProcessRegistration, ProcessRegistry, ProcessSessionDeleteReport,
    ProcessStarted, RestateProcessRegistry, SessionScope,
};
use serde::Serialize;
use serde_json::{json, Value};

/// The release that wrote the fixture.
const RELEASE: &str = "fb6834a";
/// The fixture's ids, as the capture named them.
const RUNNING: &str = "upgrade/running";
const DONE: &str = "upgrade/done";
const LARGE: &str = "upgrade/large";
/// Leased (and first started) by an owner without a host, which that
/// release accepted.
const HOSTLESS: &str = "upgrade/hostless";
/// The capture's sessions: A is the running row's wake target; B holds a
/// frame grant on two rows, a session grant on the large one, and the
/// wakes redirected by `wake_target_scope`.
const SESSION_A: &str = "upgrade-session-a";
const SESSION_B: &str = "upgrade-session-b";
const FRAME: &str = "frame-1";
/// A session this release creates, to move an old grant to.
const SESSION_C: &str = "upgrade-session-c";
/// How many state rows the capture dumped (a guard against an emptied fixture).
const STATE_ROWS: usize = 105;
const TTL_MS: u64 = 60_000;

/// One stored state value of the fixture.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct StateRow {
    service: String,
    object_key: String,
    state_key: String,
    value: Vec<u8>,
}

struct Fixture {
    rows: Vec<StateRow>,
    expected: Value,
}

fn load_fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/state-fb6834a.json"
    );
    let text = std::fs::read_to_string(path).expect("the fixture is in the repository");
    let fixture: Value = serde_json::from_str(&text).expect("the fixture is JSON");
    assert_eq!(
        fixture["release"], RELEASE,
        "fixture of the expected release"
    );
    let rows = fixture["state"]
        .as_array()
        .expect("fixture has state rows")
        .iter()
        .map(|row| {
            let text = |field: &str| {
                row[field]
                    .as_str()
                    .unwrap_or_else(|| panic!("state row without `{field}`: {row}"))
                    .to_owned()
            };
            let value = match (row.get("utf8"), row.get("hex")) {
                (Some(Value::String(utf8)), _) => utf8.as_bytes().to_vec(),
                (_, Some(Value::String(hex))) => decode_hex(hex),
                _ => panic!("state row without a value: {row}"),
            };
            StateRow {
                service: text("service"),
                object_key: text("key"),
                state_key: text("state_key"),
                value,
            }
        })
        .collect();
    Fixture {
        rows,
        expected: fixture["expected"].clone(),
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len() % 2 == 0, "odd-length hex: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex digits"))
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The leases of the fixture were claimed for 30 days. A run after they
/// lapsed would test an expired lease instead of a live one, so only then
/// is the lapse moved forward: the one number `expires_at_epoch_ms` in the
/// stored lease slot, never its shape. Answers how many slots changed.
fn keep_leases_live(rows: &mut [StateRow], expected: &mut Value, now_ms: u64) -> usize {
    let mut moved = 0;
    let later = now_ms + 24 * 60 * 60 * 1000;
    for row in rows.iter_mut().filter(|row| row.state_key == "lease") {
        let slot: Value = serde_json::from_slice(&row.value).expect("a lease slot is JSON");
        let Some(expires) = slot["lease"]["expires_at_epoch_ms"].as_u64() else {
            continue;
        };
        if expires > later {
            continue;
        }
        let old = format!("\"expires_at_epoch_ms\":{expires}");
        let text = String::from_utf8(row.value.clone()).expect("a lease slot is UTF-8");
        assert!(text.contains(&old), "lease slot as the release wrote it");
        row.value = text
            .replace(&old, &format!("\"expires_at_epoch_ms\":{later}"))
            .into_bytes();
        expected["processes"][&row.object_key]["lease"]["expires_at_epoch_ms"] = json!(later);
        moved += 1;
    }
    moved
}

/// Writes every object's state through the admin API, then waits until
/// the server's `state` table holds exactly the fixture's rows.
async fn inject(rows: &[StateRow]) {
    let mut objects: BTreeMap<(&str, &str), serde_json::Map<String, Value>> = BTreeMap::new();
    for row in rows {
        objects
            .entry((row.service.as_str(), row.object_key.as_str()))
            .or_default()
            .insert(row.state_key.clone(), json!(row.value));
    }
    let client = reqwest::Client::new();
    for ((service, key), state) in &objects {
        let response = client
            .post(format!("{}/services/{service}/state", common::urls().admin))
            .json(&json!({ "object_key": key, "new_state": state }))
            .send()
            .await
            .expect("admin answers");
        let status = response.status();
        assert!(
            status.is_success(),
            "writing {service}/{key}: {status} {:?}",
            response.text().await
        );
    }
    let want: BTreeSet<(String, String, String, String)> = rows
        .iter()
        .map(|row| {
            (
                row.service.clone(),
                row.object_key.clone(),
                row.state_key.clone(),
                encode_hex(&row.value),
            )
        })
        .collect();
    let mut stored = BTreeSet::new();
    for _ in 0..200 {
        stored = common::admin_query("SELECT service_name, service_key, key, value FROM state")
            .await
            .iter()
            .map(|row| {
                let text = |field: &str| row[field].as_str().unwrap_or_default().to_owned();
                (
                    text("service_name"),
                    text("service_key"),
                    text("key"),
                    text("value"),
                )
            })
            .collect();
        if stored == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing: Vec<_> = want.difference(&stored).collect();
    let extra: Vec<_> = stored.difference(&want).collect();
    panic!("the state table never matched the fixture: missing {missing:?}, extra {extra:?}");
}

/// What the previous release answered, in this release's shapes: every
/// lease owner `{owner_id, incarnation, host, pid}` becomes `{owner_id,
/// incarnation_id, liveness: local_process with that host and pid and an
/// unknown boot and start}` (an opaque liveness when the host was empty),
/// and a first start loses its `fencing_token`.
/// Everything else must read back unchanged.
fn in_current_shapes(old: &Value) -> Value {
    match old {
        Value::Object(map) => {
            let mut map: serde_json::Map<String, Value> = map
                .iter()
                .map(|(key, value)| (key.clone(), in_current_shapes(value)))
                .collect();
            if map.contains_key("owner_id") && map.contains_key("incarnation") {
                let incarnation = map.remove("incarnation").expect("checked");
                let host = map.remove("host").expect("an old owner has a host");
                let pid = map.remove("pid").expect("an old owner has a pid");
                map.insert("incarnation_id".into(), incarnation);
                let liveness = if host == "" {
                    json!({ "kind": "opaque" })
                } else {
                    json!({
                        "kind": "local_process",
                        "host_id": host,
                        "boot_id": "",
                        "pid": pid,
                        "process_start": "",
                    })
                };
                map.insert("liveness".into(), liveness);
            }
            if let Some(Value::Object(started)) = map.get_mut("first_started") {
                started.remove("fencing_token");
            }
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.iter().map(in_current_shapes).collect()),
        scalar => scalar.clone(),
    }
}

fn as_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("answers serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|err| panic!("{what}: {err}"))
}

fn scope_a() -> SessionScope {
    SessionScope::session(SESSION_A)
}

fn scope_b() -> SessionScope {
    SessionScope::session(SESSION_B)
}

fn frame() -> SessionScope {
    SessionScope::frame(SESSION_B, FRAME)
}

/// The old owner as this release reads it.
fn old_owner(tag: &str) -> LeaseOwnerIdentity {
    LeaseOwnerIdentity {
        owner_id: format!("old-worker-{tag}"),
        incarnation_id: format!("old-incarnation-{tag}"),
        liveness: LeaseOwnerLiveness::local_process_with("old-host", "", 4242, ""),
    }
}

fn acquired(outcome: ProcessLeaseClaimOutcome, what: &str) -> ProcessLease {
    match outcome {
        ProcessLeaseClaimOutcome::Acquired(lease) => lease,
        other => panic!("{what}: expected Acquired, got {other:?}"),
    }
}

fn busy_holder(outcome: ProcessLeaseClaimOutcome, what: &str) -> ProcessLease {
    match outcome {
        ProcessLeaseClaimOutcome::Busy { holder } => holder,
        other => panic!("{what}: expected Busy, got {other:?}"),
    }
}

/// Every read answers what the previous release answered.
async fn reads_answer_as_before(registry: &RestateProcessRegistry, expected: &Value) -> usize {
    let processes = expected["processes"]
        .as_object()
        .expect("expected answers per process");
    for (id, old) in processes {
        let record = registry
            .try_get_process(id)
            .await
            .unwrap_or_else(|err| panic!("{id}: get_process failed: {err}"))
            .unwrap_or_else(|| panic!("{id}: the old row is unknown"));
        assert_eq!(
            as_json(&record),
            in_current_shapes(&old["record"]),
            "{id}: get_process"
        );
        let events = registry.events_after(id, 0).await.expect("events_after");
        assert_eq!(
            as_json(&events),
            in_current_shapes(&old["events"]),
            "{id}: events_after"
        );
        let wakes = registry
            .wake_events_after(id, 0)
            .await
            .expect("wake_events_after");
        assert_eq!(
            as_json(&wakes),
            in_current_shapes(&old["wake_events"]),
            "{id}: wake_events_after"
        );
        let lease = registry
            .get_process_lease(id)
            .await
            .expect("get_process_lease");
        assert_eq!(
            as_json(&lease),
            in_current_shapes(&old["lease"]),
            "{id}: get_process_lease"
        );
        let grants = registry
            .handle_grants_for_process(id)
            .await
            .expect("handle_grants_for_process");
        assert_eq!(
            as_json(&grants),
            in_current_shapes(&old["grants"]),
            "{id}: handle_grants_for_process"
        );
        for grant in &grants {
            let scope = match grant.scope_id.split_once("/frame:") {
                Some((_, frame_id)) => SessionScope::frame(&grant.session_id, frame_id),
                None => SessionScope::session(&grant.session_id),
            };
            assert_eq!(scope.id(), grant.scope_id, "{id}: scope of {grant:?}");
            assert!(
                registry
                    .has_handle_grant(&scope, id)
                    .await
                    .expect("has_handle_grant"),
                "{id}: has_handle_grant for {}",
                grant.scope_id
            );
        }
    }

    // The changed shapes, field by field, on the running row.
    let running = registry.get_process(RUNNING).await.expect("running row");
    let started = running.first_started.as_ref().expect("first start kept");
    assert_eq!(started.owner, old_owner("running"), "first start's owner");
    assert_eq!(started.started_at_ms, 1_700_000_000_000);
    let lease = registry
        .get_process_lease(RUNNING)
        .await
        .expect("lease")
        .expect("the old live lease");
    assert_eq!(lease.owner, old_owner("running"), "lease owner");
    assert_eq!(lease.fencing_token, 1);
    assert!(lease.expires_at_epoch_ms > unix_now_ms(), "still live");
    let events = registry.events_after(RUNNING, 0).await.expect("events");
    let keys: Vec<_> = events
        .iter()
        .filter_map(|event| event.semantics.wake.as_ref())
        .map(|wake| wake.dedupe_key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "upgrade/running#1",
            "k1",
            "k1",
            "beacon",
            "beacon",
            "upgrade/running#6"
        ],
        "old event-identity keys keep their `#`"
    );
    let large = registry.get_process(LARGE).await.expect("large row");
    assert!(
        serde_json::to_vec(&large).expect("json").len() > 4096,
        "the large record is over 4 KiB"
    );

    // Listings: the directory and each session's grants.
    let listing = registry
        .list_processes(&ProcessListFilter::any())
        .await
        .expect("list_processes");
    assert_eq!(
        as_json(&listing),
        in_current_shapes(&expected["list_processes_any"]),
        "list_processes(any)"
    );
    let running_only = registry
        .list_processes(&ProcessListFilter::default())
        .await
        .expect("list running");
    let running_ids: Vec<_> = running_only.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        running_ids,
        [HOSTLESS, LARGE, RUNNING],
        "list_processes(running)"
    );
    let scopes = expected["scopes"].as_object().expect("expected scopes");
    assert_eq!(scopes.len(), 3, "three scopes captured");
    for (scope_id, old) in scopes {
        let scope: SessionScope = from_json(&old["scope"], "scope");
        assert_eq!(&scope.id(), scope_id);
        let grants = registry
            .list_handle_grants(&scope)
            .await
            .expect("list_handle_grants");
        assert_eq!(
            as_json(&grants),
            in_current_shapes(&old["grants"]),
            "list_handle_grants({scope_id})"
        );
    }
    assert!(
        !registry
            .has_handle_grant(&scope_a(), LARGE)
            .await
            .expect("has_handle_grant"),
        "a scope without a grant holds none"
    );
    assert!(
        !registry
            .has_handle_grant(&scope_b(), RUNNING)
            .await
            .expect("has_handle_grant"),
        "the session does not hold what only its frame holds"
    );

    // The operator's consistency walk agrees with the old state.
    let report = check(registry).await.expect("check runs");
    assert!(report.is_clean(), "check: {:?}", report.problems);
    assert_eq!((report.processes, report.grants), (4, 5), "check counts");

    // Registering an old row again with its registration is the same row.
    let old_record: Value = expected["processes"][RUNNING]["record"].clone();
    let registration: ProcessRegistration = from_json(&old_record, "registration of the old row");
    let again = registry
        .register_process(registration)
        .await
        .expect("re-registering the same registration");
    assert_eq!(again, running, "re-registration answers the stored row");

    processes.len()
}

/// The old live lease: never provably dead, renewable and releasable by its
/// holder; a claim after release gets the next fence.
async fn leases_continue(registry: &RestateProcessRegistry, expected: &Value) {
    let old: ProcessLease = from_json(
        &in_current_shapes(&expected["processes"][RUNNING]["lease"]),
        "old lease",
    );
    let stranger = LeaseOwnerIdentity::opaque("new-worker", "new-incarnation");
    let holder = busy_holder(
        registry
            .claim_process_lease(RUNNING, &stranger, TTL_MS)
            .await
            .expect("claim"),
        "a new claimant on the old live lease",
    );
    assert_eq!(holder, old, "Busy names the old holder");
    // A claimant on the old holder's host id, even with real liveness, can
    // never prove an owner recorded before liveness dead.
    let neighbour = LeaseOwnerIdentity::local_process("new-worker", "neighbour", "old-host");
    for claimant in [&stranger, &neighbour] {
        let holder = busy_holder(
            registry
                .reclaim_process_lease(RUNNING, claimant, &old, TTL_MS)
                .await
                .expect("reclaim"),
            "a reclaim of the old live lease",
        );
        assert_eq!(holder, old, "reclaim Busy names the old holder");
    }
    // The old holder re-entering its claim keeps the lease and its fence.
    let reentered = acquired(
        registry
            .claim_process_lease(RUNNING, &old_owner("running"), TTL_MS * 10)
            .await
            .expect("re-entry"),
        "the old holder claiming again",
    );
    assert_eq!(
        (reentered.lease_token.as_str(), reentered.fencing_token),
        (old.lease_token.as_str(), old.fencing_token)
    );
    let renewed = registry
        .renew_process_lease(&old, TTL_MS * 10)
        .await
        .expect("renewing the old lease");
    assert_eq!(renewed.lease_token, old.lease_token);
    assert_eq!(renewed.fencing_token, old.fencing_token);
    assert_eq!(renewed.owner, old.owner);
    registry
        .complete_process_lease(&ProcessLeaseCompletion::from(&old))
        .await
        .expect("releasing the old lease");
    assert_eq!(
        registry.get_process_lease(RUNNING).await.expect("lease"),
        None,
        "released"
    );
    let next = acquired(
        registry
            .claim_process_lease(RUNNING, &stranger, TTL_MS)
            .await
            .expect("claim after release"),
        "a claim after the old lease was released",
    );
    assert_eq!(next.fencing_token, old.fencing_token + 1, "next fence");
    // The old first start stays the first one: the first writer won.
    let started = registry
        .record_first_started(
            RUNNING,
            ProcessStarted {
                owner: stranger.clone(),
                started_at_ms: unix_now_ms(),
            },
        )
        .await
        .expect("a later first start");
    assert_eq!(
        started
            .first_started
            .map(|first| (first.owner, first.started_at_ms)),
        Some((old_owner("running"), 1_700_000_000_000)),
        "the old release's first start is kept"
    );
    registry
        .complete_process_lease(&ProcessLeaseCompletion::from(&next))
        .await
        .expect("release");
    // The large row's lease was released by the old release (fence 1).
    let large = acquired(
        registry
            .claim_process_lease(LARGE, &stranger, TTL_MS)
            .await
            .expect("claim large"),
        "a claim on a row whose old lease was released",
    );
    assert_eq!(large.fencing_token, 2, "above the old release's fence");
    registry
        .complete_process_lease(&ProcessLeaseCompletion::from(&large))
        .await
        .expect("release large");
}

/// The release accepted an owner with an empty host: its live lease is
/// still Busy to others, and still renewable, reclaimable-as-Busy and
/// releasable with the lease as this release reads it.
async fn hostless_lease_continues(registry: &RestateProcessRegistry, expected: &Value) {
    let hostless = LeaseOwnerIdentity::opaque("old-worker-hostless", "old-incarnation-hostless");
    let record = registry.get_process(HOSTLESS).await.expect("hostless row");
    assert_eq!(
        record.first_started.map(|first| first.owner),
        Some(hostless.clone()),
        "a host-less first start reads as an opaque owner"
    );
    let old: ProcessLease = from_json(
        &in_current_shapes(&expected["processes"][HOSTLESS]["lease"]),
        "old host-less lease",
    );
    let stored = registry
        .get_process_lease(HOSTLESS)
        .await
        .expect("lease")
        .expect("the old live lease");
    assert_eq!(stored, old);
    assert_eq!(stored.owner, hostless, "an opaque owner");
    let stranger = LeaseOwnerIdentity::local_process("new-worker", "hostless-claimant", "old-host");
    let holder = busy_holder(
        registry
            .claim_process_lease(HOSTLESS, &stranger, TTL_MS)
            .await
            .expect("claim"),
        "a claim on the host-less live lease",
    );
    assert_eq!(holder, old);
    let holder = busy_holder(
        registry
            .reclaim_process_lease(HOSTLESS, &stranger, &holder, TTL_MS)
            .await
            .expect("a reclaim naming the host-less holder is answered"),
        "a reclaim of the host-less live lease",
    );
    assert_eq!(holder, old);
    let renewed = registry
        .renew_process_lease(&old, TTL_MS * 10)
        .await
        .expect("renewing the host-less lease");
    assert_eq!(
        (renewed.lease_token.as_str(), renewed.fencing_token),
        (old.lease_token.as_str(), old.fencing_token)
    );
    registry
        .complete_process_lease(&ProcessLeaseCompletion::from(&renewed))
        .await
        .expect("releasing the host-less lease");
    let next = acquired(
        registry
            .claim_process_lease(HOSTLESS, &stranger, TTL_MS)
            .await
            .expect("claim after release"),
        "a claim after the host-less lease was released",
    );
    assert_eq!(next.fencing_token, old.fencing_token + 1);
}

/// New wakes on the old row are delivered with a wake id; old wakes are
/// acked; old replay keys answer the old events.
async fn wakes_and_replays_continue(registry: &RestateProcessRegistry, expected: &Value) {
    let old_events: Vec<ProcessEvent> =
        from_json(&expected["processes"][RUNNING]["events"], "old events");
    assert_eq!(old_events.len(), 8, "the old log");
    let a = scope_a();
    let b = scope_b();

    let alert = registry
        .append_event(
            RUNNING,
            ProcessEventAppendRequest::new(ALERT, json!({ "n": 3 })),
        )
        .await
        .expect("a new wake on the old row");
    assert!(!alert.deduplicated);
    assert_eq!(alert.event.sequence, 9, "continues the old log");
    let delivery = alert.wake_delivery.expect("delivered to the wake target");
    assert_eq!(delivery.scope, a);
    assert_eq!(delivery.dedupe_key, "upgrade/running:9", "new key shape");
    assert_eq!(delivery.wake_id, wake_id(&a, "upgrade/running:9"));
    assert_eq!(
        (delivery.sequence, delivery.event_type.as_str()),
        (9, ALERT)
    );

    // A selector key the old release marked delivered (`d/k1`) is delivered
    // now, under the wake id a replay of the old event also answers.
    let ping = registry
        .append_event(
            RUNNING,
            ProcessEventAppendRequest::new(
                PING,
                json!({ "wake": true, "input": "in-3", "key": "k1" }),
            ),
        )
        .await
        .expect("a repeated selector key");
    let ping_delivery = ping.wake_delivery.expect("delivered");
    assert_eq!(ping_delivery.wake_id, wake_id(&a, "k1"));
    let beacon = registry
        .append_event(
            RUNNING,
            ProcessEventAppendRequest::new(BEACON, json!({ "third": true }))
                .with_wake_target_scope(b.clone()),
        )
        .await
        .expect("a repeated const key");
    let beacon_delivery = beacon.wake_delivery.expect("delivered");
    assert_eq!(beacon_delivery.scope, b);
    assert_eq!(beacon_delivery.wake_id, wake_id(&b, "beacon"));

    // Old replay keys: the old event, deduplicated, its delivery answered again.
    let replayed = registry
        .append_event(
            RUNNING,
            ProcessEventAppendRequest::new(
                PING,
                json!({ "wake": true, "input": "in-1", "key": "k1" }),
            )
            .with_replay_key("ping-1"),
        )
        .await
        .expect("replaying an old replay key");
    assert!(replayed.deduplicated, "deduplicated");
    assert_eq!(replayed.event, old_events[1], "the old event");
    let again = replayed.wake_delivery.expect("the old delivery again");
    assert_eq!(
        (again.sequence, again.wake_id.as_str()),
        (2, ping_delivery.wake_id.as_str())
    );
    let replayed = registry
        .append_event(
            RUNNING,
            ProcessEventAppendRequest::new(ALERT, json!({ "n": 2 }))
                .with_wake_target_scope(b.clone())
                .with_replay_key("alert-2"),
        )
        .await
        .expect("replaying an old redirected wake");
    assert!(replayed.deduplicated);
    assert_eq!(replayed.event, old_events[5]);
    let again = replayed.wake_delivery.expect("redirected delivery");
    assert_eq!(again.scope, b);
    assert_eq!(again.dedupe_key, "upgrade/running#6", "the old key");
    let replayed = registry
        .append_event(
            RUNNING,
            ProcessEventAppendRequest::new(NOTE, json!({ "x": 1 })).with_replay_key("note-1"),
        )
        .await
        .expect("replaying an old note");
    assert!(replayed.deduplicated);
    assert_eq!(replayed.event, old_events[6]);
    assert_eq!(replayed.wake_delivery, None);
    let conflict = registry
        .append_event(
            RUNNING,
            ProcessEventAppendRequest::new(NOTE, json!({ "x": 2 })).with_replay_key("note-1"),
        )
        .await;
    assert!(
        conflict.is_err(),
        "an old replay key with another event: {conflict:?}"
    );

    // Acks: an old unacknowledged wake goes, the old acked one stays gone.
    let before: Vec<u64> = registry
        .wake_events_after(RUNNING, 0)
        .await
        .expect("wakes")
        .iter()
        .map(|event| event.sequence)
        .collect();
    assert_eq!(
        before,
        [2, 3, 4, 5, 6, 9, 10, 11],
        "old unacked and new wakes"
    );
    registry
        .ack_wake(RUNNING, 2)
        .await
        .expect("ack an old wake");
    registry
        .ack_wake(RUNNING, 3)
        .await
        .expect("ack an old wake the old release did not deliver");
    registry
        .ack_wake(RUNNING, 1)
        .await
        .expect("re-ack the acked one");
    registry.ack_wake(RUNNING, 9).await.expect("ack a new wake");
    let after: Vec<u64> = registry
        .wake_events_after(RUNNING, 0)
        .await
        .expect("wakes")
        .iter()
        .map(|event| event.sequence)
        .collect();
    assert_eq!(after, [4, 5, 6, 10, 11]);
    let from_five: Vec<u64> = registry
        .wake_events_after(RUNNING, 5)
        .await
        .expect("wakes")
        .iter()
        .map(|event| event.sequence)
        .collect();
    assert_eq!(from_five, [6, 10, 11], "the old ordinal index still jumps");
    let cleared = registry
        .clear_process_wait(RUNNING)
        .await
        .expect("clearing the old wait");
    assert_eq!(cleared.wait, None);
    assert_eq!(
        registry
            .count_events_through(RUNNING, PING, 10)
            .await
            .expect("count"),
        3,
        "old per-type counts continue"
    );
}

/// Session deletes over old grants: revoked, orphaned only for live rows,
/// wake events kept.
async fn session_deletes_report_old_grants(registry: &RestateProcessRegistry) {
    let wakes_before = registry.wake_events_after(RUNNING, 0).await.expect("wakes");
    let events_before = registry.events_after(RUNNING, 0).await.expect("events");
    // An old grant moves to a new session through the session authorities.
    let c = SessionScope::session(SESSION_C);
    registry
        .transfer_handle_grants(&scope_b(), &c, &[LARGE.to_owned()])
        .await
        .expect("transferring an old grant");
    let moved: Vec<_> = registry
        .list_handle_grants(&c)
        .await
        .expect("C grants")
        .into_iter()
        .map(|(grant, record)| (grant.process_id, grant.descriptor.label, record.id))
        .collect();
    assert_eq!(
        moved,
        [(LARGE.to_owned(), "large-b".to_owned(), LARGE.to_owned())]
    );
    assert!(registry.has_handle_grant(&c, LARGE).await.expect("has"));
    assert!(!registry
        .has_handle_grant(&scope_b(), LARGE)
        .await
        .expect("has"));
    let report = registry
        .delete_session_process_state(SESSION_B)
        .await
        .expect("delete session B");
    assert_eq!(
        report,
        ProcessSessionDeleteReport {
            session_id: SESSION_B.into(),
            revoked_handle_count: 2,
            deleted_wake_count: 0,
            orphaned_process_ids: vec![],
            preserved_process_ids: vec![RUNNING.into()],
        },
        "session B: the frame grants on running (still granted to A) and done (ended)"
    );
    assert!(registry
        .list_handle_grants(&frame())
        .await
        .expect("frame grants")
        .is_empty());
    assert!(registry
        .list_handle_grants(&scope_b())
        .await
        .expect("B grants")
        .is_empty());
    let report = registry
        .delete_session_process_state(SESSION_A)
        .await
        .expect("delete session A");
    assert_eq!(
        report,
        ProcessSessionDeleteReport {
            session_id: SESSION_A.into(),
            revoked_handle_count: 2,
            deleted_wake_count: 0,
            orphaned_process_ids: vec![RUNNING.into()],
            preserved_process_ids: vec![],
        },
        "session A: running lost its last grant, done is ended"
    );
    for id in [RUNNING, DONE] {
        assert!(
            registry
                .handle_grants_for_process(id)
                .await
                .expect("grants")
                .is_empty(),
            "{id}: no grant left"
        );
    }
    let running = registry.get_process(RUNNING).await.expect("row");
    assert_eq!(
        running.wake_target, None,
        "the wake target aimed at A is cleared"
    );
    assert_eq!(
        registry.wake_events_after(RUNNING, 0).await.expect("wakes"),
        wakes_before,
        "a session delete keeps wake events"
    );
    assert_eq!(
        registry.events_after(RUNNING, 0).await.expect("events"),
        events_before
    );
    let report = check(registry).await.expect("check runs");
    assert!(
        report.is_clean(),
        "check after deletes: {:?}",
        report.problems
    );
}

/// Completing and pruning the old rows; a pruned id registered again
/// claims above every fence issued before.
async fn prune_and_reregister(registry: &RestateProcessRegistry, expected: &Value) {
    let mut events = 0;
    for id in [RUNNING, LARGE, HOSTLESS] {
        registry
            .complete_process(id, ProcessAwaitOutput::success(json!({ "upgraded": id })))
            .await
            .unwrap_or_else(|err| panic!("{id}: completing the old row: {err}"));
    }
    for id in [RUNNING, DONE, LARGE, HOSTLESS] {
        events += registry.events_after(id, 0).await.expect("events").len() as u64;
    }
    let report = registry
        .prune_terminal_processes(unix_now_ms() + 60_000)
        .await
        .expect("prune");
    assert_eq!(
        (report.pruned_processes, report.pruned_events),
        (4, events),
        "every row and its events"
    );
    for id in [RUNNING, DONE, LARGE, HOSTLESS] {
        assert_eq!(
            registry.try_get_process(id).await.expect("get"),
            None,
            "{id}: pruned"
        );
    }
    assert!(registry
        .list_processes(&ProcessListFilter::any())
        .await
        .expect("list")
        .is_empty());
    // The pruned large row's grant (moved to C) leaves C by message.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = registry
            .list_handle_grants(&SessionScope::session(SESSION_C))
            .await
            .expect("C grants");
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "C still lists {left:?}");

    // The fences issued so far: running 1 (old) and 2 (here), done 1 (old).
    let stranger = LeaseOwnerIdentity::opaque("after-prune", "after-prune-1");
    for (id, last_fence) in [(RUNNING, 2), (DONE, 1)] {
        let old_record = &expected["processes"][id]["record"];
        let mut registration: ProcessRegistration = from_json(old_record, "registration");
        registration.wake_target = None;
        let fresh = registry
            .register_process(registration)
            .await
            .unwrap_or_else(|err| panic!("{id}: re-registering a pruned id: {err}"));
        assert!(!fresh.is_terminal(), "{id}: a new row");
        let lease = acquired(
            registry
                .claim_process_lease(id, &stranger, TTL_MS)
                .await
                .expect("claim"),
            "a claim on a re-registered id",
        );
        assert_eq!(
            lease.fencing_token,
            last_fence + 1,
            "{id}: above every fence issued before the prune"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_written_by_the_previous_release_reads_and_runs() {
    let Fixture {
        mut rows,
        mut expected,
    } = load_fixture();
    assert_eq!(rows.len(), STATE_ROWS, "state rows in the fixture");
    let services: BTreeSet<&str> = rows.iter().map(|row| row.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from([
            "ProcessDirectory",
            "ProcessObject",
            "SessionGrants",
            "SessionWakes"
        ])
    );
    // The fallback for a run after the leases lapsed works (on copies).
    let lapsed = unix_now_ms() + 31 * 24 * 60 * 60 * 1000;
    assert_eq!(
        keep_leases_live(&mut rows.clone(), &mut expected.clone(), lapsed),
        2,
        "the fixture holds two live leases"
    );
    let moved = keep_leases_live(&mut rows, &mut expected, unix_now_ms());
    if moved > 0 {
        eprintln!("the fixture's 30-day leases lapsed: moved {moved} expiry forward");
    }
    inject(&rows).await;
    let registry = common::registry();
    let ids = reads_answer_as_before(&registry, &expected).await;
    assert_eq!(ids, 4, "process ids checked");
    leases_continue(&registry, &expected).await;
    hostless_lease_continues(&registry, &expected).await;
    wakes_and_replays_continue(&registry, &expected).await;
    session_deletes_report_old_grants(&registry).await;
    prune_and_reregister(&registry, &expected).await;
}
