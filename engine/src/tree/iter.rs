//! [`Iter`]: walking a range of a tree from either end.
//!
//! Each end keeps a bound (the last key it fetched) and a buffer of the entries it fetched
//! from one leaf and not yet returned. A fetch descends to the leaf for its bound *by key*,
//! not by a remembered page, so splits between two fetches cannot make it skip or repeat
//! a key. The two ends fetch disjoint keys (each fetches only between the two bounds), and
//! an end that finds nothing left to fetch takes from the other end's buffer, so mixing
//! `next` and `next_back` never repeats or skips an entry.

use std::{
    collections::VecDeque,
    ops::{Bound, ControlFlow, Range},
    sync::Arc,
};

use super::{
    Bytes, Tree,
    node::{self, NodeRef, ValueRef},
    walk::{self, Target},
};
use crate::{error::Result, ids::PageId, pagecache::PageView, sync::epoch};

/// Where a fetched value is: a range of the leaf's buffer, or (stored out of line) bytes of
/// its own.
type Span = std::result::Result<Range<usize>, Bytes>;

/// An iterator over a tree's entries in key order, from [`Tree::iter`], [`Tree::range`] or
/// [`Tree::scan_prefix`]. Double-ended. It is not a snapshot: an entry written after the
/// iterator passed its place is not seen, one written ahead of it may be.
#[derive(Debug)]
pub struct Iter {
    tree: Tree,
    /// Keys above this bound are left for the front to fetch.
    lo: Bound<Vec<u8>>,
    /// Keys below this bound are left for the back to fetch.
    hi: Bound<Vec<u8>>,
    /// Fetched by the front, not yet returned, in key order.
    front: VecDeque<(Bytes, Bytes)>,
    /// Fetched by the back, not yet returned, in key order.
    back: VecDeque<(Bytes, Bytes)>,
    /// Set after an error: the iterator ends.
    failed: bool,
    /// Set once either end found nothing left to fetch between the bounds. From then on
    /// neither end fetches again: an end that ran dry has taken entries from the other
    /// end's buffer, which lie beyond its bound, so a key written into the gap afterwards
    /// would come out of order.
    drained: bool,
    /// The right sibling of the leaf the front read last, to try before descending.
    next_leaf: Option<PageId>,
}

