//! Signed checkpoints: ed25519 signatures over (sequence number, time, head hash), one JSON
//! line each in `checkpoints`, so that verification detects a log cut short or rewritten
//! whole, not only edited. Every byte of a line counts: a line must be exactly what moat
//! writes (lowercase hex, no extra whitespace), so no edit can leave the meaning as it was. The signing key is created once (`moat init`, or the first audited run) with
//! owner-only permissions.

use super::AuditError;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a checkpoint signs, so a signature can never be mistaken for another message. v2
/// signs the time as well; v1 (seq and head only) is still accepted for checkpoints written
/// before, whose time is therefore not authenticated.
const DOMAIN: &[u8] = b"moat audit checkpoint v2\0";
const DOMAIN_V1: &[u8] = b"moat audit checkpoint v1\0";

/// One line of `checkpoints`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub seq: u64,
    /// The hash of record `seq`.
    pub head: String,
    pub time_us: u64,
    /// The public key (hex) that signed it.
    pub key: String,
    /// Hex.
    pub signature: String,
}

fn message(seq: u64, time_us: u64, head: &str) -> Vec<u8> {
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(&seq.to_le_bytes());
    message.extend_from_slice(&time_us.to_le_bytes());
    message.extend_from_slice(head.as_bytes());
    message
}

fn message_v1(seq: u64, head: &str) -> Vec<u8> {
    let mut message = DOMAIN_V1.to_vec();
    message.extend_from_slice(&seq.to_le_bytes());
    message.extend_from_slice(head.as_bytes());
    message
}

impl Checkpoint {
    pub fn sign(key: &SigningKey, seq: u64, head: &str) -> Checkpoint {
        let time_us = crate::clock::now_us();
        let signature = key.sign(&message(seq, time_us, head));
        Checkpoint {
            seq,
            head: head.to_owned(),
            time_us,
            key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks the signature with `trusted`; the error says why it does not hold.
    pub fn check(&self, trusted: &VerifyingKey) -> Result<(), String> {
        if self.key != hex::encode(trusted.as_bytes()) {
            return Err(format!(
                "checkpoint of record {} was signed by key {}, not by the trusted key {}",
                self.seq,
                super::short(&self.key),
                super::short(&hex::encode(trusted.as_bytes()))
            ));
        }
        let bytes: [u8; 64] =
            hex::decode(&self.signature).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                format!("checkpoint of record {} has a malformed signature", self.seq)
            })?;
        if hex::encode(bytes) != self.signature {
            return Err(format!(
                "checkpoint of record {} has its signature spelt otherwise than moat writes it \
                 (lowercase hex): it was edited",
                self.seq
            ));
        }
        let signature = Signature::from_bytes(&bytes);
        let v2 = trusted.verify(&message(self.seq, self.time_us, &self.head), &signature);
        v2.or_else(|_| trusted.verify(&message_v1(self.seq, &self.head), &signature))
            .map_err(|_| format!("checkpoint of record {} has an invalid signature", self.seq))
    }
}

/// Reads every checkpoint; a malformed line, or one that is not byte for byte what moat
/// writes (another spelling of the same values is an edit too), is an error naming it.
pub fn read_all(path: &Path) -> Result<Vec<Checkpoint>, String> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|e| format!("{} is not UTF-8 text: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{} cannot be read: {e}", path.display())),
    };
    let mut checkpoints = Vec::new();
    let mut rest = text.as_str();
    let mut n = 0;
    while !rest.is_empty() {
        n += 1;
        let Some((line, after)) = rest.split_once('\n') else {
            return Err(format!(
                "{} line {n} does not end in a newline: it was cut short or edited",
                path.display()
            ));
        };
        rest = after;
        let checkpoint: Checkpoint = serde_json::from_str(line)
            .map_err(|e| format!("{} line {n} is not a valid checkpoint: {e}", path.display()))?;
        if serde_json::to_string(&checkpoint).ok().as_deref() != Some(line) {
            return Err(format!(
                "{} line {n} is not written as moat writes a checkpoint: it was edited",
                path.display()
            ));
        }
        checkpoints.push(checkpoint);
    }
    Ok(checkpoints)
}

/// Cuts a torn last line off the checkpoints file at `path` (one without its newline, or one
/// that is not a checkpoint), saving it beside the file as `checkpoints.torn-UNIX_MS`. Only
/// the writer of the log calls this, holding its lock. A missing file needs no repair.
pub(crate) fn repair(path: &Path) -> std::io::Result<Option<super::torn::Cut>> {
    let mut file = match fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let saved_as = |_| path.with_file_name(format!("{name}.torn-{}", super::torn::now_ms()));
    let valid = |line: &[u8]| serde_json::from_slice::<Checkpoint>(line).is_ok();
    Ok(super::torn::repair(&mut file, saved_as, valid)?.cut)
}

/// Appends `checkpoint` and makes it durable.
pub fn append(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let mut line = serde_json::to_string(checkpoint).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

/// The key pair's files: the secret key (owner-only) and the public key beside it.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    pub secret: PathBuf,
    pub public: PathBuf,
}

impl KeyFiles {
    pub fn new(secret: PathBuf) -> KeyFiles {
        let public = secret.with_extension("pub");
        KeyFiles { secret, public }
    }

    /// Creates a new key pair; refuses to replace an existing one.
    pub fn create(&self) -> Result<VerifyingKey, AuditError> {
        let key_error = |reason: String| AuditError::Key { path: self.secret.clone(), reason };
        if self.secret.exists() {
            return Err(key_error("a key already exists; moat never replaces one".into()));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| key_error(format!("no randomness: {e}")))?;
        let key = SigningKey::from_bytes(&seed);
        if let Some(parent) = self.secret.parent() {
            fs::create_dir_all(parent).map_err(|e| key_error(e.to_string()))?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.secret).map_err(|e| key_error(e.to_string()))?;
        file.write_all(hex::encode(seed).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| key_error(e.to_string()))?;
        let public = hex::encode(key.verifying_key().as_bytes());
        fs::write(&self.public, format!("{public}\n"))
            .map_err(|e| AuditError::Key { path: self.public.clone(), reason: e.to_string() })?;
        Ok(key.verifying_key())
    }

    /// Loads the signing key; it must be readable by its owner only.
    pub fn load(&self) -> Result<SigningKey, AuditError> {
        let key_error = |reason: String| AuditError::Key { path: self.secret.clone(), reason };
        let meta = fs::metadata(&self.secret).map_err(|e| key_error(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(key_error(format!(
                    "its permissions are {mode:o}: others may read it; run `chmod 600` on it"
                )));
            }
        }
        let _ = meta;
        let text = fs::read_to_string(&self.secret).map_err(|e| key_error(e.to_string()))?;
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| key_error("not a hex ed25519 secret key (64 hex digits)".into()))?;
        Ok(SigningKey::from_bytes(&seed))
    }
}

/// Reads a public key: 64 hex digits, given directly or in a file.
pub fn parse_public(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "a public key is 64 hex digits".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an ed25519 public key: {e}"))
}
