//! [`Weights`]: each owner's total page weight (see [`Weigh`](super::Weigh)).

use std::{collections::HashMap, sync::Arc};

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
    by_owner: RwLock<HashMap<u64, Arc<AtomicI64>>>,
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
