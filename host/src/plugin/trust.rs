//! Which component files may be loaded. Locked (`[plugins] locked = true`, or `--locked`),
//! a tool or policy loads only if the lockfile pins its exact bytes (blake3, by path), or if
//! a publisher key listed in `[plugins] trusted_keys` signed it (`FILE.wasm.sig`) and the
//! lockfile does not pin its path: a pin always wins over a signature. A pinned file that is
//! missing stops a locked moat at start. Unlocked, everything that is a valid component loads.
//!
//! The check runs on the very bytes that are then compiled, so a file swapped between the
//! check and the compile cannot slip through.

use crate::plugin::PluginDirs;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The lockfile format `moat lock` writes.
pub const LOCK_VERSION: u32 = 1;

/// What a publisher signs: this, then the 32 bytes of the component's blake3.
const SIGNATURE_DOMAIN: &[u8] = b"moat plugin v1\0";

/// Bytes of a signature file read, at most.
const MAX_SIGNATURE: u64 = 1024;

/// The first word of a signature file.
const SIGNATURE_SCHEME: &str = "ed25519";

/// `moat.lock`: every plugin moat may load when locked, by path and blake3.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub version: u32,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<Pin>,
}

/// One pinned component file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Relative to the lockfile's directory when under it, else absolute.
    pub path: PathBuf,
    /// blake3 of the file's bytes, 64 hex digits.
    pub blake3: String,
}

/// A lockfile or trusted key that cannot be used: moat does not start (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "{}: no lockfile, and plugins are locked ([plugins] locked or --locked); \
         `moat lock` writes one pinning the plugins as they are",
        path.display()
    )]
    NoLockfile { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    Lockfile { path: PathBuf, reason: String },
    #[error("[plugins] trusted_keys: `{key}`: {reason}")]
    Key { key: String, reason: String },
    #[error(
        "{}: pinned by {}, but not there: a locked moat loads exactly what it pins (restore \
         the file, or run `moat lock` again to pin the plugins as they are)",
        path.display(),
        lockfile.display()
    )]
    PinnedMissing { path: PathBuf, lockfile: PathBuf },
}

impl Lockfile {
    /// Reads the lockfile at `path`.
    pub fn read(path: &Path) -> Result<Lockfile, TrustError> {
        let fail = |reason: String| TrustError::Lockfile { path: path.to_owned(), reason };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrustError::NoLockfile { path: path.to_owned() })
            }
            Err(e) => return Err(fail(format!("cannot read: {e}"))),
        };
        let lock: Lockfile = toml::from_str(&text).map_err(|e| fail(crate::error::one_line(&e)))?;
        if lock.version != LOCK_VERSION {
            return Err(fail(format!(
                "lockfile version {} (this moat reads version {LOCK_VERSION})",
                lock.version
            )));
        }
        for pin in &lock.plugins {
            if parse_hash(&pin.blake3).is_none() {
                let path = pin.path.display();
                return Err(fail(format!(
                    "`{path}`: blake3 `{}` is not 64 hex digits",
                    pin.blake3
                )));
            }
        }
        Ok(lock)
    }

    /// Pins `files` (path and bytes' hash) in a lockfile to be written at `at`.
    pub fn pinning(at: &Path, files: &[(PathBuf, blake3::Hash)]) -> Lockfile {
        let base = directory_of(at);
        let mut plugins: Vec<Pin> = files
            .iter()
            .map(|(path, hash)| {
                let path = absolute(path);
                let shown = path.strip_prefix(&base).map(Path::to_owned).unwrap_or(path);
                Pin { path: shown, blake3: hash.to_hex().to_string() }
            })
            .collect();
        plugins.sort();
        plugins.dedup();
        Lockfile { version: LOCK_VERSION, plugins }
    }

    /// The file's text: a comment saying what it is, then the pins.
    pub fn to_text(&self) -> String {
        let mut text = String::from(
            "# moat.lock: the plugins moat loads when locked ([plugins] locked = true, or\n\
             # --locked), each pinned by the blake3 of its bytes. Written by `moat lock`.\n\n",
        );
        let _ = writeln!(text, "version = {}", self.version);
        for pin in &self.plugins {
            let path = toml::Value::String(pin.path.to_string_lossy().into_owned());
            let _ = write!(text, "\n[[plugin]]\npath = {path}\nblake3 = \"{}\"\n", pin.blake3);
        }
        text
    }
}

/// The check loading makes before compiling a component.
#[derive(Debug, Default)]
pub struct Trust {
    /// `None` when not locked: everything loads.
    pins: Option<HashMap<PathBuf, blake3::Hash>>,
    lockfile: PathBuf,
    keys: Vec<VerifyingKey>,
}

impl Trust {
    /// Everything loads.
    pub fn unlocked() -> Trust {
        Trust::default()
    }

