//! Input validation: the arguments are a JSON object valid against the tool's JSON Schema,
//! checked before anything runs.

use crate::error::CallError;
use std::fmt;
use std::sync::Arc;

/// A tool's compiled argument schema.
#[derive(Clone)]
pub struct ArgsSchema(Arc<jsonschema::Validator>);

impl fmt::Debug for ArgsSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArgsSchema")
    }
}

impl ArgsSchema {
    /// Compiles `schema`. No remote or file references are ever fetched.
    pub fn compile(schema: &serde_json::Value) -> Result<ArgsSchema, String> {
        jsonschema::validator_for(schema)
            .map(|v| ArgsSchema(Arc::new(v)))
            .map_err(|e| format!("input schema is not a valid JSON Schema: {e}"))
    }

    /// Checks `args` (JSON text): an object, valid against the schema. The message lists up
    /// to three problems, each with where it is.
    pub fn check(&self, tool: &str, args: &str) -> Result<(), CallError> {
        let invalid =
            |reason: String| CallError::InvalidArguments { tool: tool.to_owned(), reason };
        let value: serde_json::Value =
            serde_json::from_str(args).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if !value.is_object() {
            return Err(invalid(format!("expected a JSON object, got {}", json_kind(&value))));
        }
        let problems: Vec<String> = self
            .0
            .iter_errors(&value)
            .take(3)
            .map(|error| {
                let at = error.instance_path().to_string();
                if at.is_empty() {
                    error.to_string()
                } else {
                    format!("at {at}: {error}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(invalid(problems.join("; ")))
        }
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
