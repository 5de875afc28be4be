//! Shared setup: where the built guest components are, and hosts over them.

use moat::escalation::{Decision, Escalation, Escalator};
use moat::{Budgets, CallError, CallResponse, Config, Host};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_owned()
}

/// A directory of built components: `tools` (example tools) or `tests` (test plugins).
/// Fails, saying how to build them, when they are missing: a test never skips silently.
pub fn built(kind: &str) -> PathBuf {
    let dir = root().join("target/wasm").join(kind);
    assert!(
        dir.join(match kind {
            "tools" => "echo.wasm",
            "python" => "word-stats.wasm",
            "tests-python" => "escape.wasm",
            "foreign" => "eval-py.wasm",
            "python-policies" => "no-internal-urls.wasm",
            "js" => "text-tools.wasm",
            "js-policies" => "safe-arguments.wasm",
            "tests-js" => "escape.wasm",
            "test-policies" => "scripted.wasm",
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

/// The default configuration, with moat's state (the audit log among it) kept in `dir`,
/// and compiled components in one cache all tests share (a Python or JavaScript component
/// compiles once per run of the tests, not once per host).
pub fn config_in(dir: &Path) -> Config {
    let mut config = Config { state_dir: dir.join("state"), ..Config::default() };
    config.compile_cache.dir = Some(shared_compile_cache());
    config
}

/// The compile cache the tests share: target/test-compile-cache.
pub fn shared_compile_cache() -> PathBuf {
    root().join("target/test-compile-cache")
}

/// Turns off the breakers and loop detection: for tests of other things that make the same
/// failing call many times on purpose (their own tests are in `controls.rs`).
pub fn without_controls(config: &mut Config) {
    config.breakers.failures = 0;
    config.breakers.failure_rate = 0.0;
    config.breakers.task_failures = 0;
    config.breakers.task_no_progress = 0;
    config.loops = moat::controls::loops::LoopConfig { repeats: 0, retries: 0, same_error: 0 };
}

/// A host and the directory holding its state (removed with it).
pub struct TestHost {
    pub host: Host,
    _state: tempfile::TempDir,
}

impl std::ops::Deref for TestHost {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

/// Waits until the host's watchers have taken in every change made to its tool and policy
/// directories so far, so that the next call sees them: no sleeping, and no test depends on
/// how long a watcher takes. Fails the test, naming the directories, if a watcher does not
/// answer within a minute.
pub fn settled(host: &Host) {
    if let Err(stalled) = host.wait_for_watchers(std::time::Duration::from_secs(60)) {
        panic!("{stalled}");
    }
}

/// A host over the given directories with the given default budgets; every component in
/// them must load.
pub fn host_over(dirs: &[PathBuf], budgets: Budgets) -> TestHost {
    let state = tempfile::tempdir().expect("a temporary directory");
    let mut config = config_in(state.path());
    without_controls(&mut config);
    config.plugins.tools = dirs.to_vec();
    config.budgets = budgets;
    let (host, errors) = Host::new(config).expect("the engine starts");
    assert!(errors.is_empty(), "unexpected load errors: {errors:?}");
    TestHost { host, _state: state }
}

/// A host over the example tools and the test plugins, with default budgets.
pub fn host() -> TestHost {
    host_over(&[built("tools"), built("tests")], Budgets::default())
}

/// A person who decides every escalation the same way, and remembers what they were asked.
pub struct Person {
    approve: bool,
    /// How long they think before answering.
    delay: std::time::Duration,
    pub asked: Mutex<Vec<Escalation>>,
}

impl Person {
    pub fn new(approve: bool) -> Arc<Person> {
        Person::slow(approve, std::time::Duration::ZERO)
    }

    pub fn slow(approve: bool, delay: std::time::Duration) -> Arc<Person> {
        Arc::new(Person { approve, delay, asked: Mutex::new(Vec::new()) })
    }

    /// The reasons they were given, in order.
    pub fn reasons(&self) -> Vec<String> {
        self.asked.lock().unwrap().iter().map(|e| e.reason.clone()).collect()
    }
}

impl Escalator for Person {
    fn decide(&self, escalation: &Escalation) -> Decision {
        self.asked.lock().unwrap().push(escalation.clone());
        std::thread::sleep(self.delay);
        match self.approve {
            true => Decision::Approved { by: "alice".into() },
            false => Decision::Denied { by: "alice".into(), reason: "not today".into() },
        }
    }
}

/// The stage and reason of a call a check refused (a policy, or a person asked); anything
/// else fails the test.
pub fn refused(result: Result<CallResponse, CallError>) -> (moat::error::Stage, String) {
    match result {
        Err(
            CallError::Denied { stage, reason, .. } | CallError::Declined { stage, reason, .. },
        ) => (stage, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A property-test runner of `cases` cases (`MOAT_FUZZ_CASES=N` for a deeper run), no
/// failure files written: the failing input is in the panic message.
pub fn fuzz_runner(cases: u32) -> proptest::test_runner::TestRunner {
    let cases = std::env::var("MOAT_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    let config =
        proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() };
    // A fixed seed: the same cases on every run, so a red CI is a defect found, reproducible,
    // never a roll of the dice. `MOAT_FUZZ_SEED=N` explores other cases.
    let seed: u64 = std::env::var("MOAT_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = proptest::test_runner::TestRng::from_seed(
        proptest::test_runner::RngAlgorithm::ChaCha,
        &bytes,
    );
    proptest::test_runner::TestRunner::new_with_rng(config, rng)
}

/// Runs the test `name` (as libtest names it: `module::test`) again, alone, in a child
/// process of this test binary, and returns false once it passed there; in that child,
/// returns true, and the test does its work. For tests of process-wide state that other
/// tests running at once would disturb: tracing, for one, caches each callsite's interest
/// for the whole process, so spans collected while other threads make calls are racy.
/// The child must report exactly one test passed: a name that matches nothing fails.
pub fn alone(module: &str, name: &str) -> bool {
    const CHILD: &str = "MOAT_TEST_ALONE";
    let module = module.split_once("::").map_or(module, |(_crate, rest)| rest);
    let test = format!("{module}::{name}");
    if std::env::var(CHILD).as_deref() == Ok(test.as_str()) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let output = std::process::Command::new(exe)
        .args([test.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, &test)
        .output()
        .expect("the test binary starts again");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "`{test}`, run alone in a process of its own, did not pass ({}):\n{stdout}\n{stderr}",
        output.status
    );
    false
}
