//! The on-disk cache of compiled components: a 20 MB Python or JavaScript component compiles
//! in seconds, and loads from here in milliseconds. An entry is keyed by blake3 of the
//! component's bytes and of the engine's configuration; its contents carry their own blake3,
//! checked before wasmtime sees them. A stale, corrupt or unreadable entry is compiled again
//! and replaced, never trusted; a cache directory others could write to is not used at all.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Whether a component file may be compiled at all, given its path and bytes; the reason
/// when not. The host's is its trust policy (`plugin/trust.rs`: pinned or signed).
pub(crate) type Admit = Arc<dyn Fn(&Path, &[u8]) -> Result<(), String> + Send + Sync>;

/// The engine and, when it is on, the cache: what turns component bytes into code; and what
/// a component file must be to get that far (its size, and what `admit` asks).
#[derive(Clone)]
pub(crate) struct Compiler {
    pub engine: Engine,
    cache: Option<Arc<CompileCache>>,
    pub admit: Admit,
    /// Bytes a component file may have.
    pub max_component_size: u64,
}

impl Compiler {
    pub fn new(engine: Engine, cache: Option<CompileCache>, admit: Admit, max: u64) -> Compiler {
        Compiler { engine, cache: cache.map(Arc::new), admit, max_component_size: max }
    }

    /// Compiles `bytes` (or loads them from the cache), logging where they came from and
    /// how long it took; `name` says which component.
    pub fn compile(&self, bytes: &[u8], name: &Path) -> wasmtime::Result<Component> {
        let started = Instant::now();
        let (component, source) = match &self.cache {
            Some(cache) => cache.component(&self.engine, bytes)?,
            None => (Component::new(&self.engine, bytes)?, Source::Compiled),
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!("{}: {source:?} in {ms:.1} ms ({} bytes)", name.display(), bytes.len());
        Ok(component)
    }
}

/// The first bytes of an entry, before the blake3 of what follows.
const MAGIC: &[u8; 16] = b"moat-compiled-1\n";

/// A directory of compiled components.
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

/// A temporary file of a write that never finished (the process died) is removed after this.
const ABANDONED: Duration = Duration::from_secs(3600);

/// Where a component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Compiled now (no entry, or none usable); an entry was written for next time.
    Compiled,
    /// Loaded from its entry.
    Cached,
    /// The entry was corrupt or stale: compiled again, and the entry replaced.
    Replaced,
}

/// Feeds `Hash` into blake3 (the engine's configuration offers only `impl Hash`).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let bytes = self.0.finalize();
        u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or_default())
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// A cache in `dir`, created owner-only if missing, holding at most `max_size` bytes
    /// (the entries used least recently are removed first). Refused (so nothing is cached)
    /// when it cannot be made, or when another user could write to it: loading an entry runs
    /// its machine code, so only this user may be able to put one there.
    pub fn open(dir: &Path, max_size: u64) -> Result<CompileCache, String> {
        let shown = dir.display();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| format!("cannot create the compile cache {shown}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = fs::metadata(dir)
                .map_err(|e| format!("cannot read the compile cache {shown}: {e}"))?;
            // Who this process is, as the owner of a file it makes there.
            let probe = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| format!("cannot write to the compile cache {shown}: {e}"))?;
            let me = probe.as_file().metadata().map(|m| m.uid()).ok();
            if Some(meta.uid()) != me || meta.mode() & 0o022 != 0 {
                return Err(format!(
                    "the compile cache {shown} is not used: it must belong to this user and be \
                     writable by nobody else (chmod 700)"
                ));
            }
        }
        let cache = CompileCache { dir: dir.to_owned() };
        cache.prune(max_size);
        Ok(cache)
    }

    /// Removes the entries used least recently (an entry's modification time is its last
    /// use) until the rest fit in `max_size`, and temporary files of writes that never
    /// finished. What cannot be removed is logged and left.
    fn prune(&self, max_size: u64) {
        let Ok(listing) = fs::read_dir(&self.dir) else { return };
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for file in listing.flatten() {
            let (path, meta) = (file.path(), file.metadata());
            let Ok(meta) = meta else { continue };
            let modified = meta.modified().unwrap_or(now);
            if path.extension().is_some_and(|ext| ext == "cwasm") {
                entries.push((modified, meta.len(), path));
            } else if file.file_name().to_string_lossy().starts_with(".tmp")
                && now.duration_since(modified).unwrap_or_default() > ABANDONED
            {
                remove(&path);
            }
        }
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        entries.sort();
        for (_, size, path) in entries {
            if total <= max_size {
                break;
            }
            remove(&path);
            total = total.saturating_sub(size);
        }
    }

    /// The compiled form of the component `bytes`: from its entry if that is intact and made
    /// by this engine's configuration, else compiled now and written for next time.
    pub fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> Result<(Component, Source), wasmtime::Error> {
        let path = self.entry(engine, bytes);
        let mut source = Source::Compiled;
        if let Ok(entry) = fs::read(&path) {
            match payload(&entry) {
                // SAFETY: the payload is exactly what `Component::serialize` wrote into this
                // owner-only directory (its blake3 matches), for this engine configuration (the
                // key includes it); wasmtime checks its own header and version again.
                Some(compiled) => match unsafe { Component::deserialize(engine, compiled) } {
                    Ok(component) => {
                        touch(&path);
                        return Ok((component, Source::Cached));
                    }
                    Err(e) => tracing::warn!("compile cache: {} unusable ({e})", path.display()),
                },
                None => tracing::warn!("compile cache: {} is corrupt", path.display()),
            }
            source = Source::Replaced;
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.write(&path, &component) {
            tracing::warn!("compile cache: cannot write {}: {e}", path.display());
        }
        Ok((component, source))
    }

    /// The entry's path: blake3 of the engine configuration and of the component.
    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut hasher = Blake3Hasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.0.update(blake3::hash(bytes).as_bytes());
        self.dir.join(format!("{}.cwasm", hasher.0.finalize().to_hex()))
    }

    /// Writes the entry whole: to a temporary file, synced, then renamed over the old one.
    fn write(&self, path: &Path, component: &Component) -> Result<(), String> {
        let compiled = component.serialize().map_err(|e| e.to_string())?;
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| e.to_string())?;
        temp.write_all(MAGIC).map_err(|e| e.to_string())?;
        temp.write_all(blake3::hash(&compiled).as_bytes()).map_err(|e| e.to_string())?;
        temp.write_all(&compiled).map_err(|e| e.to_string())?;
        temp.as_file().sync_all().map_err(|e| e.to_string())?;
        temp.persist(path).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Marks an entry as just used, for [`CompileCache::prune`].
