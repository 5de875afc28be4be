//! `moat calibrate`: from the audit log, what each candidate confidence threshold would have
//! escalated and let pass, per tool, counted exactly, and the threshold it suggests.

use moat::audit::checkpoint::KeyFiles;
use moat::audit::{Audit, AuditConfig, Event, Text};
use moat::controls::calibrate::{calibrate, CalibrateError, Calibration, Row, ToolCalibration};
use std::path::PathBuf;

/// How a call went.
#[derive(Clone, Copy)]
enum Outcome {
    /// Ran without escalation, to a successful result.
    Ran,
    /// Ran without escalation and failed.
    Failed,
    /// Escalated and approved; ran.
    Approved,
    /// Escalated and denied.
    Denied,
    /// Escalated; nobody decided in time.
    TimedOut,
    /// Ran without escalation; its effect was rolled back later.
    RolledBack,
    /// Escalated and approved; its effect was rolled back later.
    ApprovedThenRolledBack,
}

/// An audit log being written, and the effects to roll back at the end.
struct Log {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    audit: Option<Audit>,
    to_roll_back: Vec<u64>,
}

impl Log {
    fn new() -> Log {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        let keys = KeyFiles::new(tmp.path().join("keys/audit.key"));
        let audit = Audit::open(&dir, &keys, &AuditConfig::default()).unwrap();
        Log { _tmp: tmp, dir, audit: Some(audit), to_roll_back: Vec::new() }
    }

    fn record(&self, events: Vec<Event>) -> u64 {
        self.audit.as_ref().unwrap().record(events).unwrap()
    }

    /// Records one call of `tool` and its records as `outcome` says.
    fn call(&mut self, tool: &str, confidence: Option<f64>, outcome: Outcome) {
        let call = self.record(vec![Event::Call {
            principal: "local".into(),
            task: "task-1".into(),
            session: "s".into(),
            tool: tool.into(),
            plugin: format!("{tool}.wasm"),
            plugin_hash: "00".repeat(32),
            args: Text::Inline("{}".into()),
            reasoning: None,
            confidence,
        }]);
        let decision = match outcome {
            Outcome::Approved | Outcome::ApprovedThenRolledBack => Some("approved"),
            Outcome::Denied => Some("denied"),
            Outcome::TimedOut => Some("timed_out"),
            _ => None,
        };
        if let Some(decision) = decision {
            self.record(vec![Event::Escalation {
                call,
                stage: "confidence".into(),
                channel: "queue".into(),
                reason: "confidence below 0.8".into(),
                decision: decision.into(),
                by: Some("carol".into()),
                reported_by: None,
            }]);
        }
        let ran = matches!(
            outcome,
            Outcome::Ran
                | Outcome::Approved
                | Outcome::RolledBack
                | Outcome::ApprovedThenRolledBack
        );
        if ran {
            let effect = self.record(vec![Event::Effect {
                call,
                task: "task-1".into(),
                tool: tool.into(),
                capability: "kv".into(),
                kind: "write".into(),
                target: format!("key-{call}"),
                detail: serde_json::json!({}),
                before: None,
                after: None,
                rows: None,
                undo: None,
            }]);
            if matches!(outcome, Outcome::RolledBack | Outcome::ApprovedThenRolledBack) {
                self.to_roll_back.push(effect);
            }
        }
        let ok = ran;
        self.record(vec![Event::Result {
            call,
            task: "task-1".into(),
            tool: tool.into(),
            ok,
            error_kind: (!ok).then(|| "denied".into()),
            error: (!ok).then(|| "not allowed".into()),
            output: None,
            output_hash: None,
            output_bytes: 0,
            tokens: 0,
            fuel: 0,
            peak_memory: 0,
            wall_us: 0,
        }]);
    }

    /// Rolls back the effects marked so, closes the log and calibrates it.
    fn calibrate(mut self, configured: Option<f64>) -> Calibration {
        let mut undone = std::mem::take(&mut self.to_roll_back);
        undone.reverse();
        self.record(vec![Event::Rollback { task: "task-1".into(), undone, skipped: vec![] }]);
        drop(self.audit.take());
        calibrate(&self.dir, configured).unwrap()
    }
}

