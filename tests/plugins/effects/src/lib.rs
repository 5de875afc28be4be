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
//! - `raw_output` returns JSON text as given, and `secret_shaped` a secret in JSON text of
//!   its own writing (escaped, encoded): the host must redact the secret however it is
//!   written; `secret_stash` puts a secret in a file, a kv value or key, a row or a log
//!   message, which later calls read back without asking for it: redacted too.

use moat_guest::Effect::{Delete, Network, Read, Write};
use moat_guest::serde_json::value::RawValue;
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

/// One kv operation of a script: `set` (`key`, `value`, `times` copies of `value`), `delete`,
/// `get` or `list` (`key` is the prefix).
#[derive(Deserialize, JsonSchema)]
struct KvOp {
    op: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    times: Option<usize>,
}

/// Operations run in order, in one call; the first refusal fails the call, unless
/// `go_on`, in which case each refusal is reported in the output and the call goes on.
#[derive(Deserialize, JsonSchema)]
struct KvScript {
    ops: Vec<KvOp>,
    #[serde(default)]
    go_on: bool,
}

fn kv_script(a: KvScript) -> Result<Vec<String>, ToolError> {
    let mut said = Vec::new();
    for op in a.ops {
        let outcome = match op.op.as_str() {
            "set" => {
                let value = op.value.repeat(op.times.unwrap_or(1));
                kv::set(&op.key, value.as_bytes()).map(|()| "ok".to_owned())
            }
            "delete" => kv::delete(&op.key).map(|existed| existed.to_string()),
            "get" => kv::get(&op.key)
                .map(|v| v.map_or("none".to_owned(), |v| String::from_utf8_lossy(&v).into_owned())),
            "list" => kv::list_keys(&op.key, u32::MAX).map(|keys| keys.join(",")),
            other => return Err(ToolError::InvalidInput(format!("no kv op `{other}`"))),
        };
        match outcome {
            Ok(text) => said.push(text),
            Err(error) if a.go_on => said.push(format!("{:?}", fail(error))),
            Err(error) => return Err(fail(error)),
        }
    }
    Ok(said)
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

/// JSON text to return exactly as given (escapes and all), not serialized again.
#[derive(Deserialize, JsonSchema)]
struct RawArgs {
    text: String,
}

fn raw_output(a: RawArgs) -> Result<Box<RawValue>, ToolError> {
    RawValue::from_string(a.text).map_err(|e| ToolError::InvalidInput(e.to_string()))
}

/// A secret, with `prefix` and `suffix` around it, in the form `shape` names: `plain`,
/// `escaped` (every character a `\u` escape), `base64`, `base64url` (unpadded), `hex`,
/// `HEX`, `percent` (every byte `%XX`) or `percent_lower` (what is not a letter or digit,
/// `%xx`).
#[derive(Deserialize, JsonSchema)]
struct Shaped {
    name: String,
    shape: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    suffix: String,
}

/// `text` in the form `shape` names (see [`Shaped`]); `escaped` is a JSON string literal.
fn shaped(text: &str, shape: &str) -> Result<String, ToolError> {
    const STD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let base64 = |alphabet: &[u8], pad: bool| {
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
            if pad {
                out.push_str(&"=".repeat(3 - chunk.len()));
            }
        }
        out
    };
    let url: Vec<u8> = STD.iter().map(|c| match c { b'+' => b'-', b'/' => b'_', c => *c }).collect();
    Ok(match shape {
        "plain" => text.to_owned(),
        "escaped" => {
            let mut out = String::from("\"");
            for unit in text.encode_utf16() {
                out.push_str(&format!("\\u{unit:04x}"));
            }
            out.push('"');
            out
        }
        "base64" => base64(STD, true),
        "base64url" => base64(&url[..], false),
        "hex" => text.bytes().map(|b| format!("{b:02x}")).collect(),
        "HEX" => text.bytes().map(|b| format!("{b:02X}")).collect(),
        "percent" => text.bytes().map(|b| format!("%{b:02X}")).collect(),
        "percent_lower" => text
            .bytes()
            .map(|b| match b.is_ascii_alphanumeric() {
                true => (b as char).to_string(),
                false => format!("%{b:02x}"),
            })
            .collect(),
        other => return Err(ToolError::InvalidInput(format!("no shape `{other}`"))),
    })
}

