//! `moat calibrate`: candidate confidence thresholds per tool, from what the audit log says
//! people decided and what was rolled back: how many calls each threshold would escalate,
//! and how many known wrong actions it would let pass; and a suggested threshold per tool.
//!
//! A call is *wrong* when a person denied it when it was escalated, or its effects were later
//! rolled back; *right* when a person approved it, or it ran (without escalation) to a
//! successful result, and it was not rolled back. Other calls (nobody decided in time, the
//! call failed) are not labelled; calls without a confidence are not counted at all.

use crate::audit::read::{lines, Line};
use crate::audit::{log_path, Event};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Below this many labelled calls, a tool's suggestion is weak.
pub const WEAK_BELOW: u64 = 10;

/// The candidate thresholds: 0.50, 0.55, ..., 0.95.
pub fn candidates() -> Vec<f64> {
    (50..=95).step_by(5).map(|percent| f64::from(percent) / 100.0).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("audit log {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the configured threshold {0} is not between 0 and 1")]
    Threshold(f64),
}

/// The calibration of every tool in one audit log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// The log read.
    pub log: PathBuf,
    /// The configured threshold, added to the candidates.
    pub configured: Option<f64>,
    /// Call records read, over all tools.
    pub calls: u64,
    /// Calls without a confidence: not counted.
    pub without_confidence: u64,
    /// Calls with a confidence but no label (nobody decided, or the call did not succeed).
    pub unlabelled: u64,
    /// Lines that are not intact records (see `moat audit verify`); skipped.
    pub unreadable_lines: u64,
    /// By tool name.
    pub tools: Vec<ToolCalibration>,
}

/// One tool's table and suggestion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolCalibration {
    pub tool: String,
    /// All its calls, with a confidence or not.
    pub calls: u64,
    pub without_confidence: u64,
    /// Calls with a confidence: what the escalation rate is a share of.
    pub with_confidence: u64,
    /// Labelled calls with a confidence.
    pub right: u64,
    pub wrong: u64,
    pub unlabelled: u64,
    /// One row per candidate threshold, lowest first (none without a call with a confidence).
    pub rows: Vec<Row>,
    /// `None` when no call with a confidence is labelled.
    pub suggested: Option<Suggestion>,
}

/// What one threshold would have done to a tool's calls.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub threshold: f64,
    /// The threshold is the configured one.
    pub configured: bool,
    /// Calls with a confidence below the threshold, and their share of the calls with one.
    pub escalated: u64,
    pub escalation_rate: f64,
    /// Right calls that would have been escalated (a person's time spent for nothing).
    pub right_escalated: u64,
    /// Wrong calls at or above the threshold, and their share of the wrong calls (`None`
    /// when no call is known wrong).
    pub wrong_passed: u64,
    pub wrong_passed_rate: Option<f64>,
}

/// The threshold suggested for a tool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suggestion {
    pub threshold: f64,
    /// Known wrong actions it would let pass, and its escalation rate.
    pub wrong_passed: u64,
    pub escalation_rate: f64,
    /// Labelled calls it rests on; fewer than [`WEAK_BELOW`] makes it weak.
    pub labelled: u64,
    pub weak: bool,
    /// Why this one, in words.
    pub reason: String,
}

/// Reads the audit log of the audit directory `dir` and calibrates every tool in it. The
/// candidates are 0.50, 0.55, ..., 0.95 and `configured` (between 0 and 1) if given. The log
/// is read as it is, not verified; lines that are not intact records are skipped and counted.
pub fn calibrate(dir: &Path, configured: Option<f64>) -> Result<Calibration, CalibrateError> {
    if let Some(t) = configured.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(CalibrateError::Threshold(t));
    }
    let log = log_path(dir);
    let io = |source| CalibrateError::Io { path: log.clone(), source };
    let mut facts = Facts::default();
    for line in lines(&log).map_err(io)? {
        match line.map_err(io)? {
            Line::Record { record, .. } => facts.add(record.seq, record.event),
            Line::Bad { .. } => facts.unreadable += 1,
            // The last line, still being written: not a record yet.
            Line::Incomplete { .. } => {}
        }
    }
    Ok(facts.calibration(log, configured))
}

