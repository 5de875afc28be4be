//! `effects`: thin tools over each capability operation, so tests can drive the host's
//! capabilities from a real guest. Each tool turns a capability error into `failed` with
//! the error's debug form (`NotGranted("...")`, `LimitExceeded("...")`, ...), so tests can
//! check the exact variant and message.
//!
//! Expectations (checked by `tests/all/capabilities*.rs`):
//! - without a grant every tool fails with `NotGranted` naming the tool and capability;
//! - `fs_*` stay inside their grant and count bytes and deletions;
//! - `sql_*` are limited to the granted tables and operations and row limits;
//! - `http_send` reaches only allow-listed origins;
//! - `secret_echo` returns the secret, which the host must redact;
//! - `open_handles` opens fs handles without end and must get `LimitExceeded`;
//! - `forged_handle` reads through a handle number it made up, and `dropped_handle` through
//!   one it already dropped: each must trap the call, never reach a grant;
//! - `write_then_fail` writes a file and then fails, which must undo the write;
//! - `sql_try` goes on after a refused statement, so the call commits the others;
//! - `undeclared_write` writes without declaring the `write` effect and must be denied;
//! - `fs_ops` runs file operations in order on one grant (FIFOs, hard links, overwrites, the
//!   crash test's churn), failing at the first refusal.

use moat_guest::Effect::{Delete, Network, Read, Write};
use moat_guest::{export_tools, fs, http, kv, secrets, sql, Deserialize, JsonSchema, Tool, ToolError};

/// `FsError::LimitExceeded("..")` becomes `LimitExceeded("..")`.
fn fail<E: std::fmt::Debug>(error: E) -> ToolError {
    let text = format!("{error:?}");
    match text.split_once("::") {
        Some((head, rest)) if !head.contains('(') => ToolError::Failed(rest.to_owned()),
        _ => ToolError::Failed(text),
    }
}

/// A file in a grant.
#[derive(Deserialize, JsonSchema)]
struct FileArgs {
    grant: String,
    path: String,
    #[serde(default)]
    text: String,
    /// For rename.
    #[serde(default)]
    to: String,
}

