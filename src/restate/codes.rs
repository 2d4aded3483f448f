//! Model errors on the wire: each [`ProcessError`] variant travels as a
//! Restate terminal error with its own code, and comes back as the same
//! variant.
//!
//! Codes are HTTP statuses, so a plain ingress caller reads them too.
//! The message is data, not the error's display text: a small JSON
//! document naming the variant under `error` (a wire name fixed forever,
//! independent of the Rust names), its fields, and the display text under
//! `message` for people and plain HTTP callers:
//!
//! ```text
//! 404 {"error":"unknown_process","process_id":"job-7","message":"unknown process `job-7`"}
//! 409 {"error":"conflict","detail":"different registration","message":"conflict: different registration"}
//! ```
//!
//! | variant | `error` | fields |
//! |---|---|---|
//! | `InvalidInput` | `invalid_input` | `detail` |
//! | `UnknownProcess` | `unknown_process` | `process_id` |
//! | `Conflict` | `conflict` | `detail` |
//! | `LeaseExpired` | `lease_expired` | `process_id` |
//! | `LeaseSuperseded` | `lease_superseded` | `process_id` |
//! | `AlreadyTerminal` | `already_terminal` | `process_id` |
//! | `Unavailable` | `unavailable` | `detail` (its message; the source error stays behind) |
//!
//! Decoding reads the fields, never `message`, so an `#[error]` text can
//! change without breaking the wire; unknown fields are ignored. Messages
//! that are not this document are read as display texts, the form of
//! every release before it: failures journaled then (a `SessionGrants`
//! call that failed with ``unknown process `x` ``) replay forever, and a
//! server of that release still answers new clients. A client of that
//! release cannot read the document (it sees `Unavailable`), so upgrade
//! clients before servers.
//!
//! Input the SDK refuses to decode is answered with its own 400,
//! `Cannot decode input payload: ` followed by our decoder's error; that
//! error is the same document, so it decodes the same way.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::ProcessError;

/// Malformed request, schema violation, bad selector, unheld grant.
pub const INVALID_INPUT: u16 = 400;
/// No such process.
pub const UNKNOWN_PROCESS: u16 = 404;
/// Contradicts what is stored.
pub const CONFLICT: u16 = 409;
/// The presented lease lapsed.
pub const LEASE_EXPIRED: u16 = 410;
/// The presented lease was replaced.
pub const LEASE_SUPERSEDED: u16 = 412;
/// The process already ended.
pub const ALREADY_TERMINAL: u16 = 422;
/// Engine or store trouble (never produced by a handler's model logic).
pub const UNAVAILABLE: u16 = 503;

/// How restate-sdk prefixes the 400 it answers when a handler's input
/// cannot be decoded.
const DECODE_REFUSAL: &str = "Cannot decode input payload: ";

/// The code a handler fails with for `error`.
pub fn code_of(error: &ProcessError) -> u16 {
    match error {
        ProcessError::InvalidInput(_) => INVALID_INPUT,
        ProcessError::UnknownProcess { .. } => UNKNOWN_PROCESS,
        ProcessError::Conflict(_) => CONFLICT,
        ProcessError::LeaseExpired { .. } => LEASE_EXPIRED,
        ProcessError::LeaseSuperseded { .. } => LEASE_SUPERSEDED,
        ProcessError::AlreadyTerminal { .. } => ALREADY_TERMINAL,
        ProcessError::Unavailable { .. } => UNAVAILABLE,
    }
}

