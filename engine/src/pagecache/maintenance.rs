//! Checkpoints and the cleaner: what keeps open time and disk space bounded.
//!
//! # Checkpoints
//! A checkpoint is the page table's locations at one moment, plus where recovery must start
//! replaying the delta stream (`delta_from`). Taking one:
//!
//! 1. `delta_from = flush(delta)`: every update below it is complete, hence visible to
//!    the snapshot; every update the snapshot misses has a larger LSN and is replayed;
//! 2. snapshot every slot (updates racing with it may or may not be in it: replay skips
//!    any record whose version the page already has);
//! 3. flush both streams again, so every record the snapshot names is durable;
//! 4. write the file atomically (see `checkpoint.rs`), keeping the previous one.
//!
//! # Cleaning
//! A sealed segment whose live fraction is below `clean_below` is emptied by copying its
//! live records, as they are, into the base stream (see [`Inner::relocate`]): the emptiest
//! segments first, at most about `checkpoint_every` of live bytes per pass. A segment
//! with no live bytes is deleted once no kept checkpoint can need it: two
//! checkpoints are kept, it must be below where both start in its stream, and neither may
//! refer to it. A maintenance pass that leaves such segments takes its checkpoint twice, so
//! that it can delete them itself.

use std::{
    cell::Cell,
    collections::HashSet,
    ops::{Deref, DerefMut},
    time::Instant,
};

use super::{
    cache::Inner,
    checkpoint::{self, Checkpoint, SegmentLive},
    live::SegmentMap,
    loc::{Loc, Stream},
    pages::{PageImage, Pages},
    record,
    state::{Frags, PageState, Part},
    stats::Written,
    table::Peek,
};
use crate::{
    error::{Error, Result},
    ids::{Lsn, PageId, SegmentId},
    log::Log,
    sync::{self, MutexGuard, Ordering, epoch},
};

/// A checkpoint the cache keeps (on disk and in mind).
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// Where it starts in each stream (`delta_from`, `base_from`).
    pub(crate) from: [Lsn; 2],
    /// Every segment one of its pages refers to.
    pub(crate) refers_to: HashSet<(Stream, SegmentId)>,
    /// The size of its file.
    pub(crate) bytes: u64,
}

std::thread_local! {
    /// Whether this thread holds the maintenance lock. The writes maintenance makes (a
    /// relocation; a consolidation while it reads) must not wait for maintenance to catch
    /// up, since that is this thread.
    static MAINTAINING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread holds the maintenance lock.
pub(crate) fn maintaining() -> bool {
    MAINTAINING.with(Cell::get)
}

/// The maintenance lock, held: [`Inner::lock_maintenance`].
pub(crate) struct Held<'a>(MutexGuard<'a, Maintenance>);

impl Deref for Held<'_> {
    type Target = Maintenance;

    fn deref(&self) -> &Maintenance {
        &self.0
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Maintenance {
        &mut self.0
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        MAINTAINING.with(|held| held.set(false));
    }
}

impl Inner {
    /// Takes the maintenance lock, waiting for a pass under way.
    pub(crate) fn lock_maintenance(&self) -> Held<'_> {
        let guard = sync::lock(&self.maintenance);
        MAINTAINING.with(|held| held.set(true));
        Held(guard)
    }

    /// Takes the maintenance lock unless another thread holds it.
    pub(crate) fn try_lock_maintenance(&self) -> Option<Held<'_>> {
        let guard = self.maintenance.try_lock().ok()?;
        MAINTAINING.with(|held| held.set(true));
        Some(Held(guard))
    }
}

/// State only the maintenance thread touches (behind `Inner::maintenance`).
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    /// The newest checkpoint's sequence number (0: none yet).
    pub(crate) last_seq: u64,
    /// The checkpoints kept, oldest first; at most two.
    pub(crate) kept: Vec<Kept>,
    /// Where each log ended (reserved LSN) when the newest checkpoint was complete, or when
    /// the cache opened from it with nothing to replay: while the logs still end there, a
    /// new checkpoint would repeat it.
    pub(crate) current_at: Option<[Lsn; 2]>,
}

impl Inner {
    pub(crate) fn checkpoint(&self, maintenance: &mut Maintenance) -> Result<()> {
        self.take_checkpoint(maintenance).map(drop)
    }

