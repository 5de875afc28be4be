//! Counting every row a statement changes, where SQLite changes it: the preupdate hook sees
//! each row of each table of the database before it is inserted, updated or deleted, whatever
//! changed it (the statement, a conflict resolution such as `REPLACE`, a trigger, a foreign
//! key's cascade; rowid and WITHOUT ROWID tables alike). Each row is checked at once against
//! the grant (its table and operations; the first refusal is kept), and when the statement
//! ends its rows are held to the limits (`max_rows` per statement, call and task;
//! `max_percent` per table and call), with the numbers; a refused statement is undone. (It is
//! not interrupted on the way: SQLite ends the whole transaction of an interrupted write.)
//! Memory stays bounded whatever the statement: counters per table, and a short window of the
//! keys last deleted, to tell an overwrite (a conflict deletion and an insert of the same
//! key: an update) from the deletion of another row.

use super::scope::allowed;
use super::Operation;
use rusqlite::hooks::PreUpdateCase;
use rusqlite::types::ValueRef;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

/// Rows changed in one table.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Change {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl Change {
    pub fn total(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }

    /// Rows that existed before: the ones `max_percent` of the table's rows is about.
    pub fn destroyed(&self) -> u64 {
        self.updated + self.deleted
    }

    /// The operation that changed the most rows, for messages.
    pub fn verb(&self) -> Operation {
        if self.deleted >= self.updated && self.deleted >= self.inserted {
            Operation::Delete
        } else if self.updated >= self.inserted {
            Operation::Update
        } else {
            Operation::Insert
        }
    }
}

/// What one table had before the call, and what the call's earlier statements did to it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Before {
    /// Rows in the table before the call's first change to it.
    pub rows: u64,
    /// Rows the call updated or deleted in it before this statement.
    pub destroyed: u64,
    /// Rows the call inserted into it before this statement.
    pub inserted: u64,
}

/// What the statement about to run may do: fixed before it runs.
pub(super) struct Limits {
    pub tool: String,
    pub grant: String,
    /// The granted tables, lowercase.
    pub tables: Vec<String>,
    pub operations: Vec<Operation>,
    pub max_rows: u64,
    pub max_percent: f64,
    pub max_rows_per_task: u64,
    /// Rows the call changed before this statement (all tables of the grant).
    pub call_used: u64,
    /// Rows the task changed before this call.
    pub task_used: u64,
    /// Per table (lowercase): its rows and the call's earlier changes.
    pub before: HashMap<String, Before>,
    /// The tables (lowercase) the authorizer let the statement delete from, in it or in the
    /// triggers it fires: any other deletion is a conflict resolution's (`REPLACE`).
    pub deletable: Vec<String>,
}

/// Why the statement is refused, decided while it ran.
#[derive(Clone, Debug)]
pub(super) enum Refusal {
    /// Outside the grant; reads after "tool `T` may not ".
    Denied(String),
}

/// How many recently deleted keys are remembered to tell overwrites. A conflict deletion
/// comes just before the insert of the row that replaces it (its triggers' rows between
/// them); an overwrite the window misses counts as a deletion and an insert: more, not less.
const WINDOW: usize = 64;

/// The key of a row: its rowid, or a hash of its primary key (WITHOUT ROWID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Key {
    Rowid(i64),
    Hashed(u64),
    /// Not readable: never matched.
    Unknown,
}

/// The rows one statement changed so far, per table, and the first refusal.
#[derive(Default)]
pub(super) struct Count {
    /// Per table (lowercase): its name as the database spells it, and its rows changed.
    pub changed: BTreeMap<String, (String, Change)>,
    total: u64,
    recent: VecDeque<(String, Key)>,
    pub refusal: Option<Refusal>,
}

