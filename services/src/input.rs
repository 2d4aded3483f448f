//! [`Input`]: how every ingress-facing handler reads its request.
//!
//! Decoding is where a caller's bytes first meet the registry, so the whole
//! validation layer runs here, before the handler body can read or write
//! any state: integer literals must fit 64 bits (serde_json would otherwise
//! store a different number), the body must parse as `T`, and `T` must pass
//! its [`Validate`] checks (sizes, nesting depth, well-formed names). A
//! refusal is a terminal 400 that the client maps back to
//! `ProcessError::InvalidInput` with the same text the in-memory registry
//! gives; the invocation never runs, so nothing is written.

use std::fmt;

use bytes::Bytes;
use restate_process_registry::restate::codes::encode;
use restate_process_registry::rules::limits::check_integer_literals;
use restate_process_registry::rules::validate::Validate;
use restate_process_registry::ProcessError;
use restate_sdk::serde::{Deserialize, PayloadMetadata, Serialize};

/// A validated handler input.
pub(crate) struct Input<T>(pub T);

impl<T> Input<T> {
    /// The validated value.
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

/// Why an input was refused; reads as the model error it stands for.
pub(crate) struct Refused(ProcessError);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

// The SDK puts the Debug form into the 400 it answers with: make it the
// model error's wire document so the client can read it back.
impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(&self.0))
    }
}

impl std::error::Error for Refused {}

impl<T> Deserialize for Input<T>
where
    T: serde::de::DeserializeOwned + Validate,
{
    type Error = Refused;

    fn deserialize(bytes: &mut Bytes) -> Result<Self, Self::Error> {
        check_integer_literals(bytes).map_err(Refused)?;
        let value: T = serde_json::from_slice(bytes)
            .map_err(|err| Refused(ProcessError::invalid(format!("malformed request: {err}"))))?;
        value.validate().map_err(Refused)?;
        Ok(Self(value))
    }
}

impl<T: serde::Serialize> Serialize for Input<T> {
    type Error = serde_json::Error;

    fn serialize(&self) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(&self.0).map(Bytes::from)
    }
}

impl<T> PayloadMetadata for Input<T> {}

#[cfg(test)]
mod tests {
    use restate_process_registry::restate::codes::{decode, INVALID_INPUT};

    use super::*;

    /// The SDK answers `Cannot decode input payload: {refused:?}` with a 400.
    #[test]
    fn a_refusal_reads_back_as_invalid_input() {
        let refused = Input::<u64>::deserialize(&mut Bytes::from_static(b"\"`one`\\n\""))
            .err()
            .expect("a string is no number");
        let Refused(error) = &refused;
        assert!(matches!(error, ProcessError::InvalidInput(_)), "{error:?}");
        let answer = format!("Cannot decode input payload: {refused:?}");
        assert_eq!(decode(INVALID_INPUT, &answer).as_ref(), Some(error));
    }
}
