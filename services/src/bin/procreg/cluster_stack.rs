//! A local cluster serving an endpoint, for `serve --nodes` and
//! `bench --nodes`: the cluster of child processes plus the endpoint task.

use std::time::{Duration, Instant};

use restate_process_registry::{ProcessRegistry, RestateProcessRegistry};
use restate_process_registry_services::local_cluster::LocalCluster;
use restate_process_registry_services::serve_endpoint;
use restate_sdk::endpoint::Endpoint;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::common::{spinner, CliError, CliResult, Context};

/// How long a fresh cluster gets to take its first write on every node.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// `nodes` restate-servers on loopback with `endpoint` registered.
pub struct ClusterStack {
    pub cluster: LocalCluster,
    endpoint: JoinHandle<()>,
}

impl ClusterStack {
    /// Starts the cluster and the endpoint, registers it, and waits until
    /// every node's ingress acknowledges a read-your-write.
    /// The endpoint runs on `runtime`.
    pub async fn start(
        nodes: usize,
        endpoint: Endpoint,
        runtime: &Handle,
    ) -> CliResult<(Self, Duration)> {
        let started = Instant::now();
        let spin = spinner(format!("starting a {nodes}-node restate-server cluster"));
        let stack = Self::start_quietly(nodes, endpoint, runtime).await;
        spin.finish_and_clear();
        Ok((stack?, started.elapsed()))
    }

    async fn start_quietly(nodes: usize, endpoint: Endpoint, runtime: &Handle) -> CliResult<Self> {
        let mut cluster = LocalCluster::start(nodes)
            .await
            .context("starting the cluster")?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the endpoint")?;
        let url = format!(
            "http://{}/",
            listener
                .local_addr()
                .context("reading the endpoint address")?
        );
        let endpoint = runtime.spawn(serve_endpoint(endpoint, listener));
        cluster
            .register_deployment(&url)
            .await
            .context("registering the endpoint")?;
        for ingress in cluster.ingress_urls() {
            ready(&ingress).await?;
        }
        Ok(Self { cluster, endpoint })
    }

    /// Node 1's ingress (every node's ingress serves the same registry).
    pub fn ingress_url(&self) -> String {
        self.cluster.ingress_urls().swap_remove(0)
    }
}

impl Drop for ClusterStack {
    fn drop(&mut self) {
        self.endpoint.abort();
    }
}

/// Waits until `ingress` answers a registry read (partitions have leaders).
async fn ready(ingress: &str) -> CliResult<()> {
    let registry = RestateProcessRegistry::connect(ingress).context("connecting to ingress")?;
    let started = Instant::now();
    loop {
        match registry.try_get_process("procreg-ready-probe").await {
            Ok(_) => return Ok(()),
            Err(err) if started.elapsed() > READY_WITHIN => {
                return Err(CliError::new(format!(
                    "{ingress} never became ready: {err}"
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
