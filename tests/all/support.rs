//! Shared setup: where the built guest components are, and hosts over them.

use moat::{Budgets, Config, Host};
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_owned()
}

/// A directory of built components: `tools` (example tools) or `tests` (test plugins).
/// Fails, saying how to build them, when they are missing: a test never skips silently.
pub fn built(kind: &str) -> PathBuf {
    let dir = root().join("target/wasm").join(kind);
    assert!(
        dir.join(match kind {
            "tools" => "echo.wasm",
            _ => "misbehave.wasm",
        })
        .is_file(),
        "guest components are missing from {}: build them with `just plugins` \
         (`just test` does it first; see plugins/toolchain.sh for the toolchain it needs)",
        dir.display()
    );
    dir
}

/// One built component file.
pub fn component(kind: &str, name: &str) -> PathBuf {
    built(kind).join(format!("{name}.wasm"))
}

/// A host over the given directories with the given default budgets; every component in
/// them must load.
pub fn host_over(dirs: &[PathBuf], budgets: Budgets) -> Host {
    let mut config = Config::default();
    config.plugins.tools = dirs.to_vec();
    config.budgets = budgets;
    let (host, errors) = Host::new(config).expect("the engine starts");
    assert!(errors.is_empty(), "unexpected load errors: {errors:?}");
    host
}

/// A host over the example tools and the test plugins, with default budgets.
pub fn host() -> Host {
    host_over(&[built("tools"), built("tests")], Budgets::default())
}
