//! [`Transaction`]: reads and writes across trees, serializable, by optimistic concurrency.
//!
//! A transaction reads from a [`Snapshot`] taken when it starts, and keeps its writes to
//! itself (its reads see them). It notes what it read: each key, and for each range the
//! part its iterators walked. At commit, under the sequencer that orders recorded writes
//! (`tree/versions.rs`), it checks that no write numbered after its snapshot changed any
//! of that, then installs its writes as one batch with nothing in between. If something
//! did change, the commit is refused and [`Db::transaction`] runs the closure again with a
//! new snapshot. The closure therefore always sees one consistent state, and no lock is
//! held while it runs.

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, VecDeque},
    fmt,
    ops::{Bound, RangeBounds},
    time::Duration,
};

use super::Db;
use crate::{
    error::{Error, Result},
    ids::TreeId,
    sync,
    tree::{Batch, Bytes, CompareAndSwapError, Snapshot, SnapshotIter, Tree, VersionStore, slices},
};

/// Why [`Db::transaction`] did not commit.
#[derive(Debug)]
pub enum TransactionError<E> {
    /// The closure returned this: nothing was written. It reaches the caller unchanged.
    Abort(E),
    /// Other writers kept changing what the transaction read: it ran `attempts` times (see
    /// `Config::transaction_attempts`) and never committed. Nothing was written.
    Conflict {
        /// How many times the closure ran.
        attempts: u32,
    },
    /// The database failed (I/O, corruption, a read-only database...). Nothing was written.
    Storage(Error),
}

impl<E> From<Error> for TransactionError<E> {
    fn from(error: Error) -> Self {
        TransactionError::Storage(error)
    }
}

impl<E: fmt::Display> fmt::Display for TransactionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::Abort(error) => write!(f, "transaction aborted: {error}"),
            TransactionError::Conflict { attempts } => write!(
                f,
                "transaction gave up after {attempts} attempts: concurrent writes kept \
                 changing what it read (Config::transaction_attempts)"
            ),
            TransactionError::Storage(error) => write!(f, "transaction failed: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TransactionError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransactionError::Abort(error) => Some(error),
            TransactionError::Conflict { .. } => None,
            TransactionError::Storage(error) => Some(error),
        }
    }
}

/// A range a transaction's iterator walked: from `lo` up to `front` (the last key the
/// front returned), and from `back` up to `hi`; all of it once an end ran out.
#[derive(Debug)]
struct ReadRange {
    tree: TreeId,
    lo: Bound<Bytes>,
    hi: Bound<Bytes>,
    front: Option<Bytes>,
    back: Option<Bytes>,
    whole: bool,
}

impl ReadRange {
    /// Whether a write numbered above `seq` changed a key of the part walked.
    fn changed(&self, store: &VersionStore, seq: u64) -> bool {
        let (lo, hi) = (slices(&self.lo), slices(&self.hi));
        if self.whole {
            return store.changed_range(self.tree, lo, hi, seq);
        }
        let front = self
            .front
            .as_ref()
            .is_some_and(|key| store.changed_range(self.tree, lo, Bound::Included(key), seq));
        let back = self
            .back
            .as_ref()
            .is_some_and(|key| store.changed_range(self.tree, Bound::Included(key), hi, seq));
        front || back
    }
}

/// The writes of a transaction, by tree and key (`None`: removed), with a handle to each
/// tree.
type Writes = BTreeMap<(TreeId, Bytes), (Tree, Option<Bytes>)>;

/// One run of a [`Db::transaction`] closure: reads from a snapshot taken when it started,
/// writes kept until commit. Its methods take the tree to work on, so one transaction can
/// span any trees of the database.
///
/// The closure may run more than once (see [`Db::transaction`]), so it should do nothing
/// but read and write through the transaction: effects elsewhere (sending a message,
/// counting attempts) happen once per run.
pub struct Transaction<'db> {
    db: &'db Db,
    snapshot: Snapshot,
    writes: RefCell<Writes>,
    /// Keys read from the snapshot.
    reads: RefCell<Vec<(TreeId, Bytes)>>,
    /// Ranges walked.
    ranges: RefCell<Vec<ReadRange>>,
    durable: Cell<bool>,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("snapshot", &self.snapshot)
            .field("writes", &self.writes.borrow().len())
            .field("reads", &self.reads.borrow().len())
            .field("ranges", &self.ranges.borrow().len())
            .finish_non_exhaustive()
    }
}

