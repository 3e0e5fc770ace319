//! The on-disk format of log segments and records, specified once, beside its constants.
//!
//! All integers are little-endian. `docs/format.md` mirrors this comment.
//!
//! ## Segment file: `NNNNNNNNNNNNNNNN.seg` or `{stream}-NNNNNNNNNNNNNNNN.seg`
//!
//! 16 lowercase hex digits of the segment id. The default stream (`""`) has no prefix; a
//! named stream (lowercase ASCII letters) prefixes its name and a dash, so several logs
//! share one directory and each sees only its own files.
//!
//! ```text
//! offset size field
//!      0    8 magic          b"GROVELOG"
//!      8    4 version        FORMAT_VERSION (1)
//!     12    4 header crc     CRC-32 (IEEE) of bytes 0..12 and 16..40
//!     16    8 segment id     equals the number in the file name
//!     24    8 base lsn       LSN of the first byte after this header
//!     32    8 segment size   total file size this segment may grow to, header included
//!     40    . records, back to back, from base lsn up to base lsn + size - 40
//! ```
//!
//! A segment is created under a temporary name (`.seg.tmp`), its header written and synced,
//! then renamed into place and the directory synced: a `.seg` file always has a whole header.
//! Segments are contiguous: each one's base LSN is the previous one's base + size - 40.
//! Old segments may be deleted, leaving gaps before the segment recovery starts from.
//!
//! ## Record
//!
//! ```text
//! offset size field
//!      0    4 crc            CRC-32 (IEEE) of bytes 4..20 and the body
//!      4    4 body length    bytes of body on disk
//!      8    8 lsn            the record's own LSN (its position), so stale bytes never pass
//!     16    1 kind           0 invalid, 1 aborted, 2 segment end, 16..=255 the caller's kinds
//!     17    1 flags          bit 0: body is zstd-compressed; other bits must be 0
//!     18    2 reserved       0
//!     20    . body
//! ```
//!
//! A compressed body is the uncompressed length (u32) followed by one zstd frame.
//! An *aborted* record is a reservation its writer gave up: its body is zeroed and recovery
//! skips it. A *segment end*
//! record (empty body) closes a segment; the log keeps room for one at the end of every
//! segment, so a segment is complete exactly when it ends with one.

use crate::error::{Error, Result};

/// Magic number at the start of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"GROVELOG";
/// The segment format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes in a segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 40;
/// Bytes in a record header.
pub(crate) const RECORD_HEADER_LEN: usize = 20;
/// `RECORD_HEADER_LEN` as a `u64`, for LSN arithmetic.
pub(crate) const RECORD_HEADER_LEN_U64: u64 = 20;
/// `RECORD_HEADER_LEN` as a `u32`, for record lengths.
pub(crate) const RECORD_HEADER_LEN_U32: u32 = 20;
/// Room kept free at the end of every segment for its segment-end record.
pub(crate) const SEGMENT_END_LEN: u64 = RECORD_HEADER_LEN_U64;
/// Flag bit: the body is zstd-compressed.
pub(crate) const FLAG_COMPRESSED: u8 = 1;
/// The largest body any record may have in any configuration (the buffer header's offset
/// field is 27 bits). Recovery rejects larger lengths before allocating anything.
pub(crate) const MAX_BODY_LEN: usize = (1 << 27) - 1 - RECORD_HEADER_LEN;
/// The largest record, header included: `MAX_BODY_LEN + RECORD_HEADER_LEN`.
pub(crate) const MAX_RECORD_LEN: u64 = (1 << 27) - 1;
const _: () = assert!(MAX_BODY_LEN + RECORD_HEADER_LEN == (1 << 27) - 1);

/// File name suffix of segment files.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// File name suffix of segments being created.
pub(crate) const TEMP_SUFFIX: &str = ".seg.tmp";

/// What a record is. Kinds below 16 belong to the log itself; the layer above chooses the
/// meaning of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKind(u8);

