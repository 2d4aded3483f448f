//! Hostile input: every limit in [`crate::rules::limits`] is exact. An
//! input at a limit is stored and reads back equal; one past it is
//! `InvalidInput` and changes nothing. Scope ids never collide.

use serde_json::{json, Value};

use super::support::{
    assert_unknown, descriptor, expect_error, external, owner, refused, register, register_typed,
    snapshot, ErrorKind, Namespace, NOTE, PING,
};
use super::ConformanceTarget;
use crate::error::ProcessError;
use crate::model::PayloadSchema;
use crate::model::{
    AbandonRequest, ProcessAwaitOutput, ProcessEventAppendRequest, ProcessEventType,
    ProcessExternalRef, ProcessHandleDescriptor, ProcessIdentity, ProcessInput, ProcessListFilter,
    ProcessProvenance, ProcessRegistration, SessionScope, WaitKind, WaitState,
};
use crate::rules::limits::{
    MAX_GRANTS_PER_PROCESS, MAX_JSON_DEPTH, MAX_KEY_BYTES, MAX_LEASE_TTL_MS, MAX_TEXT_BYTES,
    MAX_TRANSFER_IDS,
};

/// An array nested `levels` deep around a number.
pub fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!([inner]))
}

/// A string of `bytes` bytes.
pub fn text(bytes: usize) -> String {
    "x".repeat(bytes)
}

fn with_metadata(id: &str, metadata: Value) -> ProcessRegistration {
    ProcessRegistration::new(
        id,
        ProcessInput::External { metadata },
        ProcessProvenance::host(),
    )
}

/// A registration refused as invalid input, leaving its id unknown.
async fn refused_registration(
    target: &ConformanceTarget,
    registration: ProcessRegistration,
    what: &str,
) {
    let id = registration.id.clone();
    expect_error(
        target.registry.register_process(registration).await,
        ErrorKind::InvalidInput,
        what,
    );
    assert_unknown(target, &id, what).await;
}

/// Documents nested exactly [`MAX_JSON_DEPTH`] deep are stored and read
/// back equal; one level more is refused everywhere a document goes.
pub async fn documents_at_the_depth_limit_round_trip(target: &ConformanceTarget) {
    let ns = Namespace::new("limits-depth");
    let registry = &target.registry;
    let (deep, too_deep) = (nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1));

    // Registration input and provenance.
    let id = ns.id("deep-input");
    let record = register(
        target,
        with_metadata(&id, deep.clone()).with_extra_event_types([ProcessEventType::any(NOTE)]),
    )
    .await;
    assert_eq!(
        registry.get_process(&id).await.map(|r| r.input),
        Some(ProcessInput::External {
            metadata: deep.clone()
        })
    );
    assert_eq!(
        record.input,
        ProcessInput::External {
            metadata: deep.clone()
        }
    );
    let rejected = ns.id("too-deep-input");
    for (registration, what) in [
        (with_metadata(&rejected, too_deep.clone()), "input metadata"),
        (
            ProcessRegistration::new(
                &rejected,
                ProcessInput::External {
                    metadata: json!({}),
                },
                ProcessProvenance::host().caused_by(too_deep.clone()),
            ),
            "provenance cause",
        ),
        (
            with_metadata(&rejected, json!({})).with_extra_event_types([ProcessEventType::new(
                "deep-schema",
                PayloadSchema::new(json!({ "examples": [too_deep.clone()] })),
            )]),
            "payload schema",
        ),
    ] {
        refused_registration(target, registration, what).await;
    }

    // Event payloads.
    let appended = registry
        .append_event(&id, ProcessEventAppendRequest::new(NOTE, deep.clone()))
        .await
        .expect("a payload at the depth limit");
    assert_eq!(appended.event.payload, deep);
    let log = registry.events_after(&id, 0).await.expect("events_after");
    assert_eq!(log.last().map(|e| &e.payload), Some(&deep));
    let tail = registry.recent_events(&id, 1).await.expect("recent_events");
    assert_eq!(tail.last().map(|e| &e.payload), Some(&deep));
    let before = snapshot(target, &id).await;
    refused(
        target,
        &id,
        &before,
        registry
            .append_event(&id, ProcessEventAppendRequest::new(NOTE, too_deep.clone()))
            .await,
        ErrorKind::InvalidInput,
        "an append one level past the depth limit",
    )
    .await;

    // External ref metadata.
    let deep_ref = |metadata: Value| ProcessExternalRef {
        backend: "ci".into(),
        id: "run-1".into(),
        metadata,
    };
    refused(
        target,
        &id,
        &before,
        registry
            .set_external_ref(&id, deep_ref(too_deep.clone()))
            .await,
        ErrorKind::InvalidInput,
        "external ref metadata one level past the limit",
    )
    .await;
    let stored = registry
        .set_external_ref(&id, deep_ref(deep.clone()))
        .await
        .expect("external ref metadata at the limit");
    assert_eq!(stored.external_ref, Some(deep_ref(deep.clone())));
    assert_eq!(registry.get_process(&id).await, Some(stored));

    // Outcomes.
    let before = snapshot(target, &id).await;
    refused(
        target,
        &id,
        &before,
        registry
            .complete_process(&id, ProcessAwaitOutput::success(too_deep))
            .await,
        ErrorKind::InvalidInput,
        "an outcome one level past the limit",
    )
    .await;
    let ended = registry
        .complete_process(&id, ProcessAwaitOutput::success(deep.clone()))
        .await
        .expect("an outcome at the limit");
    assert_eq!(
        ended.status.await_output(),
        Some(&ProcessAwaitOutput::success(deep))
    );
    let log = registry.events_after(&id, 0).await.expect("events_after");
    assert_eq!(log.len(), 2, "the note and the terminal event read back");
    assert_eq!(registry.get_process(&id).await, Some(ended));
}