/// A variant as it travels. The `rename`s are the wire names: never change
/// one, add a variant instead.
#[derive(Serialize, Deserialize)]
#[serde(tag = "error")]
enum Wire<'a> {
    #[serde(rename = "invalid_input")]
    InvalidInput { detail: Cow<'a, str> },
    #[serde(rename = "unknown_process")]
    UnknownProcess { process_id: Cow<'a, str> },
    #[serde(rename = "conflict")]
    Conflict { detail: Cow<'a, str> },
    #[serde(rename = "lease_expired")]
    LeaseExpired { process_id: Cow<'a, str> },
    #[serde(rename = "lease_superseded")]
    LeaseSuperseded { process_id: Cow<'a, str> },
    #[serde(rename = "already_terminal")]
    AlreadyTerminal { process_id: Cow<'a, str> },
    #[serde(rename = "unavailable")]
    Unavailable { detail: Cow<'a, str> },
}

impl<'a> Wire<'a> {
    fn of(error: &'a ProcessError) -> Self {
        let text = |text: &'a String| Cow::Borrowed(text.as_str());
        match error {
            ProcessError::InvalidInput(detail) => Self::InvalidInput {
                detail: text(detail),
            },
            ProcessError::UnknownProcess { process_id } => Self::UnknownProcess {
                process_id: text(process_id),
            },
            ProcessError::Conflict(detail) => Self::Conflict {
                detail: text(detail),
            },
            ProcessError::LeaseExpired { process_id } => Self::LeaseExpired {
                process_id: text(process_id),
            },
            ProcessError::LeaseSuperseded { process_id } => Self::LeaseSuperseded {
                process_id: text(process_id),
            },
            ProcessError::AlreadyTerminal { process_id } => Self::AlreadyTerminal {
                process_id: text(process_id),
            },
            // The source error has no wire form; its message says what failed.
            ProcessError::Unavailable { message, .. } => Self::Unavailable {
                detail: text(message),
            },
        }
    }

    fn into_error(self) -> ProcessError {
        match self {
            Self::InvalidInput { detail } => ProcessError::InvalidInput(detail.into_owned()),
            Self::UnknownProcess { process_id } => ProcessError::UnknownProcess {
                process_id: process_id.into_owned(),
            },
            Self::Conflict { detail } => ProcessError::Conflict(detail.into_owned()),
            Self::LeaseExpired { process_id } => ProcessError::LeaseExpired {
                process_id: process_id.into_owned(),
            },
            Self::LeaseSuperseded { process_id } => ProcessError::LeaseSuperseded {
                process_id: process_id.into_owned(),
            },
            Self::AlreadyTerminal { process_id } => ProcessError::AlreadyTerminal {
                process_id: process_id.into_owned(),
            },
            Self::Unavailable { detail } => ProcessError::unavailable(detail),
        }
    }
}

/// The document on the wire: the variant, then the text for people.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(flatten)]
    error: Wire<'a>,
    message: String,
}

/// What every document has, whatever release wrote it.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "error")]
    _error: String,
    message: String,
}

/// The message a handler fails with for `error` (beside [`code_of`]).
pub fn encode(error: &ProcessError) -> String {
    let envelope = Envelope {
        error: Wire::of(error),
        message: error.to_string(),
    };
    // A struct of strings always serializes; the display text is the
    // previous form, which `decode` reads too.
    serde_json::to_string(&envelope).unwrap_or_else(|_| error.to_string())
}

/// Rebuilds the error a handler failed with, from its code and message.
///
/// `None` when the pair is not one of ours (an engine error that happens
/// to share a status), so the caller can report it as unavailable.
pub fn decode(code: u16, message: &str) -> Option<ProcessError> {
    if code == INVALID_INPUT {
        if let Some(refused) = message.strip_prefix(DECODE_REFUSAL) {
            if let Some(error) = structured(code, refused) {
                return error;
            }
        }
    }
    structured(code, message).unwrap_or_else(|| decode_text(code, message))
}

/// The text for people in a terminal error's message: the display text a
/// document carries, or the message itself when it is not one.
pub fn readable(message: &str) -> Cow<'_, str> {
    match serde_json::from_str::<Head>(message) {
        Ok(head) => Cow::Owned(head.message),
        Err(_) => Cow::Borrowed(message),
    }
}

/// Decodes `message` when it is a document: `Some(decoded)`, or `None`
/// when it is not one. A document of a variant this release does not know,
/// or under another variant's code, is read by its display text.
fn structured(code: u16, message: &str) -> Option<Option<ProcessError>> {
    let head = serde_json::from_str::<Head>(message).ok()?;
    let known = serde_json::from_str::<Wire<'_>>(message)
        .ok()
        .map(Wire::into_error)
        .filter(|error| code_of(error) == code);
    Some(known.or_else(|| decode_text(code, &head.message)))
}

/// Decodes a display text, the form every release before the document
/// sent and journaled. Kept as it was: those journals replay forever.
fn decode_text(code: u16, message: &str) -> Option<ProcessError> {
    let id = |prefix: &str, suffix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .map(str::to_owned)
    };
    let text = |prefix: &str| message.strip_prefix(prefix).map(str::to_owned);
    match code {
        INVALID_INPUT => {
            // Input the SDK refused while decoding is invalid input too; our
            // own decoder's refusals carry the model text after its prefix.
            let refused = message
                .strip_prefix(DECODE_REFUSAL)
                .and_then(|rest| rest.strip_prefix("invalid input: "));
            let text = refused.or_else(|| message.strip_prefix("invalid input: "));
            Some(ProcessError::InvalidInput(
                text.unwrap_or(message).to_owned(),
            ))
        }
        UNKNOWN_PROCESS => id("unknown process `", "`")
            .map(|process_id| ProcessError::UnknownProcess { process_id }),
        CONFLICT => text("conflict: ").map(ProcessError::Conflict),
        // Servers before the "missing or expired" text said it the old way.
        LEASE_EXPIRED => id("process lease for `", "` is missing or expired (lapsed)")
            .or_else(|| id("lease on process `", "` has expired"))
            .map(|process_id| ProcessError::LeaseExpired { process_id }),
        LEASE_SUPERSEDED => id(
            "process lease for `",
            "` is missing or expired (superseded)",
        )
        .or_else(|| id("lease on process `", "` was superseded"))
        .map(|process_id| ProcessError::LeaseSuperseded { process_id }),
        ALREADY_TERMINAL => id("process `", "` is already terminal")
            .map(|process_id| ProcessError::AlreadyTerminal { process_id }),
        UNAVAILABLE => text("registry unavailable: ").map(ProcessError::unavailable),
        _ => None,
    }
}

/// One error of every variant, each field carrying `text`, for round-trip
/// tests (not API).
///
/// The list is a chain built by an exhaustive match: a new variant does not
/// compile until it has an arm here, and its arm is where it joins the list.
#[cfg(any(test, feature = "testing"))]
pub fn every_variant(text: &str) -> Vec<ProcessError> {
    let after = |error: Option<&ProcessError>| match error {
        None => Some(ProcessError::invalid(text)),
        Some(ProcessError::InvalidInput(_)) => Some(ProcessError::unknown(text)),
        Some(ProcessError::UnknownProcess { .. }) => Some(ProcessError::conflict(text)),
        Some(ProcessError::Conflict(_)) => Some(ProcessError::LeaseExpired {
            process_id: text.to_owned(),
        }),
        Some(ProcessError::LeaseExpired { .. }) => Some(ProcessError::LeaseSuperseded {
            process_id: text.to_owned(),
        }),
        Some(ProcessError::LeaseSuperseded { .. }) => Some(ProcessError::terminal(text)),
        Some(ProcessError::AlreadyTerminal { .. }) => Some(ProcessError::unavailable(text)),
        Some(ProcessError::Unavailable { .. }) => None,
    };
    let mut all: Vec<ProcessError> = Vec::new();
    while let Some(next) = after(all.last()) {
        all.push(next);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quotes, backticks, a backslash, a newline, non-ASCII, and a document
    /// of its own: everything a text encoding could trip on.
    const AWKWARD: &str =
        "a \"quoted\" `ticked` \\ text\nline two — ünïcødé ✓ {\"error\":\"conflict\"}";

    #[test]
    fn every_variant_survives_the_wire() {
        for text in [AWKWARD, "p1", "", "`"] {
            for error in every_variant(text) {
                let message = encode(&error);
                assert_eq!(
                    decode(code_of(&error), &message).as_ref(),
                    Some(&error),
                    "{message}"
                );
                assert_eq!(readable(&message), error.to_string());
            }
        }
    }

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u16> = every_variant("p").iter().map(code_of).collect();
        let count = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), count);
    }

    /// The wire names and fields, pinned: these documents are journaled.
    #[test]
    fn the_documents_are_the_published_ones() {
        let documents: Vec<String> = every_variant("p").iter().map(encode).collect();
        assert_eq!(
            documents,
            [
                r#"{"error":"invalid_input","detail":"p","message":"invalid input: p"}"#,
                r#"{"error":"unknown_process","process_id":"p","message":"unknown process `p`"}"#,
                r#"{"error":"conflict","detail":"p","message":"conflict: p"}"#,
                r#"{"error":"lease_expired","process_id":"p","message":"process lease for `p` is missing or expired (lapsed)"}"#,
                r#"{"error":"lease_superseded","process_id":"p","message":"process lease for `p` is missing or expired (superseded)"}"#,
                r#"{"error":"already_terminal","process_id":"p","message":"process `p` is already terminal"}"#,
                r#"{"error":"unavailable","detail":"p","message":"registry unavailable: p"}"#,
            ]
        );
    }

    /// Decoding reads the fields: another display text changes nothing.
    #[test]
    fn the_message_text_is_not_parsed() {
        let document =
            r#"{"error":"unknown_process","process_id":"p","message":"no such thing","since":7}"#;
        assert_eq!(
            decode(UNKNOWN_PROCESS, document),
            Some(ProcessError::unknown("p"))
        );
        assert_eq!(readable(document), "no such thing");
    }

    #[test]
    fn unavailable_crosses_without_its_source() {
        let cause = std::io::Error::other("connection reset");
        let error = ProcessError::unavailable_because("disk", cause);
        assert_eq!(
            decode(UNAVAILABLE, &encode(&error)),
            Some(ProcessError::unavailable("disk"))
        );
    }

    /// A document this release cannot place: a newer variant, or a code
    /// that is not its variant's, falls back to its display text.
    #[test]
    fn unplaceable_documents_read_as_their_text() {
        let newer = r#"{"error":"from_the_future","message":"conflict: later"}"#;
        assert_eq!(
            decode(CONFLICT, newer),
            Some(ProcessError::conflict("later"))
        );
        assert_eq!(decode(429, newer), None);
        let moved = encode(&ProcessError::conflict("c"));
        assert_eq!(decode(UNKNOWN_PROCESS, &moved), None);
        assert_eq!(
            decode(INVALID_INPUT, &moved),
            Some(ProcessError::invalid("conflict: c"))
        );
    }

    /// The exact texts servers of earlier releases answered and journaled.
    #[test]
    fn display_texts_of_earlier_releases_still_decode() {
        let cases = [
            (
                400,
                "invalid input: key is 300 bytes",
                ProcessError::invalid("key is 300 bytes"),
            ),
            (404, "unknown process `x`", ProcessError::unknown("x")),
            (
                404,
                "unknown process `weird `id` / with ticks`",
                ProcessError::unknown("weird `id` / with ticks"),
            ),
            (
                409,
                "conflict: different registration",
                ProcessError::conflict("different registration"),
            ),
            (
                410,
                "lease on process `p1` has expired",
                ProcessError::LeaseExpired {
                    process_id: "p1".into(),
                },
            ),
            (
                410,
                "process lease for `p1` is missing or expired (lapsed)",
                ProcessError::LeaseExpired {
                    process_id: "p1".into(),
                },
            ),
            (
                412,
                "lease on process `p2` was superseded",
                ProcessError::LeaseSuperseded {
                    process_id: "p2".into(),
                },
            ),
            (
                412,
                "process lease for `p2` is missing or expired (superseded)",
                ProcessError::LeaseSuperseded {
                    process_id: "p2".into(),
                },
            ),
            (
                422,
                "process `p3` is already terminal",
                ProcessError::terminal("p3"),
            ),
            (
                503,
                "registry unavailable: disk",
                ProcessError::unavailable("disk"),
            ),
            (
                400,
                "Cannot decode input payload: invalid input: key is 300 bytes",
                ProcessError::invalid("key is 300 bytes"),
            ),
        ];
        for (code, text, error) in cases {
            assert_eq!(decode(code, text), Some(error), "{code} {text}");
            assert_eq!(readable(text), text);
        }
        // And today's display text of every variant, as those servers send it.
        for error in every_variant(AWKWARD) {
            assert_eq!(decode(code_of(&error), &error.to_string()), Some(error));
        }
    }

    #[test]
    fn refused_input_carries_the_document() {
        let error = ProcessError::invalid(AWKWARD);
        let message = format!("{DECODE_REFUSAL}{}", encode(&error));
        assert_eq!(decode(INVALID_INPUT, &message), Some(error));
    }

    #[test]
    fn foreign_errors_are_not_mistaken_for_model_errors() {
        assert_eq!(decode(404, "service 'Nope' not found"), None);
        assert_eq!(decode(500, "boom"), None);
        assert_eq!(decode(500, &encode(&ProcessError::conflict("c"))), None);
        assert_eq!(
            decode(400, "Cannot decode input payload: EOF"),
            Some(ProcessError::invalid("Cannot decode input payload: EOF"))
        );
        assert_eq!(
            decode(
                400,
                "Cannot decode input payload: invalid input: key is 300 bytes"
            ),
            Some(ProcessError::invalid("key is 300 bytes"))
        );
    }
}
