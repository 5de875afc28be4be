//! Alerts to a person: when a breaker trips, a task is stopped, a loop is detected or a budget
//! is exhausted, a line on standard error at once, then, on one background thread, a line in
//! the alert log (JSON Lines, with the delivery status) and a JSON POST to a webhook, retried
//! with exponential backoff. Raising an alert never waits for the log or the webhook.
//!
//! ```toml
//! [alerts]
//! stderr = true                          # one line per alert on standard error
//! # log = ".moat/alerts.jsonl"           # default: STATE_DIR/alerts.jsonl
//! webhook = "https://hooks.example.com/moat"   # optional: each alert POSTed as JSON
//! retries = 3                            # after the first attempt (connection errors, 5xx)
//! timeout = "2s"                         # per attempt
//! backoff = "250ms"                      # before the first retry, doubled for each next one
//! queue = 1000                           # alerts waiting for delivery; more are dropped
//! ```

use crate::audit::torn;
use crate::units::Millis;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use ureq::http::Uri;

/// How long dropping [`Alerts`] waits for queued alerts to be delivered.
pub const DROP_FLUSH: Duration = Duration::from_secs(3);
/// The longest wait between two attempts, however many retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `[alerts]` of `moat.toml`: where alerts go.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// One line per alert on standard error, when it is raised. Default true.
    #[serde(default = "default_stderr")]
    pub stderr: bool,
    /// The alert log (JSON Lines). Default: `STATE_DIR/alerts.jsonl`.
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// An `http://` or `https://` URL each alert is POSTed to as JSON. Checked when the
    /// config is read: the scheme, and that there is a host.
    #[serde(default, deserialize_with = "webhook_url")]
    pub webhook: Option<String>,
    /// Attempts after the first, on a connection error, a timeout, 5xx, 408 or 429.
    /// Default 3.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Time for one attempt, from connecting to the response's status. Default 2 s.
    #[serde(default = "default_timeout")]
    pub timeout: Millis,
    /// Wait before the first retry; doubled for each next one, at most 30 s. Default 250 ms.
    #[serde(default = "default_backoff")]
    pub backoff: Millis,
    /// Alerts waiting for the log and the webhook; when full, a new alert is dropped (its
    /// stderr line is still printed, with a warning that counts the drops). Default 1000.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

impl Default for AlertConfig {
    fn default() -> AlertConfig {
        AlertConfig {
            stderr: default_stderr(),
            log: None,
            webhook: None,
            retries: default_retries(),
            timeout: default_timeout(),
            backoff: default_backoff(),
            queue: default_queue(),
        }
    }
}

fn default_stderr() -> bool {
    true
}
fn default_retries() -> u32 {
    3
}
fn default_timeout() -> Millis {
    Millis(2_000)
}
fn default_backoff() -> Millis {
    Millis(250)
}
fn default_queue() -> usize {
    1000
}

fn webhook_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(deserializer)?;
    check_webhook(&url).map_err(serde::de::Error::custom)?;
    Ok(Some(url))
}