/// The secret in that shape, as JSON text the tool writes itself: `{"value": ...}`, and for
/// `escaped` the escaped string as a key too.
fn secret_shaped(a: Shaped) -> Result<Box<RawValue>, ToolError> {
    let value = secrets::get(&a.name).map_err(fail)?;
    let text = format!("{}{value}{}", a.prefix, a.suffix);
    let json = match a.shape.as_str() {
        "escaped" => {
            let escaped = shaped(&text, "escaped")?;
            format!("{{\"value\": {escaped}, {escaped}: [{escaped}]}}")
        }
        shape => {
            let text = shaped(&text, shape)?;
            let quoted = moat_guest::serde_json::to_string(&text).map_err(fail)?;
            format!("{{\"value\": {quoted}}}")
        }
    };
    RawValue::from_string(json).map_err(fail)
}

/// Where `secret_stash` puts a secret (in the shape `shape`, see [`Shaped`], `escaped`
/// excepted): a file (`grant`, `path`), a kv value (`kv_value` is its key), a kv key
/// (`kv_key` is its prefix), a row of an SQL table whose statement holds it (`sql_grant`,
/// `sql_table`, one text column), a log message (`log`).
#[derive(Deserialize, JsonSchema)]
struct Stash {
    name: String,
    #[serde(default)]
    shape: Option<String>,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    kv_value: Option<String>,
    #[serde(default)]
    kv_key: Option<String>,
    #[serde(default)]
    sql_grant: Option<String>,
    #[serde(default)]
    sql_table: Option<String>,
    #[serde(default)]
    log: bool,
}

fn secret_stash(a: Stash) -> Result<String, ToolError> {
    let value = secrets::get(&a.name).map_err(fail)?;
    let text = shaped(&value, a.shape.as_deref().unwrap_or("plain"))?;
    if let (Some(grant), Some(path)) = (&a.grant, &a.path) {
        fs::open(grant).map_err(fail)?.write(path, text.as_bytes()).map_err(fail)?;
    }
    if let Some(key) = &a.kv_value {
        kv::set(key, text.as_bytes()).map_err(fail)?;
    }
    if let Some(prefix) = &a.kv_key {
        kv::set(&format!("{prefix}{text}"), b"x").map_err(fail)?;
    }
    if let (Some(grant), Some(table)) = (&a.sql_grant, &a.sql_table) {
        let statement = format!("INSERT INTO {table} VALUES ('{}')", text.replace('\'', "''"));
        sql::open(grant).map_err(fail)?.execute(&statement, &[]).map_err(fail)?;
    }
    if a.log {
        moat_guest::log::info(&format!("stashing {text}"));
    }
    Ok("stashed".to_owned())
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
    Tool::new("kv_script", "Runs kv operations in order.", kv_script).effects(&[Write, Delete]),
    Tool::new("secret_echo", "Returns a secret (which must be redacted).", secret_echo),
    Tool::new("secret_in_error", "Fails with a secret in the message.", secret_in_error),
    Tool::new("undeclared_write", "Writes a file without declaring it.", fs_write),
    Tool::new("fs_ops", "Runs file operations in order.", fs_ops).effects(&[Read, Write, Delete]),
    Tool::new("raw_output", "Returns JSON text exactly as given.", raw_output),
    Tool::new("secret_shaped", "Returns a secret in a shape of its own writing.", secret_shaped),
    Tool::new("secret_stash", "Puts a secret where a later call finds it.", secret_stash)
        .effects(&[Write]),
);
