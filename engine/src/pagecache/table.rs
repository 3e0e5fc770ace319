//! [`PageTable`]: the lock-free map from [`PageId`] to the page's current [`PageState`].
//!
//! # Thread safety
//! Readers pin an epoch ([`epoch::pin`]), load a slot and read the state it points to, with
//! no lock and no write to shared memory. Writers build a new state and swap it in with a
//! compare-and-swap; the state they replaced is retired to the epoch collector, which frees
//! it only once every thread that was pinned when it was unlinked has unpinned. So a reader
//! never sees a freed state, and a state is freed exactly once.
//!
//! # Invariants
//! - A slot's pointer is null (the id was never allocated: a free page of version 0) or
//!   points to a state that no other slot points to.
//! - A state is retired only by the thread whose compare-and-swap unlinked it.
//! - The table only grows: slots are never removed, so `&Slot` lives as long as the table.

use super::{
    group::Claim,
    pages::{PageImage, Pages},
    payload,
    slots::Slots,
    state::{Frags, Live, PageState, Part},
};
use std::sync::Arc;

use crate::{
    ids::PageId,
    prefetch,
    sync::{
        self, AtomicU64, Ordering,
        epoch::{self, Atomic, Guard, Owned, Shared},
    },
};

/// One page's entry.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The page's current state. Owner: whoever wins a compare-and-swap on it; null until
    /// the id is first allocated, never null again after that.
    state: Atomic<PageState>,
    /// The address of the current state's base image in memory (0: not in memory), so that
    /// a reader can ask the processor for the image while it loads the state, instead of
    /// after (see [`Slot::image_hint`]). Never read through: a stale value costs a wasted
    /// prefetch, nothing else. Owner: the thread whose compare-and-swap installed the
    /// state, which stores it right after; any value may follow any other. Relaxed: it
    /// orders nothing.
    image: AtomicU64,
}

/// The tag of a slot's pointer while a group update holds the page. Claiming is marking
/// the pointer in place rather than installing a copy of the state that says so: no
/// allocation, no copy, nothing to retire, for each page of a batch.
const CLAIMED: usize = 1;

/// How many ids ahead of the page it records a pass over the table asks for a state
/// ([`PageTable::prefetch_ahead`]). With 8, a checkpoint's pass at 1M keys (30k pages)
/// took 8.7 to 9.0 ms (medians of 27) instead of 11.1 to 13.4. Asking for the fragment
/// lists too (and two lines of each state) took the last passes of a 1M load and the
/// removals from 8.6 to 12.3 ms to 4.9 to 8.0 (two runs of each), and the close after
/// the benchmark from 26.0 and 26.2 ms to 21.5 and 22.2. The cleaner's pass, which asked
/// for nothing, took 8.3 to 8.9 ms instead of 11.3 to 12.8 where it relocated 5,700
/// pages.
const PASS_AHEAD: u64 = 8;

/// Cache lines a pass over the table asks for of each page state (a state is about 100
/// bytes, wherever the allocator put it).
const STATE_LINES: usize = 2;

/// At most this many lines of one fragment are asked for ahead of a consolidation: under
/// random writes a fragment is an entry or two, a few lines.
const MAX_FRAGMENT_LINES: usize = 8;

/// At most this many cache lines of a page's fragment list are asked for ahead of a pass
/// (a list of `consolidate_after` parts at 40 bytes each, with room to spare).
const MAX_LIST_LINES: usize = 6;

/// The current state of a slot, as loaded under a guard.
#[derive(Clone, Copy)]
pub(crate) struct Current<'g> {
    shared: Shared<'g, PageState>,
}

