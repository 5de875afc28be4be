//! Typed exports as moat's tools: the `moat-typed` crate finds the functions of a component
//! built for another host and converts their values; here each becomes a [`ToolSpec`] (its
//! argument schema compiled, no effects, version 0.0.0) and the crate's errors become moat's
//! (`LoadProblem`, `CallError`). `exec.rs` runs them (`call_typed`).

use crate::error::{CallError, LoadProblem, ToolErrorKind};
use crate::plugin::validate::ArgsSchema;
use crate::plugin::ToolSpec;
use crate::runtime::exec::CallState;
use moat_typed::ExportError;
use wasmtime::component::{Component, Val};
use wasmtime::Engine;

pub(crate) use moat_typed::Function;

/// A component of typed exports, prepared for instantiation in a call's store.
pub(crate) type Typed = moat_typed::Typed<CallState>;

/// The functions `component` exports, each as a tool of file `file`; `None` if it exports
/// none. Refuses a component with a function that cannot be a tool, whose names cannot be
/// told apart, or whose derived schema does not compile.
pub(crate) fn discover(
    engine: &Engine,
    component: &Component,
    file: &str,
) -> Result<Option<Vec<(Function, ToolSpec)>>, LoadProblem> {
    let Some(found) = moat_typed::discover(engine, component, file).map_err(refused)? else {
        return Ok(None);
    };
    let mut tools = Vec::with_capacity(found.len());
    for (function, tool) in found {
        let schema = ArgsSchema::compile(&tool.input_schema)
            .map_err(|reason| LoadProblem::TypedExport { function: tool.function, reason })?;
        let spec = ToolSpec {
            name: tool.name,
            description: tool.description,
            input_schema: tool.input_schema,
            output_schema: None,
            effects: Vec::new(),
            stakes: None,
            version: "0.0.0".into(),
            schema,
        };
        tools.push((function, spec));
    }
    Ok(Some(tools))
}

fn refused(error: ExportError) -> LoadProblem {
    match error {
        ExportError::NotATool { function, reason } => LoadProblem::TypedExport { function, reason },
        ExportError::Clash { tool } => LoadProblem::BadToolInfo {
            tool,
            reason: "two exported functions would be this tool".into(),
        },
    }
}

/// The output of a call of `tool` from what the function returned: JSON text; an `err` is
/// the tool's own error (kind `failed`).
pub(crate) fn output(tool: &str, results: &[Val]) -> Result<String, CallError> {
    moat_typed::output(results)
        .map(|value| value.to_string())
        .map_err(|error| call_error(tool, error))
}

/// A call's error from the crate's.
pub(crate) fn call_error(tool: &str, error: moat_typed::CallError) -> CallError {
    let tool = tool.to_owned();
    match error {
        moat_typed::CallError::InvalidArguments(reason) => {
            CallError::InvalidArguments { tool, reason }
        }
        moat_typed::CallError::Failed(message) => {
            CallError::Tool { tool, kind: ToolErrorKind::Failed, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_exports_are_read_only_tools_whose_errors_are_moats() {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).unwrap();
        let text = r#"(component
            (core module $m (func (export "add") (param i32 i32) (result i32) local.get 0))
            (core instance $i (instantiate $m))
            (func $add (param "a" u32) (param "b" u32) (result u32)
                (canon lift (core func $i "add")))
            (export "add" (func $add)))"#;
        let component = Component::new(&engine, text).unwrap();
        let tools = discover(&engine, &component, "calc.wasm").unwrap().expect("functions");
        let (function, spec) = &tools[0];
        assert_eq!((spec.name.as_str(), spec.version.as_str()), ("add", "0.0.0"));
        assert!(spec.effects.is_empty() && spec.stakes.is_none());
        assert!(spec.schema.check("add", r#"{"a": 1, "b": 2}"#).is_ok());
        let invalid = call_error("add", function.params(r#"{"a": 1}"#).unwrap_err());
        assert_eq!(
            invalid.to_string(),
            CallError::InvalidArguments {
                tool: "add".into(),
                reason: "missing argument `b`".into(),
            }
            .to_string()
        );
        let err = Val::Result(Err(Some(Box::new(Val::String("ZeroDivisionError: x".into())))));
        match output("eval", &[err]) {
            Err(error @ CallError::Tool { .. }) => {
                assert_eq!(error.to_string(), "tool `eval` failed: ZeroDivisionError: x");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(output("t", &[Val::U8(4)]).unwrap(), "4");
        let clash = refused(ExportError::Clash { tool: "ops_add".into() });
        assert_eq!(clash.to_string(), "tool `ops_add`: two exported functions would be this tool");
    }
}
