//! A fault-injection harness (issue 21): `moat serve --stdio`, under a stream of calls that
//! write files, is killed with SIGKILL at random moments (and while a breaker's probe is in
//! flight), has the disk of its audit log filled (a small tmpfs, or where mounting is not
//! possible a file-size limit), and has its state database held by another process. After
//! each fault, [`after_fault`] checks the same things: the next call of the same tool runs,
//! `moat audit verify` passes, every call whose answer the client got is in the log with
//! that outcome, and the tool's breaker is closed with no probe lease left behind.
//! `MOAT_FAULTS_SEED=N` picks other kill moments; `MOAT_FAULTS_DISK=rlimit` forces the
//! file-size limit where a tmpfs could be mounted.

use crate::support::{built, shared_compile_cache};
use moat::audit::read::{lines, Line};
use moat::audit::{self, Event, Text};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Kill rounds; in every fourth, the kill waits for a probe in flight.
const ROUNDS: u64 = 12;
/// A random kill lands this long after the server is started, at most.
const HORIZON: Duration = Duration::from_millis(1200);
/// Calls sent in one round, at most: more than fit before the latest kill.
const MAX_CALLS: usize = 1000;
/// How long any one answer may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What one call of `fs_ops` does: each writes `calls/MARKER` and reads it back (so every
/// output is new to its task); `Slow` also writes 2 MB more, `Fail` then reads a missing
/// file, which fails the call (and undoes its write).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Quick,
    Slow,
    Fail,
}

/// The stream: two failures open the breaker (`failures = 2`, no cool-down), so the slow
/// call after them is its half-open probe, holding a lease while it runs.
const PATTERN: [Kind; 4] = [Kind::Quick, Kind::Fail, Kind::Fail, Kind::Slow];

fn args(marker: &str, kind: Kind) -> Value {
    let path = format!("calls/{marker}");
    let mut ops = vec![
        json!({"op": "write", "path": path, "text": marker}),
        json!({"op": "read", "path": path}),
    ];
    match kind {
        Kind::Quick => {}
        Kind::Slow => {
            let pad = format!("pad/{marker}");
            ops.push(json!({"op": "write", "path": pad, "text": "x", "times": 2_000_000}))
        }
        Kind::Fail => ops.push(json!({"op": "read", "path": "missing"})),
    }
    json!({"grant": "work", "ops": ops})
}

/// A call whose answer the client received, and whether it succeeded.
#[derive(Clone, Debug)]
struct Answered {
    marker: String,
    ok: bool,
}

impl Answered {
    fn new(marker: &str, answer: &Value) -> Answered {
        assert!(answer["error"].is_null(), "{marker}: a protocol error: {answer}");
        let ok = answer["result"]["isError"] == false;
        Answered { marker: marker.to_owned(), ok }
    }
}

/// A directory with `moat.toml`, `work/` (the tool's grant) and `state/`.
struct Sandbox {
    dir: tempfile::TempDir,
    config: PathBuf,
    audit: PathBuf,
}

impl Sandbox {
    /// The audit log in `audit` (default `state/audit`).
    fn new(audit: Option<&Path>) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let audit = audit.map_or_else(|| dir.path().join("state/audit"), Path::to_owned);
        let (tests, cache) = (built("tests"), shared_compile_cache());
        let text = format!(
            "state_dir = \"state\"\n[plugins]\ntools = [{tests:?}]\n[compile_cache]\n\
             dir = {cache:?}\n[audit]\ndurability = \"durable\"\ndir = {audit:?}\n\
             [confidence]\nhigh = 0\n\
             [breakers]\nfailures = 2\nfailure_rate = 0\ncool_down = \"0s\"\n\
             [limits.principal]\nwritten_per_hour = \"64 GiB\"\nwritten_per_day = \"64 GiB\"\n\
             [tools.fs_ops.grants.fs.work]\npath = \"work\"\nmode = \"read-write\"\n\
             write_per_call = \"64 MiB\"\nwrite_per_task = \"64 GiB\"\n"
        );
        let config = dir.path().join("moat.toml");
        std::fs::write(&config, text).unwrap();
        std::fs::create_dir_all(dir.path().join("work/calls")).unwrap();
        Sandbox { dir, config, audit }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `moat --config moat.toml ARGS`, to its end.
    fn moat(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(self.dir.path())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("moat runs")
    }

