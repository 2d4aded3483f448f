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
//! cycle. It never calls another `SessionGrants`: a transfer's two sides
//! are driven by the coordinator, which holds no lock.
//!
//! ## Cut off between writes
//!
//! Killing an invocation keeps the writes it made. So every handler that
//! writes in more than one place records, before its first write elsewhere,
//! what it is doing, and clears it after its last:
//! - `grant` / `revoke`: the step (`step`), before the mirror write;
//! - `take`: the transfer's intent (`t/{id}`, listed in the `intents` set)
//!   and that its take is unfinished (`taking`), before any grant leaves;
//! - `begin_delete` / `drain`: the delete's intent (`d/{id}`), and the
//!   batch's progress (`d/{id}/batch`, a keyed set of the members it
//!   revoked, and `d/{id}/r/{member}`, what each revocation left).
//!
//! Every exclusive handler first finishes a half-done `grant`, `revoke` or
//! take (`finish_cut_off`; all their steps are idempotent), so nothing
//! after it in the session's order sees half of one. Intents outlive the
//! handler that recorded them: the coordinator completes them (see its
//! docs) and `pending` lists them for `procreg check`.
//!
//! ## Cancellation
//!
//! Handled, not refused: each process call is issued again when a cancel
//! failed it (`cancel::absorbing`), and a cancel at a cut point is
//! absorbed. A cancel landing on a state read fails the handler with the
//! 409 before its next write; what it had recorded is finished as above,
//! and the coordinator issues its step again.
//!
//! ## Stored state added by this release
//!
//! `step`, `taking`, `t/{id}` (`PendingTransfer`), `d/{id}` and its batch
//! keys, the `intents`
//! set, `seq` (the last grant sequence number) and `q/{member}` (a grant's
//! sequence number). All are absent in a session written before: no
//! intent, sequence 0, every grant older than any delete. Requests gained
//! optional fields (`TakeRequest::to`/`transfer_id`,
//! `GiveRequest::transfer_id`, `DrainRequest::delete_id`,
//! `PrunedGrants::grants`): absent, a handler does what the previous
//! release did (except `drop_pruned`, which now always asks the process's
//! mirror before forgetting).

use restate_process_registry::restate::codes::UNKNOWN_PROCESS;
use restate_process_registry::restate::wire::{
    GrantRequest, GrantsPage, GrantsPageRequest, PendingDelete, PendingIntents, PendingTransfer,
    RevokeRequest, PAGE_LIMIT,
};
use restate_process_registry::rules::grants::{grant_for, not_held};
use restate_process_registry::{ProcessError, ProcessHandleGrant, SessionScope};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cancel::{absorbing, cut_point};
use crate::errors::terminal;
use crate::input::Input;
use crate::journal::now_ms;
use crate::keyed_set::KeyedSet;
use crate::process_object::{
    MirrorDropped, MirrorMove, MirrorPut, ProcessObjectClient, TransitFrom,
};
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

/// The session's unfinished transfers (`t/{id}`) and deletes (`d/{id}`),
/// by those keys.
const INTENTS: KeyedSet<'static> = KeyedSet::new("intents");
/// The transfer whose take (the source's part) is unfinished, if any: at
/// most one, since every exclusive handler finishes it first.
const TAKING: &str = "taking";
/// A grant or revoke cut off between its two writes (the process's mirror
/// and this authority), finished by the next exclusive handler ([`Step`]).
const STEP: &str = "step";
/// The last grant sequence number handed out (absent: 0).
const SEQUENCE: &str = "seq";

fn transfer_key(transfer_id: &str) -> String {
    format!("t/{transfer_id}")
}

fn delete_key(delete_id: &str) -> String {
    format!("d/{delete_id}")
}

/// A grant's sequence number: when it was last stored (absent for grants
/// stored before sequence numbers: 0, older than any delete).
fn sequence_key(member: &str) -> String {
    format!("q/{member}")
}

/// A two-write change in progress: recorded before the process's mirror is
/// written, cleared after this authority is.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Step {
    /// `grant`: the grant to mirror, then store.
    Grant(ProcessHandleGrant),
    /// `revoke`: the grant to drop from the mirror, then forget.
    Revoke {
        /// The scope revoking.
        scope_id: String,
        /// The process.
        process_id: String,
    },
}

