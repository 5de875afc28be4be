//! The layering rule: no import cycle between the top-level modules of `host/src`, read
//! from the `crate::` paths of every file (and the crate root's re-exports, so `crate::Host`
//! is an arrow to `pipeline`).

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// Each top-level module of the crate at `src` and the top-level modules it imports.
pub(super) fn module_arrows(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexported = reexports(&lib);
    let mut files = BTreeSet::new();
    rust_files(src, &mut files);
    let mut arrows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a path").as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_owned();
        if ["lib", "main", "bin"].contains(&module.as_str()) || module.ends_with("_cli") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        let code: String =
            text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let entry = arrows.entry(module.clone()).or_default();
        for name in crate_paths(&code) {
            let target = reexported.get(&name).cloned().unwrap_or(name);
            if target != module {
                entry.insert(target);
            }
        }
    }
    let modules: BTreeSet<String> = arrows.keys().cloned().collect();
    for targets in arrows.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    arrows
}

/// The first segment of every `crate::` path in `code`, those of `crate::{a, b::c}` included.
pub(super) fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Names at the group's top level: after `{` or a `,` at depth 0.
            let (mut depth, mut start) = (0, true);
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_alphanumeric() || c == '_' => {
                        if start {
                            word.push(c)
                        }
                    }
                    _ => {
                        if !word.is_empty() {
                            names.insert(std::mem::take(&mut word));
                        }
                        if !c.is_whitespace() {
                            start = false;
                        }
                    }
                }
            }
            if !word.is_empty() {
                names.insert(word);
            }
        } else {
            let word: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.insert(word);
        }
    }
    names
}

/// The names `lib.rs` re-exports at the crate root (`pub use module::{A, B};`), each with
/// its module.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for line in lib.split(';') {
        let Some(used) = line.trim().strip_prefix("pub use ") else { continue };
        let module = used.split("::").next().unwrap_or("").trim().to_owned();
        let names = match used.split_once('{') {
            Some((_, names)) => names.trim_end_matches('}').to_owned(),
            None => used.rsplit("::").next().unwrap_or("").to_owned(),
        };
        for name in names.split(',').map(|n| n.trim().split("::").last().unwrap_or("").to_owned()) {
            if !name.is_empty() {
                found.insert(name, module.clone());
            }
        }
    }
    found
}

/// The cycles among `arrows`: every strongly connected set of more than one module, each
/// with its arrows inside the set (Tarjan's algorithm).
pub(super) fn cycles(arrows: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        arrows: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, at: &'a str) {
        let n = walk.index.len();
        walk.index.insert(at, n);
        walk.low.insert(at, n);
        walk.stack.push(at);
        let arrows = walk.arrows;
        for next in arrows.get(at).into_iter().flatten() {
            let next = next.as_str();
            if !walk.index.contains_key(next) {
                visit(walk, next);
                let low = walk.low[at].min(walk.low[next]);
                walk.low.insert(at, low);
            } else if walk.stack.contains(&next) {
                let low = walk.low[at].min(walk.index[next]);
                walk.low.insert(at, low);
            }
        }
        if walk.low[at] == walk.index[at] {
            let mut set = Vec::new();
            while let Some(top) = walk.stack.pop() {
                set.push(top.to_owned());
                if top == at {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                walk.found.push(set);
            }
        }
    }
    let mut walk = Walk {
        arrows,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in arrows.keys() {
        if !walk.index.contains_key(module.as_str()) {
            visit(&mut walk, module);
        }
    }
    walk.found
}
