//! Listings: `list_processes` filters and the `list_non_terminal` worklist.
//!
//! Every listing is checked as a whole for order and for each row passing
//! the filter; membership is asserted on the vector's own ids only.

use serde_json::json;

use super::support::{engine, external, register, register_typed, signal_wait, Namespace};
use super::ConformanceTarget;
use crate::model::{
    ProcessAwaitOutput, ProcessListFilter, ProcessProvenance, ProcessRecord, ProcessStatusFilter,
    SessionScope,
};

fn assert_sorted(records: &[ProcessRecord], what: &str) {
    for pair in records.windows(2) {
        assert!(
            pair[0].id < pair[1].id,
            "{what}: `{}` is listed before `{}`; rows must be sorted by id without repeats",
            pair[0].id,
            pair[1].id
        );
    }
}

async fn list(
    target: &ConformanceTarget,
    ns: &Namespace,
    filter: &ProcessListFilter,
) -> Vec<String> {
    let records = target
        .registry
        .list_processes(filter)
        .await
        .unwrap_or_else(|err| panic!("list_processes({filter:?}) failed: {err}"));
    let what = format!("list_processes({filter:?})");
    assert_sorted(&records, &what);
    for record in &records {
        assert!(
            filter.matches(record),
            "{what} returned `{}`, which fails the filter",
            record.id
        );
        if ns.owns(&record.id) {
            assert_eq!(
                target.registry.get_process(&record.id).await.as_ref(),
                Some(record),
                "{what}: listed rows are the stored rows"
            );
        }
    }
    ns.own_ids(&records)
}

fn status(status: ProcessStatusFilter) -> ProcessListFilter {
    ProcessListFilter {
        status,
        ..ProcessListFilter::default()
    }
}

/// The status filter: running by default, each terminal state, every
/// terminal state, and any.
pub async fn list_filters_by_status(target: &ConformanceTarget) {
    let ns = Namespace::new("listing-status");
    let registry = &target.registry;
    let ids: Vec<String> = [
        "1-running",
        "2-completed",
        "3-failed",
        "4-cancelled",
        "5-abandoned",
        "6-running",
    ]
    .iter()
    .map(|name| ns.id(name))
    .collect();
    for id in ids.iter().rev() {
        register_typed(target, id).await;
    }
    let outcomes = [
        (1, ProcessAwaitOutput::success(json!(1))),
        (2, ProcessAwaitOutput::failure("E", "failed")),
        (3, ProcessAwaitOutput::cancelled(None)),
        (4, ProcessAwaitOutput::abandoned(json!({ "why": "gone" }))),
    ];
    for (index, output) in outcomes {
        registry
            .complete_process(&ids[index], output)
            .await
            .expect("complete_process");
    }
    let pick = |indices: &[usize]| indices.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();

    assert_eq!(
        list(target, &ns, &ProcessListFilter::default()).await,
        pick(&[0, 5])
    );
    assert_eq!(
        list(target, &ns, &status(ProcessStatusFilter::Running)).await,
        pick(&[0, 5])
    );
    assert_eq!(
        list(target, &ns, &status(ProcessStatusFilter::Completed)).await,
        pick(&[1])
    );
    assert_eq!(
        list(target, &ns, &status(ProcessStatusFilter::Failed)).await,
        pick(&[2])
    );
    assert_eq!(
        list(target, &ns, &status(ProcessStatusFilter::Cancelled)).await,
        pick(&[3])
    );
    assert_eq!(
        list(target, &ns, &status(ProcessStatusFilter::Abandoned)).await,
        pick(&[4])
    );
    assert_eq!(
        list(target, &ns, &status(ProcessStatusFilter::Terminal)).await,
        pick(&[1, 2, 3, 4])
    );
    assert_eq!(
        list(target, &ns, &ProcessListFilter::any()).await,
        pick(&[0, 1, 2, 3, 4, 5])
    );
}

