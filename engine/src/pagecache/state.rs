//! [`PageState`]: one immutable version of a page as the page table holds it.
//!
//! A state is never changed after it is published, but for the name of a group update
//! claiming the page ([`ClaimedBy`]): every change (a link, a replace, a free, a
//! consolidation, an eviction, a load from disk) builds a new state and installs it with a
//! compare-and-swap on the page's slot. Logical changes (link, replace, free) raise the
//! version; the others keep it, so a caller's expected version survives them.

use std::{mem::size_of, ops::Deref, sync::Arc};

use super::{group::Claim, loc::Loc, page::UNSUMMARIZED, payload::Payload};
use crate::sync::{
    Ordering,
    epoch::{Atomic, Guard, Shared},
};

/// One record of a page: where it is in the log, and its payload if it is in memory.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) loc: Loc,
    /// The payload (after the record's 16-byte prefix), or `None` if paged out.
    pub(crate) bytes: Option<Payload>,
}

impl Part {
    pub(crate) fn resident(loc: Loc, bytes: Payload) -> Part {
        Part { loc, bytes: Some(bytes) }
    }

    pub(crate) fn cold(loc: Loc) -> Part {
        Part { loc, bytes: None }
    }
}

/// A page's fragments, oldest first. Shared by reference count, so that a copy of a state
/// that keeps them (a group's claim, a release) copies no list and touches no payload's
/// count; none at all takes no allocation. Never changed once built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frags(Option<Arc<[Part]>>);

impl Frags {
    /// These fragments and then `part`, in one allocation.
    pub(crate) fn with(&self, part: Part) -> Frags {
        Frags(Some(self.iter().cloned().chain(std::iter::once(part)).collect()))
    }
}

impl Deref for Frags {
    type Target = [Part];

    fn deref(&self) -> &[Part] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl From<Vec<Part>> for Frags {
    fn from(parts: Vec<Part>) -> Frags {
        Frags((!parts.is_empty()).then(|| Arc::from(parts)))
    }
}

impl FromIterator<Part> for Frags {
    /// In one allocation where the iterator knows its length (a `Vec`'s, a slice's); none
    /// where it knows it is empty.
    fn from_iter<I: IntoIterator<Item = Part>>(parts: I) -> Frags {
        let parts = parts.into_iter();
        if parts.size_hint().1 == Some(0) {
            return Frags(None);
        }
        let parts: Arc<[Part]> = parts.collect();
        Frags((!parts.is_empty()).then_some(parts))
    }
}

/// A page's contents, when it is allocated.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) base: Part,
    /// Fragments linked since the base, oldest first; at most `consolidate_after` except
    /// briefly while a consolidation races with links.
    pub(crate) frags: Frags,
    /// Who the page belongs to, and what it weighs (see [`Weigh`](super::Weigh)).
    pub(crate) owner: u64,
    pub(crate) weight: i64,
    /// Covers the [`Materializer::summarize`](super::Materializer::summarize) word of every
    /// fragment in `frags`: has at least their bits (it may have more, which only costs a
    /// reader a look at the fragments). 0 without fragments; all bits while any fragment's
    /// summary is unknown (a page recovered from a checkpoint, until it is loaded).
    pub(crate) summary: u64,
    /// Whether every fragment's payload is in memory, so that a read need not walk `frags`
    /// to know.
    pub(crate) frags_resident: bool,
}

/// One version of a page.
#[derive(Debug, Clone)]
pub(crate) struct PageState {
    /// Raised by one with every logical change, kept across a free and a reuse of the id,
    /// so that a stale caller can never update a page that was freed and reallocated.
    pub(crate) version: u64,
    /// `None` while the id is free.
    pub(crate) live: Option<Live>,
    /// The group update claiming the page (see `group.rs`), meaningful while the slot
    /// holds this state marked claimed ([`Current::is_claimed`](super::table::Current)).
    pub(crate) claimed_by: ClaimedBy,
}

/// Which group update holds a page: the one field of a state that changes after the state
/// is published.
///
/// A group claims a page in two steps: it sets this, on the page's current state, by a
/// compare-and-swap from null (so two groups never both take it), then marks the slot
/// claimed by a compare-and-swap that keeps the state (see [`Slot::mark`]). The mark is
/// the claim: single-page writers only wait for marked slots, and a group whose mark
/// fails (the state was replaced meanwhile) clears this and tries the new state. A group
/// that gives the page back unmarks the slot, then clears this; one that installs its
/// change replaces the state, and this is freed with it.
///
/// Readers trust what they load here only while the slot still holds the same state,
/// marked, when they look again after the load (see `Inner::read`). The claim it points
/// to stays allocated until every reader that might have loaded it unpins: its group
/// retires it through the epoch, once no slot is marked for it.
///
/// [`Slot::mark`]: super::table::Slot::mark
#[derive(Debug, Default)]
pub(crate) struct ClaimedBy(Atomic<Claim>);