/// `db_execute`: 13 calls, 2 without a confidence, 6 right, 3 wrong (two denied, one rolled
/// back), 2 not labelled (a timeout, a failure). Fewer than 10 labelled: a weak suggestion.
/// `send_mail`: 10 right, 2 wrong (one denied at 0.60, one approved at 0.97 and rolled
/// back): no candidate stops them all. `echo`: one call, without a confidence.
fn mixed_log() -> Log {
    use Outcome::*;
    let mut log = Log::new();
    for (confidence, outcome) in [
        (0.90, Ran),
        (0.85, Ran),
        (0.95, Ran),
        (0.70, Ran),
        (0.60, Approved),
        (0.55, Approved),
        (0.65, Denied),
        (0.50, Denied),
        (0.75, RolledBack),
        (0.40, TimedOut),
        (0.92, Failed),
    ] {
        log.call("db_execute", Some(confidence), outcome);
    }
    log.call("db_execute", None, Ran);
    log.call("db_execute", None, Denied);
    for confidence in [0.66, 0.70, 0.75, 0.80, 0.82, 0.85, 0.88, 0.90, 0.93, 0.99] {
        log.call("send_mail", Some(confidence), Ran);
    }
    log.call("send_mail", Some(0.60), Denied);
    log.call("send_mail", Some(0.97), ApprovedThenRolledBack);
    log.call("echo", None, Ran);
    log
}

/// The rows as (threshold, escalated, right escalated, wrong passed).
fn numbers(tool: &ToolCalibration) -> Vec<(f64, u64, u64, u64)> {
    tool.rows
        .iter()
        .map(|row| (row.threshold, row.escalated, row.right_escalated, row.wrong_passed))
        .collect()
}

fn tool<'a>(calibration: &'a Calibration, name: &str) -> &'a ToolCalibration {
    calibration.tools.iter().find(|t| t.tool == name).unwrap()
}

#[test]
fn calls_are_labelled_by_decisions_and_rollbacks_and_counted_per_tool() {
    let calibration = mixed_log().calibrate(None);
    assert_eq!(calibration.calls, 26);
    assert_eq!(calibration.without_confidence, 3);
    assert_eq!(calibration.unlabelled, 2);
    assert_eq!(calibration.unreadable_lines, 0);
    let names: Vec<&str> = calibration.tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(names, ["db_execute", "echo", "send_mail"]);

    let db = tool(&calibration, "db_execute");
    assert_eq!((db.calls, db.without_confidence, db.with_confidence), (13, 2, 11));
    assert_eq!((db.right, db.wrong, db.unlabelled), (6, 3, 2));
    let mail = tool(&calibration, "send_mail");
    assert_eq!((mail.calls, mail.with_confidence, mail.right, mail.wrong), (12, 12, 10, 2));
}

#[test]
fn each_threshold_counts_the_calls_it_escalates_and_the_wrong_ones_it_lets_pass() {
    let calibration = mixed_log().calibrate(None);
    let db = tool(&calibration, "db_execute");
    assert_eq!(
        numbers(db),
        [
            (0.50, 1, 0, 3),
            (0.55, 2, 0, 2),
            (0.60, 3, 1, 2),
            (0.65, 4, 2, 2),
            (0.70, 5, 2, 1),
            (0.75, 6, 3, 1),
            (0.80, 7, 3, 0),
            (0.85, 7, 3, 0),
            (0.90, 8, 4, 0),
            (0.95, 10, 5, 0),
        ]
    );
    let at_080 = &db.rows[6];
    assert_eq!(at_080.escalation_rate, 7.0 / 11.0);
    assert_eq!(at_080.wrong_passed_rate, Some(0.0));
    assert_eq!(db.rows[0].wrong_passed_rate, Some(1.0));
    assert_eq!(db.rows[4].wrong_passed_rate, Some(1.0 / 3.0));

    let mail = tool(&calibration, "send_mail");
    assert_eq!(
        numbers(mail),
        [
            (0.50, 0, 0, 2),
            (0.55, 0, 0, 2),
            (0.60, 0, 0, 2),
            (0.65, 1, 0, 1),
            (0.70, 2, 1, 1),
            (0.75, 3, 2, 1),
            (0.80, 4, 3, 1),
            (0.85, 6, 5, 1),
            (0.90, 8, 7, 1),
            (0.95, 10, 9, 1),
        ]
    );
}

