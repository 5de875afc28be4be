//! The one watched-directory reloader, for the tool directories and the policies directory
//! alike: [`Watched`] follows a set of directories and says, at the cost of one atomic load,
//! whether anything in them may have changed since the last reload.
//!
//! What runs where:
//! - the file watcher's thread (the `notify` crate: inotify on Linux) hears of each change
//!   to a directory of the set (a `*.wasm` file created, written, renamed or removed, the
//!   directory itself removed or moved) and wakes
//! - the set's own thread, which debounces: once the events have been quiet for
//!   [`DEBOUNCE`] (or [`MAX_DELAY`] after the first, for a directory that never rests) it
//!   bumps the set's generation, one step for the whole burst. When the set is polled
//!   instead (below), this thread also lists the directories every [`POLL`] and bumps the
//!   generation when the listing changed.
//! - the call path ([`Watched::reload_if_changed`], before each call) compares the
//!   generation with the one the last reload took in: equal, it returns at once, without
//!   a system call. Moved on, that call lists the directories (after re-arming the watches,
//!   so that nothing between the two is missed), compares the listing with the last one
//!   (names, sizes, modification times: [`fingerprint`]) and, if it differs, runs the
//!   reload the caller gave. The generation was read before the listing, so a change made
//!   during a reload moves it on again and the next call reloads once more: no change is
//!   lost. One reload at a time; calls meanwhile go on with what is in force.
//!
//! Fallbacks, each logged once as a warning, none of them silent: a set whose watcher
//! cannot be created (the inotify instance limit), a directory that cannot be watched (the
//! watch limit, a symbolic link, neither it nor its parent existing) or a watcher that
//! reports an error is polled every [`POLL`] from then on (its events, where it has some,
//! still count). A directory missing at the start is watched through its parent, so that
//! its appearing is heard of; one removed (or moved) and created again is watched anew at
//! the next look, even under its old inode number. If not even the set's thread can start, every call lists the directories.
//!
//! [`Watched::settle`] waits until every change made before it has been taken in (a marker
//! file written to a private directory the same watcher follows comes after every earlier
//! event; a poll round started after the call), so that tests need no sleeps.

use crate::error::{LoadError, LoadProblem};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How often directories that cannot be watched are listed.
pub const POLL: Duration = Duration::from_millis(250);

/// How long the events of a set must be quiet before they count: a file being copied into
/// place is taken in once it is whole, not at its first write.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// The longest events wait to count, however busy the directory.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// What a look at the directories sees: every `*.wasm` entry with its size and modification
/// time; a directory that cannot be read is an entry of its own, so that its coming back
/// is seen.
pub(crate) type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The one listing of the directories to see whether they changed (the call path never
/// calls it unless the watcher said something changed).
pub(crate) fn fingerprint(dirs: &[PathBuf]) -> Fingerprint {
    let mut listing = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            listing.push((dir.clone(), u64::MAX, None));
            continue;
        };
        for entry in entries.flatten().filter(|e| is_component(&e.path())) {
            let meta = entry.metadata().ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            listing.push((entry.path(), size, meta.and_then(|m| m.modified().ok())));
        }
    }
    listing.sort();
    listing
}

/// The `*.wasm` files directly in `dir`, sorted by file name: what a reload loads.
pub(crate) fn component_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let fail = |e: std::io::Error| LoadError {
        path: dir.to_owned(),
        problem: LoadProblem::Directory(e.to_string()),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        if is_component(&path) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_component(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "wasm")
}

/// What a watched set has done, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Steps of the generation: bursts of changes heard of (or found by polling).
    pub generation: u64,
    /// Listings by a call that found the generation moved on (never by one that did not).
    pub looks: u64,
    /// Reloads: looks that found the listing changed.
    pub reloads: u64,
    /// Listings by the poller, off the call path.
    pub polls: u64,
    /// Whether the set is polled (some directory cannot be watched).
    pub polling: bool,
}

/// [`Watched::settle`] gave up: the watcher did not take in the changes in time.
#[derive(Clone, Debug)]
pub struct Stalled {
    pub what: &'static str,
    pub dirs: Vec<PathBuf>,
    pub waited: Duration,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        write!(
            f,
            "the watcher of the {} ({}) did not take in the changes made before it was asked \
             within {:?}",
            self.what,
            dirs.join(", "),
            self.waited
        )
    }
}

impl std::error::Error for Stalled {}

/// A directory's identity (device and inode): one removed and created again is another.
type Id = (u64, u64);

