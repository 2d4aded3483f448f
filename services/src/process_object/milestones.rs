//! Milestone waits of one process: finding the first event of a type above
//! a sequence, and the waits parked until one is appended.
//!
//! - `t/{n}/{type}`: the sequence of the `n`-th event of `type`, written
//!   with the event. Each stored event carries the per-type counts through
//!   it, so "the first `type` event above `after`" is the `count(after)+1`-th
//!   one: at most three reads, whatever the log's length.
//!
//! Every parked wait is in exactly one of two places, and has a park id
//! (`mp/{id}` says which place, so a wait is found by its id alone):
//!
//! - **ready** (`mw/{n}/{type}`, a [`Parked`]): its `after_sequence` is at
//!   or below the log head, so the next event of its type satisfies it.
//!   Per awaited type the head keeps the slot range in use ([`Waiters`]);
//!   waits for any event use the empty type (`mw/{n}/`), which no event
//!   type can have.
//! - **beyond the log** (`mf/{after}/{slot}`, a [`Beyond`]): its
//!   `after_sequence` is past the head, so no event can satisfy it until
//!   the log reaches that sequence. They are grouped by that threshold; the
//!   index of thresholds (`mfi`, at most [`MAX_PARKED`] entries) is read
//!   only when one parks or moves, and the head keeps just the smallest
//!   threshold ([`Parks::beyond`]).
//!
//! ## What an append reads
//!
//! An append of a `type` event at sequence `s` reads the ready slots of
//! `type` and of "any", and every wait there is satisfied (`after < s`
//! since `after <= s - 1`): it reads only the waits it resolves, plus the
//! slots emptied by waits that expired since the last such append (each
//! empty slot is read once, then the range is gone: amortized O(1) per
//! expiry). When `s` is the head's smallest threshold it then moves that
//! threshold's group to the ready slots (each wait moves once in its
//! life). Waits beyond the log are otherwise never read, whatever their
//! number: an append with nothing to resolve or move reads nothing beyond
//! the row. Waits the previous release parked in a ready range with an
//! `after_sequence` past the head are moved beyond the log by the first
//! append of their type that reads them, once.
//!
//! ## Why no wait is lost, completed twice or left parked
//!
//! - *Not lost*: parking runs in an exclusive handler that looks for the
//!   event and parks in one step, so no append falls between the look and
//!   the park. A wait is ready only when the next event of its type
//!   satisfies it, and each append (exclusive too) resolves every ready
//!   wait of its type before it moves the group whose threshold it reached
//!   (those need a later event). Thresholds are sequences and the log is
//!   gapless, so every group is moved by the append that reaches it.
//! - *Not twice*: a wait leaves its place in the same step that completes,
//!   rejects or expires it (its slot, its `mp/{id}` and the counters), and
//!   the engine commits a step's state and its completions together. Only
//!   the holder of the wait's place acts on it: an append resolves what is
//!   in its ready slots, an expiry (`unpark`) removes only a wait whose id
//!   and awakeable it names and that is still in place, so an expiry that
//!   races an append finds the wait gone and changes nothing.
//! - *Not left parked*: a run that parks also sleeps (its park TTL) and on
//!   waking removes its own wait by id, no scan; a process that ends
//!   rejects every wait still parked in either place, and a prune needs
//!   the process ended first. When [`MAX_PARKED`] waits are parked, the
//!   oldest is expired to make room (its run answers `Expired`), so a new
//!   wait is never refused.

use std::collections::BTreeMap;

use restate_process_registry::{ProcessError, ProcessEvent};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::layout::{event, stored_event, LogHead};
use crate::errors::terminal;
use crate::state::{in_order, ReadState};

/// Most waits parked on one process at once; a park past it expires the
/// oldest. It keeps the step that ends a process (which rejects them all)
/// bounded, and the index of thresholds small.
pub(crate) const MAX_PARKED: u64 = 256;

/// Code of the rejection that tells a run its park was expired to make
/// room for a newer one (the run answers `Expired`).
pub(crate) const EVICTED: u16 = 408;

