//! [`PageCache`]: the public handle, and the update, read, consolidation and eviction paths.

use std::{fmt, sync::Arc, time::Instant};

use super::{
    group::InFlight,
    live::Liveness,
    loc::{Loc, Stream},
    maintainer::Maintainer,
    maintenance::{self, Maintenance},
    page::{Materializer, Outcome, Page, PageView, UNSUMMARIZED, Weigh},
    payload::Payload,
    record,
    state::{Live, PageState, Part},
    stats::{Counters, PageCacheStats, Written},
    table::{Current, PageTable, Slot},
    weights::Weights,
};
use crate::{
    config::PageCacheConfig,
    error::{Error, Result},
    ids::PageId,
    log::{Log, RecordKind},
    prefetch,
    storage::Storage,
    sync::{self, AtomicU64, Mutex, Ordering, epoch},
};

/// A lock-free cache of pages over the storage log.
///
/// A page is a base image plus a short chain of fragments (small deltas whose meaning the
/// [`Materializer`] defines). Every update is a record in the log and a compare-and-swap on
/// the page's slot: [`PageCache::link`] adds a fragment, [`PageCache::replace`] writes a
/// whole new image, [`PageCache::free`] gives the id back. Each takes the version the
/// caller read, and returns [`Outcome::Stale`] if the page changed since.
///
/// Behind the scenes the cache consolidates long chains into new bases, pages out what does
/// not fit in [`PageCacheConfig::cache_bytes`], writes checkpoints so that opening replays
/// a bounded amount of log, and cleans segments that are mostly dead.
///
/// # Durability
/// An update is durable once a later [`PageCache::flush`] returns. After a crash,
/// [`PageCache::open`] recovers the pages as they were at some point at or after the last
/// completed flush.
///
/// # Example
/// ```
/// use grove_engine::{MemStorage, Materializer, Outcome, PageCache, PageCacheConfig};
/// use std::sync::Arc;
///
/// /// Fragments are appended to the base.
/// struct Append;
/// impl Materializer for Append {
///     fn merge(&self, base: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
///         let mut page = base.to_vec();
///         fragments.iter().for_each(|f| page.extend_from_slice(f));
///         page
///     }
/// }
///
/// let storage = Arc::new(MemStorage::new());
/// let cache = PageCache::open(storage.clone(), PageCacheConfig::default(), Arc::new(Append))?;
/// let (id, version) = cache.allocate(b"hello")?;
/// assert_eq!(cache.link(id, version, b", world")?, Outcome::Installed { version: version + 1 });
/// // A caller holding the old version loses: it must read the page again.
/// assert_eq!(cache.link(id, version, b"!")?, Outcome::Stale);
/// cache.flush()?; // durable from here
/// cache.close()?;
///
/// let cache = PageCache::open(storage, PageCacheConfig::default(), Arc::new(Append))?;
/// let page = cache.get(id)?.expect("allocated");
/// assert_eq!(page.materialize(&Append), b"hello, world");
/// # Ok::<(), grove_engine::Error>(())
/// ```
///
/// # Read-only
/// With `config.log.read_only` ([`crate::LogConfig::read_only`]) the cache opens without
/// changing any file. Reads work, cold pages are loaded and paged out again as usual (a page
/// with a long chain of fragments is paged out as it is, not consolidated, so reading it back
/// takes a read per fragment); every update, [`PageCache::reserve_id`],
/// [`PageCache::checkpoint`] and [`PageCache::clean`] fail with [`Error::ReadOnly`], and
/// [`PageCache::close`] writes nothing.
///
/// # Thread safety
/// `PageCache` is `Send + Sync` and cheap to clone (it is a handle). Reads take no lock;
/// updates take none either, apart from the free-id list on allocate and free. Checkpoints
/// and cleaning run on the thread whose write crossed the line (or, with
/// [`PageCacheConfig::maintenance_thread`], on a thread of their own, blocking writes only
/// once the log is two checkpoint intervals past due), one pass at a time, never blocking
/// reads. Eviction runs on the thread whose change took the cache over its budget.
#[derive(Clone)]
pub struct PageCache {
    pub(crate) inner: Arc<Inner>,
}

