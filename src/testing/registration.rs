//! Registration: the stored row, idempotent re-registration, conflicts and
//! refused registrations.

use serde_json::json;

use super::support::{
    assert_unchanged_after, assert_unknown, assert_within, catalog, engine, expect_error, external,
    refused, register, snapshot, typed, ErrorKind, Namespace,
};
use super::ConformanceTarget;
use crate::model::{
    PayloadSchema, ProcessEventType, ProcessExternalRef, ProcessIdentity, ProcessInput,
    ProcessProvenance, ProcessRegistration, ProcessStatus, ProcessValueSelector,
    ProcessWakeDedupeKey, ProcessWakeSpec, RecoveryDisposition, SessionScope,
};
use crate::rules::limits::{MAX_PAYLOAD_BYTES, MAX_PROCESS_ID_BYTES};

/// A new registration is stored as a `Running` row carrying everything it
/// was registered with, timestamped by the registry's clock.
pub async fn register_stores_running_record(target: &ConformanceTarget) {
    let ns = Namespace::new("registration-row");
    let registry = &target.registry;

    let session = SessionScope::frame(ns.id("session"), "frame-1");
    let registration = typed(&ns.id("external"))
        .with_disposition(RecoveryDisposition::OwnerBound)
        .with_wake_target(session.clone());
    let before = target.clock.now_ms();
    let record = register(target, registration.clone()).await;
    let after = target.clock.now_ms();

    assert_eq!(record.id, registration.id);
    assert_eq!(
        record.registration(),
        registration,
        "the row must keep the registration"
    );
    assert_eq!(record.status, ProcessStatus::Running);
    assert!(!record.is_terminal());
    assert_eq!(record.disposition, RecoveryDisposition::OwnerBound);
    assert_eq!(record.wake_target, Some(session));
    assert_eq!(record.event_types, catalog());
    assert_eq!(
        record.identity,
        ProcessIdentity {
            kind: "external".to_owned(),
            label: "conformance".to_owned(),
            definition: Some("conformance/external".to_owned()),
        }
    );
    assert!(
        !record.registration_hash.is_empty(),
        "the registration hash must be set"
    );
    assert_within(record.created_at_ms, before, after, "created_at_ms");
    assert_eq!(record.updated_at_ms, record.created_at_ms);
    assert_eq!(record.external_ref, None);
    assert_eq!(record.first_started, None);
    assert_eq!(record.abandon_request, None);
    assert_eq!(record.wait, None);

    assert_eq!(registry.get_process(&record.id).await, Some(record.clone()));
    assert_eq!(
        registry.try_get_process(&record.id).await,
        Ok(Some(record.clone()))
    );
    assert_eq!(registry.events_after(&record.id, 0).await, Ok(Vec::new()));
    assert_eq!(registry.get_process_lease(&record.id).await, Ok(None));
    assert_eq!(
        registry.handle_grants_for_process(&record.id).await,
        Ok(Vec::new())
    );

    let engine_registration = engine(
        &ns.id("engine"),
        "conformance.build",
        json!({ "definition": "conformance/build", "target": "x86_64" }),
    )
    .with_disposition(RecoveryDisposition::ExternallyOwned);
    let engine_record = register(target, engine_registration.clone()).await;
    assert_eq!(engine_record.registration(), engine_registration);
    assert_eq!(
        engine_record.identity,
        ProcessIdentity {
            kind: "engine".to_owned(),
            label: "conformance.build".to_owned(),
            definition: Some("conformance/build".to_owned()),
        }
    );
    assert_eq!(
        engine_record.disposition,
        RecoveryDisposition::ExternallyOwned
    );
    assert_eq!(engine_record.wake_target, None);
    assert!(engine_record.event_types.is_empty());

    let session_origin = SessionScope::session(ns.id("origin"));
    let mut caused = external(&ns.id("caused"));
    caused.provenance =
        ProcessProvenance::session(session_origin).caused_by(json!({ "tool": "spawn" }));
    let caused_record = register(target, caused.clone()).await;
    assert_eq!(caused_record.provenance, caused.provenance);

    // Whatever tier the registry reports, asking is a plain read.
    let _tier = registry.durability_tier();
}

/// Registering the same registration again returns the stored row, even
/// after the row has moved on, and writes nothing.
pub async fn reregistration_is_idempotent(target: &ConformanceTarget) {
    let ns = Namespace::new("registration-again");
    let registry = &target.registry;
    let registration = typed(&ns.id("p"));
    let first = register(target, registration.clone()).await;

    let again = register(target, registration.clone()).await;
    assert_eq!(
        again, first,
        "re-registration must return the stored row unchanged"
    );

    let external_ref = ProcessExternalRef {
        backend: "ci".to_owned(),
        id: "run-1".to_owned(),
        metadata: json!({}),
    };
    let changed = registry
        .set_external_ref(&first.id, external_ref)
        .await
        .expect("set_external_ref");
    let before = snapshot(target, &first.id).await;
    let third = register(target, registration).await;
    assert_eq!(
        third, changed,
        "re-registration must return the current row"
    );
    assert_unchanged_after(target, &first.id, &before, "re-registration").await;
}

