//! Every plugin's own cases: a `cases.json` beside a plugin's source (what `moat new` writes,
//! and what its author adds to) runs against the component `just plugins` built from it,
//! through the whole pipeline. And `moat new` writes, for each language, exactly the starter
//! plugins checked in under tests/, so the templates are known to build and pass.

use crate::support::{built, root};
use moat::{Config, Host};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Tool,
    Guard,
}

/// Where plugin sources live, and where `just plugins` writes their components.
const PLACES: &[(&str, &str, Kind)] = &[
    ("plugins", "tools", Kind::Tool),
    ("plugins/policies", "policies", Kind::Guard),
    ("plugins/python", "python", Kind::Tool),
    ("plugins/python/policies", "python-policies", Kind::Guard),
    ("plugins/js", "js", Kind::Tool),
    ("plugins/js/policies", "js-policies", Kind::Guard),
    ("tests/plugins", "tests", Kind::Tool),
    ("tests/policies", "test-policies", Kind::Guard),
    ("tests/plugins-python", "tests-python", Kind::Tool),
    ("tests/policies-python", "test-policies-python", Kind::Guard),
    ("tests/plugins-js", "tests-js", Kind::Tool),
    ("tests/policies-js", "test-policies-js", Kind::Guard),
];

/// One case: a call, and how it must end.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    tool: String,
    args: Value,
    /// The output: a string is compared as text, anything else as JSON.
    output: Option<Value>,
    /// The error kind the call ends with (`invalid_arguments`, `tool_error`, ...).
    error: Option<String>,
    /// For a guard: `allow` (the call succeeds) or `deny`.
    verdict: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    cases: Vec<Case>,
}

/// Every (source directory, component, kind) with a cases.json.
fn plugins_with_cases() -> Vec<(PathBuf, PathBuf, Kind)> {
    let mut found = Vec::new();
    for (source, out, kind) in PLACES {
        let Ok(entries) = std::fs::read_dir(root().join(source)) else { continue };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs.into_iter().filter(|d| d.join("cases.json").is_file()) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let wasm = root().join("target/wasm").join(out).join(format!("{name}.wasm"));
            assert!(
                wasm.is_file(),
                "{} has cases but {} is missing: build it with `just plugins`",
                dir.display(),
                wasm.display()
            );
            found.push((dir, wasm, *kind));
        }
    }
    found
}

/// A host whose only tool component (or, for a guard, only policy, over the example tools)
/// is `wasm`.
fn host_for(wasm: &Path, kind: Kind) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(wasm, plugins.join(wasm.file_name().unwrap())).unwrap();
    let mut config: Config = crate::support::config_in(dir.path());
    crate::support::without_controls(&mut config);
    match kind {
        Kind::Tool => config.plugins.tools = vec![plugins],
        Kind::Guard => {
            config.plugins.tools = vec![built("tools")];
            config.plugins.policies = plugins;
        }
    }
    let (host, errors) = Host::new(config).unwrap();
    assert!(errors.is_empty(), "{}: {errors:?}", wasm.display());
    (host, dir)
}

/// What is wrong with how `case` ended, if anything.
fn check(host: &Host, case: &Case) -> Option<String> {
    let result = host.call(&case.tool, &case.args.to_string());
    let expected_error = match case.verdict.as_deref() {
        Some("deny") => Some("denied"),
        Some("allow") | None => case.error.as_deref(),
        Some(other) => return Some(format!("verdict `{other}` is neither `allow` nor `deny`")),
    };
    match (result, expected_error) {
        (Err(error), Some(kind)) if error.kind() == kind => None,
        (Err(error), _) => Some(format!("ended as {} ({error})", error.kind())),
        (Ok(response), Some(kind)) => {
            Some(format!("succeeded with {:?}, expected {kind}", response.output))
        }
        (Ok(response), None) => {
            let matches = match &case.output {
                None => true,
                Some(Value::String(text)) => &response.output == text,
                Some(json) => {
                    serde_json::from_str::<Value>(&response.output).ok().as_ref() == Some(json)
                }
            };
            (!matches).then(|| format!("output {:?}, expected {:?}", response.output, case.output))
        }
    }
}

