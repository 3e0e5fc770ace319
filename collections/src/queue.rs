//! [`Queue`]: a persistent FIFO queue for many producers and consumers.
//!
//! Items wait in one engine tree keyed by a `u64` id from the database's id generator
//! (which only grows, across restarts): the first key is the oldest item. A consumer takes
//! an item by removing its key with a compare-and-swap, so each item goes to exactly one
//! consumer. Blocking consumers wait on a condition variable that every push in this
//! process signals: no polling.
//!
//! **Leases** give at-least-once delivery. [`Queue::reserve`] moves the oldest item, in one
//! transaction, to a second tree keyed by `(deadline, id)`, recording this database
//! handle's *instance* (a fresh id each time the database is opened). [`Lease::ack`]
//! removes it. A lease whose deadline passed, or whose instance is not the current one (its
//! consumer died with its process), goes back to the waiting items under its old id, so it
//! keeps its place at the front.

use std::{
    borrow::Borrow,
    fmt,
    marker::PhantomData,
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use grove_engine::{Batch, Bytes, TransactionError, Tree};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::{Error, Result, hex},
    value::{self, Bincode, Codec},
};

/// Wakes the consumers of one queue when items arrive. Shared by every handle to the queue
/// in this process.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// Counts pushes; a consumer waits until it moves.
    pushes: Mutex<u64>,
    arrived: Condvar,
}

