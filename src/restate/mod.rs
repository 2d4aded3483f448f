//! The registry inside Restate, seen from the host: the ingress client
//! registry, engine-native attach, and the wire types the services in
//! `restate-process-registry-services` speak.
//!
//! Rows live in the `ProcessObject` virtual object keyed by process id;
//! terminal waits attach to the `ProcessTerminal` workflow's durable
//! promise; [`RestateProcessRuns`] hands pending rows to the engine's
//! `ProcessRunner` when the endpoint runs process bodies. See
//! `docs/architecture.md` for the services and their keys, and the services
//! crate docs for the call graph.

mod attach;
// The handler table the client calls by and the endpoint is tested against; not API.
#[doc(hidden)]
pub mod contract;
// The wire format and error codes the services crate speaks; not API.
#[doc(hidden)]
pub mod codes;
mod ingress;
mod registry;
mod runs;
#[doc(hidden)]
pub mod wire;

pub use attach::{RestateProcessAttach, REATTACH_WINDOW};
pub use ingress::IngressOptions;
pub use registry::RestateProcessRegistry;
pub use runs::RestateProcessRuns;
pub use wire::ListCursor;
