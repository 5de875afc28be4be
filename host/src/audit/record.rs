//! What the audit log holds: one [`Record`] per line, `HASH JSON`, where `HASH` is the blake3
//! of the JSON text and the JSON carries the hash of the record before it.

use crate::undo::{BlobRef, Undo};
use serde::{Deserialize, Serialize};

/// The `prev` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// The hash of record `seq - 1` ([`GENESIS`] for the first).
    pub prev: String,
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// A text kept inline when short, in the blob store when long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Inline(String),
    Blob { blob: BlobRef, bytes: u64 },
}

impl Text {
    /// The blob this text lives in, if any.
    pub fn blob(&self) -> Option<&str> {
        match self {
            Text::Inline(_) => None,
            Text::Blob { blob, .. } => Some(blob),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A host opened the log for writing.
    Opened { pid: u32, version: String },
    /// A torn record was cut off the end of the log when it was opened after a crash.
    Recovery {
        /// The last intact record.
        after_seq: u64,
        dropped_bytes: u64,
        /// Where the dropped bytes were saved (in the audit directory).
        saved_to: String,
    },
    /// A torn (or invalid) last line was cut off another file of the audit directory (the
    /// `checkpoints`) when the log was opened after a crash.
    Repaired {
        /// The file's name in the audit directory.
        file: String,
        dropped_bytes: u64,
        /// Where the dropped bytes were saved (in the audit directory).
        saved_to: String,
        /// Why they were cut.
        reason: String,
    },
    /// A task began; the prompt as the caller reported it.
    TaskStart { task: String, prompt: Option<Text> },
    /// A task ended; its final output as the caller reported it.
    TaskEnd { task: String, output: Option<Text> },
    /// A call was admitted to the pipeline. Later records of the call name this record's
    /// `seq` as their `call`.
    Call {
        /// Who called, as the host knows it (the connection, the token, the local user);
        /// task and session are the agent's labels.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        principal: String,
        task: String,
        session: String,
        tool: String,
        /// The component's file name and the blake3 of its bytes.
        plugin: String,
        plugin_hash: String,
        args: Text,
        reasoning: Option<Text>,
        confidence: Option<f64>,
    },
    /// One check's answer: a guard policy, or the confidence gate.
    Verdict {
        call: u64,
        /// `check-call`, `check-effect`, `check-result` or `confidence`.
        stage: String,
        guard: String,
        /// `allow`, `deny`, `escalate`, `rewrite`.
        verdict: String,
        reason: Option<String>,
        /// A shadow policy's verdict is recorded but not enforced.
        shadow: bool,
        micros: u64,
    },
    /// A person (or nobody) was asked.
    Escalation {
        call: u64,
        stage: String,
        channel: String,
        reason: String,
        /// `approved`, `denied`, `timed_out`.
        decision: String,
        /// Who decided, as moat verified it (the terminal's user, the queue's approver; for
        /// a time-out, the channel that stayed silent).
        by: Option<String>,
        /// Who decided, as the MCP client reported it (elicitation): a claim, not verified.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reported_by: Option<String>,
    },
    /// A committed side effect, and how to undo it.
    Effect {
        call: u64,
        task: String,
        tool: String,
        capability: String,
        kind: String,
        target: String,
        detail: serde_json::Value,
        /// Blob of the content before, and blake3 of the content after (files, keys).
        before: Option<BlobRef>,
        after: Option<String>,
        rows: Option<u64>,
        undo: Option<Undo<BlobRef>>,
    },
    /// A change about to happen, recorded (and, when durable, synced) before it happens,
    /// with how to undo it whether or not it then happened (`undo` is
    /// [`Undo::Pending`]): after a crash mid-call, `moat task rollback` finds it here. A
    /// call that finishes records its committed changes again as `effect` records, which
    /// supersede these.
    Staged {
        call: u64,
        task: String,
        tool: String,
        capability: String,
        kind: String,
        target: String,
        undo: Undo<BlobRef>,
    },
    /// A call that failed is about to undo, in place, the change of its `staged` record
    /// `staged` (written, and synced when durable, before it does). After a crash, the changes
    /// of the earlier such records of the call are undone already, and the last one's may be.
    Undoing { call: u64, task: String, staged: u64 },
    /// How a call ended.
    Result {
        call: u64,
        task: String,
        tool: String,
        ok: bool,
        /// The error's kind (`denied`, `budget`, `trapped`, ...) and message.
        error_kind: Option<String>,
        error: Option<String>,
        /// The output (as returned to the caller, redacted): inline when short, else in the
        /// blob store; and its blake3.
        output: Option<Text>,
        output_hash: Option<String>,
        output_bytes: u64,
        /// Tokens of the output as given to the caller (its window, if windowed).
        #[serde(default)]
        tokens: u64,
        fuel: u64,
        peak_memory: u64,
        wall_us: u64,
    },
    /// A call hit one of its budgets.
    Budget { call: u64, task: String, tool: String, budget: String, limit: u64, used: u64 },
    /// A circuit breaker changed position.
    Breaker { scope: String, name: String, from: String, to: String, reason: String },
    /// A call was refused as part of a loop.
    Loop { call: u64, session: String, tool: String, reason: String },
    /// A person was alerted.
    Alert { kind: String, tool: Option<String>, task: Option<String>, message: String },
    /// A component file was not loaded (at start or at a reload): not pinned or signed
    /// while locked, too large, not a valid component, ...
    LoadRefused {
        path: String,
        /// blake3 of the file as it was read, if it could be read within the size limit.
        blake3: Option<String>,
        reason: String,
    },
    /// `moat task rollback` undid (some of) a task's effects.
    Rollback {
        task: String,
        /// The `seq` of each effect record undone, newest first.
        undone: Vec<u64>,
        /// Effects that could not be undone and were skipped, with why.
        skipped: Vec<String>,
    },
}

impl Event {
    /// The record's kind, as `moat audit show --event` names it.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Opened { .. } => "opened",
            Event::Recovery { .. } => "recovery",
            Event::Repaired { .. } => "repaired",
            Event::TaskStart { .. } => "task_start",
            Event::TaskEnd { .. } => "task_end",
            Event::Call { .. } => "call",
            Event::Verdict { .. } => "verdict",
            Event::Escalation { .. } => "escalation",
            Event::Effect { .. } => "effect",
            Event::Staged { .. } => "staged",
            Event::Undoing { .. } => "undoing",
            Event::Result { .. } => "result",
            Event::Budget { .. } => "budget",
            Event::Breaker { .. } => "breaker",
            Event::Loop { .. } => "loop",
            Event::Alert { .. } => "alert",
            Event::Rollback { .. } => "rollback",
            Event::LoadRefused { .. } => "load_refused",
        }
    }

