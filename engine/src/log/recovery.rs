//! Recovery: scan the segments, hand every valid record to the caller, find the tail.
//!
//! Rules (see `docs/design.md`, "Recovery"):
//! - Only the files of the log's own stream are looked at (see `format::segment_file_name`).
//! - Every segment header is validated before anything is modified: foreign files, newer
//!   versions, gaps and damaged headers are typed errors and leave the directory untouched.
//!   Segments wholly before the one holding `from` may be missing in any pattern (the page
//!   cache removes dead segments); from that one onwards the log must be whole.
//! - Within a segment, records are read until its segment-end record. A record that fails
//!   validation (length, LSN, kind, checksum) or runs off the end of the file ends the scan.
//!   In the last segment that is the torn tail of a crash: the valid prefix is kept and the
//!   file is cut back to it so new records never sit next to stale bytes. In any earlier
//!   segment it is corruption: the flusher syncs a segment completely before it gives the
//!   next its name (until then the next is a temporary file, which recovery removes), so a
//!   later segment can only exist once the earlier ones were whole.
//! - A read-only log (`LogConfig::read_only`) modifies nothing: it stops at the torn tail
//!   without cutting it and leaves temporary files alone (it never writes after them).
//! - Reads are windowed and every length is checked against the real file size before any
//!   buffer is allocated, so no input allocates without bound.

use std::{io, sync::Arc};

use super::{
    Record,
    format::{
        self, FLAG_COMPRESSED, RECORD_HEADER_LEN, RECORD_HEADER_LEN_U64, RecordHeader, RecordKind,
        SegmentHeader,
    },
    geometry::{Geometry, SegmentSpan},
    segments::Segment,
};
use crate::{
    config::LogConfig,
    error::{Error, Result},
    ids::{Lsn, SegmentId},
    storage::{Storage, StorageFile},
};

/// Bytes read from a segment at a time.
const WINDOW: usize = 1 << 20;

/// What recovery found, and where new records go.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The LSN of the first new record.
    pub(crate) lsn: u64,
    /// The layout of the tail segment and those after it.
    pub(crate) geometry: Geometry,
    /// Every segment of the stream that exists, oldest first.
    pub(crate) segments: Vec<Arc<Segment>>,
    /// Whether new records go into the last of `segments` (else they start a new segment).
    pub(crate) append_to_last: bool,
}

/// One segment found in the directory.
struct Found {
    name: String,
    file: Arc<dyn StorageFile>,
    header: SegmentHeader,
}

impl Found {
    fn span(&self) -> SegmentSpan {
        SegmentSpan { id: self.header.id, base: self.header.base_lsn, size: self.header.size }
    }
}

/// How the scan of one segment ended.
enum Scan {
    /// It ends with a segment-end record.
    Complete,
    /// Valid records stop at `lsn`, for `reason`.
    Ended { lsn: u64, reason: String },
}