    fn state(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("state/state.sqlite")).expect("the state database")
    }

    /// The pids holding a probe lease of any breaker.
    fn lease_holders(&self) -> Vec<u32> {
        if !self.path("state/state.sqlite").exists() {
            return Vec::new(); // not yet made: opening it here would make it
        }
        let db = self.state();
        let mut query = match db.prepare("SELECT pid FROM breaker_probes") {
            Ok(query) => query,
            Err(_) => return Vec::new(), // no breaker has been half-open yet
        };
        let pids = query.query_map([], |row| row.get(0)).expect("the leases");
        pids.collect::<Result<_, _>>().expect("the leases")
    }

    /// The position of `fs_ops`'s breaker (`closed` before it ever opened).
    fn breaker(&self) -> String {
        self.state()
            .query_row(
                "SELECT position FROM breakers WHERE scope = 'tool' AND name = 'fs_ops'",
                [],
                |row| row.get(0),
            )
            .unwrap_or_else(|_| "closed".to_owned())
    }

    /// Each call in the log by its marker: `Some(ok)` once its result is recorded.
    fn outcomes(&self) -> HashMap<String, Option<bool>> {
        let (mut markers, mut outcomes) = (HashMap::new(), HashMap::new());
        for line in lines(&audit::log_path(&self.audit)).expect("the log reads") {
            let Ok(Line::Record { record, .. }) = line else { continue };
            match record.event {
                Event::Call { args: Text::Inline(args), .. } => {
                    let args: Value = serde_json::from_str(&args).unwrap_or_default();
                    let path = args["ops"][0]["path"].as_str().unwrap_or_default();
                    if let Some(marker) = path.strip_prefix("calls/") {
                        markers.insert(record.seq, marker.to_owned());
                        outcomes.insert(marker.to_owned(), None);
                    }
                }
                Event::Result { call, ok, .. } => {
                    if let Some(marker) = markers.get(&call) {
                        outcomes.insert(marker.clone(), Some(ok));
                    }
                }
                _ => {}
            }
        }
        outcomes
    }

    /// Whether the log holds a `staged` record (a change about to happen) of call `marker`.
    fn staged(&self, marker: &str) -> bool {
        let target = format!("work:calls/{marker}");
        lines(&audit::log_path(&self.audit)).expect("the log reads").any(|line| {
            matches!(line, Ok(Line::Record { record, .. })
                if matches!(&record.event, Event::Staged { target: t, .. } if *t == target))
        })
    }

    /// Whether the call `marker` changed the workspace.
    fn wrote(&self, marker: &str) -> bool {
        self.path("work/calls").join(marker).exists()
    }
}

