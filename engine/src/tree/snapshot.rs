//! [`Snapshot`]: every tree of a database as it was at one moment.
//!
//! A snapshot reads the trees as they are now and corrects each key that changed since it
//! was taken from the old values in [`super::Versions`]. A range read merges the tree's
//! entries with those old values, end by end: after the tree hands an end its next key, the
//! end asks for the keys that changed between its last key and that one. Asking after the
//! tree read is what makes it right: any write the tree read saw had published its old
//! values before installing.

use std::{
    collections::VecDeque,
    fmt,
    ops::{Bound, RangeBounds},
    sync::Arc,
};

use super::{Bytes, Iter, Shared, Tree, bytes::slices, handle::prefix_end};
use crate::error::{Error, Result};

/// A read-only view of every tree of one database at the moment it was taken, from
/// [`Db::snapshot`](crate::Db::snapshot). It stays the same while writers go on: each read
/// sees exactly the writes (and whole batches and transactions) made before it was taken.
///
/// Reads take no lock and never wait for writers. While a snapshot is open, writers keep
/// the old values it may need in memory (never on disk); closing it (dropping every
/// clone) frees them. Their memory is bounded by `Config::snapshot_memory`: a snapshot
/// that would need more *expires*, and its reads fail with [`Error::SnapshotExpired`].
/// Keep snapshots for as long as a read needs them, not for the life of the program.
///
/// `Snapshot` is cheap to clone, `Send` and `Sync`.
///
/// # Example
/// ```
/// let db = grove_engine::Config::new().temporary(true).open()?;
/// let accounts = db.open_tree("accounts")?;
/// accounts.insert(b"ann", b"10")?;
/// let before = db.snapshot();
/// accounts.insert(b"ann", b"20")?;
/// accounts.insert(b"bob", b"5")?;
/// assert_eq!(before.get(&accounts, b"ann")?.as_deref(), Some(&b"10"[..]));
/// assert_eq!(before.iter(&accounts).count(), 1);
/// assert_eq!(accounts.iter().count(), 2);
/// # Ok::<(), grove_engine::Error>(())
/// ```
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<SnapshotInner>,
}

struct SnapshotInner {
    shared: Arc<Shared>,
    /// Sees every write numbered up to this, none above.
    seq: u64,
}

impl Drop for SnapshotInner {
    fn drop(&mut self) {
        self.shared.versions.close(self.seq);
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.inner.seq).finish_non_exhaustive()
    }
}

impl Snapshot {
    pub(crate) fn open(shared: Arc<Shared>) -> Snapshot {
        let seq = shared.versions.open();
        Snapshot { inner: Arc::new(SnapshotInner { shared, seq }) }
    }

    /// The number of the last write this snapshot sees.
    pub(crate) fn seq(&self) -> u64 {
        self.inner.seq
    }

    /// [`Error::Config`] if `tree` belongs to another database.
    fn check(&self, tree: &Tree) -> Result<()> {
        if Arc::ptr_eq(&tree.inner.shared, &self.inner.shared) {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "tree {:?} belongs to another database than this snapshot",
                String::from_utf8_lossy(&tree.inner.name)
            )))
        }
    }

    /// The value `key` had in `tree` when the snapshot was taken.
    ///
    /// # Errors
    /// As [`Tree::get`]; [`Error::SnapshotExpired`] if the snapshot expired;
    /// [`Error::Config`] for a tree of another database.
    pub fn get(&self, tree: &Tree, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.check(tree)?;
        let key = key.as_ref();
        let current = match tree.get(key) {
            Ok(current) => current,
            // A tree dropped since: its entries at the snapshot are all in the versions.
            Err(Error::TreeDropped { .. }) => None,
            Err(error) => return Err(error),
        };
        self.inner.shared.versions.value_at(self.inner.seq, tree.inner.id, key, current)
    }

    /// Whether `key` was in `tree` when the snapshot was taken.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    pub fn contains_key(&self, tree: &Tree, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.get(tree, key)?.is_some())
    }

    /// The entries of `tree` whose keys lay in `range` when the snapshot was taken, in key
    /// order; double-ended.
    pub fn range<K, R>(&self, tree: &Tree, range: R) -> SnapshotIter
    where
        K: AsRef<[u8]>,
        R: RangeBounds<K>,
    {
        let own = |bound: Bound<&K>| bound.map(|k| k.as_ref().to_vec());
        SnapshotIter::new(self.clone(), tree, own(range.start_bound()), own(range.end_bound()))
    }

    /// Every entry `tree` had when the snapshot was taken, in key order; double-ended.
    pub fn iter(&self, tree: &Tree) -> SnapshotIter {
        self.range::<&[u8], _>(tree, ..)
    }

    /// The entries of `tree` whose keys started with `prefix` when the snapshot was taken.
    pub fn scan_prefix(&self, tree: &Tree, prefix: impl AsRef<[u8]>) -> SnapshotIter {
        let prefix = prefix.as_ref().to_vec();
        let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        SnapshotIter::new(self.clone(), tree, Bound::Included(prefix), end)
    }

    /// The entry of `tree` with the smallest key when the snapshot was taken.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    pub fn first(&self, tree: &Tree) -> Result<Option<(Bytes, Bytes)>> {
        self.iter(tree).next().transpose()
    }

    /// The entry of `tree` with the largest key when the snapshot was taken.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    pub fn last(&self, tree: &Tree) -> Result<Option<(Bytes, Bytes)>> {
        self.iter(tree).next_back().transpose()
    }
}