impl Count {
    /// Counts one row about to change in `table` (of the main database), and checks it.
    pub fn row(&mut self, limits: &Limits, table: &str, operation: Operation, key: Key) {
        if self.refusal.is_some() {
            return; // The statement is being stopped.
        }
        let lower = table.to_ascii_lowercase();
        if lower == "sqlite_sequence" {
            return; // AUTOINCREMENT's bookkeeping.
        }
        if !limits.tables.contains(&lower) {
            let granted: Vec<String> = limits.tables.iter().map(|t| format!("`{t}`")).collect();
            let granted = if granted.is_empty() { "no tables".into() } else { granted.join(", ") };
            self.refusal = Some(Refusal::Denied(format!(
                "change table `{table}`: sql grant `{}` allows only {granted}",
                limits.grant
            )));
            return;
        }
        let may = |op: Operation| limits.operations.contains(&op);
        let deny = |what: String| Some(Refusal::Denied(what));
        let entry =
            self.changed.entry(lower.clone()).or_insert_with(|| (table.into(), Change::default()));
        let change = &mut entry.1;
        match operation {
            Operation::Delete => {
                let conflict = !limits.deletable.contains(&lower);
                if conflict && !(may(Operation::Update) && may(Operation::Delete)) {
                    self.refusal = deny(format!(
                        "replace rows in `{table}` (a conflict resolution such as REPLACE deletes \
                         or overwrites them, which needs update and delete): {}",
                        allowed(&limits.grant, &limits.operations)
                    ));
                    return;
                }
                if !may(Operation::Delete) {
                    self.refusal = deny(format!(
                        "delete `{table}`: {}",
                        allowed(&limits.grant, &limits.operations)
                    ));
                    return;
                }
                change.deleted += 1;
                self.total += 1;
                if key != Key::Unknown {
                    if self.recent.len() == WINDOW {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((lower.clone(), key));
                }
            }
            Operation::Insert => {
                let overwrite = self.recent.iter().rposition(|(t, k)| *t == lower && *k == key);
                match overwrite {
                    // The row deleted by the conflict comes back with new values: an update.
                    Some(at) if key != Key::Unknown => {
                        self.recent.remove(at);
                        if !may(Operation::Update) {
                            self.refusal = deny(format!(
                                "overwrite rows of `{table}` (an insert replacing a row is an \
                                 update): {}",
                                allowed(&limits.grant, &limits.operations)
                            ));
                            return;
                        }
                        change.deleted -= 1;
                        change.updated += 1;
                    }
                    _ => {
                        if !may(Operation::Insert) {
                            self.refusal = deny(format!(
                                "insert into `{table}`: {}",
                                allowed(&limits.grant, &limits.operations)
                            ));
                            return;
                        }
                        change.inserted += 1;
                        self.total += 1;
                    }
                }
            }
            Operation::Update | Operation::Select => {
                if !may(Operation::Update) {
                    self.refusal = deny(format!(
                        "update `{table}`: {}",
                        allowed(&limits.grant, &limits.operations)
                    ));
                    return;
                }
                change.updated += 1;
                self.total += 1;
            }
        }
    }
}

/// Whether one statement's rows in one table break a limit of the table, and the message
/// saying so. `change` is the statement's rows in `table`.
pub(super) fn over_table(
    limits: &Limits,
    table: &str,
    before: &Before,
    change: &Change,
) -> Option<String> {
    let (max_rows, percent) = (limits.max_rows, limits.max_percent);
    let destroyed = before.destroyed + change.destroyed();
    let inserted = before.inserted + change.inserted;
    let over_rows = change.total() > max_rows;
    // Written so that a NaN limit refuses.
    let destroys_within = destroyed as f64 * 100.0 <= percent * before.rows as f64;
    let base = before.rows.max(max_rows);
    let inserts_within = inserted as f64 * 100.0 <= percent * base as f64;
    if over_rows && change.verb() == Operation::Insert {
        return Some(format!(
            "would insert {} rows into `{table}`; limit {max_rows} rows",
            change.total()
        ));
    }
    if over_rows || (change.destroyed() > 0 && !destroys_within) {
        let (verb, rows) = match over_rows {
            true => (change.verb(), change.total()),
            false if change.deleted >= change.updated => (Operation::Delete, change.destroyed()),
            false => (Operation::Update, change.destroyed()),
        };
        let earlier = match before.destroyed {
            0 => String::new(),
            _ => format!(" ({destroyed} in this call)"),
        };
        return Some(format!(
            "would {} {rows} of {} rows in `{table}`{earlier}; limit {max_rows} rows or \
             {percent}%",
            verb.name(),
            before.rows
        ));
    }
    if change.inserted > 0 && !inserts_within {
        let earlier = match before.inserted {
            0 => String::new(),
            _ => format!(" ({inserted} in this call)"),
        };
        return Some(format!(
            "would insert {} rows into `{table}` of {} rows{earlier}; limit {max_rows} \
             rows or {percent}% of {base} rows",
            change.inserted, before.rows
        ));
    }
    None
}

/// Whether all of one statement's rows (`changes`: per table as the database spells it)
/// break the limit per call or per task, and the message saying so.
pub(super) fn over_total(limits: &Limits, changes: &[(&str, Change)]) -> Option<String> {
    let total: u64 = changes.iter().map(|(_, change)| change.total()).sum();
    let (used, limit, scope) = match () {
        _ if limits.call_used + total > limits.max_rows => {
            (limits.call_used, limits.max_rows, "per call")
        }
        _ if limits.task_used + limits.call_used + total > limits.max_rows_per_task => {
            (limits.task_used + limits.call_used, limits.max_rows_per_task, "per task")
        }
        _ => return None,
    };
    let what = match changes {
        [(table, change)] => format!("{} {total} rows in `{table}`", change.verb().name()),
        _ => {
            let tables: Vec<String> = changes.iter().map(|(t, _)| format!("`{t}`")).collect();
            format!("change {total} rows in {}", tables.join(", "))
        }
    };
    Some(format!(
        "would {what} (tool `{}`, sql grant `{}`); limit {limit} rows {scope} ({used} used)",
        limits.tool, limits.grant
    ))
}

/// How the rows of each WITHOUT ROWID table of the database are keyed: the columns of its
/// primary key (lowercase table name to column numbers). Other tables are keyed by rowid.
pub(super) struct Shapes {
    primary: HashMap<String, Vec<i32>>,
    hasher: RandomState,
}

impl Shapes {
    /// Reads the primary keys of the WITHOUT ROWID tables of `main`.
    pub fn read(conn: &rusqlite::Connection) -> rusqlite::Result<Shapes> {
        let mut listed = conn.prepare(
            "SELECT lower(l.name), x.cid FROM pragma_table_list AS l, \
             pragma_table_xinfo(l.name, 'main') AS x \
             WHERE l.schema = 'main' AND l.wr AND x.pk > 0 ORDER BY l.name, x.pk",
        )?;
        let mut primary: HashMap<String, Vec<i32>> = HashMap::new();
        let rows = listed.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
        for row in rows {
            let (table, column) = row?;
            primary.entry(table).or_default().push(column);
        }
        Ok(Shapes { primary, hasher: RandomState::new() })
    }

