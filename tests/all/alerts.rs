//! Alerts: every alert gets one line in the alert log with its delivery status, and reaches
//! the webhook as JSON, retried on failures worth retrying; raising one never waits for the
//! log or the webhook, and a full queue drops alerts and counts them.

use moat::controls::alert::{read_log, Alert, AlertConfig, AlertKind, Alerts, LoggedAlert};
use moat::units::Millis;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bound of every wait of these tests.
const BOUND: Duration = Duration::from_secs(10);

/// A webhook on 127.0.0.1 answering one connection per status in `statuses`, in order. It
/// reports each request's body on `bodies`; with `hold`, it answers the first request only
/// once `hold` says so (or is dropped). It stops by itself after the last status, or when
/// no connection comes within [`BOUND`].
struct Receiver {
    address: SocketAddr,
    bodies: mpsc::Receiver<String>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(statuses: Vec<u16>, hold: Option<mpsc::Receiver<()>>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let (report, bodies) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut hold = hold;
            for status in statuses {
                let Some(stream) = accept(&listener) else { return };
                let Some(body) = read_request(&stream) else { return };
                let _ = report.send(body);
                if let Some(hold) = hold.take() {
                    let _ = hold.recv_timeout(BOUND);
                }
                answer(stream, status);
            }
        });
        Receiver { address, bodies, thread: Some(thread) }
    }

    fn answering(statuses: &[u16]) -> Receiver {
        Receiver::start(statuses.to_vec(), None)
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/moat", self.address)
    }

    /// The next request's body, waiting at most [`BOUND`].
    fn body(&self) -> String {
        self.bodies.recv_timeout(BOUND).expect("the webhook got no request")
    }

    /// Every body received so far, once the receiver has stopped.
    fn finish(mut self) -> Vec<String> {
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.bodies.try_iter().collect()
    }
}

fn accept(listener: &TcpListener) -> Option<TcpStream> {
    let start = Instant::now();
    while start.elapsed() < BOUND {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).ok()?;
                stream.set_read_timeout(Some(BOUND)).ok()?;
                return Some(stream);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}

/// Reads one HTTP request; returns its body.
fn read_request(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    assert_eq!(content_type, "application/json");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

fn answer(mut stream: TcpStream, status: u16) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// Alerts logged to a temporary directory, not to standard error; quick retries.
struct Setup {
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("state/alerts.jsonl");
        Setup { _dir: dir, log }
    }

    fn alerts(&self, webhook: Option<String>) -> Alerts {
        self.alerts_with(AlertConfig { webhook, ..quiet() })
    }

    fn alerts_with(&self, config: AlertConfig) -> Alerts {
        Alerts::new(config, self.log.clone()).unwrap()
    }

    fn logged(&self) -> Vec<LoggedAlert> {
        read_log(&self.log).unwrap()
    }
}

fn quiet() -> AlertConfig {
    AlertConfig { stderr: false, backoff: Millis(10), ..AlertConfig::default() }
}

fn breaker_open() -> Alert {
    Alert::new(AlertKind::BreakerOpen, "5 failures in 60 s: calls refused for 30 s")
        .with_tool("fetch")
        .with_task("task-1")
        .with_session("s-1")
}

/// A URL where nothing listens: a port just bound and released.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/hooks/moat")
}

#[test]
fn an_alert_reaches_the_webhook_as_json() {
    let setup = Setup::new();
    let receiver = Receiver::answering(&[200]);
    let alerts = setup.alerts(Some(receiver.url()));
    let alert = breaker_open();
    alerts.raise(alert.clone());
    assert!(alerts.flush(BOUND));

    let body: serde_json::Value = serde_json::from_str(&receiver.body()).unwrap();
    assert_eq!(body, serde_json::to_value(&alert).unwrap());
    assert_eq!(body["kind"], "breaker_open");
    assert_eq!(body["tool"], "fetch");
    let logged = setup.logged();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].alert, alert);
    assert_eq!((logged[0].delivered, logged[0].attempts), (Some(true), 1));
    assert_eq!(logged[0].error, None);
}