    /// Takes a checkpoint and keeps it; returns it, for [`Inner::maintain`] to write again.
    fn take_checkpoint(&self, maintenance: &mut Maintenance) -> Result<Checkpoint> {
        self.writable()?;
        // The base stream's flusher syncs what is written there so far while this thread
        // flushes the delta stream and scans: the base stream's flush after the scan then
        // has little or nothing left to do.
        let early_base = self.log(Stream::Base).start_flush()?;
        let flushed = self.log(Stream::Delta).flush()?;
        // A group update between its first record and its last install may be caught half
        // installed by the snapshot: replay must cover all of its records (`group.rs`).
        let delta_from = self.in_flight.oldest().map_or(flushed, |oldest| oldest.min(flushed));
        // Read after the flush: an id handed out later is allocated by a record at or
        // after `delta_from`, which replay will find.
        let count = self.next_id.load(Ordering::Relaxed);
        let mut pages = Pages::with_capacity(usize::try_from(count).unwrap_or(0));
        let guard = epoch::pin();
        for id in 0..count {
            self.table.prefetch_ahead(PageId(id), &guard);
            let fits = match self.table.peek(PageId(id), &guard) {
                Peek::Empty => pages.push_free(0),
                Peek::Cold(PageImage::Free { version }) => pages.push_free(version),
                Peek::Cold(PageImage::Live { version, weighs, base, frags }) => {
                    pages.push_live(version, weighs, base, frags)
                }
                Peek::State(state) => match &state.live {
                    None => pages.push_free(state.version),
                    Some(live) => pages.push_live(
                        state.version,
                        (live.owner, live.weight),
                        live.base.loc,
                        live.frags.iter().map(|f| f.loc),
                    ),
                },
            };
            if !fits {
                return Err(Error::Config(
                    "the page table is too large for one checkpoint (4 GiB)".into(),
                ));
            }
        }
        drop(guard);
        early_base.wait()?;
        let base = self.log(Stream::Base).start_flush()?;
        self.log(Stream::Delta).flush()?;
        let base_from = base.wait()?;
        // Mapped after the flushes: every segment a record of the snapshot lies in exists.
        // The live bytes of the snapshot's segments: opening starts from these instead of
        // counting every page's records again.
        let segments = SegmentMap::new(&self.logs);
        // Summed by position in each stream's segment list: a page has a few records, and a
        // map keyed by segment made this loop most of a checkpoint's time.
        let mut sums: [Vec<u64>; 2] =
            Stream::ALL.map(|stream| vec![0; segments.segments(stream).len()]);
        for page in pages.iter() {
            for loc in page.locs() {
                if let Some(index) = segments.index(loc)
                    && let Some(sum) = sums[loc.stream.index()].get_mut(index)
                {
                    *sum += u64::from(loc.len);
                }
            }
        }
        let live: Vec<SegmentLive> = Stream::ALL
            .into_iter()
            .flat_map(|stream| {
                let sums = &sums[stream.index()];
                segments
                    .segments(stream)
                    .iter()
                    .zip(sums)
                    .filter(|(_, bytes)| **bytes > 0)
                    .map(move |(info, &bytes)| SegmentLive { stream, segment: info.id, bytes })
            })
            .collect();

        let seq = maintenance.last_seq + 1;
        let checkpoint = Checkpoint { seq, delta_from, base_from, pages, live };
        self.keep_checkpoint(maintenance, &checkpoint)?;
        self.schedule_checkpoint([delta_from, base_from]);
        maintenance.current_at = Some(self.log_ends());
        Ok(checkpoint)
    }

    /// Writes `checkpoint` (numbered after every earlier one) and keeps it, with the one
    /// before it.
    fn keep_checkpoint(
        &self,
        maintenance: &mut Maintenance,
        checkpoint: &Checkpoint,
    ) -> Result<()> {
        let bytes = checkpoint::write(&*self.storage, checkpoint)?;
        let refers_to: HashSet<(Stream, SegmentId)> =
            checkpoint.live.iter().map(|l| (l.stream, l.segment)).collect();
        let from = [checkpoint.delta_from, checkpoint.base_from];
        maintenance.last_seq = checkpoint.seq;
        maintenance.kept.push(Kept { from, refers_to, bytes });
        if maintenance.kept.len() > 2 {
            maintenance.kept.remove(0);
        }
        let kept_bytes = maintenance.kept.iter().map(|k| k.bytes).sum();
        self.counters.note_checkpoint(checkpoint.seq, bytes, kept_bytes, checkpoint.delta_from);
        Ok(())
    }

