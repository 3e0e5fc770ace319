//! Group updates: changes to several pages that are applied all together or not at all,
//! both as other threads see them and after a crash.
//!
//! The tree uses them for splits (a new page, the split page and its parent change as one)
//! and the database for batches that span trees. No lock is taken that other groups or
//! readers of other pages wait on; a group holds only the pages it changes, briefly.
//!
//! # Protocol
//! 1. **Claim** every page, in page-id order (so two groups never wait on each other in a
//!    cycle): after checking the version the caller expects and loading the page's
//!    payloads into memory, name the group's [`Claim`] in the page's state and mark the
//!    slot's pointer claimed, both by compare-and-swap, keeping the state (see
//!    `ClaimedBy`). The claim holds what the page becomes if the group commits.
//!    Single-page updates and other groups that meet a claimed page wait for it to be
//!    released; consolidation, eviction and relocation skip it. A page at an unexpected
//!    version releases every claim and the group is [`GroupOutcome::Stale`].
//! 2. **Log**: one member record per page (kinds `GROUP_*`, bodies like the single-page
//!    kinds), then a commit record listing the members' LSNs. Recovery applies the members
//!    of a group only when it finds the commit record (see `open.rs`), so a crash keeps all
//!    of a group or none of it. The members' LSNs are larger than every earlier update of
//!    their pages (those were installed before the claim) and smaller than every later one
//!    (those wait for the claim), so replaying in LSN order replays each page's history.
//! 3. **Commit**: one store to the group's shared flag. From then on a reader of any of the
//!    group's pages sees the group's result, so no reader sees part of a group.
//! 4. **Install** each page's new state (version + 1, its member record as its location),
//!    unmarked, which ends the claim. The claim itself is retired through the epoch, as
//!    readers may still hold it.
//!
//! Marking the slot rather than installing a copy of the state that carries the claim
//! saves, for each page of a batch, an allocation, a copy, a retirement and touching the
//! reference counts of the page's image and fragments (cache misses on a large cache):
//! 8% fewer instructions for the comparison benchmark's batches, and its load 12% faster.
//!
//! While a group is between claiming and installing, a checkpoint starts its replay no
//! later than where the group's records start (the registry below), so that a snapshot
//! that caught the group half installed is completed by replay.

use std::{collections::BTreeMap, time::Duration};

use super::{
    cache::{Inner, PageCache},
    loc::{Loc, Stream},
    page::{PageView, Weigh},
    payload::Payload,
    record,
    state::{PageState, Part},
    stats::Written,
};
use crate::{
    error::{Error, Result},
    ids::{Lsn, PageId},
    log::RecordKind,
    sync::{self, AtomicBool, Mutex, Ordering, epoch},
};

/// What a group does to one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Link a fragment onto the page.
    Link(&'a [u8]),
    /// Replace the page's image (or, on a free id, allocate the page with this image).
    Replace(&'a [u8]),
    /// Free the page.
    Free,
}

/// One page's part of a group update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupUpdate<'a> {
    /// The page.
    pub id: PageId,
    /// The version the caller read, or `None` for an id that must be free (a new page,
    /// from [`PageCache::reserve_id`]).
    pub version: Option<u64>,
    /// What to do.
    pub change: Change<'a>,
    /// How the page's weight changes (see [`Weigh`]); a free leaves it 0.
    pub weigh: Weigh,
}

/// What became of a group update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a stale group did nothing: read the pages again and retry"]
pub enum GroupOutcome {
    /// Every change is installed; each page's version grew by one.
    Installed,
    /// Some page was not at the version the caller read (or a new id was not free):
    /// nothing was changed.
    Stale,
}

/// A group's hold on its pages, named by the claimed state of every one of them: one
/// allocation per group, not one per page.
#[derive(Debug)]
pub(crate) struct Claim {
    /// Owner: the group's thread, which sets it once, after writing the commit record.
    /// Release/acquire: a reader that sees it set sees the claimed pages' states (published
    /// by the claims' compare-and-swaps, before the store).
    committed: AtomicBool,
    /// What each claimed page becomes when the group commits, by page id.
    next: Box<[(PageId, Next)]>,
}

