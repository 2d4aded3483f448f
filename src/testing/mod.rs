//! The conformance suite: public vectors every [`ProcessRegistry`] must pass.
//!
//! Each vector is an `async fn(&ConformanceTarget)` that panics on a
//! violation. Vectors use ids under a unique per-run prefix and only look at
//! their own ids, so they run against a shared, non-empty registry. Vectors
//! that move the clock or prune run alone ([`Exclusivity::Alone`]).
//! [`conformance_tests!`](crate::conformance_tests) turns the whole suite
//! into `#[tokio::test]`s for one target.

pub mod concurrency;
pub mod events;
pub mod grants;
pub mod leases;
pub mod limits;
pub mod listing;
pub mod prune;
pub mod registration;
pub mod row_facts;
#[doc(hidden)]
pub mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{unix_now_ms, Clock, ManualClock};
use crate::registry::ProcessRegistry;

/// Time as the registry under test sees it, and a way to let it pass.
#[async_trait]
pub trait ConformanceClock: Send + Sync {
    /// The registry's current time.
    fn now_ms(&self) -> u64;
    /// Lets at least `by_ms` of registry time pass.
    async fn advance(&self, by_ms: u64);
}

#[async_trait]
impl ConformanceClock for ManualClock {
    fn now_ms(&self) -> u64 {
        Clock::now_ms(self)
    }

    async fn advance(&self, by_ms: u64) {
        ManualClock::advance(self, by_ms);
    }
}

/// Wall time: advancing sleeps. For registries on the system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

#[async_trait]
impl ConformanceClock for WallClock {
    fn now_ms(&self) -> u64 {
        unix_now_ms()
    }

    async fn advance(&self, by_ms: u64) {
        tokio::time::sleep(Duration::from_millis(by_ms)).await;
    }
}

/// A registry under test and its clock.
#[derive(Clone)]
pub struct ConformanceTarget {
    /// The registry under test; may be shared with other vectors.
    pub registry: Arc<dyn ProcessRegistry>,
    /// Its clock.
    pub clock: Arc<dyn ConformanceClock>,
}

impl std::fmt::Debug for ConformanceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConformanceTarget")
            .field("durability", &self.registry.durability_tier())
            .finish_non_exhaustive()
    }
}

/// Whether a vector may run beside others on the same registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Exclusivity {
    /// Runs concurrently with other shared vectors.
    Shared,
    /// Moves the clock or prunes: nothing else may run meanwhile.
    Alone,
}

/// Orders shared and lone vectors within one test binary.
#[doc(hidden)]
pub fn gate() -> &'static tokio::sync::RwLock<()> {
    static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
    &GATE
}

