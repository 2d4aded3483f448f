//! `SessionGrants`: one virtual object per session id, the **authority**
//! for every grant held by the session and its frames.
//!
//! Every change to a session's grants (grant, revoke, the source side of a
//! transfer, session delete) is one exclusive handler of this object, so
//! they are totally ordered per session. Each handler first has the process
//! object update its bounded mirror of the grants it carries (which also
//! proves the process exists) and only then writes here, so a refusal
//! leaves nothing behind. Because a session's handlers are serialized and
//! each awaits its process calls, a process's mirror entries for this
//! session's scopes change in exactly this object's order.
//!
//! Grants live one per key (`g/{scope id}\n{process id}`) with their ids in
//! a [`KeyedSet`], so a grant costs the same in a session holding ten or ten
//! thousand. Calls `ProcessObject` (exclusive) and nothing else; nothing it
//! calls calls back (the process only ever sends to it), so there is no
//! cycle.

use restate_process_registry::restate::codes::UNKNOWN_PROCESS;
use restate_process_registry::restate::wire::{
    GrantRequest, GrantsPage, GrantsPageRequest, RevokeRequest, PAGE_LIMIT,
};
use restate_process_registry::rules::grants::{grant_for, not_held};
use restate_process_registry::{ProcessError, ProcessHandleGrant, SessionScope};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::errors::terminal;
use crate::input::Input;
use crate::keyed_set::KeyedSet;
use crate::process_object::{MirrorDropped, MirrorPut, ProcessObjectClient};
use crate::state::{in_order, ReadState};

/// The session's grants, by member name.
const GRANTS: KeyedSet<'static> = KeyedSet::new("grants");

/// The member name of a scope's grant on a process (control characters
/// never occur in either id).
fn member(scope_id: &str, process_id: &str) -> String {
    format!("{scope_id}\n{process_id}")
}

fn grant_key(member: &str) -> String {
    format!("g/{member}")
}

/// Internal: the source side of a transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TakeRequest {
    /// The scope giving the grants up.
    pub from: SessionScope,
    /// The processes.
    pub process_ids: Vec<String>,
    /// Only check that every grant is held (a transfer to the same scope).
    pub check_only: bool,
}

/// Internal: one batch of a session delete, from `cursor`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct DrainRequest {
    /// Slot to start at.
    pub cursor: u64,
    /// Slots to read at most.
    pub limit: u64,
}

/// Internal: the destination side of a transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GiveRequest {
    /// The scope receiving the grants.
    pub to: SessionScope,
    /// The grants as they were held at the source.
    pub grants: Vec<ProcessHandleGrant>,
}

/// Internal: one batch of a session delete.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Drained {
    /// `(process id, grants left on it)` per revoked grant.
    pub revoked: Vec<(String, usize)>,
    /// The processes among `revoked` that had ended. Absent from a batch
    /// journaled before it existed: those count as live.
    #[serde(default)]
    pub ended: Vec<String>,
    /// Grants still held by the session.
    pub remaining: u64,
    /// Where the next batch starts, when slots remain past this one.
    pub next_cursor: Option<u64>,
}

/// Internal: a pruned process's grants to forget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PrunedGrants {
    /// The pruned process.
    pub process_id: String,
    /// Scope ids of this session that held it.
    pub scope_ids: Vec<String>,
}

fn process<'a>(ctx: &'a ObjectContext<'a>, process_id: &str) -> ProcessObjectClient<'a> {
    ctx.object_client::<ProcessObjectClient>(process_id)
}

/// The scope must belong to this object's session.
fn check_session<K: AsRef<str>>(key: K, scope: &SessionScope) -> Result<(), TerminalError> {
    if scope.session_id == key.as_ref() {
        return Ok(());
    }
    Err(terminal(ProcessError::invalid(format!(
        "scope of session `{}` sent to session `{}`",
        scope.session_id,
        key.as_ref()
    ))))
}

/// The grants in up to `limit` slots from `cursor` whose member starts
/// with `prefix` (a scope's, or every grant with an empty prefix).
async fn grants_page(
    ctx: &SharedObjectContext<'_>,
    cursor: u64,
    limit: u32,
    prefix: &str,
) -> Result<GrantsPage, TerminalError> {
    let page = GRANTS
        .page(ctx, cursor, u64::from(limit.clamp(1, PAGE_LIMIT)))
        .await?;
    let keys: Vec<String> = page
        .members
        .iter()
        .filter(|member| member.starts_with(prefix))
        .map(|member| grant_key(member))
        .collect();
    let grants = in_order(keys.iter().map(|key| ctx.read::<ProcessHandleGrant>(key))).await?;
    Ok(GrantsPage {
        grants: grants.into_iter().flatten().collect(),
        next_cursor: page.next,
    })
}

