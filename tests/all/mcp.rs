//! `moat serve --stdio`: an MCP client's view. Each test starts the real binary and talks
//! newline-delimited JSON-RPC to it: the handshake, the tool list with schemas and
//! annotations, calls that succeed, calls refused for every kind of reason (as tool results
//! with `isError`, never as protocol errors), protocol errors for what is not a request, the
//! `_meta` conventions reaching the audit log, and a clean exit when the client hangs up.

use crate::support::built;
use moat::audit::read::{lines, Line};
use moat::audit::{self, Event};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long any one answer may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Lines read while looking for one answer, at most.
const MAX_LINES: usize = 100;

/// A minimal MCP client over a `moat serve --stdio` child process.
pub(crate) struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
}

impl Client {
    /// Starts `moat serve --stdio` over the example tools and the test plugins, with `toml`
    /// added to its configuration; its state lives in `dir/state`. Initialized.
    pub(crate) fn start(dir: &Path, toml: &str) -> Client {
        Client::start_with(dir, toml, json!({}))
    }

    /// [`Client::start`], declaring the client `capabilities`.
    fn start_with(dir: &Path, toml: &str, capabilities: Value) -> Client {
        Client::spawn(dir, toml).initialized(capabilities)
    }

    /// Starts `moat serve --stdio` with exactly `text` as its configuration. Initialized.
    pub(crate) fn start_with_config(dir: &Path, text: &str) -> Client {
        Client::spawn_with_config(dir, text).initialized(json!({}))
    }

    /// Initializes the session, declaring the client `capabilities`.
    fn initialized(mut self, capabilities: Value) -> Client {
        let client = &mut self;
        let init = client.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": capabilities,
                "clientInfo": {"name": "moat-tests", "version": "0"}
            }),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "moat", "{init}");
        assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}");
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
        self
    }

    fn spawn(dir: &Path, toml: &str) -> Client {
        let tools = built("tools").display().to_string();
        let tests = built("tests").display().to_string();
        let text = format!(
            "state_dir = \"state\"\n[plugins]\ntools = [{tools:?}, {tests:?}]\n\
             {toml}"
        );
        Client::spawn_with_config(dir, &text)
    }

    /// Starts `moat serve --stdio` with exactly `text` as its configuration.
    fn spawn_with_config(dir: &Path, text: &str) -> Client {
        let config = dir.join("moat.toml");
        std::fs::write(&config, text).unwrap();
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("moat starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        // Ends by itself when moat closes its standard output.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Client { child, stdin, lines, next_id: 1 }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line.
    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line moat writes, as JSON; fails after [`TIMEOUT`].
    pub(crate) fn next(&self) -> Value {
        let line = self.lines.recv_timeout(TIMEOUT).expect("moat answers in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// The answer to the request with `id`, skipping notifications.
    pub(crate) fn answer(&self, id: &Value) -> Value {
        for _ in 0..MAX_LINES {
            let message = self.next();
            if &message["id"] == id {
                return message;
            }
        }
        panic!("no answer to request {id} in {MAX_LINES} lines");
    }

    /// Sends a request and returns the whole answer (`result` or `error`).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.answer(&id)
    }

    /// Sends a request without waiting for its answer; returns its id.
    pub(crate) fn send_request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(&request.to_string());
        id
    }

    /// Calls a tool, with `meta` as the request's `_meta`; returns the result.
    pub(crate) fn call(&mut self, tool: &str, args: Value, meta: Value) -> Value {
        let answer =
            self.request("tools/call", json!({"name": tool, "arguments": args, "_meta": meta}));
        assert!(answer["error"].is_null(), "a protocol error: {answer}");
        answer["result"].clone()
    }

    /// Closes moat's standard input and waits (bounded) for it to exit.
    pub(crate) fn hang_up(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < TIMEOUT {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("moat did not exit within {TIMEOUT:?} of its input closing");
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The text of a tool result's first content block.
fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

/// The `structuredContent.error` of a refused call, checked to be an error result.
pub(crate) fn refusal(result: &Value) -> Value {
    assert_eq!(result["isError"], true, "{result}");
    let error = result["structuredContent"]["error"].clone();
    assert!(error["message"].is_string() && error["retryable"].is_boolean(), "{result}");
    error
}

#[test]
fn tools_list_offers_each_tool_with_its_schema_and_annotations_and_read_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "");
    let answer = client.request("tools/list", json!({}));
    let tools = answer["result"]["tools"].as_array().expect("a list of tools").clone();
    let tool = |name: &str| {
        tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name}: {answer}"))
    };
    let echo = tool("echo");
    assert_eq!(echo["description"], "Returns the text it is given, unchanged.");
    assert_eq!(echo["inputSchema"]["required"], json!(["text"]));
    assert_eq!(echo["annotations"]["readOnlyHint"], true);
    let remove = tool("fs_remove");
    assert_eq!(remove["annotations"]["readOnlyHint"], false);
    assert_eq!(remove["annotations"]["destructiveHint"], true);
    assert_eq!(tool("http_send")["annotations"]["openWorldHint"], true, "{answer}");
    let read_more = tool("read_more");
    assert_eq!(read_more["inputSchema"]["required"], json!(["cursor"]));
    assert_eq!(read_more["annotations"]["readOnlyHint"], true);
    assert!(client.hang_up().success());
}

#[test]
fn a_call_returns_the_output_as_text_and_an_object_as_structured_content() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "");
    let result = client.call("echo", json!({"text": "hi"}), json!({}));
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(text(&result), r#""hi""#);
    assert!(result.get("structuredContent").is_none(), "a string is not an object: {result}");
    let result = client.call("csv_stats", json!({"csv": "a,b\n1,2\n3,4\n"}), json!({}));
    assert_eq!(result["isError"], false, "{result}");
    assert!(result["structuredContent"].is_object(), "{result}");
    assert!(client.hang_up().success());
}

