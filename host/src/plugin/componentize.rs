//! Turns a core WebAssembly module built with wit-bindgen into a component, as
//! `wasm-tools component new` does. Used by `moat componentize` and `just plugins`.

/// Encodes `core` (a module with wit-bindgen's component-type section) as a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    let encoder = wit_component::ComponentEncoder::default()
        .module(core)
        .map_err(|e| format!("{e:#}"))?
        .validate(true);
    let mut encoder = encoder;
    encoder.encode().map_err(|e| format!("{e:#}"))
}