/// What a claimed page becomes when its group commits. A link holds only the new
/// fragment: the rest of the page is the claimed state's own (its parts are all in memory
/// while it is claimed), so a claim copies no list of fragments.
#[derive(Debug)]
enum Next {
    Free,
    Replace(Payload),
    Link(Payload),
}

impl Claim {
    /// The hold of a group making `order`'s changes (sorted by page id), not yet committed.
    fn new(order: &[&GroupUpdate<'_>]) -> Claim {
        let next = order
            .iter()
            .map(|update| {
                let next = match update.change {
                    Change::Free => Next::Free,
                    Change::Replace(image) => Next::Replace(Payload::copy_from(image)),
                    Change::Link(fragment) => Next::Link(Payload::copy_from(fragment)),
                };
                (update.id, next)
            })
            .collect();
        Claim { committed: AtomicBool::new(false), next }
    }

    /// What page `id` becomes; `None` for a page the group does not change (never asked:
    /// only the group's own pages carry its claim).
    fn next(&self, id: PageId) -> Option<&Next> {
        let at = self.next.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        self.next.get(at).map(|(_, next)| next)
    }

    /// The page as readers see it once the group committed, or `None` before the commit.
    /// `Some(None)`: the group frees the page. `claimed` is the state holding this claim.
    pub(crate) fn committed_view<'g>(
        &'g self,
        id: PageId,
        claimed: &'g PageState,
    ) -> Option<Option<PageView<'g>>> {
        if !self.committed.load(Ordering::Acquire) {
            return None;
        }
        let version = claimed.version + 1;
        Some(match self.next(id)? {
            Next::Free => None,
            Next::Replace(image) => Some(PageView::of_image(id, version, image)),
            // A claimed link's state is live and wholly in memory (`claim` loaded it), so
            // the view always exists; without it the page would read as freed, never as
            // something it was not.
            Next::Link(fragment) => PageView::of_state(id, claimed)
                .map(|before| before.with_fragment(version, fragment)),
        })
    }
}

/// The groups between their first record and their last install, by ticket: each with an
/// LSN at or below its first record. A checkpoint replays from no later than the oldest.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// A lock held for one insert or remove per group (and one read per checkpoint).
    groups: Mutex<BTreeMap<u64, Lsn>>,
    /// The next ticket. Owner: `register` (under the lock).
    next: Mutex<u64>,
}

impl InFlight {
    fn register(&self, lower_bound: Lsn) -> u64 {
        let ticket = {
            let mut next = sync::lock(&self.next);
            *next += 1;
            *next
        };
        sync::lock(&self.groups).insert(ticket, lower_bound);
        ticket
    }

    fn unregister(&self, ticket: u64) {
        sync::lock(&self.groups).remove(&ticket);
    }

    /// The lowest LSN a group in flight may have written at.
    pub(crate) fn oldest(&self) -> Option<Lsn> {
        sync::lock(&self.groups).values().min().copied()
    }
}

impl PageCache {
    /// Hands out a free page id for a group update to allocate (with `version: None`).
    /// Give it back with [`PageCache::release_id`] if the group does not use it.
    ///
    /// # Errors
    /// [`Error::Config`] if the page table is full; [`Error::ReadOnly`] if the cache was
    /// opened read-only.
    pub fn reserve_id(&self) -> Result<PageId> {
        self.inner.take_id()
    }

