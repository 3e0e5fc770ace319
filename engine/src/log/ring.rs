//! The ring of in-memory log buffers and the lock-free reservation protocol.
//!
//! # How an append flows
//! 1. A writer reserves `len` bytes in the *open* buffer with one CAS on its
//!    [`BufferHeader`]: offset += len, writers += 1. The record's LSN is the buffer's base
//!    LSN plus the old offset. No lock is taken.
//! 2. It copies its record into that private range, then releases: writers -= 1 (release
//!    ordering publishes the bytes).
//! 3. When a reservation does not fit, or `flush` wants the data out, one thread wins the
//!    CAS that *seals* the buffer. The sealer decides where the next buffer starts, waits
//!    until the ring slot after it is free, opens it, and advances `current`.
//! 4. The flusher takes sealed buffers in incarnation order once their writer count is zero
//!    and writes them; their slots are free as soon as the bytes are handed to the OS
//!    (`released`). It syncs when someone waits (`requested`), when a timer expires, or when
//!    a segment closes, and only then publishes the new stable LSN (`flushed`, `stable`).
//!
//! # Thread safety
//! Writers, sealers and `flush` callers may run on any threads; there is one flusher.
//! Waiting (a sealed buffer being replaced, a full ring, a flush) spins briefly, then blocks
//! on a condition variable; the hot path takes no lock.
//!
//! # Invariants
//! - At most one buffer is open (unsealed) at a time: the one `current` names. A slot is
//!   reopened only by the sealer of the buffer before it, after sealing that buffer.
//! - Reservations in one incarnation are disjoint and lie below its capacity.
//! - The flusher writes an incarnation only when it is sealed, its writer count is zero and
//!   its `next_base` is known; so stable never passes an incomplete record.
//! - `flushed <= released`; `released`, `written_lsn`, `flushed`, `requested` and `stable`
//!   only grow; every LSN below `written_lsn` is in its file, every LSN below `stable` is
//!   durable, and `stable <= written_lsn`.

use std::time::Duration;

use super::{geometry::Geometry, header::BufferHeader};
use crate::{
    error::{Error, Result},
    sync::{self, AtomicBool, AtomicU64, Condvar, Mutex, Ordering, SharedBuffer},
};

/// `next_base` before the sealer has decided it.
const UNKNOWN: u64 = u64::MAX;

/// Spins before a waiting thread blocks. Under loom every spin is a branch of the search,
/// so models block at once.
#[cfg(not(loom))]
const SPINS_BEFORE_BLOCKING: u32 = 64;
#[cfg(loom)]
const SPINS_BEFORE_BLOCKING: u32 = 1;

/// Upper bound on one blocking wait, so a missed wake-up can only cost time, never hang.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// One buffer of the ring.
#[derive(Debug)]
struct Slot {
    /// The packed [`BufferHeader`]. Writers CAS and fetch-sub it; see its docs for the
    /// legal transitions.
    header: AtomicU64,
    /// LSN of the buffer's byte 0. Written by the opener before it publishes the header
    /// (release); read after acquiring the header.
    base: AtomicU64,
    /// Bytes this incarnation may hold. Same ownership as `base`.
    capacity: AtomicU64,
    /// Where the next buffer starts: `UNKNOWN` until the sealer decides (release), read by
    /// the flusher (acquire). Reset by the opener.
    next_base: AtomicU64,
    bytes: SharedBuffer,
}

/// Why the log stopped accepting writes.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) cause: String,
    pub(crate) kind: Option<std::io::ErrorKind>,
}

/// A reserved, exclusive range of a buffer.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    slot: &'a Slot,
    offset: u64,
    len: u64,
    lsn: u64,
}

impl Claim<'_> {
    /// The LSN of the claimed range's first byte.
    pub(crate) fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Copies `bytes` into the claimed range at `at`.
    pub(crate) fn write(&self, at: usize, bytes: &[u8]) {
        let (Ok(len), Ok(offset)) = (usize::try_from(self.len), usize::try_from(self.offset))
        else {
            return;
        };
        // Callers are this module's own (header then body, sized at reservation), so this
        // never fires on data read from disk; it guards the unsafe copy below against a bug.
        assert!(at + bytes.len() <= len, "write outside the claimed range");
        // SAFETY: the CAS in `Ring::reserve` gave this claim `offset..offset + len` of this
        // incarnation alone, and the flusher reads it only after `Ring::release` (release
        // ordering) dropped the writer count to zero.
        #[expect(unsafe_code, reason = "writing into this claim's exclusive range")]
        unsafe {
            self.slot.bytes.write(offset + at, bytes);
        }
    }
}

