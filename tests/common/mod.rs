//! One local Restate stack per test binary.
//!
//! Each `#[tokio::test]` runs on its own runtime, so the stack (server
//! child, endpoint task) lives on a dedicated runtime thread that outlasts
//! every test; tests only share its URL and build their own clients.

use std::sync::OnceLock;

use restate_process_registry::RestateProcessRegistry;
use restate_process_registry_services::local_stack::LocalStack;

/// Ingress URL of this binary's stack, starting it on first use.
pub fn ingress_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let url = URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => return drop(tx.send(Err(err.to_string()))),
            };
            runtime.block_on(async move {
                match LocalStack::start().await {
                    Ok(stack) => {
                        let _ = tx.send(Ok(stack.ingress_url()));
                        // Keep the stack alive for the life of the test binary.
                        std::future::pending::<()>().await;
                        drop(stack);
                    }
                    Err(err) => drop(tx.send(Err(err.to_string()))),
                }
            });
        });
        rx.recv()
            .unwrap_or_else(|_| Err("stack thread died before starting".into()))
    });
    match url {
        Ok(url) => url.clone(),
        Err(err) => panic!("local Restate stack failed to start: {err}"),
    }
}

/// A fresh registry client (its connections belong to the calling test's runtime).
pub fn registry() -> RestateProcessRegistry {
    RestateProcessRegistry::connect(&ingress_url()).expect("ingress url is valid")
}
