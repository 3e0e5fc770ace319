//! Loom models of one page-table slot: states installed by compare-and-swap and retired
//! through epoch-based reclamation ([`crate::sync::epoch`], crossbeam-epoch running on loom's
//! atomics), the scheme the page table uses for every page.
//!
//! - The slot is an `Atomic<State>`. A writer pins, loads the current state, builds the next
//!   one from it (version + 1), and compare-and-swaps it in; on success it hands the old state
//!   to a deferred function that drops it, as `Slot::install` does (`Guard::defer_unchecked`;
//!   the real one also takes the state's bytes off a count), and on failure it retries from
//!   the state that beat it. After its updates a writer flushes its garbage (`Guard::flush`),
//!   so the global epoch advances and retired states are really freed while the reader may
//!   still be pinned.
//! - The reader (the model's main thread) pins, loads the slot and reads the state it sees.
//!   It checks the state's payload against its version (a retired state's payload is
//!   overwritten with [`DEAD`]) and that the versions it sees never go back.
//! - At the end the last state must carry every update (no lost update), and once the main
//!   thread has flushed alone, every state but the installed one has been dropped exactly once.
//!
//! **How a use-after-free is caught.** A state's payload is a `loom::cell::UnsafeCell`, and
//! `State::drop` writes [`DEAD`] into it. Loom tracks every access to the cell: if the drop's
//! write is not ordered after a reader's read (or the read after the write) by a
//! happens-before edge, loom fails the execution with "Causality violation: Concurrent read
//! and write accesses"; if it is ordered before the read, the reader sees `DEAD` and its
//! assertion fails. Evidence that this works:
//! [`freeing_without_waiting_for_readers_is_caught`] retires states by dropping them at once
//! (in place, without freeing their memory, so the test itself stays free of real undefined
//! behaviour) and expects the model to fail; it does within its first executions. Replacing
//! the deferred drop with `drop(old.into_owned())` at once (a real free) made
//! [`two_writers_install_one_reader_reads`] fail the same way, at once: "Causality violation:
//! Concurrent read and write accesses to `UnsafeCell`".
//!
//! Bookkeeping (counters of states made and dropped) is `std` atomics, invisible to loom, so
//! it cannot add a happens-before edge that hides a missing one in the protocol.
//!
//! Model threads other than the main one register their own epoch handle and drop it before
//! they end, rather than use `epoch::pin`'s thread-local one: loom runs thread-local
//! destructors after `join` has returned, so a record retired there is never seen by the
//! joiner, which then cannot advance the epoch and free the last states (the first version
//! of these models failed its final count that way). The protocol is the same.
//!
//! Cost: crossbeam's pin, flush and epoch advance are a dozen atomic operations each, all
//! explored, so the models run with a preemption bound of 1 (bound 2 ran for over 20
//! minutes without finishing) and one flush per writer. Each model takes about one minute
//! on a 2-core machine, all three about two minutes.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test -p grove-engine --release --lib pagecache::slot_loom
//! ```

use std::sync::atomic::{AtomicBool as StdAtomicBool, AtomicUsize as StdAtomicUsize};

use loom::{cell::UnsafeCell, model::Builder, sync::Arc};

use crate::sync::{
    Ordering,
    epoch::{self, Atomic, Guard, Owned, Shared},
    thread,
};

/// What a retired state's payload is overwritten with.
const DEAD: u64 = u64::MAX;

/// Flushes a writer does after its updates. One is enough for states to be freed while the
/// reader runs in some executions (checked by [`FREED_WHILE_READING`]); the main thread's
/// final flushes free the rest.
const WRITER_FLUSHES: usize = 1;

/// A page's state as the page table sees it, reduced to what the protocol needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A page with contents.
    Live,
    /// A freed page: the slot keeps a tombstone until the id is reused.
    Tombstone,
}

/// The payload a state of `version` and `kind` carries while it is alive.
fn payload_of(version: u64, kind: Kind) -> u64 {
    let tag = match kind {
        Kind::Live => 1,
        Kind::Tombstone => 2,
    };
    version * 10 + tag
}