/// Held while a vector runs; keeps lone vectors apart from everything else.
#[derive(Debug)]
#[doc(hidden)]
pub enum GateGuard {
    /// Held by a shared vector.
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    /// Held by a lone vector.
    Alone(tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// Waits until a vector of this exclusivity may run.
#[doc(hidden)]
pub async fn enter(exclusivity: Exclusivity) -> GateGuard {
    match exclusivity {
        Exclusivity::Shared => GateGuard::Shared(gate().read().await),
        Exclusivity::Alone => GateGuard::Alone(gate().write().await),
    }
}

/// Expands to one `#[tokio::test]` per conformance vector, run against the
/// [`ConformanceTarget`](crate::testing::ConformanceTarget) an async
/// constructor builds:
///
/// ```
/// use std::sync::Arc;
///
/// use restate_process_registry::testing::{ConformanceTarget, WallClock};
/// use restate_process_registry::InMemoryProcessRegistry;
///
/// async fn memory_target() -> ConformanceTarget {
///     ConformanceTarget {
///         registry: Arc::new(InMemoryProcessRegistry::new()),
///         clock: Arc::new(WallClock),
///     }
/// }
///
/// restate_process_registry::conformance_tests!(memory_target);
/// # fn main() {}
/// ```
///
/// The argument is anything callable as `(ctor)().await` from the invoking
/// module (a path to an `async fn`, or a closure returning a future). It is
/// called once per test, so it may hand every test the same shared
/// registry. Each test holds [`enter`](crate::testing::enter) with its
/// vector's [`Exclusivity`](crate::testing::Exclusivity)
/// while the vector runs. Tests land in a `conformance` module, one
/// submodule per area; the invoking crate needs `tokio` with the `macros`
/// and `rt-multi-thread` features.
///
/// This macro is the single list of vectors and their exclusivity.
#[macro_export]
macro_rules! conformance_tests {
    // Internal: one test per listed vector, grouped by area module.
    (@suite $ctor:expr; $($area:ident { $($exclusivity:ident $vector:ident),* $(,)? })*) => {
        async fn __conformance_target() -> $crate::testing::ConformanceTarget {
            ($ctor)().await
        }

        mod conformance {
            $(
                mod $area {
                    $(
                        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn $vector() {
                            let target = super::super::__conformance_target().await;
                            let _gate = $crate::testing::enter(
                                $crate::testing::Exclusivity::$exclusivity,
                            )
                            .await;
                            $crate::testing::$area::$vector(&target).await;
                        }
                    )*
                }
            )*
        }
    };
    ($ctor:expr $(,)?) => {
        $crate::conformance_tests! {
            @suite $ctor;
            registration {
                Shared register_stores_running_record,
                Shared reregistration_is_idempotent,
                Shared conflicting_registration_is_refused,
                Shared invalid_registrations_are_refused,
                Shared only_core_event_types_are_reserved,
            }
            row_facts {
                Shared external_ref_is_set_once,
                Shared first_started_first_writer_wins,
                Shared first_started_refuses_rivals_of_a_live_lease,
                Shared abandon_request_first_writer_wins,
                Shared waits_are_set_and_cleared,
                Shared get_and_try_get_agree,
                Shared row_facts_unknown_process,
            }
            events {
                Shared append_assigns_gapless_sequences,
                Shared append_refuses_invalid_events,
                Shared replay_key_deduplicates,
                Shared append_after_terminal_is_refused,
                Shared terminal_semantics_end_the_process,
                Shared complete_process_writes_terminal_event,
                Shared wake_semantics_materialize_and_deliver,
                Shared wake_selectors_cover_the_matrix,
                Shared replayed_appends_repeat_their_delivery,
                Shared cancel_requests_need_a_replay_key,
                Shared wake_events_track_acks,
                Shared counts_and_tails_agree_with_log,
                Shared events_unknown_process,
            }
            leases {
                Shared claim_acquires_then_reports_busy,
                Shared same_incarnation_reentry_extends,
                Shared renew_extends_and_refuses_superseded,
                Shared complete_lease_releases_idempotently,
                Shared reclaim_compares_and_sets,
                Shared reclaim_needs_a_provably_dead_holder,
                Shared zero_ttl_lease_is_already_expired,
                Shared claim_refusals_change_nothing,
                Alone expired_lease_is_claimable,
                Shared leases_unknown_process,
            }
            grants {
                Shared grants_upsert_and_list,
                Shared revoke_is_idempotent,
                Shared zero_grant_process,
                Shared transfer_moves_all_or_nothing,
                Shared live_grants_drop_terminal,
                Shared delete_session_reports_and_clears,
                Shared grants_unknown_process,
                Shared has_grant_on_unknown_is_false,
            }
            listing {
                Shared list_filters_by_status,
                Shared list_filters_by_waiting,
                Shared list_filters_by_origin_and_identity,
                Alone list_filters_by_created_at,
                Shared list_non_terminal_in_id_order,
            }
            limits {
                Shared documents_at_the_depth_limit_round_trip,
                Shared strings_at_their_limits,
                Shared scope_ids_never_collide,
                Shared grants_per_process_are_capped,
                Shared derived_outcomes_are_not_held_to_text_limits,
            }
            prune {
                Alone prune_deletes_old_terminal_rows,
            }
            concurrency {
                Shared concurrent_appends_are_gapless,
                Shared concurrent_replays_write_once,
                Shared concurrent_claims_have_one_winner,
                Shared concurrent_completions_have_one_outcome,
            }
        }
    };
}
