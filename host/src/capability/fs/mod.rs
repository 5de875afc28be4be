//! `fs`: files inside granted directories (or single granted files), resolved with cap-std
//! so that `..`, absolute paths and symbolic links cannot escape. Only regular files are read
//! or changed, checked on the opened handle (`file.rs`): a FIFO, socket or device is refused,
//! never waited on. A write replaces a file whole (a new file renamed over it), so no other
//! name of the old inode sees the change; overwriting a file's content counts as a deletion.
//! Each change is recorded, with its undo, before it happens (the call's journal, when the
//! audit log is on), keeps a before-image so the pipeline can undo it, and says how to undo it
//! once committed (absolute paths, before-image, hash of what it left); bytes and deletions are
//! metered.

mod file;

pub use file::{scratch_name, SCRATCH_PREFIX};

use super::Over;
use crate::call::Effect;
use crate::call::EffectKind;
use crate::capability::bindings::moat::plugin::fs::{Entry, FsError, Host, HostDir};
use crate::capability::CapsView;
use crate::capability::{Capability, Caps, Context, HasCaps, PerCall};
use crate::undo;
use crate::units::ByteSize;
use cap_std::fs::Dir;
use file::{io_error, Follow, Found};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime::component::Resource;

/// `[tools.NAME.grants.fs.GRANT]`: one directory or file and what may be done to it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsGrant {
    /// A directory, or a single file; relative to the config file.
    pub path: PathBuf,
    #[serde(default)]
    pub mode: Mode,
    /// Bytes the tool may read per call (keeps the host's memory bounded).
    #[serde(default = "default_read")]
    pub read_per_call: ByteSize,
    #[serde(default = "default_write_call")]
    pub write_per_call: ByteSize,
    #[serde(default = "default_write_task")]
    pub write_per_task: ByteSize,
    #[serde(default = "default_deletes_call")]
    pub deletes_per_call: u64,
    #[serde(default = "default_deletes_task")]
    pub deletes_per_task: u64,
    /// The largest file a change may replace or remove: its before-image is kept in memory
    /// until the call commits (and in the audit log), and a change that could not be undone
    /// is refused.
    #[serde(default = "default_undo")]
    pub max_before_image: ByteSize,
}

fn default_read() -> ByteSize {
    ByteSize::mib(16)
}
fn default_write_call() -> ByteSize {
    ByteSize::mib(1)
}
fn default_write_task() -> ByteSize {
    ByteSize::mib(16)
}
fn default_deletes_call() -> u64 {
    10
}
fn default_deletes_task() -> u64 {
    100
}
fn default_undo() -> ByteSize {
    ByteSize::mib(16)
}

/// Whether a grant allows changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    ReadOnly,
    ReadWrite,
}

/// A `dir` handle held by the guest.
pub struct DirHandle {
    grant: String,
    dir: Arc<Dir>,
    /// The directory `dir` opens, absolute: where a committed change is undone later.
    root: PathBuf,
    /// For a single-file grant, the only name that may be used.
    only: Option<String>,
}

/// One step to undo, newest last.
enum Step {
    /// Put `before` back at `path` through the staging file `scratch` (or remove `path` if
    /// there was no file).
    Restore { dir: Arc<Dir>, path: String, scratch: String, before: Option<Found> },
    /// Move `from` back to `to`.
    Rename { dir: Arc<Dir>, from: String, to: String },
}

/// The `fs` capability.
pub(crate) struct Fs;

impl Capability for Fs {
    const INTERFACE: &'static str = "moat:plugin/fs@0.1.0";
    type Grant = BTreeMap<String, FsGrant>;
    type Call = FsCall;

    fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::capability::bindings::moat::plugin::fs::add_to_linker::<T, Caps>(linker, T::caps)
    }
}

/// The file effects one call has staged: each undo step with the `seq` of the staged record
/// of its change (when the journal is on).
#[derive(Default)]
pub struct FsCall {
    undo: Vec<(Option<u64>, Step)>,
}

impl PerCall for FsCall {
    fn commit(&mut self, _: &Context<'_>) -> Result<(), String> {
        self.undo.clear();
        Ok(())
    }

