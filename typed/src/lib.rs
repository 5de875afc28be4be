//! Typed exports: components written for other hosts, which export ordinary functions instead
//! of moat's `tool` interface. Each exported function (at the top level, or in an exported
//! interface) is a tool: its argument schema is derived from the WIT types of its parameters
//! (`schema.rs`), JSON arguments become component values and results JSON (`convert.rs`).
//!
//! This crate knows nothing of moat: it finds the functions ([`discover`]), describes each as
//! a tool with a JSON Schema ([`Tool`], a plain `serde_json::Value`), holds them with the
//! component's [`InstancePre`] for any store data ([`Typed`]), and converts a call's values
//! ([`Function::params`], [`output`]). The host compiles the schemas and turns [`ExportError`]
//! and [`CallError`] into its own errors. In moat such a component gets what any tool gets and
//! nothing more: the import check, the budgets, the guards and the audit log are the same.
//!
//! A function that takes or returns a resource, a future or a stream cannot be a tool; a
//! component exporting one is refused, naming the function and the type.

pub mod convert;
pub mod schema;

use serde_json::Value;
use std::collections::BTreeMap;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Val};
use wasmtime::Engine;

/// Why the exports of a component cannot be offered as tools.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// An exported function that cannot be a tool: `function` is its name, prefixed by its
    /// interface's (`acme:fs/files@1.0.0#close`).
    #[error("exports `{function}`, which cannot be a tool: {reason}")]
    NotATool { function: String, reason: String },
    /// Two exported functions would be the same tool, even with their interfaces' names.
    #[error("tool `{tool}`: two exported functions would be this tool")]
    Clash { tool: String },
}

/// Why a call of an exported function has no output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The arguments are not JSON, or do not fit the parameters: the reason, naming where.
    #[error("{0}")]
    InvalidArguments(String),
    /// The function returned the `err` of its `result`: the error value, as text if it is a
    /// string, else its JSON.
    #[error("{0}")]
    Failed(String),
}

/// An exported function described as a tool.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// The tool's name: the function's (lowercase, a-z, 0-9, `_` and `-`), prefixed with its
    /// interface's where two would be the same.
    pub name: String,
    /// The function, as named in refusals: `name`, or `interface#name`.
    pub function: String,
    /// Its WIT signature, where it comes from, and why it is named as it is.
    pub description: String,
    /// The JSON Schema of its arguments: an object, one property per parameter.
    pub input_schema: Value,
}

/// A component of typed exports, prepared for instantiation in a store of `T`.
pub struct Typed<T: 'static> {
    /// The component, its imports linked.
    pub pre: InstancePre<T>,
    functions: Vec<Function>,
}

impl<T: 'static> Typed<T> {
    pub fn new(pre: InstancePre<T>, functions: Vec<Function>) -> Typed<T> {
        Typed { pre, functions }
    }

    /// The function behind tool `tool`.
    pub fn function(&self, tool: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.tool == tool)
    }
}

/// One exported function offered as a tool.
#[derive(Clone, Debug)]
pub struct Function {
    /// The tool it is.
    pub tool: String,
    /// Where it is among the component's exports.
    pub export: ComponentExportIndex,
    params: Vec<(String, Type)>,
    results: usize,
}

impl Function {
    /// The parameters of a call from its arguments (JSON text); the error says why the
    /// arguments are invalid, naming where.
    pub fn params(&self, args: &str) -> Result<Vec<Val>, CallError> {
        let invalid = CallError::InvalidArguments;
        let args: Value =
            serde_json::from_str(args).map_err(|e| invalid(format!("not JSON: {e}")))?;
        convert::params(&self.params, &args).map_err(|m| invalid(m.to_string()))
    }

    /// Room for the results of a call.
    pub fn results(&self) -> Vec<Val> {
        vec![Val::Bool(false); self.results]
    }
}

/// The output of a call from what the function returned. A `result` is unwrapped: `ok` is
/// the output, `err` the tool's own error ([`CallError::Failed`], the error value, as text if
/// it is a string).
pub fn output(results: &[Val]) -> Result<Value, CallError> {
    let value = match results {
        [] => Value::Null,
        [Val::Result(Ok(ok))] => ok.as_deref().map_or(Value::Null, convert::to_json),
        [Val::Result(Err(err))] => {
            let message = match err.as_deref() {
                None => "it returned an error, without a value".to_owned(),
                Some(Val::String(text)) => text.clone(),
                Some(other) => convert::to_json(other).to_string(),
            };
            return Err(CallError::Failed(message));
        }
        [one] => convert::to_json(one),
        many => Value::Array(many.iter().map(convert::to_json).collect()),
    };
    Ok(value)
}

/// An exported function as found: in which interface, under which name, its type.
struct Found {
    interface: Option<String>,
    name: String,
    export: ComponentExportIndex,
    ty: ComponentFunc,
}