/// What the log says about each call.
#[derive(Default)]
struct Facts {
    /// By the seq of the call record.
    calls: BTreeMap<u64, CallFacts>,
    /// The call of each effect record.
    effect_call: HashMap<u64, u64>,
    /// Effect records undone by a rollback.
    undone: HashSet<u64>,
    unreadable: u64,
}

struct CallFacts {
    tool: String,
    confidence: Option<f64>,
    approved: bool,
    denied: bool,
    undecided: bool,
    ok: Option<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Right,
    Wrong,
    Unknown,
}

impl Facts {
    fn add(&mut self, seq: u64, event: Event) {
        match event {
            Event::Call { tool, confidence, .. } => {
                let call = CallFacts {
                    tool,
                    confidence,
                    approved: false,
                    denied: false,
                    undecided: false,
                    ok: None,
                };
                self.calls.insert(seq, call);
            }
            Event::Escalation { call, decision, .. } => {
                if let Some(call) = self.calls.get_mut(&call) {
                    match decision.as_str() {
                        "approved" => call.approved = true,
                        "denied" => call.denied = true,
                        _ => call.undecided = true,
                    }
                }
            }
            Event::Effect { call, .. } => {
                self.effect_call.insert(seq, call);
            }
            Event::Result { call, ok, .. } => {
                if let Some(call) = self.calls.get_mut(&call) {
                    call.ok = Some(ok);
                }
            }
            Event::Rollback { undone, .. } => self.undone.extend(undone),
            _ => {}
        }
    }

    fn labels(&self) -> HashMap<u64, Label> {
        let rolled_back: HashSet<u64> =
            self.undone.iter().filter_map(|effect| self.effect_call.get(effect).copied()).collect();
        self.calls
            .iter()
            .map(|(seq, call)| {
                let label = if call.denied || rolled_back.contains(seq) {
                    Label::Wrong
                } else if call.undecided {
                    Label::Unknown
                } else if call.approved || call.ok == Some(true) {
                    Label::Right
                } else {
                    Label::Unknown
                };
                (*seq, label)
            })
            .collect()
    }

    fn calibration(&self, log: PathBuf, configured: Option<f64>) -> Calibration {
        let labels = self.labels();
        let mut thresholds = candidates();
        if let Some(t) = configured {
            if !thresholds.iter().any(|c| (c - t).abs() < 1e-9) {
                thresholds.push(t);
                thresholds.sort_by(f64::total_cmp);
            }
        }
        let mut by_tool: BTreeMap<&str, Vec<(Option<f64>, Label)>> = BTreeMap::new();
        for (seq, call) in &self.calls {
            let label = labels.get(seq).copied().unwrap_or(Label::Unknown);
            by_tool.entry(&call.tool).or_default().push((call.confidence, label));
        }
        let tools: Vec<ToolCalibration> = by_tool
            .into_iter()
            .map(|(tool, calls)| calibrate_tool(tool, &calls, &thresholds, configured))
            .collect();
        Calibration {
            log,
            configured,
            calls: self.calls.len() as u64,
            without_confidence: tools.iter().map(|t| t.without_confidence).sum(),
            unlabelled: tools.iter().map(|t| t.unlabelled).sum(),
            unreadable_lines: self.unreadable,
            tools,
        }
    }
}

fn calibrate_tool(
    tool: &str,
    calls: &[(Option<f64>, Label)],
    thresholds: &[f64],
    configured: Option<f64>,
) -> ToolCalibration {
    let scored: Vec<(f64, Label)> =
        calls.iter().filter_map(|(confidence, label)| confidence.map(|c| (c, *label))).collect();
    let count = |label: Label| scored.iter().filter(|(_, l)| *l == label).count() as u64;
    let (right, wrong) = (count(Label::Right), count(Label::Wrong));
    let with_confidence = scored.len() as u64;
    let rows: Vec<Row> = if scored.is_empty() {
        Vec::new()
    } else {
        thresholds
            .iter()
            .map(|&threshold| {
                let below = |label: Option<Label>| {
                    scored
                        .iter()
                        .filter(|(c, l)| *c < threshold && label.is_none_or(|label| *l == label))
                        .count() as u64
                };
                let escalated = below(None);
                let wrong_passed = wrong - below(Some(Label::Wrong));
                Row {
                    threshold,
                    configured: configured.is_some_and(|t| (t - threshold).abs() < 1e-9),
                    escalated,
                    escalation_rate: escalated as f64 / with_confidence as f64,
                    right_escalated: below(Some(Label::Right)),
                    wrong_passed,
                    wrong_passed_rate: (wrong > 0).then(|| wrong_passed as f64 / wrong as f64),
                }
            })
            .collect()
    };
    ToolCalibration {
        tool: tool.to_owned(),
        calls: calls.len() as u64,
        without_confidence: calls.len() as u64 - with_confidence,
        with_confidence,
        right,
        wrong,
        unlabelled: with_confidence - right - wrong,
        suggested: suggest(&rows, right, wrong),
        rows,
    }
}