/// What every handle shares.
pub(crate) struct Inner {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: PageCacheConfig,
    pub(crate) materializer: Arc<dyn Materializer>,
    /// Indexed by [`Stream::index`].
    pub(crate) logs: [Log; 2],
    pub(crate) table: PageTable,
    pub(crate) live: Liveness,
    /// Every id below this has been handed out at least once. Owner: `allocate`
    /// (fetch-add only). Relaxed: the slot's own compare-and-swap publishes the page.
    pub(crate) next_id: AtomicU64,
    /// Ids freed and not yet reused, lowest last. A lock, because allocation and free are
    /// rare (page splits and merges) and the lock is held for one push or pop.
    pub(crate) free_ids: Mutex<Vec<PageId>>,
    /// The eviction clock's hand (a page id); the lock makes one thread evict at a time.
    pub(crate) evictor: Mutex<u64>,
    /// Memory below which no eviction is tried, set when a sweep could not get under the
    /// budget (what is left is bookkeeping, or records not yet written): eviction waits
    /// until the cache has grown by a slack beyond that, instead of sweeping on every
    /// write and read. 0 after a sweep that succeeded. Owner: the evictor (under
    /// `evictor`); others load it. Relaxed: a hint; a late sweep or a skipped one is
    /// harmless.
    pub(crate) evict_floor: AtomicU64,
    pub(crate) maintenance: Mutex<Maintenance>,
    /// The thread that runs maintenance when a checkpoint falls due, if
    /// `config.maintenance_thread` asked for one.
    pub(crate) maintainer: Maintainer,
    /// Per stream, the LSN past which the next checkpoint is due. Owner: the maintenance
    /// thread (stores); writers load it. Relaxed: a late checkpoint is harmless.
    pub(crate) checkpoint_due: [AtomicU64; 2],
    pub(crate) counters: Counters,
    /// Group updates between their first record and their last install.
    pub(crate) in_flight: InFlight,
    /// Each owner's total page weight.
    pub(crate) weights: Weights,
}

impl fmt::Debug for PageCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageCache").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// The least growth after a sweep that could not get under the budget before the next
/// sweep (see `Inner::evict_floor`); 1/64 of the budget if that is more.
const EVICTION_SLACK: u64 = 1 << 10;

/// Cache lines of a page's base image a read asks for while it loads the page's state: the
/// tree reads a node's header, fences and the start of its slot table from them, where a
/// binary search makes its first probes. Measured on the comparison benchmark's gets (1M
/// keys, in one process alternating settings), asked for when the tree parsed the header:
/// 2 lines +4%, 4 lines +8 to 10%, 6 and 8 lines +6 to 7%. Asking here, before the state
/// is loaded, added 18 to 20%; asking again at the header then changed nothing.
const READ_LINES: usize = 4;

/// The most slots one call of `evict_if_over_budget` looks at.
const MAX_EVICTION_SCAN: u64 = 4096;

/// What an update expects of the page it changes.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An allocated page at this version.
    Live(u64),
    /// A free id.
    Free,
}

impl Expect {
    fn matches(self, current: &Current<'_>) -> bool {
        let state = current.state();
        match self {
            Expect::Live(version) => {
                state.is_some_and(|s| s.live.is_some() && s.version == version)
            }
            Expect::Free => state.is_none_or(|s| s.live.is_none()),
        }
    }
}

impl PageCache {
    /// Allocates a page holding `image` and returns its id and version. Freed ids are
    /// reused, lowest first.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] if the image does not fit in a log record; the log's
    /// errors ([`Error::LogFailed`], [`Error::Closed`]); [`Error::ReadOnly`] if the cache
    /// was opened read-only.
    pub fn allocate(&self, image: &[u8]) -> Result<(PageId, u64)> {
        let inner = &*self.inner;
        loop {
            let id = inner.take_id()?;
            // The id is ours alone, so this only fails if an earlier holder of the id is
            // still mid-free; take another id in that case.
            match inner.update(id, Expect::Free, record::REPLACE, Weigh::Keep, image)? {
                Outcome::Installed { version } => return Ok((id, version)),
                Outcome::Stale => continue,
            }
        }
    }

    /// Links `fragment` onto page `id` if it is still at `version`.
    ///
    /// Once the chain reaches [`PageCacheConfig::consolidate_after`] fragments, this call
    /// also consolidates the page into a new base (a failure to consolidate is counted in
    /// the stats and retried later; the link stands).
    ///
    /// # Errors
    /// As [`PageCache::allocate`].
    pub fn link(&self, id: PageId, version: u64, fragment: &[u8]) -> Result<Outcome> {
        self.link_with(id, version, fragment, Weigh::Keep)
    }