    /// The operation and the key of the row a preupdate notification is about.
    pub fn key(&self, table: &str, case: &PreUpdateCase) -> Option<(Operation, Key)> {
        let columns = self.primary.get(&table.to_ascii_lowercase());
        match case {
            PreUpdateCase::Insert(new) => Some((
                Operation::Insert,
                match columns {
                    None => Key::Rowid(new.get_new_row_id()),
                    Some(columns) => {
                        let mut state = self.hasher.build_hasher();
                        for column in columns {
                            match new.get_new_column_value(*column) {
                                Ok(value) => hash(&mut state, value),
                                Err(_) => return Some((Operation::Insert, Key::Unknown)),
                            }
                        }
                        Key::Hashed(state.finish())
                    }
                },
            )),
            PreUpdateCase::Delete(old) => Some((
                Operation::Delete,
                match columns {
                    None => Key::Rowid(old.get_old_row_id()),
                    Some(columns) => {
                        let mut state = self.hasher.build_hasher();
                        for column in columns {
                            match old.get_old_column_value(*column) {
                                Ok(value) => hash(&mut state, value),
                                Err(_) => return Some((Operation::Delete, Key::Unknown)),
                            }
                        }
                        Key::Hashed(state.finish())
                    }
                },
            )),
            PreUpdateCase::Update { .. } => Some((Operation::Update, Key::Unknown)),
            PreUpdateCase::Unknown => None,
        }
    }
}

fn hash(state: &mut impl Hasher, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => 0u8.hash(state),
        ValueRef::Integer(i) => (1u8, i).hash(state),
        ValueRef::Real(f) => (2u8, f.to_bits()).hash(state),
        ValueRef::Text(bytes) => (3u8, bytes).hash(state),
        ValueRef::Blob(bytes) => (4u8, bytes).hash(state),
    }
}