/// The functions `component` exports, each as a tool of file `file` (named in descriptions);
/// `None` if it exports none. Refuses a component with a function that cannot be a tool
/// (resources, futures, streams, async) or whose names cannot be told apart.
pub fn discover(
    engine: &Engine,
    component: &Component,
    file: &str,
) -> Result<Option<Vec<(Function, Tool)>>, ExportError> {
    let found = exported_functions(engine, component);
    if found.is_empty() {
        return Ok(None);
    }
    let names = tool_names(&found);
    let mut tools = Vec::with_capacity(found.len());
    for (found, tool) in found.into_iter().zip(names) {
        let function = match &found.interface {
            Some(interface) => format!("{interface}#{}", found.name),
            None => found.name.clone(),
        };
        let refuse = |reason: String| ExportError::NotATool { function: function.clone(), reason };
        let tool_ok = (1..=64).contains(&tool.len())
            && tool
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !tool_ok {
            return Err(refuse(format!(
                "`{tool}` is not a tool name (1 to 64 of a-z, 0-9, `_`, `-`)"
            )));
        }
        if found.ty.async_() {
            return Err(refuse("it is an async function, which moat cannot call".into()));
        }
        let params: Vec<(String, Type)> =
            found.ty.params().map(|(name, ty)| (name.to_owned(), ty)).collect();
        let results: Vec<Type> = found.ty.results().collect();
        let plain_data = "; only functions of plain data can be tools \
                          (no resources, futures or streams)";
        let input_schema = schema::arguments(params.iter().map(|(n, t)| (n.as_str(), t)))
            .map_err(|u| refuse(format!("its parameter {u}{plain_data}")))?;
        for ty in &results {
            schema::of(ty, "result").map_err(|u| refuse(format!("its {u}{plain_data}")))?;
        }
        let signature = schema::signature(&found.name, &params, &results);
        let mut description = match &found.interface {
            Some(interface) => format!("`{signature}` of `{interface}`, exported by {file}"),
            None => format!("`{signature}`, exported by {file}"),
        };
        description.push_str(
            " (a typed export of a component built for another host: \
             arguments and result converted from its WIT types)",
        );
        if tool != found.name {
            let clash = format!(
                ". Named `{tool}` because another export of the file is also named `{}`",
                found.name
            );
            description.push_str(&clash);
        }
        let described = Tool { name: tool.clone(), function, description, input_schema };
        let function = Function { tool, export: found.export, params, results: results.len() };
        tools.push((function, described));
    }
    check_unique(&tools)?;
    Ok(Some(tools))
}

/// Exports a language's runtime adds for itself, not for callers: (interface, function, its
/// parameter names). componentize-py's pre-initialization entry point is one.
const RUNTIME_EXPORTS: &[(&str, &str, &[&str])] =
    &[("exports", "init", &["app-name", "symbols", "stub-wasi"])];

fn runtime_export(interface: &str, name: &str, ty: &ComponentFunc) -> bool {
    RUNTIME_EXPORTS.iter().any(|(i, n, params)| {
        *i == interface && *n == name && ty.params().map(|(p, _)| p).eq(params.iter().copied())
    })
}

/// Every exported function: the component's own, then those of its exported interfaces
/// (less those its language's runtime added for itself).
fn exported_functions(engine: &Engine, component: &Component) -> Vec<Found> {
    let ty = component.component_type();
    let mut found = Vec::new();
    for (name, item) in ty.exports(engine) {
        let Some(export) = component.get_export_index(None, name) else { continue };
        match item.ty {
            ComponentItem::ComponentFunc(func) => {
                found.push(Found { interface: None, name: name.to_owned(), export, ty: func });
            }
            ComponentItem::ComponentInstance(instance) => {
                for (inner, item) in instance.exports(engine) {
                    let ComponentItem::ComponentFunc(func) = item.ty else { continue };
                    if runtime_export(name, inner, &func) {
                        continue;
                    }
                    let Some(index) = component.get_export_index(Some(&export), inner) else {
                        continue;
                    };
                    let interface = Some(name.to_owned());
                    found.push(Found {
                        interface,
                        name: inner.to_owned(),
                        export: index,
                        ty: func,
                    });
                }
            }
            _ => {}
        }
    }
    found
}

/// The tool name of each function: its own name (lowercase, anything but a-z, 0-9, `_` and
/// `-` as `_`), prefixed with its interface's (`ops_add`) where two would be the same.
fn tool_names(found: &[Found]) -> Vec<String> {
    let plain: Vec<String> = found.iter().map(|f| tool_name(&f.name)).collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &plain {
        *count.entry(name.as_str()).or_default() += 1;
    }
    found
        .iter()
        .zip(&plain)
        .map(|(f, name)| match &f.interface {
            Some(interface) if count[name.as_str()] > 1 => {
                // `acme:calc/ops@1.0.0` is `ops`.
                let short = interface.rsplit('/').next().unwrap_or(interface);
                let short = short.split('@').next().unwrap_or(short);
                format!("{}_{name}", tool_name(short))
            }
            _ => name.clone(),
        })
        .collect()
}

fn tool_name(name: &str) -> String {
    name.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// Checks that no two tools of one component have the same name (after prefixing).
fn check_unique(tools: &[(Function, Tool)]) -> Result<(), ExportError> {
    for (i, (function, _)) in tools.iter().enumerate() {
        if tools[..i].iter().any(|(other, _)| other.tool == function.tool) {
            return Err(ExportError::Clash { tool: function.tool.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
