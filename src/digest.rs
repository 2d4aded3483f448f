//! Content digests: hex SHA-256 of a JSON value's canonical text (object
//! keys sorted, no whitespace), so equal values always hash alike.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of `value`'s canonical JSON.
pub(crate) fn canonical_sha256_hex(value: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_form_escapes_keys_and_strings() {
        let mut out = String::new();
        write_canonical(&json!({"q\"k": "v\n", "n": null}), &mut out);
        assert_eq!(out, r#"{"n":null,"q\"k":"v\n"}"#);
    }

    #[test]
    fn key_order_does_not_change_the_digest() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[{"y":2,"x":3}]}"#).unwrap();
        let b = json!({"a": [{"x": 3, "y": 2}], "b": 1});
        assert_eq!(canonical_sha256_hex(&a), canonical_sha256_hex(&b));
        assert_ne!(
            canonical_sha256_hex(&a),
            canonical_sha256_hex(&json!({"b": 2}))
        );
        assert_eq!(canonical_sha256_hex(&a).len(), 64);
    }
}
