//! The one error type every registry, awaiter and driver returns.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// Why a registry call was refused or could not be answered.
///
/// Model errors (everything but [`ProcessError::Unavailable`]) are final:
/// retrying the same call gives the same answer. `Unavailable` means the
/// backing store or engine could not be reached and says nothing about the
/// process.
/// New variants may come, so matches need a catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// No process with this id is registered (or it was pruned).
    #[error("unknown process `{process_id}`")]
    UnknownProcess {
        /// The id that was asked for.
        process_id: String,
    },
    /// The call contradicts what is already stored (a different registration
    /// under the same id, a second external ref, a second terminal outcome).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed or violates the process's declared schema.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The process already reached a terminal state; the write is refused.
    #[error("process `{process_id}` is already terminal")]
    AlreadyTerminal {
        /// The terminal process.
        process_id: String,
    },
    /// The presented lease no longer matches the stored one. The text says
    /// "missing or expired", the words hosts ported from the original match.
    #[error("process lease for `{process_id}` is missing or expired (superseded)")]
    LeaseSuperseded {
        /// The process whose lease moved on.
        process_id: String,
    },
    /// The presented lease matches but its expiry has passed.
    #[error("process lease for `{process_id}` is missing or expired (lapsed)")]
    LeaseExpired {
        /// The process whose lease lapsed.
        process_id: String,
    },
    /// The store or engine could not be reached or answered unexpectedly.
    #[error("registry unavailable: {message}")]
    Unavailable {
        /// What failed, with the underlying reason when it has no error type.
        message: String,
        /// The underlying failure (e.g. the transport's error), when there
        /// is one; `{:#}` with anyhow, or walking `source()`, shows it.
        #[source]
        source: Option<ErrorCause>,
    },
}

/// The error behind an [`ProcessError::Unavailable`]: cheap to clone, and
/// compared by its text so `ProcessError` stays `PartialEq`.
#[derive(Clone)]
pub struct ErrorCause(Arc<dyn std::error::Error + Send + Sync>);

impl ErrorCause {
    /// Wraps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl fmt::Debug for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ErrorCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for ErrorCause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for ErrorCause {}

impl ProcessError {
    /// `UnknownProcess` for `process_id`.
    pub fn unknown(process_id: &str) -> Self {
        Self::UnknownProcess {
            process_id: process_id.to_owned(),
        }
    }

    /// `InvalidInput` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// `Conflict` with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    /// `Unavailable` with a message and no underlying error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// `Unavailable` caused by `source` (kept, so callers can walk the chain).
    pub fn unavailable_because(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(ErrorCause::new(source)),
        }
    }

    /// `AlreadyTerminal` for `process_id`.
    pub fn terminal(process_id: &str) -> Self {
        Self::AlreadyTerminal {
            process_id: process_id.to_owned(),
        }
    }
}

/// Shorthand used throughout the crate.
pub type ProcessResult<T> = Result<T, ProcessError>;
