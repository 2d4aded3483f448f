//! `ProcessObject`: the virtual object keyed by process id that holds one
//! process: its row, event log, lease, replay-key index, wake acks and
//! grants. Exclusive handlers write, shared handlers read; Restate's
//! per-key exclusivity orders and isolates every write, no locks.
//!
//! Decisions come from the library's `rules`, the same ones the in-memory
//! registry applies, so both registries answer alike. Before answering a
//! write it updates the indexes it feeds (`ProcessDirectory`,
//! `SessionWakes`) and sends `ProcessTerminal` its outcome.
//!
//! Grants are decided by `SessionGrants` (the authority, see the
//! coordinator's docs); this object keeps a bounded mirror of the grants it
//! carries (`mirror_put` / `mirror_drop`, called only by `SessionGrants`)
//! for `handle_grants_for_process` and to tell a session delete whether a
//! process lost its last grant.

mod layout;
mod milestones;
mod wakes;

pub(crate) use milestones::EVICTED;

use restate_process_registry::restate::wire::{
    AttachTarget, ClaimRequest, CountRequest, EventsPage, EventsPageRequest, Milestone,
    MilestoneRequest, MilestoneWait, ReclaimRequest, RenewRequest, PAGE_BYTES, PAGE_LIMIT,
};
use restate_process_registry::rules::append::{
    self, AppendPlan, AppendWrite, CompletionPlan, Prior,
};
use restate_process_registry::rules::lease;
use restate_process_registry::rules::{self, registration};
use restate_process_registry::{
    AbandonRequest, ProcessAwaitOutput, ProcessError, ProcessEvent, ProcessEventAppendRequest,
    ProcessEventAppendResult, ProcessExternalRef, ProcessHandleGrant, ProcessLease,
    ProcessLeaseClaimOutcome, ProcessLeaseCompletion, ProcessRecord, ProcessRegistration,
    ProcessResult, ProcessStarted, WaitState,
};
use std::collections::{BTreeMap, BTreeSet};

use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use self::layout::*;
use crate::cancel::finish_step;
use crate::directory::ProcessDirectoryClient;
use crate::errors::{terminal, OrTerminal};
use crate::input::Input;
use crate::journal::{now_ms, seed_token, token};
use crate::milestone::ProcessMilestoneClient;
use crate::runner::{runs_body, ProcessRunnerClient};
use crate::session_grants::{PrunedGrants, SessionGrantsClient};
use crate::session_wakes::SessionWakesClient;
use crate::state::{in_order, ReadState};
use crate::terminal::ProcessTerminalClient;

/// Internal: a grant `SessionGrants` decided, for the process's mirror.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MirrorPut {
    /// The grant.
    pub grant: ProcessHandleGrant,
    /// Arriving by transfer (exempt from the per-process cap: the source
    /// side just lowered the count).
    pub moved: bool,
}

/// Internal: a transfer moving this process's grant from one scope to
/// another (`SessionGrants::take`, source side).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MirrorMove {
    /// The scope the grant leaves.
    pub from_scope_id: String,
    /// The grant as the destination will hold it.
    pub grant: ProcessHandleGrant,
    /// The transfer (source session and id), kept until the destination
    /// confirms, so `procreg check` can find the source's intent.
    pub transit: TransitFrom,
}

/// Internal: where a moving grant comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TransitFrom {
    /// The source session.
    pub session_id: String,
    /// The transfer's id.
    pub transfer_id: String,
}

/// Internal: what dropping a grant from the mirror left. Releases before
/// it answered the bare count; a `SessionGrants::drain` journaled then
/// replays that answer, so a bare number still reads (as a live process).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(from = "MirrorDroppedWire")]
pub(crate) struct MirrorDropped {
    /// Grants the process still carries.
    pub remaining: usize,
    /// The process has ended.
    pub terminal: bool,
}

/// Every shape `mirror_drop` has answered.
#[derive(Deserialize)]
#[serde(untagged)]
enum MirrorDroppedWire {
    Count(usize),
    Full { remaining: usize, terminal: bool },
}

impl From<MirrorDroppedWire> for MirrorDropped {
    fn from(wire: MirrorDroppedWire) -> Self {
        match wire {
            MirrorDroppedWire::Count(remaining) => Self {
                remaining,
                terminal: false,
            },
            MirrorDroppedWire::Full {
                remaining,
                terminal,
            } => Self {
                remaining,
                terminal,
            },
        }
    }
}

/// Internal: a `ProcessMilestone` wait to park.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ParkRequest {
    /// What is awaited.
    pub wait: MilestoneWait,
    /// The awakeable the wait's run awaits.
    pub awakeable_id: String,
}

/// Internal: what parking a milestone wait came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum ParkAnswer {
    /// Already logged.
    Found {
        /// The first matching event.
        event: ProcessEvent,
    },
    /// Parked under this id (see `milestones`).
    Parked {
        /// The park id, to remove it by when the run's park TTL runs out.
        id: u64,
    },
    /// The incarnation waited on has ended.
    Ended,
}

/// Internal: a run's park to remove (its TTL ran out).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Unpark {
    /// The park id `park_wait` answered.
    pub id: u64,
    /// The run's awakeable, so only that run's park is removed.
    pub awakeable_id: String,
}

