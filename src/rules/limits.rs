//! Size and shape limits every registry enforces the same way, before it
//! writes anything.
//!
//! | What | Limit | Applies to |
//! |---|---|---|
//! | process id | 1..=[`MAX_PROCESS_ID_BYTES`] (256) bytes, no control characters | every call naming a process |
//! | key | 1..=[`MAX_KEY_BYTES`] (256) bytes, no control characters | session and frame ids, event type names, replay keys, wake dedupe keys, lease owner id / incarnation / host, lease tokens, external ref backend and id, wait name / event type / key, identity kind and definition, handle kind, failure code, host scope, abandon requester, every list-filter string |
//! | text | ≤ [`MAX_TEXT_BYTES`] (4 KiB) | handle label, identity label, abandon reason, failure and cancel messages |
//! | document | ≤ [`MAX_PAYLOAD_BYTES`] (256 KiB) of JSON and ≤ [`MAX_JSON_DEPTH`] (64) nested arrays/objects | event payloads, process input, external ref metadata, outcomes, provenance cause, payload schemas, selector constants |
//! | registration | ≤ [`MAX_PAYLOAD_BYTES`] as a whole | `register_process` |
//! | transfer | ≤ [`MAX_TRANSFER_IDS`] (256) process ids | `transfer_handle_grants` |
//! | lease ttl | 0..=[`MAX_LEASE_TTL_MS`] (30 days) | claims, reclaims, renewals |
//! | template selector | ≤ [`MAX_TEMPLATE_FIELDS`] (32) fields, nested ≤ [`MAX_SELECTOR_DEPTH`] (4) deep, rendering to ≤ [`MAX_PAYLOAD_BYTES`] | wake and terminal selectors |
//! | grants per process | ≤ [`MAX_GRANTS_PER_PROCESS`] (64) scopes | `grant_handle` of a new scope |
//!
//! The depth limit sits far below what serde_json can read back (128), so
//! a document stored inside a row, an event or an index entry (a few
//! levels deeper than it was sent) always stays readable.

use serde::Serialize;
use serde_json::Value;

use crate::error::{ProcessError, ProcessResult};

/// Longest accepted process id, in bytes.
pub const MAX_PROCESS_ID_BYTES: usize = 256;
/// Longest accepted key-like string (ids, names, tokens), in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest accepted human-readable text (labels, reasons, messages), in bytes.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;
/// Largest accepted JSON document (event payload, input, outcome), in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Deepest accepted nesting of arrays and objects in a JSON document
/// (`{}` is 1, `{"a": []}` is 2).
pub const MAX_JSON_DEPTH: usize = 64;
/// Most process ids one transfer may name.
pub const MAX_TRANSFER_IDS: usize = 256;
/// Most grants one process may carry (so its grant map stays bounded).
pub const MAX_GRANTS_PER_PROCESS: usize = 64;
/// Most placeholders one template selector may name.
pub const MAX_TEMPLATE_FIELDS: usize = 32;
/// Deepest nesting of template selectors (a template is depth 1).
pub const MAX_SELECTOR_DEPTH: usize = 4;
/// Longest accepted lease, in milliseconds (30 days).
pub const MAX_LEASE_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// A process id must be non-empty, short and free of control characters.
pub fn check_process_id(process_id: &str) -> ProcessResult<()> {
    check_bounded("process id", process_id, MAX_PROCESS_ID_BYTES)
}

/// A key-like string: non-empty, at most [`MAX_KEY_BYTES`], no control characters.
pub fn check_key(what: &str, value: &str) -> ProcessResult<()> {
    check_bounded(what, value, MAX_KEY_BYTES)
}

/// An optional key-like string, checked when present.
pub fn check_optional_key(what: &str, value: Option<&str>) -> ProcessResult<()> {
    value.map_or(Ok(()), |value| check_key(what, value))
}

