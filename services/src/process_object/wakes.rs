//! Unacknowledged wakes of one process, one key each, so nothing grows per
//! value however many wakes wait for an ack.
//!
//! - `w/{seq}`: present while wake event `seq` is unacknowledged; holds the
//!   scope it was delivered to (if any) — the same shape the in-memory
//!   registry keeps.
//! - `wk/{n}`: the sequence of the `n`-th wake event ever appended; each
//!   stored event carries how many wake events precede it (inclusive), so
//!   `wake_events_after` jumps straight to the first candidate.
//! - `ws/{session}`: a [`KeyedSet`] of the unacknowledged wakes delivered to
//!   that session, and `aimed`, the sessions having any, so a prune visits
//!   only the session indexes that list this process. A session delete
//!   leaves all of these alone: it deletes no wake.

use restate_process_registry::SessionScope;
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::layout::{stored_event, LogHead};
use crate::keyed_set::KeyedSet;
use crate::state::{in_order, ReadState};

/// Sessions that unacknowledged wakes of this process were delivered to.
const AIMED: KeyedSet<'static> = KeyedSet::new("aimed");

/// An unacknowledged wake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingWake {
    /// The scope it was delivered to.
    pub(crate) scope: Option<SessionScope>,
}

fn pending_key(sequence: u64) -> String {
    format!("w/{sequence}")
}

fn ordinal_key(ordinal: u64) -> String {
    format!("wk/{ordinal}")
}

fn delivered_to(session_id: &str) -> String {
    format!("ws/{session_id}")
}

/// Whether unacknowledged wakes of this process are already aimed at
/// `session_id` (so the session's wake index already lists it).
pub(crate) async fn is_aimed<C: ReadState>(
    ctx: &C,
    session_id: &str,
) -> Result<bool, TerminalError> {
    Ok(AIMED.slot_of(ctx, session_id).await?.is_some())
}

/// Records wake event `sequence`, the `ordinal`-th of the process.
pub(crate) async fn record(
    ctx: &ObjectContext<'_>,
    sequence: u64,
    ordinal: u64,
    scope: Option<SessionScope>,
) -> Result<(), TerminalError> {
    ctx.set(&ordinal_key(ordinal), Json(sequence));
    if let Some(scope) = &scope {
        let set = delivered_to(&scope.session_id);
        KeyedSet::new(&set)
            .insert(ctx, &sequence.to_string())
            .await?;
        AIMED.insert(ctx, &scope.session_id).await?;
    }
    ctx.set(&pending_key(sequence), Json(PendingWake { scope }));
    Ok(())
}

/// Acknowledges wake event `sequence` (a no-op when already acknowledged).
pub(crate) async fn ack(ctx: &ObjectContext<'_>, sequence: u64) -> Result<(), TerminalError> {
    let key = pending_key(sequence);
    let Some(pending) = ctx.read::<PendingWake>(&key).await? else {
        return Ok(());
    };
    if let Some(scope) = pending.scope {
        let set = delivered_to(&scope.session_id);
        KeyedSet::new(&set)
            .remove(ctx, &sequence.to_string())
            .await?;
    }
    ctx.clear(&key);
    Ok(())
}

/// Up to `limit` wake events after `after_sequence`, and which of them are
/// unacknowledged; the returned cursor is set when more wake events follow.
pub(crate) async fn unacked_after<C: ReadState>(
    ctx: &C,
    head: &LogHead,
    after_sequence: u64,
    limit: u64,
) -> Result<(Vec<u64>, Option<u64>), TerminalError> {
    let before = if after_sequence == 0 {
        0
    } else if after_sequence >= head.last_sequence {
        head.wakes
    } else {
        stored_event(ctx, after_sequence)
            .await?
            .map_or(0, |stored| stored.wakes_through)
    };
    let end = before.saturating_add(limit.max(1)).min(head.wakes);
    let ordinals: Vec<String> = (before + 1..=end).map(ordinal_key).collect();
    let sequences: Vec<u64> = in_order(ordinals.iter().map(|key| ctx.read::<u64>(key)))
        .await?
        .into_iter()
        .flatten()
        .collect();
    let keys: Vec<String> = sequences.iter().map(|&seq| pending_key(seq)).collect();
    let pending = in_order(keys.iter().map(|key| ctx.read::<PendingWake>(key))).await?;
    let unacked = sequences
        .iter()
        .zip(pending)
        .filter_map(|(seq, pending)| pending.map(|_| *seq))
        .collect();
    let next = (end < head.wakes)
        .then(|| sequences.last().copied())
        .flatten();
    Ok((unacked, next))
}

/// Every session that unacknowledged wakes were delivered to.
pub(crate) async fn aimed_sessions<C: ReadState>(ctx: &C) -> Result<Vec<String>, TerminalError> {
    let mut sessions = Vec::new();
    let mut cursor = Some(0);
    while let Some(at) = cursor {
        let page = AIMED.page(ctx, at, 256).await?;
        sessions.extend(page.members);
        cursor = page.next;
    }
    Ok(sessions)
}