/// A sealed buffer whose writers have all finished, ready to be written out.
#[derive(Debug)]
pub(crate) struct Sealed<'a> {
    slot: &'a Slot,
    /// LSN of the buffer's first byte.
    pub(crate) base: u64,
    /// Bytes of records in it.
    pub(crate) used: u64,
    /// Where the next buffer starts.
    pub(crate) next_base: u64,
}

impl Sealed<'_> {
    /// Runs `f` on the buffer's record bytes.
    pub(crate) fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let Ok(used) = usize::try_from(self.used) else {
            return f(&[]);
        };
        // SAFETY: sealed with zero writers, observed through an acquire load of the header
        // that every writer's release decrement precedes; nobody writes it again until the
        // flusher frees the slot.
        #[expect(unsafe_code, reason = "reading a buffer its writers released")]
        unsafe {
            self.slot.bytes.with_slice(0..used, f)
        }
    }

    /// Runs `f` on the buffer's record bytes, to change them in place before they are
    /// written (the flusher fills in the records' checksums).
    pub(crate) fn with_bytes_mut<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let Ok(used) = usize::try_from(self.used) else {
            return f(&mut []);
        };
        // SAFETY: as for `with_bytes`: every writer released the buffer before the acquire
        // load that made it ready, and only the one flusher, which holds this `Sealed`,
        // touches it until it frees the slot; `f` borrows the bytes for this call alone.
        #[expect(unsafe_code, reason = "the flusher finishing a buffer its writers released")]
        unsafe {
            self.slot.bytes.with_slice_mut(0..used, f)
        }
    }
}

/// The ring of buffers. See the module docs.
#[derive(Debug)]
pub(crate) struct Ring {
    slots: Box<[Slot]>,
    /// Incarnation number of the open buffer; its slot is `current % slots.len()`.
    /// Owner: the sealer of incarnation `current - 1` stores `current` after opening it.
    /// Only grows.
    current: AtomicU64,
    /// Incarnations below this are written to their files (maybe not synced): their slots
    /// may be reopened. Owner: the flusher. Only grows.
    released: AtomicU64,
    /// Every LSN below this is written to its segment file (maybe not synced), so a read
    /// finds it. Owner: the flusher, which stores it with `released`. Only grows.
    written_lsn: AtomicU64,
    /// Incarnations below this are written and synced. Owner: the flusher. Only grows.
    flushed: AtomicU64,
    /// One more than the highest incarnation a `flush` caller waits for (0: none yet).
    /// Raised by `request` (fetch-max); read by the flusher to decide when to sync.
    requested: AtomicU64,
    /// Every LSN below this is durable. Owner: the flusher. Only grows.
    stable: AtomicU64,
    geometry: Geometry,
    max_buffer: u64,
    /// Set once, by the first failure; checked on every slow path.
    failed: AtomicBool,
    failure: Mutex<Option<Failure>>,
    /// Set once when the log shuts down.
    closing: AtomicBool,
    /// Guards no data: it pairs with the condition variables so wake-ups are not lost.
    wake: Mutex<()>,
    /// The flusher waits here for a buffer to become ready.
    work: Condvar,
    /// Writers, sealers and `flush` callers wait here for rotation or flusher progress.
    progress: Condvar,
}

impl Ring {
    /// A ring of `count` buffers of `max_buffer` bytes; the first opens at `start`.
    pub(crate) fn new(geometry: Geometry, start: u64, max_buffer: u64, count: usize) -> Self {
        let buffer_len = usize::try_from(max_buffer).unwrap_or(0);
        let slots: Box<[Slot]> = (0..count)
            .map(|i| {
                let first = i == 0;
                Slot {
                    // Slot 0 holds the open incarnation 0; the others wait, sealed, for theirs.
                    header: AtomicU64::new(if first {
                        BufferHeader::open(0).raw()
                    } else {
                        BufferHeader::open(0).sealed().raw()
                    }),
                    base: AtomicU64::new(start),
                    capacity: AtomicU64::new(if first {
                        geometry.buffer_capacity(start, max_buffer)
                    } else {
                        0
                    }),
                    next_base: AtomicU64::new(UNKNOWN),
                    bytes: SharedBuffer::new(buffer_len),
                }
            })
            .collect();
        Self {
            slots,
            current: AtomicU64::new(0),
            released: AtomicU64::new(0),
            written_lsn: AtomicU64::new(start),
            flushed: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            stable: AtomicU64::new(start),
            geometry,
            max_buffer,
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            closing: AtomicBool::new(false),
            wake: Mutex::new(()),
            work: Condvar::new(),
            progress: Condvar::new(),
        }
    }

