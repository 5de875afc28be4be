//! The terminal channel: the request is shown on the controlling terminal and a person
//! answers y/N there. The terminal is opened directly (`/dev/tty`), never read from standard
//! input, so input piped into moat (or typed by the agent) cannot approve anything.
//!
//! Only `y` or `yes` (any case) approves; anything else, an empty line, the end of input or
//! no answer within the timeout denies. An answer typed before the question was shown is
//! discarded. One question is asked at a time; the others wait their turn (their timeout
//! counts while they wait).

use super::{printable, Decision, Escalation, Escalator};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest answer line kept, in bytes (the rest of a longer line is ignored).
const MAX_ANSWER: usize = 1024;
/// The most of the arguments shown, in bytes.
pub const MAX_SHOWN_ARGS: usize = 16 * 1024;

/// Asks at a terminal (or, for tests and embedders, at any reader and writer pair).
pub struct TerminalEscalator {
    timeout: Duration,
    user: String,
    /// Whether the terminal is (re)opened from `/dev/tty` when needed.
    reopen: bool,
    /// The open terminal; the lock also makes questions take turns.
    io: Mutex<Option<Io>>,
}

/// An open terminal: lines read by a thread of their own, and where questions are written.
struct Io {
    answers: Receiver<String>,
    out: Box<dyn Write + Send>,
}

