//! Property tests of the inputs an attacker controls, each with a bounded number of cases so
//! that `just test` stays quick (no nightly toolchain here for cargo-fuzz): component bytes at
//! load, arguments and outputs crossing the boundary, `moat.toml`, and the audit log and
//! blobs as `verify` reads them. (MCP messages: `mcp.rs`.) Every case must end in a result or
//! a clear error, never a panic, and tampering must be found. `MOAT_FUZZ_CASES=N` runs N
//! cases of each instead.

use crate::support::{built, component};
use moat::audit::checkpoint::{parse_public, KeyFiles};
use moat::audit::{self, Audit, AuditConfig, Durability, Event};
use moat::{CallError, Config, Host};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::path::Path;

fn runner(cases: u32) -> TestRunner {
    crate::support::fuzz_runner(cases)
}

/// A light host over `tools`: no pool, no compile cache (mutants must not fill the shared
/// one), no audit, no policies.
fn light_host(dir: &Path, tools: Vec<std::path::PathBuf>) -> (Host, Vec<moat::LoadError>) {
    let mut config = Config { state_dir: dir.join("state"), ..Config::default() };
    config.plugins.tools = tools;
    config.plugins.policies = dir.join("no-policies");
    config.engine.pooling = false;
    config.compile_cache.enabled = false;
    config.audit.enabled = false;
    crate::support::without_controls(&mut config);
    Host::new(config).expect("a host starts whatever its tool directory holds")
}

/// A mutation of a file's bytes: some bytes replaced, or the file cut short.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Vec<(prop::sample::Index, u8)>),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4).prop_map(Mutation::Flip),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `mutation`; the bytes always end up different (a flip XORs a non-zero value).
fn mutate(bytes: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match mutation {
        Mutation::Flip(flips) => {
            for (at, with) in flips {
                out[at.index(bytes.len())] ^= with;
            }
        }
        Mutation::Truncate(at) => out.truncate(at.index(bytes.len())),
    }
    out
}

