//! The maintenance thread: checkpoints and cleaning, off the write path.
//!
//! A write that crosses the checkpoint threshold only asks for a pass ([`Maintainer::
//! request`]: one atomic swap, and a wake-up the first time); the thread runs it. Before
//! this thread, the writer that crossed the line ran the pass itself and waited for a
//! checkpoint of the whole page table and the cleaner's relocations: hundreds of
//! milliseconds on a database of a million keys.
//!
//! The thread holds only a `Weak` reference to the cache, so dropping the last handle
//! drops the cache; the cache's drop stops the thread and joins it (unless the drop runs on
//! the thread itself, which then ends on its own).

use std::sync::{Arc, Weak};

use super::cache::Inner;
use crate::sync::{self, AtomicBool, Condvar, Mutex, Ordering, thread::JoinHandle};

/// What the cache keeps of its maintenance thread.
pub(crate) struct Maintainer {
    shared: Arc<Shared>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// Shared by the cache and its thread.
struct Shared {
    /// Set by a writer that finds a pass due; cleared by the thread as it starts one.
    /// Owner: writers set it (false to true), the thread clears it (true to false). A swap,
    /// so that only the writer that set it takes the lock to wake the thread.
    requested: AtomicBool,
    /// Whether the thread should run a pass (`true`) and whether it should end.
    signal: Mutex<Signal>,
    wake: Condvar,
}

#[derive(Default)]
struct Signal {
    due: bool,
    stop: bool,
}

impl Maintainer {
    /// A maintainer with no thread: for a read-only cache, which never maintains.
    pub(crate) fn none() -> Maintainer {
        Maintainer {
            shared: Arc::new(Shared {
                requested: AtomicBool::new(false),
                signal: Mutex::new(Signal::default()),
                wake: Condvar::new(),
            }),
            handle: Mutex::new(None),
        }
    }

    /// Starts the thread for `inner` (whose maintainer this must be).
    ///
    /// # Errors
    /// The operating system's, if the thread cannot be started.
    pub(crate) fn start(inner: &Arc<Inner>) -> std::io::Result<()> {
        let shared = Arc::clone(&inner.maintainer.shared);
        let cache: Weak<Inner> = Arc::downgrade(inner);
        let handle = sync::spawn("grove-maintenance", move || run(&shared, &cache))?;
        *sync::lock(&inner.maintainer.handle) = Some(handle);
        Ok(())
    }

    /// Asks the thread for a pass; cheap when one is already asked for.
    pub(crate) fn request(&self) {
        if self.shared.requested.swap(true, Ordering::AcqRel) {
            return;
        }
        sync::lock(&self.shared.signal).due = true;
        self.shared.wake.notify_one();
    }

    /// Stops the thread and waits for it to end (after the pass it may be running).
    /// Returns whether a pass was asked for and not started: the caller may run it.
    pub(crate) fn stop(&self) -> bool {
        let pending = {
            let mut signal = sync::lock(&self.shared.signal);
            signal.stop = true;
            signal.due
        };
        self.shared.wake.notify_one();
        let handle = sync::lock(&self.handle).take();
        if let Some(handle) = handle
            && handle.thread().id() != sync::thread::current().id()
        {
            // A panicking pass already recorded nothing useful; nothing to report.
            let _ = handle.join();
        }
        pending
    }
}

impl Drop for Maintainer {
    fn drop(&mut self) {
        // A pass still due when the cache is dropped is left to the next open's.
        self.stop();
    }
}

fn run(shared: &Shared, cache: &Weak<Inner>) {
    loop {
        {
            let mut signal = sync::lock(&shared.signal);
            while !signal.due && !signal.stop {
                signal = match shared.wake.wait(signal) {
                    Ok(signal) => signal,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
            if signal.stop {
                return;
            }
            signal.due = false;
        }
        shared.requested.store(false, Ordering::Release);
        let Some(inner) = cache.upgrade() else {
            return;
        };
        inner.maintain_now();
    }
}
