//! Reading the log line by line, and the filters of `moat audit show` and `export`.

use super::record::{decode, Event, Record};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// One line of the log as read.
pub enum Line {
    /// An intact record (its hash checked) and the hash.
    Record { line: u64, hash: String, record: Box<Record> },
    /// A line that is not a valid record, and why.
    Bad { line: u64, reason: String },
    /// The last line, without its newline: torn by a crash, or being written now.
    Incomplete { line: u64, bytes: u64 },
}

/// The lines of the log at `path`, in order. A missing log has no lines.
pub fn lines(path: &Path) -> std::io::Result<impl Iterator<Item = std::io::Result<Line>>> {
    let file = match File::open(path) {
        Ok(file) => Some(BufReader::new(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut reader = file;
    let mut number = 0u64;
    Ok(std::iter::from_fn(move || {
        let reader = reader.as_mut()?;
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => None,
            Err(e) => Some(Err(e)),
            Ok(_) => {
                number += 1;
                if bytes.last() != Some(&b'\n') {
                    return Some(Ok(Line::Incomplete { line: number, bytes: bytes.len() as u64 }));
                }
                bytes.pop();
                Some(Ok(match decode(&bytes) {
                    Ok((hash, record)) => {
                        Line::Record { line: number, hash, record: Box::new(record) }
                    }
                    Err(reason) => Line::Bad { line: number, reason },
                }))
            }
        }
    }))
}

/// Which records `show` and `export` print. Records of a call (verdicts, effects,
/// escalations, results) match the task and tool of their call.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub task: Option<String>,
    pub tool: Option<String>,
    /// Only verdict records with this verdict (`deny`, `escalate`, ...).
    pub verdict: Option<String>,
    /// Only records of this event kind (`call`, `effect`, ...).
    pub event: Option<String>,
    pub since_us: Option<u64>,
    pub until_us: Option<u64>,
}

impl Filter {
    /// Starts matching records, in log order.
    pub fn matcher(self) -> Matcher {
        Matcher { filter: self, calls: HashSet::new() }
    }
}

/// A [`Filter`] applied to records in log order.
pub struct Matcher {
    filter: Filter,
    /// Calls seen so far that match `task` and `tool`.
    calls: HashSet<u64>,
}

impl Matcher {
    /// Whether `record` is shown. Records must be offered in log order.
    pub fn matches(&mut self, record: &Record) -> bool {
        let filter = &self.filter;
        let (task, tool) = match &record.event {
            Event::Call { task, tool, .. } => {
                let matched = filter.task.as_ref().is_none_or(|t| t == task)
                    && filter.tool.as_ref().is_none_or(|t| t == tool);
                if matched {
                    self.calls.insert(record.seq);
                }
                (matched, matched)
            }
            Event::Verdict { call, .. } | Event::Escalation { call, .. } => {
                let matched = self.calls.contains(call);
                (matched, matched)
            }
            Event::Effect { call, .. }
            | Event::Staged { call, .. }
            | Event::Undoing { call, .. }
            | Event::Result { call, .. }
            | Event::Budget { call, .. }
            | Event::Loop { call, .. } => {
                let matched = self.calls.contains(call);
                (matched, matched)
            }
            Event::TaskStart { task, .. }
            | Event::TaskEnd { task, .. }
            | Event::Rollback { task, .. } => {
                (filter.task.as_ref().is_none_or(|t| t == task), filter.tool.is_none())
            }
            Event::Opened { .. }
            | Event::Recovery { .. }
            | Event::Repaired { .. }
            | Event::LoadRefused { .. } => (filter.task.is_none(), filter.tool.is_none()),
            Event::Breaker { scope, name, .. } => {
                let task = filter.task.as_ref().is_none_or(|t| scope == "task" && t == name);
                let tool = filter.tool.as_ref().is_none_or(|t| scope == "tool" && t == name);
                (task, tool)
            }
            Event::Alert { task, tool, .. } => (
                filter.task.as_ref().is_none_or(|t| task.as_ref() == Some(t)),
                filter.tool.as_ref().is_none_or(|t| tool.as_ref() == Some(t)),
            ),
        };
        let verdict = match (&filter.verdict, &record.event) {
            (None, _) => true,
            (Some(wanted), Event::Verdict { verdict, .. }) => wanted == verdict,
            (Some(_), _) => false,
        };
        task && tool
            && verdict
            && filter.event.as_ref().is_none_or(|e| e == record.event.name())
            && filter.since_us.is_none_or(|since| record.time_us >= since)
            && filter.until_us.is_none_or(|until| record.time_us <= until)
    }
}

/// One line for a person: `#SEQ TIME EVENT details`.
pub fn describe(record: &Record) -> String {
    let time = super::format_time(record.time_us);
    let text = |t: &super::Text| match t {
        super::Text::Inline(s) => s.clone(),
        super::Text::Blob { blob, bytes } => {
            format!("<{bytes} bytes in blob {}>", super::short(blob))
        }
    };
    let details = match &record.event {
        Event::Opened { pid, version } => format!("moat {version} (pid {pid}) opened the log"),
        Event::Recovery { after_seq, dropped_bytes, saved_to } => format!(
            "recovered after a crash: cut {dropped_bytes} bytes of a torn record after #{after_seq} \
             (saved to {saved_to})"
        ),
        Event::Repaired { file, dropped_bytes, saved_to, reason } => format!(
            "repaired {file} after a crash: cut {dropped_bytes} bytes, as {reason} (saved to \
             {saved_to})"
        ),
        Event::TaskStart { task, prompt } => format!(
            "task {task} started{}",
            prompt.as_ref().map(|p| format!(": {}", text(p))).unwrap_or_default()
        ),
        Event::TaskEnd { task, output } => format!(
            "task {task} ended{}",
            output.as_ref().map(|p| format!(": {}", text(p))).unwrap_or_default()
        ),
        Event::Call { principal, task, tool, args, confidence, reasoning, plugin, .. } => format!(
            "task {task}: {tool}({}) [{plugin}]{}{}{}",
            text(args),
            match principal.is_empty() {
                true => String::new(),
                false => format!(" by {principal}"),
            },
            confidence.map(|c| format!(" confidence {c}")).unwrap_or_default(),
            reasoning.as_ref().map(|r| format!(" because: {}", text(r))).unwrap_or_default()
        ),
        Event::Verdict { call, stage, guard, verdict, reason, shadow, micros } => format!(
            "call #{call} {stage}: {guard}{} says {verdict}{} ({micros} us)",
            if *shadow { " (shadow)" } else { "" },
            reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        Event::Escalation { call, stage, channel, reason, decision, by, reported_by } => format!(
            "call #{call} {stage}: asked {channel} ({reason}): {decision}{}{}",
            by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default(),
            reported_by.as_ref().map(|b| format!(" by {b} (as the client reports)")).unwrap_or_default()
        ),
        Event::Effect { call, capability, kind, target, rows, undo, .. } => format!(
            "call #{call} {capability} {kind} {target}{}{}",
            rows.map(|r| format!(" ({r} rows)")).unwrap_or_default(),
            match undo {
                Some(undo) if undo.irreversible().is_some() => " [irreversible]",
                Some(_) => "",
                None => " [no undo]",
            }
        ),
        Event::Staged { call, capability, kind, target, undo, .. } => format!(
            "call #{call} {capability} {kind} {target} about to happen{}",
            if undo.irreversible().is_some() { " [irreversible]" } else { "" }
        ),
        Event::Result {
            call, tool, ok, error, output_bytes, tokens, fuel, peak_memory, wall_us, ..
        } => {
            let outcome = match (ok, error) {
                (true, _) => format!("ok, {output_bytes} bytes ({tokens} tokens) out"),
                (false, Some(error)) => format!("failed: {error}"),
                (false, None) => "failed".to_owned(),
            };
            format!(
                "call #{call} {tool} {outcome} (fuel {fuel}, memory {}, {wall_us} us)",
                crate::units::ByteSize(*peak_memory)
            )
        }
        Event::Budget { call, budget, limit, used, .. } => {
            format!("call #{call} hit its {budget} budget: used {used} of {limit}")
        }
        Event::Undoing { call, staged, .. } => {
            format!("call #{call} undoes its staged change #{staged}")
        }
        Event::Breaker { scope, name, from, to, reason } => {
            format!("{scope} {name}: breaker {from} -> {to} ({reason})")
        }
        Event::Loop { call, session, reason, .. } => {
            format!("call #{call} in session {session} refused: {reason}")
        }
        Event::Alert { kind, message, .. } => format!("{kind}: {message}"),
        Event::LoadRefused { path, reason, .. } => format!("not loaded: {path}: {reason}"),
        Event::Rollback { task, undone, skipped } => format!(
            "task {task} rolled back: {} effects undone{}",
            undone.len(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(", {} skipped ({})", skipped.len(), skipped.join("; "))
            }
        ),
    };
    format!("#{} {time} {:<11} {details}", record.seq, record.event.name())
}