/// A different registration under a taken id is a conflict and changes
/// nothing, whatever field differs.
pub async fn conflicting_registration_is_refused(target: &ConformanceTarget) {
    let ns = Namespace::new("registration-conflict");
    let registry = &target.registry;
    let id = ns.id("p");
    let registration = typed(&id);
    register(target, registration.clone()).await;
    let before = snapshot(target, &id).await;

    let variants = [
        (
            "different input",
            engine(&id, "other", json!({})).with_extra_event_types(catalog()),
        ),
        (
            "different disposition",
            registration
                .clone()
                .with_disposition(RecoveryDisposition::OwnerBound),
        ),
        ("different event types", external(&id)),
        (
            "different wake target",
            registration
                .clone()
                .with_wake_target(SessionScope::session(ns.id("s"))),
        ),
        (
            "different provenance",
            ProcessRegistration {
                provenance: ProcessProvenance::host().caused_by(json!("other")),
                ..registration.clone()
            },
        ),
    ];
    for (what, variant) in variants {
        let result = registry.register_process(variant).await;
        refused(target, &id, &before, result, ErrorKind::Conflict, what).await;
    }
}

/// Malformed registrations are invalid input and store nothing.
pub async fn invalid_registrations_are_refused(target: &ConformanceTarget) {
    let ns = Namespace::new("registration-invalid");
    let registry = &target.registry;

    let result = registry.register_process(external("")).await;
    expect_error(result, ErrorKind::InvalidInput, "empty process id");

    let too_long = format!("{}-{}", ns.id("long"), "x".repeat(MAX_PROCESS_ID_BYTES));
    let result = registry.register_process(external(&too_long)).await;
    expect_error(result, ErrorKind::InvalidInput, "process id over the limit");
    assert_eq!(registry.get_process(&too_long).await, None);

    let control = ns.id("control\u{7}");
    let result = registry.register_process(external(&control)).await;
    expect_error(
        result,
        ErrorKind::InvalidInput,
        "process id with a control character",
    );
    assert_eq!(registry.get_process(&control).await, None);

    let huge = ns.id("huge");
    let oversized = ProcessRegistration::new(
        huge.clone(),
        ProcessInput::External {
            metadata: json!({ "blob": "x".repeat(MAX_PAYLOAD_BYTES) }),
        },
        ProcessProvenance::host(),
    );
    let result = registry.register_process(oversized).await;
    expect_error(
        result,
        ErrorKind::InvalidInput,
        "a registration over the size limit",
    );
    assert_unknown(target, &huge, "a registration over the size limit").await;

    let cases = [
        (
            "built-in type redeclared",
            vec![ProcessEventType::any("process.waiting")],
        ),
        (
            "built-in cancel type redeclared",
            vec![ProcessEventType::any("process.cancel_requested")],
        ),
        (
            "built-in resumed type redeclared",
            vec![ProcessEventType::any("process.resumed")],
        ),
        (
            "reserved terminal type",
            vec![ProcessEventType::any("process.completed")],
        ),
        (
            "duplicate type",
            vec![
                ProcessEventType::any("twice"),
                ProcessEventType::any("twice"),
            ],
        ),
        ("empty type name", vec![ProcessEventType::any("")]),
        (
            "invalid JSON schema",
            vec![ProcessEventType::new(
                "bad",
                PayloadSchema::new(json!({ "type": 12 })),
            )],
        ),
        (
            "template field that is not a JSON pointer",
            vec![ProcessEventType::any("bad").with_wake(ProcessWakeSpec {
                when: None,
                input: ProcessValueSelector::Template {
                    template: "{x}".to_owned(),
                    fields: [(
                        "x".to_owned(),
                        ProcessValueSelector::Present("x".to_owned()),
                    )]
                    .into_iter()
                    .collect(),
                },
                dedupe_key: ProcessWakeDedupeKey::EventIdentity,
            })],
        ),
        (
            "wake selector that is not a JSON pointer",
            vec![ProcessEventType::any("bad").with_wake(ProcessWakeSpec {
                when: None,
                input: ProcessValueSelector::Pointer("input".to_owned()),
                dedupe_key: ProcessWakeDedupeKey::EventIdentity,
            })],
        ),
    ];
    for (index, (what, event_types)) in cases.into_iter().enumerate() {
        let id = ns.id(&format!("case-{index}"));
        let result = registry
            .register_process(external(&id).with_extra_event_types(event_types))
            .await;
        expect_error(result, ErrorKind::InvalidInput, what);
        assert_unknown(target, &id, what).await;
    }
}

/// Only the core types are reserved, as in the original: a registration may
/// declare its own `process.*` names beside them, and appends them.
pub async fn only_core_event_types_are_reserved(target: &ConformanceTarget) {
    let ns = Namespace::new("registration-reserved");
    let registry = &target.registry;
    let id = ns.id("host-types");
    let own = [
        ProcessEventType::any("process.wake"),
        ProcessEventType::any("process.custom"),
    ];
    let record = register(target, external(&id).with_extra_event_types(own.clone())).await;
    assert_eq!(record.event_types, own.to_vec());
    let appended = registry
        .append_event(
            &id,
            crate::model::ProcessEventAppendRequest::new("process.wake", json!({ "n": 1 })),
        )
        .await
        .unwrap_or_else(|err| panic!("appending a declared `process.wake` failed: {err}"));
    assert_eq!(appended.event.event_type, "process.wake");
    assert_eq!(appended.event.sequence, 1);
}
