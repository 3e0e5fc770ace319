//! The maintenance thread (`grove-maintain`): checkpoints and cleaning off the write path.
//!
//! Without it, the write that carries a stream past its checkpoint line runs the cleaner
//! and the checkpoint itself, and waits for them: on the comparison benchmark that was an
//! eighth of the bulk load's time, on one core, while the other core sat mostly idle. With
//! it, that write only wakes this thread and goes on. It is off by default
//! ([`PageCacheConfig::maintenance_thread`](crate::PageCacheConfig::maintenance_thread)):
//! the log runs up to two intervals ahead of the cleaner, and the benchmark's disk after
//! the load went from 237 MiB to about 300.
//!
//! The thread holds its cache weakly, and strongly only during a pass, so it never keeps a
//! cache alive. A pass is what a writer would have run ([`Inner::maintain`] under the
//! maintenance lock): nothing about maintenance changes but who waits for it. Writers still
//! wait when the thread falls behind: a write that finds a stream two intervals past its
//! line takes the maintenance lock itself (see [`Inner::after_write`]), which bounds the log
//! on disk as before.

use std::sync::{Arc, Weak};

use super::cache::Inner;
use crate::sync::{self, Condvar, Mutex, thread::JoinHandle};

/// The handle on the maintenance thread, kept in the cache it maintains.
#[derive(Debug, Default)]
pub(crate) struct Maintainer {
    /// Shared with the thread, which waits on it without holding the cache.
    signal: Arc<Signal>,
    /// The thread, until a close joins it; `None` if it never started.
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the thread is asked to do, and the condition variable it waits on.
#[derive(Debug, Default)]
struct Signal {
    /// Owner: writers set `requested`, the thread clears it. `stopped` is true while no
    /// thread runs: until [`Maintainer::start`] starts one, and for good once a close or
    /// the cache's drop stops it.
    state: Mutex<Asked>,
    wake: Condvar,
}

#[derive(Debug)]
struct Asked {
    requested: bool,
    stopped: bool,
}

impl Default for Asked {
    fn default() -> Asked {
        Asked { requested: false, stopped: true }
    }
}

impl Maintainer {
    /// Starts the thread for `inner`. If no thread can be started, writers go on
    /// maintaining the cache themselves.
    pub(crate) fn start(inner: &Arc<Inner>) {
        let maintainer = &inner.maintainer;
        sync::lock(&maintainer.signal.state).stopped = false;
        let (cache, signal) = (Arc::downgrade(inner), maintainer.signal.clone());
        match sync::spawn("grove-maintain", move || run(&cache, &signal)) {
            Ok(thread) => *sync::lock(&maintainer.thread) = Some(thread),
            Err(_) => maintainer.signal.stop(),
        }
    }

    /// Asks the thread for a pass. `false` if no thread runs (none started, or it was
    /// stopped): the caller then runs the pass itself.
    pub(crate) fn request(&self) -> bool {
        let mut asked = sync::lock(&self.signal.state);
        if asked.stopped {
            return false;
        }
        if !asked.requested {
            asked.requested = true;
            self.signal.wake.notify_one();
        }
        true
    }

