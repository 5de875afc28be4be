//! How to undo one committed effect: captured by the capabilities while a call runs, kept in
//! the audit log (large parts as blobs), and applied newest first by `moat task rollback`.
//!
//! An [`Undo`] is generic over how its large parts are held: as bytes while the call runs
//! ([`Bytes`]), as blob hashes once in the audit log ([`BlobRef`]).

pub mod rollback;
mod simulate;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Large parts held in memory, as captured.
pub type Bytes = Vec<u8>;

/// Large parts stored in the audit log's blob store: the blake3 hash (hex) of the content.
pub type BlobRef = String;

/// How to undo one effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Undo<B = BlobRef> {
    /// A file was written or removed: put `before` back at `path` (remove `path` when it did
    /// not exist), provided it still holds what the effect left (`after`: blake3 hex of the
    /// content, `None` when the effect removed it).
    File { path: PathBuf, before: Option<B>, after: Option<String> },
    /// A file was moved from `from` to `to`: move it back, provided `from` is free. A file
    /// that the move replaced at `to` is a [`Undo::File`] of its own, undone after.
    Rename { from: PathBuf, to: PathBuf },
    /// Rows of one table of a SQLite database were changed. `rows` is a JSON array of
    /// [`RowChange`] (in the order they happened), with values in the order of `columns`.
    Rows { database: PathBuf, table: String, columns: Vec<String>, rows: B },
    /// A key of a tool's key-value namespace was set or deleted: put `before` back (delete
    /// the key when it had no value), provided it still holds `after` (blake3 hex).
    Key { store: PathBuf, namespace: String, key: String, before: Option<B>, after: Option<String> },
    /// The effect cannot be undone (an HTTP request that was sent), and why.
    Irreversible { reason: String },
    /// One effect in several parts, in the order they happened; undone last first. A rename
    /// that replaced a file is the replaced file's removal ([`Undo::File`] with `after:
    /// None`), then the move ([`Undo::Rename`]).
    Parts { parts: Vec<Undo<B>> },
    /// A change recorded before it happened (a `staged` record), whose call did not finish:
    /// it may or may not have happened. Each part of `change` is undone if what it left is
    /// there, and left alone if what was there before still is (anything else is a
    /// conflict). `scratch`, the staging file the change (or its undoing) writes through, is
    /// removed if it is there.
    Pending { scratch: Option<PathBuf>, change: Box<Undo<B>> },
}

/// One row changed by a statement (or a trigger it fired), with its images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    pub op: RowOp,
    /// The row's rowid before the change (`None` for an insert).
    pub rowid_before: Option<i64>,
    /// The row's rowid after the change (`None` for a delete).
    pub rowid_after: Option<i64>,
    /// The row's values before (`None` for an insert).
    pub before: Option<Vec<SqlValue>>,
    /// The row's values after (`None` for a delete).
    pub after: Option<Vec<SqlValue>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowOp {
    Insert,
    Update,
    Delete,
}

/// One SQLite value, exactly: reals keep every bit (infinities included), blobs are hex.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlValue {
    Null,
    Integer(i64),
    /// `f64::to_string`, which reads back to the same bits (and spells infinities).
    Real(String),
    Text(String),
    /// Hex.
    Blob(String),
}

impl Undo<Bytes> {
    /// The same undo with its large parts stored by `put` (which returns their reference,
    /// the blake3 hex of the content), in order.
    pub fn store<E>(
        self,
        mut put: impl FnMut(Vec<u8>) -> Result<BlobRef, E>,
    ) -> Result<Undo<BlobRef>, E> {
        self.store_with(&mut put)
    }

    fn store_with<E>(
        self,
        put: &mut dyn FnMut(Vec<u8>) -> Result<BlobRef, E>,
    ) -> Result<Undo<BlobRef>, E> {
        Ok(match self {
            Undo::File { path, before, after } => {
                Undo::File { path, before: before.map(&mut *put).transpose()?, after }
            }
            Undo::Rename { from, to } => Undo::Rename { from, to },
            Undo::Rows { database, table, columns, rows } => {
                Undo::Rows { database, table, columns, rows: put(rows)? }
            }
            Undo::Key { store, namespace, key, before, after } => Undo::Key {
                store,
                namespace,
                key,
                before: before.map(&mut *put).transpose()?,
                after,
            },
            Undo::Irreversible { reason } => Undo::Irreversible { reason },
            Undo::Parts { parts } => Undo::Parts {
                parts: parts
                    .into_iter()
                    .map(|part| part.store_with(put))
                    .collect::<Result<_, E>>()?,
            },
            Undo::Pending { scratch, change } => {
                Undo::Pending { scratch, change: Box::new(change.store_with(put)?) }
            }
        })
    }
}

impl<B> Undo<B> {
    /// The single undos of this one, in the order they happened (parts flattened, and a
    /// pending change's parts).
    pub fn flatten(&self) -> Vec<&Undo<B>> {
        match self {
            Undo::Parts { parts } => parts.iter().flat_map(Undo::flatten).collect(),
            Undo::Pending { change, .. } => change.flatten(),
            single => vec![single],
        }
    }