/// Looks for the awaited event and parks the wait when it is not logged.
async fn park_in(
    ctx: &ObjectContext<'_>,
    request: ParkRequest,
) -> Result<ParkAnswer, TerminalError> {
    let ParkRequest { wait, awakeable_id } = request;
    let Some(mut row) = read_row(ctx).await? else {
        // Sent by this object for a row it had: pruned, so ended.
        return Ok(ParkAnswer::Ended);
    };
    if row.incarnation != wait.incarnation {
        // The incarnation waited on ended (it was pruned, so it ended).
        return Ok(ParkAnswer::Ended);
    }
    let awaited = wait.event_type.as_deref();
    if let Some(event) = milestones::find(ctx, &row.head, awaited, wait.after_sequence).await? {
        return Ok(ParkAnswer::Found { event });
    }
    if row.record.is_terminal() {
        return Ok(ParkAnswer::Ended);
    }
    let id = milestones::park(
        ctx,
        &mut row.head,
        awaited,
        wait.after_sequence,
        awakeable_id,
    )
    .await?;
    write_row(ctx, &row);
    Ok(ParkAnswer::Parked { id })
}

/// The per-process virtual object.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessObject {
    /// A `ProcessRunner` is bound next to it: registering a runnable row
    /// starts its run. Never set when no runner is bound, so nothing is
    /// ever sent to an unbound service.
    pub(crate) runs_bodies: bool,
}

fn wakes_index<'a>(ctx: &'a ObjectContext<'a>, session_id: &str) -> SessionWakesClient<'a> {
    ctx.object_client::<SessionWakesClient>(session_id)
}

/// Applies a row change that may be an idempotent no-op.
async fn change_row(
    ctx: &ObjectContext<'_>,
    step: &str,
    change: impl FnOnce(&ProcessRecord, u64) -> ProcessResult<Option<ProcessRecord>>,
) -> Result<Json<ProcessRecord>, TerminalError> {
    // The clock's round trip overlaps the read's.
    let row = read_row(ctx);
    let now = now_ms(ctx).await?;
    let row = row.await?.ok_or_else(|| unknown(ctx))?;
    let changed = change(&row.record, now).or_terminal()?;
    keep_change(ctx, step, row, changed).await
}

/// Stores `changed` when there is a change and answers the record as it
/// now is.
async fn keep_change(
    ctx: &ObjectContext<'_>,
    step: &str,
    mut row: Row,
    changed: Option<ProcessRecord>,
) -> Result<Json<ProcessRecord>, TerminalError> {
    if let Some(changed) = changed {
        row.record = changed;
        publish_row(ctx, &mut row, step).await?;
    }
    Ok(Json(row.record))
}

/// The row, the lease ledger and the clock, in one round trip.
async fn lease_inputs(ctx: &ObjectContext<'_>) -> Result<(Row, LeaseLedger, u64), TerminalError> {
    let (row, ledger) = (read_row(ctx), ctx.read::<LeaseLedger>(LEASE));
    let now = now_ms(ctx).await?;
    let row = row.await?.ok_or_else(|| unknown(ctx))?;
    Ok((row, ledger.await?.unwrap_or_default(), now))
}

/// Sends the outcome to the incarnation's `ProcessTerminal` promise when
/// the row has ended, and starts its run (a no-op for the engine when a
/// waiter already did), so the run ends and the engine's retention purges
/// the workflow whether or not anybody waited. `publish_row` calls it with
/// the row write; sending it again is harmless (the promise keeps its
/// first value).
pub(crate) fn announce_outcome<'c, C: ContextClient<'c>>(ctx: &C, row: &Row) {
    if let Some(output) = row.record.status.await_output() {
        let terminal = ctx.workflow_client::<ProcessTerminalClient>(row.incarnation.clone());
        let _ = terminal.finish(Json(output.clone())).send();
        let _ = terminal.run().send();
    }
}

/// Settles the milestone waits `event` satisfies (or, when it `ends` the
/// process, all of them) after the event and the row are written, and
/// stores the head when that changed it. A cancel on the way is absorbed:
/// settling again from the same head finds only the waits still parked (a
/// resolved wait's key is gone, so none is completed twice). A kill, or a
/// cancel inside its reads, can leave a wait the event satisfied parked:
/// it is never answered wrongly, only late, when its park expires (its run
/// then answers "expired" and the waiter's next look finds the event in
/// the log).
async fn settle_waits(
    ctx: &ObjectContext<'_>,
    row: &mut Row,
    event: &ProcessEvent,
    ends: bool,
) -> Result<(), TerminalError> {
    let head = &row.head;
    let (changed, head) = finish_step(ctx, "settle", ctx.key(), || {
        let mut head = head.clone();
        async move {
            let changed = milestones::settle(ctx, &mut head, event, ends).await?;
            Ok((changed, head))
        }
    })
    .await?;
    if changed {
        row.head = head;
        write_row(ctx, row);
    }
    Ok(())
}

/// The first `limit` of `sequences`' events, capped by count and bytes;
/// `next_after` is set when the page stops before the sequences do.
async fn events_page<C: ReadState>(
    ctx: &C,
    mut sequences: impl Iterator<Item = u64>,
    limit: u32,
) -> Result<EventsPage, TerminalError> {
    let wanted: Vec<u64> = sequences
        .by_ref()
        .take(limit.clamp(1, PAGE_LIMIT) as usize)
        .collect();
    let more_follow = sequences.next().is_some();
    let keys: Vec<String> = wanted.iter().map(|&sequence| event_key(sequence)).collect();
    let read = in_order(keys.iter().map(|key| ctx.read::<StoredEvent>(key))).await?;
    let mut page = EventsPage {
        events: Vec::with_capacity(read.len()),
        next_after: None,
    };
    let mut bytes = 0;
    for found in read.into_iter().flatten().map(|stored| stored.event) {
        let size = serde_json::to_vec(&found).map_or(0, |json| json.len());
        if !page.events.is_empty() && bytes + size > PAGE_BYTES {
            break;
        }
        bytes += size;
        page.events.push(found);
    }
    if more_follow || page.events.len() < wanted.len() {
        page.next_after = page.events.last().map(|e| e.sequence);
    }
    Ok(page)
}

/// The row must exist; then where the log stands.
async fn require_log(ctx: &SharedObjectContext<'_>) -> Result<LogHead, TerminalError> {
    Ok(require_row(ctx).await?.head)
}

