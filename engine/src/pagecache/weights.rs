//! [`Weights`]: each owner's total page weight (see [`Weigh`](super::Weigh)).

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

use crate::sync::{self, AtomicI64, Ordering, RwLock};

/// The total weight of each owner's live pages.
///
/// # Thread safety
/// Every install that changes a page's owner or weight adds the difference here, after its
/// compare-and-swap; a reader sees every completed install's share. Owners below
/// [`SMALL_OWNERS`] have a counter of their own, reached without a lock (the tree layer's
/// owners are tree ids, from the database's id generator, which also gives ids out to
/// applications: the trees opened first have small ones, the others still count, in the
/// map); the others are in a map whose lock is taken for reading on every such install
/// and for writing only the first time an owner appears.
#[derive(Debug)]
pub(crate) struct Weights {
    /// Owner: installs add (the owner's index). Relaxed, as `by_owner`.
    small: [AtomicI64; SMALL_OWNERS],
    /// Owner: installs add, nobody removes (an owner whose pages are all gone weighs 0).
    /// Relaxed: totals order nothing; the install's compare-and-swap orders the page.
    by_owner: RwLock<ByOwner<Arc<AtomicI64>>>,
}

/// Owners below this are counted without the map: taking its read lock and hashing on
/// every install was 1.5% of a bulk load's instructions, and the lock's one word was
/// shared by every writer thread.
const SMALL_OWNERS: usize = 64;

impl Default for Weights {
    fn default() -> Weights {
        Weights { small: std::array::from_fn(|_| AtomicI64::new(0)), by_owner: RwLock::default() }
    }
}

/// A map keyed by owner, hashed with one multiplication. Owners are the database's own
/// numbers (tree ids), a handful of them, looked up on every install that changes a
/// weight: hashing them with the standard SipHash was 1% of a bulk load's instructions.
/// Nothing a user writes picks an owner, so the map needs no defence against chosen keys.
pub(crate) type ByOwner<V> = HashMap<u64, V, BuildHasherDefault<OwnerHasher>>;

/// The hasher of [`ByOwner`]: multiplies by an odd constant and folds the high half into
/// the low one, so that both the bucket index (low bits) and the tag (high bits) depend on
/// every bit of the owner.
#[derive(Debug, Default)]
pub(crate) struct OwnerHasher(u64);

impl Hasher for OwnerHasher {
    fn finish(&self) -> u64 {
        let mixed = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        mixed ^ (mixed >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, owner: u64) {
        self.0 = self.0.rotate_left(8) ^ owner;
    }
}

impl Weights {
    /// `owner`'s total.
    pub(crate) fn get(&self, owner: u64) -> i64 {
        if let Some(total) = self.small_of(owner) {
            return total.load(Ordering::Relaxed);
        }
        sync::read(&self.by_owner).get(&owner).map_or(0, |total| total.load(Ordering::Relaxed))
    }

    /// `owner`'s own counter, if it is a small owner.
    fn small_of(&self, owner: u64) -> Option<&AtomicI64> {
        self.small.get(usize::try_from(owner).ok()?)
    }

    /// Adds `delta` to `owner`'s total.
    pub(crate) fn add(&self, owner: u64, delta: i64) {
        if delta == 0 {
            return;
        }
        if let Some(total) = self.small_of(owner) {
            total.fetch_add(delta, Ordering::Relaxed);
            return;
        }
        if let Some(total) = sync::read(&self.by_owner).get(&owner) {
            total.fetch_add(delta, Ordering::Relaxed);
            return;
        }
        sync::write(&self.by_owner)
            .entry(owner)
            .or_insert_with(|| Arc::new(AtomicI64::new(0)))
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// Moves a page's share from `before` to `after` (owner and weight, `None` if free).
    pub(crate) fn replace(&self, before: Option<(u64, i64)>, after: Option<(u64, i64)>) {
        if before == after {
            return;
        }
        // The common case, a page of one owner changing weight: one addition, not two.
        if let (Some((owner, old)), Some((new_owner, new))) = (before, after)
            && owner == new_owner
        {
            self.add(owner, new.saturating_sub(old));
            return;
        }
        if let Some((owner, weight)) = before {
            self.add(owner, weight.saturating_neg());
        }
        if let Some((owner, weight)) = after {
            self.add(owner, weight);
        }
    }

    /// Every owner's total, for the integrity check.
    pub(crate) fn all(&self) -> HashMap<u64, i64> {
        let small =
            (0u64..).zip(&self.small).map(|(owner, total)| (owner, total.load(Ordering::Relaxed)));
        let map = sync::read(&self.by_owner);
        let large = map.iter().map(|(owner, total)| (*owner, total.load(Ordering::Relaxed)));
        small.chain(large).filter(|(_, total)| *total != 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{SMALL_OWNERS, Weights};

    /// Owners with a counter of their own and owners in the map add up alike, and a page
    /// that changes owner moves its weight from one to the other.
    #[test]
    fn small_and_large_owners_add_up_alike() {
        let weights = Weights::default();
        let (small, large) = (3, u64::try_from(SMALL_OWNERS).unwrap_or(u64::MAX) + 7);
        weights.replace(None, Some((small, 5)));
        weights.replace(None, Some((large, 11)));
        weights.replace(Some((small, 5)), Some((small, 8)));
        weights.replace(Some((large, 11)), Some((small, 2)));
        weights.add(large, 4);
        assert_eq!((weights.get(small), weights.get(large), weights.get(9)), (10, 4, 0));
        assert_eq!(weights.all(), HashMap::from([(small, 10), (large, 4)]));
        weights.add(large, -4);
        assert_eq!(weights.all(), HashMap::from([(small, 10)]), "owners at 0 are left out");
    }
}
