//! Where a process stands and how it ended.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ProcessTerminalState;

/// The outcome a waiter receives once a process is terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProcessAwaitOutput {
    /// Finished with a value.
    Success {
        /// The result.
        value: Value,
        /// Host control metadata passed through untouched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        control: Option<Value>,
    },
    /// Finished with an error.
    Failure {
        /// Machine-readable error code.
        code: String,
        /// Human-readable message.
        message: String,
        /// The raw error, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<Value>,
        /// Host control metadata passed through untouched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        control: Option<Value>,
    },
    /// Stopped on request.
    Cancelled {
        /// Why, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// The raw cancellation payload, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<Value>,
        /// Host control metadata passed through untouched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        control: Option<Value>,
    },
    /// Given up on; `evidence` says why it was safe to do so.
    Abandoned {
        /// What proved the process could not finish.
        evidence: Value,
        /// Host control metadata passed through untouched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        control: Option<Value>,
    },
}

impl ProcessAwaitOutput {
    /// A success without control metadata.
    pub fn success(value: Value) -> Self {
        Self::Success {
            value,
            control: None,
        }
    }

    /// A failure without raw error or control metadata.
    pub fn failure(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failure {
            code: code.into(),
            message: message.into(),
            raw: None,
            control: None,
        }
    }

    /// A cancellation with an optional message.
    pub fn cancelled(message: Option<String>) -> Self {
        Self::Cancelled {
            message,
            raw: None,
            control: None,
        }
    }

    /// An abandonment with its evidence.
    pub fn abandoned(evidence: Value) -> Self {
        Self::Abandoned {
            evidence,
            control: None,
        }
    }

    /// The terminal state this outcome puts a process in.
    pub fn terminal_state(&self) -> ProcessTerminalState {
        match self {
            Self::Success { .. } => ProcessTerminalState::Completed,
            Self::Failure { .. } => ProcessTerminalState::Failed,
            Self::Cancelled { .. } => ProcessTerminalState::Cancelled,
            Self::Abandoned { .. } => ProcessTerminalState::Abandoned,
        }
    }
}

/// The status of a process row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "output", rename_all = "snake_case")]
pub enum ProcessStatus {
    /// Not terminal yet.
    #[default]
    Running,
    /// Finished with a value.
    Completed(ProcessAwaitOutput),
    /// Finished with an error.
    Failed(ProcessAwaitOutput),
    /// Stopped on request.
    Cancelled(ProcessAwaitOutput),
    /// Given up on.
    Abandoned(ProcessAwaitOutput),
}

impl ProcessStatus {
    /// The terminal status an outcome leads to.
    pub fn terminal(output: ProcessAwaitOutput) -> Self {
        match output.terminal_state() {
            ProcessTerminalState::Completed => Self::Completed(output),
            ProcessTerminalState::Failed => Self::Failed(output),
            ProcessTerminalState::Cancelled => Self::Cancelled(output),
            ProcessTerminalState::Abandoned => Self::Abandoned(output),
        }
    }

    /// The outcome, once terminal.
    pub fn await_output(&self) -> Option<&ProcessAwaitOutput> {
        match self {
            Self::Running => None,
            Self::Completed(output)
            | Self::Failed(output)
            | Self::Cancelled(output)
            | Self::Abandoned(output) => Some(output),
        }
    }

    /// Whether the process has ended.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Running)
    }
}
