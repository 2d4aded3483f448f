//! [`KeyedSet`]: a set of string members kept in one object's state so that
//! no state value grows with the set.
//!
//! In this crate (and in `ListCursor::slot` of the library's wire) "slot"
//! means only this: a member's numbered position in a keyed set.
//!
//! Each member sits in a numbered slot (`{prefix}/s/{slot}`) and knows its
//! slot (`{prefix}/m/{member}`); a small head (`{prefix}/head`) counts slots
//! and members. Insert and remove read two or three keys and write three or
//! four, whatever the size; a page reads the slots in `[cursor, cursor +
//! limit)` in one round trip.
//!
//! ## Dense: a page never walks empty slots
//!
//! The set is kept dense (`slots == len`): an insert appends at slot
//! `len`, and a remove moves the member of the last slot into the slot it
//! freed (swap-remove), so after any number of removals a page of `limit`
//! slots holds `limit` members (or ends the set). The move is one more
//! read and two more writes; [`KeyedSet::take`] says which member moved
//! where, so an index keyed by slot (the directory's chunks) moves its
//! entry in the same handler.
//!
//! A set written by an earlier release has a free list threaded through its
//! emptied slots (`head.free`). It still reads and works: an insert takes a
//! free slot first; a removal swap-removes when the last slot holds a
//! member, and otherwise (the last slot is itself a hole on the list,
//! which a singly linked list cannot unlink) pushes the freed slot onto the
//! list as before. Once inserts have refilled every hole the set is dense
//! and stays so. Until then its holes remain: such a set shrinks as it is
//! refilled, not before (no compaction pass is run over old sets).
//!
//! ## What a paged read concurrent with writes may see
//!
//! A member present for a whole read moves only *down* (from the last
//! slot into a hole). Hence:
//! - walking **up** (`page`, listings): a member moved from a slot not yet
//!   read into one already read is **missed** by that read; no member is
//!   seen twice unless it moved from a slot already read into one not yet
//!   read, which a move downwards cannot do. Inserts land at the top and
//!   are seen if the walk has not ended.
//! - walking **down** from the top (`page_below`, used by prune and session
//!   delete): every member present for the whole walk is seen at least
//!   once, since a member below the cursor stays below it; one that moved
//!   from above the cursor (already read) into a hole below it is seen
//!   again, so a walk that acts on members must be idempotent per member.

use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::state::{in_order, ReadState};

/// Counts and the free list of one set.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Head {
    /// Slots ever used: `0..slots` may hold members.
    pub(crate) slots: u64,
    /// Members now.
    pub(crate) len: u64,
    /// First emptied slot, if any.
    free: Option<u64>,
}

/// One slot: a member, or a link in the free list.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Slot {
    Member(String),
    Free(Option<u64>),
}

/// What a removal did: the slot the member left and, in a dense set, the
/// member moved from the last slot into it (`(member, its old slot)`).
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    /// The slot the removed member held.
    pub(crate) slot: u64,
    /// The member now in that slot, and the slot it came from.
    pub(crate) moved: Option<(String, u64)>,
}

/// One page of members in slot order.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyedSetPage {
    /// The members found.
    pub(crate) members: Vec<String>,
    /// Where the next page starts, when slots remain.
    pub(crate) next: Option<u64>,
}

/// A named set inside an object's state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedSet<'p> {
    prefix: &'p str,
}

fn corrupt(what: &str) -> TerminalError {
    TerminalError::new_with_code(500, format!("keyed set is inconsistent: {what}"))
}

impl<'p> KeyedSet<'p> {
    /// The set stored under `prefix` (distinct sets need distinct prefixes).
    pub(crate) const fn new(prefix: &'p str) -> Self {
        Self { prefix }
    }

    fn head_key(&self) -> String {
        format!("{}/head", self.prefix)
    }

    fn slot_key(&self, slot: u64) -> String {
        format!("{}/s/{slot}", self.prefix)
    }

    fn member_key(&self, member: &str) -> String {
        format!("{}/m/{member}", self.prefix)
    }

    /// Counts of the set.
    pub(crate) async fn head<C: ReadState>(&self, ctx: &C) -> Result<Head, TerminalError> {
        Ok(ctx.read(&self.head_key()).await?.unwrap_or_default())
    }

    /// The slot `member` sits in, if present.
    pub(crate) async fn slot_of<C: ReadState>(
        &self,
        ctx: &C,
        member: &str,
    ) -> Result<Option<u64>, TerminalError> {
        ctx.read(&self.member_key(member)).await
    }

    /// Adds `member`; false when it was already there.
    pub(crate) async fn insert(
        &self,
        ctx: &ObjectContext<'_>,
        member: &str,
    ) -> Result<bool, TerminalError> {
        Ok(self.place(ctx, member).await?.1)
    }

    /// Adds `member` if absent; answers its slot and whether it is new.
    pub(crate) async fn place(
        &self,
        ctx: &ObjectContext<'_>,
        member: &str,
    ) -> Result<(u64, bool), TerminalError> {
        let (head_key, member_key) = (self.head_key(), self.member_key(member));
        let (head, existing) = (ctx.read::<Head>(&head_key), ctx.read::<u64>(&member_key));
        let mut head = head.await?.unwrap_or_default();
        if let Some(slot) = existing.await? {
            return Ok((slot, false));
        }
        let slot = match head.free {
            Some(free) => match ctx.read::<Slot>(&self.slot_key(free)).await? {
                Some(Slot::Free(next)) => {
                    head.free = next;
                    free
                }
                _ => return Err(corrupt("a free-list slot is not free")),
            },
            None => {
                head.slots += 1;
                head.slots - 1
            }
        };
        head.len += 1;
        ctx.set(&self.slot_key(slot), Json(Slot::Member(member.to_owned())));
        ctx.set(&member_key, Json(slot));
        ctx.set(&head_key, Json(head));
        Ok((slot, true))
    }

