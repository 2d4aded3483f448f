//! [`KeyedSet`]: a set of string members kept in one object's state so that
//! no state value grows with the set.
//!
//! In this crate (and in `ListCursor::slot` of the library's wire) "slot"
//! means only this: a member's numbered position in a keyed set.
//!
//! Each member sits in a numbered slot (`{prefix}/s/{slot}`) and knows its
//! slot (`{prefix}/m/{member}`); a small head (`{prefix}/head`) counts slots
//! and heads a free list threaded through emptied slots, which inserts reuse.
//! Insert and remove read two or three keys and write three, whatever the
//! size; a page reads the slots in `[cursor, cursor + limit)` in one round
//! trip. Slots are never renumbered, so a member present for a whole paged
//! read is seen exactly once; one inserted meanwhile may land behind the
//! cursor and be missed, as with any concurrent read.

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

    /// Removes `member`; answers the slot it left, if it was there.
    pub(crate) async fn take(
        &self,
        ctx: &ObjectContext<'_>,
        member: &str,
    ) -> Result<Option<u64>, TerminalError> {
        let (head_key, member_key) = (self.head_key(), self.member_key(member));
        let (head, slot) = (ctx.read::<Head>(&head_key), ctx.read::<u64>(&member_key));
        let mut head = head.await?.unwrap_or_default();
        let Some(slot) = slot.await? else {
            return Ok(None);
        };
        ctx.set(&self.slot_key(slot), Json(Slot::Free(head.free)));
        ctx.clear(&member_key);
        head.free = Some(slot);
        head.len = head.len.saturating_sub(1);
        ctx.set(&head_key, Json(head));
        Ok(Some(slot))
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
        let keys: Vec<String> = (cursor..end).map(|slot| self.slot_key(slot)).collect();
        let slots = in_order(keys.iter().map(|key| ctx.read::<Slot>(key))).await?;
        Ok(KeyedSetPage {
            members: slots
                .into_iter()
                .filter_map(|slot| match slot {
                    Some(Slot::Member(member)) => Some(member),
                    _ => None,
                })
                .collect(),
            next: (end < head.slots).then_some(end),
        })
    }
}