/// The waiting filter, alone and with a status.
pub async fn list_filters_by_waiting(target: &ConformanceTarget) {
    let ns = Namespace::new("listing-waiting");
    let registry = &target.registry;
    let (waiting, idle, ended) = (ns.id("a-waiting"), ns.id("b-idle"), ns.id("c-ended"));
    for id in [&waiting, &idle, &ended] {
        register_typed(target, id).await;
    }
    registry
        .set_process_wait(&waiting, signal_wait("k", 1))
        .await
        .expect("set_process_wait");
    registry
        .set_process_wait(&ended, signal_wait("k", 1))
        .await
        .expect("set_process_wait");
    registry
        .complete_process(&ended, ProcessAwaitOutput::success(json!(null)))
        .await
        .expect("complete_process");

    let waiting_filter = |waiting: bool, status: ProcessStatusFilter| ProcessListFilter {
        waiting: Some(waiting),
        status,
        ..ProcessListFilter::default()
    };
    assert_eq!(
        list(
            target,
            &ns,
            &waiting_filter(true, ProcessStatusFilter::Running)
        )
        .await,
        vec![waiting.clone()]
    );
    assert_eq!(
        list(
            target,
            &ns,
            &waiting_filter(false, ProcessStatusFilter::Running)
        )
        .await,
        vec![idle.clone()]
    );
    assert_eq!(
        list(target, &ns, &waiting_filter(true, ProcessStatusFilter::Any)).await,
        vec![waiting.clone()],
        "completion cleared the wait"
    );
    assert_eq!(
        list(
            target,
            &ns,
            &waiting_filter(false, ProcessStatusFilter::Any)
        )
        .await,
        vec![idle.clone(), ended.clone()]
    );

    registry
        .clear_process_wait(&waiting)
        .await
        .expect("clear_process_wait");
    assert!(
        list(target, &ns, &waiting_filter(true, ProcessStatusFilter::Any))
            .await
            .is_empty()
    );
}

/// Originator scope id (exact: a session is not its frames), identity kind,
/// label and definition, alone and combined.
pub async fn list_filters_by_origin_and_identity(target: &ConformanceTarget) {
    let ns = Namespace::new("listing-identity");
    let registry = &target.registry;
    let session = ns.id("session");
    let whole = SessionScope::session(&session);
    let frame = SessionScope::frame(&session, "frame-1");
    let label = ns.id("label");
    let other_label = ns.id("other-label");
    let definition = ns.id("definition");
    let other_definition = ns.id("other-definition");

    let mut from_session = external(&ns.id("1-from-session"));
    from_session.provenance = ProcessProvenance::session(whole.clone());
    let mut from_frame = external(&ns.id("2-from-frame"));
    from_frame.provenance = ProcessProvenance::session(frame.clone()).caused_by(json!("tool"));
    let from_host = external(&ns.id("3-from-host"));
    let engine_a = engine(
        &ns.id("4-engine-a"),
        &label,
        json!({ "definition": definition }),
    );
    let engine_b = engine(
        &ns.id("5-engine-b"),
        &label,
        json!({ "definition": other_definition }),
    );
    let engine_c = engine(&ns.id("6-engine-c"), &other_label, json!({}));
    let labelled = crate::model::ProcessRegistration::new(
        ns.id("7-external-labelled"),
        crate::model::ProcessInput::External {
            metadata: json!({ "label": label, "definition": definition }),
        },
        ProcessProvenance::host(),
    );
    let registrations = [
        from_session,
        from_frame,
        from_host,
        engine_a,
        engine_b,
        engine_c,
        labelled,
    ];
    let ids: Vec<String> = registrations.iter().map(|r| r.id.clone()).collect();
    for registration in registrations {
        register(target, registration).await;
    }
    let pick = |indices: &[usize]| indices.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();
    let filter = |change: &dyn Fn(&mut ProcessListFilter)| {
        let mut filter = ProcessListFilter::default();
        change(&mut filter);
        filter
    };

    let by_origin = |scope: String| filter(&move |f| f.originator_scope_id = Some(scope.clone()));
    assert_eq!(list(target, &ns, &by_origin(whole.id())).await, pick(&[0]));
    assert_eq!(list(target, &ns, &by_origin(frame.id())).await, pick(&[1]));
    assert_eq!(
        list(target, &ns, &by_origin("host".to_owned())).await,
        pick(&[2, 3, 4, 5, 6])
    );
    assert!(list(
        target,
        &ns,
        &by_origin(format!("session:{session}/frame:none"))
    )
    .await
    .is_empty());

    let by_kind = |kind: &'static str| filter(&move |f| f.identity_kind = Some(kind.to_owned()));
    assert_eq!(
        list(target, &ns, &by_kind("engine")).await,
        pick(&[3, 4, 5])
    );
    assert_eq!(
        list(target, &ns, &by_kind("external")).await,
        pick(&[0, 1, 2, 6])
    );

    let by_label = filter(&|f| f.identity_label = Some(label.clone()));
    assert_eq!(list(target, &ns, &by_label).await, pick(&[3, 4, 6]));
    let by_definition = filter(&|f| f.definition = Some(definition.clone()));
    assert_eq!(list(target, &ns, &by_definition).await, pick(&[3, 6]));
    let engine_label = filter(&|f| {
        f.identity_kind = Some("engine".to_owned());
        f.identity_label = Some(label.clone());
    });
    assert_eq!(list(target, &ns, &engine_label).await, pick(&[3, 4]));
    let all_three = filter(&|f| {
        f.identity_kind = Some("engine".to_owned());
        f.identity_label = Some(label.clone());
        f.definition = Some(definition.clone());
    });
    assert_eq!(list(target, &ns, &all_three).await, pick(&[3]));
    let host_label = filter(&|f| {
        f.originator_scope_id = Some("host".to_owned());
        f.identity_label = Some(other_label.clone());
    });
    assert_eq!(list(target, &ns, &host_label).await, pick(&[5]));

    registry
        .complete_process(&ids[4], ProcessAwaitOutput::success(json!(null)))
        .await
        .expect("complete_process");
    assert_eq!(
        list(target, &ns, &by_label).await,
        pick(&[3, 6]),
        "running by default"
    );
    let any_label = ProcessListFilter {
        status: ProcessStatusFilter::Any,
        ..by_label.clone()
    };
    assert_eq!(list(target, &ns, &any_label).await, pick(&[3, 4, 6]));
    let terminal_label = ProcessListFilter {
        status: ProcessStatusFilter::Terminal,
        ..by_label
    };
    assert_eq!(list(target, &ns, &terminal_label).await, pick(&[4]));
}

