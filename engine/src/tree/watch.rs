//! Subscriptions: [`Tree::watch_prefix`] and the events it delivers.
//!
//! Writers publish an event after their change is installed, into each matching
//! subscriber's bounded queue; the queue's lock is held for one push. A queue that is full
//! drops the event and counts it, and its subscriber gets [`Event::Lagged`] with the count
//! before the next event that fits, so a slow subscriber never slows a writer and always
//! knows what it missed.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Bytes, Tree};
use crate::{
    ids::TreeId,
    sync::{self, AtomicU64, Condvar, Mutex, Ordering, RwLock},
};

/// How many events a subscriber's queue holds before it drops new ones.
pub const SUBSCRIBER_CAPACITY: usize = 1024;

/// A change seen by a subscriber of [`Tree::watch_prefix`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `key` was set to `value`.
    Insert {
        /// The key.
        key: Bytes,
        /// Its new value.
        value: Bytes,
    },
    /// `key` was removed.
    Remove {
        /// The key.
        key: Bytes,
    },
    /// The writes of one batch under the prefix, applied together, in key order: each key
    /// with its new value, `None` for a remove.
    Batch(Vec<(Bytes, Option<Bytes>)>),
    /// Every entry of the tree was removed (`Tree::clear`), or the tree was dropped.
    Cleared,
    /// The subscriber fell behind: `missed` events were dropped because its queue was full.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// The stream of [`Event`]s from [`Tree::watch_prefix`]. Iterating blocks until an event
/// arrives and ends when the database is closed; [`Subscriber::next_timeout`] and
/// [`Subscriber::try_next`] wait less. Dropping it ends the subscription.
pub struct Subscriber {
    queue: Arc<Queue>,
    registry: Arc<Subscriptions>,
    tree: TreeId,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber").field("prefix", &self.queue.prefix).finish_non_exhaustive()
    }
}

/// One subscriber's queue.
struct Queue {
    prefix: Bytes,
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Event>,
    /// Events dropped since the last one queued.
    missed: u64,
    closed: bool,
}

impl Queue {
    fn push(&self, event: Event) {
        let mut state = sync::lock(&self.state);
        if state.events.len() >= SUBSCRIBER_CAPACITY {
            state.missed += 1;
            return;
        }
        if state.missed > 0 {
            let missed = std::mem::take(&mut state.missed);
            state.events.push_back(Event::Lagged { missed });
        }
        state.events.push_back(event);
        drop(state);
        self.ready.notify_one();
    }

    fn close(&self) {
        sync::lock(&self.state).closed = true;
        self.ready.notify_all();
    }
}

/// Every subscription of one database.
#[derive(Default)]
pub(crate) struct Subscriptions {
    /// How many subscriptions exist: writers skip publishing when there are none, at the
    /// cost of one load. Owner: subscribe (add) and drop (subtract). Relaxed: a writer that
    /// misses a subscription made concurrently with its write is as if it wrote first.
    count: AtomicU64,
    by_tree: RwLock<HashMap<TreeId, Vec<Arc<Queue>>>>,
}

impl Subscriptions {
    /// Whether anyone listens at all.
    pub(crate) fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Delivers what `make` builds from the changes under each subscriber's prefix.
    pub(crate) fn publish(&self, tree: TreeId, mut make: impl FnMut(&[u8]) -> Option<Event>) {
        if !self.any() {
            return;
        }
        let by_tree = sync::read(&self.by_tree);
        for queue in by_tree.get(&tree).into_iter().flatten() {
            if let Some(event) = make(&queue.prefix) {
                queue.push(event);
            }
        }
    }

    /// Ends every subscription (the database is closing).
    pub(crate) fn close_all(&self) {
        for queue in sync::read(&self.by_tree).values().flatten() {
            queue.close();
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut by_tree = sync::write(&self.registry.by_tree);
        if let Some(queues) = by_tree.get_mut(&self.tree) {
            queues.retain(|q| !Arc::ptr_eq(q, &self.queue));
        }
        self.registry.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscriber {
    /// The next event, waiting at most `timeout`; `None` if none came (or the database
    /// closed).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        let mut state = sync::lock(&self.queue.state);
        loop {
            if let Some(event) = take(&mut state) {
                return Some(event);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = sync::wait_timeout(&self.queue.ready, state, deadline - now);
        }
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        take(&mut sync::lock(&self.queue.state))
    }
}

fn take(state: &mut QueueState) -> Option<Event> {
    if let Some(event) = state.events.pop_front() {
        return Some(event);
    }
    (state.missed > 0).then(|| Event::Lagged { missed: std::mem::take(&mut state.missed) })
}

impl Iterator for Subscriber {
    type Item = Event;

    /// Blocks until an event arrives; `None` once the database is closed.
    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.next_timeout(Duration::from_secs(3600)) {
                return Some(event);
            }
            if sync::lock(&self.queue.state).closed {
                return None;
            }
        }
    }
}

impl Tree {
    /// Subscribes to the changes of keys that start with `prefix` (all keys for an empty
    /// prefix). Events arrive after the change is applied: an insert or remove as one
    /// event, a batch as one [`Event::Batch`]. Two writes to one key from different
    /// threads at the same moment may arrive in either order. A subscriber that falls
    /// [`SUBSCRIBER_CAPACITY`] events behind loses the newest and is told so
    /// ([`Event::Lagged`]); writers never wait for subscribers.
    ///
    /// # Example
    /// ```
    /// use grove_engine::Event;
    ///
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// let mut events = db.watch_prefix(b"user/");
    /// db.insert(b"user/1", b"ann")?;
    /// db.insert(b"other", b"ignored")?;
    /// assert_eq!(
    ///     events.next(),
    ///     Some(Event::Insert { key: b"user/1".into(), value: b"ann".into() })
    /// );
    /// assert_eq!(events.try_next(), None);
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn watch_prefix(&self, prefix: impl AsRef<[u8]>) -> Subscriber {
        let registry = self.inner.shared.subscriptions.clone();
        let queue = Arc::new(Queue {
            prefix: Bytes::copy_from(prefix.as_ref()),
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
        });
        sync::write(&registry.by_tree).entry(self.inner.id).or_default().push(queue.clone());
        registry.count.fetch_add(1, Ordering::Relaxed);
        Subscriber { queue, registry, tree: self.inner.id }
    }

    /// Publishes one key's change.
    pub(crate) fn publish_one(&self, key: &[u8], value: Option<&[u8]>) {
        self.inner.shared.subscriptions.publish(self.inner.id, |prefix| {
            key.starts_with(prefix).then(|| match value {
                Some(value) => {
                    Event::Insert { key: Bytes::copy_from(key), value: Bytes::copy_from(value) }
                }
                None => Event::Remove { key: Bytes::copy_from(key) },
            })
        });
    }

    /// Publishes that the tree was emptied.
    pub(crate) fn publish_cleared(&self) {
        self.inner.shared.subscriptions.publish(self.inner.id, |_| Some(Event::Cleared));
    }
}
