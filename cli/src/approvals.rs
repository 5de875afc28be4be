//! `moat approvals`: list the escalations waiting for a person in the approval queue of the
//! configured state directory, approve or deny one. A thin client of
//! `moat::escalation::ApprovalQueue`; another `moat` process is waiting on the decision.

use anyhow::Result;
use clap::Subcommand;
use moat::escalation::{printable, queue, ApprovalQueue, ApprovalRequest};
use moat::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The arguments of `moat approvals`.
#[derive(Subcommand)]
pub enum Approvals {
    /// List the pending requests: id, age, tool, who asked and why, arguments
    List {
        /// Print JSON (every field) instead of text
        #[arg(long)]
        json: bool,
    },
    /// Let the one call of a pending request go ahead
    Approve {
        /// The request's id (from `moat approvals list`)
        id: String,
        /// Who approves [default: $USER]
        #[arg(long)]
        by: Option<String>,
    },
    /// Refuse the call of a pending request
    Deny {
        /// The request's id (from `moat approvals list`)
        id: String,
        /// Why, for the agent and the record
        #[arg(long)]
        reason: Option<String>,
        /// Who denies [default: $USER]
        #[arg(long)]
        by: Option<String>,
    },
}

/// Runs one `moat approvals` command against the queue of the config's state directory.
pub fn run(config_path: Option<&Path>, command: Approvals) -> Result<ExitCode> {
    let path = state_dir(config_path)?.join(queue::FILE_NAME);
    match command {
        Approvals::List { json } => {
            let pending = if path.is_file() { open(&path)?.pending()? } else { Vec::new() };
            if json {
                println!("{}", serde_json::to_string_pretty(&pending)?);
            } else {
                print_list(&pending, &path);
            }
        }
        Approvals::Approve { id, by } => {
            let by = by.unwrap_or_else(moat::escalation::current_user);
            let row = existing(&path, &id)?.approve(&id, &by)?;
            println!("approved {} (tool `{}`) by {}", row.id, show(&row.tool), show(&by));
        }
        Approvals::Deny { id, reason, by } => {
            let by = by.unwrap_or_else(moat::escalation::current_user);
            let reason = reason.unwrap_or_else(|| "no reason given".to_owned());
            let row = existing(&path, &id)?.deny(&id, &by, &reason)?;
            println!(
                "denied {} (tool `{}`) by {}: {}",
                row.id,
                show(&row.tool),
                show(&by),
                show(&reason)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The state directory of the configuration, loaded as the other commands load it:
/// `--config FILE`, else `./moat.toml` if present, else the embedded defaults.
fn state_dir(config_path: Option<&Path>) -> Result<PathBuf> {
    let config = match config_path {
        Some(path) => Config::load(path)?,
        None if Path::new("moat.toml").is_file() => Config::load(Path::new("moat.toml"))?,
        None => Config::default(),
    };
    Ok(config.state_dir)
}

fn open(path: &Path) -> Result<ApprovalQueue> {
    Ok(ApprovalQueue::open(path)?)
}

/// The queue, when it exists: deciding never creates one.
fn existing(path: &Path, id: &str) -> Result<ApprovalQueue> {
    if !path.is_file() {
        anyhow::bail!(
            "no approval request `{id}` (there is no approval queue at {})",
            path.display()
        );
    }
    open(path)
}

fn print_list(pending: &[ApprovalRequest], path: &Path) {
    if pending.is_empty() {
        println!("no pending approval requests (queue: {})", path.display());
        return;
    }
    let now = queue::now_ms();
    for row in pending {
        println!(
            "{}  {:>6}  {}  {}: {}",
            row.id,
            age(row.age(now).as_secs()),
            show(&row.tool),
            show(&row.asked_by),
            show(&row.reason)
        );
        println!("    args: {}", truncate(&show(&row.args), 100));
    }
}

/// One line, nothing a terminal would interpret.
fn show(text: &str) -> String {
    printable(text, false).into_owned()
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

/// `42s`, `3m05s`, `2h07m`.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
