//! `SessionWakes`: one virtual object per session id, indexing the
//! processes whose wake target or undelivered wakes aim at the session, so
//! `delete_session_process_state` knows which processes to visit to clear
//! a wake target aimed at it (it deletes no wake event; a process listed
//! only for its wakes is visited, changed in nothing, and dropped).
//!
//! `ProcessObject` notes itself here before it acknowledges the write that
//! aims a wake at the session, and drops itself when none is left. A leaf:
//! calls nothing. The ids sit in a [`KeyedSet`], so nothing grows per value.

use restate_sdk::prelude::*;

use crate::keyed_set::{KeyedSet, KeyedSetPage};
use restate_process_registry::restate::wire::PAGE_LIMIT;

const HOLDERS: KeyedSet<'static> = KeyedSet::new("holders");

/// The per-session index of wake-holding processes.
#[derive(Debug)]
pub struct SessionWakes;

#[restate_sdk::object(name = "SessionWakes", lazy_state)]
impl SessionWakes {
    /// Notes a process holding wakes aimed at this session.
    #[handler(name = "note", ingress_private)]
    async fn note(&self, ctx: ObjectContext<'_>, process_id: String) -> Result<(), TerminalError> {
        HOLDERS.insert(&ctx, &process_id).await?;
        Ok(())
    }

    /// Forgets a process that holds none any more.
    #[handler(name = "drop", ingress_private)]
    async fn drop(&self, ctx: ObjectContext<'_>, process_id: String) -> Result<(), TerminalError> {
        HOLDERS.remove(&ctx, &process_id).await?;
        Ok(())
    }

    /// One page of the holders in the slots below `hi`, walking down
    /// (`u64::MAX` for the top): the holders a delete drops leave the set
    /// as it walks, and only a walk down sees every holder present for
    /// the whole walk (see [`KeyedSet`]).
    #[handler(name = "holders_below", ingress_private)]
    async fn holders_below(
        &self,
        ctx: SharedObjectContext<'_>,
        hi: u64,
    ) -> Result<Json<(Vec<String>, Option<u64>)>, TerminalError> {
        let KeyedSetPage { members, next } =
            HOLDERS.page_below(&ctx, hi, u64::from(PAGE_LIMIT)).await?;
        Ok(Json((members, next)))
    }

    /// The session delete of the previous release (`delete_session`) asks
    /// for holders page by page from `cursor` and drops each it is given
    /// before it asks again. Holders now leave by swap-remove, so a walk up
    /// would miss those moved behind it: this answers the top page instead
    /// (whatever `cursor`), and a next cursor while more holders remain
    /// than it lists, so that loop still visits every holder and ends.
    #[handler(name = "holders", ingress_private)]
    async fn holders(
        &self,
        ctx: SharedObjectContext<'_>,
        cursor: u64,
    ) -> Result<Json<(Vec<String>, Option<u64>)>, TerminalError> {
        let limit = u64::from(PAGE_LIMIT);
        // A set of the previous release keeps holes until refilled: skip
        // empty pages down to the highest one holding a holder.
        let mut below = u64::MAX;
        let KeyedSetPage { members, next } = loop {
            let page = HOLDERS.page_below(&ctx, below, limit).await?;
            match page.next {
                Some(next) if page.members.is_empty() => below = next,
                _ => break page,
            }
        };
        let next = next.map(|_| cursor.saturating_add(limit));
        Ok(Json((members, next)))
    }
}