#[cfg(unix)]
fn id(meta: &std::fs::Metadata) -> Id {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn id(_: &std::fs::Metadata) -> Id {
    (0, 0)
}

/// How one directory of the set is followed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Follow {
    /// Watched itself.
    Dir(Id),
    /// Missing (or not a directory): its parent is watched, to hear of it appearing.
    Parent(PathBuf, Id),
    /// Polled, and why.
    Poll(String),
}

fn follow(dir: &Path) -> Follow {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Follow::Poll("it is a symbolic link, whose target may change unseen".into())
        }
        Ok(meta) if meta.is_dir() => Follow::Dir(id(&meta)),
        _ => {
            let parent = match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                _ => PathBuf::from("."),
            };
            match std::fs::symlink_metadata(&parent) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    Follow::Poll("it is missing and its parent is a symbolic link".into())
                }
                Ok(meta) if meta.is_dir() => Follow::Parent(parent, id(&meta)),
                _ => Follow::Poll("neither it nor its parent exists".into()),
            }
        }
    }
}

/// Whether two paths name the same place as the watcher spells them (`./a` is `a`).
fn same(a: &Path, b: &Path) -> bool {
    fn parts(path: &Path) -> impl Iterator<Item = Component<'_>> {
        path.components().filter(|c| *c != Component::CurDir)
    }
    parts(a).eq(parts(b))
}

/// What the watcher's thread, the set's thread and [`Watched::settle`] tell each other.
#[derive(Default)]
struct Signals {
    /// Events about the set heard of, and how many of them a generation step took in.
    events: u64,
    flushed: u64,
    first_pending: Option<Instant>,
    last_event: Option<Instant>,
    /// The highest settle marker the watcher has reported.
    marker: u64,
    polling: bool,
    /// A settle wants a poll round now.
    nudged: bool,
    /// Poll rounds started and finished.
    started: u64,
    done: u64,
    stop: bool,
}

/// The part of a set its threads share.
struct Inner {
    what: &'static str,
    dirs: Vec<PathBuf>,
    /// Settle markers are files named this, then their number.
    marker_prefix: String,
    generation: AtomicU64,
    /// The last resort: the set's thread could not start, so every call looks.
    every_call: AtomicBool,
    /// The paths watched now (as [`State::watched`]), for the watcher's thread to know.
    watched: Mutex<BTreeSet<PathBuf>>,
    /// A watched path was removed or moved: its watch is dead even if a directory of the
    /// same identity (a reused inode) is there now, so the next look watches everything anew.
    stale: AtomicBool,
    polls: AtomicU64,
    signals: Mutex<Signals>,
    wake: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn signals(&self) -> MutexGuard<'_, Signals> {
        lock(&self.signals)
    }

    /// Polls the set from now on, saying why (a warning the first time).
    fn poll(&self, why: &str) {
        let mut signals = self.signals();
        if signals.polling {
            tracing::debug!("the {}: {why}", self.what);
            return;
        }
        signals.polling = true;
        tracing::warn!("the {}: {why}; polled every {POLL:?} instead of watched", self.what);
        self.wake.notify_all();
    }

    /// Whether an event path concerns the set: a directory of it, or a component in one.
    /// Elsewhere than Linux the watcher may spell paths otherwise (resolved), so every
    /// event counts there.
    fn concerns(&self, path: &Path) -> bool {
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return true;
        }
        self.dirs.iter().any(|dir| {
            same(path, dir)
                || (is_component(path) && path.parent().is_some_and(|parent| same(parent, dir)))
        })
    }

    /// On the watcher's thread: one event.
    fn heard(&self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // Events may have been lost: count it as a change, and poll from now on.
                self.changed();
                self.poll(&format!("the file watcher failed ({error})"));
                return;
            }
        };
        let marker = event.paths.iter().find_map(|path| {
            let name = path.file_name()?.to_str()?;
            name.strip_prefix(&self.marker_prefix)?.parse::<u64>().ok()
        });
        if let Some(marker) = marker {
            let mut signals = self.signals();
            signals.marker = signals.marker.max(marker);
            self.wake.notify_all();
            return;
        }
        // Opening and reading change nothing (a reload reads every file); a write ending does.
        let written = AccessKind::Close(AccessMode::Write);
        if matches!(event.kind, EventKind::Access(kind) if kind != written) {
            return;
        }
        // An event about a watched path itself (the directory, or the parent of a missing
        // one): removed or moved, its watch is gone.
        let on_watched = {
            let watched = lock(&self.watched);
            event.paths.iter().any(|path| watched.iter().any(|w| same(path, w)))
        };
        if on_watched
            && matches!(event.kind, EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)))
        {
            self.stale.store(true, Ordering::Release);
        }
        let concerns = event.need_rescan()
            || event.paths.is_empty()
            || on_watched
            || event.paths.iter().any(|path| self.concerns(path));
        if concerns {
            let now = Instant::now();
            let mut signals = self.signals();
            signals.events += 1;
            signals.last_event = Some(now);
            signals.first_pending.get_or_insert(now);
            self.wake.notify_all();
        }
    }

    /// A change to take in at once (no debounce): the next call looks.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The set's own thread: debounces events into generation steps, and polls when it must.
