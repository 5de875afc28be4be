//! Secrets never leave moat, however a tool writes them: outputs are redacted as their JSON
//! reads (escapes undone, keys as well as values), in the common encodings of each value
//! (base64 at every offset, hex, percent-encoding), whether or not the call asked for the
//! secret (a value stashed in a file, a kv value or key, or a row in one call comes back
//! redacted in the next, of any tool, after a restart too), through `Host::run` and
//! `moat serve --stdio` alike; and no audit record or blob ever holds one, in any form.
//! Property tests: any secret, in any JSON, written with any escaping.

use crate::support::built;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use moat::capability::secrets::{Revealed, MIN_REDACTED_LEN};
use moat::{CallError, Config, Host};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Quotes, a backslash, a slash, letters past ASCII and past the BMP, and characters that
/// percent-encoding changes: every way a naive search can miss a value.
const SECRET: &str = "Tok\"en\\/ü-😀 s3cr3t+=?&%";

/// Tools of the `effects` plugin these tests call; each is granted the secret, the `data`
/// directory, a kv namespace and the `db` database. `fs_ops` gets all but the secret.
const TOOLS: &[&str] = &[
    "secret_shaped",
    "secret_stash",
    "secret_in_error",
    "raw_output",
    "fs_read",
    "fs_write",
    "kv_get",
    "kv_script",
    "sql_query",
    "sql_execute",
];

/// A directory with `moat.toml` (the secret `TOKEN` from `token.txt`, the grants above,
/// `extra`), `data/`, and `db.sqlite` whose table `t` holds 100 rows.
fn sandbox(secret: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("token.txt"), format!("{secret}\n")).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
    db.execute_batch("CREATE TABLE t (v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) INSERT INTO t SELECT 'row ' || i FROM n;").unwrap();
    let mut toml = String::from(
        "state_dir = \"state\"\n[confidence]\nhigh = 0\n[secrets.TOKEN]\nfile = \"token.txt\"\n",
    );
    let grants = |tool: &str, secrets: bool| {
        let secrets = if secrets { "secrets = [\"TOKEN\"]\n" } else { "" };
        format!(
            "[tools.{tool}.grants]\n{secrets}[tools.{tool}.grants.fs.data]\npath = \"data\"\n\
             mode = \"read-write\"\n[tools.{tool}.grants.kv]\n[tools.{tool}.grants.sql.db]\n\
             path = \"db.sqlite\"\ntables = [\"t\"]\n\
             operations = [\"select\", \"insert\", \"update\", \"delete\"]\nmax_percent = 100.0\n"
        )
    };
    for tool in TOOLS {
        toml.push_str(&grants(tool, true));
    }
    toml.push_str(&grants("fs_ops", false));
    toml.push_str(extra);
    std::fs::write(dir.path().join("moat.toml"), toml).unwrap();
    dir
}

/// A host over the test plugins in `dir` (each one a fresh start: nothing remembered).
fn host_in(dir: &Path) -> Host {
    let mut config = Config::load(&dir.join("moat.toml")).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    config.plugins.policies = dir.join("policies");
    let (host, errors) = Host::new(config).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    host
}

fn call(host: &Host, tool: &str, args: Value) -> Result<String, CallError> {
    host.call(tool, &args.to_string()).map(|response| response.output)
}

/// Every form of `secret` that must never be seen: itself, its hex in either case, its
/// base64 (both alphabets, padded or not, and the three offsets it can have inside a longer
/// base64 string), percent-encoded (every byte, or all but letters and digits, either case),
/// and JSON-escaped (`\u` for every character, either case).
fn forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![secret.to_owned(), hex::encode(bytes), hex::encode_upper(bytes)];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        forms.push(engine.encode(bytes));
    }
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            let encoded = engine.encode([vec![0u8; offset], bytes.to_vec()].concat());
            forms
                .push(encoded[(8 * offset).div_ceil(6)..8 * (offset + bytes.len()) / 6].to_owned());
        }
    }
    for upper in [false, true] {
        let hex = |b: u8| if upper { format!("%{b:02X}") } else { format!("%{b:02x}") };
        forms.push(bytes.iter().map(|b| hex(*b)).collect());
        forms.push(
            bytes
                .iter()
                .map(|b| if b.is_ascii_alphanumeric() { (*b as char).to_string() } else { hex(*b) })
                .collect(),
        );
        let escaped: String = secret.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
        forms.push(if upper { escaped.to_uppercase().replace("\\U", "\\u") } else { escaped });
    }
    forms.retain(|form| form.len() >= MIN_REDACTED_LEN);
    forms
}

