//! The fs capability against files that are not what they seem: a FIFO, a socket or a
//! device inside a grant is refused, never waited on; a write never changes an inode that a
//! path outside the grant (or in a read-only one) also names; overwriting or emptying a file
//! counts as a deletion against `deletes_per_call` and `deletes_per_task`.

use crate::support::built;
use moat::{CallError, CallRequest, Config, Host};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A host over the test plugins with `moat_toml`, in a directory holding `data/keep.txt`.
fn host(moat_toml: &str) -> (Arc<Host>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/keep.txt"), "precious").unwrap();
    let path = dir.path().join("moat.toml");
    std::fs::write(&path, format!("[confidence]\nhigh = 0\n{moat_toml}")).unwrap();
    let mut config = Config::load(&path).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    let (host, errors) = Host::new(config).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (Arc::new(host), dir)
}

fn grant(name: &str, path: &str, extra: &str) -> String {
    format!("[tools.fs_ops.grants.fs.{name}]\npath = \"{path}\"\nmode = \"read-write\"\n{extra}")
}

/// Runs `ops` on `grant` in one call of `fs_ops`, on a thread: a call that does not end
/// within a minute fails the test instead of hanging it.
fn ops(host: &Arc<Host>, grant: &str, task: &str, ops: Value) -> Result<Vec<String>, String> {
    let args = json!({"grant": grant, "ops": ops}).to_string();
    let request = CallRequest { task: Some(task.into()), ..CallRequest::new("fs_ops", &args) };
    let host = host.clone();
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(host.run(&request));
    });
    match ended.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(response)) => Ok(serde_json::from_str(&response.output).unwrap()),
        Ok(Err(CallError::Tool { message, .. })) => Err(message),
        Ok(Err(other)) => panic!("expected the tool's own failure, got {other:?}"),
        Err(_) => panic!("the call {args} did not end within a minute"),
    }
}

fn one(op: &str, path: &str) -> Value {
    json!([{"op": op, "path": path, "text": "x", "to": "elsewhere.txt"}])
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

fn kind_error(path: &str, grant: &str, what: &str) -> String {
    format!(
        "Io(\"`{path}` in fs grant `{grant}` is {what}: the fs capability reads and changes \
         only regular files\")"
    )
}

#[test]
fn a_fifo_a_socket_or_a_device_in_a_grant_is_refused_never_waited_on() {
    let toml =
        [grant("data", "data", ""), "[tools.fs_ops.grants.fs.dev]\npath = \"/dev\"\n".into()]
            .concat();
    let (host, dir) = host(&toml);
    let data = dir.path().join("data");
    mkfifo(&data.join("pipe"));
    let _socket = std::os::unix::net::UnixListener::bind(data.join("sock")).unwrap();
    std::os::unix::fs::symlink("pipe", data.join("to-pipe")).unwrap();
    let fifo = "a named pipe (FIFO)";
    // Nobody ever writes or reads the pipe: any operation that opened it would block.
    for op in ["read", "write", "remove", "rename"] {
        assert_eq!(ops(&host, "data", "t", one(op, "pipe")), Err(kind_error("pipe", "data", fifo)));
        assert_eq!(
            ops(&host, "data", "t", one(op, "sock")),
            Err(kind_error("sock", "data", "a socket"))
        );
    }
    // A link inside the grant leads a read to the pipe, which is refused as a pipe; a change
    // through a link is refused as a link.
    assert_eq!(
        ops(&host, "data", "t", one("read", "to-pipe")),
        Err(kind_error("to-pipe", "data", fifo))
    );
    for op in ["write", "remove", "rename"] {
        let refused = kind_error("to-pipe", "data", "a symbolic link");
        assert_eq!(ops(&host, "data", "t", one(op, "to-pipe")), Err(refused), "{op}");
    }
    // Nor can a file be moved over one.
    let over = json!([{"op": "rename", "path": "keep.txt", "to": "pipe"}]);
    assert_eq!(ops(&host, "data", "t", over), Err(kind_error("pipe", "data", fifo)));
    for device in ["zero", "null", "urandom"] {
        let refused = kind_error(device, "dev", "a device");
        assert_eq!(ops(&host, "dev", "t", one("read", device)), Err(refused));
    }
    // Looking is not opening: stat and list answer at once.
    let looked = json!([{"op": "stat", "path": "pipe"}, {"op": "list", "path": ""}]);
    assert_eq!(
        ops(&host, "data", "t", looked).unwrap(),
        ["pipe dir=false size=0", "keep.txt,pipe,sock,to-pipe"]
    );
    let listed = ops(&host, "data", "t", one("list", "pipe")).unwrap_err();
    assert!(listed.starts_with("Io(\"`pipe` in fs grant `data`: "), "{listed}");
    let kind = std::fs::symlink_metadata(data.join("pipe")).unwrap().file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&kind), "the pipe is still a pipe");
    assert_eq!(std::fs::read_to_string(data.join("keep.txt")).unwrap(), "precious");
}