#[test]
fn the_suggestion_is_the_lowest_threshold_letting_no_known_wrong_action_pass() {
    let calibration = mixed_log().calibrate(None);
    let db = tool(&calibration, "db_execute").suggested.clone().unwrap();
    assert_eq!((db.threshold, db.wrong_passed, db.labelled), (0.80, 0, 9));
    assert_eq!(db.escalation_rate, 7.0 / 11.0);
    assert!(db.weak, "9 labelled calls are fewer than 10");
}

#[test]
fn when_no_threshold_stops_every_wrong_action_the_one_letting_fewest_pass_is_suggested() {
    let calibration = mixed_log().calibrate(None);
    let mail = tool(&calibration, "send_mail").suggested.clone().unwrap();
    assert_eq!((mail.threshold, mail.wrong_passed, mail.labelled), (0.65, 1, 12));
    assert!(!mail.weak);
    assert!(mail.reason.contains("1 of 2"), "{}", mail.reason);
}

#[test]
fn a_tool_without_a_call_with_a_confidence_has_no_rows_and_no_suggestion() {
    let calibration = mixed_log().calibrate(None);
    let echo = tool(&calibration, "echo");
    assert_eq!((echo.calls, echo.without_confidence), (1, 1));
    assert!(echo.rows.is_empty());
    assert_eq!(echo.suggested, None);
}

#[test]
fn the_configured_threshold_is_a_row_of_its_own_in_order() {
    let calibration = mixed_log().calibrate(Some(0.72));
    let db = tool(&calibration, "db_execute");
    assert_eq!(db.rows.len(), 11);
    let row: &Row = &db.rows[5];
    assert_eq!((row.threshold, row.configured), (0.72, true));
    assert_eq!((row.escalated, row.right_escalated, row.wrong_passed), (6, 3, 1));
    assert_eq!(db.rows.iter().filter(|r| r.configured).count(), 1);

    // A configured threshold that is a candidate is marked, not repeated.
    let calibration = mixed_log().calibrate(Some(0.8));
    let db = tool(&calibration, "db_execute");
    assert_eq!(db.rows.len(), 10);
    assert!(db.rows[6].configured && db.rows[6].threshold == 0.80);
}

#[test]
fn a_configured_threshold_outside_zero_to_one_is_refused() {
    let log = Log::new();
    let refused = calibrate(&log.dir, Some(1.5));
    assert!(matches!(refused, Err(CalibrateError::Threshold(t)) if t == 1.5));
}

#[test]
fn a_log_without_calls_calibrates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let calibration = calibrate(&tmp.path().join("audit"), None).unwrap();
    assert_eq!(calibration.calls, 0);
    assert!(calibration.tools.is_empty());
    assert!(calibration.to_string().contains("nothing to calibrate"));
}

#[test]
fn the_table_for_a_person_shows_every_row_and_the_suggestions() {
    let text = mixed_log().calibrate(Some(0.72)).to_string();
    assert!(text.contains("from 26 calls of 3 tools"), "{text}");
    assert!(text.contains("Not counted: 3 calls without a confidence"), "{text}");
    assert!(text.contains("0.72 (configured)"), "{text}");
    assert!(
        text.contains("db_execute: 11 calls with a confidence (2 without); labelled 9: 6 right"),
        "{text}"
    );
    assert!(text.contains("suggested: 0.80"), "{text}");
    assert!(text.contains("from 9 labelled calls: weak"), "{text}");
    assert!(text.contains("suggested: 0.65"), "{text}");
    assert!(text.contains("from 12 labelled calls\n"), "{text}");
    assert!(text.contains("7/11  63.6%"), "{text}");
}

#[test]
fn the_json_form_holds_the_same_numbers() {
    let calibration = mixed_log().calibrate(None);
    let json = serde_json::to_value(&calibration).unwrap();
    assert_eq!(json["calls"], 26);
    let db = &json["tools"][0];
    assert_eq!(db["tool"], "db_execute");
    assert_eq!(db["rows"][6]["threshold"], 0.8);
    assert_eq!(db["rows"][6]["escalated"], 7);
    assert_eq!(db["rows"][6]["wrong_passed"], 0);
    assert_eq!(db["suggested"]["threshold"], 0.8);
    assert_eq!(db["suggested"]["weak"], true);
    assert_eq!(json["tools"][1]["suggested"], serde_json::Value::Null);
}
