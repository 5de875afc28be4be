//! `moat new tool|guard NAME --lang rust|python|js`: writes a working plugin from a template
//! into a moat checkout, where `just plugins` builds it and `just test` runs its cases.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The arguments of `moat new`.
#[derive(Args)]
pub struct NewArgs {
    /// What to make: a tool, or a guard policy
    kind: Kind,
    /// Its name: lowercase letters, digits and `-`, starting with a letter (the tool inside
    /// is named with `_` for `-`)
    name: String,
    /// The language it is written in
    #[arg(long, value_enum)]
    lang: Lang,
    /// The moat checkout to write into (it has `plugins/` and `wit/`)
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Tool,
    Guard,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
}

/// Where a plugin of each kind and language lives, and where `just plugins` writes it.
fn place(kind: Kind, lang: Lang) -> (&'static str, &'static str) {
    match (lang, kind) {
        (Lang::Rust, Kind::Tool) => ("plugins", "tools"),
        (Lang::Rust, Kind::Guard) => ("plugins/policies", "policies"),
        (Lang::Python, Kind::Tool) => ("plugins/python", "python"),
        (Lang::Python, Kind::Guard) => ("plugins/python/policies", "python-policies"),
        (Lang::Js, Kind::Tool) => ("plugins/js", "js"),
        (Lang::Js, Kind::Guard) => ("plugins/js/policies", "js-policies"),
    }
}

/// The files of a template: (path in the plugin's directory, text with `{{name}}` and
/// `{{tool}}` to fill in).
fn template(kind: Kind, lang: Lang) -> Vec<(&'static str, &'static str)> {
    let cases = match kind {
        Kind::Tool => include_str!("../templates/tool.cases.json"),
        Kind::Guard => include_str!("../templates/guard.cases.json"),
    };
    let mut files = match (lang, kind) {
        (Lang::Rust, Kind::Tool) => vec![
            ("Cargo.toml", include_str!("../templates/rust-tool.Cargo.toml")),
            ("src/lib.rs", include_str!("../templates/rust-tool.lib.rs")),
        ],
        (Lang::Rust, Kind::Guard) => vec![
            ("Cargo.toml", include_str!("../templates/rust-guard.Cargo.toml")),
            ("src/lib.rs", include_str!("../templates/rust-guard.lib.rs")),
        ],
        (Lang::Python, Kind::Tool) => vec![("app.py", include_str!("../templates/python-tool.py"))],
        (Lang::Python, Kind::Guard) => {
            vec![("app.py", include_str!("../templates/python-guard.py"))]
        }
        (Lang::Js, Kind::Tool) => vec![("app.js", include_str!("../templates/js-tool.js"))],
        (Lang::Js, Kind::Guard) => vec![("app.js", include_str!("../templates/js-guard.js"))],
    };
    files.push(("cases.json", cases));
    files
}

/// The text of each file of the plugin `name`, as `moat new` writes them (relative paths).
fn render(kind: Kind, lang: Lang, name: &str) -> Vec<(&'static str, String)> {
    let tool = name.replace('-', "_");
    template(kind, lang)
        .into_iter()
        .map(|(path, text)| (path, text.replace("{{name}}", name).replace("{{tool}}", &tool)))
        .collect()
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name == "policies" {
        bail!("`policies` is the directory of the guards: choose another name");
    }
    if !ok {
        bail!(
            "`{name}` is not a plugin name: 1 to 48 lowercase letters, digits and `-`, \
             starting with a letter and not ending with `-`"
        );
    }
    Ok(())
}

/// Writes the plugin, and for Rust adds it to the guest workspace; never overwrites.
pub fn run(args: NewArgs) -> Result<()> {
    check_name(&args.name)?;
    let root = &args.root;
    for needed in ["plugins", "wit"] {
        if !root.join(needed).is_dir() {
            bail!(
                "{} has no `{needed}/` directory: run `moat new` at the root of a moat \
                 checkout (or give it with --root)",
                root.display()
            );
        }
    }
    let (dir, out) = place(args.kind, args.lang);
    let target = root.join(dir).join(&args.name);
    if target.exists() {
        bail!("{} already exists: choose another name (nothing was written)", target.display());
    }
    let files = render(args.kind, args.lang, &args.name);
    if args.lang == Lang::Rust {
        add_to_workspace(&root.join("plugins/Cargo.toml"), &format!("{dir}/{}", args.name))?;
    }
    for (path, text) in &files {
        let path = target.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let what = match args.kind {
        Kind::Tool => "tool",
        Kind::Guard => "guard policy",
    };
    println!("wrote the {what} {} ({} files)", target.display(), files.len());
    println!("build it:  just plugins   -> target/wasm/{out}/{}.wasm", args.name);
    println!("test it:   just test      (runs its cases.json)");
    match args.kind {
        Kind::Tool => println!(
            "call it:   moat call {} --args '{{\"text\": \"hello\"}}' (with target/wasm/{out} \
             among the tools directories of moat.toml)",
            args.name.replace('-', "_")
        ),
        Kind::Guard => println!(
            "use it:    copy target/wasm/{out}/{}.wasm into the policies directory of moat.toml",
            args.name
        ),
    }
    Ok(())
}

/// Adds `member` (relative to plugins/) to the members of the guest workspace, so that
/// `just plugins` builds it.
fn add_to_workspace(manifest: &Path, member: &str) -> Result<()> {
    let member = member.strip_prefix("plugins/").unwrap_or(member);
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let Some(start) = text.find("members = [") else {
        bail!("{} has no `members = [` list to add the crate to", manifest.display());
    };
    let at = start + "members = [".len();
    let updated = format!("{}\n    \"{member}\",{}", &text[..at], &text[at..]);
    // The result must still be a workspace manifest before it replaces the old one.
    let parsed: toml::Table = toml::from_str(&updated)
        .with_context(|| format!("adding `{member}` would break {}", manifest.display()))?;
    if parsed.get("workspace").and_then(|w| w.get("members")).is_none() {
        bail!("{} is not the guest workspace manifest", manifest.display());
    }
    std::fs::write(manifest, updated)
        .with_context(|| format!("cannot write {}", manifest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_joined_by_dashes() {
        assert!(check_name("weather").is_ok());
        assert!(check_name("no-internal-urls2").is_ok());
        for bad in ["", "Weather", "2fast", "a_b", "trailing-", "../x", &"x".repeat(49)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_is_filled_in() {
        for kind in [Kind::Tool, Kind::Guard] {
            for lang in [Lang::Rust, Lang::Python, Lang::Js] {
                for (path, text) in render(kind, lang, "my-plugin") {
                    assert!(!text.contains("{{"), "{path} keeps a placeholder");
                }
            }
        }
    }
}