impl Clone for ClaimedBy {
    /// A copy of a state is a new state, which no group has claimed.
    fn clone(&self) -> ClaimedBy {
        ClaimedBy::default()
    }
}

impl ClaimedBy {
    /// Takes the page for `claim`: `false` if another group is claiming it.
    pub(crate) fn take(&self, claim: &Claim, guard: &Guard) -> bool {
        // AcqRel on success: orders this before the slot's mark, and after the previous
        // group's clear. Acquire on failure: the caller waits for the other group.
        self.0
            .compare_exchange(
                Shared::null(),
                Shared::from(std::ptr::from_ref(claim)),
                Ordering::AcqRel,
                Ordering::Acquire,
                guard,
            )
            .is_ok()
    }

    /// Copies `other`'s claim: for a change that keeps the version (a load from disk) on
    /// a claimed page, whose new state stays claimed by the same group.
    pub(crate) fn copy_from(&self, other: &ClaimedBy, guard: &Guard) {
        self.0.store(other.0.load(Ordering::Acquire, guard), Ordering::Release);
    }

    /// Lets the page go: after its slot was unmarked, or when marking it failed.
    pub(crate) fn clear(&self) {
        self.0.store(Shared::null(), Ordering::Release);
    }

    /// Whether a group is claiming the page (it may not have marked the slot yet).
    pub(crate) fn is_taken(&self, guard: &Guard) -> bool {
        !self.0.load(Ordering::Acquire, guard).is_null()
    }

    /// Whether `claim` is the group claiming the page.
    pub(crate) fn is(&self, claim: &Claim, guard: &Guard) -> bool {
        std::ptr::eq(self.0.load(Ordering::Acquire, guard).as_raw(), claim)
    }

    /// The group claiming the page, if any. Only meaningful to a caller that then finds
    /// the slot still holding this state marked (see the type's docs).
    pub(crate) fn get<'g>(&self, guard: &'g Guard) -> Option<&'g Claim> {
        let claim = self.0.load(Ordering::Acquire, guard);
        #[expect(unsafe_code, reason = "dereferencing an epoch-protected pointer")]
        // SAFETY: a group retires its claim through the epoch only once no slot is marked
        // for it and every state that still names it is unreachable (replaced by its
        // installs) or cleared (its releases). `claim` was loaded under `guard`, from a
        // state the caller reached through its slot under the same guard, so the
        // collector cannot free the claim while `guard` lives.
        unsafe {
            claim.as_ref()
        }
    }
}

impl PageState {
    pub(crate) fn free(version: u64) -> PageState {
        PageState { version, live: None, claimed_by: ClaimedBy::default() }
    }

    /// A live state whose fragments' summary is unknown (all bits, or 0 without
    /// fragments): callers that know it say so with [`PageState::summarized`].
    pub(crate) fn live(
        version: u64,
        base: Part,
        frags: impl Into<Frags>,
        (owner, weight): (u64, i64),
    ) -> PageState {
        let frags = frags.into();
        let summary = if frags.is_empty() { 0 } else { UNSUMMARIZED };
        let frags_resident = frags.iter().all(|f| f.bytes.is_some());
        let live = Live { base, frags, owner, weight, summary, frags_resident };
        PageState { version, live: Some(live), claimed_by: ClaimedBy::default() }
    }

    /// This state with its fragments' summary set to `summary`, which must cover the
    /// summary of every fragment (see [`Live::summary`]). A state without fragments keeps 0.
    pub(crate) fn summarized(mut self, summary: u64) -> PageState {
        if let Some(live) = &mut self.live
            && !live.frags.is_empty()
        {
            live.summary = summary;
        }
        self
    }

    /// The owner and weight, if the page is live.
    pub(crate) fn weighs(&self) -> Option<(u64, i64)> {
        self.live.as_ref().map(|live| (live.owner, live.weight))
    }

