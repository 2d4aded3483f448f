//! The wire contract of the registry's endpoint: every service and handler
//! name, how each runs and who may call it. The client builds its calls
//! from these names, and `services/tests/restate_wire.rs` reads the
//! endpoint's deployment from a real server and compares it with
//! [`HANDLERS`], so a renamed, dropped, re-visibled or re-shaped handler
//! fails a test instead of every client and every journal in flight.
//!
//! Names are forever: a handler is renamed by adding one under the new
//! name and keeping the old one (journals replay calls by name).

pub use super::wire::{
    PROCESS_COORDINATOR, PROCESS_DIRECTORY, PROCESS_MILESTONE, PROCESS_OBJECT, PROCESS_TERMINAL,
    SESSION_GRANTS, SESSION_WAKES,
};

/// The workflow that runs process bodies; bound only with a runner.
pub const PROCESS_RUNNER: &str = "ProcessRunner";

/// The handlers of `ProcessObject`.
#[allow(missing_docs)]
pub mod process_object {
    /// `register`.
    pub const REGISTER: &str = "register";
    /// `set_external_ref`.
    pub const SET_EXTERNAL_REF: &str = "set_external_ref";
    /// `grants`.
    pub const GRANTS: &str = "grants";
    /// `append`.
    pub const APPEND: &str = "append";
    /// `events_after`.
    pub const EVENTS_AFTER: &str = "events_after";
    /// `recent_events`.
    pub const RECENT_EVENTS: &str = "recent_events";
    /// `wake_events_after`.
    pub const WAKE_EVENTS_AFTER: &str = "wake_events_after";
    /// `ack_wake`.
    pub const ACK_WAKE: &str = "ack_wake";
    /// `complete`.
    pub const COMPLETE: &str = "complete";
    /// `record_first_started`.
    pub const RECORD_FIRST_STARTED: &str = "record_first_started";
    /// `request_abandon`.
    pub const REQUEST_ABANDON: &str = "request_abandon";
    /// `set_wait`.
    pub const SET_WAIT: &str = "set_wait";
    /// `clear_wait`.
    pub const CLEAR_WAIT: &str = "clear_wait";
    /// `get`.
    pub const GET: &str = "get";
    /// `attach_target`.
    pub const ATTACH_TARGET: &str = "attach_target";
    /// `milestone`.
    pub const MILESTONE: &str = "milestone";
    /// `park`.
    pub const PARK: &str = "park";
    /// `park_wait`.
    pub const PARK_WAIT: &str = "park_wait";
    /// `unpark`.
    pub const UNPARK: &str = "unpark";
    /// `start_terminal`.
    pub const START_TERMINAL: &str = "start_terminal";
    /// `start_run`.
    pub const START_RUN: &str = "start_run";
    /// `count_events_through`.
    pub const COUNT_EVENTS_THROUGH: &str = "count_events_through";
    /// `claim_lease`.
    pub const CLAIM_LEASE: &str = "claim_lease";
    /// `reclaim_lease`.
    pub const RECLAIM_LEASE: &str = "reclaim_lease";
    /// `renew_lease`.
    pub const RENEW_LEASE: &str = "renew_lease";
    /// `lease`.
    pub const LEASE: &str = "lease";
    /// `complete_lease`.
    pub const COMPLETE_LEASE: &str = "complete_lease";
    /// `mirror_put`.
    pub const MIRROR_PUT: &str = "mirror_put";
    /// `mirror_move`.
    pub const MIRROR_MOVE: &str = "mirror_move";
    /// `mirror_settle`.
    pub const MIRROR_SETTLE: &str = "mirror_settle";
    /// `transits`.
    pub const TRANSITS: &str = "transits";
    /// `mirror_drop`.
    pub const MIRROR_DROP: &str = "mirror_drop";
    /// `forget_wakes`.
    pub const FORGET_WAKES: &str = "forget_wakes";
    /// `prune`.
    pub const PRUNE: &str = "prune";
    /// `reindex`.
    pub const REINDEX: &str = "reindex";
}

/// The handlers of `ProcessTerminal`.
#[allow(missing_docs)]
pub mod process_terminal {
    /// `run`.
    pub const RUN: &str = "run";
    /// `finish`.
    pub const FINISH: &str = "finish";
}

