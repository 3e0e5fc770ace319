//! Every atomic, lock and thread primitive the engine uses, in one place.
//!
//! Built normally these are the `std` types. Built with
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"` they are loom's, so a loom model can explore
//! every interleaving of the code that uses them (see `log/ring_loom.rs` and
//! `pagecache/slot_loom.rs`). Code elsewhere in the engine must import atomics, `Mutex`,
//! `RwLock`, `Condvar`, `OnceLock`, epoch-based reclamation, shared buffers and threads from here,
//! never from `std` or `crossbeam_epoch`.

#[cfg(loom)]
pub(crate) use loom::{
    sync::{
        Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering},
    },
    thread,
};

#[cfg(not(loom))]
pub(crate) use std::{
    sync::{
        Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering},
    },
    thread,
};

// crossbeam-epoch switches to loom's primitives under its own cfg, which must come with ours:
// with only `loom`, its pins would be invisible to the model (and its `std` thread locals
// shared by every model thread); with only `crossbeam_loom`, it would panic outside a model.
#[cfg(all(loom, not(crossbeam_loom)))]
compile_error!("loom builds need RUSTFLAGS=\"--cfg loom --cfg crossbeam_loom\"");
#[cfg(all(crossbeam_loom, not(loom)))]
compile_error!("`--cfg crossbeam_loom` is only for loom builds: add `--cfg loom`");

/// An atomic counter that takes part in no protocol a loom model explores (the names of
/// temporary directories): `std`'s under both builds, so that it can be a `static` (loom's
/// atomics cannot be built in a constant).
pub(crate) use std::sync::atomic::AtomicU64 as PlainAtomicU64;

/// A counter and a lock that take part in no protocol a loom model explores (the page
/// payloads' buffer pool, which stands in for the allocator): `std`'s under both builds, so
/// that they can be in a `static`.
pub(crate) use std::sync::{Mutex as PlainMutex, atomic::AtomicUsize as PlainAtomicUsize};

/// A cell written once, the first time it is needed.
///
/// `std`'s under both builds: loom does not model `OnceLock`. That is sound for the engine's
/// uses, whose initialisers create plain values and take no locks, so a model thread never
/// waits on another inside one; it only means a loom model does not explore who wins the
/// initialisation race.
pub(crate) use std::sync::OnceLock;

/// Epoch-based memory reclamation: the page cache's lock-free pointers.
///
/// A thread [`pin`](epoch::pin)s itself to get a [`Guard`](epoch::Guard); any
/// [`Shared`](epoch::Shared) it loads from an [`Atomic`](epoch::Atomic) under that guard stays
/// allocated until the guard is dropped, even if another thread swaps it out and retires it
/// through a deferred function (`Guard::defer_destroy`, `Guard::defer_unchecked`)
/// meanwhile. This is `crossbeam_epoch` under both builds; under loom (with
/// `--cfg crossbeam_loom`) it runs on loom's atomics, so models explore its protocol too.
pub(crate) mod epoch {
    pub(crate) use crossbeam_epoch::{Atomic, Guard, Owned, Shared, pin, unprotected};

    /// For loom models only: under loom a thread's local destructors run after `join` has
    /// returned, so a model thread that pins through [`pin`]'s thread-local handle retires
    /// its epoch record unseen by the joiner, which may then never advance the epoch. Model
    /// threads register a handle they drop before they end instead.
    #[cfg(all(test, loom))]
    pub(crate) use crossbeam_epoch::{LocalHandle, default_collector};
}