/// An iterator over a tree's entries as they were when a [`Snapshot`] was taken, in key
/// order; double-ended. From [`Snapshot::range`], [`Snapshot::iter`] and
/// [`Snapshot::scan_prefix`]. It keeps its snapshot open.
#[derive(Debug)]
pub struct SnapshotIter {
    snapshot: Snapshot,
    tree: Tree,
    /// The tree as it is now, over the same range.
    now: Iter,
    /// Keys up to this bound are merged into `front` (or returned).
    lo: Bound<Bytes>,
    /// Keys from this bound on are merged into `back` (or returned).
    hi: Bound<Bytes>,
    /// Merged by the front, not yet returned, in key order.
    front: VecDeque<(Bytes, Bytes)>,
    /// Merged by the back, not yet returned, in key order.
    back: VecDeque<(Bytes, Bytes)>,
    /// Once the tree ran dry: the old values between the two ends, in key order.
    gap: Option<VecDeque<(Bytes, Bytes)>>,
    /// Set after an error, or if the tree belongs to another database: the iterator ends.
    failed: Option<Error>,
    done: bool,
}

impl SnapshotIter {
    fn new(snapshot: Snapshot, tree: &Tree, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Self {
        let failed = snapshot.check(tree).err();
        let now = Iter::new(tree.clone(), lo.clone(), hi.clone());
        SnapshotIter {
            snapshot,
            tree: tree.clone(),
            now,
            lo: lo.map(Bytes::from),
            hi: hi.map(Bytes::from),
            front: VecDeque::new(),
            back: VecDeque::new(),
            gap: None,
            failed,
            done: false,
        }
    }

    /// The keys that changed after the snapshot between `lo` and `hi`, with their values
    /// at it.
    fn changes(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Vec<(Bytes, Option<Bytes>)>> {
        let snapshot = &self.snapshot.inner;
        snapshot.shared.versions.changes(snapshot.seq, self.tree.inner.id, lo, hi)
    }

    /// Merges the front's next entry from the tree (`key`, `value`) with what changed since
    /// the snapshot up to it; `false` if the tree has none left.
    fn fill_front(&mut self) -> Result<bool> {
        let (key, value) = match self.now.next() {
            Some(Ok(entry)) => entry,
            // A tree dropped since: its entries at the snapshot are all in the versions.
            None | Some(Err(Error::TreeDropped { .. })) => {
                return self.fill_gap().map(|()| false);
            }
            Some(Err(error)) => return Err(error),
        };
        let changes = self.changes(slices(&self.lo), Bound::Included(&key))?;
        let mut replaced = false;
        for (changed, before) in changes {
            replaced |= changed == key;
            if let Some(before) = before {
                self.front.push_back((changed, before));
            }
        }
        if !replaced {
            self.front.push_back((key.clone(), value));
        }
        self.lo = Bound::Excluded(key);
        Ok(true)
    }

    /// As [`SnapshotIter::fill_front`], from the back.
    fn fill_back(&mut self) -> Result<bool> {
        let (key, value) = match self.now.next_back() {
            Some(Ok(entry)) => entry,
            // A tree dropped since: its entries at the snapshot are all in the versions.
            None | Some(Err(Error::TreeDropped { .. })) => {
                return self.fill_gap().map(|()| false);
            }
            Some(Err(error)) => return Err(error),
        };
        let changes = self.changes(Bound::Included(&key), slices(&self.hi))?;
        let mut merged = VecDeque::new();
        let mut replaced = false;
        for (changed, before) in changes {
            replaced |= changed == key;
            if let Some(before) = before {
                merged.push_back((changed, before));
            }
        }
        if !replaced {
            merged.push_front((key.clone(), value));
        }
        self.back = merged;
        self.hi = Bound::Excluded(key);
        Ok(true)
    }

    /// Once the tree has nothing left between the two ends, takes the old values of the
    /// keys between them (removed since the snapshot).
    fn fill_gap(&mut self) -> Result<()> {
        if self.gap.is_some() {
            return Ok(());
        }
        let changes = self.changes(slices(&self.lo), slices(&self.hi))?;
        let gap = changes.into_iter().filter_map(|(key, before)| Some((key, before?))).collect();
        self.gap = Some(gap);
        Ok(())
    }

    fn fail(&mut self, error: Error) -> Option<Result<(Bytes, Bytes)>> {
        self.done = true;
        Some(Err(error))
    }
}

impl Iterator for SnapshotIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(error) = self.failed.take() {
            return self.fail(error);
        }
        loop {
            if let Some(entry) = self.front.pop_front() {
                return Some(Ok(entry));
            }
            if let Some(gap) = &mut self.gap {
                return gap.pop_front().or_else(|| self.back.pop_front()).map(Ok);
            }
            match self.fill_front() {
                Ok(_) => {}
                Err(error) => return self.fail(error),
            }
        }
    }
}

impl DoubleEndedIterator for SnapshotIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(error) = self.failed.take() {
            return self.fail(error);
        }
        loop {
            if let Some(entry) = self.back.pop_back() {
                return Some(Ok(entry));
            }
            if let Some(gap) = &mut self.gap {
                return gap.pop_back().or_else(|| self.front.pop_back()).map(Ok);
            }
            match self.fill_back() {
                Ok(_) => {}
                Err(error) => return self.fail(error),
            }
        }
    }
}
