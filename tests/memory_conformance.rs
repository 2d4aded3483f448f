//! The conformance suite against the in-memory registry.
//!
//! Every test shares one registry and one manual clock, so the vectors run
//! against a non-empty registry the way they will against a shared store.

use std::sync::{Arc, OnceLock};

use restate_process_registry::testing::ConformanceTarget;
use restate_process_registry::{InMemoryProcessRegistry, ManualClock};

/// 2023-11-14T22:13:20Z: any fixed start works; the clock only moves when a
/// lone vector advances it.
const START_MS: u64 = 1_700_000_000_000;

async fn memory_target() -> ConformanceTarget {
    static TARGET: OnceLock<ConformanceTarget> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let clock = ManualClock::new(START_MS);
            let registry = InMemoryProcessRegistry::with_clock(Arc::new(clock.clone()));
            ConformanceTarget {
                registry: Arc::new(registry),
                clock: Arc::new(clock),
            }
        })
        .clone()
}

restate_process_registry::conformance_tests!(memory_target);
