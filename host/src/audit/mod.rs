//! The tamper-evident audit log: a blake3 hash chain of records (`log.jsonl`), a
//! content-addressed blob store for large payloads (`blobs/`), and ed25519-signed checkpoints
//! (`checkpoints`), all in one directory that a single writer holds locked.
//!
//! [`Audit`] is the writing side, used by the pipeline; [`verify`], [`read`] and the CLI are
//! the reading side.

mod blobs;
pub mod checkpoint;
pub mod read;
pub mod record;
pub(crate) mod staged;
pub mod task;
pub(crate) mod torn;
pub(crate) mod trail;
pub mod verify;
mod writer;

pub use blobs::Blobs;
pub use record::{format_time, short, Event, Record, Text};

use crate::units::Millis;
use checkpoint::{Checkpoint, KeyFiles};
use ed25519_dalek::SigningKey;
use serde::Deserialize;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use writer::Writer;

/// Texts longer than this go to the blob store; shorter ones stay in the record.
pub const INLINE_MAX: usize = 512;

/// `[audit]` in `moat.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Record every call (default). Turning it off leaves no trace to investigate or roll
    /// back.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The audit directory; default `STATE_DIR/audit`. Relative to the config file.
    pub dir: Option<PathBuf>,
    /// The checkpoint signing key; default `STATE_DIR/keys/audit.key` (the public key is
    /// beside it, `.pub`).
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub durability: Durability,
    /// In `batched` mode, the longest a record waits to be synced.
    #[serde(default = "default_batch_delay")]
    pub batch_delay: Millis,
    /// A signed checkpoint after this many records (and when the log is opened and closed).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
}

fn yes() -> bool {
    true
}
fn default_batch_delay() -> Millis {
    Millis(10)
}
fn default_checkpoint_every() -> u64 {
    1000
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            enabled: true,
            dir: None,
            key: None,
            durability: Durability::default(),
            batch_delay: default_batch_delay(),
            checkpoint_every: default_checkpoint_every(),
        }
    }
}

impl AuditConfig {
    pub fn dir(&self, state_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| state_dir.join("audit"))
    }

    pub fn key_files(&self, state_dir: &Path) -> KeyFiles {
        KeyFiles::new(self.key.clone().unwrap_or_else(|| state_dir.join("keys").join("audit.key")))
    }
}

/// When a call's records reach stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Before the call returns; concurrent calls share one fsync.
    #[default]
    Durable,
    /// Within `batch_delay` after the call returns.
    Batched,
    /// When the operating system gets to it (and when the log is closed).
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log: {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("audit log {} is in use by another moat process (one writer at a time)", .0.display())]
    Busy(PathBuf),
    #[error("audit log {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("audit key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("audit log unwritable, no call can be recorded: {0}")]
    Broken(String),
}

impl AuditError {
    fn io(path: &Path, source: std::io::Error) -> AuditError {
        AuditError::Io { path: path.to_owned(), source }
    }
}

/// The file names inside the audit directory.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("log.jsonl")
}
pub fn checkpoints_path(dir: &Path) -> PathBuf {
    dir.join("checkpoints")
}
pub fn blobs_dir(dir: &Path) -> PathBuf {
    dir.join("blobs")
}
fn lock_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

/// Whether a writer holds the audit directory now.
pub fn in_use(dir: &Path) -> bool {
    match File::open(lock_path(dir)) {
        Ok(file) => match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        },
        Err(_) => false,
    }
}

struct Inner {
    dir: PathBuf,
    writer: Writer,
    blobs: Blobs,
    key: SigningKey,
    durability: Durability,
    checkpoint_every: u64,
    /// The seq of the last checkpoint; a new one is due `checkpoint_every` records later.
    checkpointed: AtomicU64,
    /// Serializes checkpoints, so their lines are in order.
    checkpointing: Mutex<()>,
    stop: (Mutex<bool>, Condvar),
}

/// The writing side of the audit log. Cheap to share (`Arc`); closing it (drop) syncs and
/// signs a final checkpoint.
pub struct Audit {
    inner: Arc<Inner>,
    batcher: Option<JoinHandle<()>>,
    _lock: File,
}

