//! The flusher: writes sealed buffers in order, syncs, publishes the stable LSN.
//!
//! Its state is behind a mutex, held by its thread while it works and by `flush` callers,
//! who do the work themselves ([`Flusher::help`]); whoever holds it is the
//! only one writing segment files, so segment files need no locks of their own. It writes
//! ready buffers in incarnation (= LSN) order as soon as they are sealed, which frees
//! their ring slots, but calls `fdatasync` only when it is worth it: when a `flush` caller
//! waits, when written data has been volatile for `flush_every_ms`, or when a segment is
//! closed. One sync covers everything written before it, so concurrent flushes share it
//! (group commit), and bulk appends cost one sync per segment rather than one per buffer.
//!
//! A closed segment is synced on a thread of its own ([`Closing`]) while the flusher writes
//! on into the next one, which keeps its temporary name until the closed one is durable:
//! recovery's rule that a named segment follows only whole ones still holds, and the
//! writers' buffers are not held up for the sync.
//!
//! Any I/O error stops the log for good: a failed `fdatasync` may have dropped the data it
//! was meant to persist, so retrying it and carrying on would lie about durability.

use std::{
    io,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    Shared,
    format::{self, RecordHeader, RecordKind, SegmentHeader},
    geometry::SegmentSpan,
    ring::{Failure, Sealed},
    segments::Segment,
};
use crate::{
    error::{Error, Result},
    sync::{self, Mutex, Ordering, thread::JoinHandle},
};

/// How long the flusher sleeps when there is no timer and no work.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// How far the flusher extends a segment file ahead of its data (see `Active::extended_to`).
const EXTEND_STEP: u64 = 1 << 20;

/// The segment file being appended to.
struct Active {
    segment: Arc<Segment>,
    /// Written since the last sync.
    dirty: bool,
    /// The file's length as the flusher last set it. The flusher extends the file ahead of
    /// its data, up to `EXTEND_STEP` at a time and never past the segment's size, with a
    /// hole that takes no disk. Writes that land within that length leave the file's size
    /// alone, so their `fdatasync` has no inode change to commit: on ext4 a 300-byte write
    /// then syncs in about 190 µs instead of 270 µs, which is most of a durable write.
    /// Recovery reads the zeros past the last record as the end of the log, as it reads a
    /// torn record, and cuts them off.
    extended_to: u64,
}

impl Active {
    fn new(segment: Arc<Segment>) -> Active {
        let extended_to = segment.file_len.load(Ordering::Relaxed);
        Active { segment, dirty: false, extended_to }
    }

    /// Makes the file at least `end` bytes long ahead of a write that ends there, extending
    /// it by a step. Best effort: if the extension fails, the write extends the file itself
    /// as it would have without it, and only its sync is slower.
    fn extend_for(&mut self, end: u64) {
        if end <= self.extended_to {
            return;
        }
        let size = self.segment.span.size;
        let to = end.div_ceil(EXTEND_STEP).saturating_mul(EXTEND_STEP).min(size).max(end);
        if self.segment.file.set_len(to).is_ok() {
            self.extended_to = to;
        }
    }
}

/// A closed segment whose sync, and the naming of the segment after it, run on a thread
/// of their own (`grove-log-close`) while the flusher writes on into that next segment
/// under its temporary name. Syncing each 8 MiB segment where it closed held the flusher
/// for about 5 ms a segment, and the writers waited for its buffers meanwhile: on the
/// comparison benchmark (1M keys, 4 alternating pairs) this way took the load from 358,000
/// to 379,000 entries a second, durable batches from 220,000 to 237,000 and removals from
/// 283,000 to 300,000 (skipping those syncs altogether, an experiment that is not durable,
/// made the load about 20% faster). One closing at a time: the next waits for it.
struct Closing {
    /// Incarnations below this lie in the closed segment or before it.
    through: u64,
    /// The stable LSN once they are durable.
    stable: u64,
    job: Job,
}

enum Job {
    Running(JoinHandle<Result<()>>),
    /// Done on the flusher's own thread, when no thread could be started.
    Done(Result<()>),
}

