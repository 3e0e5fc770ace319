//! [`Payload`]: the bytes of one record that a page holds in memory, shared by reference
//! count, in buffers that are recycled rather than freed.
//!
//! Why recycle: glibc's malloc gives each thread an arena of its own. A page image built by
//! one thread (a consolidation in a writer's thread) and freed by another (whichever thread
//! collects the epoch's garbage) goes back to the arena it came from, where only that
//! arena's thread will use it again. When the threads that write change, as an
//! application's do, every image they rebuild is new memory in their arenas while the
//! images they replace sit free in the others'. In the comparison harness (`compare/`),
//! 100,000 writes from two new threads grew the process by 92 MiB this way while the cache's
//! own count of its memory grew by 13 MiB. Buffers that go back to one pool shared by every
//! thread are taken again by whichever thread needs one next: with the pool the same writes
//! grew it by 44 MiB, and the run's peak fell from 343 to 304 MiB.
//!
//! A buffer's length is its size class (see [`class_of`]), so that a freed image fits the
//! next image of about its size; the payload's own length is kept beside it. The pool holds
//! at most [`CLASS_BYTES`] per class and [`POOL_BYTES`] in all, and [`release_pool`] empties
//! it when a page cache closes.

use std::{fmt, mem::ManuallyDrop, ops::Deref, sync::Arc};

use crate::{
    buffer,
    sync::{Ordering, PlainAtomicUsize, PlainMutex},
};

/// How far before a payload's first byte its buffer's reference counts lie (an
/// `Arc<[u8]>`'s two counters): what a prefetch hint asks for, since copying a state that
/// holds the payload raises them.
pub(crate) const COUNTS_BEFORE: usize = 2 * size_of::<usize>();

/// Bytes of a record's payload in memory: cheap to clone (the bytes are shared), immutable,
/// and recycled into the pool when the last clone drops.
pub(crate) struct Payload {
    /// The buffer, as long as the payload's size class. Always present: taken out only by
    /// `drop`.
    buffer: ManuallyDrop<Arc<[u8]>>,
    /// How many of the buffer's bytes are the payload's.
    len: usize,
}

impl Payload {
    /// A payload holding a copy of `bytes`, in a recycled buffer if the pool has one.
    pub(crate) fn copy_from(bytes: &[u8]) -> Payload {
        let len = bytes.len();
        // A fresh buffer, or one from the pool, has no other reference, so `filled` cannot
        // fail; if it ever did, the payload would be an exact copy rather than wrong.
        let buffer = class_of(len)
            .and_then(|class| {
                let pooled = POOL.take(class).and_then(|buffer| filled(buffer, bytes));
                pooled.or_else(|| Some(fresh(class_len(class), bytes)))
            })
            .unwrap_or_else(|| Arc::from(bytes));
        Payload { buffer: ManuallyDrop::new(buffer), len }
    }

    /// Where the buffer's reference counts lie, for a prefetch hint (see [`COUNTS_BEFORE`]).
    pub(crate) fn counts_address(&self) -> usize {
        self.buffer.as_ptr().addr().saturating_sub(COUNTS_BEFORE)
    }

    /// The bytes the allocator holds for this payload, shared or not: its buffer's length.
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.len()
    }
}

impl Deref for Payload {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // `len` never exceeds the buffer's length (`copy_from` made it so); the default is
        // never taken.
        self.buffer.get(..self.len).unwrap_or_default()
    }
}

impl Clone for Payload {
    fn clone(&self) -> Payload {
        Payload { buffer: ManuallyDrop::new(Arc::clone(&self.buffer)), len: self.len }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        #[expect(unsafe_code, reason = "taking the buffer out of a value being dropped")]
        // SAFETY: `drop` runs once, and nothing reads `self.buffer` after this take.
        let mut buffer = unsafe { ManuallyDrop::take(&mut self.buffer) };
        // The last clone recycles the buffer, if the pool has room (asked first: it is one
        // load, where `get_mut` is a compare-and-swap). Two clones dropping at once may each
        // see the other and both let go: the buffer is then freed, not lost.
        if POOL.has_room(buffer.len()) && Arc::get_mut(&mut buffer).is_some() {
            POOL.put(buffer);
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        **self == **other
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.len)
    }
}

/// Frees every buffer the pool holds: for a closing page cache, so that a closed database
/// leaves nothing behind. Other open caches only refill the pool as they go.
pub(crate) fn release_pool() {
    POOL.release();
}

