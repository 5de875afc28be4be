//! `kv`: a persistent key-value namespace per component (shared by the tools it offers), in
//! SQLite under the state directory.
//! A call's changes are staged in memory and written in one transaction on commit; each
//! staged effect says how to undo it once committed (the value before, the hash of the value
//! after). Bytes written and keys removed or replaced are charged to the call's and the
//! task's meters (`CallCaps::charge`), like the other capabilities'; the namespace's quota
//! (keys and bytes) is checked when a change is staged and again inside the commit's
//! transaction, so that calls committing at once cannot pass it together. Every wait for the
//! store (another process holding it locked) ends by the call's deadline.

use crate::call::Effect;
use crate::call::EffectKind;
use crate::capability::bindings::moat::plugin::kv::{Host, KvError};
use crate::capability::CapsView;
use crate::capability::{Capability, Caps, Context, HasCaps, PerCall};
use crate::undo::{self, Undo};
use crate::units::ByteSize;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wasmtime::component::Linker;

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
    /// Bytes (keys and values) the namespace may hold.
    #[serde(default = "default_bytes")]
    pub max_bytes: ByteSize,
    /// Bytes (keys and values) one call may write, and all calls of one task.
    #[serde(default = "default_write_call")]
    pub write_per_call: ByteSize,
    #[serde(default = "default_write_task")]
    pub write_per_task: ByteSize,
    /// Keys one call may delete or overwrite with a different value, and one task.
    #[serde(default = "default_deletes_call")]
    pub deletes_per_call: u64,
    #[serde(default = "default_deletes_task")]
    pub deletes_per_task: u64,
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
fn default_bytes() -> ByteSize {
    ByteSize::mib(64)
}
fn default_write_call() -> ByteSize {
    ByteSize::mib(1)
}
fn default_write_task() -> ByteSize {
    ByteSize::mib(16)
}
fn default_deletes_call() -> u64 {
    100
}
fn default_deletes_task() -> u64 {
    1_000
}

/// The least time a commit waits for the store, even when the call's deadline is past: the
/// call's work is done, and giving up at once would throw it away on a moment's contention.
const COMMIT_WAIT: Duration = Duration::from_secs(1);

/// What a namespace holds: keys, and bytes of keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Usage {
    keys: i64,
    bytes: i64,
}

impl Usage {
    fn of(key: &str, value: Option<&[u8]>) -> Usage {
        match value {
            Some(value) => Usage { keys: 1, bytes: (key.len() + value.len()) as i64 },
            None => Usage::default(),
        }
    }

    fn plus(self, other: Usage) -> Usage {
        Usage { keys: self.keys + other.keys, bytes: self.bytes + other.bytes }
    }

    fn minus(self, other: Usage) -> Usage {
        Usage { keys: self.keys - other.keys, bytes: self.bytes - other.bytes }
    }

    /// Why this is over `grant`'s quota, if it is.
    fn over(self, grant: &KvGrant) -> Option<String> {
        if self.keys > grant.max_keys as i64 {
            return Some(format!(
                "the namespace would hold {} keys; limit {} (max_keys)",
                self.keys, grant.max_keys
            ));
        }
        if self.bytes > grant.max_bytes.0 as i64 {
            return Some(format!(
                "the namespace would hold {}; limit {} (max_bytes)",
                ByteSize(self.bytes.max(0) as u64),
                grant.max_bytes
            ));
        }
        None
    }
}

/// What the namespace holds in the store. `length()` reads only the size of a value.
fn stored_usage(c: &Connection, namespace: &str) -> rusqlite::Result<Usage> {
    c.query_row(
        "SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0)
         FROM kv WHERE namespace = ?1",
        params![namespace],
        |row| Ok(Usage { keys: row.get(0)?, bytes: row.get(1)? }),
    )
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

    /// Runs `work` on the store, waiting at most `wait` for another process's lock.
    fn with<T>(
        &self,
        wait: Duration,
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
        let path = self.path.display();
        connection.busy_timeout(wait).map_err(|e| format!("kv store {path}: {e}"))?;
        work(connection).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                format!(
                    "kv store {path} is locked by another process, and the call's deadline came \
                     first (waited {} ms)",
                    wait.as_millis()
                )
            }
            _ => format!("kv store {path}: {e}"),
        })
    }
}