/// Drops one grant here after the process has dropped it from its mirror.
async fn forget(ctx: &ObjectContext<'_>, member: &str) -> Result<(), TerminalError> {
    GRANTS.remove(ctx, member).await?;
    ctx.clear(&grant_key(member));
    Ok(())
}

/// Stores one grant here after the process has mirrored it.
async fn remember(
    ctx: &ObjectContext<'_>,
    grant: &ProcessHandleGrant,
) -> Result<(), TerminalError> {
    let member = member(&grant.scope_id, &grant.process_id);
    GRANTS.insert(ctx, &member).await?;
    ctx.set(&grant_key(&member), Json(grant.clone()));
    Ok(())
}

/// The per-session grant authority.
#[derive(Debug)]
pub struct SessionGrants;

#[restate_sdk::object(name = "SessionGrants", lazy_state)]
impl SessionGrants {
    /// `grant_handle` (upsert).
    #[handler]
    async fn grant(
        &self,
        ctx: ObjectContext<'_>,
        request: Input<GrantRequest>,
    ) -> Result<Json<ProcessHandleGrant>, TerminalError> {
        let GrantRequest {
            scope,
            process_id,
            descriptor,
        } = request.into_inner();
        check_session(ctx.key(), &scope)?;
        let grant = grant_for(&scope, &process_id, descriptor);
        let mirrored = MirrorPut {
            grant: grant.clone(),
            moved: false,
        };
        process(&ctx, &process_id)
            .mirror_put(Json(mirrored))
            .call()
            .await?;
        remember(&ctx, &grant).await?;
        Ok(Json(grant))
    }

    /// `revoke_handle` (idempotent; unknown processes are refused).
    #[handler]
    async fn revoke(
        &self,
        ctx: ObjectContext<'_>,
        request: Input<RevokeRequest>,
    ) -> Result<Json<()>, TerminalError> {
        let RevokeRequest { scope, process_id } = request.into_inner();
        check_session(ctx.key(), &scope)?;
        process(&ctx, &process_id)
            .mirror_drop(scope.id())
            .call()
            .await?;
        forget(&ctx, &member(&scope.id(), &process_id)).await?;
        Ok(Json(()))
    }

    /// One page of a scope's grants (reads at most `limit` slots).
    #[handler]
    async fn list(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Input<GrantsPageRequest>,
    ) -> Result<Json<GrantsPage>, TerminalError> {
        let GrantsPageRequest {
            scope,
            cursor,
            limit,
        } = request.into_inner();
        check_session(ctx.key(), &scope)?;
        let prefix = format!("{}\n", scope.id());
        Ok(Json(grants_page(&ctx, cursor, limit, &prefix).await?))
    }

    /// One page of every grant the session holds, any scope (for
    /// `procreg check` and operators).
    #[handler]
    async fn all(
        &self,
        ctx: SharedObjectContext<'_>,
        cursor: u64,
    ) -> Result<Json<GrantsPage>, TerminalError> {
        Ok(Json(grants_page(&ctx, cursor, PAGE_LIMIT, "").await?))
    }

