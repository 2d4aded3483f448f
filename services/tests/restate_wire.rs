//! The services over raw ingress HTTP, as a client that is not ours would
//! reach them: idempotent redelivery, and bad input refused with a clear
//! error and no state change.

mod common;

use reqwest::StatusCode;
use restate_process_registry::restate::wire::INLINE_RECORD_BYTES;
use restate_process_registry::rules::limits::MAX_PAYLOAD_BYTES;
use restate_process_registry::testing::support::{owner, typed, NOTE};
use std::time::Duration;

use restate_process_registry::{
    IngressOptions, ProcessAwaitOutput, ProcessError, ProcessEventAppendRequest, ProcessInput,
    ProcessRegistry, RestateProcessRegistry,
};
use serde_json::{json, Value};

/// POSTs `body` (raw bytes, JSON content type) to `/ProcessObject/{id}/{handler}`.
async fn post(
    id: &str,
    handler: &str,
    body: &str,
    idempotency_key: Option<&str>,
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/ProcessObject/{id}/{handler}",
            common::urls().ingress
        ))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn registered() -> String {
    let id = common::unique("wire");
    common::registry()
        .register_process(typed(&id))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_redelivered_append_with_the_same_idempotency_key_applies_once() {
    let id = registered().await;
    let body = json!({ "event_type": NOTE, "payload": { "step": 1 } }).to_string();
    let key = common::unique("retry");
    let (first_status, first) = post(&id, "append", &body, Some(&key)).await;
    let (second_status, second) = post(&id, "append", &body, Some(&key)).await;
    assert_eq!(first_status, StatusCode::OK, "{first}");
    assert_eq!(second_status, StatusCode::OK, "{second}");
    assert_eq!(first, second, "the retry gets the first answer");
    let events = common::registry().events_after(&id, 0).await.unwrap();
    assert_eq!(events.len(), 1, "the append applied once");

    // Without the key the same body is a second append: the key is what
    // makes the redelivery safe.
    let (status, _) = post(&id, "append", &body, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        common::registry().events_after(&id, 0).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn a_redelivered_claim_returns_the_same_lease() {
    let id = registered().await;
    let body = json!({ "owner": owner("wire"), "lease_ttl_ms": 60_000 }).to_string();
    let key = common::unique("claim");
    let (_, first) = post(&id, "claim_lease", &body, Some(&key)).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, second) = post(&id, "claim_lease", &body, Some(&key)).await;
    assert_eq!(
        first, second,
        "same expiry: the redelivery did not extend the lease"
    );
    let first: Value = serde_json::from_str(&first).unwrap();
    let stored = common::registry()
        .get_process_lease(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first["outcome"], json!("acquired"));
    assert_eq!(first["lease_token"], json!(stored.lease_token));
    assert_eq!(
        first["expires_at_epoch_ms"],
        json!(stored.expires_at_epoch_ms)
    );
    assert_eq!(stored.fencing_token, 1);
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_refused_and_change_nothing() {
    let id = registered().await;
    let registry = common::registry();
    let before = registry.get_process(&id).await.unwrap();
    let cases = [
        ("append", r#"{"event_type": "note", "payload": "#),
        ("append", r#"{"event_type": 5, "payload": {}}"#),
        ("append", r#"[1, 2, 3]"#),
        ("ack_wake", r#""one""#),
        ("set_wait", r#"{"kind": "nonsense"}"#),
        ("claim_lease", r#"{"owner": "me", "lease_ttl_ms": -1}"#),
        ("complete", r#"{"status": "won"}"#),
    ];
    for (handler, body) in cases {
        let (status, text) = post(&id, handler, body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{handler} {body}: {text}");
        assert!(!text.is_empty(), "{handler}: the refusal says why");
    }
    assert_eq!(registry.get_process(&id).await.unwrap(), before);
    assert!(registry.events_after(&id, 0).await.unwrap().is_empty());
    assert_eq!(registry.get_process_lease(&id).await.unwrap(), None);

    // A registration body whose id is not a string registers nothing.
    let fresh = common::unique("wire-bad-register");
    let (status, _) = post(&fresh, "register", r#"{"id": 5}"#, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(registry.try_get_process(&fresh).await.unwrap(), None);
}

#[tokio::test]
async fn a_payload_over_the_limit_is_invalid_input_and_writes_nothing() {
    let id = registered().await;
    let registry = common::registry();
    let big = "x".repeat(MAX_PAYLOAD_BYTES + 1);
    let err = registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(NOTE, json!({ "blob": big })),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProcessError::InvalidInput(message) if message.contains("limit")),
        "{err:?}"
    );
    // The same over raw ingress: a 400 naming the limit.
    let body = json!({ "event_type": NOTE, "payload": { "blob": big } }).to_string();
    let (status, text) = post(&id, "append", &body, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("limit"), "{text}");
    assert!(registry.events_after(&id, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn model_errors_keep_their_codes_over_ingress() {
    let unknown = common::unique("wire-unknown");
    let body = json!({ "event_type": NOTE, "payload": {} }).to_string();
    let (status, text) = post(&unknown, "append", &body, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        text.contains(&format!("unknown process `{unknown}`")),
        "{text}"
    );
    // Nothing was created by asking.
    assert_eq!(
        common::registry().try_get_process(&unknown).await.unwrap(),
        None
    );

    let id = registered().await;
    let (status, _) = post(&id, "register", &json!(typed(&id)).to_string(), None).await;
    assert_eq!(status, StatusCode::OK, "same registration again is fine");
    let other = typed(&id)
        .with_extra_event_types([restate_process_registry::ProcessEventType::any("extra")]);
    let (status, text) = post(&id, "register", &json!(other).to_string(), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
}

#[tokio::test]
async fn internal_handlers_are_not_reachable_from_ingress() {
    let id = registered().await;
    let registry = common::registry();
    registry
        .complete_process(
            &id,
            restate_process_registry::ProcessAwaitOutput::success(json!(1)),
        )
        .await
        .unwrap();
    let (status, _) = post(&id, "prune", "99999999999999", None).await;
    assert!(status.is_client_error(), "prune is private: {status}");
    assert!(registry.try_get_process(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn reads_longer_than_a_page_come_back_whole_and_in_order() {
    use restate_process_registry::restate::wire::PAGE_LIMIT;

    let id = registered().await;
    let registry = common::registry();
    let total = u64::from(PAGE_LIMIT) + 40;
    for n in 0..total {
        let note = ProcessEventAppendRequest::new(NOTE, json!({ "n": n }));
        registry.append_event(&id, note).await.unwrap();
    }
    let sequences = |events: Vec<restate_process_registry::ProcessEvent>| {
        events.iter().map(|e| e.sequence).collect::<Vec<_>>()
    };
    let all = registry.events_after(&id, 0).await.unwrap();
    assert_eq!(sequences(all), (1..=total).collect::<Vec<_>>());
    let tail = registry.events_after(&id, 10).await.unwrap();
    assert_eq!(sequences(tail), (11..=total).collect::<Vec<_>>());
    let recent = registry.recent_events(&id, 280).await.unwrap();
    assert_eq!(sequences(recent), (total - 279..=total).collect::<Vec<_>>());
    let count = registry.count_events_through(&id, NOTE, 100).await.unwrap();
    assert_eq!(count, 100);
}

#[tokio::test]
async fn wake_reads_longer_than_a_page_skip_acked_wakes() {
    use restate_process_registry::restate::wire::PAGE_LIMIT;
    use restate_process_registry::testing::support::ALERT;

    let id = registered().await;
    let registry = common::registry();
    let total = u64::from(PAGE_LIMIT) + 60;
    for n in 0..total {
        let kind = if n % 3 == 0 { NOTE } else { ALERT };
        let append = ProcessEventAppendRequest::new(kind, json!({ "n": n }));
        registry.append_event(&id, append).await.unwrap();
    }
    let wakes = registry.wake_events_after(&id, 0).await.unwrap();
    let expected: Vec<u64> = (1..=total).filter(|seq| (seq - 1) % 3 != 0).collect();
    let sequences = |events: &[restate_process_registry::ProcessEvent]| {
        events.iter().map(|e| e.sequence).collect::<Vec<_>>()
    };
    assert_eq!(sequences(&wakes), expected);
    for &seq in expected.iter().filter(|seq| *seq % 2 == 0) {
        registry.ack_wake(&id, seq).await.unwrap();
    }
    let left: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|seq| seq % 2 == 1)
        .collect();
    assert_eq!(
        sequences(&registry.wake_events_after(&id, 0).await.unwrap()),
        left
    );
    let tail: Vec<u64> = left.iter().copied().filter(|&seq| seq > 100).collect();
    assert_eq!(
        sequences(&registry.wake_events_after(&id, 100).await.unwrap()),
        tail
    );
}

#[tokio::test]
async fn an_unreachable_ingress_is_unavailable_with_its_cause() {
    use std::error::Error as _;
    // A short budget: the default keeps trying for a minute.
    let options = IngressOptions {
        request_timeout: Duration::from_secs(1),
        retry_budget: Duration::from_millis(300),
    };
    let registry = RestateProcessRegistry::connect_with("http://127.0.0.1:9", options).unwrap();
    let err = registry.try_get_process("anything").await.unwrap_err();
    assert!(matches!(err, ProcessError::Unavailable { .. }), "{err:?}");
    let cause = err.source().expect("the transport error is kept");
    assert!(!cause.to_string().is_empty());
}

#[tokio::test]
async fn a_prune_part_that_does_not_exist_is_refused() {
    let registry = common::registry();
    let parts = RestateProcessRegistry::PRUNE_PARTS;
    assert!(matches!(
        registry.prune_part(0, parts).await,
        Err(ProcessError::InvalidInput(_))
    ));
    // Straight to the handler: refused there too, before anything runs.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/ProcessCoordinator/prune_shard",
            common::urls().ingress
        ))
        .json(&json!({ "cutoff_ms": 0, "shard": parts + 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // Every part in turn prunes what one whole prune would: nothing here.
    let mut pruned = 0;
    for part in 0..parts {
        pruned += registry.prune_part(0, part).await.unwrap().pruned_processes;
    }
    assert_eq!(pruned, 0, "a cutoff at the epoch prunes nothing");
}

/// The stored JSON of `key` in process `id`'s state, if set.
async fn stored_state(id: &str, key: &str) -> Option<String> {
    common::admin_query(&format!(
        "SELECT value_utf8 FROM state WHERE service_name = 'ProcessObject' \
         AND service_key = '{id}' AND key = '{key}'"
    ))
    .await
    .first()
    .and_then(|row| row["value_utf8"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn a_record_too_large_for_its_row_lives_apart_and_appends_leave_it_alone() {
    let registry = common::registry();
    let id = common::unique("wire-big-record");
    let mut registration = typed(&id);
    registration.input = ProcessInput::External {
        metadata: json!({ "label": "big", "blob": "x".repeat(2 * INLINE_RECORD_BYTES) }),
    };
    registry
        .register_process(registration.clone())
        .await
        .unwrap();
    let apart = stored_state(&id, "record").await.expect("the record apart");
    for n in 0..3 {
        registry
            .append_event(&id, ProcessEventAppendRequest::new(NOTE, json!({ "n": n })))
            .await
            .unwrap();
    }
    let row = stored_state(&id, "row").await.expect("the row");
    assert!(
        row.len() < INLINE_RECORD_BYTES,
        "appends rewrite the row without the record: {} bytes",
        row.len()
    );
    assert_eq!(stored_state(&id, "record").await.as_ref(), Some(&apart));
    let record = registry.try_get_process(&id).await.unwrap().unwrap();
    assert_eq!(record.input, registration.input);
    assert_eq!(registry.events_after(&id, 0).await.unwrap().len(), 3);

    let output = ProcessAwaitOutput::success(json!("done"));
    let ended = registry
        .complete_process(&id, output.clone())
        .await
        .unwrap();
    assert_eq!(ended.status.await_output(), Some(&output));
    let record = registry.try_get_process(&id).await.unwrap().unwrap();
    assert_eq!(record.status.await_output(), Some(&output));
    assert_eq!(record.input, registration.input);
    assert_eq!(registry.events_after(&id, 0).await.unwrap().len(), 4);

    // A small record stays in its row: no key apart.
    let small = registered().await;
    assert_eq!(stored_state(&small, "record").await, None);
    assert!(stored_state(&small, "row").await.is_some());
}

/// The deployed endpoint, as the server registered it, serves exactly the
/// wire contract the client calls by (`restate::contract::HANDLERS`):
/// every name, how it runs, who may call it, whether it takes and answers
/// a body. `ProcessRunner` is bound only with a runner and not here.
#[tokio::test]
async fn the_deployed_endpoint_serves_exactly_the_wire_contract() {
    use restate_process_registry::restate::contract::{Kind, Reach, HANDLERS, PROCESS_RUNNER};
    use std::collections::BTreeSet;

    type Row = (String, String, String, String, bool, bool);
    let row = |service: &str, name: &str, kind: Kind, reach: Reach, input, output| -> Row {
        let (kind, reach) = (format!("{kind:?}"), format!("{reach:?}"));
        (service.into(), name.into(), kind, reach, input, output)
    };
    let _ = common::registry();
    let admin = common::urls().admin;
    let expected: BTreeSet<Row> = HANDLERS
        .iter()
        .filter(|handler| handler.service != PROCESS_RUNNER)
        .map(|h| row(h.service, h.name, h.kind, h.reach, h.input, h.output))
        .collect();
    let services: BTreeSet<&str> = expected.iter().map(|(s, ..)| s.as_str()).collect();
    let mut served = BTreeSet::new();
    for service in services {
        let body: serde_json::Value = reqwest::get(format!("{admin}/services/{service}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for handler in body["handlers"].as_array().expect("a handler list") {
            let kind = match handler["ty"].as_str() {
                Some("Exclusive") => Kind::Exclusive,
                Some("Shared") => Kind::Shared,
                Some("Workflow") => Kind::Workflow,
                None => Kind::Service,
                Some(other) => panic!("handler kind `{other}` is not in the contract"),
            };
            let reach = if handler["public"] == true {
                Reach::Public
            } else {
                Reach::Private
            };
            let name = handler["name"].as_str().expect("a name");
            let input = handler["input_description"] != "none";
            let output = handler["output_description"] != "none";
            served.insert(row(service, name, kind, reach, input, output));
        }
    }
    let missing: Vec<_> = expected.difference(&served).collect();
    let unlisted: Vec<_> = served.difference(&expected).collect();
    assert!(
        missing.is_empty() && unlisted.is_empty(),
        "the endpoint differs from the contract\n  in the contract, not served: {missing:#?}\n  served, not in the contract: {unlisted:#?}"
    );
}