/// Keys and texts at their limits are stored and read back; one byte more
/// is refused with nothing written, in every method that takes them.
pub async fn strings_at_their_limits(target: &ConformanceTarget) {
    let ns = Namespace::new("limits-strings");
    let registry = &target.registry;
    let (key, long_key) = (text(MAX_KEY_BYTES), text(MAX_KEY_BYTES + 1));
    let (label, long_label) = (text(MAX_TEXT_BYTES), text(MAX_TEXT_BYTES + 1));

    // Registration: identity, declared type names, wake target.
    let id = ns.id("p");
    let identity = |label: &str, kind: &str| ProcessIdentity {
        kind: kind.to_owned(),
        label: label.to_owned(),
        definition: Some(key.clone()),
    };
    let registration = super::support::typed(&id)
        .with_identity(identity(&label, &key))
        .with_extra_event_types([ProcessEventType::any(&key)])
        .with_wake_target(SessionScope::frame(&key, &key));
    let record = register(target, registration.clone()).await;
    assert_eq!(record.identity, identity(&label, &key));
    assert_eq!(record.wake_target, Some(SessionScope::frame(&key, &key)));
    let rejected = ns.id("rejected");
    for (registration, what) in [
        (
            external(&rejected).with_identity(identity(&long_label, "k")),
            "identity label",
        ),
        (
            external(&rejected).with_identity(identity("l", &long_key)),
            "identity kind",
        ),
        (
            external(&rejected).with_extra_event_types([ProcessEventType::any(&long_key)]),
            "event type name",
        ),
        (
            external(&rejected).with_wake_target(SessionScope::session(&long_key)),
            "wake target session",
        ),
        (
            ProcessRegistration::new(
                &rejected,
                ProcessInput::External {
                    metadata: json!({}),
                },
                ProcessProvenance::session(SessionScope::frame("s", &long_key)),
            ),
            "originator frame",
        ),
    ] {
        refused_registration(target, registration, what).await;
    }

    // Appends: replay keys, type names, a dedupe key selected from the payload.
    let keyed = registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(&key, json!({})).with_replay_key(&key),
        )
        .await
        .expect("type name and replay key at the limit");
    assert_eq!(keyed.event.replay_key.as_deref(), Some(key.as_str()));
    let woke = registry
        .append_event(
            &id,
            ProcessEventAppendRequest::new(PING, json!({ "wake": true, "key": key })),
        )
        .await
        .expect("a selected dedupe key at the limit");
    assert_eq!(
        woke.event.semantics.wake.map(|wake| wake.dedupe_key),
        Some(key.clone())
    );
    let before = snapshot(target, &id).await;
    let over_limit_appends = [
        (
            ProcessEventAppendRequest::new(NOTE, json!({})).with_replay_key(&long_key),
            "replay key",
        ),
        (
            ProcessEventAppendRequest::new(&long_key, json!({})),
            "event type",
        ),
        (
            ProcessEventAppendRequest::new(PING, json!({ "wake": true, "key": long_key })),
            "selected dedupe key",
        ),
        (
            ProcessEventAppendRequest::new(NOTE, json!({}))
                .with_wake_target_scope(SessionScope::session(&long_key)),
            "wake target scope",
        ),
    ];
    let mut refusals = Vec::new();
    for (request, what) in over_limit_appends {
        let error = refused(
            target,
            &id,
            &before,
            registry.append_event(&id, request).await,
            ErrorKind::InvalidInput,
            what,
        )
        .await;
        refusals.push(error);
    }
    // Every registry words a refusal the same way.
    assert_eq!(
        refusals[0],
        ProcessError::invalid(format!(
            "replay key is {} bytes; the limit is {MAX_KEY_BYTES}",
            MAX_KEY_BYTES + 1
        ))
    );

    // Row facts.
    let wait = |wait_key: &str| WaitState {
        kind: WaitKind::Signal {
            name: "signal".into(),
            event_type: NOTE.into(),
            key: wait_key.into(),
            ordinal: 1,
        },
        since_ms: 1,
    };
    let abandon = |by: &str, reason: &str| AbandonRequest {
        requested_by: by.into(),
        reason: reason.into(),
        requested_at_ms: 1,
    };
    let ext = |backend: &str| ProcessExternalRef {
        backend: backend.into(),
        id: key.clone(),
        metadata: json!(null),
    };
    let results = [
        (
            registry.set_process_wait(&id, wait(&long_key)).await,
            "wait key",
        ),
        (
            registry
                .request_process_abandon(&id, abandon(&long_key, "r"))
                .await,
            "abandon requester",
        ),
        (
            registry
                .request_process_abandon(&id, abandon("op", &long_label))
                .await,
            "abandon reason",
        ),
        (
            registry.set_external_ref(&id, ext(&long_key)).await,
            "external ref backend",
        ),
    ];
    for (result, what) in results {
        refused(target, &id, &before, result, ErrorKind::InvalidInput, what).await;
    }
    let waiting = registry
        .set_process_wait(&id, wait(&key))
        .await
        .expect("wait key at the limit");
    assert_eq!(waiting.wait, Some(wait(&key)));
    let flagged = registry
        .request_process_abandon(&id, abandon(&key, &label))
        .await
        .expect("abandon request at the limits");
    assert_eq!(flagged.abandon_request, Some(abandon(&key, &label)));
    let referenced = registry
        .set_external_ref(&id, ext(&key))
        .await
        .expect("external ref at the limit");
    assert_eq!(referenced.external_ref, Some(ext(&key)));

    // Grants.
    let at_limit = SessionScope::frame(&key, &key);
    let handle = ProcessHandleDescriptor {
        kind: key.clone(),
        label: label.clone(),
    };
    let grant = registry
        .grant_handle(&at_limit, &id, handle.clone())
        .await
        .expect("a grant at the limits");
    assert_eq!(grant.descriptor, handle);
    let listed = registry.list_handle_grants(&at_limit).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, grant);
    let before = snapshot(target, &id).await;
    let long_handle = |kind: &str, label: &str| ProcessHandleDescriptor {
        kind: kind.into(),
        label: label.into(),
    };
    let results = [
        (
            registry
                .grant_handle(&SessionScope::session(&long_key), &id, descriptor("d"))
                .await
                .map(drop),
            "grant session id",
        ),
        (
            registry
                .grant_handle(&SessionScope::frame("s", &long_key), &id, descriptor("d"))
                .await
                .map(drop),
            "grant frame id",
        ),
        (
            registry
                .grant_handle(&at_limit, &id, long_handle(&long_key, "l"))
                .await
                .map(drop),
            "handle kind",
        ),
        (
            registry
                .grant_handle(&at_limit, &id, long_handle("k", &long_label))
                .await
                .map(drop),
            "handle label",
        ),
        (
            registry
                .revoke_handle(&SessionScope::session(&long_key), &id)
                .await,
            "revoke session id",
        ),
        (
            registry
                .transfer_handle_grants(
                    &at_limit,
                    &SessionScope::session("elsewhere"),
                    &vec![id.clone(); MAX_TRANSFER_IDS + 1],
                )
                .await,
            "transfer of too many ids",
        ),
        (
            registry
                .transfer_handle_grants(
                    &at_limit,
                    &SessionScope::session(&long_key),
                    std::slice::from_ref(&id),
                )
                .await,
            "transfer target",
        ),
        (
            registry
                .list_handle_grants(&SessionScope::session(&long_key))
                .await
                .map(drop),
            "list session id",
        ),
        (
            registry
                .delete_session_process_state(&long_key)
                .await
                .map(drop),
            "deleted session id",
        ),
    ];
    for (result, what) in results {
        refused(target, &id, &before, result, ErrorKind::InvalidInput, what).await;
    }

    // Leases, counts and listings.
    let mut long_owner = owner("limits");
    long_owner.owner_id = long_key.clone();
    let results = [
        (
            registry
                .claim_process_lease(&id, &long_owner, 1_000)
                .await
                .map(drop),
            "lease owner id",
        ),
        (
            registry
                .claim_process_lease(&id, &owner("limits"), MAX_LEASE_TTL_MS + 1)
                .await
                .map(drop),
            "lease ttl",
        ),
        (
            registry
                .count_events_through(&id, &long_key, 10)
                .await
                .map(drop),
            "counted event type",
        ),
        (
            registry
                .list_processes(&ProcessListFilter {
                    identity_kind: Some(long_key.clone()),
                    ..ProcessListFilter::any()
                })
                .await
                .map(drop),
            "list filter",
        ),
    ];
    for (result, what) in results {
        refused(target, &id, &before, result, ErrorKind::InvalidInput, what).await;
    }
    let lease = registry
        .claim_process_lease(&id, &owner("limits"), MAX_LEASE_TTL_MS)
        .await
        .expect("claim at the ttl limit")
        .acquired()
        .expect("free lease");
    let mut forged = lease.clone();
    forged.lease_token = long_key.clone();
    let before = snapshot(target, &id).await;
    refused(
        target,
        &id,
        &before,
        registry.renew_process_lease(&forged, 1_000).await,
        ErrorKind::InvalidInput,
        "renewal with an over-long token",
    )
    .await;

    // Outcomes.
    let results = [
        (
            registry
                .complete_process(&id, ProcessAwaitOutput::failure(&long_key, "m"))
                .await,
            "failure code",
        ),
        (
            registry
                .complete_process(&id, ProcessAwaitOutput::failure("c", &long_label))
                .await,
            "failure message",
        ),
    ];
    for (result, what) in results {
        refused(target, &id, &before, result, ErrorKind::InvalidInput, what).await;
    }
    let failed = ProcessAwaitOutput::failure(&key, &label);
    let ended = registry
        .complete_process(&id, failed.clone())
        .await
        .expect("an outcome at the limits");
    assert_eq!(ended.status.await_output(), Some(&failed));
    assert_eq!(registry.get_process(&id).await, Some(ended));
}

