//! Host-side bindings generated from the `tool-plugin` world of `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "tool-plugin",
});

pub(crate) use exports::moat::plugin::tool::ToolInfo;
pub(crate) use moat::plugin::types::{EffectKind, Stakes, ToolError};
