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
    ///
    /// `%` and `/` inside the ids are percent-escaped (`%25`, `%2F`), so no
    /// two scopes share an id: session `a/frame:b` is `session:a%2Fframe:b`,
    /// never the frame `b` of session `a`. Ids without those characters
    /// read exactly as before.
    pub fn id(&self) -> String {
        let session = escape(&self.session_id);
        match &self.agent_frame_id {
            None => format!("session:{session}"),
            Some(frame) => format!("session:{session}/frame:{}", escape(frame)),
        }
    }
}

fn escape(id: &str) -> std::borrow::Cow<'_, str> {
    if !id.contains(['%', '/']) {
        return std::borrow::Cow::Borrowed(id);
    }
    let mut escaped = String::with_capacity(id.len() + 8);
    for c in id.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '/' => escaped.push_str("%2F"),
            c => escaped.push(c),
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::SessionScope;

    #[test]
    fn scope_ids_never_collide() {
        let frame = SessionScope::frame("S", "x");
        let tricky = SessionScope::session("S/frame:x");
        assert_eq!(frame.id(), "session:S/frame:x");
        assert_eq!(tricky.id(), "session:S%2Fframe:x");
        assert_ne!(
            SessionScope::session("a%2Fb").id(),
            SessionScope::session("a/b").id()
        );
        assert_ne!(
            SessionScope::frame("a", "b/frame:c").id(),
            SessionScope::frame("a/frame:b", "c").id()
        );
        assert_eq!(SessionScope::session("plain").id(), "session:plain");
    }
}
