//! A plugin: one component file, validated against the `tool-plugin` world, prepared for
//! instantiation, with the tools its `describe()` reported; or a component built for another
//! host, whose exported functions are the tools (`typed/`).

pub mod builtin;
pub(crate) mod call;
pub mod componentize;
pub mod registry;
pub mod trust;
pub(crate) mod typed;
pub(crate) mod validate;
pub mod watch;

use crate::budget::Budgets;
use crate::call::{EffectKind, Stakes};
use crate::capability::bindings::{self, ToolPluginPre};
use crate::capability::{CallCaps, PROVIDED, WASI};
use crate::error::{one_line, LoadError, LoadProblem};
use crate::plugin::typed::Typed;
use crate::plugin::validate::ArgsSchema;
use crate::runtime::compile_cache::Compiler;
use crate::runtime::exec::{CallState, Runtime};
use crate::units::ByteSize;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Component;
use wasmtime::Engine;

/// The interface every tool component must export.
pub const TOOL_EXPORT: &str = "moat:plugin/tool@0.1.0";

/// One tool as its component describes it, checked by the host.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: serde_json::Value,
    pub output_schema: Option<serde_json::Value>,
    pub effects: Vec<EffectKind>,
    /// The tool's own claim; `None` means derived from the effects.
    pub stakes: Option<Stakes>,
    pub version: String,
    /// The compiled input schema.
    #[serde(skip)]
    pub(crate) schema: ArgsSchema,
}

impl ToolSpec {
    /// The tool's own claim, or derived from its effects: deleting, sending and network
    /// effects are high stakes, writing is medium, the rest low.
    pub fn derived_stakes(&self) -> Stakes {
        if let Some(stakes) = self.stakes {
            return stakes;
        }
        let has = |kind| self.effects.contains(&kind);
        if has(EffectKind::Delete) || has(EffectKind::Send) || has(EffectKind::Network) {
            Stakes::High
        } else if has(EffectKind::Write) {
            Stakes::Medium
        } else {
            Stakes::Low
        }
    }
}

/// A loaded component.
pub struct Plugin {
    pub path: PathBuf,
    /// blake3 of the component bytes: what the audit log and the lockfile pin.
    pub hash: blake3::Hash,
    pub(crate) name: Arc<str>,
    pub(crate) pre: Prepared,
    pub tools: Vec<ToolSpec>,
}

/// A component ready to instantiate, by kind.
pub(crate) enum Prepared {
    /// Built for moat: it exports the `tool` interface.
    Moat(ToolPluginPre<CallState>),
    /// Built for another host: its exported functions are the tools.
    Typed(Typed),
}

impl Plugin {
    /// Reads, validates and prepares the component at `path`, and asks it what it offers.
    pub(crate) fn load(
        runtime: &Runtime,
        path: &Path,
        budgets: &Budgets,
    ) -> Result<Plugin, LoadError> {
        let fail = |problem| LoadError { path: path.to_owned(), problem };
        let engine = &runtime.engine;
        let (bytes, component) = read_and_compile(&runtime.compiler, path, &TOOL_WORLD)?;
        if let Err(wrong_world) = check_exports(engine, &component, &TOOL_WORLD) {
            return Plugin::load_typed(runtime, path, bytes, &component, wrong_world);
        }
        let instance_pre = runtime.linker.instantiate_pre(&component).map_err(|e| {
            fail(LoadProblem::Mismatch { world: TOOL_WORLD.name, reason: one_line(&e) })
        })?;
        let pre = ToolPluginPre::new(instance_pre).map_err(|e| {
            fail(LoadProblem::Mismatch { world: TOOL_WORLD.name, reason: one_line(&e) })
        })?;
        let name: Arc<str> =
            path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default().into();
        // Nothing is granted to describe(): it must be pure.
        let deadline = std::time::Instant::now() + budgets.wall_time.duration();
        let view = crate::call::CallView { tool: "describe".into(), ..Default::default() };
        let caps = CallCaps::new(
            Arc::new(view),
            name.clone(),
            Arc::default(),
            runtime.shared.clone(),
            deadline,
        );
        let infos = call::describe(&runtime.engine, &pre, &name, budgets, caps)
            .map_err(|e| fail(LoadProblem::Describe(e.to_string())))?;
        let tools = check_tools(infos).map_err(fail)?;
        let pre = Prepared::Moat(pre);
        Ok(Plugin { path: path.to_owned(), hash: blake3::hash(&bytes), name, pre, tools })
    }