/// Every string of `value`, keys included.
fn strings(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Array(items) => stack.extend(items),
            Value::Object(fields) => {
                out.extend(fields.keys().cloned());
                stack.extend(fields.values());
            }
            _ => {}
        }
    }
    out
}

/// Fails if any string of `json` (JSON text), or `json` itself as text, holds a form of
/// `secret`.
#[track_caller]
fn assert_clean(json: &str, secret: &str) {
    let value: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    let forms = forms(secret);
    for text in strings(&value).iter().chain([&json.to_owned()]) {
        for form in &forms {
            assert!(!text.contains(form.as_str()), "{form:?} is in {text:?}");
        }
    }
}

/// Fails if any file under `dir` holds a form of `secret`, as bytes or as JSON would write it.
#[track_caller]
fn assert_no_file_holds(dir: &Path, secret: &str) {
    let mut forms: Vec<Vec<u8>> = forms(secret).into_iter().map(String::into_bytes).collect();
    let quoted = serde_json::to_string(secret).unwrap();
    forms.push(quoted.as_bytes()[1..quoted.len() - 1].to_vec());
    let mut stack = vec![dir.to_owned()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for form in &forms {
            let found = bytes.windows(form.len()).any(|w| w == form.as_slice());
            assert!(!found, "{} holds {:?}", path.display(), String::from_utf8_lossy(form));
        }
    }
    assert!(files > 0, "nothing under {}", dir.display());
}

#[test]
fn a_secret_a_tool_writes_with_unicode_escapes_is_redacted_in_values_and_keys() {
    let dir = sandbox(SECRET, "");
    let host = host_in(dir.path());
    let output = call(&host, "secret_shaped", json!({"name": "TOKEN", "shape": "escaped"}));
    let output = output.unwrap();
    assert_clean(&output, SECRET);
    let value: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(
        value,
        json!({"value": "[redacted:TOKEN]", "[redacted:TOKEN]": ["[redacted:TOKEN]"]})
    );
}