/// A session whose id looks like another session's frame never reaches
/// that frame's grants: distinct scopes keep distinct grants through
/// grant, list, revoke, transfer and session delete.
pub async fn scope_ids_never_collide(target: &ConformanceTarget) {
    let ns = Namespace::new("limits-scopes");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let session = ns.id("S");
    let frame = SessionScope::frame(&session, "x");
    let lookalike = SessionScope::session(format!("{session}/frame:x"));
    assert_ne!(frame.id(), lookalike.id());

    registry
        .grant_handle(&frame, &id, descriptor("frame's"))
        .await
        .expect("grant to the frame");
    registry
        .grant_handle(&lookalike, &id, descriptor("lookalike's"))
        .await
        .expect("grant to the look-alike session");
    let on_process = registry
        .handle_grants_for_process(&id)
        .await
        .expect("grants");
    assert_eq!(
        on_process.len(),
        2,
        "two scopes, two grants: {on_process:?}"
    );
    for (scope, label) in [(&frame, "frame's"), (&lookalike, "lookalike's")] {
        let listed = registry.list_handle_grants(scope).await.expect("list");
        assert_eq!(listed.len(), 1, "{}", scope.id());
        assert_eq!(listed[0].0.descriptor, descriptor(label));
    }

    registry
        .revoke_handle(&lookalike, &id)
        .await
        .expect("revoke");
    let left = registry.list_handle_grants(&frame).await.expect("list");
    assert_eq!(
        left.len(),
        1,
        "the frame's grant survives the look-alike's revoke"
    );
    assert!(registry
        .list_handle_grants(&lookalike)
        .await
        .expect("list")
        .is_empty());

    registry
        .grant_handle(&lookalike, &id, descriptor("again"))
        .await
        .expect("grant again");
    let report = registry
        .delete_session_process_state(&lookalike.session_id)
        .await
        .expect("delete the look-alike session");
    assert_eq!(report.revoked_handle_count, 1);
    assert_eq!(report.preserved_process_ids, vec![id.clone()]);
    let left = registry.list_handle_grants(&frame).await.expect("list");
    assert_eq!(
        left.len(),
        1,
        "the frame's grant survives the look-alike's delete"
    );
    assert_eq!(
        registry
            .handle_grants_for_process(&id)
            .await
            .expect("grants"),
        vec![left[0].0.clone()]
    );
}

