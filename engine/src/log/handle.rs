//! [`Log`]: the public handle to the storage log.

use std::{borrow::Cow, fmt};

use super::{
    flusher::Flusher,
    format::{
        self, FLAG_COMPRESSED, MAX_RECORD_LEN, RECORD_HEADER_LEN, RECORD_HEADER_LEN_U32,
        RECORD_HEADER_LEN_U64, RecordHeader, RecordKind,
    },
    header::BufferHeader,
    recovery,
    ring::{Claim, Ring},
    segments::{Lookup, SegmentInfo, SegmentTable},
};
use crate::{
    config::LogConfig,
    error::{Error, Result},
    ids::{Lsn, SegmentId},
    storage::Storage,
    sync::{self, AtomicU64, Mutex, Ordering, thread::JoinHandle},
};
// `std`'s `Arc`, not the loom-swappable one: the storage handles it holds are `std` types and
// the handle is never part of a loom model (the ring is, see `ring_loom.rs`).
use std::sync::Arc;

/// One record as recovery hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where the record starts.
    pub lsn: Lsn,
    /// Its whole length on disk (header and stored body), as [`Log::read`] takes it.
    pub len: u32,
    /// What the caller said it is.
    pub kind: RecordKind,
    /// Its body, decompressed.
    pub body: &'a [u8],
}

/// One record as [`Log::read`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Where the record starts.
    pub lsn: Lsn,
    /// What the caller said it is.
    pub kind: RecordKind,
    /// Its body, decompressed.
    pub body: Vec<u8>,
}

/// Figures about the log, for monitoring and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Every record below this LSN is durable.
    pub stable_lsn: Lsn,
    /// Roughly where the next record will go (reserved but not necessarily durable).
    pub reserved_lsn: Lsn,
    /// Bytes of records written to segment files by this handle.
    pub bytes_written: u64,
    /// `fdatasync` and directory `fsync` calls made by this handle (segment data, new
    /// segment headers, and the directory after each new segment).
    pub syncs: u64,
    /// Segment files created by this handle.
    pub segments_created: u64,
    /// Group commits: times the stable LSN advanced, each covering every buffer written
    /// since the previous one.
    pub batches: u64,
}

/// Counters the flusher owns (it alone increments them; relaxed, as they order nothing).
#[derive(Debug, Default)]
pub(crate) struct FlushStats {
    pub(crate) bytes_written: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    pub(crate) batches: AtomicU64,
}

/// What the handle and the flusher thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) ring: Ring,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: LogConfig,
    /// The stream name, which prefixes every segment file name ("" for none).
    pub(crate) stream: String,
    /// The segment files that exist; the flusher registers each one it creates.
    pub(crate) segments: SegmentTable,
    pub(crate) stats: FlushStats,
}

/// A segmented, checksummed append log with lock-free appends and group commit.
///
/// # Durability
/// [`Log::append`] returns once the record is in memory. [`Log::flush`] returns once every
/// record appended (or reserved) before it is on stable storage. The flusher thread also
/// makes records durable within `flush_every_ms` on its own. After a crash, recovery returns
/// a prefix of the appended records, in LSN order, that contains everything flushed.
///
/// # Failure
/// If a write or sync fails, the log stops: that call's error is reported, and every later
/// call returns [`Error::LogFailed`]. Reopen to recover to the last durable state.
///
/// # Streams
/// Several logs can share one [`Storage`] directory if each has its own stream name (see
/// [`Log::open_stream`]); each sees only its own segment files.
///
/// # Reading back
/// [`Log::append_located`] returns a record's LSN and its length on disk; once
/// [`Log::written_lsn`] has passed the LSN, [`Log::read`] fetches the record with one
/// positioned read. Old segments can be deleted with [`Log::remove_segment`].
///
/// # Thread safety
/// `Log` is `Send + Sync`; share it with an `Arc`. Appends from many threads proceed in
/// parallel without locks; reads run in parallel with appends and with each other.
/// Dropping the log flushes it and stops its flusher thread.
///
/// # Read-only
/// With [`LogConfig::read_only`] the log modifies no file: recovery leaves a torn tail and
/// temporary files as they are, no flusher thread runs, [`Log::read`] works up to the
/// recovered end, and [`Log::reserve`], [`Log::append`] and [`Log::remove_segment`] fail
/// with [`Error::ReadOnly`]; [`Log::flush`] returns the stable LSN at once.
pub struct Log {
    shared: Arc<Shared>,
    /// The flusher, shared by its thread and `flush` callers, and its thread; `None` when
    /// read-only.
    flusher: Option<(Arc<Mutex<Flusher>>, JoinHandle<()>)>,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// A flush begun by [`Log::start_flush`].
#[must_use = "a flush begun is not done until it is waited for"]
pub(crate) struct Flushing<'a> {
    log: &'a Log,
    /// The incarnation that must be durable (`None`: nothing was ever reserved, or the
    /// log is read-only).
    target: Option<u64>,
}