    /// Where each log ends now (reserved LSNs, by stream index).
    pub(crate) fn log_ends(&self) -> [Lsn; 2] {
        log_ends(&self.logs)
    }

    /// Whether anything was written since the newest checkpoint was complete.
    pub(crate) fn changed_since_checkpoint(&self, maintenance: &Maintenance) -> bool {
        maintenance.current_at != Some(self.log_ends())
    }

    /// Sets when the next checkpoint is due: `checkpoint_every` bytes after `from` in each
    /// stream. (Tying the interval to the data size would shrink small databases' delta
    /// stream, but also make open time grow with the data up to `checkpoint_every`; the
    /// setting is the user's trade-off between the two.)
    pub(crate) fn schedule_checkpoint(&self, from: [Lsn; 2]) {
        let every = self.config.checkpoint_every;
        for stream in Stream::ALL {
            let due = from[stream.index()].get().saturating_add(every);
            self.checkpoint_due[stream.index()].store(due, Ordering::Relaxed);
        }
    }

    /// Cleans, checkpoints, and deletes what the cleaning emptied: the periodic
    /// maintenance.
    pub(crate) fn maintain(&self, maintenance: &mut Maintenance) -> Result<()> {
        // Cleaning before the checkpoint lets the checkpoint already leave out the segments
        // just emptied. Cleaning writes to the base stream only: the delta stream's flusher
        // syncs meanwhile, and the checkpoint's flush of it then has little left.
        // (On the comparison's 1M load that flush took 1 to 6 ms a pass after the cleaning,
        // and about 1 µs once the cleaning had run beside it.)
        let early_delta = self.log(Stream::Delta).start_flush()?;
        let waiting = self.clean(maintenance)?;
        early_delta.wait()?;
        let mut checkpoint = self.take_checkpoint(maintenance)?;
        if waiting > 0 {
            // A segment is deleted only once neither kept checkpoint needs it. Keeping this
            // checkpoint twice makes both postdate the cleaning, so what it emptied goes in
            // this pass rather than two checkpoint intervals later (128 MiB of log by
            // default, all of it disk held for nothing). The second is the same checkpoint
            // under the next number, not a new one: it is as valid now as when it was
            // taken (replay from its start covers every write since), it is as good a
            // fallback as a newer one would be, and it costs a file write instead of a
            // scan of the page table, the live sums and two flushes (3 to 14 ms a pass on
            // the comparison's 1M load). `current_at` stays the first one's.
            checkpoint.seq = maintenance.last_seq + 1;
            self.keep_checkpoint(maintenance, &checkpoint)?;
        }
        self.clean(maintenance).map(drop)
    }

