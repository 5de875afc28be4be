//! Tidy: rules about the repository itself, checked as tests (in the manner of
//! rust-analyzer's `xtask/src/tidy.rs`). One `#[test]` per rule, named as the rule; each
//! failure lists every offender (file:line and what is missing) and says how to fix it.
//! Below the rules, each check is run against a small synthetic input with a violation, to
//! prove it catches one.
//!
//! # The rules
//!
//! - **Module docs.** Every `.rs` file starts with a `//!` line (no blank line first) under
//!   the `src/`, `examples/`, `tests/` and `benches/` of every workspace crate (the members
//!   of the root `Cargo.toml`'s `[workspace]`, read with `toml`, so a crate added later is
//!   covered) and under the top-level `tests/` and `benches/` (the integration tests, the
//!   benchmarks, their guest crates). Folders named `target`, `node_modules` or starting with
//!   `.` are not walked.
//! - **ARCHITECTURE.md's paths exist.** See "Paths in ARCHITECTURE.md" below.
//! - **WIT items are documented.** Every interface, world, named type (record, variant,
//!   enum, flags, resource, type alias), function, resource method, record field, variant
//!   case, enum case and flag in `wit/*.wit` has a `///` (or `/** */`) doc comment right
//!   above it (attribute lines such as `@since(...)` may come between). The WIT is parsed
//!   with `wit-parser`, which also reports the items' locations. Not items: the package
//!   line, `use` statements (the type they bring in is documented where it is defined),
//!   and a world's `import` and `export` lines (each interface is documented in its file).
//!   An inline `interface { .. }` in a world has its items checked.
//!
//! # Paths in ARCHITECTURE.md
//!
//! A *path* is the text of a code span (between single backticks, outside fenced code
//! blocks) that contains a `/` or ends in `.rs`, `.wit`, `.toml`, `.md`, `.sql`, `.py` or
//! `.js`, except:
//! - text with a space, a newline, `::`, `*`, `<`, `{` or `=` (commands, Rust items like
//!   `all/mcp.rs::test_name`, globs, generics, brace lists like `{tools,policies}/`,
//!   settings);
//! - text starting with `-` (a flag), `$` (a variable), `/` or `~` (HTTP routes such as
//!   `/metrics`, absolute paths), or containing `://` (a URL);
//! - MCP method names: the first segment is one of MCP's method namespaces (`tools`,
//!   `resources`, `prompts`, `notifications`, `elicitation`, `sampling`, `roots`,
//!   `completion`, `logging`), the text does not end in `/` and its last segment has no `.`
//!   (`tools/list`, `elicitation/create`; the folder `tools/` is still a path);
//! - locations made at build or run time, not in the repository: text starting with
//!   `target/`, or whose first segment is a placeholder (`STATE_DIR/state.sqlite`);
//! - `moat.toml`: the name of the configuration file a user writes (the repository has
//!   none).
//!
//! A *placeholder* is a segment made only of capitals, digits and `_`, at least two
//! characters, without a `.` (`NAME` in `plugins/python/NAME/app.py`): it matches any one
//! file or folder. A path ending in `/` must be a folder.
//!
//! Resolution. A heading (a line of `#`s and a space) whose whole text is one backticked
//! folder ending in `/` (the code map's ``### `host/src/` ``, or later
//! ``### `host/src/controls/` ``) starts a *folder section*; any other heading ends it. A
//! path in a folder section is tried relative to the heading's folder, then to each
//! ancestor of that folder, then to the repository root; it exists if any of these exists.
//! A path outside folder sections (the bird's-eye view, the invariants) is tried relative
//! to the root and to every folder a heading names, with their ancestors. The heading's
//! own folder is tried relative to the root. ARCHITECTURE.md states this convention in a
//! paragraph at the top of its code map.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::root;

// ---------------------------------------------------------------------------------------
// The rules, on the repository.
// ---------------------------------------------------------------------------------------