/// A process carries at most [`MAX_GRANTS_PER_PROCESS`] grants: one more
/// scope is refused with nothing changed (here or in the session), while
/// upserting a held scope's grant still works.
pub async fn grants_per_process_are_capped(target: &ConformanceTarget) {
    let ns = Namespace::new("limits-grant-cap");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let session = ns.id("S");
    let frame = |n: usize| SessionScope::frame(&session, format!("f{n}"));
    for n in 0..MAX_GRANTS_PER_PROCESS {
        registry
            .grant_handle(&frame(n), &id, descriptor("held"))
            .await
            .expect("a grant under the cap");
    }
    let before = snapshot(target, &id).await;
    refused(
        target,
        &id,
        &before,
        registry
            .grant_handle(&frame(MAX_GRANTS_PER_PROCESS), &id, descriptor("one more"))
            .await,
        ErrorKind::InvalidInput,
        "a grant past the per-process cap",
    )
    .await;
    assert!(registry
        .list_handle_grants(&frame(MAX_GRANTS_PER_PROCESS))
        .await
        .expect("list")
        .is_empty());
    let upserted = registry
        .grant_handle(&frame(0), &id, descriptor("relabelled"))
        .await
        .expect("upserting a held scope");
    assert_eq!(upserted.descriptor, descriptor("relabelled"));
    assert_eq!(
        registry
            .handle_grants_for_process(&id)
            .await
            .expect("grants")
            .len(),
        MAX_GRANTS_PER_PROCESS
    );
}

/// An outcome the registry derives from a terminal event's payload is not
/// held to the caller-facing text limits: a failure whose payload names no
/// message takes the payload's text as its message, however long.
pub async fn derived_outcomes_are_not_held_to_text_limits(target: &ConformanceTarget) {
    let ns = Namespace::new("limits-derived");
    let registry = &target.registry;
    let id = ns.id("p");
    register_typed(target, &id).await;
    let payload = json!({ "detail": text(MAX_TEXT_BYTES * 2) });
    let crashed = ProcessEventAppendRequest::new(super::support::CRASHED, payload.clone())
        .with_replay_key("crash");
    registry
        .append_event(&id, crashed)
        .await
        .expect("a terminal append whose derived message is long");
    let row = registry.get_process(&id).await.expect("row");
    match row.status.await_output() {
        Some(ProcessAwaitOutput::Failure { message, raw, .. }) => {
            assert_eq!(message, &payload.to_string());
            assert_eq!(raw.as_ref(), Some(&payload));
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
