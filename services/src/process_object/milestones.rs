//! Milestone waits of one process: finding the first event of a type above
//! a sequence, and the waits parked until one is appended.
//!
//! - `t/{n}/{type}`: the sequence of the `n`-th event of `type`, written
//!   with the event. Each stored event carries the per-type counts through
//!   it, so "the first `type` event above `after`" is the `count(after)+1`-th
//!   one: at most three reads, whatever the log's length.
//! - `mw/{n}/{type}`: one parked wait ([`Parked`]): the `ProcessMilestone`
//!   awakeable to complete; waits for any event park under the empty type
//!   (`mw/{n}/`), which no event type can have. The log head keeps, per awaited type, the range
//!   of wait numbers in use ([`Waiters`]), so an append reads nothing more
//!   when no wait is parked on its type: the head is read by every append
//!   anyway.
//!
//! Why no wait is lost or completed twice: parking runs in an exclusive
//! handler, which looks for the event and parks in one step, so no append
//! falls between the look and the park. Each append (exclusive too)
//! completes the waits it satisfies and deletes their keys in the same step
//! that writes the event, and the engine commits the step's state and its
//! completions together. A process that ends rejects every wait still
//! parked, so none outlives its incarnation (a prune needs the process
//! ended first).

use std::collections::BTreeMap;

use restate_process_registry::{ProcessError, ProcessEvent};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::layout::{event, stored_event, LogHead};
use crate::errors::terminal;
use crate::state::{in_order, ReadState};

/// Most waits parked on one process at once. Waits for the same type and
/// sequence share one park, so this bounds distinct waits; it keeps the
/// step that ends a process (which rejects them all) bounded.
pub(crate) const MAX_PARKED: u64 = 256;

/// Per awaited type, the wait numbers in use: `first..next`, `parked` of
/// them still present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiters {
    first: u64,
    next: u64,
    parked: u64,
}

/// Parked waits by event type.
pub(crate) type WaitersByType = BTreeMap<String, Waiters>;

/// Where waits for any event park: no event type is empty.
const ANY: &str = "";

/// One parked wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Parked {
    after_sequence: u64,
    awakeable_id: String,
}

/// Key of the sequence of the `ordinal`-th `event_type` event.
pub(crate) fn type_index_key(event_type: &str, ordinal: u64) -> String {
    format!("t/{ordinal}/{event_type}")
}

fn parked_key(event_type: &str, number: u64) -> String {
    format!("mw/{number}/{event_type}")
}

/// The first `event_type` event (any event for `None`) above
/// `after_sequence`, if in the log.
pub(crate) async fn find<C: ReadState>(
    ctx: &C,
    head: &LogHead,
    event_type: Option<&str>,
    after_sequence: u64,
) -> Result<Option<ProcessEvent>, TerminalError> {
    let Some(event_type) = event_type else {
        // Sequences are gapless: the next event is the next sequence.
        if after_sequence >= head.last_sequence {
            return Ok(None);
        }
        return event(ctx, after_sequence + 1).await;
    };
    let total = head.counts.get(event_type).copied().unwrap_or(0);
    if after_sequence >= head.last_sequence || total == 0 {
        return Ok(None);
    }
    let before = if after_sequence == 0 {
        0
    } else {
        stored_event(ctx, after_sequence)
            .await?
            .and_then(|stored| stored.counts.get(event_type).copied())
            .unwrap_or(0)
    };
    if before >= total {
        return Ok(None);
    }
    let Some(sequence) = ctx
        .read::<u64>(&type_index_key(event_type, before + 1))
        .await?
    else {
        return Err(TerminalError::new(format!(
            "the index of `{event_type}` events misses entry {}",
            before + 1
        )));
    };
    event(ctx, sequence).await
}

/// Parks a wait for the first `event_type` event (any event for `None`)
/// above `after_sequence`, to be completed through `awakeable_id`. The
/// caller writes the row with the changed head.
pub(crate) fn park(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    event_type: Option<&str>,
    after_sequence: u64,
    awakeable_id: String,
) -> Result<(), TerminalError> {
    let event_type = event_type.unwrap_or(ANY);
    let parked: u64 = head.waiters.values().map(|w| w.parked).sum();
    if parked >= MAX_PARKED {
        return Err(terminal(ProcessError::Conflict(format!(
            "process `{}` already has {MAX_PARKED} milestone waits parked",
            ctx.key()
        ))));
    }
    let waiters = head.waiters.entry(event_type.to_owned()).or_default();
    let wait = Parked {
        after_sequence,
        awakeable_id,
    };
    ctx.set(&parked_key(event_type, waiters.next), Json(wait));
    waiters.next += 1;
    waiters.parked += 1;
    Ok(())
}

/// The parked waits of `event_type`, with their numbers.
async fn parked_of<C: ReadState>(
    ctx: &C,
    event_type: &str,
    waiters: &Waiters,
) -> Result<Vec<(u64, Parked)>, TerminalError> {
    let numbers: Vec<u64> = (waiters.first..waiters.next).collect();
    let keys: Vec<String> = numbers.iter().map(|&n| parked_key(event_type, n)).collect();
    let found = in_order(keys.iter().map(|key| ctx.read::<Parked>(key))).await?;
    Ok(numbers
        .into_iter()
        .zip(found)
        .filter_map(|(number, parked)| parked.map(|parked| (number, parked)))
        .collect())
}

/// Completes the waits `event` satisfies and, when `ends` (the event ends
/// the process), rejects all the others with `AlreadyTerminal`. Call it
/// after the event and the row are written, so a woken waiter reads them;
/// answers whether the head changed (the caller writes the row again).
pub(crate) async fn settle(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    event: &ProcessEvent,
    ends: bool,
) -> Result<bool, TerminalError> {
    if head.waiters.is_empty() {
        return Ok(false);
    }
    for awaited in [event.event_type.as_str(), ANY] {
        let Some(waiters) = head.waiters.get(awaited).cloned() else {
            continue;
        };
        let mut kept = Waiters {
            first: waiters.next,
            next: waiters.next,
            parked: 0,
        };
        for (number, parked) in parked_of(ctx, awaited, &waiters).await? {
            if parked.after_sequence < event.sequence {
                ctx.resolve_awakeable(&parked.awakeable_id, Json(event.clone()));
                ctx.clear(&parked_key(awaited, number));
            } else {
                // Waits for a sequence the log has not reached yet.
                kept.first = kept.first.min(number);
                kept.parked += 1;
            }
        }
        if kept.parked == 0 {
            head.waiters.remove(awaited);
        } else {
            head.waiters.insert(awaited.to_owned(), kept);
        }
    }
    if ends {
        for (event_type, waiters) in std::mem::take(&mut head.waiters) {
            for (number, parked) in parked_of(ctx, &event_type, &waiters).await? {
                let ended = terminal(ProcessError::terminal(ctx.key()));
                ctx.reject_awakeable(&parked.awakeable_id, ended);
                ctx.clear(&parked_key(&event_type, number));
            }
        }
    }
    Ok(true)
}
