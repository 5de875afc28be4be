//! The `moat` command: list and call tools, run a batch of calls, serve the tools over MCP,
//! read and verify the audit log, roll a task back, turn core modules into components.
//!
//! Exit status: 0 on success, 1 when moat itself cannot start (config, arguments), 2 when a
//! call is refused or fails (unknown tool, bad arguments, a budget, a trap, a tool error).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use moat::units::{ByteSize, Millis};
use moat::{BudgetOverrides, CallError, CallRequest, Config, Host, Usage};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod approvals;
mod audit;
mod lock;
mod new;
mod serve;

#[derive(Parser)]
#[command(
    name = "moat",
    version,
    about = "Run AI-agent tools as sandboxed, metered WebAssembly components"
)]
struct Cli {
    /// Configuration file [default: ./moat.toml if present, else embedded defaults]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Load tools from this directory instead of the configured ones (repeatable)
    #[arg(long = "tools", global = true, value_name = "DIR")]
    tool_dirs: Vec<PathBuf>,
    /// Load only plugins the lockfile pins or a trusted publisher signed (as `[plugins]
    /// locked = true`); any other is refused, and the refusal audited
    #[arg(long, global = true)]
    locked: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the tools: name, description, effects and argument schema
    Tools {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the guard policies in force, in the order they run
    Policies,
    /// Call a tool once, print its output, then the fuel, peak memory and wall time it used
    Call {
        /// The tool's name
        tool: String,
        /// Arguments, a JSON object
        #[arg(long, default_value = "{}")]
        args: String,
        /// The task the call belongs to (per-task limits add up over a task's calls)
        #[arg(long)]
        task: Option<String>,
        /// The model's reasoning for this call (recorded in the audit log, shown to guards)
        #[arg(long)]
        reasoning: Option<String>,
        /// The agent's confidence in this action, 0 to 1 (high-stakes calls below the
        /// configured threshold, or without one, escalate)
        #[arg(long)]
        confidence: Option<f64>,
        /// Override the fuel budget of this call
        #[arg(long)]
        fuel: Option<u64>,
        /// Override the memory budget of this call (e.g. "16 MiB")
        #[arg(long)]
        memory: Option<ByteSize>,
        /// Override the wall-time budget of this call (e.g. "500ms")
        #[arg(long)]
        wall_time: Option<Millis>,
        /// Override the output budget of this call (e.g. "64 KiB")
        #[arg(long)]
        output: Option<ByteSize>,
    },
    /// Run calls from a JSON Lines file on one host, printing each outcome
    ///
    /// Each line: {"tool": NAME, "args": {...}, "budgets": {"fuel": N, ...}, "task": ID,
    /// "session": ID, "confidence": 0.9, "reasoning": "..."}; all but `tool` optional (the
    /// batch is one task by default); or {"task_start": ID, "prompt": "..."}, or
    /// {"task_end": ID, "output": "..."} to record a task's prompt and final output; `#`
    /// starts a comment.
    Batch {
        /// The file, or `-` for standard input
        file: PathBuf,
    },
    /// Escalated calls waiting for a person: list them, approve or deny one
    #[command(subcommand)]
    Approvals(approvals::Approvals),
    /// Create the audit signing key (owner-only) and a starter moat.toml if there is none
    Init,
    /// The audit log: verify it, show or export records, sign a checkpoint
    Audit(audit::AuditArgs),
    /// Tasks: roll one back
    #[command(subcommand)]
    Task(audit::TaskCommand),
    /// Make a named bearer token for `moat serve --http`: prints the token (once: moat
    /// keeps only its blake3) and the `[serve.tokens.NAME]` lines for moat.toml
    Token {
        /// The token's name: its principal is `http:NAME` (letters, digits, `-`, `_`)
        name: String,
    },
    /// Suggest confidence thresholds per tool from the audit log: people's decisions on
    /// escalations and later rollbacks, against the confidence the agent gave
    Calibrate {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Serve the tools to an agent over MCP (Model Context Protocol)
    ///
    /// `--stdio`: one client on standard input and output, newline-delimited JSON-RPC, as
    /// MCP clients launch servers. Logs go to standard error only. `--http ADDR`: streamable
    /// HTTP at http://ADDR/mcp, one session per client, until SIGINT or SIGTERM; the first
    /// line on standard output says where. `[admin] http` adds /healthz, /metrics and
    /// /approvals on loopback.
    Serve {
        /// Serve one client on standard input and output
        #[arg(long)]
        stdio: bool,
        /// Serve streamable HTTP at this address (MCP at /mcp; loopback needs no token unless
        /// `[serve] auth = "token"`, any other address needs the bearer token of `moat init`)
        #[arg(long, value_name = "ADDR", conflicts_with = "stdio")]
        http: Option<String>,
    },
    /// Start a new tool or guard policy (Rust, Python or JavaScript) from a working template
    /// with its test cases, in this moat checkout: `just plugins` builds it, `just test`
    /// runs its cases
    New(new::NewArgs),
    /// Pin every tool and policy file by the blake3 of its bytes in the lockfile
    /// (`[plugins] lockfile`, default moat.lock beside moat.toml), for `--locked`
    Lock,
    /// Sign component files as their publisher (ed25519; FILE.sig beside each), so that a
    /// locked moat that trusts the key loads them without a pin
    Sign(lock::SignArgs),
    /// Turn a core module built with wit-bindgen into a component
    Componentize {
        /// The core module (.wasm)
        input: PathBuf,
        /// Where to write the component
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Standard error for the log, ignoring failures: a client that closed moat's standard
/// error must not make logging fail the requests being served.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Allocations of 1 MiB and more (a large request, its parse, its arguments) are mapped
/// for themselves and given back to the system when freed. glibc's default raises that
/// threshold after each large free, so that the next large buffers come from the heap and
/// stay resident after use: memory would then grow with the largest requests seen.
fn large_allocations_go_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called first, before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    large_allocations_go_back();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MOAT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(|| LogWriter)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        quiet_on_closed_pipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let overrides = Overrides { tool_dirs: cli.tool_dirs, locked: cli.locked };
    match cli.command {
        Command::Lock => {
            let mut config = load_config(cli.config.as_deref())?;
            overrides.apply(&mut config);
            lock::lock(config).map(|()| ExitCode::SUCCESS)
        }
        Command::Sign(args) => lock::sign(args).map(|()| ExitCode::SUCCESS),
        Command::Approvals(command) => approvals::run(cli.config.as_deref(), command),
        Command::Init => audit::init(cli.config.as_deref()),
        Command::Audit(command) => audit::audit(&load_config(cli.config.as_deref())?, command),
        Command::Task(command) => audit::task(&load_config(cli.config.as_deref())?, command),
        Command::Token { name } => new_token(&name),
        Command::Calibrate { json } => {
            let config = load_config(cli.config.as_deref())?;
            let dir = config.audit.dir(&config.state_dir);
            let calibration =
                moat::controls::calibrate::calibrate(&dir, Some(config.confidence.high))?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&calibration)?),
                false => print!("{calibration}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::New(args) => new::run(args).map(|()| ExitCode::SUCCESS),
        Command::Componentize { input, output } => {
            let core = std::fs::read(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let component = moat::plugin::componentize::componentize(&core)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            std::fs::write(&output, component)
                .with_context(|| format!("cannot write {}", output.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policies => {
            let host = start_unaudited(cli.config.as_deref(), &overrides)?;
            print_policies(&host);
            Ok(ExitCode::SUCCESS)
        }
        Command::Tools { json } => {
            let host = start_unaudited(cli.config.as_deref(), &overrides)?;
            print_tools(&host, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Call {
            tool,
            args,
            task,
            reasoning,
            confidence,
            fuel,
            memory,
            wall_time,
            output,
        } => {
            let host = start(cli.config.as_deref(), &overrides)?;
            let budgets = BudgetOverrides { fuel, memory, wall_time, output, table_elements: None };
            let request = CallRequest {
                tool,
                args: args.into(),
                task,
                reasoning,
                confidence,
                budgets,
                principal: Some(local_principal()),
                ..Default::default()
            };
            Ok(call(&host, &request))
        }
        Command::Serve { stdio, http } => {
            if !stdio && http.is_none() {
                anyhow::bail!(
                    "say how to serve: --stdio (standard input and output) or --http ADDR \
                     (streamable HTTP, e.g. 127.0.0.1:7070)"
                );
            }
            let host = Arc::new(start(cli.config.as_deref(), &overrides)?);
            serve::serve(host, http)
        }
        Command::Batch { file } => {
            let host = start(cli.config.as_deref(), &overrides)?;
            batch(&host, &file)
        }
    }
}

/// The configuration: the file given, else `./moat.toml` if present, else the defaults.
fn load_config(config_path: Option<&Path>) -> Result<Config> {
    Ok(match config_path {
        Some(path) => Config::load(path)?,
        None if Path::new("moat.toml").is_file() => Config::load(Path::new("moat.toml"))?,
        None => Config::default(),
    })
}

/// What the command line changes in the configuration.
struct Overrides {
    tool_dirs: Vec<PathBuf>,
    locked: bool,
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if !self.tool_dirs.is_empty() {
            config.plugins.tools = self.tool_dirs.clone();
        }
        config.plugins.locked |= self.locked;
    }
}

/// A host for commands that run no call (listing tools, policies): it does not open the
/// audit log, so it works beside a running host that holds it.
fn start_unaudited(config_path: Option<&Path>, overrides: &Overrides) -> Result<Host> {
    let mut config = load_config(config_path)?;
    config.audit.enabled = false;
    build(config, overrides)
}

/// Loads the config, applies the command line and starts a host, reporting (not failing on)
/// components that could not be loaded.
fn start(config_path: Option<&Path>, overrides: &Overrides) -> Result<Host> {
    build(load_config(config_path)?, overrides)
}

fn build(mut config: Config, overrides: &Overrides) -> Result<Host> {
    overrides.apply(&mut config);
    let escalator = config.escalator().map_err(|e| anyhow::anyhow!("escalation: {e}"))?;
    let (host, errors) = Host::builder(config)
        .escalator(escalator)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start: {e:#}"))?;
    for error in errors {
        eprintln!("warning: skipped {error}");
    }
    Ok(host)
}

fn print_tools(host: &Host, json: bool) -> Result<()> {
    if json {
        let tools = host.tools();
        println!("{}", serde_json::to_string_pretty(&tools)?);
        return Ok(());
    }
    let registry = host.registry();
    for (plugin, tool) in registry.tools() {
        let effects = if tool.effects.is_empty() {
            "none (read-only)".to_owned()
        } else {
            let names: Vec<_> =
                tool.effects.iter().map(|e| format!("{e:?}").to_lowercase()).collect();
            names.join(", ")
        };
        println!("{}  {}", tool.name, tool.description);
        println!("    effects: {effects}");
        println!("    schema:  {}", tool.input_schema);
        println!("    from:    {} (blake3 {})", plugin.path.display(), &plugin.hash.to_hex()[..16]);
    }
    if registry.tools().next().is_none() {
        let dirs: Vec<_> =
            host.config().plugins.tools.iter().map(|d| d.display().to_string()).collect();
        println!("no tools loaded (looked in {})", dirs.join(", "));
    }
    Ok(())
}

fn print_policies(host: &Host) {
    let policies = host.policies().current();
    for policy in policies.iter() {
        let mode = format!("{:?}", policy.mode).to_lowercase();
        println!("{}  [{mode}]  {}", policy.name, policy.description);
        println!("    from: {} (blake3 {})", policy.path.display(), &policy.hash.to_hex()[..16]);
    }
    if policies.is_empty() {
        let dir = host.policies().dir().map(|d| d.display().to_string()).unwrap_or_default();
        println!("no policies in force (looked in {dir})");
    }
}

fn call(host: &Host, request: &CallRequest) -> ExitCode {
    match host.run(request) {
        Ok(response) => {
            println!("{}", response.output);
            eprintln!("{}", usage_line(&response.usage));
            if let Some(window) = &response.window {
                eprintln!("{}", window_line(window));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("refused: {error}");
            if let CallError::UnknownTool(_) = error {
                let names: Vec<_> = host.tools().into_iter().map(|t| t.name).collect();
                let names = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                eprintln!("loaded tools: {names}");
            }
            ExitCode::from(2)
        }
    }
}

fn usage_line(usage: &Usage) -> String {
    format!(
        "fuel {} · peak memory {} · wall time {:.2?} · output {}",
        usage.fuel,
        ByteSize(usage.peak_memory),
        usage.wall_time,
        ByteSize(usage.output_bytes)
    )
}

/// One line of a batch file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine {
    tool: String,
    #[serde(default = "empty_object")]
    args: serde_json::Value,
    #[serde(default)]
    budgets: BudgetOverrides,
    /// Default: the whole batch is one task.
    task: Option<String>,
    /// Default: the task.
    session: Option<String>,
    confidence: Option<f64>,
    reasoning: Option<String>,
    /// Tokens the model used for this step (added to the task's token budget).
    model_tokens: Option<u64>,
}

/// A batch line recording a task's start (with its prompt) or end (with its output).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskLine {
    task_start: Option<String>,
    prompt: Option<String>,
    task_end: Option<String>,
    output: Option<String>,
}

fn record_task(host: &Host, line: &TaskLine) {
    let outcome = match (&line.task_start, &line.task_end) {
        (Some(task), None) => host.start_task(task, line.prompt.as_deref()).map(|()| "started"),
        (None, Some(task)) => host.end_task(task, line.output.as_deref()).map(|()| "ended"),
        _ => {
            println!("  a line has task_start or task_end, not both");
            return;
        }
    };
    match outcome {
        Ok(what) => println!("task {what}"),
        Err(error) => println!("  cannot record the task: {error}"),
    }
}

/// A long text cut for a person: its start and its size.
fn abbreviated(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((at, _)) if text.len() > 400 => {
            format!("{}… ({} in all)", &text[..at], ByteSize(text.len() as u64))
        }
        _ => text.to_owned(),
    }
}

/// Where a windowed output stands, and how to read on.
fn window_line(window: &moat::WindowInfo) -> String {
    let read_on = match &window.cursor {
        Some(cursor) => format!("read on: read_more {{\"cursor\": \"{cursor}\"}}"),
        None => "the end".to_owned(),
    };
    format!(
        "window: from byte {} of {}, {} of {} tokens; {read_on}",
        window.offset, window.total_bytes, window.tokens, window.total_tokens
    )
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Runs every call of `file` (JSON Lines; `-` for stdin) on one host, in order, printing each
/// outcome. A refused call is an outcome, not a failure; a malformed line is reported and
/// skipped, and makes the exit status 1 at the end.
fn batch(host: &Host, file: &Path) -> Result<ExitCode> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let mut malformed = 0;
    // The cursor of the last windowed output: `{"cursor": "$last"}` reads on from it.
    let mut cursor: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(error) => {
                malformed += 1;
                println!("line {}: not JSON: {error}", index + 1);
                continue;
            }
        };
        if value.get("task_start").is_some() || value.get("task_end").is_some() {
            match serde_json::from_value::<TaskLine>(value) {
                Ok(task) => record_task(host, &task),
                Err(error) => {
                    malformed += 1;
                    println!("line {}: not a task start or end: {error}", index + 1);
                }
            }
            continue;
        }
        let entry: BatchLine = match serde_json::from_value(value) {
            Ok(entry) => entry,
            Err(error) => {
                malformed += 1;
                println!("line {}: not a call: {error}", index + 1);
                continue;
            }
        };
        let mut args = entry.args;
        if args["cursor"] == "$last" {
            args["cursor"] = serde_json::Value::from(cursor.clone().unwrap_or_default());
        }
        let request = CallRequest {
            tool: entry.tool,
            args: args.to_string().into(),
            task: Some(entry.task.unwrap_or_else(|| "batch".to_owned())),
            session: entry.session,
            principal: Some(local_principal()),
            confidence: entry.confidence,
            reasoning: entry.reasoning,
            model_tokens: entry.model_tokens,
            budgets: entry.budgets,
            cancel: None,
            tools: None,
        };
        println!("→ {} {}", request.tool, abbreviated(&request.args));
        match host.run(&request) {
            Ok(response) => {
                println!(
                    "  {}\n  ({})",
                    abbreviated(&response.output),
                    usage_line(&response.usage)
                );
                if let Some(window) = &response.window {
                    println!("  {}", window_line(window));
                    cursor = window.cursor.clone();
                }
                for note in &response.shadow {
                    println!("  note: {note}");
                }
            }
            Err(error) => println!("  refused: {error}"),
        }
    }
    Ok(if malformed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The principal of `moat call` and `moat batch`: the local user running them, as the
/// operating system says (the owner of this process), not a name anyone passes.
fn local_principal() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return format!("cli:uid {}", meta.uid());
        }
    }
    "cli".to_owned()
}

/// `moat token NAME`: a fresh random token, and the lines that make it a principal.
fn new_token(name: &str) -> anyhow::Result<ExitCode> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
        anyhow::bail!(
            "token name `{name}`: use 1 to 64 letters, digits, `-` or `_` (it names the \
             principal `http:NAME` and a table of moat.toml)"
        );
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token = hex::encode(bytes);
    let hash = blake3::hash(token.as_bytes()).to_hex();
    println!("token (give it to the client; it is not stored anywhere): {token}");
    println!();
    println!("add to moat.toml:");
    println!("[serve.tokens.{name}]");
    println!("blake3 = \"{hash}\"");
    println!("# tools = [\"echo\"]   # the tools it may list and call (default: all)");
    Ok(ExitCode::SUCCESS)
}

/// A command whose reader goes away (`moat tools | head -1`) ends there, as command-line
/// tools do, instead of panicking in `println!`. Not for `moat serve`, which handles a
/// client gone as an error of its own (and rolls back its calls in flight).
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE, before any other thread is started,
    // touches nothing else.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