#[restate_sdk::object(name = "ProcessObject", lazy_state)]
impl ProcessObject {
    /// `register_process`.
    #[handler(name = "register")]
    async fn register(
        &self,
        ctx: ObjectContext<'_>,
        registration: Input<ProcessRegistration>,
    ) -> Result<Json<ProcessRecord>, TerminalError> {
        let registration = registration.into_inner();
        if registration.id != ctx.key() {
            return Err(terminal(ProcessError::invalid(format!(
                "registration id `{}` does not match the object key `{}`",
                registration.id,
                ctx.key()
            ))));
        }
        let hash = registration::registration_hash(&registration).or_terminal()?;
        // The clock's round trip overlaps the read's.
        let existing = read_row(&ctx);
        let now = now_ms(&ctx).await?;
        if let Some(existing) = existing.await? {
            registration::check_reregistration(&existing.record, &hash).or_terminal()?;
            return Ok(Json(existing.record));
        }
        let record = registration::new_record(registration, hash, now);
        let incarnation = format!("{}#{}", record.id, seed_token(&ctx, "i"));
        let mut row = Row::new(record, incarnation);
        // The session's wake index lists the process before the row
        // exists: a kill in between leaves an entry for no row, which a
        // session delete skips; the reverse order could leave a target
        // aimed at a session whose delete never visits it.
        if let Some(target) = &row.record.wake_target {
            wakes_index(&ctx, &target.session_id)
                .note(row.record.id.clone())
                .call()
                .await?;
        }
        publish_row(&ctx, &mut row, "register").await?;
        // No `ProcessTerminal` run yet: a waiter's attach starts it
        // (`start_terminal`), the outcome does otherwise, so a row nobody
        // awaits never holds a suspended invocation.
        if self.runs_bodies && runs_body(&row.record) {
            let _ = ctx
                .workflow_client::<ProcessRunnerClient>(row.incarnation.clone())
                .run()
                .send();
        }
        Ok(Json(row.record))
    }

    /// `set_external_ref`.
    #[handler(name = "set_external_ref")]
    async fn set_external_ref(
        &self,
        ctx: ObjectContext<'_>,
        external_ref: Input<ProcessExternalRef>,
    ) -> Result<Json<ProcessRecord>, TerminalError> {
        let external_ref = external_ref.into_inner();
        change_row(&ctx, "set_external_ref", |record, now| {
            rules::record::set_external_ref(record, external_ref, now)
        })
        .await
    }

