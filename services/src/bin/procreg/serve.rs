//! `procreg serve`: the registry endpoint on a loopback port, optionally
//! with a local restate-server that has the deployment registered, and
//! optionally running process bodies (`--runner demo`).

use clap::{Args, ValueEnum};
use restate_process_registry_services::local_server::LocalRestate;
use restate_sdk::endpoint::Endpoint;
use tokio::net::TcpListener;

use crate::common::{spinner, CliError, CliResult, Context};
use crate::demo_body::DemoBody;

/// Options of `procreg serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port of the service endpoint on 127.0.0.1.
    #[arg(long, default_value_t = 9080)]
    port: u16,
    /// Also start a local restate-server (free loopback ports) and register
    /// this endpoint with it.
    #[arg(long)]
    with_server: bool,
    /// Also run engine process bodies durably with this body (the
    /// `ProcessRunner` workflow); without it the endpoint runs none.
    #[arg(long, value_enum)]
    runner: Option<Runner>,
}

/// Bodies `procreg serve --runner` can run.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Runner {
    /// The multi-step demo body (see `demo_body.rs` for its payload).
    Demo,
}

/// The endpoint to serve: the registry, plus the runner when asked.
fn endpoint(runner: Option<Runner>) -> Endpoint {
    let builder = Endpoint::builder();
    match runner {
        None => restate_process_registry_services::bind_services(builder).build(),
        Some(Runner::Demo) => {
            restate_process_registry_services::bind_services_with_runner(builder, DemoBody).build()
        }
    }
}

/// Serves until Ctrl-C, then stops the server (if started) cleanly.
pub async fn run(args: ServeArgs) -> CliResult<()> {
    let address = format!("127.0.0.1:{}", args.port);
    let listener = TcpListener::bind(&address)
        .await
        .context(format!("binding the service endpoint on {address}"))?;
    let port = listener
        .local_addr()
        .context("reading the endpoint address")?
        .port();
    let endpoint_url = format!("http://127.0.0.1:{port}/");
    let mut endpoint = tokio::spawn(restate_process_registry_services::serve_endpoint(
        endpoint(args.runner),
        listener,
    ));
    match args.runner {
        Some(runner) => {
            println!("registry endpoint with the {runner:?} runner serving on {endpoint_url}")
        }
        None => println!("registry endpoint serving on {endpoint_url}"),
    }

    let mut server = None;
    if args.with_server {
        let spin = spinner("starting restate-server");
        let started = LocalRestate::start().await;
        spin.finish_and_clear();
        let started = started.context("starting restate-server")?;
        started
            .register_deployment(&endpoint_url)
            .await
            .context("registering the endpoint with restate-server")?;
        println!("restate-server running, deployment registered");
        println!("  ingress  {}", started.ingress_url());
        println!("  admin    {}", started.admin_url());
        println!("  base dir {}", started.base_dir().display());
        println!(
            "  try      curl -s -X POST {}/ProcessObject/my-process/get",
            started.ingress_url()
        );
        server = Some(started);
    } else {
        println!(
            "register it with your restate-server, e.g.\n  \
             curl -s -X POST http://127.0.0.1:9070/deployments \
             -H 'content-type: application/json' -d '{{\"uri\": \"{endpoint_url}\"}}'"
        );
    }
    println!("press Ctrl-C to stop");

    let outcome = tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
        joined = &mut endpoint => match joined {
            Ok(()) => Err(CliError::new("the service endpoint stopped unexpectedly")),
            Err(error) => Err(CliError::new(format!("the service endpoint failed: {error}"))),
        },
    };
    println!("\nstopping");
    // The server first, so nothing is mid-invocation when the endpoint goes.
    let stopped = match server {
        Some(mut server) => server.stop().await.context("stopping restate-server"),
        None => Ok(()),
    };
    endpoint.abort();
    if args.with_server && stopped.is_ok() {
        println!("restate-server stopped");
    }
    outcome.and(stopped)
}
