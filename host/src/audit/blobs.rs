//! The content-addressed blob store: `blobs/AB/ABCDEF...` holds the bytes whose blake3 hex is
//! the file name. Written to a temporary name and renamed, so a blob is whole or absent.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub struct Blobs {
    dir: PathBuf,
    /// Blobs written since the last sync (their files and directories), for group commit.
    unsynced: Mutex<Vec<PathBuf>>,
}

impl Blobs {
    pub fn new(dir: PathBuf) -> Blobs {
        Blobs { dir, unsynced: Mutex::new(Vec::new()) }
    }

    /// Where the blob `hash` lives; `None` when `hash` is not a blake3 hex hash (so a hash
    /// read from a hostile log can never name a path outside the store).
    pub fn path(dir: &Path, hash: &str) -> Option<PathBuf> {
        let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| dir.join(&hash[..2]).join(hash))
    }

    /// Stores `bytes`, returns their hash. A blob already stored is not written again.
    pub fn put(&self, bytes: &[u8]) -> io::Result<String> {
        let hash = blake3::hash(bytes).to_hex().to_string();
        let Some(path) = Blobs::path(&self.dir, &hash) else {
            return Err(io::Error::other("blake3 produced an invalid hash"));
        };
        if path.exists() {
            return Ok(hash);
        }
        let parent = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent)?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temporary = parent.join(format!("{hash}.{}.{n}.tmp", std::process::id()));
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        drop(file);
        fs::rename(&temporary, &path)?;
        self.unsynced.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(path);
        Ok(hash)
    }

    /// Makes every blob written so far durable: the files, then their directories.
    pub fn sync(&self) -> io::Result<()> {
        let written = std::mem::take(
            &mut *self.unsynced.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let mut dirs: Vec<&Path> = Vec::new();
        for path in &written {
            fs::File::open(path)?.sync_all()?;
            if let Some(parent) = path.parent() {
                if !dirs.contains(&parent) {
                    dirs.push(parent);
                }
            }
        }
        if !dirs.is_empty() {
            dirs.push(&self.dir);
        }
        for dir in dirs {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Reads the blob `hash` and checks its content against the hash.
    pub fn get(dir: &Path, hash: &str) -> Result<Vec<u8>, String> {
        let path = Blobs::path(dir, hash).ok_or_else(|| format!("`{hash}` is not a blob hash"))?;
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("blob {} is missing", super::short(hash)),
            _ => format!("blob {} cannot be read: {e}", super::short(hash)),
        })?;
        if blake3::hash(&bytes).to_hex().as_str() != hash {
            return Err(format!(
                "blob {} does not match its hash: its content was changed",
                super::short(hash)
            ));
        }
        Ok(bytes)
    }
}