#[test]
fn a_secret_holding_quotes_and_backslashes_is_redacted_however_the_json_escapes_them() {
    let dir = sandbox(SECRET, "");
    let host = host_in(dir.path());
    let plain = call(&host, "secret_shaped", json!({"name": "TOKEN", "shape": "plain"})).unwrap();
    assert_eq!(plain, r#"{"value": "[redacted:TOKEN]"}"#, "the rest kept byte for byte");
    // The same value, escaped every other way JSON allows, in text the tool returns as is.
    let spelled = r#"{"a": "Tok\u0022en\\\/\u00FC-\uD83D\uDE00 s3cr3t+=?&%", "b": "x Tok\"en\u005c/ü-😀\u0020s3cr3t+=?&% y"}"#;
    let output = call(&host, "raw_output", json!({"text": spelled})).unwrap();
    assert_clean(&output, SECRET);
    let value: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(value, json!({"a": "[redacted:TOKEN]", "b": "x [redacted:TOKEN] y"}));
}

#[test]
fn a_secret_in_base64_hex_or_percent_encoding_is_redacted() {
    let dir = sandbox(SECRET, "");
    let host = host_in(dir.path());
    let shapes = ["plain", "base64", "base64url", "hex", "HEX", "percent", "percent_lower"];
    for shape in shapes {
        // Inside longer text, at each of the three base64 offsets.
        for (prefix, suffix) in [("", ""), ("a", "zz"), ("ab", "z"), ("abc", "")] {
            let args = json!({"name": "TOKEN", "shape": shape, "prefix": prefix, "suffix": suffix});
            let output = call(&host, "secret_shaped", args).unwrap();
            assert!(output.contains("[redacted:TOKEN]"), "{shape} {prefix:?}: {output}");
            assert_clean(&output, SECRET);
        }
    }
}

#[test]
fn a_secret_in_an_error_or_a_rewrite_is_redacted_in_every_form() {
    let policies = built("test-policies");
    let dir = sandbox(SECRET, "");
    std::fs::copy(policies.join("scripted.wasm"), dir.path().join("policies/10-scripted.wasm"))
        .unwrap();
    let host = host_in(dir.path());
    let Err(CallError::Tool { message, .. }) =
        call(&host, "secret_in_error", json!({"name": "TOKEN"}))
    else {
        panic!("the tool fails")
    };
    assert_eq!(message, "could not use [redacted:TOKEN]");
    // A policy rewrites a harmless output into one holding the secret, escaped and encoded.
    let rewrite = json!({"v": SECRET, "b": STANDARD.encode(SECRET), "h": hex::encode(SECRET)});
    let escaped = rewrite.to_string().replace('s', r"\u0073");
    let args = json!({"text": "1", "_guard": {"result": format!("rewrite:{escaped}")}});
    let output = call(&host, "raw_output", args).unwrap();
    assert_clean(&output, SECRET);
    let value: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(
        value,
        json!({"v": "[redacted:TOKEN]", "b": "[redacted:TOKEN]", "h": "[redacted:TOKEN]"})
    );
}

/// Stashes the secret everywhere a later call can read it back: `data/stash.txt`, kv value
/// `v`, kv key `k-SECRET`, a row of `t` (through a statement holding it).
fn stash(host: &Host, shape: &str) {
    let args = json!({"name": "TOKEN", "shape": shape, "grant": "data", "path": "stash.txt",
        "kv_value": "v", "kv_key": "k-", "sql_grant": "db", "sql_table": "t", "log": true});
    assert_eq!(call(host, "secret_stash", args).unwrap(), r#""stashed""#);
}

/// Reads back every stash without asking for the secret; each output must hold the marker
/// and no form of the secret.
fn read_back(host: &Host, secret: &str) {
    let reads = [
        ("fs_read", json!({"grant": "data", "path": "stash.txt"})),
        ("fs_ops", json!({"grant": "data", "ops": [{"op": "read", "path": "stash.txt"}]})),
        ("kv_get", json!({"key": "v"})),
        ("kv_script", json!({"ops": [{"op": "list", "key": "k-"}, {"op": "get", "key": "v"}]})),
        (
            "sql_query",
            json!({"grant": "db", "statement": "SELECT v FROM t WHERE v NOT LIKE 'row %'"}),
        ),
    ];
    for (tool, args) in reads {
        let output = call(host, tool, args).unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(output.contains("[redacted:TOKEN]"), "{tool}: {output}");
        assert_clean(&output, secret);
    }
}

#[test]
fn a_secret_stashed_in_one_call_is_redacted_when_any_tool_reads_it_back_later() {
    for shape in ["plain", "base64", "hex", "percent"] {
        let dir = sandbox(SECRET, "");
        let host = host_in(dir.path());
        stash(&host, shape);
        // The same host; then a new one (nothing remembered), where `fs_ops`, which is not
        // granted the secret, reads it too.
        read_back(&host, SECRET);
        drop(host);
        read_back(&host_in(dir.path()), SECRET);
    }
}

#[test]
fn a_rotated_secret_is_still_redacted_in_its_old_value() {
    let dir = sandbox(SECRET, "");
    let host = host_in(dir.path());
    stash(&host, "plain");
    std::fs::write(dir.path().join("token.txt"), "a-new-value-entirely").unwrap();
    read_back(&host, SECRET);
}

#[test]
fn no_audit_record_or_blob_holds_a_secret_in_any_form() {
    let dir = sandbox(SECRET, "");
    {
        let host = host_in(dir.path());
        stash(&host, "plain");
        stash(&host, "base64");
        for shape in ["escaped", "hex", "percent"] {
            call(&host, "secret_shaped", json!({"name": "TOKEN", "shape": shape})).unwrap();
        }
        let _ = call(&host, "secret_in_error", json!({"name": "TOKEN"}));
        read_back(&host, SECRET);
        // Changes whose before-images hold the secret, by calls that never asked for it.
        let overwrite = json!({"grant": "data", "path": "stash.txt", "text": "over"});
        call(&host, "fs_write", overwrite).unwrap();
        call(&host, "kv_script", json!({"ops": [{"op": "set", "key": "v", "value": "x"}]}))
            .unwrap();
        let update =
            json!({"grant": "db", "statement": "UPDATE t SET v = 'gone' WHERE v NOT LIKE 'row %'"});
        assert_eq!(call(&host, "sql_execute", update).unwrap(), "2");
    }
    assert_no_file_holds(&dir.path().join("state/audit"), SECRET);
    // What was redacted is recorded so: the statement's text, the key.
    let log =
        std::fs::read_to_string(moat::audit::log_path(&dir.path().join("state/audit"))).unwrap();
    assert!(log.contains("INSERT INTO t VALUES ('[redacted:TOKEN]')"), "{log}");
    assert!(log.contains("k-[redacted:TOKEN]"), "{log}");
    assert!(log.contains("its undo holds a secret value"), "{log}");
}

#[test]
fn a_secret_never_reaches_the_log_of_moat_call() {
    let dir = sandbox(SECRET, &format!("[plugins]\ntools = [{:?}]\n", built("tests")));
    for shape in ["plain", "hex", "base64"] {
        let args = json!({"name": "TOKEN", "shape": shape, "log": true}).to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir.path())
            .env("MOAT_LOG", "info")
            .args(["call", "secret_stash", "--args", &args])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("stashing [redacted:TOKEN]"), "{stderr}");
        for form in forms(SECRET) {
            assert!(!stderr.contains(&form), "{form:?} is in {stderr}");
        }
    }
}

