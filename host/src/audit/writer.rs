//! Appending to the chain: one writer at a time assigns sequence numbers and writes whole
//! lines; syncing is a separate step shared by every caller waiting for it (group commit).
//! Opening finds the head by reading the end of the file, and cuts off a torn last line.

use super::record::{decode, encode, now_us, Event, Record, GENESIS};
use super::AuditError;
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The end of the chain.
#[derive(Clone, Debug)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

struct Tail {
    file: File,
    head: Head,
    /// The length of the log up to the end of its last whole record.
    len: u64,
    /// Set when a write failed midway and its partial line could not be cut off: nothing
    /// more may be appended until the log is opened again (which cuts it off).
    broken: Option<String>,
}

#[derive(Default)]
struct SyncState {
    /// Every record up to this one is on stable storage.
    synced: u64,
    /// A caller is syncing for everyone.
    syncing: bool,
    failed: Option<String>,
}

pub struct Writer {
    path: PathBuf,
    tail: Mutex<Tail>,
    /// The last record handed to the operating system.
    written: AtomicU64,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// A second handle on the log, to sync without holding the writer's lock.
    sync_file: File,
}

/// What opening found at the end of the log.
pub struct Opened {
    pub writer: Writer,
    /// The bytes of a torn last line that were cut off, and where they were saved.
    pub torn: Option<(u64, PathBuf)>,
}

impl Writer {
    /// Opens (or creates) the log at `path` and finds its head. A last line without its
    /// newline is torn: it is saved beside the log, cut off, and reported. A last complete
    /// line that is not a valid record is corruption, not a crash: opening refuses.
    pub fn open(path: &Path) -> Result<Opened, AuditError> {
        let io = |e: std::io::Error| AuditError::io(path, e);
        let mut file =
            fs::OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let saved_as = |end: u64| path.with_file_name(format!("torn-{}-at-{end}.bin", now_us()));
        let tail = super::torn::repair(&mut file, saved_as, |_| true).map_err(io)?;
        let last = tail.last;
        let torn = tail.cut.map(|cut| (cut.bytes, cut.saved));
        let head = match last {
            None => Head { seq: 0, hash: GENESIS.to_owned() },
            Some(line) => {
                let (hash, record) = decode(&line).map_err(|reason| AuditError::Corrupt {
                    path: path.to_owned(),
                    reason: format!(
                        "its last record is invalid: {reason}. Run `moat audit verify`; to \
                         keep auditing, move the log aside and a new one is started"
                    ),
                })?;
                Head { seq: record.seq, hash }
            }
        };
        let len = file.seek(SeekFrom::End(0)).map_err(io)?;
        let sync_file = file.try_clone().map_err(io)?;
        let seq = head.seq;
        let writer = Writer {
            path: path.to_owned(),
            tail: Mutex::new(Tail { file, head, len, broken: None }),
            written: AtomicU64::new(seq),
            sync: Mutex::new(SyncState { synced: seq, ..SyncState::default() }),
            synced: Condvar::new(),
            sync_file,
        };
        Ok(Opened { writer, torn })
    }

    pub fn head(&self) -> Head {
        lock(&self.tail).head.clone()
    }

    /// Appends `events` as consecutive records, in one write. Returns the last one's `seq`.
    /// Not yet durable: see [`Writer::sync_to`].
    pub fn write(&self, events: Vec<Event>) -> Result<u64, AuditError> {
        let mut tail = lock(&self.tail);
        if let Some(reason) = &tail.broken {
            return Err(AuditError::Broken(reason.clone()));
        }
        let mut head = tail.head.clone();
        let mut lines = String::new();
        let time_us = now_us();
        for event in events {
            let record = Record { seq: head.seq + 1, prev: head.hash, time_us, event };
            let (hash, line) = encode(&record).map_err(|e| AuditError::Broken(e.to_string()))?;
            lines.push_str(&line);
            head = Head { seq: record.seq, hash };
        }
        if let Err(e) = tail.file.write_all(lines.as_bytes()) {
            // A full disk, say. What part of the records went out is cut off again, so the
            // log still ends at its last whole record and the next write (once there is
            // room) goes on from there; only if that fails too is the log broken.
            let reason = format!("writing {} failed: {e}", self.path.display());
            if let Err(cut) = tail.file.set_len(tail.len) {
                tail.broken = Some(format!("{reason}; cutting it back failed: {cut}"));
            }
            return Err(AuditError::Broken(reason));
        }
        tail.len += lines.len() as u64;
        self.written.store(head.seq, Ordering::Release);
        let seq = head.seq;
        tail.head = head;
        Ok(seq)
    }

    /// Returns once every record up to `seq` is on stable storage (and `before`, the blobs,
    /// ran first). Callers arriving while a sync runs wait for it, and the next one syncs for
    /// all of them: one fsync serves every record written meanwhile.
    pub fn sync_to(
        &self,
        seq: u64,
        before: &dyn Fn() -> std::io::Result<()>,
    ) -> Result<(), AuditError> {
        let mut state = lock(&self.sync);
        loop {
            if let Some(reason) = &state.failed {
                return Err(AuditError::Broken(reason.clone()));
            }
            if state.synced >= seq {
                return Ok(());
            }
            if state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.syncing = true;
            drop(state);
            let target = self.written.load(Ordering::Acquire);
            let outcome = before().and_then(|()| self.sync_file.sync_data());
            state = lock(&self.sync);
            state.syncing = false;
            match outcome {
                Ok(()) => state.synced = state.synced.max(target),
                Err(e) => {
                    state.failed = Some(format!("syncing {} failed: {e}", self.path.display()))
                }
            }
            self.synced.notify_all();
        }
    }

    /// The last record written, synced or not.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }
}