impl<'g> Current<'g> {
    /// The state, or `None` for a slot never allocated.
    pub(crate) fn state(&self) -> Option<&'g PageState> {
        #[expect(unsafe_code, reason = "dereferencing an epoch-protected pointer")]
        // SAFETY: `shared` was loaded under the guard `'g` borrows, and states are retired
        // only through a deferred function after being unlinked, so the state cannot be
        // freed while that guard is alive.
        unsafe {
            self.shared.as_ref()
        }
    }

    /// Whether `self` and `other` are the same state (not merely equal ones). Sound under
    /// the guard: a state cannot be freed and its address reused while the guard lives.
    pub(crate) fn is(&self, other: &Current<'g>) -> bool {
        self.shared == other.shared
    }

    /// Whether the slot was never written.
    fn is_empty(&self) -> bool {
        self.shared.is_null()
    }

    /// Whether a group update holds the page (see `group.rs`): the slot is marked, and the
    /// state's [`ClaimedBy`](super::state::ClaimedBy) names the group.
    pub(crate) fn is_claimed(&self) -> bool {
        self.shared.tag() == CLAIMED
    }

    /// Whether `claim` holds the page: the slot is marked and the state names `claim`.
    pub(crate) fn is_held_by(&self, claim: &Claim, guard: &Guard) -> bool {
        self.is_claimed() && self.state().is_some_and(|s| s.claimed_by.is(claim, guard))
    }

    /// Whether a group holds the page or is taking it (named in the state, not yet
    /// marked): either way, other groups wait.
    pub(crate) fn is_being_claimed(&self, guard: &Guard) -> bool {
        self.is_claimed() || self.state().is_some_and(|s| s.claimed_by.is_taken(guard))
    }

    /// The page's version (0 for a slot never allocated).
    pub(crate) fn version(&self) -> u64 {
        self.state().map_or(0, |s| s.version)
    }
}

impl Slot {
    /// Asks the memory system for the state this slot holds ([`STATE_LINES`] lines): a
    /// hint for a loop that will load it a few steps on.
    fn prefetch_state(&self, guard: &Guard) {
        // Only its address is used: a relaxed load will do.
        let state = self.state.load(Ordering::Relaxed, guard);
        prefetch::at_address(state.as_raw().addr(), STATE_LINES);
    }

    /// Where the current state's base image was in memory when it was installed (0: not
    /// in memory): an address to prefetch, never to read through.
    pub(crate) fn image_hint(&self) -> usize {
        usize::try_from(self.image.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Loads the current state.
    pub(crate) fn load<'g>(&self, guard: &'g Guard) -> Current<'g> {
        // Acquire: pairs with the release of `install`, so the state's contents are visible.
        Current { shared: self.state.load(Ordering::Acquire, guard) }
    }

    /// Replaces `current` by `new` if the slot still holds `current`. On success the old
    /// state is retired (freed once no pinned thread can hold it, its heap bytes then taken
    /// off `counted`) and the new one is returned; on failure `new` comes back with the
    /// state the slot holds now. With `claimed`, the new state stays claimed by the group
    /// that claimed `current` (which must be claimed): a change that keeps the version
    /// keeps the claim.
    pub(crate) fn install<'g>(
        &self,
        current: Current<'g>,
        new: PageState,
        claimed: bool,
        guard: &'g Guard,
        counted: &Arc<AtomicU64>,
    ) -> Result<Current<'g>, (PageState, Current<'g>)> {
        let image = new.live.as_ref().and_then(|live| live.base.bytes.as_ref());
        let image = image.map_or(0, |bytes| to_u64(bytes.as_ptr().addr()));
        if claimed && let Some(old) = current.state() {
            new.claimed_by.copy_from(&old.claimed_by, guard);
        }
        let owned = Owned::new(new).with_tag(if claimed { CLAIMED } else { 0 });
        // AcqRel on success: release publishes the new state's contents; acquire orders the
        // retirement after every earlier write to the old one. Acquire on failure: we read
        // the state that won.
        match self.state.compare_exchange(
            current.shared,
            owned,
            Ordering::AcqRel,
            Ordering::Acquire,
            guard,
        ) {
            Ok(installed) => {
                self.image.store(image, Ordering::Relaxed);
                if let Some(old) = current.state() {
                    let (old_bytes, counted) = (old.heap_bytes(), Arc::clone(counted));
                    let retired = current.shared.with_tag(0);
                    // One deferred function frees the state and takes its bytes off the
                    // count, rather than one for each: a bulk load retires a state per
                    // write, and every 64 deferred functions cost a 2 KiB bag.
                    #[expect(unsafe_code, reason = "retiring an unlinked state to the epoch")]
                    // SAFETY: our compare-and-swap unlinked `retired` from the only slot
                    // that pointed to it, so no thread can load it any more; threads that
                    // loaded it earlier are pinned, and the collector runs this only after
                    // they unpin. Only the winner of this CAS retires it, so exactly once;
                    // nothing else owns it, so taking ownership back to drop it is sound.
                    unsafe {
                        guard.defer_unchecked(move || {
                            drop(retired.into_owned());
                            counted.fetch_sub(old_bytes, Ordering::Relaxed);
                        });
                    }
                }
                Ok(Current { shared: installed })
            }
            Err(error) => Err((*error.new.into_box(), Current { shared: error.current })),
        }
    }

    /// Marks `current` (unmarked) claimed, keeping the state: the claim of a group update
    /// that already took the state (see [`ClaimedBy`](super::state::ClaimedBy)). On
    /// failure, the state the slot holds now.
    pub(crate) fn mark<'g>(
        &self,
        current: Current<'g>,
        guard: &'g Guard,
    ) -> Result<Current<'g>, Current<'g>> {
        self.swap_mark(current, current.shared.with_tag(CLAIMED), guard)
    }

    /// Unmarks `current` (marked), keeping the state: a group update gives the page back.
    pub(crate) fn unmark<'g>(
        &self,
        current: Current<'g>,
        guard: &'g Guard,
    ) -> Result<Current<'g>, Current<'g>> {
        self.swap_mark(current, current.shared.with_tag(0), guard)
    }

    fn swap_mark<'g>(
        &self,
        current: Current<'g>,
        marked: Shared<'g, PageState>,
        guard: &'g Guard,
    ) -> Result<Current<'g>, Current<'g>> {
        // AcqRel on success: release publishes the state's `ClaimedBy` (set before the
        // mark) to readers who see the mark; acquire orders what follows after earlier
        // installs. Nothing is retired: the state stays.
        self.state
            .compare_exchange(current.shared, marked, Ordering::AcqRel, Ordering::Acquire, guard)
            .map(|shared| Current { shared })
            .map_err(|error| Current { shared: error.current })
    }
}