/// `moat serve --stdio` over `dir`: sends `calls` (tool, arguments) as `tools/call` requests
/// and returns each answer's `result`.
fn serve(dir: &Path, calls: &[(&str, Value)]) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
        .current_dir(dir)
        .args(["serve", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    // Ends by itself when moat closes its standard output.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut send = |message: Value| writeln!(stdin, "{message}").unwrap();
    send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "moat-tests", "version": "0"}}}));
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    // One call at a time, each answered before the next is sent: later calls read back what
    // earlier ones stashed, and calls sent at once would run at once.
    let mut results = vec![Value::Null; calls.len()];
    for (index, (tool, args)) in calls.iter().enumerate() {
        let id = index as u64 + 1;
        let params = json!({"name": tool, "arguments": args});
        send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}));
        // Bounded in lines and in time: moat answers each request once.
        for _ in 0..100 {
            let line =
                lines.recv_timeout(std::time::Duration::from_secs(60)).expect("moat answers");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"].as_u64() == Some(id) {
                results[index] = message["result"].clone();
                break;
            }
        }
    }
    drop(stdin);
    child.wait().unwrap();
    results
}

#[test]
fn through_moat_serve_the_text_and_the_structured_content_are_redacted() {
    let dir = sandbox(SECRET, &format!("[plugins]\ntools = [{:?}]\n", built("tests")));
    let stash = json!({"name": "TOKEN", "grant": "data", "path": "stash.txt", "kv_key": "k-"});
    let results = serve(
        dir.path(),
        &[
            ("secret_shaped", json!({"name": "TOKEN", "shape": "escaped"})),
            ("secret_shaped", json!({"name": "TOKEN", "shape": "base64", "prefix": "ab"})),
            ("secret_stash", stash),
            ("fs_read", json!({"grant": "data", "path": "stash.txt"})),
            ("kv_script", json!({"ops": [{"op": "list", "key": "k-"}]})),
            ("secret_in_error", json!({"name": "TOKEN"})),
        ],
    );
    for (i, result) in results.iter().enumerate() {
        assert!(result.is_object(), "call {i}: {result}");
        assert_clean(&result.to_string(), SECRET);
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains("[redacted:TOKEN]") || i == 2, "call {i}: {result}");
        if result["isError"] != true {
            assert_clean(text, SECRET);
        }
    }
    let structured = &results[0]["structuredContent"];
    assert_eq!(structured["value"], "[redacted:TOKEN]", "{}", results[0]);
    assert_eq!(structured["[redacted:TOKEN]"], json!(["[redacted:TOKEN]"]), "{}", results[0]);
    assert_eq!(results[5]["isError"], true);
}