#[test]
fn a_long_output_says_how_to_read_on_and_read_more_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "[window]\ntokens = 200\n");
    let first = client.call("lines", json!({"count": 200}), json!({}));
    assert_eq!(first["isError"], false, "{first}");
    let how = first["content"][1]["text"].as_str().expect("a second block").to_owned();
    assert!(how.contains("The output continues") && how.contains("read_more"), "{how}");
    let cursor = first["_meta"]["moat/window"]["cursor"].as_str().expect("a cursor").to_owned();
    assert!(how.contains(&cursor), "{how}");
    let next = client.call("read_more", json!({"cursor": cursor}), json!({}));
    assert_eq!(next["isError"], false, "{next}");
    assert!(!text(&next).is_empty());
    assert!(next["_meta"]["moat/window"]["offset"].as_u64().unwrap() > 0, "{next}");
    assert!(client.hang_up().success());
}

#[test]
fn reading_on_is_admitted_like_any_call_and_refused_past_the_tasks_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "[window]\ntokens = 200\n[task]\ncalls = 2\n");
    let meta = json!({"moat/task": "reader"});
    let first = client.call("lines", json!({"count": 200}), meta.clone());
    let cursor = first["_meta"]["moat/window"]["cursor"].as_str().expect("a cursor").to_owned();
    let next = client.call("read_more", json!({"cursor": cursor}), meta.clone());
    assert_eq!(next["isError"], false, "{next}");
    let cursor = next["_meta"]["moat/window"]["cursor"].as_str().expect("a cursor").to_owned();
    let refused = client.call("read_more", json!({"cursor": cursor}), meta);
    let error = refusal(&refused);
    assert_eq!(error["kind"], "task_budget", "{refused}");
    assert!(error["message"].as_str().unwrap().contains("calls budget: limit 2"), "{refused}");
    assert!(client.hang_up().success());
}

#[test]
fn a_call_over_its_fuel_budget_is_an_error_result_of_kind_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "[budgets]\nfuel = 1_000_000\n");
    let result = client.call("spin", json!({}), json!({}));
    let error = refusal(&result);
    assert_eq!(error["kind"], "budget");
    assert_eq!(error["retryable"], false);
    assert!(text(&result).contains("exceeded its fuel budget"), "{result}");
    // The server keeps serving.
    assert_eq!(client.call("echo", json!({"text": "on"}), json!({}))["isError"], false);
    assert!(client.hang_up().success());
}

