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

use super::{slots::Slots, state::PageState};
use crate::{
    ids::PageId,
    sync::{
        AtomicBool, Ordering,
        epoch::{self, Atomic, Guard, Owned, Shared},
    },
};

/// One page's entry.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The page's current state. Owner: whoever wins a compare-and-swap on it; null until
    /// the id is first allocated, never null again after that.
    state: Atomic<PageState>,
    /// Set when the page is used while resident, cleared by the evictor's clock hand: a page
    /// read once (a scan) is evicted before a page read twice. Relaxed: a hint, it orders
    /// nothing.
    pub(crate) referenced: AtomicBool,
}

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
        // only through `Guard::defer_destroy` after being unlinked, so the state cannot be
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

    /// The page's version (0 for a slot never allocated).
    pub(crate) fn version(&self) -> u64 {
        self.state().map_or(0, |s| s.version)
    }
}

impl Slot {
    /// Loads the current state.
    pub(crate) fn load<'g>(&self, guard: &'g Guard) -> Current<'g> {
        // Acquire: pairs with the release of `install`, so the state's contents are visible.
        Current { shared: self.state.load(Ordering::Acquire, guard) }
    }

    /// Replaces `current` by `new` if the slot still holds `current`. On success the old
    /// state is retired and the new one is returned; on failure `new` comes back with the
    /// state the slot holds now.
    pub(crate) fn install<'g>(
        &self,
        current: Current<'g>,
        new: PageState,
        guard: &'g Guard,
    ) -> Result<Current<'g>, (PageState, Current<'g>)> {
        let owned = Owned::new(new);
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
                if !current.shared.is_null() {
                    #[expect(unsafe_code, reason = "retiring an unlinked state to the epoch")]
                    // SAFETY: our compare-and-swap unlinked `current` from the only slot
                    // that pointed to it, so no thread can load it any more; threads that
                    // loaded it earlier are pinned, and the collector frees it only after
                    // they unpin. Only the winner of this CAS retires it, so exactly once.
                    unsafe {
                        guard.defer_destroy(current.shared);
                    }
                }
                Ok(Current { shared: installed })
            }
            Err(error) => Err((*error.new.into_box(), Current { shared: error.current })),
        }
    }
}

/// The page table: a grow-only array of [`Slot`]s indexed by page id.
#[derive(Debug, Default)]
pub(crate) struct PageTable {
    slots: Slots<Slot>,
}

impl PageTable {
    pub(crate) fn new() -> PageTable {
        PageTable { slots: Slots::new() }
    }

    /// The slot of `id`, created if needed.
    pub(crate) fn slot(&self, id: PageId) -> &Slot {
        self.slots.get(id.get())
    }

    /// The slot of `id` if its part of the table exists.
    pub(crate) fn existing(&self, id: PageId) -> Option<&Slot> {
        self.slots.get_existing(id.get())
    }

    /// Memory the table's own arrays hold.
    pub(crate) fn allocated_bytes(&self) -> u64 {
        self.slots.allocated_bytes()
    }
}

impl Drop for PageTable {
    fn drop(&mut self) {
        for (_, slot) in self.slots.iter_existing() {
            #[expect(unsafe_code, reason = "freeing the states at teardown")]
            // SAFETY: `&mut self` means no thread can reach the table any more; states
            // retired earlier are owned by the collector, and the current one is owned by
            // the slot alone (invariant 1), so taking ownership frees it exactly once.
            unsafe {
                let current = slot.state.load(Ordering::Relaxed, epoch::unprotected());
                if !current.is_null() {
                    drop(current.into_owned());
                }
            }
        }
    }
}
