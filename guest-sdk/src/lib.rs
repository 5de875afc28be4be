//! Write moat tools in Rust: typed arguments through serde, a JSON Schema derived from the
//! argument type (or written next to it), and one export macro.
//!
//! ```ignore
//! use moat_guest::{export_tools, Deserialize, JsonSchema, Tool, ToolError};
//!
//! /// Arguments of `echo`.
//! #[derive(Deserialize, JsonSchema)]
//! struct Args {
//!     /// The text to send back.
//!     text: String,
//! }
//!
//! fn echo(args: Args) -> Result<String, ToolError> {
//!     Ok(args.text)
//! }
//!
//! export_tools!(Tool::new("echo", "Returns the text it is given.", echo));
//! ```
//!
//! Build the crate as a `cdylib` for `wasm32-unknown-unknown` and turn the core module into a
//! component with `moat componentize` (or `just plugins`, which does both).

// The generated export macro names this crate by its public name, also from inside it.
extern crate self as moat_guest;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use schemars::JsonSchema;
pub use serde::{Deserialize, Serialize};
pub use serde_json;

#[cfg(feature = "guard")]
pub mod guard;
#[cfg(feature = "tool")]
mod tool;

#[cfg(feature = "tool")]
pub use tool::{Effect, Stakes, Tool};

/// Bindings generated from the `tool-plugin` world of `wit/`.
#[cfg(feature = "tool")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "tool-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_tool_plugin",
        default_bindings_module: "::moat_guest::bindings",
        runtime_path: "::moat_guest::__wit_bindgen::rt",
    });
}

/// Why a call failed, as the tool reports it: `InvalidInput`, `Failed` or `Denied`, each with
/// a message for the agent.
#[cfg(feature = "tool")]
pub use bindings::moat::plugin::types::ToolError;

#[cfg(feature = "tool")]
#[doc(hidden)]
pub use bindings::moat::plugin::types::ToolInfo;

/// Files in directories granted to the tool: `fs::open("data")?.read("notes.txt")`.
#[cfg(feature = "tool")]
pub use bindings::moat::plugin::fs;
/// Outbound HTTP to allow-listed origins: `http::send(&http::Request { .. })`.
#[cfg(feature = "tool")]
pub use bindings::moat::plugin::http;
/// The tool's persistent key-value namespace.
#[cfg(feature = "tool")]
pub use bindings::moat::plugin::kv;
/// Secrets granted to the tool; never echo them (the host redacts them if you do).
#[cfg(feature = "tool")]
pub use bindings::moat::plugin::secrets;
/// SQLite databases granted to the tool: `sql::open("shop")?.execute("DELETE ...", &[])`.
#[cfg(feature = "tool")]
pub use bindings::moat::plugin::sql;

/// Messages into the host's log, tagged with the plugin and the call.
pub mod log {
    #[cfg(feature = "tool")]
    use crate::bindings::moat::plugin::log::{log, Level};
    #[cfg(all(feature = "guard", not(feature = "tool")))]
    use crate::guard::bindings::moat::plugin::log::{log, Level};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// Exports the given tools (expressions of type [`Tool`]) as this component's `tool`
/// interface. Use it once per crate.
#[cfg(feature = "tool")]
#[macro_export]
macro_rules! export_tools {
    ($($tool:expr),+ $(,)?) => {
        struct __MoatTools;

        impl $crate::bindings::exports::moat::plugin::tool::Guest for __MoatTools {
            fn describe() -> ::std::vec::Vec<$crate::ToolInfo> {
                $crate::__describe(&[$($tool),+])
            }

            fn call(
                name: ::std::string::String,
                args: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::ToolError> {
                $crate::__call(&[$($tool),+], &name, &args)
            }
        }

        $crate::bindings::__export_tool_plugin!(__MoatTools);
    };
}

#[cfg(feature = "tool")]
#[doc(hidden)]
pub fn __describe(tools: &[Tool]) -> Vec<ToolInfo> {
    tools.iter().map(Tool::info).collect()
}

#[cfg(feature = "tool")]
#[doc(hidden)]
pub fn __call(tools: &[Tool], name: &str, args: &str) -> Result<String, ToolError> {
    report_panics();
    match tools.iter().find(|tool| tool.name() == name) {
        Some(tool) => tool.run(args),
        None => Err(ToolError::InvalidInput(format!("this component has no tool `{name}`"))),
    }
}

/// Sends panic messages to the host's log: a panicking guest traps, and the host quotes the
/// last error it logged in the trap report.
#[doc(hidden)]
pub fn report_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = match info.payload().downcast_ref::<&str>() {
                Some(text) => (*text).to_owned(),
                None => info.payload().downcast_ref::<String>().cloned().unwrap_or_default(),
            };
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line()));
            log::error(&format!("panic{}: {message}", at.unwrap_or_default()));
        }));
    });
}

#[cfg(all(test, feature = "tool"))]
mod tests {
    use super::*;

    /// Arguments of the test tool.
    #[derive(Deserialize, JsonSchema)]
    struct Args {
        /// How many times.
        times: u32,
    }

    fn twice(args: Args) -> Result<u32, ToolError> {
        args.times.checked_mul(2).ok_or_else(|| ToolError::Failed("too many".into()))
    }

    fn tools() -> [Tool; 2] {
        [
            Tool::new("twice", "Doubles a number.", twice).effects(&[Effect::Read]),
            Tool::with_schema("raw", "Hand-written schema.", r#"{"type":"object"}"#, twice)
                .stakes(Stakes::High),
        ]
    }

    #[test]
    fn describe_derives_the_schema_from_the_argument_type() {
        let infos = __describe(&tools());
        let schema: serde_json::Value = serde_json::from_str(&infos[0].input_schema).unwrap();
        assert_eq!(schema["properties"]["times"]["description"], "How many times.");
        assert_eq!(schema["required"], serde_json::json!(["times"]));
        assert_eq!(infos[1].input_schema, r#"{"type":"object"}"#);
        assert!(infos[1].stakes.is_some());
    }

    #[test]
    fn call_dispatches_by_name_and_serializes_the_result() {
        assert_eq!(__call(&tools(), "twice", r#"{"times": 21}"#).unwrap(), "42");
    }

    #[test]
    fn bad_arguments_and_unknown_names_are_invalid_input() {
        let error = __call(&tools(), "twice", r#"{"times": "many"}"#).unwrap_err();
        assert!(
            matches!(error, ToolError::InvalidInput(m) if m.contains("invalid arguments for `twice`"))
        );
        let error = __call(&tools(), "thrice", "{}").unwrap_err();
        assert!(matches!(error, ToolError::InvalidInput(m) if m.contains("no tool `thrice`")));
    }
}
