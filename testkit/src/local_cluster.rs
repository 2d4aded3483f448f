//! [`LocalCluster`]: an N-node restate-server cluster on loopback, for
//! tests, `procreg serve --nodes N` and `procreg bench --nodes N`.
//!
//! Every node runs every role (metadata server, admin, worker, log server,
//! ingress) on its own free ports and base dir. Node 1 provisions the
//! cluster; the others join through the metadata client addresses of all
//! nodes. The log is the replicated loglet, metadata is the replicated
//! metadata server, and logs and partitions are replicated on 2 nodes, so
//! the cluster keeps serving when one node dies.
//!
//! To use a real cluster instead, register the endpoint through any node's
//! admin API and point the registry at any node's ingress.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::process::Command;

use crate::local_server::{ensure_restatectl, LocalRestate, LocalServerError};
use crate::ports::Ports;
use crate::run_dir::RunDir;

/// Partitions of a local cluster (as for a single node).
const PARTITIONS: u32 = 4;
/// Copies of every log record and partition.
const REPLICATION: u32 = 2;

/// A restate-server cluster of child processes on loopback.
#[derive(Debug)]
pub struct LocalCluster {
    // Field order: the nodes stop before their ports and dir are released.
    nodes: Vec<LocalRestate>,
    _ports: Ports,
    dir: RunDir,
}

impl LocalCluster {
    /// Starts `size` nodes (at least 2) and waits until every one answers.
    pub async fn start(size: usize) -> Result<Self, LocalServerError> {
        let size = size.max(2);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let io = |context: &str| {
            let context = context.to_owned();
            move |source| LocalServerError::Io { context, source }
        };
        let dir = RunDir::new().map_err(io("creating the cluster's temp dir"))?;
        let reserved = Ports::reserve(size * 3).map_err(io("reserving loopback ports"))?;
        let ports = reserved.ports().to_vec();
        let fabric: Vec<String> = (0..size)
            .map(|i| format!("\"http://127.0.0.1:{}/\"", ports[i * 3]))
            .collect();
        let cluster_name = format!("procreg-{nanos}");
        let mut cluster = Self {
            nodes: Vec::with_capacity(size),
            _ports: reserved,
            dir,
        };
        for i in 0..size {
            let config = node_config(&cluster_name, i + 1, &fabric.join(", "));
            let node = LocalRestate::node(
                cluster.dir.path().join(format!("n{}", i + 1)),
                (ports[i * 3], ports[i * 3 + 1], ports[i * 3 + 2]),
                config,
            )
            .await?;
            cluster.nodes.push(node);
        }
        // All at once: the metadata servers need a quorum to answer.
        for node in &mut cluster.nodes {
            node.launch_node()?;
        }
        for node in &mut cluster.nodes {
            node.wait_node().await?;
        }
        Ok(cluster)
    }

    /// The nodes, node 1 first.
    pub fn nodes(&self) -> &[LocalRestate] {
        &self.nodes
    }

    /// Node `index` (0-based), to kill and restart it.
    pub fn node_mut(&mut self, index: usize) -> Option<&mut LocalRestate> {
        self.nodes.get_mut(index)
    }

    /// Every node's ingress URL.
    pub fn ingress_urls(&self) -> Vec<String> {
        self.nodes.iter().map(LocalRestate::ingress_url).collect()
    }

    /// Registers the endpoint through the first node that accepts it.
    pub async fn register_deployment(
        &mut self,
        endpoint_url: &str,
    ) -> Result<(), LocalServerError> {
        let mut last = None;
        for node in &mut self.nodes {
            if !node.is_running() {
                continue;
            }
            match node.register_deployment(endpoint_url).await {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| LocalServerError::Registration {
            uri: endpoint_url.to_owned(),
            status: 0,
            body: "no node is running".to_owned(),
        }))
    }

    /// Partition leaders per node (0-based index), as restatectl reports
    /// them through the running nodes.
    pub async fn leaders(&mut self) -> Result<BTreeMap<usize, usize>, LocalServerError> {
        let ctl = ensure_restatectl().await?;
        let mut addresses = Vec::new();
        for node in &mut self.nodes {
            if node.is_running() {
                addresses.push(node.fabric_url());
            }
        }
        let mut command = Command::new(&ctl);
        for address in &addresses {
            command.args(["--address", address]);
        }
        let output = command
            .args(["partitions", "list"])
            .output()
            .await
            .map_err(|source| LocalServerError::Io {
                context: format!("running {}", ctl.display()),
                source,
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut leaders = BTreeMap::new();
        for line in text.lines() {
            let columns: Vec<&str> = line.split_whitespace().collect();
            if columns.get(2) != Some(&"Leader") {
                continue;
            }
            // `N2:1`: node 2, generation 1.
            let node = columns
                .get(1)
                .and_then(|id| id.strip_prefix('N'))
                .and_then(|id| id.split(':').next())
                .and_then(|id| id.parse::<usize>().ok());
            if let Some(node) = node.filter(|&n| n >= 1) {
                *leaders.entry(node - 1).or_default() += 1;
            }
        }
        Ok(leaders)
    }
}

/// Node `number`'s config; addresses and ports come from the environment
/// the harness sets (see `LocalRestate`).
fn node_config(cluster_name: &str, number: usize, metadata_addresses: &str) -> String {
    format!(
        r#"cluster-name = "{cluster_name}"
node-name = "n{number}"
auto-provision = {provision}
disable-telemetry = true
log-filter = "warn"
default-num-partitions = {PARTITIONS}
default-replication = {REPLICATION}
roles = ["metadata-server", "admin", "worker", "log-server", "http-ingress"]

[metadata-client]
addresses = [{metadata_addresses}]

[bifrost]
default-provider = "replicated"
"#,
        provision = number == 1,
    )
}