#[test]
fn every_module_starts_with_its_doc_line() {
    let root = root();
    let mut dirs = vec![root.join("tests"), root.join("benches")];
    for member in workspace_members(&root) {
        for sub in ["src", "examples", "tests", "benches"] {
            dirs.push(member.join(sub));
        }
    }
    let files = rust_files_under(&dirs);
    for expected in ["host/src/lib.rs", "guest-sdk/src/lib.rs", "tests/all/main.rs"] {
        assert!(files.contains(&root.join(expected)), "the check does not see {expected}");
    }
    let offenders = files_without_module_docs(&root, &files);
    assert!(
        offenders.is_empty(),
        "\n{} Rust file(s) do not start with a `//!` line:\n  {}\n\
         Fix: make the first line of each a `//!` doc comment saying what the module is for \
         (no blank line or attribute above it).\n",
        offenders.len(),
        offenders.join("\n  ")
    );
}

#[test]
fn every_path_architecture_md_names_exists() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let paths = code_spans(&text).iter().filter(|span| is_path(&span.text)).count();
    assert!(paths > 100, "only {paths} paths found in ARCHITECTURE.md: is the parser broken?");
    let offenders = missing_architecture_paths(&root, &text);
    assert!(
        offenders.is_empty(),
        "\n{} path(s) ARCHITECTURE.md names do not exist:\n  {}\n\
         Fix: correct each path (a file that moved: its new place). A path is relative to \
         its section heading's folder, an ancestor of it, or the repository root; see the \
         doc comment of tests/all/tidy.rs for what counts as a path.\n",
        offenders.len(),
        offenders.join("\n  ")
    );
}

#[test]
fn every_wit_item_has_a_doc_comment() {
    let root = root();
    let (items, offenders) = undocumented_wit_items(&root.join("wit"), &root);
    assert!(items > 100, "only {items} WIT items found: is the check broken?");
    assert!(
        offenders.is_empty(),
        "\n{} WIT item(s) have no `///` doc comment:\n  {}\n\
         Fix: write a `///` comment right above each, saying what a guest may rely on \
         (limits, errors, when it happens); the host's behaviour is in host/src/capability/ \
         and host/src/guard/. WIT shapes stay as they are.\n",
        offenders.len(),
        offenders.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// Module docs.
// ---------------------------------------------------------------------------------------

/// The workspace members' folders, from the `[workspace] members` of the `Cargo.toml` in
/// `root`. A member ending in `/*` is every folder under it with a `Cargo.toml`; members in
/// `exclude` are left out.
fn workspace_members(root: &Path) -> Vec<PathBuf> {
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
                 extend `workspace_members` in tests/all/tidy.rs"
            );
            members.push(root.join(member));
        }
    }
    members.retain(|m| !excluded.contains(m));
    members
}

/// Every `.rs` file under `dirs` (those that exist).
fn rust_files_under(dirs: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for dir in dirs {
        rust_files(dir, &mut files);
    }
    files
}