/// Payloads up to [`SMALL`] bytes come in steps of [`SMALL_STEP`] (fragments); larger ones,
/// up to [`LARGEST`], in steps of [`LARGE_STEP`] (page images). Larger still (big values
/// stored out of line) are allocated at their exact length and never pooled.
///
/// A class's length is 8 short of a multiple of 16: with the `Arc`'s two counters (16
/// bytes) and glibc's chunk header (8), its chunk is then a multiple of 16 with nothing
/// rounded up, so a small class costs no more memory than an exact allocation would.
const SMALL: usize = 1016;
const SMALL_STEP: usize = 16;
const LARGE_STEP: usize = 64;
const LARGEST: usize = 32 * 1024 - 8;
const SMALL_CLASSES: usize = (SMALL + 8) / SMALL_STEP;
const CLASSES: usize = SMALL_CLASSES + (LARGEST - SMALL) / LARGE_STEP;

/// At most this many bytes of free buffers in one class, and in the whole pool: enough to
/// carry the buffers freed while the epoch holds them back to the next writer, little next
/// to a cache's budget.
const CLASS_BYTES: usize = 1 << 20;
const POOL_BYTES: usize = 8 << 20;

/// Other classes may serve a payload if their buffers are at most this many bytes larger
/// than its class's, for fragments and for page images. Pages grow and shrink by a few
/// entries between one build of their image and the next, so the buffers freed lately are
/// seldom of the class the next image needs: with 256 bytes of reach, the benchmark's two
/// writer threads missed the pool for twice as many images, and the run's peak RSS was
/// 318 MiB rather than 301. The slack is memory the cache counts.
const SMALL_REACH: usize = 64;
const LARGE_REACH: usize = 1024;

/// How many classes above `class` may serve its payloads (see [`LARGE_REACH`]).
fn reach(class: usize) -> usize {
    if class < SMALL_CLASSES { SMALL_REACH / SMALL_STEP } else { LARGE_REACH / LARGE_STEP }
}

/// The size class of a payload of `len` bytes, or `None` if it is too large to pool.
fn class_of(len: usize) -> Option<usize> {
    if len <= SMALL {
        Some((len + 8).div_ceil(SMALL_STEP) - 1)
    } else if len <= LARGEST {
        Some(SMALL_CLASSES + (len - SMALL).div_ceil(LARGE_STEP) - 1)
    } else {
        None
    }
}

/// The length of the buffers of `class`: the largest payload it holds.
fn class_len(class: usize) -> usize {
    if class < SMALL_CLASSES {
        (class + 1) * SMALL_STEP - 8
    } else {
        SMALL + (class + 1 - SMALL_CLASSES) * LARGE_STEP
    }
}

/// `buffer` with `bytes` copied to its start, if it is unshared and long enough. (Zeroing a
/// new buffer and then filling it is cheaper than building it from a chained iterator,
/// which copies a byte at a time: loads took 9% more instructions that way.)
fn filled(mut buffer: Arc<[u8]>, bytes: &[u8]) -> Option<Arc<[u8]>> {
    Arc::get_mut(&mut buffer)?.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(buffer)
}

/// A new buffer of `len` bytes (at least `bytes.len()`): `bytes`, then zeros.
fn fresh(len: usize, bytes: &[u8]) -> Arc<[u8]> {
    buffer::concat(&[bytes], len)
}

/// Locks one class's free list. A panic while it is held cannot leave the list half
/// changed (a push or a pop), so a poisoned lock is used as it is.
fn lock(free: &PlainMutex<Vec<Arc<[u8]>>>) -> std::sync::MutexGuard<'_, Vec<Arc<[u8]>>> {
    free.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The free buffers, by class. Process-wide, as the allocator it stands in front of is.
struct Pool {
    classes: [PlainMutex<Vec<Arc<[u8]>>>; CLASSES],
    /// Bytes in all classes. Raised by `put` before it pushes, lowered by `take` and
    /// `release` after they pop: never below what the classes hold.
    bytes: PlainAtomicUsize,
}

static POOL: Pool = Pool::new();

impl Pool {
    const fn new() -> Pool {
        Pool {
            classes: [const { PlainMutex::new(Vec::new()) }; CLASSES],
            bytes: PlainAtomicUsize::new(0),
        }
    }

    /// A free buffer of `class`, or of a class within its [`reach`].
    fn take(&self, class: usize) -> Option<Arc<[u8]>> {
        let buffer = self
            .classes
            .iter()
            .skip(class)
            .take(reach(class) + 1)
            .find_map(|free| lock(free).pop())?;
        self.bytes.fetch_sub(buffer.len(), Ordering::Relaxed);
        Some(buffer)
    }

