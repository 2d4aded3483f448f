//! `procreg serve`: the registry endpoint on a loopback port, optionally
//! with a local restate-server that has the deployment registered, and
//! optionally running process bodies (`--runner demo`).

use clap::{Args, ValueEnum};
use restate_process_registry_services::{bind_services, bind_services_with_runner, serve_endpoint};
use restate_process_registry_testkit::local_cluster::LocalCluster;
use restate_process_registry_testkit::local_server::LocalRestate;
use restate_process_registry_testkit::signing::SigningKeys;
use restate_sdk::endpoint::{Builder, Endpoint};
use tokio::net::TcpListener;

use crate::common::{spinner, CliError, CliResult, Context};
use crate::demo::body::DemoBody;

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
    /// Only answer requests signed by a restate-server holding the matching
    /// private key (request identity; repeat for several keys). Needed when
    /// the endpoint is reachable beyond loopback.
    #[arg(
        long = "identity-key",
        env = "PROCREG_IDENTITY_KEY",
        value_name = "publickeyv1_…"
    )]
    identity_keys: Vec<String>,
    /// With `--with-server`: generate a key pair, have the local server
    /// sign with it and the endpoint require it.
    #[arg(long, requires = "with_server")]
    signed: bool,
    /// With `--with-server`: start a cluster of this many restate-server
    /// nodes on loopback (replicated log and metadata, replication 2)
    /// instead of one.
    #[arg(
        long,
        default_value_t = 1,
        requires = "with_server",
        conflicts_with = "signed"
    )]
    nodes: usize,
    /// Also run engine process bodies durably with this body (the
    /// `ProcessRunner` workflow); without it the endpoint runs none.
    #[arg(long, value_enum)]
    runner: Option<Runner>,
}

/// Bodies `procreg serve --runner` can run.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Runner {
    /// The multi-step demo body (see `demo/body.rs` for its payload).
    Demo,
}

/// The registry services, plus the runner when asked.
fn services(runner: Option<Runner>) -> Builder {
    let builder = Endpoint::builder();
    match runner {
        None => bind_services(builder),
        Some(Runner::Demo) => bind_services_with_runner(builder, DemoBody),
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
    let keys = if args.signed {
        Some(SigningKeys::generate().map_err(CliError::new)?)
    } else {
        None
    };
    let mut builder = services(args.runner);
    for key in args
        .identity_keys
        .iter()
        .map(String::as_str)
        .chain(keys.as_ref().map(SigningKeys::public_key))
    {
        builder = builder
            .identity_key(key)
            .map_err(|error| CliError::new(format!("identity key `{key}`: {error}")))?;
    }
    let mut endpoint = tokio::spawn(serve_endpoint(builder.build(), listener));
    match args.runner {
        Some(runner) => {
            println!("registry endpoint with the {runner:?} runner serving on {endpoint_url}")
        }
        None => println!("registry endpoint serving on {endpoint_url}"),
    }
    if let Some(keys) = &keys {
        println!("  requires requests signed for {}", keys.public_key());
    }

    let mut server = None;
    let mut cluster = None;
    if args.with_server && args.nodes > 1 {
        let spin = spinner(format!(
            "starting a {}-node restate-server cluster",
            args.nodes
        ));
        let started = LocalCluster::start(args.nodes).await;
        spin.finish_and_clear();
        let mut started = started.context("starting the cluster")?;
        started
            .register_deployment(&endpoint_url)
            .await
            .context("registering the endpoint with the cluster")?;
        println!(
            "restate-server cluster of {} nodes running, deployment registered",
            args.nodes
        );
        for (i, node) in started.nodes().iter().enumerate() {
            println!(
                "  node {}  ingress {}  admin {}  fabric {}",
                i + 1,
                node.ingress_url(),
                node.admin_url(),
                node.fabric_url()
            );
        }
        cluster = Some(started);
    } else if args.with_server {
        let spin = spinner("starting restate-server");
        let started = match &keys {
            Some(keys) => LocalRestate::start_signing(keys).await,
            None => LocalRestate::start().await,
        };
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
    drop(cluster);
    endpoint.abort();
    if args.with_server && stopped.is_ok() {
        println!("restate-server stopped");
    }
    outcome.and(stopped)
}