impl<'db> Transaction<'db> {
    fn new(db: &'db Db) -> Transaction<'db> {
        Transaction {
            db,
            snapshot: db.snapshot(),
            writes: RefCell::default(),
            reads: RefCell::default(),
            ranges: RefCell::default(),
            durable: Cell::new(false),
        }
    }

    /// [`Error::Config`] if `tree` belongs to another database.
    fn check(&self, tree: &Tree) -> Result<()> {
        if std::sync::Arc::ptr_eq(&tree.inner.shared, &self.db.inner.shared) {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "tree {:?} belongs to another database than this transaction",
                String::from_utf8_lossy(&tree.inner.name)
            )))
        }
    }

    /// The value of `key` in `tree`: this transaction's own write if it made one, else the
    /// value at its snapshot.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    pub fn get(&self, tree: &Tree, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.check(tree)?;
        let key = key.as_ref();
        let id = tree.inner.id;
        if let Some((_, value)) = self.writes.borrow().get(&(id, Bytes::copy_from(key))) {
            return Ok(value.clone());
        }
        self.reads.borrow_mut().push((id, Bytes::copy_from(key)));
        self.snapshot.get(tree, key)
    }

    /// Whether `key` is in `tree`, as [`Transaction::get`] sees it.
    ///
    /// # Errors
    /// As [`Transaction::get`].
    pub fn contains_key(&self, tree: &Tree, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.get(tree, key)?.is_some())
    }

    /// Sets `key` to `value` in `tree` at commit; returns the value it had.
    ///
    /// # Errors
    /// As [`Transaction::get`].
    pub fn insert(
        &self,
        tree: &Tree,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        let old = self.get(tree, key)?;
        self.write(tree, key, Some(Bytes::copy_from(value.as_ref())));
        Ok(old)
    }

    /// Removes `key` from `tree` at commit; returns the value it had.
    ///
    /// # Errors
    /// As [`Transaction::get`].
    pub fn remove(&self, tree: &Tree, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        let old = self.get(tree, key)?;
        if old.is_some() {
            self.write(tree, key, None);
        }
        Ok(old)
    }

    /// Sets `key` to `new` (`None`: removes it) if its value is `old` (`None`: absent), as
    /// [`Tree::compare_and_swap`] does, within the transaction.
    ///
    /// # Errors
    /// As [`Transaction::get`].
    pub fn compare_and_swap<O, N>(
        &self,
        tree: &Tree,
        key: impl AsRef<[u8]>,
        old: Option<O>,
        new: Option<N>,
    ) -> Result<std::result::Result<(), CompareAndSwapError>>
    where
        O: AsRef<[u8]>,
        N: AsRef<[u8]>,
    {
        let key = key.as_ref();
        let current = self.get(tree, key)?;
        if current.as_deref() != old.as_ref().map(AsRef::as_ref) {
            let proposed = new.map(|n| Bytes::copy_from(n.as_ref()));
            return Ok(Err(CompareAndSwapError { current, proposed }));
        }
        self.write(tree, key, new.map(|n| Bytes::copy_from(n.as_ref())));
        Ok(Ok(()))
    }

    fn write(&self, tree: &Tree, key: &[u8], value: Option<Bytes>) {
        let key = (tree.inner.id, Bytes::copy_from(key));
        self.writes.borrow_mut().insert(key, (tree.clone(), value));
    }

    /// The entries of `tree` in `range`, in key order, as this transaction sees them (its
    /// snapshot with its own writes over it); double-ended. The part of the range the
    /// iterator walks is part of what the transaction read: a concurrent write into it
    /// makes the commit conflict.
    ///
    /// The transaction's writes made after the iterator was created are not seen by it.
    pub fn range<K, R>(&self, tree: &Tree, range: R) -> TransactionIter<'_, 'db>
    where
        K: AsRef<[u8]>,
        R: RangeBounds<K>,
    {
        let own = |bound: Bound<&K>| bound.map(|k| Bytes::copy_from(k.as_ref()));
        TransactionIter::new(self, tree, own(range.start_bound()), own(range.end_bound()))
    }

    /// Every entry of `tree`, as [`Transaction::range`] sees them.
    pub fn iter(&self, tree: &Tree) -> TransactionIter<'_, 'db> {
        self.range::<&[u8], _>(tree, ..)
    }

    /// The entries of `tree` whose keys start with `prefix`, as [`Transaction::range`] sees
    /// them.
    pub fn scan_prefix(&self, tree: &Tree, prefix: impl AsRef<[u8]>) -> TransactionIter<'_, 'db> {
        let prefix = prefix.as_ref();
        let end = crate::tree::prefix_end(prefix)
            .map_or(Bound::Unbounded, |end| Bound::Excluded(Bytes::from(end)));
        TransactionIter::new(self, tree, Bound::Included(Bytes::copy_from(prefix)), end)
    }

    /// A new id from the database's generator ([`Db::generate_id`]). Ids are not part of
    /// the transaction: one taken by a run that did not commit is skipped, never reused.
    ///
    /// # Errors
    /// As [`Db::generate_id`].
    pub fn generate_id(&self) -> Result<u64> {
        self.db.generate_id()
    }

    /// Makes the commit durable before [`Db::transaction`] returns, whatever the
    /// database's flush policy. Concurrent durable commits share one sync.
    pub fn flush_on_commit(&self) {
        self.durable.set(true);
    }

    /// Validates what was read and installs the writes: `false` on a conflict (nothing was
    /// written).
    fn commit(self) -> Result<bool> {
        let Transaction { db, snapshot, writes, reads, ranges, durable, .. } = self;
        let writes = writes.into_inner();
        if writes.is_empty() {
            // Read-only: its reads all came from one snapshot, which is a serial point.
            if durable.get() {
                db.flush()?;
            }
            return Ok(true);
        }
        let (reads, ranges) = (reads.into_inner(), ranges.into_inner());
        let seq = snapshot.seq();
        let shared = &db.inner.shared;
        let mut batch = Batch::of_shared(
            writes.into_iter().map(|((_, key), (tree, value))| (tree, key, value)),
        );
        // Synced while it installs, as a durable batch is (a conflict writes nothing).
        if durable.get() {
            batch.flush_on_apply();
        }
        let committed = crate::tree::apply_batch_if(shared, batch, |store| {
            shared.versions.check_live(seq).is_ok()
                && !reads.iter().any(|(tree, key)| store.changed_key(*tree, key, seq))
                && !ranges.iter().any(|range| range.changed(store, seq))
        })?;
        // The snapshot stays open until the commit is decided: validation needs the
        // versions written since it.
        drop(snapshot);
        Ok(committed)
    }
}

