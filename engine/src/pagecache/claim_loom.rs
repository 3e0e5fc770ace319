//! Loom model of how a group update claims a page (`group.rs`, `state::ClaimedBy`,
//! `table::Slot::mark`): the claim is a mark on the slot's pointer, and the group's
//! identity lives in the marked state, set before the mark. Readers that meet a marked
//! slot load the claim from the state and trust it only if the slot still holds that
//! state marked when they look again.
//!
//! The model, reduced to what the protocol needs (as in `slot_loom.rs`, the code is a
//! copy of the protocol, not the page table itself):
//!
//! - The **group thread** runs two groups on the page one after the other: the first
//!   claims it and gives it back (a stale group), the second claims the same state again
//!   (the reader may see the same marked pointer twice, with different claims), commits
//!   and installs the next version, unmarked. Each claim is retired through the epoch
//!   once no slot is marked for it.
//! - A **single-page writer** installs one new version unless it finds the slot marked:
//!   it may replace the state a group has taken but not yet marked, and that group must
//!   then let go of the old state and claim the new one.
//! - The **reader** (the main thread) reads three times. Each read finds the version the
//!   page has for readers: a marked state's version, plus one if its claim has
//!   committed. It checks every state and claim it touches is alive (loom catches a read
//!   racing a free), that a claim it uses is the one holding the state it read (the claim
//!   records the version it claimed), and that versions never go back.
//!
//! Dropping a claim at once instead of through the epoch fails the model ("Causality
//! violation": a reader reads a freed claim). The schedule that needs the reader's second
//! look takes three preemptions (the reader stops after its first look; the first group
//! gives the page back and the second takes it; the writer replaces the state before the
//! second group's mark; the reader reads the second group's claim, which never holds the
//! state the reader has): with a bound of 3 the model did not finish in 20 minutes, so it
//! runs with a bound of 1 (about 25 seconds), and that case is argued in `ClaimedBy`'s
//! docs rather than checked here. Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test -p grove-engine --release --lib pagecache::claim_loom
//! ```

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};

use loom::{cell::UnsafeCell, model::Builder, sync::Arc};

use crate::sync::{
    AtomicBool, AtomicU64, Ordering,
    epoch::{self, Atomic, Guard, Owned, Shared},
    thread,
};

/// What a freed state's or claim's cell is overwritten with.
const DEAD: u64 = u64::MAX;

/// The mark of a claimed slot.
const CLAIMED: usize = 1;

/// Test bookkeeping (`std` types, invisible to loom, so that it adds no ordering).
#[derive(Debug, Default)]
struct Book {
    /// Objects (states and claims) made and freed: each must be freed exactly once.
    made: StdAtomicUsize,
    dropped: StdAtomicUsize,
    /// Each mark that succeeded: which claim, on the state of which version.
    marks: std::sync::Mutex<Vec<(u64, u64)>>,
}

/// A group's claim: its commit flag, and the version of the state it is claiming.
#[derive(Debug)]
struct Claim {
    /// Which group: 1 for the first, 2 for the second.
    group: u64,
    committed: AtomicBool,
    /// The version of the state the group is taking or holds: set before each take (a
    /// group whose mark failed takes the next state with the same claim, as `group.rs`
    /// does).
    claiming: AtomicU64,
    /// 0 while alive, [`DEAD`] once freed.
    freed: UnsafeCell<u64>,
    book: std::sync::Arc<Book>,
}

/// One state of the page.
#[derive(Debug)]
struct State {
    /// The version while alive, [`DEAD`] once freed.
    version: UnsafeCell<u64>,
    claimed_by: Atomic<Claim>,
    book: std::sync::Arc<Book>,
}

impl State {
    fn new(version: u64, book: &std::sync::Arc<Book>) -> State {
        book.made.fetch_add(1, StdOrdering::Relaxed);
        State {
            version: UnsafeCell::new(version),
            claimed_by: Atomic::null(),
            book: std::sync::Arc::clone(book),
        }
    }

    #[expect(unsafe_code, reason = "reading a loom cell, which loom checks")]
    fn version(&self) -> u64 {
        // SAFETY: loom reports any read of this cell that races the drop's write.
        let version = self.version.with(|v| unsafe { *v });
        assert_ne!(version, DEAD, "a reader saw a freed state");
        version
    }
}

impl Drop for State {
    #[expect(unsafe_code, reason = "writing a loom cell, which loom checks")]
    fn drop(&mut self) {
        // SAFETY: loom reports any read of this cell that this write races.
        self.version.with_mut(|v| unsafe { *v = DEAD });
        self.book.dropped.fetch_add(1, StdOrdering::Relaxed);
    }
}

