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
//! A sealed segment is emptied by rewriting every page that refers to it into the base
//! stream, when that costs less than `clean_below` of the segment: the cost is what those
//! pages weigh on disk, whole (a live fragment costs its page's base and fragments, a base
//! its page), so emptying a segment always rewrites less than it frees. A segment with no live bytes is deleted once no kept checkpoint can need it: two
//! checkpoints are kept, it must be below where both start in its stream, and neither may
//! refer to it. A maintenance pass that leaves such segments takes its checkpoint twice, so
//! that it can delete them itself.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{
    cache::Inner,
    checkpoint::{self, Checkpoint, SegmentLive},
    live::SegmentMap,
    loc::{Loc, Stream},
    pages::{PageImage, Pages},
    table::Peek,
};
use crate::{
    error::{Error, Result},
    ids::{Lsn, PageId, SegmentId},
    log::Log,
    sync::{Ordering, epoch},
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
        self.writable()?;
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
        self.log(Stream::Delta).flush()?;
        let base_from = self.log(Stream::Base).flush()?;
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
        let refers_to: HashSet<(Stream, SegmentId)> =
            live.iter().map(|l| (l.stream, l.segment)).collect();

        let seq = maintenance.last_seq + 1;
        let checkpoint = Checkpoint { seq, delta_from, base_from, pages, live };
        let bytes = checkpoint::write(&*self.storage, &checkpoint)?;
        maintenance.last_seq = seq;
        maintenance.kept.push(Kept { from: [delta_from, base_from], refers_to, bytes });
        if maintenance.kept.len() > 2 {
            maintenance.kept.remove(0);
        }
        self.schedule_checkpoint([delta_from, base_from]);
        maintenance.current_at = Some(self.log_ends());
        let kept_bytes = maintenance.kept.iter().map(|k| k.bytes).sum();
        self.counters.note_checkpoint(seq, bytes, kept_bytes, delta_from);
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
        // just emptied.
        let waiting = self.clean(maintenance)?;
        self.checkpoint(maintenance)?;
        if waiting > 0 {
            // A segment is deleted only once neither kept checkpoint needs it. A second
            // checkpoint now makes both postdate the cleaning, so what it emptied goes in
            // this pass rather than two checkpoint intervals later (128 MiB of log by
            // default, all of it disk held for nothing).
            self.checkpoint(maintenance)?;
        }
        self.clean(maintenance).map(drop)
    }

    /// Relocates the live pages out of segments below `clean_below` and deletes the dead
    /// segments no kept checkpoint needs. Returns how many segments are left emptied or
    /// being emptied but not deleted: they wait for checkpoints that do not need them.
    pub(crate) fn clean(&self, maintenance: &mut Maintenance) -> Result<usize> {
        self.writable()?;
        // Segments live enough to be worth emptying, with what emptying them may cost: a
        // page's cost is at least its records in the segment, so only segments whose live
        // bytes are under the threshold can qualify.
        let mut candidates = BTreeMap::new();
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
                    candidates.insert((stream, segment.id), span);
                }
            }
        }
        let victims = self.worth_emptying(&candidates);

        let mut waiting = victims.len();
        if !victims.is_empty() {
            let chosen = u64::try_from(victims.len()).unwrap_or(u64::MAX);
            self.counters.cleaned_segments.fetch_add(chosen, Ordering::Relaxed);
            let count = self.next_id.load(Ordering::Relaxed);
            for id in 0..count {
                if self.refers_to_any(PageId(id), &victims) {
                    self.consolidate(PageId(id), true)?;
                }
            }
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

    /// The `candidates` (segment and its span) that cost less than `clean_below` of their
    /// span to empty: the sum, over the pages that refer to a segment, of each page's
    /// records. One pass over the page table.
    fn worth_emptying(
        &self,
        candidates: &BTreeMap<(Stream, SegmentId), u64>,
    ) -> BTreeSet<(Stream, SegmentId)> {
        if candidates.is_empty() {
            return BTreeSet::new();
        }
        let mut costs: BTreeMap<(Stream, SegmentId), u64> = BTreeMap::new();
        let mut touched = Vec::new();
        let count = self.next_id.load(Ordering::Relaxed);
        for id in 0..count {
            let guard = epoch::pin();
            let mut page_bytes = 0;
            touched.clear();
            let mut visit = |loc: Loc| {
                page_bytes += u64::from(loc.len);
                let segment = self.log(loc.stream).segment_of(loc.lsn);
                if let Some(segment) = segment.map(|segment| (loc.stream, segment))
                    && candidates.contains_key(&segment)
                    && !touched.contains(&segment)
                {
                    touched.push(segment);
                }
            };
            match self.table.peek(PageId(id), &guard) {
                Peek::State(state) => state.locs().for_each(&mut visit),
                Peek::Cold(image) => image.locs().for_each(&mut visit),
                Peek::Empty => {}
            }
            for segment in &touched {
                *costs.entry(*segment).or_default() += page_bytes;
            }
        }
        // Cheapest first (rewritten bytes per byte freed), within the pass's budget.
        let mut ranked: Vec<((Stream, SegmentId), u64, u64)> = candidates
            .iter()
            .map(|(&segment, &span)| (segment, costs.get(&segment).copied().unwrap_or(0), span))
            .collect();
        ranked.sort_by(|a, b| {
            (u128::from(a.1) * u128::from(b.2)).cmp(&(u128::from(b.1) * u128::from(a.2)))
        });
        let budget = self.config.checkpoint_every / CLEAN_BUDGET_DIVISOR;
        let mut spent = 0u64;
        let mut victims = BTreeSet::new();
        for (segment, cost, _) in ranked {
            if !victims.is_empty() && spent.saturating_add(cost) > budget {
                break;
            }
            spent = spent.saturating_add(cost);
            victims.insert(segment);
        }
        victims
    }

    fn refers_to_any(&self, id: PageId, segments: &BTreeSet<(Stream, SegmentId)>) -> bool {
        let guard = epoch::pin();
        let in_victim = |loc: Loc| {
            self.log(loc.stream)
                .segment_of(loc.lsn)
                .is_some_and(|segment| segments.contains(&(loc.stream, segment)))
        };
        match self.table.peek(id, &guard) {
            Peek::State(state) => state.locs().any(in_victim),
            Peek::Cold(image) => image.locs().any(in_victim),
            Peek::Empty => false,
        }
    }
}

/// Where each of `logs` ends (reserved LSNs, by stream index).
pub(crate) fn log_ends(logs: &[Log; 2]) -> [Lsn; 2] {
    logs.each_ref().map(Log::reserved_lsn)
}

/// One cleaning pass rewrites at most `checkpoint_every` divided by this (but always its
/// cheapest victim), so that cleaning adds at most about half the log's own writes and no
/// single write waits for a whole backlog of relocations.
const CLEAN_BUDGET_DIVISOR: u64 = 1;

/// Whether `part / whole` is below `threshold`.
#[expect(clippy::cast_precision_loss, reason = "a ratio against a threshold; rounding is harmless")]
fn fraction_below(part: u64, whole: u64, threshold: f64) -> bool {
    (part as f64) < threshold * (whole as f64)
}