/// A session delete begun and not yet completed (`d/{id}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DeleteIntent {
    /// Grants stored at or before this sequence number were present when
    /// the delete began: those it revokes. Later ones it keeps.
    cutoff: u64,
    /// The walk goes down from the top: no grant older than `cutoff` sits
    /// at or above this slot (see `KeyedSet`).
    below: u64,
    /// When it began (a coordinator other than its own completes it only
    /// after a while, see the coordinator's docs).
    #[serde(default)]
    begun_at_ms: u64,
}

/// The members the batch in progress of delete `delete_id` has revoked
/// (what each left is under [`revoked_key`]), answered with the batch, so
/// a batch cut off and issued again reports every revocation once.
fn batch_set(delete_id: &str) -> String {
    format!("d/{delete_id}/batch")
}

fn revoked_key(delete_id: &str, member: &str) -> String {
    format!("d/{delete_id}/r/{member}")
}

/// What revoking one grant left on its process.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revoked {
    process_id: String,
    remaining: usize,
    terminal: bool,
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
    /// The receiving scope; absent in takes journaled before transfers
    /// recorded their intent (those give the grants up at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<SessionScope>,
    /// The transfer's id, keying its intent; absent as `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
}

/// Internal: one batch of a session delete, from `cursor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DrainRequest {
    /// Slot to start at.
    pub cursor: u64,
    /// Slots to read at most.
    pub limit: u64,
    /// The delete this batch belongs to (`begin_delete`): the batch then
    /// walks down from where the last one stopped and revokes only grants
    /// older than the delete, ignoring `cursor`. Absent in batches
    /// journaled before: those walk up from `cursor` and revoke all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_id: Option<String>,
}

/// Internal: the destination side of a transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GiveRequest {
    /// The scope receiving the grants.
    pub to: SessionScope,
    /// The grants as they were held at the source.
    pub grants: Vec<ProcessHandleGrant>,
    /// The transfer; absent in gives journaled before intents (those put
    /// the grants into the mirrors themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
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
    /// The grants themselves as the pruned process carried them (absent in
    /// messages sent before): a stored grant that differs was made later
    /// and stays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<ProcessHandleGrant>,
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
    ctx.clear(&sequence_key(member));
    Ok(())
}

/// Stores one grant here after the process has mirrored it.
async fn remember(
    ctx: &ObjectContext<'_>,
    grant: &ProcessHandleGrant,
) -> Result<(), TerminalError> {
    let member = member(&grant.scope_id, &grant.process_id);
    let (inserted, sequence) = (GRANTS.insert(ctx, &member), ctx.read::<u64>(SEQUENCE));
    inserted.await?;
    let sequence = sequence.await?.unwrap_or_default() + 1;
    ctx.set(SEQUENCE, Json(sequence));
    ctx.set(&sequence_key(&member), Json(sequence));
    ctx.set(&grant_key(&member), Json(grant.clone()));
    Ok(())
}

/// Finishes whatever a cut-off invocation of this object left half done
/// (killed, or failed by a cancel it could not absorb), before the calling
/// handler changes anything: the take of a transfer (decided when its
/// intent was recorded, so everything after it in this session's order
/// sees its grants gone from the source), or a grant or revoke between its
/// two writes (finished: both writes are idempotent). Answers whether it
/// finished something.
async fn finish_cut_off(ctx: &ObjectContext<'_>) -> Result<bool, TerminalError> {
    let (taking, step) = (ctx.read::<String>(TAKING), ctx.read::<Step>(STEP));
    let (taking, step) = (taking.await?, step.await?);
    if let Some(transfer_id) = &taking {
        take_phase(ctx, transfer_id, false).await?;
    }
    match &step {
        None => {}
        Some(Step::Grant(grant)) => {
            let mirrored = MirrorPut {
                grant: grant.clone(),
                moved: false,
            };
            let client = process(ctx, &grant.process_id);
            // Refused (unknown process, over the cap): it never happened.
            if absorbing(|| client.mirror_put(Json(mirrored.clone())).call())
                .await
                .is_ok()
            {
                remember(ctx, grant).await?;
            }
        }
        Some(Step::Revoke {
            scope_id,
            process_id,
        }) => {
            let client = process(ctx, process_id);
            match absorbing(|| client.mirror_drop(scope_id.clone()).call()).await {
                Ok(_) => {}
                Err(error) if error.code() == UNKNOWN_PROCESS => {}
                Err(error) => return Err(error),
            }
            forget(ctx, &member(scope_id, process_id)).await?;
        }
    }
    if step.is_some() {
        ctx.clear(STEP);
    }
    Ok(taking.is_some() || step.is_some())
}