    /// Stops the thread and waits for it: a pass under way finishes first. From then on
    /// [`Maintainer::request`] says that no thread runs.
    pub(crate) fn stop(&self) {
        self.signal.stop();
        // Only a close stops the thread, never the thread itself (its passes only
        // maintain), so this never waits for its own thread.
        let thread = sync::lock(&self.thread).take();
        if let Some(thread) = thread {
            // A thread that panicked has nothing left to do or to report.
            let _ = thread.join();
        }
    }
}

impl Drop for Maintainer {
    fn drop(&mut self) {
        // The cache is going away, possibly on the thread itself (its pass held the last
        // reference): tell the thread to end, without waiting for it.
        self.signal.stop();
    }
}

impl Signal {
    fn stop(&self) {
        sync::lock(&self.state).stopped = true;
        self.wake.notify_one();
    }
}

/// The thread: a pass per request, until it is stopped or its cache is gone.
fn run(cache: &Weak<Inner>, signal: &Signal) {
    loop {
        {
            let mut asked = sync::lock(&signal.state);
            while !asked.requested && !asked.stopped {
                asked = match signal.wake.wait(asked) {
                    Ok(asked) => asked,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
            if asked.stopped {
                return;
            }
            asked.requested = false;
        }
        let Some(cache) = cache.upgrade() else {
            return;
        };
        // A writer that fell two intervals behind may be at it: the thread waits its turn
        // rather than drop the request, and finds out then whether anything is still due
        // (a request that came in during the last pass may find nothing).
        cache.maintain_when_due();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, mpsc},
        time::Duration,
    };

    use crate::{
        PageId,
        config::PageCacheConfig,
        error::{Error, Result},
        pagecache::{Materializer, Outcome, PageCache},
        storage::MemStorage,
        sync,
    };

    /// Keeps the last image: these tests only replace.
    struct Last;

    impl Materializer for Last {
        fn merge(&self, base: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
            fragments.last().copied().unwrap_or(base).to_vec()
        }
    }

    const IMAGE: [u8; 200] = [7; 200];
    /// How long a test waits for what must happen; a hang fails it.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn open(storage: &Arc<MemStorage>) -> Result<PageCache> {
        let config = PageCacheConfig { maintenance_thread: true, ..PageCacheConfig::tiny() };
        PageCache::open(storage.clone(), config, Arc::new(Last))
    }

    /// Replaces the page until the delta stream has grown by `bytes`, on a thread of its
    /// own; the receiver gets the page's last version once it is done.
    fn replace_for(
        cache: &PageCache,
        (id, version): (PageId, u64),
        bytes: u64,
    ) -> mpsc::Receiver<Result<u64>> {
        let (done, finished) = mpsc::channel();
        let cache = cache.clone();
        std::thread::spawn(move || {
            let replaced = (|| {
                let start = cache.stats().delta_log.reserved_lsn.get();
                let mut version = version;
                while cache.stats().delta_log.reserved_lsn.get() < start + bytes {
                    match cache.replace(id, version, &IMAGE)? {
                        Outcome::Installed { version: next } => version = next,
                        Outcome::Stale => {
                            return Err(Error::Config("a stale version with one writer".into()));
                        }
                    }
                }
                Ok(version)
            })();
            let _ = done.send(replaced);
        });
        finished
    }

    /// Waits (up to `PATIENCE`) until `done` holds; whether it does.
    fn wait_until(mut done: impl FnMut() -> bool) -> bool {
        let mut waited = Duration::ZERO;
        while !done() && waited < PATIENCE {
            std::thread::sleep(Duration::from_millis(5));
            waited += Duration::from_millis(5);
        }
        done()
    }

    /// A write past a checkpoint's line hands the pass to the thread and goes on, even
    /// while a pass holds the maintenance lock, and the thread runs it once it can; a write
    /// two intervals past the line waits for the pass, so the log cannot outrun
    /// maintenance.
    #[test]
    fn writes_hand_maintenance_to_the_thread_until_it_falls_behind()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let storage = Arc::new(MemStorage::new());
        let cache = open(&storage)?;
        let every = PageCacheConfig::tiny().checkpoint_every;
        let page = cache.allocate(&IMAGE)?;
        // A pass under way, as far as writers can tell.
        let held = sync::lock(&cache.inner.maintenance);
        let version = replace_for(&cache, page, every + every / 2).recv_timeout(PATIENCE)??;
        assert_eq!(cache.stats().checkpoints, 0);
        // The thread kept the request: once the lock is free, it checkpoints with no
        // further write.
        drop(held);
        assert!(wait_until(|| cache.stats().checkpoints > 0), "{:#?}", cache.stats());

        let held = sync::lock(&cache.inner.maintenance);
        let behind = replace_for(&cache, (page.0, version), 3 * every);
        assert!(
            behind.recv_timeout(Duration::from_millis(300)).is_err(),
            "writes two intervals past due wait for the pass under way"
        );
        drop(held);
        let version = behind.recv_timeout(PATIENCE)??;
        assert!(cache.stats().checkpoints > 0, "{:#?}", cache.stats());
        assert_eq!(cache.stats().maintenance_errors, 0);
        cache.close()?;

        let cache = open(&storage)?;
        let reopened = cache.get(page.0)?.ok_or("the page is gone after a reopen")?;
        assert_eq!((reopened.version(), reopened.materialize(&Last)), (version, IMAGE.to_vec()));
        cache.check()?;
        Ok(())
    }

    /// The thread holds its cache only during a pass: dropping every handle frees the
    /// cache, thread or no thread.
    #[test]
    fn the_thread_does_not_keep_a_dropped_cache_alive()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let storage = Arc::new(MemStorage::new());
        let cache = open(&storage)?;
        let page = cache.allocate(&IMAGE)?;
        let every = PageCacheConfig::tiny().checkpoint_every;
        replace_for(&cache, page, 3 * every).recv_timeout(PATIENCE)??;
        let weak = Arc::downgrade(&cache.inner);
        drop(cache);
        // A pass under way holds the cache until it ends.
        assert!(wait_until(|| weak.upgrade().is_none()), "the cache outlived its handles");
        Ok(())
    }
}