#[test]
fn a_webhook_answering_500_twice_then_200_gets_the_alert_on_the_third_attempt() {
    let setup = Setup::new();
    let receiver = Receiver::answering(&[500, 500, 200]);
    let alerts = setup.alerts(Some(receiver.url()));
    let alert = Alert::new(AlertKind::BudgetExhausted, "task-9 spent its 50000 tokens");
    alerts.raise(alert.clone());
    assert!(alerts.flush(BOUND));

    let bodies = receiver.finish();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    for body in &bodies {
        let sent: Alert = serde_json::from_str(body).unwrap();
        assert_eq!(sent, alert);
    }
    let logged = setup.logged();
    assert_eq!((logged[0].delivered, logged[0].attempts), (Some(true), 3));
}

#[test]
fn a_dead_webhook_is_given_up_after_the_retries_and_logged_as_undelivered() {
    let setup = Setup::new();
    let alerts =
        setup.alerts_with(AlertConfig { webhook: Some(dead_url()), retries: 2, ..quiet() });
    let alert = Alert::new(AlertKind::TaskStopped, "task-3 stopped by the operator");
    alerts.raise(alert.clone());
    assert!(alerts.flush(BOUND));

    let logged = setup.logged();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].alert, alert);
    assert_eq!((logged[0].delivered, logged[0].attempts), (Some(false), 3));
    let error = logged[0].error.as_deref().unwrap();
    assert!(error.starts_with("gave up after 3 attempts"), "{error}");
    assert!(!error.contains("/hooks/moat"), "the URL may hold a token: {error}");
}

#[test]
fn raise_returns_while_the_webhook_still_holds_the_request() {
    let setup = Setup::new();
    let (release, hold) = mpsc::channel();
    let receiver = Receiver::start(vec![200], Some(hold));
    let alerts = setup.alerts_with(AlertConfig {
        webhook: Some(receiver.url()),
        timeout: Millis(60_000),
        ..quiet()
    });
    alerts.raise(breaker_open());
    // The webhook holds the request until this thread releases it: `raise` did not wait.
    receiver.body();
    assert!(!alerts.flush(Duration::ZERO), "delivered before the webhook answered");
    assert!(setup.logged().is_empty());

    release.send(()).unwrap();
    assert!(alerts.flush(BOUND));
    assert_eq!(setup.logged()[0].delivered, Some(true));
}

#[test]
fn a_webhook_that_never_answers_is_given_up_after_the_timeout_of_each_attempt() {
    let setup = Setup::new();
    let (_release, hold) = mpsc::channel::<()>();
    let receiver = Receiver::start(vec![200], Some(hold));
    let alerts = setup.alerts_with(AlertConfig {
        webhook: Some(receiver.url()),
        timeout: Millis(200),
        retries: 0,
        ..quiet()
    });
    alerts.raise(breaker_open());
    assert!(alerts.flush(BOUND));

    let logged = setup.logged();
    assert_eq!((logged[0].delivered, logged[0].attempts), (Some(false), 1));
    let error = logged[0].error.as_deref().unwrap();
    assert!(error.contains("no answer within the timeout (200 ms)"), "{error}");
}

#[test]
fn a_client_error_from_the_webhook_is_not_retried() {
    let setup = Setup::new();
    let receiver = Receiver::answering(&[404]);
    let alerts = setup.alerts(Some(receiver.url()));
    alerts.raise(breaker_open());
    assert!(alerts.flush(BOUND));

    let logged = setup.logged();
    assert_eq!((logged[0].delivered, logged[0].attempts), (Some(false), 1));
    let error = logged[0].error.as_deref().unwrap();
    assert!(error.contains("404"), "{error}");
}

