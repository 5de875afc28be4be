//! The `_meta` keys of a `tools/call` request that moat reads: which task and session the
//! call belongs to, and what the agent says about it.
//!
//! Every key is optional:
//!
//! | key                | type              | becomes                                         |
//! |--------------------|-------------------|-------------------------------------------------|
//! | `moat/task`        | string            | the task (default: the MCP session)             |
//! | `moat/session`     | string            | the session `check-call` sees (default: task)   |
//! | `moat/confidence`  | number, 0 to 1    | the agent's confidence in this call             |
//! | `moat/reasoning`   | string            | the model's reasoning (guards, audit log)       |
//! | `moat/modelTokens` | unsigned integer  | tokens the model spent on this step             |
//! | `moat/prompt`      | string            | the task's prompt, recorded when it starts      |
//! | `moat/taskOutput`  | string            | the task's final output: the task ends          |
//!
//! A key of the wrong type is a protocol error (`-32602`, invalid params): it is the
//! client's mistake, not the model's. Keys moat does not know are ignored.

use serde_json::{Map, Value};

pub const TASK: &str = "moat/task";
pub const SESSION: &str = "moat/session";
pub const CONFIDENCE: &str = "moat/confidence";
pub const REASONING: &str = "moat/reasoning";
pub const MODEL_TOKENS: &str = "moat/modelTokens";
pub const PROMPT: &str = "moat/prompt";
pub const TASK_OUTPUT: &str = "moat/taskOutput";

/// What a call's `_meta` says, typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallMeta {
    pub task: Option<String>,
    pub session: Option<String>,
    pub confidence: Option<f64>,
    pub reasoning: Option<String>,
    pub model_tokens: Option<u64>,
    pub prompt: Option<String>,
    pub task_output: Option<String>,
}

/// A `_meta` key holding a value of the wrong type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`_meta` key `{key}` must be {expected}")]
pub struct MetaError {
    pub key: &'static str,
    pub expected: &'static str,
}

impl CallMeta {
    /// Reads the keys above from a request's `_meta` object.
    pub fn parse(meta: &Map<String, Value>) -> Result<CallMeta, MetaError> {
        let text = |key: &'static str| match meta.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(MetaError { key, expected: "a string" }),
        };
        let confidence = match meta.get(CONFIDENCE) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => return Err(MetaError { key: CONFIDENCE, expected: "a number from 0 to 1" }),
        };
        let model_tokens = match meta.get(MODEL_TOKENS) {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .ok_or(MetaError { key: MODEL_TOKENS, expected: "a non-negative integer" })?,
            ),
        };
        Ok(CallMeta {
            task: text(TASK)?,
            session: text(SESSION)?,
            confidence,
            reasoning: text(REASONING)?,
            model_tokens,
            prompt: text(PROMPT)?,
            task_output: text(TASK_OUTPUT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<CallMeta, MetaError> {
        CallMeta::parse(value.as_object().expect("an object"))
    }

    #[test]
    fn every_key_is_read_and_unknown_keys_are_ignored() {
        let meta = parse(json!({
            "moat/task": "t1", "moat/session": "s1", "moat/confidence": 0.9,
            "moat/reasoning": "why", "moat/modelTokens": 1200, "moat/prompt": "do it",
            "moat/taskOutput": "done", "progressToken": 3
        }))
        .unwrap();
        assert_eq!(meta.task.as_deref(), Some("t1"));
        assert_eq!(meta.session.as_deref(), Some("s1"));
        assert_eq!(meta.confidence, Some(0.9));
        assert_eq!(meta.reasoning.as_deref(), Some("why"));
        assert_eq!(meta.model_tokens, Some(1200));
        assert_eq!(meta.prompt.as_deref(), Some("do it"));
        assert_eq!(meta.task_output.as_deref(), Some("done"));
        assert_eq!(parse(json!({})).unwrap(), CallMeta::default());
    }

    #[test]
    fn a_key_of_the_wrong_type_is_named() {
        let error = parse(json!({"moat/confidence": "high"})).unwrap_err();
        assert_eq!(error.to_string(), "`_meta` key `moat/confidence` must be a number from 0 to 1");
        let error = parse(json!({"moat/task": 7})).unwrap_err();
        assert_eq!(error.key, TASK);
        let error = parse(json!({"moat/modelTokens": -1})).unwrap_err();
        assert_eq!(error.key, MODEL_TOKENS);
    }
}