/// The `kv` capability.
pub(crate) struct Kv;

impl Capability for Kv {
    const INTERFACE: &'static str = "moat:plugin/kv@0.1.0";
    type Grant = Option<KvGrant>;
    type Call = KvCall;

    fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::capability::bindings::moat::plugin::kv::add_to_linker::<T, Caps>(linker, T::caps)
    }
}

/// A call's staged changes: `None` deletes.
#[derive(Default)]
pub struct KvCall {
    staged: BTreeMap<String, Option<Vec<u8>>>,
    /// What the staged changes add to the namespace (negative: free), against its quota.
    delta: Usage,
    /// Each staged key's value before the call, to put back if the call fails after the
    /// kv changes were committed (another capability's commit failing).
    before: BTreeMap<String, Option<Vec<u8>>>,
}

impl PerCall for KvCall {
    /// Writes the staged changes in one transaction, after checking the namespace's quota
    /// inside it (another call may have committed meanwhile). On a refusal nothing is written.
    fn commit(&mut self, context: &Context<'_>) -> Result<(), String> {
        let (store, namespace, deadline) = (&context.shared.kv, context.plugin, context.deadline);
        let grant = context.grants.kv.as_ref();
        if self.staged.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut self.staged);
        let mut over = None;
        write(store, deadline, |tx| {
            put(tx, namespace, &staged)?;
            if let Some(grant) = grant {
                over = stored_usage(tx, namespace)?.over(grant);
            }
            Ok(over.is_none())
        })?;
        match over {
            Some(over) => Err(format!("kv: {over}, counting what other calls committed meanwhile")),
            None => Ok(()),
        }
    }

    /// Puts back what a committed call changed, when the call fails after its kv commit.
    fn revert(&mut self, context: &Context<'_>) -> Result<(), String> {
        let (store, namespace, deadline) = (&context.shared.kv, context.plugin, context.deadline);
        let before = std::mem::take(&mut self.before);
        if before.is_empty() {
            return Ok(());
        }
        write(store, deadline, |tx| put(tx, namespace, &before).map(|()| true))
            .map_err(|e| format!("the kv changes, already committed, could not be put back: {e}"))
    }

    fn rollback(&mut self, _: &Context<'_>) -> Result<(), String> {
        self.staged.clear();
        self.before.clear();
        self.delta = Usage::default();
        Ok(())
    }
}

/// Runs `work` in an immediate transaction of the store, committed if it says so.
fn write(
    store: &KvStore,
    deadline: Instant,
    work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<bool>,
) -> Result<(), String> {
    let wait = deadline.saturating_duration_since(Instant::now()).max(COMMIT_WAIT);
    store.with(wait, |c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        match work(&tx)? {
            true => tx.commit(),
            false => tx.rollback(),
        }
    })
}

