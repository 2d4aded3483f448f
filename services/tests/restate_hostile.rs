//! Hostile input over raw ingress HTTP, as a caller that is not our client
//! would send it: documents nested past the limit (up to and beyond what
//! serde can read), integers past 64 bits, oversized fields aimed at the
//! shared indexes, look-alike scopes, forged fences and private handlers.
//! Every refusal is a 400 (or the handler is unreachable) and writes
//! nothing; afterwards nothing in the engine is backing off or paused and
//! every touched process, listing and session index still answers.
//!
//! One test runs the whole battery in order, so the final checks see the
//! engine after all of it.

mod common;

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use restate_process_registry::restate::wire::directory_shard;
use restate_process_registry::rules::limits::{
    MAX_JSON_DEPTH, MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, MAX_TEXT_BYTES,
};
use restate_process_registry::testing::limits::{nested, text};
use restate_process_registry::testing::support::{owner, typed, NOTE};
use restate_process_registry::{
    ProcessListFilter, ProcessRecord, ProcessRegistry, RestateProcessRegistry, SessionScope,
};
use serde_json::{json, Value};

/// Longest any read may take before the battery calls it wedged.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

async fn post(path: &str, body: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/{path}", common::urls().ingress))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("ingress answers");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

async fn answers<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER_WITHIN, call)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within {ANSWER_WITHIN:?}"))
}

/// What a process looks like to readers: row, log, lease, grants.
async fn snapshot(registry: &RestateProcessRegistry, id: &str) -> Value {
    json!({
        "row": registry.try_get_process(id).await.expect("get"),
        "log": registry.events_after(id, 0).await.ok(),
        "lease": registry.get_process_lease(id).await.expect("lease"),
        "grants": registry.handle_grants_for_process(id).await.ok(),
    })
}

struct Battery {
    registry: RestateProcessRegistry,
    touched: Vec<String>,
    sessions: Vec<SessionScope>,
}

impl Battery {
    async fn process(&mut self, tag: &str) -> String {
        let id = common::unique(tag);
        self.registry.register_process(typed(&id)).await.unwrap();
        self.touched.push(id.clone());
        id
    }

    /// POSTs to a ProcessObject handler and expects a refusal that changes nothing.
    async fn refused(&self, id: &str, handler: &str, body: &str, what: &str) -> String {
        self.refused_at(id, &format!("ProcessObject/{id}/{handler}"), body, what)
            .await
    }