/// An iterator over a tree's entries as a [`Transaction`] sees them, from
/// [`Transaction::range`], [`Transaction::iter`] and [`Transaction::scan_prefix`].
/// Double-ended.
pub struct TransactionIter<'t, 'db> {
    transaction: &'t Transaction<'db>,
    /// Where this iterator's walked range is in `transaction.ranges`.
    index: usize,
    snapshot: SnapshotIter,
    /// The transaction's own writes in the range when the iterator was made.
    writes: VecDeque<(Bytes, Option<Bytes>)>,
    /// The next entry from the snapshot at each end, not yet returned.
    front: Option<(Bytes, Bytes)>,
    back: Option<(Bytes, Bytes)>,
    /// Set once the snapshot iterator ran out at either end: what it has left is in
    /// `front` and `back`.
    dry: bool,
    done: bool,
}

impl fmt::Debug for TransactionIter<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionIter").field("snapshot", &self.snapshot).finish_non_exhaustive()
    }
}

impl<'t, 'db> TransactionIter<'t, 'db> {
    fn new(
        transaction: &'t Transaction<'db>,
        tree: &Tree,
        lo: Bound<Bytes>,
        hi: Bound<Bytes>,
    ) -> Self {
        let id = tree.inner.id;
        let snapshot = transaction.snapshot.range::<&[u8], _>(tree, (slices(&lo), slices(&hi)));
        let writes = transaction
            .writes
            .borrow()
            .range((id, Bytes::default())..)
            .take_while(|((tree, _), _)| *tree == id)
            .filter(|((_, key), _)| (slices(&lo), slices(&hi)).contains(&key.as_ref()))
            .map(|((_, key), (_, value))| (key.clone(), value.clone()))
            .collect();
        let mut ranges = transaction.ranges.borrow_mut();
        let index = ranges.len();
        ranges.push(ReadRange { tree: id, lo, hi, front: None, back: None, whole: false });
        // A tree of another database: the snapshot's iterator reports it as its first item.
        TransactionIter {
            transaction,
            index,
            snapshot,
            writes,
            front: None,
            back: None,
            dry: false,
            done: false,
        }
    }

