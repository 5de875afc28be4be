//! Escalation: a person decides whether one exact call may go ahead, from another process
//! (`moat approvals`), over HTTP on loopback, or at the terminal. A decision applies to
//! exactly one request, once, and only to the tool and arguments it was asked about; nobody
//! deciding in time is a denial.

use moat::admin::{escalator, ApprovalServer};
use moat::escalation::{
    binding, terminal, ApprovalQueue, Channel, Decision, Escalation, EscalationConfig, Escalator,
    QueueError, QueueEscalator, Status, TerminalEscalator,
};
use moat::units::Millis;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Long enough never to run out in a test that decides; tests that time out use 300 ms.
const PATIENT: Duration = Duration::from_secs(20);
/// The bound of every wait of these tests.
const BOUND: Duration = Duration::from_secs(10);

/// A state directory with its approval queue, and a `moat.toml` pointing at it.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    queue: Arc<ApprovalQueue>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, "state_dir = \"state\"\n").unwrap();
    let queue = Arc::new(ApprovalQueue::in_state_dir(&dir.path().join("state")).unwrap());
    Setup { _dir: dir, config, queue }
}

impl Setup {
    fn escalator(&self, timeout: Duration) -> Arc<QueueEscalator> {
        Arc::new(QueueEscalator::new(self.queue.clone(), timeout))
    }

    /// `moat --config moat.toml approvals ARGS`, in another process.
    fn approvals(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_moat"))
            .arg("--config")
            .arg(&self.config)
            .arg("approvals")
            .args(args)
            .env("USER", "carol")
            .output()
            .expect("moat runs")
    }

    /// Starts `escalator.decide(escalation)` on a thread and returns once the request is
    /// pending in the queue.
    fn waiting(
        &self,
        escalator: &Arc<QueueEscalator>,
        escalation: &Escalation,
    ) -> JoinHandle<Decision> {
        let (escalator, asked) = (escalator.clone(), escalation.clone());
        let waiter = std::thread::spawn(move || escalator.decide(&asked));
        let start = Instant::now();
        while !self.queue.pending().unwrap().iter().any(|row| row.id == escalation.id) {
            assert!(start.elapsed() < BOUND, "the request never became pending");
            std::thread::sleep(Duration::from_millis(10));
        }
        waiter
    }
}