    /// Copies the live records out of segments below `clean_below` (within the pass's
    /// budget) and deletes the dead segments no kept checkpoint needs. Returns how many
    /// segments are left emptied or being emptied but not deleted: they wait for
    /// checkpoints that do not need them.
    pub(crate) fn clean(&self, maintenance: &mut Maintenance) -> Result<usize> {
        self.writable()?;
        // Segments worth emptying: emptying one copies its live records, so its live
        // fraction is its cost per byte freed.
        let mut candidates = Vec::new();
        let mut dead = Vec::new();
        for stream in Stream::ALL {
            let log = self.log(stream);
            let written = log.written_lsn();
            let segments = log.segments();
            let Some(newest) = segments.last().map(|s| s.id) else {
                continue;
            };
            for segment in &segments {
                // Only sealed segments: no new record can land in them.
                if segment.id == newest || segment.end > written {
                    continue;
                }
                let live = self.live.of(stream, segment.id);
                let span = segment.end.get().saturating_sub(segment.base.get());
                if live == 0 {
                    dead.push((stream, segment.id, segment.end));
                } else if fraction_below(live, span, self.config.clean_below) {
                    candidates.push((
                        Victim { stream, base: segment.base, end: segment.end },
                        live,
                        span,
                    ));
                }
            }
        }
        let victims = self.within_budget(candidates);

        let mut waiting = victims.len();
        if !victims.is_empty() {
            let start = Instant::now();
            let chosen = u64::try_from(victims.len()).unwrap_or(u64::MAX);
            self.counters.cleaned_segments.fetch_add(chosen, Ordering::Relaxed);
            let count = self.next_id.load(Ordering::Relaxed);
            let mut busy = Vec::new();
            for id in (0..count).map(PageId) {
                // As a checkpoint's pass does: most pages hold nothing in a victim, and
                // finding that out is the state and fragment list, each a miss if cold.
                self.table.prefetch_ahead(id, &epoch::pin());
                if self.relocate(id, &victims)? == Relocation::Busy {
                    busy.push(id);
                }
            }
            // A page left behind keeps its whole segment on disk until a later pass. A
            // group holds its pages for a few log appends, and a race lost to a write is
            // rare: each is tried again once the rest are done. (With maintenance beside
            // a batch load, skipping them left the disk at twice the size.)
            for _ in 0..RELOCATION_RETRIES {
                for id in std::mem::take(&mut busy) {
                    self.wait_unclaimed(id);
                    if self.relocate(id, &victims)? == Relocation::Busy {
                        busy.push(id);
                    }
                }
            }
            self.counters.note_cleaning(start.elapsed());
        }

        // Deleting needs two kept checkpoints: if the newer one is damaged, recovery falls
        // back to the older one, which must find everything it refers to.
        if maintenance.kept.len() == 2 {
            for (stream, id, end) in dead {
                let needed = maintenance.kept.iter().any(|kept| {
                    end > kept.from[stream.index()] || kept.refers_to.contains(&(stream, id))
                });
                if needed {
                    waiting += 1;
                } else {
                    self.log(stream).remove_segment(id)?;
                    self.counters.deleted_segments.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            waiting += dead.len();
        }
        Ok(waiting)
    }

    /// The victims of one cleaning pass among `candidates` (segment, live bytes, span):
    /// the emptiest first, until their live bytes reach the pass's budget (but always the
    /// first).
    fn within_budget(&self, mut candidates: Vec<(Victim, u64, u64)>) -> Victims {
        candidates.sort_by(|(_, live_a, span_a), (_, live_b, span_b)| {
            (u128::from(*live_a) * u128::from(*span_b))
                .cmp(&(u128::from(*live_b) * u128::from(*span_a)))
        });
        // The write that runs maintenance waits for it: a pass copies at most about one
        // checkpoint interval, and a backlog waits for the next pass.
        let budget = self.config.checkpoint_every;
        let mut spent = 0u64;
        let mut victims = Vec::new();
        for (segment, live, _) in candidates {
            if !victims.is_empty() && spent.saturating_add(live) > budget {
                break;
            }
            spent = spent.saturating_add(live);
            victims.push(segment);
        }
        Victims::new(victims)
    }

    /// Moves page `id`'s records that lie in `victims` to the base stream as they are (a
    /// base as a base, a fragment as a fragment), sharing their bytes with the state they
    /// leave: the page keeps its version and its chain, and no image is rebuilt or copied
    /// in memory. A page claimed by a group, or changed while it was being moved, is
    /// [`Relocation::Busy`]: the caller may try it again.
    ///
    /// # Errors
    /// The base stream's errors, or a record that cannot be read back.
    pub(crate) fn relocate(&self, id: PageId, victims: &Victims) -> Result<Relocation> {
        let guard = epoch::pin();
        let Some((slot, current, state, live)) = self.load_live(id, &guard) else {
            return Ok(Relocation::Untouched);
        };
        let in_victim = |loc: Loc| victims.hold(loc);
        let parts = std::iter::once(&live.base).chain(live.frags.iter());
        if !parts.clone().any(|part| in_victim(part.loc)) {
            return Ok(Relocation::Untouched);
        }
        if current.is_claimed() {
            return Ok(Relocation::Busy);
        }
        let mut last = None;
        let mut copied = 0;
        let mut moved = Vec::with_capacity(1 + live.frags.len());
        for part in parts {
            if !in_victim(part.loc) {
                moved.push(part.clone());
                continue;
            }
            let bytes = match &part.bytes {
                Some(bytes) => bytes.clone(),
                None => match self.read_part(id, part.loc) {
                    Ok(bytes) => bytes,
                    // Changed meanwhile (a reader retries the same way).
                    Err(_) if !slot.load(&guard).is(&current) => return Ok(Relocation::Busy),
                    Err(error) => return Err(error),
                },
            };
            // Completed at once, as a group completes its members: a reservation held open
            // keeps its buffer from the flusher, and the next one may need that buffer's
            // slot (the tests deadlocked on a small ring that way). If the install below
            // fails, these records are dead bytes in the base stream, which nothing
            // replays and no state names.
            let head = record::Head::base(id, state.version);
            let reservation =
                self.log(Stream::Base).reserve_parts(record::BASE, &[head.as_bytes(), &bytes])?;
            let loc = Loc { stream: Stream::Base, lsn: reservation.lsn(), len: reservation.len() };
            reservation.complete();
            last = Some(loc);
            copied += bytes.len();
            moved.push(Part::resident(loc, bytes));
        }
        let mut moved = moved.into_iter();
        let Some(base) = moved.next() else {
            return Ok(Relocation::Untouched);
        };
        let new = PageState::live(
            state.version,
            base,
            moved.collect::<Frags>(),
            (live.owner, live.weight),
        )
        .summarized(live.summary);
        if self.install(slot, current, new, &guard).is_err() {
            return Ok(Relocation::Busy);
        }
        self.counters.relocations.fetch_add(1, Ordering::Relaxed);
        self.counters.note_written(Written::Relocated, copied);
        drop(guard);
        if let Some(loc) = last {
            self.after_write(loc);
        }
        Ok(Relocation::Moved)
    }
}

/// A segment a cleaning pass empties: its stream and LSN range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Victim {
    stream: Stream,
    base: Lsn,
    end: Lsn,
}

/// The segments a cleaning pass empties, by stream and LSN, so that whether a record lies
/// in one is a search of a short sorted list. (Asking the log for each record's segment
/// took its lock and a search of its table, for every record of every page: a fifth of
/// the relocating on the comparison's 1M load, 70-84 ms a pass down to 57-62.)
#[derive(Debug, Default)]
pub(crate) struct Victims {
    /// Sorted; ranges never overlap.
    ranges: Vec<Victim>,
}

impl Victims {
    fn new(mut ranges: Vec<Victim>) -> Victims {
        ranges.sort_unstable();
        Victims { ranges }
    }