#[test]
fn a_high_stakes_call_without_confidence_is_denied_and_with_too_little_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "[confidence]\nhigh = 0.8\n");
    let args = json!({"grant": "data", "path": "keep.txt"});
    let result = client.call("fs_remove", args.clone(), json!({}));
    let error = refusal(&result);
    assert_eq!(error["kind"], "denied");
    assert!(text(&result).contains("no confidence was given"), "{result}");
    let result = client.call("fs_remove", args, json!({"moat/confidence": 0.42}));
    assert!(text(&result).contains("confidence 0.42 is below 0.80"), "{result}");
    assert!(client.hang_up().success());
}

#[test]
fn where_the_operator_allows_it_an_escalation_is_put_to_a_client_that_can_elicit() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[escalation]\nclient = \"allowed\"\n[confidence]\nhigh = 0.8\n\
                [tools.echo]\nstakes = \"high\"\n";
    let mut client = Client::start_with(dir.path(), toml, json!({"elicitation": {}}));
    for (answer, refused) in [("accept", false), ("decline", true), ("cancel", true)] {
        let args = json!({"name": "echo", "arguments": {"text": answer}});
        let id = client.send_request("tools/call", args);
        let question = client.next();
        assert_eq!(question["method"], "elicitation/create", "{question}");
        let message = question["params"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("tool: echo"), "{message}");
        assert!(message.contains("no confidence was given"), "{message}");
        let reply = json!({"jsonrpc": "2.0", "id": question["id"], "result": {
            "action": answer, "content": {"note": format!("{answer} in a test")}}});
        client.send(&reply.to_string());
        let result = client.answer(&id)["result"].clone();
        if refused {
            let error = refusal(&result);
            assert_eq!(error["kind"], "escalation_declined", "{answer}: {result}");
            assert!(text(&result).contains("denied by mcp client `moat-tests`"), "{result}");
        } else {
            assert_eq!(result["isError"], false, "{result}");
            assert!(text(&result).contains("accept"), "{result}");
        }
    }
    assert!(client.hang_up().success());
    let log = std::fs::read_to_string(dir.path().join("state/audit/log.jsonl")).unwrap();
    assert!(log.contains("decline in a test"), "the person's note is in the audit log");
    // Who answered is the client's claim: recorded apart from identities moat verified.
    let escalations: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line.split_once(' ')?.1).ok())
        .filter(|record: &serde_json::Value| record["event"] == "escalation")
        .collect();
    assert_eq!(escalations.len(), 3, "{log}");
    for record in escalations {
        assert_eq!(record["reported_by"], "mcp client `moat-tests`", "{record}");
        assert!(record["by"].is_null(), "no verified approver: {record}");
        assert!(record["channel"].as_str().unwrap().starts_with("elicitation"), "{record}");
    }
}

#[test]
fn by_default_a_client_that_can_elicit_does_not_decide_its_own_escalation() {
    for config in ["", "[escalation]\nclient = \"allowed\"\nchannel = \"deny\"\n"] {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!("{config}[confidence]\nhigh = 0.8\n[tools.echo]\nstakes = \"high\"\n");
        let mut client = Client::start_with(dir.path(), &toml, json!({"elicitation": {}}));
        let args = json!({"name": "echo", "arguments": {"text": "approve me"}});
        let id = client.send_request("tools/call", args);
        // The next message with an id is the answer, not an elicitation/create.
        let answer = loop {
            let message = client.next();
            if message.get("id").is_some() {
                break message;
            }
        };
        assert!(answer.get("method").is_none(), "a question to the client ({config:?}): {answer}");
        assert_eq!(answer["id"], id, "{answer}");
        let result = answer["result"].clone();
        assert_eq!(refusal(&result)["kind"], "denied", "{config:?}: {result}");
        assert!(text(&result).contains("not approved"), "{result}");
        assert!(client.hang_up().success());
    }
}

#[test]
fn a_client_that_cannot_elicit_gets_the_hosts_channel_here_nobody_so_denied() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[confidence]\nhigh = 0.8\n[tools.echo]\nstakes = \"high\"\n";
    let mut client = Client::start(dir.path(), toml);
    let result = client.call("echo", json!({"text": "hi"}), json!({}));
    assert_eq!(refusal(&result)["kind"], "denied", "{result}");
    assert!(client.hang_up().success());
}

