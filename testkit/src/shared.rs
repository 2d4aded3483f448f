//! One stack per test binary, shared by its tests.
//!
//! Each `#[tokio::test]` runs on its own runtime, so a stack (server
//! children, endpoint task) started inside one test would die with it.
//! [`for_the_binary`] starts it on a dedicated runtime thread that outlasts
//! every test; tests only share what it answers (URLs) and build their own
//! clients. The single-node stack and the cluster tests both use it (they
//! used to carry a copy each).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use crate::cluster_stack::{writable, ClusterStack};
use crate::local_stack::LocalStack;

/// Runs `start` on a runtime thread of its own and answers what it
/// reported; the stack it made lives, parked, until the process exits.
/// The caller keeps the answer (in a `OnceLock`), so this runs once.
pub fn for_the_binary<S, T, Fut>(start: impl FnOnce() -> Fut + Send + 'static) -> Result<T, String>
where
    Fut: Future<Output = Result<(S, T), String>>,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime,
            Err(err) => return drop(tx.send(Err(err.to_string()))),
        };
        runtime.block_on(async move {
            match start().await {
                Ok((stack, answer)) => {
                    let _ = tx.send(Ok(answer));
                    // Keep the stack alive for the life of the test binary.
                    std::future::pending::<()>().await;
                    drop(stack);
                }
                Err(err) => drop(tx.send(Err(err))),
            }
        });
    });
    rx.recv()
        .unwrap_or_else(|_| Err("the stack thread died before starting".into()))
}

/// Where a shared single-node stack listens.
#[derive(Debug, Clone)]
pub struct StackUrls {
    /// Ingress base URL.
    pub ingress: String,
    /// Admin API base URL.
    pub admin: String,
}

/// This binary's single-node [`LocalStack`], started on first use.
///
/// # Panics
/// When the stack cannot start (every test of the binary needs it).
pub fn stack() -> StackUrls {
    static URLS: OnceLock<Result<StackUrls, String>> = OnceLock::new();
    let urls = URLS.get_or_init(|| {
        for_the_binary(|| async {
            let stack = LocalStack::start().await.map_err(|err| err.to_string())?;
            let urls = StackUrls {
                ingress: stack.ingress_url(),
                admin: stack.server().admin_url(),
            };
            Ok((stack, urls))
        })
    });
    match urls {
        Ok(urls) => urls.clone(),
        Err(err) => panic!("local Restate stack failed to start: {err}"),
    }
}

/// Every ingress URL of this binary's [`ClusterStack`] of `nodes`,
/// serving the registry endpoint, started on first use once every node
/// takes a write (later calls get the same cluster, whatever `nodes`
/// they pass).
///
/// # Panics
/// When the cluster cannot start.
pub fn cluster(nodes: usize) -> Vec<String> {
    static URLS: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    let urls = URLS.get_or_init(|| {
        for_the_binary(move || async move {
            let runtime = tokio::runtime::Handle::current();
            let stack = ClusterStack::start(
                nodes,
                restate_process_registry_services::endpoint(),
                &runtime,
            )
            .await
            .map_err(|err| err.to_string())?;
            let urls = stack.cluster.ingress_urls();
            for ingress in &urls {
                writable(ingress, Duration::from_secs(60)).await?;
            }
            Ok((stack, urls))
        })
    });
    match urls {
        Ok(urls) => urls.clone(),
        Err(err) => panic!("local Restate cluster failed to start: {err}"),
    }
}