impl Audit {
    /// Opens the audit directory for writing: takes the writer's lock, recovers a torn tail
    /// of the log and of the checkpoints (recording what was dropped), loads the signing key (creating it for a new log), and
    /// signs a checkpoint of the head.
    pub fn open(dir: &Path, keys: &KeyFiles, config: &AuditConfig) -> Result<Audit, AuditError> {
        fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(dir))
            .map_err(|e| AuditError::io(&lock_path(dir), e))?;
        lock_file.try_lock().map_err(|_| AuditError::Busy(dir.to_owned()))?;
        let log = log_path(dir);
        let fresh = fs::metadata(&log).map(|m| m.len() == 0).unwrap_or(true);
        let key = match keys.secret.exists() {
            true => keys.load()?,
            false if fresh => {
                keys.create()?;
                keys.load()?
            }
            false => {
                return Err(AuditError::Key {
                    path: keys.secret.clone(),
                    reason: format!(
                        "the key is missing, but the log {} has records signed with it: \
                         restore the key, or move the log aside to start a new one",
                        log.display()
                    ),
                })
            }
        };
        let opened = Writer::open(&log)?;
        let checkpoints = checkpoints_path(dir);
        let repaired =
            checkpoint::repair(&checkpoints).map_err(|e| AuditError::io(&checkpoints, e))?;
        let head = opened.writer.head().seq;
        let inner = Arc::new(Inner {
            dir: dir.to_owned(),
            writer: opened.writer,
            blobs: Blobs::new(blobs_dir(dir)),
            key,
            durability: config.durability,
            checkpoint_every: config.checkpoint_every.max(1),
            checkpointed: AtomicU64::new(head),
            checkpointing: Mutex::new(()),
            stop: (Mutex::new(false), Condvar::new()),
        });
        let mut events = Vec::new();
        if let Some((dropped_bytes, saved)) = opened.torn {
            let saved_to = saved.file_name().map(|n| n.to_string_lossy().into_owned());
            tracing::warn!(dropped_bytes, "audit log: a torn record was cut off after a crash");
            events.push(Event::Recovery {
                after_seq: head,
                dropped_bytes,
                saved_to: saved_to.unwrap_or_default(),
            });
        }
        if let Some(cut) = repaired {
            let file = checkpoints.file_name().map(|n| n.to_string_lossy().into_owned());
            let saved_to = cut.saved.file_name().map(|n| n.to_string_lossy().into_owned());
            tracing::warn!(
                dropped_bytes = cut.bytes,
                "audit checkpoints {}: cut its last line after a crash, as {}",
                checkpoints.display(),
                cut.why.describe()
            );
            events.push(Event::Repaired {
                file: file.unwrap_or_default(),
                dropped_bytes: cut.bytes,
                saved_to: saved_to.unwrap_or_default(),
                reason: cut.why.describe().to_owned(),
            });
        }
        events.push(Event::Opened {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        inner.writer.write(events)?;
        inner.checkpoint()?;
        let batcher = match config.durability {
            Durability::Batched => {
                let inner = inner.clone();
                let delay = config.batch_delay.duration();
                Some(std::thread::spawn(move || inner.batch(delay)))
            }
            _ => None,
        };
        Ok(Audit { inner, batcher, _lock: lock_file })
    }

    /// Appends `events` as consecutive records and returns the last one's `seq`, after
    /// syncing them if the durability mode says so.
    pub fn record(&self, events: Vec<Event>) -> Result<u64, AuditError> {
        let seq = self.write(events)?;
        if self.inner.durability == Durability::Durable {
            self.inner.sync_to(seq)?;
        }
        if seq >= self.inner.checkpointed.load(Ordering::Acquire) + self.inner.checkpoint_every {
            self.inner.checkpoint()?;
        }
        Ok(seq)
    }

    /// Appends `events` without waiting for them to be synced (they will be, with the next
    /// sync). Returns the last one's `seq`.
    pub fn write(&self, events: Vec<Event>) -> Result<u64, AuditError> {
        self.inner.writer.write(events)
    }

    /// Stores `bytes` in the blob store; returns their hash.
    pub fn blob(&self, bytes: &[u8]) -> Result<String, AuditError> {
        self.inner.blobs.put(bytes).map_err(|e| AuditError::io(&blobs_dir(&self.inner.dir), e))
    }

    /// `text` inline if short, else as a blob.
    pub fn text(&self, text: &str) -> Result<Text, AuditError> {
        if text.len() <= INLINE_MAX {
            return Ok(Text::Inline(text.to_owned()));
        }
        Ok(Text::Blob { blob: self.blob(text.as_bytes())?, bytes: text.len() as u64 })
    }

    /// Syncs the log and signs a checkpoint of its head now.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        self.inner.checkpoint()
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The public key that signs this log's checkpoints.
    pub fn public_key(&self) -> String {
        hex::encode(self.inner.key.verifying_key().as_bytes())
    }
}

impl Inner {
    fn sync_to(&self, seq: u64) -> Result<(), AuditError> {
        self.writer.sync_to(seq, &|| self.blobs.sync())
    }

    fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let _serial = self.checkpointing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let head = self.writer.head();
        if head.seq == 0 {
            return Ok(None);
        }
        self.sync_to(head.seq)?;
        let checkpoint = Checkpoint::sign(&self.key, head.seq, &head.hash);
        let path = checkpoints_path(&self.dir);
        checkpoint::append(&path, &checkpoint).map_err(|e| AuditError::io(&path, e))?;
        self.checkpointed.fetch_max(head.seq, Ordering::AcqRel);
        Ok(Some(checkpoint))
    }

    /// The batched mode's background sync: every `delay`, if anything was written.
    fn batch(&self, delay: std::time::Duration) {
        let (stop, wake) = &self.stop;
        let mut stopped = stop.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*stopped {
            stopped = wake
                .wait_timeout(stopped, delay)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            if let Err(e) = self.sync_to(self.writer.written()) {
                tracing::error!("audit log: {e}");
            }
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        *self.inner.stop.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.inner.stop.1.notify_all();
        if let Some(batcher) = self.batcher.take() {
            let _ = batcher.join();
        }
        if let Err(e) = self.inner.checkpoint() {
            tracing::error!("audit log not closed cleanly: {e}");
        }
    }
}