    /// Whether this is a change that may or may not have happened, and the staging file it
    /// may have left.
    pub fn pending(&self) -> Option<Option<&std::path::Path>> {
        match self {
            Undo::Pending { scratch, .. } => Some(scratch.as_deref()),
            _ => None,
        }
    }

    /// Why this cannot be undone, if it cannot (the first irreversible part).
    pub fn irreversible(&self) -> Option<&str> {
        self.flatten().into_iter().find_map(|undo| match undo {
            Undo::Irreversible { reason } => Some(reason.as_str()),
            _ => None,
        })
    }
}

/// The blake3 hash of `bytes`, in hex: what `after` holds and how blobs are named.
pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

impl SqlValue {
    /// A value read from SQLite, exactly; text that is not UTF-8 cannot be kept.
    pub fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<SqlValue, String> {
        use rusqlite::types::ValueRef;
        Ok(match value {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(f) => SqlValue::Real(f.to_string()),
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => SqlValue::Text(text.to_owned()),
                Err(_) => return Err("a text value is not valid UTF-8".to_owned()),
            },
            ValueRef::Blob(bytes) => SqlValue::Blob(to_hex(bytes)),
        })
    }

    /// The value to bind, exactly as it was read.
    pub fn to_sqlite(&self) -> Result<rusqlite::types::Value, String> {
        use rusqlite::types::Value;
        Ok(match self {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(i) => Value::Integer(*i),
            SqlValue::Real(text) => match text.parse::<f64>() {
                Ok(f) => Value::Real(f),
                Err(_) => return Err(format!("`{text}` is not a real number")),
            },
            SqlValue::Text(text) => Value::Text(text.clone()),
            SqlValue::Blob(hex) => match from_hex(hex) {
                Some(bytes) => Value::Blob(bytes),
                None => return Err(format!("blob `{hex}` is not hex")),
            },
        })
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> =
        hex.chars().map(|c| c.to_digit(16).map(|d| d as u8)).collect::<Option<_>>()?;
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(digits.chunks(2).map(|pair| pair[0] << 4 | pair[1]).collect())
}

/// Names of moat's own staging files start so; a tool may not name such a path, and
/// listings do not show them.
pub const SCRATCH_PREFIX: &str = ".moat-staged-";

/// A fresh name for a staging file: [`SCRATCH_PREFIX`] and 16 random bytes in hex, unique
/// across processes.
pub fn scratch_name() -> String {
    let mut random = [0u8; 16];
    if getrandom::fill(&mut random).is_err() {
        // Not secret, only unique: the time and a counter will do.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        random[..8].copy_from_slice(&crate::clock::now_us().to_le_bytes());
        random[8..].copy_from_slice(&n.to_le_bytes());
    }
    format!("{SCRATCH_PREFIX}{}", hex::encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::{Value, ValueRef};

    #[test]
    fn sql_values_read_back_exactly() {
        let reals = [0.1 + 0.2, -0.0, 1e-310, f64::MAX, f64::INFINITY, f64::NEG_INFINITY];
        for real in reals {
            let kept = SqlValue::from_sqlite(ValueRef::Real(real)).unwrap();
            let json = serde_json::to_string(&kept).unwrap();
            let back: SqlValue = serde_json::from_str(&json).unwrap();
            match back.to_sqlite().unwrap() {
                Value::Real(read) => assert_eq!(read.to_bits(), real.to_bits(), "{json}"),
                other => panic!("{real} came back as {other:?}"),
            }
        }
        let blob = SqlValue::from_sqlite(ValueRef::Blob(&[0, 0xff, 0x10])).unwrap();
        assert_eq!(blob, SqlValue::Blob("00ff10".into()));
        assert_eq!(blob.to_sqlite().unwrap(), Value::Blob(vec![0, 0xff, 0x10]));
        assert!(SqlValue::from_sqlite(ValueRef::Text(b"\xff")).is_err(), "not UTF-8");
        for bad in ["0", "0g", "+f"] {
            assert!(SqlValue::Blob(bad.into()).to_sqlite().is_err(), "{bad}");
        }
        assert!(SqlValue::Real("one".into()).to_sqlite().is_err());
    }

    #[test]
    fn storing_an_undo_puts_its_large_parts_in_blobs_in_order() {
        let undo = Undo::Parts {
            parts: vec![
                Undo::File { path: "/a".into(), before: Some(b"old".to_vec()), after: None },
                Undo::Rename { from: "/b".into(), to: "/a".into() },
            ],
        };
        let mut stored = Vec::new();
        let undo = undo
            .store(|bytes| {
                stored.push(bytes.clone());
                Ok::<_, ()>(hash(&bytes))
            })
            .unwrap();
        assert_eq!(stored, [b"old".to_vec()]);
        assert_eq!(undo.flatten().len(), 2);
        assert_eq!(undo.irreversible(), None);
        let json = serde_json::to_value(&undo).unwrap();
        assert_eq!(json["undo"], "parts");
        assert_eq!(json["parts"][0]["before"], hash(b"old"));
    }
}
