//! A whole local registry: a [`LocalRestate`] server, this crate's
//! endpoint served on a free loopback port, and the deployment registered,
//! for tests, `procreg demo` and `procreg bench`.

use std::net::SocketAddr;
use std::path::PathBuf;

use restate_process_registry::{ProcessResult, RestateProcessAttach, RestateProcessRegistry};
use restate_sdk::endpoint::Endpoint;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::local_server::{io_err, LocalRestate, LocalServerError};

/// restate-server plus the registry endpoint, wired together.
#[derive(Debug)]
pub struct LocalStack {
    server: LocalRestate,
    endpoint: JoinHandle<()>,
    endpoint_url: String,
}

impl LocalStack {
    /// Starts a server in a fresh temp base dir and serves the endpoint to it.
    pub async fn start() -> Result<Self, LocalServerError> {
        Self::serving(restate_process_registry_services::endpoint()).await
    }

    /// Like [`LocalStack::start`], serving `endpoint` (the registry services
    /// and whatever else it binds).
    pub async fn serving(endpoint: Endpoint) -> Result<Self, LocalServerError> {
        Self::on(LocalRestate::start().await?, endpoint, &Handle::current()).await
    }

    /// Like [`LocalStack::start`], on a base dir the caller keeps.
    pub async fn start_in(base_dir: PathBuf) -> Result<Self, LocalServerError> {
        let server = LocalRestate::start_in(base_dir).await?;
        Self::on(
            server,
            restate_process_registry_services::endpoint(),
            &Handle::current(),
        )
        .await
    }

    /// `endpoint` served on `runtime` and registered with `server` (a
    /// runtime of its own lets `procreg bench` tell the endpoint's CPU
    /// time from its clients').
    pub async fn on(
        server: LocalRestate,
        endpoint: Endpoint,
        runtime: &Handle,
    ) -> Result<Self, LocalServerError> {
        let (listener, address) = bind_endpoint().await?;
        let port = address.port();
        let endpoint = runtime.spawn(restate_process_registry_services::serve_endpoint(
            endpoint, listener,
        ));
        let endpoint_url = format!("http://127.0.0.1:{port}/");
        server.register_deployment(&endpoint_url).await?;
        Ok(Self {
            server,
            endpoint,
            endpoint_url,
        })
    }

    /// Ingress base URL, e.g. `http://127.0.0.1:18080`.
    pub fn ingress_url(&self) -> String {
        self.server.ingress_url()
    }

    /// Where the endpoint serves the services.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// The server.
    pub fn server(&self) -> &LocalRestate {
        &self.server
    }

    /// The server, to stop, kill or restart it.
    pub fn server_mut(&mut self) -> &mut LocalRestate {
        &mut self.server
    }

    /// A registry client on this stack's ingress.
    pub fn registry(&self) -> ProcessResult<RestateProcessRegistry> {
        RestateProcessRegistry::connect(&self.ingress_url())
    }

    /// An attach client on this stack's ingress.
    pub fn attach(&self) -> ProcessResult<RestateProcessAttach> {
        Ok(RestateProcessAttach::new(self.registry()?))
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.endpoint.abort();
    }
}

/// A loopback listener for an in-process endpoint, on a port the kernel
/// picks, and its address.
pub(crate) async fn bind_endpoint() -> Result<(TcpListener, SocketAddr), LocalServerError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io_err("binding the service endpoint"))?;
    let address = listener
        .local_addr()
        .map_err(io_err("reading the endpoint address"))?;
    Ok((listener, address))
}
