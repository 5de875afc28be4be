//! Guard policies: components of the `guard-plugin` world, loaded from the policies
//! directory in file-name order, asked before each call, before each effect and after each
//! call. [`Policies`] is the [`Gate`] of a host with policies.
//!
//! Combination: any deny wins, then any escalate; rewrites apply in order, each policy
//! seeing the output as rewritten so far. A policy that traps, runs out of its budget or
//! answers something unusable denies (fail closed). A `shadow` policy's verdict is only
//! noted; it changes nothing.

pub mod confidence;
pub mod facts;

mod run;

use crate::budget::{BudgetOverrides, Budgets};
use crate::call::{CallView, Effect, Gate, Note, Verdict};
use crate::error::{LoadError, LoadProblem};
use crate::guard::facts::Facts;
use crate::plugin::watch::{component_files, Stalled, WatchStats, Watched};
use crate::plugin::OnPolicyError;
use crate::units::{ByteSize, Millis};
use run::{GuardRuntime, Point};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use run::Policy;
pub(crate) use run::{facts_wit, GuardState};

/// `[policies.NAME]` (NAME is the component's file name without `.wasm`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub mode: Mode,
    /// Only calls of these tools are checked (default: every tool).
    pub tools: Option<Vec<String>>,
    /// Replaces fields of the guards' default budgets for this policy.
    #[serde(default)]
    pub budgets: BudgetOverrides,
}

/// Whether a policy's verdicts count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Its verdicts apply.
    #[default]
    Enforce,
    /// Its verdicts are noted (the log, the response) and change nothing.
    Shadow,
}

/// The budgets of one guard check by default: guards must be quick.
pub fn default_guard_budgets() -> Budgets {
    Budgets {
        fuel: 200_000_000,
        memory: ByteSize::mib(32),
        wall_time: Millis(1_000),
        output: ByteSize::mib(4),
        table_elements: 20_000,
    }
}

/// Where the policies come from, and what a policy that cannot be in force does.
#[derive(Clone, Debug)]
pub(crate) struct PolicySource {
    pub dir: PathBuf,
    /// Named in `moat.toml`: a missing directory is an error, not "no policies".
    pub required: bool,
    pub on_error: OnPolicyError,
}

/// The loaded policies, swapped whole on reload: a check in flight keeps the set it began with.
///
/// Invariant (fail closed): while a policy is not in force as configured (the directory named
/// in `moat.toml` is missing or unreadable, a file fails to load, a policy in force was
/// removed), every check denies, naming the files, unless `on_policy_error = "keep-last"`
/// keeps the policy's previous version in force. A policy that never loaded has no previous
/// version: it denies under either setting.
pub struct Policies {
    runtime: GuardRuntime,
    source: Option<PolicySource>,
    config: BTreeMap<String, PolicyConfig>,
    set: RwLock<Arc<Vec<Policy>>>,
    /// Why calls are refused now (one line per file); empty when the set is as configured.
    troubles: RwLock<Arc<Vec<String>>>,
    /// Every policy file that has been in force since the start: one of them missing is a
    /// removal, refused until it is back.
    expected: Mutex<Vec<PathBuf>>,
    /// The policies directory, watched (`plugin/watch.rs`): when it changes, the next call
    /// reloads it.
    watch: Option<Watched>,
}

impl Policies {
    /// Loads every `*.wasm` of the source's directory (if any) in file-name order. Broken
    /// files are returned, and while one is broken every call is refused.
    pub(crate) fn load(
        compiler: &crate::runtime::compile_cache::Compiler,
        source: Option<PolicySource>,
        config: BTreeMap<String, PolicyConfig>,
        facts: Arc<Facts>,
    ) -> wasmtime::Result<(Policies, Vec<LoadError>)> {
        let runtime = GuardRuntime::new(compiler, facts)?;
        // Watched before the first load, so that no change after it goes unseen.
        let watch =
            source.as_ref().map(|s| Watched::new("policies directory", vec![s.dir.clone()]));
        let policies = Policies {
            runtime,
            source,
            config,
            set: RwLock::new(Arc::new(Vec::new())),
            troubles: RwLock::new(Arc::new(Vec::new())),
            expected: Mutex::new(Vec::new()),
            watch,
        };
        let errors = policies.reload();
        Ok((policies, errors))
    }

