//! Opening the page cache: the newest usable checkpoint, then the delta stream after it.
//!
//! Recovery never reads page images: a page from the checkpoint comes back paged out (its
//! locations only), a replaced image is located, and only fragments replayed from the log
//! are kept in memory (they are small, and the checkpoint interval bounds them). Open time
//! is thus the checkpoint's size plus the replay, both bounded by `checkpoint_every`, not
//! by the size of the database.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use super::{
    cache::{Inner, PageCache},
    checkpoint::{self, Checkpoint},
    group::InFlight,
    live::Liveness,
    loc::{Loc, Stream},
    maintainer::Maintainer,
    maintenance::{Kept, Maintenance, log_ends},
    page::Materializer,
    pages::{Pages, Summary},
    payload::Payload,
    record,
    state::{PageState, Part},
    stats::Counters,
    table::PageTable,
    weights::Weights,
};
use crate::{
    config::PageCacheConfig,
    error::{Error, Result},
    ids::{Lsn, PageId},
    log::{Log, Record, RecordKind},
    storage::Storage,
    sync::{AtomicU64, Mutex, Ordering, epoch},
};

impl PageCache {
    /// Opens (or creates) the page cache in `storage`: loads the newest valid checkpoint
    /// (falling back to the previous one if it is damaged) and replays the log after it.
    /// With `config.log.read_only` it modifies no file (see [`PageCache`], "Read-only").
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
        let mut loaded = if config.log.read_only {
            checkpoint::load_read_only(&*storage)?
        } else {
            checkpoint::load(&*storage)?
        };
        let empty = || Checkpoint {
            seq: 0,
            delta_from: Lsn::ZERO,
            base_from: Lsn::ZERO,
            pages: Pages::default(),
            live: Vec::new(),
        };
        let mut checkpoint =
            loaded.as_mut().map_or_else(empty, |l| std::mem::replace(&mut l.checkpoint, empty()));
        let checkpoint_ids = u64::try_from(checkpoint.pages.len()).unwrap_or(u64::MAX);
        let summary = checkpoint.pages.summary().clone();
        // The checkpoint's pages stay in its compact form; each becomes a state when used.
        let table = PageTable::new(std::mem::take(&mut checkpoint.pages));
        let counters = Counters::default();
        counters.live_pages.store(summary.live, Ordering::Relaxed);
        let mut replayed = Replayed { id_count: checkpoint_ids, ..Replayed::default() };

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
            |record| replay(&table, &counters, &record, checkpoint.delta_from, &mut replayed),
        )?;
        let logs = [delta, base];
        check_within(&logs, &checkpoint, summary.ends)?;

        let mut maintenance = Maintenance::default();
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
            // A log that ends where the checkpoint starts had nothing to replay: the
            // checkpoint is current, and closing without a write need not take another.
            let ends = log_ends(&logs);
            let from = [checkpoint.delta_from, checkpoint.base_from];
            if ends == from {
                maintenance.current_at = Some(ends);
            }
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
            next_id: AtomicU64::new(replayed.id_count),
            free_ids: Mutex::new(Vec::new()),
            evictor: Mutex::new(0),
            evict_floor: AtomicU64::new(0),
            maintenance: Mutex::new(maintenance),
            maintainer: Maintainer::default(),
            counters,
            in_flight: InFlight::default(),
            weights: Weights::default(),
        };
        inner.account_recovered(&checkpoint, checkpoint_ids, &summary, replayed);
        inner.schedule_checkpoint([checkpoint.delta_from, checkpoint.base_from]);
        let inner = Arc::new(inner);
        if inner.config.maintenance_thread && !inner.config.log.read_only {
            Maintainer::start(&inner);
        }
        Ok(PageCache { inner })
    }
}

/// What replaying the delta stream changed, for the accounting after it.
#[derive(Debug, Default)]
struct Replayed {
    /// One more than the highest page id seen, in the checkpoint or the log.
    id_count: u64,
    /// Page ids a replayed record changed (with repeats, until sorted after replay).
    touched: Vec<u64>,
    /// Records that became live (`true`) or dead (`false`), in order.
    live_changes: Vec<(Loc, bool)>,
    /// Group members waiting for their commit record, by LSN: kind (as the single-page
    /// kind it acts as), length on disk, body. Those left at the end never committed.
    members: BTreeMap<Lsn, (RecordKind, u32, Vec<u8>)>,
    /// What replay changed of each owner's total weight.
    weights: HashMap<u64, i64>,
}

