//! Crash recovery of every file moat appends to: the audit log, its checkpoints and the
//! alert log. Each is cut at every byte offset of its last line, as a crash may leave it;
//! reopening cuts the torn line off (saving it), records the repair, loses no complete
//! earlier line, and the next entry lands after it, with `verify` passing.

use moat::audit::checkpoint::{parse_public, KeyFiles};
use moat::audit::read::{lines, Line};
use moat::audit::verify::verify;
use moat::audit::{self, Audit, AuditConfig, Durability, Event, Record, Text};
use moat::controls::alert::{read_log, Alert, AlertConfig, AlertKind, Alerts};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn call(n: usize) -> Event {
    Event::Call {
        principal: "local".into(),
        task: "task-1".into(),
        session: "s".into(),
        tool: "echo".into(),
        plugin: "echo.wasm".into(),
        plugin_hash: "00".repeat(32),
        args: Text::Inline(format!("{{\"n\": {n}}}")),
        reasoning: None,
        confidence: None,
    }
}

fn records(dir: &Path) -> Vec<Record> {
    lines(&audit::log_path(dir))
        .unwrap()
        .map(|line| match line.unwrap() {
            Line::Record { record, .. } => *record,
            Line::Bad { line, reason } => panic!("line {line}: {reason}"),
            Line::Incomplete { line, .. } => panic!("line {line} incomplete"),
        })
        .collect()
}

/// The offsets of the last line of `bytes` (which ends in a newline): its first byte up to
/// its newline.
fn last_line(bytes: &[u8]) -> std::ops::Range<usize> {
    let body = &bytes[..bytes.len() - 1];
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    start..bytes.len()
}

struct Dir {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: KeyFiles,
}

impl Dir {
    fn new() -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        let keys = KeyFiles::new(tmp.path().join("keys/audit.key"));
        Dir { _tmp: tmp, dir, keys }
    }

    fn open(&self) -> Audit {
        let config = AuditConfig { durability: Durability::Durable, ..AuditConfig::default() };
        Audit::open(&self.dir, &self.keys, &config).unwrap()
    }

    fn verified(&self, context: &str) {
        let public = std::fs::read_to_string(&self.keys.public).unwrap();
        let report = verify(&self.dir, &parse_public(&public).unwrap()).unwrap();
        assert!(report.problem.is_none(), "{context}: {:?}", report.problem);
    }

    fn files(&self) -> (Vec<u8>, Vec<u8>) {
        let log = std::fs::read(audit::log_path(&self.dir)).unwrap();
        (log, std::fs::read(audit::checkpoints_path(&self.dir)).unwrap())
    }

    fn restore(&self, (log, checkpoints): &(Vec<u8>, Vec<u8>)) {
        std::fs::write(audit::log_path(&self.dir), log).unwrap();
        std::fs::write(audit::checkpoints_path(&self.dir), checkpoints).unwrap();
    }
}

#[test]
fn a_log_cut_at_any_byte_of_its_last_record_is_recovered_and_verifies() {
    let dir = Dir::new();
    drop(dir.open());
    let audit = dir.open();
    audit.record(vec![call(1)]).unwrap();
    // The files as a crash right now would leave them: the call recorded, not yet signed.
    let crashed = dir.files();
    drop(audit);
    let kept = {
        dir.restore(&crashed);
        records_before(&crashed.0)
    };
    let range = last_line(&crashed.0);
    for cut in range.clone() {
        dir.restore(&crashed);
        let log = audit::log_path(&dir.dir);
        std::fs::write(&log, &crashed.0[..cut]).unwrap();
        let audit = dir.open();
        audit.record(vec![call(2)]).unwrap();
        drop(audit);
        let context = format!("log cut at byte {cut} of {range:?}");
        dir.verified(&context);
        let records = records(&dir.dir);
        assert_eq!(&records[..kept.len()], &kept[..], "{context}");
        let recovered = records.iter().any(|r| matches!(r.event, Event::Recovery { .. }));
        assert_eq!(recovered, cut > range.start, "{context}: {records:?}");
        assert!(
            matches!(&records.last().unwrap().event, Event::Call { args: Text::Inline(a), .. } if a.contains('2')),
            "{context}"
        );
    }
}