    /// `handle_grants_for_process`, by scope id.
    #[handler(name = "grants")]
    async fn grants(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<Vec<ProcessHandleGrant>>, TerminalError> {
        require_record(&ctx).await?;
        let grants: Grants = ctx.read(GRANTS).await?.unwrap_or_default();
        Ok(Json(grants.into_values().collect()))
    }

    /// `append_event`.
    #[handler(name = "append")]
    async fn append(
        &self,
        ctx: ObjectContext<'_>,
        request: Input<ProcessEventAppendRequest>,
    ) -> Result<Json<ProcessEventAppendResult>, TerminalError> {
        let request = request.into_inner();
        let replay = request.replay_key.as_deref().map(replay_key);
        // Issue every read and the clock at once: one round trip in all.
        let row = read_row(&ctx);
        let replayed = replay.as_deref().map(|key| ctx.read::<u64>(key));
        let now = now_ms(&ctx).await?;
        let mut row = row.await?.ok_or_else(|| unknown(&ctx))?;
        let replayed = match replayed {
            Some(read) => read.await?,
            None => None,
        };
        let prior = match replayed {
            None => Prior::Fresh,
            // A replay key past the log head, or naming another append's
            // event, was written by an append killed before its row
            // write: never acknowledged, and its event is not in the log.
            Some(sequence) if sequence > row.head.last_sequence => Prior::Fresh,
            Some(sequence) => match event(&ctx, sequence).await? {
                Some(found) if found.replay_key == request.replay_key => Prior::Found(found),
                // The killed append's sequence was taken by a later one.
                Some(_) => Prior::Fresh,
                None => Prior::Lost(sequence),
            },
        };
        let sequence = row.head.last_sequence + 1;
        // Everything is decided here, before the first write.
        let write =
            match append::plan_append(&row.record, &request, prior, sequence, now).or_terminal()? {
                AppendPlan::Replayed(answer) => return Ok(Json(*answer)),
                AppendPlan::Write(write) => write,
            };
        if let Some(delivery) = &write.delivery {
            let session_id = &delivery.scope.session_id;
            // The session's index lists this process while any wake aimed at
            // it is pending: note it on the first one only.
            if !wakes::is_aimed(&ctx, session_id).await? {
                wakes_index(&ctx, session_id)
                    .note(row.record.id.clone())
                    .call()
                    .await?;
            }
        }
        let result = write.result();
        let AppendWrite {
            event,
            pending_wake,
            ended,
            ..
        } = *write;
        // The point of no return. The event, its replay key and its wake
        // are invisible until the row write below moves the head past
        // them: a kill before that leaves keys the next append overwrites
        // (and a replay key past the head, read as fresh above). From here
        // on a cancel is absorbed (see `cancel`).
        if let Some(key) = &replay {
            ctx.set(key, Json(event.sequence));
        }
        store_event(&ctx, &event, &mut row.head);
        if let Some(scope) = pending_wake {
            let (sequence, ordinal) = (event.sequence, row.head.wakes);
            finish_step(&ctx, "append_wake", ctx.key(), || {
                wakes::record(&ctx, sequence, ordinal, scope.clone())
            })
            .await?;
        }
        finish_step(&ctx, "append_before_row", ctx.key(), || async { Ok(()) }).await?;
        let ends = ended.is_some();
        match ended {
            Some(ended) => {
                row.record = ended;
                publish_row(&ctx, &mut row, "append").await?;
            }
            None => write_row(&ctx, &row),
        }
        settle_waits(&ctx, &mut row, &event, ends).await?;
        Ok(Json(result))
    }

    /// `events_after`: one page, ascending.
    #[handler(name = "events_after")]
    async fn events_after(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Input<EventsPageRequest>,
    ) -> Result<Json<EventsPage>, TerminalError> {
        let request = request.into_inner();
        let last = require_log(&ctx).await?.last_sequence;
        let start = request.after_sequence.saturating_add(1);
        let page = events_page(&ctx, start..=last, request.limit).await?;
        Ok(Json(page))
    }

    /// `recent_events`: the first page of the last `limit` events.
    #[handler(name = "recent_events")]
    async fn recent_events(
        &self,
        ctx: SharedObjectContext<'_>,
        limit: Input<u64>,
    ) -> Result<Json<EventsPage>, TerminalError> {
        let last = require_log(&ctx).await?.last_sequence;
        let start = last.saturating_sub(limit.into_inner()).saturating_add(1);
        let page = events_page(&ctx, start..=last, PAGE_LIMIT).await?;
        Ok(Json(page))
    }

    /// `wake_events_after`: unacknowledged wake events, one page.
    #[handler(name = "wake_events_after")]
    async fn wake_events_after(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Input<EventsPageRequest>,
    ) -> Result<Json<EventsPage>, TerminalError> {
        let request = request.into_inner();
        let head = require_log(&ctx).await?;
        let limit = u64::from(request.limit.clamp(1, PAGE_LIMIT));
        let (unacked, scanned_to) =
            wakes::unacked_after(&ctx, &head, request.after_sequence, limit).await?;
        let mut page = events_page(&ctx, unacked.into_iter(), PAGE_LIMIT).await?;
        if page.next_after.is_none() {
            page.next_after = scanned_to;
        }
        Ok(Json(page))
    }

    /// `ack_wake` (idempotent).
    #[handler(name = "ack_wake")]
    async fn ack_wake(
        &self,
        ctx: ObjectContext<'_>,
        sequence: Input<u64>,
    ) -> Result<Json<()>, TerminalError> {
        let sequence = sequence.into_inner();
        let record = require_record(&ctx).await?;
        let found = event(&ctx, sequence).await?;
        rules::wakes::check_ack(&record.id, sequence, found.as_ref()).or_terminal()?;
        wakes::ack(&ctx, sequence).await?;
        Ok(Json(()))
    }

    /// `complete_process`: the terminal event and row in one step.
    #[handler(name = "complete")]
    async fn complete(
        &self,
        ctx: ObjectContext<'_>,
        output: Input<ProcessAwaitOutput>,
    ) -> Result<Json<ProcessRecord>, TerminalError> {
        let output = output.into_inner();
        let row = read_row(&ctx);
        let now = now_ms(&ctx).await?;
        let mut row = row.await?.ok_or_else(|| unknown(&ctx))?;
        let sequence = row.head.last_sequence + 1;
        match append::plan_completion(&row.record, output, sequence, now).or_terminal()? {
            CompletionPlan::AlreadyDone => Ok(Json(row.record)),
            CompletionPlan::Write { event, record } => {
                // The event and the row are written before the first
                // await (the directory's put in `publish_row`), so a kill
                // leaves either nothing or a complete row to index.
                store_event(&ctx, &event, &mut row.head);
                row.record = *record;
                publish_row(&ctx, &mut row, "complete").await?;
                settle_waits(&ctx, &mut row, &event, true).await?;
                Ok(Json(row.record))
            }
        }
    }

    /// `record_first_started` (first writer wins).
    #[handler(name = "record_first_started")]
    async fn record_first_started(
        &self,
        ctx: ObjectContext<'_>,
        started: Input<ProcessStarted>,
    ) -> Result<Json<ProcessRecord>, TerminalError> {
        let started = started.into_inner();
        let (stored, ledger, now) = lease_inputs(&ctx).await?;
        let changed =
            rules::record::record_first_started(&stored.record, ledger.state(now), started, now)
                .or_terminal()?;
        keep_change(&ctx, "record_first_started", stored, changed).await
    }

    /// `request_process_abandon` (first writer wins).
    #[handler(name = "request_abandon")]
    async fn request_abandon(
        &self,
        ctx: ObjectContext<'_>,
        request: Input<AbandonRequest>,
    ) -> Result<Json<ProcessRecord>, TerminalError> {
        let request = request.into_inner();
        change_row(&ctx, "request_abandon", |record, now| {
            rules::record::request_abandon(record, request, now)
        })
        .await
    }

    /// `set_process_wait`.
    #[handler(name = "set_wait")]
    async fn set_wait(
        &self,
        ctx: ObjectContext<'_>,
        wait: Input<WaitState>,
    ) -> Result<Json<ProcessRecord>, TerminalError> {
        let wait = wait.into_inner();
        change_row(&ctx, "set_wait", |record, now| {
            rules::record::set_wait(record, wait, now)
        })
        .await
    }

    /// `clear_process_wait`.
    #[handler(name = "clear_wait")]
    async fn clear_wait(
        &self,
        ctx: ObjectContext<'_>,
    ) -> Result<Json<ProcessRecord>, TerminalError> {
        change_row(&ctx, "clear_wait", |record, now| {
            Ok(rules::record::clear_wait(record, now))
        })
        .await
    }

    /// `get_process`: the row, or null when unknown.
    #[handler(name = "get")]
    async fn get(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<Option<ProcessRecord>>, TerminalError> {
        Ok(Json(read_row(&ctx).await?.map(|row| row.record)))
    }

    /// The outcome when terminal, else the workflow to attach to.
    #[handler(name = "attach_target")]
    async fn attach_target(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<AttachTarget>, TerminalError> {
        let row = require_row(&ctx).await?;
        Ok(Json(AttachTarget {
            output: row.record.status.await_output().cloned(),
            workflow_key: row.incarnation,
        }))
    }

    /// `await_event`: the first `event_type` event above `after_sequence`
    /// when logged; else, for a request with a `wait_id`, starts that
    /// waiter's `ProcessMilestone` run and answers its key to attach to.
    /// The run's wait is built here, from this object's key (the process)
    /// and row (the incarnation); only the awaited type, sequence, id and
    /// park TTL come from the request. `AlreadyTerminal` when the process
    /// ended without the event, `UnknownProcess` when there is none: both
    /// answered to the caller, never stored as a run's answer.
    #[handler(name = "milestone")]
    async fn milestone(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Input<MilestoneRequest>,
    ) -> Result<Json<Milestone>, TerminalError> {
        let MilestoneRequest {
            event_type,
            after_sequence,
            wait_id,
            park_ttl_ms,
        } = request.into_inner();
        let row = require_row(&ctx).await?;
        if let Some(event) =
            milestones::find(&ctx, &row.head, event_type.as_deref(), after_sequence).await?
        {
            return Ok(Json(Milestone::Found { event }));
        }
        if row.record.is_terminal() {
            return Err(terminal(ProcessError::terminal(&row.record.id)));
        }
        let wait_key = wait_id.map(|wait_id| {
            let wait = MilestoneWait {
                process_id: ctx.key().to_owned(),
                incarnation: row.incarnation.clone(),
                event_type,
                after_sequence,
                wait_id: Some(wait_id),
                park_ttl_ms,
            };
            let key = wait.key();
            // A no-op for the engine when the run exists (a waiter asking
            // again after a cut).
            let _ = ctx
                .workflow_client::<ProcessMilestoneClient>(key.clone())
                .run(Input(wait))
                .send();
            key
        });
        Ok(Json(Milestone::Pending {
            incarnation: row.incarnation,
            wait_key,
        }))
    }

    /// Internal (`ProcessMilestone` runs of the previous release, which
    /// replay this call): like [`park_wait`](Self::park_wait), answering
    /// the event when found and failing when the process ended.
    #[handler(name = "park", ingress_private)]
    async fn park(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<ParkRequest>,
    ) -> Result<Json<Option<ProcessEvent>>, TerminalError> {
        match park_in(&ctx, request.into_inner()).await? {
            ParkAnswer::Found { event } => Ok(Json(Some(event))),
            ParkAnswer::Parked { .. } => Ok(Json(None)),
            ParkAnswer::Ended => Err(terminal(ProcessError::terminal(ctx.key()))),
        }
    }

    /// Internal (`ProcessMilestone`): looks for the awaited event and, when
    /// it is not logged yet, parks the wait in the same step, to be
    /// completed through `awakeable_id` by the append that logs it (or
    /// rejected when the process ends). Answers the event when found, the
    /// park id when parked, `Ended` when this incarnation ended (or was
    /// pruned).
    #[handler(name = "park_wait", ingress_private)]
    async fn park_wait(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<ParkRequest>,
    ) -> Result<Json<ParkAnswer>, TerminalError> {
        Ok(Json(park_in(&ctx, request.into_inner()).await?))
    }

    /// Internal (`ProcessMilestone`, when its park TTL ran out): removes
    /// park `id` if it is still parked and is that run's; answers whether
    /// it was (not: an append or the end already settled it).
    #[handler(name = "unpark", ingress_private)]
    async fn unpark(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<Unpark>,
    ) -> Result<Json<bool>, TerminalError> {
        let Unpark { id, awakeable_id } = request.into_inner();
        let Some(mut row) = read_row(&ctx).await? else {
            return Ok(Json(false));
        };
        let taken = milestones::unpark(&ctx, &mut row.head, id, &awakeable_id).await?;
        if taken {
            write_row(&ctx, &row);
        }
        Ok(Json(taken))
    }

    /// Starts this incarnation's `ProcessTerminal` run (a no-op for the
    /// engine when it exists). Attach asks for it when the engine does not
    /// know the run: registration does not start it, the outcome does.
    #[handler(name = "start_terminal")]
    async fn start_terminal(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<()>, TerminalError> {
        let row = require_row(&ctx).await?;
        // A run started after the process ended (its first run finished
        // and the engine's retention forgot it) must not wait for an
        // outcome nobody sends again: send it with the run.
        if row.record.is_terminal() {
            announce_outcome(&ctx, &row);
            return Ok(Json(()));
        }
        let _ = ctx
            .workflow_client::<ProcessTerminalClient>(row.incarnation)
            .run()
            .send();
        Ok(Json(()))
    }

    /// Asks this incarnation's `ProcessRunner` to run the body (a no-op for
    /// the engine when the run exists); answers whether the row is one a
    /// runner runs. Registration already starts the run: hosts call this
    /// for rows registered before a runner was bound. Refused (as
    /// unavailable) when no runner is bound.
    #[handler(name = "start_run")]
    async fn start_run(&self, ctx: SharedObjectContext<'_>) -> Result<Json<bool>, TerminalError> {
        let row = require_row(&ctx).await?;
        if !self.runs_bodies {
            return Err(terminal(ProcessError::unavailable(
                "no ProcessRunner is bound to this endpoint",
            )));
        }
        if !runs_body(&row.record) {
            return Ok(Json(false));
        }
        let _ = ctx
            .workflow_client::<ProcessRunnerClient>(row.incarnation)
            .run()
            .send();
        Ok(Json(true))
    }

    /// `count_events_through`: one read, from the counts stored with the
    /// event at `up_to_sequence` (or the log head past the end).
    #[handler(name = "count_events_through")]
    async fn count_events_through(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Input<CountRequest>,
    ) -> Result<Json<u64>, TerminalError> {
        let CountRequest {
            event_type,
            up_to_sequence,
        } = request.into_inner();
        let head = require_log(&ctx).await?;
        let counts = if up_to_sequence >= head.last_sequence {
            head.counts
        } else if up_to_sequence == 0 {
            TypeCounts::new()
        } else {
            stored_event(&ctx, up_to_sequence)
                .await?
                .map(|stored| stored.counts)
                .unwrap_or_default()
        };
        Ok(Json(counts.get(&event_type).copied().unwrap_or(0)))
    }

    /// `claim_process_lease`.
    #[handler(name = "claim_lease")]
    async fn claim_lease(
        &self,
        mut ctx: ObjectContext<'_>,
        request: Input<ClaimRequest>,
    ) -> Result<Json<ProcessLeaseClaimOutcome>, TerminalError> {
        let ClaimRequest {
            owner,
            lease_ttl_ms,
        } = request.into_inner();
        let (row, mut ledger, now) = lease_inputs(&ctx).await?;
        let state = ledger.state(now);
        let outcome = lease::claim(&row.record, state, &owner, lease_ttl_ms, || {
            token(&mut ctx, "lease")
        })
        .or_terminal()?;
        store_claim(&ctx, &mut ledger, &outcome);
        Ok(Json(outcome))
    }

    /// `reclaim_process_lease`: a free or lapsed lease is acquired; a live
    /// one only when it is still the observed holder and that holder is
    /// provably dead.
    ///
    /// Where death is proven: this handler runs inside the engine, on no
    /// particular machine, and cannot see the holder's process table. Only
    /// a caller on the holder's host can. So the caller's registry client
    /// evaluates `rules::lease::provably_dead` there with its probe and
    /// sends the verdict (`holder_dead`); this handler checks everything
    /// it can see and trusts the verdict for nothing else: the stored
    /// holder is still the observed one, liveness included
    /// (compare-and-set), and holder and claimant are local processes with
    /// a known boot and start on the same host id and boot
    /// (`rules::lease::comparable`). A claimant on another host, an opaque
    /// holder or one recorded before liveness can therefore never take a
    /// live lease over, whatever it claims. Requests from clients before
    /// the verdict existed carry none and are `Busy` on a live lease.
    #[handler(name = "reclaim_lease")]
    async fn reclaim_lease(
        &self,
        mut ctx: ObjectContext<'_>,
        request: Input<ReclaimRequest>,
    ) -> Result<Json<ProcessLeaseClaimOutcome>, TerminalError> {
        let ReclaimRequest {
            owner,
            observed_holder,
            lease_ttl_ms,
            holder_dead,
        } = request.into_inner();
        let (row, mut ledger, now) = lease_inputs(&ctx).await?;
        let state = ledger.state(now);
        let outcome = lease::reclaim(
            &row.record,
            state,
            &owner,
            &observed_holder,
            lease_ttl_ms,
            |holder| holder_dead && lease::comparable(&holder.owner, &owner).is_some(),
            || token(&mut ctx, "lease"),
        )
        .or_terminal()?;
        store_claim(&ctx, &mut ledger, &outcome);
        Ok(Json(outcome))
    }

    /// `renew_process_lease`.
    #[handler(name = "renew_lease")]
    async fn renew_lease(
        &self,
        ctx: ObjectContext<'_>,
        request: Input<RenewRequest>,
    ) -> Result<Json<ProcessLease>, TerminalError> {
        let RenewRequest {
            lease: presented,
            lease_ttl_ms,
        } = request.into_inner();
        let (_, mut ledger, now) = lease_inputs(&ctx).await?;
        let state = ledger.state(now);
        let renewed = lease::renew(state, &presented, lease_ttl_ms).or_terminal()?;
        ledger.lease = Some(renewed.clone());
        ctx.set(LEASE, Json(ledger));
        Ok(Json(renewed))
    }

    /// `get_process_lease`: the stored lease, possibly expired.
    #[handler(name = "lease")]
    async fn lease(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<Option<ProcessLease>>, TerminalError> {
        let ledger: Option<LeaseLedger> = ctx.read(LEASE).await?;
        Ok(Json(ledger.and_then(|ledger| ledger.lease)))
    }

    /// `complete_process_lease`: releases a matching lease; stale is a no-op.
    #[handler(name = "complete_lease")]
    async fn complete_lease(
        &self,
        ctx: ObjectContext<'_>,
        completion: Input<ProcessLeaseCompletion>,
    ) -> Result<Json<()>, TerminalError> {
        let completion = completion.into_inner();
        require_record(&ctx).await?;
        let mut ledger: LeaseLedger = ctx.read(LEASE).await?.unwrap_or_default();
        if ledger.release(&completion) {
            ctx.set(LEASE, Json(ledger));
        }
        Ok(Json(()))
    }

    /// Internal (`SessionGrants`): mirrors a grant decided there. Refuses
    /// an unknown process, or a new scope past the per-process limit.
    #[handler(name = "mirror_put", ingress_private)]
    async fn mirror_put(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<MirrorPut>,
    ) -> Result<(), TerminalError> {
        let MirrorPut { grant, moved } = request.into_inner();
        let (row, grants) = (read_row(&ctx), ctx.read::<Grants>(GRANTS));
        let row = row.await?.ok_or_else(|| unknown(&ctx))?;
        let mut grants = grants.await?.unwrap_or_default();
        let upsert = moved || grants.contains_key(&grant.scope_id);
        rules::grants::check_capacity(&row.record.id, grants.len(), upsert).or_terminal()?;
        grants.insert(grant.scope_id.clone(), grant);
        ctx.set(GRANTS, Json(grants));
        Ok(())
    }

    /// Internal (`SessionGrants::take`): moves the mirror entry of
    /// `from_scope_id` to the grant's scope in one step. Answers false and
    /// changes nothing when there is no entry to move (already moved by an
    /// earlier attempt, or revoked), so a retried step never re-creates a
    /// grant the destination revoked meanwhile. The count never rises, so
    /// the per-process cap does not apply.
    #[handler(name = "mirror_move", ingress_private)]
    async fn mirror_move(
        &self,
        ctx: ObjectContext<'_>,
        request: Json<MirrorMove>,
    ) -> Result<Json<bool>, TerminalError> {
        let MirrorMove {
            from_scope_id,
            grant,
            transit,
        } = request.into_inner();
        let (row, grants, transits) = (
            read_row(&ctx),
            ctx.read::<Grants>(GRANTS),
            ctx.read::<Transits>(TRANSIT),
        );
        row.await?.ok_or_else(|| unknown(&ctx))?;
        let mut grants = grants.await?.unwrap_or_default();
        let mut transits = transits.await?.unwrap_or_default();
        if grants.remove(&from_scope_id).is_none() {
            return Ok(Json(false));
        }
        transits.insert(
            grant.scope_id.clone(),
            Transit {
                session_id: transit.session_id,
                transfer_id: transit.transfer_id,
            },
        );
        grants.insert(grant.scope_id.clone(), grant);
        ctx.set(GRANTS, Json(grants));
        ctx.set(TRANSIT, Json(transits));
        Ok(Json(true))
    }

    /// Internal (`SessionGrants::give`, and `drop_pruned`): whether the
    /// mirror holds exactly `grant` for its scope; ends its transit, if
    /// any. Answers false for an unknown process. The destination stores a
    /// moved grant only when this says so, which makes `give` idempotent:
    /// a grant revoked at the destination after it moved is not restored.
    #[handler(name = "mirror_settle", ingress_private)]
    async fn mirror_settle(
        &self,
        ctx: ObjectContext<'_>,
        grant: Json<ProcessHandleGrant>,
    ) -> Result<Json<bool>, TerminalError> {
        let grant = grant.into_inner();
        let (row, grants, transits) = (
            read_row(&ctx),
            ctx.read::<Grants>(GRANTS),
            ctx.read::<Transits>(TRANSIT),
        );
        if row.await?.is_none() {
            return Ok(Json(false));
        }
        let grants = grants.await?.unwrap_or_default();
        let mut transits = transits.await?.unwrap_or_default();
        if transits.remove(&grant.scope_id).is_some() {
            store_transits(&ctx, &transits);
        }
        Ok(Json(grants.get(&grant.scope_id) == Some(&grant)))
    }

    /// The grants moved into this process's mirror whose destination has
    /// not confirmed them: `(destination scope id, source session,
    /// transfer id)` (for `procreg check`).
    #[handler(name = "transits")]
    async fn transits(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<Vec<(String, String, String)>>, TerminalError> {
        let transits: Transits = ctx.read(TRANSIT).await?.unwrap_or_default();
        Ok(Json(
            transits
                .into_iter()
                .map(|(scope, from)| (scope, from.session_id, from.transfer_id))
                .collect(),
        ))
    }

    /// Internal (`SessionGrants`): drops a scope's grant from the mirror
    /// (if there) and answers how many grants the process still carries
    /// and whether it has ended (a session delete reports neither orphaned
    /// nor preserved for an ended process).
    #[handler(name = "mirror_drop", ingress_private)]
    async fn mirror_drop(
        &self,
        ctx: ObjectContext<'_>,
        scope_id: String,
    ) -> Result<Json<MirrorDropped>, TerminalError> {
        let (row, grants, transits) = (
            read_row(&ctx),
            ctx.read::<Grants>(GRANTS),
            ctx.read::<Transits>(TRANSIT),
        );
        let row = row.await?.ok_or_else(|| unknown(&ctx))?;
        let mut grants = grants.await?.unwrap_or_default();
        let mut transits = transits.await?.unwrap_or_default();
        let removed = grants.remove(&scope_id).is_some();
        let remaining = grants.len();
        if removed {
            ctx.set(GRANTS, Json(grants));
        }
        if transits.remove(&scope_id).is_some() {
            store_transits(&ctx, &transits);
        }
        Ok(Json(MirrorDropped {
            remaining,
            terminal: row.record.is_terminal(),
        }))
    }

    /// Internal (`delete_session_process_state`): clears the wake target
    /// if it aims at the session (wake events stay, see
    /// `SessionDeleteTally`) and leaves the session's wake index, which a
    /// later delete of the session no longer needs this process in.
    ///
    /// Keeps the name and the `(wakes deleted, more left)` answer releases
    /// before wrote, so a session delete journaled then replays against
    /// it; it now always answers `(0, false)`: nothing deleted, done.
    #[handler(name = "forget_wakes", ingress_private)]
    async fn forget_wakes(
        &self,
        ctx: ObjectContext<'_>,
        session_id: String,
    ) -> Result<Json<(u64, bool)>, TerminalError> {
        if let Some(mut stored) = read_row(&ctx).await? {
            // The clock is read only when there is a change to stamp.
            if rules::record::wake_target_aims_at(&stored.record, &session_id) {
                let now = now_ms(&ctx).await?;
                if let Some(cleared) =
                    rules::record::clear_wake_target_of(&stored.record, &session_id, now)
                {
                    stored.record = cleared;
                    publish_row(&ctx, &mut stored, "forget_wakes").await?;
                }
            }
        }
        let id = ctx.key().to_owned();
        finish_step(&ctx, "forget_wakes_index", &id, || {
            wakes_index(&ctx, &session_id).drop(id.clone()).call()
        })
        .await?;
        Ok(Json((0, false)))
    }

    /// Internal (`prune_terminal_processes`): deletes this process with its
    /// events, acks, grants and lease (keeping only the fencing high-water)
    /// if it is terminal and older than the cutoff. Answers how many events
    /// went, or null when it stays.
    ///
    /// Every read comes first. Then the session authorities are told to
    /// forget the grants, by message (they call this object, so calling
    /// them back could deadlock; a message, once journaled, is delivered
    /// even if this invocation is killed, and forgetting is idempotent).
    /// Then the state goes, in one step with no await between (the point
    /// of no return), and last the indexes: the session wake indexes and
    /// the directory entry. Cuts: killed before the state goes, the row is
    /// intact and still listed, so the next prune does it all again (its
    /// sessions may already have forgotten grants it still mirrors, which
    /// `procreg check` shows until then); killed after, the row is gone and
    /// its directory entry names nothing, which the next prune removes
    /// (below) and a session delete skips. A cancel past the point of no
    /// return is absorbed.
    #[handler(name = "prune", ingress_private)]
    async fn prune(
        &self,
        ctx: ObjectContext<'_>,
        cutoff_ms: Json<u64>,
    ) -> Result<Json<Option<u64>>, TerminalError> {
        let id = ctx.key().to_owned();
        let shard = restate_process_registry::restate::wire::directory_shard(&id);
        let directory = || {
            ctx.object_client::<ProcessDirectoryClient>(shard.clone())
                .remove(id.clone())
                .call()
        };
        let Some(Row { record, head, .. }) = read_row(&ctx).await? else {
            // Listed but gone: a prune killed past its point of no return.
            finish_step(&ctx, "prune_orphan", &id, directory).await?;
            return Ok(Json(None));
        };
        if !record.is_terminal() || record.updated_at_ms >= cutoff_ms.into_inner() {
            return Ok(Json(None));
        }
        let (grants, lease) = (ctx.read::<Grants>(GRANTS), ctx.read::<LeaseLedger>(LEASE));
        let grants = grants.await?.unwrap_or_default();
        let fence = lease.await?.and_then(|ledger| ledger.after_prune());
        let mut aimed: BTreeSet<String> = wakes::aimed_sessions(&ctx).await?.into_iter().collect();
        aimed.extend(record.wake_target.iter().map(|t| t.session_id.clone()));
        let mut granted: BTreeMap<String, Vec<ProcessHandleGrant>> = BTreeMap::new();
        for grant in grants.into_values() {
            granted
                .entry(grant.session_id.clone())
                .or_default()
                .push(grant);
        }
        for (session_id, grants) in granted {
            let pruned = PrunedGrants {
                process_id: record.id.clone(),
                scope_ids: grants.iter().map(|grant| grant.scope_id.clone()).collect(),
                grants,
            };
            let message = ctx
                .object_client::<SessionGrantsClient>(session_id)
                .drop_pruned(Json(pruned));
            match crate::cut::delay("prune.late_drop", &record.id) {
                Some(late) => {
                    let _ = message.send_after(late);
                }
                None => {
                    let _ = message.send();
                }
            }
        }
        ctx.clear_all();
        // Fencing tokens never go backwards for an id: the high-water (one
        // number, no lease) outlives the prune, so a re-registered process
        // claims above every token issued before. Registration reads only
        // the row, so nothing else is inherited.
        if let Some(fence) = fence {
            ctx.set(LEASE, Json(fence));
        }
        for session_id in aimed {
            finish_step(&ctx, "prune_wakes", &id, || {
                wakes_index(&ctx, &session_id).drop(id.clone()).call()
            })
            .await?;
        }
        finish_step(&ctx, "prune_directory", &id, directory).await?;
        Ok(Json(Some(head.last_sequence)))
    }

    /// Puts this row's directory entry and its wake target's index entry
    /// again, or removes the entry when there is no row (idempotent): what
    /// `procreg check --repair` calls for a row the directory misses or
    /// misstates. A row marked unindexed is finished by the read itself.
    #[handler(name = "reindex")]
    async fn reindex(&self, ctx: ObjectContext<'_>) -> Result<Json<bool>, TerminalError> {
        let Some(mut row) = read_row(&ctx).await? else {
            // An entry naming no row (a prune killed past its point of no
            // return) goes; removing an absent one changes nothing.
            let id = ctx.key().to_owned();
            ctx.object_client::<ProcessDirectoryClient>(
                restate_process_registry::restate::wire::directory_shard(&id),
            )
            .remove(id)
            .call()
            .await?;
            return Ok(Json(false));
        };
        if let Some(target) = &row.record.wake_target {
            wakes_index(&ctx, &target.session_id)
                .note(row.record.id.clone())
                .call()
                .await?;
        }
        publish_row(&ctx, &mut row, "reindex").await?;
        Ok(Json(true))
    }
}

fn store_transits(ctx: &ObjectContext<'_>, transits: &Transits) {
    if transits.is_empty() {
        ctx.clear(TRANSIT);
    } else {
        ctx.set(TRANSIT, Json(transits.clone()));
    }
}

fn store_claim(
    ctx: &ObjectContext<'_>,
    ledger: &mut LeaseLedger,
    outcome: &ProcessLeaseClaimOutcome,
) {
    if ledger.store_claim(outcome) {
        ctx.set(LEASE, Json(ledger.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::MirrorDropped;

    /// `mirror_drop` answered a bare count before it said whether the
    /// process ended; a drain journaled then still replays.
    #[test]
    fn a_mirror_drop_answer_of_the_previous_release_still_reads() {
        let old: MirrorDropped = serde_json::from_str("2").expect("bare count");
        assert_eq!((old.remaining, old.terminal), (2, false));
        let new: MirrorDropped =
            serde_json::from_str(r#"{"remaining":0,"terminal":true}"#).expect("current shape");
        assert_eq!((new.remaining, new.terminal), (0, true));
    }
}
