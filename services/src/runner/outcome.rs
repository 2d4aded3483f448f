//! How a run ends: the outcome recorded for a body's error or panic, and
//! the [`RunReport`] the workflow answers.

use std::any::Any;

use restate_process_registry::rules::limits::MAX_TEXT_BYTES;
use restate_process_registry::ProcessAwaitOutput;
use serde::{Deserialize, Serialize};

use super::body::BodyError;

/// Failure code of a body that returned an error.
pub const BODY_FAILED: &str = "body_failed";
/// Failure code of a body that panicked.
pub const BODY_PANICKED: &str = "body_panicked";

/// What a `ProcessRunner` run did; its workflow output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunReport {
    /// The body ran (or the row was abandoned before it could) and the
    /// process was completed with `output`.
    Finished {
        /// The outcome recorded on the row.
        output: ProcessAwaitOutput,
    },
    /// Nothing ran, for `reason`.
    Skipped {
        /// Why the run left the row alone.
        reason: String,
    },
}

impl RunReport {
    pub(super) fn skipped(reason: impl Into<String>) -> Self {
        Self::Skipped {
            reason: reason.into(),
        }
    }
}

/// The outcome of a body that failed with `error`.
pub(super) fn failed(error: &BodyError) -> ProcessAwaitOutput {
    ProcessAwaitOutput::failure(BODY_FAILED, bounded(error.message()))
}

/// The outcome of a body that panicked with `panic`.
pub(super) fn panicked(panic: &(dyn Any + Send)) -> ProcessAwaitOutput {
    ProcessAwaitOutput::failure(BODY_PANICKED, bounded(&panic_message(panic)))
}

/// The text a panic was raised with.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// `text` cut to the registry's text limit (on a character boundary), so
/// the outcome is never refused for its size.
pub(super) fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_TEXT_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT_BYTES);
        assert!(cut.ends_with("..."));
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn panics_read_as_their_message() {
        let owned: Box<dyn Any + Send> = Box::new(String::from("boom"));
        assert_eq!(panic_message(owned.as_ref()), "boom");
        let fixed: Box<dyn Any + Send> = Box::new("bang");
        assert_eq!(panic_message(fixed.as_ref()), "bang");
        let odd: Box<dyn Any + Send> = Box::new(7u8);
        assert_eq!(panic_message(odd.as_ref()), "a panic without a message");
    }
}
