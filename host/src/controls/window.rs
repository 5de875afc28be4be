//! Windows over long tool outputs: an output over the per-call token window is returned cut
//! at a token boundary, with a cursor; reading on with the cursor returns the next window.
//! Concatenated, the windows are the output, every byte exactly once.
//!
//! Unread outputs are held in memory, within `keep` bytes, for `ttl` after their last read;
//! past either they are dropped whole, and a cursor into them says so. Cursors name an
//! output by 128 random bits, so one agent cannot read another's output by guessing.
//! Reading the same cursor again is allowed and returns the same window (an agent may
//! retry). Cursors live as long as the process that gave them out.

use crate::controls::tokens::Tokenizer;
use crate::units::{ByteSize, Millis};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// `[window]` in `moat.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Tokens of output one call (or one read with a cursor) returns at most.
    pub tokens: u64,
    /// Memory held for outputs not yet read to the end, over all of them.
    pub keep: ByteSize,
    /// How long an output is held after its last read.
    pub ttl: Millis,
}

impl Default for WindowConfig {
    fn default() -> WindowConfig {
        WindowConfig { tokens: 8000, keep: ByteSize::mib(256), ttl: Millis(30 * 60 * 1000) }
    }
}

/// One window of an output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The output's bytes from `offset` on, a plain slice of it.
    pub text: String,
    /// Reads the next window; None when this window ends the output (or the rest could not
    /// be kept: see [`Window::truncated`]).
    pub cursor: Option<String>,
    /// Bytes of the output before this window.
    pub offset: u64,
    pub total_bytes: u64,
    pub total_tokens: u64,
    /// Tokens in `text`, counted alone.
    pub window_tokens: u64,
}

impl Window {
    /// Whether the output goes on after this window but cannot be read on: it was larger
    /// than all the memory `keep` allows (or no random cursor could be made).
    pub fn truncated(&self) -> bool {
        self.cursor.is_none() && self.offset + (self.text.len() as u64) < self.total_bytes
    }
}

/// Why an output was dropped before it was read to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Nobody read it for `ttl`.
    Unread(Millis),
    /// Newer outputs needed the memory (`keep`).
    Evicted(ByteSize),
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dropped::Unread(ttl) => {
                write!(f, "after {} unread", humantime::format_duration(ttl.duration()))
            }
            Dropped::Evicted(keep) => {
                write!(f, "to keep unread outputs within {keep} of memory")
            }
        }
    }
}

/// A cursor that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Malformed, forged, or from another process.
    #[error(
        "cursor `{cursor}` was not given out by this moat process; read on only with the \
         cursor returned with the previous window"
    )]
    Unknown { cursor: String },
    #[error("cursor `{cursor}` has expired: the output of `{tool}` was dropped {reason}; call `{tool}` again")]
    Expired { cursor: String, tool: String, reason: Dropped },
}

/// Outputs that were dropped, remembered (by id only) so that their cursors get a clear
/// error rather than "unknown".
const TOMBSTONES: usize = 4096;
/// Characters of a bad cursor repeated in an error.
const SHOWN: usize = 80;

type Id = [u8; 16];

/// The outputs of a host being read window by window. `Send + Sync`; share one per host.
pub struct Windows {
    config: WindowConfig,
    tokenizer: Tokenizer,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    outputs: HashMap<Id, Output>,
    /// Outputs by last use, least recent first.
    order: BTreeMap<u64, Id>,
    tick: u64,
    /// Bytes of the outputs held.
    kept: u64,
    dropped: HashMap<Id, (Arc<str>, Dropped)>,
    dropped_order: VecDeque<Id>,
}

struct Output {
    tool: Arc<str>,
    text: Arc<str>,
    total_tokens: u64,
    /// The windows cut so far: start, end, tokens. Window `i + 1` starts where `i` ends.
    windows: Vec<(usize, usize, u64)>,
    used: Instant,
    tick: u64,
}

impl Windows {
    pub fn new(config: WindowConfig, tokenizer: Tokenizer) -> Windows {
        Windows { config, tokenizer, state: Mutex::new(State::default()) }
    }

    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Bytes of outputs held now (never more than `keep`).
    pub fn kept_bytes(&self) -> u64 {
        self.lock().kept
    }

