//! Host interfaces offered to plugins, one file per capability. Each file owns its grant
//! type (a `moat.toml` table), its limits, its per-call state, its WIT `Host` impl on a
//! [`CapsView`] (the borrowed part of a call's store a capability sees, as wasmtime's own
//! `WasiCtxView`), and its [`Capability`] impl, which links it.
//!
//! Nothing is granted by default. [`Grants`] is the one place where configuration becomes
//! authority; [`CallCaps`] (`caps.rs`) is what one call may do and what it has done so far:
//! the effects it staged, to be committed or rolled back by the pipeline. The list of
//! capabilities at the bottom of this file makes `Grants`, [`PROVIDED`], the linker and the
//! order of commit and rollback: a new capability is one file and one line there.

pub(crate) mod bindings;
pub mod wasi;

/// Returns a refusal to the guest (`Ok(Err(..))` of a trappable host function).
macro_rules! refuse {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}

mod caps;
pub mod fs;
pub mod http;
pub mod kv;
pub mod log;
pub(crate) mod meters;
pub mod secrets;
pub mod sql;

/// A magnitude limit that would be exceeded (defined with the principals' windows, which
/// report the same way).
pub use crate::controls::principal::Over;
pub(crate) use caps::{CallCaps, Shared};

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wasmtime::component::{HasData, Linker, ResourceTable};

/// What a capability's host functions borrow of one call's store: what the call may do and
/// has staged, its handles, its log.
pub(crate) struct CapsView<'a> {
    pub caps: &'a mut CallCaps,
    /// Handles (resources) the guest holds.
    pub table: &'a mut ResourceTable,
    pub log: &'a mut log::CallLog,
}

/// Store data that holds one call's capabilities: how the linker reaches them.
pub(crate) trait HasCaps: Send + 'static {
    fn caps(&mut self) -> CapsView<'_>;
}

/// The [`HasData`] of every capability's bindings: a [`CapsView`].
pub(crate) struct Caps;

impl HasData for Caps {
    type Data<'a> = CapsView<'a>;
}

/// One host interface offered to tools.
pub(crate) trait Capability {
    /// The WIT interface, as `namespace:package/interface@version`.
    const INTERFACE: &'static str;
    /// What `[tools.NAME.grants]` says of it; the default grants nothing.
    type Grant: Clone + std::fmt::Debug + Default + for<'de> Deserialize<'de>;
    /// What one call has staged through it.
    type Call: PerCall + Default;
    /// Links its host functions, on a [`CapsView`] of `T`.
    fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()>;
}

/// One call's state of one capability: what the pipeline's commit and rollback do to it.
pub(crate) trait PerCall {
    /// Makes what the call staged final. A refusal here (a quota counted again) stops the
    /// commit: the capabilities committed before it are reverted.
    fn commit(&mut self, context: &Context<'_>) -> Result<(), String> {
        let _ = context;
        Ok(())
    }

    /// Puts back what [`PerCall::commit`] made final, when a later capability's commit fails.
    fn revert(&mut self, context: &Context<'_>) -> Result<(), String> {
        let _ = context;
        Ok(())
    }

    /// Undoes what the call staged (the call failed or was refused); says what could not be.
    fn rollback(&mut self, context: &Context<'_>) -> Result<(), String> {
        let _ = context;
        Ok(())
    }
}

/// A capability with nothing staged.
impl PerCall for () {}

/// What a commit or a rollback may need besides the capability's own state.
pub(crate) struct Context<'a> {
    pub shared: &'a Shared,
    /// The component's file name: the kv namespace.
    pub plugin: &'a str,
    pub grants: &'a Grants,
    /// When the call's time is up: blocking work must end by then.
    pub deadline: Instant,
    /// Where changes made in place are journaled (the audit log, unless it is off).
    pub journal: Option<&'a crate::audit::staged::Journal>,
    pub call: &'a crate::call::CallView,
}