impl Claim {
    fn new(group: u64, book: &std::sync::Arc<Book>) -> Claim {
        book.made.fetch_add(1, StdOrdering::Relaxed);
        Claim {
            group,
            committed: AtomicBool::new(false),
            claiming: AtomicU64::new(0),
            freed: UnsafeCell::new(0),
            book: std::sync::Arc::clone(book),
        }
    }

    /// The version of the state the claim is for, checking the claim is alive.
    #[expect(unsafe_code, reason = "reading a loom cell, which loom checks")]
    fn claiming(&self) -> u64 {
        // SAFETY: loom reports any read of this cell that races the drop's write.
        let freed = self.freed.with(|v| unsafe { *v });
        assert_ne!(freed, DEAD, "a reader used a freed claim");
        self.claiming.load(Ordering::Acquire)
    }
}

impl Drop for Claim {
    #[expect(unsafe_code, reason = "writing a loom cell, which loom checks")]
    fn drop(&mut self) {
        // SAFETY: loom reports any read of this cell that this write races.
        self.freed.with_mut(|v| unsafe { *v = DEAD });
        self.book.dropped.fetch_add(1, StdOrdering::Relaxed);
    }
}

#[expect(unsafe_code, reason = "dereferencing an epoch pointer")]
fn deref<'g, T>(pointer: Shared<'g, T>) -> &'g T {
    // SAFETY: never null where called; loaded under the guard of `'g`, which keeps what it
    // points to allocated (states and claims are retired through the epoch only).
    unsafe { pointer.deref() }
}

/// Claims the page for a group (`Inner::claim`): takes the current state, marks the slot.
/// Returns the claimed state.
fn claim<'g>(
    slot: &Atomic<State>,
    claim: Shared<'g, Claim>,
    guard: &'g Guard,
) -> Shared<'g, State> {
    loop {
        let current = slot.load(Ordering::Acquire, guard);
        // Only the single-page writer competes here, and it never marks or takes.
        assert_eq!(current.tag(), 0, "the group thread is the only claimer");
        let state = deref(current);
        deref(claim).claiming.store(state.version(), Ordering::Release);
        let taken = state.claimed_by.compare_exchange(
            Shared::null(),
            claim,
            Ordering::AcqRel,
            Ordering::Acquire,
            guard,
        );
        assert!(taken.is_ok(), "nothing else takes a state");
        let marked = current.with_tag(CLAIMED);
        match slot.compare_exchange(current, marked, Ordering::AcqRel, Ordering::Acquire, guard) {
            Ok(_) => {
                let marks = &deref(claim).book.marks;
                let mut marks = marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                marks.push((deref(claim).group, state.version()));
                return marked;
            }
            // The writer replaced the state first: let go of it and try the new one.
            Err(_) => state.claimed_by.store(Shared::null(), Ordering::Release),
        }
    }
}

#[expect(unsafe_code, reason = "retiring an epoch pointer")]
fn retire_claim(claim: Shared<'_, Claim>, guard: &Guard) {
    // SAFETY: no slot is marked for `claim` any more, and the states that name it are
    // cleared or unreachable; this is its only retirement.
    unsafe { guard.defer_destroy(claim) }
}

/// The group thread: a stale group, then one that commits.
fn groups(slot: &Atomic<State>, book: &std::sync::Arc<Book>) {
    let handle = epoch::default_collector().register();
    {
        let guard = handle.pin();
        // A stale group: claims, then gives the page back (unmark, then clear).
        let claimed = Owned::new(Claim::new(1, book)).into_shared(&guard);
        let marked = claim(slot, claimed, &guard);
        let unmarked = marked.with_tag(0);
        let released =
            slot.compare_exchange(marked, unmarked, Ordering::AcqRel, Ordering::Acquire, &guard);
        assert!(released.is_ok(), "nothing else changes a marked slot");
        deref(unmarked).claimed_by.store(Shared::null(), Ordering::Release);
        retire_claim(claimed, &guard);
    }
    {
        let guard = handle.pin();
        // A group that commits: the flag, then its install, unmarked, of the next version.
        let claimed = Owned::new(Claim::new(2, book)).into_shared(&guard);
        let marked = claim(slot, claimed, &guard);
        deref(claimed).committed.store(true, Ordering::Release);
        let next = Owned::new(State::new(deref(marked).version() + 1, book));
        let installed =
            slot.compare_exchange(marked, next, Ordering::AcqRel, Ordering::Acquire, &guard);
        assert!(installed.is_ok(), "nothing else changes a marked slot");
        #[expect(unsafe_code, reason = "retiring an epoch pointer")]
        // SAFETY: our compare-and-swap unlinked the state; this is its only retirement.
        unsafe {
            guard.defer_destroy(marked.with_tag(0));
        }
        retire_claim(claimed, &guard);
    }
    handle.pin().flush();
}

