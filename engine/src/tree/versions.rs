//! Old values kept for snapshots, and the order of the writes they belong to.
//!
//! A [`Snapshot`](super::Snapshot) reads the trees as they are and corrects what changed
//! since it was taken from a side table of *versions*: for each key written since then,
//! the value it had before each write (`None`: absent) and the write's sequence number.
//! The value of a key at snapshot `s` is the value before the first write numbered above
//! `s`, or, when no such write exists, the value in the tree.
//!
//! Versions cost nothing while no snapshot is open. Writers check `Versions::live`; at
//! zero they write as before, lock-free. Otherwise they *record*: they take the sequencer
//! (a mutex held from reading the values they replace to publishing their number), put
//! their versions in the table, install the write, then publish its number on the clock.
//! Publishing versions before installing is what makes reads right: a reader that sees a
//! new value in the tree finds its version afterwards.
//!
//! Opening a snapshot waits for the writers that started unrecorded to finish, so that
//! every write after the snapshot's number has its versions in the table; then, if any
//! unrecorded write started since an earlier opening last did so, it takes the sequencer,
//! so that a recording writer whose values went stale under one of those unrecorded
//! writes has tried again before the snapshot reads. (A recording writer's
//! install fails if anything changed the pages it read, so the versions of every write
//! that installs are right; only a failed attempt's can be wrong, and only while a
//! writer that skipped recording ran beside it.)
//!
//! Serializing recorded writes on the sequencer is what lets a transaction validate its
//! reads and install its writes with nothing in between (see `db/transaction.rs`). The
//! mutex is held only for the install, never while user code runs, and plain reads never
//! take it.
//!
//! Versions are dropped once no open snapshot is old enough to need them. Their bytes are
//! bounded by `Config::snapshot_memory`: past it, the oldest versions are dropped anyway,
//! and the snapshots that needed them *expire* (their reads fail with
//! [`Error::SnapshotExpired`]; a transaction retries with a new snapshot).

use std::{
    collections::{BTreeMap, VecDeque},
    ops::Bound,
};

use super::Bytes;
use crate::{
    error::{Error, Result},
    ids::TreeId,
    sync::{self, AtomicU64, Mutex, Ordering, RwLock},
};

/// A key's value before a write, and that write's number.
#[derive(Debug, Clone)]
struct Version {
    seq: u64,
    before: Option<Bytes>,
}

/// Bytes of bookkeeping counted for each version, on top of its key and value.
const VERSION_OVERHEAD: usize = 64;

/// The versions of every key written since the oldest open snapshot, by tree and key, each
/// key's in order of number.
#[derive(Debug, Default)]
pub(crate) struct Store {
    keys: BTreeMap<TreeId, BTreeMap<Bytes, Vec<Version>>>,
    /// Every version's number, tree and key, in order of number: what to drop first.
    order: VecDeque<(u64, TreeId, Bytes)>,
    /// Bytes the versions take (keys, values and `VERSION_OVERHEAD` each).
    bytes: usize,
}

impl Store {
    /// Whether any write numbered above `seq` changed `key` in `tree`.
    pub(crate) fn changed_key(&self, tree: TreeId, key: &[u8], seq: u64) -> bool {
        self.keys
            .get(&tree)
            .and_then(|keys| keys.get(key))
            .is_some_and(|versions| versions.last().is_some_and(|v| v.seq > seq))
    }

    /// Whether any write numbered above `seq` changed a key of `tree` between `lo` and `hi`.
    pub(crate) fn changed_range(
        &self,
        tree: TreeId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        seq: u64,
    ) -> bool {
        let Some(keys) = self.keys.get(&tree) else {
            return false;
        };
        if is_empty_range(lo, hi) {
            return false;
        }
        keys.range::<[u8], _>((lo, hi))
            .any(|(_, versions)| versions.last().is_some_and(|v| v.seq > seq))
    }

