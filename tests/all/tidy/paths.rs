//! The path rule: what counts as a path in ARCHITECTURE.md, and where it is looked for.

use super::*;

// ---------------------------------------------------------------------------------------
// ARCHITECTURE.md's paths.
// ---------------------------------------------------------------------------------------

/// The file extensions that make a code span a path even without a `/`.
pub(super) const PATH_EXTENSIONS: &[&str] = &[".rs", ".wit", ".toml", ".md", ".sql", ".py", ".js"];

/// MCP's method namespaces: `tools/list` is a method, not a path.
pub(super) const MCP_NAMESPACES: &[&str] = &[
    "tools",
    "resources",
    "prompts",
    "notifications",
    "elicitation",
    "sampling",
    "roots",
    "completion",
    "logging",
];

/// Names of files that are not in the repository: the configuration a user writes.
pub(super) const NOT_IN_REPOSITORY: &[&str] = &["moat.toml"];

/// A code span of the file, with its line and the folder of its section.
#[derive(Debug)]
pub(super) struct Span {
    pub(super) line: usize,
    pub(super) text: String,
    /// The folder of the folder section it is in; `None` outside one.
    pub(super) folder: Option<String>,
    /// The span is the folder of a folder heading.
    pub(super) heading: bool,
}

/// Whether the text of a code span is a path (see the module's doc comment).
pub(super) fn is_path(text: &str) -> bool {
    if !(text.contains('/') || PATH_EXTENSIONS.iter().any(|ext| text.ends_with(ext))) {
        return false;
    }
    if text.contains([' ', '\n', '\t', '*', '<', '{', '='])
        || text.contains("::")
        || text.contains("://")
        || text.starts_with(['-', '$', '/', '~'])
        || text.starts_with("target/")
        || NOT_IN_REPOSITORY.contains(&text)
    {
        return false;
    }
    let segments: Vec<&str> = text.split('/').collect();
    if is_placeholder(segments[0]) {
        return false;
    }
    let last = segments[segments.len() - 1];
    if segments.len() > 1
        && MCP_NAMESPACES.contains(&segments[0])
        && !last.is_empty()
        && !last.contains('.')
    {
        return false;
    }
    true
}

/// `NAME`, `STATE_DIR`: stands for any one file or folder.
pub(super) fn is_placeholder(segment: &str) -> bool {
    segment.len() >= 2
        && segment.starts_with(|c: char| c.is_ascii_uppercase())
        && segment.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The folder a heading names, if its whole text is one code span ending in `/`.
pub(super) fn heading_folder(line: &str) -> Option<String> {
    let title = line.trim_start_matches('#').trim();
    let inner = title.strip_prefix('`')?.strip_suffix('`')?;
    (inner.ends_with('/') && !inner.contains('`')).then(|| inner.to_owned())
}

/// Every code span of a Markdown text, outside fenced code blocks, with its section. A code
/// span does not cross a blank line or a heading.
pub(super) fn code_spans(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut folder: Option<String> = None;
    let mut fenced = false;
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            open = None;
            continue;
        }
        if fenced {
            continue;
        }
        if line.trim().is_empty() {
            open = None;
            continue;
        }
        let heading = line.starts_with('#') && line.trim_start_matches('#').starts_with(' ');
        if heading {
            open = None;
            folder = heading_folder(line);
            if let Some(f) = &folder {
                spans.push(Span { line: number, text: f.clone(), folder: None, heading: true });
                continue;
            }
        }
        for (j, part) in line.split('`').enumerate() {
            if j > 0 {
                // A backtick: it opens a span, or closes the open one.
                open = match open.take() {
                    Some((start, text)) => {
                        spans.push(Span {
                            line: start,
                            text,
                            folder: folder.clone(),
                            heading: false,
                        });
                        None
                    }
                    None => Some((number, String::new())),
                };
            }
            if let Some((_, text)) = &mut open {
                text.push_str(part);
            }
        }
        if let Some((_, text)) = &mut open {
            text.push('\n');
        }
        if heading {
            open = None;
        }
    }
    spans
}

/// The folders a path in a section of `folder` is tried relative to, nearest first: the
/// folder, its ancestors, the root (`""`).
pub(super) fn bases_of(folder: &str) -> Vec<String> {
    let parts: Vec<&str> = folder.trim_end_matches('/').split('/').collect();
    let mut bases: Vec<String> = (1..=parts.len()).rev().map(|n| parts[..n].join("/")).collect();
    bases.push(String::new());
    bases
}

/// Whether `path` exists under `base`, placeholders matching any one entry. A path ending
/// in `/` must be a folder.
pub(super) fn exists_under(base: &Path, path: &str) -> bool {
    let mut candidates = vec![base.to_owned()];
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for dir in &candidates {
            if is_placeholder(segment) {
                if let Ok(entries) = std::fs::read_dir(dir) {
                    next.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
                }
            } else if dir.join(segment).exists() {
                next.push(dir.join(segment));
            }
        }
        candidates = next;
    }
    if path.ends_with('/') {
        candidates.retain(|c| c.is_dir());
    }
    !candidates.is_empty()
}

/// Every path of `text` (an ARCHITECTURE.md) that exists nowhere it is tried, as
/// "ARCHITECTURE.md:LINE: `path` ..." .
pub(super) fn missing_architecture_paths(root: &Path, text: &str) -> Vec<String> {
    let spans = code_spans(text);
    // Outside folder sections: the root and every heading's folder, with its ancestors.
    let mut everywhere: Vec<String> = vec![String::new()];
    for span in spans.iter().filter(|s| s.heading) {
        for base in bases_of(&span.text) {
            if !everywhere.contains(&base) {
                everywhere.push(base);
            }
        }
    }
    let mut offenders = Vec::new();
    for span in &spans {
        if !is_path(&span.text) {
            continue;
        }
        let bases = match (&span.folder, span.heading) {
            (_, true) => vec![String::new()],
            (Some(folder), false) => bases_of(folder),
            (None, false) => everywhere.clone(),
        };
        if !bases.iter().any(|base| exists_under(&root.join(base), &span.text)) {
            let tried: Vec<String> = bases
                .iter()
                .map(|b| if b.is_empty() { ".".to_owned() } else { b.clone() })
                .collect();
            offenders.push(format!(
                "ARCHITECTURE.md:{}: `{}` does not exist (tried relative to: {})",
                span.line,
                span.text,
                tried.join(", ")
            ));
        }
    }
    offenders
}
