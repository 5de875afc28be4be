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
//! - **The library carries only what it uses.** `host/Cargo.toml` lists none of the crates
//!   only the command uses (`clap`, `anyhow`, `tracing-subscriber`: they are `cli/`'s), and
//!   `typed/Cargo.toml` does not depend on `moat` (the typed exports know nothing of it).
//!   Normal, build and target-specific dependencies count; dev-dependencies do not.
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

mod checks;
mod deps;
mod imports;
mod modules;
mod paths;
mod wit;

use deps::*;
use imports::*;
use modules::*;
use paths::*;
use wit::*;

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
    for expected in [
        "host/src/lib.rs",
        "cli/src/main.rs",
        "cli/examples/demo_agent.rs",
        "typed/src/lib.rs",
        "guest-sdk/src/lib.rs",
        "tests/all/main.rs",
    ] {
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
         doc comment of tests/all/tidy/mod.rs for what counts as a path.\n",
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

/// No import cycle between the top-level modules of `host/src`: each layer imports only from
/// the layers below it (ARCHITECTURE.md, `host/src/`). A cycle would have to be named there,
/// with its reason; none is.
#[test]
fn no_import_cycle_between_top_level_modules() {
    let arrows = module_arrows(&root().join("host/src"));
    assert!(arrows.len() > 20, "host/src has its modules: {:?}", arrows.keys());
    let cycles = cycles(&arrows);
    let described: Vec<String> = cycles
        .iter()
        .map(|set| {
            let inside: Vec<String> = set
                .iter()
                .map(|m| {
                    let to: Vec<&str> =
                        arrows[m].iter().filter(|t| set.contains(t)).map(|t| t.as_str()).collect();
                    format!("{m} -> {}", to.join(" "))
                })
                .collect();
            inside.join("; ")
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "{} import cycle(s) between top-level modules of host/src (move the item that an arrow \
         imports down a layer, or take it as a parameter):\n  {}",
        cycles.len(),
        described.join("\n  ")
    );
}

#[test]
fn the_library_carries_none_of_the_commands_crates() {
    let command_only = ["clap", "anyhow", "tracing-subscriber"];
    let carried = forbidden_dependencies(&root().join("host/Cargo.toml"), &command_only);
    assert!(
        carried.is_empty(),
        "host/Cargo.toml depends on {carried:?}, which only the `moat` command uses.\n\
         Fix: move the code that needs them to cli/ and the dependency to cli/Cargo.toml; the \
         library's errors are typed (thiserror)."
    );
    // The command does carry them: the rule is about where they are, not whether.
    let command = dependencies(&root().join("cli/Cargo.toml"));
    for name in command_only {
        assert!(command.contains(name), "cli/Cargo.toml lacks {name}: {command:?}");
    }
}

#[test]
fn moat_typed_knows_nothing_of_moat() {
    let moat = forbidden_dependencies(&root().join("typed/Cargo.toml"), &["moat", "moat-cli"]);
    assert!(
        moat.is_empty(),
        "typed/Cargo.toml depends on {moat:?}.\n\
         Fix: keep moat's types in host/src/plugin/typed.rs, which maps the crate's results \
         and errors to moat's; moat-typed speaks only wasmtime and serde_json."
    );
}
