//! Registration: the canonical hash, the first record and re-registration.
//! (Its validation is [`Validate`](super::validate::Validate).)

use crate::digest::canonical_sha256_hex;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{ProcessRecord, ProcessRegistration, ProcessStatus};

/// Hex SHA-256 of the registration's canonical JSON (object keys sorted).
pub fn registration_hash(registration: &ProcessRegistration) -> ProcessResult<String> {
    let value = serde_json::to_value(registration)
        .map_err(|err| ProcessError::invalid(format!("registration is not valid JSON: {err}")))?;
    Ok(canonical_sha256_hex(&value))
}

/// The `Running` row a new registration creates.
pub fn new_record(
    registration: ProcessRegistration,
    registration_hash: String,
    now_ms: u64,
) -> ProcessRecord {
    ProcessRecord {
        id: registration.id,
        input: registration.input,
        disposition: registration.disposition,
        identity: registration.identity,
        event_types: registration.event_types,
        provenance: registration.provenance,
        wake_target: registration.wake_target,
        registration_hash,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        external_ref: None,
        first_started: None,
        abandon_request: None,
        wait: None,
        status: ProcessStatus::Running,
    }
}

/// Registering again: the same registration is fine, another is a conflict.
pub fn check_reregistration(
    existing: &ProcessRecord,
    registration_hash: &str,
) -> ProcessResult<()> {
    if existing.registration_hash == registration_hash {
        Ok(())
    } else {
        Err(ProcessError::conflict(format!(
            "process `{}` is already registered with a different registration",
            existing.id
        )))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::model::{ProcessInput, ProcessProvenance};

    fn with_metadata(metadata: Value) -> ProcessRegistration {
        ProcessRegistration::new(
            "p",
            ProcessInput::External { metadata },
            ProcessProvenance::host(),
        )
    }

    #[test]
    fn hash_ignores_key_order_but_not_content() {
        let mut forward = serde_json::Map::new();
        forward.insert("a".into(), json!(1));
        forward.insert("b".into(), json!({"y": 2, "x": [3]}));
        let mut backward = serde_json::Map::new();
        backward.insert("b".into(), json!({"x": [3], "y": 2}));
        backward.insert("a".into(), json!(1));
        let one = registration_hash(&with_metadata(Value::Object(forward))).unwrap();
        let two = registration_hash(&with_metadata(Value::Object(backward))).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.len(), 64);
        let other = registration_hash(&with_metadata(json!({"a": 2}))).unwrap();
        assert_ne!(one, other);
    }
}