/// Each of `files` whose first line is not a `//!` line, as "path:1: ..." relative to
/// `root`.
fn files_without_module_docs(root: &Path, files: &BTreeSet<PathBuf>) -> Vec<String> {
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
fn rust_files(dir: &Path, out: &mut BTreeSet<PathBuf>) {
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

fn preview(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

// ---------------------------------------------------------------------------------------
// ARCHITECTURE.md's paths.
// ---------------------------------------------------------------------------------------

/// The file extensions that make a code span a path even without a `/`.
const PATH_EXTENSIONS: &[&str] = &[".rs", ".wit", ".toml", ".md", ".sql", ".py", ".js"];

/// MCP's method namespaces: `tools/list` is a method, not a path.
const MCP_NAMESPACES: &[&str] = &[
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
const NOT_IN_REPOSITORY: &[&str] = &["moat.toml"];

/// A code span of the file, with its line and the folder of its section.
#[derive(Debug)]
struct Span {
    line: usize,
    text: String,
    /// The folder of the folder section it is in; `None` outside one.
    folder: Option<String>,
    /// The span is the folder of a folder heading.
    heading: bool,
}

/// Whether the text of a code span is a path (see the module's doc comment).
fn is_path(text: &str) -> bool {
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
fn is_placeholder(segment: &str) -> bool {
    segment.len() >= 2
        && segment.starts_with(|c: char| c.is_ascii_uppercase())
        && segment.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The folder a heading names, if its whole text is one code span ending in `/`.
fn heading_folder(line: &str) -> Option<String> {
    let title = line.trim_start_matches('#').trim();
    let inner = title.strip_prefix('`')?.strip_suffix('`')?;
    (inner.ends_with('/') && !inner.contains('`')).then(|| inner.to_owned())
}

/// Every code span of a Markdown text, outside fenced code blocks, with its section. A code
/// span does not cross a blank line or a heading.
fn code_spans(text: &str) -> Vec<Span> {
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
fn bases_of(folder: &str) -> Vec<String> {
    let parts: Vec<&str> = folder.trim_end_matches('/').split('/').collect();
    let mut bases: Vec<String> = (1..=parts.len()).rev().map(|n| parts[..n].join("/")).collect();
    bases.push(String::new());
    bases
}

/// Whether `path` exists under `base`, placeholders matching any one entry. A path ending
/// in `/` must be a folder.
fn exists_under(base: &Path, path: &str) -> bool {
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
fn missing_architecture_paths(root: &Path, text: &str) -> Vec<String> {
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

// ---------------------------------------------------------------------------------------
// WIT doc comments.
// ---------------------------------------------------------------------------------------

/// The number of items of the WIT package in `dir`, and every one without a doc comment
/// right above it, as "FILE:LINE: KIND `NAME` ...", FILE relative to `root`.
fn undocumented_wit_items(dir: &Path, root: &Path) -> (usize, Vec<String>) {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(dir).unwrap_or_else(|e| {
        panic!("the WIT in {} does not parse: {e:#}", dir.display());
    });
    let mut checker = DocChecker { resolve: &resolve, root, checked: 0, offenders: Vec::new() };
    let package = &resolve.packages[package];
    for &id in package.interfaces.values() {
        checker.interface(id, "");
    }
    for &id in package.worlds.values() {
        checker.world(id);
    }
    let mut offenders = checker.offenders;
    offenders.sort_by_key(|o| location_key(o));
    (checker.checked, offenders)
}

/// Sorts "file:line: ..." by file, then line as a number.
fn location_key(offender: &str) -> (String, usize) {
    let mut parts = offender.splitn(3, ':');
    let file = parts.next().unwrap_or("").to_owned();
    let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (file, line)
}

struct DocChecker<'a> {
    resolve: &'a wit_parser::Resolve,
    root: &'a Path,
    /// Items looked at.
    checked: usize,
    offenders: Vec<String>,
}

impl DocChecker<'_> {
    /// An interface, its types and its functions; `scope` prefixes the names of an
    /// anonymous (inline) interface's items.
    fn interface(&mut self, id: wit_parser::InterfaceId, scope: &str) {
        let interface = &self.resolve.interfaces[id];
        let scope = match &interface.name {
            Some(name) => {
                self.check(&interface.docs, interface.span, &format!("interface `{name}`"));
                format!("{name}.")
            }
            None => scope.to_owned(),
        };
        self.types(wit_parser::TypeOwner::Interface(id), &scope);
        for function in interface.functions.values() {
            self.function(function, &scope);
        }
    }

    /// A world, its types, the functions it imports or exports and its inline interfaces.
    fn world(&mut self, id: wit_parser::WorldId) {
        let world = &self.resolve.worlds[id];
        self.check(&world.docs, world.span, &format!("world `{}`", world.name));
        let scope = format!("{}.", world.name);
        self.types(wit_parser::TypeOwner::World(id), &scope);
        for (key, item) in world.imports.iter().chain(world.exports.iter()) {
            match item {
                wit_parser::WorldItem::Function(function) => self.function(function, &scope),
                wit_parser::WorldItem::Interface { id, .. }
                    if self.resolve.interfaces[*id].name.is_none() =>
                {
                    let inline = format!("{scope}{}.", self.resolve.name_world_key(key));
                    self.interface(*id, &inline);
                }
                wit_parser::WorldItem::Interface { .. } | wit_parser::WorldItem::Type { .. } => {}
            }
        }
    }

    /// The named types `owner` defines, with their fields, cases and flags. Types brought
    /// in by `use` are documented where they are defined; anonymous ones (`list<u8>`) are
    /// not items.
    fn types(&mut self, owner: wit_parser::TypeOwner, scope: &str) {
        use wit_parser::TypeDefKind;
        for (_, def) in self.resolve.types.iter() {
            let Some(name) = &def.name else { continue };
            if def.owner != owner {
                continue;
            }
            if let TypeDefKind::Type(wit_parser::Type::Id(target)) = def.kind {
                if self.resolve.types[target].owner != def.owner {
                    continue; // brought in by `use`
                }
            }
            let name = format!("{scope}{name}");
            let kind = match &def.kind {
                TypeDefKind::Record(record) => {
                    for field in &record.fields {
                        let what = format!("record field `{name}.{}`", field.name);
                        self.check(&field.docs, field.span, &what);
                    }
                    "record"
                }
                TypeDefKind::Variant(variant) => {
                    for case in &variant.cases {
                        let what = format!("variant case `{name}.{}`", case.name);
                        self.check(&case.docs, case.span, &what);
                    }
                    "variant"
                }
                TypeDefKind::Enum(enum_) => {
                    for case in &enum_.cases {
                        let what = format!("enum case `{name}.{}`", case.name);
                        self.check(&case.docs, case.span, &what);
                    }
                    "enum"
                }
                TypeDefKind::Flags(flags) => {
                    for flag in &flags.flags {
                        let what = format!("flag `{name}.{}`", flag.name);
                        self.check(&flag.docs, flag.span, &what);
                    }
                    "flags"
                }
                TypeDefKind::Resource => "resource",
                _ => "type alias",
            };
            self.check(&def.docs, def.span, &format!("{kind} `{name}`"));
        }
    }

    /// A function, a resource's method, static function or constructor.
    fn function(&mut self, function: &wit_parser::Function, scope: &str) {
        use wit_parser::FunctionKind;
        let resource = |id: wit_parser::TypeId| {
            self.resolve.types[id].name.clone().unwrap_or_else(|| "?".to_owned())
        };
        let item = function.item_name();
        let what = match function.kind {
            FunctionKind::Freestanding | FunctionKind::AsyncFreestanding => {
                format!("function `{scope}{item}`")
            }
            FunctionKind::Method(r) | FunctionKind::AsyncMethod(r) => {
                format!("method `{scope}{}.{item}`", resource(r))
            }
            FunctionKind::Static(r) | FunctionKind::AsyncStatic(r) => {
                format!("static function `{scope}{}.{item}`", resource(r))
            }
            FunctionKind::Constructor(r) => format!("constructor of `{scope}{}`", resource(r)),
        };
        self.check(&function.docs, function.span, &what);
    }

    /// Records `what` as an offender unless it has a doc comment right above it. wit-parser
    /// takes any comment (`//` too) as docs, so the comment's first characters are checked
    /// in the source as well.
    fn check(&mut self, docs: &wit_parser::Docs, span: wit_parser::Span, what: &str) {
        self.checked += 1;
        let documented = docs.contents.as_deref().is_some_and(|d| !d.trim().is_empty());
        let (file, line, above) = match self.resolve.source_map.resolve_span(span) {
            Some(location) => {
                let source = std::fs::read_to_string(location.path).unwrap_or_default();
                let (line, above) = comment_above(&source, location.range.start);
                (relative(self.root, Path::new(location.path)), line, above)
            }
            None => ("<unknown location>".to_owned(), 0, CommentAbove::Doc),
        };
        let problem = match (documented, above) {
            (true, CommentAbove::Doc) => return,
            (true, CommentAbove::Plain) => {
                "has a `//` comment, which is not a doc comment: write `///` instead"
            }
            (false, _) | (true, CommentAbove::None) => {
                "has no doc comment: write a `///` line right above it"
            }
        };
        self.offenders.push(format!("{file}:{line}: {what} {problem}"));
    }
}

/// What is right above an item.
#[derive(Clone, Copy, Debug, PartialEq)]
enum CommentAbove {
    /// A `///` line or a `/** */` comment.
    Doc,
    /// A `//` line that is not `///`, or a `/* */` comment.
    Plain,
    /// No comment (code, a blank line, the start of the file).
    None,
}

/// The 1-based line of the byte offset `at` in `source`, and the comment right above that
/// line (skipping `@attribute` lines), or on it before `at` (`/** doc */ case,`).
fn comment_above(source: &str, at: usize) -> (usize, CommentAbove) {
    let at = at.min(source.len());
    let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
    let number = source[..at].matches('\n').count() + 1;
    let before = source[line_start..at].trim();
    if let Some(block) = before.strip_suffix("*/") {
        let doc = block.rfind("/*").is_some_and(|i| block[i..].starts_with("/**"));
        return (number, if doc { CommentAbove::Doc } else { CommentAbove::Plain });
    }
    let lines: Vec<&str> = source[..line_start].lines().collect();
    for line in lines.iter().rev() {
        let line = line.trim();
        if line.starts_with('@') {
            continue;
        }
        let style = if line.starts_with("///") && !line.starts_with("////") {
            CommentAbove::Doc
        } else if line.starts_with("//") {
            CommentAbove::Plain
        } else if line.ends_with("*/") {
            // The last line of a block comment: find where it opens.
            let above = &source[..line_start];
            let opening = above.rfind("/*").map(|i| &above[i..]);
            if opening.is_some_and(|o| o.starts_with("/**")) {
                CommentAbove::Doc
            } else {
                CommentAbove::Plain
            }
        } else {
            CommentAbove::None
        };
        return (number, style);
    }
    (number, CommentAbove::None)
}

// ---------------------------------------------------------------------------------------
// The checks catch violations: each on a small synthetic input.
// ---------------------------------------------------------------------------------------

fn write(dir: &Path, path: &str, contents: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[test]
fn the_module_doc_check_finds_a_file_without_its_doc_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a/src/lib.rs", "//! Documented.\n");
    write(root, "a/src/blank_first.rs", "\n//! Documented, but not on the first line.\n");
    write(root, "a/src/deep/no_docs.rs", "use std::fs;\n");
    write(root, "a/src/plain.rs", "// A plain comment.\n");
    write(root, "a/src/empty.rs", "");
    write(root, "a/src/target/skipped.rs", "fn main() {}\n");
    write(root, "a/src/notes.txt", "not Rust\n");
    let files = rust_files_under(&[root.join("a/src"), root.join("absent")]);
    assert_eq!(files.len(), 5, "{files:?}");
    let offenders = files_without_module_docs(root, &files);
    assert_eq!(
        offenders,
        [
            "a/src/blank_first.rs:1: the first line is blank; it must be the `//!` line",
            "a/src/deep/no_docs.rs:1: starts with `use std::fs;` instead of a `//!` line",
            "a/src/empty.rs:1: the first line is blank; it must be the `//!` line",
            "a/src/plain.rs:1: starts with `// A plain comment.` instead of a `//!` line",
        ]
    );
}

#[test]
fn the_module_doc_check_covers_every_workspace_member_also_one_added_later() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "Cargo.toml",
        "[workspace]\nmembers = [\"host\", \"crates/*\"]\nexclude = [\"crates/old\"]\n",
    );
    for krate in ["host", "crates/new", "crates/old"] {
        write(root, &format!("{krate}/Cargo.toml"), "[package]\n");
    }
    write(root, "crates/not-a-crate/README.md", "no Cargo.toml\n");
    let members = workspace_members(root);
    assert_eq!(members, [root.join("host"), root.join("crates/new")]);
    // The repository's own members include the host and the guest SDK.
    let ours = workspace_members(&crate::support::root());
    assert!(ours.contains(&crate::support::root().join("host")), "{ours:?}");
    assert!(ours.contains(&crate::support::root().join("guest-sdk")), "{ours:?}");
}

#[test]
fn only_paths_count_as_paths() {
    for path in [
        "host/src/pipeline.rs",
        "pipeline.rs",
        "audit/",
        "wit/types.wit",
        "host/Cargo.toml",
        "SECURITY.md",
        "plugins/python/NAME/app.py",
        "plugins/bench-echo",
        "tools/",
        "tools/echo.rs",
        "setup.sql",
    ] {
        assert!(is_path(path), "`{path}` is a path");
    }
    for not in [
        "moat serve --stdio",
        "moat::Host",
        "all/mcp.rs::a_test",
        "target/wasm/*.wasm",
        "Vec<u8>",
        "target/wasm/{tools,tests}/NAME.wasm",
        "on_policy_error = \"keep-last\"",
        "--locked",
        "$HOME/.cargo",
        "/metrics",
        "~/.config",
        "https://example.com/a.md",
        "tools/list",
        "tools/list_changed",
        "elicitation/create",
        "target/py-builder",
        "STATE_DIR/state.sqlite",
        "moat.toml",
        "Cargo.lock",
        "Host",
    ] {
        assert!(!is_path(not), "`{not}` is not a path");
    }
}

#[test]
fn the_architecture_check_finds_a_path_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "host/src/pipeline.rs", "");
    write(root, "host/src/controls/breaker.rs", "");
    write(root, "host/examples/demo.rs", "");
    write(root, "plugins/python/echo/app.py", "");
    write(root, "README.md", "");
    let text = "\
# Architecture

The pipeline (`pipeline.rs`) and `controls/breaker.rs`; `gone.rs` is not anywhere.

## Code map

### `host/src/`
- `pipeline.rs`, `controls/breaker.rs`, `examples/demo.rs` (an ancestor's), `README.md`
  (the root's), `host/src/pipeline.rs`; not `breaker.rs` (it moved), nor `pipeline.rs/`
  (not a folder); `tools/list` is a method, `moat::Host` an item.
- A span across lines: `moved
  away.rs` is not a path.

### `host/src/controls/`
- `breaker.rs`, `pipeline.rs` (from host/src/), `plugins/python/NAME/app.py`,
  `plugins/python/NAME/main.py`.

```
`inside/a/fence.rs`
```

### `missing/`

## Invariants
- `controls/breaker.rs` is found from here, and `breaker.rs` too (in `host/src/controls/`),
  but `typo/breaker.rs` is not.
";
    let offenders = missing_architecture_paths(root, text);
    assert_eq!(
        offenders,
        [
            "ARCHITECTURE.md:3: `gone.rs` does not exist (tried relative to: ., host/src, host, \
             host/src/controls, missing)",
            "ARCHITECTURE.md:9: `breaker.rs` does not exist (tried relative to: host/src, host, .)",
            "ARCHITECTURE.md:9: `pipeline.rs/` does not exist (tried relative to: host/src, \
             host, .)",
            "ARCHITECTURE.md:16: `plugins/python/NAME/main.py` does not exist (tried relative \
             to: host/src/controls, host/src, host, .)",
            "ARCHITECTURE.md:22: `missing/` does not exist (tried relative to: .)",
            "ARCHITECTURE.md:26: `typo/breaker.rs` does not exist (tried relative to: ., \
             host/src, host, host/src/controls, missing)",
        ]
    );
}

#[test]
fn the_wit_check_finds_every_kind_of_undocumented_item() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "wit/a.wit",
        "package test:tidy@0.1.0;

/// Documented.
interface documented {
    /// Documented.
    record r {
        /// Documented.
        a: u32,
    }
    /** Documented. */
    enum e {
        /** Documented. */ first,
        /// Documented.
        second,
    }
    /// Documented.
    @since(version = 0.1.0)
    f: func() -> r;
}

interface bare {
    use documented.{r};

    record fields {
        undocumented: u32,
        /// Documented.
        documented: u32,
    }
    /// Documented.
    variant v {
        no-docs,
        /// Documented.
        payload(string),
    }
    /// Documented.
    enum e { one, two }
    /// Documented.
    flags permissions {
        read,
        /// Documented.
        write,
    }
    // A plain comment, not a doc comment.
    type alias = list<r>;
    /// Documented.
    resource handle {
        /// Documented.
        constructor();
        method: func();
        static-one: static func();
    }
    undocumented-function: func(x: option<u32>) -> result<r, string>;
}

world w {
    /// Documented.
    import f: func();
    import g: func();
    import documented;
    import inline: interface {
        h: func();
    }
    export bare;
}
",
    );
    let (items, offenders) = undocumented_wit_items(&dir.path().join("wit"), dir.path());
    let expected = [
        "wit/a.wit:21: interface `bare` has no doc comment: write a `///` line right above it",
        "wit/a.wit:24: record `bare.fields` has no doc comment: write a `///` line right above it",
        "wit/a.wit:25: record field `bare.fields.undocumented` has no doc comment: write a \
         `///` line right above it",
        "wit/a.wit:31: variant case `bare.v.no-docs` has no doc comment: write a `///` line \
         right above it",
        "wit/a.wit:36: enum case `bare.e.one` has no doc comment: write a `///` line right \
         above it",
        "wit/a.wit:36: enum case `bare.e.two` has no doc comment: write a `///` line right \
         above it",
        "wit/a.wit:39: flag `bare.permissions.read` has no doc comment: write a `///` line \
         right above it",
        "wit/a.wit:44: type alias `bare.alias` has a `//` comment, which is not a doc \
         comment: write `///` instead",
        "wit/a.wit:49: method `bare.handle.method` has no doc comment: write a `///` line \
         right above it",
        "wit/a.wit:50: static function `bare.handle.static-one` has no doc comment: write a \
         `///` line right above it",
        "wit/a.wit:52: function `bare.undocumented-function` has no doc comment: write a \
         `///` line right above it",
        "wit/a.wit:55: world `w` has no doc comment: write a `///` line right above it",
        "wit/a.wit:58: function `w.g` has no doc comment: write a `///` line right above it",
        "wit/a.wit:61: function `w.inline.h` has no doc comment: write a `///` line right above it",
    ];
    assert_eq!(offenders, expected, "\n{}", offenders.join("\n"));
    // Two interfaces; in `documented`: r, r.a, e, e.first, e.second, f; in `bare`: fields, its 2
    // fields, v, its 2 cases, e, its 2 cases, permissions, its 2 flags, alias, handle, its 3
    // functions, undocumented-function; the world w, f, g and h.
    assert_eq!(items, 2 + 6 + 3 + 3 + 3 + 3 + 1 + 4 + 1 + 4, "items checked");
}

#[test]
fn the_wit_check_accepts_a_fully_documented_package() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "wit/a.wit",
        "package test:tidy@0.1.0;

/// An interface.
interface i {
    /// A record.
    record r {
        /// A field.
        a: u32,
    }
    /// A function.
    f: func() -> r;
}

/// A world.
world w {
    export i;
}
",
    );
    let (items, offenders) = undocumented_wit_items(&dir.path().join("wit"), dir.path());
    assert_eq!((items, offenders), (5, Vec::new()));
}
