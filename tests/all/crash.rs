//! A process killed mid-call leaves no change it cannot undo: `moat call` runs a tool that
//! writes, overwrites, empties, removes and renames files in a loop, and is killed with
//! SIGKILL at a random moment, many times. After each kill, every file that differs from
//! the original tree is named by a record of the task (a `staged` change or a committed
//! `effect`, with its undo), and `moat task rollback` puts the tree back byte for byte,
//! whether the kill came before, during or after any of the changes, or while the call was
//! undoing its own changes (a failed call rolls back in place).

use crate::support::built;
use moat::audit::read::{lines, Line};
use moat::audit::{self, Event};
use moat::undo::Undo;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: u64 = 24;

fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tools = built("tests").display().to_string();
    let toml = format!(
        "state_dir = \"state\"\n[plugins]\ntools = [{tools:?}]\n\
         [confidence]\nhigh = 0\n\
         [tools.fs_ops.grants.fs.work]\npath = \"work\"\nmode = \"read-write\"\n\
         write_per_call = \"64 MiB\"\nwrite_per_task = \"64 MiB\"\n\
         deletes_per_call = 100000\ndeletes_per_task = 100000\n"
    );
    std::fs::write(dir.path().join("moat.toml"), toml).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    for i in 0..8 {
        let body: Vec<u8> = (0..(i * 4096 + 7)).map(|b| (b * 31 + i) as u8).collect();
        std::fs::write(work.join(format!("f{i}")), body).unwrap();
    }
    for i in 0..3 {
        std::fs::write(work.join(format!("sub/g{i}")), format!("g{i}")).unwrap();
    }
    std::fs::write(work.join("empty"), "").unwrap();
    dir
}

/// Every file under `dir` (relative path, content); directories themselves are not data.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// A little deterministic generator (so a failing round can be replayed from its number).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// A valid sequence of file operations over the tree (each names a file that exists when
/// it runs): overwrites, 0-byte writes, appends, new files, removals, renames over files and
/// to new names.
fn churn(round: u64, files: &BTreeMap<String, Vec<u8>>) -> Value {
    let mut rng = Lcg(round + 1);
    let mut names: Vec<String> = files.keys().cloned().collect();
    let mut fresh = 0;
    let mut ops = Vec::new();
    for _ in 0..400 {
        let pick = rng.below(names.len());
        let name = names[pick].clone();
        match rng.below(6) {
            0 => ops.push(json!({"op": "write", "path": name, "text": "", })),
            1 => ops
                .push(json!({"op": "write", "path": name, "text": "ab", "times": rng.below(5000)})),
            2 => {
                fresh += 1;
                let new = format!("new/n{fresh}");
                ops.push(
                    json!({"op": "write", "path": new, "text": "new", "times": rng.below(3000)}),
                );
                names.push(new);
            }
            3 if names.len() > 3 => {
                ops.push(json!({"op": "remove", "path": name}));
                names.remove(pick);
            }
            4 if names.len() > 3 => {
                let onto = rng.below(names.len());
                if onto != pick {
                    ops.push(json!({"op": "rename", "path": name, "to": names[onto]}));
                    names.remove(pick);
                }
            }
            _ => {
                fresh += 1;
                let new = format!("sub/moved{fresh}");
                ops.push(json!({"op": "rename", "path": name, "to": new}));
                names[pick] = new;
            }
        }
    }
    json!({"grant": "work", "ops": ops})
}

/// The paths the task's records say they change (with their undo), and whether the call
/// of the task finished (has a `result` record).
fn recorded(dir: &Path, task: &str) -> (HashSet<PathBuf>, bool) {
    fn paths(undo: &Undo, into: &mut HashSet<PathBuf>) {
        match undo {
            Undo::File { path, .. } => drop(into.insert(path.clone())),
            Undo::Rename { from, to } => into.extend([from.clone(), to.clone()]),
            Undo::Parts { parts } => parts.iter().for_each(|part| paths(part, into)),
            Undo::Pending { scratch, change } => {
                into.extend(scratch.clone());
                paths(change, into);
            }
            other => panic!("a file change recorded without a file undo: {other:?}"),
        }
    }
    let (mut named, mut finished) = (HashSet::new(), false);
    for line in lines(&audit::log_path(&dir.join("state/audit"))).unwrap() {
        let Line::Record { record, .. } = line.unwrap() else { continue };
        match record.event {
            Event::Staged { task: t, undo, .. }
            | Event::Effect { task: t, undo: Some(undo), .. }
                if t == task =>
            {
                paths(&undo, &mut named)
            }
            Event::Result { task: t, .. } if t == task => finished = true,
            _ => {}
        }
    }
    (named, finished)
}

