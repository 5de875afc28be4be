//! The example tools do their work, and bad arguments are refused before anything runs.

use crate::support::host;
use moat::{CallError, EffectKind};
use serde_json::{json, Value};

#[test]
fn echo_returns_its_text_as_json() {
    let response = host().call("echo", r#"{"text": "grüße, 世界"}"#).unwrap();
    assert_eq!(response.output, r#""grüße, 世界""#);
    assert!(response.usage.fuel > 0, "a call is metered");
    assert!(response.usage.peak_memory > 0, "memory is tracked");
}

#[test]
fn csv_stats_summarises_numeric_and_text_columns() {
    let csv = "region,sales,units\nnorth,120,3\nsouth,80,\neast,95.5,7\nwest,,2\n";
    let args = json!({ "csv": csv }).to_string();
    let output: Value =
        serde_json::from_str(&host().call("csv_stats", &args).unwrap().output).unwrap();
    assert_eq!(output["rows"], 4);
    let sales = &output["columns"]["sales"];
    assert_eq!(sales["count"], 3);
    assert_eq!(sales["missing"], 1);
    assert_eq!(sales["min"], 80.0);
    assert_eq!(sales["max"], 120.0);
    assert_eq!(sales["median"], 95.5);
    assert_eq!(output["columns"]["region"]["distinct"], 4);
}

#[test]
fn a_tool_reports_its_own_invalid_input_as_a_typed_error() {
    let args = json!({ "csv": "a,b\n1,2\n", "columns": ["c"] }).to_string();
    match host().call("csv_stats", &args) {
        Err(CallError::Tool { message, .. }) => {
            assert!(message.contains("no column `c`"), "{message}")
        }
        other => panic!("expected a tool error, got {other:?}"),
    }
}

#[test]
fn arguments_that_are_not_a_json_object_are_refused_before_the_tool_runs() {
    let host = host();
    for args in ["{\"text\": ", "[1, 2]", "\"text\"", ""] {
        match host.call("echo", args) {
            Err(CallError::InvalidArguments { tool, .. }) => assert_eq!(tool, "echo"),
            other => panic!("{args:?}: expected invalid arguments, got {other:?}"),
        }
    }
}

#[test]
fn an_unknown_tool_is_refused_by_name() {
    let error = host().call("rm_rf", "{}").unwrap_err();
    assert_eq!(error.to_string(), "no tool `rm_rf` is loaded (see `moat tools`)");
}

#[test]
fn tools_describe_themselves_with_a_schema_from_their_argument_type() {
    let host = host();
    let echo = host.tools().find(|t| t.name == "echo").expect("echo is loaded");
    assert_eq!(echo.input_schema["type"], "object");
    assert_eq!(echo.input_schema["required"], json!(["text"]));
    assert_eq!(echo.input_schema["properties"]["text"]["description"], "The text to send back.");
    assert_eq!(echo.effects, Vec::<EffectKind>::new());
    let names: Vec<_> = host.tools().map(|t| t.name.clone()).collect();
    for expected in
        ["csv_stats", "echo", "spin", "grow_memory", "recurse", "huge_output", "panic", "ok"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}