#[test]
fn a_tool_added_to_the_tools_directory_is_announced_as_a_list_change_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tools")).unwrap();
    let echo = built("tools").join("echo.wasm");
    std::fs::copy(&echo, dir.path().join("tools/echo.wasm")).unwrap();
    let text = "state_dir = \"state\"\n[plugins]\ntools = [\"tools\"]\n";
    let mut client = Client::spawn_with_config(dir.path(), text);
    let init = client.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "moat-tests", "version": "0"}}),
    );
    assert_eq!(init["result"]["capabilities"]["tools"]["listChanged"], true, "{init}");
    client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
    let csv = built("tools").join("csv-stats.wasm");
    std::fs::copy(csv, dir.path().join("tools/csv-stats.wasm")).unwrap();
    let notice = client.next();
    assert_eq!(notice["method"], "notifications/tools/list_changed", "{notice}");
    let tools = client.request("tools/list", json!({}));
    let names: Vec<_> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    assert!(names.contains(&json!("csv_stats")), "{names:?}");
    assert!(client.hang_up().success());
}

#[test]
fn a_tripped_breaker_and_a_loop_are_error_results_saying_when_or_whether_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    // Retries are not counted here: the same failing call five times trips the breaker.
    let mut client = Client::start(dir.path(), "[loops]\nretries = 0\n");
    for n in 0..5 {
        let result =
            client.call("flaky", json!({"fail": true}), json!({"moat/task": format!("t{n}")}));
        assert_eq!(refusal(&result)["kind"], "tool_error", "{result}");
    }
    let result = client.call("flaky", json!({"fail": false}), json!({"moat/task": "t5"}));
    let error = refusal(&result);
    assert_eq!(error["kind"], "breaker", "{result}");
    assert_eq!(error["retryable"], true, "{result}");
    assert!(error["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0), "{result}");

    let meta = json!({"moat/session": "agent-7", "moat/task": "loop"});
    for _ in 0..5 {
        assert_eq!(client.call("ok", json!({}), meta.clone())["isError"], false);
    }
    let result = client.call("ok", json!({}), meta);
    let error = refusal(&result);
    assert_eq!(error["kind"], "loop", "{result}");
    assert_eq!(error["retryable"], false, "{result}");
    assert!(client.hang_up().success());
}

#[test]
fn arguments_failing_the_schema_are_an_error_result_of_kind_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "");
    let result = client.call("echo", json!({"text": 42}), json!({}));
    let error = refusal(&result);
    assert_eq!(error["kind"], "invalid_arguments");
    assert!(text(&result).contains("invalid arguments for `echo`"), "{result}");
    assert!(client.hang_up().success());
}

#[test]
fn an_unknown_tool_is_an_error_result_listing_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "");
    let result = client.call("nope", json!({}), json!({}));
    let error = refusal(&result);
    assert_eq!(error["kind"], "unknown_tool");
    assert!(error["tools"].as_array().unwrap().iter().any(|t| t == "echo"), "{result}");
    assert!(text(&result).contains("the tools are: "), "{result}");
    assert!(client.hang_up().success());
}

#[test]
fn a_line_that_is_not_json_gets_a_parse_error_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "");
    client.send("{\"jsonrpc\": \"2.0\", \"id\": 99, \"method\": ");
    let error = client.next();
    assert_eq!(error["error"]["code"], -32700, "{error}");
    assert!(error["id"].is_null(), "{error}");
    // A `_meta` key of the wrong type is the client's mistake: invalid params.
    let answer = client.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}, "_meta": {"moat/confidence": "high"}}),
    );
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("moat/confidence"));
    assert_eq!(client.call("echo", json!({"text": "still here"}), json!({}))["isError"], false);
    assert!(client.hang_up().success());
}

