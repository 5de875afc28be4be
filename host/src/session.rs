//! Sessions and tasks as this host has seen them: each session's recent calls (what
//! `check-call` sees as the history), and which tasks have begun (their start is recorded
//! once). Both are keyed by names the agent chose, so both are bounded, least recently used
//! first out; a history holds the kinds of effects and previews of their targets, never
//! whole targets or arguments.

use crate::bounded::{self, Bounded};
use crate::call::{CallView, EffectKind, HistoryEntry};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Calls of a session that `check-call` sees, newest last.
const HISTORY: usize = 32;
/// Sessions whose history is kept (and tasks whose start this host knows); past this the
/// least recently used is forgotten.
const SESSIONS: usize = 10_000;
/// Effects of one call kept in its session's history (the first ones).
const HISTORY_EFFECTS: usize = 64;
/// Characters of an effect's target kept in a session's history.
const TARGET_CHARS: usize = 200;

/// The sessions' histories and the tasks begun.
pub(crate) struct Sessions {
    histories: Mutex<Bounded<String, VecDeque<HistoryEntry>>>,
    tasks: Mutex<Bounded<String, ()>>,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions {
            histories: Mutex::new(Bounded::new(SESSIONS)),
            tasks: Mutex::new(Bounded::new(SESSIONS)),
        }
    }
}

impl Sessions {
    /// The recent calls of `session`, oldest first.
    pub fn history(&self, session: &str) -> Vec<HistoryEntry> {
        let mut histories = self.histories.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        histories.get(session).map(|h| h.iter().cloned().collect()).unwrap_or_default()
    }

    /// Adds the call to its session's history: the kinds of its first effects and previews
    /// of their targets.
    pub fn remember(&self, call: &CallView, touched: &[(EffectKind, String)], ok: bool) {
        let touched = &touched[..touched.len().min(HISTORY_EFFECTS)];
        let entry = HistoryEntry {
            tool: call.tool.clone(),
            effects: touched.iter().map(|(kind, _)| *kind).collect(),
            targets: touched
                .iter()
                .map(|(_, target)| bounded::preview(target, TARGET_CHARS).into_owned())
                .collect(),
            ok,
        };
        let mut histories = self.histories.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let history = histories.get_or_insert_with(&call.session, VecDeque::new);
        history.push_back(entry);
        if history.len() > HISTORY {
            history.pop_front();
        }
    }

    /// Whether `task` is new to this host (and from now on, known).
    pub fn started(&self, task: &str) -> bool {
        let mut tasks = self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tasks.insert_new(&task.to_owned(), ())
    }
}
