//! Row images for undo: temporary tables and triggers that record, exactly, every row a tool's
//! statement changes in a granted table (triggers it fires included), so that each committed
//! sql effect says how to put its rows back.
//!
//! For each granted rowid table, `temp."moat_undo_N"` (untyped columns keep values exactly)
//! is filled by TEMP triggers `AFTER INSERT`, `AFTER UPDATE` and `AFTER DELETE` on it. TEMP
//! triggers fire before the database's own triggers of the same timing, so the rows come in
//! the order the changes happened; `recursive_triggers` makes the deletions of a `REPLACE`
//! fire them too. The temporary tables live in the call's transaction: a statement undone by
//! its savepoint takes its rows with it. After a statement is released, its rows are read
//! and deleted. Only these triggers may write these tables (the authorizer asks
//! [`capture_access`]); a tool cannot touch them.
//!
//! A WITHOUT ROWID table cannot be put back by rowid: its effects are irreversible. Its
//! triggers only note that it changed, because neither the update hook nor the statement's
//! count sees the rows a trigger changes in it: such a statement's first effect says so.

use crate::undo::{RowChange, RowOp, SqlValue, Undo};
use rusqlite::hooks::{AuthAction, AuthContext};
use rusqlite::Connection;
use std::path::PathBuf;

/// The names of the temporary tables and of their triggers begin so.
const PREFIX: &str = "moat_undo_";

/// Whether an action touches the temporary schema: `Some(true)` for one of the capture
/// triggers writing its table, `Some(false)` for anything else there (refused: a tool has no
/// business in the temporary schema, which holds only moat's tables), `None` elsewhere.
pub(super) fn capture_access(context: &AuthContext<'_>) -> Option<bool> {
    if context.database_name != Some("temp") {
        return None;
    }
    let trigger = context.accessor.is_some_and(|accessor| accessor.starts_with(PREFIX));
    Some(trigger && matches!(context.action, AuthAction::Insert { .. }))
}

/// How the changes to one granted table are captured.
enum Table {
    Captured {
        /// As the database spells it.
        name: String,
        /// The temporary table holding its changes.
        temp: String,
        /// Its stored columns (generated ones are computed, not restored), in order.
        columns: Vec<String>,
    },
    /// Its rows cannot be captured, and why; `marker` notes that it changed.
    Not { name: String, reason: String, marker: Option<String> },
}

impl Table {
    fn name(&self) -> &str {
        match self {
            Table::Captured { name, .. } | Table::Not { name, .. } => name,
        }
    }
}

/// The capture of one database opened for a call that may change rows.
pub(super) struct Capture {
    /// The database file, absolute.
    database: PathBuf,
    tables: Vec<Table>,
    /// Why the capture stopped working in this call, if it did: later effects cannot be
    /// undone.
    broken: Option<String>,
}

/// The rows one statement changed in each captured table, in order.
struct Taken {
    tables: Vec<(String, Result<Vec<RowChange>, String>)>,
    /// The tables that cannot be captured and changed, with why.
    changed: Vec<(String, String)>,
    broken: Option<String>,
}

impl Capture {
    /// Installs the temporary tables and triggers for the granted `tables` of the database
    /// at `database`. Runs as the host (past the authorizer), inside the call's transaction.
    /// A table whose rows cannot be captured is noted, never refused here.
    pub fn install(conn: &Connection, database: &std::path::Path, granted: &[String]) -> Capture {
        let absolute = std::path::absolute(database).unwrap_or_else(|_| database.to_owned());
        match install(conn, &absolute, granted) {
            Ok(tables) => Capture { database: absolute, tables, broken: None },
            Err(e) => Capture {
                broken: Some(format!(
                    "the row changes of {} cannot be recorded: {e}",
                    absolute.display()
                )),
                database: absolute,
                tables: Vec::new(),
            },
        }
    }

    /// How to undo what the statement just released did to each of `tables` (as the update
    /// hook or the authorizer named them; one effect each), in order. Empties the temporary
    /// tables. Runs as the host.
    pub fn undos(&mut self, conn: &Connection, tables: &[String]) -> Vec<Undo<Vec<u8>>> {
        let taken = self.take(conn);
        let mut undos: Vec<Undo<Vec<u8>>> =
            tables.iter().map(|table| self.undo(&taken, table)).collect();
        let unseen = taken
            .changed
            .iter()
            .filter(|(name, _)| !tables.iter().any(|t| t.eq_ignore_ascii_case(name)));
        for (name, reason) in unseen {
            let Some(first) = undos.first_mut() else { break };
            let reason = format!("a trigger changed `{name}` too, and {reason}");
            let earlier = std::mem::replace(first, Undo::Parts { parts: Vec::new() });
            *first = Undo::Parts { parts: vec![earlier, Undo::Irreversible { reason }] };
        }
        undos
    }