/// The lowest threshold that lets no known wrong action pass; failing that, the lowest of
/// those that let fewest pass.
fn suggest(rows: &[Row], right: u64, wrong: u64) -> Option<Suggestion> {
    let labelled = right + wrong;
    if labelled == 0 {
        return None;
    }
    let best = rows.iter().min_by(|a, b| {
        a.wrong_passed.cmp(&b.wrong_passed).then(a.threshold.total_cmp(&b.threshold))
    })?;
    let reason = if wrong == 0 {
        "no wrong action is known: the lowest candidate".to_owned()
    } else if best.wrong_passed == 0 {
        format!("the lowest threshold that lets none of the {wrong} known wrong actions pass")
    } else {
        format!(
            "no candidate stops every known wrong action: this one lets the fewest pass \
             ({} of {wrong})",
            best.wrong_passed
        )
    };
    Some(Suggestion {
        threshold: best.threshold,
        wrong_passed: best.wrong_passed,
        escalation_rate: best.escalation_rate,
        labelled,
        weak: labelled < WEAK_BELOW,
        reason,
    })
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Confidence thresholds from {} calls of {} tools in {}",
            self.calls,
            self.tools.len(),
            self.log.display()
        )?;
        writeln!(
            f,
            "A call is wrong when a person denied it or its effects were rolled back; right \
             when it was approved, or ran without escalation to a successful result, and was \
             not rolled back."
        )?;
        writeln!(
            f,
            "Not counted: {} calls without a confidence. Not labelled: {} calls (nobody \
             decided in time, or the call failed).",
            self.without_confidence, self.unlabelled
        )?;
        if self.unreadable_lines > 0 {
            writeln!(
                f,
                "Skipped: {} lines that are not intact records (run `moat audit verify`).",
                self.unreadable_lines
            )?;
        }
        if self.tools.is_empty() {
            writeln!(f, "\nNo calls: nothing to calibrate.")?;
        }
        for tool in &self.tools {
            write!(f, "\n{tool}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ToolCalibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} calls with a confidence ({} without); labelled {}: {} right, {} wrong; {} \
             not labelled",
            self.tool,
            self.with_confidence,
            self.without_confidence,
            self.right + self.wrong,
            self.right,
            self.wrong,
            self.unlabelled
        )?;
        if self.rows.is_empty() {
            return writeln!(f, "  no call with a confidence: nothing to calibrate");
        }
        writeln!(
            f,
            "  {:<17} {:>16}  {:>15}  {:>16}",
            "threshold", "escalated", "right escalated", "wrong passed"
        )?;
        for row in &self.rows {
            let threshold = format!(
                "{:.2}{}",
                row.threshold,
                if row.configured { " (configured)" } else { "" }
            );
            let escalated = format!(
                "{}/{} {:>6}",
                row.escalated,
                self.with_confidence,
                percent(row.escalation_rate)
            );
            let right = format!("{}/{}", row.right_escalated, self.right);
            let wrong = match row.wrong_passed_rate {
                Some(rate) => format!("{}/{} {:>6}", row.wrong_passed, self.wrong, percent(rate)),
                None => "none known".to_owned(),
            };
            writeln!(f, "  {threshold:<17} {escalated:>16}  {right:>15}  {wrong:>16}")?;
        }
        match &self.suggested {
            None => writeln!(f, "  suggested: none (no labelled call)"),
            Some(s) => writeln!(
                f,
                "  suggested: {:.2} ({}; escalates {}), from {} labelled calls{}",
                s.threshold,
                s.reason,
                percent(s.escalation_rate),
                s.labelled,
                if s.weak { format!(": weak, fewer than {WEAK_BELOW}") } else { String::new() }
            ),
        }
    }
}
