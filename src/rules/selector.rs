//! Evaluating value selectors against event payloads.

use serde_json::Value;

use crate::error::{ProcessError, ProcessResult};
use crate::model::ProcessValueSelector;

/// The selected value, `None` when a pointer finds nothing.
pub fn select(selector: &ProcessValueSelector, payload: &Value) -> Option<Value> {
    match selector {
        ProcessValueSelector::Payload => Some(payload.clone()),
        ProcessValueSelector::Pointer(pointer) => payload.pointer(pointer).cloned(),
        ProcessValueSelector::Const(value) => Some(value.clone()),
    }
}

/// JavaScript-like truthiness: absent, null, false, 0 and "" are false.
pub fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

/// A value as a dedupe key: strings as they are, anything else as JSON text.
pub fn key_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Refuses a pointer selector that is not an RFC 6901 pointer.
pub fn check_selector(type_name: &str, selector: &ProcessValueSelector) -> ProcessResult<()> {
    match selector {
        ProcessValueSelector::Pointer(pointer) if !(pointer.is_empty() || pointer.starts_with('/')) => {
            Err(ProcessError::invalid(format!(
                "event type `{type_name}`: `{pointer}` is not a JSON pointer (it must start with `/`)"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn truthiness_follows_javascript() {
        for falsy in [
            None,
            Some(json!(null)),
            Some(json!(false)),
            Some(json!(0)),
            Some(json!(0.0)),
            Some(json!("")),
        ] {
            assert!(!is_truthy(falsy.as_ref()), "{falsy:?} is falsy");
        }
        for truthy in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("x"),
            json!([]),
            json!({}),
        ] {
            assert!(is_truthy(Some(&truthy)), "{truthy} is truthy");
        }
    }

    #[test]
    fn selectors_pick_values() {
        let payload = json!({"a": {"b": [10, 20]}});
        assert_eq!(
            select(&ProcessValueSelector::Payload, &payload),
            Some(payload.clone())
        );
        assert_eq!(
            select(&ProcessValueSelector::Pointer("/a/b/1".into()), &payload),
            Some(json!(20))
        );
        assert_eq!(
            select(&ProcessValueSelector::Pointer("/missing".into()), &payload),
            None
        );
        assert_eq!(
            select(&ProcessValueSelector::Const(json!("c")), &payload),
            Some(json!("c"))
        );
        assert_eq!(key_text(&json!("plain")), "plain");
        assert_eq!(key_text(&json!({"k": 1})), r#"{"k":1}"#);
    }

    #[test]
    fn pointers_must_be_rfc6901() {
        assert!(check_selector("t", &ProcessValueSelector::Pointer("/ok".into())).is_ok());
        assert!(check_selector("t", &ProcessValueSelector::Pointer(String::new())).is_ok());
        let err =
            check_selector("t", &ProcessValueSelector::Pointer("no-slash".into())).unwrap_err();
        assert!(matches!(err, ProcessError::InvalidInput(_)));
    }
}