impl RecordKind {
    /// A reservation abandoned by its writer. Never returned by recovery.
    pub(crate) const ABORTED: RecordKind = RecordKind(1);
    /// The end of a segment. Never returned by recovery.
    pub(crate) const SEGMENT_END: RecordKind = RecordKind(2);
    /// The smallest kind available to callers.
    pub const FIRST_USER: u8 = 16;

    /// A caller-defined kind, or `None` if `kind` is below [`RecordKind::FIRST_USER`].
    pub const fn new(kind: u8) -> Option<RecordKind> {
        if kind >= Self::FIRST_USER { Some(RecordKind(kind)) } else { None }
    }

    /// The kind as stored on disk.
    pub const fn get(self) -> u8 {
        self.0
    }

    fn is_known(self) -> bool {
        self == Self::ABORTED || self == Self::SEGMENT_END || self.0 >= Self::FIRST_USER
    }
}

/// Checks a stream name: empty (the default stream) or lowercase ASCII letters, so that no
/// stream's file names can be mistaken for another's.
pub(crate) fn validate_stream(stream: &str) -> Result<()> {
    if stream.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "log stream name {stream:?} must be lowercase ASCII letters (or empty for the \
             default stream)"
        )))
    }
}

/// The name of segment `id`'s file in `stream`.
pub(crate) fn segment_file_name(stream: &str, id: u64) -> String {
    file_name(stream, id, SEGMENT_SUFFIX)
}

/// The name of segment `id`'s file in `stream` while it is being created.
pub(crate) fn temp_file_name(stream: &str, id: u64) -> String {
    file_name(stream, id, TEMP_SUFFIX)
}

fn file_name(stream: &str, id: u64, suffix: &str) -> String {
    if stream.is_empty() {
        format!("{id:016x}{suffix}")
    } else {
        format!("{stream}-{id:016x}{suffix}")
    }
}

/// The segment id in a segment file name of `stream`, or `None` if `name` is not one.
/// Exactly the names [`segment_file_name`] makes parse.
pub(crate) fn parse_segment_name(stream: &str, name: &str) -> Option<u64> {
    parse_file_name(stream, name, SEGMENT_SUFFIX)
}

/// The segment id in a temporary segment file name of `stream`, or `None` if `name` is not
/// one.
pub(crate) fn parse_temp_name(stream: &str, name: &str) -> Option<u64> {
    parse_file_name(stream, name, TEMP_SUFFIX)
}

