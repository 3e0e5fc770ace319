//! [`PageCache::check`]: the built-in integrity check that tests (and, later, the `grove`
//! tool) run: every page's records read back and name their page, and the bookkeeping
//! (live bytes per segment, the free-id list) agrees with the pages.

use std::collections::{BTreeMap, HashMap};

use super::{
    cache::PageCache,
    live::SegmentMap,
    loc::{Loc, Stream},
    pages::PageImage,
    table::Peek,
};
use crate::{
    error::{Error, Result},
    ids::{PageId, SegmentId},
    sync::{self, Ordering, epoch},
};

/// What [`PageCache::check`] looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Allocated pages.
    pub pages: u64,
    /// Records read back and verified.
    pub records: u64,
    /// Bytes of those records.
    pub live_bytes: u64,
}

impl PageCache {
    /// Reads back every record of every page (each verified by its checksum and checked to
    /// belong to its page) and checks the cache's bookkeeping against the pages. Meant for
    /// tests and tools: it reads the whole database, and it assumes no concurrent updates
    /// (they would show up as spurious disagreements). Maintenance waits while it runs: a
    /// record the cleaner moved meanwhile would be one not written to its file yet.
    ///
    /// # Errors
    /// [`Error::Corruption`] (or another read error) for a damaged record;
    /// [`Error::Inconsistent`] if the bookkeeping disagrees with the pages.
    pub fn check(&self) -> Result<CheckReport> {
        let inner = &*self.inner;
        let _maintenance = inner.lock_maintenance();
        // Make every record readable from its file.
        inner.log(Stream::Delta).flush()?;
        inner.log(Stream::Base).flush()?;
        let segments = SegmentMap::new(&inner.logs);
        let mut report = CheckReport::default();
        let mut live: BTreeMap<(Stream, SegmentId), u64> = BTreeMap::new();
        let mut free = Vec::new();
        let mut weights: HashMap<u64, i64> = HashMap::new();
        let count = inner.next_id.load(Ordering::Relaxed);
        let guard = epoch::pin();
        for id in 0..count {
            let id = PageId(id);
            let locs: Vec<Loc> = match inner.table.peek(id, &guard) {
                Peek::Empty | Peek::Cold(PageImage::Free { .. }) => {
                    free.push(id);
                    continue;
                }
                Peek::State(state) if state.live.is_none() => {
                    free.push(id);
                    continue;
                }
                Peek::State(state) => {
                    if let Some((owner, weight)) = state.weighs() {
                        *weights.entry(owner).or_default() += weight;
                    }
                    state.locs().collect()
                }
                Peek::Cold(image) => {
                    if let PageImage::Live { weighs: (owner, weight), .. } = image {
                        *weights.entry(owner).or_default() += weight;
                    }
                    image.locs().collect()
                }
            };
            report.pages += 1;
            for loc in locs {
                inner.read_part(id, loc)?;
                report.records += 1;
                report.live_bytes += u64::from(loc.len);
                let segment = segments.of_loc(loc).ok_or_else(|| {
                    Error::Inconsistent(format!("{id} refers to {loc:?}, in no segment"))
                })?;
                *live.entry(segment).or_default() += u64::from(loc.len);
            }
        }
        for stream in Stream::ALL {
            for segment in segments.segments(stream) {
                let counted = inner.live.of(stream, segment.id);
                let actual = live.get(&(stream, segment.id)).copied().unwrap_or(0);
                if counted != actual {
                    return Err(Error::Inconsistent(format!(
                        "{} {}: {counted} live bytes counted, {actual} referred to",
                        stream.name(),
                        segment.id
                    )));
                }
            }
        }
        let mut listed = sync::lock(&inner.free_ids).clone();
        listed.sort_unstable();
        if listed != free {
            return Err(Error::Inconsistent(format!(
                "free ids listed {listed:?}, free in the table {free:?}"
            )));
        }
        weights.retain(|_, weight| *weight != 0);
        let kept = inner.weights.all();
        if kept != weights {
            return Err(Error::Inconsistent(format!(
                "owner weights kept {kept:?}, summed over the pages {weights:?}"
            )));
        }
        let counted = inner.counters.live_pages.load(Ordering::Relaxed);
        if counted != report.pages {
            return Err(Error::Inconsistent(format!(
                "{counted} pages counted, {} allocated",
                report.pages
            )));
        }
        Ok(report)
    }
}
