//! Evaluating value selectors against event payloads.

use serde_json::Value;

use super::limits::{MAX_PAYLOAD_BYTES, MAX_SELECTOR_DEPTH, MAX_TEMPLATE_FIELDS};
use crate::error::{ProcessError, ProcessResult};
use crate::model::ProcessValueSelector;

/// The selected value, `None` when a pointer (or a template field's
/// pointer) finds nothing. Fails only when a template renders to more than
/// [`MAX_PAYLOAD_BYTES`], so a stored wake stays readable.
pub fn select(selector: &ProcessValueSelector, payload: &Value) -> ProcessResult<Option<Value>> {
    Ok(match selector {
        ProcessValueSelector::Payload => Some(payload.clone()),
        ProcessValueSelector::Pointer(pointer) => payload.pointer(pointer).cloned(),
        ProcessValueSelector::Const(value) => Some(value.clone()),
        ProcessValueSelector::Present(pointer) => {
            Some(Value::Bool(payload.pointer(pointer).is_some()))
        }
        ProcessValueSelector::Template { template, fields } => {
            let mut rendered = template.clone();
            for (name, field) in fields {
                let Some(value) = select(field, payload)? else {
                    return Ok(None);
                };
                rendered = rendered.replace(&format!("{{{name}}}"), &key_text(&value));
                if rendered.len() > MAX_PAYLOAD_BYTES {
                    return Err(ProcessError::invalid(format!(
                        "template `{template}` renders to more than {MAX_PAYLOAD_BYTES} bytes"
                    )));
                }
            }
            Some(Value::String(rendered))
        }
    })
}

/// The original's truthiness: absent, null, false, and empty strings,
/// arrays and objects are false; every number (0 too) is true.
pub fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(_)) => true,
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
    }
}

/// A value as a dedupe key: strings as they are, anything else as JSON text.
pub fn key_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Refuses a pointer that is not an RFC 6901 pointer, a template with too
/// many fields, and templates nested deeper than [`MAX_SELECTOR_DEPTH`].
/// Sizes of texts and constants are checked by the caller's limits.
pub fn check_selector(type_name: &str, selector: &ProcessValueSelector) -> ProcessResult<()> {
    check_at_depth(type_name, selector, 1)
}

fn check_at_depth(
    type_name: &str,
    selector: &ProcessValueSelector,
    depth: usize,
) -> ProcessResult<()> {
    match selector {
        ProcessValueSelector::Pointer(pointer) | ProcessValueSelector::Present(pointer)
            if !(pointer.is_empty() || pointer.starts_with('/')) =>
        {
            Err(ProcessError::invalid(format!(
                "event type `{type_name}`: `{pointer}` is not a JSON pointer (it must start with `/`)"
            )))
        }
        ProcessValueSelector::Template { fields, .. } => {
            if depth > MAX_SELECTOR_DEPTH {
                return Err(ProcessError::invalid(format!(
                    "event type `{type_name}`: templates nest at most {MAX_SELECTOR_DEPTH} deep"
                )));
            }
            if fields.len() > MAX_TEMPLATE_FIELDS {
                return Err(ProcessError::invalid(format!(
                    "event type `{type_name}`: a template has at most {MAX_TEMPLATE_FIELDS} fields"
                )));
            }
            fields
                .values()
                .try_for_each(|field| check_at_depth(type_name, field, depth + 1))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn truthiness_follows_the_original() {
        for falsy in [
            None,
            Some(json!(null)),
            Some(json!(false)),
            Some(json!("")),
            Some(json!([])),
            Some(json!({})),
        ] {
            assert!(!is_truthy(falsy.as_ref()), "{falsy:?} is falsy");
        }
        for truthy in [
            json!(true),
            json!(0),
            json!(0.0),
            json!(-0.5),
            json!("x"),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(is_truthy(Some(&truthy)), "{truthy} is truthy");
        }
    }

    #[test]
    fn selectors_pick_values() {
        let payload = json!({"a": {"b": [10, 20]}});
        let pick = |selector: ProcessValueSelector| select(&selector, &payload).unwrap();
        assert_eq!(pick(ProcessValueSelector::Payload), Some(payload.clone()));
        assert_eq!(
            pick(ProcessValueSelector::Pointer("/a/b/1".into())),
            Some(json!(20))
        );
        assert_eq!(pick(ProcessValueSelector::Pointer("/missing".into())), None);
        assert_eq!(
            pick(ProcessValueSelector::Const(json!("c"))),
            Some(json!("c"))
        );
        assert_eq!(
            pick(ProcessValueSelector::Present("/a/b".into())),
            Some(json!(true))
        );
        assert_eq!(
            pick(ProcessValueSelector::Present("/a/c".into())),
            Some(json!(false))
        );
        assert_eq!(key_text(&json!("plain")), "plain");
        assert_eq!(key_text(&json!({"k": 1})), r#"{"k":1}"#);
    }

    fn template(text: &str, fields: &[(&str, ProcessValueSelector)]) -> ProcessValueSelector {
        ProcessValueSelector::Template {
            template: text.to_owned(),
            fields: fields
                .iter()
                .map(|(name, field)| ((*name).to_owned(), field.clone()))
                .collect(),
        }
    }

    #[test]
    fn templates_render_their_fields() {
        let payload = json!({"line": "done", "n": 7});
        let line = ProcessValueSelector::Pointer("/line".into());
        let n = ProcessValueSelector::Pointer("/n".into());
        let rendered = template(
            "line {line} #{n}, {line}",
            &[("line", line.clone()), ("n", n)],
        );
        assert_eq!(
            select(&rendered, &payload).unwrap(),
            Some(json!("line done #7, done"))
        );
        let missing = template("{x}", &[("x", ProcessValueSelector::Pointer("/x".into()))]);
        assert_eq!(select(&missing, &payload).unwrap(), None);
        let nested = template(
            "<{inner}>",
            &[("inner", template("{line}", &[("line", line)]))],
        );
        assert_eq!(select(&nested, &payload).unwrap(), Some(json!("<done>")));
    }

    #[test]
    fn a_template_cannot_render_past_the_document_limit() {
        let big = json!({"s": "x".repeat(MAX_PAYLOAD_BYTES / 2)});
        let twice = template(
            "{s}{s}{s}",
            &[("s", ProcessValueSelector::Pointer("/s".into()))],
        );
        let err = select(&twice, &big).unwrap_err();
        assert!(matches!(err, ProcessError::InvalidInput(_)), "{err}");
    }

    #[test]
    fn templates_are_bounded_in_fields_and_depth() {
        let wide: Vec<(String, ProcessValueSelector)> = (0..=MAX_TEMPLATE_FIELDS)
            .map(|i| (format!("f{i}"), ProcessValueSelector::Payload))
            .collect();
        let wide = ProcessValueSelector::Template {
            template: String::new(),
            fields: wide.into_iter().collect(),
        };
        assert!(check_selector("t", &wide).is_err());
        let mut deep = ProcessValueSelector::Payload;
        for _ in 0..MAX_SELECTOR_DEPTH {
            deep = template("{x}", &[("x", deep)]);
        }
        assert!(check_selector("t", &deep).is_ok());
        let deeper = template("{x}", &[("x", deep)]);
        assert!(check_selector("t", &deeper).is_err());
        let bad_pointer = template("{x}", &[("x", ProcessValueSelector::Present("x".into()))]);
        assert!(check_selector("t", &bad_pointer).is_err());
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
