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
/// compare-and-swap; a reader sees every completed install's share. The map's lock is taken
/// for reading on every such install and for writing only the first time an owner appears.
#[derive(Debug, Default)]
pub(crate) struct Weights {
    /// Owner: installs add, nobody removes (an owner whose pages are all gone weighs 0).
    /// Relaxed: totals order nothing; the install's compare-and-swap orders the page.
    by_owner: RwLock<ByOwner<Arc<AtomicI64>>>,
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
        sync::read(&self.by_owner).get(&owner).map_or(0, |total| total.load(Ordering::Relaxed))
    }

    /// Adds `delta` to `owner`'s total.
    pub(crate) fn add(&self, owner: u64, delta: i64) {
        if delta == 0 {
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
        sync::read(&self.by_owner)
            .iter()
            .map(|(owner, total)| (*owner, total.load(Ordering::Relaxed)))
            .filter(|(_, total)| *total != 0)
            .collect()
    }
}