    /// Every record this state refers to.
    pub(crate) fn locs(&self) -> impl Iterator<Item = Loc> + '_ {
        self.live
            .iter()
            .flat_map(|live| std::iter::once(live.base.loc).chain(live.frags.iter().map(|f| f.loc)))
    }

    /// Whether any payload is in memory.
    pub(crate) fn holds_bytes(&self) -> bool {
        self.live.as_ref().is_some_and(|live| {
            live.base.bytes.is_some() || live.frags.iter().any(|f| f.bytes.is_some())
        })
    }

    /// Whether every payload is in memory (a live page) or there is none (a free one).
    pub(crate) fn holds_all(&self) -> bool {
        self.live.as_ref().is_none_or(|live| {
            live.base.bytes.is_some() && live.frags.iter().all(|f| f.bytes.is_some())
        })
    }

    /// The same version with every payload dropped: what a paged-out page keeps.
    pub(crate) fn paged_out(&self) -> PageState {
        let live = self.live.as_ref().map(|live| Live {
            base: Part::cold(live.base.loc),
            frags: live.frags.iter().map(|f| Part::cold(f.loc)).collect(),
            owner: live.owner,
            weight: live.weight,
            summary: live.summary,
            frags_resident: live.frags.is_empty(),
        });
        PageState { version: self.version, live, claimed_by: ClaimedBy::default() }
    }

    /// The memory this state holds, in bytes, as the allocator sees it: the state itself,
    /// its fragment list, and every payload (with their reference counts). A list or
    /// payload shared with another state is counted in each.
    pub(crate) fn heap_bytes(&self) -> u64 {
        let mut total = heap_cost(size_of::<PageState>());
        if let Some(live) = &self.live {
            if !live.frags.is_empty() {
                total += heap_cost(2 * size_of::<usize>() + live.frags.len() * size_of::<Part>());
            }
            for part in std::iter::once(&live.base).chain(live.frags.iter()) {
                if let Some(bytes) = &part.bytes {
                    // The buffer's `Arc` keeps two counters before its bytes, and the
                    // buffer is as long as the payload's size class.
                    total += heap_cost(2 * size_of::<usize>() + bytes.capacity());
                }
            }
        }
        total
    }
}

/// What the allocator really takes for a request of `len` bytes: glibc's malloc adds an
/// 8-byte header, rounds to 16 and never hands out less than 32. Counting this rather than
/// `len` keeps the budget honest for the many small allocations a page cache makes.
pub(crate) fn heap_cost(len: usize) -> u64 {
    let with_header = len.saturating_add(8).div_ceil(16).saturating_mul(16).max(32);
    u64::try_from(with_header).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ids::{Lsn, PageId},
        pagecache::{PageView, loc::Stream},
    };

    fn loc(lsn: u64) -> Loc {
        Loc { stream: Stream::Delta, lsn: Lsn(lsn), len: 40 }
    }

    #[test]
    fn paged_out_keeps_locations_and_drops_bytes() {
        let state = PageState::live(
            3,
            Part::resident(loc(0), Payload::copy_from(b"base")),
            vec![Part::resident(loc(40), Payload::copy_from(b"f"))],
            (7, 2),
        );
        assert!(PageView::of_state(PageId(1), &state).is_some());
        let cold = state.paged_out();
        assert!(!cold.holds_bytes() && PageView::of_state(PageId(1), &cold).is_none());
        assert_eq!(cold.locs().collect::<Vec<_>>(), vec![loc(0), loc(40)]);
        assert!(cold.heap_bytes() < state.heap_bytes());
        assert_eq!(cold.version, 3);
    }

    #[test]
    fn copies_of_a_state_share_its_fragment_list() {
        let frags = Frags::from(vec![Part::resident(loc(40), Payload::copy_from(b"f"))]);
        let longer = frags.with(Part::cold(loc(80)));
        let locs = |frags: &Frags| frags.iter().map(|f| f.loc).collect::<Vec<_>>();
        assert_eq!((locs(&frags), locs(&longer)), (vec![loc(40)], vec![loc(40), loc(80)]));

        let base = Part::resident(loc(0), Payload::copy_from(b"base"));
        let state = PageState::live(3, base, longer, (7, 2));
        let copy = state.clone();
        let list = |state: &PageState| state.live.as_ref().map(|live| live.frags.as_ptr());
        assert!(list(&state).is_some() && list(&state) == list(&copy));

        // No fragments, no list.
        assert!(Frags::from(Vec::new()).0.is_none());
        assert!(std::iter::empty::<Part>().collect::<Frags>().0.is_none());
        assert!(
            std::iter::once(Part::cold(loc(0))).filter(|_| false).collect::<Frags>().0.is_none()
        );
    }

    #[test]
    fn heap_cost_rounds_like_malloc() {
        assert_eq!(heap_cost(0), 32);
        assert_eq!(heap_cost(24), 32);
        assert_eq!(heap_cost(25), 48);
        assert_eq!(heap_cost(4096), 4112);
    }
}