impl Signal {
    fn current(&self) -> u64 {
        *self.pushes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn notify(&self) {
        *self.pushes.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.arrived.notify_all();
    }

    /// Waits until a push after `seen`, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = self.pushes.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .arrived
            .wait_timeout_while(guard, timeout, |pushes| *pushes == seen)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// A persistent FIFO queue of `T`, from [`Db::queue`](crate::Db::queue). Many threads may
/// push and pop at once; each item goes to exactly one consumer, oldest first, and waiting
/// items survive restarts and crashes (once flushed). A handle: cheap to clone, `Send` and
/// `Sync`.
///
/// Items pushed by one producer come out in the order it pushed them. Items of different
/// producers come out in the order they took their ids, which is about the order they were
/// pushed.
///
/// # Example
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = grove_collections::open(dir.path())?;
/// let jobs = db.queue::<String>("jobs")?;
/// jobs.push("resize a.png")?;
/// jobs.push("resize b.png")?;
/// assert_eq!(jobs.pop()?.as_deref(), Some("resize a.png"));
///
/// // At least once: a reserved item comes back unless it is acknowledged in time.
/// let lease = jobs.reserve(std::time::Duration::from_secs(30))?.unwrap();
/// assert_eq!(lease.item(), "resize b.png");
/// lease.ack()?;
/// assert_eq!(jobs.len()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T, C = Bincode> {
    pub(crate) engine: grove_engine::Db,
    pub(crate) ready: Tree,
    leased: Tree,
    pub(crate) name: Arc<str>,
    pub(crate) signal: Arc<Signal>,
    instance: u64,
    types: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for Queue<T, C> {
    fn clone(&self) -> Self {
        Queue {
            engine: self.engine.clone(),
            ready: self.ready.clone(),
            leased: self.leased.clone(),
            name: self.name.clone(),
            signal: self.signal.clone(),
            instance: self.instance,
            types: PhantomData,
        }
    }
}

impl<T, C> fmt::Debug for Queue<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("item", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// An item handed out by [`Queue::reserve`]: it stays out of the queue until its deadline,
/// and is removed for good by [`Lease::ack`]. Dropping a lease without acknowledging it
/// leaves the item to come back at the deadline; [`Lease::release`] brings it back now.
pub struct Lease<T, C = Bincode> {
    queue: Queue<T, C>,
    /// The lease's key in the leased tree: deadline, then id.
    key: [u8; 16],
    item: T,
}

impl<T: fmt::Debug, C> fmt::Debug for Lease<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("item", &self.item).finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
fn now_millis() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn lease_key(deadline: u64, id: [u8; 8]) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&deadline.to_be_bytes());
    key[8..].copy_from_slice(&id);
    key
}

impl<T, C> Queue<T, C>
where
    T: Serialize + DeserializeOwned,
    C: Codec,
{
    pub(crate) fn open(
        engine: grove_engine::Db,
        ready: Tree,
        leased: Tree,
        name: &str,
        signal: Arc<Signal>,
        instance: u64,
    ) -> Result<Self> {
        let queue = Queue {
            engine,
            ready,
            leased,
            name: Arc::from(name),
            signal,
            instance,
            types: PhantomData,
        };
        // Leases of an earlier opening: their consumers died with it. (A read-only
        // database cannot move them, and hands out none.) The count is O(1): most opens
        // find none and run no transaction.
        if queue.leased.len()? == 0 {
            return Ok(queue);
        }
        match queue.return_leases(|_, lease_instance| lease_instance != instance) {
            Ok(()) | Err(Error::Engine(grove_engine::Error::ReadOnly)) => Ok(queue),
            Err(error) => Err(error),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn encode<W: Serialize + ?Sized>(&self, item: &W) -> Result<Vec<u8>> {
        value::encode::<C, W>(item, 0).map_err(|reason| Error::Value {
            collection: self.name.to_string(),
            key: String::from("(a new item)"),
            reason,
        })
    }

    pub(crate) fn decode(&self, key: &[u8], bytes: &[u8]) -> Result<T> {
        value::decode::<C, T>(bytes, 0).map_err(|reason| Error::Value {
            collection: self.name.to_string(),
            key: hex(key),
            reason,
        })
    }

    /// Adds `item` at the back.
    ///
    /// # Errors
    /// [`Error::Value`] if it cannot be encoded; the engine's errors.
    pub fn push<W>(&self, item: &W) -> Result<()>
    where
        T: Borrow<W>,
        W: Serialize + ?Sized,
    {
        let bytes = self.encode(item)?;
        let id = self.engine.generate_id()?;
        self.ready.insert(id.to_be_bytes(), bytes)?;
        self.signal.notify();
        Ok(())
    }

    /// Adds every item of `items` at the back, in order, in one atomic batch.
    ///
    /// # Errors
    /// As [`Queue::push`]; then nothing was added.
    pub fn push_many<I, B>(&self, items: I) -> Result<()>
    where
        I: IntoIterator<Item = B>,
        B: Borrow<T>,
    {
        let mut batch = Batch::default();
        for item in items {
            let bytes = self.encode(item.borrow())?;
            batch.insert(&self.ready, self.engine.generate_id()?.to_be_bytes(), bytes);
        }
        self.ready.apply_batch(batch)?;
        self.signal.notify();
        Ok(())
    }

    /// Takes the item at the front, if there is one; never waits.
    ///
    /// # Errors
    /// [`Error::Value`] if the item does not decode (it is removed all the same: it would
    /// block the queue); the engine's errors.
    pub fn pop(&self) -> Result<Option<T>> {
        self.return_expired()?;
        loop {
            let Some(entry) = self.ready.iter().next() else { return Ok(None) };
            let (key, bytes) = entry?;
            if self.ready.compare_and_swap(&key, Some(&bytes), None::<&[u8]>)?.is_ok() {
                return self.decode(&key, &bytes).map(Some);
            }
        }
    }

    /// Takes the item at the front, waiting up to `timeout` for one to arrive.
    ///
    /// # Errors
    /// As [`Queue::pop`].
    pub fn pop_timeout(&self, timeout: Duration) -> Result<Option<T>> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.signal.current();
            if let Some(item) = self.pop()? {
                return Ok(Some(item));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Leases expire without a push: look again at the next one's deadline at
            // the latest.
            self.signal.wait(seen, left.min(self.next_expiry()?));
        }
    }

    /// Takes the item at the front, waiting as long as it takes for one to arrive.
    ///
    /// # Errors
    /// As [`Queue::pop`].
    pub fn pop_blocking(&self) -> Result<T> {
        loop {
            if let Some(item) = self.pop_timeout(Duration::from_secs(3600))? {
                return Ok(item);
            }
        }
    }

    /// The item at the front, left in the queue.
    ///
    /// # Errors
    /// As [`Queue::pop`].
    pub fn peek(&self) -> Result<Option<T>> {
        match self.ready.iter().next() {
            Some(entry) => {
                let (key, bytes) = entry?;
                self.decode(&key, &bytes).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The items waiting, front first (not those reserved).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Result<T>> + '_ {
        self.ready.iter().map(move |entry| {
            let (key, bytes) = entry?;
            self.decode(&key, &bytes)
        })
    }

    /// How many items wait (not counting those reserved), in O(1).
    ///
    /// # Errors
    /// The engine's errors.
    pub fn len(&self) -> Result<usize> {
        Ok(self.ready.len()?)
    }

    /// Whether no item waits.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.ready.is_empty()?)
    }

    /// How many items are reserved and not yet acknowledged.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn reserved(&self) -> Result<usize> {
        Ok(self.leased.len()?)
    }

    /// Removes every item, waiting and reserved (each tree atomically).
    ///
    /// # Errors
    /// The engine's errors.
    pub fn clear(&self) -> Result<()> {
        self.ready.clear()?;
        Ok(self.leased.clear()?)
    }

    /// Reserves the item at the front for `lease`: it leaves the queue, and comes back
    /// to the front when the lease runs out, or when this database is next opened if
    /// this process dies first, unless [`Lease::ack`] removes it. Never waits.
    ///
    /// # Errors
    /// As [`Queue::pop`]; [`Error::Conflict`] if other consumers kept taking the front item
    /// first, past the transaction attempt limit.
    pub fn reserve(&self, lease: Duration) -> Result<Option<Lease<T, C>>> {
        self.return_expired()?;
        let deadline =
            now_millis().saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        // The front item is looked up outside the transaction, which then reads only that
        // key: an item pushed meanwhile under a smaller id (its producer took the id
        // earlier) is no conflict, only another consumer taking the same item is. Reading
        // the front inside the transaction made every such push a conflict, and consumers
        // keeping up with two producers then ran out of attempts.
        loop {
            let Some(entry) = self.ready.iter().next() else { return Ok(None) };
            let (key, _) = entry?;
            let id = <[u8; 8]>::try_from(&key[..]).map_err(|_| Error::Value {
                collection: self.name.to_string(),
                key: hex(&key),
                reason: "a queue key is 8 bytes".into(),
            })?;
            let lease_key = lease_key(deadline, id);
            let taken = self.engine.transaction(|tx| {
                // Taken by another consumer since: try the next front item.
                let Some(bytes) = tx.get(&self.ready, &key)? else { return Ok(None) };
                let mut record = self.instance.to_be_bytes().to_vec();
                record.extend_from_slice(&bytes);
                tx.remove(&self.ready, &key)?;
                tx.insert(&self.leased, lease_key, record)?;
                Ok(Some(bytes))
            });
            if let Some(bytes) = self.finish(taken)? {
                let item = self.decode(&key, &bytes)?;
                return Ok(Some(Lease { queue: self.clone(), key: lease_key, item }));
            }
        }
    }

    /// As [`Queue::reserve`], waiting up to `timeout` for an item to arrive.
    ///
    /// # Errors
    /// As [`Queue::reserve`].
    pub fn reserve_timeout(
        &self,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Option<Lease<T, C>>> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.signal.current();
            if let Some(taken) = self.reserve(lease)? {
                return Ok(Some(taken));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.signal.wait(seen, left.min(self.next_expiry()?));
        }
    }

    /// A transaction's outcome as the typed layer reports it.
    fn finish<R>(&self, result: std::result::Result<R, TransactionError<Error>>) -> Result<R> {
        match result {
            Ok(value) => Ok(value),
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Conflict { attempts }) => {
                Err(Error::Conflict { collection: self.name.to_string(), attempts })
            }
            Err(TransactionError::Storage(error)) => Err(error.into()),
        }
    }

    /// How long until the earliest lease runs out (an hour if there is none).
    fn next_expiry(&self) -> Result<Duration> {
        let Some(entry) = self.leased.iter().next() else {
            return Ok(Duration::from_secs(3600));
        };
        let (key, _) = entry?;
        let deadline =
            key.get(..8).and_then(|d| <[u8; 8]>::try_from(d).ok()).map(u64::from_be_bytes);
        let left = deadline.unwrap_or(0).saturating_sub(now_millis());
        Ok(Duration::from_millis(left.max(1)))
    }

    /// Brings back the leases whose deadline passed.
    fn return_expired(&self) -> Result<()> {
        // On every pop: with no lease out (the usual case) this is one O(1) count.
        if self.leased.len()? == 0 {
            return Ok(());
        }
        let now = now_millis();
        // Most calls find no lease due: check the earliest without a transaction.
        let due = match self.leased.iter().next() {
            Some(entry) => entry?.0.get(..8).is_some_and(|d| d <= &now.to_be_bytes()[..]),
            None => false,
        };
        if due {
            self.return_leases(|deadline, _| deadline <= now)?;
        }
        Ok(())
    }

    /// Moves every lease for which `returns(deadline, instance)` holds back to the front
    /// of the queue, under its old id, in one transaction.
    fn return_leases(&self, returns: impl Fn(u64, u64) -> bool) -> Result<()> {
        let returned = self.engine.transaction(|tx| {
            let mut moved = 0;
            for entry in tx.iter(&self.leased) {
                let (key, record) = entry?;
                let word = |bytes: &[u8], at: usize| {
                    bytes
                        .get(at..at + 8)
                        .and_then(|w| <[u8; 8]>::try_from(w).ok())
                        .map(u64::from_be_bytes)
                };
                let (Some(deadline), Some(id), Some(instance)) =
                    (word(&key, 0), key.get(8..16), word(&record, 0))
                else {
                    return Err(TransactionError::Abort(Error::Value {
                        collection: self.name.to_string(),
                        key: hex(&key),
                        reason: "a lease is a 16-byte key and an 8-byte instance".into(),
                    }));
                };
                if returns(deadline, instance) {
                    tx.remove(&self.leased, &key)?;
                    tx.insert(&self.ready, id, Bytes::copy_from(&record[8..]))?;
                    moved += 1;
                }
            }
            Ok(moved)
        });
        if self.finish(returned)? > 0 {
            self.signal.notify();
        }
        Ok(())
    }
}

impl<T, C> Lease<T, C>
where
    T: Serialize + DeserializeOwned,
    C: Codec,
{
    /// The reserved item.
    pub fn item(&self) -> &T {
        &self.item
    }

    /// Takes the item out of the lease (the lease stays, until acknowledged or expired).
    pub fn into_item(self) -> T {
        self.item
    }

    /// Removes the item for good: `true`, or `false` if the lease had already run out (the
    /// item went back to the queue, and may have been delivered again).
    ///
    /// # Errors
    /// The engine's errors.
    pub fn ack(&self) -> Result<bool> {
        Ok(self.queue.leased.remove(self.key)?.is_some())
    }

    /// Puts the item back at the front of the queue now: `false` if the lease had already
    /// run out.
    ///
    /// # Errors
    /// As [`Lease::ack`].
    pub fn release(&self) -> Result<bool> {
        let key = self.key;
        let returned = self.queue.engine.transaction(|tx| {
            let Some(record) = tx.get(&self.queue.leased, key)? else { return Ok(false) };
            tx.remove(&self.queue.leased, key)?;
            tx.insert(
                &self.queue.ready,
                &key[8..],
                Bytes::copy_from(record.get(8..).unwrap_or_default()),
            )?;
            Ok(true)
        });
        let returned = self.queue.finish(returned)?;
        if returned {
            self.queue.signal.notify();
        }
        Ok(returned)
    }
}