    /// Takes the rows the statement just released changed, and empties the temporary
    /// tables.
    fn take(&mut self, conn: &Connection) -> Taken {
        let mut taken = Vec::new();
        let mut changed = Vec::new();
        for table in &self.tables {
            if let Table::Not { name, reason, marker: Some(temp) } = table {
                let count = format!("SELECT count(*) FROM temp.{}", quote(temp));
                match conn.query_row(&count, [], |row| row.get::<_, i64>(0)) {
                    Ok(0) => {}
                    Ok(_) => changed.push((name.clone(), reason.clone())),
                    Err(e) => changed.push((name.clone(), format!("{reason} ({e})"))),
                }
                let _ = conn.execute(&format!("DELETE FROM temp.{}", quote(temp)), []);
                continue;
            }
            let Table::Captured { name, temp, columns } = table else { continue };
            let rows = read_rows(conn, temp, columns.len());
            if rows.is_err() || rows.as_ref().is_ok_and(|rows| !rows.is_empty()) {
                let emptied = conn.execute(&format!("DELETE FROM temp.\"{temp}\""), []);
                if let Err(e) = emptied {
                    self.broken.get_or_insert(format!(
                        "the row images of `{name}` ({}) could not be cleared: {e}",
                        self.database.display()
                    ));
                }
            }
            taken.push((name.clone(), rows));
        }
        Taken { tables: taken, changed, broken: self.broken.clone() }
    }

    /// How to undo the changes a statement made to `table`, from what was taken.
    fn undo(&self, taken: &Taken, table: &str) -> Undo<Vec<u8>> {
        let irreversible = |reason: String| Undo::Irreversible { reason };
        if let Some(why) = &taken.broken {
            return irreversible(why.clone());
        }
        let database = self.database.display();
        let Some(found) = self.tables.iter().find(|t| t.name().eq_ignore_ascii_case(table)) else {
            return irreversible(format!("the rows of `{table}` ({database}) were not recorded"));
        };
        let (name, columns) = match found {
            Table::Not { reason, .. } => return irreversible(reason.clone()),
            Table::Captured { name, columns, .. } => (name, columns),
        };
        let rows = taken.tables.iter().find(|(t, _)| t == name).map(|(_, rows)| rows);
        match rows {
            Some(Ok(rows)) if !rows.is_empty() => match serde_json::to_vec(rows) {
                Ok(json) => Undo::Rows {
                    database: self.database.clone(),
                    table: name.clone(),
                    columns: columns.clone(),
                    rows: json,
                },
                Err(e) => irreversible(format!("the rows of `{name}` ({database}): {e}")),
            },
            Some(Err(why)) => {
                irreversible(format!("the rows of `{name}` ({database}) were not recorded: {why}"))
            }
            _ => {
                irreversible(format!("rows of `{name}` ({database}) changed but none was recorded"))
            }
        }
    }
}

/// The capture of each granted table of `database`, its temporary table and triggers
/// installed (each whole or not at all).
fn install(
    conn: &Connection,
    database: &std::path::Path,
    granted: &[String],
) -> rusqlite::Result<Vec<Table>> {
    conn.execute_batch("PRAGMA recursive_triggers = ON")?;
    let mut listed = conn.prepare(
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' ORDER BY name",
    )?;
    let existing: Vec<(String, String, bool)> = listed
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    drop(listed);
    let taken = |name: &str| existing.iter().any(|(t, _, _)| t.eq_ignore_ascii_case(name));
    let mut tables: Vec<Table> = Vec::new();
    let mut number = 0;
    for wanted in granted {
        let Some((name, kind, without_rowid)) =
            existing.iter().find(|(name, _, _)| name.eq_ignore_ascii_case(wanted))
        else {
            continue; // No such table (yet): a statement cannot change it.
        };
        if kind == "view" || tables.iter().any(|t| t.name() == name) {
            continue; // A view has no rows of its own; its triggers write tables.
        }
        let not = |why: &str| Table::Not {
            name: name.clone(),
            reason: format!(
                "the rows of `{name}` ({}) cannot be put back: {why}",
                database.display()
            ),
            marker: None,
        };
        if kind == "virtual" {
            tables.push(not("it is a virtual table"));
            continue;
        }
        while taken(&format!("{PREFIX}{number}")) {
            number += 1;
        }
        let temp = format!("{PREFIX}{number}");
        number += 1;
        conn.execute_batch("SAVEPOINT moat_capture")?;
        if *without_rowid {
            let marked = install_marker(conn, name, &temp);
            let end = match marked {
                Ok(()) => "RELEASE moat_capture",
                Err(_) => "ROLLBACK TO moat_capture; RELEASE moat_capture",
            };
            conn.execute_batch(end)?;
            let mut table = not("it is a WITHOUT ROWID table");
            if let (Table::Not { marker, .. }, Ok(())) = (&mut table, marked) {
                *marker = Some(temp);
            }
            tables.push(table);
            continue;
        }
        let installed = install_table(conn, name, &temp);
        let end = match installed {
            Ok(Some(_)) => "RELEASE moat_capture",
            _ => "ROLLBACK TO moat_capture; RELEASE moat_capture",
        };
        conn.execute_batch(end)?;
        tables.push(match installed {
            Ok(Some(columns)) => Table::Captured { name: name.clone(), temp, columns },
            Ok(None) => not("its columns hide the rowid (`rowid`, `_rowid_` and `oid`)"),
            Err(e) => not(&format!("its changes cannot be recorded ({e})")),
        });
    }
    Ok(tables)
}