/// Writes `values` (`None` deletes) into `namespace`.
fn put(
    tx: &rusqlite::Transaction<'_>,
    namespace: &str,
    values: &BTreeMap<String, Option<Vec<u8>>>,
) -> rusqlite::Result<()> {
    for (key, value) in values {
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
    Ok(())
}

impl CapsView<'_> {
    fn kv_grant(&self) -> Result<KvGrant, KvError> {
        self.caps.grants.kv.clone().ok_or_else(|| {
            KvError::NotGranted(format!("tool `{}` has no kv grant", self.caps.tool))
        })
    }

    /// How long a wait for the store may last: until the call's deadline.
    fn kv_wait(&self) -> Duration {
        self.caps.deadline.saturating_duration_since(Instant::now())
    }

    fn stored(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(staged) = self.caps.calls.kv.staged.get(key) {
            return Ok(staged.clone());
        }
        let namespace = &*self.caps.plugin;
        self.caps
            .shared
            .kv
            .with(self.kv_wait(), |c| {
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
            .with(self.kv_wait(), |c| {
                let mut statement = c.prepare(
                    "SELECT key FROM kv WHERE namespace = ?1 AND substr(key, 1, length(?2)) = ?2",
                )?;
                let rows = statement.query_map(params![namespace, prefix], |row| row.get(0))?;
                rows.collect()
            })
            .map_err(KvError::Io)?;
        for (key, value) in &self.caps.calls.kv.staged {
            match value {
                Some(_) if key.starts_with(prefix) && !keys.contains(key) => keys.push(key.clone()),
                None => keys.retain(|k| k != key),
                _ => {}
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Stages `value` (`None` deletes) for `key`, which holds `before` so far: within the
    /// namespace's quota, charged to the meters, then past the gate.
    fn stage(
        &mut self,
        grant: &KvGrant,
        key: String,
        (before, value): (Option<Vec<u8>>, Option<Vec<u8>>),
        kind: EffectKind,
    ) -> Result<(), KvError> {
        let change = Usage::of(&key, value.as_deref()).minus(Usage::of(&key, before.as_deref()));
        let delta = self.caps.calls.kv.delta.plus(change);
        if change.keys > 0 || change.bytes > 0 {
            let namespace = &*self.caps.plugin;
            let stored = self
                .caps
                .shared
                .kv
                .with(self.kv_wait(), |c| stored_usage(c, namespace))
                .map_err(KvError::Io)?;
            if let Some(over) = stored.plus(delta).over(grant) {
                return Err(KvError::LimitExceeded(format!("cannot set `{key}`: {over}")));
            }
        }
        // A value destroyed: removed, or replaced by a different one.
        let destroys = before.is_some() && before != value;
        let written = value.as_ref().map_or(0, |v| (key.len() + v.len()) as u64);
        let (per_call, per_task) = (grant.deletes_per_call, grant.deletes_per_task);
        if destroys {
            let verb = if value.is_some() { "overwrite" } else { "delete" };
            self.caps.charge("kv:deleted", 1, per_call, per_task).map_err(|over| {
                KvError::LimitExceeded(format!(
                    "would {verb} `{key}`; limit {} keys deleted or overwritten {} ({} used)",
                    over.limit, over.scope, over.used
                ))
            })?;
        }
        let (per_call, per_task) = (grant.write_per_call.0, grant.write_per_task.0);
        if let Err(over) = self.caps.charge("kv:written", written, per_call, per_task) {
            if destroys {
                self.caps.uncharge("kv:deleted", 1);
            }
            return Err(KvError::LimitExceeded(format!(
                "would write {} to `{key}`; limit {} {} ({} used)",
                ByteSize(written),
                ByteSize(over.limit),
                over.scope,
                ByteSize(over.used)
            )));
        }
        let detail = serde_json::json!({ "bytes": value.as_ref().map(Vec::len) });
        let effect = Effect { capability: "kv", kind, target: key.clone(), detail, undo: None };
        let staged = self.caps.effects.len();
        if let Err(reason) = self.caps.admit(effect) {
            if destroys {
                self.caps.uncharge("kv:deleted", 1);
            }
            self.caps.uncharge("kv:written", written);
            return Err(KvError::Denied(reason));
        }
        self.caps.calls.kv.delta = delta;
        self.caps.calls.kv.before.entry(key.clone()).or_insert_with(|| before.clone());
        let store = self.caps.shared.kv.path();
        let how = Undo::Key {
            store: std::path::absolute(store).unwrap_or_else(|_| store.to_owned()),
            namespace: self.caps.plugin.to_string(),
            key: key.clone(),
            before,
            after: value.as_deref().map(undo::hash),
        };
        crate::call::attach(&mut self.caps.effects, staged, how);
        self.caps.calls.kv.staged.insert(key, value);
        Ok(())
    }
}

impl Host for CapsView<'_> {
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
        Ok(self.stage(&grant, key, (before, Some(value)), EffectKind::Write))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, KvError>> {
        let grant = match self.kv_grant() {
            Ok(grant) => grant,
            Err(e) => return Ok(Err(e)),
        };
        let before = match self.stored(&key) {
            Ok(existing) => existing,
            Err(e) => return Ok(Err(e)),
        };
        let existed = before.is_some();
        if existed {
            if let Err(e) = self.stage(&grant, key, (before, None), EffectKind::Delete) {
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
