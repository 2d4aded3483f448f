//! The Restate services behind the durable process registry, and the
//! `procreg` binary.
//!
//! | Service | Kind | Key | Holds |
//! |---|---|---|---|
//! | `ProcessObject` | virtual object (lazy state) | process id | row, event log, lease, replay keys, wake acks, grants |
//! | `ProcessTerminal` | workflow | process id + incarnation | the durable promise of the outcome |
//! | `ProcessDirectory` | virtual object (lazy state) | shard `0`..`31` | a copy of each row, for listing and prune |
//! | `SessionGrants` | virtual object | session id | the session's grants and wake-holding processes |
//! | `ProcessCoordinator` | service | — | nothing: journals transfers, session deletes, prunes |
//!
//! Call graph (an arrow is a call; there is no cycle between keyed
//! objects, so no exclusive handler ever waits on one that waits on it):
//!
//! ```text
//! ingress ──► ProcessObject ──► ProcessDirectory   (put / remove; leaf)
//!    │             ├──────────► SessionGrants      (put / remove / note_wake / drop_process; leaf)
//!    │             └──send────► ProcessTerminal    (run at register, finish at the outcome; leaf)
//!    ├──────► ProcessCoordinator ──► ProcessObject (move_grant / forget_session / prune / get)
//!    │                         ├──► SessionGrants  (list / members, shared)
//!    │                         └──► ProcessDirectory (terminal_before, shared)
//!    ├──────► ProcessDirectory / SessionGrants     (list, shared)
//!    └──────► ProcessTerminal                      (attach)
//! ```
//!
//! Bind them all into your own endpoint with [`bind_services`], or run
//! `procreg serve`.

mod baseline;
mod coordinator;
mod directory;
mod errors;
mod journal;
pub mod local_server;
pub mod local_stack;
mod process_object;
mod session_grants;
mod state;
mod terminal;

pub use baseline::EngineBaseline;
pub use coordinator::ProcessCoordinator;
pub use directory::ProcessDirectory;
pub use process_object::ProcessObject;
pub use session_grants::SessionGrants;
pub use terminal::ProcessTerminal;

use restate_sdk::endpoint::{Builder, Endpoint};
use restate_sdk::http_server::HttpServer;
use tokio::net::TcpListener;

/// Adds every registry service to an endpoint builder.
pub fn bind_services(builder: Builder) -> Builder {
    builder
        .bind(ProcessObject)
        .bind(ProcessTerminal)
        .bind(ProcessDirectory)
        .bind(SessionGrants)
        .bind(ProcessCoordinator)
        .bind(EngineBaseline)
}

/// An endpoint serving just the registry services.
pub fn endpoint() -> Endpoint {
    bind_services(Endpoint::builder()).build()
}

/// Serves the registry endpoint (HTTP/2) on `listener` until the task is
/// dropped or the process ends.
pub async fn serve(listener: TcpListener) {
    HttpServer::new(endpoint()).serve(listener).await;
}
