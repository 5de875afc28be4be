//! The authorizer's side of a sql grant: which tables and operations a statement may touch.

use super::Operation;
use rusqlite::hooks::{AuthAction, Authorization};

/// What a grant allows, as the authorizer sees it.
pub(super) struct Scope {
    pub grant: String,
    pub tables: Vec<String>,
    pub operations: Vec<Operation>,
    /// The tables and views of the database, lowercase, to tell them from CTEs.
    pub known: Vec<String>,
}

impl Scope {
    /// Allows or refuses one action; a refusal reads after "tool `T` may not ".
    pub fn judge(&self, action: &AuthAction<'_>) -> Result<Authorization, String> {
        let grant = &self.grant;
        let schema =
            |what: String| Err(format!("{what}: sql grant `{grant}` allows no schema changes"));
        match *action {
            AuthAction::Select | AuthAction::Recursive => Ok(Authorization::Allow),
            AuthAction::Function { function_name } if super::functions::allowed(function_name) => {
                Ok(Authorization::Allow)
            }
            AuthAction::Function { function_name } => Err(format!(
                "call function `{function_name}`: sql grant `{grant}` allows only SQLite's own \
                 functions of their arguments (scalar, aggregate, window, date, JSON, math)"
            )),
            // A table named but not read from (`count(*)`) comes without a column, and so
            // does a CTE or a subquery: those are not tables of the database. `json_each`
            // and `json_tree` are functions of their arguments.
            AuthAction::Read { table_name, column_name } => {
                let derived = column_name.is_empty() && !self.is_table(table_name);
                if !derived && !["json_each", "json_tree"].contains(&table_name) {
                    self.table(table_name)?;
                }
                Ok(Authorization::Allow)
            }
            AuthAction::Insert { table_name } => self.write(Operation::Insert, table_name),
            AuthAction::Update { table_name, .. } => self.write(Operation::Update, table_name),
            // `Ignore` still deletes, but row by row: SQLite's truncate optimization would
            // empty the table without telling the preupdate hook.
            AuthAction::Delete { table_name } => {
                self.write(Operation::Delete, table_name).map(|_| Authorization::Ignore)
            }
            AuthAction::Pragma { pragma_name, .. } => {
                Err(format!("run pragma `{pragma_name}`: sql grant `{grant}` allows no pragmas"))
            }
            AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
                Err(format!("attach or detach a database: sql grant `{grant}` is one database"))
            }
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Err(format!(
                "begin, commit or roll back: the host ends the call's transaction in sql grant \
                 `{grant}`"
            )),
            AuthAction::CreateTable { table_name } | AuthAction::CreateTempTable { table_name } => {
                schema(format!("create table `{table_name}`"))
            }
            AuthAction::DropTable { table_name } | AuthAction::DropTempTable { table_name } => {
                schema(format!("drop table `{table_name}`"))
            }
            AuthAction::AlterTable { table_name, .. } => {
                schema(format!("alter table `{table_name}`"))
            }
            _ => schema("change the schema".to_owned()),
        }
    }

    fn is_table(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        name.starts_with("sqlite_") || name.starts_with("pragma_") || self.known.contains(&name)
    }

    fn table(&self, table: &str) -> Result<(), String> {
        if self.tables.iter().any(|t| t.eq_ignore_ascii_case(table)) {
            return Ok(());
        }
        let granted: Vec<String> = self.tables.iter().map(|t| format!("`{t}`")).collect();
        Err(format!(
            "use table `{table}`: sql grant `{}` allows only {}",
            self.grant,
            if granted.is_empty() { "no tables".to_owned() } else { granted.join(", ") }
        ))
    }

    fn write(&self, operation: Operation, table: &str) -> Result<Authorization, String> {
        self.table(table)?;
        if self.operations.contains(&operation) {
            return Ok(Authorization::Allow);
        }
        Err(format!("{} `{table}`: {}", operation.name(), allowed(&self.grant, &self.operations)))
    }
}

/// "sql grant `shop` allows only select, insert".
pub(super) fn allowed(grant: &str, operations: &[Operation]) -> String {
    let names: Vec<&str> = operations.iter().map(|op| op.name()).collect();
    match names.is_empty() {
        true => format!("sql grant `{grant}` allows no operations"),
        false => format!("sql grant `{grant}` allows only {}", names.join(", ")),
    }
}

/// Whether `action` writes SQLite's own tables. SQLite asks about those before the schema
/// change itself (DROP TABLE deletes from `sqlite_master` first), and stops at the first
/// refusal: so this one is only noted, to let the next check name the change, and the
/// statement is refused after preparing if nothing else refused it.
pub(super) fn schema_write(action: &AuthAction<'_>) -> bool {
    written(action).is_some_and(|(table, _)| table.to_ascii_lowercase().starts_with("sqlite_"))
}

/// The table `action` changes, and how.
pub(super) fn written<'a>(action: &AuthAction<'a>) -> Option<(&'a str, Operation)> {
    match *action {
        AuthAction::Insert { table_name } => Some((table_name, Operation::Insert)),
        AuthAction::Update { table_name, .. } => Some((table_name, Operation::Update)),
        AuthAction::Delete { table_name } => Some((table_name, Operation::Delete)),
        _ => None,
    }
}