    /// Notes what an end walked: up to `key`, or (`None`) all of the range.
    fn walked(&self, key: Option<&Bytes>, front: bool) {
        let mut ranges = self.transaction.ranges.borrow_mut();
        let Some(range) = ranges.get_mut(self.index) else { return };
        match key {
            None => range.whole = true,
            Some(key) if front => range.front = Some(key.clone()),
            Some(key) => range.back = Some(key.clone()),
        }
    }

    fn next_front(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        loop {
            if self.front.is_none() && !self.dry {
                match self.snapshot.next() {
                    Some(entry) => self.front = Some(entry?),
                    None => self.dry = true,
                }
            }
            let from_snapshot = if self.front.is_some() { &mut self.front } else { &mut self.back };
            let write_key = self.writes.front().map(|(key, _)| key);
            let (take_write, shadowed) = match (from_snapshot.as_ref(), write_key) {
                (None, None) => return Ok(None),
                (Some(_), None) => (false, false),
                (None, Some(_)) => (true, false),
                // The transaction's own write replaces the snapshot's entry.
                (Some((key, _)), Some(write)) => (key >= write, key == write),
            };
            if shadowed {
                *from_snapshot = None;
            }
            if !take_write {
                return Ok(from_snapshot.take());
            }
            if let Some((key, Some(value))) = self.writes.pop_front() {
                return Ok(Some((key, value)));
            }
        }
    }

    fn next_back_entry(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        loop {
            if self.back.is_none() && !self.dry {
                match self.snapshot.next_back() {
                    Some(entry) => self.back = Some(entry?),
                    None => self.dry = true,
                }
            }
            let from_snapshot = if self.back.is_some() { &mut self.back } else { &mut self.front };
            let write_key = self.writes.back().map(|(key, _)| key);
            let (take_write, shadowed) = match (from_snapshot.as_ref(), write_key) {
                (None, None) => return Ok(None),
                (Some(_), None) => (false, false),
                (None, Some(_)) => (true, false),
                // The transaction's own write replaces the snapshot's entry.
                (Some((key, _)), Some(write)) => (key <= write, key == write),
            };
            if shadowed {
                *from_snapshot = None;
            }
            if !take_write {
                return Ok(from_snapshot.take());
            }
            if let Some((key, Some(value))) = self.writes.pop_back() {
                return Ok(Some((key, value)));
            }
        }
    }
}