/// The state the flusher thread owns.
pub(crate) struct Flusher {
    shared: Arc<Shared>,
    /// The next incarnation to write.
    next: u64,
    /// Incarnations below this are durable.
    synced: u64,
    /// The stable LSN once everything written so far is synced.
    written_stable: u64,
    /// When the oldest written but unsynced buffer was written.
    unsynced_since: Option<Instant>,
    active: Option<Active>,
    /// The segment before `active`, closed but maybe not durable yet.
    closing: Option<Closing>,
    /// `flush_every_ms`: written data is synced once it has been volatile this long.
    period: Option<Duration>,
}

impl Drop for Flusher {
    /// No closing outlives its log. The flusher thread stops at a failure without waiting
    /// for the closing under way; that closing may still rename a file, and a reopen of the
    /// directory meanwhile (the fault tests reopen at once) would find its listing out of
    /// date. Its result no longer matters: the log has failed.
    fn drop(&mut self) {
        if let Some(Closing { job: Job::Running(handle), .. }) = self.closing.take() {
            drop(handle.join());
        }
    }
}

impl Flusher {
    /// A flusher that appends to `tail`, the last segment recovery found, if new records go
    /// there (else it starts a new segment).
    pub(crate) fn new(shared: Arc<Shared>, tail: Option<Arc<Segment>>) -> Self {
        let active = tail.map(Active::new);
        let written_stable = shared.ring.stable();
        let period = shared.config.flush_every_ms.map(Duration::from_millis);
        Self {
            shared,
            next: 0,
            synced: 0,
            written_stable,
            unsynced_since: None,
            active,
            closing: None,
            period,
        }
    }

    /// At a clean close, with everything synced: cuts the active segment's file back to its
    /// data. The zeros past it would read as a torn tail, and the next open would cut them,
    /// modifying the directory although nothing went wrong. Best effort: if this fails,
    /// that open cuts them, as after a crash.
    fn trim(&mut self) {
        let Some(active) = &mut self.active else {
            return;
        };
        let len = active.segment.file_len.load(Ordering::Relaxed);
        if active.extended_to > len && active.segment.file.set_len(len).is_ok() {
            active.extended_to = len;
            // The data was synced already; this makes the new length stick.
            drop(active.segment.file.sync());
        }
    }

    /// The thread's main loop; returns when the log closes or fails. The flusher is shared
    /// with `flush` callers, who may do its work themselves (see [`Flusher::help`]): the
    /// thread holds it only while it works, never while it waits.
    pub(crate) fn run(flusher: &Mutex<Flusher>) {
        let (shared, period) = {
            let this = sync::lock(flusher);
            (this.shared.clone(), this.period)
        };
        let ring = &shared.ring;
        // When the open buffer was last checked by the timer.
        let mut last_seal_check = Instant::now();
        loop {
            shared.segments.close_retired();
            let next = {
                let mut this = sync::lock(flusher);
                if ring.has_failed() {
                    return;
                }
                if let Some(ready) = this.pending() {
                    if this.work(ready).is_err() {
                        return;
                    }
                    continue;
                }
                if ring.is_closing() && this.synced == this.next {
                    this.trim();
                    return;
                }
                this.next
            };
            ring.wait_for_work(period.unwrap_or(IDLE_WAIT));
            if period.is_some_and(|p| last_seal_check.elapsed() >= p) {
                // Data sitting in the open buffer becomes durable within the period too.
                // Errors here are a failure or a close, both recorded already.
                let _ = ring.seal_if_idle(next);
                last_seal_check = Instant::now();
            }
        }
    }

    /// The flusher's work done by a `flush` caller waiting for incarnation `target`: every
    /// ready buffer written and synced, until `target` is durable or the buffer holding it
    /// is not ready yet (a writer is still copying into it, and wakes the flusher thread
    /// when it is done). A durable write then costs no hand-off to the flusher thread and
    /// back, two wake-ups that took about a fifth of a single durable write's time.
    ///
    /// # Errors
    /// The write or sync error, which also fails the log.
    pub(crate) fn help(&mut self, target: u64) -> Result<()> {
        while self.synced <= target && !self.shared.ring.has_failed() {
            let Some(ready) = self.pending() else {
                break;
            };
            self.work(ready)?;
        }
        Ok(())
    }

    /// Whether there is work: `Some(true)` if the next buffer is ready to write,
    /// `Some(false)` if only a sync is due, `None` if neither.
    fn pending(&self) -> Option<bool> {
        let ready = self.shared.ring.ready(self.next).is_some();
        (ready || self.sync_due()).then_some(ready)
    }