// ---- Property tests -------------------------------------------------------------------

/// Secrets with quotes, backslashes, letters past ASCII, control characters, and the
/// characters encodings change.
fn secret() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        6 => prop::char::range('a', 'z'),
        2 => prop::char::range('0', '9'),
        4 => prop::sample::select(vec!['"', '\\', '/', '%', '+', '=', ' ', '&', '?', '\n', '\t',
            '\u{1}', '\u{7f}', 'é', 'ß', '中', '😀', '\u{2028}', '[', ']', ':']),
    ];
    prop::collection::vec(chars, 4..20).prop_map(|chars| chars.into_iter().collect())
}

/// How a secret is put into a string: as is, or in one of its encodings, or JSON-escaped
/// inside the text (a JSON document inside a string).
fn encoded(secret: &str, how: u8, prefix: &str, suffix: &str) -> String {
    let embedded = format!("{prefix}{secret}{suffix}");
    match how % 8 {
        0 => embedded,
        1 => STANDARD.encode(&embedded),
        2 => URL_SAFE_NO_PAD.encode(&embedded),
        3 => hex::encode(&embedded),
        4 => hex::encode_upper(&embedded),
        5 => embedded.bytes().map(|b| format!("%{b:02x}")).collect(),
        6 => serde_json::to_string(&embedded).unwrap(),
        _ => embedded.encode_utf16().map(|u| format!("\\u{u:04X}")).collect(),
    }
}

/// The text of a string made of `pieces`: plain text, each followed by a secret, encoded.
fn text_of(pieces: &[(String, Option<(usize, u8)>)], secrets: &[String]) -> String {
    let mut text = String::new();
    for (plain, secret) in pieces {
        text.push_str(plain);
        if let Some((i, how)) = secret {
            let secret = &secrets[i % secrets.len()];
            text.push_str(&encoded(secret, *how, &plain[..plain.len().min(2)], "z"));
        }
    }
    text
}

/// A JSON value whose strings (keys too) may hold the secrets, encoded.
#[derive(Clone, Debug)]
enum Doc {
    Str(Vec<(String, Option<(usize, u8)>)>),
    Num(f64),
    Lit(&'static str),
    Arr(Vec<Doc>),
    Obj(Vec<(Doc, Doc)>),
}

fn doc() -> impl Strategy<Value = Doc> {
    // Plain text may read like a marker, so that redacted keys collide with it.
    let piece =
        ("[a-z \\[\\]:]{0,5}|\\[redacted:S0\\]", prop::option::of((0usize..3, any::<u8>())));
    let string = prop::collection::vec(piece, 0..4).prop_map(Doc::Str).boxed();
    let leaf = prop_oneof![
        4 => string.clone(),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Doc::Num),
        1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(Doc::Lit),
    ];
    leaf.prop_recursive(4, 40, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Doc::Arr),
            prop::collection::vec((string.clone(), inner), 0..5).prop_map(Doc::Obj),
        ]
    })
}