/// Property test (bounded, as in `fuzz.rs`): lines of any kind, from raw text to
/// well-formed JSON-RPC with random methods and parameters, leave the server serving.
#[test]
fn any_lines_from_a_client_leave_the_server_answering() {
    use proptest::prelude::*;
    let value = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        prop::collection::btree_map("[a-z_/]{1,8}", "[ -~]{0,8}", 0..3)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, v.into())).collect())),
    ];
    let methods = prop::sample::select(vec![
        "tools/call",
        "tools/list",
        "initialize",
        "ping",
        "notifications/cancelled",
        "resources/list",
        "prompts/get",
        "completion/complete",
        "nope",
    ]);
    // Ids the client's own requests (1, 2, ...) never use, so their answers stay apart.
    let id = prop_oneof![Just(Value::Null), "fuzz-[a-z0-9]{0,6}".prop_map(Value::from)];
    let request = (methods, id, value.clone()).prop_map(|(method, id, params)| {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
    });
    let line = prop_oneof!["[^\n\r]{0,64}", request, value.prop_map(|v| v.to_string()),];
    let mut runner = crate::support::fuzz_runner(6);
    runner
        .run(&prop::collection::vec(line, 1..24), |lines| {
            let dir = tempfile::tempdir().unwrap();
            let mut client = Client::start(dir.path(), "");
            for line in &lines {
                client.send(line);
            }
            let answer = client.call("echo", json!({"text": "still here"}), json!({}));
            prop_assert_eq!(&answer["isError"], &json!(false), "after {:?}", lines);
            Ok(())
        })
        .unwrap();
}

#[test]
fn meta_names_the_task_and_records_its_prompt_and_output_and_the_host_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "");
    let meta = json!({
        "moat/task": "task-42", "moat/prompt": "say hi", "moat/reasoning": "asked to",
        "moat/confidence": 0.9, "moat/modelTokens": 120
    });
    assert_eq!(client.call("echo", json!({"text": "hi"}), meta)["isError"], false);
    let end = json!({"moat/task": "task-42", "moat/taskOutput": "said hi"});
    assert_eq!(client.call("echo", json!({"text": "bye"}), end)["isError"], false);
    // Without a task id, the task is the MCP session.
    assert_eq!(client.call("echo", json!({"text": "x"}), json!({}))["isError"], false);
    assert!(client.hang_up().success());

    let events: Vec<Event> = lines(&audit::log_path(&dir.path().join("state/audit")))
        .unwrap()
        .filter_map(|line| match line.unwrap() {
            Line::Record { record, .. } => Some(record.event),
            _ => None,
        })
        .collect();
    let tasks: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Call { task, .. } => Some(task.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(&tasks[..2], ["task-42", "task-42"], "{events:?}");
    assert!(tasks[2].starts_with("mcp-"), "{tasks:?}");
    // Whatever the task labels, the caller is the one the host knows: this connection.
    let principals: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Call { principal, .. } => Some(principal.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(principals, ["stdio"; 3], "{events:?}");
    let starts = events
        .iter()
        .filter(|e| matches!(e, Event::TaskStart { task, prompt: Some(_) } if task == "task-42"));
    assert_eq!(starts.count(), 1, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskEnd { task, output: Some(_) } if task == "task-42")),
        "{events:?}"
    );
    let confident = events.iter().any(
        |e| matches!(e, Event::Call { confidence: Some(c), reasoning: Some(_), .. } if *c == 0.9),
    );
    assert!(confident, "{events:?}");
}

#[test]
fn the_client_closing_its_end_stops_the_server_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "");
    let status = client.hang_up();
    assert!(status.success(), "{status:?}");
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn serve_without_a_transport_says_what_is_available() {
    let out = Command::new(env!("CARGO_BIN_EXE_moat")).arg("serve").output().expect("moat runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--stdio") && stderr.contains("--http ADDR"), "{stderr}");
}

#[test]
fn an_invalid_request_whose_id_is_readable_is_answered_with_that_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "");
    // The method is not a string: not a request at all.
    client.send(r#"{"jsonrpc": "2.0", "id": 7, "method": 42}"#);
    let error = client.answer(&json!(7));
    assert_eq!(error["error"]["code"], -32600, "{error}");
    // No method.
    client.send(r#"{"jsonrpc": "2.0", "id": "eight"}"#);
    assert_eq!(client.answer(&json!("eight"))["error"]["code"], -32600);
    // A known method with params of the wrong type.
    client.send(r#"{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": 3}"#);
    let error = client.answer(&json!(9));
    assert_eq!(error["error"]["code"], -32602, "{error}");
    assert_eq!(client.call("echo", json!({"text": "still here"}), json!({}))["isError"], false);
    assert!(client.hang_up().success());
}
