//! Opening the page cache: the newest usable checkpoint, then the delta stream after it.
//!
//! Recovery never reads page images: a page from the checkpoint comes back paged out (its
//! locations only), a replaced image is located, and only fragments replayed from the log
//! are kept in memory (they are small, and the checkpoint interval bounds them). Open time
//! is thus the checkpoint's size plus the replay, both bounded by `checkpoint_every`, not
//! by the size of the database.

use std::sync::Arc;

use super::{
    cache::{Inner, PageCache},
    checkpoint::{self, Checkpoint},
    live::{Liveness, SegmentMap},
    loc::{Loc, Stream},
    maintenance::{Kept, Maintenance},
    page::Materializer,
    pages::{PageImage, Pages},
    record,
    state::{PageState, Part},
    stats::Counters,
    table::{PageTable, Peek},
};
use crate::{
    config::PageCacheConfig,
    error::{Error, Result},
    ids::{Lsn, PageId},
    log::{Log, Record},
    storage::Storage,
    sync::{AtomicU64, Mutex, Ordering, epoch},
};

impl PageCache {
    /// Opens (or creates) the page cache in `storage`: loads the newest valid checkpoint
    /// (falling back to the previous one if it is damaged) and replays the log after it.
    ///
    /// # Errors
    /// - [`Error::Config`] for inconsistent settings;
    /// - [`Error::NotGrove`], [`Error::UnsupportedVersion`] for foreign or newer files;
    /// - [`Error::Corruption`] or [`Error::MissingSegment`] for damage a crash cannot
    ///   explain (both checkpoints damaged, a checkpoint naming records the log lost, a
    ///   replayed record that does not follow its page's version);
    /// - [`Error::Io`] if the storage fails.
    pub fn open(
        storage: Arc<dyn Storage>,
        config: PageCacheConfig,
        materializer: Arc<dyn Materializer>,
    ) -> Result<PageCache> {
        config.validate()?;
        let mut loaded = checkpoint::load(&*storage)?;
        let empty = || Checkpoint {
            seq: 0,
            delta_from: Lsn::ZERO,
            base_from: Lsn::ZERO,
            pages: Pages::default(),
        };
        let mut checkpoint =
            loaded.as_mut().map_or_else(empty, |l| std::mem::replace(&mut l.checkpoint, empty()));
        let mut id_count = u64::try_from(checkpoint.pages.len()).unwrap_or(u64::MAX);
        // The checkpoint's pages stay in its compact form; each becomes a state when used.
        let table = PageTable::new(std::mem::take(&mut checkpoint.pages));

        let base = Log::open_stream(
            storage.clone(),
            config.log.clone(),
            Stream::Base.name(),
            checkpoint.base_from,
            |_| Ok(()),
        )?;
        let delta = Log::open_stream(
            storage.clone(),
            config.log.clone(),
            Stream::Delta.name(),
            checkpoint.delta_from,
            |record| replay(&table, &record, &mut id_count),
        )?;
        let logs = [delta, base];
        check_starts(&logs, &checkpoint)?;

        let mut maintenance = Maintenance::default();
        let counters = Counters::default();
        if let Some(loaded) = &loaded {
            maintenance.last_seq = newest_seq_on_disk(&*storage)?.max(checkpoint.seq);
            maintenance.kept.push(Kept {
                from: [checkpoint.delta_from, checkpoint.base_from],
                refers_to: Default::default(),
                bytes: loaded.bytes,
            });
            counters.note_checkpoint(
                checkpoint.seq,
                loaded.bytes,
                loaded.bytes,
                checkpoint.delta_from,
            );
            counters.checkpoints.store(0, Ordering::Relaxed);
            *crate::sync::lock(&counters.checkpoint_fallback) = loaded.skipped.clone();
        }
        let every = config.checkpoint_every;
        let inner = Inner {
            storage,
            checkpoint_due: [
                AtomicU64::new(checkpoint.delta_from.get() + every),
                AtomicU64::new(checkpoint.base_from.get() + every),
            ],
            config,
            materializer,
            logs,
            table,
            live: Liveness::new(),
            next_id: AtomicU64::new(id_count),
            free_ids: Mutex::new(Vec::new()),
            evictor: Mutex::new(0),
            maintenance: Mutex::new(maintenance),
            counters,
        };
        inner.account_recovered(id_count, checkpoint.seq)?;
        inner.schedule_checkpoint([checkpoint.delta_from, checkpoint.base_from]);
        Ok(PageCache { inner: Arc::new(inner) })
    }
}