    /// [`PageCache::link`], changing the page's weight as `weigh` says.
    ///
    /// # Errors
    /// As [`PageCache::allocate`].
    pub fn link_with(
        &self,
        id: PageId,
        version: u64,
        fragment: &[u8],
        weigh: Weigh,
    ) -> Result<Outcome> {
        let outcome =
            self.inner.update(id, Expect::Live(version), record::LINK, weigh, fragment)?;
        if outcome != Outcome::Stale {
            self.inner.consolidate_if_long(id);
        }
        Ok(outcome)
    }

    /// Replaces page `id`'s contents by `image` if it is still at `version`.
    ///
    /// # Errors
    /// As [`PageCache::allocate`].
    pub fn replace(&self, id: PageId, version: u64, image: &[u8]) -> Result<Outcome> {
        self.replace_with(id, version, image, Weigh::Keep)
    }

    /// [`PageCache::replace`], changing the page's weight as `weigh` says.
    ///
    /// # Errors
    /// As [`PageCache::allocate`].
    pub fn replace_with(
        &self,
        id: PageId,
        version: u64,
        image: &[u8],
        weigh: Weigh,
    ) -> Result<Outcome> {
        self.inner.update(id, Expect::Live(version), record::REPLACE, weigh, image)
    }

    /// The total weight of the live pages of `owner` (see [`Weigh`]): O(1), exact after
    /// every completed update, across restarts and crashes.
    pub fn weight(&self, owner: u64) -> i64 {
        self.inner.weights.get(owner)
    }

    /// Frees page `id` if it is still at `version`; the id will be reused.
    ///
    /// # Errors
    /// The log's errors; [`Error::ReadOnly`] if the cache was opened read-only.
    pub fn free(&self, id: PageId, version: u64) -> Result<Outcome> {
        let outcome =
            self.inner.update(id, Expect::Live(version), record::FREE, Weigh::Keep, &[])?;
        if outcome != Outcome::Stale {
            sync::lock(&self.inner.free_ids).push(id);
        }
        Ok(outcome)
    }

    /// The current version of page `id`, or `None` if it is free. A paged-out page costs
    /// at most two reads (its base and one fragment run), each verified by its checksum.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a record read back is damaged; [`Error::Io`].
    pub fn get(&self, id: PageId) -> Result<Option<Page>> {
        self.inner.get(id)
    }

    /// As [`PageCache::get`], borrowing the page under `guard` instead of sharing it:
    /// no reference count is touched and nothing is allocated, which is what the tree's
    /// read path wants. Hold the guard only as long as the read takes; it delays the
    /// reclamation of every page version replaced meanwhile.
    ///
    /// # Errors
    /// As [`PageCache::get`].
    pub(crate) fn read<'g>(
        &self,
        id: PageId,
        guard: &'g epoch::Guard,
    ) -> Result<Option<PageView<'g>>> {
        self.inner.read(id, guard)
    }

    /// Makes every update made before this call durable.
    ///
    /// # Errors
    /// [`Error::LogFailed`] if the log could not write or sync.
    pub fn flush(&self) -> Result<()> {
        self.inner.logs[Stream::Delta.index()].flush().map(|_| ())
    }

    /// Whether the cache was opened read-only (`config.log.read_only`): it then refuses
    /// every change with [`Error::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.inner.config.log.read_only
    }

    /// `Err(Error::ReadOnly)` if the cache was opened read-only: for the layer above, to
    /// refuse a write before it starts.
    pub(crate) fn writable(&self) -> Result<()> {
        self.inner.writable()
    }

    /// The number of page ids handed out so far (allocated or free).
    pub fn page_id_count(&self) -> u64 {
        self.inner.next_id.load(Ordering::Relaxed)
    }

    /// Writes a checkpoint now. Checkpoints are written on their own every
    /// [`PageCacheConfig::checkpoint_every`] bytes of log; call this to bound the next
    /// open's replay right away.
    ///
    /// # Errors
    /// The log's errors, and [`Error::Io`] if the checkpoint file cannot be written;
    /// [`Error::ReadOnly`] if the cache was opened read-only.
    pub fn checkpoint(&self) -> Result<()> {
        let mut maintenance = self.inner.lock_maintenance();
        self.inner.checkpoint(&mut maintenance)
    }

    /// Runs the cleaner now: relocates what is live out of mostly-dead segments, and
    /// deletes segments that no page and no kept checkpoint needs. It also runs on its own
    /// after each periodic checkpoint.
    ///
    /// # Errors
    /// The log's errors, and [`Error::Io`] if a segment cannot be deleted;
    /// [`Error::ReadOnly`] if the cache was opened read-only.
    pub fn clean(&self) -> Result<()> {
        let mut maintenance = self.inner.lock_maintenance();
        self.inner.clean(&mut maintenance).map(drop)
    }

    /// Current figures.
    pub fn stats(&self) -> PageCacheStats {
        self.inner.stats()
    }

    /// Writes a checkpoint (so that the next open replays nothing) and closes the cache.
    /// A read-only cache writes nothing.
    ///
    /// # Errors
    /// As [`PageCache::checkpoint`].
    pub fn close(self) -> Result<()> {
        if self.is_read_only() {
            return Ok(());
        }
        // A pass under way finishes first; from here on writers (through other handles)
        // maintain the cache themselves.
        self.inner.maintainer.stop();
        let mut maintenance = self.inner.lock_maintenance();
        // Nothing written since the newest checkpoint: it is already what this one would
        // be (a session that only read closes without rewriting the page table).
        if self.inner.changed_since_checkpoint(&maintenance) {
            self.inner.checkpoint(&mut maintenance)?;
        }
        drop(maintenance);
        self.flush()
    }
}

