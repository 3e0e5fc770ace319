//! [`PageCacheStats`]: what an operator's tool shows about the page cache.

use std::time::Duration;

use super::{cache::Inner, loc::Stream, state::PageState};
use crate::{
    error::Error,
    ids::{Lsn, SegmentId},
    log::LogStats,
    sync::{self, AtomicU64, Mutex, Ordering},
};

/// Figures about the page cache, for monitoring and tools.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PageCacheStats {
    /// Allocated pages.
    pub pages: u64,
    /// Pages with some payload in memory.
    pub resident_pages: u64,
    /// Memory the cache holds (page payloads, page states, the page table), in bytes.
    pub memory_bytes: u64,
    /// The configured budget for `memory_bytes`.
    pub cache_bytes: u64,
    /// Bytes of the records the pages refer to: what the data needs on disk.
    pub live_bytes: u64,
    /// Bytes of segment files and checkpoints on disk.
    pub disk_bytes: u64,
    /// `disk_bytes / live_bytes` (1.0 when there is no live data).
    pub space_amplification: f64,
    /// Bytes of fragments linked: the updates' own data, in the delta stream. With the
    /// three below, where the bytes the log writes go (record headers aside).
    pub fragment_bytes: u64,
    /// Bytes of whole images written as updates (new pages and replaced ones: for the
    /// tree, split nodes and the parents that take their new children), in the delta
    /// stream.
    pub image_bytes: u64,
    /// Bytes of images written by consolidations, in the base stream.
    pub consolidated_bytes: u64,
    /// Bytes of records the cleaner copied out of segments it empties, into the base
    /// stream.
    pub relocated_bytes: u64,
    /// Chains folded into a new base.
    pub consolidations: u64,
    /// Consolidations that failed (the chain stays; the next attempt retries).
    pub failed_consolidations: u64,
    /// Pages paged out to meet the budget.
    pub evictions: u64,
    /// Reads that had to go to the log.
    pub cold_reads: u64,
    /// Segments the cleaner chose to empty.
    pub cleaned_segments: u64,
    /// Pages the cleaner moved records of into the base stream.
    pub relocations: u64,
    /// Segment files deleted.
    pub deleted_segments: u64,
    /// Checkpoints written by this handle.
    pub checkpoints: u64,
    /// The newest checkpoint's sequence number (0: none).
    pub checkpoint_seq: u64,
    /// Bytes of the newest checkpoint file.
    pub checkpoint_bytes: u64,
    /// Bytes of delta log written since the newest checkpoint: about what the next open
    /// would replay.
    pub checkpoint_age_bytes: u64,
    /// Periodic maintenance passes run (a checkpoint with the cleaning around it), by the
    /// write that found one due or by the maintenance thread.
    pub maintenance_passes: u64,
    /// Time those passes took, in all: with no maintenance thread, writes waited that
    /// long.
    pub maintenance_time: Duration,
    /// Time the cleaner spent moving live records out of the segments it empties, in
    /// passes or in [`PageCache::clean`](crate::PageCache::clean): usually most of a pass.
    pub cleaning_time: Duration,
    /// Periodic maintenance (checkpoint or cleaning) runs that failed, and the last error.
    pub maintenance_errors: u64,
    /// The last maintenance error's message.
    pub last_maintenance_error: Option<String>,
    /// Why the newest checkpoint was unusable at open, if recovery fell back to the
    /// previous one (worth an operator's attention: it means damaged storage).
    pub checkpoint_fallback: Option<String>,
    /// The delta stream (updates, replayed at open).
    pub delta_log: LogStats,
    /// The base stream (consolidated and relocated images).
    pub base_log: LogStats,
    /// Each delta segment on disk, oldest first, with how much of it is live.
    pub delta_segments: Vec<SegmentUse>,
    /// Each base segment on disk, oldest first, with how much of it is live.
    pub base_segments: Vec<SegmentUse>,
}