#[test]
fn a_grant_whose_path_is_a_fifo_is_refused_when_opened() {
    let (host, dir) = host(&grant("pipe", "data/pipe", ""));
    mkfifo(&dir.path().join("data/pipe"));
    let refused = ops(&host, "pipe", "t", one("read", "pipe")).unwrap_err();
    assert!(refused.starts_with("Io(\"fs grant `pipe` ("), "{refused}");
    assert!(refused.ends_with("cannot be opened: Not a directory (os error 20)\")"), "{refused}");
}

#[test]
fn writing_a_hard_link_leaves_every_other_name_of_the_file_as_it_was() {
    let toml =
        [grant("data", "data", ""), "[tools.fs_ops.grants.fs.ro]\npath = \"ro\"\n".into()].concat();
    let (host, dir) = host(&toml);
    let (root, data) = (dir.path(), dir.path().join("data"));
    std::fs::write(root.join("outside.txt"), "outside").unwrap();
    std::fs::hard_link(root.join("outside.txt"), data.join("link.txt")).unwrap();
    std::fs::write(root.join("outside2.txt"), "outside two").unwrap();
    std::fs::hard_link(root.join("outside2.txt"), data.join("link2.txt")).unwrap();
    std::fs::create_dir(root.join("ro")).unwrap();
    std::fs::write(root.join("ro/shared.txt"), "read-only").unwrap();
    std::fs::hard_link(root.join("ro/shared.txt"), data.join("shared.txt")).unwrap();
    std::fs::write(data.join("mode.txt"), "mode").unwrap();
    std::fs::set_permissions(data.join("mode.txt"), std::fs::Permissions::from_mode(0o640))
        .unwrap();

    let writes = json!([
        {"op": "write", "path": "link.txt", "text": "changed"},
        {"op": "write", "path": "shared.txt", "text": "changed"},
        {"op": "rename", "path": "keep.txt", "to": "link2.txt"},
        {"op": "write", "path": "mode.txt", "text": "changed"},
    ]);
    ops(&host, "data", "t", writes).unwrap();
    assert_eq!(std::fs::read_to_string(data.join("link.txt")).unwrap(), "changed");
    assert_eq!(std::fs::read_to_string(data.join("shared.txt")).unwrap(), "changed");
    assert_eq!(std::fs::read_to_string(data.join("link2.txt")).unwrap(), "precious");
    for (path, content) in [
        ("outside.txt", "outside"),
        ("outside2.txt", "outside two"),
        ("ro/shared.txt", "read-only"),
    ] {
        assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), content, "{path}");
        assert_eq!(std::fs::metadata(root.join(path)).unwrap().nlink(), 1, "{path}");
    }
    let mode = std::fs::metadata(data.join("mode.txt")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "the replaced file keeps its permissions");

    // Undone after a failure: the file outside is still untouched.
    std::fs::hard_link(root.join("outside.txt"), data.join("again.txt")).unwrap();
    let failing = json!([
        {"op": "write", "path": "again.txt", "text": "changed"},
        {"op": "read", "path": "missing.txt"},
    ]);
    assert!(ops(&host, "data", "t", failing).is_err());
    assert_eq!(std::fs::read_to_string(data.join("again.txt")).unwrap(), "outside");
    assert_eq!(std::fs::read_to_string(root.join("outside.txt")).unwrap(), "outside");
    // No staging file is left behind, and none is ever shown.
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|name| name.starts_with(".moat")), "{names:?}");
}

