//! The local test harness of the durable process registry: the admin API
//! ([`admin`]: queries, kill and cancel), an endpoint as a killable child
//! process ([`child_endpoint`]), a
//! `restate-server` child on free loopback ports ([`local_server`]), that
//! server plus the registry endpoint ([`local_stack`]), an N-node cluster
//! ([`local_cluster`], [`cluster_stack`]), request-identity keys for a
//! signing server ([`signing`]), the one-stack-per-test-binary helper
//! ([`shared`]), and loopback ports reserved across runs ([`ports`]) for
//! endpoints started as child processes.
//!
//! These modules used to live in `restate-process-registry-services`
//! behind its default `harness` feature (`restate_process_registry_testkit::local_server`
//! and so on); they moved here unchanged in name, so an endpoint that
//! depends on the services builds none of this. The services' own tests
//! and `procreg` depend on this crate; nothing in production should.
//! The layers and crates are drawn in `docs/architecture.md`.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod admin;
pub mod child_endpoint;
pub mod cluster_stack;
pub mod local_cluster;
pub mod local_server;
pub mod local_stack;
pub mod ports;
mod run_dir;
pub mod shared;
pub mod signing;
