//! Cross-process races on a real restate-server, with the registry endpoint
//! running as its own OS process (`procreg serve`) so it can be killed with
//! SIGKILL mid-round and started again.
//!
//! Each round fires conflicting calls at once and then checks that what
//! happened is a legal serial order: some order of the same calls, applied
//! one by one to a model of the grants and wakes, gives every call the
//! outcome it got and ends in the state the registry ended in. After each
//! round `check` must find the directory, the rows and the session grant
//! authorities in agreement.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use procreg::check::check;
use restate_process_registry::testing::support::{descriptor, typed, unique_id, ALERT};
use restate_process_registry::{
    ProcessError, ProcessEventAppendRequest, ProcessRegistry, RestateProcessRegistry, SessionScope,
};
use restate_process_registry_testkit::child_endpoint::ChildEndpoint;
use restate_process_registry_testkit::local_server::LocalRestate;
use serde_json::json;

/// Rounds of each scenario.
const ROUNDS: usize = 5;
/// The transfer round whose endpoint is killed mid-flight.
const KILLED_ROUND: usize = 2;

/// One call of a round, as the model sees it.
#[derive(Debug, Clone)]
enum Op {
    Transfer(SessionScope, SessionScope, Vec<usize>),
    Revoke(SessionScope, usize),
    Grant(SessionScope, usize),
    Delete(String),
    Wake(usize),
}

/// What a call returned, as the model can predict it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    Refused,
    Deleted {
        revoked: u64,
        orphaned: Vec<usize>,
        preserved: Vec<usize>,
        wakes: u64,
    },
}

/// Grants (scope id → processes) and, per process, its wake target and its
/// unacknowledged wakes (each with the session it was delivered to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    grants: BTreeSet<(String, String, usize)>,
    targets: BTreeMap<usize, Option<String>>,
    wakes: BTreeMap<usize, Vec<Option<String>>>,
}

impl Model {
    fn holds(&self, scope: &SessionScope, p: usize) -> bool {
        self.grants
            .contains(&(scope.id(), scope.session_id.clone(), p))
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Transfer(from, to, ids) => {
                if !ids.iter().all(|&p| self.holds(from, p)) {
                    return Outcome::Refused;
                }
                for &p in ids {
                    self.grants.remove(&(from.id(), from.session_id.clone(), p));
                    self.grants.insert((to.id(), to.session_id.clone(), p));
                }
                Outcome::Ok
            }
            Op::Revoke(scope, p) => {
                self.grants
                    .remove(&(scope.id(), scope.session_id.clone(), *p));
                Outcome::Ok
            }
            Op::Grant(scope, p) => {
                self.grants
                    .insert((scope.id(), scope.session_id.clone(), *p));
                Outcome::Ok
            }
            Op::Wake(p) => {
                let target = self.targets.get(p).cloned().flatten();
                self.wakes.entry(*p).or_default().push(target);
                Outcome::Ok
            }
            Op::Delete(session) => {
                let revoked: Vec<_> = self
                    .grants
                    .iter()
                    .filter(|(_, s, _)| s == session)
                    .cloned()
                    .collect();
                let touched: BTreeSet<usize> = revoked.iter().map(|(_, _, p)| *p).collect();
                for grant in &revoked {
                    self.grants.remove(grant);
                }
                let (orphaned, preserved) = touched
                    .into_iter()
                    .partition(|p| !self.grants.iter().any(|(_, _, q)| q == p));
                // Wakes stay pending, whatever session they were aimed at.
                let wakes = 0;
                for target in self.targets.values_mut() {
                    if target.as_deref() == Some(session.as_str()) {
                        *target = None;
                    }
                }
                Outcome::Deleted {
                    revoked: revoked.len() as u64,
                    orphaned,
                    preserved,
                    wakes,
                }
            }
        }
    }
}

/// What can be read back of a model: grants, wake targets and how many
/// wakes each process has unacknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct View {
    grants: BTreeSet<(String, String, usize)>,
    targets: BTreeMap<usize, Option<String>>,
    unacked: BTreeMap<usize, usize>,
}