/// The handlers of `ProcessMilestone`.
#[allow(missing_docs)]
pub mod process_milestone {
    /// `run`.
    pub const RUN: &str = "run";
}

/// The handlers of `ProcessDirectory`.
#[allow(missing_docs)]
pub mod process_directory {
    /// `put`.
    pub const PUT: &str = "put";
    /// `remove`.
    pub const REMOVE: &str = "remove";
    /// `list`.
    pub const LIST: &str = "list";
    /// `prune_page`.
    pub const PRUNE_PAGE: &str = "prune_page";
}

/// The handlers of `SessionGrants`.
#[allow(missing_docs)]
pub mod session_grants {
    /// `grant`.
    pub const GRANT: &str = "grant";
    /// `revoke`.
    pub const REVOKE: &str = "revoke";
    /// `list`.
    pub const LIST: &str = "list";
    /// `all`.
    pub const ALL: &str = "all";
    /// `take`.
    pub const TAKE: &str = "take";
    /// `give`.
    pub const GIVE: &str = "give";
    /// `settle`.
    pub const SETTLE: &str = "settle";
    /// `resume`.
    pub const RESUME: &str = "resume";
    /// `pending`.
    pub const PENDING: &str = "pending";
    /// `begin_delete`.
    pub const BEGIN_DELETE: &str = "begin_delete";
    /// `drain`.
    pub const DRAIN: &str = "drain";
    /// `end_delete`.
    pub const END_DELETE: &str = "end_delete";
    /// `drop_pruned`.
    pub const DROP_PRUNED: &str = "drop_pruned";
}

/// The handlers of `SessionWakes`.
#[allow(missing_docs)]
pub mod session_wakes {
    /// `note`.
    pub const NOTE: &str = "note";
    /// `drop`.
    pub const DROP: &str = "drop";
    /// `holders_below`.
    pub const HOLDERS_BELOW: &str = "holders_below";
    /// `holders`.
    pub const HOLDERS: &str = "holders";
}

/// The handlers of `ProcessCoordinator`.
#[allow(missing_docs)]
pub mod process_coordinator {
    /// `transfer_grants`.
    pub const TRANSFER_GRANTS: &str = "transfer_grants";
    /// `transfer_grants_v2`.
    pub const TRANSFER_GRANTS_V2: &str = "transfer_grants_v2";
    /// `delete_session`.
    pub const DELETE_SESSION: &str = "delete_session";
    /// `delete_session_v2`.
    pub const DELETE_SESSION_V2: &str = "delete_session_v2";
    /// `repair_session`.
    pub const REPAIR_SESSION: &str = "repair_session";
    /// `prune`.
    pub const PRUNE: &str = "prune";
    /// `prune_shard`.
    pub const PRUNE_SHARD: &str = "prune_shard";
}

/// The handlers of `ProcessRunner`.
#[allow(missing_docs)]
pub mod process_runner {
    /// `run`.
    pub const RUN: &str = "run";
}

/// How the engine runs a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A virtual object's exclusive handler (holds the key's lock).
    Exclusive,
    /// A shared handler (reads; holds no lock).
    Shared,
    /// A workflow's `run`.
    Workflow,
    /// A handler of an unkeyed service.
    Service,
}

/// Who may call a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Ingress callers.
    Public,
    /// Only other handlers (`ingress_private`).
    Private,
}

/// One handler of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handler {
    /// Its service.
    pub service: &'static str,
    /// Its wire name.
    pub name: &'static str,
    /// How it runs.
    pub kind: Kind,
    /// Who may call it.
    pub reach: Reach,
    /// Whether it takes a body.
    pub input: bool,
    /// Whether it answers a body.
    pub output: bool,
}

const fn h(
    service: &'static str,
    name: &'static str,
    kind: Kind,
    reach: Reach,
    input: bool,
    output: bool,
) -> Handler {
    Handler {
        service,
        name,
        kind,
        reach,
        input,
        output,
    }
}

use Kind::{Exclusive, Service, Shared, Workflow};
use Reach::{Private, Public};

