//! [`ClusterStack`]: a [`LocalCluster`] with an endpoint served to it and
//! registered, for `procreg serve --nodes`/`bench --nodes` and the cluster
//! tests (which used to carry a copy each).

use std::time::{Duration, Instant};

use restate_process_registry::{
    ProcessInput, ProcessProvenance, ProcessRegistration, ProcessRegistry, RestateProcessRegistry,
};
use restate_process_registry_services::serve_endpoint;
use restate_sdk::endpoint::Endpoint;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::local_cluster::LocalCluster;
use crate::local_server::LocalServerError;
use crate::local_stack::bind_endpoint;

/// How long a fresh cluster gets to answer a read on every node.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// `nodes` restate-servers on loopback with an endpoint registered.
#[derive(Debug)]
pub struct ClusterStack {
    /// The nodes, to kill, restart or ask for partition leaders.
    pub cluster: LocalCluster,
    endpoint: JoinHandle<()>,
}

impl ClusterStack {
    /// Starts the cluster, serves `endpoint` to it on `runtime`, registers
    /// it, and waits until every node's ingress answers a registry read
    /// (its partitions have leaders).
    pub async fn start(
        nodes: usize,
        endpoint: Endpoint,
        runtime: &Handle,
    ) -> Result<Self, LocalServerError> {
        let cluster = LocalCluster::start(nodes).await?;
        let (listener, address) = bind_endpoint().await?;
        let endpoint = runtime.spawn(serve_endpoint(endpoint, listener));
        // Owned from here, so a failure below stops the endpoint too.
        let mut stack = Self { cluster, endpoint };
        stack
            .cluster
            .register_deployment(&format!("http://{address}/"))
            .await?;
        for ingress in stack.cluster.ingress_urls() {
            readable(&ingress).await?;
        }
        Ok(stack)
    }

    /// Node 1's ingress (every node's ingress serves the same registry).
    pub fn ingress_url(&self) -> String {
        self.cluster.ingress_urls().swap_remove(0)
    }

    /// Stops serving the endpoint (the cluster keeps running).
    pub fn stop_endpoint(&self) {
        self.endpoint.abort();
    }
}

impl Drop for ClusterStack {
    fn drop(&mut self) {
        self.endpoint.abort();
    }
}

/// Waits until `ingress` answers a registry read.
async fn readable(ingress: &str) -> Result<(), LocalServerError> {
    let unhealthy = |reason: String| LocalServerError::Unhealthy {
        reason,
        log: Default::default(),
        tail: String::new(),
    };
    let registry = RestateProcessRegistry::connect(ingress)
        .map_err(|err| unhealthy(format!("{ingress} is no ingress URL: {err}")))?;
    let started = Instant::now();
    loop {
        match registry.try_get_process("procreg-ready-probe").await {
            Ok(_) => return Ok(()),
            Err(err) if started.elapsed() > READY_WITHIN => {
                return Err(unhealthy(format!("{ingress} never became ready: {err}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until a registration through `ingress` is acknowledged; answers
/// how long that took, or why it never was within `patience`.
pub async fn writable(ingress: &str, patience: Duration) -> Result<Duration, String> {
    let registry = RestateProcessRegistry::connect(ingress).map_err(|err| err.to_string())?;
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let probe = ProcessRegistration::new(
            format!("probe-{n}-{nanos}"),
            ProcessInput::External {
                metadata: serde_json::json!({ "label": "write probe" }),
            },
            ProcessProvenance::host(),
        );
        match registry.register_process(probe).await {
            Ok(_) => return Ok(started.elapsed()),
            Err(err) if started.elapsed() >= patience => {
                return Err(format!("{ingress} never took a write: {err}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}