/// Test bookkeeping shared by all threads of one execution.
#[derive(Debug, Default)]
struct Book {
    /// States created (including ones that lost their CAS and were never published).
    made: StdAtomicUsize,
    /// States dropped.
    dropped: StdAtomicUsize,
    /// States dropped before the reader finished: reclamation really raced the reader.
    dropped_while_reading: StdAtomicUsize,
    /// Set once the reader has read for the last time and unpinned.
    reader_done: StdAtomicBool,
}

/// One state of the slot.
#[derive(Debug)]
struct State {
    version: u64,
    kind: Kind,
    /// `payload_of(version, kind)` while alive, [`DEAD`] once dropped; loom checks every
    /// access against the drop's write.
    payload: UnsafeCell<u64>,
    book: std::sync::Arc<Book>,
}

impl State {
    fn new(version: u64, kind: Kind, book: &std::sync::Arc<Book>) -> Self {
        book.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            version,
            kind,
            payload: UnsafeCell::new(payload_of(version, kind)),
            book: std::sync::Arc::clone(book),
        }
    }

    /// Reads the payload and checks it, as a reader of the page would read its contents.
    #[expect(unsafe_code, reason = "reading a loom cell, which loom checks")]
    fn check_alive(&self) {
        // SAFETY: loom reports any read of this cell that races the drop's write.
        let payload = self.payload.with(|p| unsafe { *p });
        assert_ne!(payload, DEAD, "a reader saw a retired state (version {})", self.version);
        assert_eq!(payload, payload_of(self.version, self.kind), "a torn state");
    }
}

impl Drop for State {
    #[expect(unsafe_code, reason = "writing a loom cell, which loom checks")]
    fn drop(&mut self) {
        // SAFETY: loom reports any read of this cell that this write races.
        self.payload.with_mut(|p| unsafe { *p = DEAD });
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.book.dropped.fetch_add(1, relaxed);
        if !self.book.reader_done.load(relaxed) {
            self.book.dropped_while_reading.fetch_add(1, relaxed);
        }
    }
}

/// How a writer retires the state it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// A deferred function that owns and drops it, as the page table's does (which also
    /// takes it off a count): run once no pinned thread can still hold it.
    Deferred,
    /// Dropped at once, in place; the memory is leaked so that the broken protocol reads
    /// dropped-but-allocated memory, which loom checks, rather than freed memory.
    Immediately,
}

/// The state `current` points to.
#[expect(unsafe_code, reason = "dereferencing an epoch pointer")]
fn deref<'g>(current: Shared<'g, State>) -> &'g State {
    // SAFETY: the slot never holds null, and `current` was loaded under the guard of `'g`,
    // which keeps what it points to allocated (and, with `Retire::Deferred`, alive).
    unsafe { current.deref() }
}

/// Retires `old`, which its caller has just swapped out of the slot.
#[expect(unsafe_code, reason = "retiring an epoch pointer")]
fn retire(old: Shared<'_, State>, guard: &Guard, how: Retire) {
    match how {
        // SAFETY: `old` is unreachable from the slot, and only the thread whose CAS removed
        // it retires it, once; the function owns it from then on.
        Retire::Deferred => unsafe { guard.defer_unchecked(move || drop(old.into_owned())) },
        // SAFETY: not safe while readers may hold `old`: this is the broken protocol the
        // negative test expects loom to catch. The memory stays allocated.
        Retire::Immediately => unsafe { std::ptr::drop_in_place(old.as_raw().cast_mut()) },
    }
}

/// Installs the successor of the slot's state, as `next` maps its kind, retrying until a
/// CAS wins. Returns the installed version, or `None` if `next` gives up on what it sees.
fn install(writer: &Writer, next: impl Fn(Kind) -> Option<Kind>, how: Retire) -> Option<u64> {
    let Writer { slot, book, epoch } = writer;
    let guard = epoch.pin();
    // Acquire: the state's fields were written before the Release CAS that published it.
    let mut current = slot.load(Ordering::Acquire, &guard);
    loop {
        let seen = deref(current);
        let kind = next(seen.kind)?;
        let version = seen.version + 1;
        let new = Owned::new(State::new(version, kind, book));
        // Success Release: publishes the new state's fields to readers that Acquire-load it.
        // Failure Acquire: the loop reads the state that won, as the first load does.
        match slot.compare_exchange(current, new, Ordering::Release, Ordering::Acquire, &guard) {
            Ok(_) => {
                retire(current, &guard, how);
                return Some(version);
            }
            // The lost state was never published: dropping it here is fine.
            Err(lost) => current = lost.current,
        }
    }
}

