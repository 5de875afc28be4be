//! Work kept off the call path, on one background thread: dropping finished stores (freeing
//! an instance resets its memory and tables, page-table work that can cost more than the
//! call itself) and instantiating guards ahead of the checks that will use them.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// Jobs waiting, at most; past this, a store is dropped by its caller and an instance is not
/// made ahead (so a slow reaper slows calls down rather than holding ever more instances of
/// the pool).
const QUEUE: usize = 32;

type Job = Box<dyn FnOnce() + Send>;

/// Drops `value` on the reaper thread, or here if the queue is full or the thread is gone.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    if let Err(job) = later(move || drop(value)) {
        job();
    }
}

/// Runs `job` on the reaper thread; gives it back if the queue is full or the thread is gone.
pub(crate) fn later(job: impl FnOnce() + Send + 'static) -> Result<(), Job> {
    let job: Job = Box::new(job);
    let Some(reaper) = reaper() else { return Err(job) };
    reaper.try_send(job).map_err(|(TrySendError::Full(job) | TrySendError::Disconnected(job))| job)
}

fn reaper() -> Option<&'static SyncSender<Job>> {
    static REAPER: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    REAPER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel::<Job>(QUEUE);
            let spawned = std::thread::Builder::new().name("moat-reaper".into()).spawn(move || {
                for job in receiver {
                    // A job that panics loses only itself.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            spawned.inspect_err(|e| tracing::warn!("no reaper thread ({e})")).ok().map(|_| sender)
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    struct Noisy(std::sync::mpsc::Sender<std::thread::ThreadId>);
    impl Drop for Noisy {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }

    #[test]
    fn values_are_dropped_on_another_thread_and_never_leaked() {
        let (told, dropped) = channel();
        for _ in 0..(QUEUE * 4) {
            drop_later(Noisy(told.clone()));
        }
        let threads: Vec<_> = (0..QUEUE * 4)
            .map(|_| dropped.recv_timeout(Duration::from_secs(30)).expect("every value is dropped"))
            .collect();
        assert!(threads.iter().any(|id| *id != std::thread::current().id()));
    }
}