/// Checks a webhook URL: it parses, its scheme is `http` or `https`, and it names a host.
/// The error does not repeat the URL (it may hold a token).
pub fn check_webhook(url: &str) -> Result<Uri, String> {
    if !url.contains("://") {
        return Err("the webhook URL has no scheme: use http:// or https://".to_owned());
    }
    let uri: Uri = url.parse().map_err(|e| format!("the webhook is not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => {}
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => {}
        Some(scheme) => {
            return Err(format!("the webhook's scheme is `{scheme}`: use http or https"))
        }
        None => return Err("the webhook URL has no scheme: use http:// or https://".to_owned()),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(uri),
        _ => Err("the webhook URL has no host".to_owned()),
    }
}

impl AlertConfig {
    /// Checks what deserialization cannot: the webhook (for configs built in code), a queue
    /// of at least one, a timeout of at least 1 ms.
    pub fn check(&self) -> Result<(), AlertError> {
        if let Some(url) = &self.webhook {
            check_webhook(url).map_err(AlertError::Config)?;
        }
        if self.queue == 0 {
            return Err(AlertError::Config("alerts.queue must be at least 1".to_owned()));
        }
        if self.timeout.0 == 0 {
            return Err(AlertError::Config("alerts.timeout must be at least 1 ms".to_owned()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alerts: {0}")]
    Config(String),
    #[error("alert log {}: {source}", path.display())]
    Log { path: PathBuf, source: std::io::Error },
    #[error("alerts: cannot start the delivery thread: {0}")]
    Thread(std::io::Error),
}

/// What happened that a person must hear of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    BreakerOpen,
    TaskStopped,
    LoopDetected,
    BudgetExhausted,
    /// The alert log's torn last line was cut off (and saved) when moat opened it.
    LogRepaired,
}

impl AlertKind {
    /// The name in JSON and on standard error (`breaker_open`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::BreakerOpen => "breaker_open",
            AlertKind::TaskStopped => "task_stopped",
            AlertKind::LoopDetected => "loop_detected",
            AlertKind::BudgetExhausted => "budget_exhausted",
            AlertKind::LogRepaired => "log_repaired",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One alert: the webhook's body as JSON, and (with its delivery status) one line of the
/// alert log. `message` must already be redacted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub tool: Option<String>,
    pub task: Option<String>,
    pub session: Option<String>,
    pub message: String,
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
}

impl Alert {
    /// An alert of `kind`, now, about no tool, task or session in particular.
    pub fn new(kind: AlertKind, message: impl Into<String>) -> Alert {
        Alert {
            kind,
            tool: None,
            task: None,
            session: None,
            message: message.into(),
            time_us: crate::clock::now_us(),
        }
    }
    pub fn with_tool(mut self, tool: impl Into<String>) -> Alert {
        self.tool = Some(tool.into());
        self
    }
    pub fn with_task(mut self, task: impl Into<String>) -> Alert {
        self.task = Some(task.into());
        self
    }
    pub fn with_session(mut self, session: impl Into<String>) -> Alert {
        self.session = Some(session.into());
        self
    }
}

impl fmt::Display for Alert {
    /// `breaker_open (tool fetch, task t-1, session s): MESSAGE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let about: Vec<String> =
            [("tool", &self.tool), ("task", &self.task), ("session", &self.session)]
                .into_iter()
                .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} {v}")))
                .collect();
        write!(f, "{}", self.kind)?;
        if !about.is_empty() {
            write!(f, " ({})", about.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One line of the alert log: the alert and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedAlert {
    #[serde(flatten)]
    pub alert: Alert,
    /// Whether the webhook accepted it (a 2xx answer); absent when there is no webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
    /// Attempts made to deliver it (0 without a webhook).
    #[serde(default)]
    pub attempts: u32,
    /// Why it was not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads an alert log. A missing log holds no alert; a line that is not an alert is an
/// error naming the line.
pub fn read_log(path: &Path) -> Result<Vec<LoggedAlert>, AlertError> {
    let io = |source| AlertError::Log { path: path.to_owned(), source };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut alerts = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        let alert = serde_json::from_str(&line).map_err(|e| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {}: {e}", number + 1),
            ))
        })?;
        alerts.push(alert);
    }
    Ok(alerts)
}

/// Where alerts go: standard error at once, the log and the webhook from a background thread.
/// `Send + Sync`; share it with an `Arc`. Dropping it delivers what is queued (waiting at
/// most [`DROP_FLUSH`], plus one attempt in progress) and stops the thread.
pub struct Alerts {
    stderr: bool,
    sender: Option<SyncSender<Alert>>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    /// One webhook attempt: how long stopping may wait for the one in progress.
    attempt: Duration,
}

/// What the caller's side and the delivery thread share.
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Progress {
    /// Alerts queued so far, and alerts logged (delivered or given up) so far.
    accepted: u64,
    finished: u64,
    /// Shutting down: no more attempts, no more waiting between them.
    stopping: bool,
    /// The delivery thread has ended.
    exited: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits `delay` unless moat is stopping; false when it is.
    fn sleep(&self, delay: Duration) -> bool {
        let end = Instant::now().checked_add(delay);
        let mut progress = self.lock();
        while !progress.stopping {
            let left = match end {
                Some(end) => end.saturating_duration_since(Instant::now()),
                None => MAX_BACKOFF,
            };
            if left.is_zero() {
                return true;
            }
            progress = match self.changed.wait_timeout(progress, left) {
                Ok((progress, _)) => progress,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        false
    }

    /// Waits until `done` holds, or `deadline` has passed; whether it holds.
    fn wait_until(&self, deadline: Duration, done: impl Fn(&Progress) -> bool) -> bool {
        let end = Instant::now().checked_add(deadline);
        let mut progress = self.lock();
        loop {
            if done(&progress) {
                return true;
            }
            let left = match end {
                Some(end) => end.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return false;
            }
            progress = match self.changed.wait_timeout(progress, left) {
                Ok((progress, _)) => progress,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Alerts {
    /// Checks `config`, opens (creating) the alert log at `log_path` for appending, cuts off
    /// a torn last line a crash left there (saved beside it as `NAME.torn-UNIX_MS`, and
    /// noted in the log as a `log_repaired` line), and starts the delivery thread. `config.log` is not read: the caller resolves it.
    pub fn new(config: AlertConfig, log_path: PathBuf) -> Result<Alerts, AlertError> {
        config.check()?;
        let webhook = match &config.webhook {
            Some(url) => {
                Some(Webhook::new(&config, check_webhook(url).map_err(AlertError::Config)?))
            }
            None => None,
        };
        let io = |source| AlertError::Log { path: log_path.clone(), source };
        if let Some(parent) = log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file =
            OpenOptions::new().read(true).create(true).append(true).open(&log_path).map_err(io)?;
        let mut log = AlertLog { path: log_path, file };
        log.repair()?;
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let (sender, receiver) = sync_channel(config.queue);
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("moat-alerts".to_owned())
                .spawn(move || deliver_all(receiver, &shared, log, webhook))
                .map_err(AlertError::Thread)?
        };
        Ok(Alerts {
            stderr: config.stderr,
            sender: Some(sender),
            shared,
            worker: Some(worker),
            attempt: config.timeout.duration(),
        })
    }

    /// Raises `alert`. Never blocks: the stderr line is printed now; the log line and the
    /// webhook follow on the delivery thread. When the queue is full the alert is dropped
    /// and a warning counting the drops goes to standard error.
    pub fn raise(&self, alert: Alert) {
        if self.stderr {
            print_stderr(&format!("moat: ALERT {alert}"));
        }
        let refused = match &self.sender {
            Some(sender) => match sender.try_send(alert) {
                Ok(()) => None,
                Err(TrySendError::Full(alert)) => Some((alert, "the alert queue is full")),
                Err(TrySendError::Disconnected(alert)) => {
                    Some((alert, "the alert thread has stopped"))
                }
            },
            None => None,
        };
        match refused {
            None => self.shared.update(|progress| progress.accepted += 1),
            Some((alert, why)) => {
                let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(dropped, kind = %alert.kind, "alert dropped: {why}");
                print_stderr(&format!(
                    "moat: warning: {why}: alert not logged or sent ({dropped} dropped so far): \
                     {alert}"
                ));
            }
        }
    }

    /// Waits, at most `deadline`, until every alert raised before this call is logged
    /// (delivered, or given up). Whether they all were.
    pub fn flush(&self, deadline: Duration) -> bool {
        let target = self.shared.lock().accepted;
        self.shared.wait_until(deadline, |p| p.finished >= target || p.exited)
            && self.shared.lock().finished >= target
    }

    /// Alerts dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Flushes (at most `deadline`), then stops the thread: alerts still queued are logged
    /// as not sent, an attempt in progress is waited for (at most one timeout). Whether
    /// everything was delivered or given up within `deadline`.
    pub fn close(mut self, deadline: Duration) -> bool {
        self.shutdown(deadline)
    }

    fn shutdown(&mut self, deadline: Duration) -> bool {
        let flushed = self.flush(deadline);
        self.shared.update(|progress| progress.stopping = true);
        drop(self.sender.take());
        let exited = self
            .shared
            .wait_until(self.attempt + Duration::from_secs(1), |progress| progress.exited);
        if let Some(worker) = self.worker.take() {
            // A thread still inside an attempt is left to end on its own.
            if exited {
                let _ = worker.join();
            }
        }
        flushed
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.shutdown(DROP_FLUSH);
        }
    }
}

/// A line on standard error, made safe for a terminal; a closed stderr is ignored.
fn print_stderr(line: &str) {
    let line = crate::text::printable(line, false);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Marks the thread as ended, however it ends.
struct Exited<'a>(&'a Shared);

impl Drop for Exited<'_> {
    fn drop(&mut self) {
        self.0.update(|progress| progress.exited = true);
    }
}

/// The delivery thread: each alert to the webhook (if any), then to the log.
fn deliver_all(
    receiver: Receiver<Alert>,
    shared: &Shared,
    mut log: AlertLog,
    webhook: Option<Webhook>,
) {
    let _exited = Exited(shared);
    // After an alert was given up on a failure worth retrying, the webhook is taken to be
    // down: the next alerts get one attempt each (no retries, no backoff) until one is
    // delivered, so that a dead webhook does not hold the queue up for long.
    let mut down = false;
    for alert in receiver.iter() {
        let logged = match &webhook {
            None => LoggedAlert { alert, delivered: None, attempts: 0, error: None },
            Some(_) if shared.lock().stopping => LoggedAlert {
                alert,
                delivered: Some(false),
                attempts: 0,
                error: Some("not sent: moat was stopping".to_owned()),
            },
            Some(webhook) => {
                let delivery = webhook.deliver(&alert, shared, down);
                down = delivery.down;
                LoggedAlert {
                    alert,
                    delivered: Some(delivery.error.is_none()),
                    attempts: delivery.attempts,
                    error: delivery.error,
                }
            }
        };
        log.append(&logged);
        shared.update(|progress| progress.finished += 1);
    }
}

/// The alert log, open for appending.
struct AlertLog {
    path: PathBuf,
    file: File,
}

impl AlertLog {
    /// Cuts off a last line without its newline, or one that is not an alert, saving it
    /// beside the log; then appends a `log_repaired` line saying what was cut. Other moat
    /// processes appending meanwhile wait: each append holds a shared lock on the file, the
    /// repair an exclusive one.
    fn repair(&mut self) -> Result<(), AlertError> {
        let log_path = self.path.clone();
        let io = |source| AlertError::Log { path: log_path.clone(), source };
        self.file.lock().map_err(io)?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_else(|| "alerts.jsonl".to_owned());
        let path = &self.path;
        let saved_as = |_| path.with_file_name(format!("{name}.torn-{}", torn::now_ms()));
        let valid = |line: &[u8]| serde_json::from_slice::<LoggedAlert>(line).is_ok();
        let repaired = torn::repair(&mut self.file, saved_as, valid);
        let cut = match repaired {
            Ok(cut) => cut.cut,
            Err(e) => {
                let _ = self.file.unlock();
                return Err(io(e));
            }
        };
        let Some(cut) = cut else {
            return self.file.unlock().map_err(io);
        };
        let saved = cut.saved.display().to_string();
        let message = format!(
            "the alert log {} was repaired when moat opened it: {}; the {} bytes after byte {} \
             were cut off and saved to {saved}",
            self.path.display(),
            cut.why.describe(),
            cut.bytes,
            cut.offset,
        );
        tracing::warn!(path = %self.path.display(), dropped_bytes = cut.bytes, saved, "{message}");
        let note = LoggedAlert {
            alert: Alert::new(AlertKind::LogRepaired, message),
            delivered: None,
            attempts: 0,
            error: None,
        };
        let written = self.write(&note);
        let unlocked = self.file.unlock();
        written.and(unlocked).map_err(io)
    }

    /// Appends one line; a failure is reported on standard error, never fatal.
    fn append(&mut self, logged: &LoggedAlert) {
        let written = self.file.lock_shared().and_then(|()| {
            let written = self.write(logged);
            let _ = self.file.unlock();
            written
        });
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), "alert log not written: {e}");
            print_stderr(&format!(
                "moat: warning: the alert log {} could not be written ({e}): {}",
                self.path.display(),
                logged.alert
            ));
        }
    }

    /// One line, in one write.
    fn write(&mut self, logged: &LoggedAlert) -> std::io::Result<()> {
        let json = serde_json::to_string(logged).map_err(std::io::Error::other)?;
        self.file.write_all(format!("{json}\n").as_bytes())
    }
}

/// The webhook and its client.
struct Webhook {
    uri: Uri,
    agent: ureq::Agent,
    retries: u32,
    backoff: Duration,
    timeout: Millis,
}

/// What became of one alert at the webhook.
struct Delivery {
    attempts: u32,
    /// `None`: delivered.
    error: Option<String>,
    /// Given up on a failure worth retrying: the webhook looks down.
    down: bool,
}

impl Webhook {
    /// No proxy from the environment, no redirects, no connection kept, every status
    /// returned as it is; each attempt bounded by `timeout`.
    fn new(config: &AlertConfig, uri: Uri) -> Webhook {
        let agent = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .timeout_global(Some(config.timeout.duration()))
            .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Webhook {
            uri,
            agent,
            retries: config.retries,
            backoff: config.backoff.duration(),
            timeout: config.timeout,
        }
    }

    /// POSTs `alert`, retrying failures worth retrying (`retries` times, or not at all when
    /// the webhook looks `down`) with exponential backoff.
    fn deliver(&self, alert: &Alert, shared: &Shared, down: bool) -> Delivery {
        let body = match serde_json::to_vec(alert) {
            Ok(body) => body,
            Err(e) => {
                return Delivery {
                    attempts: 0,
                    error: Some(format!("not sent: the alert is not JSON: {e}")),
                    down,
                }
            }
        };
        let retries = if down { 0 } else { self.retries };
        let mut delay = self.backoff.min(MAX_BACKOFF);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let (error, retry) = match self.post(&body) {
                Ok(()) => return Delivery { attempts, error: None, down: false },
                Err(failure) => failure,
            };
            let given_up = |why: String| Delivery { attempts, error: Some(why), down: retry };
            if !retry {
                return given_up(format!("not retried: {error}"));
            }
            if attempts > retries {
                let note = if down { " (the webhook was failing: one attempt only)" } else { "" };
                return given_up(format!("gave up after {attempts} attempts{note}: {error}"));
            }
            if !shared.sleep(delay) {
                return given_up(format!(
                    "moat stopped after {attempts} attempts, before the next: {error}"
                ));
            }
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// One attempt: `Err((why, worth retrying))` unless the webhook answered 2xx.
    fn post(&self, body: &[u8]) -> Result<(), (String, bool)> {
        match self.agent.post(self.uri.clone()).content_type("application/json").send(body) {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let retry = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
                Err((format!("the webhook answered {status}"), retry))
            }
            Err(error) => Err(describe(&error, self.timeout)),
        }
    }
}

/// A client failure for the log (never the URL, which may hold a token), and whether it is
/// worth retrying: failures to resolve, connect, send or hear back are.
fn describe(error: &ureq::Error, timeout: Millis) -> (String, bool) {
    match error {
        ureq::Error::Timeout(_) => (format!("no answer within the timeout ({timeout})"), true),
        ureq::Error::HostNotFound => ("the webhook's host was not found".to_owned(), true),
        ureq::Error::ConnectionFailed => ("the connection failed".to_owned(), true),
        ureq::Error::Io(e) => (format!("connection error: {e}"), true),
        ureq::Error::Protocol(e) => (format!("the webhook's answer is not HTTP: {e}"), true),
        ureq::Error::BadUri(_) => ("the webhook URL is not valid".to_owned(), false),
        other => (other.to_string(), false),
    }
}