impl Flushing<'_> {
    /// Waits until the flush is done; returns the stable LSN, as [`Log::flush`] does.
    ///
    /// # Errors
    /// [`Error::LogFailed`] if a write or sync failed.
    pub(crate) fn wait(self) -> Result<Lsn> {
        let ring = &self.log.shared.ring;
        match self.target {
            Some(target) => Ok(Lsn(ring.wait_flushed(target)?)),
            None => Ok(Lsn(ring.stable())),
        }
    }
}

impl Log {
    /// Opens (or creates) the default stream's log in `storage`, discarding the recovered
    /// records.
    ///
    /// # Errors
    /// As [`Log::open_with`].
    pub fn open(storage: Arc<dyn Storage>, config: LogConfig) -> Result<Log> {
        Self::open_with(storage, config, Lsn::ZERO, |_| Ok(()))
    }

    /// Opens (or creates) the default stream's log in `storage`: [`Log::open_stream`] with
    /// stream `""`, whose segment files are named `{id:016x}.seg`.
    ///
    /// # Errors
    /// As [`Log::open_stream`].
    pub fn open_with(
        storage: Arc<dyn Storage>,
        config: LogConfig,
        from: Lsn,
        on_record: impl FnMut(Record<'_>) -> Result<()>,
    ) -> Result<Log> {
        Self::open_stream(storage, config, "", from, on_record)
    }

    /// Opens (or creates) the log of `stream` in `storage`, calling `on_record` for every
    /// record at or after `from`, in LSN order, before any new record can be written.
    ///
    /// A stream is a log of its own: its segment files are named `{stream}-{id:016x}.seg`
    /// (`{id:016x}.seg` for the default stream `""`), and it ignores every other file, so
    /// logs of different streams share one directory without seeing each other.
    ///
    /// A torn record at the end of the log (what a crash leaves) ends recovery quietly and
    /// is cut away (left in place with [`LogConfig::read_only`]); aborted reservations are
    /// skipped. Segments wholly before the one
    /// holding `from` may have been removed ([`Log::remove_segment`]); only their headers
    /// are checked, and only the existing ones.
    ///
    /// # Errors
    /// - [`Error::Config`] for inconsistent settings, or a stream name that is not
    ///   lowercase ASCII letters;
    /// - [`Error::NotGrove`], [`Error::UnsupportedVersion`] for foreign or newer files;
    /// - [`Error::Corruption`], [`Error::MissingSegment`] for damage that a crash cannot
    ///   explain, or when the segment holding `from` (or a later one) is missing; nothing
    ///   is modified in these cases;
    /// - [`Error::Io`] if the storage fails;
    /// - any error `on_record` returns, which stops recovery.
    ///
    /// # Examples
    /// ```
    /// use grove_engine::{Log, LogConfig, Lsn, MemStorage, RecordKind, Storage};
    /// use std::sync::Arc;
    ///
    /// let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    /// let kind = RecordKind::new(16).expect("a user kind");
    /// let deltas = Log::open_stream(storage.clone(), LogConfig::default(), "delta", Lsn::ZERO, |_| Ok(()))?;
    /// let bases = Log::open_stream(storage.clone(), LogConfig::default(), "base", Lsn::ZERO, |_| Ok(()))?;
    /// let (lsn, len) = deltas.append_located(kind, b"delta 1")?;
    /// bases.append(kind, b"base 1")?;
    /// deltas.flush()?;
    /// assert_eq!(deltas.read(lsn, len)?.body, b"delta 1");
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn open_stream(
        storage: Arc<dyn Storage>,
        config: LogConfig,
        stream: &str,
        from: Lsn,
        mut on_record: impl FnMut(Record<'_>) -> Result<()>,
    ) -> Result<Log> {
        config.validate()?;
        format::validate_stream(stream)?;
        let recovered = recovery::recover(&*storage, &config, stream, from, &mut on_record)?;
        let max_buffer = config
            .buffer_size
            .min(config.segment_size - format::SEGMENT_HEADER_LEN - format::SEGMENT_END_LEN)
            .min(BufferHeader::MAX_OFFSET);
        let ring = Ring::new(recovered.geometry, recovered.lsn, max_buffer, config.buffer_count);
        let tail = recovered.segments.last().filter(|_| recovered.append_to_last).cloned();
        let shared = Arc::new(Shared {
            ring,
            storage,
            config,
            stream: stream.to_owned(),
            segments: SegmentTable::new(recovered.segments),
            stats: FlushStats::default(),
        });
        if shared.config.read_only {
            // Nothing will ever be written: no flusher, so nothing can reach the files.
            return Ok(Log { shared, flusher: None });
        }
        let flusher = Arc::new(Mutex::new(Flusher::new(shared.clone(), tail)));
        let thread = {
            let flusher = flusher.clone();
            sync::spawn("grove-log-flusher", move || Flusher::run(&flusher))
                .map_err(|e| Error::io("spawn flusher thread", "", e))?
        };
        Ok(Log { shared, flusher: Some((flusher, thread)) })
    }

    /// The largest body [`Log::append`] accepts (after compression, if enabled).
    pub fn max_body_len(&self) -> usize {
        usize::try_from(self.shared.ring.max_len() - RECORD_HEADER_LEN_U64).unwrap_or(0)
    }

    /// Appends a record and returns its LSN. The record is durable once a later
    /// [`Log::flush`] returns.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] if the body exceeds [`Log::max_body_len`];
    /// [`Error::LogFailed`] after an I/O failure; [`Error::Closed`] during shutdown;
    /// [`Error::ReadOnly`] if the log was opened read-only.
    pub fn append(&self, kind: RecordKind, body: &[u8]) -> Result<Lsn> {
        Ok(self.reserve(kind, body)?.complete())
    }

    /// Appends a record and returns its LSN and its whole length on disk (record header
    /// plus stored, possibly compressed, body): the pair [`Log::read`] takes to fetch it.
    ///
    /// # Errors
    /// As [`Log::append`].
    pub fn append_located(&self, kind: RecordKind, body: &[u8]) -> Result<(Lsn, u32)> {
        let reservation = self.reserve(kind, body)?;
        let len = reservation.len();
        Ok((reservation.complete(), len))
    }

    /// Writes a record into the log's buffer but lets the caller decide whether it counts:
    /// [`Reservation::complete`] keeps it, [`Reservation::abort`] (or dropping the
    /// reservation) turns it into a record that recovery skips. The LSN is known at once.
    ///
    /// Do not call [`Log::flush`] on this thread while holding a reservation: the flush
    /// waits for the reservation to finish. Nor reserve again while holding one: an open
    /// reservation keeps its buffer from the flusher, and the next reservation may have to
    /// wait for that buffer's slot in the ring, which never frees. Complete (or abort) each
    /// before making the next, as group updates and the cleaner do.
    ///
    /// # Errors
    /// As [`Log::append`].
    pub fn reserve(&self, kind: RecordKind, body: &[u8]) -> Result<Reservation<'_>> {
        self.reserve_parts(kind, &[body])
    }

    /// As [`Log::reserve`], the body being `parts` one after another: a caller with a
    /// small prefix and a large payload writes both straight into the log's buffer, without
    /// first copying them into one.
    ///
    /// # Errors
    /// As [`Log::append`].
    pub fn reserve_parts(&self, kind: RecordKind, parts: &[&[u8]]) -> Result<Reservation<'_>> {
        if self.shared.config.read_only {
            return Err(Error::ReadOnly);
        }
        let len: usize = parts.iter().map(|part| part.len()).sum();
        let compressed = match self.shared.config.compression_level {
            Some(level) if len >= self.shared.config.compress_min_len => {
                format::compress(&parts.concat(), level)
            }
            _ => None,
        };
        let (stored, flags): (Cow<'_, [&[u8]]>, u8) = match &compressed {
            Some(compressed) => (Cow::Owned(vec![compressed.as_slice()]), FLAG_COMPRESSED),
            None => (Cow::Borrowed(parts), 0),
        };
        let stored_len: usize = stored.iter().map(|part| part.len()).sum();
        let max = self.max_body_len();
        if stored_len > max {
            return Err(Error::RecordTooLarge { len: stored_len, max });
        }
        let body_len = u32::try_from(stored_len)
            .map_err(|_| Error::RecordTooLarge { len: stored_len, max })?;
        let claim = self.shared.ring.reserve(RECORD_HEADER_LEN_U64 + u64::from(body_len))?;
        let header = RecordHeader { body_len, lsn: claim.lsn(), kind, flags };
        // The crc field stays zero: the flusher fills it in (`format::seal_records`).
        let header_bytes = header.encode();
        let mut at = RECORD_HEADER_LEN;
        for part in stored.iter() {
            claim.write(at, part);
            at += part.len();
        }
        claim.write(0, &header_bytes);
        Ok(Reservation { ring: &self.shared.ring, claim: Some(claim), header })
    }