    /// Keeps `buffer` for reuse if it is of a class and there is room; frees it otherwise.
    fn put(&self, buffer: Arc<[u8]>) {
        let len = buffer.len();
        let Some(free) =
            class_of(len).filter(|&c| class_len(c) == len).and_then(|c| self.classes.get(c))
        else {
            return;
        };
        let mut free = lock(free);
        if (free.len() + 1) * len > CLASS_BYTES {
            return;
        }
        if self.bytes.fetch_add(len, Ordering::Relaxed) + len > POOL_BYTES {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            return;
        }
        free.push(buffer);
    }

    /// Whether a buffer of `len` bytes would fit in the pool's bound, as far as a glance
    /// can tell: `put` decides.
    fn has_room(&self, len: usize) -> bool {
        self.bytes.load(Ordering::Relaxed) + len <= POOL_BYTES
    }

    /// Frees every buffer.
    fn release(&self) {
        for class in &self.classes {
            let freed = std::mem::take(&mut *lock(class));
            let bytes: usize = freed.iter().map(|buffer| buffer.len()).sum();
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_gets_the_smallest_class_that_holds_it() {
        for len in 0..=LARGEST {
            let class = class_of(len).unwrap();
            assert!(class < CLASSES, "{len}");
            assert!(class_len(class) >= len, "{len}");
            if class > 0 {
                assert!(class_len(class - 1) < len.max(1), "{len}");
            }
        }
        assert_eq!(class_of(LARGEST + 1), None);
        assert_eq!(class_len(CLASSES - 1), LARGEST);
        // No class leaves glibc a byte to round up (see `SMALL`).
        for class in 0..CLASSES {
            assert_eq!((8 + 16 + class_len(class)) % 16, 0, "{class}");
        }
    }

    #[test]
    fn a_payload_reads_as_the_bytes_it_copied_whatever_its_buffer_held() {
        // A buffer recycled from a longer payload still reads as the new one.
        let long = Payload::copy_from(&[7; 1000]);
        drop(long);
        for len in [0, 1, 63, 64, 65, 999, 1000, 1025, 5000, LARGEST, LARGEST + 1] {
            let bytes: Vec<u8> = (0..=250).cycle().take(len).collect();
            let payload = Payload::copy_from(&bytes);
            assert_eq!(&*payload, &bytes[..]);
            assert!(payload.capacity() >= len);
            let clone = payload.clone();
            drop(payload);
            assert_eq!(&*clone, &bytes[..], "a clone outlives the payload it came from");
        }
    }

    #[test]
    fn a_buffer_freed_by_one_thread_is_taken_by_another() {
        // A pool of the test's own: the process's pool is shared with every other test.
        let pool = Pool::new();
        let large = SMALL_CLASSES + 40;
        let buffer = fresh(class_len(large), &[]);
        let address = buffer.as_ptr() as usize;
        pool.put(buffer);
        let within = reach(large);
        let taken =
            std::thread::scope(|scope| scope.spawn(|| pool.take(large - within)).join().unwrap());
        assert_eq!(taken.map(|b| b.as_ptr() as usize), Some(address), "within reach");
        assert_eq!(pool.bytes.load(Ordering::Relaxed), 0);
        pool.put(fresh(class_len(large), &[]));
        assert!(pool.take(large - within - 1).is_none(), "out of reach");
        assert!(pool.take(large + 1).is_none(), "a smaller buffer never serves");
        assert!(pool.take(large).is_some());
        // Small payloads reach less far.
        pool.put(fresh(class_len(10), &[]));
        assert!(pool.take(10 - reach(10) - 1).is_none());
        assert!(pool.take(10 - reach(10)).is_some());
        assert!(reach(10) * SMALL_STEP < reach(large) * LARGE_STEP);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_bounds() {
        let pool = Pool::new();
        let len = class_len(CLASSES - 1);
        for _ in 0..2 * CLASS_BYTES / len {
            pool.put(fresh(len, &[]));
        }
        assert_eq!(pool.bytes.load(Ordering::Relaxed), CLASS_BYTES / len * len);
        // Buffers not of a class's length (exact copies of large payloads) are not kept.
        pool.put(fresh(100, &[]));
        pool.put(fresh(LARGEST + 1, &[]));
        assert_eq!(pool.bytes.load(Ordering::Relaxed), CLASS_BYTES / len * len);
        // Filling class after class stops at the pool's bound.
        for class in (0..CLASSES).rev().take(2 * POOL_BYTES / CLASS_BYTES) {
            for _ in 0..CLASS_BYTES / class_len(class) {
                pool.put(fresh(class_len(class), &[]));
            }
        }
        let held = pool.bytes.load(Ordering::Relaxed);
        assert!(held <= POOL_BYTES && held > POOL_BYTES - 2 * LARGEST, "{held}");
        pool.release();
        assert_eq!(pool.bytes.load(Ordering::Relaxed), 0);
        assert!(pool.take(0).is_none());
    }
}