    /// Removes `member`; false when it was not there.
    pub(crate) async fn remove(
        &self,
        ctx: &ObjectContext<'_>,
        member: &str,
    ) -> Result<bool, TerminalError> {
        Ok(self.take(ctx, member).await?.is_some())
    }

    /// Removes `member`; answers the slot it left and, when another member
    /// was moved into that slot to keep the set dense, which one and from
    /// where (see the module docs).
    pub(crate) async fn take(
        &self,
        ctx: &ObjectContext<'_>,
        member: &str,
    ) -> Result<Option<Taken>, TerminalError> {
        let (head_key, member_key) = (self.head_key(), self.member_key(member));
        let (head, slot) = (ctx.read::<Head>(&head_key), ctx.read::<u64>(&member_key));
        let mut head = head.await?.unwrap_or_default();
        let Some(slot) = slot.await? else {
            return Ok(None);
        };
        ctx.clear(&member_key);
        head.len = head.len.saturating_sub(1);
        let last = head.slots.saturating_sub(1);
        let last_key = self.slot_key(last);
        let tail = if slot < last {
            ctx.read::<Slot>(&last_key).await?
        } else {
            None
        };
        let moved = match tail {
            // Swap-remove: the last member takes the freed slot.
            Some(Slot::Member(tail)) => {
                ctx.set(&self.slot_key(slot), Json(Slot::Member(tail.clone())));
                ctx.set(&self.member_key(&tail), Json(slot));
                ctx.clear(&last_key);
                head.slots = last;
                Some((tail, last))
            }
            // A set written before sets were kept dense, whose last slot is
            // a hole on its free list (which cannot be unlinked from the
            // middle): thread the freed slot onto the list as then.
            Some(Slot::Free(_)) => {
                ctx.set(&self.slot_key(slot), Json(Slot::Free(head.free)));
                head.free = Some(slot);
                None
            }
            None if slot < last => return Err(corrupt("the last slot is empty")),
            // The last slot itself.
            None => {
                ctx.clear(&last_key);
                head.slots = last;
                None
            }
        };
        ctx.set(&head_key, Json(head));
        Ok(Some(Taken { slot, moved }))
    }

    /// The members in slots `[lo, hi)` where `lo = hi - limit` (clamped to
    /// the set), for walks from the top down; `next` is `lo` while slots
    /// remain below. A walk from the top sees every member present for
    /// the whole walk, even while members are removed (see the module
    /// docs).
    pub(crate) async fn page_below<C: ReadState>(
        &self,
        ctx: &C,
        hi: u64,
        limit: u64,
    ) -> Result<KeyedSetPage, TerminalError> {
        let head = self.head(ctx).await?;
        let hi = hi.min(head.slots);
        let lo = hi.saturating_sub(limit.max(1));
        let mut page = self.slots_in(ctx, lo, hi).await?;
        page.next = (lo > 0).then_some(lo);
        Ok(page)
    }

    /// Empties the set and answers its members. Reads every slot: only for
    /// sets known to be small.
    pub(crate) async fn take_all(
        &self,
        ctx: &ObjectContext<'_>,
    ) -> Result<Vec<String>, TerminalError> {
        let head = self.head(ctx).await?;
        let page = self.slots_in(ctx, 0, head.slots).await?;
        for slot in 0..head.slots {
            ctx.clear(&self.slot_key(slot));
        }
        for member in &page.members {
            ctx.clear(&self.member_key(member));
        }
        ctx.clear(&self.head_key());
        Ok(page.members)
    }

    async fn slots_in<C: ReadState>(
        &self,
        ctx: &C,
        lo: u64,
        hi: u64,
    ) -> Result<KeyedSetPage, TerminalError> {
        let keys: Vec<String> = (lo..hi).map(|slot| self.slot_key(slot)).collect();
        let slots = in_order(keys.iter().map(|key| ctx.read::<Slot>(key))).await?;
        Ok(KeyedSetPage {
            members: slots
                .into_iter()
                .filter_map(|slot| match slot {
                    Some(Slot::Member(member)) => Some(member),
                    _ => None,
                })
                .collect(),
            next: None,
        })
    }

    /// The members in slots `[cursor, cursor + limit)`.
    pub(crate) async fn page<C: ReadState>(
        &self,
        ctx: &C,
        cursor: u64,
        limit: u64,
    ) -> Result<KeyedSetPage, TerminalError> {
        let head = self.head(ctx).await?;
        let end = cursor.saturating_add(limit.max(1)).min(head.slots);
        let mut page = self.slots_in(ctx, cursor.min(end), end).await?;
        page.next = (end < head.slots).then_some(end);
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::{Head, Slot};

    /// A head and slots the previous release stored (with a free list)
    /// still read; a head without one is the dense shape.
    #[test]
    fn heads_and_slots_of_the_previous_release_read() {
        let head: Head = serde_json::from_str(r#"{"slots":5,"len":3,"free":4}"#).expect("old head");
        assert_eq!((head.slots, head.len, head.free), (5, 3, Some(4)));
        let dense: Head = serde_json::from_str(r#"{"slots":3,"len":3,"free":null}"#).expect("head");
        assert_eq!(dense.free, None);
        let free: Slot = serde_json::from_str(r#"{"Free":2}"#).expect("old free slot");
        assert!(matches!(free, Slot::Free(Some(2))));
        let member: Slot = serde_json::from_str(r#"{"Member":"m"}"#).expect("member slot");
        assert!(matches!(member, Slot::Member(m) if m == "m"));
    }
}
