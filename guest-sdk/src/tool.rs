//! `Tool`: one tool's description and its typed handler, erased to JSON in and JSON out.

use crate::bindings::moat::plugin::types::{EffectKind, Stakes as WitStakes, ToolError, ToolInfo};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A kind of effect a tool may have on the world; see `effect-kind` in `wit/types.wit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Read,
    Write,
    Delete,
    Network,
    Send,
}

/// How much harm a wrong call can do; see `stakes` in `wit/types.wit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stakes {
    Low,
    Medium,
    High,
}

type Handler = Box<dyn Fn(&str) -> Result<String, ToolError>>;

/// One tool: a name, a description, the JSON Schema of its arguments, its declared effects
/// and a handler from typed arguments to a serializable result.
pub struct Tool {
    name: &'static str,
    description: &'static str,
    schema: String,
    effects: Vec<Effect>,
    stakes: Option<Stakes>,
    version: &'static str,
    handler: Handler,
}

impl Tool {
    /// A tool whose argument schema is derived from `A` (doc comments become descriptions).
    pub fn new<A, R>(
        name: &'static str,
        description: &'static str,
        handler: fn(A) -> Result<R, ToolError>,
    ) -> Tool
    where
        A: DeserializeOwned + JsonSchema + 'static,
        R: Serialize + 'static,
    {
        let schema = schemars::schema_for!(A);
        let schema = serde_json::to_string(&schema).unwrap_or_else(|_| "{}".to_owned());
        Tool::with_schema(name, description, schema, handler)
    }

    /// A tool whose argument schema is written by hand, as JSON Schema text.
    pub fn with_schema<A, R>(
        name: &'static str,
        description: &'static str,
        schema: impl Into<String>,
        handler: fn(A) -> Result<R, ToolError>,
    ) -> Tool
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
    {
        Tool {
            name,
            description,
            schema: schema.into(),
            effects: Vec::new(),
            stakes: None,
            version: "0.1.0",
            handler: Box::new(move |args| run_typed(name, handler, args)),
        }
    }

    /// Declares the effects the tool may have (none by default: read-only and pure).
    pub fn effects(mut self, effects: &[Effect]) -> Tool {
        self.effects = effects.to_vec();
        self
    }

    /// Overrides the stakes the host would derive from the effects.
    pub fn stakes(mut self, stakes: Stakes) -> Tool {
        self.stakes = Some(stakes);
        self
    }

    /// Sets the version recorded in the audit log (default `0.1.0`).
    pub fn version(mut self, version: &'static str) -> Tool {
        self.version = version;
        self
    }

    pub(crate) fn name(&self) -> &str {
        self.name
    }

    pub(crate) fn info(&self) -> ToolInfo {
        ToolInfo {
            name: self.name.to_owned(),
            description: self.description.to_owned(),
            input_schema: self.schema.clone(),
            output_schema: None,
            effects: self.effects.iter().map(|e| effect_kind(*e)).collect(),
            stakes: self.stakes.map(|s| match s {
                Stakes::Low => WitStakes::Low,
                Stakes::Medium => WitStakes::Medium,
                Stakes::High => WitStakes::High,
            }),
            version: self.version.to_owned(),
        }
    }

    pub(crate) fn run(&self, args: &str) -> Result<String, ToolError> {
        (self.handler)(args)
    }
}

fn effect_kind(effect: Effect) -> EffectKind {
    match effect {
        Effect::Read => EffectKind::Read,
        Effect::Write => EffectKind::Write,
        Effect::Delete => EffectKind::Delete,
        Effect::Network => EffectKind::Network,
        Effect::Send => EffectKind::Send,
    }
}

fn run_typed<A, R>(
    name: &str,
    handler: fn(A) -> Result<R, ToolError>,
    args: &str,
) -> Result<String, ToolError>
where
    A: DeserializeOwned,
    R: Serialize,
{
    let args: A = serde_json::from_str(args)
        .map_err(|e| ToolError::InvalidInput(format!("invalid arguments for `{name}`: {e}")))?;
    let output = handler(args)?;
    serde_json::to_string(&output)
        .map_err(|e| ToolError::Failed(format!("`{name}` produced an unserializable result: {e}")))
}
