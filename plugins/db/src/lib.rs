//! `db_query`, `db_execute` and `cleanup`: SQL over the database granted as `main`. What the statements
//! may touch, and how many rows they may change, is decided by the grant in `moat.toml`,
//! never by the tool: this is where "clean up the data" meets its limit.

use moat_guest::serde_json::{json, Map, Value as Json};
use moat_guest::sql::{self, Value};
use moat_guest::{export_tools, Deserialize, Effect, JsonSchema, Stakes, Tool, ToolError};

/// A statement and its parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Statement {
    /// One SQL statement; use `?` placeholders for values.
    sql: String,
    /// Values for the placeholders, in order (numbers, strings, null).
    #[serde(default)]
    params: Vec<Json>,
}

fn params(values: &[Json]) -> Result<Vec<Value>, ToolError> {
    values
        .iter()
        .map(|v| match v {
            Json::Null => Ok(Value::Null),
            Json::Bool(b) => Ok(Value::Integer(i64::from(*b))),
            Json::Number(n) => Ok(n.as_i64().map(Value::Integer).unwrap_or(Value::Real(n.as_f64().unwrap_or(0.0)))),
            Json::String(s) => Ok(Value::Text(s.clone())),
            other => Err(ToolError::InvalidInput(format!("parameter {other} is not a number, string or null"))),
        })
        .collect()
}

fn refused(error: sql::SqlError) -> ToolError {
    match error {
        sql::SqlError::Invalid(m) => ToolError::InvalidInput(m),
        sql::SqlError::NotGranted(m) | sql::SqlError::Denied(m) | sql::SqlError::LimitExceeded(m) => {
            ToolError::Denied(m)
        }
    }
}

fn db_query(statement: Statement) -> Result<Vec<Map<String, Json>>, ToolError> {
    let connection = sql::open("main").map_err(refused)?;
    let result = connection.query(&statement.sql, &params(&statement.params)?).map_err(refused)?;
    Ok(result
        .rows
        .into_iter()
        .map(|row| {
            result
                .columns
                .iter()
                .cloned()
                .zip(row.into_iter().map(|value| match value {
                    Value::Null => Json::Null,
                    Value::Integer(i) => json!(i),
                    Value::Real(f) => json!(f),
                    Value::Text(s) => Json::String(s),
                    Value::Blob(b) => json!(b),
                }))
                .collect()
        })
        .collect())
}

fn db_execute(statement: Statement) -> Result<Json, ToolError> {
    let connection = sql::open("main").map_err(refused)?;
    let changed = connection.execute(&statement.sql, &params(&statement.params)?).map_err(refused)?;
    Ok(json!({ "rows_changed": changed }))
}

/// What to clean up.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Cleanup {
    /// The table to clean up.
    table: String,
    /// Rows whose `status` is one of these are kept; every other row is deleted.
    keep_status: Vec<String>,
}

/// The "clean up the data" operation, as an eager agent would write it: delete everything
/// that is not obviously needed. The grant's row limits decide how far it gets.
fn cleanup(args: Cleanup) -> Result<Json, ToolError> {
    if args.table.is_empty() || !args.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ToolError::InvalidInput(format!("`{}` is not a table name", args.table)));
    }
    if args.keep_status.is_empty() {
        return Err(ToolError::InvalidInput("keep_status must name at least one status".into()));
    }
    let placeholders = vec!["?"; args.keep_status.len()].join(", ");
    let statement = format!("DELETE FROM {} WHERE status NOT IN ({placeholders})", args.table);
    let values: Vec<Value> = args.keep_status.into_iter().map(Value::Text).collect();
    let connection = sql::open("main").map_err(refused)?;
    let deleted = connection.execute(&statement, &values).map_err(refused)?;
    Ok(json!({ "deleted": deleted }))
}

export_tools!(
    Tool::new("db_query", "Runs a read-only SQL query on the database and returns the rows as objects.", db_query)
        .effects(&[Effect::Read]),
    Tool::new(
        "db_execute",
        "Runs one SQL statement that changes the database (INSERT, UPDATE, DELETE) and returns \
         the number of rows changed. Large changes are refused with the numbers.",
        db_execute
    )
    .effects(&[Effect::Write, Effect::Delete])
    .stakes(Stakes::High),
    Tool::new(
        "cleanup",
        "Cleans up a table: deletes every row whose status is not in `keep_status`.",
        cleanup
    )
    .effects(&[Effect::Delete])
    .stakes(Stakes::High),
);