    /// [`Flusher::step`], failing the log on an error.
    fn work(&mut self, ready: bool) -> Result<()> {
        self.step(ready).inspect_err(|error| {
            let failure = Failure { cause: error.to_string(), kind: error.io_kind() };
            self.shared.ring.fail(failure);
        })
    }

    /// Whether written data should be synced now.
    fn sync_due(&self) -> bool {
        let ring = &self.shared.ring;
        self.synced < self.next
            && (ring.requested() > self.synced
                || ring.is_closing()
                || self
                    .period
                    .zip(self.unsynced_since)
                    .is_some_and(|(p, since)| since.elapsed() >= p))
    }

    /// Writes every ready buffer, then syncs if that is due.
    fn step(&mut self, ready: bool) -> Result<()> {
        let shared = self.shared.clone();
        let ring = &shared.ring;
        if ready {
            while let Some(sealed) = ring.ready(self.next) {
                let closed = self.write_buffer(&sealed)?;
                self.next += 1;
                self.written_stable = sealed.next_base;
                // Free the slot at once: a sealer may be waiting for it.
                ring.publish_written(self.next, self.written_stable);
                if let Some(closed) = closed {
                    self.close(closed)?;
                }
            }
            if self.synced < self.next && self.unsynced_since.is_none() {
                self.unsynced_since = Some(Instant::now());
            }
        }
        if self.sync_due() {
            // The active segment is durable only with the one before it, and named.
            self.finish_closing()?;
            if let Some(active) = self.active.as_mut().filter(|a| a.dirty) {
                sync_segment(&shared, &active.segment)?;
                active.dirty = false;
            }
            self.mark_synced();
        }
        Ok(())
    }

    /// Hands `closed`, whose segment-end record is written, to a thread that syncs it and
    /// then names the next segment, created here under its temporary name so that writing
    /// goes on meanwhile.
    fn close(&mut self, closed: Active) -> Result<()> {
        // The next segment may be named only once every one before it is durable.
        self.finish_closing()?;
        let span = self.shared.ring.geometry().span(self.written_stable);
        let (next, temp) = create_unnamed(&self.shared, span)?;
        let (shared, closed, named) = (self.shared.clone(), closed.segment, next.segment.clone());
        let work = move || sync_and_name(&shared, &closed, &named, &temp);
        let job = match sync::spawn("grove-log-close", work.clone()) {
            Ok(handle) => Job::Running(handle),
            Err(_) => Job::Done(work()),
        };
        self.active = Some(next);
        self.closing = Some(Closing { through: self.next, stable: self.written_stable, job });
        Ok(())
    }

