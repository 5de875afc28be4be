//! The rollback's simulation: the state a task's rollback leads to, as far as it has been
//! simulated, against which every precondition of every undo step is checked before anything
//! changes (`rollback.rs` runs them only if all hold).

use super::rollback::{quote, Action, Stores};
use crate::undo::{self, RowOp};
use rusqlite::types::Value;
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The state the rollback leads to, as far as it has been simulated: what each path, row
/// and key would hold. Anything not in it is as it is now.
#[derive(Default)]
pub(super) struct State {
    files: HashMap<PathBuf, File>,
    /// Hashes of files on disk, read once.
    hashed: HashMap<PathBuf, Option<String>>,
    /// Per (database, lowercase table): rowid → values (`None`: no row).
    rows: HashMap<(usize, String), Rows>,
    /// Per (store, namespace, key): the hash of the value (`None`: no value).
    keys: HashMap<(usize, String, String), Option<String>>,
}

/// The rows of one table in the simulation, by rowid (`None`: no row).
type Rows = HashMap<i64, Option<Vec<Value>>>;

/// What a path holds in the simulation.
#[derive(Clone)]
enum File {
    Absent,
    /// Content with this hash (a before-image).
    Hash(String),
    /// The content now on disk at this path (moved there by a simulated rename).
    Disk(PathBuf),
}

impl State {
    /// Checks that `action` can be undone from the simulated state, and simulates it. True
    /// if it is to be run; false for a `pending` change that never happened (what was there
    /// before still is), which is left alone.
    pub(super) fn check(
        &mut self,
        action: &Action<'_>,
        pending: bool,
        stores: &mut Stores,
    ) -> Result<bool, String> {
        match action {
            Action::Scratch { path } => {
                return match std::fs::symlink_metadata(path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(format!("{}: {e}", path.display())),
                    Ok(meta) if meta.is_file() => {
                        self.files.insert(path.to_path_buf(), File::Absent);
                        Ok(true)
                    }
                    Ok(_) => Err(format!(
                        "{} is not a regular file, so it is not the staging file moat left",
                        path.display()
                    )),
                };
            }
            Action::File { path, before, after } => {
                let now = self.hash_of(path)?;
                let happened = match (after, &now) {
                    (Some(left), Some(now)) => left == now,
                    (None, None) => true,
                    _ => false,
                };
                if pending && !happened {
                    let was = before.as_ref().map(|(_, hash)| *hash);
                    if now.as_deref() == was {
                        return Ok(false);
                    }
                    return Err(format!(
                        "{} holds neither what the unfinished change would have left nor what \
                         was there before it",
                        path.display()
                    ));
                }
                match (after, &now) {
                    (Some(left), Some(now)) if left == now => {}
                    (Some(_), Some(_)) => return Err(format!("{} changed since", path.display())),
                    (Some(_), None) => return Err(format!("{} is gone", path.display())),
                    (None, Some(_)) => {
                        return Err(format!("{} exists again (it was removed)", path.display()))
                    }
                    (None, None) => {}
                }
                let then = before.as_ref().map_or(File::Absent, |(_, h)| File::Hash(h.to_string()));
                self.files.insert(path.to_path_buf(), then);
            }
            Action::Rename { from, to } => {
                let moved = self.hash_of(to)?.is_some() && self.hash_of(from)?.is_none();
                if pending && !moved {
                    if self.hash_of(from)?.is_some() {
                        return Ok(false);
                    }
                    return Err(format!(
                        "neither {} nor {} holds the file the unfinished move was moving",
                        from.display(),
                        to.display()
                    ));
                }
                if self.hash_of(to)?.is_none() {
                    return Err(format!("{} is gone (it was moved there)", to.display()));
                }
                if self.hash_of(from)?.is_some() {
                    return Err(format!("{} exists again (it was moved away)", from.display()));
                }
                let moved = self.current(to);
                self.files.insert(from.to_path_buf(), moved);
                self.files.insert(to.to_path_buf(), File::Absent);
            }
            Action::Rows { db, table, columns, rows } => {
                let rowid = stores.table(*db, table, columns)?;
                let conn = Stores::conn(&stores.databases, *db)?;
                // `NULL` first: a table whose only columns are generated still has rows.
                let select = format!(
                    "SELECT NULL{} FROM main.{} WHERE {rowid} = ?1",
                    columns.iter().map(|c| format!(", {}", quote(c))).collect::<String>(),
                    quote(table)
                );
                let state = self.rows.entry((*db, table.to_lowercase())).or_default();
                let current = |state: &Rows, rowid: i64| {
                    if let Some(known) = state.get(&rowid) {
                        return Ok(known.clone());
                    }
                    conn.query_row(&select, [rowid], |row| {
                        (1..=columns.len()).map(|i| row.get::<_, Value>(i)).collect()
                    })
                    .optional()
                    .map_err(|e| e.to_string())
                };
                for change in rows.iter().rev() {
                    if change.op != RowOp::Delete {
                        let row = change.rowid_after;
                        match current(state, row)? {
                            Some(values) if same(&values, &change.after) => {}
                            Some(_) => return Err(format!("`{table}` row {row} changed since")),
                            None => return Err(format!("`{table}` row {row} is gone")),
                        }
                        state.insert(row, None);
                    }
                    if change.op != RowOp::Insert {
                        let row = change.rowid_before;
                        if current(state, row)?.is_some() {
                            return Err(format!(
                                "`{table}` row {row} is taken again (it held a row the task \
                                 changed)"
                            ));
                        }
                        state.insert(row, Some(change.before.clone()));
                    }
                }
            }
            Action::Key { store, namespace, key, before, after } => {
                let conn = Stores::conn(&stores.kv, *store)?;
                let slot = (*store, namespace.to_string(), key.to_string());
                let now = match self.keys.get(&slot) {
                    Some(known) => known.clone(),
                    None => conn
                        .query_row(
                            "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2",
                            [namespace, key],
                            |row| row.get::<_, Vec<u8>>(0),
                        )
                        .optional()
                        .map_err(|e| e.to_string())?
                        .map(|value| undo::hash(&value)),
                };
                if now.as_deref() != *after {
                    return Err(format!("key `{key}` of `{namespace}` changed since"));
                }
                self.keys.insert(slot, before.as_ref().map(|(_, h)| h.to_string()));
            }
        }
        Ok(true)
    }

    fn current(&self, path: &Path) -> File {
        self.files.get(path).cloned().unwrap_or_else(|| File::Disk(path.to_owned()))
    }

    /// The hash of what `path` holds in the simulation; `None` if nothing.
    fn hash_of(&mut self, path: &Path) -> Result<Option<String>, String> {
        let disk = match self.current(path) {
            File::Absent => return Ok(None),
            File::Hash(hash) => return Ok(Some(hash)),
            File::Disk(disk) => disk,
        };
        if let Some(known) = self.hashed.get(&disk) {
            return Ok(known.clone());
        }
        let hash = match std::fs::symlink_metadata(&disk) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", disk.display())),
            Ok(meta) if !meta.is_file() => {
                return Err(format!("{} is not a regular file", disk.display()))
            }
            Ok(_) => {
                let file =
                    std::fs::File::open(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
                let mut hasher = blake3::Hasher::new();
                hasher.update_reader(file).map_err(|e| format!("{}: {e}", disk.display()))?;
                Some(hasher.finalize().to_hex().to_string())
            }
        };
        self.hashed.insert(disk, hash.clone());
        Ok(hash)
    }
}

/// Whether two rows hold the same values exactly (reals by their bits).
fn same(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
            (x, y) => x == y,
        })
}