/// What every fault must leave: the next call of the tool runs (in a new process, which
/// opens the log and so cuts off a record a kill tore), the log verifies, every answered
/// call is recorded with the outcome its client was told, and the tool's breaker is closed
/// with no probe lease left (a lease of a dead process, or one never given back, would
/// refuse every call after it as "a probe call is already testing it").
fn after_fault(sandbox: &Sandbox, answered: &[Answered], fault: &str) {
    let marker = format!("after-{}", fault.replace(' ', "-"));
    let next = args(&marker, Kind::Quick).to_string();
    let out = sandbox.moat(&["call", "fs_ops", "--args", &next, "--task", &marker]);
    assert!(
        out.status.success(),
        "after {fault}: the next call was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sandbox.wrote(&marker), "after {fault}: the next call had no effect");
    let verified = sandbox.moat(&["audit", "verify"]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "after {fault}: verify: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    let outcomes = sandbox.outcomes();
    for call in answered.iter().chain([&Answered { marker, ok: true }]) {
        let recorded = outcomes.get(&call.marker);
        assert_eq!(
            recorded,
            Some(&Some(call.ok)),
            "after {fault}: call {} was answered (ok: {}), but the log has {recorded:?}",
            call.marker,
            call.ok
        );
    }
    assert_eq!(sandbox.lease_holders(), Vec::<u32>::new(), "after {fault}: a probe lease is left");
    assert_eq!(sandbox.breaker(), "closed", "after {fault}: the breaker is left open");
}

/// A minimal MCP client over a `moat serve --stdio` child process of the sandbox.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
}

impl Server {
    /// Starts the server (not yet initialized); `setup` may change its command first.
    fn spawn(sandbox: &Sandbox, name: &str, setup: impl FnOnce(&mut Command)) -> Server {
        let stderr = std::fs::File::create(sandbox.path(&format!("{name}.stderr"))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_moat"));
        command
            .current_dir(sandbox.dir.path())
            .arg("--config")
            .arg(&sandbox.config)
            .args(["serve", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        setup(&mut command);
        let mut child = command.spawn().expect("moat starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        // Ends by itself when moat's standard output closes (it exits or is killed).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Server { child, stdin, lines, next_id: 1 }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a request; returns its id. A server already dead does not read it: that is
    /// what a kill is, not an error here.
    fn request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        let _ = writeln!(stdin, "{message}").and_then(|()| stdin.flush());
    }

    /// The answer to request `id`; `None` once `stop` says so (asked every 2 ms) or the
    /// server's output ends. Fails after [`TIMEOUT`].
    fn answer(&self, id: u64, stop: &mut dyn FnMut() -> bool) -> Option<Value> {
        let started = Instant::now();
        loop {
            if stop() {
                return None;
            }
            match self.lines.recv_timeout(Duration::from_millis(2)) {
                Ok(line) => {
                    let message: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                    if message["id"] == id {
                        return Some(message);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    assert!(started.elapsed() < TIMEOUT, "no answer to request {id} in time")
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The MCP handshake; false if `stop` said so first.
    fn initialize(&mut self, stop: &mut dyn FnMut() -> bool) -> bool {
        let params = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "moat-faults", "version": "0"}
        });
        let id = self.request("initialize", params);
        let Some(init) = self.answer(id, stop) else { return false };
        assert_eq!(init["result"]["serverInfo"]["name"], "moat", "{init}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        true
    }

    fn initialized(mut self) -> Server {
        assert!(self.initialize(&mut || false), "moat exited during the handshake");
        self
    }

    fn send_call(&mut self, marker: &str, kind: Kind, task: &str) -> u64 {
        let params = json!({
            "name": "fs_ops", "arguments": args(marker, kind), "_meta": {"moat/task": task}
        });
        self.request("tools/call", params)
    }

    /// One call, to its answer.
    fn call(&mut self, marker: &str, kind: Kind, task: &str) -> Value {
        let id = self.send_call(marker, kind, task);
        self.answer(id, &mut || false).expect("moat answers")
    }

    /// SIGKILL; returns every line moat wrote before it died (still in the pipe).
    fn kill(mut self) -> Vec<Value> {
        let _ = self.child.kill(); // it may have exited by itself
        self.child.wait().expect("moat is reaped");
        let mut written = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            written.extend(serde_json::from_str::<Value>(&line).ok());
        }
        written
    }

    /// Closes moat's input and waits (bounded) for it to exit cleanly.
    fn hang_up(mut self) {
        drop(self.stdin.take());
        let started = Instant::now();
        while started.elapsed() < TIMEOUT {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "moat exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("moat did not exit within {TIMEOUT:?} of its input closing");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn error_message(answer: &Value) -> String {
    let error = &answer["result"]["structuredContent"]["error"]["message"];
    error.as_str().unwrap_or_default().to_owned()
}

/// A small deterministic generator: the same seed, the same kill moments.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

// ---- killed ------------------------------------------------------------------------------

#[test]
fn a_server_killed_at_random_moments_loses_no_answered_call_and_leaves_no_control_stuck() {
    let seed = std::env::var("MOAT_FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(21);
    eprintln!("faults: {ROUNDS} kills, seed {seed} (MOAT_FAULTS_SEED=N for other moments)");
    let mut rng = Rng(seed);
    let sandbox = Sandbox::new(None);
    let (mut answered_in_all, mut killed_probing, mut killed_before_answering) = (0, 0, 0);
    for round in 0..ROUNDS {
        let hunt = round % 4 == 3;
        let kill_at = Duration::from_micros(rng.below(HORIZON.as_micros() as u64));
        let mut server = Server::spawn(&sandbox, &format!("round-{round}"), |_| {});
        let (pid, started) = (server.pid(), Instant::now());
        // A random moment; or, hunting, the moment a probe of this server holds its lease.
        let mut stop = || {
            if hunt {
                sandbox.lease_holders().contains(&pid)
            } else {
                started.elapsed() >= kill_at
            }
        };
        let (mut answered, mut pending) = (Vec::new(), None);
        if server.initialize(&mut stop) {
            for n in 0..MAX_CALLS {
                let marker = format!("r{round}-{n}");
                let id = server.send_call(&marker, PATTERN[n % 4], &format!("round-{round}"));
                match server.answer(id, &mut stop) {
                    Some(answer) => answered.push(Answered::new(&marker, &answer)),
                    None => {
                        pending = Some((id, marker));
                        break;
                    }
                }
            }
        }
        // The answer moat wrote before it died counts as received.
        for message in server.kill() {
            if let Some((id, marker)) = &pending {
                if message["id"] == *id {
                    answered.push(Answered::new(marker, &message));
                    pending = None;
                }
            }
        }
        killed_before_answering += u32::from(pending.is_some());
        killed_probing += u32::from(sandbox.lease_holders().contains(&pid));
        answered_in_all += answered.len();
        after_fault(&sandbox, &answered, &format!("kill {round}"));
        let _ = std::fs::remove_dir_all(sandbox.path("work/pad"));
    }
    eprintln!(
        "faults: {answered_in_all} answered calls over {ROUNDS} kills; {killed_before_answering} \
         kills came with a call in flight, {killed_probing} while a probe held its lease"
    );
    assert!(killed_probing > 0, "no kill came while a probe held its lease: the test is void");
}

// ---- disk full ---------------------------------------------------------------------------

/// A filesystem for the audit log that the test can fill and free: a small tmpfs mounted
/// for the test, or, where mounting is not possible (or `MOAT_FAULTS_DISK=rlimit`), the
/// server's file-size limit (`RLIMIT_FSIZE`, SIGXFSZ ignored) lowered to the log's size, so
/// that its writes fail with EFBIG as they would with ENOSPC. Unmounted when dropped.
enum Disk {
    Tmpfs(PathBuf),
    FileSize,
}

impl Disk {
    fn new(at: &Path) -> Disk {
        std::fs::create_dir_all(at).unwrap();
        let forced = std::env::var("MOAT_FAULTS_DISK").is_ok_and(|m| m == "rlimit");
        let mounted = !forced
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
                .arg(at)
                .output()
                .is_ok_and(|out| out.status.success());
        if mounted {
            eprintln!("faults: disk full: a 1 MiB tmpfs at {} holds the audit log", at.display());
            Disk::Tmpfs(at.to_owned())
        } else {
            eprintln!(
                "faults: disk full: simulated ({}): the server's RLIMIT_FSIZE is lowered to \
                 the log's size, its writes fail with EFBIG",
                if forced {
                    "MOAT_FAULTS_DISK=rlimit"
                } else {
                    "mount -t tmpfs is not possible here"
                }
            );
            Disk::FileSize
        }
    }

    /// Prepares the server's command: with a file-size limit to come, SIGXFSZ must not kill it.
    fn prepare(&self, command: &mut Command) {
        if let Disk::FileSize = self {
            use std::os::unix::process::CommandExt;
            // SAFETY: signal(2) is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
    }

    /// No more room for the log `log` of the server `pid`.
    fn fill(&self, pid: u32, log: &Path) {
        match self {
            Disk::Tmpfs(at) => {
                let mut filler = std::fs::File::create(at.join("filler")).unwrap();
                for chunk in [64 * 1024, 4096, 1] {
                    let bytes = vec![0u8; chunk];
                    // Bounded: twice the disk's size.
                    for _ in 0..(2 << 20) / chunk {
                        if filler.write(&bytes).is_err() {
                            break;
                        }
                    }
                }
            }
            Disk::FileSize => {
                let size = std::fs::metadata(log).unwrap().len();
                file_size_limit(pid, size);
            }
        }
    }

    /// The room comes back.
    fn free(&self, pid: u32) {
        match self {
            Disk::Tmpfs(at) => std::fs::remove_file(at.join("filler")).unwrap(),
            Disk::FileSize => file_size_limit(pid, libc::RLIM_INFINITY),
        }
    }
}

/// Sets the soft file-size limit of process `pid` (ours: a child of the test).
fn file_size_limit(pid: u32, bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: prlimit(2) reads `limit` and writes nothing (the old limit is not asked for).
    let done = unsafe {
        libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut())
    };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Disk::Tmpfs(at) = self {
            let unmounted = Command::new("umount").arg(&*at).status().is_ok_and(|s| s.success());
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(&*at).status();
            }
        }
    }
}

#[test]
fn a_full_disk_refuses_the_calls_it_cannot_record_and_runs_none_of_them_unrecorded() {
    let scratch = tempfile::tempdir().unwrap();
    let disk = Disk::new(&scratch.path().join("disk"));
    let sandbox = Sandbox::new(Some(&scratch.path().join("disk/audit")));
    let mut server =
        Server::spawn(&sandbox, "server", |command| disk.prepare(command)).initialized();
    let mut answered = Vec::new();
    for n in 0..3 {
        let marker = format!("before-{n}");
        let answer = server.call(&marker, Kind::Quick, "disk");
        assert_eq!(answer["result"]["isError"], false, "{answer}");
        answered.push(Answered::new(&marker, &answer));
    }
    disk.fill(server.pid(), &audit::log_path(&sandbox.audit));
    // What is left in the log's last page may still take a record or two; then nothing.
    let mut refused = Vec::new();
    for n in 0..64 {
        let marker = format!("full-{n}");
        let answer = server.call(&marker, Kind::Quick, "disk");
        if answer["result"]["isError"] == false {
            assert!(refused.is_empty(), "{marker} ran after a call was refused: {answer}");
            answered.push(Answered::new(&marker, &answer));
            continue;
        }
        let said = error_message(&answer);
        assert!(said.contains("audit log"), "{marker}: refused, but not for the log: {said}");
        refused.push((marker, said));
        if refused.len() == 4 {
            break;
        }
    }
    assert_eq!(refused.len(), 4, "calls still ran on a full disk: {answered:?}");
    // None ran unrecorded: a call refused midway (its first records written, its last not)
    // made its change only after the change's `staged` record, with its undo, was on disk.
    for (marker, said) in &refused {
        let staged = sandbox.staged(marker);
        assert!(!sandbox.wrote(marker) || staged, "{marker} ran unrecorded (refused: {said})");
    }

    disk.free(server.pid());
    let answer = server.call("freed", Kind::Quick, "disk");
    assert_eq!(answer["result"]["isError"], false, "with room again, calls run: {answer}");
    answered.push(Answered::new("freed", &answer));
    server.hang_up();
    after_fault(&sandbox, &answered, "disk full");
    drop(disk); // unmounted (also when a panic comes first)
}

// ---- the state database held -------------------------------------------------------------

/// Another process holding `state.sqlite`: `busy`, in a write transaction (other writers
/// wait, then give up; readers read on), or `locked`, in exclusive locking mode (nobody
/// else reads or writes). Released when dropped.
struct Holder {
    child: Child,
}

const HOLD: &str = "import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
if sys.argv[2] == 'locked':
    db.execute('PRAGMA locking_mode = EXCLUSIVE')
db.execute('BEGIN EXCLUSIVE')
if sys.argv[2] == 'locked':
    db.execute('COMMIT')  # in exclusive locking mode, the lock outlives the transaction
print('held', flush=True)
sys.stdin.read()
";

impl Holder {
    fn take(db: &Path, mode: &str) -> Holder {
        let mut child = Command::new(crate::mcp_client::python())
            .args(["-c", HOLD])
            .arg(db)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python starts");
        let mut said = String::new();
        let stdout = child.stdout.as_mut().expect("stdout is piped");
        BufReader::new(stdout).read_line(&mut said).expect("python answers");
        assert_eq!(said.trim(), "held", "python could not hold {}", db.display());
        Holder { child }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // it reads to the end of its input, then exits
        let _ = self.child.wait();
    }
}

#[test]
fn a_state_database_held_by_another_process_refuses_calls_until_it_is_released() {
    let sandbox = Sandbox::new(None);
    let db = sandbox.path("state/state.sqlite");
    let mut server = Server::spawn(&sandbox, "server", |_| {}).initialized();
    let mut answered = Vec::new();
    let answer = server.call("before", Kind::Quick, "held");
    answered.push(Answered::new("before", &answer));
    // Busy: another process in a write transaction while the server runs. The controls
    // cannot admit the call (after the busy timeout): refused, recorded, not run.
    let holder = Holder::take(&db, "busy");
    let answer = server.call("busy", Kind::Quick, "held");
    assert_eq!(answer["result"]["isError"], true, "it ran: {answer}");
    let said = error_message(&answer);
    assert!(said.contains("state database") && said.contains("locked"), "why? {said}");
    assert!(!sandbox.wrote("busy"), "refused ({said}), and yet it ran");
    answered.push(Answered::new("busy", &answer));
    drop(holder);
    let answer = server.call("released", Kind::Quick, "held");
    assert_eq!(answer["result"]["isError"], false, "released, calls run again: {answer}");
    answered.push(Answered::new("released", &answer));
    server.hang_up();
    // Locked: another process holds it exclusively (readers too; it can take that only
    // while no moat has it open). moat does not start, so runs nothing, and says why.
    let holder = Holder::take(&db, "locked");
    let call = args("locked", Kind::Quick).to_string();
    let out = sandbox.moat(&["call", "fs_ops", "--args", &call, "--task", "held"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("cannot start: state database") && said.contains("locked"), "{said}");
    assert!(!sandbox.wrote("locked"), "it did not start ({said}), and yet it ran");
    drop(holder);
    after_fault(&sandbox, &answered, "state held");
}