#[test]
fn a_full_queue_drops_the_alert_and_counts_it() {
    let setup = Setup::new();
    let (release, hold) = mpsc::channel();
    let receiver = Receiver::start(vec![200, 200], Some(hold));
    let alerts = setup.alerts_with(AlertConfig {
        webhook: Some(receiver.url()),
        timeout: Millis(60_000),
        queue: 1,
        ..quiet()
    });
    let first = Alert::new(AlertKind::LoopDetected, "the same call 5 times").with_tool("fetch");
    let second = Alert::new(AlertKind::LoopDetected, "the same call 6 times").with_tool("fetch");
    let third = Alert::new(AlertKind::LoopDetected, "the same call 7 times").with_tool("fetch");
    alerts.raise(first.clone());
    // The first is at the webhook, held there; the second fills the queue of one.
    receiver.body();
    alerts.raise(second.clone());
    alerts.raise(third);
    assert_eq!(alerts.dropped(), 1);

    release.send(()).unwrap();
    assert!(alerts.flush(BOUND));
    let logged: Vec<Alert> = setup.logged().into_iter().map(|l| l.alert).collect();
    assert_eq!(logged, vec![first, second]);
}

#[test]
fn the_alert_log_holds_one_line_per_alert() {
    let setup = Setup::new();
    let alerts = setup.alerts(None);
    let raised = vec![
        breaker_open(),
        Alert::new(AlertKind::TaskStopped, "stopped").with_task("task-2"),
        Alert::new(AlertKind::LoopDetected, "a loop").with_session("s-9"),
        Alert::new(AlertKind::BudgetExhausted, "no more tokens").with_task("task-2"),
    ];
    for alert in &raised {
        alerts.raise(alert.clone());
    }
    assert!(alerts.flush(BOUND));

    let text = std::fs::read_to_string(&setup.log).unwrap();
    assert_eq!(text.lines().count(), raised.len());
    for line in text.lines() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(json.get("delivered").is_none(), "no webhook, no delivery status: {line}");
    }
    let logged: Vec<Alert> = setup.logged().into_iter().map(|l| l.alert).collect();
    assert_eq!(logged, raised);
}

#[test]
fn the_alert_log_is_appended_to_across_restarts() {
    let setup = Setup::new();
    for n in 0..2 {
        let alerts = setup.alerts(None);
        alerts.raise(Alert::new(AlertKind::TaskStopped, format!("run {n}")));
        assert!(alerts.close(BOUND));
    }
    let messages: Vec<String> = setup.logged().into_iter().map(|l| l.alert.message).collect();
    assert_eq!(messages, ["run 0", "run 1"]);
}

#[test]
fn dropping_the_alerts_delivers_what_was_queued() {
    let setup = Setup::new();
    let receiver = Receiver::answering(&[200]);
    let alerts = setup.alerts(Some(receiver.url()));
    alerts.raise(breaker_open());
    drop(alerts);

    assert_eq!(setup.logged().len(), 1);
    assert_eq!(receiver.finish().len(), 1);
}

#[test]
fn alerts_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Alerts>();
}

#[test]
fn the_config_has_defaults_and_refuses_unknown_keys_and_bad_webhooks() {
    let config: AlertConfig = toml::from_str("").unwrap();
    assert_eq!(config, AlertConfig::default());
    assert!(config.stderr);
    assert_eq!((config.retries, config.timeout, config.queue), (3, Millis(2000), 1000));

    let config: AlertConfig =
        toml::from_str("webhook = \"https://hooks.example.com/x\"\ntimeout = \"5s\"").unwrap();
    assert_eq!(config.webhook.as_deref(), Some("https://hooks.example.com/x"));
    assert_eq!(config.timeout, Millis(5000));

    let refused = |text: &str| toml::from_str::<AlertConfig>(text).unwrap_err().to_string();
    assert!(refused("webhok = \"https://x\"").contains("unknown field"));
    assert!(refused("webhook = \"ftp://example.com/x\"").contains("use http or https"));
    assert!(refused("webhook = \"example.com/x\"").contains("no scheme"));
    assert!(refused("webhook = \"http://exa mple.com/x\"").contains("not a valid URL"));
    assert!(refused("webhook = \"http:///x\"").contains("the webhook"));

    let setup = Setup::new();
    let zero = Alerts::new(AlertConfig { queue: 0, ..quiet() }, setup.log.clone());
    assert!(zero.err().unwrap().to_string().contains("queue"));
}