/// Locks `mutex`, recovering the guard if another thread panicked while holding it.
///
/// The engine's mutexes guard only wake-up bookkeeping, never data whose invariants a panic
/// could break, so a poisoned lock is safe to keep using.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Locks `lock` for reading, recovering the guard if a writer panicked while holding it.
///
/// Like the mutexes, the engine's read-write locks guard tables whose every update is a
/// single insert or remove, which a panic cannot leave half done.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Locks `lock` for writing, recovering from poisoning like [`read`].
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on `condvar` for at most `timeout`, recovering from poisoning like [`lock`].
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    #[cfg(loom)]
    {
        // loom has no timed waits; a plain wait explores the same interleavings.
        let _ = timeout;
        match condvar.wait(guard) {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
    #[cfg(not(loom))]
    match condvar.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

/// A hint that this thread is busy-waiting for another to make progress.
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Sleeps for `duration` (under loom, yields: loom has no clock).
pub(crate) fn sleep(duration: std::time::Duration) {
    #[cfg(loom)]
    {
        let _ = duration;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    std::thread::sleep(duration);
}

/// Spawns a named thread (loom ignores the name).
pub(crate) fn spawn<F, T>(name: &str, f: F) -> std::io::Result<thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[cfg(loom)]
    {
        let _ = name;
        Ok(thread::spawn(f))
    }
    #[cfg(not(loom))]
    thread::Builder::new().name(name.to_owned()).spawn(f)
}

/// How many threads can run at once, as the standard library sees it (1 if it cannot
/// tell): work is split across threads only where there are at least 2.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Runs `a` on a thread of its own (named `name`) while `b` runs on this one; returns
/// both results. `a` runs here, after `b`, if no thread can be started, and under loom
/// (whose threads cannot borrow). A panic in `a` goes on here.
pub(crate) fn join<A: Send, B>(
    name: &str,
    a: impl Fn() -> A + Sync,
    b: impl FnOnce() -> B,
) -> (A, B) {
    #[cfg(loom)]
    {
        let _ = name;
        let b = b();
        (a(), b)
    }
    #[cfg(not(loom))]
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().name(name.to_owned()).spawn_scoped(scope, &a);
        let b = b();
        let a = match helper {
            Ok(helper) => match helper.join() {
                Ok(a) => a,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => a(),
        };
        (a, b)
    })
}

/// A fixed-size byte buffer that several threads write at once, each into its own range.
///
/// # Thread safety
/// The type itself does not stop two threads from touching the same bytes: callers guarantee
/// that a range is written by one thread at a time and read only after its writer finished,
/// with a happens-before edge in between. The log's reservation protocol (`log/ring.rs`)
/// provides both: a reservation hands out a disjoint range, and the flusher reads a buffer
/// only after acquiring the header word that every writer released.
/// Under loom every byte is a checked cell, so a model catches any breach of this rule.
#[cfg(not(loom))]
pub(crate) struct SharedBuffer {
    /// Start of a `Box<[u8]>` of `len` bytes, owned by this value and freed in `drop`.
    /// Kept as a raw pointer so that no `&mut` to the whole buffer ever exists while
    /// threads write their ranges.
    start: std::ptr::NonNull<u8>,
    len: usize,
}

#[cfg(not(loom))]
// SAFETY: the buffer is plain bytes owned by this value; moving it between threads is fine.
#[expect(unsafe_code, reason = "a raw-pointer buffer owned by this value")]
unsafe impl Send for SharedBuffer {}

#[cfg(not(loom))]
// SAFETY: all access goes through `write`, `with_slice` and `with_slice_mut`, whose callers
// promise the disjoint-range and happens-before discipline described above.
#[expect(unsafe_code, reason = "concurrent writers fill disjoint ranges of one buffer")]
unsafe impl Sync for SharedBuffer {}

#[cfg(not(loom))]
impl SharedBuffer {
    /// A zeroed buffer of `len` bytes (one zeroed allocation, no per-byte work).
    pub(crate) fn new(len: usize) -> Self {
        let boxed: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let start = std::ptr::NonNull::from(Box::leak(boxed)).cast::<u8>();
        Self { start, len }
    }

    /// Copies `src` into the buffer at `offset`.
    ///
    /// # Safety
    /// `offset..offset + src.len()` is in bounds, and no other thread reads or writes it
    /// until this call has returned and a happens-before edge has been established.
    #[expect(unsafe_code, reason = "the reservation protocol makes this range exclusive")]
    pub(crate) unsafe fn write(&self, offset: usize, src: &[u8]) {
        debug_assert!(offset + src.len() <= self.len);
        // SAFETY: in bounds and exclusive by this function's contract.
        unsafe { self.start.as_ptr().add(offset).copy_from_nonoverlapping(src.as_ptr(), src.len()) }
    }

    /// Runs `f` on the bytes `range`.
    ///
    /// # Safety
    /// `range` is in bounds, and every write to it happened-before this call, with no write
    /// to it until `f` returns.
    #[expect(unsafe_code, reason = "the flusher reads a buffer once its writers released it")]
    pub(crate) unsafe fn with_slice<R>(
        &self,
        range: std::ops::Range<usize>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        debug_assert!(range.end <= self.len && range.start <= range.end);
        // SAFETY: in bounds and free of concurrent writes by this function's contract.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.start.as_ptr().add(range.start), range.len())
        };
        f(bytes)
    }

    /// Runs `f` on the bytes `range`, to change them in place.
    ///
    /// # Safety
    /// `range` is in bounds, every write to it happened-before this call, and no other
    /// thread reads or writes it until `f` returns and a happens-before edge has been
    /// established.
    #[expect(unsafe_code, reason = "the flusher seals a buffer's records before writing it")]
    pub(crate) unsafe fn with_slice_mut<R>(
        &self,
        range: std::ops::Range<usize>,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        debug_assert!(range.end <= self.len && range.start <= range.end);
        // SAFETY: in bounds and exclusive by this function's contract; no other reference
        // into the buffer lives while `f` runs (`write` and `with_slice` make none that
        // outlives their call).
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(self.start.as_ptr().add(range.start), range.len())
        };
        f(bytes)
    }
}

