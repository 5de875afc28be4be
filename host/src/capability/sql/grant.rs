//! `[tools.NAME.grants.sql.GRANT]`: what one grant allows (the database, its tables, the
//! operations) and the magnitudes it limits, with their defaults.

use crate::units::ByteSize;
use serde::Deserialize;
use std::path::PathBuf;

/// `[tools.NAME.grants.sql.GRANT]`: one SQLite database, the tables and operations the tool
/// may use in it, and how many rows it may change.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlGrant {
    /// The database file, relative to the config file. It must exist: moat never creates one.
    pub path: PathBuf,
    /// The tables the tool may read and change; every other table (and `sqlite_master`) is
    /// refused, in the tool's statements and in the triggers they fire.
    pub tables: Vec<String>,
    /// What the tool may do to those tables: `select`, `insert`, `update`, `delete`. `query`
    /// needs `select`; a changing statement may read the granted tables (in its `WHERE`)
    /// without it.
    #[serde(default = "default_operations")]
    pub operations: Vec<Operation>,
    /// Rows one statement may change, and all statements of one call together: every row,
    /// whatever changed it (the statement, a `REPLACE` or upsert, a trigger, a foreign key's
    /// cascade).
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    /// Rows one call may update or delete in a table, as a percentage of the rows the table
    /// had before the call's first change to it (an overwrite by `REPLACE` is an update).
    /// Inserts too: rows one call may insert into a table, as a percentage of the rows it had
    /// or of `max_rows`, whichever is more (so that an empty or small table takes
    /// `max_percent` of `max_rows` rows per call, and a large one grows by `max_percent`).
    #[serde(default = "default_max_percent")]
    pub max_percent: f64,
    /// Rows all calls of one task may change together.
    #[serde(default = "default_max_rows_per_task")]
    pub max_rows_per_task: u64,
    /// Rows one query may return; a query returning more is an error, not a truncation.
    #[serde(default = "default_max_result_rows")]
    pub max_result_rows: u64,
    /// Bytes one query may return (text and blobs at their length, other values 8 bytes).
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: ByteSize,
}

fn default_operations() -> Vec<Operation> {
    vec![Operation::Select]
}
fn default_max_rows() -> u64 {
    100
}
fn default_max_percent() -> f64 {
    10.0
}
fn default_max_rows_per_task() -> u64 {
    1_000
}
fn default_max_result_rows() -> u64 {
    1_000
}
fn default_max_result_bytes() -> ByteSize {
    ByteSize::mib(16)
}

/// Something a grant may allow on its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Select,
    Insert,
    Update,
    Delete,
}

impl Operation {
    pub(super) fn name(self) -> &'static str {
        match self {
            Operation::Select => "select",
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}
