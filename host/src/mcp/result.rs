//! moat's answers in MCP's shapes: a [`ToolSpec`] as an MCP tool, a [`CallResponse`] as a
//! tool result, and a [`CallError`] as a tool result with `isError: true`.

use crate::call::EffectKind;
use crate::plugin::builtin::READ_MORE;
use crate::plugin::ToolSpec;
use crate::{CallError, CallResponse, WindowInfo};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::{json, Value};
use std::sync::Arc;

/// A loaded tool as MCP lists it. Annotations come from the effects it declares:
/// `readOnlyHint` when it declares nothing beyond `read`, `destructiveHint` when it declares
/// `delete`, `openWorldHint` when it declares `network`.
pub fn tool(spec: &ToolSpec) -> Tool {
    let has = |kind| spec.effects.contains(&kind);
    let read_only = spec.effects.iter().all(|effect| *effect == EffectKind::Read);
    let annotations = ToolAnnotations::new()
        .read_only(read_only)
        .destructive(has(EffectKind::Delete))
        .open_world(has(EffectKind::Network));
    let schema = match &spec.input_schema {
        Value::Object(schema) => schema.clone(),
        _ => object(json!({"type": "object"})),
    };
    Tool::new(spec.name.clone(), spec.description.clone(), Arc::new(schema))
        .with_annotations(annotations)
}

/// A successful call: its output as text, also as `structuredContent` when it is a JSON
/// object; for a windowed output, a second text block saying how to read on (and the
/// window's numbers under `_meta` `moat/window`).
pub fn success(response: &CallResponse) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(response.output.clone())]);
    match &response.window {
        None => {
            if let Ok(Value::Object(fields)) = serde_json::from_str(&response.output) {
                result.structured_content = Some(Value::Object(fields));
            }
        }
        Some(window) => {
            let shown = response.output.len() as u64;
            result.content.push(ContentBlock::text(continues(window, shown)));
            let numbers = json!({
                "cursor": window.cursor,
                "offset": window.offset,
                "bytes": shown,
                "totalBytes": window.total_bytes,
                "tokens": window.tokens,
                "totalTokens": window.total_tokens,
            });
            let meta = rmcp::model::MetaObject(object(json!({ "moat/window": numbers })));
            result = result.with_meta(Some(meta));
        }
    }
    result
}

/// Where a window stands and how to read on, in words.
fn continues(window: &WindowInfo, shown: u64) -> String {
    let end = window.offset + shown;
    let part = format!(
        "bytes {}..{end} of {} ({} of {} tokens)",
        window.offset, window.total_bytes, window.tokens, window.total_tokens
    );
    match &window.cursor {
        Some(cursor) => format!(
            "[moat] The output continues: this part is {part}. To read on, call `{READ_MORE}` \
             with {{\"cursor\": \"{cursor}\"}}."
        ),
        None => format!("[moat] This is the last part of the output: {part}."),
    }
}

/// A refused or failed call, as a tool result the model can act on: the error's text and a
/// hint as content, and `{"error": {"kind", "message", "retryable", "hint", ...}}` as
/// `structuredContent`. `tools` are the names offered, listed for an unknown tool.
pub fn refusal(error: &CallError, tools: &[String]) -> CallToolResult {
    let kind = error.kind();
    let mut message = error.to_string();
    let hint = match error {
        // The tool passing on a refusal of one of its effects by moat's capabilities.
        CallError::Tool { kind: crate::error::ToolErrorKind::Denied, .. } => {
            "moat refused one of the tool's effects (outside its grant, or over a limit): do \
             not retry it unchanged; do less per call, or ask the user."
        }
        _ => hint(kind),
    };
    let mut body = json!({
        "kind": kind,
        "message": message,
        "retryable": retryable(error),
        "hint": hint,
    });
    match error {
        CallError::Breaker(refusal) => {
            body["retryAfterMs"] = json!(refusal.retry_in.as_millis() as u64);
        }
        CallError::UnknownTool(_) => {
            body["tools"] = json!(tools);
            let names = if tools.is_empty() { "none".to_owned() } else { tools.join(", ") };
            message = format!("{message}; the tools are: {names}");
        }
        CallError::Budget(exceeded) => {
            body["budget"] = json!({
                "name": exceeded.budget.to_string(),
                "limit": exceeded.limit,
                "used": exceeded.used,
            });
        }
        _ => {}
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!("{message}. {hint}"))]);
    result.structured_content = Some(json!({ "error": body }));
    result
}

/// Whether the same call, made again unchanged, may succeed: after a breaker's cool-down,
/// a tool's own transient failure, or a problem of the host.
pub fn retryable(error: &CallError) -> bool {
    match error {
        CallError::Breaker(_) | CallError::Host { .. } => true,
        CallError::Tool { kind, .. } => *kind == crate::error::ToolErrorKind::Failed,
        _ => false,
    }
}

/// What the model can do about an error of this kind.
fn hint(kind: &str) -> &'static str {
    match kind {
        "unknown_tool" => "Call one of the listed tools (see tools/list).",
        "invalid_arguments" => "Fix the arguments to match the tool's inputSchema and call again.",
        "budget" => "The call needs more than it may use: do the work in smaller calls.",
        "task_budget" => "This task may make no more calls: finish it or ask the user.",
        "cancelled" => "The call was cancelled and changed nothing.",
        "principal_limit" => {
            "This caller reached a limit over the last hour or day, whatever the task: stop, \
             and tell the user."
        }
        "breaker" => "The tool is failing: wait for retryAfterMs, or do without it.",
        "loop" => "The same call keeps repeating: change the approach instead of retrying.",
        "denied" => "A policy refused this call: do not retry it unchanged; ask the user.",
        "escalation_declined" => "A person declined this call: do not retry it; ask the user.",
        "tool_error" => "The tool reported an error: read it, and change the call if needed.",
        "trapped" | "bad_output" => "The tool crashed or misbehaved: do not retry it unchanged.",
        "rollback_failed" => "Some effects could not be undone: tell the user what is left.",
        "audit" => "moat could not record the call: tell the user; do not retry.",
        _ => "The host could not run the call: retry later, or tell the user.",
    }
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(fields) => fields,
        _ => JsonObject::new(),
    }
}