    /// Waits for the closing in flight, if any, and publishes what it made durable.
    fn finish_closing(&mut self) -> Result<()> {
        let Some(closing) = self.closing.take() else {
            return Ok(());
        };
        match closing.job {
            Job::Running(handle) => match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Job::Done(result) => result,
        }?;
        if self.synced < closing.through {
            self.synced = closing.through;
            if self.synced == self.next {
                self.unsynced_since = None;
            }
            self.shared.ring.publish_durable(closing.through, closing.stable);
            self.shared.stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Everything written is durable: publish it.
    fn mark_synced(&mut self) {
        self.synced = self.next;
        self.unsynced_since = None;
        self.shared.ring.publish_durable(self.next, self.written_stable);
        self.shared.stats.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes one sealed buffer; returns the segment it closed, if it closed one.
    fn write_buffer(&mut self, sealed: &Sealed<'_>) -> Result<Option<Active>> {
        let shared = self.shared.clone();
        let span = shared.ring.geometry().span(sealed.base);
        let active = self.segment(span)?;
        if sealed.used > 0 {
            let at = span.file_offset(sealed.base);
            active.extend_for(at + sealed.used);
            let segment = &active.segment;
            // Writers left the checksums to this point. Records that do not tile their
            // buffer are a bug in the log, never written: the log fails instead.
            sealed
                .with_bytes_mut(format::seal_records)
                .map_err(|why| Error::corruption(segment.name.clone(), at, why))?;
            sealed
                .with_bytes(|bytes| segment.file.write_at(bytes, at))
                .map_err(|e| Error::io("write", shared.storage.describe(&segment.name), e))?;
            segment.file_len.fetch_max(at + sealed.used, Ordering::Relaxed);
            active.dirty = true;
            shared.stats.bytes_written.fetch_add(sealed.used, Ordering::Relaxed);
        }
        if sealed.next_base == span.end() {
            // The next buffer starts a new segment: close this one for good.
            let end = sealed.base + sealed.used;
            let mut record =
                RecordHeader { body_len: 0, lsn: end, kind: RecordKind::SEGMENT_END, flags: 0 }
                    .encode();
            RecordHeader::seal(&mut record, &[]);
            let segment = &active.segment;
            let at = span.file_offset(end);
            segment
                .file
                .write_at(&record, at)
                .map_err(|e| Error::io("write", shared.storage.describe(&segment.name), e))?;
            segment.file_len.fetch_max(at + format::SEGMENT_END_LEN, Ordering::Relaxed);
            return Ok(self.active.take());
        }
        Ok(None)
    }

    /// The active segment for `span`, creating its file if it does not exist yet.
    fn segment(&mut self, span: SegmentSpan) -> Result<&mut Active> {
        if self.active.as_ref().is_some_and(|a| a.segment.span.id != span.id) {
            // Unreachable by construction (a segment is closed before the next opens), but
            // appending to the wrong file would be silent corruption.
            return Err(Error::corruption(
                format::segment_file_name(&self.shared.stream, span.id),
                0,
                "flusher moved to a new segment without closing the previous one",
            ));
        }
        if self.active.is_none() {
            self.active = Some(create_segment(&self.shared, span)?);
        }
        self.active.as_mut().ok_or(Error::Closed)
    }
}

fn sync_segment(shared: &Shared, segment: &Segment) -> Result<()> {
    segment
        .file
        .sync()
        .map_err(|e| Error::io("sync", shared.storage.describe(&segment.name), e))?;
    shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A closing's work: the closed segment made durable, then the next one named.
fn sync_and_name(shared: &Shared, closed: &Segment, next: &Segment, temp: &str) -> Result<()> {
    sync_segment(shared, closed)?;
    name_segment(shared, next, temp)
}

/// Creates a segment atomically: temporary name and header ([`create_unnamed`]), then sync,
/// rename and directory sync ([`name_segment`]).
fn create_segment(shared: &Shared, span: SegmentSpan) -> Result<Active> {
    let (active, temp) = create_unnamed(shared, span)?;
    name_segment(shared, &active.segment, &temp)?;
    Ok(active)
}

/// Creates a segment's file under its temporary name, with its header, and registers it in
/// the segment table (under the name it will have) before anything is written into it.
/// Returns it and its temporary name. Recovery removes a temporary file, so what is written
/// into it before [`name_segment`] is lost at a crash, and was never reported durable.
fn create_unnamed(shared: &Shared, span: SegmentSpan) -> Result<(Active, String)> {
    let storage = &*shared.storage;
    let name = format::segment_file_name(&shared.stream, span.id);
    let temp = format::temp_file_name(&shared.stream, span.id);
    let shown = storage.describe(&temp);
    let file = match storage.create_new(&temp) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            storage.remove(&temp).map_err(|e| Error::io("remove", &shown, e))?;
            storage.create_new(&temp)
        }
        other => other,
    }
    .map_err(|e| Error::io("create", &shown, e))?;
    let header = SegmentHeader { id: span.id, base_lsn: span.base, size: span.size };
    file.write_at(&header.encode(), 0).map_err(|e| Error::io("write", &shown, e))?;
    shared.stats.segments_created.fetch_add(1, Ordering::Relaxed);
    let segment = Arc::new(Segment::new(span, name, file, format::SEGMENT_HEADER_LEN));
    shared.segments.insert(segment.clone());
    Ok((Active::new(segment), temp))
}

/// Gives segment `segment`, created as `temp`, its name: its header (and whatever was
/// written after it) synced, the rename, the directory synced.
fn name_segment(shared: &Shared, segment: &Segment, temp: &str) -> Result<()> {
    let storage = &*shared.storage;
    let shown = storage.describe(temp);
    segment.file.sync().map_err(|e| Error::io("sync", &shown, e))?;
    storage.rename(temp, &segment.name).map_err(|e| Error::io("rename", &shown, e))?;
    storage.sync_dir().map_err(|e| Error::io("sync directory", storage.describe(""), e))?;
    // The header's fdatasync and the directory's fsync.
    shared.stats.syncs.fetch_add(2, Ordering::Relaxed);
    Ok(())
}
