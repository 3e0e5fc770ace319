//! [`Tree`]: an ordered map from byte strings to byte strings, and its operations.

use std::{collections::HashMap, fmt, ops::RangeBounds, sync::Arc};

use super::{
    Batch, Bytes, Subscriptions, blob,
    iter::Iter,
    node::{self, Entry, Node, NodeRef, Value, ValueRef},
    plan::{Plan, count_change},
    versions::Versions,
    walk::{self, Finger, LeafAt, Target, TreePage},
};
use crate::{
    error::{Error, Result},
    ids::{PageId, TreeId},
    pagecache::{Change, GroupOutcome, GroupUpdate, PageCache, PageView, Weigh},
    sync::{AtomicUsize, epoch},
};

/// The catalog tree's id (its root is page 0).
const CATALOG: TreeId = TreeId(0);

/// A value stored out of line: its page, and the version of the page that was read.
pub(crate) type ValuePage = (PageId, u64);

/// The value a write replaces (`None`: the key is absent), with its page if it is stored out
/// of line.
pub(crate) type Current = (Option<Bytes>, Option<ValuePage>);

/// The value a write replaces, as its descent found it.
pub(crate) struct Replaced {
    /// The value's length; `None`: the key is absent.
    pub(crate) len: Option<usize>,
    /// The value itself, if the descent was asked to copy it.
    pub(crate) value: Option<Bytes>,
    /// Its page, if it is stored out of line.
    pub(crate) blob: Option<ValuePage>,
}

/// What every tree of one database shares.
pub(crate) struct Shared {
    pub(crate) cache: PageCache,
    /// Nodes are split when they would grow past this many bytes.
    pub(crate) node_bytes: usize,
    /// Values longer than this are stored in a page of their own (`blob.rs`).
    pub(crate) blob_threshold: usize,
    /// Merge operators by tree name (`Config::merge_operator`).
    pub(crate) merge_operators: HashMap<Bytes, MergeOperator>,
    /// Every `watch_prefix` subscription.
    pub(crate) subscriptions: Arc<Subscriptions>,
    /// Old values for snapshots, and the sequencer of the writes that record them.
    pub(crate) versions: Versions,
    /// How many batches are being applied. Owner: `batch::apply_batch_if`, which adds one
    /// while it runs and takes it away when it ends (`batch::Applying`); a batch descends
    /// on a second thread only when it found none other (`batch.rs`).
    pub(crate) batches: AtomicUsize,
}

/// A merge operator: given the key, its current value (`None`: absent) and the operand
/// passed to [`Tree::merge`], returns the new value (`None`: remove the key). It may run
/// more than once for one merge, when other writers change the key meanwhile, so it must
/// not have side effects.
pub type MergeOperator =
    Arc<dyn Fn(&[u8], Option<&[u8]>, &[u8]) -> Option<Vec<u8>> + Send + Sync + 'static>;

/// An ordered map from byte strings to byte strings, stored in the database's pages.
///
/// Keys are ordered by their bytes (lexicographically, as `[u8]` compares). Reads take no
/// lock; writes are compare-and-swaps on the page of the leaf they change, and splits are
/// installed atomically with their parent, so the tree is never half split.
///
/// `Tree` is a handle: cheap to clone, `Send` and `Sync`. Get one from
/// [`Db::open_tree`](crate::Db::open_tree); the [`Db`](crate::Db) itself dereferences to
/// its default tree.
///
/// # Durability
/// A write is durable once a [`Tree::flush`] (or [`Db::flush`](crate::Db::flush)) that
/// started after it returns, and within the database's `flush_every_ms` in any case.
#[derive(Clone)]
pub struct Tree {
    pub(crate) inner: Arc<TreeInner>,
}

pub(crate) struct TreeInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: TreeId,
    pub(crate) root: PageId,
    pub(crate) name: Bytes,
}

