//! The `moat` command: list and call tools, turn core modules into components.
//!
//! Exit status: 0 on success, 1 when moat itself cannot start (config, arguments), 2 when a
//! call is refused or fails (unknown tool, bad arguments, a budget, a trap, a tool error).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use moat::units::{ByteSize, Millis};
use moat::{CallError, Config, Host};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Call a tool once, print its output, then the fuel, peak memory and wall time it used
    Call {
        /// The tool's name
        tool: String,
        /// Arguments, a JSON object
        #[arg(long, default_value = "{}")]
        args: String,
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
    /// Turn a core module built with wit-bindgen into a component
    Componentize {
        /// The core module (.wasm)
        input: PathBuf,
        /// Where to write the component
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MOAT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Componentize { input, output } => {
            let core = std::fs::read(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let component = moat::componentize::componentize(&core)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            std::fs::write(&output, component)
                .with_context(|| format!("cannot write {}", output.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tools { json } => {
            let host = start(cli.config.as_deref(), cli.tool_dirs, None)?;
            print_tools(&host, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Call {
            tool,
            args,
            fuel,
            memory,
            wall_time,
            output,
        } => {
            let overrides = moat::budget::BudgetOverrides {
                fuel,
                memory,
                wall_time,
                output,
                table_elements: None,
            };
            let host = start(
                cli.config.as_deref(),
                cli.tool_dirs,
                Some((&tool, overrides)),
            )?;
            Ok(call(&host, &tool, &args))
        }
    }
}

/// Loads the config, applies command-line overrides and starts a host, reporting (not
/// failing on) components that could not be loaded.
fn start(
    config_path: Option<&Path>,
    tool_dirs: Vec<PathBuf>,
    overrides: Option<(&str, moat::budget::BudgetOverrides)>,
) -> Result<Host> {
    let mut config = match config_path {
        Some(path) => Config::load(path)?,
        None if Path::new("moat.toml").is_file() => Config::load(Path::new("moat.toml"))?,
        None => Config::default(),
    };
    if !tool_dirs.is_empty() {
        config.plugins.tools = tool_dirs;
    }
    if let Some((tool, overrides)) = overrides {
        let settings = config.tools.entry(tool.to_owned()).or_default();
        let merged = &mut settings.budgets;
        merged.fuel = overrides.fuel.or(merged.fuel);
        merged.memory = overrides.memory.or(merged.memory);
        merged.wall_time = overrides.wall_time.or(merged.wall_time);
        merged.output = overrides.output.or(merged.output);
    }
    let (host, errors) =
        Host::new(config).map_err(|e| anyhow::anyhow!("cannot start the engine: {e:#}"))?;
    for error in errors {
        eprintln!("warning: skipped {error}");
    }
    Ok(host)
}

fn print_tools(host: &Host, json: bool) -> Result<()> {
    if json {
        let tools: Vec<_> = host.tools().collect();
        println!("{}", serde_json::to_string_pretty(&tools)?);
        return Ok(());
    }
    let mut any = false;
    for (plugin, tool) in host.registry().tools() {
        any = true;
        let effects = if tool.effects.is_empty() {
            "none (read-only)".to_owned()
        } else {
            tool.effects
                .iter()
                .map(|e| format!("{e:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("{}  {}", tool.name, tool.description);
        println!("    effects: {effects}");
        println!("    schema:  {}", tool.input_schema);
        println!(
            "    from:    {} (blake3 {})",
            plugin.path.display(),
            &plugin.hash.to_hex()[..16]
        );
    }
    if !any {
        let dirs: Vec<_> = host
            .config()
            .plugins
            .tools
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        println!("no tools loaded (looked in {})", dirs.join(", "));
    }
    Ok(())
}

fn call(host: &Host, tool: &str, args: &str) -> ExitCode {
    match host.call(tool, args) {
        Ok(response) => {
            println!("{}", response.output);
            let usage = response.usage;
            eprintln!(
                "fuel {} · peak memory {} · wall time {:.2?} · output {}",
                usage.fuel,
                ByteSize(usage.peak_memory),
                usage.wall_time,
                ByteSize(usage.output_bytes)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("refused: {error}");
            if let CallError::UnknownTool(_) = error {
                let names: Vec<_> = host.tools().map(|t| t.name.as_str()).collect();
                eprintln!(
                    "loaded tools: {}",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                );
            }
            ExitCode::from(2)
        }
    }
}