/// What a slot holds, without turning a cold entry into a state.
pub(crate) enum Peek<'a> {
    /// The page's current state.
    State(&'a PageState),
    /// The page's checkpoint entry: it has not been used since open.
    Cold(PageImage<'a>),
    /// An id never allocated.
    Empty,
}

/// The page table: a grow-only array of [`Slot`]s indexed by page id.
///
/// Pages recovered from a checkpoint stay in the checkpoint's compact form (`cold`) until
/// first used: a null slot below `cold.len()` stands for its cold entry, and `load` turns
/// the entry into a state (one compare-and-swap from null, so two threads doing it at once
/// agree). Opening a large database therefore allocates nothing per page.
#[derive(Debug, Default)]
pub(crate) struct PageTable {
    slots: Slots<Slot>,
    /// The checkpoint's entries. Never changed after open.
    cold: Pages,
    /// The eviction clock's reference bits, 64 page ids a word, kept apart from the slots so
    /// that a slot is one pointer. A bit is set when the page is used while resident and
    /// cleared by the clock hand: a page read once (a scan) is evicted before a page read
    /// twice. Owner: readers and writers set, the evictor clears. Relaxed: a hint, it
    /// orders nothing.
    referenced: Slots<AtomicU64>,
    /// Sum of `PageState::heap_bytes` over every state installed and not yet freed: a
    /// replaced state still counts until the epoch collector frees it, since until then
    /// the process still holds it. Owner: `install` adds, and the collector subtracts (a
    /// deferred function). Relaxed: a budget figure, it orders nothing. Shared (`Arc`)
    /// because the deferred functions may outlive the table.
    state_bytes: Arc<AtomicU64>,
}

impl PageTable {
    pub(crate) fn new(cold: Pages) -> PageTable {
        PageTable {
            slots: Slots::new(),
            cold,
            referenced: Slots::new(),
            state_bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Marks `id` as used while resident.
    pub(crate) fn touch(&self, id: PageId) {
        let (word, bit) = (id.get() / 64, 1 << (id.get() % 64));
        let bits = self.referenced.get(word);
        // Most touches find the bit set already: read before writing the shared word.
        if bits.load(Ordering::Relaxed) & bit == 0 {
            bits.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Clears `id`'s reference bit, returning whether it was set.
    pub(crate) fn take_touch(&self, id: PageId) -> bool {
        let (word, bit) = (id.get() / 64, 1 << (id.get() % 64));
        self.referenced
            .get_existing(word)
            .is_some_and(|bits| bits.fetch_and(!bit, Ordering::Relaxed) & bit != 0)
    }

    /// The checkpoint entry of `id`, if it has one.
    fn cold(&self, id: PageId) -> Option<PageImage<'_>> {
        self.cold.get(usize::try_from(id.get()).ok()?)
    }

    /// The slot of `id` and its current state, a cold entry made a state first; `None` if
    /// the id was never handed out (neither a slot nor a cold entry exists).
    pub(crate) fn load<'t, 'g>(
        &'t self,
        id: PageId,
        guard: &'g Guard,
    ) -> Option<(&'t Slot, Current<'g>)> {
        // A length check, not a decode: this is on every read and update.
        let in_checkpoint = usize::try_from(id.get()).is_ok_and(|index| index < self.cold.len());
        if !in_checkpoint {
            let slot = self.slots.get_existing(id.get())?;
            return Some((slot, slot.load(guard)));
        }
        Some(self.load_or_create(id, guard))
    }

    /// As `load`, creating the slot if needed: for allocating `id`.
    pub(crate) fn load_or_create<'t, 'g>(
        &'t self,
        id: PageId,
        guard: &'g Guard,
    ) -> (&'t Slot, Current<'g>) {
        let slot = self.slots.get(id.get());
        let current = slot.load(guard);
        if !current.is_empty() {
            return (slot, current);
        }
        let state = match self.cold(id) {
            Some(PageImage::Live { version, weighs, base, frags }) => PageState::live(
                version,
                Part::cold(base),
                frags.map(Part::cold).collect::<Frags>(),
                weighs,
            ),
            Some(PageImage::Free { version }) if version > 0 => PageState::free(version),
            _ => return (slot, current),
        };
        match self.install(slot, current, state, false, guard) {
            Ok(installed) => (slot, installed),
            Err((_, now)) => (slot, now),
        }
    }

    /// What `id`'s slot holds, leaving a cold entry cold.
    pub(crate) fn peek<'t>(&'t self, id: PageId, guard: &'t Guard) -> Peek<'t> {
        let current = self.slots.get_existing(id.get()).map(|slot| slot.load(guard));
        if let Some(state) = current.and_then(|c| c.state()) {
            return Peek::State(state);
        }
        match self.cold(id) {
            Some(image) => Peek::Cold(image),
            None => Peek::Empty,
        }
    }

    /// For a pass over the page table in id order, about to record page `id`: asks the
    /// memory system for the state of the page [`PASS_AHEAD`] ids on, and for the
    /// fragment list of the page half as far on, whose state was asked for earlier and has
    /// arrived by then. States and lists lie wherever the allocator put them, and a pass
    /// that meets each one cold waits for each. Only hints: a page without a state (a
    /// free id, or one still in the checkpoint's compact form) is passed over, not decoded.
    pub(crate) fn prefetch_ahead(&self, id: PageId, guard: &Guard) {
        let ahead = |by: u64| PageId(id.get().saturating_add(by));
        if let Some(slot) = self.slots.get_existing(ahead(PASS_AHEAD).get()) {
            slot.prefetch_state(guard);
        }
        self.prefetch_list(ahead(PASS_AHEAD / 2), guard);
    }

    /// Asks the memory system for page `id`'s state, and for the start of its base image
    /// (where the image's reference count lies, which a new state's copy of the base
    /// raises): for a loop over pages in a known order (a group's), a few pages ahead of
    /// the one it works on. Only a hint, like [`PageTable::prefetch_ahead`].
    pub(crate) fn prefetch_state(&self, id: PageId, guard: &Guard) {
        if let Some(slot) = self.slots.get_existing(id.get()) {
            slot.prefetch_state(guard);
            prefetch::at_address(slot.image_hint().saturating_sub(payload::COUNTS_BEFORE), 1);
        }
    }

    /// Asks for page `id`'s fragment list, whose state is in cache already or was asked
    /// for a few steps before: for a pass ([`PageTable::prefetch_ahead`]), or for the group
    /// loop that installs it in a few steps (the group claimed it). See
    /// [`PageTable::prefetch_fragments`].
    pub(crate) fn prefetch_list(&self, id: PageId, guard: &Guard) {
        if let Some(live) = self.live_in(id, guard) {
            let parts: &[Part] = &live.frags;
            let lines = std::mem::size_of_val(parts).div_ceil(64).min(MAX_LIST_LINES);
            prefetch::at_address(parts.as_ptr().addr(), lines);
        }
    }

    /// Asks for page `id`'s fragments, whose list was asked for a few steps before
    /// ([`PageTable::prefetch_list`]) or is in cache: with `whole`, each fragment's bytes
    /// (up to [`MAX_FRAGMENT_LINES`] lines), for a consolidation to merge; otherwise only
    /// their reference counts, which a link raises when it copies the list (each fragment
    /// is a buffer of its own).
    pub(crate) fn prefetch_fragments(&self, id: PageId, whole: bool, guard: &Guard) {
        if let Some(live) = self.live_in(id, guard) {
            for bytes in live.frags.iter().filter_map(|part| part.bytes.as_ref()) {
                let start = bytes.counts_address();
                let lines = if whole {
                    (bytes.as_ptr().addr() + bytes.len() - start).div_ceil(64)
                } else {
                    1
                };
                prefetch::at_address(start, lines.min(MAX_FRAGMENT_LINES));
            }
        }
    }

    /// Page `id`'s contents, if its slot exists and it is live (no cold entry is decoded).
    fn live_in<'g>(&self, id: PageId, guard: &'g Guard) -> Option<&'g Live> {
        let state = self.slots.get_existing(id.get())?.load(guard).state()?;
        state.live.as_ref()
    }

    /// The slot of `id` if its part of the table exists (no cold entry is made a state).
    pub(crate) fn existing(&self, id: PageId) -> Option<&Slot> {
        self.slots.get_existing(id.get())
    }

    /// [`Slot::install`], keeping the memory figure in step.
    pub(crate) fn install<'g>(
        &self,
        slot: &Slot,
        current: Current<'g>,
        new: PageState,
        claimed: bool,
        guard: &'g Guard,
    ) -> Result<Current<'g>, (PageState, Current<'g>)> {
        // Counted before it is visible, so whoever replaces it later subtracts after this
        // add and the figure never dips below zero.
        let new_bytes = new.heap_bytes();
        self.state_bytes.fetch_add(new_bytes, Ordering::Relaxed);
        // The replaced state's bytes come off when the collector frees it (`Slot::install`).
        slot.install(current, new, claimed, guard, &self.state_bytes).inspect_err(|_| {
            self.state_bytes.fetch_sub(new_bytes, Ordering::Relaxed);
        })
    }

    /// Memory the table holds: its arrays, the cold entries and every installed state.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.slots.allocated_bytes()
            + self.referenced.allocated_bytes()
            + self.cold.heap_bytes()
            + self.state_bytes.load(Ordering::Relaxed)
    }
}