/// The single-page writer: one new version, unless the slot is marked (it would wait).
/// Whether it installed it.
fn writer(slot: &Atomic<State>, book: &std::sync::Arc<Book>) -> bool {
    let handle = epoch::default_collector().register();
    let mut installed = false;
    {
        let guard = handle.pin();
        let current = slot.load(Ordering::Acquire, &guard);
        if current.tag() == 0 {
            let next = Owned::new(State::new(deref(current).version() + 1, book));
            let replaced =
                slot.compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire, &guard);
            if replaced.is_ok() {
                installed = true;
                #[expect(unsafe_code, reason = "retiring an epoch pointer")]
                // SAFETY: our compare-and-swap unlinked the state; its only retirement.
                unsafe {
                    guard.defer_destroy(current);
                }
            }
        }
    }
    handle.pin().flush();
    installed
}

/// One read (`Inner::read`): the version the page has for readers, and the group whose
/// claim it went by with the version of the state it read, if any.
fn read(slot: &Atomic<State>) -> (u64, Option<(u64, u64)>) {
    let guard = epoch::pin();
    loop {
        let current = slot.load(Ordering::Acquire, &guard);
        let state = deref(current);
        let version = state.version();
        if current.tag() != CLAIMED {
            return (version, None);
        }
        let claim = state.claimed_by.load(Ordering::Acquire, &guard);
        if slot.load(Ordering::Acquire, &guard) != current {
            continue;
        }
        // Null: between a group giving the state back and the next taking it, when the
        // state read stood unclaimed.
        if claim.is_null() {
            return (version, None);
        }
        let claim = deref(claim);
        assert_eq!(claim.claiming(), version, "a claim used for a state it does not hold");
        let committed = u64::from(claim.committed.load(Ordering::Acquire));
        return (version + committed, Some((claim.group, version)));
    }
}

/// As in `slot_loom.rs`: crossbeam's pins and flushes make every further preemption
/// costly (see the module docs for what bound 3 would reach).
const PREEMPTIONS: usize = 1;

#[test]
fn readers_find_the_group_holding_a_marked_state() {
    let mut builder = Builder::new();
    builder.preemption_bound = Some(PREEMPTIONS);
    builder.check(|| {
        let book = std::sync::Arc::new(Book::default());
        let slot = Arc::new(Atomic::new(State::new(0, &book)));
        let group_thread = {
            let (slot, book) = (Arc::clone(&slot), std::sync::Arc::clone(&book));
            thread::spawn(move || groups(&slot, &book))
        };
        let writer_thread = {
            let (slot, book) = (Arc::clone(&slot), std::sync::Arc::clone(&book));
            thread::spawn(move || writer(&slot, &book))
        };
        let seen = [read(&slot), read(&slot)];
        assert!(seen[0].0 <= seen[1].0, "versions went back: {seen:?}");
        // A thread's failed assertion goes on failing the model here.
        if let Err(failure) = group_thread.join() {
            std::panic::resume_unwind(failure);
        }
        let wrote =
            writer_thread.join().unwrap_or_else(|failure| std::panic::resume_unwind(failure));
        for _ in 0..4 {
            epoch::pin().flush();
        }
        let guard = epoch::pin();
        let last = slot.swap(Shared::null(), Ordering::Acquire, &guard);
        #[expect(unsafe_code, reason = "taking the last state out of the slot")]
        // SAFETY: every other thread has ended and the slot now holds null: nothing else can
        // reach the state, and it was never retired, so this frees it once.
        let last = unsafe { last.into_owned() };
        drop(guard);
        assert_eq!(last.version(), 1 + u64::from(wrote), "an update was lost");
        let marks = book.marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for used in seen.iter().filter_map(|(_, used)| *used) {
            assert!(marks.contains(&used), "a read went by a claim that never held it: {used:?}");
        }
        drop(last);
        assert_eq!(
            book.dropped.load(StdOrdering::Relaxed),
            book.made.load(StdOrdering::Relaxed),
            "every state and claim freed exactly once"
        );
    });
}