/// The complete records of a log's bytes but its last.
fn records_before(log: &[u8]) -> Vec<Record> {
    let tmp = tempfile::tempdir().unwrap();
    let range = last_line(log);
    std::fs::write(audit::log_path(tmp.path()), &log[..range.start]).unwrap();
    records(tmp.path())
}

#[test]
fn checkpoints_cut_at_any_byte_of_their_last_line_are_repaired_recorded_and_verify() {
    let dir = Dir::new();
    let audit = dir.open();
    audit.record(vec![call(1)]).unwrap();
    drop(audit);
    let clean = dir.files();
    let before = records(&dir.dir);
    let range = last_line(&clean.1);
    for cut in range.clone() {
        dir.restore(&clean);
        let path = audit::checkpoints_path(&dir.dir);
        std::fs::write(&path, &clean.1[..cut]).unwrap();
        let audit = dir.open();
        audit.record(vec![call(2)]).unwrap();
        drop(audit);
        let context = format!("checkpoints cut at byte {cut} of {range:?}");
        dir.verified(&context);
        let records = records(&dir.dir);
        assert_eq!(&records[..before.len()], &before[..], "{context}");
        let repaired = records.iter().find_map(|r| match &r.event {
            Event::Repaired { file, dropped_bytes, saved_to, .. } => {
                Some((file.clone(), *dropped_bytes, saved_to.clone()))
            }
            _ => None,
        });
        match repaired {
            None => assert_eq!(cut, range.start, "{context}: no repair recorded"),
            Some((file, dropped, saved_to)) => {
                assert_eq!(file, "checkpoints", "{context}");
                assert_eq!(dropped as usize, cut - range.start, "{context}");
                let saved = std::fs::read(dir.dir.join(&saved_to)).unwrap();
                assert_eq!(saved, &clean.1[range.start..cut], "{context}");
                std::fs::remove_file(dir.dir.join(saved_to)).unwrap();
            }
        }
        let last = &records.last().unwrap().event;
        assert!(matches!(last, Event::Call { args: Text::Inline(a), .. } if a.contains('2')));
    }
}

#[test]
fn an_alert_log_cut_at_any_byte_of_its_last_line_is_repaired_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.jsonl");
    let config = AlertConfig { stderr: false, ..AlertConfig::default() };
    let bound = Duration::from_secs(10);
    let alerts = Alerts::new(config.clone(), path.clone()).unwrap();
    alerts.raise(Alert::new(AlertKind::TaskStopped, "first").with_task("t"));
    alerts.raise(Alert::new(AlertKind::LoopDetected, "second").with_tool("echo"));
    assert!(alerts.close(bound));
    let clean = std::fs::read(&path).unwrap();
    let range = last_line(&clean);
    for cut in range.clone() {
        std::fs::write(&path, &clean[..cut]).unwrap();
        let alerts = Alerts::new(config.clone(), path.clone()).unwrap();
        alerts.raise(Alert::new(AlertKind::BudgetExhausted, "third"));
        assert!(alerts.close(bound));
        let context = format!("alert log cut at byte {cut} of {range:?}");
        let logged = read_log(&path).unwrap_or_else(|e| panic!("{context}: {e}"));
        let messages: Vec<&str> = logged.iter().map(|l| l.alert.message.as_str()).collect();
        assert_eq!(messages[0], "first", "{context}");
        assert_eq!(*messages.last().unwrap(), "third", "{context}");
        let repairs: Vec<_> =
            logged.iter().filter(|l| l.alert.kind == AlertKind::LogRepaired).collect();
        if cut == range.start {
            assert_eq!(messages, ["first", "third"], "{context}");
            continue;
        }
        assert_eq!(repairs.len(), 1, "{context}: {messages:?}");
        let message = &repairs[0].alert.message;
        assert!(message.contains(&format!("{} bytes", cut - range.start)), "{message}");
        let saved: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("alerts.jsonl.torn-"))
            .collect();
        assert_eq!(saved.len(), 1, "{context}: {saved:?}");
        assert!(message.contains(&saved[0].display().to_string()), "{message}");
        assert_eq!(std::fs::read(&saved[0]).unwrap(), &clean[range.start..cut], "{context}");
        std::fs::remove_file(&saved[0]).unwrap();
    }
}
