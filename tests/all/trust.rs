//! Which plugins load: `moat lock` pins every tool and policy by blake3, `--locked` refuses a
//! changed or unknown one (naming it, and auditing the refusal) and does not start without a
//! pinned one, `moat sign` lets a trusted publisher's signed plugin load without a pin (a pin
//! always wins over a signature), and an oversized file is refused unread.

use crate::support::{component, root, shared_compile_cache};
use moat::{Config, Host};
use std::path::Path;
use std::process::{Command, Output};

/// A directory with `tools/` (echo), `policies/` (scripted) and a moat.toml using them.
fn sandbox(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tools")).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::copy(component("tools", "echo"), dir.path().join("tools/echo.wasm")).unwrap();
    let scripted = root().join("target/wasm/test-policies/scripted.wasm");
    assert!(scripted.is_file(), "{} is missing: build it with `just plugins`", scripted.display());
    std::fs::copy(scripted, dir.path().join("policies/scripted.wasm")).unwrap();
    let cache = shared_compile_cache().display().to_string();
    let toml = format!(
        "state_dir = \"state\"\n[compile_cache]\ndir = {cache:?}\n[plugins]\n\
         tools = [\"tools\"]\npolicies = \"policies\"\n{extra}"
    );
    std::fs::write(dir.path().join("moat.toml"), toml).unwrap();
    dir
}