impl Iterator for TransactionIter<'_, '_> {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_front() {
            Ok(entry) => {
                self.walked(entry.as_ref().map(|(key, _)| key), true);
                self.done = entry.is_none();
                entry.map(Ok)
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl DoubleEndedIterator for TransactionIter<'_, '_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_back_entry() {
            Ok(entry) => {
                self.walked(entry.as_ref().map(|(key, _)| key), false);
                self.done = entry.is_none();
                entry.map(Ok)
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl Db {
    /// A [`Snapshot`]: every tree as it is now, unchanged by later writes, until dropped.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::open(self.inner.shared.clone())
    }

    /// Runs `f` as a serializable transaction over any of this database's trees, and
    /// commits what it wrote atomically (all or nothing, also across a crash). Returns what
    /// `f` returned.
    ///
    /// `f` reads from a snapshot taken when it starts, so it always sees one consistent
    /// state; its writes are kept until it returns. Nothing is locked while it runs. At
    /// commit, if another write changed something `f` read (a key, or a key inside a range
    /// it walked, inserted or removed), the commit is refused and **`f` runs again** from
    /// the start with a new snapshot, up to `Config::transaction_attempts` times. So `f`
    /// should only read and write through its [`Transaction`]; any other effect happens
    /// once per run.
    ///
    /// To give up, return `Err(TransactionError::Abort(your_error))`: nothing is written,
    /// and your error comes back unchanged. The database's errors convert with `?`.
    ///
    /// The commit follows the database's flush policy, unless `f` calls
    /// [`Transaction::flush_on_commit`]: then it is durable before this returns.
    ///
    /// # Errors
    /// [`TransactionError::Abort`] with `f`'s error; [`TransactionError::Conflict`] if it
    /// conflicted on every attempt; [`TransactionError::Storage`] for the database's errors
    /// (then nothing was written, or, for a failed flush after a commit, the commit was
    /// installed but may not be durable).
    ///
    /// # Example
    /// ```
    /// use grove_engine::TransactionError;
    ///
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// let accounts = db.open_tree("accounts")?;
    /// accounts.insert(b"ann", 10u64.to_be_bytes())?;
    /// accounts.insert(b"bob", 0u64.to_be_bytes())?;
    ///
    /// let balance = |bytes: Option<grove_engine::Bytes>| {
    ///     bytes.and_then(|b| <[u8; 8]>::try_from(&b[..]).ok()).map_or(0, u64::from_be_bytes)
    /// };
    /// let moved = db.transaction(|tx| {
    ///     let ann = balance(tx.get(&accounts, b"ann")?);
    ///     if ann < 7 {
    ///         return Err(TransactionError::Abort("not enough money"));
    ///     }
    ///     let bob = balance(tx.get(&accounts, b"bob")?);
    ///     tx.insert(&accounts, b"ann", (ann - 7).to_be_bytes())?;
    ///     tx.insert(&accounts, b"bob", (bob + 7).to_be_bytes())?;
    ///     Ok(7)
    /// });
    /// assert_eq!(moved.ok(), Some(7));
    /// assert_eq!(balance(accounts.get(b"bob")?), 7);
    ///
    /// let again = db.transaction(|tx| {
    ///     if balance(tx.get(&accounts, b"ann")?) < 7 {
    ///         return Err(TransactionError::Abort("not enough money"));
    ///     }
    ///     Ok(())
    /// });
    /// assert!(matches!(again, Err(TransactionError::Abort("not enough money"))));
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn transaction<T, E, F>(&self, mut f: F) -> std::result::Result<T, TransactionError<E>>
    where
        F: FnMut(&Transaction<'_>) -> std::result::Result<T, TransactionError<E>>,
    {
        let versions = &self.inner.shared.versions;
        let attempts = self.inner.transaction_attempts;
        for attempt in 1..=attempts {
            let transaction = Transaction::new(self);
            let conflicted = match f(&transaction) {
                Ok(value) => {
                    // A durable commit is durable once `commit` returns.
                    if transaction.commit()? {
                        versions.count_commit();
                        return Ok(value);
                    }
                    true
                }
                // The snapshot expired under the closure: run it again with a new one.
                Err(TransactionError::Storage(Error::SnapshotExpired { .. })) => true,
                Err(error) => return Err(error),
            };
            if conflicted {
                versions.count_conflict();
                back_off(attempt);
            }
        }
        Err(TransactionError::Conflict { attempts })
    }
}

/// Waits a little before attempt `attempt + 1`, longer each time, so that transactions
/// conflicting on the same keys stop colliding.
fn back_off(attempt: u32) {
    if attempt < 3 {
        sync::thread::yield_now();
    } else {
        let micros = 10u64 << attempt.min(8);
        sync::sleep(Duration::from_micros(micros));
    }
}
