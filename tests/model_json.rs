//! The model's JSON wire form: every type round-trips, and the shapes other
//! languages see are stable.

use std::fmt::Debug;

use restate_process_registry::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> Value {
    let wire = serde_json::to_value(value).expect("serializes");
    let back: T = serde_json::from_value(wire.clone()).expect("deserializes");
    assert_eq!(&back, value, "round trip of {wire}");
    wire
}

fn owner() -> LeaseOwnerIdentity {
    LeaseOwnerIdentity {
        owner_id: "w".into(),
        incarnation_id: "w-1".into(),
        liveness: LeaseOwnerLiveness::local_process_with("h", "boot", 7, "123"),
    }
}

fn full_record() -> ProcessRecord {
    let wake = ProcessWakeSpec {
        when: Some(ProcessValueSelector::Pointer("/ready".into())),
        input: ProcessValueSelector::Payload,
        dedupe_key: ProcessWakeDedupeKey::Selector(ProcessValueSelector::Const(json!("k"))),
    };
    let terminal = ProcessTerminalSpec {
        state: ProcessTerminalState::Failed,
        await_output: Some(ProcessValueSelector::Pointer("/error".into())),
    };
    ProcessRecord {
        id: "p".into(),
        input: ProcessInput::Engine {
            kind: "k".into(),
            payload: json!({"a": [1, 2]}),
        },
        disposition: RecoveryDisposition::OwnerBound,
        identity: ProcessIdentity {
            kind: "engine".into(),
            label: "k".into(),
            definition: Some("d".into()),
        },
        event_types: vec![
            ProcessEventType::new("t.wake", PayloadSchema::new(json!({"type": "object"})))
                .with_wake(wake),
            ProcessEventType::any("t.end").with_terminal(terminal),
        ],
        provenance: ProcessProvenance::session(SessionScope::frame("s", "f"))
            .caused_by(json!({"tool": "x"})),
        wake_target: Some(SessionScope::session("s")),
        registration_hash: "abc".into(),
        created_at_ms: 1,
        updated_at_ms: 2,
        external_ref: Some(ProcessExternalRef {
            backend: "b".into(),
            id: "i".into(),
            metadata: json!({}),
        }),
        first_started: Some(ProcessStarted {
            owner: owner(),
            started_at_ms: 4,
        }),
        abandon_request: Some(AbandonRequest {
            requested_by: "op".into(),
            reason: "r".into(),
            requested_at_ms: 5,
        }),
        wait: Some(WaitState {
            kind: WaitKind::Signal {
                name: "n".into(),
                event_type: "t.wake".into(),
                key: "key".into(),
                ordinal: 2,
            },
            since_ms: 6,
        }),
        status: ProcessStatus::Failed(ProcessAwaitOutput::Failure {
            code: "c".into(),
            message: "m".into(),
            raw: Some(json!({"x": 1})),
            control: Some(json!({"retry": false})),
        }),
    }
}

#[test]
fn records_and_registrations_round_trip() {
    let record = full_record();
    let wire = round_trip(&record);
    assert_eq!(wire["status"]["state"], "failed");
    assert_eq!(wire["status"]["output"]["type"], "failure");
    assert_eq!(wire["input"]["type"], "engine");
    assert_eq!(wire["disposition"], "owner_bound");
    round_trip(&record.registration());
    let minimal = ProcessRegistration::new(
        "m",
        ProcessInput::External {
            metadata: json!(null),
        },
        ProcessProvenance::host(),
    );
    let wire = round_trip(&minimal);
    assert_eq!(
        wire["provenance"]["originator"],
        json!({"type": "host", "scope": "host"})
    );
    assert!(
        wire.get("wake_target").is_none(),
        "absent options are omitted"
    );
}

#[test]
fn every_outcome_and_status_round_trips() {
    for output in [
        ProcessAwaitOutput::success(json!([1])),
        ProcessAwaitOutput::failure("c", "m"),
        ProcessAwaitOutput::cancelled(Some("why".into())),
        ProcessAwaitOutput::abandoned(json!({"reason": "owner_gone"})),
    ] {
        round_trip(&output);
        let status = ProcessStatus::terminal(output.clone());
        round_trip(&status);
        assert_eq!(status.await_output(), Some(&output));
        assert!(status.is_terminal());
    }
    assert_eq!(
        round_trip(&ProcessStatus::Running),
        json!({"state": "running"})
    );
}

#[test]
fn events_appends_and_wakes_round_trip() {
    let event = ProcessEvent {
        process_id: "p".into(),
        sequence: 9,
        event_type: "t.wake".into(),
        payload: json!({"ready": true}),
        semantics: ProcessEventSemantics {
            terminal: Some(ProcessTerminalState::Completed),
            wake: Some(ProcessWake {
                input: json!(1),
                dedupe_key: "k".into(),
            }),
        },
        occurred_at_ms: 10,
        replay_key: Some("r".into()),
    };
    round_trip(&event);
    let request = ProcessEventAppendRequest::new("t", json!({}))
        .with_replay_key("r")
        .with_wake_target_scope(SessionScope::session("s"));
    round_trip(&request);
    round_trip(&ProcessEventAppendResult {
        event: event.clone(),
        wake_delivery: Some(ProcessWakeDelivery {
            wake_id: "wake:abc".into(),
            scope: SessionScope::frame("s", "f"),
            process_id: "p".into(),
            sequence: 9,
            event_type: "t.wake".into(),
            process_caused_by: Some(json!({"node": 1})),
            input: json!(1),
            dedupe_key: "k".into(),
            created_at_ms: 10,
        }),
        deduplicated: false,
    });
    let cancel = ProcessEventAppendRequest::cancel_requested("p", Some("stop".into()));
    assert_eq!(cancel.event_type, EVENT_CANCEL_REQUESTED);
    assert_eq!(cancel.payload, json!({"reason": "stop"}));
}

