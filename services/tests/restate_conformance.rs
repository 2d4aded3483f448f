//! The conformance suite against the Restate registry, over ingress to a
//! real restate-server started for this test binary.

mod common;

use std::sync::Arc;

use restate_process_registry::testing::{ConformanceTarget, WallClock};

async fn restate_target() -> ConformanceTarget {
    ConformanceTarget {
        registry: Arc::new(common::registry()),
        clock: Arc::new(WallClock),
    }
}

restate_process_registry::conformance_tests!(restate_target);