/// The source's part of a recorded transfer: each grant still held here
/// moves its process's mirror entry to the destination scope (one
/// exclusive step of the process), then leaves this session. Idempotent:
/// a grant already gone is skipped, and `mirror_move` moves nothing twice.
async fn take_phase(
    ctx: &ObjectContext<'_>,
    transfer_id: &str,
    hold: bool,
) -> Result<Vec<ProcessHandleGrant>, TerminalError> {
    let key = transfer_key(transfer_id);
    let Some(mut intent) = ctx.read::<PendingTransfer>(&key).await? else {
        ctx.clear(TAKING);
        return Ok(Vec::new());
    };
    if intent.taken {
        return Ok(intent.grants);
    }
    let from_scope_id = intent.from.id();
    for (index, held) in intent.grants.iter().enumerate() {
        let from_member = member(&from_scope_id, &held.process_id);
        if ctx
            .read::<ProcessHandleGrant>(&grant_key(&from_member))
            .await?
            .is_some()
        {
            let moving = MirrorMove {
                from_scope_id: from_scope_id.clone(),
                grant: grant_for(&intent.to, &held.process_id, held.descriptor.clone()),
                transit: TransitFrom {
                    session_id: intent.from.session_id.clone(),
                    transfer_id: transfer_id.to_owned(),
                },
            };
            let client = process(ctx, &held.process_id);
            let moved = absorbing(|| client.mirror_move(Json(moving.clone())).call()).await;
            match moved {
                Ok(_) => {}
                // Pruned since the check: as if the transfer came first and
                // the prune after, the grant is gone with its process.
                Err(error) if error.code() == UNKNOWN_PROCESS => {}
                Err(error) => return Err(error),
            }
            forget(ctx, &from_member).await?;
        }
        if hold && index == 0 {
            cut_point(ctx, "take.after_first_move", ctx.key()).await?;
        }
    }
    intent.taken = true;
    ctx.set(&key, Json(intent.clone()));
    ctx.clear(TAKING);
    Ok(intent.grants)
}

/// The per-session grant authority.
#[derive(Debug)]
pub struct SessionGrants;

