//! The audit log: every call is recorded; any edit, deletion, reordering, truncation or
//! wholesale rewrite is found by `verify` at the right record; a crash loses no acknowledged
//! record; many writers make one chain.

use crate::support::{built, config_in, host_over};
use moat::audit::checkpoint::{parse_public, KeyFiles};
use moat::audit::read::{lines, Line};
use moat::audit::verify::{verify, Report};
use moat::audit::{self, Audit, AuditConfig, Durability, Event, Record, Text};
use moat::{Budgets, Host};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An audit directory and its key, in a temporary directory.
struct Log {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: KeyFiles,
}

impl Log {
    fn new() -> Log {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        let keys = KeyFiles::new(tmp.path().join("keys/audit.key"));
        Log { _tmp: tmp, dir, keys }
    }

    fn open(&self, durability: Durability) -> Audit {
        let config = AuditConfig { durability, ..AuditConfig::default() };
        Audit::open(&self.dir, &self.keys, &config).unwrap()
    }

    /// Writes `n` call records, every third with arguments long enough for a blob.
    fn with_calls(self, n: usize) -> Log {
        let audit = self.open(Durability::Durable);
        for i in 0..n {
            audit.record(vec![call(&audit, i)]).unwrap();
        }
        drop(audit);
        self
    }

    fn verify(&self) -> Report {
        let public = std::fs::read_to_string(&self.keys.public).unwrap();
        verify(&self.dir, &parse_public(&public).unwrap()).unwrap()
    }