fn parse_file_name(stream: &str, name: &str, suffix: &str) -> Option<u64> {
    let rest =
        if stream.is_empty() { name } else { name.strip_prefix(stream)?.strip_prefix('-')? };
    let digits = rest.strip_suffix(suffix)?;
    if digits.len() != 16 || !digits.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A segment file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) id: u64,
    pub(crate) base_lsn: u64,
    pub(crate) size: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.id.to_le_bytes());
        out[24..32].copy_from_slice(&self.base_lsn.to_le_bytes());
        out[32..40].copy_from_slice(&self.size.to_le_bytes());
        let crc = header_crc(&out);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and validates a header read from `file`, in the order that gives the most
    /// useful error: foreign file, then newer version, then damage.
    pub(crate) fn decode(bytes: &[u8], file: &str) -> Result<SegmentHeader> {
        let Some(bytes) = bytes.get(..40) else {
            if bytes.len() >= 8 && bytes[0..8] != SEGMENT_MAGIC {
                return Err(Error::NotGrove { file: file.to_owned(), found: le_u64(bytes, 0) });
            }
            return Err(Error::corruption(
                file,
                0,
                format!("file is {} bytes, shorter than the 40-byte segment header", bytes.len()),
            ));
        };
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(Error::NotGrove { file: file.to_owned(), found: le_u64(bytes, 0) });
        }
        let version = le_u32(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: file.to_owned(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let stored = le_u32(bytes, 12);
        let computed = header_crc(bytes);
        if stored != computed {
            return Err(Error::corruption(
                file,
                12,
                format!("segment header checksum {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        let header = SegmentHeader {
            id: le_u64(bytes, 16),
            base_lsn: le_u64(bytes, 24),
            size: le_u64(bytes, 32),
        };
        if header.size < SEGMENT_HEADER_LEN + SEGMENT_END_LEN + RECORD_HEADER_LEN_U64 {
            return Err(Error::corruption(
                file,
                32,
                format!("segment size {} is too small to hold a record", header.size),
            ));
        }
        if header.base_lsn.checked_add(header.size).is_none() {
            return Err(Error::corruption(file, 24, "segment LSN range overflows"));
        }
        Ok(header)
    }
}

fn header_crc(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[0..12]);
    hasher.update(&bytes[16..40]);
    hasher.finalize()
}

/// A record header as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) body_len: u32,
    pub(crate) lsn: u64,
    pub(crate) kind: RecordKind,
    pub(crate) flags: u8,
}

impl RecordHeader {
    /// The header bytes with the crc field zero; see [`RecordHeader::seal`].
    pub(crate) fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut out = [0u8; RECORD_HEADER_LEN];
        out[4..8].copy_from_slice(&self.body_len.to_le_bytes());
        out[8..16].copy_from_slice(&self.lsn.to_le_bytes());
        out[16] = self.kind.0;
        out[17] = self.flags;
        out
    }

    /// Fills in the crc of an encoded header followed by `body`.
    pub(crate) fn seal(header: &mut [u8; RECORD_HEADER_LEN], body: &[u8]) {
        let crc = record_crc(header, body);
        header[0..4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Parses a header, checking everything that does not need the body: the LSN it claims,
    /// a known kind and flags, and a length that fits in `room` bytes after the header.
    /// Returns why the bytes are not a valid header otherwise.
    pub(crate) fn decode(
        bytes: &[u8; RECORD_HEADER_LEN],
        expected_lsn: u64,
        room: u64,
    ) -> Result<RecordHeader, String> {
        let lsn = le_u64(bytes, 8);
        if lsn != expected_lsn {
            return Err(format!("record claims lsn {lsn}, expected {expected_lsn}"));
        }
        let kind = RecordKind(bytes[16]);
        if !kind.is_known() {
            return Err(format!("unknown record kind {}", kind.0));
        }
        let flags = bytes[17];
        if flags & !FLAG_COMPRESSED != 0 || bytes[18..20] != [0, 0] {
            return Err(format!("unknown record flags {flags:#04x}"));
        }
        let body_len = le_u32(bytes, 4);
        if u64::from(body_len) > room {
            return Err(format!(
                "body length {body_len} exceeds the {room} bytes left in the segment"
            ));
        }
        if usize::try_from(body_len).map_or(true, |len| len > MAX_BODY_LEN) {
            return Err(format!("body length {body_len} exceeds the maximum {MAX_BODY_LEN}"));
        }
        Ok(RecordHeader { body_len, lsn, kind, flags })
    }

    /// Checks the stored crc against the header and body.
    pub(crate) fn verify(bytes: &[u8; RECORD_HEADER_LEN], body: &[u8]) -> Result<(), String> {
        let stored = le_u32(bytes, 0);
        let computed = record_crc(bytes, body);
        if stored == computed {
            Ok(())
        } else {
            Err(format!("record checksum {stored:#010x}, computed {computed:#010x}"))
        }
    }
}

fn record_crc(header: &[u8; RECORD_HEADER_LEN], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[4..]);
    hasher.update(body);
    hasher.finalize()
}

/// Fills in the crc of every record in `records`, which holds whole records back to back
/// (a log buffer as its writers left it, each crc field zero). Returns where the records
/// stop tiling the bytes, if they do not: a header cut short, or a body past the end.
///
/// Writers leave the crc to the flusher, which seals a buffer's records just before it
/// writes them: computing it is then off the writing thread, and done once per buffer
/// over bytes the write is about to read anyway.
pub(crate) fn seal_records(records: &mut [u8]) -> Result<(), String> {
    let mut at = 0;
    while at < records.len() {
        let Some(header) = records.get(at..at + RECORD_HEADER_LEN) else {
            return Err(format!("a record header at offset {at} runs past the buffer"));
        };
        let body_len = usize::try_from(le_u32(header, 4)).map_err(|e| e.to_string())?;
        let end = at + RECORD_HEADER_LEN + body_len;
        let Some(record) = records.get_mut(at..end) else {
            return Err(format!("the record at offset {at} runs past the buffer"));
        };
        let (header, body) = record.split_at_mut(RECORD_HEADER_LEN);
        let header: &mut [u8; RECORD_HEADER_LEN] = header.try_into().map_err(|_| "short header")?;
        RecordHeader::seal(header, body);
        at = end;
    }
    Ok(())
}

/// Compresses `body` if that makes it smaller: returns the stored bytes and the flags.
pub(crate) fn compress(body: &[u8], level: i32) -> Option<Vec<u8>> {
    let len = u32::try_from(body.len()).ok()?;
    let frame = zstd::bulk::compress(body, level).ok()?;
    if frame.len() + 4 >= body.len() {
        return None;
    }
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame);
    Some(out)
}

