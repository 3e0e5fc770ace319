//! [`Liveness`]: how many bytes of each segment the page table still refers to.
//!
//! A record is live while some page's current state refers to it. Every install that
//! changes the set of records a page refers to adds the new ones and subtracts the dropped
//! ones. The cleaner reads the counters to pick segments to empty, and deletes a segment
//! only once its count is zero.

use super::{
    loc::{Loc, Stream},
    slots::Slots,
};
use crate::{
    ids::SegmentId,
    log::{Log, SegmentInfo},
    sync::{AtomicU64, Ordering},
};

/// Live bytes per segment, per stream.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// Indexed by segment id. Owner: every thread that installs a state; add and subtract
    /// only, through `adjust`, a record's add always before its subtract. Relaxed: the
    /// counts order nothing, and the cleaner acts on a zero only for sealed segments, which
    /// no install can make live again.
    by_stream: [Slots<AtomicU64>; 2],
}

impl Liveness {
    pub(crate) fn new() -> Liveness {
        Liveness::default()
    }

    /// Adds (or subtracts) one record.
    pub(crate) fn adjust(&self, logs: &[Log; 2], loc: Loc, add: bool) {
        let Some(segment) = logs[loc.stream.index()].segment_of(loc.lsn) else {
            return;
        };
        let counter = self.by_stream[loc.stream.index()].get(segment.0);
        let len = u64::from(loc.len);
        // Callers add a record before it can be seen and subtract it only after, so the
        // count never goes below zero (see `Inner::install`).
        if add {
            counter.fetch_add(len, Ordering::Relaxed);
        } else {
            counter.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Sets one segment's count (recovery, before any other thread can see the table).
    pub(crate) fn set(&self, stream: Stream, segment: SegmentId, bytes: u64) {
        self.by_stream[stream.index()].get(segment.0).store(bytes, Ordering::Relaxed);
    }

    /// The live bytes of one segment.
    pub(crate) fn of(&self, stream: Stream, segment: SegmentId) -> u64 {
        self.by_stream[stream.index()]
            .get_existing(segment.0)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Memory the counters hold.
    pub(crate) fn allocated_bytes(&self) -> u64 {
        self.by_stream.iter().map(Slots::allocated_bytes).sum()
    }
}

/// A copy of both streams' segment tables, for passes over the whole page table that look
/// up the segment of every record (a checkpoint, an open) without the log's lock.
pub(crate) struct SegmentMap {
    by_stream: [Vec<SegmentInfo>; 2],
}

impl SegmentMap {
    pub(crate) fn new(logs: &[Log; 2]) -> SegmentMap {
        SegmentMap { by_stream: [logs[0].segments(), logs[1].segments()] }
    }

    /// The segments of `stream`, oldest first.
    pub(crate) fn segments(&self, stream: Stream) -> &[SegmentInfo] {
        &self.by_stream[stream.index()]
    }

    /// The position of `loc`'s segment in [`SegmentMap::segments`].
    pub(crate) fn index(&self, loc: Loc) -> Option<usize> {
        let list = self.segments(loc.stream);
        let at = list.partition_point(|s| s.end <= loc.lsn);
        list.get(at).is_some_and(|s| s.base <= loc.lsn).then_some(at)
    }

    /// `loc`'s stream and segment.
    pub(crate) fn of_loc(&self, loc: Loc) -> Option<(Stream, SegmentId)> {
        let index = self.index(loc)?;
        Some((loc.stream, self.segments(loc.stream)[index].id))
    }
}
