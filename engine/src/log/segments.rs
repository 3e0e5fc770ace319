//! [`SegmentTable`]: the segment files of one log stream that exist, with their open handles.
//!
//! The ring's [`Geometry`](super::geometry::Geometry) computes where every LSN from the tail
//! segment onwards lives. Older segments need a table instead: the page cache deletes dead
//! segments (so ids and LSN ranges have gaps), and a segment created before the
//! configuration changed has a different size than the ones after it.
//!
//! Every existing segment's file stays open for the log's lifetime (recovery opens them all
//! to check their headers anyway), so reads never reopen a file. A removed segment's handle
//! goes to the flusher thread, which closes it ([`SegmentTable::retire`]).
//!
//! # Thread safety
//! The table is behind a `RwLock`. The flusher inserts every segment it creates (before it
//! writes a byte into it, so before `written_lsn` can pass any record in it);
//! `Log::remove_segment` removes sealed ones; reads and lookups share the lock. Each update
//! is one insert or one remove, so a reader never sees a half-updated table.
//!
//! # Invariants
//! - Keys are base LSNs; LSN ranges of entries are disjoint and increase with the id.
//! - An entry's handle stays valid for as long as someone holds its `Arc`, even after the
//!   entry was removed, so a read that found an entry finishes on that handle.

use std::{collections::BTreeMap, sync::Arc};

use super::geometry::SegmentSpan;
use crate::{
    error::{Error, Result},
    ids::{Lsn, SegmentId},
    storage::StorageFile,
    sync::{self, AtomicU64, Mutex, Ordering, RwLock},
};

/// One segment of a log, as [`Log::segments`](super::Log::segments) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment's number.
    pub id: SegmentId,
    /// The LSN of its first byte.
    pub base: Lsn,
    /// The first LSN after it (where the next segment starts).
    pub end: Lsn,
    /// Bytes of header and records in its file now; the tail segment's count grows as
    /// records are written. Its file may be longer, by zeros the log keeps ahead of its
    /// writes.
    pub file_len: u64,
}

/// One existing segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) span: SegmentSpan,
    /// Its file name in the storage directory.
    pub(crate) name: String,
    pub(crate) file: Arc<dyn StorageFile>,
    /// Bytes of header and records in the file (the file may be longer: see the flusher's
    /// `Active::extended_to`). Set by recovery, then raised only by the flusher (the only
    /// writer of segment files) after each write. Relaxed: it is a report, it orders nothing.
    pub(crate) file_len: AtomicU64,
}

impl Segment {
    pub(crate) fn new(
        span: SegmentSpan,
        name: String,
        file: Arc<dyn StorageFile>,
        file_len: u64,
    ) -> Self {
        Self { span, name, file, file_len: AtomicU64::new(file_len) }
    }

    fn info(&self) -> SegmentInfo {
        SegmentInfo {
            id: SegmentId(self.span.id),
            base: Lsn(self.span.base),
            end: Lsn(self.span.end()),
            file_len: self.file_len.load(Ordering::Relaxed),
        }
    }
}

/// Where an LSN is, according to the table.
pub(crate) enum Lookup {
    /// In this segment.
    Found(Arc<Segment>),
    /// Before the first segment or in a gap: the segment that held it was removed. `next` is
    /// the first existing segment after it, if any.
    Removed { next: Option<SegmentId> },
}

/// The existing segments of one log, oldest first. See the module docs.
#[derive(Debug)]
pub(crate) struct SegmentTable {
    by_base: RwLock<BTreeMap<u64, Arc<Segment>>>,
    /// Segments removed from the table and from the directory whose handles the flusher
    /// thread has yet to close ([`SegmentTable::close_retired`]). Owner: `retire` pushes,
    /// the flusher takes them all.
    retired: Mutex<Vec<Arc<Segment>>>,
}

impl SegmentTable {
    /// A table of `segments`, which recovery found in LSN order.
    pub(crate) fn new(segments: impl IntoIterator<Item = Arc<Segment>>) -> Self {
        let by_base = segments.into_iter().map(|s| (s.span.base, s)).collect();
        Self { by_base: RwLock::new(by_base), retired: Mutex::new(Vec::new()) }
    }

    /// Hands a removed segment's handle to the flusher thread to close.
    pub(crate) fn retire(&self, segment: Arc<Segment>) {
        sync::lock(&self.retired).push(segment);
    }

    /// Closes the handles of retired segments (those no read still holds): the flusher
    /// thread's, outside its own lock.
    pub(crate) fn close_retired(&self) {
        let retired = std::mem::take(&mut *sync::lock(&self.retired));
        drop(retired);
    }