/// A delivery as the previous release answered it (a journaled call's
/// output is replayed as it was written) still reads, its new fields empty.
#[test]
fn a_wake_delivery_of_the_previous_release_still_reads() {
    let old = json!({
        "scope": {"session_id": "s"},
        "process_id": "p",
        "sequence": 3,
        "input": {"n": 1},
        "dedupe_key": "p#3"
    });
    let delivery: ProcessWakeDelivery = serde_json::from_value(old).unwrap();
    assert_eq!(delivery.sequence, 3);
    assert_eq!(delivery.wake_id, "");
    assert_eq!(delivery.event_type, "");
    assert_eq!(delivery.process_caused_by, None);
    assert_eq!(delivery.created_at_ms, 0);
}

/// The cancel request's replay key is the original's: the process id and a
/// digest of the type and payload, so equal requests are one event.
#[test]
fn cancel_requests_carry_a_deterministic_replay_key() {
    use sha2::{Digest, Sha256};
    let stop = ProcessEventAppendRequest::cancel_requested("p", Some("stop".into()));
    let text = serde_json::to_string(&(EVENT_CANCEL_REQUESTED, json!({"reason": "stop"}))).unwrap();
    let hex: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        stop.replay_key,
        Some(format!("process:p:cancel_requested:{hex}"))
    );
    let again = ProcessEventAppendRequest::cancel_requested("p", Some("stop".into()));
    assert_eq!(stop, again);
    let other_reason = ProcessEventAppendRequest::cancel_requested("p", None);
    let other_process = ProcessEventAppendRequest::cancel_requested("q", Some("stop".into()));
    assert_ne!(stop.replay_key, other_reason.replay_key);
    assert_ne!(stop.replay_key, other_process.replay_key);
}

#[test]
fn leases_grants_filters_and_reports_round_trip() {
    let lease = ProcessLease {
        process_id: "p".into(),
        owner: owner(),
        lease_token: "t".into(),
        fencing_token: 2,
        claimed_at_epoch_ms: 1,
        expires_at_epoch_ms: 3,
    };
    let acquired = round_trip(&ProcessLeaseClaimOutcome::Acquired(lease.clone()));
    assert_eq!(acquired["outcome"], "acquired");
    let busy = round_trip(&ProcessLeaseClaimOutcome::Busy {
        holder: lease.clone(),
    });
    assert_eq!(busy["outcome"], "busy");
    round_trip(&ProcessLeaseCompletion::from(&lease));
    round_trip(&ProcessHandleGrant {
        session_id: "s".into(),
        scope_id: SessionScope::frame("s", "f").id(),
        process_id: "p".into(),
        descriptor: ProcessHandleDescriptor {
            kind: "job".into(),
            label: "l".into(),
        },
    });
    round_trip(&ProcessListFilter {
        status: ProcessStatusFilter::Any,
        waiting: Some(true),
        originator_scope_id: Some("host".into()),
        identity_kind: Some("engine".into()),
        identity_label: Some("k".into()),
        definition: Some("d".into()),
        created_at_start_ms: Some(1),
        created_at_end_ms: Some(2),
    });
    let default_filter: ProcessListFilter = serde_json::from_value(json!({})).unwrap();
    assert_eq!(
        default_filter.status,
        ProcessStatusFilter::Running,
        "status defaults to running"
    );
    round_trip(&ProcessSessionDeleteReport {
        session_id: "s".into(),
        revoked_handle_count: 2,
        deleted_wake_count: 1,
        orphaned_process_ids: vec!["a".into()],
        preserved_process_ids: vec!["b".into()],
    });
    round_trip(&ProcessPruneReport {
        pruned_processes: 1,
        pruned_events: 4,
    });
    assert_eq!(round_trip(&DurabilityTier::Durable), json!("durable"));
}

#[test]
fn scope_ids_and_identities() {
    assert_eq!(SessionScope::session("s").id(), "session:s");
    assert_eq!(SessionScope::frame("s", "f").id(), "session:s/frame:f");
    let external = ProcessIdentity::from_input(&ProcessInput::External {
        metadata: json!({"label": "deploy", "definition": "ci.yml"}),
    });
    assert_eq!(
        (
            external.kind.as_str(),
            external.label.as_str(),
            external.definition.as_deref()
        ),
        ("external", "deploy", Some("ci.yml"))
    );
    let engine = ProcessIdentity::from_input(&ProcessInput::Engine {
        kind: "build".into(),
        payload: json!({}),
    });
    assert_eq!(
        (
            engine.kind.as_str(),
            engine.label.as_str(),
            engine.definition
        ),
        ("engine", "build", None)
    );
}

#[test]
fn malformed_wire_input_is_refused_by_serde() {
    assert!(serde_json::from_value::<ProcessRegistration>(json!({"id": "p"})).is_err());
    assert!(serde_json::from_value::<ProcessAwaitOutput>(json!({"type": "teleported"})).is_err());
    assert!(serde_json::from_value::<ProcessLease>(json!({"process_id": 3})).is_err());
}