fn run(inner: &Inner) {
    let mut last: Option<Fingerprint> = None;
    let mut next_poll: Option<Instant> = None;
    let mut signals = inner.signals();
    loop {
        if signals.stop {
            return;
        }
        let now = Instant::now();
        if signals.events > signals.flushed {
            let first = *signals.first_pending.get_or_insert(now);
            let due = (signals.last_event.unwrap_or(now) + DEBOUNCE).min(first + MAX_DELAY);
            if now < due {
                signals = wait(inner, signals, due - now);
                continue;
            }
            signals.flushed = signals.events;
            signals.first_pending = None;
            inner.changed();
            inner.wake.notify_all();
            continue;
        }
        if signals.polling {
            let due = *next_poll.get_or_insert(now);
            if !signals.nudged && now < due {
                signals = wait(inner, signals, due - now);
                continue;
            }
            signals.nudged = false;
            signals.started += 1;
            let round = signals.started;
            drop(signals);
            let seen = fingerprint(&inner.dirs);
            inner.polls.fetch_add(1, Ordering::Relaxed);
            if last.as_ref() != Some(&seen) {
                inner.changed();
            }
            last = Some(seen);
            signals = inner.signals();
            signals.done = round;
            next_poll = Some(Instant::now() + POLL);
            inner.wake.notify_all();
            continue;
        }
        signals = inner.wake.wait(signals).unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

fn wait<'a>(
    inner: &'a Inner,
    signals: MutexGuard<'a, Signals>,
    timeout: Duration,
) -> MutexGuard<'a, Signals> {
    match inner.wake.wait_timeout(signals, timeout) {
        Ok((signals, _)) => signals,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

/// What the last look saw, and what is watched: each path (a directory of the set, or the
/// parent of a missing one) with the identity it had when its watch was added.
struct State {
    seen: Fingerprint,
    watched: BTreeMap<PathBuf, Id>,
}

/// A set of directories followed for changes: see the module's documentation.
pub(crate) struct Watched {
    inner: Arc<Inner>,
    /// The generation the last look took in.
    loaded: AtomicU64,
    looks: AtomicU64,
    reloads: AtomicU64,
    /// Held by the look (and the reload after it), so that reloads never overlap.
    state: Mutex<State>,
    watcher: Mutex<Option<RecommendedWatcher>>,
    /// The private directory of settle markers, made at the first settle.
    sync: Mutex<Option<tempfile::TempDir>>,
    next_marker: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl Watched {
    /// Starts following `dirs` (`what` names them in messages, e.g. "tool directories"),
    /// and takes the listing a first reload will be compared with: call it before loading
    /// what the directories hold, so that no change in between is missed.
    pub(crate) fn new(what: &'static str, dirs: Vec<PathBuf>) -> Watched {
        static SETS: AtomicU64 = AtomicU64::new(0);
        let set = SETS.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(Inner {
            what,
            dirs,
            marker_prefix: format!(".moat-settle-{}-{set}-", std::process::id()),
            generation: AtomicU64::new(0),
            every_call: AtomicBool::new(false),
            watched: Mutex::new(BTreeSet::new()),
            stale: AtomicBool::new(false),
            polls: AtomicU64::new(0),
            signals: Mutex::new(Signals::default()),
            wake: Condvar::new(),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("moat-watch".into())
            .spawn(move || run(&worker))
            .inspect_err(|error| {
                tracing::warn!(
                    "the {what}: no thread to follow them ({error}); every call lists them"
                );
                inner.every_call.store(true, Ordering::Release);
            })
            .ok();
        let heard = inner.clone();
        let watcher =
            RecommendedWatcher::new(move |event| heard.heard(event), notify::Config::default())
                .inspect_err(|error| {
                    inner.poll(&format!("the file watcher cannot start ({error})"))
                })
                .ok();
        let watched = Watched {
            inner,
            loaded: AtomicU64::new(0),
            looks: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            state: Mutex::new(State { seen: Vec::new(), watched: BTreeMap::new() }),
            watcher: Mutex::new(watcher),
            sync: Mutex::new(None),
            next_marker: AtomicU64::new(0),
            thread,
        };
        {
            let mut state = lock(&watched.state);
            watched.arm(&mut state);
            state.seen = fingerprint(&watched.inner.dirs);
        }
        watched
    }

    /// On the call path: if the watcher said something changed since the last look, lists
    /// the directories and, if the listing changed, runs `reload` (and returns its result).
    /// Nothing changed, it costs one atomic load. While another call looks or reloads, it
    /// returns at once: that call goes on with what is in force.
    pub(crate) fn reload_if_changed<T>(&self, reload: impl FnOnce() -> T) -> Option<T> {
        if self.quiet() {
            return None;
        }
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        // Read before the listing: a change from now on moves it on again.
        let generation = self.inner.generation.load(Ordering::Acquire);
        if self.quiet() {
            return None;
        }
        self.arm(&mut state);
        let seen = fingerprint(&self.inner.dirs);
        self.looks.fetch_add(1, Ordering::Relaxed);
        self.loaded.store(generation, Ordering::Release);
        if seen == state.seen {
            return None;
        }
        state.seen = seen;
        let out = reload();
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    fn quiet(&self) -> bool {
        self.inner.generation.load(Ordering::Acquire) == self.loaded.load(Ordering::Acquire)
            && !self.inner.every_call.load(Ordering::Acquire)
    }

    /// Watches what each directory needs now (itself, or the parent of a missing one),
    /// adding watches before dropping old ones, and again if a directory changed meanwhile;
    /// what cannot be watched is polled.
    fn arm(&self, state: &mut State) {
        let mut watcher = lock(&self.watcher);
        let Some(watcher) = watcher.as_mut() else { return };
        if self.inner.stale.swap(false, Ordering::AcqRel) {
            for path in std::mem::take(&mut state.watched).keys() {
                let _ = watcher.unwatch(path);
            }
        }
        self.rearm(state, watcher);
        *lock(&self.inner.watched) = state.watched.keys().cloned().collect();
    }

    fn rearm(&self, state: &mut State, watcher: &mut RecommendedWatcher) {
        let dirs = &self.inner.dirs;
        for _ in 0..3 {
            let plan: Vec<Follow> = dirs.iter().map(|dir| follow(dir)).collect();
            let mut wanted = BTreeMap::new();
            let mut polled = Vec::new();
            for (dir, follow) in dirs.iter().zip(&plan) {
                match follow {
                    Follow::Dir(id) => wanted.insert(dir.clone(), *id),
                    Follow::Parent(parent, id) => wanted.insert(parent.clone(), *id),
                    Follow::Poll(why) => {
                        polled.push(format!("{}: {why}", dir.display()));
                        None
                    }
                };
            }
            for (path, id) in &wanted {
                if state.watched.get(path) == Some(id) {
                    continue;
                }
                if state.watched.remove(path).is_some() {
                    let _ = watcher.unwatch(path);
                }
                match watcher.watch(path, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        state.watched.insert(path.clone(), *id);
                    }
                    Err(error) => {
                        polled.push(format!("{}: it cannot be watched ({error})", path.display()))
                    }
                }
            }
            let stale: Vec<PathBuf> =
                state.watched.keys().filter(|path| !wanted.contains_key(*path)).cloned().collect();
            for path in stale {
                let _ = watcher.unwatch(&path);
                state.watched.remove(&path);
            }
            if !polled.is_empty() {
                self.inner.poll(&polled.join("; "));
            }
            // A directory that came or went while its watch changed: once more.
            if dirs.iter().map(|dir| follow(dir)).eq(plan) {
                return;
            }
        }
        self.inner.poll("they keep changing while their watches are set");
    }

    /// Waits until every change made to the directories before this call has been taken in
    /// (the next [`Watched::reload_if_changed`] then sees it), at most `timeout`.
    pub(crate) fn settle(&self, timeout: Duration) -> Result<(), Stalled> {
        let started = Instant::now();
        let deadline = started + timeout;
        if self.inner.every_call.load(Ordering::Acquire) {
            return Ok(()); // every call looks anyway
        }
        let stalled =
            || Stalled { what: self.inner.what, dirs: self.inner.dirs.clone(), waited: timeout };
        if lock(&self.watcher).is_some() {
            match self.marker() {
                Some((n, marker)) => {
                    // Every event before the marker's has been heard once the marker's is;
                    // then the set's thread takes them in.
                    let mut target = None;
                    let done = self.wait_until(deadline, |signals| {
                        if signals.marker < n {
                            return false;
                        }
                        let events = *target.get_or_insert(signals.events);
                        signals.flushed >= events
                    });
                    let _ = std::fs::remove_file(marker);
                    if !done {
                        return Err(stalled());
                    }
                }
                // No marker can be made: the next call looks, whatever the watcher heard.
                None => self.inner.changed(),
            }
        }
        if self.inner.signals().polling {
            let wanted = {
                let mut signals = self.inner.signals();
                signals.nudged = true;
                self.inner.wake.notify_all();
                signals.started + 1
            };
            if !self.wait_until(deadline, |signals| signals.done >= wanted) {
                return Err(stalled());
            }
        }
        Ok(())
    }

    /// Writes the next settle marker to the private directory (made and watched at the first
    /// settle): its number and path.
    fn marker(&self) -> Option<(u64, PathBuf)> {
        let mut sync = lock(&self.sync);
        if sync.is_none() {
            let dir = tempfile::Builder::new().prefix("moat-watch-").tempdir().ok()?;
            let mut watcher = lock(&self.watcher);
            watcher.as_mut()?.watch(dir.path(), RecursiveMode::NonRecursive).ok()?;
            *sync = Some(dir);
        }
        let n = self.next_marker.fetch_add(1, Ordering::AcqRel) + 1;
        let dir = sync.as_ref()?.path();
        let path = dir.join(format!("{}{n}", self.inner.marker_prefix));
        std::fs::write(&path, b"").ok()?;
        Some((n, path))
    }

    /// Waits until `ready` holds (true), or until `deadline` (false).
    fn wait_until(&self, deadline: Instant, mut ready: impl FnMut(&Signals) -> bool) -> bool {
        let mut signals = self.inner.signals();
        loop {
            if ready(&signals) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || signals.stop {
                return false;
            }
            signals = wait(&self.inner, signals, deadline - now);
        }
    }

    pub(crate) fn stats(&self) -> WatchStats {
        WatchStats {
            generation: self.inner.generation.load(Ordering::Acquire),
            looks: self.looks.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
            polls: self.inner.polls.load(Ordering::Relaxed),
            polling: self.inner.signals().polling || self.inner.every_call.load(Ordering::Acquire),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        {
            let mut signals = self.inner.signals();
            signals.stop = true;
            self.inner.wake.notify_all();
        }
        lock(&self.watcher).take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(30);

    #[test]
    fn a_change_made_during_a_reload_is_reloaded_by_the_next_look() {
        let dir = tempfile::tempdir().unwrap();
        let watched = Watched::new("test directories", vec![dir.path().to_owned()]);
        assert_eq!(watched.reload_if_changed(|| ()), None, "nothing changed");
        std::fs::write(dir.path().join("a.wasm"), b"a").unwrap();
        watched.settle(SETTLE).unwrap();
        let during = watched.reload_if_changed(|| {
            std::fs::write(dir.path().join("b.wasm"), b"b").unwrap();
        });
        assert_eq!(during, Some(()), "a.wasm reloads");
        watched.settle(SETTLE).unwrap();
        assert_eq!(watched.reload_if_changed(|| ()), Some(()), "b.wasm, written meanwhile");
        assert_eq!(watched.reload_if_changed(|| ()), None);
    }

    #[test]
    fn a_directory_removed_and_created_again_is_watched_anew_even_under_its_old_inode() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let watched = Watched::new("test directories", vec![dir.clone()]);
        for n in 0..5 {
            std::fs::remove_dir_all(&dir).unwrap();
            std::fs::create_dir(&dir).unwrap(); // on ext4, usually the same inode number
            watched.settle(SETTLE).unwrap();
            watched.reload_if_changed(|| ()); // takes the removal in, watches the new one
            std::fs::write(dir.join(format!("{n}.wasm")), b"x").unwrap();
            watched.settle(SETTLE).unwrap();
            assert_eq!(watched.reload_if_changed(|| ()), Some(()), "round {n}");
        }
    }

    #[test]
    fn other_files_and_reads_are_no_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"a").unwrap();
        let watched = Watched::new("test directories", vec![dir.path().to_owned()]);
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::read(dir.path().join("a.wasm")).unwrap();
        fingerprint(&[dir.path().to_owned()]);
        watched.settle(SETTLE).unwrap();
        let stats = watched.stats();
        assert_eq!(watched.reload_if_changed(|| ()), None);
        if !stats.polling {
            assert_eq!(stats.generation, 0, "{stats:?}");
            assert_eq!(watched.stats().looks, 0);
        }
    }
}
