//! `{{tool}}`: a moat tool (made by `moat new tool {{name}} --lang rust`). It counts the
//! characters of a text; replace that with what your tool does.
//!
//! Built into a component by `just plugins` (`moat new` said where); its cases are in
//! cases.json next to this crate, checked by `just test`.

use moat_guest::{export_tools, serde_json, Deserialize, JsonSchema, Tool, ToolError};

/// Arguments of `{{tool}}`: the JSON Schema the agent sees is derived from this type.
#[derive(Deserialize, JsonSchema)]
struct Args {
    /// The text to look at.
    text: String,
}

/// The output is any `Serialize` value, sent to the agent as JSON.
fn run(args: Args) -> Result<serde_json::Value, ToolError> {
    if args.text.is_empty() {
        return Err(ToolError::InvalidInput("`text` is empty".into()));
    }
    let characters = args.text.chars().count();
    Ok(serde_json::json!({"text": args.text, "characters": characters}))
}

export_tools!(Tool::new("{{tool}}", "Counts the characters of a text.", run));