impl Inner {
    /// `Err(Error::ReadOnly)` if the cache was opened read-only: every change starts here.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.config.log.read_only { Err(Error::ReadOnly) } else { Ok(()) }
    }

    /// A free id: the lowest freed one, or a new one.
    pub(crate) fn take_id(&self) -> Result<PageId> {
        self.writable()?;
        let popped = sync::lock(&self.free_ids).pop();
        let id = match popped {
            Some(id) => id,
            None => PageId(self.next_id.fetch_add(1, Ordering::Relaxed)),
        };
        if id.get() >= record::MAX_PAGE_ID {
            return Err(Error::Config(format!("the page table is full ({id})")));
        }
        Ok(id)
    }

    pub(crate) fn log(&self, stream: Stream) -> &Log {
        &self.logs[stream.index()]
    }

    /// Memory the cache holds now, as its budget counts it.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.table.memory_bytes() + self.live.allocated_bytes()
    }

    /// Writes the update's record, then installs the new state with a compare-and-swap.
    ///
    /// The state is read *before* the record is reserved, so for any two updates of one
    /// page the later one has the larger LSN: replaying the delta stream in LSN order
    /// replays each page's updates in the order they were installed.
    ///
    /// A page held by a group update (see `group.rs`) is waited for: the group will change
    /// its version, or release it unchanged.
    fn update(
        &self,
        id: PageId,
        expect: Expect,
        kind: RecordKind,
        weigh: Weigh,
        payload: &[u8],
    ) -> Result<Outcome> {
        self.writable()?;
        loop {
            match self.try_update(id, expect, kind, weigh, payload)? {
                Some(outcome) => return Ok(outcome),
                None => self.wait_unclaimed(id),
            }
        }
    }

    /// One attempt of [`Inner::update`]; `None` if a group holds the page.
    fn try_update(
        &self,
        id: PageId,
        expect: Expect,
        kind: RecordKind,
        weigh: Weigh,
        payload: &[u8],
    ) -> Result<Option<Outcome>> {
        let guard = epoch::pin();
        let (slot, mut current) = match expect {
            Expect::Free => self.table.load_or_create(id, &guard),
            Expect::Live(_) => match self.table.load(id, &guard) {
                Some(found) => found,
                None => return Ok(Some(Outcome::Stale)),
            },
        };
        if current.is_claimed() {
            return Ok(None);
        }
        if !expect.matches(&current) {
            return Ok(Some(Outcome::Stale));
        }
        let version = current.version() + 1;
        let head = record::Head::update(id, version, weigh);
        let delta = self.log(Stream::Delta);
        let reservation = delta.reserve_parts(kind, &[head.as_bytes(), payload])?;
        let loc = Loc { stream: Stream::Delta, lsn: reservation.lsn(), len: reservation.len() };
        let bytes = Payload::copy_from(payload);
        let summary = if kind == record::LINK { self.materializer.summarize(payload) } else { 0 };
        loop {
            let new = match (kind, current.state().and_then(|s| s.live.as_ref())) {
                (record::FREE, _) => PageState::free(version),
                (record::LINK, Some(live)) => {
                    let frags = live.frags.with(Part::resident(loc, bytes.clone()));
                    let weighs = weigh.apply(Some((live.owner, live.weight)));
                    PageState::live(version, live.base.clone(), frags, weighs)
                        .summarized(live.summary | summary)
                }
                (_, live) => {
                    let weighs = weigh.apply(live.map(|l| (l.owner, l.weight)));
                    PageState::live(version, Part::resident(loc, bytes.clone()), Vec::new(), weighs)
                }
            };
            match self.install(slot, current, new, &guard) {
                Ok(_) => {
                    reservation.complete();
                    break;
                }
                Err((_, now)) => {
                    // A consolidation, eviction or load changes the slot but not the
                    // version; only a logical change makes the update stale. A group that
                    // claimed the page meanwhile will write records after ours: ours must
                    // not be installed after its claim, so the attempt is given up.
                    let claimed = now.is_claimed();
                    if claimed || !expect.matches(&now) || now.version() + 1 != version {
                        reservation.abort();
                        return Ok((!claimed).then_some(Outcome::Stale));
                    }
                    current = now;
                }
            }
        }
        if kind != record::FREE {
            self.table.touch(id);
            let what = if kind == record::LINK { Written::Fragment } else { Written::Image };
            self.counters.note_written(what, payload.len());
        }
        drop(guard);
        self.after_write(loc);
        Ok(Some(Outcome::Installed { version }))
    }

    /// Installs `new` in place of `current` (see [`PageTable::install`]), keeping the
    /// liveness counters and page counts in step.
    ///
    /// Records the new state gains are counted *before* the compare-and-swap and those it
    /// drops after it: whoever later replaces the new state subtracts its records only
    /// after loading it, hence after they were added, so no counter dips below its true
    /// value (which would make a live segment look dead to the cleaner).
    pub(crate) fn install<'g>(
        &self,
        slot: &Slot,
        current: Current<'g>,
        new: PageState,
        guard: &'g epoch::Guard,
    ) -> Result<Current<'g>, (PageState, Current<'g>)> {
        let claimed = current.is_claimed();
        // Only the claiming group changes a claimed page's version (`install_as`); any
        // other change to it keeps the version (a load) and the claim with it. A logical
        // change that got here is refused, as if it had lost the race to the claim.
        if claimed && new.version != current.version() {
            return Err((new, current));
        }
        self.install_as(slot, current, new, claimed, guard)
    }

    /// [`Inner::install`], saying whether the new state is claimed: a group's own
    /// install of its change ends its claim.
    pub(crate) fn install_as<'g>(
        &self,
        slot: &Slot,
        current: Current<'g>,
        new: PageState,
        claimed: bool,
        guard: &'g epoch::Guard,
    ) -> Result<Current<'g>, (PageState, Current<'g>)> {
        let old = current.state();
        let kept = old.map_or(0, |old| kept_prefix(old, &new));
        for loc in gained(old, &new, kept) {
            self.live.adjust(&self.logs, loc, true);
        }
        match self.table.install(slot, current, new, claimed, guard) {
            Ok(installed) => {
                if let (Some(old), Some(new)) = (old, installed.state()) {
                    for loc in locs_after(old, kept).filter(|&loc| !holds(new, loc)) {
                        self.live.adjust(&self.logs, loc, false);
                    }
                }
                self.counters.note_install(old, installed.state());
                self.weights.replace(
                    old.and_then(PageState::weighs),
                    installed.state().and_then(PageState::weighs),
                );
                Ok(installed)
            }
            Err(lost) => {
                for loc in gained(old, &lost.0, kept) {
                    self.live.adjust(&self.logs, loc, false);
                }
                Err(lost)
            }
        }
    }

    /// Evicts if over budget, and has maintenance run if a checkpoint is due: by the
    /// maintenance thread if there is one, else by this thread. A write that finds a stream
    /// two intervals past its line waits for maintenance, whoever runs it: the thread cannot
    /// fall behind the writers without bound.
    pub(crate) fn after_write(&self, loc: Loc) {
        self.evict_if_over_budget();
        let end = loc.lsn.get() + u64::from(loc.len);
        let due = self.checkpoint_due[loc.stream.index()].load(Ordering::Relaxed);
        if end < due {
            return;
        }
        let behind = due.saturating_add(self.config.checkpoint_every.saturating_mul(2));
        // Maintenance's own writes (and a check's) go on: waiting would be waiting for
        // this thread.
        if end >= behind && !maintenance::maintaining() {
            self.maintain_when_due();
        } else if !self.maintainer.request() {
            self.maintain_if_idle();
        }
    }

    /// Whether a checkpoint is due: a stream has passed its line.
    pub(crate) fn checkpoint_is_due(&self) -> bool {
        Stream::ALL.into_iter().any(|stream| {
            let due = self.checkpoint_due[stream.index()].load(Ordering::Relaxed);
            self.log(stream).reserved_lsn().get() >= due
        })
    }

    /// Runs maintenance if a checkpoint is still due once the maintenance lock is taken,
    /// waiting for a pass under way.
    pub(crate) fn maintain_when_due(&self) {
        let mut maintenance = self.lock_maintenance();
        if self.checkpoint_is_due() {
            self.maintenance_pass(&mut maintenance);
        }
    }

    fn get(&self, id: PageId) -> Result<Option<Page>> {
        let guard = epoch::pin();
        Ok(self.read(id, &guard)?.map(PageView::to_page))
    }

    pub(crate) fn read<'g>(
        &self,
        id: PageId,
        guard: &'g epoch::Guard,
    ) -> Result<Option<PageView<'g>>> {
        loop {
            let Some((slot, current)) = self.table.load(id, guard) else {
                return Ok(None);
            };
            // The state and the image are two misses on a large tree; asking for the image
            // first lets them overlap.
            prefetch::at_address(slot.image_hint(), READ_LINES);
            let Some(state) = current.state() else {
                return Ok(None);
            };
            if current.is_claimed() {
                // The claim read is the page's group only if the slot still holds this
                // state marked (see `ClaimedBy`); otherwise the page moved on: read again.
                let claim = state.claimed_by.get(guard);
                if !slot.load(guard).is(&current) {
                    continue;
                }
                if let Some(view) = claim.and_then(|claim| claim.committed_view(id, state)) {
                    return Ok(view);
                }
            }
            if state.live.is_none() {
                return Ok(None);
            }
            if let Some(view) = PageView::of_state(id, state) {
                self.table.touch(id);
                return Ok(Some(view));
            }
            // Paged out: read what is missing and install the loaded state. A page loaded
            // by a read starts unreferenced, so a scan does not push out pages in use.
            let loaded = match self.load_parts(id, state) {
                Ok(loaded) => loaded,
                // The epoch keeps the state in memory, not its records on disk: the cleaner
                // may have moved the page and deleted the segment meanwhile. Then the slot
                // holds a newer state; read that one.
                Err(_) if !slot.load(guard).is(&current) => continue,
                Err(error) => return Err(error),
            };
            // A load keeps the version, so it keeps a group's claim too (`install` does).
            self.counters.cold_reads.fetch_add(1, Ordering::Relaxed);
            // A lost race means the page changed meanwhile: read it again.
            let Ok(installed) = self.install(slot, current, loaded, guard) else {
                continue;
            };
            self.evict_if_over_budget();
            if let Some(view) = installed.state().and_then(|state| PageView::of_state(id, state)) {
                return Ok(Some(view));
            }
        }
    }

    /// `state` with every payload in memory, read from the log where it was paged out.
    pub(crate) fn load_parts(&self, id: PageId, state: &PageState) -> Result<PageState> {
        let Some(live) = &state.live else {
            return Ok(state.clone());
        };
        let load = |part: &Part| -> Result<Part> {
            match &part.bytes {
                Some(_) => Ok(part.clone()),
                None => Ok(Part::resident(part.loc, self.read_part(id, part.loc)?)),
            }
        };
        let base = load(&live.base)?;
        let frags = live.frags.iter().map(load).collect::<Result<Vec<_>>>()?;
        // Summaries left unknown are computed now that every fragment is at hand: those of
        // fragments read from disk, and those of a replayed page (a recovered page comes
        // here on its first read, as its base is always on disk).
        let summary = if live.frags_resident && live.summary != UNSUMMARIZED {
            live.summary
        } else {
            frags
                .iter()
                .filter_map(|f| f.bytes.as_deref())
                .fold(0, |summary, bytes| summary | self.materializer.summarize(bytes))
        };
        Ok(PageState::live(state.version, base, frags, (live.owner, live.weight))
            .summarized(summary))
    }

    /// Reads one record of page `id` back from the log and checks that it is what the
    /// page table says it is.
    pub(crate) fn read_part(&self, id: PageId, loc: Loc) -> Result<Payload> {
        let record = self.log(loc.stream).read(loc.lsn, loc.len)?;
        let what = || format!("{} stream at {}", loc.stream.name(), loc.lsn);
        let body = match loc.stream {
            Stream::Delta => record::decode_update(&record.body, what)?.0,
            Stream::Base => record::decode(&record.body, what)?,
        };
        let kind_ok = match loc.stream {
            Stream::Delta => {
                [record::REPLACE, record::LINK, record::GROUP_REPLACE, record::GROUP_LINK]
                    .contains(&record.kind)
            }
            Stream::Base => record.kind == record::BASE,
        };
        if !kind_ok || body.id != id {
            return Err(Error::corruption(
                what(),
                0,
                format!(
                    "expected a record of {id}, found kind {} of {}",
                    record.kind.get(),
                    body.id
                ),
            ));
        }
        Ok(Payload::copy_from(body.payload))
    }

    pub(crate) fn consolidate_if_long(&self, id: PageId) {
        let guard = epoch::pin();
        let long = self.table.load(id, &guard).is_some_and(|(_, current)| {
            current
                .state()
                .and_then(|s| s.live.as_ref())
                .is_some_and(|live| live.frags.len() >= self.config.consolidate_after)
        });
        drop(guard);
        if long {
            self.consolidate_or_count(id);
        }
    }

    /// Consolidates page `id`, counting a failure in the stats (the chain stays; the next
    /// link retries).
    pub(crate) fn consolidate_or_count(&self, id: PageId) {
        if self.consolidate(id).is_err() {
            self.counters.failed_consolidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Page `id`'s slot and current state, and the state's contents, if the page is live.
    pub(crate) fn load_live<'g>(
        &self,
        id: PageId,
        guard: &'g epoch::Guard,
    ) -> Option<Loaded<'_, 'g>> {
        let (slot, current) = self.table.load(id, guard)?;
        let state = current.state()?;
        let live = state.live.as_ref()?;
        Some((slot, current, state, live))
    }

    /// Folds page `id`'s fragments into a new base in the base stream. Returns whether a
    /// new state was installed; `false` if there was nothing to do or a concurrent update
    /// won (the base record is then aborted).
    pub(crate) fn consolidate(&self, id: PageId) -> Result<bool> {
        let guard = epoch::pin();
        let Some((slot, current, state, live)) = self.load_live(id, &guard) else {
            return Ok(false);
        };
        // A claimed page changes when its group installs; it is left to that.
        if live.frags.is_empty() || current.is_claimed() {
            return Ok(false);
        }
        // A resident page is read as it is: a loaded copy would take a reference to each
        // of its parts, each one a cache miss on a large cache.
        let loaded;
        let full = if state.holds_all() {
            state
        } else {
            loaded = match self.load_parts(id, state) {
                Ok(loaded) => loaded,
                // Moved meanwhile (see `get`): whoever moved it did the work.
                Err(_) if !slot.load(&guard).is(&current) => return Ok(false),
                Err(error) => return Err(error),
            };
            &loaded
        };
        let Some(page) = PageView::of_state(id, full) else {
            return Ok(false);
        };
        let image = page.materialize(&*self.materializer);
        let head = record::Head::base(id, state.version);
        let reservation =
            self.log(Stream::Base).reserve_parts(record::BASE, &[head.as_bytes(), &image])?;
        let loc = Loc { stream: Stream::Base, lsn: reservation.lsn(), len: reservation.len() };
        let base = Part::resident(loc, Payload::copy_from(&image));
        let new = PageState::live(state.version, base, Vec::new(), (live.owner, live.weight));
        match self.install(slot, current, new, &guard) {
            Ok(_) => {
                reservation.complete();
                self.counters.consolidations.fetch_add(1, Ordering::Relaxed);
                self.counters.note_written(Written::Consolidated, image.len());
                drop(guard);
                self.after_write(loc);
                Ok(true)
            }
            Err(_) => {
                reservation.abort();
                Ok(false)
            }
        }
    }

    /// Pages out unreferenced pages, clock-wise, until the cache is within its budget.
    ///
    /// Only records already written to their segment file can be paged out (a later read
    /// must find them there). A page with two or more fragments is consolidated first, so
    /// that a paged-out page always reads back in at most two reads.
    pub(crate) fn evict_if_over_budget(&self) {
        let memory = self.memory_bytes();
        if memory <= self.config.cache_bytes || memory <= self.evict_floor.load(Ordering::Relaxed) {
            return;
        }
        // Replaced states count until the collector frees them: let it run first, as that
        // may be all the memory needed.
        epoch::pin().flush();
        if self.memory_bytes() <= self.config.cache_bytes {
            return;
        }
        // One evictor at a time; the others go on with their work.
        let Ok(mut hand) = self.evictor.try_lock() else {
            return;
        };
        let count = self.next_id.load(Ordering::Relaxed);
        let written = [
            self.log(Stream::Delta).written_lsn().get(),
            self.log(Stream::Base).written_lsn().get(),
        ];
        // Two sweeps at most (the first may only clear reference bits), and a bounded
        // amount of work per call when little is evictable (records not written yet).
        let limit = (2 * count).min(MAX_EVICTION_SCAN);
        let mut scanned = 0;
        while scanned < limit && self.memory_bytes() > self.config.cache_bytes {
            let id = PageId(*hand % count.max(1));
            *hand = (id.get() + 1) % count.max(1);
            scanned += 1;
            let Some(slot) = self.table.existing(id) else {
                continue;
            };
            if self.table.take_touch(id) {
                continue;
            }
            self.page_out(id, slot, written);
        }
        let memory = self.memory_bytes();
        let floor = if memory > self.config.cache_bytes {
            memory.saturating_add((self.config.cache_bytes / 64).max(EVICTION_SLACK))
        } else {
            0
        };
        self.evict_floor.store(floor, Ordering::Relaxed);
    }

    fn page_out(&self, id: PageId, slot: &Slot, written: [u64; 2]) {
        let guard = epoch::pin();
        let current = slot.load(&guard);
        let Some(state) = current.state() else {
            return;
        };
        let Some(live) = &state.live else {
            return;
        };
        // A claimed page must stay in memory: readers of its group's result read it there.
        if !state.holds_bytes() || current.is_claimed() {
            return;
        }
        // A read-only cache cannot write the consolidated base: it pages the chain out
        // whole (its records are all on disk), and a later read reads each fragment.
        if live.frags.len() >= 2 && !self.config.log.read_only {
            drop(guard);
            self.consolidate_or_count(id);
            return;
        }
        let unwritten =
            state.locs().any(|l| l.lsn.get() + u64::from(l.len) > written[l.stream.index()]);
        if unwritten {
            return;
        }
        if self.install(slot, current, state.paged_out(), &guard).is_ok() {
            self.counters.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs a checkpoint and the cleaner unless another thread is already at it.
    fn maintain_if_idle(&self) {
        if let Some(mut maintenance) = self.try_lock_maintenance() {
            self.maintenance_pass(&mut maintenance);
        }
    }

    /// A periodic pass: its error goes to the stats, where no caller waits for it.
    fn maintenance_pass(&self, maintenance: &mut Maintenance) {
        let start = Instant::now();
        let result = self.maintain(maintenance);
        self.counters.note_pass(start.elapsed());
        if let Err(error) = result {
            self.counters.note_maintenance_error(&error);
        }
    }
}

/// A live page as [`Inner::load_live`] finds it: its slot, the state it holds (to install
/// against), that state, and the state's contents.
pub(crate) type Loaded<'t, 'g> = (&'t Slot, Current<'g>, &'g PageState, &'g Live);

/// The locations `new` holds that `old` does not, given that their first `kept` are the
/// same (walked, not collected: this runs on every install).
fn gained<'a>(
    old: Option<&'a PageState>,
    new: &'a PageState,
    kept: usize,
) -> impl Iterator<Item = Loc> + 'a {
    locs_after(new, kept).filter(move |&loc| old.is_none_or(|old| !holds(old, loc)))
}