    fn log(&self) -> PathBuf {
        audit::log_path(&self.dir)
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log()).unwrap().lines().map(str::to_owned).collect()
    }

    fn write_lines(&self, lines: &[String]) {
        std::fs::write(self.log(), lines.iter().map(|l| format!("{l}\n")).collect::<String>())
            .unwrap();
    }

    fn records(&self) -> Vec<Record> {
        records(&self.dir)
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

fn call(audit: &Audit, i: usize) -> Event {
    let args = match i % 3 {
        0 => format!("{{\"text\": \"{}\"}}", "x".repeat(600 + i)),
        _ => format!("{{\"n\": {i}}}"),
    };
    Event::Call {
        principal: "local".into(),
        task: format!("task-{}", i % 4),
        session: "s".into(),
        tool: "echo".into(),
        plugin: "echo.wasm".into(),
        plugin_hash: "00".repeat(32),
        args: audit.text(&args).unwrap(),
        reasoning: None,
        confidence: Some(0.9),
    }
}

/// The problem `verify` reports, as "record N: reason".
fn problem(report: &Report) -> (Option<u64>, String) {
    let problem = report.problem.clone().expect("verify should find a problem");
    (problem.seq, problem.reason)
}

/// The line of record `seq` (records start at line 1).
fn line_of(seq: u64) -> usize {
    seq as usize - 1
}

#[test]
fn an_intact_log_verifies_with_its_checkpoints() {
    let log = Log::new().with_calls(20);
    let report = log.verify();
    assert!(report.problem.is_none(), "{:?}", report.problem);
    // An `opened` record, 20 calls.
    assert_eq!(report.records, 21);
    assert_eq!(report.signed_up_to, 21);
    assert!(report.blobs >= 7, "{report:?}");
}

#[test]
fn a_flipped_byte_in_a_record_is_found_at_that_record() {
    let log = Log::new().with_calls(20);
    let mut lines = log.lines();
    let line = &mut lines[line_of(9)];
    *line = line.replace("\"confidence\":0.9", "\"confidence\":0.8");
    log.write_lines(&lines);
    let (seq, reason) = problem(&log.verify());
    assert_eq!(seq, Some(9));
    assert!(reason.contains("does not match its hash"), "{reason}");
}

#[test]
fn a_flipped_byte_in_a_blob_is_found_at_the_record_that_refers_to_it() {
    let log = Log::new().with_calls(20);
    let record = &log.records()[line_of(5)];
    let Event::Call { args: Text::Blob { blob, .. }, .. } = &record.event else {
        panic!("record 5 should keep its args in a blob: {record:?}")
    };
    let path = audit::blobs_dir(&log.dir).join(&blob[..2]).join(blob);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let (seq, reason) = problem(&log.verify());
    assert_eq!(seq, Some(5));
    assert!(reason.contains("does not match its hash: its content was changed"), "{reason}");
}

#[test]
fn a_deleted_record_is_found_where_it_was() {
    let log = Log::new().with_calls(20);
    let mut lines = log.lines();
    lines.remove(line_of(12));
    log.write_lines(&lines);
    let (seq, reason) = problem(&log.verify());
    assert_eq!(seq, Some(12));
    assert!(reason.contains("holds record 13 where record 12 belongs"), "{reason}");
}

#[test]
fn two_swapped_records_are_found_at_the_first() {
    let log = Log::new().with_calls(20);
    let mut lines = log.lines();
    lines.swap(line_of(7), line_of(8));
    log.write_lines(&lines);
    let (seq, reason) = problem(&log.verify());
    assert_eq!(seq, Some(7));
    assert!(reason.contains("holds record 8 where record 7 belongs"), "{reason}");
}

#[test]
fn a_truncated_tail_is_found_thanks_to_the_checkpoint() {
    let log = Log::new().with_calls(20);
    let mut lines = log.lines();
    lines.truncate(line_of(18));
    log.write_lines(&lines);
    let (seq, reason) = problem(&log.verify());
    assert_eq!(seq, Some(18));
    assert!(reason.contains("the log ends at record 17"), "{reason}");
    assert!(reason.contains("records 18..=21 were cut off"), "{reason}");
}

/// Rewrites every record from `from` on with `change` applied, re-chaining the hashes as a
/// forger with write access (but not the signing key) would.
fn forge(log: &Log, from: u64, change: impl Fn(&mut serde_json::Value)) {
    let mut prev = String::new();
    let mut forged = Vec::new();
    for line in log.lines() {
        let (hash, json) = line.split_once(' ').unwrap();
        let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
        if value["seq"].as_u64().unwrap() < from {
            prev = hash.to_owned();
            forged.push(line.clone());
            continue;
        }
        value["prev"] = serde_json::Value::String(prev.clone());
        change(&mut value);
        let json = serde_json::to_string(&value).unwrap();
        prev = blake3::hash(json.as_bytes()).to_hex().to_string();
        forged.push(format!("{prev} {json}"));
    }
    log.write_lines(&forged);
}

#[test]
fn a_rechained_forgery_is_found_by_the_signed_checkpoint() {
    let log = Log::new().with_calls(20);
    forge(&log, 3, |record| record["confidence"] = serde_json::json!(0.99));
    let (seq, reason) = problem(&log.verify());
    assert_eq!(seq, Some(21), "the checkpoint signs the head, record 21");
    assert!(reason.contains("differs from the signed checkpoint"), "{reason}");
    assert!(reason.contains("the log was rewritten"), "{reason}");
}

#[test]
fn checkpoints_re_signed_with_another_key_are_refused() {
    let log = Log::new().with_calls(5);
    // The forger replaces the whole log with one signed by a key of their own.
    std::fs::remove_dir_all(&log.dir).unwrap();
    let keys = KeyFiles::new(log.dir.parent().unwrap().join("forged/audit.key"));
    keys.create().unwrap();
    let audit = Audit::open(&log.dir, &keys, &AuditConfig::default()).unwrap();
    audit.record(vec![call(&audit, 1)]).unwrap();
    drop(audit);
    let (_, reason) = problem(&log.verify());
    assert!(reason.contains("not by the trusted key"), "{reason}");
}

/// Rewrites the checkpoints file line by line with `edit`.
fn edit_checkpoints(log: &Log, edit: impl Fn(&str) -> String) {
    let path = audit::checkpoints_path(&log.dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited: String = text.lines().map(|line| format!("{}\n", edit(line))).collect();
    assert_ne!(edited, text, "the edit changes something");
    std::fs::write(&path, edited).unwrap();
}

#[test]
fn a_checkpoints_time_is_signed_so_changing_it_is_found() {
    let log = Log::new().with_calls(3);
    edit_checkpoints(&log, |line| {
        let checkpoint: serde_json::Value = serde_json::from_str(line).unwrap();
        let time = checkpoint["time_us"].as_u64().unwrap();
        line.replace(&format!("\"time_us\":{time}"), &format!("\"time_us\":{}", time - 1))
    });
    let (_, reason) = problem(&log.verify());
    assert!(reason.contains("invalid signature"), "{reason}");
}

#[test]
fn a_checkpoint_spelt_otherwise_with_the_same_values_is_an_edit_and_found() {
    let respellings: [fn(&str) -> String; 5] = [
        |line| {
            let (before, signature) = line.split_once("\"signature\":").unwrap();
            format!("{before}\"signature\":{}", signature.to_uppercase())
        },
        |line| line.replacen(',', ", ", 1),
        |line| format!("{line} "),
        |line| format!("{line}\r"),
        |line| format!("{line}\n"),
    ];
    for respell in respellings {
        let log = Log::new().with_calls(3);
        edit_checkpoints(&log, respell);
        let (_, reason) = problem(&log.verify());
        assert!(reason.contains("checkpoint"), "{reason}");
    }
}

#[test]
fn a_checkpoints_file_cut_mid_line_is_found() {
    let log = Log::new().with_calls(3);
    let path = audit::checkpoints_path(&log.dir);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 1]).unwrap();
    let (_, reason) = problem(&log.verify());
    assert!(reason.contains("does not end in a newline"), "{reason}");
}