    fn len(&self) -> usize {
        self.ranges.len()
    }

    fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the record at `loc` lies in one of the segments.
    fn hold(&self, loc: Loc) -> bool {
        let at = self.ranges.partition_point(|v| (v.stream, v.end) <= (loc.stream, loc.lsn));
        self.ranges.get(at).is_some_and(|v| v.stream == loc.stream && v.base <= loc.lsn)
    }
}

/// What [`Inner::relocate`] did with a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relocation {
    /// Its records in the victim segments are in the base stream now.
    Moved,
    /// It has no records there (or is free).
    Untouched,
    /// A group holds it, or it changed while its records were being copied: try again.
    Busy,
}

/// How many more times a cleaning pass tries the pages it found busy.
const RELOCATION_RETRIES: usize = 3;

/// Where each of `logs` ends (reserved LSNs, by stream index).
pub(crate) fn log_ends(logs: &[Log; 2]) -> [Lsn; 2] {
    logs.each_ref().map(Log::reserved_lsn)
}

/// Whether `part / whole` is below `threshold`.
#[expect(clippy::cast_precision_loss, reason = "a ratio against a threshold; rounding is harmless")]
fn fraction_below(part: u64, whole: u64, threshold: f64) -> bool {
    (part as f64) < threshold * (whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_hold_the_records_inside_their_ranges_only() {
        let victim = |stream, base, end| Victim { stream, base: Lsn(base), end: Lsn(end) };
        // Given out of order, as the cleaner chooses them (emptiest first).
        let victims = Victims::new(vec![
            victim(Stream::Base, 500, 600),
            victim(Stream::Delta, 300, 400),
            victim(Stream::Delta, 100, 200),
            victim(Stream::Base, 100, 200),
        ]);
        let held = |stream, lsn| victims.hold(Loc { stream, lsn: Lsn(lsn), len: 10 });
        for stream in Stream::ALL {
            assert!(held(stream, 100) && held(stream, 150) && held(stream, 199));
            assert!(!held(stream, 0) && !held(stream, 99) && !held(stream, 200));
        }
        assert!(held(Stream::Delta, 300) && held(Stream::Delta, 399) && !held(Stream::Delta, 400));
        assert!(!held(Stream::Delta, 500) && !held(Stream::Delta, 550));
        assert!(!held(Stream::Base, 300) && !held(Stream::Base, 350));
        assert!(held(Stream::Base, 500) && held(Stream::Base, 599) && !held(Stream::Base, 600));
        assert!(!Victims::default().hold(Loc { stream: Stream::Delta, lsn: Lsn(150), len: 1 }));
        assert_eq!(victims.len(), 4);
    }
}