    /// Every blob the record refers to.
    pub fn blobs(&self) -> Vec<&str> {
        let mut blobs = Vec::new();
        match self {
            Event::TaskStart { prompt: text, .. } | Event::TaskEnd { output: text, .. } => {
                blobs.extend(text.as_ref().and_then(Text::blob))
            }
            Event::Call { args, reasoning, .. } => {
                blobs.extend(reasoning.as_ref().and_then(Text::blob));
                blobs.extend(args.blob());
            }
            Event::Effect { before, undo, .. } => {
                blobs.extend(before.as_deref());
                if let Some(undo) = undo {
                    undo_blobs(undo, &mut blobs);
                }
            }
            Event::Staged { undo, .. } => undo_blobs(undo, &mut blobs),
            Event::Result { output, .. } => blobs.extend(output.as_ref().and_then(Text::blob)),
            _ => {}
        }
        blobs.sort_unstable();
        blobs.dedup();
        blobs
    }
}

fn undo_blobs<'a>(undo: &'a Undo<BlobRef>, blobs: &mut Vec<&'a str>) {
    match undo {
        Undo::File { before, .. } | Undo::Key { before, .. } => blobs.extend(before.as_deref()),
        Undo::Rows { rows, .. } => blobs.push(rows),
        Undo::Parts { parts } => parts.iter().for_each(|part| undo_blobs(part, blobs)),
        Undo::Pending { change, .. } => undo_blobs(change, blobs),
        Undo::Rename { .. } | Undo::Irreversible { .. } => {}
    }
}

/// A record as written: `HASH JSON\n`.
pub(crate) fn encode(record: &Record) -> serde_json::Result<(String, String)> {
    let json = serde_json::to_string(record)?;
    let hash = blake3::hash(json.as_bytes()).to_hex().to_string();
    let line = format!("{hash} {json}\n");
    Ok((hash, line))
}

/// Splits a line (without its newline) into the hash it claims and its JSON; checks the
/// hash and parses the record. The error says what is wrong.
pub(crate) fn decode(line: &[u8]) -> Result<(String, Record), String> {
    let text = std::str::from_utf8(line).map_err(|_| "the record is not UTF-8 text".to_owned())?;
    let (claimed, json) =
        text.split_once(' ').ok_or_else(|| "the record has no hash before its JSON".to_owned())?;
    let actual = blake3::hash(json.as_bytes()).to_hex();
    if claimed != actual.as_str() {
        return Err(format!(
            "the record's content does not match its hash (claims {}, is {}): it was changed \
             after it was written",
            short(claimed),
            short(&actual)
        ));
    }
    let record: Record =
        serde_json::from_str(json).map_err(|e| format!("the record is not a valid record: {e}"))?;
    Ok((claimed.to_owned(), record))
}

/// The first 12 characters of a hash, for messages.
pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

pub(crate) use crate::clock::now_us;

/// `2026-11-25T14:03:07.123456Z`.
pub fn format_time(time_us: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(time_us);
    humantime::format_rfc3339_micros(time).to_string()
}