    /// Waits until every record appended or reserved before this call is durable, and
    /// returns the stable LSN (every record below it is durable). Concurrent flushes share
    /// one write and one `fdatasync` (group commit). A read-only log has nothing to write
    /// and returns the stable LSN at once.
    ///
    /// # Errors
    /// [`Error::LogFailed`] if a write or sync failed; the records are then in an unknown
    /// state until the log is reopened.
    pub fn flush(&self) -> Result<Lsn> {
        // This thread does the flusher's work itself rather than waking its thread and
        // waiting to be woken in turn; so the thread is not woken for it either (it would
        // only race this one for the flusher). A flusher at work is waited for: it writes
        // what is ready, this flush's buffer too if it is by then, and what it leaves is
        // done here. Concurrent flushes queue on it, and each writes and syncs what all of
        // them sealed so far: group commit without a hand-off.
        let flusher = self.flusher.as_ref().map(|(flusher, _)| flusher);
        let flushing = self.begin_flush(flusher.is_none())?;
        if let (Some(flusher), Some(target)) = (flusher, flushing.target) {
            // An error fails the log, and the wait below reports it as every other waiter
            // sees it.
            drop(sync::lock(flusher).help(target));
        }
        flushing.wait()
    }

    /// [`Log::flush`] begun on the flusher's thread: it is asked to make every record
    /// appended or reserved before this call durable, and [`Flushing::wait`] waits for that.
    /// The caller works meanwhile: a maintenance pass cleans while the delta stream syncs,
    /// and a checkpoint flushes the delta stream and scans while the base stream syncs.
    ///
    /// # Errors
    /// [`Error::LogFailed`] if a write or sync failed.
    pub(crate) fn start_flush(&self) -> Result<Flushing<'_>> {
        self.begin_flush(true)
    }

    /// Seals what is reserved so far and asks for it to be made durable, waking the
    /// flusher thread if `wake` (else the caller does its work). A read-only log has
    /// nothing to write: its flush waits for nothing.
    fn begin_flush(&self, wake: bool) -> Result<Flushing<'_>> {
        let ring = &self.shared.ring;
        let target = if self.shared.config.read_only { None } else { ring.seal_for_flush(wake)? };
        if let Some(target) = target {
            ring.request(target, wake);
        }
        Ok(Flushing { log: self, target })
    }

    /// Every record below this LSN is durable.
    pub fn stable_lsn(&self) -> Lsn {
        Lsn(self.shared.ring.stable())
    }

    /// Where the next record will go: every record reserved so far (written or not, kept
    /// or aborted) ends at or below this LSN. Only grows.
    pub fn reserved_lsn(&self) -> Lsn {
        Lsn(self.shared.ring.reserved_end())
    }

    /// Every record below this LSN has been written to its segment file (not necessarily
    /// synced), so [`Log::read`] finds it. Only grows; at least [`Log::stable_lsn`].
    pub fn written_lsn(&self) -> Lsn {
        Lsn(self.shared.ring.written_lsn())
    }

    /// Reads the record at `lsn` whose whole length on disk is `len` (as
    /// [`Log::append_located`] or [`Reservation::len`] reported it), with one positioned
    /// read, and returns it with its body decompressed.
    ///
    /// The bytes read must be exactly that record: its checksum, its LSN, its length and a
    /// user kind are checked. Safe to call from many threads, while others append.
    ///
    /// # Errors
    /// - [`Error::NoRecord`] if the record is not written yet (it does not end at or below
    ///   [`Log::written_lsn`]), `len` cannot be a record's length, or the record would
    ///   cross the end of its segment;
    /// - [`Error::MissingSegment`] if the segment that held `lsn` was removed;
    /// - [`Error::Corruption`] if the bytes there are not that record (damage, or a wrong
    ///   `lsn` or `len`);
    /// - [`Error::Io`] if the storage fails.
    pub fn read(&self, lsn: Lsn, len: u32) -> Result<OwnedRecord> {
        let no_record = |reason: String| Error::NoRecord { lsn, reason };
        let written = self.shared.ring.written_lsn();
        if lsn.get() >= written {
            return Err(no_record(format!("the log is written up to lsn {written} only")));
        }
        let whole = u64::from(len);
        if !(RECORD_HEADER_LEN_U64..=MAX_RECORD_LEN).contains(&whole) {
            return Err(no_record(format!(
                "{len} bytes is not a record length (at least {RECORD_HEADER_LEN}, at most \
                 {MAX_RECORD_LEN})"
            )));
        }
        let end = lsn.get().saturating_add(whole);
        if end > written {
            return Err(no_record(format!(
                "a record of {len} bytes would end at lsn {end}, past the written end {written}"
            )));
        }
        let segment = match self.shared.segments.lookup(lsn.get()) {
            Lookup::Found(segment) => segment,
            Lookup::Removed { next: Some(next) } => {
                return Err(Error::MissingSegment {
                    missing: SegmentId(next.0.saturating_sub(1)),
                    found: next,
                });
            }
            Lookup::Removed { next: None } => {
                return Err(no_record("no segment holds it".to_owned()));
            }
        };
        let span = segment.span;
        if end > span.end() {
            return Err(no_record(format!(
                "a record of {len} bytes would cross the end of segment {} at lsn {}",
                span.id,
                span.end()
            )));
        }
        let shown = || self.shared.storage.describe(&segment.name);
        let offset = span.file_offset(lsn.get());
        // Bounded: the record lies below `written`, so these bytes exist.
        let mut bytes = vec![0u8; usize::try_from(len).map_err(|_| no_record("too long".into()))?];
        let n =
            segment.file.read_at(&mut bytes, offset).map_err(|e| Error::io("read", shown(), e))?;
        if n < bytes.len() {
            return Err(Error::corruption(
                shown(),
                offset,
                format!("file ends {n} bytes into the {len}-byte record at lsn {}", lsn.get()),
            ));
        }
        let (header_bytes, body) = bytes.split_at(RECORD_HEADER_LEN);
        let header_bytes: &[u8; RECORD_HEADER_LEN] = header_bytes
            .try_into()
            .map_err(|_| Error::corruption(shown(), offset, "short read"))?;
        let body_len = whole - RECORD_HEADER_LEN_U64;
        let header = RecordHeader::decode(header_bytes, lsn.get(), body_len)
            .map_err(|reason| Error::corruption(shown(), offset, reason))?;
        if u64::from(header.body_len) != body_len {
            return Err(Error::corruption(
                shown(),
                offset + 4,
                format!("record body is {} bytes, expected {body_len}", header.body_len),
            ));
        }
        RecordHeader::verify(header_bytes, body)
            .map_err(|reason| Error::corruption(shown(), offset, reason))?;
        if header.kind.get() < RecordKind::FIRST_USER {
            return Err(Error::corruption(
                shown(),
                offset + 16,
                format!("record kind {} is not a user record", header.kind.get()),
            ));
        }
        let body = if header.flags & FLAG_COMPRESSED != 0 {
            format::decompress(body).map_err(|reason| {
                Error::corruption(shown(), offset + RECORD_HEADER_LEN_U64, reason)
            })?
        } else {
            bytes.drain(..RECORD_HEADER_LEN);
            bytes
        };
        Ok(OwnedRecord { lsn, kind: header.kind, body })
    }

    /// The segments of this log's stream that exist, oldest first, the tail included.
    /// Segments the flusher creates appear as soon as they exist.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.segments.infos()
    }

    /// The segment that holds (or will hold) `lsn`; `None` if `lsn` lies in a removed
    /// segment or before the log's first segment. Cheap: arithmetic from the tail segment
    /// on, a binary search in the table of older segments before it.
    pub fn segment_of(&self, lsn: Lsn) -> Option<SegmentId> {
        let geometry = self.shared.ring.geometry();
        if lsn.get() >= geometry.first_base {
            return Some(SegmentId(geometry.span(lsn.get()).id));
        }
        self.shared.segments.id_of(lsn.get()).map(SegmentId)
    }

    /// Deletes segment `id`'s file for good. Only sealed segments can go: the segment must
    /// end at or below [`Log::written_lsn`] and must not be the newest existing one. Its
    /// records can no longer be read, and reopening with `from` inside it fails with
    /// [`Error::MissingSegment`]. Reads already under way on it finish.
    ///
    /// # Errors
    /// - [`Error::SegmentNotRemovable`] if `id` does not exist (this includes segments
    ///   already removed) or may not go yet;
    /// - [`Error::ReadOnly`] if the log was opened read-only;
    /// - [`Error::Io`] if removing the file or syncing the directory fails.
    pub fn remove_segment(&self, id: SegmentId) -> Result<()> {
        if self.shared.config.read_only {
            return Err(Error::ReadOnly);
        }
        let segments = &self.shared.segments;
        let segment = segments.take_removable(id, self.shared.ring.written_lsn())?;
        let storage = &*self.shared.storage;
        let shown = storage.describe(&segment.name);
        match storage.remove(&segment.name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                // The file is still there: keep it readable.
                segments.insert(segment);
                return Err(Error::io("remove", shown, e));
            }
        }
        // The flusher thread closes the file, not this one: closing the last handle on a
        // removed file frees its cached pages, about 2 ms for a written 8 MiB segment, and
        // the write that runs maintenance waited for that, a dozen segments or more a pass
        // (25 to 35 ms of every pass on the comparison's load). The log's drop closes what
        // is left.
        segments.retire(segment);
        storage.sync_dir().map_err(|e| Error::io("sync directory", storage.describe(""), e))
    }

    /// Current figures.
    pub fn stats(&self) -> LogStats {
        let stats = &self.shared.stats;
        LogStats {
            stable_lsn: self.stable_lsn(),
            reserved_lsn: self.reserved_lsn(),
            bytes_written: stats.bytes_written.load(Ordering::Relaxed),
            syncs: stats.syncs.load(Ordering::Relaxed),
            segments_created: stats.segments_created.load(Ordering::Relaxed),
            batches: stats.batches.load(Ordering::Relaxed),
        }
    }

    /// Flushes, stops the flusher thread and closes the log.
    ///
    /// # Errors
    /// The error of the final flush, if it failed.
    pub fn close(mut self) -> Result<Lsn> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<Lsn> {
        if self.flusher.is_none() {
            return Ok(self.stable_lsn());
        }
        let flushed = self.flush();
        self.shared.ring.close();
        if let Some((_, thread)) = self.flusher.take() {
            // A panicking flusher already recorded nothing useful; report the flush result.
            let _ = thread.join();
        }
        flushed
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Errors were already reported to whoever flushed; dropping cannot report them.
        let _ = self.shutdown();
    }
}