fn delete_orders() -> Escalation {
    Escalation::new(
        "db_execute",
        r#"{"sql":"DELETE FROM orders WHERE id < 40"}"#,
        "task-7",
        "no-prod",
        "deletes rows of orders",
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_fails_saying(out: &Output, words: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(words), "{}", text(&out.stderr));
}

#[test]
fn an_approval_from_another_process_lets_the_waiting_call_go_ahead() {
    let setup = setup();
    let asked = delete_orders();
    let waiter = setup.waiting(&setup.escalator(PATIENT), &asked);

    let out = setup.approvals(&["approve", &asked.id, "--by", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("approved {}", asked.id)), "{}", text(&out.stdout));

    assert_eq!(waiter.join().unwrap(), Decision::Approved { by: "alice".into() });
    let row = setup.queue.get(&asked.id).unwrap();
    assert_eq!((row.status, row.decided_by.as_deref()), (Status::Approved, Some("alice")));
}

#[test]
fn the_person_deciding_is_user_unless_named() {
    let setup = setup();
    let asked = delete_orders();
    let waiter = setup.waiting(&setup.escalator(PATIENT), &asked);
    let out = setup.approvals(&["approve", &asked.id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(waiter.join().unwrap(), Decision::Approved { by: "carol".into() });
}

#[test]
fn a_denial_from_another_process_carries_its_reason() {
    let setup = setup();
    let asked = delete_orders();
    let waiter = setup.waiting(&setup.escalator(PATIENT), &asked);

    let out = setup.approvals(&["deny", &asked.id, "--reason", "not on a Friday", "--by", "bob"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    assert_eq!(
        waiter.join().unwrap(),
        Decision::Denied { by: "bob".into(), reason: "not on a Friday".into() }
    );
}

#[test]
fn nobody_deciding_in_time_is_a_timeout_and_the_request_expires() {
    let setup = setup();
    let asked = delete_orders();
    let start = Instant::now();
    let decision = setup.escalator(Duration::from_millis(300)).decide(&asked);
    let waited = start.elapsed();

    assert_eq!(decision, Decision::TimedOut { channel: "queue".into() });
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(setup.queue.get(&asked.id).unwrap().status, Status::Expired);
    assert!(setup.queue.pending().unwrap().is_empty());
    // Too late: an expired request cannot be approved.
    assert_fails_saying(
        &setup.approvals(&["approve", &asked.id]),
        &format!("approval request `{}` is already expired", asked.id),
    );
}

#[test]
fn an_approval_is_used_once_and_for_its_request_only() {
    let setup = setup();
    let escalator = setup.escalator(PATIENT);
    let asked = delete_orders();
    let same_call_again = delete_orders();
    assert_ne!(asked.id, same_call_again.id, "each escalation is a request of its own");

    let waiter = setup.waiting(&escalator, &asked);
    setup.queue.approve(&asked.id, "alice").unwrap();
    assert_eq!(waiter.join().unwrap(), Decision::Approved { by: "alice".into() });

    // A decided request is never pending again: no second approval, no late denial.
    assert!(matches!(
        setup.queue.approve(&asked.id, "alice"),
        Err(QueueError::NotPending { status: Status::Approved, .. })
    ));
    assert_fails_saying(
        &setup.approvals(&["approve", &asked.id, "--by", "mallory"]),
        &format!("approval request `{}` is already approved (by alice), not pending", asked.id),
    );
    assert_fails_saying(&setup.approvals(&["deny", &asked.id]), "is already approved");

    // The same call asked again is a new request, and waits for a decision of its own.
    let decision = setup.escalator(Duration::from_millis(300)).decide(&same_call_again);
    assert_eq!(decision, Decision::TimedOut { channel: "queue".into() });
}

#[test]
fn unknown_requests_and_nameless_decisions_are_refused() {
    let setup = setup();
    assert_fails_saying(&setup.approvals(&["approve", "nope"]), "no approval request `nope`");
    assert_fails_saying(&setup.approvals(&["deny", "nope"]), "no approval request `nope`");

    let asked = delete_orders();
    let waiter = setup.waiting(&setup.escalator(PATIENT), &asked);
    assert!(matches!(setup.queue.approve(&asked.id, "  "), Err(QueueError::NoName)));
    assert_fails_saying(&setup.approvals(&["approve", &asked.id, "--by", ""]), "`by` is empty");
    assert_eq!(setup.queue.get(&asked.id).unwrap().status, Status::Pending);

    setup.queue.deny(&asked.id, "alice", "cleanup").unwrap();
    assert!(matches!(waiter.join().unwrap(), Decision::Denied { .. }));
}

#[test]
fn deciding_never_creates_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, "state_dir = \"state\"\n").unwrap();
    let moat = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_moat"))
            .arg("--config")
            .arg(&config)
            .arg("approvals")
            .args(args)
            .output()
            .expect("moat runs")
    };
    let out = moat(&["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no pending approval requests"), "{}", text(&out.stdout));
    assert_fails_saying(&moat(&["approve", "abc", "--by", "alice"]), "no approval request `abc`");
    assert!(!dir.path().join("state").exists());
}

#[test]
fn a_forged_request_is_never_approved() {
    let setup = setup();
    // Someone with access to the file queues a request whose binding is that of a harmless
    // call, with the arguments of a harmful one.
    let harmless = binding("db_execute", r#"{"sql":"SELECT 1"}"#);
    let raw = rusqlite::Connection::open(setup.queue.path()).unwrap();
    raw.execute(
        "INSERT INTO approvals (id, tool, args, task, asked_by, reason, binding, created, expires)
         VALUES ('forged', 'db_execute', '{\"sql\":\"DROP TABLE orders\"}', 't', 'no-prod',
                 'looks harmless', ?1, 0, 9999999999999)",
        [&harmless],
    )
    .unwrap();

    assert!(matches!(
        setup.queue.approve("forged", "alice"),
        Err(QueueError::BindingMismatch(id)) if id == "forged"
    ));
    let row = setup.queue.get("forged").unwrap();
    assert_eq!((row.status, row.decided_by.as_deref()), (Status::Denied, Some("moat")));
    assert_fails_saying(&setup.approvals(&["approve", "forged"]), "is already denied");
}

#[test]
fn a_request_changed_while_it_waits_is_not_approved() {
    let setup = setup();
    let escalator = setup.escalator(PATIENT);
    let raw = rusqlite::Connection::open(setup.queue.path()).unwrap();

    // The arguments are swapped under a pending request: approving it is refused.
    let asked = delete_orders();
    let waiter = setup.waiting(&escalator, &asked);
    raw.execute(
        "UPDATE approvals SET args = '{\"sql\":\"DROP TABLE orders\"}' WHERE id = ?1",
        [&asked.id],
    )
    .unwrap();
    assert!(matches!(setup.queue.approve(&asked.id, "alice"), Err(QueueError::BindingMismatch(_))));
    assert!(
        matches!(waiter.join().unwrap(), Decision::Denied { by, .. } if by == "moat"),
        "a tampered request denies its call"
    );

    // Even rewritten consistently (arguments and binding) and marked approved behind the
    // queue's back, the approval is not for the call that waits.
    let asked = delete_orders();
    let waiter = setup.waiting(&escalator, &asked);
    let other = r#"{"sql":"DROP TABLE orders"}"#;
    raw.execute(
        "UPDATE approvals SET args = ?2, binding = ?3, status = 'approved', decided_by = 'mallory'
         WHERE id = ?1",
        [&asked.id, other, &binding("db_execute", other)],
    )
    .unwrap();
    match waiter.join().unwrap() {
        Decision::Denied { by, reason } => {
            assert_eq!(by, "moat");
            assert!(reason.contains("no longer matches this call"), "{reason}");
        }
        decision => panic!("approved something else: {decision:?}"),
    }
}

#[test]
fn list_shows_what_waits_and_json_has_every_field() {
    let setup = setup();
    let long = format!(r#"{{"sql":"DELETE FROM orders WHERE id IN ({})"}}"#, "1, ".repeat(200));
    let asked = Escalation::new("db_execute", &long, "task-7", "no-prod", "deletes rows");
    let waiter = setup.waiting(&setup.escalator(PATIENT), &asked);

    let out = setup.approvals(&["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for shown in [asked.id.as_str(), "db_execute", "no-prod: deletes rows", "args: {\"sql\""] {
        assert!(stdout.contains(shown), "`{shown}` missing from:\n{stdout}");
    }
    assert!(stdout.contains('…') && !stdout.contains(&long), "long args are cut:\n{stdout}");

    let out = setup.approvals(&["list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let row = &listed.as_array().expect("an array")[0];
    assert_eq!(row["id"], asked.id.as_str());
    assert_eq!(row["args"], long.as_str(), "all of the arguments");
    assert_eq!(row["binding"], asked.binding.as_str());
    assert_eq!(row["status"], "pending");
    for field in ["task", "asked_by", "reason", "created", "expires", "decided_by", "decided_at"] {
        assert!(row.get(field).is_some(), "no `{field}` in {row}");
    }

    setup.queue.deny(&asked.id, "alice", "done").unwrap();
    waiter.join().unwrap();
    let out = setup.approvals(&["list", "--json"]);
    assert_eq!(text(&out.stdout).trim(), "[]", "decided requests are not listed");
}

/// One HTTP/1.1 request to `address` (with the body's `Content-Length`, unless `head` gives
/// one: two that differ are a malformed request); the status and the JSON body of the
/// response.
fn http(address: SocketAddr, head: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect_timeout(&address, BOUND).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let length = if head.to_ascii_lowercase().contains("\r\ncontent-length:") {
        String::new()
    } else {
        format!("\r\nContent-Length: {}", body.len())
    };
    let request = format!("{head}{length}\r\n\r\n{body}");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = text(&response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let (_, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (status, serde_json::from_str(body).expect("a JSON body"))
}

fn get(address: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    http(address, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}", address.port()), "")
}

fn post(address: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/json",
        address.port()
    );
    http(address, &head, body)
}

#[test]
fn the_queue_is_served_over_http_on_loopback() {
    let setup = setup();
    let server = ApprovalServer::start(setup.queue.clone(), "127.0.0.1:0").unwrap();
    let address = server.address();
    let escalator = setup.escalator(PATIENT);

    let asked = delete_orders();
    let waiter = setup.waiting(&escalator, &asked);
    let (status, listed) = get(address, "/approvals");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["id"], asked.id.as_str());
    assert_eq!(listed[0]["tool"], "db_execute");

    let approve = format!("/approvals/{}/approve", asked.id);
    let (status, row) = post(address, &approve, r#"{"by": "dana"}"#);
    assert_eq!((status, &row["status"]), (200, &serde_json::json!("approved")), "{row}");
    assert_eq!(waiter.join().unwrap(), Decision::Approved { by: "dana".into() });

    let (status, refusal) = post(address, &approve, "");
    assert_eq!(status, 409, "{refusal}");
    assert!(refusal["error"].as_str().unwrap().contains("already approved"), "{refusal}");
    let (status, refusal) = post(address, "/approvals/nope/deny", "");
    assert_eq!(status, 404, "{refusal}");
    assert_eq!(refusal["error"], "no approval request `nope`");

    let asked = delete_orders();
    let waiter = setup.waiting(&escalator, &asked);
    let deny = format!("/approvals/{}/deny", asked.id);
    let (status, row) = post(address, &deny, r#"{"by": "erin", "reason": "too many rows"}"#);
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        waiter.join().unwrap(),
        Decision::Denied { by: "erin".into(), reason: "too many rows".into() }
    );
    let (status, row) = get(address, &format!("/approvals/{}", asked.id));
    assert_eq!((status, &row["decision_reason"]), (200, &serde_json::json!("too many rows")));
}

#[test]
fn http_refuses_requests_that_do_not_come_from_loopback() {
    let setup = setup();
    let server = ApprovalServer::start(setup.queue.clone(), "127.0.0.1:0").unwrap();
    let address = server.address();
    let asked = delete_orders();
    let waiter = setup.waiting(&setup.escalator(PATIENT), &asked);
    let approve = format!("POST /approvals/{}/approve HTTP/1.1", asked.id);

    // DNS rebinding: a web page's own name resolving to 127.0.0.1.
    let (status, refusal) = http(address, &format!("{approve}\r\nHost: evil.example"), "");
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(refusal["error"], "host `evil.example` is not a loopback name");
    let (status, _) = http(address, &format!("{approve}\r\nHost: 127.0.0.1.evil.example"), "");
    assert_eq!(status, 403);
    // A cross-site request from a browser.
    let head = format!("{approve}\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example");
    assert_eq!(http(address, &head, "").0, 403);
    assert_eq!(http(address, &approve, "").0, 400, "no Host header");
    // Bounded and well-formed.
    let head = format!("{approve}\r\nHost: 127.0.0.1\r\nContent-Length: 100000");
    assert_eq!(http(address, &head, "").0, 413);
    assert_eq!(post(address, &format!("/approvals/{}/approve", asked.id), "{by: 1}").0, 400);
    assert_eq!(post(address, &format!("/approvals/{}/approve", asked.id), r#"{"who":"x"}"#).0, 400);
    assert_eq!(get(address, "/elsewhere").0, 404);
    assert_eq!(get(address, &format!("/approvals/{}/approve", asked.id)).0, 405);

    assert_eq!(setup.queue.get(&asked.id).unwrap().status, Status::Pending, "none of it decided");
    setup.queue.deny(&asked.id, "alice", "done").unwrap();
    waiter.join().unwrap();
}

#[test]
fn the_http_queue_binds_loopback_only() {
    let setup = setup();
    for address in ["0.0.0.0:0", "192.0.2.1:7878", "[::]:0"] {
        let error = ApprovalServer::start(setup.queue.clone(), address).err().expect(address);
        assert!(error.contains(&format!("`{address}` is not a loopback address")), "{error}");
    }
    let config = EscalationConfig {
        channel: Channel::Queue,
        http: Some("0.0.0.0:7878".into()),
        ..EscalationConfig::default()
    };
    let error = escalator(&config, setup._dir.path()).err().expect("refused at start");
    assert!(error.contains("not a loopback address"), "{error}");
}

#[test]
fn escalator_builds_the_configured_channel() {
    let setup = setup();
    let state = setup._dir.path().join("state");

    let deny = EscalationConfig { channel: Channel::Deny, ..EscalationConfig::default() };
    let start = Instant::now();
    let decision = escalator(&deny, &state).unwrap().decide(&delete_orders());
    assert!(matches!(decision, Decision::TimedOut { .. }) && start.elapsed() < BOUND);

    // The queue, served over HTTP for as long as the escalator lives.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = EscalationConfig {
        channel: Channel::Queue,
        timeout: Millis(20_000),
        http: Some(format!("127.0.0.1:{port}")),
        ..EscalationConfig::default()
    };
    let queued = escalator(&config, &state).unwrap();
    let asked = delete_orders();
    let waiter = {
        let (queued, asked) = (queued.clone(), asked.clone());
        std::thread::spawn(move || queued.decide(&asked))
    };
    let start = Instant::now();
    while setup.queue.pending().unwrap().is_empty() {
        assert!(start.elapsed() < BOUND, "the request never became pending");
        std::thread::sleep(Duration::from_millis(10));
    }
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, row) = post(address, &format!("/approvals/{}/approve", asked.id), "");
    assert_eq!(status, 200, "{row}");
    assert_eq!(waiter.join().unwrap(), Decision::Approved { by: "http (loopback)".into() });

    let terminal_and_http = EscalationConfig { channel: Channel::Terminal, ..config };
    let error = escalator(&terminal_and_http, &state).err().expect("a contradiction");
    assert!(error.contains("escalation.http serves the approval queue"), "{error}");
}

#[test]
fn the_escalation_table_has_defaults_and_denies_unknown_keys() {
    let config: EscalationConfig = toml::from_str("").unwrap();
    assert_eq!(config, EscalationConfig::default());
    assert_eq!(
        (config.channel, config.timeout, config.http),
        (Channel::Auto, Millis(300_000), None)
    );

    let config: EscalationConfig =
        toml::from_str("channel = \"queue\"\ntimeout = \"300ms\"\nhttp = \"127.0.0.1:7878\"\n")
            .unwrap();
    assert_eq!(config.channel, Channel::Queue);
    assert_eq!(config.timeout, Millis(300));

    let error = toml::from_str::<EscalationConfig>("chanel = \"queue\"").unwrap_err();
    assert!(error.to_string().contains("chanel"), "{error}");
    assert!(toml::from_str::<EscalationConfig>("channel = \"email\"").is_err());
}

/// What a terminal shows, shared with the escalator writing to it.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        text(&self.0.lock().unwrap())
    }

    /// Waits (bounded) until the `n`th question is on the screen.
    fn wait_for_question(&self, n: usize) {
        let start = Instant::now();
        while self.text().matches("[y/N]").count() < n {
            assert!(start.elapsed() < BOUND, "question {n} never shown:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn the_terminal_approves_only_on_y_or_yes() {
    for yes in ["y", "Y", "yes", "YES", "Yes", " yes \n", "y\r\n"] {
        assert!(terminal::is_yes(yes), "{yes:?}");
        assert_eq!(terminal::answer(yes, "alice"), Decision::Approved { by: "alice".into() });
    }
    for no in ["", "\n", "n", "no", "yess", "ye", "ok", "sure", "y es", "yes please", "oui"] {
        assert!(!terminal::is_yes(no), "{no:?}");
        assert!(
            matches!(terminal::answer(no, "alice"), Decision::Denied { by, .. } if by == "alice")
        );
    }
}

#[test]
fn the_terminal_shows_the_call_and_takes_one_answer_per_question() {
    let (input, mut keyboard) = std::io::pipe().unwrap();
    let screen = Screen::default();
    let terminal = Arc::new(TerminalEscalator::with_io(input, screen.clone(), PATIENT, "alice"));
    let ask = |escalation: Escalation| {
        let terminal = terminal.clone();
        std::thread::spawn(move || terminal.decide(&escalation))
    };

    let asked = delete_orders();
    let waiter = ask(asked.clone());
    screen.wait_for_question(1);
    let shown = screen.text();
    for part in ["no-prod", "db_execute", "deletes rows of orders", "task-7", &asked.id] {
        assert!(shown.contains(part), "`{part}` missing from:\n{shown}");
    }
    assert!(shown.contains(r#""sql": "DELETE FROM orders WHERE id < 40""#), "pretty:\n{shown}");
    keyboard.write_all(b"yes\n").unwrap();
    assert_eq!(waiter.join().unwrap(), Decision::Approved { by: "alice".into() });

    let waiter = ask(delete_orders());
    screen.wait_for_question(2);
    keyboard.write_all(b"n\n").unwrap();
    let decision = waiter.join().unwrap();
    assert!(
        matches!(&decision, Decision::Denied { by, reason } if by == "alice" && reason.contains("`n`")),
        "{decision:?}"
    );

    let waiter = ask(delete_orders());
    screen.wait_for_question(3);
    keyboard.write_all(b"\n").unwrap();
    assert!(matches!(waiter.join().unwrap(), Decision::Denied { .. }), "an empty answer denies");
}

#[test]
fn an_answer_typed_before_the_question_does_not_count() {
    let (input, mut keyboard) = std::io::pipe().unwrap();
    let terminal =
        TerminalEscalator::with_io(input, Screen::default(), Duration::from_millis(300), "alice");
    keyboard.write_all(b"y\n").unwrap();
    std::thread::sleep(Duration::from_millis(100)); // read, and waiting
    assert_eq!(
        terminal.decide(&delete_orders()),
        Decision::TimedOut { channel: "terminal".into() }
    );
}

#[test]
fn no_answer_at_the_terminal_is_a_timeout_and_no_input_denies() {
    let (input, keyboard) = std::io::pipe().unwrap();
    let screen = Screen::default();
    let terminal =
        TerminalEscalator::with_io(input, screen.clone(), Duration::from_millis(300), "alice");
    let start = Instant::now();
    assert_eq!(
        terminal.decide(&delete_orders()),
        Decision::TimedOut { channel: "terminal".into() }
    );
    assert!(start.elapsed() >= Duration::from_millis(300) && start.elapsed() < BOUND);
    assert!(screen.text().contains("no answer in time: denied."), "{}", screen.text());

    drop(keyboard);
    assert!(matches!(terminal.decide(&delete_orders()), Decision::TimedOut { .. }));
}

#[test]
fn the_terminal_shows_control_characters_escaped() {
    let (input, mut keyboard) = std::io::pipe().unwrap();
    let screen = Screen::default();
    let terminal = Arc::new(TerminalEscalator::with_io(input, screen.clone(), PATIENT, "alice"));
    let sneaky = Escalation::new(
        "db_execute",
        "not json \u{1b}[2J\u{1b}[1A",
        "t",
        "no-prod",
        "harmless\u{1b}[8m hidden \u{202e}desrever",
    );
    let waiter = {
        let terminal = terminal.clone();
        std::thread::spawn(move || terminal.decide(&sneaky))
    };
    screen.wait_for_question(1);
    keyboard.write_all(b"n\n").unwrap();
    waiter.join().unwrap();
    let shown = screen.text();
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{202e}'), "{shown:?}");
    assert!(shown.contains("\\u{1b}[2J"), "{shown}");
}