    /// The value `key` had at snapshot `seq`, if a later write changed it: `None` if no
    /// write numbered above `seq` did (the tree's value is right), `Some(None)` if the key
    /// was absent.
    fn at(&self, tree: TreeId, key: &[u8], seq: u64) -> Option<Option<Bytes>> {
        let versions = self.keys.get(&tree)?.get(key)?;
        versions.iter().find(|v| v.seq > seq).map(|v| v.before.clone())
    }

    /// As [`Store::at`] for every key between `lo` and `hi` that a write numbered above
    /// `seq` changed, in key order.
    fn span(
        &self,
        tree: TreeId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        seq: u64,
    ) -> Vec<(Bytes, Option<Bytes>)> {
        let Some(keys) = self.keys.get(&tree) else {
            return Vec::new();
        };
        if is_empty_range(lo, hi) {
            return Vec::new();
        }
        keys.range::<[u8], _>((lo, hi))
            .filter_map(|(key, versions)| {
                let first = versions.iter().find(|v| v.seq > seq)?;
                Some((key.clone(), first.before.clone()))
            })
            .collect()
    }

    fn push(&mut self, tree: TreeId, key: Bytes, version: Version) {
        self.bytes += cost(&key, version.before.as_ref());
        self.order.push_back((version.seq, tree, key.clone()));
        self.keys.entry(tree).or_default().entry(key).or_default().push(version);
    }

    /// Drops the oldest version, if there is one; returns its number.
    fn pop_oldest(&mut self) -> Option<u64> {
        let (seq, tree, key) = self.order.pop_front()?;
        if let Some(keys) = self.keys.get_mut(&tree)
            && let Some(versions) = keys.get_mut(&key)
        {
            // A key's versions are in order, so the oldest is its first.
            if versions.first().is_some_and(|v| v.seq == seq) {
                let version = versions.remove(0);
                self.bytes -= cost(&key, version.before.as_ref());
            }
            if versions.is_empty() {
                keys.remove(&key);
            }
            if keys.is_empty() {
                self.keys.remove(&tree);
            }
        }
        Some(seq)
    }

    /// Takes back the versions numbered `seq` of the given keys (a write that was not
    /// installed): the newest of each key, and the newest in `order`.
    fn retract(&mut self, seq: u64, keys: &[(TreeId, Bytes)]) {
        for (tree, key) in keys.iter().rev() {
            if self.order.back().is_some_and(|(s, ..)| *s == seq) {
                self.order.pop_back();
            }
            let Some(tree_keys) = self.keys.get_mut(tree) else { continue };
            let Some(versions) = tree_keys.get_mut(key) else { continue };
            if versions.last().is_some_and(|v| v.seq == seq)
                && let Some(version) = versions.pop()
            {
                self.bytes -= cost(key, version.before.as_ref());
            }
            if versions.is_empty() {
                tree_keys.remove(key);
            }
            if tree_keys.is_empty() {
                self.keys.remove(tree);
            }
        }
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn cost(key: &[u8], before: Option<&Bytes>) -> usize {
    key.len() + before.map_or(0, |b| b.len()) + VERSION_OVERHEAD
}

/// Whether `lo..hi` holds no key (`BTreeMap::range` panics on such bounds).
fn is_empty_range(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(lo), Bound::Included(hi)) => lo > hi,
        (Bound::Included(lo) | Bound::Excluded(lo), Bound::Excluded(hi))
        | (Bound::Excluded(lo), Bound::Included(hi)) => lo >= hi,
    }
}

/// Snapshots, the old values kept for them, and transactions, as
/// [`DbStats::versions`](crate::DbStats::versions) reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionStats {
    /// Snapshots open now, transactions' included.
    pub open_snapshots: u64,
    /// Old values kept for them.
    pub versions: u64,
    /// Bytes those old values take in memory (keys, values and bookkeeping). Versions are
    /// never written to disk.
    pub version_bytes: u64,
    /// The most `version_bytes` may reach before the oldest snapshots expire
    /// (`Config::snapshot_memory`).
    pub version_bytes_limit: u64,
    /// Snapshots that expired since the database was opened.
    pub expired_snapshots: u64,
    /// Transactions committed since the database was opened (read-only ones included).
    pub commits: u64,
    /// Transaction attempts that found a conflict and ran again.
    pub conflicts: u64,
}