#[test]
fn a_log_without_checkpoints_cannot_be_authenticated() {
    let log = Log::new().with_calls(3);
    std::fs::remove_file(audit::checkpoints_path(&log.dir)).unwrap();
    let (_, reason) = problem(&log.verify());
    assert!(reason.contains("no signed checkpoint"), "{reason}");
}

#[test]
fn a_torn_tail_is_cut_off_saved_and_recorded_when_the_log_is_opened() {
    let log = Log::new().with_calls(4);
    let mut file = std::fs::OpenOptions::new().append(true).open(log.log()).unwrap();
    let torn = b"0123abc {\"seq\": 6, \"prev\"";
    std::io::Write::write_all(&mut file, torn).unwrap();
    drop(file);
    let (seq, reason) = problem(&log.verify());
    assert_eq!(seq, Some(6));
    assert!(reason.contains("incomplete record (torn by a crash)"), "{reason}");

    drop(log.open(Durability::Durable));
    let report = log.verify();
    assert!(report.problem.is_none(), "{:?}", report.problem);
    let records = log.records();
    let Event::Recovery { after_seq, dropped_bytes, saved_to } = &records[5].event else {
        panic!("record 6 should be the recovery: {:?}", records[5])
    };
    assert_eq!((*after_seq, *dropped_bytes), (5, torn.len() as u64));
    let saved = std::fs::read(log.dir.join(saved_to)).unwrap();
    assert_eq!(saved, torn);
}

#[test]
fn a_corrupt_last_record_is_not_mistaken_for_a_crash() {
    let log = Log::new().with_calls(4);
    let mut lines = log.lines();
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("echo", "ohce");
    log.write_lines(&lines);
    let config = AuditConfig::default();
    let error = Audit::open(&log.dir, &log.keys, &config).err().expect("opening refuses");
    let message = error.to_string();
    assert!(message.contains("its last record is invalid"), "{message}");
    assert!(message.contains("moat audit verify"), "{message}");
}

