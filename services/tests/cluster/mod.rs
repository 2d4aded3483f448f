//! A three-node cluster on loopback with the registry endpoint registered,
//! shared by the tests of one binary.

#![allow(dead_code)] // each test binary uses a different part

use std::time::{Duration, Instant};

use restate_process_registry::testing::support::external;
use restate_process_registry::{ProcessRegistry, RestateProcessRegistry};
use restate_process_registry_services::local_cluster::LocalCluster;
use restate_process_registry_services::serve;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Nodes of the test cluster.
pub const NODES: usize = 3;

/// A cluster serving the registry endpoint (an in-process task).
pub struct Stack {
    pub cluster: LocalCluster,
    pub endpoint: JoinHandle<()>,
}

impl Stack {
    /// Starts the cluster and the endpoint, registers it, and waits until a
    /// write goes through every node's ingress.
    pub async fn start() -> Self {
        let started = Instant::now();
        let mut cluster = LocalCluster::start(NODES)
            .await
            .expect("the cluster starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}/", listener.local_addr().expect("an address"));
        let endpoint = tokio::spawn(serve(listener));
        cluster
            .register_deployment(&url)
            .await
            .expect("the deployment registers");
        for ingress in cluster.ingress_urls() {
            writable(&ingress, Duration::from_secs(60)).await;
        }
        eprintln!("cluster of {NODES} ready in {:?}", started.elapsed());
        Self { cluster, endpoint }
    }
}

/// Waits until a registration through `ingress` is acknowledged; returns
/// how long that took.
pub async fn writable(ingress: &str, patience: Duration) -> Duration {
    let registry = RestateProcessRegistry::connect(ingress).expect("a valid url");
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let probe = restate_process_registry::testing::support::unique_id(&format!("probe-{n}"));
        match registry.register_process(external(&probe)).await {
            Ok(_) => return started.elapsed(),
            Err(err) => {
                assert!(
                    started.elapsed() < patience,
                    "{ingress} never took a write: {err}"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
}