    fn slot(&self, incarnation: u64) -> &Slot {
        let count = self.slots.len() as u64;
        let index = usize::try_from(incarnation % count).unwrap_or(0);
        &self.slots[index]
    }

    fn count(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The largest reservation the ring accepts.
    pub(crate) fn max_len(&self) -> u64 {
        self.max_buffer
    }

    /// The geometry buffers are laid out by.
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Every LSN below this is written to its segment file (maybe not synced).
    pub(crate) fn written_lsn(&self) -> u64 {
        // Acquire: pairs with the flusher's release in `publish_written`, so a reader that
        // sees the watermark also sees the segment the flusher registered and wrote.
        self.written_lsn.load(Ordering::Acquire)
    }

    /// Every LSN below this is durable.
    pub(crate) fn stable(&self) -> u64 {
        // Acquire: pairs with the flusher's release in `publish`.
        self.stable.load(Ordering::Acquire)
    }

    /// The LSN the next reservation would get, roughly: for statistics only.
    pub(crate) fn reserved_end(&self) -> u64 {
        let c = self.current.load(Ordering::Acquire);
        let slot = self.slot(c);
        let header = BufferHeader::from_raw(slot.header.load(Ordering::Acquire));
        slot.base.load(Ordering::Acquire) + header.offset()
    }

    /// The error every operation returns once the log failed or closed, if it has.
    fn check(&self) -> Result<()> {
        // Acquire: the failure text was stored before the flag.
        if self.failed.load(Ordering::Acquire) {
            let failure = sync::lock(&self.failure).clone();
            let failure = failure.unwrap_or(Failure { cause: "unknown".to_owned(), kind: None });
            return Err(Error::LogFailed { cause: failure.cause, kind: failure.kind });
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Reserves `len` contiguous bytes in the open buffer. `len` is at most `max_len`.
    pub(crate) fn reserve(&self, len: u64) -> Result<Claim<'_>> {
        debug_assert!(len <= self.max_buffer && len > 0);
        loop {
            self.check()?;
            // Acquire: pairs with the sealer's release when it advances `current`.
            let c = self.current.load(Ordering::Acquire);
            let slot = self.slot(c);
            let header = BufferHeader::from_raw(slot.header.load(Ordering::Acquire));
            if !header.is_incarnation(c) || header.is_sealed() {
                self.wait_for_rotation(c)?;
                continue;
            }
            if header.writers() == BufferHeader::MAX_WRITERS {
                sync::spin_hint();
                continue;
            }
            // Acquire load above made the opener's stores of base and capacity visible.
            let capacity = slot.capacity.load(Ordering::Acquire);
            if header.offset() + len > capacity {
                self.try_seal(c, slot, header, len, true)?;
                continue;
            }
            if slot
                .header
                .compare_exchange_weak(
                    header.raw(),
                    header.reserve(len).raw(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // Our writer count pins this incarnation, so its base cannot change under us.
                let base = slot.base.load(Ordering::Acquire);
                return Ok(Claim {
                    slot,
                    offset: header.offset(),
                    len,
                    lsn: base + header.offset(),
                });
            }
        }
    }

    /// Ends a claim: its bytes are final (a completed or an aborted record).
    pub(crate) fn release(&self, claim: Claim<'_>) {
        // Release: publishes the claim's bytes to the flusher, which acquires the header.
        let previous = claim.slot.header.fetch_sub(BufferHeader::ONE_WRITER, Ordering::AcqRel);
        let now = BufferHeader::from_raw(previous - BufferHeader::ONE_WRITER);
        if now.is_sealed() && now.writers() == 0 {
            self.notify(&self.work);
        }
    }

    /// Makes everything reserved so far eligible for writing, and returns the incarnation
    /// that must be flushed for it to be durable (`None`: nothing was ever reserved here).
    /// The flusher is woken for the buffer this call seals if `wake_flusher`; a caller that
    /// passes `false` must write it itself.
    pub(crate) fn seal_for_flush(&self, wake_flusher: bool) -> Result<Option<u64>> {
        loop {
            self.check()?;
            let c = self.current.load(Ordering::Acquire);
            let slot = self.slot(c);
            let header = BufferHeader::from_raw(slot.header.load(Ordering::Acquire));
            if !header.is_incarnation(c) {
                // Recycled since we read `current`: read it again.
                sync::spin_hint();
                continue;
            }
            if header.is_sealed() {
                return Ok(Some(c));
            }
            if header.offset() == 0 {
                return Ok(c.checked_sub(1));
            }
            if self.try_seal(c, slot, header, 0, wake_flusher)? {
                return Ok(Some(c));
            }
        }
    }

    /// Seals the open buffer if the flusher has caught up and it holds data; used by the
    /// flusher's timer so writes become durable within `flush_every_ms`.
    pub(crate) fn seal_if_idle(&self, written_upto: u64) -> Result<()> {
        let c = self.current.load(Ordering::Acquire);
        if c != written_upto {
            return Ok(());
        }
        let slot = self.slot(c);
        let header = BufferHeader::from_raw(slot.header.load(Ordering::Acquire));
        if header.is_incarnation(c) && !header.is_sealed() && header.offset() > 0 {
            self.try_seal(c, slot, header, 0, true)?;
        }
        Ok(())
    }

    /// Seals incarnation `c` if its header is still `header`; the winner then opens the next
    /// buffer, leaving room there for `need` bytes, and wakes the flusher if
    /// `wake_flusher`. Returns whether this call sealed it.
    fn try_seal(
        &self,
        c: u64,
        slot: &Slot,
        header: BufferHeader,
        need: u64,
        wake_flusher: bool,
    ) -> Result<bool> {
        let sealed = slot
            .header
            .compare_exchange(
                header.raw(),
                header.sealed().raw(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if sealed {
            self.rotate(c, slot, header.offset(), need, wake_flusher)?;
        }
        Ok(sealed)
    }

    /// Called by the thread that sealed incarnation `c` with `used` bytes: decides where the
    /// next buffer starts (leaving room for `need` bytes), wakes the flusher if
    /// `wake_flusher`, waits for the next buffer's slot, opens it.
    fn rotate(&self, c: u64, slot: &Slot, used: u64, need: u64, wake_flusher: bool) -> Result<()> {
        let base = slot.base.load(Ordering::Acquire);
        let next = self.geometry.next_buffer_start(base + used, need);
        // Release: the flusher acquires `next_base` and then knows the buffer is complete.
        slot.next_base.store(next, Ordering::Release);
        if wake_flusher {
            self.notify(&self.work);
        }

        // The slot for `c + 1` last held incarnation `c + 1 - count`; wait until it is written.
        let mut spins = 0;
        while self.released.load(Ordering::Acquire) + self.count() < c + 2 {
            self.check()?;
            self.pause(&mut spins, || {
                self.released.load(Ordering::Acquire) + self.count() >= c + 2
                    || self.failed.load(Ordering::Acquire)
            });
        }
        let opened = self.slot(c + 1);
        opened.base.store(next, Ordering::Relaxed);
        opened
            .capacity
            .store(self.geometry.buffer_capacity(next, self.max_buffer), Ordering::Relaxed);
        opened.next_base.store(UNKNOWN, Ordering::Relaxed);
        // Release: publishes base, capacity and next_base with the new generation.
        opened.header.store(BufferHeader::open(c + 1).raw(), Ordering::Release);
        self.current.store(c + 1, Ordering::Release);
        self.notify(&self.progress);
        Ok(())
    }

    /// Waits until `current` moves past `c`.
    fn wait_for_rotation(&self, c: u64) -> Result<()> {
        let mut spins = 0;
        while self.current.load(Ordering::Acquire) == c {
            self.check()?;
            self.pause(&mut spins, || {
                self.current.load(Ordering::Acquire) != c || self.failed.load(Ordering::Acquire)
            });
        }
        Ok(())
    }

    /// Asks the flusher to make incarnation `target` durable as soon as it is written, and
    /// wakes it if `wake_flusher` (see [`Ring::seal_for_flush`]).
    pub(crate) fn request(&self, target: u64, wake_flusher: bool) {
        // AcqRel: the flusher's acquire load of `requested` must see the request.
        self.requested.fetch_max(target + 1, Ordering::AcqRel);
        if wake_flusher {
            self.notify(&self.work);
        }
    }

    /// One more than the highest incarnation a `flush` caller waits for.
    pub(crate) fn requested(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// Waits until incarnation `target` is durable; returns the stable LSN. Call
    /// [`Ring::request`] first, or the wait lasts until the flusher syncs on its own.
    pub(crate) fn wait_flushed(&self, target: u64) -> Result<u64> {
        let mut spins = 0;
        while self.flushed.load(Ordering::Acquire) <= target {
            // A close drains the ring before the flusher exits, so only failure stops us.
            if self.failed.load(Ordering::Acquire) {
                self.check()?;
            }
            self.pause(&mut spins, || {
                self.flushed.load(Ordering::Acquire) > target || self.failed.load(Ordering::Acquire)
            });
        }
        Ok(self.stable())
    }

    /// Spins a little, then blocks on `progress` until `done` holds (or a bounded time).
    fn pause(&self, spins: &mut u32, done: impl Fn() -> bool) {
        if *spins < SPINS_BEFORE_BLOCKING {
            *spins += 1;
            sync::spin_hint();
            return;
        }
        let guard = sync::lock(&self.wake);
        if !done() {
            drop(sync::wait_timeout(&self.progress, guard, MAX_WAIT));
        }
    }

    fn notify(&self, condvar: &Condvar) {
        // Taking the lock orders this wake-up after a waiter's check of its condition: a
        // waiter holds the lock from its check until it sleeps. Waking after letting go of
        // the lock spares the woken thread blocking on it at once, which on a durable write
        // was a second sleep and wake-up per hand-off between writer and flusher.
        drop(sync::lock(&self.wake));
        condvar.notify_all();
    }

    // ---- The flusher's side ----

    /// Incarnation `f`, if it is sealed, complete and ready to be written.
    pub(crate) fn ready(&self, f: u64) -> Option<Sealed<'_>> {
        let slot = self.slot(f);
        // Acquire: pairs with every writer's release in `release`.
        let header = BufferHeader::from_raw(slot.header.load(Ordering::Acquire));
        if !header.is_incarnation(f) || !header.is_sealed() || header.writers() != 0 {
            return None;
        }
        let next_base = slot.next_base.load(Ordering::Acquire);
        if next_base == UNKNOWN {
            return None;
        }
        let base = slot.base.load(Ordering::Acquire);
        Some(Sealed { slot, base, used: header.offset(), next_base })
    }

    /// Blocks the flusher thread until the next incarnation to write is ready, a flush
    /// waits for written but unsynced incarnations, the log closes or fails, or `timeout`
    /// passes. What is written and synced is read here, under the lock wake-ups take, not
    /// passed in: a `flush` caller may have done the flusher's work since the thread last
    /// looked, and a wait on that older view could miss the wake-up for the buffer after.
    pub(crate) fn wait_for_work(&self, timeout: Duration) {
        let guard = sync::lock(&self.wake);
        let f = self.released.load(Ordering::Acquire);
        let synced = self.flushed.load(Ordering::Acquire);
        let sync_wanted = synced < f && self.requested() > synced;
        if self.ready(f).is_none()
            && !sync_wanted
            && !self.closing.load(Ordering::Acquire)
            && !self.failed.load(Ordering::Acquire)
        {
            drop(sync::wait_timeout(&self.work, guard, timeout));
        }
    }

    /// Records that incarnations below `written` are in their files, freeing their slots,
    /// and that every LSN below `written_lsn` is.
    pub(crate) fn publish_written(&self, written: u64, written_lsn: u64) {
        // Release: readers acquire it (see `written_lsn`).
        self.written_lsn.store(written_lsn, Ordering::Release);
        // Release: the reopening sealer acquires it; the flusher is done with these bytes.
        self.released.store(written, Ordering::Release);
        self.notify(&self.progress);
    }

    /// Records that incarnations below `flushed` are durable, up to LSN `stable`.
    pub(crate) fn publish_durable(&self, flushed: u64, stable: u64) {
        // Release, stable first: a waiter that sees `flushed` also sees the new `stable`.
        self.stable.store(stable, Ordering::Release);
        self.flushed.store(flushed, Ordering::Release);
        self.notify(&self.progress);
    }

    /// Both of the above at once: written and durable (for models of the protocol).
    #[cfg(all(test, loom))]
    pub(crate) fn publish(&self, flushed: u64, stable: u64) {
        self.written_lsn.store(stable, Ordering::Release);
        self.released.store(flushed, Ordering::Release);
        self.publish_durable(flushed, stable);
    }

    /// Stops the log for good: every waiter and every later call gets `LogFailed`.
    pub(crate) fn fail(&self, failure: Failure) {
        {
            let mut slot = sync::lock(&self.failure);
            if slot.is_none() {
                *slot = Some(failure);
            }
        }
        self.failed.store(true, Ordering::Release);
        self.notify(&self.progress);
        self.notify(&self.work);
    }

    /// Whether the log has failed.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Asks the flusher to exit once nothing is left to write; refuses new reservations.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.notify(&self.work);
        self.notify(&self.progress);
    }

    /// Whether `close` was called.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}