impl Iter {
    pub(crate) fn new(tree: Tree, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Iter {
        Iter {
            tree,
            lo,
            hi,
            front: VecDeque::new(),
            back: VecDeque::new(),
            failed: false,
            drained: false,
            next_leaf: None,
        }
    }

    /// Whether the bounds leave no key between them (or an end ran dry).
    fn exhausted(&self) -> bool {
        if self.drained {
            return true;
        }
        match (&self.lo, &self.hi) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(lo), Bound::Included(hi)) => lo > hi,
            (Bound::Included(lo) | Bound::Excluded(lo), Bound::Excluded(hi))
            | (Bound::Excluded(lo), Bound::Included(hi)) => lo >= hi,
        }
    }

    /// The entries of `leaf` from `from` on (or all) and within the bounds, in key order,
    /// with their values read; `None` if a value moved meanwhile (read the leaf again).
    ///
    /// The keys and inline values are copied into one buffer, and the entries handed out
    /// are slices of it: one allocation per leaf rather than two per entry.
    fn entries_of(
        &self,
        leaf: &PageView<'_>,
        from: Option<&[u8]>,
    ) -> Result<Option<Vec<(Bytes, Bytes)>>> {
        let entries = node::leaf_entries(leaf.base(), leaf.fragments(), from.unwrap_or_default())
            .map_err(|m| walk::corrupt(leaf.id(), &m))?;
        let size = entries
            .iter()
            .map(|(key, value)| {
                key.len() + if let ValueRef::Inline(v) = value { v.len() } else { 0 }
            })
            .sum();
        let mut buffer = Vec::with_capacity(size);
        let mut spans: Vec<(Range<usize>, Span)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let (prefix, rest) = key.parts();
            let key_start = buffer.len();
            buffer.extend_from_slice(prefix);
            buffer.extend_from_slice(rest);
            let key_range = key_start..buffer.len();
            let key = buffer.get(key_range.clone()).unwrap_or_default();
            if past(&self.hi, key) {
                buffer.truncate(key_start);
                break;
            }
            if before(&self.lo, key) {
                buffer.truncate(key_start);
                continue;
            }
            let value = match value {
                ValueRef::Inline(bytes) => {
                    let value_start = buffer.len();
                    buffer.extend_from_slice(bytes);
                    Ok(value_start..buffer.len())
                }
                ValueRef::Blob { .. } => match self.tree.read_value(key, value)? {
                    Some((bytes, _)) => Err(bytes),
                    None => return Ok(None),
                },
            };
            spans.push((key_range, value));
        }
        let buffer: Arc<[u8]> = Arc::from(buffer);
        let slice = |range: Range<usize>| Bytes::slice_of(&buffer, range).unwrap_or_default();
        Ok(Some(
            spans
                .into_iter()
                .map(|(key, value)| (slice(key), value.map_or_else(|blob| blob, slice)))
                .collect(),
        ))
    }

    /// Sets `start` to where the front's next fetch starts: its bound's key (an excluded
    /// bound's key is passed over by [`before`]), or the empty key. A buffer, so that a walk
    /// over many leaves reuses one.
    fn front_start(&self, start: &mut Vec<u8>) {
        start.clear();
        if let Bound::Included(key) | Bound::Excluded(key) = &self.lo {
            start.extend_from_slice(key);
        }
    }

    /// The leaf that holds `start`: the right sibling remembered from the last fetch if it
    /// still begins exactly at `start` (so it is the leaf covering it), else a descent.
    fn leaf_for<'g>(
        &mut self,
        start: &[u8],
        guard: &'g epoch::Guard,
    ) -> Result<(PageView<'g>, NodeRef<'g>)> {
        let found = if let Some(id) = self.next_leaf.take()
            && let Some(page) = self.tree.cache().read(id, guard)?
            && let Ok(node) = walk::node_of(&page)
            && node.tree() == self.tree.id()
            && node.is_leaf()
            && node.low() == start
        {
            (page, node)
        } else {
            self.tree.descend_view(Target::Key(start), guard)?
        };
        walk::prefetch_leaf(&found.0);
        Ok(found)
    }

    /// Fills the front buffer from the leaves after `lo`; `false` if no key is left.
    ///
    /// It takes every entry of a leaf from `lo` on, then moves `lo` to the leaf's high
    /// fence: the next fetch starts at the next leaf, usually found by the right link.
    fn fetch_front(&mut self) -> Result<bool> {
        loop {
            if self.exhausted() {
                return Ok(false);
            }
            let mut start = Vec::new();
            self.front_start(&mut start);
            let guard = epoch::pin();
            let (leaf, node) = self.leaf_for(&start, &guard)?;
            let Some(found) = self.entries_of(&leaf, Some(&start))? else {
                continue;
            };
            let (high, right) = (node.high().map(<[u8]>::to_vec), node.right());
            drop(guard);
            match (high, found.last()) {
                (Some(high), _) => {
                    self.lo = Bound::Included(high);
                    self.next_leaf = right;
                }
                (None, Some((last, _))) => self.lo = Bound::Excluded(last.to_vec()),
                // Nothing here, and this was the last leaf.
                (None, None) => return Ok(false),
            }
            if !found.is_empty() {
                self.front.extend(found);
                return Ok(true);
            }
        }
    }

    /// Calls `f` with each entry the iterator has left, in key order, until `f` returns
    /// `ControlFlow::Break`. Keys and values are read where they are stored: unlike the
    /// iterator's own items, nothing is copied or allocated per entry. `f` runs while the
    /// leaf it reads is pinned in memory (see [`Tree::get_with`]); keep it short, and copy
    /// out what you keep.
    ///
    /// # Errors
    /// As [`Tree::get`]; `f` has then seen the entries before the damage.
    ///
    /// # Example
    /// ```
    /// use std::ops::ControlFlow;
    ///
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// for (key, value) in [("a", "1"), ("b", "22"), ("c", "333"), ("d", "4444")] {
    ///     db.insert(key, value)?;
    /// }
    /// let mut lengths = Vec::new();
    /// db.range(&b"b"[..]..).visit(|_key, value| {
    ///     lengths.push(value.len());
    ///     if lengths.len() == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    /// })?;
    /// assert_eq!(lengths, [2, 3]);
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn visit(mut self, mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>) -> Result<()> {
        // What `next` would return first: entries fetched already.
        while let Some((key, value)) = self.front.pop_front() {
            if f(&key, &value).is_break() {
                return Ok(());
            }
        }
        // Both buffers serve every leaf of the walk: no allocation per leaf.
        let (mut key, mut start) = (Vec::new(), Vec::new());
        // The leaves from `lo` on, as `fetch_front` walks them.
        while !self.exhausted() {
            self.front_start(&mut start);
            let guard = epoch::pin();
            let (leaf, node) = self.leaf_for(&start, &guard)?;
            // The entries come in key order: once one is past `lo`, so are the rest.
            let mut past_lo = false;
            let (lo, hi) = (&self.lo, &self.hi);
            let tree = &self.tree;
            // The prefix at the front of `key`: the base's entries of a leaf share theirs,
            // so each of them copies only its suffix. Set anew for each leaf, whose bytes
            // the guard keeps unchanged.
            let mut held: &[u8] = &[];
            key.clear();
            let stop = node::leaf_entries_each(&node, leaf.fragments(), &start, |stored, value| {
                let (prefix, rest) = stored.parts();
                if std::ptr::eq(prefix, held) {
                    key.truncate(prefix.len());
                } else {
                    key.clear();
                    key.extend_from_slice(prefix);
                    held = prefix;
                }
                key.extend_from_slice(rest);
                if past(hi, &key) {
                    return ControlFlow::Break(Stop::PastHi);
                }
                if !past_lo {
                    if before(lo, &key) {
                        return ControlFlow::Continue(());
                    }
                    past_lo = true;
                }
                // Most values lie in the leaf: those need no call to find.
                let found = match value {
                    ValueRef::Inline(bytes) => Ok(Some(bytes)),
                    ValueRef::Blob { .. } => tree.value_in(&key, value, &guard),
                };
                match found {
                    Ok(Some(bytes)) if f(&key, bytes).is_break() => ControlFlow::Break(Stop::Done),
                    Ok(Some(_)) => ControlFlow::Continue(()),
                    Ok(None) => ControlFlow::Break(Stop::Moved),
                    Err(error) => ControlFlow::Break(Stop::Failed(error)),
                }
            })
            .map_err(|m| walk::corrupt(leaf.id(), &m))?;
            match stop {
                Some(Stop::Done) => return Ok(()),
                // The back buffer's entries, if any, come next.
                Some(Stop::PastHi) => break,
                Some(Stop::Failed(error)) => return Err(error),
                // The value moved: read on from this key, afresh.
                Some(Stop::Moved) => self.lo = Bound::Included(key.clone()),
                None => {
                    // Without a high fence this was the last leaf: nothing is left after it.
                    let Some(high) = node.high() else {
                        break;
                    };
                    include(&mut self.lo, high);
                    self.next_leaf = node.right();
                }
            }
        }
        // What `next` returns once the front has run dry: what the back fetched.
        while let Some((key, value)) = self.back.pop_front() {
            if f(&key, &value).is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Fills the back buffer from the leaves before `hi`; `false` if no key is left.
    fn fetch_back(&mut self) -> Result<bool> {
        loop {
            if self.exhausted() {
                return Ok(false);
            }
            let guard = epoch::pin();
            let target = match &self.hi {
                Bound::Unbounded => Target::Last,
                Bound::Included(key) => Target::Key(key),
                Bound::Excluded(key) => Target::Below(key),
            };
            let (leaf, node) = self.tree.descend_view(target, &guard)?;
            walk::prefetch_leaf(&leaf);
            let Some(found) = self.entries_of(&leaf, None)? else {
                continue;
            };
            let low = node.low().to_vec();
            drop(guard);
            if let Some((first, _)) = found.first() {
                self.hi = Bound::Excluded(first.to_vec());
                for entry in found.into_iter().rev() {
                    self.back.push_front(entry);
                }
                return Ok(true);
            }
            if low.is_empty() {
                return Ok(false);
            }
            self.hi = Bound::Excluded(low);
        }
    }
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(entry) = self.front.pop_front() {
            return Some(Ok(entry));
        }
        match self.fetch_front() {
            Ok(true) => self.front.pop_front().map(Ok),
            Ok(false) => {
                self.drained = true;
                self.back.pop_front().map(Ok)
            }
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(entry) = self.back.pop_back() {
            return Some(Ok(entry));
        }
        match self.fetch_back() {
            Ok(true) => self.back.pop_back().map(Ok),
            Ok(false) => {
                self.drained = true;
                self.front.pop_back().map(Ok)
            }
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}

/// Makes `bound` include `key` and what follows, in the buffer it held.
fn include(bound: &mut Bound<Vec<u8>>, key: &[u8]) {
    let mut held = match std::mem::replace(bound, Bound::Unbounded) {
        Bound::Included(held) | Bound::Excluded(held) => held,
        Bound::Unbounded => Vec::new(),
    };
    held.clear();
    held.extend_from_slice(key);
    *bound = Bound::Included(held);
}

/// Whether `key` lies past the upper bound `hi` (and so does every key after it).
fn past(hi: &Bound<Vec<u8>>, key: &[u8]) -> bool {
    match hi {
        Bound::Unbounded => false,
        Bound::Included(hi) => key > hi.as_slice(),
        Bound::Excluded(hi) => key >= hi.as_slice(),
    }
}

/// Whether `key` lies below the lower bound `lo`.
fn before(lo: &Bound<Vec<u8>>, key: &[u8]) -> bool {
    match lo {
        Bound::Unbounded => false,
        Bound::Included(lo) => key < lo.as_slice(),
        Bound::Excluded(lo) => key <= lo.as_slice(),
    }
}

/// Why [`Iter::visit`] stopped reading a leaf before its end.
enum Stop {
    /// `f` asked to stop.
    Done,
    /// The entries reached the upper bound.
    PastHi,
    /// An out-of-line value moved: the leaf is read again from its key.
    Moved,
    /// Reading a value failed.
    Failed(crate::Error),
}