    /// The whole output when it fits in one window (no cursor); else its first window, and a
    /// cursor to read on. `tool` names the tool in errors.
    pub fn first(&self, tool: &str, output: String) -> Window {
        let total_bytes = output.len() as u64;
        let (end, window_tokens) = self.tokenizer.cut_counted(&output, self.config.tokens);
        if end == output.len() {
            return Window {
                text: output,
                cursor: None,
                offset: 0,
                total_bytes,
                total_tokens: window_tokens,
                window_tokens,
            };
        }
        let total_tokens = self.tokenizer.count(&output);
        let mut window = Window {
            text: output[..end].to_owned(),
            cursor: None,
            offset: 0,
            total_bytes,
            total_tokens,
            window_tokens,
        };
        let mut id = Id::default();
        if let Err(e) = getrandom::fill(&mut id) {
            tracing::warn!("no randomness for an output cursor ({e}): `{tool}`'s output is cut");
            return window;
        }
        if total_bytes > self.config.keep.0 {
            return window;
        }
        let mut state = self.lock();
        state.expire(self.config.ttl);
        while state.kept + total_bytes > self.config.keep.0 {
            let Some((_, oldest)) = state.order.pop_first() else { break };
            state.forget(oldest, Dropped::Evicted(self.config.keep));
        }
        let tick = state.next_tick();
        state.order.insert(tick, id);
        state.kept += total_bytes;
        state.outputs.insert(
            id,
            Output {
                tool: Arc::from(tool),
                text: Arc::from(output),
                total_tokens,
                windows: vec![(0, end, window_tokens)],
                used: Instant::now(),
                tick,
            },
        );
        window.cursor = Some(cursor(&id, 1));
        window
    }

    /// The window after the one `cursor` came with. Reading a cursor again returns the same
    /// window.
    pub fn next(&self, cursor: &str) -> Result<Window, WindowError> {
        let unknown = || WindowError::Unknown { cursor: shown(cursor) };
        let (id, index) = parse(cursor).ok_or_else(unknown)?;
        // Cut the window outside the lock: it tokenizes a window's worth of text.
        let (text, start) = {
            let mut state = self.lock();
            state.expire(self.config.ttl);
            let output = state.touch(&id, cursor)?;
            if let Some(&(start, end, tokens)) = output.windows.get(index) {
                return Ok(window_of(output, &id, index, start, end, tokens));
            }
            match output.windows.last() {
                Some(&(_, end, _)) if index == output.windows.len() && end < output.text.len() => {
                    (Arc::clone(&output.text), end)
                }
                _ => return Err(unknown()),
            }
        };
        let (cut, tokens) = self.tokenizer.cut_counted(&text[start..], self.config.tokens);
        let end = start + cut;
        let mut state = self.lock();
        let output = state.touch(&id, cursor)?;
        if output.windows.len() == index {
            output.windows.push((start, end, tokens));
        }
        let &(start, end, tokens) = output.windows.get(index).ok_or_else(unknown)?;
        Ok(window_of(output, &id, index, start, end, tokens))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The output `id` names, marked as just used; or why it cannot be read.
    fn touch(&mut self, id: &Id, cursor: &str) -> Result<&mut Output, WindowError> {
        let tick = self.next_tick();
        match self.outputs.get_mut(id) {
            Some(output) => {
                self.order.remove(&output.tick);
                self.order.insert(tick, *id);
                output.tick = tick;
                output.used = Instant::now();
                Ok(output)
            }
            None => Err(match self.dropped.get(id) {
                Some((tool, reason)) => WindowError::Expired {
                    cursor: shown(cursor),
                    tool: tool.to_string(),
                    reason: *reason,
                },
                None => WindowError::Unknown { cursor: shown(cursor) },
            }),
        }
    }

    /// Drops the outputs unread for `ttl`.
    fn expire(&mut self, ttl: Millis) {
        while let Some((&tick, &id)) = self.order.first_key_value() {
            match self.outputs.get(&id) {
                Some(output) if output.used.elapsed() < ttl.duration() => break,
                _ => {
                    self.order.remove(&tick);
                    self.forget(id, Dropped::Unread(ttl));
                }
            }
        }
    }

    fn forget(&mut self, id: Id, reason: Dropped) {
        let Some(output) = self.outputs.remove(&id) else { return };
        self.kept -= output.text.len() as u64;
        if self.dropped_order.len() >= TOMBSTONES {
            if let Some(old) = self.dropped_order.pop_front() {
                self.dropped.remove(&old);
            }
        }
        self.dropped.insert(id, (output.tool, reason));
        self.dropped_order.push_back(id);
    }
}

fn window_of(
    output: &Output,
    id: &Id,
    index: usize,
    start: usize,
    end: usize,
    tokens: u64,
) -> Window {
    Window {
        text: output.text[start..end].to_owned(),
        cursor: (end < output.text.len()).then(|| cursor(id, index + 1)),
        offset: start as u64,
        total_bytes: output.text.len() as u64,
        total_tokens: output.total_tokens,
        window_tokens: tokens,
    }
}

/// `HEX-INDEX`: the output's id and the window's index.
fn cursor(id: &Id, index: usize) -> String {
    format!("{}-{index}", hex::encode(id))
}

fn parse(cursor: &str) -> Option<(Id, usize)> {
    let (id, index) = cursor.trim().split_once('-')?;
    let mut bytes = Id::default();
    hex::decode_to_slice(id, &mut bytes).ok()?;
    let index = index.parse().ok().filter(|&i| i > 0)?;
    Some((bytes, index))
}

/// A cursor as an error repeats it: an agent may have sent anything.
fn shown(cursor: &str) -> String {
    match cursor.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &cursor[..end]),
        None => cursor.to_owned(),
    }
}