/// Tables with more bytes of slots than this (about 30,000 pages) are freed on a thread of
/// their own.
const FREE_ON_A_THREAD_BYTES: u64 = 256 << 10;

impl Drop for PageTable {
    fn drop(&mut self) {
        let states = Teardown(std::mem::take(&mut self.slots));
        // Freeing a large table is a free per state, image and fragment, about 2 µs a page
        // on a large heap (150 ms for the 70,000 pages of a 1M-key tree): a thread of its
        // own does it, so that closing a database does not wait for it. If no thread can be
        // started, the closure is dropped here and the states with it.
        if states.0.allocated_bytes() > FREE_ON_A_THREAD_BYTES {
            let _ = sync::spawn("grove-free", move || drop(states));
        }
    }
}

/// A table's slots, once nothing else can reach them: dropping this frees every state.
struct Teardown(Slots<Slot>);

impl Drop for Teardown {
    fn drop(&mut self) {
        for (_, slot) in self.0.iter_existing() {
            #[expect(unsafe_code, reason = "freeing the states at teardown")]
            // SAFETY: the table that owned these slots is gone, so no thread can reach them;
            // states retired earlier are owned by the collector, and the current one is
            // owned by the slot alone (invariant 1), so taking ownership frees it exactly
            // once.
            unsafe {
                let current = slot.state.load(Ordering::Relaxed, epoch::unprotected());
                if !current.is_null() {
                    drop(current.into_owned());
                }
            }
        }
        // The payloads just freed went to the buffer pool: a closed cache leaves none there.
        super::payload::release_pool();
    }
}

/// An address as stored in a slot (addresses fit in 64 bits on every target Grove builds for).
fn to_u64(address: usize) -> u64 {
    u64::try_from(address).unwrap_or(0)
}