#[restate_sdk::object(name = "SessionGrants", lazy_state)]
impl SessionGrants {
    /// `grant_handle` (upsert).
    #[handler(name = "grant")]
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
        finish_cut_off(&ctx).await?;
        let grant = grant_for(&scope, &process_id, descriptor);
        let mirrored = MirrorPut {
            grant: grant.clone(),
            moved: false,
        };
        ctx.set(STEP, Json(Step::Grant(grant.clone())));
        let client = process(&ctx, &process_id);
        if let Err(refused) = absorbing(|| client.mirror_put(Json(mirrored.clone())).call()).await {
            ctx.clear(STEP);
            return Err(refused);
        }
        cut_point(&ctx, "grant.after_mirror", &process_id).await?;
        remember(&ctx, &grant).await?;
        ctx.clear(STEP);
        Ok(Json(grant))
    }

    /// `revoke_handle` (idempotent; unknown processes are refused).
    #[handler(name = "revoke")]
    async fn revoke(
        &self,
        ctx: ObjectContext<'_>,
        request: Input<RevokeRequest>,
    ) -> Result<Json<()>, TerminalError> {
        let RevokeRequest { scope, process_id } = request.into_inner();
        check_session(ctx.key(), &scope)?;
        finish_cut_off(&ctx).await?;
        ctx.set(
            STEP,
            Json(Step::Revoke {
                scope_id: scope.id(),
                process_id: process_id.clone(),
            }),
        );
        let client = process(&ctx, &process_id);
        if let Err(refused) = absorbing(|| client.mirror_drop(scope.id()).call()).await {
            ctx.clear(STEP);
            return Err(refused);
        }
        cut_point(&ctx, "revoke.after_mirror", &process_id).await?;
        forget(&ctx, &member(&scope.id(), &process_id)).await?;
        ctx.clear(STEP);
        Ok(Json(()))
    }

    /// One page of a scope's grants (reads at most `limit` slots).
    #[handler(name = "list")]
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
    #[handler(name = "all")]
    async fn all(
        &self,
        ctx: SharedObjectContext<'_>,
        cursor: u64,
    ) -> Result<Json<GrantsPage>, TerminalError> {
        Ok(Json(grants_page(&ctx, cursor, PAGE_LIMIT, "").await?))
    }

    /// Internal (`transfer_handle_grants`, source side): all or nothing,
    /// checks that `from` holds every listed process, records the
    /// transfer's intent (destination and grants) in the same step, then
    /// gives each grant up (`take_phase`). This is where a transfer takes
    /// effect against the source's other changes (revokes, other
    /// transfers, deletes), which are serialized here and each finish a
    /// take cut off before they start. Issued again with the same
    /// transfer id it finishes that transfer's take and answers the same
    /// grants. A take journaled before intents (no id) gives the grants up
    /// at once, as then.
    #[handler(name = "take", ingress_private)]
    async fn take(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<TakeRequest>,
    ) -> Result<Json<Vec<ProcessHandleGrant>>, TerminalError> {
        let TakeRequest {
            from,
            process_ids,
            check_only,
            to,
            transfer_id,
        } = request.into_inner();
        check_session(ctx.key(), &from)?;
        finish_cut_off(&ctx).await?;
        if let Some(transfer_id) = &transfer_id {
            if ctx
                .read::<PendingTransfer>(&transfer_key(transfer_id))
                .await?
                .is_some()
            {
                return Ok(Json(take_phase(&ctx, transfer_id, true).await?));
            }
        }
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
                    let client = process(&ctx, process_id);
                    let row = absorbing(|| client.get().call()).await?;
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
        let (Some(to), Some(transfer_id)) = (to, transfer_id) else {
            return Ok(Json(take_at_once(&ctx, &scope_id, taken).await?));
        };
        let key = transfer_key(&transfer_id);
        ctx.set(
            &key,
            Json(PendingTransfer {
                transfer_id: transfer_id.clone(),
                from,
                to,
                grants: taken,
                taken: false,
            }),
        );
        ctx.set(TAKING, Json(transfer_id.clone()));
        INTENTS.insert(&ctx, &key).await?;
        cut_point(&ctx, "take.after_intent", ctx.key()).await?;
        Ok(Json(take_phase(&ctx, &transfer_id, true).await?))
    }

    /// Internal (`transfer_handle_grants`, destination side): holds the
    /// moved grants under `to`, each only if its process's mirror holds it
    /// there (`mirror_settle`): a process pruned meanwhile, or whose grant
    /// the destination revoked or replaced after it moved, is skipped, so
    /// issuing it again never restores what a later change removed. A give
    /// journaled before intents (no id) puts the grants into the mirrors
    /// itself, as then.
    #[handler(name = "give", ingress_private)]
    async fn give(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<GiveRequest>,
    ) -> Result<(), TerminalError> {
        let GiveRequest {
            to,
            grants,
            transfer_id,
        } = request.into_inner();
        check_session(ctx.key(), &to)?;
        finish_cut_off(&ctx).await?;
        if transfer_id.is_none() {
            return give_at_once(&ctx, &to, grants).await;
        }
        for (index, held) in grants.into_iter().enumerate() {
            let grant = grant_for(&to, &held.process_id, held.descriptor);
            let client = process(&ctx, &grant.process_id);
            let settled = absorbing(|| client.mirror_settle(Json(grant.clone())).call()).await?;
            if settled.into_inner() {
                remember(&ctx, &grant).await?;
            }
            if index == 0 {
                cut_point(&ctx, "give.after_first", ctx.key()).await?;
            }
        }
        Ok(())
    }

    /// Internal (`transfer_handle_grants`, last step): forgets a transfer
    /// whose destination has given every grant (idempotent).
    #[handler(name = "settle", ingress_private)]
    async fn settle(
        &self,
        ctx: ObjectContext<'_>,
        transfer_id: String,
    ) -> Result<(), TerminalError> {
        finish_cut_off(&ctx).await?;
        let key = transfer_key(&transfer_id);
        ctx.clear(&key);
        INTENTS.remove(&ctx, &key).await?;
        Ok(())
    }

    /// Finishes a take, grant or revoke a cut-off invocation left half done
    /// (any exclusive handler does so first; this one does only that, for
    /// the coordinator's repair). Answers whether there was one.
    #[handler(name = "resume", ingress_private)]
    async fn resume(&self, ctx: ObjectContext<'_>) -> Result<Json<bool>, TerminalError> {
        Ok(Json(finish_cut_off(&ctx).await?))
    }

    /// The session's unfinished transfers out and deletes (for the
    /// coordinator's repair and `procreg check`).
    #[handler(name = "pending")]
    async fn pending(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<PendingIntents>, TerminalError> {
        let mut pending = PendingIntents::default();
        let (taking, step) = (ctx.read::<String>(TAKING), ctx.read::<Step>(STEP));
        if let Some(transfer_id) = taking.await? {
            pending
                .steps
                .push(format!("take of transfer `{transfer_id}`"));
        }
        match step.await? {
            Some(Step::Grant(grant)) => pending.steps.push(format!(
                "grant of `{}` on `{}`",
                grant.scope_id, grant.process_id
            )),
            Some(Step::Revoke {
                scope_id,
                process_id,
            }) => pending
                .steps
                .push(format!("revoke of `{scope_id}` on `{process_id}`")),
            None => {}
        }
        let mut cursor = Some(0);
        while let Some(at) = cursor {
            let page = INTENTS.page(&ctx, at, u64::from(PAGE_LIMIT)).await?;
            for key in page.members {
                if let Some(id) = key.strip_prefix("d/") {
                    let intent = ctx.read::<DeleteIntent>(&key).await?.unwrap_or_default();
                    pending.deletes.push(PendingDelete {
                        delete_id: id.to_owned(),
                        begun_at_ms: intent.begun_at_ms,
                    });
                } else if let Some(transfer) = ctx.read::<PendingTransfer>(&key).await? {
                    pending.transfers.push(transfer);
                }
            }
            cursor = page.next;
        }
        Ok(Json(pending))
    }

    /// Internal (`delete_session_process_state`, first step): records the
    /// delete's intent: which grants are older than it (a sequence number)
    /// and where its walk starts (the top slot). Idempotent per id.
    #[handler(name = "begin_delete", ingress_private)]
    async fn begin_delete(
        &self,
        ctx: ObjectContext<'_>,
        delete_id: String,
    ) -> Result<(), TerminalError> {
        finish_cut_off(&ctx).await?;
        let key = delete_key(&delete_id);
        if ctx.read::<DeleteIntent>(&key).await?.is_some() {
            return Ok(());
        }
        let (sequence, head) = (ctx.read::<u64>(SEQUENCE), GRANTS.head(&ctx));
        let (cutoff, below) = (sequence.await?.unwrap_or_default(), head.await?.slots);
        let intent = DeleteIntent {
            cutoff,
            below,
            begun_at_ms: now_ms(&ctx).await?,
        };
        ctx.set(&key, Json(intent));
        INTENTS.insert(&ctx, &key).await?;
        Ok(())
    }

    /// Internal (`delete_session_process_state`): revokes up to `limit`
    /// grants of the session (any scope). With a delete id, the batch takes
    /// the next `limit` slots down from where the last batch stopped and
    /// revokes the grants older than the delete there, so the delete ends
    /// after at most `slots at its start / limit` batches however many
    /// grants arrive meanwhile (those it keeps: as if granted after it).
    #[handler(name = "drain", ingress_private)]
    async fn drain(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<DrainRequest>,
    ) -> Result<Json<Drained>, TerminalError> {
        let DrainRequest {
            cursor,
            limit,
            delete_id,
        } = request.into_inner();
        finish_cut_off(&ctx).await?;
        match delete_id {
            Some(delete_id) => Ok(Json(drain_down(&ctx, &delete_id, limit).await?)),
            None => Ok(Json(drain_up(&ctx, cursor, limit).await?)),
        }
    }

    /// Internal (`delete_session_process_state`, last step): forgets a
    /// completed delete (idempotent).
    #[handler(name = "end_delete", ingress_private)]
    async fn end_delete(
        &self,
        ctx: ObjectContext<'_>,
        delete_id: String,
    ) -> Result<(), TerminalError> {
        let key = delete_key(&delete_id);
        ctx.clear(&key);
        INTENTS.remove(&ctx, &key).await?;
        Ok(())
    }

    /// Internal (prune): forgets a pruned process's grants. The message is
    /// one-way and may arrive after the id was registered again and
    /// granted anew, so a stored grant is forgotten only when it is the
    /// pruned one (when the message carries them) and the process's own
    /// mirror does not hold it: the next incarnation's grant is mirrored
    /// before it is stored here, so it is never erased.
    #[handler(name = "drop_pruned", ingress_private)]
    async fn drop_pruned(
        &self,
        ctx: ObjectContext<'_>,
        pruned: Json<PrunedGrants>,
    ) -> Result<(), TerminalError> {
        let PrunedGrants {
            process_id,
            scope_ids,
            grants,
        } = pruned.into_inner();
        finish_cut_off(&ctx).await?;
        for scope_id in scope_ids {
            let member = member(&scope_id, &process_id);
            let Some(stored) = ctx.read::<ProcessHandleGrant>(&grant_key(&member)).await? else {
                continue;
            };
            let carried = grants.iter().find(|grant| grant.scope_id == scope_id);
            if carried.is_some_and(|carried| *carried != stored) {
                continue;
            }
            let client = process(&ctx, &process_id);
            let held = absorbing(|| client.mirror_settle(Json(stored.clone())).call()).await?;
            if !held.into_inner() {
                forget(&ctx, &member).await?;
            }
        }
        Ok(())
    }
}