#[test]
fn a_log_is_refused_without_the_key_that_signed_it_or_with_a_key_others_can_read() {
    let log = Log::new().with_calls(2);
    std::fs::remove_file(&log.keys.secret).unwrap();
    let error = Audit::open(&log.dir, &log.keys, &AuditConfig::default()).err().unwrap();
    assert!(error.to_string().contains("the key is missing, but the log"), "{error}");

    let fresh = Log::new();
    drop(fresh.open(Durability::None));
    use std::os::unix::fs::PermissionsExt;
    let perms = std::fs::metadata(&fresh.keys.secret).unwrap().permissions();
    assert_eq!(perms.mode() & 0o777, 0o600, "the key is created owner-only");
    std::fs::set_permissions(&fresh.keys.secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = Audit::open(&fresh.dir, &fresh.keys, &AuditConfig::default()).err().unwrap();
    assert!(error.to_string().contains("others may read it"), "{error}");
}

#[test]
fn one_writer_at_a_time() {
    let log = Log::new();
    let _first = log.open(Durability::None);
    let error = Audit::open(&log.dir, &log.keys, &AuditConfig::default()).err().unwrap();
    assert!(error.to_string().contains("in use by another moat process"), "{error}");
}

#[test]
fn many_threads_append_one_complete_chain() {
    for durability in [Durability::Durable, Durability::Batched, Durability::None] {
        let log = Log::new();
        let audit = Arc::new(log.open(durability));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let audit = audit.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .map(|i| audit.record(vec![call(&audit, t * 1000 + i)]).unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        drop(Arc::into_inner(audit).expect("no other owner"));
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 800, "every append got its own record ({durability:?})");
        let report = log.verify();
        assert!(report.problem.is_none(), "{durability:?}: {:?}", report.problem);
        assert_eq!(report.records, 801, "{durability:?}");
        assert_eq!(report.signed_up_to, 801, "{durability:?}");
    }
}

#[test]
fn every_call_is_recorded_with_its_checks_and_result() {
    let host = host_over(&[built("tools")], Budgets::default());
    host.start_task("t1", Some("say hello")).unwrap();
    let request = moat::CallRequest {
        task: Some("t1".into()),
        reasoning: Some("the user asked".into()),
        confidence: Some(0.7),
        ..moat::CallRequest::new("echo", r#"{"text": "hello"}"#)
    };
    host.run(&request).unwrap();
    assert!(host.call("echo", r#"{"wrong": 1}"#).is_err());
    host.end_task("t1", Some("said hello")).unwrap();
    let dir = host.audit().unwrap().dir().to_owned();
    let events: Vec<Event> = records(&dir).into_iter().map(|r| r.event).collect();
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    assert_eq!(
        names,
        ["opened", "task_start", "call", "result", "task_start", "call", "result", "task_end"]
    );
    let Event::Call { tool, args, reasoning, confidence, plugin, plugin_hash, .. } = &events[2]
    else {
        unreachable!()
    };
    assert_eq!((tool.as_str(), plugin.as_str(), *confidence), ("echo", "echo", Some(0.7)));
    assert_eq!(args, &Text::Inline(r#"{"text": "hello"}"#.into()));
    assert_eq!(reasoning, &Some(Text::Inline("the user asked".into())));
    let registry = host.registry();
    let (echo, _) = registry.tools().find(|(_, tool)| tool.name == "echo").unwrap();
    assert_eq!(plugin_hash, &echo.hash.to_hex().to_string());
    let Event::Result { ok: true, output: Some(output), output_bytes: 7, fuel, .. } = &events[3]
    else {
        panic!("{:?}", events[3])
    };
    assert!(*fuel > 0);
    assert_eq!(output, &Text::Inline(r#""hello""#.into()));
    let Event::Result { ok: false, error_kind: Some(kind), error: Some(error), .. } = &events[6]
    else {
        panic!("{:?}", events[6])
    };
    assert_eq!(kind, "invalid_arguments");
    assert!(error.contains("invalid arguments for `echo`"), "{error}");
}

#[test]
fn a_budget_hit_is_recorded_with_its_numbers() {
    let host = host_over(&[built("tests")], Budgets { fuel: 5_000_000, ..Budgets::default() });
    assert!(host.call("spin", "{}").is_err());
    let dir = host.audit().unwrap().dir().to_owned();
    let budget = records(&dir).into_iter().find_map(|r| match r.event {
        Event::Budget { budget, limit, used, .. } => Some((budget, limit, used)),
        _ => None,
    });
    let (budget, limit, used) = budget.expect("a budget record");
    assert_eq!((budget.as_str(), limit), ("fuel", 5_000_000));
    assert!(used >= limit);
}

#[test]
fn a_host_does_not_start_when_its_audit_log_cannot_be_opened() {
    let state = tempfile::tempdir().unwrap();
    let mut config = config_in(state.path());
    config.plugins.tools = vec![built("tools")];
    let (host, _) = Host::new(config).unwrap();
    // The log's file is replaced by a directory: nothing can be appended any more.
    let log = audit::log_path(host.audit().unwrap().dir());
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    drop(host);
    let mut config = config_in(state.path());
    config.plugins.tools = vec![built("tools")];
    let error = Host::new(config).err().expect("the host does not start").to_string();
    assert!(error.contains("audit log"), "{error}");
}
