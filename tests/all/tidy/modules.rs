//! The module-doc rule: every Rust file of every workspace crate begins with its `//!` line.

use super::*;

/// The workspace members' folders, from the `[workspace] members` of the `Cargo.toml` in
/// `root`. A member ending in `/*` is every folder under it with a `Cargo.toml`; members in
/// `exclude` are left out.
pub(super) fn workspace_members(root: &Path) -> Vec<PathBuf> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("the root Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("the root Cargo.toml parses");
    let workspace = manifest
        .get("workspace")
        .and_then(|w| w.as_table())
        .expect("a [workspace] table in the root Cargo.toml");
    let strings = |key: &str| -> Vec<String> {
        workspace.get(key).and_then(|v| v.as_array()).map_or_else(Vec::new, |a| {
            a.iter().map(|v| v.as_str().expect("a member is a string").to_owned()).collect()
        })
    };
    let excluded: BTreeSet<PathBuf> = strings("exclude").iter().map(|e| root.join(e)).collect();
    let mut members = Vec::new();
    for member in strings("members") {
        if let Some(parent) = member.strip_suffix("/*") {
            let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(parent))
                .unwrap_or_else(|e| panic!("workspace member glob `{member}`: {e}"))
                .map(|entry| entry.expect("a directory entry").path())
                .filter(|path| path.join("Cargo.toml").is_file())
                .collect();
            found.sort();
            members.extend(found);
        } else {
            assert!(
                !member.contains(['*', '?', '[']),
                "workspace member `{member}`: only a trailing `/*` glob is understood here; \
                 extend `workspace_members` in tests/all/tidy/mod.rs"
            );
            members.push(root.join(member));
        }
    }
    members.retain(|m| !excluded.contains(m));
    members
}

/// Every `.rs` file under `dirs` (those that exist).
pub(super) fn rust_files_under(dirs: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for dir in dirs {
        rust_files(dir, &mut files);
    }
    files
}

/// Each of `files` whose first line is not a `//!` line, as "path:1: ..." relative to
/// `root`.
pub(super) fn files_without_module_docs(root: &Path, files: &BTreeSet<PathBuf>) -> Vec<String> {
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let first = text.lines().next().unwrap_or("");
        if !first.starts_with("//!") {
            let what = if first.trim().is_empty() {
                "the first line is blank; it must be the `//!` line".to_owned()
            } else {
                format!("starts with `{}` instead of a `//!` line", preview(first))
            };
            offenders.push(format!("{}:1: {what}", relative(root, file)));
        }
    }
    offenders
}

/// Adds the `.rs` files under `dir`, skipping `target`, `node_modules` and hidden folders.
pub(super) fn rust_files(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !(name == "target" || name == "node_modules" || name.starts_with('.')) {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.insert(path);
        }
    }
}

pub(super) fn preview(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

pub(super) fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}
