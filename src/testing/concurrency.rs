//! Racing callers on one process: appends, replays, claims and completions.

use std::collections::BTreeSet;

use serde_json::json;
use tokio::task::JoinSet;

use super::support::{owner, register_typed, ErrorKind, Namespace, LONG_TTL_MS, NOTE};
use super::ConformanceTarget;
use crate::model::{
    ProcessAwaitOutput, ProcessEventAppendRequest, ProcessLeaseClaimOutcome, ProcessStatus,
};

const APPENDERS: u64 = 32;
const CLAIMERS: usize = 8;
const RACERS: u64 = 8;

async fn join_all<T: 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.expect("a racing task panicked"));
    }
    results
}

/// Concurrent appends get sequences exactly 1..=n, each once, and the log
/// holds every payload once in sequence order.
pub async fn concurrent_appends_are_gapless(target: &ConformanceTarget) {
    let ns = Namespace::new("race-append");
    let id = ns.id("p");
    register_typed(target, &id).await;

    let mut tasks = JoinSet::new();
    for n in 0..APPENDERS {
        let registry = target.registry.clone();
        let id = id.clone();
        tasks.spawn(async move {
            let result = registry
                .append_event(&id, ProcessEventAppendRequest::new(NOTE, json!({ "n": n })))
                .await
                .unwrap_or_else(|err| panic!("racing append {n} failed: {err}"));
            (n, result)
        });
    }
    let results = join_all(tasks).await;
    let mut seen = BTreeSet::new();
    for (n, result) in &results {
        assert!(!result.deduplicated);
        assert_eq!(result.event.payload, json!({ "n": n }));
        assert!(
            seen.insert(result.event.sequence),
            "sequence {} was handed out twice",
            result.event.sequence
        );
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        (1..=APPENDERS).collect::<Vec<_>>(),
        "racing appends must take exactly 1..={APPENDERS}"
    );

    let events = target
        .registry
        .events_after(&id, 0)
        .await
        .expect("events_after");
    assert_eq!(
        events
            .iter()
            .map(|event| event.sequence)
            .collect::<Vec<_>>(),
        (1..=APPENDERS).collect::<Vec<_>>()
    );
    for (_, result) in &results {
        let stored = &events[(result.event.sequence - 1) as usize];
        assert_eq!(
            stored, &result.event,
            "the log holds what each append returned"
        );
    }
}

/// Concurrent appends under one replay key write one event; every caller
/// gets that event, and exactly one of them is not deduplicated.
pub async fn concurrent_replays_write_once(target: &ConformanceTarget) {
    let ns = Namespace::new("race-replay");
    let id = ns.id("p");
    register_typed(target, &id).await;

    let mut tasks = JoinSet::new();
    for _ in 0..RACERS {
        let registry = target.registry.clone();
        let id = id.clone();
        tasks.spawn(async move {
            registry
                .append_event(
                    &id,
                    ProcessEventAppendRequest::new(NOTE, json!({ "once": true }))
                        .with_replay_key("only-once"),
                )
                .await
                .unwrap_or_else(|err| panic!("racing replayed append failed: {err}"))
        });
    }
    let results = join_all(tasks).await;
    let written = results.iter().filter(|result| !result.deduplicated).count();
    assert_eq!(written, 1, "exactly one racing append writes");
    let events = target
        .registry
        .events_after(&id, 0)
        .await
        .expect("events_after");
    assert_eq!(events.len(), 1, "one replay key, one event");
    for result in &results {
        assert_eq!(result.event, events[0]);
    }
}

/// Concurrent claims by distinct owners: exactly one acquires; everyone else
/// is told it is busy, naming that holder.
pub async fn concurrent_claims_have_one_winner(target: &ConformanceTarget) {
    let ns = Namespace::new("race-claim");
    let id = ns.id("p");
    register_typed(target, &id).await;

    let mut tasks = JoinSet::new();
    for n in 0..CLAIMERS {
        let registry = target.registry.clone();
        let id = id.clone();
        let claimant = owner(&format!("claimant-{n}"));
        tasks.spawn(async move {
            let outcome = registry
                .claim_process_lease(&id, &claimant, LONG_TTL_MS)
                .await
                .unwrap_or_else(|err| panic!("racing claim {n} failed: {err}"));
            (claimant, outcome)
        });
    }
    let results = join_all(tasks).await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(claimant, outcome)| match outcome {
            ProcessLeaseClaimOutcome::Acquired(lease) => Some((claimant, lease)),
            ProcessLeaseClaimOutcome::Busy { .. } => None,
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one racing claim acquires: {results:?}"
    );
    let (winner, lease) = winners[0];
    assert_eq!(&lease.owner, winner);
    assert_eq!(lease.fencing_token, 1);
    for (claimant, outcome) in &results {
        if claimant == winner {
            continue;
        }
        assert_eq!(
            outcome,
            &ProcessLeaseClaimOutcome::Busy {
                holder: lease.clone()
            },
            "a losing claimant is told who holds the lease"
        );
    }
    assert_eq!(
        target.registry.get_process_lease(&id).await,
        Ok(Some(lease.clone()))
    );
}

/// Concurrent completions with different outcomes: exactly one wins, the
/// others conflict, and the log holds one terminal event.
pub async fn concurrent_completions_have_one_outcome(target: &ConformanceTarget) {
    let ns = Namespace::new("race-complete");
    let id = ns.id("p");
    register_typed(target, &id).await;

    let mut tasks = JoinSet::new();
    for n in 0..RACERS {
        let registry = target.registry.clone();
        let id = id.clone();
        tasks.spawn(async move {
            let output = ProcessAwaitOutput::success(json!({ "winner": n }));
            let result = registry.complete_process(&id, output.clone()).await;
            (output, result)
        });
    }
    let results = join_all(tasks).await;
    let mut winner = None;
    for (output, result) in results {
        match result {
            Ok(record) => {
                assert!(
                    winner.is_none(),
                    "two different outcomes were both accepted"
                );
                assert_eq!(record.status, ProcessStatus::Completed(output.clone()));
                winner = Some(output);
            }
            Err(error) => {
                assert_eq!(
                    ErrorKind::of(&error),
                    ErrorKind::Conflict,
                    "a losing completion must conflict, got `{error}`"
                );
            }
        }
    }
    let winner = winner.expect("one racing completion wins");
    let record = target.registry.get_process(&id).await.expect("row");
    assert_eq!(record.status, ProcessStatus::Completed(winner));
    let events = target
        .registry
        .events_after(&id, 0)
        .await
        .expect("events_after");
    assert_eq!(events.len(), 1, "one terminal event");
    assert_eq!(events[0].event_type, "process.completed");
}