/// A record written into the log's buffer whose fate is not decided yet.
///
/// [`Reservation::complete`] keeps it; [`Reservation::abort`] or dropping it turns it into
/// an aborted record that recovery never returns. Either way the log cannot write the
/// buffer holding it to disk until then, so finish reservations promptly.
#[derive(Debug)]
pub struct Reservation<'a> {
    ring: &'a Ring,
    claim: Option<Claim<'a>>,
    header: RecordHeader,
}

impl Reservation<'_> {
    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        Lsn(self.header.lsn)
    }

    /// The record's whole length on disk: its header plus its stored (possibly compressed)
    /// body. With [`Reservation::lsn`], what [`Log::read`] needs to fetch it.
    #[expect(
        clippy::len_without_is_empty,
        reason = "a record is never empty: it always has its 20-byte header"
    )]
    pub fn len(&self) -> u32 {
        // Cannot saturate: bodies are below `MAX_BODY_LEN`.
        RECORD_HEADER_LEN_U32.saturating_add(self.header.body_len)
    }

    /// Keeps the record; returns its LSN.
    pub fn complete(mut self) -> Lsn {
        if let Some(claim) = self.claim.take() {
            self.ring.release(claim);
        }
        self.lsn()
    }

    /// Abandons the record: recovery will skip it.
    pub fn abort(mut self) {
        self.abort_in_place();
    }

    fn abort_in_place(&mut self) {
        if let Some(claim) = self.claim.take() {
            // Zero the body so abandoned data never reaches the disk, and mark the record
            // aborted; its length stays, so the bytes after it are untouched.
            let zeros = vec![0u8; usize::try_from(self.header.body_len).unwrap_or(0)];
            let bytes = RecordHeader { kind: RecordKind::ABORTED, ..self.header }.encode();
            claim.write(RECORD_HEADER_LEN, &zeros);
            claim.write(0, &bytes);
            self.ring.release(claim);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.abort_in_place();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemStorage, StorageFile};
    use crate::sync::AtomicBool;

    fn kind(k: u8) -> RecordKind {
        RecordKind::new(k).unwrap()
    }

    fn recover_all(storage: &Arc<dyn Storage>, config: &LogConfig) -> Vec<(Lsn, u8, Vec<u8>)> {
        let mut seen = Vec::new();
        let log = Log::open_with(storage.clone(), config.clone(), Lsn::ZERO, |r| {
            seen.push((r.lsn, r.kind.get(), r.body.to_vec()));
            Ok(())
        })
        .unwrap();
        drop(log);
        seen
    }

    #[test]
    fn records_survive_reopen_across_many_segments() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let config = LogConfig::tiny();
        let mut expected = Vec::new();
        for round in 0..3 {
            let log = Log::open(storage.clone(), config.clone()).unwrap();
            for i in 0..200u32 {
                let body = vec![u8::try_from(i % 251).unwrap(); usize::try_from(i % 97).unwrap()];
                let lsn = log.append(kind(16 + round), &body).unwrap();
                expected.push((lsn, 16 + round, body));
                if i % 37 == 0 {
                    assert!(log.flush().unwrap() > lsn);
                }
            }
            log.close().unwrap();
        }
        let lsns: Vec<Lsn> = expected.iter().map(|e| e.0).collect();
        assert!(lsns.windows(2).all(|w| w[0] < w[1]), "LSNs grow");
        assert_eq!(recover_all(&storage, &config), expected);
        let segments = storage.list().unwrap().iter().filter(|n| n.ends_with(".seg")).count();
        assert!(segments > 10, "tiny segments roll over often: {segments}");
    }

    #[test]
    fn aborted_and_dropped_reservations_are_never_recovered() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let log = Log::open(storage.clone(), LogConfig::tiny()).unwrap();
        let kept = log.append(kind(20), b"kept").unwrap();
        log.reserve(kind(20), b"aborted").unwrap().abort();
        drop(log.reserve(kind(20), b"dropped").unwrap());
        let reservation = log.reserve(kind(21), b"completed later").unwrap();
        let later = reservation.lsn();
        assert_eq!(reservation.complete(), later);
        log.close().unwrap();
        let seen = recover_all(&storage, &LogConfig::tiny());
        assert_eq!(
            seen,
            vec![(kept, 20, b"kept".to_vec()), (later, 21, b"completed later".to_vec())]
        );
    }

    #[test]
    fn compressed_bodies_come_back_whole() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let config = LogConfig { compression_level: Some(3), ..LogConfig::tiny() };
        let log = Log::open(storage.clone(), config.clone()).unwrap();
        // Larger than the tiny buffer uncompressed, small once compressed.
        let body = vec![b'a'; 4000];
        log.append(kind(16), &body).unwrap();
        log.close().unwrap();
        assert_eq!(recover_all(&storage, &config)[0].2, body);
    }

    #[test]
    fn oversized_records_are_refused_with_the_limit() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let log = Log::open(storage, LogConfig::tiny()).unwrap();
        let max = log.max_body_len();
        log.append(kind(16), &vec![1; max]).unwrap();
        let error = log.append(kind(16), &vec![1; max + 1]).unwrap_err();
        assert!(
            matches!(error, Error::RecordTooLarge { len, max: m } if len == max + 1 && m == max)
        );
    }

    #[test]
    fn concurrent_appends_get_distinct_lsns_and_all_come_back() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let config = LogConfig::tiny();
        let log = Log::open(storage.clone(), config.clone()).unwrap();
        let mut all: Vec<(Lsn, u8, Vec<u8>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u8)
                .map(|t| {
                    let log = &log;
                    scope.spawn(move || {
                        (0..500u32)
                            .map(|i| {
                                let body = format!("{t}:{i}").into_bytes();
                                if i % 50 == 0 {
                                    log.flush().unwrap();
                                }
                                (log.append(kind(16 + t), &body).unwrap(), 16 + t, body)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        log.close().unwrap();
        all.sort();
        assert_eq!(recover_all(&storage, &config), all);
    }

    #[test]
    fn a_read_only_log_reads_everything_refuses_writes_and_touches_no_file() {
        use crate::storage::{FaultOp, SimStorage};
        let sim = SimStorage::new(1);
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        let config = LogConfig { flush_every_ms: None, ..LogConfig::tiny() };
        let log = Log::open(storage.clone(), config.clone()).unwrap();
        let located: Vec<_> =
            (0..100u8).map(|i| log.append_located(kind(16), &[i; 40]).unwrap()).collect();
        log.close().unwrap();
        // A torn record after the tail, and a leftover temporary file.
        let mut names = storage.list().unwrap();
        names.sort();
        let tail = names.last().unwrap().clone();
        let mut torn = sim.current_bytes(&tail).unwrap();
        torn.extend_from_slice(&[0x5a; 30]);
        sim.set_bytes(&tail, torn.clone());
        sim.set_bytes(&format::temp_file_name("", 99), vec![1; 10]);
        let ops = [FaultOp::Write, FaultOp::Sync, FaultOp::SetLen, FaultOp::Remove];
        let calls: Vec<u64> = ops.iter().map(|&op| sim.op_count(op)).collect();

        let read_only = LogConfig { read_only: true, ..config };
        let mut seen = 0;
        let log = Log::open_with(storage, read_only, Lsn::ZERO, |_| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 100);
        let (lsn, len) = located[57];
        assert_eq!(log.read(lsn, len).unwrap().body, [57; 40]);
        assert!(matches!(log.append(kind(16), b"x"), Err(Error::ReadOnly)));
        assert!(matches!(log.remove_segment(SegmentId(0)), Err(Error::ReadOnly)));
        assert_eq!(log.flush().unwrap(), log.stable_lsn());
        log.close().unwrap();
        assert_eq!(ops.iter().map(|&op| sim.op_count(op)).collect::<Vec<_>>(), calls);
        assert_eq!(sim.current_bytes(&tail), Some(torn));
        assert!(sim.current_bytes(&format::temp_file_name("", 99)).is_some());
    }

    /// What a test storage does beside the memory storage it wraps ([`Hooked`]).
    trait Hooks: fmt::Debug + Send + Sync + 'static {
        fn before_sync(&self) {}
        fn before_write(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn closed(&self) {}
    }

    /// A memory storage whose files call `hooks` on the way.
    #[derive(Debug)]
    struct Hooked<H> {
        inner: MemStorage,
        hooks: Arc<H>,
    }

    #[derive(Debug)]
    struct HookedFile<H: Hooks> {
        inner: Arc<dyn StorageFile>,
        hooks: Arc<H>,
    }

    impl<H: Hooks> Hooked<H> {
        fn new(hooks: H) -> Hooked<H> {
            Hooked { inner: MemStorage::new(), hooks: Arc::new(hooks) }
        }

        fn wrap(&self, inner: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
            Arc::new(HookedFile { inner, hooks: self.hooks.clone() })
        }
    }

    impl<H: Hooks> Drop for HookedFile<H> {
        fn drop(&mut self) {
            self.hooks.closed();
        }
    }

    impl<H: Hooks> Storage for Hooked<H> {
        fn open(&self, name: &str) -> std::io::Result<Arc<dyn StorageFile>> {
            Ok(self.wrap(self.inner.open(name)?))
        }
        fn create_new(&self, name: &str) -> std::io::Result<Arc<dyn StorageFile>> {
            Ok(self.wrap(self.inner.create_new(name)?))
        }
        fn list(&self) -> std::io::Result<Vec<String>> {
            self.inner.list()
        }
        fn remove(&self, name: &str) -> std::io::Result<()> {
            self.inner.remove(name)
        }
        fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
            self.inner.rename(from, to)
        }
        fn sync_dir(&self) -> std::io::Result<()> {
            self.inner.sync_dir()
        }
    }

    impl<H: Hooks> StorageFile for HookedFile<H> {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.inner.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            self.hooks.before_write()?;
            self.inner.write_at(buf, offset)
        }
        fn sync(&self) -> std::io::Result<()> {
            self.hooks.before_sync();
            self.inner.sync()
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.inner.set_len(len)
        }
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
    }

    /// Counts the syncs of files made by the thread named `caller` and by others, and names
    /// the thread that closed each file.
    #[derive(Debug, Default)]
    struct SyncWitness {
        caller: String,
        by_caller: AtomicU64,
        by_others: AtomicU64,
        closed_by: std::sync::Mutex<Vec<Option<String>>>,
    }

    impl Hooks for SyncWitness {
        fn before_sync(&self) {
            let by_caller = std::thread::current().name() == Some(self.caller.as_str());
            let counter = if by_caller { &self.by_caller } else { &self.by_others };
            counter.fetch_add(1, Ordering::Relaxed);
        }

        fn closed(&self) {
            let thread = std::thread::current().name().map(str::to_owned);
            if let Ok(mut closed_by) = self.closed_by.lock() {
                closed_by.push(thread);
            }
        }
    }

    #[test]
    fn a_flush_with_the_flusher_idle_writes_and_syncs_in_the_calling_thread() {
        let caller = std::thread::current().name().unwrap_or_default().to_owned();
        let witness = Hooked::new(SyncWitness { caller: caller.clone(), ..SyncWitness::default() });
        let hooks = witness.hooks.clone();
        let (by_caller, by_others) = (&hooks.by_caller, &hooks.by_others);
        let storage: Arc<dyn Storage> = Arc::new(witness);
        // No timer: the flusher thread only wakes when someone asks it to.
        let config = LogConfig { flush_every_ms: None, ..LogConfig::default() };
        let log = Log::open(storage.clone(), config.clone()).unwrap();
        // Creating the first segment syncs it. The flusher thread's first look around may
        // come late and take a flush's work: let it start and go to sleep first.
        log.append(kind(16), b"first").unwrap();
        log.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let before = (by_caller.load(Ordering::Relaxed), by_others.load(Ordering::Relaxed));
        for i in 0..20u8 {
            let lsn = log.append(kind(16), &[i; 100]).unwrap();
            assert!(log.flush().unwrap() > lsn);
        }
        let mine = by_caller.load(Ordering::Relaxed) - before.0;
        let theirs = by_others.load(Ordering::Relaxed) - before.1;
        // Nothing wakes the sleeping flusher thread but its 100 ms timer, which a slow
        // machine may meet during the loop; the thread may then take a few flushes' work.
        assert_eq!(mine + theirs, 20, "one sync per flush");
        assert!(mine >= 15, "{mine} of 20 flushes synced in the calling thread ({caller:?})");
        drop(log);
        assert_eq!(recover_all(&storage, &config).len(), 21);
    }

    #[test]
    fn the_flusher_thread_closes_removed_segments() -> Result<()> {
        let witness = Hooked::new(SyncWitness::default());
        let hooks = witness.hooks.clone();
        let closed_by = &hooks.closed_by;
        let storage: Arc<dyn Storage> = Arc::new(witness);
        let log = Log::open(storage, LogConfig::tiny())?;
        for i in 0..40u8 {
            log.append(kind(16), &[i; 100])?;
        }
        log.flush()?;
        let segments = log.segments();
        assert!(segments.len() > 2, "{} segments", segments.len());
        let oldest = segments.first().map_or(SegmentId(0), |s| s.id);
        log.remove_segment(oldest)?;
        let closers = || closed_by.lock().map(|c| c.clone()).unwrap_or_default();
        // The flusher closes it on its next round: at once if it is working, within its
        // timer (5 ms in the tiny preset) if it is idle. Waited for, bounded.
        for _ in 0..2000 {
            if !closers().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(closers(), [Some("grove-log-flusher".to_owned())]);
        assert!(log.segments().iter().all(|s| s.id != oldest));
        drop(log);
        Ok(())
    }

    /// Syncs that take `SLOW_SYNC` once `slow` is set, and writes that fail once `failing`
    /// is set.
    #[derive(Debug, Default)]
    struct SlowSyncs {
        slow: AtomicBool,
        failing: AtomicBool,
    }

    const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(100);

    impl Hooks for SlowSyncs {
        fn before_sync(&self) {
            if self.slow.load(Ordering::Relaxed) {
                std::thread::sleep(SLOW_SYNC);
            }
        }

        fn before_write(&self) -> std::io::Result<()> {
            if self.failing.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("injected"));
            }
            Ok(())
        }
    }

    #[test]
    fn a_log_that_failed_during_a_closing_is_dropped_only_once_the_closing_is_done()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let storage = Arc::new(Hooked::new(SlowSyncs::default()));
        let hooks = storage.hooks.clone();
        let (slow, failing) = (&hooks.slow, &hooks.failing);
        let shared: Arc<dyn Storage> = storage.clone();
        let config = LogConfig { flush_every_ms: None, ..LogConfig::tiny() };
        let log = Log::open(shared, config)?;
        slow.store(true, Ordering::Relaxed);
        // Append until the first segment closes: its closing then syncs for a while, and
        // the next segment waits under its temporary name. Bounded.
        for i in 0..10_000u32 {
            if log.segments().len() > 1 {
                break;
            }
            log.append(kind(16), &i.to_le_bytes().repeat(25))?;
        }
        assert!(log.segments().len() > 1, "no segment closed");
        failing.store(true, Ordering::Relaxed);
        let _ = log.append(kind(16), b"after");
        assert!(log.flush().is_err(), "the injected write failure was not reported");
        drop(log);
        // The closing finished before the drop returned: the next segment has its name.
        let names = storage.inner.list()?;
        let temps: Vec<&String> =
            names.iter().filter(|n| format::parse_temp_name("", n).is_some()).collect();
        assert!(temps.is_empty(), "still temporary after the drop: {temps:?}");
        Ok(())
    }

    #[test]
    fn flush_with_nothing_written_returns_at_once() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let log = Log::open(storage, LogConfig::tiny()).unwrap();
        assert_eq!(log.flush().unwrap(), Lsn::ZERO);
    }

    #[test]
    fn the_flusher_makes_writes_durable_without_an_explicit_flush() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let log = Log::open(storage, LogConfig::tiny()).unwrap();
        let lsn = log.append(kind(16), b"x").unwrap();
        // flush_every_ms is 5 in the tiny preset; wait (bounded) for the timer to act.
        for _ in 0..2000 {
            if log.stable_lsn() > lsn {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("stable lsn {} never passed {lsn}", log.stable_lsn());
    }
}
