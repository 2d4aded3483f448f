//! The conformance suite against the Restate registry on a three-node
//! cluster, each test talking to one node's ingress in turn.

mod cluster;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use restate_process_registry::testing::{ConformanceTarget, WallClock};
use restate_process_registry::RestateProcessRegistry;

/// The cluster's ingress URLs; the cluster lives on its own runtime thread
/// for the whole binary.
fn ingresses() -> Vec<String> {
    static URLS: OnceLock<Vec<String>> = OnceLock::new();
    URLS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async move {
                let stack = cluster::Stack::start().await;
                let _ = tx.send(stack.cluster.ingress_urls());
                std::future::pending::<()>().await;
                drop(stack);
            });
        });
        rx.recv().expect("the cluster thread reports its urls")
    })
    .clone()
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
