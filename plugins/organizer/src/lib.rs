//! `organize` and `tidy`: a file organizer over the directory granted as `workspace`.
//! `organize` moves each top-level file into a folder named after its extension; `tidy`
//! removes files matching suffixes. The grant decides where it may act and how much.

use moat_guest::fs::{self, FsError};
use moat_guest::{export_tools, Deserialize, Effect, JsonSchema, Serialize, Stakes, Tool, ToolError};

/// How to organize.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Organize {
    /// The folder to organize, relative to the workspace ("" for its root).
    #[serde(default)]
    folder: String,
    /// Only report what would move.
    #[serde(default)]
    dry_run: bool,
}

/// One file moved (or to be moved).
#[derive(Serialize)]
struct Move {
    from: String,
    to: String,
}

fn refused(error: FsError) -> ToolError {
    match error {
        FsError::NotFound(m) | FsError::Io(m) => ToolError::Failed(m),
        FsError::NotGranted(m)
        | FsError::OutOfScope(m)
        | FsError::ReadOnly(m)
        | FsError::LimitExceeded(m)
        | FsError::Denied(m) => ToolError::Denied(m),
    }
}

fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", folder.trim_end_matches('/'))
    }
}

fn organize(args: Organize) -> Result<Vec<Move>, ToolError> {
    let workspace = fs::open("workspace").map_err(refused)?;
    let mut moves = Vec::new();
    for entry in workspace.list_dir(&args.folder).map_err(refused)? {
        if entry.is_dir {
            continue;
        }
        let extension = match entry.name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => ext.to_ascii_lowercase(),
            _ => "other".to_owned(),
        };
        let from = join(&args.folder, &entry.name);
        let to = join(&join(&args.folder, &extension), &entry.name);
        if !args.dry_run {
            workspace.rename(&from, &to).map_err(refused)?;
        }
        moves.push(Move { from, to });
    }
    Ok(moves)
}

/// What to remove.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Tidy {
    /// The folder to tidy, relative to the workspace ("" for its root).
    #[serde(default)]
    folder: String,
    /// Files whose names end with one of these are removed (e.g. ".tmp", "~").
    suffixes: Vec<String>,
}

fn tidy(args: Tidy) -> Result<Vec<String>, ToolError> {
    if args.suffixes.iter().any(String::is_empty) {
        return Err(ToolError::InvalidInput("an empty suffix would match every file".into()));
    }
    let workspace = fs::open("workspace").map_err(refused)?;
    let mut removed = Vec::new();
    for entry in workspace.list_dir(&args.folder).map_err(refused)? {
        if !entry.is_dir && args.suffixes.iter().any(|s| entry.name.ends_with(s.as_str())) {
            let path = join(&args.folder, &entry.name);
            workspace.remove(&path).map_err(refused)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

export_tools!(
    Tool::new(
        "organize",
        "Moves each file of a workspace folder into a subfolder named after its extension.",
        organize
    )
    .effects(&[Effect::Read, Effect::Write]),
    Tool::new("tidy", "Removes the files of a workspace folder whose names end with given suffixes.", tidy)
        .effects(&[Effect::Read, Effect::Delete])
        .stakes(Stakes::High),
);