/// The capabilities with grants and per-call state, in commit order; each line makes a field
/// of [`Grants`] (with its doc, as `moat.toml` documents it), a field of [`Calls`], an entry
/// of [`PROVIDED`], and a link.
macro_rules! capabilities {
    ($( $(#[$doc:meta])* $name:ident: $cap:ty => $grant:ty ),* $(,)?) => {
        /// What one tool is granted, from `[tools.NAME.grants]`. Nothing by default.
        #[derive(Clone, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Grants {
            $( $(#[$doc])* #[serde(default)] pub $name: $grant, )*
        }

        // Each field of `Grants` is its capability's grant type.
        #[allow(dead_code)]
        fn grants_are_the_capabilities_own(grants: Grants) {
            $( let _: <$cap as Capability>::Grant = grants.$name; )*
        }

        /// One call's state of every capability.
        #[derive(Default)]
        pub(crate) struct Calls {
            $( pub $name: <$cap as Capability>::Call, )*
        }

        impl Calls {
            /// Each capability's state, in commit order.
            fn each(&mut self) -> Vec<&mut dyn PerCall> {
                vec![$( &mut self.$name as &mut dyn PerCall ),*]
            }
        }

        /// The WIT interfaces this host provides, as `namespace:package/interface@version`.
        pub const PROVIDED: &[&str] = &[
            "moat:plugin/types@0.1.0",
            log::Log::INTERFACE,
            $( <$cap as Capability>::INTERFACE, )*
        ];

        /// Adds every provided interface to `linker`.
        pub(crate) fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            bindings::moat::plugin::types::add_to_linker::<T, Caps>(linker, T::caps)?;
            <log::Log as Capability>::add_to_linker(linker)?;
            $( <$cap as Capability>::add_to_linker(linker)?; )*
            Ok(())
        }
    };
}

capabilities! {
    /// The tool's key-value namespace. First to commit: its quota is counted again then, and
    /// it can be put back if a later commit fails.
    kv: kv::Kv => Option<kv::KvGrant>,
    /// SQLite databases, by the name the tool opens them with.
    sql: sql::Sql => std::collections::BTreeMap<String, sql::SqlGrant>,
    /// Directory or file grants, by the name the tool opens them with.
    fs: fs::Fs => std::collections::BTreeMap<String, fs::FsGrant>,
    /// Outbound HTTP.
    http: http::Http => Option<http::HttpGrant>,
    /// Names of secrets (from the top-level `[secrets]` table) the tool may read.
    secrets: secrets::Secrets => Vec<String>,
}

/// The WASI 0.2 interfaces a tool built by componentize-py or componentize-js imports, which
/// moat provides in a restricted context (`exec::wasi_context`): nothing preopened, no
/// network, an empty environment, output captured into the call's log. Any 0.2.x version
/// links.
pub const WASI: &[&str] = &[
    "wasi:cli/environment@0.2.0",
    "wasi:cli/exit@0.2.0",
    "wasi:cli/stderr@0.2.0",
    "wasi:cli/stdin@0.2.0",
    "wasi:cli/stdout@0.2.0",
    "wasi:cli/terminal-input@0.2.0",
    "wasi:cli/terminal-output@0.2.0",
    "wasi:cli/terminal-stderr@0.2.0",
    "wasi:cli/terminal-stdin@0.2.0",
    "wasi:cli/terminal-stdout@0.2.0",
    "wasi:clocks/monotonic-clock@0.2.0",
    "wasi:clocks/wall-clock@0.2.0",
    "wasi:filesystem/preopens@0.2.0",
    "wasi:filesystem/types@0.2.0",
    "wasi:io/error@0.2.0",
    "wasi:io/poll@0.2.0",
    "wasi:io/streams@0.2.0",
    "wasi:random/insecure@0.2.0",
    "wasi:random/insecure-seed@0.2.0",
    "wasi:random/random@0.2.0",
    "wasi:sockets/instance-network@0.2.0",
    "wasi:sockets/ip-name-lookup@0.2.0",
    "wasi:sockets/network@0.2.0",
    "wasi:sockets/tcp@0.2.0",
    "wasi:sockets/tcp-create-socket@0.2.0",
    "wasi:sockets/udp@0.2.0",
    "wasi:sockets/udp-create-socket@0.2.0",
];

/// Handles one call may hold at once (open directories, connections).
pub const MAX_HANDLES: usize = 64;

impl Grants {
    /// Resolves relative paths against `base` (the config file's directory).
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for grant in self.fs.values_mut() {
            grant.path = resolve(base, &grant.path);
        }
        for grant in self.sql.values_mut() {
            grant.path = resolve(base, &grant.path);
        }
    }
}

pub(crate) fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_relative() {
        base.join(path)
    } else {
        path.to_owned()
    }
}