/// One segment file, and how much of it the pages still refer to: what the cleaner goes by
/// (it empties sealed segments whose live fraction is below
/// [`clean_below`](crate::PageCacheConfig::clean_below)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentUse {
    /// The segment's number (its file is `{stream}-{id:016x}.seg`).
    pub id: SegmentId,
    /// Bytes of header and records in its file.
    pub file_len: u64,
    /// Bytes of the records some page refers to.
    pub live_bytes: u64,
}

/// Event counters. Each is owned by the path named in its doc and only ever incremented;
/// relaxed, as they order nothing.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) live_pages: AtomicU64,
    pub(crate) resident_pages: AtomicU64,
    /// Owner: whoever installs the change (see [`Written`]). Relaxed: figures.
    pub(crate) written: [AtomicU64; 4],
    pub(crate) consolidations: AtomicU64,
    pub(crate) failed_consolidations: AtomicU64,
    pub(crate) relocations: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) cold_reads: AtomicU64,
    pub(crate) cleaned_segments: AtomicU64,
    pub(crate) deleted_segments: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) checkpoint_seq: AtomicU64,
    pub(crate) checkpoint_bytes: AtomicU64,
    pub(crate) kept_checkpoint_bytes: AtomicU64,
    pub(crate) checkpoint_lsn: AtomicU64,
    /// Owner, with `maintenance_nanos`: the maintenance pass, which adds one and its time
    /// (`Counters::note_pass`). Relaxed: figures.
    pub(crate) maintenance_passes: AtomicU64,
    pub(crate) maintenance_nanos: AtomicU64,
    /// Owner: the cleaner, which adds the time it spends relocating. Relaxed: a figure.
    pub(crate) cleaning_nanos: AtomicU64,
    pub(crate) maintenance_errors: AtomicU64,
    pub(crate) last_maintenance_error: Mutex<Option<String>>,
    pub(crate) checkpoint_fallback: Mutex<Option<String>>,
}

/// What bytes a write put in the log, for [`Counters::note_written`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Written {
    Fragment,
    Image,
    Consolidated,
    Relocated,
}