    /// A component that does not export moat's `tool` interface: its exported functions are
    /// the tools, if it has any and is not a moat component of another world; otherwise it
    /// is refused as of the wrong world.
    fn load_typed(
        runtime: &Runtime,
        path: &Path,
        bytes: Vec<u8>,
        component: &Component,
        wrong_world: LoadProblem,
    ) -> Result<Plugin, LoadError> {
        let fail = |problem| LoadError { path: path.to_owned(), problem };
        let engine = &runtime.engine;
        let ty = component.component_type();
        if ty.exports(engine).any(|(name, _)| name.starts_with("moat:")) {
            return Err(fail(wrong_world));
        }
        let file = path.file_name().map(|s| s.to_string_lossy()).unwrap_or_default();
        let Some(found) = typed::discover(engine, component, &file).map_err(fail)? else {
            return Err(fail(wrong_world));
        };
        let pre = runtime
            .linker
            .instantiate_pre(component)
            .map_err(|e| fail(LoadProblem::Link(one_line(&e))))?;
        let (functions, tools): (Vec<_>, Vec<_>) = found.into_iter().unzip();
        let name: Arc<str> =
            path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default().into();
        let pre = Prepared::Typed(Typed::new(pre, functions));
        Ok(Plugin { path: path.to_owned(), hash: blake3::hash(&bytes), name, pre, tools })
    }
}

/// What a world expects of a component: the one interface it exports, and the interfaces the
/// host provides to it.
pub(crate) struct World {
    pub name: &'static str,
    pub export: &'static str,
    pub provided: &'static [&'static str],
    /// Provided too, in a restricted context: the WASI of other languages' runtimes.
    pub wasi: &'static [&'static str],
}

pub(crate) const TOOL_WORLD: World =
    World { name: "tool-plugin", export: TOOL_EXPORT, provided: PROVIDED, wasi: WASI };

/// Reads and compiles the component at `path`, refusing anything that is not a component of
/// `world`: garbage, empty files, core modules, other worlds, unknown imports.
pub(crate) fn compile(
    compiler: &Compiler,
    path: &Path,
    world: World,
) -> Result<(Vec<u8>, Component), LoadError> {
    let (bytes, component) = read_and_compile(compiler, path, &world)?;
    check_exports(&compiler.engine, &component, &world)
        .map_err(|problem| LoadError { path: path.to_owned(), problem })?;
    Ok((bytes, component))
}

/// [`compile`] without the export check: any component whose imports `world` provides.
fn read_and_compile(
    compiler: &Compiler,
    path: &Path,
    world: &World,
) -> Result<(Vec<u8>, Component), LoadError> {
    let fail = |problem| LoadError { path: path.to_owned(), problem };
    let bytes = read_component(path, compiler.max_component_size).map_err(fail)?;
    check_header(&bytes).map_err(fail)?;
    (compiler.admit)(path, &bytes).map_err(|why| fail(LoadProblem::NotTrusted(why)))?;
    let component =
        compiler.compile(&bytes, path).map_err(|e| fail(LoadProblem::Invalid(one_line(&e))))?;
    check_imports(&compiler.engine, &component, world).map_err(fail)?;
    Ok((bytes, component))
}

