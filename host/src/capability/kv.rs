//! `kv`: a persistent key-value namespace per component (shared by the tools it offers), in
//! SQLite under the state directory.
//! A call's changes are staged in memory and written in one transaction on commit; each
//! staged effect says how to undo it once committed (the value before, the hash of the value
//! after).

use crate::bindings::moat::plugin::kv::{Host, KvError};
use crate::effect::Effect;
use crate::exec::CallState;
use crate::plugin::EffectKind;
use crate::undo::{self, Undo};
use crate::units::ByteSize;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// `[tools.NAME.grants.kv]`: the tool's namespace and its limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvGrant {
    #[serde(default = "default_key")]
    pub max_key: ByteSize,
    #[serde(default = "default_value")]
    pub max_value: ByteSize,
    /// Keys the namespace may hold.
    #[serde(default = "default_keys")]
    pub max_keys: u64,
}

fn default_key() -> ByteSize {
    ByteSize(256)
}
fn default_value() -> ByteSize {
    ByteSize::kib(64)
}
fn default_keys() -> u64 {
    10_000
}

/// The store behind every namespace, opened on first use.
pub struct KvStore {
    path: PathBuf,
    connection: Mutex<Option<Connection>>,
}

impl KvStore {
    pub fn new(path: PathBuf) -> KvStore {
        KvStore { path, connection: Mutex::new(None) }
    }

    /// The SQLite file of the store.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        let mut guard = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let connection = Connection::open(&self.path)
                .and_then(|c| {
                    c.execute_batch(
                        "PRAGMA journal_mode = WAL;
                         CREATE TABLE IF NOT EXISTS kv (
                             namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                             PRIMARY KEY (namespace, key));",
                    )?;
                    Ok(c)
                })
                .map_err(|e| format!("kv store {}: {e}", self.path.display()))?;
            *guard = Some(connection);
        }
        let connection = guard.as_mut().ok_or("kv store is not open")?;
        work(connection).map_err(|e| format!("kv store {}: {e}", self.path.display()))
    }
}

/// A call's staged changes: `None` deletes.
#[derive(Default)]
pub struct KvCall {
    staged: BTreeMap<String, Option<Vec<u8>>>,
}

impl KvCall {
    pub(crate) fn commit(&mut self, store: &KvStore, namespace: &str) -> Result<(), String> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut self.staged);
        store.with(|c| {
            let tx = c.transaction()?;
            for (key, value) in &staged {
                match value {
                    Some(value) => tx.execute(
                        "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                        params![namespace, key, value],
                    )?,
                    None => tx.execute(
                        "DELETE FROM kv WHERE namespace = ?1 AND key = ?2",
                        params![namespace, key],
                    )?,
                };
            }
            tx.commit()
        })
    }

    pub(crate) fn rollback(&mut self) {
        self.staged.clear();
    }
}

impl CallState {
    fn kv_grant(&self) -> Result<KvGrant, KvError> {
        self.caps.grants.kv.clone().ok_or_else(|| {
            KvError::NotGranted(format!("tool `{}` has no kv grant", self.caps.tool))
        })
    }

    fn stored(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(staged) = self.caps.kv.staged.get(key) {
            return Ok(staged.clone());
        }
        let namespace = &*self.caps.plugin;
        self.caps
            .shared
            .kv
            .with(|c| {
                c.query_row(
                    "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2",
                    params![namespace, key],
                    |row| row.get(0),
                )
                .optional()
            })
            .map_err(KvError::Io)
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let namespace = &*self.caps.plugin;
        let mut keys: Vec<String> = self
            .caps
            .shared
            .kv
            .with(|c| {
                let mut statement = c.prepare(
                    "SELECT key FROM kv WHERE namespace = ?1 AND substr(key, 1, length(?2)) = ?2",
                )?;
                let rows = statement.query_map(params![namespace, prefix], |row| row.get(0))?;
                rows.collect()
            })
            .map_err(KvError::Io)?;
        for (key, value) in &self.caps.kv.staged {
            match value {
                Some(_) if key.starts_with(prefix) && !keys.contains(key) => keys.push(key.clone()),
                None => keys.retain(|k| k != key),
                _ => {}
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Stages `value` (`None` deletes) for `key`, which holds `before` so far.
    fn stage(
        &mut self,
        key: String,
        (before, value): (Option<Vec<u8>>, Option<Vec<u8>>),
        kind: EffectKind,
    ) -> Result<(), KvError> {
        let detail = serde_json::json!({ "bytes": value.as_ref().map(Vec::len) });
        let effect = Effect { capability: "kv", kind, target: key.clone(), detail, undo: None };
        let staged = self.caps.effects.len();
        self.caps.admit(effect).map_err(KvError::Denied)?;
        let store = self.caps.shared.kv.path();
        let how = Undo::Key {
            store: std::path::absolute(store).unwrap_or_else(|_| store.to_owned()),
            namespace: self.caps.plugin.to_string(),
            key: key.clone(),
            before,
            after: value.as_deref().map(undo::hash),
        };
        undo::attach(&mut self.caps.effects, staged, how);
        self.caps.kv.staged.insert(key, value);
        Ok(())
    }
}

impl Host for CallState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        Ok(self.kv_grant().and_then(|_| self.stored(&key)))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), KvError>> {
        let grant = match self.kv_grant() {
            Ok(grant) => grant,
            Err(e) => return Ok(Err(e)),
        };
        if key.len() as u64 > grant.max_key.0 || key.is_empty() {
            return Ok(Err(KvError::LimitExceeded(format!(
                "a key is 1 byte to {}; this one is {} bytes",
                grant.max_key,
                key.len()
            ))));
        }
        if value.len() as u64 > grant.max_value.0 {
            return Ok(Err(KvError::LimitExceeded(format!(
                "value of `{key}` is {}; limit {}",
                ByteSize(value.len() as u64),
                grant.max_value
            ))));
        }
        let before = match self.stored(&key) {
            Ok(existing) => existing,
            Err(e) => return Ok(Err(e)),
        };
        if before.is_none() {
            let count = match self.keys("") {
                Ok(keys) => keys.len() as u64,
                Err(e) => return Ok(Err(e)),
            };
            if count >= grant.max_keys {
                return Ok(Err(KvError::LimitExceeded(format!(
                    "the namespace holds {count} keys; limit {}",
                    grant.max_keys
                ))));
            }
        }
        Ok(self.stage(key, (before, Some(value)), EffectKind::Write))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, KvError>> {
        if let Err(e) = self.kv_grant() {
            return Ok(Err(e));
        }
        let before = match self.stored(&key) {
            Ok(existing) => existing,
            Err(e) => return Ok(Err(e)),
        };
        let existed = before.is_some();
        if existed {
            if let Err(e) = self.stage(key, (before, None), EffectKind::Delete) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(existed))
    }

    fn list_keys(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, KvError>> {
        if let Err(e) = self.kv_grant() {
            return Ok(Err(e));
        }
        Ok(self.keys(&prefix).map(|mut keys| {
            keys.truncate(limit as usize);
            keys
        }))
    }
}