impl Shared {
    /// About what a fragment holds for a value of `len` bytes, for sizing a plan: the value
    /// itself, or no more than the threshold once it goes to a page of its own and the
    /// fragment names that page.
    pub(crate) fn inline_len(&self, len: usize) -> usize {
        len.min(self.blob_threshold)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("node_bytes", &self.node_bytes)
            .field("blob_threshold", &self.blob_threshold)
            .field("merge_operators", &self.merge_operators.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("name", &self.inner.name)
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// The current value did not match the expected one: what
/// [`Tree::compare_and_swap`] returns instead of swapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareAndSwapError {
    /// The value the key has now (`None`: absent).
    pub current: Option<Bytes>,
    /// The value that was not written.
    pub proposed: Option<Bytes>,
}

impl fmt::Display for CompareAndSwapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "compare and swap failed: the current value is {:?}", self.current)
    }
}

impl std::error::Error for CompareAndSwapError {}

impl Tree {
    pub(crate) fn new(shared: Arc<Shared>, id: TreeId, root: PageId, name: Bytes) -> Tree {
        Tree { inner: Arc::new(TreeInner { shared, id, root, name }) }
    }

    pub(crate) fn cache(&self) -> &PageCache {
        &self.inner.shared.cache
    }

    pub(crate) fn id(&self) -> TreeId {
        self.inner.id
    }

    /// The tree's name.
    pub fn name(&self) -> Bytes {
        self.inner.name.clone()
    }

