//! Size and shape limits every registry enforces the same way.

use serde::Serialize;

use crate::error::{ProcessError, ProcessResult};

/// Longest accepted process id, in bytes.
pub const MAX_PROCESS_ID_BYTES: usize = 256;
/// Largest accepted JSON document (event payload, input, outcome), in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// A process id must be non-empty, short and free of control characters.
pub fn check_process_id(process_id: &str) -> ProcessResult<()> {
    if process_id.is_empty() {
        return Err(ProcessError::invalid("process id must not be empty"));
    }
    if process_id.len() > MAX_PROCESS_ID_BYTES {
        return Err(ProcessError::invalid(format!(
            "process id is {} bytes; the limit is {MAX_PROCESS_ID_BYTES}",
            process_id.len()
        )));
    }
    if process_id.chars().any(char::is_control) {
        return Err(ProcessError::invalid(
            "process id must not contain control characters",
        ));
    }
    Ok(())
}

/// A document's JSON form must fit in [`MAX_PAYLOAD_BYTES`].
pub fn check_size(what: &str, value: &impl Serialize) -> ProcessResult<()> {
    let bytes = serde_json::to_vec(value)
        .map_err(|err| ProcessError::invalid(format!("{what} is not valid JSON: {err}")))?
        .len();
    if bytes > MAX_PAYLOAD_BYTES {
        return Err(ProcessError::invalid(format!(
            "{what} is {bytes} bytes; the limit is {MAX_PAYLOAD_BYTES}"
        )));
    }
    Ok(())
}

/// A lease TTL must be positive.
pub fn check_ttl(lease_ttl_ms: u64) -> ProcessResult<()> {
    if lease_ttl_ms == 0 {
        return Err(ProcessError::invalid("lease ttl must be positive"));
    }
    Ok(())
}