    /// Loads the policies directory again and returns what is wrong with it. Each problem
    /// refuses every call until fixed, or under keep-last keeps the policy's previous version.
    pub fn reload(&self) -> Vec<LoadError> {
        let Some(source) = &self.source else { return Vec::new() };
        let previous = self.current();
        let mut expected = self.expected.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let keep_last = source.on_error == OnPolicyError::KeepLast;
        let mut out = Outcome { keep_last, ..Outcome::default() };
        let files = match component_files(&source.dir) {
            Ok(files) => Some(files),
            // Never named and never there: no policies.
            Err(_) if !source.dir.exists() && !source.required && expected.is_empty() => {
                Some(Vec::new())
            }
            Err(error) => {
                let problem = match source.dir.exists() {
                    true => error.problem,
                    false => LoadProblem::MissingDirectory,
                };
                out.directory(&source.dir, problem, &previous);
                None
            }
        };
        for file in files.iter().flatten() {
            let name =
                file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let config = self.config.get(&name).cloned().unwrap_or_default();
            match self.runtime.load(file, &name, config) {
                Ok(policy) => out.set.push(policy),
                Err(error) => out.problem(file, error.problem, &previous),
            }
        }
        if let Some(files) = &files {
            for gone in expected.iter().filter(|path| !files.contains(path)) {
                out.problem(gone, LoadProblem::Removed, &previous);
            }
        }
        out.set.sort_by(|a, b| a.path.cmp(&b.path));
        for policy in &out.set {
            if !expected.contains(&policy.path) {
                expected.push(policy.path.clone());
            }
        }
        *self.troubles.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(out.troubles);
        *self.set.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(out.set);
        out.errors
    }

    /// Reloads the directory if the watcher saw it change since the last reload and its
    /// listing (names, sizes, times) did change: a new, replaced or removed policy applies
    /// to the next call once the watcher has seen it (at once, or within the poll interval
    /// where the directory cannot be watched). Nothing changed, this costs one atomic
    /// load; while another call reloads, it returns at once. Returns (and logs) the files
    /// that did not load.
    pub fn reload_if_changed(&self) -> Vec<LoadError> {
        let Some(watch) = &self.watch else { return Vec::new() };
        let reloaded = watch.reload_if_changed(|| {
            let errors = self.reload();
            for error in &errors {
                tracing::error!("policy not in force as configured: {error}");
            }
            errors
        });
        reloaded.unwrap_or_default()
    }

    /// Waits until the watcher of the policies directory has taken in every change made to
    /// it before this call, at most `timeout`: the next call then reloads what changed.
    pub fn wait_for_watcher(&self, timeout: Duration) -> Result<(), Stalled> {
        self.watch.as_ref().map_or(Ok(()), |watch| watch.settle(timeout))
    }

    /// What the watcher of the policies directory has done (all zero without one).
    pub fn watch_stats(&self) -> WatchStats {
        self.watch.as_ref().map(Watched::stats).unwrap_or_default()
    }