/// `doc` as JSON text, each character of each string written as itself or escaped as
/// `escape` says (cycling), with white space between tokens.
fn write(doc: &Doc, secrets: &[String], escape: &[u8], out: &mut String, n: &mut usize) {
    let next = |n: &mut usize| {
        *n += 1;
        escape[*n % escape.len()]
    };
    match doc {
        Doc::Str(pieces) => {
            out.push('"');
            for c in text_of(pieces, secrets).chars() {
                let e = next(n);
                match c {
                    '"' | '\\' if e % 2 == 0 => out.extend(['\\', c]),
                    '"' | '\\' | '\u{0}'..='\u{1f}' => {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    }
                    _ if e % 3 == 0 => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{u:04X}"));
                        }
                    }
                    '/' if e % 5 == 1 => out.push_str("\\/"),
                    _ => out.push(c),
                }
            }
            out.push('"');
        }
        Doc::Num(f) => out.push_str(&serde_json::to_string(f).unwrap()),
        Doc::Lit(l) => out.push_str(l),
        Doc::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if next(n) % 2 == 0 { "," } else { " ,\n " });
                }
                write(item, secrets, escape, out, n);
            }
            out.push(']');
        }
        Doc::Obj(fields) => {
            out.push_str("{ ");
            // Keys distinct as they read (so that none is lost before redaction either).
            let mut keys = std::collections::HashSet::new();
            let fields = fields.iter().filter(|(key, _)| match key {
                Doc::Str(pieces) => keys.insert(text_of(pieces, secrets)),
                _ => false,
            });
            for (i, (key, value)) in fields.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(key, secrets, escape, out, n);
                out.push_str(" : ");
                write(value, secrets, escape, out, n);
            }
            out.push('}');
        }
    }
}

/// (keys, other values) of a JSON value, counted: redaction keeps both.
fn counts(value: &Value) -> (usize, usize) {
    let mut stack = vec![value];
    let (mut keys, mut values) = (0, 0);
    while let Some(value) = stack.pop() {
        values += 1;
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(fields) => {
                keys += fields.len();
                stack.extend(fields.values());
            }
            _ => {}
        }
    }
    (keys, values)
}

/// Checks one redaction: valid JSON, no string holding any form of any secret, and as many
/// keys and values as before (no key lost to a collision).
fn check(secrets: &[String], json: &str, redacted: &str) -> Result<(), TestCaseError> {
    let before: Value = serde_json::from_str(json)
        .map_err(|e| TestCaseError::fail(format!("the test wrote bad JSON ({e}): {json}")))?;
    let after: Value = serde_json::from_str(redacted)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {redacted}")))?;
    for secret in secrets {
        for text in strings(&after) {
            for form in forms(secret) {
                prop_assert!(!text.contains(&form), "{form:?} in {text:?} of {redacted}");
            }
        }
    }
    prop_assert_eq!(counts(&before), counts(&after), "{} -> {}", json, redacted);
    Ok(())
}

#[test]
fn any_json_with_any_secret_in_it_comes_back_valid_with_no_form_of_the_secret_in_any_string() {
    let mut runner = crate::support::fuzz_runner(256);
    let strategy =
        (prop::collection::vec(secret(), 1..4), doc(), prop::collection::vec(any::<u8>(), 1..16));
    runner
        .run(&strategy, |(secrets, doc, escape)| {
            let values: Vec<(String, String)> =
                secrets.iter().enumerate().map(|(i, s)| (format!("S{i}"), s.clone())).collect();
            let revealed = Revealed::of(&values);
            let mut json = String::new();
            write(&doc, &secrets, &escape, &mut json, &mut 0);
            check(&secrets, &json, &revealed.redact_output(json.clone()))
        })
        .unwrap();
}

#[test]
fn any_output_a_tool_writes_comes_back_redacted_through_the_host() {
    let mut runner = crate::support::fuzz_runner(24);
    let dir = sandbox(SECRET, "");
    let host = host_in(dir.path());
    let secrets = vec![SECRET.to_owned()];
    runner
        .run(&(doc(), prop::collection::vec(any::<u8>(), 1..16)), |(doc, escape)| {
            let mut json = String::new();
            write(&doc, &secrets, &escape, &mut json, &mut 0);
            let output = call(&host, "raw_output", json!({"text": json}))
                .map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
            check(&secrets, &json, &output)
        })
        .unwrap();
}