#[test]
fn a_mutated_component_is_refused_naming_the_file_or_loads_and_serves_without_harm() {
    let original = std::fs::read(component("tools", "echo")).unwrap();
    let loaded = std::sync::atomic::AtomicU32::new(0);
    runner(32)
        .run(&mutation(), |mutation| {
            let dir = tempfile::tempdir().unwrap();
            let tools = dir.path().join("tools");
            std::fs::create_dir(&tools).unwrap();
            std::fs::write(tools.join("mutant.wasm"), mutate(&original, &mutation)).unwrap();
            let (host, errors) = light_host(dir.path(), vec![tools]);
            match errors.as_slice() {
                [] => {
                    loaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Whatever it offers, calling it ends in a result or an error.
                    for tool in host.tools() {
                        let _ = host.call(&tool.name, r#"{"text": "hi"}"#);
                    }
                }
                [error] => prop_assert!(
                    error.to_string().contains("mutant.wasm: "),
                    "the error names the file: {error}"
                ),
                more => prop_assert!(false, "one file, {} errors", more.len()),
            }
            Ok(())
        })
        .unwrap();
    eprintln!("mutants that still loaded: {} of 32", loaded.into_inner());
}

#[test]
fn any_text_crosses_the_boundary_and_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (host, errors) = light_host(dir.path(), vec![built("tools")]);
    assert!(errors.is_empty(), "{errors:?}");
    runner(64)
        .run(&any::<String>(), |text| {
            let args = serde_json::json!({ "text": text }).to_string();
            let output =
                host.call("echo", &args).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: String = serde_json::from_str(&output.output).unwrap();
            prop_assert_eq!(back, text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arguments_of_any_shape_are_a_result_or_invalid_arguments_never_worse() {
    let dir = tempfile::tempdir().unwrap();
    let (host, errors) = light_host(dir.path(), vec![built("tools"), built("tests")]);
    assert!(errors.is_empty(), "{errors:?}");
    let json =
        any::<String>().prop_map(serde_json::Value::String).prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
    let args = prop_oneof![any::<String>(), json.prop_map(|v| v.to_string())];
    runner(128)
        .run(
            &(prop::sample::select(vec!["echo", "csv_stats", "ok", "lines"]), args),
            |(tool, args)| {
                match host.call(tool, &args) {
                    Ok(_) | Err(CallError::InvalidArguments { .. }) => Ok(()),
                    // The tool's own refusal of arguments the schema let through.
                    Err(CallError::Tool { .. }) => Ok(()),
                    Err(other) => Err(TestCaseError::fail(format!("{tool} {args}: {other}"))),
                }
            },
        )
        .unwrap();
    assert_eq!(host.call("ok", "{}").unwrap().output, r#""ok""#);
}

#[test]
fn any_moat_toml_parses_or_is_an_error_naming_the_file() {
    let readme = std::fs::read_to_string(crate::support::root().join("README.md")).unwrap();
    let blocks: Vec<String> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next().map(str::to_owned))
        .collect();
    assert!(blocks.len() > 10, "the README's configuration examples");
    let edit = (prop::sample::select(blocks), any::<prop::sample::Index>(), "[ -~\n]{0,12}");
    let text = prop_oneof![
        any::<String>(),
        edit.prop_map(|(block, at, insert)| {
            let mut at = at.index(block.len() + 1);
            while !block.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{insert}{}", &block[..at], &block[at..])
        })
    ];
    runner(512)
        .run(&text, |text| {
            if let Err(error) = Config::parse(&text, Path::new("fuzzed/moat.toml")) {
                prop_assert!(error.to_string().starts_with("fuzzed/moat.toml: "), "{error}");
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_change_to_the_audit_log_its_checkpoints_or_a_blob_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("audit");
    let keys = KeyFiles::new(tmp.path().join("keys/audit.key"));
    let config = AuditConfig {
        durability: Durability::Durable,
        checkpoint_every: 4,
        ..AuditConfig::default()
    };
    let audit = Audit::open(&original, &keys, &config).unwrap();
    for i in 0..10 {
        let args = audit.text(&format!("{{\"text\": \"{}\"}}", "x".repeat(300 * i))).unwrap();
        let event = Event::Call {
            principal: "local".into(),
            task: format!("t{i}"),
            session: "s".into(),
            tool: "echo".into(),
            plugin: "echo.wasm".into(),
            plugin_hash: "00".repeat(32),
            args,
            reasoning: None,
            confidence: None,
        };
        audit.record(vec![event]).unwrap();
    }
    drop(audit);
    let public = parse_public(&std::fs::read_to_string(&keys.public).unwrap()).unwrap();
    assert!(audit::verify::verify(&original, &public).unwrap().problem.is_none());
    let mut files = vec![audit::log_path(&original), audit::checkpoints_path(&original)];
    let blobs = original.join("blobs");
    for entry in walk(&blobs) {
        files.push(entry);
    }
    assert!(files.len() > 4, "the log, its checkpoints and blobs: {files:?}");

    let case = (prop::sample::select(files), mutation());
    runner(96)
        .run(&case, |(file, mutation)| {
            let copy = tempfile::tempdir().unwrap();
            let dir = copy.path().join("audit");
            copy_dir(&original, &dir);
            let target = dir.join(file.strip_prefix(&original).unwrap());
            // Whole trailing checkpoints removed look like a crash before signing: `verify`
            // notes the records no checkpoint covers (tested in `audit.rs`), not tampering.
            let checkpoints = target == audit::checkpoints_path(&dir);
            prop_assume!(!(checkpoints && matches!(mutation, Mutation::Truncate(_))));
            let bytes = std::fs::read(&target).unwrap();
            let mutated = mutate(&bytes, &mutation);
            prop_assume!(mutated != bytes);
            std::fs::write(&target, &mutated).unwrap();
            let report = audit::verify::verify(&dir, &public).unwrap();
            prop_assert!(report.problem.is_some(), "{} {mutation:?}: not found", target.display());
            Ok(())
        })
        .unwrap();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => files.extend(walk(&path)),
            false => files.push(path),
        }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        match path.is_dir() {
            true => copy_dir(&path, &target),
            false => drop(std::fs::copy(&path, &target).unwrap()),
        }
    }
}