/// Per awaited type, the ready slots in use: `first..next`, `parked` of
/// them still present. (The previous release kept waits past the head in
/// these ranges too; see the module docs.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiters {
    first: u64,
    next: u64,
    parked: u64,
}

/// Ready waits by event type.
pub(crate) type WaitersByType = BTreeMap<String, Waiters>;

/// The head's summary of the parks with ids. Absent in heads the previous
/// release wrote (it reads as no park).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Parks {
    /// The id the next park gets; ids are never reused in an incarnation.
    #[serde(default)]
    next_id: u64,
    /// Every id below this is gone.
    #[serde(default)]
    oldest: u64,
    /// Waits with an id still parked.
    #[serde(default)]
    parked: u64,
    /// The smallest `after_sequence` of the waits beyond the log, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    beyond: Option<u64>,
}

impl Parks {
    /// Nothing was ever parked with an id.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Where waits for any event park: no event type is empty.
const ANY: &str = "";

/// One ready wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Parked {
    after_sequence: u64,
    awakeable_id: String,
    /// Its park id; `None` for a wait the previous release parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
}

/// One wait beyond the log; its `after_sequence` is in its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Beyond {
    event_type: String,
    awakeable_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
}

/// One threshold's group of waits beyond the log: slots used, still parked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Group {
    next: u64,
    parked: u64,
}

/// The groups beyond the log by threshold (`mfi`).
type Groups = BTreeMap<u64, Group>;

const GROUPS: &str = "mfi";

/// Where park `id` is (`mp/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
enum Place {
    Ready { event_type: String, number: u64 },
    Beyond { after_sequence: u64, slot: u64 },
}

/// Key of the sequence of the `ordinal`-th `event_type` event.
pub(crate) fn type_index_key(event_type: &str, ordinal: u64) -> String {
    format!("t/{ordinal}/{event_type}")
}

fn ready_key(event_type: &str, number: u64) -> String {
    format!("mw/{number}/{event_type}")
}

fn beyond_key(after_sequence: u64, slot: u64) -> String {
    format!("mf/{after_sequence}/{slot}")
}

