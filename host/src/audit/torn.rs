//! Torn tails of the files moat appends lines to (the audit log, its checkpoints, the alert
//! log): finding the last line without reading the whole file, and cutting off a last line a
//! crash left unfinished, after saving its bytes in a file of their own, so nothing is lost.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Why a tail was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The last line has no newline: the write of it was cut short.
    NoNewline,
    /// The last line is complete, but not a valid line of its file.
    Invalid,
}

impl Why {
    /// For messages and records.
    pub fn describe(self) -> &'static str {
        match self {
            Why::NoNewline => "its last line had no newline (torn by a crash)",
            Why::Invalid => "its last line was not a valid line of the file",
        }
    }
}

/// What was cut off the end of a file.
#[derive(Clone, Debug)]
pub struct Cut {
    /// Where the cut bytes began.
    pub offset: u64,
    pub bytes: u64,
    /// Where they were saved (beside the file).
    pub saved: PathBuf,
    pub why: Why,
}

/// The end of a file after [`repair`].
#[derive(Clone, Debug)]
pub struct Tail {
    /// The last complete line kept (without its newline), if any.
    pub last: Option<Vec<u8>>,
    pub cut: Option<Cut>,
}

/// Finds the last line of `file` (open for reading and writing) and cuts off a
/// torn one: a last line without its newline, and then a last complete line `valid` refuses
/// (pass `|_| true` to keep every complete line). The cut bytes are first written, and
/// synced, to a new file named by `saved_as` (given the offset of the cut; `.1`, `.2`, ...
/// is added if that name is taken), then the file is truncated and synced.
pub fn repair(
    file: &mut File,
    saved_as: impl Fn(u64) -> PathBuf,
    valid: impl Fn(&[u8]) -> bool,
) -> std::io::Result<Tail> {
    let len = file.metadata()?.len();
    let (mut end, mut last) = last_line(file, len)?;
    let mut why = Why::NoNewline;
    if let Some(line) = last.as_ref().filter(|line| !valid(line)) {
        // The invalid line starts just after the newline before it.
        let start = end - line.len() as u64 - 1;
        (end, last) = last_line(file, start)?;
        why = Why::Invalid;
    }
    if end == len {
        return Ok(Tail { last, cut: None });
    }
    let dropped = read_at(file, end, len - end)?;
    let saved = save(&saved_as(end), &dropped)?;
    file.set_len(end)?;
    file.sync_all()?;
    let cut = Cut { offset: end, bytes: len - end, saved, why };
    Ok(Tail { last, cut: Some(cut) })
}

/// Writes `bytes` to a new file at `path` (or `path.1`, `path.2`, ... if taken) and syncs
/// it; returns the path used.
fn save(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut n = 0u32;
    loop {
        let candidate = match n {
            0 => path.to_owned(),
            n => {
                let mut name = path.as_os_str().to_owned();
                name.push(format!(".{n}"));
                PathBuf::from(name)
            }
        };
        match fs::OpenOptions::new().write(true).create_new(true).open(&candidate) {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, bytes)?;
                file.sync_all()?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot save the torn tail to {}: {e}", candidate.display()),
                ))
            }
        }
    }
}

/// Within the first `len` bytes of `file`: the offset just past the last newline, and the
/// last complete line (without its newline).
pub fn last_line(file: &mut File, len: u64) -> std::io::Result<(u64, Option<Vec<u8>>)> {
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        let bytes = read_at(file, start, len - start)?;
        let newlines: Vec<usize> =
            bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
        match newlines.as_slice() {
            // The last complete line starts after the newline before its own.
            [.., before, last] => {
                let line = bytes[before + 1..*last].to_vec();
                return Ok((start + *last as u64 + 1, Some(line)));
            }
            [last] if start == 0 => {
                return Ok((*last as u64 + 1, Some(bytes[..*last].to_vec())));
            }
            [] if start == 0 => return Ok((0, None)),
            _ => window = window.saturating_mul(4),
        }
    }
}

fn read_at(file: &mut File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(len as usize);
    Read::by_ref(file).take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Milliseconds since the Unix epoch, for the names of saved tails.
pub use crate::clock::now_ms;
