//! `bench_echo_00`: the echo tool under a name that `just bench` rewrites in the component's
//! bytes (`00` to `01` ... `49`), which makes 50 distinct components with 50 distinct tools
//! for the load benchmark. The name is the only place the text `bench_echo_00` occurs.

use moat_guest::{export_tools, Deserialize, JsonSchema, Tool, ToolError};

/// Arguments of the tool.
#[derive(Deserialize, JsonSchema)]
struct Args {
    /// The text to send back.
    text: String,
}

fn echo(args: Args) -> Result<String, ToolError> {
    Ok(args.text)
}

export_tools!(Tool::new("bench_echo_00", "Returns the text it is given, unchanged.", echo));