    /// Adds a segment the flusher created.
    pub(crate) fn insert(&self, segment: Arc<Segment>) {
        sync::write(&self.by_base).insert(segment.span.base, segment);
    }

    /// The segment holding `lsn`.
    pub(crate) fn lookup(&self, lsn: u64) -> Lookup {
        let table = sync::read(&self.by_base);
        if let Some((_, segment)) = table.range(..=lsn).next_back()
            && lsn < segment.span.end()
        {
            return Lookup::Found(segment.clone());
        }
        let next = table.range(lsn..).next().map(|(_, s)| SegmentId(s.span.id));
        Lookup::Removed { next }
    }

    /// The id of the existing segment holding `lsn`.
    pub(crate) fn id_of(&self, lsn: u64) -> Option<u64> {
        let table = sync::read(&self.by_base);
        let (_, segment) = table.range(..=lsn).next_back()?;
        (lsn < segment.span.end()).then_some(segment.span.id)
    }

    /// Every existing segment, oldest first.
    pub(crate) fn infos(&self) -> Vec<SegmentInfo> {
        sync::read(&self.by_base).values().map(|s| s.info()).collect()
    }

    /// Takes segment `id` out of the table, if it may go: it exists, it is not the newest,
    /// and it lies wholly below `written` (so the flusher is done with it for good).
    pub(crate) fn take_removable(&self, id: SegmentId, written: u64) -> Result<Arc<Segment>> {
        let refuse = |reason: String| Error::SegmentNotRemovable { segment: id, reason };
        let mut table = sync::write(&self.by_base);
        let newest = table.values().next_back().map(|s| s.span.id);
        let Some(segment) = table.values().find(|s| s.span.id == id.0) else {
            return Err(refuse("this log has no such segment (removed, or never created)".into()));
        };
        if newest == Some(id.0) {
            return Err(refuse("it is the newest segment, the one the log writes to".into()));
        }
        if segment.span.end() > written {
            return Err(refuse(format!(
                "it ends at lsn {}, after the written end of the log at lsn {written}",
                segment.span.end()
            )));
        }
        let base = segment.span.base;
        table.remove(&base).ok_or_else(|| refuse("removed concurrently".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemStorage, Storage};

    fn table(spans: &[(u64, u64, u64)]) -> SegmentTable {
        let storage = MemStorage::new();
        SegmentTable::new(spans.iter().map(|&(id, base, size)| {
            let name = format!("{id}");
            let file = storage.create_new(&name).unwrap();
            Arc::new(Segment::new(SegmentSpan { id, base, size }, name, file, 0))
        }))
    }

    #[test]
    fn lookups_find_segments_and_name_the_one_after_a_gap() {
        // Segments 3 (lsn 100..200), 4 (200..300), then 7 (500..600): 5 and 6 were removed.
        let table = table(&[(3, 100, 140), (4, 200, 140), (7, 500, 140)]);
        assert_eq!(table.id_of(100), Some(3));
        assert_eq!(table.id_of(299), Some(4));
        assert_eq!(table.id_of(300), None);
        assert_eq!(table.id_of(599), Some(7));
        assert_eq!(table.id_of(600), None);
        assert_eq!(table.id_of(99), None);
        assert!(matches!(table.lookup(250), Lookup::Found(s) if s.span.id == 4));
        assert!(matches!(table.lookup(400), Lookup::Removed { next: Some(SegmentId(7)) }));
        assert!(matches!(table.lookup(50), Lookup::Removed { next: Some(SegmentId(3)) }));
        assert!(matches!(table.lookup(600), Lookup::Removed { next: None }));
    }

    #[test]
    fn only_sealed_written_segments_other_than_the_newest_may_go() {
        let table = table(&[(3, 100, 140), (4, 200, 140), (5, 300, 140)]);
        let refused = |id, written| {
            matches!(
                table.take_removable(SegmentId(id), written),
                Err(Error::SegmentNotRemovable { .. })
            )
        };
        assert!(refused(5, 1000), "the newest");
        assert!(refused(4, 299), "not wholly written");
        assert!(refused(9, 1000), "unknown");
        assert_eq!(table.take_removable(SegmentId(4), 300).unwrap().span.id, 4);
        assert!(refused(4, 1000), "already removed");
        assert_eq!(table.infos().iter().map(|i| i.id.0).collect::<Vec<_>>(), vec![3, 5]);
    }
}