    /// POSTs to `path` and expects a refusal that changes nothing on `id`.
    async fn refused_at(&self, id: &str, path: &str, body: &str, what: &str) -> String {
        let before = snapshot(&self.registry, id).await;
        let (status, text) = post(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
        assert!(!text.is_empty(), "{what}: the refusal says why");
        assert_eq!(
            snapshot(&self.registry, id).await,
            before,
            "{what} changed {id}"
        );
        text
    }

    async fn accepted(&self, id: &str, handler: &str, body: &str, what: &str) -> Value {
        self.accepted_at(&format!("ProcessObject/{id}/{handler}"), body, what)
            .await
    }

    async fn accepted_at(&self, path: &str, body: &str, what: &str) -> Value {
        let (status, text) = post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{what}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_battery() {
    let mut battery = Battery {
        registry: common::registry(),
        touched: Vec::new(),
        sessions: Vec::new(),
    };
    every_handler_takes_its_limit_and_refuses_one_past(&mut battery).await;
    deep_documents_are_refused_at_every_depth(&mut battery).await;
    integers_past_64_bits_are_refused(&mut battery).await;
    list_filters_must_be_objects().await;
    oversized_fields_never_reach_a_shared_index(&mut battery).await;
    rivals_cannot_record_a_start(&mut battery).await;
    private_handlers_are_unreachable(&mut battery).await;
    undecodable_state_fails_terminally(&mut battery).await;
    nothing_is_wedged_afterwards(&battery).await;
}

/// One row per handler field: a body at the limit is accepted and reads
/// back; one byte or level past it is a 400 that changes nothing.
async fn every_handler_takes_its_limit_and_refuses_one_past(battery: &mut Battery) {
    let id = battery.process("hostile-limits").await;
    let key = text(MAX_KEY_BYTES);
    let long_key = text(MAX_KEY_BYTES + 1);
    let label = text(MAX_TEXT_BYTES);
    let long_label = text(MAX_TEXT_BYTES + 1);
    let scope = |session: &str| json!({ "session_id": session });
    let owner_named = |owner_id: &str| {
        let mut owner = owner("hostile");
        owner.owner_id = owner_id.to_owned();
        owner
    };
    let object = |handler: &str| format!("ProcessObject/{id}/{handler}");
    let grants_of = |session: &str, handler: &str| format!("SessionGrants/{session}/{handler}");
    // (path, body at the limit, body past it)
    let rows: Vec<(String, Value, Value)> = vec![
        (
            object("append"),
            json!({ "event_type": NOTE, "payload": { "n": 1 }, "replay_key": key }),
            json!({ "event_type": NOTE, "payload": { "n": 1 }, "replay_key": long_key }),
        ),
        (
            object("append"),
            json!({ "event_type": NOTE, "payload": nested(MAX_JSON_DEPTH) }),
            json!({ "event_type": NOTE, "payload": nested(MAX_JSON_DEPTH + 1) }),
        ),
        (
            object("append"),
            json!({ "event_type": NOTE, "payload": {}, "wake_target_scope": scope(&key) }),
            json!({ "event_type": NOTE, "payload": {}, "wake_target_scope": scope(&long_key) }),
        ),
        (
            grants_of(&key, "grant"),
            json!({ "scope": scope(&key), "process_id": id, "descriptor": { "kind": key, "label": label } }),
            json!({ "scope": scope(&key), "process_id": id, "descriptor": { "kind": key, "label": long_label } }),
        ),
        (
            grants_of("s", "grant"),
            json!({ "scope": { "session_id": "s", "agent_frame_id": key }, "process_id": id, "descriptor": { "kind": "k", "label": "l" } }),
            json!({ "scope": { "session_id": "s", "agent_frame_id": long_key }, "process_id": id, "descriptor": { "kind": "k", "label": "l" } }),
        ),
        (
            grants_of(&key, "revoke"),
            json!({ "scope": { "session_id": key, "agent_frame_id": "holds-nothing" }, "process_id": id }),
            json!({ "scope": { "session_id": key, "agent_frame_id": long_key }, "process_id": id }),
        ),
        (
            object("set_wait"),
            json!({ "kind": { "type": "signal", "name": key, "event_type": NOTE, "key": key, "ordinal": 1 }, "since_ms": 1 }),
            json!({ "kind": { "type": "signal", "name": long_key, "event_type": NOTE, "key": "k", "ordinal": 1 }, "since_ms": 1 }),
        ),
        (
            object("request_abandon"),
            json!({ "requested_by": key, "reason": label, "requested_at_ms": 1 }),
            json!({ "requested_by": "op", "reason": long_label, "requested_at_ms": 1 }),
        ),
        (
            object("set_external_ref"),
            json!({ "backend": key, "id": key, "metadata": nested(MAX_JSON_DEPTH) }),
            json!({ "backend": "ci", "id": long_key, "metadata": null }),
        ),
        (
            object("count_events_through"),
            json!({ "event_type": key, "up_to_sequence": 5 }),
            json!({ "event_type": long_key, "up_to_sequence": 5 }),
        ),
        (
            object("claim_lease"),
            json!({ "owner": owner_named(&key), "lease_ttl_ms": 60_000 }),
            json!({ "owner": owner_named(&long_key), "lease_ttl_ms": 60_000 }),
        ),
    ];
    for (path, at_limit, past_limit) in rows {
        let what = format!("{path} past the limit");
        battery
            .refused_at(&id, &path, &past_limit.to_string(), &what)
            .await;
        let what = format!("{path} at the limit");
        battery
            .accepted_at(&path, &at_limit.to_string(), &what)
            .await;
    }
    battery.sessions.push(SessionScope::session(&key));
    // What was accepted reads back as sent.
    let row = battery.registry.get_process(&id).await.unwrap();
    assert_eq!(row.abandon_request.unwrap().reason, label);
    assert_eq!(row.external_ref.unwrap().metadata, nested(MAX_JSON_DEPTH));
    let log = battery.registry.events_after(&id, 0).await.unwrap();
    assert_eq!(log[0].replay_key.as_deref(), Some(key.as_str()));
    assert_eq!(log[1].payload, nested(MAX_JSON_DEPTH));
    let grants = battery
        .registry
        .handle_grants_for_process(&id)
        .await
        .unwrap();
    assert!(grants.iter().any(|grant| grant.descriptor.label == label));

    // Registration: a payload-size input at the limit and one past it.
    let fresh = common::unique("hostile-register");
    let mut registration = typed(&fresh);
    registration.input = restate_process_registry::ProcessInput::External {
        metadata: json!({ "blob": text(MAX_PAYLOAD_BYTES + 1) }),
    };
    let (status, body) = post(
        &format!("ProcessObject/{fresh}/register"),
        &json!(registration).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("limit"), "{body}");
    assert_eq!(
        battery.registry.try_get_process(&fresh).await.unwrap(),
        None
    );
}

/// Documents nested past the limit, including the depths that used to be
/// stored and then never read back (just under serde's 128) and depths
/// serde cannot even parse, are refused by every handler that takes one.
async fn deep_documents_are_refused_at_every_depth(battery: &mut Battery) {
    let id = battery.process("hostile-deep").await;
    for depth in [MAX_JSON_DEPTH + 1, 100, 124, 125, 126, 127, 128, 300] {
        let deep = nested(depth);
        let cases = [
            (
                "append",
                json!({ "event_type": "process.waiting", "payload": deep }),
            ),
            ("complete", json!({ "type": "success", "value": deep })),
            (
                "set_external_ref",
                json!({ "backend": "ci", "id": "run", "metadata": deep }),
            ),
        ];
        for (handler, body) in cases {
            battery
                .refused(
                    &id,
                    handler,
                    &body.to_string(),
                    &format!("{handler} at depth {depth}"),
                )
                .await;
        }
        let fresh = common::unique("hostile-deep-register");
        let registration = json!({
            "id": fresh,
            "input": { "type": "external", "metadata": deep },
            "identity": { "kind": "external", "label": "deep" },
            "provenance": { "originator": { "type": "host", "scope": "host" } },
        });
        let (status, text) = post(
            &format!("ProcessObject/{fresh}/register"),
            &registration.to_string(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "register at depth {depth}: {text}"
        );
        assert_eq!(
            battery.registry.try_get_process(&fresh).await.unwrap(),
            None
        );
    }
}

async fn integers_past_64_bits_are_refused(battery: &mut Battery) {
    let id = battery.process("hostile-integers").await;
    for literal in [
        "18446744073709551616",
        "-9223372036854775809",
        "1000000000000000000000000",
    ] {
        let body = format!(r#"{{"event_type": "{NOTE}", "payload": {{"n": {literal}}}}}"#);
        let refusal = battery
            .refused(&id, "append", &body, &format!("integer {literal}"))
            .await;
        assert!(refusal.contains("64 bits"), "{refusal}");
    }
    // The largest ones that fit are stored exactly.
    let body = format!(
        r#"{{"event_type": "{NOTE}", "payload": {{"max": {}, "min": {}}}}}"#,
        u64::MAX,
        i64::MIN
    );
    battery
        .accepted(&id, "append", &body, "64-bit extremes")
        .await;
    let log = battery.registry.events_after(&id, 0).await.unwrap();
    assert_eq!(log[0].payload, json!({ "max": u64::MAX, "min": i64::MIN }));
}

async fn list_filters_must_be_objects() {
    let shard = "0";
    for (filter, what) in [
        (json!([]), "an array"),
        (json!({ "statuss": "any" }), "an unknown field"),
        (
            json!({ "identity_kind": text(MAX_KEY_BYTES + 1) }),
            "an over-long field",
        ),
    ] {
        let body = json!({ "filter": filter, "cursor": 0, "limit": 10 });
        let (status, text) =
            post(&format!("ProcessDirectory/{shard}/list"), &body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "filter as {what}: {text}");
    }
    let body = json!({ "filter": { "status": "any" }, "cursor": 0, "limit": 10 });
    let (status, text) = post(&format!("ProcessDirectory/{shard}/list"), &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

/// The grant index of one session and a directory bucket take many entries
/// at the largest allowed size, refuse larger ones at once, and keep
/// answering.
async fn oversized_fields_never_reach_a_shared_index(battery: &mut Battery) {
    let session = SessionScope::session(common::unique("hostile-session"));
    battery.sessions.push(session.clone());
    let id = battery.process("hostile-index").await;
    let grant_path = format!("SessionGrants/{}/grant", session.session_id);
    let huge = json!({
        "scope": session,
        "process_id": id,
        "descriptor": { "kind": "job", "label": text(12 << 20) }
    });
    for attempt in 0..3 {
        let what = format!("12 MiB label #{attempt}");
        battery
            .refused_at(&id, &grant_path, &huge.to_string(), &what)
            .await;
    }
    let label = text(MAX_TEXT_BYTES);
    for n in 0..60 {
        let id = battery.process(&format!("hostile-index-{n}")).await;
        let body = json!({ "scope": session, "process_id": id, "descriptor": { "kind": "job", "label": label } });
        battery
            .accepted_at(&grant_path, &body.to_string(), "max label")
            .await;
    }
    let listed = answers(
        "the session's grants",
        battery.registry.list_handle_grants(&session),
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 60);

    // Max-size inputs piled into one directory shard.
    let shard = directory_shard(&id);
    let mut piled = 0;
    let mut n = 0;
    while piled < 6 {
        n += 1;
        let candidate = format!("{}-{n}", common::unique("hostile-pile"));
        if directory_shard(&candidate) != shard {
            continue;
        }
        let mut registration = typed(&candidate);
        registration.input = restate_process_registry::ProcessInput::External {
            metadata: json!({ "blob": text(MAX_PAYLOAD_BYTES - 4096) }),
        };
        battery
            .registry
            .register_process(registration)
            .await
            .unwrap();
        battery.touched.push(candidate);
        piled += 1;
    }
}

async fn rivals_cannot_record_a_start(battery: &mut Battery) {
    let id = battery.process("hostile-fence").await;
    let worker = owner("hostile-fence");
    let lease = battery
        .registry
        .claim_process_lease(&id, &worker, 60_000)
        .await
        .unwrap()
        .acquired()
        .unwrap();
    // A start needs no fence any more; a rival of the live lease is still
    // refused, however it dresses up (the old shape's fencing token too).
    let rival = owner("hostile-rival");
    for body in [
        json!({ "owner": rival, "fencing_token": lease.fencing_token, "started_at_ms": 1 }),
        json!({ "owner": rival, "started_at_ms": 1 }),
    ] {
        let before = snapshot(&battery.registry, &id).await;
        let (status, text) = post(
            &format!("ProcessObject/{id}/record_first_started"),
            &body.to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}: {text}");
        assert_eq!(snapshot(&battery.registry, &id).await, before);
    }
    // The holder in the previous release's shape, with a stale token: the
    // token is ignored, the start recorded without it.
    let body = json!({ "owner": worker, "fencing_token": 0, "started_at_ms": 1 });
    let started = battery
        .accepted(
            &id,
            "record_first_started",
            &body.to_string(),
            "the holder's start",
        )
        .await;
    assert_eq!(started["first_started"]["owner"], json!(worker));
    assert_eq!(started["first_started"].get("fencing_token"), None);
}

async fn private_handlers_are_unreachable(battery: &mut Battery) {
    let id = battery.process("hostile-private").await;
    let before = snapshot(&battery.registry, &id).await;
    let attempts = [
        (format!("ProcessTerminal/{id}%23forged/run"), String::new()),
        (
            format!("ProcessTerminal/{id}%23forged/finish"),
            json!({ "type": "success", "value": 1 }).to_string(),
        ),
        (
            format!("ProcessObject/{id}/prune"),
            "99999999999999".to_owned(),
        ),
        (
            format!("ProcessObject/{id}/forget_wakes"),
            json!("s").to_string(),
        ),
        (
            format!("ProcessObject/{id}/mirror_drop"),
            json!("s").to_string(),
        ),
        (
            format!("ProcessObject/{id}/park"),
            json!({
                "wait": {
                    "process_id": id,
                    "incarnation": "forged",
                    "event_type": "note",
                    "after_sequence": 0
                },
                "awakeable_id": "sign_1forged"
            })
            .to_string(),
        ),
        ("SessionGrants/s/take".to_owned(), json!({}).to_string()),
        ("SessionGrants/s/drain".to_owned(), json!({}).to_string()),
        ("SessionWakes/s/note".to_owned(), json!(id).to_string()),
        (
            format!("ProcessDirectory/{}/put", directory_shard(&id)),
            json!({}).to_string(),
        ),
        ("SessionGrants/s/put".to_owned(), json!({}).to_string()),
        ("EngineBaseline/k/noop".to_owned(), String::new()),
    ];
    for (path, body) in attempts {
        let (status, text) = post(&path, &body).await;
        assert!(
            status.is_client_error(),
            "{path} must be unreachable: {status} {text}"
        );
    }
    assert_eq!(snapshot(&battery.registry, &id).await, before);
    let forged_runs = common::admin_query(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'ProcessTerminal' \
         AND target_service_key LIKE '%#forged'",
    )
    .await;
    assert!(
        forged_runs.is_empty(),
        "no forged workflow run exists: {forged_runs:?}"
    );
}

/// A stored value that cannot be decoded (written here through the admin
/// API, since no handler stores one any more) fails each call at once with
/// a terminal error instead of retrying with the key locked.
async fn undecodable_state_fails_terminally(battery: &mut Battery) {
    let id = common::unique("hostile-corrupt");
    battery.registry.register_process(typed(&id)).await.unwrap();
    let garbage: Vec<u8> = br#"{"not": "a record"}"#.to_vec();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/services/ProcessObject/state",
            common::urls().admin
        ))
        .json(&json!({ "object_key": id, "new_state": { "row": garbage } }))
        .send()
        .await
        .expect("admin answers");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    // The admin API applies the change asynchronously.
    let mut error = None;
    for _ in 0..100 {
        match answers(
            "get of a corrupted row",
            battery.registry.try_get_process(&id),
        )
        .await
        {
            Err(err) => {
                error = Some(err);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let error = error.expect("the corrupted row is reported");
    assert!(
        error.to_string().contains("cannot be read"),
        "a terminal, readable failure: {error}"
    );
    // Writes fail the same way, at once, and leave the key free.
    let write = answers(
        "append to a corrupted row",
        battery.registry.append_event(
            &id,
            restate_process_registry::ProcessEventAppendRequest::new(NOTE, json!({})),
        ),
    )
    .await;
    assert!(write.is_err(), "{write:?}");
}

/// After the battery: nothing retries or sits paused, and every touched
/// process, every listing and every session index still answers.
async fn nothing_is_wedged_afterwards(battery: &Battery) {
    let stuck = common::admin_query(
        "SELECT target, status, last_failure FROM sys_invocation \
         WHERE status IN ('backing-off', 'paused') OR (retry_count > 1 AND status <> 'completed')",
    )
    .await;
    assert!(
        stuck.is_empty(),
        "invocations retrying or paused: {stuck:?}"
    );
    let registry = &battery.registry;
    for id in &battery.touched {
        let row: Option<ProcessRecord> = answers("get", registry.try_get_process(id))
            .await
            .expect("get");
        assert!(row.is_some(), "{id} is still there");
        answers("events_after", registry.events_after(id, 0))
            .await
            .expect("events_after");
        answers("grants", registry.handle_grants_for_process(id))
            .await
            .expect("grants");
    }
    answers("list_non_terminal", registry.list_non_terminal())
        .await
        .expect("list_non_terminal");
    answers(
        "list_processes",
        registry.list_processes(&ProcessListFilter::any()),
    )
    .await
    .expect("list_processes");
    for scope in &battery.sessions {
        answers("list_handle_grants", registry.list_handle_grants(scope))
            .await
            .expect("list_handle_grants");
    }
}