/// The versions, the sequencer and the open snapshots of one database. See the module
/// docs.
#[derive(Debug)]
pub(crate) struct Versions {
    /// Open snapshots. Incremented by `open` before it waits for unrecorded writers,
    /// decremented by `close`; writers read it to choose whether to record.
    live: AtomicU64,
    /// Writers that found `live` at zero and write without recording. Each increments it,
    /// checks `live`, and decrements it when done (at once if it must record after all).
    unrecorded: AtomicU64,
    /// Unrecorded writes started since the database opened. Incremented by each, once it
    /// is sure to write unrecorded.
    unrecorded_starts: AtomicU64,
    /// The value of `unrecorded_starts` that the last `open` to take the sequencer had
    /// waited out: no recording attempt can have read values that those writes made
    /// stale and still be running. Written under `sequencer`.
    settled: AtomicU64,
    /// Held by every recording writer, from reading the values it replaces to publishing
    /// its number.
    sequencer: Mutex<()>,
    /// The number of the last recorded write that installed. Written under `sequencer`,
    /// only grows.
    clock: AtomicU64,
    /// Snapshots numbered below this have lost versions they need. Written under
    /// `snapshots` and the store's write lock, only grows.
    expired_below: AtomicU64,
    store: RwLock<Store>,
    /// The open snapshots' numbers, with how many are open at each.
    snapshots: Mutex<BTreeMap<u64, u64>>,
    /// `Config::snapshot_memory`.
    limit: usize,
    expired: AtomicU64,
    commits: AtomicU64,
    conflicts: AtomicU64,
}

/// One attempt of a write: it stages the values its keys have before it, publishes them
/// just before installing, and takes them back if the install did not happen.
#[derive(Debug)]
pub(crate) struct Recorder<'v> {
    /// `None` when no snapshot is open: nothing is recorded.
    versions: Option<&'v Versions>,
    seq: u64,
    staged: Vec<(TreeId, Bytes, Option<Bytes>)>,
    published: Vec<(TreeId, Bytes)>,
}

impl Recorder<'_> {
    /// Notes that `key` of `tree` has value `before` (`None`: absent) until this write.
    pub(crate) fn stage(&mut self, tree: TreeId, key: &[u8], before: Option<&Bytes>) {
        if self.versions.is_some() {
            self.staged.push((tree, Bytes::copy_from(key), before.cloned()));
        }
    }

    /// Whether this write records versions (a snapshot is open).
    pub(crate) fn records(&self) -> bool {
        self.versions.is_some()
    }

    /// Puts the staged versions in the table: call it just before installing the write.
    pub(crate) fn publish(&mut self) {
        let Some(versions) = self.versions else { return };
        if self.staged.is_empty() {
            return;
        }
        let mut store = sync::write(&versions.store);
        for (tree, key, before) in self.staged.drain(..) {
            self.published.push((tree, key.clone()));
            store.push(tree, key, Version { seq: self.seq, before });
        }
    }

    /// Takes back what `publish` put in the table and forgets what was staged: the
    /// install did not happen.
    fn retract(&mut self) {
        self.staged.clear();
        let Some(versions) = self.versions else { return };
        if self.published.is_empty() {
            return;
        }
        sync::write(&versions.store).retract(self.seq, &self.published);
        self.published.clear();
    }
}

/// Decrements `Versions::unrecorded` when an unrecorded write ends, even by panic.
struct Unrecorded<'v>(&'v Versions);