    /// Why every call is refused now, if it is: the policies not in force as configured.
    pub fn troubles(&self) -> Arc<Vec<String>> {
        self.troubles.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The policies in force, in order.
    pub fn current(&self) -> Arc<Vec<Policy>> {
        self.set.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The policies directory, if there is one.
    pub fn dir(&self) -> Option<&Path> {
        self.source.as_ref().map(|s| s.dir.as_path())
    }

    fn judge(&self, call: &CallView, point: Point<'_>) -> Verdict {
        let troubles = self.troubles();
        if !troubles.is_empty() {
            return Verdict::Deny(format!(
                "the guard policies are not in force as configured, so every call is refused \
                 until this is fixed: {}",
                troubles.join("; ")
            ));
        }
        let set = self.current();
        let applicable: Vec<&Policy> = set.iter().filter(|p| p.applies_to(&call.tool)).collect();
        if applicable.is_empty() {
            return Verdict::Allow;
        }
        // The call as guards see it, built once for every policy of this check.
        let record = run::to_wit(call);
        let mut escalate: Option<String> = None;
        let mut output: Option<String> = None;
        for policy in applicable {
            let point = match (&point, &output) {
                (Point::Result(_), Some(rewritten)) => Point::Result(rewritten),
                _ => point.clone(),
            };
            let started = std::time::Instant::now();
            let verdict = self.runtime.check(policy, &record, &point);
            call.note(Note::Verdict {
                stage: point.at(),
                guard: policy.name.clone(),
                verdict: verdict.clone(),
                shadow: policy.mode == Mode::Shadow,
                micros: started.elapsed().as_micros() as u64,
            });
            if policy.mode == Mode::Shadow {
                if verdict != Verdict::Allow {
                    call.note_shadow(format!(
                        "shadow policy `{}` would {} at {}",
                        policy.name,
                        describe(&verdict),
                        point.at()
                    ));
                }
                continue;
            }
            match verdict {
                Verdict::Allow => {}
                Verdict::Deny(reason) => {
                    return Verdict::Deny(format!("policy `{}`: {reason}", policy.name))
                }
                Verdict::Escalate(reason) => {
                    escalate.get_or_insert(format!("policy `{}`: {reason}", policy.name));
                }
                Verdict::Rewrite(text) => {
                    if let Point::Result(_) = point {
                        let guard = Some(policy.budgets.output);
                        if let Some(over) = oversized_rewrite(&text, call.output_budget, guard) {
                            return Verdict::Deny(format!("policy `{}`: {over}", policy.name));
                        }
                        output = Some(text);
                    }
                }
            }
        }
        match (escalate, output) {
            (Some(reason), _) => Verdict::Escalate(reason),
            (None, Some(text)) => Verdict::Rewrite(text),
            (None, None) => Verdict::Allow,
        }
    }
}

/// What one reload found: the set to put in force, and its problems.
#[derive(Default)]
struct Outcome {
    keep_last: bool,
    set: Vec<Policy>,
    errors: Vec<LoadError>,
    /// The problems that refuse every call: those without a previous version kept.
    troubles: Vec<String>,
}

impl Outcome {
    /// A problem with the policy at `path`: under keep-last its previous version (if it had
    /// one) stays in force; otherwise every call is refused.
    fn problem(&mut self, path: &Path, problem: LoadProblem, previous: &[Policy]) {
        let old = previous.iter().find(|p| p.path == path).filter(|_| self.keep_last);
        let problem = match old {
            Some(old) => {
                self.set.push(old.clone());
                LoadProblem::KeptLast(Box::new(problem))
            }
            None => problem,
        };
        let error = LoadError { path: path.to_owned(), problem };
        if old.is_none() {
            self.troubles.push(error.to_string());
        }
        self.errors.push(error);
    }

    /// The directory cannot be listed: under keep-last the previous set (if any) stays.
    fn directory(&mut self, dir: &Path, problem: LoadProblem, previous: &[Policy]) {
        if !self.keep_last || previous.is_empty() {
            let error = LoadError { path: dir.to_owned(), problem };
            self.troubles.push(error.to_string());
            self.errors.push(error);
            return;
        }
        self.set.extend(previous.iter().cloned());
        let problem = LoadProblem::KeptLast(Box::new(problem));
        self.errors.push(LoadError { path: dir.to_owned(), problem });
    }
}

/// Why a rewrite of the output is too large, if it is: it is an output, held to the tool's
/// output budget and to the output budget of the guard that made it; the reason names both.
pub(crate) fn oversized_rewrite(
    text: &str,
    tool: Option<ByteSize>,
    guard: Option<ByteSize>,
) -> Option<String> {
    let size = ByteSize(text.len() as u64);
    let limit = [tool, guard].into_iter().flatten().min()?;
    if size <= limit {
        return None;
    }
    let tool = tool.map_or("none".to_owned(), |b| format!("{b} ({} bytes)", b.0));
    let guard = guard.map_or(String::new(), |b| format!(", the guard's {b} ({} bytes)", b.0));
    Some(format!(
        "its rewrite of the output is {size} ({} bytes), over the output budgets (the tool's \
         {tool}{guard})",
        size.0
    ))
}

fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Allow => "allow".into(),
        Verdict::Deny(reason) => format!("deny ({reason})"),
        Verdict::Escalate(reason) => format!("escalate ({reason})"),
        Verdict::Rewrite(text) => format!("rewrite the output ({} bytes)", text.len()),
    }
}

impl Gate for Policies {
    fn check_call(&self, call: &CallView) -> Verdict {
        self.judge(call, Point::Call)
    }

    fn check_effect(&self, call: &CallView, effect: &Effect) -> Verdict {
        self.judge(call, Point::Effect(effect))
    }

    fn check_result(&self, call: &CallView, output: &str) -> Verdict {
        self.judge(call, Point::Result(output))
    }
}
