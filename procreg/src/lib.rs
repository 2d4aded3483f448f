//! The library half of the `procreg` package: the consistency check behind
//! `procreg check`, which the end-to-end tests also run on the registries
//! they stress. It moved here from `restate_process_registry_services::check`
//! (same items): it is a client of the registry, not a service.
//! See `docs/architecture.md` for the crates and layers.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod check;