/// Human-readable text: at most [`MAX_TEXT_BYTES`] (may be empty).
pub fn check_text(what: &str, value: &str) -> ProcessResult<()> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(ProcessError::invalid(format!(
            "{what} is {} bytes; the limit is {MAX_TEXT_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

fn check_bounded(what: &str, value: &str, limit: usize) -> ProcessResult<()> {
    if value.is_empty() {
        return Err(ProcessError::invalid(format!("{what} must not be empty")));
    }
    if value.len() > limit {
        return Err(ProcessError::invalid(format!(
            "{what} is {} bytes; the limit is {limit}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ProcessError::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// A JSON document: nesting within [`MAX_JSON_DEPTH`], then size within
/// [`MAX_PAYLOAD_BYTES`]. Depth is checked first and without recursion, so
/// an absurdly deep value is refused before anything walks it recursively.
pub fn check_document(what: &str, value: &Value) -> ProcessResult<()> {
    let depth = json_depth(value);
    if depth > MAX_JSON_DEPTH {
        return Err(ProcessError::invalid(format!(
            "{what} nests {depth} levels deep; the limit is {MAX_JSON_DEPTH}"
        )));
    }
    check_size(what, value)
}

/// An optional JSON document, checked when present.
pub fn check_optional_document(what: &str, value: Option<&Value>) -> ProcessResult<()> {
    value.map_or(Ok(()), |value| check_document(what, value))
}

/// A serialized form must fit in [`MAX_PAYLOAD_BYTES`].
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

/// A lease TTL is at most [`MAX_LEASE_TTL_MS`]; 0 is allowed and gives a
/// lease that has already lapsed (any other claim acquires it).
pub fn check_ttl(lease_ttl_ms: u64) -> ProcessResult<()> {
    if lease_ttl_ms > MAX_LEASE_TTL_MS {
        return Err(ProcessError::invalid(format!(
            "lease ttl is {lease_ttl_ms} ms; the limit is {MAX_LEASE_TTL_MS}"
        )));
    }
    Ok(())
}

/// Raw JSON text as a caller sent it: every integer literal must fit in
/// 64 bits (`i64` when negative, `u64` otherwise). serde_json would read a
/// longer one as a float and store a different number than was sent, so
/// the text is refused instead. Floats (with `.`, `e` or `E`) are not
/// integer literals and pass. Only wire decoders need this: a
/// [`Value`] built in Rust carries no literal to lose.
pub fn check_integer_literals(json: &[u8]) -> ProcessResult<()> {
    let mut index = 0;
    while index < json.len() {
        match json[index] {
            b'"' => {
                index += 1;
                while index < json.len() && json[index] != b'"' {
                    index += if json[index] == b'\\' { 2 } else { 1 };
                }
                index += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = index;
                while index < json.len()
                    && matches!(json[index], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    index += 1;
                }
                let literal = &json[start..index];
                let integer = !literal.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
                if integer && !fits_64_bits(literal) {
                    return Err(ProcessError::invalid(format!(
                        "integer {} does not fit in 64 bits; send it as a string",
                        String::from_utf8_lossy(literal)
                    )));
                }
            }
            _ => index += 1,
        }
    }
    Ok(())
}

fn fits_64_bits(literal: &[u8]) -> bool {
    let text = String::from_utf8_lossy(literal);
    if text.starts_with('-') {
        text.parse::<i64>().is_ok()
    } else {
        text.parse::<u64>().is_ok()
    }
}

/// Nesting depth of arrays and objects (a scalar is 0), without recursion.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, above)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = above + 1;
        deepest = deepest.max(depth);
        pending.extend(children.map(|child| (child, depth)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!({})), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": null}]})), 3);
        assert_eq!(json_depth(&nested(MAX_JSON_DEPTH)), MAX_JSON_DEPTH);
    }

    #[test]
    fn documents_at_the_depth_limit_pass_and_one_deeper_does_not() {
        assert!(check_document("doc", &nested(MAX_JSON_DEPTH)).is_ok());
        let err = check_document("doc", &nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().contains("limit is 64"), "{err}");
    }

    #[test]
    fn integer_literals_must_fit_64_bits() {
        assert!(check_integer_literals(
            br#"{"a": 18446744073709551615, "b": -9223372036854775808}"#
        )
        .is_ok());
        assert!(check_integer_literals(br#"{"a": 1.8e400, "b": 1e30, "c": -0.5}"#).is_ok());
        assert!(check_integer_literals(br#"{"big": "18446744073709551616 in a string"}"#).is_ok());
        assert!(check_integer_literals(br#"{"q\"": "\\", "n": 12}"#).is_ok());
        let err = check_integer_literals(br#"{"a": [18446744073709551616]}"#).unwrap_err();
        assert!(err.to_string().contains("18446744073709551616"), "{err}");
        assert!(check_integer_literals(b"-9223372036854775809").is_err());
    }

    #[test]
    fn keys_and_texts_have_exact_limits() {
        assert!(check_key("k", &"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(check_key("k", &"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(check_key("k", "").is_err());
        assert!(check_key("k", "a\nb").is_err());
        assert!(check_text("t", "").is_ok());
        assert!(check_text("t", &"t".repeat(MAX_TEXT_BYTES)).is_ok());
        assert!(check_text("t", &"t".repeat(MAX_TEXT_BYTES + 1)).is_err());
    }
}