/// A take journaled before intents: gives every grant up at once.
async fn take_at_once(
    ctx: &ObjectContext<'_>,
    scope_id: &str,
    taken: Vec<ProcessHandleGrant>,
) -> Result<Vec<ProcessHandleGrant>, TerminalError> {
    let mut moving = Vec::with_capacity(taken.len());
    for grant in taken {
        let client = process(ctx, &grant.process_id);
        let dropped = absorbing(|| client.mirror_drop(scope_id.to_owned()).call()).await;
        match dropped {
            Ok(_) => moving.push(grant.clone()),
            Err(error) if error.code() == UNKNOWN_PROCESS => {}
            Err(error) => return Err(error),
        }
        forget(ctx, &member(scope_id, &grant.process_id)).await?;
    }
    Ok(moving)
}

/// A give journaled before intents: mirrors and stores every grant.
async fn give_at_once(
    ctx: &ObjectContext<'_>,
    to: &SessionScope,
    grants: Vec<ProcessHandleGrant>,
) -> Result<(), TerminalError> {
    for held in grants {
        let grant = grant_for(to, &held.process_id, held.descriptor);
        // A moved grant never raises the count the source lowered, so
        // the per-process cap does not apply to it.
        let moved = MirrorPut {
            grant: grant.clone(),
            moved: true,
        };
        let client = process(ctx, &grant.process_id);
        match absorbing(|| client.mirror_put(Json(moved.clone())).call()).await {
            Ok(_) => remember(ctx, &grant).await?,
            Err(error) if error.code() == UNKNOWN_PROCESS => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Revokes one grant for a delete batch: drops it from its process's
/// mirror (learning what the process has left; nothing when it was pruned
/// meanwhile) and, after `record` has kept that, forgets it here.
async fn revoke_for_delete(
    ctx: &ObjectContext<'_>,
    member: &str,
) -> Result<Option<Revoked>, TerminalError> {
    let Some((scope_id, process_id)) = member.split_once('\n') else {
        return Ok(None);
    };
    let client = process(ctx, process_id);
    match absorbing(|| client.mirror_drop(scope_id.to_owned()).call()).await {
        Ok(dropped) => {
            let MirrorDropped {
                remaining,
                terminal,
            } = dropped.into_inner();
            Ok(Some(Revoked {
                process_id: process_id.to_owned(),
                remaining,
                terminal,
            }))
        }
        // Pruned meanwhile: nothing of it to revoke or report.
        Err(error) if error.code() == UNKNOWN_PROCESS => Ok(None),
        Err(error) => Err(error),
    }
}

fn tally_into(drained: &mut Drained, revoked: Revoked) {
    if revoked.terminal {
        drained.ended.push(revoked.process_id.clone());
    }
    drained
        .revoked
        .push((revoked.process_id, revoked.remaining));
}

/// A drain batch journaled before delete intents: every grant in the slots
/// from `cursor` up.
async fn drain_up(
    ctx: &ObjectContext<'_>,
    cursor: u64,
    limit: u64,
) -> Result<Drained, TerminalError> {
    let page = GRANTS.page(ctx, cursor, limit).await?;
    let mut drained = Drained::default();
    for member in page.members {
        if let Some(revoked) = revoke_for_delete(ctx, &member).await? {
            tally_into(&mut drained, revoked);
        }
        forget(ctx, &member).await?;
    }
    drained.remaining = GRANTS.head(ctx).await?.len;
    drained.next_cursor = page.next;
    Ok(drained)
}

/// One batch of delete `delete_id`: the `limit` slots below where the last
/// batch stopped, revoking the grants older than the delete. Why this sees
/// every such grant exactly once although revokes, transfers and this walk
/// move members (swap-remove): a member only ever moves from the last slot
/// down into a hole, and every member above `below` is newer than the
/// delete, so none older ever gets above `below`. Progress is stored with
/// each revocation, so a batch cut off and issued again neither revokes
/// twice nor loses what it revoked from its answer.
async fn drain_down(
    ctx: &ObjectContext<'_>,
    delete_id: &str,
    limit: u64,
) -> Result<Drained, TerminalError> {
    let key = delete_key(delete_id);
    let Some(mut intent) = ctx.read::<DeleteIntent>(&key).await? else {
        // Ended already (an answer lost with a cut-off coordinator).
        return Ok(Drained::default());
    };
    let set = batch_set(delete_id);
    let batch = KeyedSet::new(&set);
    let page = GRANTS.page_below(ctx, intent.below, limit).await?;
    let keys: Vec<String> = page.members.iter().map(|m| sequence_key(m)).collect();
    let sequences = in_order(keys.iter().map(|key| ctx.read::<u64>(key))).await?;
    let mut first = true;
    for (member, sequence) in page.members.iter().zip(sequences) {
        if sequence.unwrap_or_default() > intent.cutoff {
            continue;
        }
        // Kept before the grant is forgotten: issued again, the batch finds
        // the grant gone and its revocation recorded, or still there and
        // records it again under the same member (never twice).
        if let Some(revoked) = revoke_for_delete(ctx, member).await? {
            ctx.set(&revoked_key(delete_id, member), Json(revoked));
            batch.insert(ctx, member).await?;
        }
        forget(ctx, member).await?;
        if first {
            first = false;
            cut_point(ctx, "drain.after_first", ctx.key()).await?;
        }
    }
    let members = batch.take_all(ctx).await?;
    let keys: Vec<String> = members.iter().map(|m| revoked_key(delete_id, m)).collect();
    let revoked = in_order(keys.iter().map(|key| ctx.read::<Revoked>(key))).await?;
    let mut drained = Drained::default();
    for (key, revoked) in keys.iter().zip(revoked) {
        ctx.clear(key);
        if let Some(revoked) = revoked {
            tally_into(&mut drained, revoked);
        }
    }
    intent.below = page.next.unwrap_or(0);
    ctx.set(&key, Json(intent));
    drained.remaining = GRANTS.head(ctx).await?.len;
    drained.next_cursor = page.next;
    Ok(drained)
}

#[cfg(test)]
mod tests {
    use super::{DrainRequest, Drained, GiveRequest, PrunedGrants, TakeRequest};

    /// Requests of the previous release read, and the v1 coordinator's
    /// requests (new fields absent) serialize to the same bytes, so its
    /// journals replay.
    #[test]
    fn requests_of_the_previous_release_read_and_serialize_alike() {
        let take = r#"{"from":{"session_id":"s"},"process_ids":["p"],"check_only":false}"#;
        let read: TakeRequest = serde_json::from_str(take).expect("old take");
        assert!(read.to.is_none() && read.transfer_id.is_none());
        assert_eq!(serde_json::to_string(&read).expect("json"), take);

        let drain = r#"{"cursor":3,"limit":256}"#;
        let read: DrainRequest = serde_json::from_str(drain).expect("old drain");
        assert!(read.delete_id.is_none());
        assert_eq!(serde_json::to_string(&read).expect("json"), drain);

        let give = r#"{"to":{"session_id":"s"},"grants":[]}"#;
        let read: GiveRequest = serde_json::from_str(give).expect("old give");
        assert!(read.transfer_id.is_none());
        assert_eq!(serde_json::to_string(&read).expect("json"), give);

        let pruned = r#"{"process_id":"p","scope_ids":["session:s"]}"#;
        let read: PrunedGrants = serde_json::from_str(pruned).expect("old prune message");
        assert!(read.grants.is_empty());
        assert_eq!(serde_json::to_string(&read).expect("json"), pruned);
    }

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