impl Model {
    fn view(&self) -> View {
        View {
            grants: self.grants.clone(),
            targets: self.targets.clone(),
            unacked: self.wakes.iter().map(|(p, w)| (*p, w.len())).collect(),
        }
    }
}

/// Every order of `ops`, depth first; true when one reproduces the run.
fn some_serial_order(
    model: &Model,
    ops: &[Op],
    outcomes: &[Outcome],
    done: &mut Vec<bool>,
    end: &View,
) -> bool {
    if done.iter().all(|&d| d) {
        return model.view() == *end;
    }
    for i in 0..ops.len() {
        if done[i] {
            continue;
        }
        let mut next = model.clone();
        if next.apply(&ops[i]) != outcomes[i] {
            continue;
        }
        done[i] = true;
        let found = some_serial_order(&next, ops, outcomes, done, end);
        done[i] = false;
        if found {
            return true;
        }
    }
    false
}

struct Round {
    registry: RestateProcessRegistry,
    ids: Vec<String>,
}

impl Round {
    /// `processes` fresh processes; those in `targets` aim their wakes at a session.
    async fn new(
        registry: &RestateProcessRegistry,
        tag: &str,
        processes: usize,
        targets: &[(usize, SessionScope)],
    ) -> Self {
        let prefix = unique_id(tag);
        let ids: Vec<String> = (0..processes).map(|n| format!("{prefix}-p{n}")).collect();
        for (p, id) in ids.iter().enumerate() {
            let mut registration = typed(id);
            if let Some((_, scope)) = targets.iter().find(|(q, _)| *q == p) {
                registration = registration.with_wake_target(scope.clone());
            }
            registry
                .register_process(registration)
                .await
                .expect("register");
        }
        Self {
            registry: registry.clone(),
            ids,
        }
    }

    fn index(&self, id: &str) -> usize {
        self.ids.iter().position(|own| own == id).expect("own id")
    }

    async fn run(&self, op: Op) -> Outcome {
        let registry = &self.registry;
        let result = match &op {
            Op::Transfer(from, to, ids) => {
                let ids: Vec<String> = ids.iter().map(|&p| self.ids[p].clone()).collect();
                registry.transfer_handle_grants(from, to, &ids).await
            }
            Op::Revoke(scope, p) => registry.revoke_handle(scope, &self.ids[*p]).await,
            Op::Grant(scope, p) => registry
                .grant_handle(scope, &self.ids[*p], descriptor("raced"))
                .await
                .map(drop),
            Op::Wake(p) => registry
                .append_event(
                    &self.ids[*p],
                    ProcessEventAppendRequest::new(ALERT, json!({})),
                )
                .await
                .map(drop),
            Op::Delete(session) => {
                let report = registry
                    .delete_session_process_state(session)
                    .await
                    .expect("session delete");
                let own = |ids: &[String]| {
                    let mut own: Vec<usize> = ids.iter().map(|id| self.index(id)).collect();
                    own.sort_unstable();
                    own
                };
                return Outcome::Deleted {
                    revoked: report.revoked_handle_count,
                    orphaned: own(&report.orphaned_process_ids),
                    preserved: own(&report.preserved_process_ids),
                    wakes: report.deleted_wake_count,
                };
            }
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(ProcessError::InvalidInput(_)) => Outcome::Refused,
            Err(other) => panic!("{op:?} failed unexpectedly: {other}"),
        }
    }

    /// The registry's state, read back into the model's terms.
    async fn observed(&self, start: &Model) -> View {
        let mut seen = View::default();
        for (p, id) in self.ids.iter().enumerate() {
            for grant in self.registry.handle_grants_for_process(id).await.unwrap() {
                seen.grants.insert((grant.scope_id, grant.session_id, p));
            }
        }
        for &p in start.targets.keys() {
            let row = self.registry.get_process(&self.ids[p]).await.unwrap();
            seen.targets
                .insert(p, row.wake_target.map(|scope| scope.session_id));
        }
        for &p in start.wakes.keys() {
            let unacked = self
                .registry
                .wake_events_after(&self.ids[p], 0)
                .await
                .unwrap();
            seen.unacked.insert(p, unacked.len());
        }
        seen
    }
}