fn touch(path: &Path) {
    let touched =
        fs::File::options().write(true).open(path).and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!("compile cache: cannot mark {} as used: {e}", path.display());
    }
}

fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => tracing::info!("compile cache: removed {}", path.display()),
        Err(e) => tracing::warn!("compile cache: cannot remove {}: {e}", path.display()),
    }
}

/// The compiled code in an entry, if its header is right and its blake3 matches.
fn payload(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < 32 {
        return None;
    }
    let (hash, compiled) = rest.split_at(32);
    (blake3::hash(compiled).as_bytes() == hash).then_some(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        crate::runtime::engine::new_engine(&Default::default(), 20_000).expect("the engine starts")
    }

    /// The smallest component there is.
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn a_second_load_comes_from_the_cache_and_a_corrupt_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&dir.path().join("compiled"), u64::MAX).unwrap();
        let engine = engine();
        assert_eq!(cache.component(&engine, EMPTY).unwrap().1, Source::Compiled);
        assert_eq!(cache.component(&engine, EMPTY).unwrap().1, Source::Cached);
        let entry = cache.entry(&engine, EMPTY);
        let mut bytes = fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&entry, &bytes).unwrap();
        assert_eq!(cache.component(&engine, EMPTY).unwrap().1, Source::Replaced);
        assert_eq!(cache.component(&engine, EMPTY).unwrap().1, Source::Cached);
        fs::write(&entry, b"garbage").unwrap();
        assert_eq!(cache.component(&engine, EMPTY).unwrap().1, Source::Replaced);
    }

    #[test]
    fn entries_are_checked_before_wasmtime_sees_them() {
        assert!(payload(b"").is_none());
        assert!(payload(b"moat-compiled-1\nshort").is_none());
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(blake3::hash(b"code").as_bytes());
        entry.extend_from_slice(b"code");
        assert_eq!(payload(&entry), Some(&b"code"[..]));
        entry.push(b'!');
        assert!(payload(&entry).is_none());
    }

    #[test]
    fn over_its_size_the_cache_drops_the_entries_used_least_recently() {
        let dir = tempfile::tempdir().unwrap();
        let compiled = dir.path().join("compiled");
        let cache = CompileCache::open(&compiled, u64::MAX).unwrap();
        let engine = engine();
        let (a, b) = (EMPTY.to_vec(), [EMPTY, b"\0\x05\x04name"].concat());
        let c = [EMPTY, b"\0\x06\x05other"].concat();
        for bytes in [&a, &b, &c] {
            assert_eq!(cache.component(&engine, bytes).unwrap().1, Source::Compiled);
        }
        let [a_entry, b_entry, c_entry] = [&a, &b, &c].map(|bytes| cache.entry(&engine, bytes));
        let age = |path: &Path, seconds| {
            let then = SystemTime::now() - Duration::from_secs(seconds);
            fs::File::options().write(true).open(path).unwrap().set_modified(then).unwrap();
        };
        age(&a_entry, 300);
        age(&b_entry, 200);
        age(&c_entry, 100);
        // `a` is used now: `b` becomes the least recently used.
        assert_eq!(cache.component(&engine, &a).unwrap().1, Source::Cached);
        let abandoned = compiled.join(".tmpXYZ");
        fs::write(&abandoned, b"half").unwrap();
        age(&abandoned, 7200);
        let size = fs::metadata(&a_entry).unwrap().len();
        CompileCache::open(&compiled, size * 2).unwrap();
        assert!(!b_entry.exists(), "the least recently used entry is removed");
        assert!(a_entry.exists() && c_entry.exists(), "two fit");
        assert!(!abandoned.exists(), "a write that never finished is cleaned up");
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let refused = CompileCache::open(&shared, u64::MAX).unwrap_err();
        assert!(refused.contains("writable by nobody else"), "{refused}");
    }
}