/// Every handler the endpoint serves (`ProcessRunner`'s only when a
/// runner is bound).
pub const HANDLERS: &[Handler] = &[
    h(
        PROCESS_OBJECT,
        process_object::REGISTER,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::SET_EXTERNAL_REF,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::GRANTS,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::APPEND,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::EVENTS_AFTER,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::RECENT_EVENTS,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::WAKE_EVENTS_AFTER,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::ACK_WAKE,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::COMPLETE,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::RECORD_FIRST_STARTED,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::REQUEST_ABANDON,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::SET_WAIT,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::CLEAR_WAIT,
        Exclusive,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::GET,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::ATTACH_TARGET,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::MILESTONE,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::PARK,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::PARK_WAIT,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::UNPARK,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::START_TERMINAL,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::START_RUN,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::COUNT_EVENTS_THROUGH,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::CLAIM_LEASE,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::RECLAIM_LEASE,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::RENEW_LEASE,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::LEASE,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::COMPLETE_LEASE,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::MIRROR_PUT,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        PROCESS_OBJECT,
        process_object::MIRROR_MOVE,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::MIRROR_SETTLE,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::TRANSITS,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::MIRROR_DROP,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::FORGET_WAKES,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::PRUNE,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_OBJECT,
        process_object::REINDEX,
        Exclusive,
        Public,
        false,
        true,
    ),
    h(
        PROCESS_TERMINAL,
        process_terminal::RUN,
        Workflow,
        Private,
        false,
        true,
    ),
    h(
        PROCESS_TERMINAL,
        process_terminal::FINISH,
        Shared,
        Private,
        true,
        false,
    ),
    h(
        PROCESS_MILESTONE,
        process_milestone::RUN,
        Workflow,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_DIRECTORY,
        process_directory::PUT,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        PROCESS_DIRECTORY,
        process_directory::REMOVE,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        PROCESS_DIRECTORY,
        process_directory::LIST,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_DIRECTORY,
        process_directory::PRUNE_PAGE,
        Shared,
        Private,
        true,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::GRANT,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::REVOKE,
        Exclusive,
        Public,
        true,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::LIST,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::ALL,
        Shared,
        Public,
        true,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::TAKE,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::GIVE,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        SESSION_GRANTS,
        session_grants::SETTLE,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        SESSION_GRANTS,
        session_grants::RESUME,
        Exclusive,
        Private,
        false,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::PENDING,
        Shared,
        Public,
        false,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::BEGIN_DELETE,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        SESSION_GRANTS,
        session_grants::DRAIN,
        Exclusive,
        Private,
        true,
        true,
    ),
    h(
        SESSION_GRANTS,
        session_grants::END_DELETE,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        SESSION_GRANTS,
        session_grants::DROP_PRUNED,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        SESSION_WAKES,
        session_wakes::NOTE,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        SESSION_WAKES,
        session_wakes::DROP,
        Exclusive,
        Private,
        true,
        false,
    ),
    h(
        SESSION_WAKES,
        session_wakes::HOLDERS_BELOW,
        Shared,
        Private,
        true,
        true,
    ),
    h(
        SESSION_WAKES,
        session_wakes::HOLDERS,
        Shared,
        Private,
        true,
        true,
    ),
    h(
        PROCESS_COORDINATOR,
        process_coordinator::TRANSFER_GRANTS,
        Service,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_COORDINATOR,
        process_coordinator::TRANSFER_GRANTS_V2,
        Service,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_COORDINATOR,
        process_coordinator::DELETE_SESSION,
        Service,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_COORDINATOR,
        process_coordinator::DELETE_SESSION_V2,
        Service,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_COORDINATOR,
        process_coordinator::REPAIR_SESSION,
        Service,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_COORDINATOR,
        process_coordinator::PRUNE,
        Service,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_COORDINATOR,
        process_coordinator::PRUNE_SHARD,
        Service,
        Public,
        true,
        true,
    ),
    h(
        PROCESS_RUNNER,
        process_runner::RUN,
        Workflow,
        Private,
        false,
        true,
    ),
];

/// The handler `name` of `service`, if the contract has it.
pub fn find(service: &str, name: &str) -> Option<&'static Handler> {
    HANDLERS
        .iter()
        .find(|handler| handler.service == service && handler.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_handler_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for handler in HANDLERS {
            assert!(
                seen.insert((handler.service, handler.name)),
                "{}/{} is listed twice",
                handler.service,
                handler.name
            );
        }
    }
}
