//! `procreg`: the durable process registry's command-line tool.
//!
//! - `procreg serve` serves the registry's Restate services (optionally
//!   with a local restate-server, deployment registered, and with
//!   `--runner demo` running a demo process body durably);
//! - `procreg demo` brings up a whole local stack and walks through the
//!   registry's features, with timings;
//! - `procreg bench` measures registry operations against the raw engine
//!   baseline (`EngineBaseline/noop`) in the same run;
//! - `procreg check` walks a running registry and reports any disagreement
//!   between its directory, rows and session grant authorities, and any
//!   unfinished transfer or session delete (`--repair` completes them);
//! - `procreg install-server` installs the pinned restate-server and restatectl (CI uses it);
//! - `procreg get / ls / events / await / grants / prune` look at and tidy
//!   a running registry (`--ingress`, `--json`; see `ops`).
//!
//! Every verb exits non-zero with a one-line reason when something fails
//! (`procreg await` also tells the outcomes apart by exit status).

mod bench;
mod common;
mod demo;
mod ops;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A durable process registry that lives inside Restate.
#[derive(Debug, Parser)]
#[command(name = "procreg", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the registry's Restate services on a loopback port.
    Serve(serve::ServeArgs),
    /// Start a local stack and run a short scenario through every feature.
    Demo,
    /// Measure registry throughput and wait latency against the engine baseline.
    Bench(bench::BenchArgs),
    /// Report disagreements between directory, rows and session grants.
    Check(ops::check::CheckArgs),
    /// Install the pinned restate-server into `.tools/` when missing; print its path.
    InstallServer,
    /// Show a process: row, lease, wait, grants and last events.
    Get(ops::get::GetArgs),
    /// List processes matching a filter, a page at a time.
    Ls(ops::ls::LsArgs),
    /// Print a process's events; `--follow` streams new ones until it ends.
    Events(ops::events::EventsArgs),
    /// Wait for a process's outcome; the exit status tells which (0 completed,
    /// 3 failed, 4 cancelled, 5 abandoned, 124 timeout, 1 error).
    Await(ops::await_outcome::AwaitArgs),
    /// List the handle grants a session holds.
    Grants(ops::grants::GrantsArgs),
    /// Delete terminal processes last changed before an instant.
    Prune(ops::prune::PruneArgs),
}

/// Finds or installs restate-server and restatectl and prints where they are.
async fn install_server() -> common::CliResult<()> {
    use restate_process_registry_testkit::local_server::{
        ensure_restate_server, ensure_restatectl,
    };
    println!("{}", ensure_restate_server().await?.display());
    println!("{}", ensure_restatectl().await?.display());
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Demo => demo::run().await,
        Command::Bench(args) => bench::run(args).await,
        Command::Check(args) => ops::check::run(args).await,
        Command::InstallServer => install_server().await,
        Command::Get(args) => ops::get::run(args).await,
        Command::Ls(args) => ops::ls::run(args).await,
        Command::Events(args) => ops::events::run(args).await,
        Command::Await(args) => ops::await_outcome::run(args).await,
        Command::Grants(args) => ops::grants::run(args).await,
        Command::Prune(args) => ops::prune::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => match error.downcast_ref::<common::Exit>() {
            Some(exit) => {
                if !exit.message.is_empty() {
                    eprintln!("procreg: error: {}", exit.message);
                }
                ExitCode::from(exit.status)
            }
            None => {
                // `{:#}` keeps the whole cause chain on one line.
                eprintln!("procreg: error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}