#[test]
fn a_tool_cannot_name_a_staging_file() {
    let (host, _dir) = host(&grant("data", "data", ""));
    for path in [".moat-staged-0123", "sub/.moat-staged-x/y"] {
        let refused = ops(&host, "data", "t", one("write", path)).unwrap_err();
        assert_eq!(
            refused,
            format!(
                "OutOfScope(\"`{path}` names a staging file of moat's, reserved in fs grant \
                 `data`\")"
            )
        );
    }
}

#[test]
fn overwriting_or_emptying_a_file_counts_as_a_deletion_per_call() {
    let (host, dir) = host(&grant("data", "data", "deletes_per_call = 3\n"));
    let data = dir.path().join("data");
    for i in 0..10 {
        std::fs::write(data.join(format!("f{i}")), format!("content {i}")).unwrap();
    }
    let empty_all: Vec<Value> =
        (0..10).map(|i| json!({"op": "write", "path": format!("f{i}"), "text": ""})).collect();
    assert_eq!(
        ops(&host, "data", "t", Value::Array(empty_all)),
        Err("LimitExceeded(\"would replace 1 file at `f3` in fs grant `data`; limit 3 files \
             per call (3 used)\")"
            .to_owned())
    );
    for i in 0..10 {
        let kept = std::fs::read_to_string(data.join(format!("f{i}"))).unwrap();
        assert_eq!(kept, format!("content {i}"), "f{i} was emptied by a refused call");
    }
    // A rename over a file and a removal count the same way.
    let mixed = json!([
        {"op": "write", "path": "f0", "text": "other"},
        {"op": "rename", "path": "f1", "to": "f2"},
        {"op": "remove", "path": "f3"},
        {"op": "write", "path": "f4", "text": "other"},
    ]);
    let refused = ops(&host, "data", "t", mixed).unwrap_err();
    assert!(refused.contains("would replace 1 file at `f4`"), "{refused}");
}

#[test]
fn overwrites_add_up_per_task() {
    let (host, dir) = host(&grant("data", "data", "deletes_per_task = 2\n"));
    for name in ["a", "b", "c"] {
        std::fs::write(dir.path().join("data").join(name), name).unwrap();
    }
    let zero = |path: &str| json!([{"op": "write", "path": path, "text": ""}]);
    ops(&host, "data", "task", zero("a")).unwrap();
    ops(&host, "data", "task", zero("b")).unwrap();
    assert_eq!(
        ops(&host, "data", "task", zero("c")),
        Err("LimitExceeded(\"would replace 1 file at `c` in fs grant `data`; limit 2 files \
             per task (2 used)\")"
            .to_owned())
    );
    ops(&host, "data", "another task", zero("c")).unwrap();
}

#[test]
fn per_task_limits_add_up_over_processes_sharing_the_state_directory() {
    let (_host, dir) = host(&grant("data", "data", "deletes_per_task = 2\n"));
    let config = dir.path().join("moat.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let tools = built("tests");
    std::fs::write(
        &config,
        format!("state_dir = \"state\"\n[plugins]\ntools = [{tools:?}]\n{text}"),
    )
    .unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(dir.path().join("data").join(name), name).unwrap();
    }
    let remove = |name: &str, task: &str| {
        let args = json!({"grant": "data", "ops": [{"op": "remove", "path": name}]}).to_string();
        std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir.path())
            .args(["--config", "moat.toml", "call", "fs_ops", "--task", task, "--args", &args])
            .output()
            .expect("moat runs")
    };
    // Each `moat call` is a process of its own; the task's meters are in state.sqlite.
    for name in ["a", "b"] {
        let out = remove(name, "T");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = remove("c", "T");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a third deletion in task T: {stderr}");
    assert!(stderr.contains("limit 2 files per task (2 used)"), "{stderr}");
    assert!(dir.path().join("data/c").exists(), "nothing was deleted past the limit");
    assert!(remove("c", "U").status.success(), "another task has its own meter");
}