fn moat(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moat")).current_dir(dir).args(args).output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn echo(dir: &Path, locked: bool) -> Output {
    let mut args = vec!["call", "echo", "--args", r#"{"text":"hi"}"#];
    if locked {
        args.insert(0, "--locked");
    }
    moat(dir, &args)
}

#[test]
fn lock_pins_every_plugin_and_locked_refuses_a_changed_or_unknown_one_and_audits_it() {
    let dir = sandbox("");
    let out = moat(dir.path(), &["lock"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pinned 2 plugin file(s) (1 tool, 1 policy)"));
    let lock = std::fs::read_to_string(dir.path().join("moat.lock")).unwrap();
    assert!(lock.contains("path = \"tools/echo.wasm\"") && lock.contains("policies/scripted"));

    let out = echo(dir.path(), true);
    assert!(out.status.success(), "pinned plugins load: {}", text(&out.stderr));

    // Changed: another valid tool in echo's place.
    let echo_wasm = dir.path().join("tools/echo.wasm");
    std::fs::copy(component("tools", "csv-stats"), &echo_wasm).unwrap();
    let out = echo(dir.path(), true);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("echo.wasm: refused, plugins are locked: it changed since it was locked"),
        "{stderr}"
    );
    // Unknown: a file the lock never saw.
    std::fs::copy(component("tools", "echo"), dir.path().join("tools/new.wasm")).unwrap();
    let out = echo(dir.path(), true);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("new.wasm: refused, plugins are locked"), "{stderr}");
    assert!(stderr.contains("moat.lock does not pin it, and it is not signed"), "{stderr}");
    assert_eq!(out.status.code(), Some(2), "not even a copy of a pinned file loads: {stderr}");

    // Each refusal is in the audit log, with the file's hash, and the log verifies.
    let out = moat(dir.path(), &["audit", "export", "--event", "load_refused"]);
    let refusals: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let paths: Vec<&str> = refusals.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert!(paths.iter().filter(|p| p.ends_with("echo.wasm")).count() >= 2, "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("new.wasm")), "{paths:?}");
    assert!(refusals.iter().all(|r| r["blake3"].as_str().is_some_and(|h| h.len() == 64)));
    let out = moat(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Unlocked, the same files load; locking again pins them as they are now.
    assert!(echo(dir.path(), false).status.success());
    assert!(moat(dir.path(), &["lock"]).status.success());
    let out =
        moat(dir.path(), &["--locked", "call", "csv_stats", "--args", r#"{"csv":"a,b\n1,2\n"}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn locked_without_a_lockfile_or_with_a_broken_one_does_not_start() {
    let dir = sandbox("");
    let out = echo(dir.path(), true);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no lockfile, and plugins are locked"));

    std::fs::write(dir.path().join("moat.lock"), "version = 1\n[[plugin]]\npath = 3\n").unwrap();
    let out = echo(dir.path(), true);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("moat.lock: "), "{}", text(&out.stderr));

    // The config switch is the same as the flag.
    let dir = sandbox("locked = true\n");
    assert_eq!(echo(dir.path(), false).status.code(), Some(1));
}

#[test]
fn lock_writes_nothing_while_a_plugin_does_not_load() {
    let dir = sandbox("");
    std::fs::write(dir.path().join("tools/broken.wasm"), b"\0asm garbage").unwrap();
    let out = moat(dir.path(), &["lock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("broken.wasm"), "{}", text(&out.stderr));
    assert!(!dir.path().join("moat.lock").exists());
}

#[test]
fn a_plugin_signed_by_a_trusted_publisher_loads_locked_without_a_pin() {
    let dir = sandbox("");
    assert!(moat(dir.path(), &["lock"]).status.success());
    let extra = dir.path().join("tools/csv-stats.wasm");
    std::fs::copy(component("tools", "csv-stats"), &extra).unwrap();

    let out = moat(dir.path(), &["sign", "--new-key", "--key", "keys/publisher.key"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = std::fs::read_to_string(dir.path().join("keys/publisher.pub")).unwrap();
    let public = public.trim();
    assert!(text(&out.stdout).contains(&format!("trusted_keys = [\"{public}\"]")));
    let out = moat(dir.path(), &["sign", "--key", "keys/publisher.key", "tools/csv-stats.wasm"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let csv =
        |dir: &Path| moat(dir, &["--locked", "call", "csv_stats", "--args", r#"{"csv":"a"}"#]);
    // Signed, but by a key nobody trusts: refused.
    let out = csv(dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("which [plugins] trusted_keys does not list"));

    let toml = dir.path().join("moat.toml");
    let trusting =
        std::fs::read_to_string(&toml).unwrap() + &format!("trusted_keys = [{public:?}]\n");
    std::fs::write(&toml, trusting).unwrap();
    let out = csv(dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The signed file changed: its signature no longer verifies.
    std::fs::copy(component("tools", "fetch"), &extra).unwrap();
    let out = moat(dir.path(), &["--locked", "tools"]);
    assert!(text(&out.stderr).contains("does not verify"), "{}", text(&out.stderr));

    // Signing something that is not a component signs nothing.
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let out = moat(dir.path(), &["sign", "--key", "keys/publisher.key", "notes.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("notes.txt.sig").exists());
}

#[test]
fn a_pin_wins_over_a_signature_for_the_path_it_names() {
    let dir = sandbox("");
    assert!(moat(dir.path(), &["lock"]).status.success());
    let out = moat(dir.path(), &["sign", "--new-key", "--key", "keys/publisher.key"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = std::fs::read_to_string(dir.path().join("keys/publisher.pub")).unwrap();
    let toml = dir.path().join("moat.toml");
    let trusting = std::fs::read_to_string(&toml).unwrap()
        + &format!("trusted_keys = [{:?}]\n", public.trim());
    std::fs::write(&toml, trusting).unwrap();
    // Other bytes at the pinned path, signed by the trusted publisher: the pin decides.
    std::fs::copy(component("tools", "csv-stats"), dir.path().join("tools/echo.wasm")).unwrap();
    let out = moat(dir.path(), &["sign", "--key", "keys/publisher.key", "tools/echo.wasm"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = moat(dir.path(), &["--locked", "call", "csv_stats", "--args", r#"{"csv":"a"}"#]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("echo.wasm: refused, plugins are locked: it changed"), "{stderr}");
    assert!(stderr.contains("a pin wins over any signature"), "{stderr}");
}

#[test]
fn a_pinned_tool_or_policy_that_was_removed_stops_a_locked_moat() {
    for pinned in ["tools/echo.wasm", "policies/scripted.wasm"] {
        let dir = sandbox("");
        assert!(moat(dir.path(), &["lock"]).status.success());
        std::fs::remove_file(dir.path().join(pinned)).unwrap();
        let out = moat(dir.path(), &["--locked", "tools"]);
        assert_eq!(out.status.code(), Some(1), "{pinned}: {}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("{pinned}: pinned by")), "{stderr}");
        assert!(stderr.contains("but not there"), "{stderr}");
        // Unlocked, moat starts without it.
        assert!(moat(dir.path(), &["tools"]).status.success(), "{pinned}");
    }
}

#[test]
fn a_component_over_the_size_limit_is_refused_before_it_is_read_and_the_host_serves_on() {
    let dir = sandbox("max_component_size = \"64 KiB\"\n");
    std::fs::write(dir.path().join("tools/huge.wasm"), vec![0u8; 1 << 20]).unwrap();
    let config = Config::load(&dir.path().join("moat.toml")).unwrap();
    let (host, errors) = Host::new(config).unwrap();
    let reasons: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("huge.wasm")
            && r.contains("is 1 MiB, over [plugins] max_component_size (64 KiB); refused unread")),
        "{reasons:?}"
    );
    // echo (about 100 KB) is over the limit too; the policy (about 50 KB) is not.
    assert!(reasons.iter().any(|r| r.contains("echo.wasm")), "{reasons:?}");
    assert_eq!(host.policies().current().len(), 1);
}

#[test]
fn while_serving_locked_a_replaced_file_keeps_the_pinned_version_and_a_new_one_is_refused() {
    use moat::audit::{self, read::Line, Event};
    let dir = sandbox("");
    assert!(moat(dir.path(), &["lock"]).status.success());
    let mut config = Config::load(&dir.path().join("moat.toml")).unwrap();
    config.plugins.locked = true;
    let (host, errors) = Host::new(config).unwrap();
    assert!(errors.is_empty(), "{errors:?}");

    std::fs::copy(component("tools", "csv-stats"), dir.path().join("tools/echo.wasm")).unwrap();
    std::fs::copy(component("tools", "fetch"), dir.path().join("tools/fetch.wasm")).unwrap();
    crate::support::settled(&host);
    let output = host.call("echo", r#"{"text":"still"}"#).expect("the pinned echo serves on");
    assert_eq!(output.output, r#""still""#);
    assert!(host.call("csv_stats", r#"{"csv":"a"}"#).is_err());
    assert!(host.call("fetch", r#"{"url":"http://127.0.0.1:9/"}"#).is_err());

    let refused: Vec<String> =
        audit::read::lines(&audit::log_path(&dir.path().join("state/audit")))
            .unwrap()
            .filter_map(|line| match line.unwrap() {
                Line::Record { record, .. } => match record.event {
                    Event::LoadRefused { path, reason, .. } => Some(format!("{path}: {reason}")),
                    _ => None,
                },
                _ => None,
            })
            .collect();
    assert!(
        refused.iter().any(|r| r.contains("echo.wasm: refused, plugins are locked")),
        "{refused:?}"
    );
    assert!(refused.iter().any(|r| r.contains("fetch.wasm: refused")), "{refused:?}");
}
