//! Components built for other hosts: a component that exports ordinary typed functions, not
//! moat's `tool` interface, offers each function as a tool, with an argument schema derived
//! from its WIT types. Wassette's `eval-py` example (tests/foreign/eval-py, built unchanged)
//! runs through the whole pipeline, sandboxed and under budgets like any tool.

use crate::support::{built, config_in, root, without_controls};
use moat::units::Millis;
use moat::{BudgetKind, BudgetOverrides, Budgets, CallError, CallRequest, Host, LoadError};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// One host over eval-py, shared by its tests: compiling the 36 MB component is most of
/// their time. Its state lives in `target/foreign-state`, emptied when the host starts.
fn eval_py() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let state = root().join("target/foreign-state");
        let _ = std::fs::remove_dir_all(&state);
        let mut config = config_in(&state);
        without_controls(&mut config);
        config.plugins.tools = vec![built("foreign")];
        let (host, errors) = Host::new(config).expect("the engine starts");
        assert!(errors.is_empty(), "unexpected load errors: {errors:?}");
        host
    })
}

/// The output of a call, as JSON.
fn output(host: &Host, tool: &str, args: Value) -> Value {
    let response = host.call(tool, &args.to_string()).unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::from_str(&response.output).expect("the output is JSON")
}

#[test]
fn wassettes_eval_py_offers_eval_and_exec_with_schemas_derived_from_its_wit() {
    let host = eval_py();
    let tools = host.tools();
    // Only its own functions: not the pre-initialization entry point componentize-py adds.
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["eval", "exec"]);
    let tool = |name: &str| {
        tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} is listed"))
    };
    assert_eq!(
        tool("eval").input_schema,
        json!({"type": "object", "properties": {"expression": {"type": "string"}},
               "required": ["expression"], "additionalProperties": false})
    );
    assert_eq!(tool("exec").input_schema["required"], json!(["statements"]));
    let description = &tool("eval").description;
    assert!(
        description.starts_with(
            "`eval(expression: string) -> result<string, string>`, exported by eval-py.wasm"
        ),
        "{description}"
    );
    assert!(tool("eval").effects.is_empty());
    assert_eq!(tool("eval").derived_stakes(), moat::Stakes::Low);
}

#[test]
fn eval_returns_the_value_of_a_python_expression() {
    let host = eval_py();
    // eval-py answers with json.dumps of the value: a string, output as a JSON string.
    assert_eq!(output(host, "eval", json!({"expression": "2 + 3 * 4"})), json!("14"));
    let listed = output(host, "eval", json!({"expression": "[x * x for x in range(4)]"}));
    assert_eq!(listed, json!("[0, 1, 4, 9]"));
}