/// Scans the log of `stream` in `storage` from `from`, calls `on_record` for every record at
/// or after it in LSN order, cleans the torn tail (unless `config.read_only`), and returns
/// where new records go. Files of other streams are not looked at.
pub(crate) fn recover(
    storage: &dyn Storage,
    config: &LogConfig,
    stream: &str,
    from: Lsn,
    on_record: &mut dyn FnMut(Record<'_>) -> Result<()>,
) -> Result<Recovered> {
    let names = storage.list().map_err(|e| Error::io("list", storage.describe(""), e))?;
    let mut ids: Vec<u64> =
        names.iter().filter_map(|n| format::parse_segment_name(stream, n)).collect();
    ids.sort_unstable();
    let temps: Vec<&String> =
        names.iter().filter(|n| format::parse_temp_name(stream, n).is_some()).collect();

    // Validate every header before touching anything.
    let found =
        ids.iter().map(|&id| open_segment(storage, stream, id)).collect::<Result<Vec<_>>>()?;
    let start = check_sequence(storage, &found, from.get())?;

    let mut tail_lsn = 0;
    let mut geometry = Geometry {
        first_id: 0,
        first_base: 0,
        first_size: config.segment_size,
        size: config.segment_size,
    };
    let mut append_to_last = false;
    let last_index = found.len().checked_sub(1);
    // Segments wholly before `from` only needed their headers checked (open time is bounded
    // by how far back `from` is, not by the size of the log); `start` is the first one that
    // holds records at or after `from`, or the last one, always scanned to find the tail.
    for (index, segment) in found.iter().enumerate().skip(start) {
        let span = segment.span();
        let is_last = Some(index) == last_index;
        match scan_segment(storage, segment, from.get(), on_record)? {
            Scan::Complete if is_last => {
                tail_lsn = span.end();
                geometry = Geometry {
                    first_id: span.id.saturating_add(1),
                    first_base: span.end(),
                    first_size: config.segment_size,
                    size: config.segment_size,
                };
            }
            Scan::Complete => {}
            Scan::Ended { lsn, reason } if is_last => {
                tail_lsn = lsn;
                geometry = Geometry {
                    first_id: span.id,
                    first_base: span.base,
                    first_size: span.size,
                    size: config.segment_size,
                };
                append_to_last = true;
                let _ = reason; // a torn tail is the normal result of a crash
            }
            Scan::Ended { lsn, reason } => {
                return Err(Error::corruption(
                    storage.describe(&segment.name),
                    span.file_offset(lsn),
                    format!("{reason}, but later segments exist"),
                ));
            }
        }
    }
    if from.get() > tail_lsn {
        return Err(Error::corruption(
            storage.describe(found.last().map_or("", |s| s.name.as_str())),
            0,
            format!("the log ends at lsn {tail_lsn}, before the requested start {}", from.get()),
        ));
    }

    // Now make the tail clean: cut stale bytes after the last valid record, drop leftovers
    // of interrupted segment creation. A read-only log leaves both: it never writes, so no
    // new record can sit next to them.
    let read_only = config.read_only;
    let mut segments = Vec::with_capacity(found.len());
    for (index, segment) in found.into_iter().enumerate() {
        let shown = || storage.describe(&segment.name);
        let mut len = segment.file.len().map_err(|e| Error::io("stat", shown(), e))?;
        if !read_only && append_to_last && Some(index) == last_index {
            let keep = segment.span().file_offset(tail_lsn);
            if len > keep {
                segment.file.set_len(keep).map_err(|e| Error::io("truncate", shown(), e))?;
                segment.file.sync().map_err(|e| Error::io("sync", shown(), e))?;
                len = keep;
            }
        }
        let span = segment.span();
        segments.push(Arc::new(Segment::new(span, segment.name, segment.file, len)));
    }
    if !read_only && !temps.is_empty() {
        for temp in &temps {
            storage.remove(temp).map_err(|e| Error::io("remove", storage.describe(temp), e))?;
        }
        storage.sync_dir().map_err(|e| Error::io("sync directory", storage.describe(""), e))?;
    }
    Ok(Recovered { lsn: tail_lsn, geometry, segments, append_to_last })
}

/// Checks that the segments (sorted by id) fit together, and returns the index of the first
/// one to scan: the first that holds records at or after `from`, or the last one.
///
/// Segments wholly before that one may have been removed in any pattern (the page cache
/// deletes dead segments), so there only the order of LSN ranges is checked. From it
/// onwards the log must be whole: ids consecutive, each base LSN the previous end.
/// Consecutive ids must be contiguous everywhere: the writer never makes them otherwise.
fn check_sequence(storage: &dyn Storage, segments: &[Found], from: u64) -> Result<usize> {
    let Some(last_index) = segments.len().checked_sub(1) else {
        return Ok(0);
    };
    let start = segments.iter().position(|s| s.span().end() > from).unwrap_or(last_index);
    // Records from `from` on cannot be handed out if `from` lies before the first segment
    // or in a gap: the segment holding it was removed (the page cache's checkpoints never
    // ask for cleaned segments).
    let first = &segments[start];
    if from < first.header.base_lsn {
        return Err(match first.header.id.checked_sub(1) {
            Some(missing) => Error::MissingSegment {
                missing: SegmentId(missing),
                found: SegmentId(first.header.id),
            },
            None => Error::corruption(
                storage.describe(&first.name),
                24,
                "segment 0 must start at lsn 0",
            ),
        });
    }
    for (index, pair) in segments.windows(2).enumerate() {
        let (previous, next) = (&pair[0], &pair[1]);
        let previous_end = previous.span().end();
        let consecutive = previous.header.id.checked_add(1) == Some(next.header.id);
        if !consecutive && index + 1 > start {
            return Err(Error::MissingSegment {
                missing: SegmentId(previous.header.id.saturating_add(1)),
                found: SegmentId(next.header.id),
            });
        }
        let fits = if consecutive {
            next.header.base_lsn == previous_end
        } else {
            next.header.base_lsn >= previous_end
        };
        if !fits {
            return Err(Error::corruption(
                storage.describe(&next.name),
                24,
                format!(
                    "segment starts at lsn {}, but segment {} ends at {previous_end}",
                    next.header.base_lsn, previous.header.id
                ),
            ));
        }
    }
    Ok(start)
}

fn open_segment(storage: &dyn Storage, stream: &str, id: u64) -> Result<Found> {
    let name = format::segment_file_name(stream, id);
    let shown = storage.describe(&name);
    let file = storage.open(&name).map_err(|e| Error::io("open", &shown, e))?;
    let mut bytes = [0u8; 40];
    let n = file.read_at(&mut bytes, 0).map_err(|e| Error::io("read", &shown, e))?;
    let header = SegmentHeader::decode(&bytes[..n], &shown)?;
    if header.id != id {
        return Err(Error::corruption(
            shown,
            16,
            format!("header names segment {}, file name says {id}", header.id),
        ));
    }
    Ok(Found { name, file, header })
}

fn scan_segment(
    storage: &dyn Storage,
    found: &Found,
    from: u64,
    on_record: &mut dyn FnMut(Record<'_>) -> Result<()>,
) -> Result<Scan> {
    let shown = || storage.describe(&found.name);
    let span = found.span();
    let file_len = found.file.len().map_err(|e| Error::io("stat", shown(), e))?;
    let mut window = Window { file: &*found.file, file_len, start: 0, bytes: Vec::new() };
    let mut lsn = span.base;
    loop {
        let room = span.end() - lsn;
        if room < RECORD_HEADER_LEN_U64 {
            return Ok(Scan::Ended { lsn, reason: "no segment-end record".to_owned() });
        }
        let offset = span.file_offset(lsn);
        let header_bytes: [u8; RECORD_HEADER_LEN] = match window.get(offset, RECORD_HEADER_LEN) {
            Ok(Some(bytes)) => {
                bytes.try_into().map_err(|_| Error::corruption(shown(), offset, "short read"))?
            }
            Ok(None) => {
                return Ok(Scan::Ended { lsn, reason: "end of data".to_owned() });
            }
            Err(e) => return Err(Error::io("read", shown(), e)),
        };
        let header = match RecordHeader::decode(&header_bytes, lsn, room - RECORD_HEADER_LEN_U64) {
            Ok(header) => header,
            Err(reason) => return Ok(Scan::Ended { lsn, reason }),
        };
        let body_len = usize::try_from(header.body_len).map_err(|_| {
            Error::corruption(shown(), offset, "body length does not fit in memory")
        })?;
        let body_offset = offset + RECORD_HEADER_LEN_U64;
        let body = match window.get(body_offset, body_len) {
            Ok(Some(body)) => body,
            Ok(None) => {
                let reason = "record body runs past the end of the file".to_owned();
                return Ok(Scan::Ended { lsn, reason });
            }
            Err(e) => return Err(Error::io("read", shown(), e)),
        };
        if let Err(reason) = RecordHeader::verify(&header_bytes, body) {
            return Ok(Scan::Ended { lsn, reason });
        }
        let end = lsn + RECORD_HEADER_LEN_U64 + u64::from(header.body_len);
        if header.kind != RecordKind::SEGMENT_END && end > span.usable_end() {
            // The writer always keeps room for the segment-end record; a record that eats
            // into it was not written by this log.
            let reason = "record runs into the room kept for the segment end".to_owned();
            return Ok(Scan::Ended { lsn, reason });
        }
        // Bounded by the record header's 27-bit length field plus the header itself.
        let stored_len = u32::try_from(end - lsn).unwrap_or(u32::MAX);
        match header.kind {
            RecordKind::SEGMENT_END => return Ok(Scan::Complete),
            RecordKind::ABORTED => {}
            kind if lsn >= from => {
                if header.flags & FLAG_COMPRESSED != 0 {
                    // A checksummed record that does not decompress was written wrong or
                    // tampered with: not a torn tail.
                    let plain = format::decompress(body)
                        .map_err(|reason| Error::corruption(shown(), body_offset, reason))?;
                    on_record(Record { lsn: Lsn(lsn), len: stored_len, kind, body: &plain })?;
                } else {
                    on_record(Record { lsn: Lsn(lsn), len: stored_len, kind, body })?;
                }
            }
            _ => {}
        }
        lsn = end;
    }
}

/// A read-ahead window over one file.
struct Window<'a> {
    file: &'a dyn StorageFile,
    file_len: u64,
    /// File offset of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
}

impl Window<'_> {
    /// The `len` bytes at `offset`, or `None` if the file ends before them.
    fn get(&mut self, offset: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let wanted = u64::try_from(len).map_err(io::Error::other)?;
        let Some(end) = offset.checked_add(wanted).filter(|&end| end <= self.file_len) else {
            return Ok(None);
        };
        let have_end = self.start + u64::try_from(self.bytes.len()).map_err(io::Error::other)?;
        if offset < self.start || end > have_end {
            // Never more than the file holds: `end <= file_len` was checked above.
            let read_len = (self.file_len - offset).min(wanted.max(WINDOW as u64));
            self.bytes.resize(usize::try_from(read_len).map_err(io::Error::other)?, 0);
            let n = self.file.read_at(&mut self.bytes, offset)?;
            self.bytes.truncate(n);
            self.start = offset;
            if n < len {
                return Ok(None);
            }
        }
        let at = usize::try_from(offset - self.start).map_err(io::Error::other)?;
        Ok(Some(&self.bytes[at..at + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    #[test]
    fn an_empty_directory_recovers_to_lsn_zero() {
        let storage = MemStorage::new();
        let tail = recover(&storage, &LogConfig::tiny(), "", Lsn::ZERO, &mut |_| Ok(())).unwrap();
        assert_eq!(tail.lsn, 0);
        assert!(tail.segments.is_empty());
        assert!(!tail.append_to_last);
    }
}