/// Quotes an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the temporary table `temp` and the triggers recording the changes to `table`;
/// returns the columns recorded, or `None` when no name reaches the rowid.
fn install_table(
    conn: &Connection,
    table: &str,
    temp: &str,
) -> rusqlite::Result<Option<Vec<String>>> {
    let mut info = conn.prepare("SELECT name, hidden FROM pragma_table_xinfo(?1, 'main')")?;
    let all: Vec<(String, i64)> = info
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    drop(info);
    let Some(rowid) = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|alias| !all.iter().any(|(name, _)| name.eq_ignore_ascii_case(alias)))
    else {
        return Ok(None);
    };
    // Generated columns (hidden 2 and 3) are computed from the others.
    let columns: Vec<String> =
        all.into_iter().filter(|(_, hidden)| *hidden == 0).map(|(name, _)| name).collect();
    let slots = |side: &str| (0..columns.len()).map(|i| format!(", {side}{i}")).collect::<String>();
    let values = |row: &str| {
        columns.iter().map(move |column| format!(", {row}.{}", quote(column))).collect::<String>()
    };
    let (before, after) = (slots("b"), slots("a"));
    let (old, new) = (values("OLD"), values("NEW"));
    let (on, into) = (format!("main.{}", quote(table)), quote(temp));
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE {into} (moat_seq INTEGER PRIMARY KEY, op, rowid_before, \
         rowid_after{before}{after});
         CREATE TEMP TRIGGER \"{temp}_insert\" AFTER INSERT ON {on} BEGIN
             INSERT INTO {into} (op, rowid_after{after}) VALUES ('insert', NEW.{rowid}{new});
         END;
         CREATE TEMP TRIGGER \"{temp}_update\" AFTER UPDATE ON {on} BEGIN
             INSERT INTO {into} (op, rowid_before, rowid_after{before}{after})
             VALUES ('update', OLD.{rowid}, NEW.{rowid}{old}{new});
         END;
         CREATE TEMP TRIGGER \"{temp}_delete\" AFTER DELETE ON {on} BEGIN
             INSERT INTO {into} (op, rowid_before{before}) VALUES ('delete', OLD.{rowid}{old});
         END;"
    ))?;
    Ok(Some(columns))
}

/// Creates the temporary table `temp` and the triggers noting that `table` changed.
fn install_marker(conn: &Connection, table: &str, temp: &str) -> rusqlite::Result<()> {
    let (on, into) = (format!("main.{}", quote(table)), quote(temp));
    let mut sql = format!("CREATE TEMP TABLE {into} (moat_seq INTEGER PRIMARY KEY);");
    for event in ["insert", "update", "delete"] {
        sql += &format!(
            "CREATE TEMP TRIGGER \"{temp}_{event}\" AFTER {event} ON {on} BEGIN
                 INSERT INTO {into} (moat_seq) VALUES (NULL);
             END;"
        );
    }
    conn.execute_batch(&sql)
}

/// The changes recorded in `temp`, in order, with their values exactly.
fn read_rows(conn: &Connection, temp: &str, width: usize) -> Result<Vec<RowChange>, String> {
    let sql = format!("SELECT * FROM temp.{} ORDER BY moat_seq", quote(temp));
    let mut statement = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let mut rows = statement.query([]).map_err(|e| e.to_string())?;
    let mut changes = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let value = |index: usize| -> Result<SqlValue, String> {
            let value = row.get_ref(index).map_err(|e| e.to_string())?;
            SqlValue::from_sqlite(value)
        };
        let rowid = |index: usize| -> Result<Option<i64>, String> {
            match value(index)? {
                SqlValue::Integer(rowid) => Ok(Some(rowid)),
                SqlValue::Null => Ok(None),
                other => Err(format!("a rowid is {other:?}")),
            }
        };
        let image = |first: usize| (first..first + width).map(value).collect::<Result<_, _>>();
        let op = match value(1)? {
            SqlValue::Text(op) if op == "insert" => RowOp::Insert,
            SqlValue::Text(op) if op == "update" => RowOp::Update,
            SqlValue::Text(op) if op == "delete" => RowOp::Delete,
            other => return Err(format!("unknown change {other:?}")),
        };
        let (before, after) = match op {
            RowOp::Insert => (None, Some(image(4 + width)?)),
            RowOp::Update => (Some(image(4)?), Some(image(4 + width)?)),
            RowOp::Delete => (Some(image(4)?), None),
        };
        changes.push(RowChange {
            op,
            rowid_before: rowid(2)?,
            rowid_after: rowid(3)?,
            before,
            after,
        });
    }
    Ok(changes)
}