/// The bytes of the component file at `path`, refused unread if it has more than `max`
/// (and never more than `max` read, should it grow meanwhile).
pub(crate) fn read_component(path: &Path, max: u64) -> Result<Vec<u8>, LoadProblem> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| LoadProblem::Unreadable(e.to_string());
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let too_large = |size| LoadProblem::TooLarge { size: ByteSize(size), limit: ByteSize(max) };
    let size = file.metadata().map_err(unreadable)?.len();
    if size > max {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Tells garbage, empty files and core modules from components before compiling anything.
fn check_header(bytes: &[u8]) -> Result<(), LoadProblem> {
    if bytes.is_empty() {
        return Err(LoadProblem::Empty);
    }
    if wasmparser::Parser::is_component(bytes) {
        return Ok(());
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(LoadProblem::CoreModule);
    }
    if bytes.starts_with(b"\0asm") {
        return Err(LoadProblem::Invalid(format!(
            "unsupported WebAssembly version or layer {:02x?}",
            &bytes[4..bytes.len().min(8)]
        )));
    }
    let head = &bytes[..bytes.len().min(8)];
    let shown = match std::str::from_utf8(head) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => format!("{text:?}"),
        _ => format!("bytes {head:02x?}"),
    };
    Err(LoadProblem::NotWasm(shown))
}

/// Every import must be an interface this host provides, in a compatible version.
fn check_imports(engine: &Engine, component: &Component, world: &World) -> Result<(), LoadProblem> {
    let ty = component.component_type();
    for (import, _) in ty.imports(engine) {
        let mut provided = world.provided.iter().chain(world.wasi);
        if !provided.any(|provided| compatible(import, provided)) {
            return Err(LoadProblem::UnknownImport {
                import: import.to_owned(),
                provided: world
                    .provided
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}

fn check_exports(engine: &Engine, component: &Component, world: &World) -> Result<(), LoadProblem> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    if exports.iter().any(|name| compatible(name, world.export)) {
        return Ok(());
    }
    let found = match exports.as_slice() {
        [] => "nothing".to_owned(),
        names => names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
    };
    Err(LoadProblem::WrongWorld { expected: world.export.to_owned(), found, world: world.name })
}

/// Whether `name` (`ns:pkg/iface@version`) can be served by `provided`: the same interface,
/// and a semver-compatible version (same major, or same minor below 1.0), as wasmtime's
/// linker matches them.
fn compatible(name: &str, provided: &str) -> bool {
    let (base, version) = name.split_once('@').unwrap_or((name, ""));
    let (provided_base, provided_version) = provided.split_once('@').unwrap_or((provided, ""));
    if base != provided_base {
        return false;
    }
    let key = |v: &str| -> Vec<String> {
        let parts: Vec<&str> = v.split('.').collect();
        match parts.first() {
            Some(&"0") => parts.iter().take(2).map(|p| p.to_string()).collect(),
            _ => parts.iter().take(1).map(|p| p.to_string()).collect(),
        }
    };
    key(version) == key(provided_version)
}

/// Checks what `describe()` returned: names, schemas, no duplicates.
fn check_tools(infos: Vec<bindings::ToolInfo>) -> Result<Vec<ToolSpec>, LoadProblem> {
    let mut tools: Vec<ToolSpec> = Vec::with_capacity(infos.len());
    for info in infos {
        let bad = |reason: String| LoadProblem::BadToolInfo { tool: info.name.clone(), reason };
        let name_ok = (1..=64).contains(&info.name.len())
            && info
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(bad("a tool name is 1 to 64 characters of a-z, 0-9, `_` and `-`".into()));
        }
        if tools.iter().any(|t| t.name == info.name) {
            return Err(bad("described twice".into()));
        }
        let input_schema: serde_json::Value = serde_json::from_str(&info.input_schema)
            .map_err(|e| bad(format!("input schema is not JSON: {e}")))?;
        if !input_schema.is_object() {
            return Err(bad("input schema is not a JSON object".into()));
        }
        let schema = ArgsSchema::compile(&input_schema).map_err(bad)?;
        let output_schema = match &info.output_schema {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| bad(format!("output schema is not JSON: {e}")))?,
            ),
            None => None,
        };
        tools.push(ToolSpec {
            effects: info.effects.iter().map(|e| effect(*e)).collect(),
            stakes: info.stakes.map(stakes),
            name: info.name,
            description: info.description,
            input_schema,
            output_schema,
            version: info.version,
            schema,
        });
    }
    if tools.is_empty() {
        return Err(LoadProblem::Describe("it offers no tools".into()));
    }
    Ok(tools)
}

