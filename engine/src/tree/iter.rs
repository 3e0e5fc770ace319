//! [`Iter`]: walking a range of a tree from either end.
//!
//! Each end keeps a bound (the last key it fetched) and a buffer of the entries it fetched
//! from one leaf and not yet returned. A fetch descends to the leaf for its bound *by key*,
//! not by a remembered page, so splits between two fetches cannot make it skip or repeat
//! a key. The two ends fetch disjoint keys (each fetches only between the two bounds), and
//! an end that finds nothing left to fetch takes from the other end's buffer, so mixing
//! `next` and `next_back` never repeats or skips an entry.

use std::{collections::VecDeque, ops::Bound};

use super::{
    Bytes, Tree,
    node::{Entry, Node},
    walk::Target,
};
use crate::error::Result;

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

    fn within(&self, key: &[u8]) -> bool {
        let above = match &self.lo {
            Bound::Unbounded => true,
            Bound::Included(lo) => key >= lo.as_slice(),
            Bound::Excluded(lo) => key > lo.as_slice(),
        };
        let below = match &self.hi {
            Bound::Unbounded => true,
            Bound::Included(hi) => key <= hi.as_slice(),
            Bound::Excluded(hi) => key < hi.as_slice(),
        };
        above && below
    }

    /// The entries of `node` between the bounds, with their values read; `None` if a
    /// value moved meanwhile (read the leaf again).
    fn entries_of(&self, node: &Node) -> Result<Option<Vec<(Bytes, Bytes)>>> {
        let mut out = Vec::new();
        for (key, entry) in &node.entries {
            if let Entry::Value(value) = entry
                && self.within(key)
            {
                let Some((bytes, _)) = self.tree.read_value(key, value)? else {
                    return Ok(None);
                };
                out.push((Bytes::copy_from(key), bytes));
            }
        }
        Ok(Some(out))
    }

    /// Fills the front buffer from the leaves after `lo`; `false` if no key is left.
    fn fetch_front(&mut self) -> Result<bool> {
        loop {
            if self.exhausted() {
                return Ok(false);
            }
            let start: Vec<u8> = match &self.lo {
                Bound::Unbounded => Vec::new(),
                Bound::Included(key) | Bound::Excluded(key) => key.clone(),
            };
            let descent = self.tree.descend(Target::Key(&start))?;
            let node = descent.leaf.materialize()?;
            let Some(found) = self.entries_of(&node)? else {
                continue;
            };
            if let Some((last, _)) = found.last() {
                self.lo = Bound::Excluded(last.to_vec());
                self.front.extend(found);
                return Ok(true);
            }
            // Nothing here: go on from the next leaf, unless this was the last one.
            match node.header.high {
                Some(high) => self.lo = Bound::Included(high),
                None => return Ok(false),
            }
        }
    }

    /// Fills the back buffer from the leaves before `hi`; `false` if no key is left.
    fn fetch_back(&mut self) -> Result<bool> {
        loop {
            if self.exhausted() {
                return Ok(false);
            }
            let descent = match &self.hi {
                Bound::Unbounded => self.tree.descend(Target::Last)?,
                Bound::Included(key) => self.tree.descend(Target::Key(key))?,
                Bound::Excluded(key) => self.tree.descend(Target::Below(key))?,
            };
            let node = descent.leaf.materialize()?;
            let Some(found) = self.entries_of(&node)? else {
                continue;
            };
            if let Some((first, _)) = found.first() {
                self.hi = Bound::Excluded(first.to_vec());
                for entry in found.into_iter().rev() {
                    self.back.push_front(entry);
                }
                return Ok(true);
            }
            if node.header.low.is_empty() {
                return Ok(false);
            }
            self.hi = Bound::Excluded(node.header.low);
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