fn moat(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moat")).current_dir(dir).args(args).output().unwrap()
}

#[test]
fn a_call_killed_at_any_moment_leaves_every_change_recorded_and_undone_by_rollback() {
    let dir = sandbox();
    let work = dir.path().join("work");
    let original = tree(&work);
    // A first call compiles the component into the cache, so that every round starts alike.
    let warm = moat(dir.path(), &["call", "fs_ops", "--args", r#"{"grant": "work", "ops": []}"#]);
    assert!(warm.status.success(), "{}", String::from_utf8_lossy(&warm.stderr));
    // The first round runs to the end: how long a whole call takes sets where kills land.
    let mut whole = None;
    let mut unfinished = 0;
    for round in 0..ROUNDS {
        let task = format!("crash-{round}");
        let args = churn(round, &original).to_string();
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir.path())
            .args(["call", "fs_ops", "--args", &args, "--task", &task])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match whole {
            None => {
                // Bounded: a call that does not end within two minutes fails the test.
                while child.try_wait().unwrap().is_none() {
                    assert!(started.elapsed() < Duration::from_secs(120), "the call hangs");
                    std::thread::sleep(Duration::from_millis(5));
                }
                whole = Some(started.elapsed());
            }
            Some(whole) => {
                let nanos = blake3::hash(&round.to_le_bytes()).as_bytes()[..8]
                    .iter()
                    .fold(0u64, |n, b| n << 8 | u64::from(*b));
                let at = Duration::from_nanos(nanos % (whole.as_nanos() as u64 * 5 / 4 + 1));
                std::thread::sleep(at);
                let _ = child.kill(); // SIGKILL; it may already have ended
            }
        }
        child.wait().unwrap();

        // Every file that differs from the original is named by a record with its undo.
        let (named, finished) = recorded(dir.path(), &task);
        unfinished += u32::from(!finished);
        let now = tree(&work);
        let changed: Vec<&String> = original
            .keys()
            .chain(now.keys())
            .filter(|path| original.get(*path) != now.get(*path))
            .collect();
        for path in &changed {
            assert!(
                named.contains(&work.join(path)),
                "round {round}: {path} changed, and no record of task {task} names it"
            );
        }
        // The rollback puts everything back, whatever the moment of the kill.
        let out = moat(dir.path(), &["task", "rollback", &task]);
        let said = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(2) if said.contains("has no effects to undo") => {
                assert!(changed.is_empty(), "round {round}: changes, but nothing to undo")
            }
            other => {
                let shown = moat(dir.path(), &["audit", "export", "--task", &task]);
                std::fs::write(
                    format!("/tmp/crash-records-{}.jsonl", std::process::id()),
                    &shown.stdout,
                )
                .unwrap();
                panic!("round {round}: rollback exited {other:?}: {said}")
            }
        }
        let restored = tree(&work);
        let differ: Vec<&String> = original
            .keys()
            .chain(restored.keys())
            .filter(|p| original.get(*p) != restored.get(*p))
            .collect();
        if !differ.is_empty() {
            let shown = moat(dir.path(), &["audit", "export", "--task", &task]);
            std::fs::write(
                format!("/tmp/crash-records-{}.jsonl", std::process::id()),
                &shown.stdout,
            )
            .unwrap();
            let now: Vec<String> = restored.keys().cloned().collect();
            std::fs::write(
                format!("/tmp/crash-tree-{}.txt", std::process::id()),
                format!("{now:?}\n{changed:?}"),
            )
            .unwrap();
        }
        assert!(differ.is_empty(), "round {round} (finished: {finished}): {differ:?} not put back");
        let out = moat(dir.path(), &["audit", "verify"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    eprintln!(
        "{ROUNDS} rounds, one whole call took {whole:?}; {unfinished} calls were killed before \
         they finished"
    );
}

/// The log of a call that never finished: a new file `a` written twice, moved to the new
/// name `b`, `b` overwritten; then the file `c` (there before the call) moved to `d`, and on
/// to `e` (each a `staged` record, as the capability writes them); then, failing, it marked
/// its newest `undoing` changes, newest first, as about to be undone (an `undoing` record
/// each, as the capability writes them before undoing each).
fn unfinished_call(dir: &Path, undoing: usize) {
    let mut config = moat::Config { state_dir: dir.join("state"), ..moat::Config::default() };
    config.audit.durability = moat::audit::Durability::Durable;
    let log = config.audit.dir(&config.state_dir);
    let keys = config.audit.key_files(&config.state_dir);
    let audit = moat::audit::Audit::open(&log, &keys, &config.audit).unwrap();
    let call = audit
        .record(vec![Event::Call {
            principal: "local".into(),
            task: "T".into(),
            session: "T".into(),
            tool: "fs_ops".into(),
            plugin: "effects.wasm".into(),
            plugin_hash: "00".repeat(32),
            args: audit.text("{}").unwrap(),
            reasoning: None,
            confidence: None,
        }])
        .unwrap();
    let path = |name: &str| dir.join("work").join(name);
    let file = |name: &str, before: Option<&str>, after: &str| Undo::File {
        path: path(name),
        before: before.map(|bytes| audit.blob(bytes.as_bytes()).unwrap()),
        after: Some(moat::undo::hash(after.as_bytes())),
    };
    let moved = |from: &str, to: &str| Undo::Rename { from: path(from), to: path(to) };
    let changes = [
        file("a", None, "X"),
        file("a", Some("X"), "Y"),
        moved("a", "b"),
        file("b", Some("Y"), "Z"),
        moved("c", "d"),
        moved("d", "e"),
    ];
    let mut staged = Vec::new();
    for change in changes {
        let undo = Undo::Pending { scratch: None, change: Box::new(change) };
        let event = Event::Staged {
            call,
            task: "T".into(),
            tool: "fs_ops".into(),
            capability: "fs".into(),
            kind: "write".into(),
            target: "work:a".into(),
            undo,
        };
        staged.push(audit.record(vec![event]).unwrap());
    }
    for seq in staged.iter().rev().take(undoing) {
        audit.record(vec![Event::Undoing { call, task: "T".into(), staged: *seq }]).unwrap();
    }
}

/// What `work/` holds once the call undid its `n` newest changes.
const UNDONE: [&[(&str, &str)]; 7] = [
    &[("b", "Z"), ("e", "C")],
    &[("b", "Z"), ("d", "C")],
    &[("b", "Z"), ("c", "C")],
    &[("b", "Y"), ("c", "C")],
    &[("a", "Y"), ("c", "C")],
    &[("a", "X"), ("c", "C")],
    &[("c", "C")],
];

/// A directory with `work/` holding `files`, and the log of [`unfinished_call`]; then
/// `moat task rollback T`.
fn roll_back_from(
    undoing: usize,
    files: &[(&str, &str)],
) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(dir.path().join("moat.toml"), "state_dir = \"state\"\n").unwrap();
    unfinished_call(dir.path(), undoing);
    for (name, content) in files {
        std::fs::write(dir.path().join("work").join(name), content).unwrap();
    }
    let out = moat(dir.path(), &["task", "rollback", "T"]);
    (dir, out)
}

#[test]
fn a_call_killed_while_undoing_its_own_changes_is_rolled_back_from_wherever_it_stopped() {
    // Killed after marking `marks` changes: the last marked one undone or not yet.
    for marks in 0..=6usize {
        for undone in [marks.saturating_sub(1), marks] {
            let files = UNDONE[undone];
            let (dir, out) = roll_back_from(marks, files);
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() || said.contains("has no effects to undo"),
                "{marks} marked, {undone} undone, {files:?}: {said}"
            );
            let left = tree(&dir.path().join("work"));
            let expected = BTreeMap::from([("c".to_owned(), b"C".to_vec())]);
            assert_eq!(left, expected, "{marks} marked, {undone} undone: as before the call");
        }
    }
    // Anything else in their place is someone else's change: refused, nothing touched.
    let (dir, out) = roll_back_from(2, &[("a", "someone else's"), ("c", "C")]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let a = std::fs::read_to_string(dir.path().join("work/a")).unwrap();
    assert_eq!(a, "someone else's");
    // So is a state the marks do not account for: undone further than they say.
    let (_dir, out) = roll_back_from(1, UNDONE[4]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
