//! What the fs capability does to one path: open it without blocking and without trusting
//! what it is (the kind is checked on the opened handle, so a FIFO, socket or device is
//! refused and never read), keep its content as a before-image, and replace a file
//! atomically (a new file written beside it, synced, renamed over it), so that a write never
//! changes an inode that another path (a hard link outside the grant, or in a read-only one)
//! also names, and a crash leaves either the old content or the new, never a torn file.

use crate::capability::bindings::moat::plugin::fs::FsError;
pub use crate::undo::{scratch_name, SCRATCH_PREFIX};
use crate::units::ByteSize;
use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, File, FileType, Metadata, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};

/// A regular file as it was found, with its content.
#[derive(Clone)]
pub struct Found {
    pub bytes: Vec<u8>,
    /// Its permissions, given to the file that replaces it.
    pub permissions: Permissions,
}

/// Whether a symbolic link as the last component of a path is followed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Reading: a link inside the grant leads to what it names (cap-std keeps it inside).
    Yes,
    /// Changing: the path itself must be a regular file; a link is refused.
    No,
}

/// Opens `path` for reading without blocking (a FIFO nobody writes, a device) and checks,
/// on the opened handle, that it is a regular file; `Ok(None)` if there is nothing there.
/// The kind is first looked at by path, so that a device is not even opened in the usual
/// case, but what decides is the handle's own `fstat`.
pub fn open_regular(
    dir: &Dir,
    grant: &str,
    path: &str,
    follow: Follow,
) -> Result<Option<(File, Metadata)>, FsError> {
    let looked = match follow {
        Follow::Yes => dir.metadata(path),
        Follow::No => dir.symlink_metadata(path),
    };
    match looked {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(grant, path, e)),
        Ok(meta) => not_regular(grant, path, &meta)?,
    }
    let mut options = OpenOptions::new();
    options.read(true);
    if follow == Follow::No {
        options.follow(FollowSymlinks::No);
    }
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = match dir.open_with(path, &options) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if follow == Follow::No && is_symlink_error(&e) => {
            return Err(kind_error(grant, path, "a symbolic link"))
        }
        Err(e) => return Err(io_error(grant, path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(grant, path, e))?;
    not_regular(grant, path, &meta)?;
    Ok(Some((file, meta)))
}

/// Reads at most `size` bytes of `file` (what its `fstat` said); a file that grew meanwhile
/// is an error rather than a read past what was charged.
pub fn read_exactly(file: File, size: u64, grant: &str, path: &str) -> Result<Vec<u8>, FsError> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
    file.take(size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(grant, path, e))?;
    if bytes.len() as u64 > size {
        return Err(FsError::Io(format!(
            "`{path}` in fs grant `{grant}` grew while it was read (it was {})",
            ByteSize(size)
        )));
    }
    Ok(bytes)
}

/// The regular file at `path` (never followed through a link), kept to undo a change;
/// `None` if there is nothing there. Anything else is refused, and so is a file over `limit`.
pub fn before_image(
    dir: &Dir,
    grant: &str,
    path: &str,
    limit: ByteSize,
) -> Result<Option<Found>, FsError> {
    let Some((file, meta)) = open_regular(dir, grant, path, Follow::No)? else { return Ok(None) };
    if meta.len() > limit.0 {
        return Err(FsError::LimitExceeded(format!(
            "`{path}` in fs grant `{grant}` is {}, over the {limit} that can be kept to undo a change",
            ByteSize(meta.len())
        )));
    }
    let bytes = read_exactly(file, meta.len(), grant, path)?;
    Ok(Some(Found { bytes, permissions: meta.permissions() }))
}

/// A fresh staging file name beside `path` (in its directory).
pub fn scratch_beside(path: &str) -> String {
    match path.rsplit_once(['/', '\\']) {
        Some((parent, _)) => format!("{parent}/{}", scratch_name()),
        None => scratch_name(),
    }
}

/// Replaces (or creates) `path` with `bytes`: written to `scratch` (created new, given
/// `permissions`), synced, then renamed over `path`. The file `path` named before is never
/// opened for writing. On failure the staging file is removed and `path` is as it was.
pub fn replace(
    dir: &Dir,
    path: &str,
    scratch: &str,
    bytes: &[u8],
    permissions: Option<&Permissions>,
) -> std::io::Result<()> {
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let mut file = dir.open_with(scratch, &options)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions.clone())?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        dir.rename(scratch, dir, path)
    })();
    if written.is_err() {
        let _ = dir.remove_file(scratch);
    }
    written
}

/// Puts `before` back at `path` (atomically, through `scratch`), or removes `path` if
/// there was no file.
pub fn put_back(
    dir: &Dir,
    path: &str,
    scratch: &str,
    before: Option<&Found>,
) -> std::io::Result<()> {
    match before {
        Some(found) => replace(dir, path, scratch, &found.bytes, Some(&found.permissions)),
        None => match dir.remove_file(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

/// Whether a path component names a staging file of moat's.
pub fn is_scratch(name: &str) -> bool {
    name.starts_with(SCRATCH_PREFIX)
}

fn not_regular(grant: &str, path: &str, meta: &Metadata) -> Result<(), FsError> {
    match describe(&meta.file_type()) {
        None => Ok(()),
        Some(what) => Err(kind_error(grant, path, what)),
    }
}

/// What a file type is, unless it is a regular file.
pub fn describe(kind: &FileType) -> Option<&'static str> {
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    if kind.is_symlink() {
        return Some("a symbolic link");
    }
    #[cfg(unix)]
    {
        use cap_std::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a named pipe (FIFO)");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_block_device() || kind.is_char_device() {
            return Some("a device");
        }
    }
    Some("not a regular file")
}

fn kind_error(grant: &str, path: &str, what: &str) -> FsError {
    FsError::Io(format!(
        "`{path}` in fs grant `{grant}` is {what}: the fs capability reads and changes only \
         regular files"
    ))
}

fn is_symlink_error(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    if error.raw_os_error() == Some(libc::ELOOP) {
        return true;
    }
    error.to_string().contains("symlink") || error.to_string().contains("symbolic link")
}

pub fn io_error(grant: &str, path: &str, error: std::io::Error) -> FsError {
    let at = format!("`{path}` in fs grant `{grant}`");
    match error.kind() {
        ErrorKind::NotFound => FsError::NotFound(at),
        ErrorKind::PermissionDenied if error.to_string().contains("outside of the filesystem") => {
            FsError::OutOfScope(format!("{at} leads outside the grant"))
        }
        _ => FsError::Io(format!("{at}: {error}")),
    }
}