/// Flushes the calling thread's retired states `times` times, each under a fresh pin, so
/// the epoch can advance and free them.
fn flush_garbage(pin: &dyn Fn() -> Guard, times: usize) {
    for _ in 0..times {
        pin().flush();
    }
}

/// What a writer thread works with.
struct Writer {
    slot: Arc<Atomic<State>>,
    book: std::sync::Arc<Book>,
    /// The writer's own epoch record, dropped before the thread ends (see
    /// [`epoch::LocalHandle`] in `sync.rs` for why model threads do not use [`epoch::pin`]).
    epoch: epoch::LocalHandle,
}

impl Writer {
    /// Registers the calling thread with the epoch collector.
    fn new(slot: Arc<Atomic<State>>, book: std::sync::Arc<Book>) -> Self {
        Self { slot, book, epoch: epoch::default_collector().register() }
    }

    /// Flushes the writer's retired states and retires its epoch record.
    fn finish(self) {
        flush_garbage(&|| self.epoch.pin(), WRITER_FLUSHES);
    }
}

/// Reads the slot under `guard`, checks the state, and returns its version and kind.
fn read(slot: &Atomic<State>, guard: &Guard) -> (u64, Kind) {
    // Acquire: pairs with the writer's Release CAS, so the state's fields are visible.
    let state = deref(slot.load(Ordering::Acquire, guard));
    state.check_alive();
    (state.version, state.kind)
}

/// The main thread's reader: two reads under one pin, one under a second pin; versions must
/// not go back. Returns what it saw.
fn reader(slot: &Atomic<State>, book: &Book) -> [(u64, Kind); 3] {
    let guard = epoch::pin();
    let first = read(slot, &guard);
    let second = read(slot, &guard);
    drop(guard);
    let third = read(slot, &epoch::pin());
    book.reader_done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        first.0 <= second.0 && second.0 <= third.0,
        "versions went back: {first:?} {second:?} {third:?}"
    );
    [first, second, third]
}

/// After all threads joined: the slot's final state, and every other state dropped once.
#[expect(unsafe_code, reason = "taking the last state out of the slot")]
fn finish(slot: Arc<Atomic<State>>, book: &Book, how: Retire) -> (u64, Kind) {
    // Alone now, the main thread advances the epoch with each flush until every retired
    // state is freed.
    flush_garbage(&epoch::pin, 4);
    let Ok(slot) = Arc::try_unwrap(slot) else {
        panic!("a model thread still holds the slot");
    };
    // SAFETY: every other thread has ended and the slot is ours; nothing can load from it.
    let last = unsafe { slot.into_owned() };
    let result = (last.version, last.kind);
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    if how == Retire::Deferred {
        let made = book.made.load(relaxed);
        assert_eq!(book.dropped.load(relaxed), made - 1, "retired states are freed exactly once");
        drop(last);
        assert_eq!(book.dropped.load(relaxed), made);
    }
    result
}

/// Runs `model` under loom with preemption bound 1.
fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = Builder::new();
    builder.preemption_bound = Some(1);
    builder.check(model);
}

/// How often, over all executions of a model, a state was freed while the reader was still
/// reading: proof that the model exercises reclamation racing a reader, not only after it.
static FREED_WHILE_READING: StdAtomicUsize = StdAtomicUsize::new(0);