fn effect(kind: bindings::EffectKind) -> EffectKind {
    use bindings::EffectKind as K;
    match kind {
        K::Read => EffectKind::Read,
        K::Write => EffectKind::Write,
        K::Delete => EffectKind::Delete,
        K::Network => EffectKind::Network,
        K::Send => EffectKind::Send,
    }
}

fn stakes(stakes: bindings::Stakes) -> Stakes {
    match stakes {
        bindings::Stakes::Low => Stakes::Low,
        bindings::Stakes::Medium => Stakes::Medium,
        bindings::Stakes::High => Stakes::High,
    }
}

/// Directories scanned for components (`*.wasm`), in order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDirs {
    #[serde(default = "default_tool_dirs")]
    pub tools: Vec<PathBuf>,
    /// Guard policies, run in file-name order; watched, so changes apply to the next call.
    #[serde(default = "default_policy_dir")]
    pub policies: PathBuf,
    /// Load only plugins the lockfile pins (or a trusted key signed); also `--locked`.
    #[serde(default)]
    pub locked: bool,
    /// The lockfile `moat lock` writes and `locked` reads.
    #[serde(default = "default_lockfile")]
    pub lockfile: PathBuf,
    /// Public keys (64 hex digits) of publishers whose signed plugins (`FILE.wasm.sig`, made
    /// by `moat sign`) load without a pin when locked.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// A component file larger than this is refused before it is read or compiled.
    #[serde(default = "default_max_component_size")]
    pub max_component_size: ByteSize,
    /// What a policy that cannot be in force as configured (a missing policies directory, a
    /// policy that fails to load, one removed while serving) does to calls.
    #[serde(default)]
    pub on_policy_error: OnPolicyError,
    /// Whether `policies` was named in `moat.toml` (set by [`Config::parse`]): then a missing
    /// directory is an error, not "no policies".
    #[serde(skip)]
    pub policies_named: bool,
}

impl Default for PluginDirs {
    fn default() -> PluginDirs {
        PluginDirs {
            tools: default_tool_dirs(),
            policies: default_policy_dir(),
            locked: false,
            lockfile: default_lockfile(),
            trusted_keys: Vec::new(),
            max_component_size: default_max_component_size(),
            on_policy_error: OnPolicyError::Deny,
            policies_named: false,
        }
    }
}

/// `[plugins] on_policy_error`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnPolicyError {
    /// Every call is refused, with the error naming the file, until it is fixed.
    #[default]
    Deny,
    /// A policy that was in force stays in force in its previous version, and that is
    /// audited. A policy that never loaded (at start, or new) still refuses every call.
    KeepLast,
}

fn default_lockfile() -> PathBuf {
    PathBuf::from("moat.lock")
}

/// Large enough for a Python component with its interpreter and libraries (about 40 MB).
fn default_max_component_size() -> ByteSize {
    ByteSize::mib(128)
}

fn default_policy_dir() -> PathBuf {
    PathBuf::from("policies")
}

fn default_tool_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from("tools")]
}

/// The records of component files that were not loaded, with the hash of each as it was
/// read (when it could be, within `max_size` bytes).
pub(crate) fn load_refused(errors: &[LoadError], max_size: u64) -> Vec<crate::audit::Event> {
    errors
        .iter()
        .map(|error| crate::audit::Event::LoadRefused {
            path: error.path.display().to_string(),
            blake3: read_component(&error.path, max_size)
                .ok()
                .map(|bytes| blake3::hash(&bytes).to_hex().to_string()),
            reason: error.problem.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_as_semver_compatible() {
        assert!(compatible("moat:plugin/log@0.1.3", "moat:plugin/log@0.1.0"));
        assert!(!compatible("moat:plugin/log@0.2.0", "moat:plugin/log@0.1.0"));
        assert!(!compatible("moat:plugin/fs@0.1.0", "moat:plugin/log@0.1.0"));
        assert!(compatible("wasi:io/poll@1.2.0", "wasi:io/poll@1.0.0"));
    }

    #[test]
    fn headers_tell_garbage_from_modules_from_components() {
        assert!(matches!(check_header(b""), Err(LoadProblem::Empty)));
        assert!(matches!(check_header(b"hello world"), Err(LoadProblem::NotWasm(_))));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0"), Err(LoadProblem::CoreModule)));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
