//! Dropping finished stores off the call path: freeing an instance resets its memory and
//! tables (page-table work that can cost more than the call itself), which a call's caller
//! should not wait for.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// Stores waiting to be dropped, at most; past this, the caller drops its own (so a slow
/// reaper slows calls down rather than holding ever more instances of the pool).
const QUEUE: usize = 32;

type Doomed = Box<dyn Send>;

/// Drops `value` on the reaper thread, or here if the queue is full or the thread is gone.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    let Some(reaper) = reaper() else { return drop(value) };
    match reaper.try_send(Box::new(value)) {
        Ok(()) => {}
        Err(TrySendError::Full(value) | TrySendError::Disconnected(value)) => drop(value),
    }
}

fn reaper() -> Option<&'static SyncSender<Doomed>> {
    static REAPER: OnceLock<Option<SyncSender<Doomed>>> = OnceLock::new();
    REAPER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel::<Doomed>(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("moat-reaper".into())
                .spawn(move || receiver.into_iter().for_each(drop));
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
