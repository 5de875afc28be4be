//! Host interfaces offered to plugins, one file per capability. Each owns its limits and its
//! host trait impl; the linker gets them all in [`add_to_linker`].

pub mod log;

use crate::exec::CallState;
use wasmtime::component::{HasSelf, Linker};

/// The WIT interfaces this host provides, as `namespace:package/interface@version`.
pub const PROVIDED: &[&str] = &["moat:plugin/types@0.1.0", "moat:plugin/log@0.1.0"];

/// Adds every provided interface to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    crate::bindings::ToolPlugin::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| {
        state
    })
}
