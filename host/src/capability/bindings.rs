//! Host-side bindings generated from the `tool-plugin` world of `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "tool-plugin",
    // Host functions return `wasmtime::Result<T>`: an `Err` is a trap (a broken handle, a
    // host fault), while refusals are ordinary WIT errors the tool can handle.
    imports: { default: trappable },
    with: {
        "moat:plugin/fs.dir": crate::capability::fs::DirHandle,
        "moat:plugin/sql.connection": crate::capability::sql::ConnectionHandle,
    },
});

pub(crate) use self::exports::moat::plugin::tool::ToolInfo;
pub(crate) use self::moat::plugin::types::{EffectKind, Stakes, ToolError};
