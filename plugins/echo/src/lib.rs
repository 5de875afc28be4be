//! `echo`: returns the text it is given; the smallest useful moat tool.

use moat_guest::{export_tools, Deserialize, JsonSchema, Tool, ToolError};

/// Arguments of `echo`.
#[derive(Deserialize, JsonSchema)]
struct Args {
    /// The text to send back.
    text: String,
}

fn echo(args: Args) -> Result<String, ToolError> {
    Ok(args.text)
}

export_tools!(Tool::new("echo", "Returns the text it is given, unchanged.", echo));
