//! The crates a workspace member depends on, read from its `Cargo.toml` with `toml`: the
//! rule that the library carries none of the command's crates, and that `moat-typed` knows
//! nothing of moat.

use std::collections::BTreeSet;
use std::path::Path;

/// Every crate `manifest` lists as a normal or build dependency, on every target
/// (`[dependencies]`, `[build-dependencies]`, `[target.'cfg(..)'.dependencies]`), by the name
/// it is listed under and by its `package` when renamed. Dev-dependencies are not counted:
/// they are not part of what the crate carries.
pub(super) fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let manifest: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{text}\ndoes not parse: {e}"));
    let mut tables = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        tables.extend(manifest.get(key).and_then(|t| t.as_table()));
    }
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for target in targets.values().filter_map(|t| t.as_table()) {
            for key in ["dependencies", "build-dependencies"] {
                tables.extend(target.get(key).and_then(|t| t.as_table()));
            }
        }
    }
    let mut names = BTreeSet::new();
    for table in tables {
        for (name, spec) in table {
            names.insert(name.clone());
            if let Some(package) = spec.get("package").and_then(|p| p.as_str()) {
                names.insert(package.to_owned());
            }
        }
    }
    names
}

/// The names in `forbidden` that `manifest` depends on.
pub(super) fn forbidden_dependencies(manifest: &Path, forbidden: &[&str]) -> Vec<String> {
    let have = dependencies(manifest);
    forbidden.iter().filter(|name| have.contains(**name)).map(|name| name.to_string()).collect()
}
