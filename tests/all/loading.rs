//! Loading: anything that is not a tool component is refused with one line naming the file
//! and the problem, and does not stop the other components from loading.

use crate::support::{component, config_in};
use moat::{Host, LoadError};
use std::path::Path;

/// Loads a directory holding the echo tool and one file `bad.wasm` with `bytes`; returns the
/// load errors, after checking that echo still works.
fn load_beside_echo(bytes: &[u8]) -> Vec<LoadError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component("tools", "echo"), dir.path().join("echo.wasm")).unwrap();
    std::fs::write(dir.path().join("bad.wasm"), bytes).unwrap();
    let mut config = config_in(dir.path());
    config.plugins.tools = vec![dir.path().to_owned()];
    let (host, errors) = Host::new(config).unwrap();
    assert_eq!(host.call("echo", r#"{"text": "still here"}"#).unwrap().output, r#""still here""#);
    errors
}

fn refusal(bytes: &[u8]) -> String {
    let errors = load_beside_echo(bytes);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    let file = Path::new(&message.split(": ").next().unwrap().to_owned()).to_owned();
    assert_eq!(file.file_name().unwrap(), "bad.wasm", "{message}");
    message
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

#[test]
fn an_empty_file_is_refused() {
    assert!(refusal(b"").ends_with("empty file, not a WebAssembly component"));
}

#[test]
fn garbage_bytes_are_refused() {
    let message = refusal(b"#!/bin/sh\nrm -rf /\n");
    assert!(
        message.ends_with(r##"not a WebAssembly file (it starts with "#!/bin/s")"##),
        "{message}"
    );
    let message = refusal(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0]);
    assert!(
        message.ends_with(
            "not a WebAssembly file (it starts with bytes [7f, 45, 4c, 46, 02, 01, 01, 00])"
        ),
        "{message}"
    );
}

#[test]
fn a_core_module_is_refused_with_how_to_make_it_a_component() {
    let message = refusal(&wat("(module (func (export \"call\")))"));
    assert!(message.contains("a core WebAssembly module, not a component"), "{message}");
    assert!(message.contains("moat componentize"), "{message}");
}

#[test]
fn a_corrupt_component_is_refused() {
    let mut bytes = wat("(component)");
    bytes.extend_from_slice(b"\x01\xff\xff\xff garbage");
    assert!(refusal(&bytes).contains("invalid component"));
}

#[test]
fn a_component_of_another_world_is_refused_naming_what_it_exports() {
    // Exported functions would be tools (typed exports, `foreign.rs`); a core module is not.
    let message = refusal(&wat(r#"(component
            (core module $m (func (export "run") (result i32) i32.const 0))
            (export "run" (core module $m)))"#));
    assert!(
        message.contains("does not export `moat:plugin/tool@0.1.0` (it exports `run`)"),
        "{message}"
    );
}

#[test]
fn a_component_importing_what_the_host_lacks_is_refused_naming_the_import() {
    let message = refusal(&wat(
        r#"(component (import "acme:net/socket@1.0.0" (instance (export "connect" (func)))))"#,
    ));
    assert!(
        message.contains("imports `acme:net/socket@1.0.0`, which this host does not provide"),
        "{message}"
    );
    assert!(message.contains("`moat:plugin/log@0.1.0`"), "lists what is provided: {message}");
}

#[test]
fn a_tool_export_of_the_wrong_shape_is_refused() {
    let message = refusal(&wat(r#"(component
            (core module $m (func (export "describe")))
            (core instance $i (instantiate $m))
            (func $describe (canon lift (core func $i "describe")))
            (instance $tool (export "describe" (func $describe)))
            (export "moat:plugin/tool@0.1.0" (instance $tool)))"#));
    assert!(message.contains("does not fit the tool-plugin world"), "{message}");
}

#[test]
fn a_missing_directory_is_reported_not_fatal() {
    let state = tempfile::tempdir().unwrap();
    let mut config = config_in(state.path());
    config.plugins.tools = vec!["/nonexistent/moat-tools".into()];
    let (host, errors) = Host::new(config).unwrap();
    assert_eq!(host.tools().len(), 0);
    assert!(errors[0]
        .to_string()
        .starts_with("/nonexistent/moat-tools: cannot list the directory"));
}

#[test]
fn a_tool_name_offered_twice_keeps_the_first_and_refuses_the_second() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component("tools", "echo"), dir.path().join("a.wasm")).unwrap();
    std::fs::copy(component("tools", "echo"), dir.path().join("b.wasm")).unwrap();
    let mut config = config_in(dir.path());
    config.plugins.tools = vec![dir.path().to_owned()];
    let (host, errors) = Host::new(config).unwrap();
    assert!(host.call("echo", r#"{"text":"x"}"#).is_ok());
    assert_eq!(errors.len(), 1);
    let message = errors[0].to_string();
    assert!(message.contains("b.wasm: offers tool `echo`, which"), "{message}");
    assert!(message.contains("a.wasm already offers"), "{message}");
}