impl Io {
    /// Starts a thread reading lines from `input` for as long as there are any.
    fn new(input: impl Read + Send + 'static, out: Box<dyn Write + Send>) -> Io {
        let (sender, answers) = mpsc::channel();
        let reader = std::thread::Builder::new().name("moat-terminal".into()).spawn(move || {
            let mut input = BufReader::new(input);
            while let Ok(Some(line)) = read_line(&mut input) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        if let Err(error) = reader {
            // No reader: every question will find the input closed, and deny.
            tracing::warn!("terminal: cannot start the reading thread: {error}");
        }
        Io { answers, out }
    }
}

impl TerminalEscalator {
    /// Asks on the controlling terminal, waiting at most `timeout` for an answer; the person
    /// deciding is named by `$USER`. Fails, saying so, when there is no terminal to open.
    pub fn open(timeout: Duration) -> Result<TerminalEscalator, String> {
        open_terminal().map_err(|e| format!("escalation: no terminal to ask on: {e}"))?;
        Ok(TerminalEscalator {
            timeout,
            user: super::current_user(),
            reopen: true,
            io: Mutex::new(None),
        })
    }

    /// Asks on `output` and reads the answers from `input` (one per line); the person
    /// deciding is `user`. Reading starts at once, so anything already in `input` when a
    /// question is shown is discarded as typed ahead.
    pub fn with_io(
        input: impl Read + Send + 'static,
        output: impl Write + Send + 'static,
        timeout: Duration,
        user: &str,
    ) -> TerminalEscalator {
        TerminalEscalator {
            timeout,
            user: user.to_owned(),
            reopen: false,
            io: Mutex::new(Some(Io::new(input, Box::new(output)))),
        }
    }
}

#[cfg(unix)]
fn open_terminal() -> std::io::Result<(std::fs::File, std::fs::File)> {
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let out = tty.try_clone()?;
    Ok((tty, out))
}

#[cfg(windows)]
fn open_terminal() -> std::io::Result<(std::fs::File, std::fs::File)> {
    let input = std::fs::OpenOptions::new().read(true).write(true).open("CONIN$")?;
    let out = std::fs::OpenOptions::new().write(true).open("CONOUT$")?;
    Ok((input, out))
}

#[cfg(not(any(unix, windows)))]
fn open_terminal() -> std::io::Result<(std::fs::File, std::fs::File)> {
    Err(std::io::Error::other("no terminal on this platform"))
}

impl Escalator for TerminalEscalator {
    fn decide(&self, escalation: &Escalation) -> Decision {
        let asked = Instant::now();
        let mut io = self.io.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let remaining = self.timeout.saturating_sub(asked.elapsed());
        if remaining.is_zero() {
            return Decision::TimedOut { channel: "terminal".into() };
        }
        if io.is_none() && self.reopen {
            match open_terminal() {
                Ok((input, out)) => *io = Some(Io::new(input, Box::new(out))),
                Err(error) => {
                    return Decision::TimedOut {
                        channel: format!("terminal (cannot open it: {error})"),
                    }
                }
            }
        }
        let Some(terminal) = io.as_mut() else {
            return Decision::TimedOut { channel: "terminal (closed)".into() };
        };
        let (decision, closed) = ask(terminal, escalation, remaining, &self.user);
        if closed {
            *io = None;
        }
        decision
    }

    fn channel(&self) -> String {
        "terminal".to_owned()
    }
}

/// Asks one question; also says whether the input turned out closed.
fn ask(io: &mut Io, escalation: &Escalation, timeout: Duration, user: &str) -> (Decision, bool) {
    let closed = || Decision::TimedOut { channel: "terminal (input closed)".into() };
    // Typed ahead, before the question: not an answer to it.
    loop {
        match io.answers.try_recv() {
            Ok(_) => continue,
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => return (closed(), true),
        }
    }
    if let Err(error) = write_prompt(&mut io.out, escalation, timeout) {
        let channel = format!("terminal (cannot show the question: {error})");
        return (Decision::TimedOut { channel }, true);
    }
    let (decision, is_closed) = match io.answers.recv_timeout(timeout) {
        Ok(line) => (answer(&line, user), false),
        Err(RecvTimeoutError::Timeout) => {
            (Decision::TimedOut { channel: "terminal".into() }, false)
        }
        Err(RecvTimeoutError::Disconnected) => (closed(), true),
    };
    let verdict = match &decision {
        Decision::Approved { .. } => "approved.",
        Decision::Denied { .. } => "denied.",
        Decision::TimedOut { .. } if is_closed => "no more input: denied.",
        Decision::TimedOut { .. } => "no answer in time: denied.",
    };
    let _ = writeln!(io.out, "{verdict}").and_then(|()| io.out.flush());
    (decision, is_closed)
}

/// Writes the question: who asks, why, the tool and its arguments (pretty JSON), and the
/// prompt. Everything shown is made printable first (a tool's arguments or a guard's reason
/// cannot move the cursor or recolour the terminal).
pub fn write_prompt(
    out: &mut dyn Write,
    escalation: &Escalation,
    timeout: Duration,
) -> std::io::Result<()> {
    let e = escalation;
    let args = match serde_json::from_str::<serde_json::Value>(&e.args) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| e.args.clone()),
        Err(_) => e.args.clone(),
    };
    let (shown, hidden) = match args.char_indices().find(|(i, _)| *i >= MAX_SHOWN_ARGS) {
        Some((cut, _)) => (&args[..cut], args.len() - cut),
        None => (args.as_str(), 0),
    };
    let mut text = String::new();
    text.push_str("\n── moat: a person must decide whether this call may go ahead ──\n");
    text.push_str(&format!(
        "{} escalated a call of tool `{}`\n  reason:  {}\n  task:    {}\n  request: {}\n  arguments:\n",
        printable(&e.asked_by, false),
        printable(&e.tool, false),
        printable(&e.reason, false),
        printable(&e.task, false),
        printable(&e.id, false),
    ));
    for line in printable(shown, true).lines() {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    if hidden > 0 {
        text.push_str(&format!("    … ({hidden} more bytes not shown)\n"));
    }
    text.push_str(&format!(
        "Allow this one call? [y/N] (no answer in {} denies): ",
        human(timeout)
    ));
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether an answer approves: `y` or `yes`, in any case, surrounding blanks ignored.
pub fn is_yes(answer: &str) -> bool {
    let answer = answer.trim();
    answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes")
}

/// The decision an answer line means, `by` being the person at the terminal.
pub fn answer(line: &str, by: &str) -> Decision {
    if is_yes(line) {
        return Decision::Approved { by: by.to_owned() };
    }
    let said = line.trim();
    let reason = if said.is_empty() {
        "answered no (an empty answer) at the terminal".to_owned()
    } else {
        let said: String = said.chars().take(64).collect();
        format!("answered `{}` at the terminal", printable(&said, false))
    };
    Decision::Denied { by: by.to_owned(), reason }
}

/// Reads one line of at most [`MAX_ANSWER`] bytes (the rest of the line is skipped);
/// `None` at the end of input.
fn read_line(input: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(any.then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        any = true;
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        let room = MAX_ANSWER.saturating_sub(line.len());
        line.extend_from_slice(&available[..used.min(room)]);
        input.consume(used);
        if done {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// `300 ms`, `20 s`, `5 min` (rounded).
fn human(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms >= 120_000 {
        format!("{} min", (ms + 30_000) / 60_000)
    } else if ms >= 10_000 {
        format!("{} s", (ms + 500) / 1000)
    } else if ms >= 1000 {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        format!("{ms} ms")
    }
}