/// How many locations `old` and `new` share at their start (base, then fragments). Most
/// installs keep every record (a claim, a load) or add one (a link): comparing in order
/// settles those in one pass, where looking each record up in the other state took a pass
/// per record.
fn kept_prefix(old: &PageState, new: &PageState) -> usize {
    match (&old.live, &new.live) {
        (Some(old), Some(new)) if old.base.loc == new.base.loc => {
            1 + old.frags.iter().zip(new.frags.iter()).take_while(|(a, b)| a.loc == b.loc).count()
        }
        _ => 0,
    }
}

/// `state`'s locations after its first `kept` (base, then fragments).
fn locs_after(state: &PageState, kept: usize) -> impl Iterator<Item = Loc> + '_ {
    let live = state.live.as_ref();
    let base = live.filter(|_| kept == 0).map(|live| live.base.loc);
    let frags =
        live.map_or(&[][..], |live| live.frags.get(kept.saturating_sub(1)..).unwrap_or_default());
    base.into_iter().chain(frags.iter().map(|frag| frag.loc))
}

/// Whether `state` refers to the record at `loc`.
fn holds(state: &PageState, loc: Loc) -> bool {
    state
        .live
        .as_ref()
        .is_some_and(|live| live.base.loc == loc || live.frags.iter().any(|frag| frag.loc == loc))
}