fn fs_read(a: FileArgs) -> Result<String, ToolError> {
    let bytes = fs::open(&a.grant).map_err(fail)?.read(&a.path).map_err(fail)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn fs_write(a: FileArgs) -> Result<(), ToolError> {
    fs::open(&a.grant).map_err(fail)?.write(&a.path, a.text.as_bytes()).map_err(fail)
}

fn fs_remove(a: FileArgs) -> Result<(), ToolError> {
    fs::open(&a.grant).map_err(fail)?.remove(&a.path).map_err(fail)
}

fn fs_rename(a: FileArgs) -> Result<(), ToolError> {
    fs::open(&a.grant).map_err(fail)?.rename(&a.path, &a.to).map_err(fail)
}

fn fs_list(a: FileArgs) -> Result<Vec<String>, ToolError> {
    let entries = fs::open(&a.grant).map_err(fail)?.list_dir(&a.path).map_err(fail)?;
    Ok(entries.into_iter().map(|e| e.name).collect())
}

/// Paths to remove one after another, in one call.
#[derive(Deserialize, JsonSchema)]
struct RemoveMany {
    grant: String,
    paths: Vec<String>,
}

fn fs_remove_many(a: RemoveMany) -> Result<usize, ToolError> {
    let dir = fs::open(&a.grant).map_err(fail)?;
    for path in &a.paths {
        dir.remove(path).map_err(fail)?;
    }
    Ok(a.paths.len())
}

fn write_then_fail(a: FileArgs) -> Result<(), ToolError> {
    fs::open(&a.grant).map_err(fail)?.write(&a.path, a.text.as_bytes()).map_err(fail)?;
    Err(ToolError::Failed("failing after the write".into()))
}

/// A grant name.
#[derive(Deserialize, JsonSchema)]
struct GrantArgs {
    grant: String,
}

fn open_handles(a: GrantArgs) -> Result<usize, ToolError> {
    let mut held = Vec::new();
    loop {
        match fs::open(&a.grant) {
            Ok(dir) => held.push(dir),
            Err(e) => return Err(ToolError::Failed(format!("after {} handles: {e:?}", held.len()))),
        }
    }
}

/// Which handle number to forge.
#[derive(Deserialize, JsonSchema)]
struct Forge {
    handle: u32,
}

fn forged_handle(a: Forge) -> Result<String, ToolError> {
    // SAFETY: not safe at all; the host must catch it.
    let forged = unsafe { fs::Dir::from_handle(a.handle) };
    let read = forged.read("keep.txt").map_err(fail)?;
    Ok(String::from_utf8_lossy(&read).into_owned())
}

fn dropped_handle(a: GrantArgs) -> Result<String, ToolError> {
    let dir = fs::open(&a.grant).map_err(fail)?;
    let number = dir.handle();
    drop(dir);
    // SAFETY: not safe at all: the handle was dropped; the host must catch it.
    let ghost = unsafe { fs::Dir::from_handle(number) };
    let read = ghost.read("keep.txt").map_err(fail)?;
    Ok(String::from_utf8_lossy(&read).into_owned())
}

/// A statement and its parameters (JSON numbers, strings and nulls).
#[derive(Deserialize, JsonSchema)]
struct SqlArgs {
    grant: String,
    statement: String,
    #[serde(default)]
    params: Vec<moat_guest::serde_json::Value>,
}

fn sql_params(values: &[moat_guest::serde_json::Value]) -> Vec<sql::Value> {
    use moat_guest::serde_json::Value as J;
    values
        .iter()
        .map(|v| match v {
            J::Null => sql::Value::Null,
            J::Bool(b) => sql::Value::Integer(*b as i64),
            J::Number(n) => match n.as_i64() {
                Some(i) => sql::Value::Integer(i),
                None => sql::Value::Real(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => sql::Value::Text(s.clone()),
            other => sql::Value::Text(other.to_string()),
        })
        .collect()
}

fn sql_execute(a: SqlArgs) -> Result<u64, ToolError> {
    let connection = sql::open(&a.grant).map_err(fail)?;
    connection.execute(&a.statement, &sql_params(&a.params)).map_err(fail)
}

fn sql_query(a: SqlArgs) -> Result<Vec<Vec<moat_guest::serde_json::Value>>, ToolError> {
    use moat_guest::serde_json::{json, Value as J};
    let connection = sql::open(&a.grant).map_err(fail)?;
    let rows = connection.query(&a.statement, &sql_params(&a.params)).map_err(fail)?;
    Ok(rows
        .rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| match v {
                    sql::Value::Null => J::Null,
                    sql::Value::Integer(i) => json!(i),
                    sql::Value::Real(f) => json!(f),
                    sql::Value::Text(s) => J::String(s),
                    sql::Value::Blob(b) => json!(b),
                })
                .collect()
        })
        .collect())
}

/// Statements run one after another in one call.
#[derive(Deserialize, JsonSchema)]
struct SqlScript {
    grant: String,
    statements: Vec<String>,
}

fn sql_script(a: SqlScript) -> Result<Vec<u64>, ToolError> {
    let connection = sql::open(&a.grant).map_err(fail)?;
    a.statements.iter().map(|s| connection.execute(s, &[]).map_err(fail)).collect()
}

/// Each statement's count, or its error: a refusal does not end the call.
fn sql_try(a: SqlScript) -> Result<Vec<String>, ToolError> {
    let connection = sql::open(&a.grant).map_err(fail)?;
    Ok(a.statements
        .iter()
        .map(|s| match connection.execute(s, &[]) {
            Ok(rows) => rows.to_string(),
            Err(e) => match fail(e) {
                ToolError::Failed(message) => message,
                other => format!("{other:?}"),
            },
        })
        .collect())
}

/// An HTTP request.
#[derive(Deserialize, JsonSchema)]
struct HttpArgs {
    method: String,
    url: String,
    #[serde(default)]
    body: Option<String>,
}

/// What came back.
#[derive(moat_guest::Serialize)]
struct HttpOut {
    status: u16,
    body: String,
}

fn http_send(a: HttpArgs) -> Result<HttpOut, ToolError> {
    let request = http::Request {
        method: a.method,
        url: a.url,
        headers: vec![],
        body: a.body.map(String::into_bytes),
    };
    let response = http::send(&request).map_err(fail)?;
    Ok(HttpOut { status: response.status, body: String::from_utf8_lossy(&response.body).into_owned() })
}

