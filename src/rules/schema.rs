//! Payload schemas: checked when a process registers, applied on every append.

use serde_json::Value;

use crate::error::{ProcessError, ProcessResult};
use crate::model::PayloadSchema;

/// Refuses a schema that is not a valid JSON Schema document.
pub fn check_schema(type_name: &str, schema: &PayloadSchema) -> ProcessResult<()> {
    if schema.as_json() == &Value::Bool(true) {
        return Ok(());
    }
    jsonschema::validator_for(schema.as_json())
        .map(drop)
        .map_err(|err| {
            ProcessError::invalid(format!(
                "event type `{type_name}` has an invalid payload schema: {err}"
            ))
        })
}

/// Refuses a payload its type's schema rejects, naming the first violation.
pub fn check_payload(
    type_name: &str,
    schema: &PayloadSchema,
    payload: &Value,
) -> ProcessResult<()> {
    if schema.as_json() == &Value::Bool(true) {
        return Ok(());
    }
    let validator = jsonschema::validator_for(schema.as_json()).map_err(|err| {
        ProcessError::invalid(format!(
            "event type `{type_name}` has an invalid payload schema: {err}"
        ))
    })?;
    validator.validate(payload).map_err(|err| {
        ProcessError::invalid(format!(
            "payload for `{type_name}` violates its schema at `{}`: {err}",
            err.instance_path()
        ))
    })
}