    /// The trust `plugins` configures: unlocked, or the pins of its lockfile and its trusted
    /// keys. A missing or malformed lockfile, or a malformed key, is an error.
    pub fn from_config(plugins: &PluginDirs) -> Result<Trust, TrustError> {
        let keys = plugins
            .trusted_keys
            .iter()
            .map(|key| {
                crate::audit::checkpoint::parse_public(key)
                    .map_err(|reason| TrustError::Key { key: key.clone(), reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !plugins.locked {
            return Ok(Trust { keys, ..Trust::default() });
        }
        let lock = Lockfile::read(&plugins.lockfile)?;
        let base = directory_of(&plugins.lockfile);
        let pins: HashMap<PathBuf, blake3::Hash> = lock
            .plugins
            .iter()
            .filter_map(|pin| Some((absolute(&base.join(&pin.path)), parse_hash(&pin.blake3)?)))
            .collect();
        let mut paths: Vec<&PathBuf> = pins.keys().collect();
        paths.sort();
        if let Some(missing) = paths.into_iter().find(|path| !path.exists()) {
            let lockfile = plugins.lockfile.clone();
            return Err(TrustError::PinnedMissing { path: missing.clone(), lockfile });
        }
        Ok(Trust { pins: Some(pins), lockfile: plugins.lockfile.clone(), keys })
    }

    pub fn locked(&self) -> bool {
        self.pins.is_some()
    }

    /// Whether the component at `path`, whose bytes are `bytes`, may be loaded; if not, why.
    pub fn check(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        let Some(pins) = &self.pins else { return Ok(()) };
        let hash = blake3::hash(bytes);
        let pinned = pins.get(&absolute(path));
        if pinned == Some(&hash) {
            return Ok(());
        }
        let lockfile = self.lockfile.display();
        // A pin names the bytes for its path: no signature overrides it.
        if let Some(pinned) = pinned {
            return Err(format!(
                "it changed since it was locked ({lockfile} pins blake3 {}, the file is {}); \
                 a pin wins over any signature",
                short(pinned),
                short(&hash)
            ));
        }
        let unpinned = format!("{lockfile} does not pin it");
        match self.signature(path, &hash) {
            Signed::ByTrusted => Ok(()),
            Signed::No => Err(format!(
                "{unpinned}, and it is not signed (`moat lock` pins the plugins as they are)"
            )),
            Signed::Badly(why) => Err(format!("{unpinned}, and {why}")),
        }
    }

    fn signature(&self, path: &Path, hash: &blake3::Hash) -> Signed {
        let sig_path = signature_path(path);
        // A signature line is under 200 bytes; no more than this is ever read.
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&sig_path)
            .and_then(|file| file.take(MAX_SIGNATURE + 1).read_to_end(&mut bytes));
        let text = match read {
            Ok(_) if bytes.len() as u64 <= MAX_SIGNATURE => {
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Ok(_) => return Signed::Badly("its signature file is too large to be one".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Signed::No,
            Err(e) => return Signed::Badly(format!("its signature cannot be read: {e}")),
        };
        let Some((key, signature)) = parse_signature(&text) else {
            return Signed::Badly(format!(
                "{} is not a signature (`{SIGNATURE_SCHEME} PUBLIC_KEY SIGNATURE`, hex)",
                sig_path.display()
            ));
        };
        let key_hex = hex::encode(key.as_bytes());
        if !self.keys.contains(&key) {
            return Signed::Badly(format!(
                "it is signed by {key_hex}, which [plugins] trusted_keys does not list"
            ));
        }
        match key.verify(&message(hash), &signature) {
            Ok(()) => Signed::ByTrusted,
            Err(_) => Signed::Badly(format!(
                "its signature by {key_hex} does not verify: the file is not what was signed"
            )),
        }
    }
}

enum Signed {
    No,
    ByTrusted,
    Badly(String),
}

/// The text of the signature file of `bytes` by `key`: `ed25519 PUBLIC_KEY SIGNATURE`.
pub fn sign(key: &SigningKey, bytes: &[u8]) -> String {
    let signature = key.sign(&message(&blake3::hash(bytes)));
    format!(
        "{SIGNATURE_SCHEME} {} {}\n",
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(signature.to_bytes())
    )
}

/// Where the signature of the component at `path` lives: `PATH.sig`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

fn message(hash: &blake3::Hash) -> Vec<u8> {
    [SIGNATURE_DOMAIN, hash.as_bytes()].concat()
}

fn parse_signature(text: &str) -> Option<(VerifyingKey, Signature)> {
    let mut words = text.split_whitespace();
    if words.next()? != SIGNATURE_SCHEME {
        return None;
    }
    let key = crate::audit::checkpoint::parse_public(words.next()?).ok()?;
    let signature: [u8; 64] = hex::decode(words.next()?).ok()?.try_into().ok()?;
    words.next().is_none().then(|| (key, Signature::from_bytes(&signature)))
}

fn parse_hash(text: &str) -> Option<blake3::Hash> {
    blake3::Hash::from_hex(text).ok()
}

fn short(hash: &blake3::Hash) -> String {
    hash.to_hex()[..16].to_owned()
}

/// The absolute directory `file` is in.
fn directory_of(file: &Path) -> PathBuf {
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
    absolute(parent.unwrap_or(Path::new(".")))
}

/// `path` made absolute against the working directory, without resolving links.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(dir: &Path, files: &[(PathBuf, blake3::Hash)], keys: &[&VerifyingKey]) -> Trust {
        let lockfile = dir.join("moat.lock");
        std::fs::write(&lockfile, Lockfile::pinning(&lockfile, files).to_text()).unwrap();
        let plugins = PluginDirs {
            locked: true,
            lockfile,
            trusted_keys: keys.iter().map(|k| hex::encode(k.as_bytes())).collect(),
            ..PluginDirs::default()
        };
        Trust::from_config(&plugins).unwrap()
    }

    #[test]
    fn a_pinned_file_loads_and_a_changed_or_unknown_one_is_refused_saying_which() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tools/echo.wasm");
        std::fs::create_dir(dir.path().join("tools")).unwrap();
        std::fs::write(&tool, b"echo v1").unwrap();
        let trust = locked(dir.path(), &[(tool.clone(), blake3::hash(b"echo v1"))], &[]);
        assert_eq!(trust.check(&tool, b"echo v1"), Ok(()));
        let changed = trust.check(&tool, b"echo v2").unwrap_err();
        assert!(changed.starts_with("it changed since it was locked"), "{changed}");
        assert!(changed.contains("a pin wins over any signature"), "{changed}");
        let unknown = trust.check(&dir.path().join("tools/other.wasm"), b"echo v1").unwrap_err();
        assert!(unknown.contains("moat.lock does not pin it"), "{unknown}");
    }

    #[test]
    fn pins_are_written_relative_to_the_lockfile_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("moat.lock");
        let hash = blake3::hash(b"x");
        let lock = Lockfile::pinning(&at, &[(dir.path().join("tools/x.wasm"), hash)]);
        assert_eq!(lock.plugins[0].path, PathBuf::from("tools/x.wasm"));
        std::fs::write(&at, lock.to_text()).unwrap();
        assert_eq!(Lockfile::read(&at).unwrap(), lock);
    }

    #[test]
    fn a_malformed_lockfile_is_an_error_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("moat.lock");
        let cases = [
            ("version = 1\n[[plugin]]\npath = \"a.wasm\"\nblake3 = \"zz\"\n", "not 64 hex digits"),
            ("version = 2\n", "lockfile version 2"),
            ("version = 1\nsurprise = true\n", "unknown field `surprise`"),
            ("not toml at all [", ""),
        ];
        for (text, expected) in cases {
            std::fs::write(&at, text).unwrap();
            let error = Lockfile::read(&at).unwrap_err().to_string();
            assert!(error.starts_with(&at.display().to_string()), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
        std::fs::remove_file(&at).unwrap();
        let missing = Lockfile::read(&at).unwrap_err().to_string();
        assert!(missing.contains("`moat lock` writes one"), "{missing}");
    }

    #[test]
    fn a_plugin_signed_by_a_trusted_key_loads_without_a_pin_and_any_other_signature_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = SigningKey::from_bytes(&[7; 32]);
        let stranger = SigningKey::from_bytes(&[9; 32]);
        let tool = dir.path().join("signed.wasm");
        let trust = locked(dir.path(), &[], &[&publisher.verifying_key()]);
        let bytes = b"a component".as_slice();

        std::fs::write(signature_path(&tool), sign(&publisher, bytes)).unwrap();
        assert_eq!(trust.check(&tool, bytes), Ok(()));
        let tampered = trust.check(&tool, b"a component, changed").unwrap_err();
        assert!(tampered.contains("does not verify"), "{tampered}");

        std::fs::write(signature_path(&tool), sign(&stranger, bytes)).unwrap();
        let untrusted = trust.check(&tool, bytes).unwrap_err();
        assert!(untrusted.contains("which [plugins] trusted_keys does not list"), "{untrusted}");

        std::fs::write(signature_path(&tool), "ed25519 nonsense").unwrap();
        let garbage = trust.check(&tool, bytes).unwrap_err();
        assert!(garbage.contains("is not a signature"), "{garbage}");
    }

    #[test]
    fn unlocked_everything_loads_and_a_malformed_trusted_key_is_an_error() {
        assert_eq!(Trust::unlocked().check(Path::new("any.wasm"), b"anything"), Ok(()));
        let plugins = PluginDirs { trusted_keys: vec!["abc".into()], ..PluginDirs::default() };
        let error = Trust::from_config(&plugins).unwrap_err().to_string();
        assert!(error.contains("`abc`: a public key is 64 hex digits"), "{error}");
    }
}