impl Counters {
    /// Counts `bytes` of payload written as `what`, once the change that wrote them is
    /// installed.
    pub(crate) fn note_written(&self, what: Written, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.written[what as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Keeps the page counts in step with one install.
    pub(crate) fn note_install(&self, old: Option<&PageState>, new: Option<&PageState>) {
        let is_live = |s: Option<&PageState>| s.is_some_and(|s| s.live.is_some());
        let holds = |s: Option<&PageState>| s.is_some_and(PageState::holds_bytes);
        step(&self.live_pages, is_live(old), is_live(new));
        step(&self.resident_pages, holds(old), holds(new));
    }

    pub(crate) fn note_checkpoint(&self, seq: u64, bytes: u64, kept_bytes: u64, delta_from: Lsn) {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpoint_seq.store(seq, Ordering::Relaxed);
        self.checkpoint_bytes.store(bytes, Ordering::Relaxed);
        self.kept_checkpoint_bytes.store(kept_bytes, Ordering::Relaxed);
        self.checkpoint_lsn.store(delta_from.get(), Ordering::Relaxed);
    }

    /// A maintenance pass that took `took`.
    pub(crate) fn note_pass(&self, took: Duration) {
        self.maintenance_passes.fetch_add(1, Ordering::Relaxed);
        self.maintenance_nanos.fetch_add(nanos(took), Ordering::Relaxed);
    }

    /// Relocating that took `took`.
    pub(crate) fn note_cleaning(&self, took: Duration) {
        self.cleaning_nanos.fetch_add(nanos(took), Ordering::Relaxed);
    }

    pub(crate) fn note_maintenance_error(&self, error: &Error) {
        self.maintenance_errors.fetch_add(1, Ordering::Relaxed);
        *sync::lock(&self.last_maintenance_error) = Some(error.to_string());
    }
}

/// `took` in nanoseconds, as a counter holds it (584 years at most).
fn nanos(took: Duration) -> u64 {
    u64::try_from(took.as_nanos()).unwrap_or(u64::MAX)
}

fn step(counter: &AtomicU64, before: bool, after: bool) {
    match (before, after) {
        (false, true) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        (true, false) => {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

impl Inner {
    /// Each segment of `stream` with its live bytes, oldest first. Records reserved but not
    /// written yet may lie in segments that have no file so far: those come last, with a
    /// length of 0, as their bytes are live all the same.
    fn segment_use(&self, stream: Stream) -> Vec<SegmentUse> {
        let log = self.log(stream);
        let of = |id, file_len| SegmentUse { id, file_len, live_bytes: self.live.of(stream, id) };
        let mut all: Vec<_> = log.segments().into_iter().map(|s| of(s.id, s.file_len)).collect();
        let last_reserved = log.reserved_lsn().get().checked_sub(1).map(Lsn);
        if let Some(SegmentId(tail)) = last_reserved.and_then(|lsn| log.segment_of(lsn)) {
            let next = all.last().map_or(tail, |s| s.id.0 + 1);
            all.extend((next..=tail).map(|id| of(SegmentId(id), 0)));
        }
        all
    }

    pub(crate) fn stats(&self) -> PageCacheStats {
        let c = &self.counters;
        let [delta_segments, base_segments] = Stream::ALL.map(|stream| self.segment_use(stream));
        let all = || delta_segments.iter().chain(&base_segments);
        let live_bytes = all().map(|s| s.live_bytes).sum();
        let disk_bytes = c.kept_checkpoint_bytes.load(Ordering::Relaxed)
            + all().map(|s| s.file_len).sum::<u64>();
        #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
        let space_amplification =
            if live_bytes == 0 { 1.0 } else { disk_bytes as f64 / live_bytes as f64 };
        let delta_log = self.log(Stream::Delta).stats();
        PageCacheStats {
            pages: c.live_pages.load(Ordering::Relaxed),
            resident_pages: c.resident_pages.load(Ordering::Relaxed),
            memory_bytes: self.memory_bytes(),
            cache_bytes: self.config.cache_bytes,
            live_bytes,
            disk_bytes,
            space_amplification,
            fragment_bytes: c.written[Written::Fragment as usize].load(Ordering::Relaxed),
            image_bytes: c.written[Written::Image as usize].load(Ordering::Relaxed),
            consolidated_bytes: c.written[Written::Consolidated as usize].load(Ordering::Relaxed),
            relocated_bytes: c.written[Written::Relocated as usize].load(Ordering::Relaxed),
            consolidations: c.consolidations.load(Ordering::Relaxed),
            failed_consolidations: c.failed_consolidations.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            cold_reads: c.cold_reads.load(Ordering::Relaxed),
            cleaned_segments: c.cleaned_segments.load(Ordering::Relaxed),
            relocations: c.relocations.load(Ordering::Relaxed),
            deleted_segments: c.deleted_segments.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            checkpoint_seq: c.checkpoint_seq.load(Ordering::Relaxed),
            checkpoint_bytes: c.checkpoint_bytes.load(Ordering::Relaxed),
            checkpoint_age_bytes: delta_log
                .reserved_lsn
                .get()
                .saturating_sub(c.checkpoint_lsn.load(Ordering::Relaxed)),
            maintenance_passes: c.maintenance_passes.load(Ordering::Relaxed),
            maintenance_time: Duration::from_nanos(c.maintenance_nanos.load(Ordering::Relaxed)),
            cleaning_time: Duration::from_nanos(c.cleaning_nanos.load(Ordering::Relaxed)),
            maintenance_errors: c.maintenance_errors.load(Ordering::Relaxed),
            last_maintenance_error: sync::lock(&c.last_maintenance_error).clone(),
            checkpoint_fallback: sync::lock(&c.checkpoint_fallback).clone(),
            delta_log,
            base_log: self.log(Stream::Base).stats(),
            delta_segments,
            base_segments,
        }
    }
}