/// Replays one delta-stream record: applies an update, keeps a group member until its
/// commit record, applies a committed group's members.
fn replay(
    table: &PageTable,
    counters: &Counters,
    record: &Record<'_>,
    from: Lsn,
    replayed: &mut Replayed,
) -> Result<()> {
    if let Some(kind) = record::member_as_single(record.kind) {
        replayed.members.insert(record.lsn, (kind, record.len, record.body.to_vec()));
        return Ok(());
    }
    if record.kind != record::GROUP_COMMIT {
        let loc = Loc { stream: Stream::Delta, lsn: record.lsn, len: record.len };
        return apply(table, counters, record.kind, loc, record.body, replayed);
    }
    let what = || format!("delta stream record at {}", record.lsn);
    for lsn in record::decode_commit(record.body, what)? {
        match replayed.members.remove(&lsn) {
            Some((kind, len, body)) => {
                let loc = Loc { stream: Stream::Delta, lsn, len };
                apply(table, counters, kind, loc, &body, replayed)?;
            }
            // Written before the checkpoint started: the checkpoint holds it.
            None if lsn < from => {}
            None => {
                return Err(Error::corruption(
                    what(),
                    0,
                    format!("the group's member at {lsn} is missing from the log"),
                ));
            }
        }
    }
    Ok(())
}

/// Applies one update to its page, unless the page already has its version.
fn apply(
    table: &PageTable,
    counters: &Counters,
    kind: RecordKind,
    loc: Loc,
    body: &[u8],
    replayed: &mut Replayed,
) -> Result<()> {
    let what = || format!("delta stream record at {}", loc.lsn);
    let (body, weigh) = record::decode_update(body, what)?;
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
    let live = current.state().and_then(|s| s.live.as_ref());
    let weighs = weigh.apply(current.state().and_then(PageState::weighs));
    let new = match (kind, live) {
        (record::REPLACE, _) => PageState::live(body.version, Part::cold(loc), Vec::new(), weighs),
        (record::LINK, Some(live)) => {
            let frags = live.frags.with(Part::resident(loc, Payload::copy_from(body.payload)));
            PageState::live(body.version, live.base.clone(), frags, weighs)
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
    let old = current.state();
    if let Some((owner, weight)) = old.and_then(PageState::weighs) {
        *replayed.weights.entry(owner).or_default() -= weight;
    }
    if let Some((owner, weight)) = new.weighs() {
        *replayed.weights.entry(owner).or_default() += weight;
    }
    for loc in new.locs() {
        if old.is_none_or(|old| !old.locs().any(|l| l == loc)) {
            replayed.live_changes.push((loc, true));
        }
    }
    for loc in old.into_iter().flat_map(PageState::locs) {
        if !new.locs().any(|l| l == loc) {
            replayed.live_changes.push((loc, false));
        }
    }
    let installed = match table.install(slot, current, new, false, &guard) {
        Ok(installed) => installed,
        Err(_) => return Err(Error::Config(format!("{} changed during recovery", body.id))),
    };
    counters.note_install(old, installed.state());
    replayed.touched.push(body.id.get());
    replayed.id_count = replayed.id_count.max(body.id.get() + 1);
    Ok(())
}

/// Each stream must reach where the checkpoint starts in it, and every record the
/// checkpoint names (`ends`: the furthest, per stream) must lie inside its stream: a log
/// that ends earlier lost data it had made durable.
fn check_within(logs: &[Log; 2], checkpoint: &Checkpoint, ends: [u64; 2]) -> Result<()> {
    for stream in Stream::ALL {
        let from = match stream {
            Stream::Delta => checkpoint.delta_from,
            Stream::Base => checkpoint.base_from,
        };
        let end = logs[stream.index()].written_lsn();
        let needed = from.max(Lsn(ends[stream.index()]));
        if needed > end {
            return Err(lost(checkpoint.seq, stream, needed, end));
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
    /// Rebuilds the liveness counters and the free-id list from the checkpoint's figures
    /// and what replay changed: no pass over every page.
    fn account_recovered(
        &self,
        checkpoint: &Checkpoint,
        checkpoint_ids: u64,
        summary: &Summary,
        mut replayed: Replayed,
    ) {
        let free = &summary.free;
        replayed.touched.sort_unstable();
        replayed.touched.dedup();
        let touched = |id: &u64| replayed.touched.binary_search(id).is_ok();
        for entry in &checkpoint.live {
            self.live.set(entry.stream, entry.segment, entry.bytes);
        }
        for (&owner, &weight) in summary.weights.iter().chain(&replayed.weights) {
            self.weights.add(owner, weight);
        }
        for (loc, add) in replayed.live_changes {
            self.live.adjust(&self.logs, loc, add);
        }
        let guard = epoch::pin();
        let mut ids: Vec<PageId> = free
            .iter()
            .copied()
            .filter(|id| !touched(id))
            .chain((checkpoint_ids..replayed.id_count).filter(|id| !touched(id)))
            .chain(replayed.touched.iter().copied().filter(|&id| {
                self.table.existing(PageId(id)).is_none_or(|slot| {
                    slot.load(&guard).state().is_none_or(|state| state.live.is_none())
                })
            }))
            .map(PageId)
            .collect();
        // Popped from the end: lowest id first.
        ids.sort_unstable_by(|a, b| b.cmp(a));
        *crate::sync::lock(&self.free_ids) = ids;
    }
}