#[cfg(not(loom))]
impl Drop for SharedBuffer {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.start.as_ptr(), self.len);
        // SAFETY: `start` and `len` came from the `Box<[u8]>` leaked in `new`, and `&mut self`
        // means no thread still uses the buffer.
        #[expect(unsafe_code, reason = "returning the allocation leaked in `new`")]
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// Loom's version: one checked cell per byte, so overlapping or unordered access is reported.
#[cfg(loom)]
pub(crate) struct SharedBuffer(Box<[loom::cell::UnsafeCell<u8>]>);

#[cfg(loom)]
// SAFETY: as for the std version; here loom additionally checks every byte access.
#[expect(unsafe_code, reason = "concurrent writers fill disjoint ranges of one buffer")]
unsafe impl Sync for SharedBuffer {}

#[cfg(loom)]
impl SharedBuffer {
    pub(crate) fn new(len: usize) -> Self {
        Self((0..len).map(|_| loom::cell::UnsafeCell::new(0)).collect())
    }

    #[expect(unsafe_code, reason = "mirrors the std version's contract")]
    pub(crate) unsafe fn write(&self, offset: usize, src: &[u8]) {
        for (cell, byte) in self.0[offset..offset + src.len()].iter().zip(src) {
            // SAFETY: loom checks that this access is exclusive.
            cell.with_mut(|p| unsafe { *p = *byte });
        }
    }

    #[expect(unsafe_code, reason = "mirrors the std version's contract")]
    pub(crate) unsafe fn with_slice<R>(
        &self,
        range: std::ops::Range<usize>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        // SAFETY: loom checks that no write races with this read.
        let bytes: Vec<u8> =
            self.0[range].iter().map(|cell| cell.with(|p| unsafe { *p })).collect();
        f(&bytes)
    }

    #[expect(unsafe_code, reason = "mirrors the std version's contract")]
    pub(crate) unsafe fn with_slice_mut<R>(
        &self,
        range: std::ops::Range<usize>,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        let cells = &self.0[range];
        // SAFETY: loom checks that no other access races with these.
        let mut bytes: Vec<u8> = cells.iter().map(|cell| cell.with(|p| unsafe { *p })).collect();
        let out = f(&mut bytes);
        for (cell, byte) in cells.iter().zip(bytes) {
            // SAFETY: as above.
            cell.with_mut(|p| unsafe { *p = byte });
        }
        out
    }
}

impl std::fmt::Debug for SharedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedBuffer")
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::join;

    #[test]
    fn join_runs_both_sides_and_passes_on_the_helpers_panic() {
        let here = std::thread::current().id();
        let (helper, this) = join("grove-test", || std::thread::current().id(), || here);
        assert_eq!(this, here);
        assert_ne!(helper, here, "the helper ran on this thread");

        let failed = std::panic::catch_unwind(|| {
            join("grove-test", || -> u8 { std::panic::resume_unwind(Box::new("helper")) }, || 1)
        });
        let message = failed.err().and_then(|panic| panic.downcast::<&str>().ok());
        assert_eq!(message.as_deref(), Some(&"helper"));
    }
}
