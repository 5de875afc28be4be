//! `log`: messages from plugins into the host's tracing, bounded in number and size per call,
//! and redacted of every secret value known (what a WASI guest prints comes this way too).

use crate::capability::bindings::moat::plugin::log::{Host, Level};
use crate::capability::bindings::moat::plugin::types;
use crate::capability::{Capability, Caps, CapsView, HasCaps};
use crate::redact::Revealed;
use std::sync::Arc;
use wasmtime::component::Linker;

/// Messages one call may log; later ones are counted and dropped.
pub const MAX_MESSAGES: u32 = 100;
/// Bytes of one message; longer ones are cut.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Bytes of one message that redaction looks through before it is cut: far more than a
/// message keeps, so that a value's spelling running past the cut is still found whole.
const REDACTED_BYTES: usize = 16 * MAX_MESSAGE_BYTES;

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// The log of one call: where messages go and what was kept for error reports.
#[derive(Debug)]
pub struct CallLog {
    plugin: Arc<str>,
    tool: String,
    written: u32,
    dropped: u32,
    /// The last warning or error, quoted when the call traps (a Rust guest's panic message
    /// arrives this way).
    last_problem: Option<String>,
    /// Applied to every message before it goes anywhere.
    secrets: Revealed,
}

impl CallLog {
    pub(crate) fn new(plugin: Arc<str>, tool: &str) -> CallLog {
        let (tool, secrets) = (tool.to_owned(), Revealed::default());
        CallLog { plugin, tool, written: 0, dropped: 0, last_problem: None, secrets }
    }

    /// The same log, redacting `secrets` from every message.
    pub(crate) fn redacting(self, secrets: Revealed) -> CallLog {
        CallLog { secrets, ..self }
    }

    pub(crate) fn last_problem(&self) -> Option<&str> {
        self.last_problem.as_deref()
    }

    pub(crate) fn record(&mut self, level: Level, mut message: String) {
        if self.written >= MAX_MESSAGES {
            self.dropped += 1;
            if self.dropped == 1 {
                tracing::warn!(plugin = %self.plugin, tool = %self.tool,
                    "plugin logged more than {MAX_MESSAGES} messages in one call; dropping the rest");
            }
            return;
        }
        self.written += 1;
        // Redacted before it is cut to size, so that a value across the cut is found too;
        // what redaction looks through is bounded as well.
        if !self.secrets.is_empty() {
            cut(&mut message, REDACTED_BYTES);
            message = self.secrets.redact(&message);
        }
        if message.len() > MAX_MESSAGE_BYTES {
            cut(&mut message, MAX_MESSAGE_BYTES);
            message.push('…');
        }
        let (plugin, tool) = (&*self.plugin, self.tool.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "moat::plugin", plugin, tool, "{message}"),
            Level::Debug => tracing::debug!(target: "moat::plugin", plugin, tool, "{message}"),
            Level::Info => tracing::info!(target: "moat::plugin", plugin, tool, "{message}"),
            Level::Warn => tracing::warn!(target: "moat::plugin", plugin, tool, "{message}"),
            Level::Error => tracing::error!(target: "moat::plugin", plugin, tool, "{message}"),
        }
        if matches!(level, Level::Warn | Level::Error) {
            // Quoted inside one-line error messages.
            self.last_problem = Some(message.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
}

/// The `log` capability: every tool may log; nothing to grant, nothing staged.
pub(crate) struct Log;

impl Capability for Log {
    const INTERFACE: &'static str = "moat:plugin/log@0.1.0";
    type Grant = ();
    type Call = ();

    fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::capability::bindings::moat::plugin::log::add_to_linker::<T, Caps>(linker, T::caps)
    }
}

impl Host for CapsView<'_> {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.log.record(level, message);
        Ok(())
    }
}

impl types::Host for CapsView<'_> {}