    /// Internal (`transfer_handle_grants`, source side): all or nothing,
    /// checks that `from` holds every listed process, then gives each up.
    /// This is where a transfer takes effect against the source's other
    /// changes (revokes, other transfers, deletes), which are serialized
    /// here.
    #[handler(ingress_private)]
    async fn take(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<TakeRequest>,
    ) -> Result<Json<Vec<ProcessHandleGrant>>, TerminalError> {
        let TakeRequest {
            from,
            process_ids,
            check_only,
        } = request.into_inner();
        check_session(ctx.key(), &from)?;
        let scope_id = from.id();
        let keys: Vec<String> = process_ids
            .iter()
            .map(|id| grant_key(&member(&scope_id, id)))
            .collect();
        let held = in_order(keys.iter().map(|key| ctx.read::<ProcessHandleGrant>(key))).await?;
        let mut taken = Vec::with_capacity(held.len());
        for (process_id, grant) in process_ids.iter().zip(held) {
            match grant {
                Some(grant) => taken.push(grant),
                None => {
                    let row = process(&ctx, process_id).get().call().await?;
                    return Err(terminal(match row.into_inner() {
                        None => ProcessError::unknown(process_id),
                        Some(_) => not_held(&from, process_id),
                    }));
                }
            }
        }
        if check_only {
            return Ok(Json(taken));
        }
        let mut moving = Vec::with_capacity(taken.len());
        for grant in taken {
            let dropped = process(&ctx, &grant.process_id)
                .mirror_drop(scope_id.clone())
                .call()
                .await;
            match dropped {
                Ok(_) => moving.push(grant.clone()),
                // Pruned since the check: as if the transfer came first and
                // the prune after, the grant is gone with its process.
                Err(error) if error.code() == UNKNOWN_PROCESS => {}
                Err(error) => return Err(error),
            }
            forget(&ctx, &member(&scope_id, &grant.process_id)).await?;
        }
        Ok(Json(moving))
    }

    /// Internal (`transfer_handle_grants`, destination side): holds the
    /// taken grants under `to`. A process pruned meanwhile is skipped.
    #[handler(ingress_private)]
    async fn give(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<GiveRequest>,
    ) -> Result<(), TerminalError> {
        let GiveRequest { to, grants } = request.into_inner();
        check_session(ctx.key(), &to)?;
        for held in grants {
            let grant = grant_for(&to, &held.process_id, held.descriptor);
            // A moved grant never raises the count the source lowered, so
            // the per-process cap does not apply to it.
            let moved = MirrorPut {
                grant: grant.clone(),
                moved: true,
            };
            let mirrored = process(&ctx, &grant.process_id)
                .mirror_put(Json(moved))
                .call()
                .await;
            match mirrored {
                Ok(_) => remember(&ctx, &grant).await?,
                Err(error) if error.code() == UNKNOWN_PROCESS => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Internal (`delete_session_process_state`): revokes up to `limit`
    /// grants of the session (any scope) and says how many remain.
    #[handler(ingress_private)]
    async fn drain(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<DrainRequest>,
    ) -> Result<Json<Drained>, TerminalError> {
        let DrainRequest { cursor, limit } = request.into_inner();
        let page = GRANTS.page(&ctx, cursor, limit).await?;
        let mut drained = Drained::default();
        for member in page.members {
            let Some((scope_id, process_id)) = member.split_once('\n') else {
                continue;
            };
            let remaining = process(&ctx, process_id)
                .mirror_drop(scope_id.to_owned())
                .call()
                .await;
            match remaining {
                Ok(dropped) => {
                    let MirrorDropped {
                        remaining,
                        terminal,
                    } = dropped.into_inner();
                    drained.revoked.push((process_id.to_owned(), remaining));
                    if terminal {
                        drained.ended.push(process_id.to_owned());
                    }
                }
                // Pruned meanwhile: nothing of it to revoke or report.
                Err(error) if error.code() == UNKNOWN_PROCESS => {}
                Err(error) => return Err(error),
            }
            forget(&ctx, &member).await?;
        }
        drained.remaining = GRANTS.head(&ctx).await?.len;
        drained.next_cursor = page.next;
        Ok(Json(drained))
    }

    /// Internal (prune): forgets a pruned process's grants.
    #[handler(ingress_private)]
    async fn drop_pruned(
        &self,
        ctx: ObjectContext<'_>,
        pruned: Json<PrunedGrants>,
    ) -> Result<(), TerminalError> {
        let PrunedGrants {
            process_id,
            scope_ids,
        } = pruned.into_inner();
        for scope_id in scope_ids {
            forget(&ctx, &member(&scope_id, &process_id)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Drained;

    /// A drain batch journaled before `ended` existed still reads, with
    /// every revoked process counted live.
    #[test]
    fn drained_without_ended_reads_as_all_live() {
        let old = r#"{"revoked":[["p1",0],["p2",1]],"remaining":0,"next_cursor":null}"#;
        let drained: Drained = serde_json::from_str(old).expect("old drain batch");
        assert_eq!(
            drained.revoked,
            vec![("p1".to_owned(), 0), ("p2".to_owned(), 1)]
        );
        assert!(drained.ended.is_empty());
    }
}