/// The created-at range: start inclusive, end exclusive. Moves the clock so
/// the rows have distinct creation times.
pub async fn list_filters_by_created_at(target: &ConformanceTarget) {
    let ns = Namespace::new("listing-created");
    let mut created = Vec::new();
    for name in ["a", "b", "c"] {
        let record = register_typed(target, &ns.id(name)).await;
        created.push((record.id, record.created_at_ms));
        target.clock.advance(20).await;
    }
    let (t1, t2, t3) = (created[0].1, created[1].1, created[2].1);
    assert!(
        t1 < t2 && t2 < t3,
        "rows created apart have increasing created_at_ms"
    );
    let ids: Vec<String> = created.iter().map(|(id, _)| id.clone()).collect();
    let range = |start: Option<u64>, end: Option<u64>| ProcessListFilter {
        status: ProcessStatusFilter::Any,
        created_at_start_ms: start,
        created_at_end_ms: end,
        ..ProcessListFilter::default()
    };
    assert_eq!(list(target, &ns, &range(None, None)).await, ids);
    assert_eq!(list(target, &ns, &range(Some(t2), None)).await, ids[1..]);
    assert_eq!(
        list(target, &ns, &range(Some(t2 + 1), None)).await,
        ids[2..]
    );
    assert_eq!(list(target, &ns, &range(None, Some(t2))).await, ids[..1]);
    assert_eq!(
        list(target, &ns, &range(None, Some(t2 + 1))).await,
        ids[..2]
    );
    assert_eq!(
        list(target, &ns, &range(Some(t1), Some(t3))).await,
        ids[..2]
    );
    assert_eq!(
        list(target, &ns, &range(Some(t2), Some(t2 + 1))).await,
        ids[1..2]
    );
    assert!(list(target, &ns, &range(Some(t2), Some(t2)))
        .await
        .is_empty());
    assert!(list(target, &ns, &range(Some(t3 + 1), None))
        .await
        .is_empty());
}

/// `list_non_terminal` is every non-terminal row in process-id order.
pub async fn list_non_terminal_in_id_order(target: &ConformanceTarget) {
    let ns = Namespace::new("listing-non-terminal");
    let registry = &target.registry;
    let names = ["c", "a", "d", "b"];
    for name in names {
        register_typed(target, &ns.id(name)).await;
    }
    registry
        .complete_process(&ns.id("d"), ProcessAwaitOutput::cancelled(None))
        .await
        .expect("complete_process");
    registry
        .set_process_wait(&ns.id("b"), signal_wait("k", 1))
        .await
        .expect("set_process_wait");

    let records = registry
        .list_non_terminal()
        .await
        .expect("list_non_terminal");
    assert_sorted(&records, "list_non_terminal");
    for record in &records {
        assert!(
            !record.is_terminal(),
            "list_non_terminal returned terminal `{}`",
            record.id
        );
    }
    assert_eq!(
        ns.own_ids(&records),
        vec![ns.id("a"), ns.id("b"), ns.id("c")]
    );
    for record in records.iter().filter(|record| ns.owns(&record.id)) {
        assert_eq!(
            registry.get_process(&record.id).await.as_ref(),
            Some(record)
        );
    }
}