#[test]
fn a_python_exception_ends_the_call_as_the_tools_own_error_with_its_message() {
    let host = eval_py();
    let error = host.call("eval", r#"{"expression": "1 / 0"}"#).unwrap_err();
    assert_eq!(error.kind(), "tool_error", "{error}");
    assert_eq!(error.to_string(), "tool `eval` failed: ZeroDivisionError: division by zero");
    let error = host.call("exec", r#"{"statements": "raise ValueError('no')"}"#).unwrap_err();
    assert_eq!(error.to_string(), "tool `exec` failed: ValueError: no");
}

#[test]
fn a_wrong_or_missing_argument_is_refused_before_anything_runs() {
    let host = eval_py();
    let refused = |args: &str| match host.call("eval", args) {
        Err(error @ CallError::InvalidArguments { .. }) => error.to_string(),
        other => panic!("{args}: {other:?}"),
    };
    let wrong = refused(r#"{"expression": 42}"#);
    assert!(wrong.starts_with("invalid arguments for `eval`: at /expression:"), "{wrong}");
    assert!(wrong.contains(r#"42 is not of type "string""#), "{wrong}");
    let missing = refused("{}");
    assert!(missing.contains(r#""expression" is a required property"#), "{missing}");
    let extra = refused(r#"{"expression": "1", "also": 2}"#);
    assert!(extra.contains("also"), "{extra}");
}

#[test]
fn the_sandbox_holds_eval_py_cannot_read_a_host_file() {
    let host = eval_py();
    let error = host.call("eval", r#"{"expression": "open('/etc/passwd').read()"}"#).unwrap_err();
    assert!(matches!(error, CallError::Trapped { .. } | CallError::Tool { .. }), "{error:?}");
    assert!(!error.to_string().contains("root:"), "{error}");
    let listing = host.call("eval", r#"{"expression": "__import__('os').listdir('/')"}"#);
    assert!(listing.is_err(), "{listing:?}");
}

#[test]
fn an_endless_loop_ends_at_a_budget_and_the_host_keeps_serving() {
    let host = eval_py();
    let endless = r#"{"statements": "while True: pass"}"#;
    for (budgets, expected) in [
        (BudgetOverrides { fuel: Some(50_000_000), ..Default::default() }, BudgetKind::Fuel),
        (
            BudgetOverrides {
                fuel: Some(u64::MAX / 2),
                wall_time: Some(Millis(1_000)),
                ..Default::default()
            },
            BudgetKind::WallTime,
        ),
    ] {
        let started = Instant::now();
        let request = CallRequest { budgets, ..CallRequest::new("exec", endless) };
        let error = host.run(&request).unwrap_err();
        let budget = error.budget().unwrap_or_else(|| panic!("not a budget error: {error}"));
        assert_eq!(budget.budget, expected, "{error}");
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    }
    assert_eq!(output(host, "eval", json!({"expression": "1 + 1"})), json!("2"));
}

#[test]
fn exec_of_statements_that_succeed_traps_because_the_example_returns_none_for_a_string() {
    // main.py's `exec` returns None where its WIT promises a string: the Python runtime
    // cannot lower that result. A bug of the example, reported as a trap, not hidden.
    let error = eval_py().call("exec", r#"{"statements": "x = 1"}"#).unwrap_err();
    assert_eq!(error.kind(), "trapped", "{error}");
}

/// A host over a directory holding the components `files` (name, component text), with
/// `budgets`; the directory (removed with it) and the load errors.
fn host_of(files: &[(&str, &str)], budgets: Budgets) -> (Host, TempDir, Vec<LoadError>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        let bytes = wat::parse_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(dir.path().join(name), bytes).expect("written");
    }
    let mut config = config_in(dir.path());
    without_controls(&mut config);
    config.plugins.tools = vec![PathBuf::from(dir.path())];
    config.budgets = budgets;
    let (host, errors) = Host::new(config).expect("the engine starts");
    (host, dir, errors)
}

/// `add(a, b)` at the top level and in interface `acme:calc/ops`, `scale(x: f32)`, `spin()`.
const CALC: &str = r#"(component
    (core module $m
        (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
        (func (export "scale") (param f32) (result f32) local.get 0 f32.const 2 f32.mul)
        (func (export "spin") (loop (br 0))))
    (core instance $i (instantiate $m))
    (func $add (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
    (func $scale (param "x" f32) (result f32) (canon lift (core func $i "scale")))
    (func $spin (canon lift (core func $i "spin")))
    (instance $ops (export "add" (func $add)))
    (export "add" (func $add))
    (export "scale" (func $scale))
    (export "spin" (func $spin))
    (export "acme:calc/ops@1.0.0" (instance $ops)))"#;

#[test]
fn every_exported_function_is_a_tool_called_through_the_whole_pipeline() {
    let (host, _dir, errors) = host_of(&[("calc.wasm", CALC)], Budgets::default());
    assert!(errors.is_empty(), "{errors:?}");
    let mut names: Vec<String> = host.tools().into_iter().map(|t| t.name).collect();
    names.sort();
    assert_eq!(names, ["add", "ops_add", "scale", "spin"]);
    assert_eq!(output(&host, "add", json!({"a": 2, "b": 3})), json!(5));
    assert_eq!(output(&host, "ops_add", json!({"a": 40, "b": 2})), json!(42));
    assert_eq!(output(&host, "scale", json!({"x": 1.25})), json!(2.5));
    let too_big = host.call("add", r#"{"a": 4294967296, "b": 0}"#).unwrap_err();
    assert_eq!(too_big.kind(), "invalid_arguments", "{too_big}");
}

#[test]
fn an_argument_the_schema_lets_through_but_the_wit_type_cannot_hold_is_refused_naming_it() {
    let (host, _dir, _) = host_of(&[("calc.wasm", CALC)], Budgets::default());
    let error = host.call("scale", r#"{"x": 1e300}"#).unwrap_err();
    assert_eq!(error.kind(), "invalid_arguments", "{error}");
    assert_eq!(
        error.to_string(),
        "invalid arguments for `scale`: at /x: 1e+300 does not fit an f32"
    );
}

#[test]
fn a_typed_export_runs_under_the_same_budgets() {
    let budgets = Budgets { fuel: 5_000_000, ..Budgets::default() };
    let (host, _dir, _) = host_of(&[("calc.wasm", CALC)], budgets);
    let error = host.call("spin", "{}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "tool `spin` exceeded its fuel budget: limit 5000000 fuel, used 5000000 fuel"
    );
    assert_eq!(output(&host, "add", json!({"a": 1, "b": 1})), json!(2));
}

#[test]
fn a_typed_component_gets_no_import_a_tool_would_not_get() {
    let socket = r#"(component
        (import "acme:net/socket@1.0.0" (instance (export "connect" (func))))
        (core module $m (func (export "run")))
        (core instance $i (instantiate $m))
        (func (export "run") (canon lift (core func $i "run"))))"#;
    let (host, _dir, errors) =
        host_of(&[("calc.wasm", CALC), ("net.wasm", socket)], Budgets::default());
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].to_string();
    assert!(
        message.contains(
            "net.wasm: imports `acme:net/socket@1.0.0`, which this host does not provide"
        ),
        "{message}"
    );
    assert!(host.tools().iter().all(|t| t.name != "run"));
}

#[test]
fn a_function_taking_a_resource_refuses_its_component_naming_the_function() {
    let files = r#"(component
        (type $r (resource (rep i32)))
        (export $file "file" (type $r))
        (core module $m (func (export "close") (param i32)))
        (core instance $i (instantiate $m))
        (func (export "close") (param "handle" (own $file)) (canon lift (core func $i "close"))))"#;
    let (host, _dir, errors) = host_of(&[("files.wasm", files)], Budgets::default());
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].to_string();
    assert!(
        message.contains("files.wasm: exports `close`, which cannot be a tool: its parameter `handle` is a resource"),
        "{message}"
    );
    assert!(host.tools().is_empty());
}