#[test]
fn appends_identical_writes_new_files_and_empty_files_lose_nothing_and_are_not_counted() {
    let (host, dir) = host(&grant("data", "data", "deletes_per_call = 0\n"));
    std::fs::write(dir.path().join("data/empty"), "").unwrap();
    let harmless = json!([
        {"op": "write", "path": "keep.txt", "text": "precious"},
        {"op": "write", "path": "keep.txt", "text": "precious, and more"},
        {"op": "write", "path": "new.txt", "text": "new"},
        {"op": "write", "path": "empty", "text": "now something"},
        {"op": "rename", "path": "new.txt", "to": "moved.txt"},
    ]);
    ops(&host, "data", "t", harmless).unwrap();
    let refused = ops(&host, "data", "t", one("write", "keep.txt")).unwrap_err();
    assert!(refused.contains("limit 0 files per call"), "{refused}");
}

/// Whatever a write's old and new content, it is counted exactly when it loses content:
/// the old file was not empty and the new content does not begin with it.
#[test]
fn a_write_is_counted_as_a_deletion_exactly_when_it_loses_content() {
    let strategy = (proptest::option::of("[ab]{0,4}"), "[ab]{0,5}");
    let (host, dir) = host(&grant("data", "data", "deletes_per_call = 0\n"));
    let file = dir.path().join("data/f");
    crate::support::fuzz_runner(24)
        .run(&strategy, |(old, new)| {
            match &old {
                Some(old) => std::fs::write(&file, old).unwrap(),
                None => drop(std::fs::remove_file(&file)),
            }
            let loses =
                old.as_ref().is_some_and(|old| !old.is_empty() && !new.starts_with(old.as_str()));
            let written =
                ops(&host, "data", "t", json!([{"op": "write", "path": "f", "text": new}]));
            prop_assert_eq!(written.is_err(), loses, "{:?} -> {:?}: {:?}", old, new, written);
            let now = std::fs::read_to_string(&file).ok();
            let expected = if loses { old.clone() } else { Some(new.clone()) };
            prop_assert_eq!(now, expected);
            Ok(())
        })
        .unwrap();
}

/// Whatever a tool does to the files of its grant, files outside it that share their inodes
/// (hard links) keep their content.
#[test]
fn no_operation_changes_a_file_outside_through_a_hard_link() {
    let strategy = proptest::collection::vec((0..3usize, 0..4usize, 0..4usize, "[xy]{0,3}"), 1..8);
    crate::support::fuzz_runner(24)
        .run(&strategy, |steps| {
            let (host, dir) = host(&grant("data", "data", ""));
            let (root, data) = (dir.path(), dir.path().join("data"));
            for i in 0..4 {
                std::fs::write(root.join(format!("out{i}")), format!("outside {i}")).unwrap();
                std::fs::hard_link(root.join(format!("out{i}")), data.join(format!("n{i}")))
                    .unwrap();
            }
            let list: Vec<Value> = steps
                .iter()
                .map(|(op, a, b, text)| match op {
                    0 => json!({"op": "write", "path": format!("n{a}"), "text": text}),
                    1 => json!({"op": "remove", "path": format!("n{a}")}),
                    _ => json!({"op": "rename", "path": format!("n{a}"), "to": format!("n{b}")}),
                })
                .collect();
            let _ = ops(&host, "data", "t", Value::Array(list));
            for i in 0..4 {
                let kept = std::fs::read_to_string(root.join(format!("out{i}"))).unwrap();
                prop_assert_eq!(kept, format!("outside {i}"));
            }
            Ok(())
        })
        .unwrap();
}