    /// Gives back an id from [`PageCache::reserve_id`] that no group allocated.
    pub fn release_id(&self, id: PageId) {
        let mut free = sync::lock(&self.inner.free_ids);
        free.push(id);
        // Keep the list popping lowest first.
        free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Applies `updates` (each to a different page) all together or not at all, both as
    /// other threads see them and after a crash. See the module docs for how.
    ///
    /// # Errors
    /// [`Error::Config`] if two updates name the same page; the log's errors (then
    /// nothing was applied); [`Error::ReadOnly`] if the cache was opened read-only.
    pub fn apply_group(&self, updates: &[GroupUpdate<'_>]) -> Result<GroupOutcome> {
        let mut order: Vec<&GroupUpdate<'_>> = updates.iter().collect();
        order.sort_unstable_by_key(|u| u.id);
        self.apply_group_in_order(&order, false)
    }

    /// [`PageCache::apply_group`] of updates already in page order, for a caller that
    /// sorted them anyway (the tree's plan does, to find a page named twice): sorting the
    /// updates again was 2% of a bulk load's instructions.
    ///
    /// With `sync_early`, the delta stream's flusher is asked to write and sync the group's
    /// records as soon as they are logged, while this thread installs the pages and
    /// consolidates the long ones: a caller that flushes next (a durable batch) then finds
    /// the sync done or under way, rather than starting it after the installs.
    ///
    /// # Errors
    /// As [`PageCache::apply_group`]; [`Error::Config`] too if `order` is not in
    /// increasing page order (claims are taken in that order, which is what keeps two
    /// groups from waiting for each other).
    pub(crate) fn apply_group_in_order(
        &self,
        order: &[&GroupUpdate<'_>],
        sync_early: bool,
    ) -> Result<GroupOutcome> {
        self.inner.writable()?;
        if let Some(pair) = order.windows(2).find(|w| w[0].id >= w[1].id) {
            let why = if pair[0].id == pair[1].id { "twice" } else { "out of order" };
            return Err(Error::Config(format!("a group update names {} {why}", pair[0].id)));
        }
        let inner = &*self.inner;
        let ticket = inner.in_flight.register(inner.log(Stream::Delta).written_lsn());
        let result = inner.run_group(order, sync_early);
        inner.in_flight.unregister(ticket);
        let Some((commit, long)) = result? else {
            return Ok(GroupOutcome::Stale);
        };
        for update in order {
            match update.change {
                Change::Free => sync::lock(&inner.free_ids).push(update.id),
                Change::Link(_) => {}
                Change::Replace(_) => inner.table.touch(update.id),
            }
        }
        // Each long page's fragments lie in buffers of their own, all over the heap: the
        // next page's are asked for while this one is merged.
        for (at, &id) in long.iter().enumerate() {
            if let Some(&next) = long.get(at + 1) {
                inner.table.prefetch_fragments(next, true, &epoch::pin());
            }
            inner.consolidate_or_count(id);
        }
        inner.after_write(commit);
        Ok(GroupOutcome::Installed)
    }
}

/// How many members ahead of the one it claims or installs a group asks for a page's
/// state (see [`Inner::prefetch_ahead_of`]). A batch's pages lie all over the page table
/// and the heap, and meeting each state cold made the claiming and installing loops wait
/// on memory for most of their time.
const GROUP_AHEAD: usize = 8;

impl Inner {
    /// Claims, logs, commits and installs; returns the commit record's location and the
    /// pages its links left long enough to consolidate, or `None` if the group was stale.
    fn run_group(
        &self,
        order: &[&GroupUpdate<'_>],
        sync_early: bool,
    ) -> Result<Option<(Loc, Vec<PageId>)>> {
        let claim = Box::new(Claim::new(order));
        let result = self.claim_and_apply(order, &claim, sync_early);
        // Readers may still hold the claim, loaded from a state that names it: it goes
        // through the epoch, now that no slot is marked for it.
        epoch::pin().defer(move || drop(claim));
        result
    }

    fn claim_and_apply(
        &self,
        order: &[&GroupUpdate<'_>],
        claim: &Claim,
        sync_early: bool,
    ) -> Result<Option<(Loc, Vec<PageId>)>> {
        // Each page is read once on the way: its version when it is claimed (no other
        // change can come in while it is), its length when it is installed.
        let mut versions = Vec::with_capacity(order.len());
        for (count, update) in order.iter().enumerate() {
            self.prefetch_ahead_of(order, count);
            let claimed = order.get(..count).unwrap_or_default();
            match self.claim(update, claim) {
                Ok(Some(version)) => versions.push(version),
                Ok(None) => {
                    self.release(claimed, claim);
                    return Ok(None);
                }
                Err(error) => {
                    self.release(claimed, claim);
                    return Err(error);
                }
            }
        }
        let (locs, commit) = match self.write_group(order, &versions) {
            Ok(written) => written,
            Err(error) => {
                self.release(order, claim);
                return Err(error);
            }
        };
        if sync_early {
            // Not waited for here: the caller's flush waits, and reports a failure, which
            // is why one here is dropped.
            drop(self.log(Stream::Delta).start_flush());
        }
        claim.committed.store(true, Ordering::Release);
        let mut long = Vec::new();
        let (mut fragments, mut images) = (0, 0);
        for (count, (update, loc)) in order.iter().zip(locs).enumerate() {
            self.prefetch_lists_ahead_of(order, count);
            let frags = self.install_member(update, claim, loc);
            if frags >= self.config.consolidate_after {
                long.push(update.id);
            }
            match update.change {
                Change::Link(fragment) => fragments += fragment.len(),
                Change::Replace(image) => images += image.len(),
                Change::Free => {}
            }
        }
        self.counters.note_written(Written::Fragment, fragments);
        self.counters.note_written(Written::Image, images);
        Ok(Some((commit, long)))
    }

    /// Asks for the state of the page [`GROUP_AHEAD`] members after member `count`, for a
    /// loop over the members that is about to work on that one. Pinned for the load only:
    /// the loops wait for other groups' claims and for log buffers, which a guard held
    /// across them would make every thread's garbage wait for too.
    fn prefetch_ahead_of(&self, order: &[&GroupUpdate<'_>], count: usize) {
        if let Some(ahead) = order.get(count.saturating_add(GROUP_AHEAD)) {
            self.table.prefetch_state(ahead.id, &epoch::pin());
        }
    }

    /// For the loop that installs the members, about to install member `count`: asks for
    /// the fragment list of the page [`GROUP_AHEAD`] members on (its state is in cache: the
    /// group claimed it) and for the fragments of the page half as far on (whose list has
    /// arrived by then). A link copies the page's list, raising each fragment's count.
    fn prefetch_lists_ahead_of(&self, order: &[&GroupUpdate<'_>], count: usize) {
        let guard = epoch::pin();
        if let Some(ahead) = order.get(count.saturating_add(GROUP_AHEAD)) {
            self.table.prefetch_list(ahead.id, &guard);
        }
        if let Some(ahead) = order.get(count.saturating_add(GROUP_AHEAD / 2)) {
            self.table.prefetch_fragments(ahead.id, false, &guard);
        }
    }

    /// Claims one page for the group: its version, or `None` if it is not at the expected
    /// version.
    fn claim(&self, update: &GroupUpdate<'_>, claim: &Claim) -> Result<Option<u64>> {
        loop {
            let guard = epoch::pin();
            let (slot, mut current) = match update.version {
                None => self.table.load_or_create(update.id, &guard),
                Some(_) => match self.table.load(update.id, &guard) {
                    Some(found) => found,
                    None => return Ok(None),
                },
            };
            if current.is_being_claimed(&guard) {
                drop(guard);
                self.wait_unclaimed(update.id);
                continue;
            }
            let state = current.state();
            let live = state.and_then(|s| s.live.as_ref());
            let expected = match update.version {
                None => live.is_none(),
                Some(version) => live.is_some() && current.version() == version,
            };
            if !expected {
                return Ok(None);
            }
            // Readers must be able to see the page's next contents from memory alone, so
            // the page is loaded first (and eviction skips it while it is claimed). An id
            // never used gets a state to claim: free, version 0.
            let ready = match state {
                Some(state) if !state.holds_all() => match self.load_parts(update.id, state) {
                    Ok(loaded) => Some(loaded),
                    Err(_) if !slot.load(&guard).is(&current) => continue,
                    Err(error) => return Err(error),
                },
                Some(_) => None,
                None => Some(PageState::free(0)),
            };
            if let Some(ready) = ready {
                match self.install(slot, current, ready, &guard) {
                    Ok(installed) => current = installed,
                    Err(_) => continue,
                }
            }
            let Some(state) = current.state() else {
                continue;
            };
            // Taken, then marked: the mark is the claim (see `ClaimedBy`).
            if !state.claimed_by.take(claim, &guard) {
                continue;
            }
            if slot.mark(current, &guard).is_ok() {
                return Ok(Some(state.version));
            }
            state.claimed_by.clear();
        }
    }

    /// Writes the members' records and the commit record; returns the members' locations
    /// and the commit record's.
    /// `versions` are the pages' versions, as claimed.
    fn write_group(&self, order: &[&GroupUpdate<'_>], versions: &[u64]) -> Result<(Vec<Loc>, Loc)> {
        let delta = self.log(Stream::Delta);
        let mut locs = Vec::with_capacity(order.len());
        for (update, claimed) in order.iter().zip(versions) {
            let version = claimed + 1;
            let (kind, payload): (RecordKind, &[u8]) = match update.change {
                Change::Link(fragment) => (record::GROUP_LINK, fragment),
                Change::Replace(image) => (record::GROUP_REPLACE, image),
                Change::Free => (record::GROUP_FREE, &[]),
            };
            let head = record::Head::update(update.id, version, update.weigh);
            let reservation = delta.reserve_parts(kind, &[head.as_bytes(), payload])?;
            locs.push(Loc {
                stream: Stream::Delta,
                lsn: reservation.lsn(),
                len: reservation.len(),
            });
            // Inert until the commit record: completing it at once keeps no buffer waiting.
            reservation.complete();
        }
        let commit = delta.reserve(record::GROUP_COMMIT, &record::encode_commit(&locs))?;
        let loc = Loc { stream: Stream::Delta, lsn: commit.lsn(), len: commit.len() };
        commit.complete();
        Ok((locs, loc))
    }

    /// Installs one member's new state in place of its claimed one; the number of
    /// fragments the page has then.
    fn install_member(&self, update: &GroupUpdate<'_>, claim: &Claim, loc: Loc) -> usize {
        loop {
            let guard = epoch::pin();
            let Some((slot, current)) = self.table.load(update.id, &guard) else {
                return 0;
            };
            let Some(state) = current.state() else {
                return 0;
            };
            if !current.is_held_by(claim, &guard) {
                return 0; // Only this thread releases its claims; nothing else to do.
            }
            let version = state.version + 1;
            let weighs = update.weigh.apply(state.weighs());
            // The claim holds the new bytes already: share them rather than copy them again.
            let next = claim.next(update.id);
            let new = match (update.change, state.live.as_ref()) {
                (Change::Free, _) => PageState::free(version),
                (Change::Replace(image), _) => {
                    let bytes = match next {
                        Some(Next::Replace(bytes)) => bytes.clone(),
                        _ => Payload::copy_from(image),
                    };
                    PageState::live(version, Part::resident(loc, bytes), Vec::new(), weighs)
                }
                (Change::Link(fragment), Some(live)) => {
                    let bytes = match next {
                        Some(Next::Link(bytes)) => bytes.clone(),
                        _ => Payload::copy_from(fragment),
                    };
                    let summary = live.summary | self.materializer.summarize(&bytes);
                    let frags = live.frags.with(Part::resident(loc, bytes));
                    PageState::live(version, live.base.clone(), frags, weighs).summarized(summary)
                }
                // A claimed link always holds a live page (`claim` checked it).
                (Change::Link(_), None) => PageState::free(state.version),
            };
            // The change ends the claim; the replaced state keeps naming it, unread.
            let frags = new.live.as_ref().map_or(0, |live| live.frags.len());
            if self.install_as(slot, current, new, false, &guard).is_ok() {
                return frags;
            }
        }
    }

    /// Releases `claim` on the pages of `claimed`, for a group that did not commit.
    fn release(&self, claimed: &[&GroupUpdate<'_>], claim: &Claim) {
        for update in claimed {
            loop {
                let guard = epoch::pin();
                let Some((slot, current)) = self.table.load(update.id, &guard) else {
                    break;
                };
                let Some(state) = current.state() else {
                    break;
                };
                if !current.is_held_by(claim, &guard) {
                    break;
                }
                // Unmarked first: until then the state must keep naming the group for
                // readers who see the mark.
                if slot.unmark(current, &guard).is_ok() {
                    state.claimed_by.clear();
                    break;
                }
            }
        }
    }

    /// Waits until page `id` is not claimed. Groups hold pages for a few log appends, so
    /// this spins briefly, then yields, then sleeps in short steps.
    pub(crate) fn wait_unclaimed(&self, id: PageId) {
        for round in 0u32.. {
            {
                let guard = epoch::pin();
                let claimed = self
                    .table
                    .load(id, &guard)
                    .is_some_and(|(_, current)| current.is_being_claimed(&guard));
                if !claimed {
                    return;
                }
            }
            match round {
                0..64 => sync::spin_hint(),
                64..128 => sync::thread::yield_now(),
                _ => sync::sleep(Duration::from_micros(50)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{config::PageCacheConfig, pagecache::Materializer, storage::MemStorage};

    /// Keeps the base: this test never reads a page's contents.
    struct Base;

    impl Materializer for Base {
        fn merge(&self, base: &[u8], _: &[&[u8]]) -> Vec<u8> {
            base.to_vec()
        }
    }

    /// A tiny cache in memory.
    fn open() -> Result<PageCache> {
        PageCache::open(Arc::new(MemStorage::new()), PageCacheConfig::tiny(), Arc::new(Base))
    }

    /// A group naming a page twice is refused, and so is one handed over out of page order
    /// (claims are taken in that order: two groups claiming in other orders could wait for
    /// each other for ever); neither changes anything. `apply_group` itself takes any order.
    #[test]
    fn a_group_naming_a_page_twice_or_out_of_order_changes_nothing()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let cache = open()?;
        let (low, low_version) = cache.allocate(b"low")?;
        let (high, high_version) = cache.allocate(b"high")?;
        assert!(low < high);
        let link = |id, version| GroupUpdate {
            id,
            version: Some(version),
            change: Change::Link(b"+1"),
            weigh: Weigh::Keep,
        };
        let (to_low, to_high) = (link(low, low_version), link(high, high_version));
        let twice = cache.apply_group(&[link(low, low_version), link(low, low_version)]);
        assert!(matches!(twice, Err(Error::Config(_))), "{twice:?}");
        let backwards = cache.apply_group_in_order(&[&to_high, &to_low], false);
        assert!(matches!(backwards, Err(Error::Config(_))), "{backwards:?}");
        for (id, version) in [(low, low_version), (high, high_version)] {
            let page = cache.get(id)?.ok_or("page gone")?;
            assert_eq!((page.version(), page.fragments().len()), (version, 0), "{id} changed");
        }
        assert_eq!(cache.apply_group(&[to_high, to_low])?, GroupOutcome::Installed);
        assert_eq!(cache.get(low)?.ok_or("page gone")?.version(), low_version + 1);
        Ok(())
    }

    /// While a group holds a page, its slot is marked and its state names the group: a
    /// load (version kept) keeps both, another change to the version is refused, and
    /// giving the page back clears both, so the next group can take it.
    #[test]
    fn a_claimed_page_takes_only_changes_that_keep_its_version()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let cache = open()?;
        let (id, version) = cache.allocate(b"base")?;
        let inner = &*cache.inner;
        let update = GroupUpdate {
            id,
            version: Some(version),
            change: Change::Link(b"+1"),
            weigh: Weigh::Keep,
        };
        let claim = Claim::new(&[&update]);
        assert_eq!(inner.claim(&update, &claim)?, Some(version), "the page is at that version");

        let guard = epoch::pin();
        let (slot, current) = inner.table.load(id, &guard).ok_or("the page is gone")?;
        let state = current.state().ok_or("no state")?;
        assert!(current.is_held_by(&claim, &guard));
        // A logical change by anyone but the group is refused.
        let live = state.live.as_ref().ok_or("not live")?;
        let changed = PageState::live(version + 1, live.base.clone(), Vec::new(), (0, 0));
        assert!(inner.install(slot, current, changed, &guard).is_err());
        // A change that keeps the version keeps the claim.
        let kept = PageState::live(version, live.base.clone(), Vec::new(), (0, 0));
        let kept = inner.install(slot, current, kept, &guard).map_err(|_| "a load was refused")?;
        assert!(kept.is_held_by(&claim, &guard));
        drop(guard);

        // Given back: unmarked, named by no group, and claimable again.
        inner.release(&[&update], &claim);
        let guard = epoch::pin();
        let (_, current) = inner.table.load(id, &guard).ok_or("the page is gone")?;
        assert!(!current.is_being_claimed(&guard));
        drop(guard);
        let again = Claim::new(&[&update]);
        assert!(inner.claim(&update, &again)?.is_some(), "the page is free to claim again");
        inner.release(&[&update], &again);
        Ok(())
    }
}
