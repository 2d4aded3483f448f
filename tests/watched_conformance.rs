//! The conformance suite through the watched decorator (over the in-memory
//! registry, with a sink attached): wrapping must not change any answer.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use restate_process_registry::testing::ConformanceTarget;
use restate_process_registry::{
    watch_process_registry_with_sink, InMemoryProcessRegistry, ManualClock, ProcessEvent,
    ProcessEventSink,
};

const START_MS: u64 = 1_700_000_000_000;

/// A sink that only counts, so the decorator's sink path runs on every append.
struct Counting(std::sync::atomic::AtomicU64);

#[async_trait]
impl ProcessEventSink for Counting {
    async fn emit(&self, _event: &ProcessEvent) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn watched_target() -> ConformanceTarget {
    static TARGET: OnceLock<ConformanceTarget> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let clock = ManualClock::new(START_MS);
            let inner = InMemoryProcessRegistry::with_clock(Arc::new(clock.clone()));
            let sink = Arc::new(Counting(Default::default()));
            let (registry, _hub) = watch_process_registry_with_sink(Arc::new(inner), Some(sink));
            ConformanceTarget {
                registry,
                clock: Arc::new(clock),
            }
        })
        .clone()
}

restate_process_registry::conformance_tests!(watched_target);
