//! Model errors on the wire: each [`ProcessError`] variant travels as a
//! Restate terminal error with its own code, and comes back as the same
//! variant.
//!
//! Codes are HTTP statuses, so a plain ingress caller reads them too.
//! The message is the error's display text, which carries the process id
//! for the variants that name one.

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

/// Rebuilds the error a handler failed with, from its code and message.
///
/// `None` when the pair is not one of ours (an engine error that happens
/// to share a status), so the caller can report it as unavailable.
pub fn decode(code: u16, message: &str) -> Option<ProcessError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_survives_the_wire() {
        let errors = [
            ProcessError::invalid("payload is not an object"),
            ProcessError::unknown("weird `id` / with ticks"),
            ProcessError::conflict("different registration"),
            ProcessError::LeaseExpired {
                process_id: "p1".into(),
            },
            ProcessError::LeaseSuperseded {
                process_id: "p2".into(),
            },
            ProcessError::terminal("p3"),
            ProcessError::unavailable("disk"),
        ];
        let mut codes: Vec<u16> = errors.iter().map(code_of).collect();
        for error in &errors {
            assert_eq!(
                decode(code_of(error), &error.to_string()).as_ref(),
                Some(error)
            );
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len(), "codes must be distinct");
    }

    #[test]
    fn lease_errors_in_the_previous_text_still_decode() {
        assert_eq!(
            decode(LEASE_EXPIRED, "lease on process `p1` has expired"),
            Some(ProcessError::LeaseExpired {
                process_id: "p1".into()
            })
        );
        assert_eq!(
            decode(LEASE_SUPERSEDED, "lease on process `p2` was superseded"),
            Some(ProcessError::LeaseSuperseded {
                process_id: "p2".into()
            })
        );
    }

    #[test]
    fn foreign_errors_are_not_mistaken_for_model_errors() {
        assert_eq!(decode(404, "service 'Nope' not found"), None);
        assert_eq!(decode(500, "boom"), None);
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