/// Decompresses a stored body, refusing lengths above `MAX_BODY_LEN` before allocating.
pub(crate) fn decompress(stored: &[u8]) -> Result<Vec<u8>, String> {
    let Some(len_bytes) = stored.get(..4) else {
        return Err("compressed body shorter than its length prefix".to_owned());
    };
    let len = usize::try_from(le_u32(len_bytes, 0)).map_err(|e| e.to_string())?;
    if len > MAX_BODY_LEN {
        return Err(format!("compressed body claims {len} bytes, above the maximum"));
    }
    let out = zstd::bulk::decompress(&stored[4..], len).map_err(|e| format!("zstd: {e}"))?;
    if out.len() != len {
        return Err(format!("compressed body gave {} bytes, header said {len}", out.len()));
    }
    Ok(out)
}

pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips_and_rejects_foreign_and_newer_files() {
        let header = SegmentHeader { id: 7, base_lsn: 1234, size: 4096 };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes, "f").unwrap(), header);

        let mut foreign = bytes;
        foreign[0] = b'X';
        assert!(matches!(SegmentHeader::decode(&foreign, "f"), Err(Error::NotGrove { .. })));

        let mut newer = bytes;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            SegmentHeader::decode(&newer, "f"),
            Err(Error::UnsupportedVersion { found: 2, supported: 1, .. })
        ));

        let mut damaged = bytes;
        damaged[20] ^= 1;
        assert!(matches!(SegmentHeader::decode(&damaged, "f"), Err(Error::Corruption { .. })));
        assert!(matches!(SegmentHeader::decode(&bytes[..30], "f"), Err(Error::Corruption { .. })));
    }

    #[test]
    fn record_header_checks_lsn_kind_length_and_crc() {
        let body = b"body bytes";
        let header = RecordHeader { body_len: 10, lsn: 99, kind: RecordKind(16), flags: 0 };
        let mut bytes = header.encode();
        RecordHeader::seal(&mut bytes, body);
        assert_eq!(RecordHeader::decode(&bytes, 99, 100).unwrap(), header);
        RecordHeader::verify(&bytes, body).unwrap();
        assert!(RecordHeader::verify(&bytes, b"body bytez").is_err());
        assert!(RecordHeader::decode(&bytes, 98, 100).is_err());
        assert!(RecordHeader::decode(&bytes, 99, 9).is_err());
        let mut zeroed = bytes;
        zeroed[16] = 0;
        assert!(RecordHeader::decode(&zeroed, 99, 100).is_err());
    }

    #[test]
    fn a_buffer_of_records_is_sealed_as_each_would_be_alone() -> Result<(), String> {
        let records = [(100u64, b"first".as_slice()), (125, b""), (145, b"the third body")];
        let mut buffer = Vec::new();
        for (lsn, body) in records {
            let len = u32::try_from(body.len()).map_err(|e| e.to_string())?;
            let header = RecordHeader { body_len: len, lsn, kind: RecordKind(16), flags: 0 };
            buffer.extend_from_slice(&header.encode());
            buffer.extend_from_slice(body);
        }
        seal_records(&mut buffer)?;
        let mut at = 0;
        for (lsn, body) in records {
            let mut header = [0u8; RECORD_HEADER_LEN];
            header.copy_from_slice(&buffer[at..at + RECORD_HEADER_LEN]);
            RecordHeader::decode(&header, lsn, 1 << 20)?;
            RecordHeader::verify(&header, body)?;
            at += RECORD_HEADER_LEN + body.len();
        }
        assert_eq!(at, buffer.len());
        // Records that do not tile the bytes are refused, whichever way they fall short.
        let whole = buffer.len();
        assert!(seal_records(&mut buffer[..whole - 1]).is_err());
        assert!(seal_records(&mut buffer[..RECORD_HEADER_LEN + 5 + 10]).is_err());
        Ok(())
    }

    #[test]
    fn compression_round_trips_and_skips_incompressible_bodies() {
        let body = vec![7u8; 4000];
        let stored = compress(&body, 3).unwrap();
        assert!(stored.len() < 100);
        assert_eq!(decompress(&stored).unwrap(), body);
        assert!(compress(&[1, 2, 3], 3).is_none());
        assert!(decompress(&[0xff, 0xff, 0xff, 0x7f, 0]).is_err());
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name("", 26), "000000000000001a.seg");
        assert_eq!(parse_segment_name("", "000000000000001a.seg"), Some(26));
        assert_eq!(parse_segment_name("", "1a.seg"), None);
        assert_eq!(parse_segment_name("", "000000000000001A.seg"), None);
        assert_eq!(parse_segment_name("", "000000000000001a.seg.tmp"), None);
        assert_eq!(temp_file_name("", 26), "000000000000001a.seg.tmp");
        assert_eq!(parse_temp_name("", "000000000000001a.seg.tmp"), Some(26));
        assert_eq!(segment_file_name("delta", 26), "delta-000000000000001a.seg");
        assert_eq!(temp_file_name("base", 1), "base-0000000000000001.seg.tmp");
        for id in [0, 1, 26, u64::MAX] {
            for stream in ["", "delta", "base", "a"] {
                assert_eq!(parse_segment_name(stream, &segment_file_name(stream, id)), Some(id));
                assert_eq!(parse_temp_name(stream, &temp_file_name(stream, id)), Some(id));
                assert_eq!(parse_segment_name(stream, &temp_file_name(stream, id)), None);
            }
        }
    }

    #[test]
    fn streams_never_see_each_others_files() {
        let streams = ["", "a", "ab", "b", "delta", "base", "based"];
        for mine in streams {
            for other in streams.iter().filter(|&&s| s != mine) {
                let name = segment_file_name(other, 7);
                assert_eq!(parse_segment_name(mine, &name), None, "{mine:?} sees {name}");
                let temp = temp_file_name(other, 7);
                assert_eq!(parse_temp_name(mine, &temp), None, "{mine:?} sees {temp}");
            }
        }
        assert!(validate_stream("").is_ok());
        assert!(validate_stream("delta").is_ok());
        for bad in ["Delta", "de-lta", "d1", "dé", "a.b", " "] {
            assert!(matches!(validate_stream(bad), Err(Error::Config(_))), "{bad:?}");
        }
    }
}
