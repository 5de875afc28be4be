//! Each tidy check against a small synthetic input with a violation: proof that it catches
//! one.

use super::*;

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
    // The repository's own members: the library, the command, the typed exports, the guest SDK.
    let ours = workspace_members(&crate::support::root());
    for member in ["host", "cli", "typed", "guest-sdk"] {
        assert!(ours.contains(&crate::support::root().join(member)), "{member}: {ours:?}");
    }
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

#[test]
fn the_import_check_finds_a_cycle_through_a_group_and_a_root_reexport() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    write(src, "lib.rs", "//! lib\npub mod a;\npub mod b;\npub mod c;\npub use c::Thing;\n");
    write(src, "a.rs", "//! a\nuse crate::{b::One, units};\n");
    write(src, "b/mod.rs", "//! b\nfn f() -> crate::Thing { todo!() }\n");
    write(
        src,
        "c.rs",
        "//! c\n// crate::a in a comment is no arrow\npub struct Thing;\nuse crate::a::X;\n",
    );
    write(src, "d.rs", "//! d\nuse crate::a;\n");
    let arrows = module_arrows(src);
    assert_eq!(arrows["a"].iter().collect::<Vec<_>>(), ["b"]);
    assert_eq!(arrows["b"].iter().collect::<Vec<_>>(), ["c"]);
    assert_eq!(cycles(&arrows), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    write(src, "c.rs", "//! c\npub struct Thing;\n");
    assert!(cycles(&module_arrows(src)).is_empty());
}

#[test]
fn the_dependency_check_counts_renamed_and_target_crates_but_not_dev_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("Cargo.toml");
    std::fs::write(
        &manifest,
        "[package]\nname = \"x\"\n\
         [dependencies]\nserde = \"1\"\ncli-args = { package = \"clap\", version = \"4\" }\n\
         [target.'cfg(unix)'.dependencies]\nanyhow = \"1\"\n\
         [dev-dependencies]\ntracing-subscriber = \"0.3\"\n",
    )
    .unwrap();
    let found = forbidden_dependencies(&manifest, &["clap", "anyhow", "tracing-subscriber"]);
    assert_eq!(found, ["clap", "anyhow"]);
}
