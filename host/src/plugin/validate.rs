//! Input validation: the arguments are a JSON object valid against the tool's JSON Schema,
//! checked before anything runs. And the nesting limit of JSON a plugin hands on (outputs,
//! rewrites), so that nothing moat passes to an agent breaks a parser.

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

/// How deep JSON may nest: serde_json's limit, and about where other parsers stop too.
pub const MAX_JSON_DEPTH: usize = 128;

/// Checks that `json` (already known to be valid JSON) nests arrays and objects at most
/// [`MAX_JSON_DEPTH`] deep. A scan, not a parse: no recursion, no allocation.
pub fn check_depth(json: &str) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in json.bytes() {
        match (in_string, byte) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"));
                }
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _) => {}
        }
    }
    Ok(())
}

/// Checks a tool's output: JSON, as the contract promises, nested no deeper than
/// [`check_depth`] allows.
pub fn check_output(tool: &str, output: &str) -> Result<(), CallError> {
    let bad = |reason: String| CallError::BadOutput { tool: tool.to_owned(), reason };
    serde_json::from_str::<serde::de::IgnoredAny>(output).map_err(|e| bad(e.to_string()))?;
    check_depth(output).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check_depth(&deep(MAX_JSON_DEPTH)), Ok(()));
        assert!(check_depth(&deep(MAX_JSON_DEPTH + 1)).is_err());
        let brackets_in_a_string =
            format!("{{\"a\": \"{}\\\" {}\"}}", "[".repeat(500), "{".repeat(500));
        assert_eq!(check_depth(&brackets_in_a_string), Ok(()));
        let objects = format!("{}1{}", "{\"k\":".repeat(200), "}".repeat(200));
        assert!(check_depth(&objects).unwrap_err().contains("deeper than 128"));
    }
}
