//! The conformance suite against the Restate registry on a three-node
//! cluster, each test talking to one node's ingress in turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use restate_process_registry::testing::{ConformanceTarget, WallClock};
use restate_process_registry::RestateProcessRegistry;

/// Nodes of the test cluster.
const NODES: usize = 3;

/// The cluster's ingress URLs; the cluster lives on its own runtime thread
/// for the whole binary.
fn ingresses() -> Vec<String> {
    restate_process_registry_testkit::shared::cluster(NODES)
}

async fn cluster_target() -> ConformanceTarget {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let urls = ingresses();
    let ingress = &urls[NEXT.fetch_add(1, Ordering::Relaxed) % urls.len()];
    ConformanceTarget {
        registry: Arc::new(RestateProcessRegistry::connect(ingress).expect("a valid url")),
        clock: Arc::new(WallClock),
    }
}

restate_process_registry::conformance_tests!(cluster_target);