fn place_key(id: u64) -> String {
    format!("mp/{id}")
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

/// The groups beyond the log, read at most once per handler (not at all
/// when the head says there are none) and written back by [`Self::store`].
#[derive(Default)]
struct GroupsCache {
    groups: Option<Groups>,
}

impl GroupsCache {
    async fn get(
        &mut self,
        ctx: &ObjectContext<'_>,
        head: &LogHead,
    ) -> Result<&mut Groups, TerminalError> {
        if self.groups.is_none() {
            let read = match head.parks.beyond {
                Some(_) => ctx.read::<Groups>(GROUPS).await?.unwrap_or_default(),
                None => Groups::new(),
            };
            self.groups = Some(read);
        }
        Ok(self.groups.get_or_insert_with(Groups::new))
    }

    /// Writes the groups back if they were read, and the smallest threshold
    /// into the head.
    fn store(self, ctx: &ObjectContext<'_>, head: &mut LogHead) {
        let Some(groups) = self.groups else {
            return;
        };
        head.parks.beyond = groups.keys().next().copied();
        if groups.is_empty() {
            ctx.clear(GROUPS);
        } else {
            ctx.set(GROUPS, Json(groups));
        }
    }
}

fn put_ready(ctx: &ObjectContext<'_>, head: &mut LogHead, event_type: &str, wait: Parked) -> u64 {
    let waiters = head.waiters.entry(event_type.to_owned()).or_default();
    let number = waiters.next;
    waiters.next += 1;
    waiters.parked += 1;
    if let Some(id) = wait.id {
        let place = Place::Ready {
            event_type: event_type.to_owned(),
            number,
        };
        ctx.set(&place_key(id), Json(place));
    }
    ctx.set(&ready_key(event_type, number), Json(wait));
    number
}

fn put_beyond(ctx: &ObjectContext<'_>, groups: &mut Groups, after_sequence: u64, wait: Beyond) {
    let group = groups.entry(after_sequence).or_default();
    let slot = group.next;
    group.next += 1;
    group.parked += 1;
    if let Some(id) = wait.id {
        let place = Place::Beyond {
            after_sequence,
            slot,
        };
        ctx.set(&place_key(id), Json(place));
    }
    ctx.set(&beyond_key(after_sequence, slot), Json(wait));
}

/// Parks a wait for the first `event_type` event (any event for `None`)
/// above `after_sequence`, to be completed through `awakeable_id`, and
/// answers its park id. At [`MAX_PARKED`] the oldest wait is expired
/// first. The caller has looked for the event in the same step, and
/// writes the row with the changed head.
pub(crate) async fn park(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    event_type: Option<&str>,
    after_sequence: u64,
    awakeable_id: String,
) -> Result<u64, TerminalError> {
    let event_type = event_type.unwrap_or(ANY);
    let mut groups = GroupsCache::default();
    if head.parks.parked >= MAX_PARKED {
        expire_oldest(ctx, head, &mut groups).await?;
    }
    let id = head.parks.next_id;
    head.parks.next_id += 1;
    head.parks.parked += 1;
    if after_sequence <= head.last_sequence {
        let wait = Parked {
            after_sequence,
            awakeable_id,
            id: Some(id),
        };
        put_ready(ctx, head, event_type, wait);
    } else {
        let wait = Beyond {
            event_type: event_type.to_owned(),
            awakeable_id,
            id: Some(id),
        };
        put_beyond(ctx, groups.get(ctx, head).await?, after_sequence, wait);
    }
    groups.store(ctx, head);
    Ok(id)
}

/// Park `id` has left its place: forget where it was.
fn forget(ctx: &ObjectContext<'_>, head: &mut LogHead, id: u64) {
    ctx.clear(&place_key(id));
    head.parks.parked = head.parks.parked.saturating_sub(1);
    if id == head.parks.oldest {
        head.parks.oldest += 1;
    }
}

/// Takes park `id` out of its place when it is still parked (and, when
/// `awakeable_id` is given, is that wait), answering its awakeable.
async fn take(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    groups: &mut GroupsCache,
    id: u64,
    awakeable_id: Option<&str>,
) -> Result<Option<String>, TerminalError> {
    let Some(place) = ctx.read::<Place>(&place_key(id)).await? else {
        return Ok(None);
    };
    let names = |found: &str, found_id: Option<u64>| {
        found_id == Some(id) && awakeable_id.is_none_or(|wanted| wanted == found)
    };
    let taken = match place {
        Place::Ready { event_type, number } => {
            let key = ready_key(&event_type, number);
            let Some(wait) = ctx.read::<Parked>(&key).await? else {
                return Ok(None);
            };
            if !names(&wait.awakeable_id, wait.id) {
                return Ok(None);
            }
            ctx.clear(&key);
            if let Some(waiters) = head.waiters.get_mut(&event_type) {
                waiters.parked = waiters.parked.saturating_sub(1);
                if waiters.parked == 0 {
                    head.waiters.remove(&event_type);
                }
            }
            wait.awakeable_id
        }
        Place::Beyond {
            after_sequence,
            slot,
        } => {
            let key = beyond_key(after_sequence, slot);
            let Some(wait) = ctx.read::<Beyond>(&key).await? else {
                return Ok(None);
            };
            if !names(&wait.awakeable_id, wait.id) {
                return Ok(None);
            }
            ctx.clear(&key);
            let groups = groups.get(ctx, head).await?;
            if let Some(group) = groups.get_mut(&after_sequence) {
                group.parked = group.parked.saturating_sub(1);
                if group.parked == 0 {
                    groups.remove(&after_sequence);
                }
            }
            wait.awakeable_id
        }
    };
    forget(ctx, head, id);
    Ok(Some(taken))
}

/// Expires the oldest wait still parked (its run answers `Expired`). Ids
/// of waits already gone are skipped, each once.
async fn expire_oldest(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    groups: &mut GroupsCache,
) -> Result<(), TerminalError> {
    while head.parks.oldest < head.parks.next_id {
        let id = head.parks.oldest;
        if let Some(awakeable_id) = take(ctx, head, groups, id, None).await? {
            let expired = TerminalError::new_with_code(
                EVICTED,
                format!("expired: {MAX_PARKED} newer waits are parked"),
            );
            ctx.reject_awakeable(&awakeable_id, expired);
            return Ok(());
        }
        head.parks.oldest = id + 1;
    }
    Ok(())
}

/// Removes park `id` if it is still parked and is the wait of
/// `awakeable_id` (its run's park expired); answers whether it was. The
/// caller writes the row when it was.
pub(crate) async fn unpark(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    id: u64,
    awakeable_id: &str,
) -> Result<bool, TerminalError> {
    let mut groups = GroupsCache::default();
    let taken = take(ctx, head, &mut groups, id, Some(awakeable_id)).await?;
    groups.store(ctx, head);
    Ok(taken.is_some())
}

/// The ready waits of `event_type`, with their slot numbers.
async fn ready_of<C: ReadState>(
    ctx: &C,
    event_type: &str,
    waiters: &Waiters,
) -> Result<Vec<(u64, Parked)>, TerminalError> {
    let numbers: Vec<u64> = (waiters.first..waiters.next).collect();
    let keys: Vec<String> = numbers.iter().map(|&n| ready_key(event_type, n)).collect();
    let found = in_order(keys.iter().map(|key| ctx.read::<Parked>(key))).await?;
    Ok(numbers
        .into_iter()
        .zip(found)
        .filter_map(|(number, parked)| parked.map(|parked| (number, parked)))
        .collect())
}

/// The waits of the group beyond the log at `after_sequence`, with slots.
async fn group_of<C: ReadState>(
    ctx: &C,
    after_sequence: u64,
    group: &Group,
) -> Result<Vec<(u64, Beyond)>, TerminalError> {
    let slots: Vec<u64> = (0..group.next).collect();
    let keys: Vec<String> = slots
        .iter()
        .map(|&slot| beyond_key(after_sequence, slot))
        .collect();
    let found = in_order(keys.iter().map(|key| ctx.read::<Beyond>(key))).await?;
    Ok(slots
        .into_iter()
        .zip(found)
        .filter_map(|(slot, wait)| wait.map(|wait| (slot, wait)))
        .collect())
}

/// Completes the waits `event` satisfies, moves the waits whose threshold
/// the log just reached to the ready slots and, when `ends` (the event
/// ends the process), rejects all the others with `AlreadyTerminal`. Call
/// it after the event and the row are written (the head already at
/// `event.sequence`), so a woken waiter reads them; answers whether the
/// head changed (the caller writes the row again).
pub(crate) async fn settle(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    event: &ProcessEvent,
    ends: bool,
) -> Result<bool, TerminalError> {
    let mut changed = false;
    let mut groups = GroupsCache::default();
    for awaited in [event.event_type.as_str(), ANY] {
        let Some(waiters) = head.waiters.remove(awaited) else {
            continue;
        };
        changed = true;
        for (number, wait) in ready_of(ctx, awaited, &waiters).await? {
            ctx.clear(&ready_key(awaited, number));
            if wait.after_sequence < event.sequence {
                ctx.resolve_awakeable(&wait.awakeable_id, Json(event.clone()));
                if let Some(id) = wait.id {
                    forget(ctx, head, id);
                }
            } else {
                // Parked past the head by the previous release: it moves
                // beyond the log, once.
                let moved = Beyond {
                    event_type: awaited.to_owned(),
                    awakeable_id: wait.awakeable_id,
                    id: wait.id,
                };
                put_beyond(
                    ctx,
                    groups.get(ctx, head).await?,
                    wait.after_sequence,
                    moved,
                );
            }
        }
    }
    let reached = event.sequence;
    // The smallest threshold as it stands now (a wait moved beyond the log
    // just above may have lowered it).
    let first = match &groups.groups {
        Some(groups) => groups.keys().next().copied(),
        None => head.parks.beyond,
    };
    if first.is_some_and(|first| first <= reached) {
        changed = true;
        let taken = groups.get(ctx, head).await?;
        let due: Vec<u64> = taken.range(..=reached).map(|(&after, _)| after).collect();
        let mut moving = Vec::new();
        for after in due {
            if let Some(group) = taken.remove(&after) {
                moving.push((after, group));
            }
        }
        for (after, group) in moving {
            for (slot, wait) in group_of(ctx, after, &group).await? {
                ctx.clear(&beyond_key(after, slot));
                let ready = Parked {
                    after_sequence: after,
                    awakeable_id: wait.awakeable_id,
                    id: wait.id,
                };
                put_ready(ctx, head, &wait.event_type, ready);
            }
        }
    }
    if ends {
        changed |= reject_all(ctx, head, &mut groups).await?;
    }
    groups.store(ctx, head);
    Ok(changed)
}

/// Rejects every wait still parked with `AlreadyTerminal`; answers whether
/// there was any.
async fn reject_all(
    ctx: &ObjectContext<'_>,
    head: &mut LogHead,
    groups: &mut GroupsCache,
) -> Result<bool, TerminalError> {
    let ended = || terminal(ProcessError::terminal(ctx.key()));
    let any = !head.waiters.is_empty() || head.parks.beyond.is_some();
    for (event_type, waiters) in std::mem::take(&mut head.waiters) {
        for (number, wait) in ready_of(ctx, &event_type, &waiters).await? {
            ctx.reject_awakeable(&wait.awakeable_id, ended());
            ctx.clear(&ready_key(&event_type, number));
            if let Some(id) = wait.id {
                ctx.clear(&place_key(id));
            }
        }
    }
    if head.parks.beyond.is_some() {
        let taken = std::mem::take(groups.get(ctx, head).await?);
        for (after, group) in taken {
            for (slot, wait) in group_of(ctx, after, &group).await? {
                ctx.reject_awakeable(&wait.awakeable_id, ended());
                ctx.clear(&beyond_key(after, slot));
                if let Some(id) = wait.id {
                    ctx.clear(&place_key(id));
                }
            }
        }
    }
    head.parks.parked = 0;
    head.parks.oldest = head.parks.next_id;
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Heads and parks the previous release stored still read.
    #[test]
    fn the_previous_release_stored_waits_still_read() {
        let head: LogHead = serde_json::from_value(serde_json::json!({
            "last_sequence": 3,
            "counts": { "note": 3 },
            "wakes": 0,
            "waiters": { "note": { "first": 2, "next": 5, "parked": 2 } }
        }))
        .expect("an old head");
        assert_eq!(head.parks, Parks::default());
        assert_eq!(
            head.waiters.get("note"),
            Some(&Waiters {
                first: 2,
                next: 5,
                parked: 2
            })
        );
        let parked: Parked = serde_json::from_value(serde_json::json!({
            "after_sequence": 9, "awakeable_id": "sign_1abc"
        }))
        .expect("an old park");
        assert_eq!((parked.after_sequence, parked.id), (9, None));
    }

    #[test]
    fn a_head_without_parks_is_stored_as_before() {
        let json = serde_json::to_value(LogHead::default()).expect("a head");
        assert!(json.get("parks").is_none(), "{json}");
        assert!(json.get("waiters").is_none(), "{json}");
    }

    #[test]
    fn places_and_groups_round_trip() {
        let place = Place::Beyond {
            after_sequence: 7,
            slot: 2,
        };
        let back: Place =
            serde_json::from_value(serde_json::to_value(&place).expect("a place")).expect("read");
        assert!(matches!(
            back,
            Place::Beyond {
                after_sequence: 7,
                slot: 2
            }
        ));
        let mut groups = Groups::new();
        groups.insert(1_000_000, Group { next: 3, parked: 1 });
        let back: Groups =
            serde_json::from_str(&serde_json::to_string(&groups).expect("groups")).expect("read");
        assert_eq!(
            back.get(&1_000_000).map(|g| (g.next, g.parked)),
            Some((3, 1))
        );
    }
}