/// Applies one delta-stream record, unless the page already has its version.
fn replay(table: &PageTable, record: &Record<'_>, id_count: &mut u64) -> Result<()> {
    let what = || format!("delta stream record at {}", record.lsn);
    let body = record::decode(record.body, what)?;
    let guard = epoch::pin();
    let (slot, current) = table.load_or_create(body.id, &guard);
    let version = current.version();
    if body.version <= version {
        return Ok(()); // already in the checkpoint
    }
    if body.version != version + 1 {
        return Err(Error::corruption(
            what(),
            8,
            format!(
                "the record sets {} to version {}, but the page is at version {version}",
                body.id, body.version
            ),
        ));
    }
    let loc = Loc { stream: Stream::Delta, lsn: record.lsn, len: record.len };
    let live = current.state().and_then(|s| s.live.as_ref());
    let new = match (record.kind, live) {
        (record::REPLACE, _) => PageState::live(body.version, Part::cold(loc), Vec::new()),
        (record::LINK, Some(live)) => {
            let mut frags = live.frags.to_vec();
            frags.push(Part::resident(loc, Arc::from(body.payload)));
            PageState::live(body.version, live.base.clone(), frags)
        }
        (record::FREE, Some(_)) => PageState::free(body.version),
        (kind, _) => {
            return Err(Error::corruption(
                what(),
                0,
                format!(
                    "record kind {} cannot apply to {} at version {version} ({})",
                    kind.get(),
                    body.id,
                    if live.is_some() { "allocated" } else { "free" }
                ),
            ));
        }
    };
    if table.install(slot, current, new, &guard).is_err() {
        return Err(Error::Config(format!("{} changed during recovery", body.id)));
    }
    *id_count = (*id_count).max(body.id.get() + 1);
    Ok(())
}

/// Each stream must reach where the checkpoint starts in it: a log that ends earlier lost
/// data it had made durable.
fn check_starts(logs: &[Log; 2], checkpoint: &Checkpoint) -> Result<()> {
    for stream in Stream::ALL {
        let from = match stream {
            Stream::Delta => checkpoint.delta_from,
            Stream::Base => checkpoint.base_from,
        };
        let end = logs[stream.index()].written_lsn();
        if from > end {
            return Err(lost(checkpoint.seq, stream, from, end));
        }
    }
    Ok(())
}

fn lost(seq: u64, stream: Stream, needed: Lsn, end: Lsn) -> Error {
    Error::corruption(
        checkpoint::file_name(seq),
        0,
        format!(
            "the checkpoint needs the {} stream up to {needed}, but it ends at {end}: \
             log data that was durable is gone",
            stream.name()
        ),
    )
}

/// The highest checkpoint sequence number of any checkpoint file, usable or not, so the
/// next checkpoint never reuses a damaged one's number.
fn newest_seq_on_disk(storage: &dyn Storage) -> Result<u64> {
    let names = storage.list().map_err(|e| Error::io("list", storage.describe(""), e))?;
    Ok(names.iter().filter_map(|n| checkpoint::parse_name(n)).max().unwrap_or(0))
}

impl Inner {
    /// One pass over the recovered table: checks that every record a page names lies
    /// inside its stream (a checkpoint naming records past a log's end means the log lost
    /// data it had made durable), and rebuilds the free-id list, the liveness counters and
    /// the memory figures.
    fn account_recovered(&self, id_count: u64, seq: u64) -> Result<()> {
        let ends = [self.logs[0].written_lsn(), self.logs[1].written_lsn()];
        // A local copy of each stream's segment table: one lookup per record without
        // taking the log's lock, and one counter update per segment at the end.
        let segments = SegmentMap::new(&self.logs);
        let mut live = Stream::ALL.map(|stream| vec![0u64; segments.segments(stream).len()]);
        let mut free = Vec::new();
        let mut live_pages = 0u64;
        let guard = epoch::pin();
        let mut count = |loc: Loc| -> Result<()> {
            let index = loc.stream.index();
            let end = Lsn(loc.lsn.get() + u64::from(loc.len));
            if end > ends[index] {
                return Err(lost(seq, loc.stream, end, ends[index]));
            }
            if let Some(at) = segments.index(loc) {
                live[index][at] += u64::from(loc.len);
            }
            Ok(())
        };
        for id in (0..id_count).rev() {
            match self.table.peek(PageId(id), &guard) {
                Peek::State(state) => {
                    // Replayed: the table counted its memory when it was installed.
                    self.counters.note_install(None, Some(state));
                    if state.live.is_none() {
                        free.push(PageId(id));
                    }
                    state.locs().try_for_each(&mut count)?;
                }
                Peek::Cold(image) => {
                    if let PageImage::Free { .. } = image {
                        free.push(PageId(id));
                    } else {
                        live_pages += 1;
                    }
                    image.locs().try_for_each(&mut count)?;
                }
                Peek::Empty => free.push(PageId(id)),
            }
        }
        self.counters.live_pages.fetch_add(live_pages, Ordering::Relaxed);
        for stream in Stream::ALL {
            let index = stream.index();
            for (segment, bytes) in segments.segments(stream).iter().zip(&live[index]) {
                self.live.set(stream, segment.id, *bytes);
            }
        }
        *crate::sync::lock(&self.free_ids) = free;
        Ok(())
    }
}