    /// Undoes every change, newest first, each after its `undoing` record in the journal
    /// (so that a crash midway leaves the log saying how far it got); reports the ones that
    /// failed.
    fn rollback(&mut self, context: &Context<'_>) -> Result<(), String> {
        let (journal, call) = (context.journal, context.call);
        let mut failed = Vec::new();
        let mut marked = None;
        while let Some((seq, step)) = self.undo.pop() {
            if let (Some(journal), Some(seq)) = (journal, seq.filter(|s| Some(*s) != marked)) {
                if let Err(e) = journal.undoing(call, seq) {
                    tracing::error!("the undoing of staged change {seq} is not recorded: {e}");
                }
                marked = Some(seq);
            }
            let outcome = match &step {
                Step::Restore { dir, path, scratch, before } => {
                    file::put_back(dir, path, scratch, before.as_ref())
                }
                Step::Rename { dir, from, to } => dir.rename(from, dir, to),
            };
            if let Err(error) = outcome {
                let path = match &step {
                    Step::Restore { path, .. } | Step::Rename { from: path, .. } => path,
                };
                failed.push(format!("cannot undo the change to `{path}`: {error}"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// Whether writing `new` over `old` replaces content: the old file was not empty and the new
/// one does not begin with it. An append, or a write of the same bytes, loses nothing.
fn replaces(old: &[u8], new: &[u8]) -> bool {
    !old.is_empty() && !new.starts_with(old)
}

impl Host for CapsView<'_> {
    fn open(&mut self, grant: String) -> wasmtime::Result<Result<Resource<DirHandle>, FsError>> {
        let tool = &self.caps.tool;
        let Some(config) = self.caps.grants.fs.get(&grant) else {
            return Ok(Err(FsError::NotGranted(format!(
                "tool `{tool}` has no fs grant `{grant}`"
            ))));
        };
        let (root, only) = if config.path.is_file() {
            let name = config.path.file_name().map(|n| n.to_string_lossy().into_owned());
            (config.path.parent().map(PathBuf::from).unwrap_or_default(), name)
        } else {
            (config.path.clone(), None)
        };
        let dir = match Dir::open_ambient_dir(&root, cap_std::ambient_authority()) {
            Ok(dir) => dir,
            Err(e) => {
                return Ok(Err(FsError::Io(format!(
                    "fs grant `{grant}` ({}) cannot be opened: {e}",
                    config.path.display()
                ))))
            }
        };
        let root = std::path::absolute(&root).unwrap_or(root);
        let handle = DirHandle { grant, dir: Arc::new(dir), root, only };
        Ok(self.table.push(handle).map_err(|_| FsError::LimitExceeded(too_many_handles())))
    }
}

fn too_many_handles() -> String {
    format!("too many open handles (limit {})", super::MAX_HANDLES)
}

impl HostDir for CapsView<'_> {
    fn read(
        &mut self,
        handle: Resource<DirHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, FsError>> {
        let (dir, grant) = refuse!(self.scoped(&handle, &path)?);
        let Some((opened, meta)) = refuse!(file::open_regular(&dir, &grant, &path, Follow::Yes))
        else {
            return Ok(Err(FsError::NotFound(format!("`{path}` in fs grant `{grant}`"))));
        };
        let size = meta.len();
        let limit = self.caps.grants.fs[&grant].read_per_call.0;
        if let Err(over) = self.caps.charge(&format!("fs:{grant}:read"), size, limit, u64::MAX) {
            return Ok(Err(limit_error(&grant, &path, "read", size, &over)));
        }
        self.caps.touched.push((EffectKind::Read, format!("{grant}:{path}")));
        Ok(file::read_exactly(opened, size, &grant, &path))
    }

    fn write(
        &mut self,
        handle: Resource<DirHandle>,
        path: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), FsError>> {
        let (dir, grant) = refuse!(self.scoped(&handle, &path)?);
        refuse!(self.writable(&grant));
        let config = &self.caps.grants.fs[&grant];
        let before = refuse!(file::before_image(&dir, &grant, &path, config.max_before_image));
        let size = data.len() as u64;
        // Overwriting content is a deletion of it: counted before the bytes, so that a
        // write refused for either limit is refused before anything is charged for bytes.
        if before.as_ref().is_some_and(|found| replaces(&found.bytes, &data)) {
            refuse!(self.charge_deletion(&grant, &path, "replace"));
        }
        let config = &self.caps.grants.fs[&grant];
        let (per_call, per_task) = (config.write_per_call.0, config.write_per_task.0);
        if let Err(over) =
            self.caps.charge(&format!("fs:{grant}:written"), size, per_call, per_task)
        {
            return Ok(Err(limit_error(&grant, &path, "write", size, &over)));
        }
        let replaced = before.as_ref().map(|found| found.bytes.len());
        let detail = serde_json::json!({ "bytes": size, "replaces": replaced });
        let staged = self.caps.effects.len();
        if let Err(reason) = self.caps.admit(effect(EffectKind::Write, &grant, &path, detail)) {
            return Ok(Err(FsError::Denied(reason)));
        }
        if let Err(refusal) = create_parents(&dir, &grant, &path) {
            self.caps.effects.truncate(staged);
            return Ok(Err(refusal));
        }
        let scratch = file::scratch_beside(&path);
        let absolute = self.absolute(&handle, &path)?;
        let image = before.as_ref().map(|found| found.bytes.clone());
        let how =
            undo::Undo::File { path: absolute, before: image, after: Some(undo::hash(&data)) };
        let seq = match self.journal(staged, &how, Some(self.absolute(&handle, &scratch)?)) {
            Ok(seq) => seq,
            Err(refusal) => {
                self.caps.effects.truncate(staged);
                return Ok(Err(refusal));
            }
        };
        let permissions = before.as_ref().map(|found| &found.permissions);
        if let Err(e) = file::replace(&dir, &path, &scratch, &data, permissions) {
            // Nothing changed: the file is replaced by a rename, or not at all.
            self.caps.effects.truncate(staged);
            return Ok(Err(io_error(&grant, &path, e)));
        }
        crate::call::attach(&mut self.caps.effects, staged, how);
        self.caps.calls.fs.undo.push((seq, Step::Restore { dir, path, scratch, before }));
        Ok(Ok(()))
    }

    fn list_dir(
        &mut self,
        handle: Resource<DirHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<Entry>, FsError>> {
        let (dir, grant) = refuse!(self.scoped(&handle, &path)?);
        let target = if path.is_empty() { "." } else { path.as_str() };
        let listing = match dir.read_dir(target) {
            Ok(listing) => listing,
            Err(e) => return Ok(Err(io_error(&grant, &path, e))),
        };
        let mut entries = Vec::new();
        for item in listing {
            let item = match item {
                Ok(item) => item,
                Err(e) => return Ok(Err(io_error(&grant, &path, e))),
            };
            let name = item.file_name().to_string_lossy().into_owned();
            if file::is_scratch(&name) {
                continue;
            }
            let meta = item.metadata().ok();
            entries.push(Entry {
                name,
                is_dir: meta.as_ref().is_some_and(|m| m.is_dir()),
                size: meta.as_ref().filter(|m| m.is_file()).map_or(0, |m| m.len()),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Ok(entries))
    }

    fn stat(
        &mut self,
        handle: Resource<DirHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Entry, FsError>> {
        let (dir, grant) = refuse!(self.scoped(&handle, &path)?);
        // `stat` opens nothing: it cannot block on what the path is.
        Ok(dir
            .metadata(if path.is_empty() { "." } else { path.as_str() })
            .map(|meta| Entry {
                name: path.rsplit('/').next().unwrap_or_default().to_owned(),
                is_dir: meta.is_dir(),
                size: if meta.is_file() { meta.len() } else { 0 },
            })
            .map_err(|e| io_error(&grant, &path, e)))
    }

    fn remove(
        &mut self,
        handle: Resource<DirHandle>,
        path: String,
    ) -> wasmtime::Result<Result<(), FsError>> {
        let (dir, grant) = refuse!(self.scoped(&handle, &path)?);
        refuse!(self.writable(&grant));
        let limit = self.caps.grants.fs[&grant].max_before_image;
        let Some(before) = refuse!(file::before_image(&dir, &grant, &path, limit)) else {
            return Ok(Err(FsError::NotFound(format!("`{path}` in fs grant `{grant}`"))));
        };
        refuse!(self.charge_deletion(&grant, &path, "delete"));
        let detail = serde_json::json!({ "bytes": before.bytes.len() });
        let staged = self.caps.effects.len();
        if let Err(reason) = self.caps.admit(effect(EffectKind::Delete, &grant, &path, detail)) {
            return Ok(Err(FsError::Denied(reason)));
        }
        let scratch = file::scratch_beside(&path);
        let absolute = self.absolute(&handle, &path)?;
        let image = Some(before.bytes.clone());
        let how = undo::Undo::File { path: absolute, before: image, after: None };
        let seq = match self.journal(staged, &how, Some(self.absolute(&handle, &scratch)?)) {
            Ok(seq) => seq,
            Err(refusal) => {
                self.caps.effects.truncate(staged);
                return Ok(Err(refusal));
            }
        };
        if let Err(e) = dir.remove_file(&path) {
            self.caps.effects.truncate(staged);
            return Ok(Err(io_error(&grant, &path, e)));
        }
        crate::call::attach(&mut self.caps.effects, staged, how);
        self.caps
            .calls
            .fs
            .undo
            .push((seq, Step::Restore { dir, path, scratch, before: Some(before) }));
        Ok(Ok(()))
    }

    fn rename(
        &mut self,
        handle: Resource<DirHandle>,
        source: String,
        destination: String,
    ) -> wasmtime::Result<Result<(), FsError>> {
        let (dir, grant) = refuse!(self.scoped(&handle, &source)?);
        if let Some(refusal) = self.out_of_scope(&handle, &destination)? {
            return Ok(Err(refusal));
        }
        refuse!(self.writable(&grant));
        // Only a regular file moves (not a directory, a link or a FIFO): what a rollback can
        // check and move back.
        if refuse!(file::open_regular(&dir, &grant, &source, Follow::No)).is_none() {
            return Ok(Err(FsError::NotFound(format!("`{source}` in fs grant `{grant}`"))));
        }
        let limit = self.caps.grants.fs[&grant].max_before_image;
        let replaced = refuse!(file::before_image(&dir, &grant, &destination, limit));
        let (from, to) = (self.absolute(&handle, &source)?, self.absolute(&handle, &destination)?);
        if from != to && replaced.as_ref().is_some_and(|found| !found.bytes.is_empty()) {
            refuse!(self.charge_deletion(&grant, &destination, "replace"));
        }
        let replaces = replaced.as_ref().map(|found| found.bytes.len());
        let detail = serde_json::json!({ "to": destination, "replaces": replaces });
        let staged = self.caps.effects.len();
        if let Err(reason) = self.caps.admit(effect(EffectKind::Write, &grant, &source, detail)) {
            return Ok(Err(FsError::Denied(reason)));
        }
        if let Err(refusal) = create_parents(&dir, &grant, &destination) {
            self.caps.effects.truncate(staged);
            return Ok(Err(refusal));
        }
        let how = match &replaced {
            // Moved onto itself: nothing changed.
            _ if from == to => undo::Undo::Parts { parts: Vec::new() },
            None => undo::Undo::Rename { from, to },
            Some(found) => undo::Undo::Parts {
                parts: vec![
                    undo::Undo::File {
                        path: to.clone(),
                        before: Some(found.bytes.clone()),
                        after: None,
                    },
                    undo::Undo::Rename { from, to },
                ],
            },
        };
        let scratch = file::scratch_beside(&destination);
        let seq = match self.journal(staged, &how, Some(self.absolute(&handle, &scratch)?)) {
            Ok(seq) => seq,
            Err(refusal) => {
                self.caps.effects.truncate(staged);
                return Ok(Err(refusal));
            }
        };
        if let Err(e) = dir.rename(&source, &dir, &destination) {
            self.caps.effects.truncate(staged);
            return Ok(Err(io_error(&grant, &source, e)));
        }
        crate::call::attach(&mut self.caps.effects, staged, how);
        // Undone newest first: move the file back, then restore what it replaced.
        let restore = Step::Restore {
            dir: dir.clone(),
            path: destination.clone(),
            scratch,
            before: replaced,
        };
        self.caps.calls.fs.undo.push((seq, restore));
        self.caps.calls.fs.undo.push((seq, Step::Rename { dir, from: destination, to: source }));
        Ok(Ok(()))
    }

    fn drop(&mut self, handle: Resource<DirHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl CapsView<'_> {
    /// The handle's directory and grant name, after checking `path` stays in scope. A
    /// forged or dropped handle traps; a path out of scope is a refusal.
    fn scoped(
        &self,
        handle: &Resource<DirHandle>,
        path: &str,
    ) -> wasmtime::Result<Result<(Arc<Dir>, String), FsError>> {
        let entry = self.table.get(handle)?;
        Ok(match self.out_of_scope(handle, path)? {
            Some(refusal) => Err(refusal),
            None => Ok((entry.dir.clone(), entry.grant.clone())),
        })
    }

    /// Whether `path` is outside the handle's grant, as a refusal.
    fn out_of_scope(
        &self,
        handle: &Resource<DirHandle>,
        path: &str,
    ) -> wasmtime::Result<Option<FsError>> {
        let entry = self.table.get(handle)?;
        let refuse = |why: &str| {
            Some(FsError::OutOfScope(format!("`{path}` {why} fs grant `{}`", entry.grant)))
        };
        if path.starts_with('/') || path.starts_with('\\') || path.contains('\0') {
            return Ok(refuse("is not a relative path inside"));
        }
        // Refused by the words alone, before cap-std resolves anything (which would also
        // refuse it, after telling whether intermediate directories exist).
        let mut depth: i64 = 0;
        for part in path.split(['/', '\\']) {
            match part {
                "" | "." => {}
                ".." => depth -= 1,
                _ if file::is_scratch(part) => {
                    return Ok(refuse("names a staging file of moat's, reserved in"))
                }
                _ => depth += 1,
            }
            if depth < 0 {
                return Ok(refuse("leads outside"));
            }
        }
        if let Some(only) = &entry.only {
            if path != only {
                return Ok(refuse(&format!("is not `{only}`, the only file of")));
            }
        }
        Ok(None)
    }

    /// Where `path` (already in scope) is, absolute: the grant's directory joined with it.
    fn absolute(&self, handle: &Resource<DirHandle>, path: &str) -> wasmtime::Result<PathBuf> {
        let mut absolute = self.table.get(handle)?.root.clone();
        for part in path.split(['/', '\\']).filter(|part| !matches!(*part, "" | ".")) {
            absolute.push(part);
        }
        Ok(absolute)
    }

    fn writable(&self, grant: &str) -> Result<(), FsError> {
        match self.caps.grants.fs[grant].mode {
            Mode::ReadWrite => Ok(()),
            Mode::ReadOnly => Err(FsError::ReadOnly(format!("fs grant `{grant}` is read-only"))),
        }
    }

    /// Counts one file removed, or whose content is replaced, against `deletes_per_call` and
    /// `deletes_per_task`.
    fn charge_deletion(&mut self, grant: &str, path: &str, what: &str) -> Result<(), FsError> {
        let config = &self.caps.grants.fs[grant];
        let (per_call, per_task) = (config.deletes_per_call, config.deletes_per_task);
        self.caps
            .charge(&format!("fs:{grant}:deleted"), 1, per_call, per_task)
            .map_err(|over| limit_error(grant, path, what, 1, &over))
    }

    /// Records the change about to happen (the effect staged at `staged`), with how to undo
    /// it and the staging file it may leave, before it happens: a crash after this point
    /// leaves a change that `moat task rollback` can undo, or no change.
    fn journal(
        &mut self,
        staged: usize,
        how: &undo::Undo<undo::Bytes>,
        scratch: Option<PathBuf>,
    ) -> Result<Option<u64>, FsError> {
        let (Some(journal), Some(effect)) = (&self.caps.journal, self.caps.effects.get(staged))
        else {
            return Ok(None);
        };
        let staged = journal.stage(&self.caps.call, &self.caps.secrets, effect, how, scratch);
        staged.map(Some).map_err(|e| {
            FsError::Io(format!(
                "`{}` was not changed: the change cannot be recorded in the audit log: {e}",
                effect.target
            ))
        })
    }
}

/// Creates the directories leading to `path`. They stay if the call is rolled back: empty
/// directories are not data.
fn create_parents(dir: &Dir, grant: &str, path: &str) -> Result<(), FsError> {
    match std::path::Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            dir.create_dir_all(parent).map_err(|e| io_error(grant, path, e))
        }
        _ => Ok(()),
    }
}

fn effect(kind: EffectKind, grant: &str, path: &str, detail: serde_json::Value) -> Effect {
    Effect { capability: "fs", kind, target: format!("{grant}:{path}"), detail, undo: None }
}

fn limit_error(grant: &str, path: &str, what: &str, amount: u64, over: &Over) -> FsError {
    let (amount, limit, used) = match what {
        "delete" | "replace" => {
            (format!("{amount} file"), format!("{} files", over.limit), format!("{}", over.used))
        }
        _ => (
            ByteSize(amount).to_string(),
            ByteSize(over.limit).to_string(),
            ByteSize(over.used).to_string(),
        ),
    };
    FsError::LimitExceeded(format!(
        "would {what} {amount} at `{path}` in fs grant `{grant}`; limit {limit} {} ({used} used)",
        over.scope
    ))
}