/// A key and a value.
#[derive(Deserialize, JsonSchema)]
struct KvArgs {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

fn kv_set(a: KvArgs) -> Result<(), ToolError> {
    kv::set(&a.key, a.value.unwrap_or_default().as_bytes()).map_err(fail)
}

fn kv_get(a: KvArgs) -> Result<Option<String>, ToolError> {
    Ok(kv::get(&a.key).map_err(fail)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// A secret's name.
#[derive(Deserialize, JsonSchema)]
struct SecretArgs {
    name: String,
}

fn secret_echo(a: SecretArgs) -> Result<String, ToolError> {
    let value = secrets::get(&a.name).map_err(fail)?;
    moat_guest::log::warn(&format!("the secret is {value}"));
    Ok(format!("the secret is {value}"))
}

fn secret_in_error(a: SecretArgs) -> Result<String, ToolError> {
    let value = secrets::get(&a.name).map_err(fail)?;
    Err(ToolError::Failed(format!("could not use {value}")))
}

/// One file operation of `fs_ops`: `write` (`text`, `times` copies of it), `read`, `stat`,
/// `list`, `remove` or `rename` (to `to`).
#[derive(Deserialize, JsonSchema)]
struct FsOp {
    op: String,
    path: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    times: Option<usize>,
    #[serde(default)]
    to: String,
}

/// File operations run in order in one call, on one grant; the first refusal fails the call.
#[derive(Deserialize, JsonSchema)]
struct FsOps {
    grant: String,
    ops: Vec<FsOp>,
}

/// Each operation's outcome: `ok`, what was read, or what `stat`/`list` saw.
fn fs_ops(a: FsOps) -> Result<Vec<String>, ToolError> {
    let dir = fs::open(&a.grant).map_err(fail)?;
    let mut said = Vec::new();
    for op in a.ops {
        said.push(match op.op.as_str() {
            "write" => {
                let text = op.text.repeat(op.times.unwrap_or(1));
                dir.write(&op.path, text.as_bytes()).map_err(fail)?;
                "ok".to_owned()
            }
            "read" => String::from_utf8_lossy(&dir.read(&op.path).map_err(fail)?).into_owned(),
            "stat" => {
                let entry = dir.stat(&op.path).map_err(fail)?;
                format!("{} dir={} size={}", entry.name, entry.is_dir, entry.size)
            }
            "list" => {
                let entries = dir.list_dir(&op.path).map_err(fail)?;
                entries.into_iter().map(|e| e.name).collect::<Vec<_>>().join(",")
            }
            "remove" => {
                dir.remove(&op.path).map_err(fail)?;
                "ok".to_owned()
            }
            "rename" => {
                dir.rename(&op.path, &op.to).map_err(fail)?;
                "ok".to_owned()
            }
            other => return Err(ToolError::InvalidInput(format!("no operation `{other}`"))),
        });
    }
    Ok(said)
}

export_tools!(
    Tool::new("fs_read", "Reads a file.", fs_read).effects(&[Read]),
    Tool::new("fs_write", "Writes a file.", fs_write).effects(&[Write]),
    Tool::new("fs_remove", "Removes a file.", fs_remove).effects(&[Delete]),
    Tool::new("fs_rename", "Renames a file.", fs_rename).effects(&[Write]),
    Tool::new("fs_list", "Lists a directory.", fs_list).effects(&[Read]),
    Tool::new("fs_remove_many", "Removes files one by one.", fs_remove_many).effects(&[Delete]),
    Tool::new("write_then_fail", "Writes a file, then fails.", write_then_fail).effects(&[Write]),
    Tool::new("open_handles", "Opens handles without end.", open_handles),
    Tool::new("forged_handle", "Reads through a made-up handle.", forged_handle).effects(&[Read]),
    Tool::new("dropped_handle", "Reads through a dropped handle.", dropped_handle).effects(&[Read]),
    Tool::new("sql_execute", "Runs a changing statement.", sql_execute).effects(&[Write, Delete]),
    Tool::new("sql_query", "Runs a query.", sql_query).effects(&[Read]),
    Tool::new("sql_script", "Runs statements in order.", sql_script).effects(&[Write, Delete]),
    Tool::new("sql_try", "Runs statements, going on after errors.", sql_try).effects(&[Write, Delete]),
    Tool::new("http_send", "Sends a request.", http_send).effects(&[Network]),
    Tool::new("kv_set", "Sets a key.", kv_set).effects(&[Write]),
    Tool::new("kv_get", "Gets a key.", kv_get),
    Tool::new("secret_echo", "Returns a secret (which must be redacted).", secret_echo),
    Tool::new("secret_in_error", "Fails with a secret in the message.", secret_in_error),
    Tool::new("undeclared_write", "Writes a file without declaring it.", fs_write),
    Tool::new("fs_ops", "Runs file operations in order.", fs_ops).effects(&[Read, Write, Delete]),
);