#[test]
fn every_plugin_passes_the_cases_beside_its_source() {
    let plugins = plugins_with_cases();
    // At least the starter plugins of each language, a tool and a guard each.
    assert!(plugins.len() >= 4, "only {} plugins have cases", plugins.len());
    let mut failures = Vec::new();
    for (dir, wasm, kind) in &plugins {
        let file = dir.join("cases.json");
        let text = std::fs::read_to_string(&file).unwrap();
        let cases: Cases = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a list of cases: {e}", file.display()));
        assert!(!cases.cases.is_empty(), "{} has no cases", file.display());
        let (host, _dir) = host_for(wasm, *kind);
        for case in &cases.cases {
            if let Some(problem) = check(&host, case) {
                failures.push(format!("{}: `{}`: {problem}", file.display(), case.name));
            }
        }
    }
    assert!(failures.is_empty(), "cases that failed:\n{}", failures.join("\n"));
}

/// The files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue; // componentize-py leaves one beside the source
            }
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn moat_new_writes_the_starter_plugins_checked_in_under_tests() {
    let checkout = tempfile::tempdir().unwrap();
    let at = checkout.path();
    std::fs::create_dir_all(at.join("plugins")).unwrap();
    std::fs::create_dir_all(at.join("wit")).unwrap();
    std::fs::copy(root().join("plugins/Cargo.toml"), at.join("plugins/Cargo.toml")).unwrap();
    let starters = [
        ("tool", "rust", "plugins/starter-tool", "tests/plugins/starter-tool"),
        ("guard", "rust", "plugins/policies/starter-guard", "tests/policies/starter-guard"),
        ("tool", "python", "plugins/python/starter-tool", "tests/plugins-python/starter-tool"),
        (
            "guard",
            "python",
            "plugins/python/policies/starter-guard",
            "tests/policies-python/starter-guard",
        ),
        ("tool", "js", "plugins/js/starter-tool", "tests/plugins-js/starter-tool"),
        ("guard", "js", "plugins/js/policies/starter-guard", "tests/policies-js/starter-guard"),
    ];
    for (kind, lang, written, checked_in) in starters {
        let name = Path::new(written).file_name().unwrap().to_str().unwrap();
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
            .args(["new", kind, name, "--lang", lang, "--root"])
            .arg(at)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let (written, checked_in) = (at.join(written), root().join(checked_in));
        assert_eq!(files(&written), files(&checked_in), "{lang} {kind}");
        for file in files(&written) {
            let new = std::fs::read_to_string(written.join(&file)).unwrap();
            let mut old = std::fs::read_to_string(checked_in.join(&file)).unwrap();
            // Outside plugins/, a guest crate names the workspace it belongs to.
            old = old.replace(
                "# Built in the guest workspace, not in the root one.\nworkspace = \"../../../plugins\"\n",
                "",
            );
            assert_eq!(new, old, "{lang} {kind}: {} differs from the template", file.display());
        }
        // A second time nothing is overwritten.
        let again = std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
            .args(["new", kind, name, "--lang", lang, "--root"])
            .arg(at)
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    }
    let manifest = std::fs::read_to_string(at.join("plugins/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("\"starter-tool\",") && manifest.contains("\"policies/starter-guard\",")
    );
}

#[test]
fn moat_new_refuses_a_bad_name_and_a_directory_that_is_no_checkout() {
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
            .args(args)
            .arg("--root")
            .arg(empty.path())
            .output()
            .unwrap()
    };
    let bad = run(&["new", "tool", "Bad_Name", "--lang", "rust"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a plugin name"));
    let nowhere = run(&["new", "tool", "fine", "--lang", "python"]);
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("no `plugins/` directory"));
    assert!(std::fs::read_dir(empty.path()).unwrap().next().is_none(), "nothing was written");
}