/// Fires `ops` at once and asserts a legal serial order explains them.
async fn race(round: &Round, start: &Model, ops: Vec<Op>, during: Option<&mut ChildEndpoint>) {
    let round_ref = Arc::new(Round {
        registry: round.registry.clone(),
        ids: round.ids.clone(),
    });
    let tasks: Vec<_> = ops
        .iter()
        .cloned()
        .map(|op| {
            let round = Arc::clone(&round_ref);
            tokio::spawn(async move { round.run(op).await })
        })
        .collect();
    if let Some(endpoint) = during {
        tokio::time::sleep(Duration::from_millis(5)).await;
        endpoint.kill_and_restart(Duration::from_millis(300)).await;
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("call task"));
    }
    let end = round.observed(start).await;
    let mut done = vec![false; ops.len()];
    assert!(
        some_serial_order(start, &ops, &outcomes, &mut done, &end),
        "no serial order explains the race:\n ops {ops:?}\n outcomes {outcomes:?}\n end {end:?}"
    );
    let report = check(&round.registry).await.expect("check runs");
    assert!(report.is_clean(), "check found: {:#?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_process_calls_race_to_legal_serial_orders() {
    let mut server = LocalRestate::start().await.expect("restate-server");
    let mut endpoint = ChildEndpoint::start(env!("CARGO_BIN_EXE_procreg")).await;
    server
        .register_deployment(&endpoint.url())
        .await
        .expect("deployment");
    let registry = RestateProcessRegistry::connect(&server.ingress_url()).unwrap();

    for n in 0..ROUNDS {
        // Transfers both ways, racing revokes and a grant.
        let round = Round::new(&registry, "race-transfer", 6, &[]).await;
        let a = SessionScope::session(unique_id("A"));
        let b = SessionScope::session(unique_id("B"));
        let mut start = Model::default();
        for p in 0..5 {
            round.run(Op::Grant(a.clone(), p)).await;
            start.apply(&Op::Grant(a.clone(), p));
        }
        round.run(Op::Grant(b.clone(), 5)).await;
        start.apply(&Op::Grant(b.clone(), 5));
        let ops = vec![
            Op::Transfer(a.clone(), b.clone(), vec![0, 1, 2]),
            Op::Transfer(a.clone(), b.clone(), vec![3]),
            Op::Revoke(a.clone(), 1),
            Op::Revoke(a.clone(), 3),
            Op::Transfer(b.clone(), a.clone(), vec![5]),
            Op::Transfer(b.clone(), a.clone(), vec![0]),
            Op::Grant(b.clone(), 4),
        ];
        let killed = (n == KILLED_ROUND).then_some(&mut endpoint);
        race(&round, &start, ops, killed).await;

        // A session delete racing grants, a revoke and a wake aimed at it.
        let session = unique_id("S");
        let s = SessionScope::session(&session);
        let frame = SessionScope::frame(&session, "f");
        let other = SessionScope::session(unique_id("X"));
        let round = Round::new(&registry, "race-delete", 4, &[(3, s.clone())]).await;
        let mut start = Model::default();
        start.targets.insert(3, Some(session.clone()));
        for op in [
            Op::Grant(s.clone(), 0),
            Op::Grant(s.clone(), 1),
            Op::Grant(s.clone(), 2),
            Op::Grant(frame.clone(), 1),
            Op::Grant(other.clone(), 0),
            Op::Wake(3),
        ] {
            round.run(op.clone()).await;
            start.apply(&op);
        }
        let ops = vec![
            Op::Delete(session.clone()),
            Op::Grant(s.clone(), 3),
            Op::Grant(SessionScope::frame(&session, "g"), 2),
            Op::Revoke(s.clone(), 2),
            Op::Wake(3),
        ];
        race(&round, &start, ops, None).await;
    }
    server.stop().await.expect("server stops");
}