/// Two writers install two states each; the reader reads throughout.
fn two_writers(how: Retire) {
    let book = std::sync::Arc::new(Book::default());
    let slot = Arc::new(Atomic::new(State::new(0, Kind::Live, &book)));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (slot, book) = (Arc::clone(&slot), std::sync::Arc::clone(&book));
            thread::spawn(move || {
                let writer = Writer::new(slot, book);
                for _ in 0..2 {
                    let installed = install(&writer, |_| Some(Kind::Live), how);
                    assert!(installed.is_some(), "an update never gives up");
                }
                writer.finish();
            })
        })
        .collect();
    reader(&slot, &book);
    for writer in writers {
        writer.join().expect("writer thread");
    }
    let (version, kind) = finish(slot, &book, how);
    assert_eq!((version, kind), (4, Kind::Live), "an update was lost");
    if how == Retire::Deferred {
        FREED_WHILE_READING.fetch_add(
            book.dropped_while_reading.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

#[test]
fn two_writers_install_one_reader_reads() {
    check(|| two_writers(Retire::Deferred));
    assert!(
        FREED_WHILE_READING.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no execution freed a state while the reader was reading"
    );
}

/// Set in the environment of the child process that runs the broken model.
const BROKEN_CHILD: &str = "GROVE_LOOM_BROKEN_RETIREMENT";

/// The same model with states dropped as soon as they are swapped out: loom must fail it.
///
/// The broken model runs in a child process (this test binary, running [`broken_child`]):
/// once loom fails an execution, unwinding drops crossbeam's thread records outside the
/// model, which panics again and aborts, so the failure cannot be caught in-process.
#[test]
fn freeing_without_waiting_for_readers_is_caught() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = std::process::Command::new(exe)
        .args(["pagecache::slot_loom::broken_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(BROKEN_CHILD, "1")
        .output()
        .expect("running the broken model in a child process");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "loom did not catch a state dropped under a reader");
    assert!(
        stderr.contains("Causality violation") || stderr.contains("a reader saw a retired state"),
        "the broken model failed for another reason:\n{stderr}"
    );
}

/// Runs the broken model when [`freeing_without_waiting_for_readers_is_caught`] asks for it
/// (and passes trivially otherwise).
#[test]
fn broken_child() {
    if std::env::var_os(BROKEN_CHILD).is_some() {
        check(|| two_writers(Retire::Immediately));
    }
}

/// A page is freed (its state replaced by a tombstone) and its id reused (the tombstone
/// replaced by a new live state) while another writer updates it and the reader reads.
#[test]
fn a_slot_is_freed_to_a_tombstone_and_reinstalled() {
    check(|| {
        let book = std::sync::Arc::new(Book::default());
        let slot = Arc::new(Atomic::new(State::new(0, Kind::Live, &book)));
        let updater = {
            let (slot, book) = (Arc::clone(&slot), std::sync::Arc::clone(&book));
            thread::spawn(move || {
                // An update applies to a live page; a freed one makes it give up.
                let writer = Writer::new(slot, book);
                let next = |kind| (kind == Kind::Live).then_some(Kind::Live);
                let updated = install(&writer, next, Retire::Deferred).is_some();
                writer.finish();
                updated
            })
        };
        let freer = {
            let (slot, book) = (Arc::clone(&slot), std::sync::Arc::clone(&book));
            thread::spawn(move || {
                let writer = Writer::new(slot, book);
                let free = |kind| (kind == Kind::Live).then_some(Kind::Tombstone);
                assert!(install(&writer, free, Retire::Deferred).is_some(), "only we free");
                let reuse = |kind| (kind == Kind::Tombstone).then_some(Kind::Live);
                assert!(install(&writer, reuse, Retire::Deferred).is_some(), "only we reuse");
                writer.finish();
            })
        };
        let seen = reader(&slot, &book);
        for (version, kind) in seen {
            // Version 0 is live; after that the tombstone is the state right after the free.
            if kind == Kind::Tombstone {
                assert!(version >= 1, "the first state is live");
            }
        }
        let updated = updater.join().expect("updater thread");
        freer.join().expect("freer thread");
        let expected = 2 + u64::from(updated);
        assert_eq!(
            finish(slot, &book, Retire::Deferred),
            (expected, Kind::Live),
            "an update was lost"
        );
    });
}
