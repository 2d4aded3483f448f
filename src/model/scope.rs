//! Session scopes: who holds handles and receives wakes.

use serde::{Deserialize, Serialize};

/// A session, optionally narrowed to one agent frame inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionScope {
    /// The owning session.
    pub session_id: String,
    /// The frame inside the session, when the scope is frame-local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_frame_id: Option<String>,
}

impl SessionScope {
    /// The whole session.
    pub fn session(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            agent_frame_id: None,
        }
    }

    /// One frame of a session.
    pub fn frame(session_id: impl Into<String>, agent_frame_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            agent_frame_id: Some(agent_frame_id.into()),
        }
    }

    /// Stable scope id: `session:{sid}` or `session:{sid}/frame:{fid}`.
    pub fn id(&self) -> String {
        match &self.agent_frame_id {
            None => format!("session:{}", self.session_id),
            Some(frame) => format!("session:{}/frame:{frame}", self.session_id),
        }
    }
}
