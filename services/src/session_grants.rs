//! `SessionGrants`: one virtual object per session id, indexing the
//! session's handle grants and the processes whose wakes aim at it.
//!
//! `ProcessObject` owns each grant and updates this index before it
//! acknowledges; the index answers `list_handle_grants` and tells
//! `delete_session_process_state` which processes to visit. Calls nothing.

use std::collections::{BTreeMap, BTreeSet};

use restate_process_registry::{ProcessError, ProcessHandleGrant, SessionScope};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::errors::terminal;
use crate::input::Input;
use crate::state::ReadState;

const GRANTS: &str = "grants";
const WAKES: &str = "wakes";

/// Grants by process id, then scope id.
type Grants = BTreeMap<String, BTreeMap<String, ProcessHandleGrant>>;

/// Identifies one grant to drop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantRef {
    /// The scope holding it.
    pub scope_id: String,
    /// The process it is on.
    pub process_id: String,
}

/// The per-session grant index.
pub struct SessionGrants;

#[restate_sdk::object(name = "SessionGrants")]
impl SessionGrants {
    /// Indexes (or replaces) a grant.
    #[handler(ingress_private)]
    async fn put(
        &self,
        ctx: ObjectContext<'_>,
        grant: Json<ProcessHandleGrant>,
    ) -> Result<(), TerminalError> {
        let grant = grant.into_inner();
        let mut grants: Grants = ctx.read(GRANTS).await?.unwrap_or_default();
        grants
            .entry(grant.process_id.clone())
            .or_default()
            .insert(grant.scope_id.clone(), grant);
        ctx.set(GRANTS, Json(grants));
        Ok(())
    }

    /// Drops one grant, if indexed.
    #[handler(ingress_private)]
    async fn remove(
        &self,
        ctx: ObjectContext<'_>,
        grant: Json<GrantRef>,
    ) -> Result<(), TerminalError> {
        let grant = grant.into_inner();
        let mut grants: Grants = ctx.read(GRANTS).await?.unwrap_or_default();
        if let Some(scopes) = grants.get_mut(&grant.process_id) {
            scopes.remove(&grant.scope_id);
            if scopes.is_empty() {
                grants.remove(&grant.process_id);
            }
            ctx.set(GRANTS, Json(grants));
        }
        Ok(())
    }

    /// Remembers that a process holds wakes (or a wake target) aimed at this session.
    #[handler(ingress_private)]
    async fn note_wake(
        &self,
        ctx: ObjectContext<'_>,
        process_id: String,
    ) -> Result<(), TerminalError> {
        let mut wakes: BTreeSet<String> = ctx.read(WAKES).await?.unwrap_or_default();
        if wakes.insert(process_id) {
            ctx.set(WAKES, Json(wakes));
        }
        Ok(())
    }

    /// Forgets everything about one process in this session.
    #[handler(ingress_private)]
    async fn drop_process(
        &self,
        ctx: ObjectContext<'_>,
        process_id: String,
    ) -> Result<(), TerminalError> {
        let mut grants: Grants = ctx.read(GRANTS).await?.unwrap_or_default();
        if grants.remove(&process_id).is_some() {
            ctx.set(GRANTS, Json(grants));
        }
        let mut wakes: BTreeSet<String> = ctx.read(WAKES).await?.unwrap_or_default();
        if wakes.remove(&process_id) {
            ctx.set(WAKES, Json(wakes));
        }
        Ok(())
    }

    /// The grants held by one scope of this session, by process id.
    #[handler]
    async fn list(
        &self,
        ctx: SharedObjectContext<'_>,
        scope: Input<SessionScope>,
    ) -> Result<Json<Vec<ProcessHandleGrant>>, TerminalError> {
        let scope = scope.into_inner();
        if scope.session_id != ctx.key() {
            return Err(terminal(ProcessError::invalid(format!(
                "scope of session `{}` asked of session `{}`",
                scope.session_id,
                ctx.key()
            ))));
        }
        let scope_id = scope.id();
        let grants: Grants = ctx.read(GRANTS).await?.unwrap_or_default();
        Ok(Json(
            grants
                .into_values()
                .filter_map(|mut scopes| scopes.remove(&scope_id))
                .collect(),
        ))
    }

    /// Every process with a grant or a wake tied to this session, by id.
    #[handler(ingress_private)]
    async fn members(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<Vec<String>>, TerminalError> {
        let grants: Grants = ctx.read(GRANTS).await?.unwrap_or_default();
        let wakes: BTreeSet<String> = ctx.read(WAKES).await?.unwrap_or_default();
        let mut members: BTreeSet<String> = grants.into_keys().collect();
        members.extend(wakes);
        Ok(Json(members.into_iter().collect()))
    }
}