impl Drop for Unrecorded<'_> {
    fn drop(&mut self) {
        self.0.unrecorded.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Versions {
    pub(crate) fn new(limit: usize) -> Versions {
        Versions {
            live: AtomicU64::new(0),
            unrecorded: AtomicU64::new(0),
            unrecorded_starts: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            sequencer: Mutex::new(()),
            clock: AtomicU64::new(0),
            expired_below: AtomicU64::new(0),
            store: RwLock::new(Store::default()),
            snapshots: Mutex::new(BTreeMap::new()),
            limit,
            expired: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        }
    }

    /// Runs a write. `attempt` makes one try with the [`Recorder`] it is given: `Ok(None)`
    /// to try again (the tree changed under it), `Ok(Some(_))` once installed.
    ///
    /// When a snapshot is open the write records, and `validate` runs first, under the
    /// sequencer: if it returns `false`, nothing is written and this returns `Ok(None)`.
    /// Only a caller that holds a snapshot itself may rely on `validate` running (without
    /// one, the write may not record).
    ///
    /// # Errors
    /// What `attempt` returns; then nothing was installed.
    pub(crate) fn write<T>(
        &self,
        validate: impl FnOnce(&Store) -> bool,
        mut attempt: impl FnMut(&mut Recorder<'_>) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        // With a snapshot open, record. Otherwise announce an unrecorded write, then check
        // again: a snapshot opening meanwhile either sees the announcement (and waits for
        // this write) or is seen here. The second check and the opener's look at the
        // announcements are read-modify-writes, not loads: each then reads the latest value
        // of its counter, which is what makes one of the two see the other (with plain
        // loads that takes sequential consistency, which loom does not model).
        let unrecorded = (self.live.load(Ordering::SeqCst) == 0).then(|| {
            self.unrecorded.fetch_add(1, Ordering::SeqCst);
            Unrecorded(self)
        });
        if let Some(unrecorded) = unrecorded
            && self.live.fetch_add(0, Ordering::SeqCst) == 0
        {
            self.unrecorded_starts.fetch_add(1, Ordering::SeqCst);
            loop {
                let mut recorder =
                    Recorder { versions: None, seq: 0, staged: Vec::new(), published: Vec::new() };
                if let Some(done) = attempt(&mut recorder)? {
                    drop(unrecorded);
                    return Ok(Some(done));
                }
            }
        }

        let sequencer = sync::lock(&self.sequencer);
        if !validate(&sync::read(&self.store)) {
            return Ok(None);
        }
        let seq = self.clock.load(Ordering::Acquire) + 1;
        let done = loop {
            let mut recorder =
                Recorder { versions: Some(self), seq, staged: Vec::new(), published: Vec::new() };
            match attempt(&mut recorder) {
                Ok(Some(done)) => {
                    if !recorder.published.is_empty() {
                        self.clock.store(seq, Ordering::Release);
                    }
                    break done;
                }
                Ok(None) => recorder.retract(),
                Err(error) => {
                    recorder.retract();
                    return Err(error);
                }
            }
        };
        self.collect();
        drop(sequencer);
        Ok(Some(done))
    }

    /// Opens a snapshot: returns its number. Every write numbered at or below it is
    /// installed; every later one records its versions.
    pub(crate) fn open(&self) -> u64 {
        self.live.fetch_add(1, Ordering::SeqCst);
        // Writers that started before they could see `live` finish unrecorded; wait for
        // them, so that no unrecorded write lands after the snapshot's number.
        // A read-modify-write first (see `write`), loads while waiting.
        let mut announced = self.unrecorded.fetch_add(0, Ordering::SeqCst);
        while announced != 0 {
            sync::thread::yield_now();
            announced = self.unrecorded.load(Ordering::SeqCst);
        }
        // A recording writer that read the values it replaces before one of those
        // unrecorded writes changed them will fail to install and try again, but its
        // versions, with those stale values, are in the table meanwhile. No snapshot has
        // an interest in them while none is open; this one must not see them, so it waits
        // for the writer holding the sequencer to finish. Unless no unrecorded write
        // started since an earlier `open` did the same: then no attempt can be stale.
        let started = self.unrecorded_starts.load(Ordering::SeqCst);
        if started > self.settled.load(Ordering::SeqCst) {
            let _sequencer = sync::lock(&self.sequencer);
            self.settled.fetch_max(started, Ordering::SeqCst);
        }
        let mut snapshots = sync::lock(&self.snapshots);
        let seq = self.clock.load(Ordering::Acquire);
        *snapshots.entry(seq).or_default() += 1;
        seq
    }

    /// Closes a snapshot opened at `seq`, dropping the versions only it needed.
    pub(crate) fn close(&self, seq: u64) {
        {
            let mut snapshots = sync::lock(&self.snapshots);
            if let Some(count) = snapshots.get_mut(&seq) {
                *count -= 1;
                if *count == 0 {
                    snapshots.remove(&seq);
                }
            }
        }
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.collect();
    }

    /// Drops the versions no open snapshot needs, then, while they take more than the
    /// limit, the oldest ones, expiring the snapshots that needed them.
    fn collect(&self) {
        let snapshots = sync::lock(&self.snapshots);
        let oldest = snapshots
            .keys()
            .copied()
            .find(|&seq| seq >= self.expired_below.load(Ordering::Acquire));
        let needed_above = oldest.unwrap_or_else(|| self.clock.load(Ordering::Acquire));
        {
            let store = sync::read(&self.store);
            let front = store.order.front().map(|(seq, ..)| *seq);
            if front.is_none_or(|seq| seq > needed_above) && store.bytes <= self.limit {
                return;
            }
        }
        let mut store = sync::write(&self.store);
        while store.order.front().is_some_and(|(seq, ..)| *seq <= needed_above) {
            store.pop_oldest();
        }
        if store.bytes <= self.limit {
            return;
        }
        // Over the limit: drop the oldest until a quarter of it is free again.
        let mut last = 0;
        while store.bytes > self.limit - self.limit / 4 {
            match store.pop_oldest() {
                Some(seq) => last = seq,
                None => break,
            }
        }
        // Snapshots below `last` needed what was dropped (a snapshot at `last` or above
        // reads only versions numbered above it).
        let before = self.expired_below.load(Ordering::Acquire);
        if last > before {
            let expired: u64 = snapshots.range(before..last).map(|(_, count)| count).sum();
            self.expired.fetch_add(expired, Ordering::Relaxed);
            self.expired_below.store(last, Ordering::Release);
        }
    }

    /// The value of `key` in `tree` at snapshot `seq`, given `current`, its value in the
    /// tree read just before.
    ///
    /// # Errors
    /// [`Error::SnapshotExpired`] if the snapshot expired.
    pub(crate) fn value_at(
        &self,
        seq: u64,
        tree: TreeId,
        key: &[u8],
        current: Option<Bytes>,
    ) -> Result<Option<Bytes>> {
        let store = sync::read(&self.store);
        self.check_live(seq)?;
        Ok(store.at(tree, key, seq).unwrap_or(current))
    }

    /// The keys between `lo` and `hi` that changed after snapshot `seq`, with their values
    /// at it (`None`: absent), in key order.
    ///
    /// # Errors
    /// [`Error::SnapshotExpired`] if the snapshot expired.
    pub(crate) fn changes(
        &self,
        seq: u64,
        tree: TreeId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Bytes, Option<Bytes>)>> {
        let store = sync::read(&self.store);
        self.check_live(seq)?;
        Ok(store.span(tree, lo, hi, seq))
    }

    /// [`Error::SnapshotExpired`] if snapshot `seq` expired.
    pub(crate) fn check_live(&self, seq: u64) -> Result<()> {
        if seq < self.expired_below.load(Ordering::Acquire) {
            return Err(Error::SnapshotExpired { limit: to_u64(self.limit) });
        }
        Ok(())
    }

    /// Counts a committed transaction.
    pub(crate) fn count_commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a transaction attempt that conflicted.
    pub(crate) fn count_conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> VersionStats {
        let (versions, version_bytes) = {
            let store = sync::read(&self.store);
            (to_u64(store.order.len()), to_u64(store.bytes))
        };
        VersionStats {
            open_snapshots: self.live.load(Ordering::Relaxed),
            versions,
            version_bytes,
            version_bytes_limit: to_u64(self.limit),
            expired_snapshots: self.expired.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
        }
    }
}
