//! Restricted WASI 0.2 for guests whose language runtime needs it (componentize-py,
//! componentize-js): nothing preopened, no network, an empty environment, standard output
//! and error captured into the call's log. Capabilities come only through moat's interfaces.

use crate::capability::bindings::moat::plugin::log::Level;
use crate::capability::log::CallLog;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView};

/// The most a call's WASI standard output or error holds; past it, writes trap.
pub const WASI_OUTPUT: usize = 64 * 1024;

/// The WASI context of one call, made at the first WASI use: a guest that imports none
/// never pays for one.
pub(crate) struct Wasi {
    ctx: WasiCtx,
    /// What the guest wrote to standard output and error.
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Wasi {
    /// Nothing preopened, no network (every socket address is refused, no name lookups), an
    /// empty environment and no arguments, standard input empty, standard output and error
    /// captured. Clocks and randomness work.
    fn new() -> Wasi {
        let stdout = MemoryOutputPipe::new(WASI_OUTPUT);
        let stderr = MemoryOutputPipe::new(WASI_OUTPUT);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        Wasi { ctx: builder.build(), stdout, stderr }
    }

    /// The view wasmtime-wasi needs, making the context if this is the first use.
    pub fn view<'a>(wasi: &'a mut Option<Wasi>, table: &'a mut ResourceTable) -> WasiCtxView<'a> {
        let wasi = wasi.get_or_insert_with(Wasi::new);
        WasiCtxView { ctx: &mut wasi.ctx, table }
    }

    /// Moves what the guest wrote to standard output (as info) and standard error (as
    /// warnings: a Python traceback is quoted if the call traps) into `log`, a line each.
    pub fn drain(wasi: &Option<Wasi>, log: &mut CallLog) {
        let Some(wasi) = wasi else { return };
        let streams =
            [(wasi.stdout.contents(), Level::Info), (wasi.stderr.contents(), Level::Warn)];
        for (bytes, level) in streams {
            let text = String::from_utf8_lossy(&bytes);
            // A JavaScript error's stack follows its message ("Stack:", then indented frames):
            // logged at debug, so that the message is what a trap report quotes.
            let mut in_stack = false;
            for line in text.lines() {
                // The guest runtimes' advice about backtraces, or how they abort, is noise.
                if line.trim().is_empty()
                    || line.starts_with("note: run with")
                    || line.starts_with("Redirecting call to abort() to mozalloc_abort")
                {
                    continue;
                }
                in_stack = line == "Stack:" || (in_stack && line.starts_with(char::is_whitespace));
                let level = if in_stack { Level::Debug } else { level };
                log.record(level, line.to_owned());
            }
        }
    }
}
