//! `moat audit verify`: walks the whole chain (hashes, sequence, links), checks every blob a
//! record refers to, and checks the signed checkpoints against the records they name. Stops
//! at the first problem, naming the record.

use super::checkpoint::{self, Checkpoint};
use super::read::{lines, Line};
use super::record::{short, GENESIS};
use super::{blobs_dir, checkpoints_path, log_path, Blobs};
use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;
use std::path::Path;

/// What verification found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Intact records before the first problem.
    pub records: u64,
    /// Distinct blobs checked.
    pub blobs: u64,
    pub checkpoints: usize,
    /// The last signed checkpoint's record.
    pub signed_up_to: u64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
    /// Things worth knowing that are not tampering (records not yet signed, a writer at
    /// work).
    pub notes: Vec<String>,
}

/// Where the log first goes wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The record concerned (by its place in the chain), if one can be named.
    pub seq: Option<u64>,
    /// Its line in `log.jsonl`.
    pub line: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.seq, self.line) {
            (Some(seq), Some(line)) => write!(f, "record {seq} (line {line}): {}", self.reason),
            (Some(seq), None) => write!(f, "record {seq}: {}", self.reason),
            (None, Some(line)) => write!(f, "line {line}: {}", self.reason),
            (None, None) => f.write_str(&self.reason),
        }
    }
}

fn problem(seq: Option<u64>, line: Option<u64>, reason: String) -> Option<Problem> {
    Some(Problem { seq, line, reason })
}

/// Verifies the audit directory `dir`; checkpoints must be signed by `trusted`.
pub fn verify(dir: &Path, trusted: &VerifyingKey) -> std::io::Result<Report> {
    let mut report = Report::default();
    let checkpoints = match checkpoint::read_all(&checkpoints_path(dir)) {
        Ok(checkpoints) => checkpoints,
        Err(reason) => {
            report.problem = problem(None, None, reason);
            return Ok(report);
        }
    };
    report.checkpoints = checkpoints.len();
    for checkpoint in &checkpoints {
        if let Err(reason) = checkpoint.check(trusted) {
            report.problem = problem(Some(checkpoint.seq), None, reason);
            return Ok(report);
        }
    }
    let signed: HashMap<u64, &Checkpoint> = checkpoints.iter().map(|c| (c.seq, c)).collect();
    let writing = super::in_use(dir);
    let blobs = blobs_dir(dir);
    let (mut expected, mut prev) = (1u64, GENESIS.to_owned());
    // Blobs already read and found whole (content-addressed: a blob is checked once).
    let mut checked = std::collections::HashSet::new();
    for line in lines(&log_path(dir))? {
        let (line, hash, record) = match line? {
            Line::Record { line, hash, record } => (line, hash, record),
            Line::Bad { line, reason } => {
                report.problem = problem(Some(expected), Some(line), reason);
                return Ok(report);
            }
            Line::Incomplete { line, bytes } if writing => {
                report.notes.push(format!(
                    "line {line} ({bytes} bytes) is being written by the moat process holding \
                     the log"
                ));
                break;
            }
            Line::Incomplete { line, bytes } => {
                report.problem = problem(
                    Some(expected),
                    Some(line),
                    format!(
                        "the last {bytes} bytes are an incomplete record (torn by a crash): \
                         opening the log with moat cuts them off and records the recovery"
                    ),
                );
                return Ok(report);
            }
        };
        let found = record.seq;
        let reason = if found > expected {
            Some(format!(
                "line {line} holds record {found} where record {expected} belongs: record \
                 {expected} was deleted or moved"
            ))
        } else if found < expected {
            Some(format!(
                "line {line} holds record {found} again, after record {}: records were \
                 duplicated or moved",
                expected - 1
            ))
        } else if record.prev != prev {
            Some(format!(
                "it does not follow record {}: it links to {}, but record {} hashes to {} (a \
                 record was replaced or moved)",
                expected - 1,
                short(&record.prev),
                expected - 1,
                short(&prev)
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            report.problem = problem(Some(expected), Some(line), reason);
            return Ok(report);
        }
        for blob in record.event.blobs() {
            if checked.contains(blob) {
                continue;
            }
            if let Err(reason) = Blobs::get(&blobs, blob) {
                report.problem = problem(Some(found), Some(line), reason);
                return Ok(report);
            }
            checked.insert(blob.to_owned());
            report.blobs += 1;
        }
        if let Some(checkpoint) = signed.get(&found) {
            if checkpoint.head != hash {
                report.problem = problem(
                    Some(found),
                    Some(line),
                    format!(
                        "it differs from the signed checkpoint of record {found} (signed {}, \
                         found {}): the log was rewritten",
                        short(&checkpoint.head),
                        short(&hash)
                    ),
                );
                return Ok(report);
            }
            report.signed_up_to = report.signed_up_to.max(found);
        }
        report.records = found;
        expected = found + 1;
        prev = hash;
    }
    let last = report.records;
    if let Some(beyond) = checkpoints.iter().map(|c| c.seq).filter(|seq| *seq > last).max() {
        report.problem = problem(
            Some(last + 1),
            None,
            format!(
                "missing: the log ends at record {last}, but a signed checkpoint covers record \
                 {beyond}; records {}..={beyond} were cut off",
                last + 1
            ),
        );
        return Ok(report);
    }
    if last > 0 && checkpoints.is_empty() {
        report.problem = problem(
            None,
            None,
            "no signed checkpoint: the log cannot be authenticated (every moat run signs one \
             when it opens the log; the checkpoints file was removed)"
                .to_owned(),
        );
        return Ok(report);
    }
    if last > report.signed_up_to {
        report.notes.push(format!(
            "records {}..={last} are chained but not yet signed ({})",
            report.signed_up_to + 1,
            if writing {
                "a moat process is writing the log"
            } else {
                "written after the last checkpoint"
            }
        ));
    }
    Ok(report)
}
