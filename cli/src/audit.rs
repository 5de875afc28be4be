//! `moat init`, `moat audit verify|show|export|checkpoint` and `moat task rollback`.

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use moat::audit::checkpoint::parse_public;
use moat::audit::read::{describe, lines, Filter, Line};
use moat::audit::{self, Audit};
use moat::Config;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

#[derive(Args)]
pub struct AuditArgs {
    /// The audit directory [default: from the configuration, STATE_DIR/audit]; e.g. a copy
    /// kept elsewhere
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole log: every record's hash, the chain, every blob, the signed
    /// checkpoints. Exit 0 when intact, 2 at the first bad record (named, with the reason)
    Verify {
        /// The trusted public key (64 hex digits, or a file holding them) [default: the
        /// key file beside the configured signing key]. Pin it to detect a replaced key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print records for a person, one line each
    Show(FilterArgs),
    /// Print records as JSON Lines (each record with its hash)
    Export(FilterArgs),
    /// Sign a checkpoint of the log's head now
    Checkpoint,
}

#[derive(Args)]
pub struct FilterArgs {
    /// Only this task's records
    #[arg(long)]
    task: Option<String>,
    /// Only calls of this tool (and their verdicts, effects, results)
    #[arg(long)]
    tool: Option<String>,
    /// Only verdicts of this kind: allow, deny, escalate, rewrite
    #[arg(long)]
    verdict: Option<String>,
    /// Only records of this event: call, verdict, escalation, effect, staged, result, budget,
    /// task_start, task_end, rollback, opened, recovery, load_refused
    #[arg(long)]
    event: Option<String>,
    /// Only records at or after this time (RFC 3339, e.g. 2026-11-25T14:00:00Z)
    #[arg(long)]
    since: Option<String>,
    /// Only records at or before this time (RFC 3339)
    #[arg(long)]
    until: Option<String>,
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Undo a task's file, row and key effects, newest first, from the audit log's
    /// before-images. Refuses, changing nothing, when an effect cannot be undone (an HTTP
    /// request sent) or when something changed since
    Rollback {
        task: String,
        /// Undo what can be undone and skip the irreversible effects (listed)
        #[arg(long)]
        skip_irreversible: bool,
    },
}

/// `moat init`: the audit signing key and the HTTP bearer token (owner-only), and a starter
/// `moat.toml`.
pub fn init(config_path: Option<&Path>) -> Result<ExitCode> {
    let path = config_path.unwrap_or(Path::new("moat.toml"));
    if !path.exists() {
        std::fs::write(path, STARTER)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let config = Config::load(path)?;
    let keys = config.audit.key_files(&config.state_dir);
    if keys.secret.exists() {
        let public = std::fs::read_to_string(&keys.public).unwrap_or_default();
        println!("audit key exists: {} (public key {})", keys.secret.display(), public.trim());
    } else {
        let public = keys.create()?;
        println!(
            "created the audit signing key {} (owner-only)\npublic key {}: {}",
            keys.secret.display(),
            keys.public.display(),
            hex::encode(public.as_bytes())
        );
        println!("keep a copy of the public key elsewhere: `moat audit verify --key` pins it");
    }
    let token = moat::mcp::token_path(&config.state_dir);
    let existed = token.exists();
    moat::mcp::http_token(&config.state_dir).map_err(|e| anyhow::anyhow!(e))?;
    match existed {
        true => println!("HTTP bearer token exists: {}", token.display()),
        false => println!(
            "created the bearer token of `moat serve --http` {} (owner-only)",
            token.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

const STARTER: &str = r#"# moat configuration: every table rejects unknown keys.
# [plugins]
# tools = ["tools"]
# policies = "policies"

[audit]
durability = "durable"   # or "batched" (fsync within batch_delay), "none"
"#;

pub fn audit(config: &Config, args: AuditArgs) -> Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| config.audit.dir(&config.state_dir));
    match args.command {
        AuditCommand::Verify { key } => verify(config, &dir, key),
        AuditCommand::Show(filter) => {
            let mut out = std::io::stdout().lock();
            each(&dir, filter, |record, _| writeln!(out, "{}", describe(record)))
        }
        AuditCommand::Export(filter) => {
            let mut out = std::io::stdout().lock();
            each(&dir, filter, |record, hash| {
                let mut json = serde_json::to_value(record).map_err(std::io::Error::other)?;
                json["hash"] = serde_json::Value::String(hash.to_owned());
                writeln!(out, "{json}")
            })
        }
        AuditCommand::Checkpoint => {
            let keys = config.audit.key_files(&config.state_dir);
            let audit = Audit::open(&dir, &keys, &config.audit)?;
            match audit.checkpoint()? {
                Some(c) => println!("signed checkpoint of record {} ({})", c.seq, c.head),
                None => println!("the log is empty: nothing to sign"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(config: &Config, dir: &Path, key: Option<String>) -> Result<ExitCode> {
    let keys = config.audit.key_files(&config.state_dir);
    let text = match key {
        Some(key) if Path::new(&key).is_file() => std::fs::read_to_string(&key)?,
        Some(key) => key,
        None => std::fs::read_to_string(&keys.public).with_context(|| {
            format!("cannot read the public key {} (or pass --key)", keys.public.display())
        })?,
    };
    let trusted = parse_public(&text).map_err(|e| anyhow!("--key: {e}"))?;
    let report = audit::verify::verify(dir, &trusted)
        .with_context(|| format!("cannot read the audit log in {}", dir.display()))?;
    for note in &report.notes {
        println!("note: {note}");
    }
    match report.problem {
        None => {
            println!(
                "ok: {} records, {} blobs, {} signed checkpoints (signed up to record \
                 {}) in {}",
                report.records,
                report.blobs,
                report.checkpoints,
                report.signed_up_to,
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            println!("BAD {problem}");
            println!("({} records before it are intact)", report.records);
            Ok(ExitCode::from(2))
        }
    }
}

fn each(
    dir: &Path,
    args: FilterArgs,
    mut print: impl FnMut(&audit::Record, &str) -> std::io::Result<()>,
) -> Result<ExitCode> {
    let time = |text: Option<String>| -> Result<Option<u64>> {
        let Some(text) = text else { return Ok(None) };
        let at = humantime::parse_rfc3339_weak(&text)
            .map_err(|e| anyhow!("`{text}` is not an RFC 3339 time: {e}"))?;
        Ok(Some(at.duration_since(std::time::UNIX_EPOCH)?.as_micros() as u64))
    };
    let mut filter = Filter {
        task: args.task,
        tool: args.tool,
        verdict: args.verdict,
        event: args.event,
        since_us: time(args.since)?,
        until_us: time(args.until)?,
    }
    .matcher();
    let path = audit::log_path(dir);
    let mut bad = 0;
    for line in lines(&path).with_context(|| format!("cannot read {}", path.display()))? {
        match line? {
            Line::Record { hash, record, .. } => {
                if filter.matches(&record) {
                    match print(&record, &hash) {
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                        other => other?,
                    }
                }
            }
            Line::Bad { line, reason } => {
                bad += 1;
                eprintln!("line {line}: skipped: {reason}");
            }
            Line::Incomplete { line, .. } => eprintln!("line {line}: incomplete, skipped"),
        }
    }
    if bad > 0 {
        eprintln!("{bad} bad lines skipped: run `moat audit verify`");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn task(config: &Config, command: TaskCommand) -> Result<ExitCode> {
    match command {
        TaskCommand::Rollback { task, skip_irreversible } => {
            match audit::task::roll_back_task(
                &config.audit,
                &config.state_dir,
                &task,
                skip_irreversible,
            ) {
                Ok(done) => {
                    let report = &done.report;
                    println!(
                        "rolled back task {task}: {} files, {} renames, {} rows, {} keys",
                        report.files, report.renames, report.rows, report.keys
                    );
                    for line in &report.undone {
                        println!("  {line}");
                    }
                    for line in &report.skipped {
                        println!("  skipped: {line}");
                    }
                    println!("recorded as audit record {}", done.seq);
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("refused: {error}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