    /// The value of `key`, if present.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a page read is damaged; [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// db.insert(b"k", b"v")?;
    /// assert_eq!(db.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert_eq!(db.get(b"other")?, None);
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.get_with(key, Bytes::copy_from)
    }

    /// Calls `f` with the value of `key` where it is stored, and returns what `f` returns
    /// (`None` if the key is absent). Unlike [`Tree::get`], nothing is copied or allocated:
    /// decode or compare the value in place.
    ///
    /// `f` runs while the pages it reads are pinned in memory. That is an epoch, not a lock:
    /// no writer waits for `f`, but memory the tree replaces meanwhile is freed only after
    /// `f` returns. Keep `f` short, and copy out what you keep.
    ///
    /// # Errors
    /// As [`Tree::get`].
    ///
    /// # Example
    /// ```
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// db.insert(b"k", b"value")?;
    /// assert_eq!(db.get_with(b"k", |value| value.len())?, Some(5));
    /// assert_eq!(db.get_with(b"other", |value| value.len())?, None);
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn get_with<R>(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        let key = key.as_ref();
        loop {
            let guard = epoch::pin();
            let leaf = self.descend_view(Target::Key(key), &guard)?;
            let Some(value) = walk::lookup_in(&leaf, key)? else {
                return Ok(None);
            };
            // `None`: the value moved while we read it; read the leaf again.
            if let Some(bytes) = self.value_in(key, value, &guard)? {
                return Ok(Some(f(bytes)));
            }
        }
    }

    /// Whether `key` is present.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        let guard = epoch::pin();
        Ok(walk::lookup_in(&self.descend_view(Target::Key(key), &guard)?, key)?.is_some())
    }

    /// Sets `key` to `value`; returns the previous value.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] if the key and value do not fit in a page; the log's
    /// errors ([`Error::LogFailed`]); as [`Tree::get`].
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let value = value.as_ref();
        let (old, _) = self.modify(key.as_ref(), |_| Some(value))?;
        Ok(old)
    }

    /// Removes `key`; returns its value if it was present.
    ///
    /// # Errors
    /// As [`Tree::insert`].
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let (old, _) = self.modify(key.as_ref(), |_| None::<&[u8]>)?;
        Ok(old)
    }

    /// Sets `key` to `new` (`None`: removes it) if its value is `old` (`None`: absent).
    /// The outer `Result` is for errors; the inner one says whether the swap happened.
    ///
    /// # Errors
    /// As [`Tree::insert`].
    ///
    /// # Example
    /// ```
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// assert!(db.compare_and_swap(b"k", None::<&[u8]>, Some(b"1"))?.is_ok());
    /// let failed = db.compare_and_swap(b"k", None::<&[u8]>, Some(b"2"))?.unwrap_err();
    /// assert_eq!(failed.current.as_deref(), Some(&b"1"[..]));
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn compare_and_swap<O, N>(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<O>,
        new: Option<N>,
    ) -> Result<Result<(), CompareAndSwapError>>
    where
        O: AsRef<[u8]>,
        N: AsRef<[u8]>,
    {
        let old = old.as_ref().map(AsRef::as_ref);
        let new = new.as_ref().map(|n| n.as_ref().to_vec());
        let mut matched = false;
        let (current, _) = self.modify_if(key.as_ref(), |current| {
            matched = current.map(|c| &**c) == old;
            matched.then(|| new.clone())
        })?;
        if matched {
            Ok(Ok(()))
        } else {
            Ok(Err(CompareAndSwapError { current, proposed: new.map(Bytes::from) }))
        }
    }

    /// Sets `key` to `f(current value)` (`None` in or out: absent) and returns the new
    /// value. `f` may run more than once if other writers change the key meanwhile.
    ///
    /// # Errors
    /// As [`Tree::insert`].
    pub fn update_and_fetch<F>(&self, key: impl AsRef<[u8]>, mut f: F) -> Result<Option<Bytes>>
    where
        F: FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        let (_, new) = self.modify(key.as_ref(), |current| f(current.map(|c| &**c)))?;
        Ok(new.map(Bytes::from))
    }

    /// As [`Tree::update_and_fetch`], but returns the value before the update.
    ///
    /// # Errors
    /// As [`Tree::insert`].
    pub fn fetch_and_update<F>(&self, key: impl AsRef<[u8]>, mut f: F) -> Result<Option<Bytes>>
    where
        F: FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        let (old, _) = self.modify(key.as_ref(), |current| f(current.map(|c| &**c)))?;
        Ok(old)
    }

    /// Combines `operand` into `key`'s value with the merge operator registered for this
    /// tree when the database was opened ([`Config::merge_operator`](crate::Config::merge_operator)),
    /// atomically; returns the new value.
    ///
    /// # Errors
    /// [`Error::NoMergeOperator`] if the tree has none; as [`Tree::insert`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    ///
    /// let add = |_key: &[u8], old: Option<&[u8]>, operand: &[u8]| {
    ///     let old = old.map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap_or([0; 8])));
    ///     let operand = u64::from_le_bytes(operand.try_into().unwrap_or([0; 8]));
    ///     Some((old + operand).to_le_bytes().to_vec())
    /// };
    /// let db = grove_engine::Config::new()
    ///     .temporary(true)
    ///     .merge_operator("counters", Arc::new(add))
    ///     .open()?;
    /// let counters = db.open_tree("counters")?;
    /// counters.merge(b"visits", 2u64.to_le_bytes())?;
    /// let total = counters.merge(b"visits", 3u64.to_le_bytes())?;
    /// assert_eq!(total.as_deref(), Some(&5u64.to_le_bytes()[..]));
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn merge(&self, key: impl AsRef<[u8]>, operand: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let Some(operator) = self.inner.shared.merge_operators.get(&self.inner.name) else {
            return Err(Error::NoMergeOperator {
                tree: String::from_utf8_lossy(&self.inner.name).into_owned(),
            });
        };
        let (key, operand) = (key.as_ref(), operand.as_ref());
        let (_, new) = self.modify(key, |current| operator(key, current.map(|c| &**c), operand))?;
        Ok(new.map(Bytes::from))
    }

    /// Every entry, in key order; double-ended.
    pub fn iter(&self) -> Iter {
        self.range::<&[u8], _>(..)
    }

    /// The entries whose keys lie in `range`, in key order; double-ended.
    ///
    /// # Example
    /// ```
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// for key in [b"a", b"b", b"c", b"d"] {
    ///     db.insert(key, b"")?;
    /// }
    /// let keys: Vec<_> = db.range(&b"b"[..]..&b"d"[..]).map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(keys, [b"b", b"c"]);
    /// let last = db.range(&b"b"[..]..).next_back().transpose()?;
    /// assert_eq!(last.map(|(k, _)| k), Some(b"d".into()));
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn range<K, R>(&self, range: R) -> Iter
    where
        K: AsRef<[u8]>,
        R: RangeBounds<K>,
    {
        let own = |bound: std::ops::Bound<&K>| bound.map(|k| k.as_ref().to_vec());
        Iter::new(self.clone(), own(range.start_bound()), own(range.end_bound()))
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        let prefix = prefix.as_ref().to_vec();
        let end = prefix_end(&prefix);
        let start = std::ops::Bound::Included(prefix);
        Iter::new(
            self.clone(),
            start,
            end.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
        )
    }

    /// The entry with the smallest key.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn first(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.iter().next().transpose()
    }

    /// The entry with the largest key.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn last(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.iter().next_back().transpose()
    }

    /// The entry with the largest key below `key`.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_lt(&self, key: impl AsRef<[u8]>) -> Result<Option<(Bytes, Bytes)>> {
        self.range::<&[u8], _>(..key.as_ref()).next_back().transpose()
    }

    /// The entry with the smallest key above `key`.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn get_gt(&self, key: impl AsRef<[u8]>) -> Result<Option<(Bytes, Bytes)>> {
        let start = std::ops::Bound::Excluded(key.as_ref());
        self.range::<&[u8], _>((start, std::ops::Bound::Unbounded)).next().transpose()
    }

    /// Removes and returns the entry with the smallest key.
    ///
    /// # Errors
    /// As [`Tree::insert`].
    pub fn pop_first(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.pop(|tree| tree.first())
    }

    /// Removes and returns the entry with the largest key.
    ///
    /// # Errors
    /// As [`Tree::insert`].
    pub fn pop_last(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.pop(|tree| tree.last())
    }

    fn pop(
        &self,
        find: impl Fn(&Tree) -> Result<Option<(Bytes, Bytes)>>,
    ) -> Result<Option<(Bytes, Bytes)>> {
        loop {
            let Some((key, value)) = find(self)? else {
                return Ok(None);
            };
            if self.compare_and_swap(&key, Some(&value), None::<&[u8]>)?.is_ok() {
                return Ok(Some((key, value)));
            }
        }
    }

    /// The number of entries, in O(1): the page cache keeps each tree's count as the total
    /// weight of its leaves (see [`Weigh`]), exactly, across restarts and crashes. While a
    /// batch is being installed the count may include part of it.
    ///
    /// # Errors
    /// None today; a `Result` so that a count kept elsewhere could report failures.
    pub fn len(&self) -> Result<usize> {
        let count = self.cache().weight(self.inner.id.get());
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Whether the tree has no entries.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.first()?.is_none())
    }

    /// Removes every entry, atomically: a reader sees all of them or none, and so does the
    /// database after a crash. The tree's pages are given back.
    ///
    /// # Errors
    /// As [`Tree::insert`].
    pub fn clear(&self) -> Result<()> {
        let cleared = self.inner.shared.versions.write(
            |_| true,
            |recorder| {
                let pages = self.pages()?;
                // Open snapshots keep seeing every entry: each gets a version.
                if recorder.records() {
                    for entry in self.iter() {
                        let (key, value) = entry?;
                        recorder.stage(self.inner.id, &key, Some(&value));
                    }
                }
                let empty = Node::empty(self.inner.id, 0).encode()?;
                let updates: Vec<GroupUpdate<'_>> = pages
                    .iter()
                    .map(|&(id, version)| GroupUpdate {
                        id,
                        version: Some(version),
                        change: if id == self.inner.root {
                            Change::Replace(&empty)
                        } else {
                            Change::Free
                        },
                        weigh: Weigh::Set { owner: self.inner.id.get(), weight: 0 },
                    })
                    .collect();
                recorder.publish();
                if self.cache().apply_group(&updates)? == GroupOutcome::Installed {
                    self.publish_cleared();
                    return Ok(Some(()));
                }
                Ok(None)
            },
        )?;
        cleared.ok_or_else(|| Error::Inconsistent("an unvalidated clear was refused".into()))
    }

    /// Applies `batch` atomically, as [`Db::apply_batch`](crate::Db::apply_batch) does
    /// (the batch may write to other trees too).
    ///
    /// # Errors
    /// As [`Tree::insert`]; on error nothing was applied.
    pub fn apply_batch(&self, batch: Batch) -> Result<()> {
        super::apply_batch(&self.inner.shared, batch)
    }

    /// Makes every write made before this call durable.
    ///
    /// # Errors
    /// [`Error::LogFailed`] if the log could not write or sync.
    pub fn flush(&self) -> Result<()> {
        self.cache().flush()
    }

    /// A CRC-32 over every key and value in order: equal trees have equal checksums.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn checksum(&self) -> Result<u32> {
        let mut hasher = crc32fast::Hasher::new();
        for entry in self.iter() {
            let (key, value) = entry?;
            hasher.update(&u64::try_from(key.len()).unwrap_or(u64::MAX).to_le_bytes());
            hasher.update(&key);
            hasher.update(&u64::try_from(value.len()).unwrap_or(u64::MAX).to_le_bytes());
            hasher.update(&value);
        }
        Ok(hasher.finalize())
    }

    /// The leaf for `target` and its parsed header, under `guard` and taking no reference
    /// to any page: the read path.
    pub(crate) fn descend_view<'g>(
        &self,
        target: Target<'_>,
        guard: &'g epoch::Guard,
    ) -> Result<(PageView<'g>, NodeRef<'g>)> {
        walk::descend_in(self.cache(), self.inner.id, self.inner.root, target, 0, guard, None)
            .map_err(|error| self.explain(error))
    }

    /// A descent's error as the user should see it: a root that is free or not ours may
    /// mean that the tree was dropped.
    fn explain(&self, error: Error) -> Error {
        if !matches!(error, Error::Corruption { .. }) || self.inner.id == CATALOG {
            return error;
        }
        match self.dropped() {
            Ok(true) => {
                Error::TreeDropped { tree: String::from_utf8_lossy(&self.inner.name).into_owned() }
            }
            Ok(false) => error,
            Err(other) => other,
        }
    }

    /// Whether the catalog no longer names this tree (it was dropped, maybe recreated).
    fn dropped(&self) -> Result<bool> {
        let catalog = Tree::new(self.inner.shared.clone(), CATALOG, PageId(0), Bytes::default());
        let Some(entry) = catalog.get(&self.inner.name)? else {
            return Ok(true);
        };
        Ok(entry.get(..8).is_none_or(|id| id != self.inner.id.get().to_le_bytes()))
    }

    /// The bytes of `key`'s stored value, and for a value stored out of line its page and
    /// that page's version. `None` if the value's page no longer holds it (a concurrent
    /// overwrite freed it after the leaf was read): read the leaf again.
    pub(crate) fn read_value(
        &self,
        key: &[u8],
        value: ValueRef<'_>,
    ) -> Result<Option<(Bytes, Option<ValuePage>)>> {
        let read = self.replaced_by(key, value, true)?;
        // Copied, the value is there whenever it was found.
        Ok(read.and_then(|Replaced { value, blob, .. }| Some((value?, blob))))
    }

    /// What a write replacing `key`'s stored value `value` takes out: its length, its page
    /// if it is stored out of line (read for its version), and with `copy` the value
    /// itself. `None` as for [`Tree::read_value`].
    fn replaced_by(&self, key: &[u8], value: ValueRef<'_>, copy: bool) -> Result<Option<Replaced>> {
        let replaced = |bytes: &[u8], blob| Replaced {
            len: Some(bytes.len()),
            value: copy.then(|| Bytes::copy_from(bytes)),
            blob,
        };
        let (page, len) = match value {
            ValueRef::Inline(bytes) => return Ok(Some(replaced(bytes, None))),
            ValueRef::Blob { page, len } => (page, len),
        };
        let Some(blob) = walk::try_read(self.cache(), page)? else {
            return Ok(None);
        };
        let bytes = self.blob_value(key, page, blob.base(), len)?;
        Ok(bytes.map(|bytes| replaced(bytes, Some((page, blob.version())))))
    }

    /// The bytes of `key`'s value `value`, read in place under `guard`: an inline value as
    /// it lies in the leaf, one stored out of line from its page. `None` if that page holds
    /// something else now (the value moved: read the leaf again).
    // Inline: it sits in the loops of `get_with` and `Iter::visit`, where a call per entry
    // showed up as 5% of a range's instructions.
    #[inline]
    pub(crate) fn value_in<'g>(
        &self,
        key: &[u8],
        value: ValueRef<'g>,
        guard: &'g epoch::Guard,
    ) -> Result<Option<&'g [u8]>> {
        match value {
            ValueRef::Inline(bytes) => Ok(Some(bytes)),
            ValueRef::Blob { page, len } => match self.cache().read(page, guard)? {
                Some(blob) => self.blob_value(key, page, blob.base(), len),
                None => Ok(None),
            },
        }
    }

    /// The value of `key` in `image`, the image of page `page` that the leaf says holds it
    /// out of line, `len` bytes long. `None` if the page holds something else now (the value
    /// moved: read the leaf again).
    fn blob_value<'i>(
        &self,
        key: &[u8],
        page: PageId,
        image: &'i [u8],
        len: u64,
    ) -> Result<Option<&'i [u8]>> {
        let Some(bytes) = blob::decode(image, self.inner.id, key) else {
            return Ok(None);
        };
        if u64::try_from(bytes.len()).ok() != Some(len) {
            return Err(Error::corruption(
                format!("tree {page}"),
                0,
                format!("a value of {len} bytes is stored as {} bytes", bytes.len()),
            ));
        }
        Ok(Some(bytes))
    }

    /// How `value` is stored for `key`: inline, or in a new page that `plan` creates.
    pub(crate) fn store<'v>(
        &self,
        key: &[u8],
        value: &'v [u8],
        plan: &mut Plan,
    ) -> Result<ValueRef<'v>> {
        if value.len() <= self.inner.shared.blob_threshold {
            return Ok(ValueRef::Inline(value));
        }
        let page = self.cache().reserve_id()?;
        let weigh = Weigh::Set { owner: self.inner.id.get(), weight: 0 };
        plan.create(page, blob::encode(self.inner.id, key, value), weigh);
        Ok(ValueRef::Blob { page, len: u64::try_from(value.len()).unwrap_or(u64::MAX) })
    }

    /// For a write on `key`: the leaf to change, and what `key` holds there, borrowed from
    /// the page under `guard`.
    ///
    /// With `bound` (a remove's), the leaf's [`LeafAt::at_least`] is filled in.
    pub(crate) fn leaf_for_write<'g>(
        &self,
        key: &[u8],
        guard: &'g epoch::Guard,
        finger: Option<&mut Finger>,
        bound: bool,
    ) -> Result<(LeafAt, Option<ValueRef<'g>>)> {
        let (mut leaf, page) = walk::descend_for_write(
            self.cache(),
            self.inner.id,
            self.inner.root,
            key,
            guard,
            finger,
        )
        .map_err(|error| self.explain(error))?;
        if bound {
            let (view, node) = &page;
            let at_least = node::leaf_len_at_least_of(node, view.fragments())
                .map_err(|m| walk::corrupt(view.id(), &m))?;
            leaf.at_least = at_least;
        }
        Ok((leaf, walk::lookup_in(&page, key)?))
    }

    /// For a write on `key`: the leaf to change, and `key`'s entry there as stored (a
    /// value stored out of line is not read).
    pub(crate) fn entry_for_write(&self, key: &[u8]) -> Result<(LeafAt, Option<Value>)> {
        let guard = epoch::pin();
        let (leaf, found) = self.leaf_for_write(key, &guard, None, false)?;
        Ok((leaf, found.map(ValueRef::to_value)))
    }

    /// For a write on `key`: the leaf to change, and the value the write replaces with the
    /// page of a value stored out of line. The value is `None` if it moved meanwhile (a
    /// concurrent overwrite freed its page): descend again.
    pub(crate) fn current(&self, key: &[u8]) -> Result<(LeafAt, Option<Current>)> {
        let (leaf, replaced) = self.replaced_after(key, None, false, true)?;
        // Copied, the value is there whenever the key is.
        Ok((leaf, replaced.map(|Replaced { value, blob, .. }| (value, blob))))
    }

    /// As [`Tree::current`], for a write that may come in a run of writes in key order (a
    /// batch's): the descent starts where `finger` says the last one found its leaf's
    /// parent, and leaves it there. With `bound`, as for a remove, the leaf's
    /// [`LeafAt::at_least`] is filled in. The replaced value is copied only with `copy`
    /// (for a snapshot that will want it, or a caller that reads it).
    pub(crate) fn replaced_after(
        &self,
        key: &[u8],
        finger: Option<&mut Finger>,
        bound: bool,
        copy: bool,
    ) -> Result<(LeafAt, Option<Replaced>)> {
        let guard = epoch::pin();
        let (leaf, found) = self.leaf_for_write(key, &guard, finger, bound)?;
        // Most writes need only the replaced value's length (and page), unless a snapshot
        // records it: copying it (an allocation and its free) was about 4% of a batch of
        // removes' instructions.
        let replaced = match found {
            None => Some(Replaced { len: None, value: None, blob: None }),
            Some(value) => self.replaced_by(key, value, copy)?,
        };
        Ok((leaf, replaced))
    }

    /// Sets `key` to `f(current)`; returns the value before and after. The new value is
    /// whatever `f` gave (a borrowed slice for `insert`, which copies nothing more than
    /// the fragment it writes).
    fn modify<V: AsRef<[u8]>>(
        &self,
        key: &[u8],
        mut f: impl FnMut(Option<&Bytes>) -> Option<V>,
    ) -> Result<(Option<Bytes>, Option<V>)> {
        // `f` always gives a value here, so the write is never left undone.
        let (current, new) = self.modify_if(key, |current| Some(f(current)))?;
        Ok((current, new.flatten()))
    }

    /// As `modify`, where `f` returning `None` means "leave it as it is": the value before,
    /// and what `f` gave (`None` if it left the value as it was).
    fn modify_if<V: AsRef<[u8]>>(
        &self,
        key: &[u8],
        mut f: impl FnMut(Option<&Bytes>) -> Option<Option<V>>,
    ) -> Result<(Option<Bytes>, Option<Option<V>>)> {
        let shared = &self.inner.shared;
        let written = shared.versions.write(
            |_| true,
            |recorder| {
                let (leaf, current) = self.current(key)?;
                let Some((current, blob)) = current else {
                    return Ok(None);
                };
                let Some(new) = f(current.as_ref()) else {
                    return Ok(Some((current, None, None)));
                };
                if new.is_none() && current.is_none() {
                    return Ok(Some((None, Some(new), None)));
                }
                let new_value = new.as_ref().map(AsRef::as_ref);
                let value_len = new_value.map_or(0, |v| shared.inline_len(v.len()));
                let mut plan = Plan::with_room(shared.node_bytes, 1, key.len() + value_len);
                if let Some((page, version)) = blob {
                    plan.free(page, version);
                }
                let stored = match new_value {
                    Some(value) => Some(self.store(key, value, &mut plan)?),
                    None => None,
                };
                let changed = leaf.id;
                plan.add(leaf, key, stored, count_change(current.is_some(), new.is_some()));
                recorder.stage(self.inner.id, key, current.as_ref());
                recorder.publish();
                if plan.install(self.cache())? {
                    self.publish_one(key, new.as_ref().map(AsRef::as_ref));
                    return Ok(Some((current, Some(new), Some(changed))));
                }
                Ok(None)
            },
        )?;
        // Without validation, a write always ends installed or in error.
        let Some((current, new, changed)) = written else {
            return Err(Error::Inconsistent("an unvalidated write was refused".into()));
        };
        // A remove checks its leaf, which it reads by id: a descent only if it is small.
        if let Some(leaf) = changed
            && new.as_ref().is_some_and(Option::is_none)
        {
            self.merge_leaf_if_underfull(leaf, key)?;
        }
        Ok((current, new))
    }

    /// Every page of the tree with its version, root first.
    pub(crate) fn pages(&self) -> Result<Vec<(PageId, u64)>> {
        let mut pages = Vec::new();
        let mut todo = vec![self.inner.root];
        while let Some(id) = todo.pop() {
            let page: TreePage = walk::read_page(self.cache(), id)?;
            pages.push((id, page.version()));
            let node = page.materialize()?;
            for (_, entry) in &node.entries {
                match entry {
                    Entry::Child(child) => todo.push(*child),
                    Entry::Value(Value::Blob { page, .. }) => {
                        let blob = walk::read_page(self.cache(), *page)?;
                        pages.push((*page, blob.version()));
                    }
                    Entry::Value(Value::Inline(_)) => {}
                }
            }
        }
        Ok(pages)
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` if there is none (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
