//! [`Slots`]: a lock-free, grow-only array indexed by `u64`.
//!
//! The page table (one slot per page id) and the per-segment live-byte counters are `Slots`:
//! both are indexed by a dense, growing number, read on every operation and extended rarely.
//!
//! # Layout
//!
//! Slots live in buckets of doubling size: bucket `b` holds `2^(b + FIRST_BITS)` slots, so
//! with `FIRST_BITS = 4` bucket 0 holds indices `0..16`, bucket 1 `16..48`, bucket 2
//! `48..112`, and so on. Index `i` lives in the bucket of the highest set bit of
//! `i + 16`, at that number minus the bit. [`BUCKETS`] buckets hold `2^41 - 16` slots,
//! more than 2^40 pages.
//!
//! A bucket is allocated, filled with `T::default()`, on the first [`Slots::get`] of any of its
//! indices and kept until the `Slots` is dropped. Memory therefore follows the highest index
//! used: a 10-page table holds one bucket of 16 slots, and the last bucket is at most half the
//! whole, so a table never holds more than twice the slots up to its highest index. The
//! bucket pointers themselves are a fixed array inside the `Slots` (`BUCKETS` `OnceLock`s,
//! 888 bytes on 64-bit targets), so the table never moves a slot: a `&T` stays valid for as
//! long as the `Slots`.
//!
//! # Thread safety
//!
//! `Slots<T>` is `Sync` when `T` is: any thread may call any method at any time. Slots are
//! handed out as `&T`, so `T` brings its own interior mutability (atomics, epoch pointers).
//! Two threads creating the same bucket at once agree on one: `OnceLock` runs one
//! initialiser, and the other thread waits for it (bucket creation is rare, once per
//! doubling), then both see the same slots.
//!
//! # Invariants
//!
//! - A bucket, once created, is never replaced or freed before the `Slots` is dropped, so
//!   every index maps to exactly one `T` for the table's whole life.
//! - Bucket `b` has exactly `bucket_len(b)` slots.
//!
//! No `unsafe`: a `OnceLock<Box<[T]>>` per bucket costs a reader one acquire load (is the
//! bucket there?) and one bounds-checked index, as a hand-rolled `AtomicPtr` bucket would,
//! at 16 more bytes per bucket pointer.

use crate::sync::{OnceLock, Ordering, PlainAtomicU64};

/// log2 of the number of slots in bucket 0.
const FIRST_BITS: u32 = 4;

/// Number of buckets: enough for [`Slots::CAPACITY`] >= 2^40.
const BUCKETS: usize = 37;
/// [`BUCKETS`] as a shift amount.
const BUCKET_BITS: u32 = 37;

/// A lock-free, grow-only array of `T` indexed by `u64`; see the module docs.
pub(crate) struct Slots<T> {
    /// Bucket `b`, created on first use with `bucket_len(b)` default slots.
    ///
    /// Owner: the `Slots`. Transitions: empty -> filled, once, by whichever thread first
    /// asks for an index in it (`OnceLock` picks one); never back.
    buckets: [OnceLock<Box<[T]>>; BUCKETS],
    /// What [`Slots::allocated_bytes`] reports, kept so that reading it is one load rather
    /// than a look at every bucket: the page cache reads it after every write.
    ///
    /// Owner: the `Slots`. Transitions: raised by a bucket's bytes inside that bucket's
    /// `OnceLock` initialiser, which runs once per bucket; never lowered. Relaxed: it is a
    /// report and orders nothing (a reader may see it raised just before the bucket).
    allocated: PlainAtomicU64,
}

const _: () = assert!(Slots::<()>::CAPACITY >= 1 << 40, "page ids up to 2^40 fit");

/// Where an index lives: bucket number and offset inside the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    bucket: usize,
    offset: usize,
}

impl<T> Slots<T> {
    /// How many indices a table holds: `0..CAPACITY` are valid. At least 2^40.
    pub(crate) const CAPACITY: u64 = (1 << (BUCKET_BITS + FIRST_BITS)) - (1 << FIRST_BITS);

    /// An empty table: no bucket allocated.
    pub(crate) fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| OnceLock::new()),
            allocated: PlainAtomicU64::new(0),
        }
    }

    /// The slot at `index`, if its bucket exists. Never allocates.
    pub(crate) fn get_existing(&self, index: u64) -> Option<&T> {
        let position = position(index)?;
        // `OnceLock::get` is an acquire load: a filled bucket is seen with all its slots.
        let bucket = self.buckets[position.bucket].get()?;
        bucket.get(position.offset)
    }

    /// Bytes held by the buckets created so far: `size_of::<T>()` per slot allocated.
    ///
    /// Heap memory a `T` owns (an epoch pointer's target, say) is the caller's to count, and
    /// the fixed bucket-pointer array inside the `Slots` is not included.
    pub(crate) fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Every slot of every bucket created so far, with its index, in index order.
    ///
    /// Buckets that another thread creates during the walk may or may not be included; slots
    /// of a created bucket are all visited, whether or not anyone wrote them.
    pub(crate) fn iter_existing(&self) -> impl Iterator<Item = (u64, &T)> + '_ {
        self.buckets.iter().enumerate().filter_map(|(b, lock)| Some((b, lock.get()?))).flat_map(
            |(b, bucket)| {
                let first = bucket_start(b);
                (first..).zip(bucket.iter())
            },
        )
    }
}

impl<T: Default> Slots<T> {
    /// The slot at `index`, creating its bucket (of `T::default()`s) if this is its first use.
    ///
    /// # Panics
    ///
    /// If `index >= Self::CAPACITY`, or if the bucket does not fit in memory (only on targets
    /// whose `usize` is narrower than the bucket's length).
    pub(crate) fn get(&self, index: u64) -> &T {
        let Some(position) = position(index) else {
            panic!("slot index {index} is beyond the table's capacity {}", Self::CAPACITY);
        };
        let bucket = self.buckets[position.bucket].get_or_init(|| {
            let len = usize::try_from(bucket_len(position.bucket))
                .expect("a slot bucket's length fits in usize");
            let bytes = u64::try_from(len.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX);
            self.allocated.fetch_add(bytes, Ordering::Relaxed);
            std::iter::repeat_with(T::default).take(len).collect()
        });
        &bucket[position.offset]
    }
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Slots<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let created = self.buckets.iter().filter(|bucket| bucket.get().is_some()).count();
        f.debug_struct("Slots")
            .field("buckets", &created)
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

/// Number of slots in bucket `bucket`.
fn bucket_len(bucket: usize) -> u64 {
    1 << (FIRST_BITS + bucket_bits(bucket))
}

/// First index in bucket `bucket`.
fn bucket_start(bucket: usize) -> u64 {
    bucket_len(bucket) - (1 << FIRST_BITS)
}

/// `bucket` as a shift amount (buckets are below [`BUCKETS`], so this never saturates).
fn bucket_bits(bucket: usize) -> u32 {
    u32::try_from(bucket).unwrap_or(u32::MAX)
}

/// Where `index` lives, or `None` past [`Slots::CAPACITY`].
fn position(index: u64) -> Option<Position> {
    // Shift by 2^FIRST_BITS so that bucket b is exactly the numbers with highest bit
    // FIRST_BITS + b; the checked add only fails far past the capacity.
    let shifted = index.checked_add(1 << FIRST_BITS)?;
    let high_bit = u64::BITS - 1 - shifted.leading_zeros();
    let bucket = usize::try_from(high_bit - FIRST_BITS).ok()?;
    if bucket >= BUCKETS {
        return None;
    }
    let offset = usize::try_from(shifted - (1 << high_bit)).ok()?;
    Some(Position { bucket, offset })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::sync::{AtomicU64, Ordering};

    use super::{
        BUCKET_BITS, BUCKETS, FIRST_BITS, Position, Slots, bucket_len, bucket_start, position,
    };

    #[test]
    fn capacity_is_the_end_of_the_last_bucket() {
        assert_eq!(bucket_start(BUCKETS - 1) + bucket_len(BUCKETS - 1), Slots::<u8>::CAPACITY);
        assert_eq!(usize::try_from(BUCKET_BITS), Ok(BUCKETS));
    }

    #[test]
    fn positions_tile_the_index_space() {
        assert_eq!(position(0), Some(Position { bucket: 0, offset: 0 }));
        assert_eq!(position(15), Some(Position { bucket: 0, offset: 15 }));
        assert_eq!(position(16), Some(Position { bucket: 1, offset: 0 }));
        assert_eq!(position(47), Some(Position { bucket: 1, offset: 31 }));
        assert_eq!(position(48), Some(Position { bucket: 2, offset: 0 }));
        for b in 0..BUCKETS {
            let start = bucket_start(b);
            let last = start + bucket_len(b) - 1;
            assert_eq!(position(start), Some(Position { bucket: b, offset: 0 }));
            let last_offset = usize::try_from(bucket_len(b) - 1).expect("64-bit test target");
            assert_eq!(position(last), Some(Position { bucket: b, offset: last_offset }));
            if b + 1 < BUCKETS {
                assert_eq!(bucket_start(b + 1), last + 1);
            }
        }
        assert_eq!(position(Slots::<u8>::CAPACITY - 1).map(|p| p.bucket), Some(BUCKETS - 1));
        assert_eq!(position(Slots::<u8>::CAPACITY), None);
        assert_eq!(position(u64::MAX), None);
        assert_eq!(position(u64::MAX - (1 << FIRST_BITS)), None);
    }

    #[test]
    fn indices_across_bucket_boundaries_are_distinct_slots() {
        let slots = Slots::<AtomicU64>::new();
        let indices: Vec<u64> = (0..12)
            .flat_map(|b| {
                let start = bucket_start(b);
                [start, start + 1, start + bucket_len(b) - 1]
            })
            .collect();
        for &i in &indices {
            slots.get(i).store(i + 1, Ordering::Relaxed);
        }
        for &i in &indices {
            assert_eq!(slots.get(i).load(Ordering::Relaxed), i + 1);
            assert_eq!(slots.get_existing(i).map(|s| s.load(Ordering::Relaxed)), Some(i + 1));
        }
        // Slots nobody wrote in the same buckets are still default.
        assert_eq!(slots.get(2).load(Ordering::Relaxed), 0);
        assert_eq!(slots.get(bucket_start(11) + 7).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn slot_addresses_are_stable_while_the_table_grows() {
        let slots = Slots::<u64>::new();
        let first: *const u64 = slots.get(3);
        for i in (0..100_000).step_by(997) {
            slots.get(i);
        }
        assert!(std::ptr::eq(first, slots.get(3)));
    }

    #[test]
    fn get_existing_sees_only_created_buckets() {
        let slots = Slots::<AtomicU64>::new();
        assert!(slots.get_existing(0).is_none());
        assert!(slots.get_existing(100).is_none());
        assert_eq!(slots.allocated_bytes(), 0, "get_existing allocates nothing");

        slots.get(100).store(7, Ordering::Relaxed);
        // 100 is in bucket 2 (48..112); its neighbours exist too, other buckets do not.
        assert_eq!(slots.get_existing(100).map(|s| s.load(Ordering::Relaxed)), Some(7));
        assert_eq!(slots.get_existing(48).map(|s| s.load(Ordering::Relaxed)), Some(0));
        assert_eq!(slots.get_existing(111).map(|s| s.load(Ordering::Relaxed)), Some(0));
        assert!(slots.get_existing(47).is_none());
        assert!(slots.get_existing(112).is_none());
        assert!(slots.get_existing(0).is_none());
        assert!(slots.get_existing(Slots::<AtomicU64>::CAPACITY).is_none());
    }

    #[test]
    fn iter_existing_walks_created_buckets_in_index_order() {
        let slots = Slots::<AtomicU64>::new();
        assert_eq!(slots.iter_existing().count(), 0);
        slots.get(5).store(50, Ordering::Relaxed);
        slots.get(60).store(600, Ordering::Relaxed);
        let seen: Vec<(u64, u64)> =
            slots.iter_existing().map(|(i, s)| (i, s.load(Ordering::Relaxed))).collect();
        let indices: Vec<u64> = seen.iter().map(|&(i, _)| i).collect();
        // Buckets 0 (0..16) and 2 (48..112), not bucket 1.
        let expected: Vec<u64> = (0..16).chain(48..112).collect();
        assert_eq!(indices, expected);
        let written: Vec<(u64, u64)> = seen.into_iter().filter(|&(_, v)| v != 0).collect();
        assert_eq!(written, vec![(5, 50), (60, 600)]);
    }

    #[test]
    fn allocated_bytes_follow_the_highest_index() {
        let slots = Slots::<AtomicU64>::new();
        // A 10-page table: one bucket of 16 eight-byte slots.
        for i in 0..10 {
            slots.get(i);
        }
        assert_eq!(slots.allocated_bytes(), 16 * 8);

        for i in 0..1_000_000_u64 {
            slots.get(i);
            if (i + 1) % 50_000 == 0 {
                let used = (i + 1) * 8;
                let held = slots.allocated_bytes();
                assert!(held >= used, "{held} bytes cannot hold {used}");
                assert!(held <= 2 * used, "{held} bytes for {used} used");
            }
        }
        // Growth follows the highest index, not how often slots are touched.
        let before = slots.allocated_bytes();
        for i in 0..1_000_000_u64 {
            slots.get(i);
        }
        assert_eq!(slots.allocated_bytes(), before);
    }

    #[test]
    fn a_huge_index_allocates_only_its_bucket() {
        let slots = Slots::<u8>::new();
        // Index 2^24 lives in bucket 20 (2^24 - 16 .. 2^25 - 16), of 2^24 one-byte slots.
        slots.get(1 << 24);
        assert_eq!(slots.allocated_bytes(), 1 << 24);
        assert!(slots.get_existing(0).is_none());
    }

    #[test]
    #[should_panic(expected = "beyond the table's capacity")]
    fn get_past_capacity_panics() {
        let slots = Slots::<u8>::new();
        slots.get(Slots::<u8>::CAPACITY);
    }

    #[test]
    fn concurrent_gets_agree_on_one_slot_per_index() {
        const THREADS: u64 = 4;
        const INDICES: u64 = 5_000;
        let slots = Slots::<AtomicU64>::new();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let slots = &slots;
                scope.spawn(move || {
                    // Every thread walks every index (in a different order), so all four
                    // race to create each bucket.
                    for k in 0..INDICES {
                        let i = if t % 2 == 0 { k } else { INDICES - 1 - k };
                        slots.get(i).fetch_add(1 << (16 * t), Ordering::Relaxed);
                    }
                });
            }
        });
        let all_threads: u64 = (0..THREADS).map(|t| 1 << (16 * t)).sum();
        for i in 0..INDICES {
            assert_eq!(slots.get_existing(i).map(|s| s.load(Ordering::Relaxed)), Some(all_threads));
        }
        let total: u64 = slots.iter_existing().map(|(_, s)| s.load(Ordering::Relaxed)).sum();
        assert_eq!(total, INDICES * all_threads);
    }
}
