//! Checkpoint files: the page cache's table of where every page lives, written now and then
//! so that recovery replays only the delta stream after it.
//!
//! A checkpoint is written whole to a temporary file, synced, renamed into place and the
//! directory synced, so a `.ckpt` file is always complete unless the disk damaged it later.
//! The two newest checkpoints are kept: if the newest is damaged, [`load`] falls back to the
//! previous one. The page cache must therefore keep its delta stream back to the previous
//! checkpoint's `delta_from`, and every record the previous checkpoint points to, until a
//! newer checkpoint replaces it.
//!
//! What this is not: it knows nothing of the log's records or of how the page cache uses the
//! table; it stores and validates a [`Checkpoint`] and nothing more.
//!
//! # Format (version 2)
//!
//! All integers are little-endian. `docs/format.md` mirrors this comment.
//!
//! ## File: `checkpoint-NNNNNNNNNNNNNNNN.ckpt` (16 hex digits of the sequence number)
//!
//! ```text
//! offset size field
//!      0    8 magic          b"GROVECKP"
//!      8    4 version        CHECKPOINT_VERSION (2)
//!     12    4 prefix crc     CRC-32 (IEEE) of bytes 0..12
//!     16    4 header crc     CRC-32 (IEEE) of bytes 0..16 and 20..64
//!     20    4 body crc       CRC-32 (IEEE) of the body
//!     24    8 seq            equals the number in the file name; at least 1
//!     32    8 delta from     LSN recovery replays the delta stream from
//!     40    8 base from      LSN the base stream is durable up to
//!     48    8 page count     slots in the body: the number of page ids ever handed out
//!     56    8 body length    bytes of body; the file is exactly 64 + this long
//!     64    . body
//! ```
//!
//! Every later version keeps bytes 0..16 as they are, so that the prefix crc tells a file of
//! a newer version (intact prefix, other version) from a damaged one (prefix crc mismatch).
//!
//! ## Body
//!
//! The page table's entries, one per page id (see `pages.rs` for their encoding; a live page
//! with no fragments takes about 12 bytes), then the live bytes of every segment they
//! refer to:
//!
//! ```text
//! live  := count entry*                      count: varint
//! entry := stream segment bytes              stream: 1 byte; segment id, bytes: varints
//! ```
//! The body is not compressed: zstd (levels 1 to 9)
//! saved only 19% to 24% on realistic tables, whose bytes are mostly LSNs, not worth a
//! second decoding path.
//!
//! Loading checks, in order: magic (else `Error::NotGrove`), prefix crc, version (else
//! `Error::UnsupportedVersion`), header crc, seq (against the file name too), file length,
//! body crc, then the body: every tag, stream, varint and length, exactly `page count` slots
//! and no bytes after them; a failure after the magic is `Error::Corruption`. A checkpoint
//! failing any check but the version is skipped for the one before it; a newer version is
//! an error, since falling back past it would lose data.

use super::{loc::Stream, pages::Pages};
use crate::{
    error::{Error, Result},
    ids::{Lsn, SegmentId},
    storage::Storage,
    varint,
};

/// Magic number at the start of every checkpoint file.
const MAGIC: [u8; 8] = *b"GROVECKP";
/// The checkpoint format version this build reads and writes. Version 2 added each live
/// page's owner and weight; version 1 files (from before any release) are refused.
const CHECKPOINT_VERSION: u32 = 2;
/// Bytes in the fixed header.
const HEADER_LEN: usize = 64;
/// `HEADER_LEN` as a `u64`, for file offsets.
const HEADER_LEN_U64: u64 = 64;

/// File name prefix of checkpoint files.
const PREFIX: &str = "checkpoint-";
/// File name suffix of checkpoint files.
const SUFFIX: &str = ".ckpt";
/// File name suffix of checkpoints being written.
const TEMP_SUFFIX: &str = ".ckpt.tmp";

/// The page table at one moment, as stored in a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// 1, 2, 3...: larger than every earlier checkpoint's.
    pub(crate) seq: u64,
    /// Recovery replays the delta stream from here.
    pub(crate) delta_from: Lsn,
    /// The base stream is durable up to here.
    pub(crate) base_from: Lsn,
    /// One entry per page id ever handed out; the index is the `PageId`.
    pub(crate) pages: Pages,
    /// The live bytes of every segment the pages refer to, so that opening need not
    /// count them.
    pub(crate) live: Vec<SegmentLive>,
}

/// The live bytes of one segment at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentLive {
    pub(crate) stream: Stream,
    pub(crate) segment: SegmentId,
    pub(crate) bytes: u64,
}

/// What [`load`] found.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The newest usable checkpoint.
    pub(crate) checkpoint: Checkpoint,
    /// Why the newest checkpoint file was unusable, if `checkpoint` is an older one.
    pub(crate) skipped: Option<String>,
    /// The size of the file `checkpoint` was read from.
    pub(crate) bytes: u64,
}

/// The name of checkpoint `seq`'s file.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{PREFIX}{seq:016x}{SUFFIX}")
}

/// The sequence number in a checkpoint file name, or `None` if `name` is not one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    parse_digits(name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?)
}

/// The sequence number in the name of a checkpoint being written.
fn parse_temp_name(name: &str) -> Option<u64> {
    parse_digits(name.strip_prefix(PREFIX)?.strip_suffix(TEMP_SUFFIX)?)
}

fn parse_digits(digits: &str) -> Option<u64> {
    // Lowercase only, so that each number has exactly one file name.
    if digits.len() != 16 || !digits.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Writes `checkpoint` atomically as `checkpoint-{seq}.ckpt`, then removes every checkpoint
/// older than the previous one. Returns the size of the file written.
///
/// `checkpoint.seq` must be larger than that of every checkpoint already in `storage`
/// (a damaged file of the same number is replaced).
///
/// # Errors
/// `Error::Io` if a storage call fails. The new checkpoint is durable once the rename has
/// been synced; a failure after that (while removing old files) still returns the error.
pub(crate) fn write(storage: &dyn Storage, checkpoint: &Checkpoint) -> Result<u64> {
    let name = file_name(checkpoint.seq);
    let temp = format!("{name}.tmp");
    let bytes = encode(checkpoint);
    let shown = storage.describe(&temp);

    match storage.remove(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", shown, e)),
    }
    let file = storage.create_new(&temp).map_err(|e| Error::io("create", &shown, e))?;
    file.write_at(&bytes, 0).map_err(|e| Error::io("write", &shown, e))?;
    file.sync().map_err(|e| Error::io("sync", &shown, e))?;
    drop(file);
    storage.rename(&temp, &name).map_err(|e| Error::io("rename", &shown, e))?;
    sync_dir(storage)?;

    // Keep this checkpoint and the newest one before it, for `load` to fall back to.
    let older: Vec<u64> = list(storage)?
        .iter()
        .filter_map(|n| parse_name(n))
        .filter(|&seq| seq < checkpoint.seq)
        .collect();
    let previous = older.iter().copied().max();
    let mut removed = false;
    for seq in older.into_iter().filter(|&seq| Some(seq) != previous) {
        let old = file_name(seq);
        storage.remove(&old).map_err(|e| Error::io("remove", storage.describe(&old), e))?;
        removed = true;
    }
    if removed {
        sync_dir(storage)?;
    }
    Ok(to_u64(bytes.len()))
}

/// Loads the newest usable checkpoint, after removing checkpoints left half-written by a
/// crash. `Ok(None)` if there is no checkpoint file.
///
/// A damaged checkpoint (short, torn, failing a checksum or undecodable, or not starting with
/// the magic number) is skipped in favour of the one before it, and [`Loaded::skipped`] says
/// why.
///
/// # Errors
/// - `Error::UnsupportedVersion` if the newest checkpoint is of a newer format: it is not
///   damaged, so falling back would lose data.
/// - The newest checkpoint's `Error::Corruption` (or `Error::NotGrove`) if every checkpoint
///   is damaged.
/// - `Error::Io` if a storage call fails.
pub(crate) fn load(storage: &dyn Storage) -> Result<Option<Loaded>> {
    load_with(storage, true)
}

/// As [`load`], but modifies nothing: half-written checkpoints are left where they are (a
/// read-only page cache never writes the checkpoint they would collide with).
///
/// # Errors
/// As [`load`].
pub(crate) fn load_read_only(storage: &dyn Storage) -> Result<Option<Loaded>> {
    load_with(storage, false)
}

fn load_with(storage: &dyn Storage, remove_temps: bool) -> Result<Option<Loaded>> {
    let names = list(storage)?;
    let mut seqs = Vec::new();
    for name in &names {
        if parse_temp_name(name).is_some() {
            // Never renamed into place, so never a checkpoint anyone relied on.
            if remove_temps {
                storage.remove(name).map_err(|e| Error::io("remove", storage.describe(name), e))?;
            }
        } else if let Some(seq) = parse_name(name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable_by(|a, b| b.cmp(a));

    let mut newest_error: Option<Error> = None;
    for seq in seqs {
        match read(storage, seq) {
            Ok((checkpoint, bytes)) => {
                let skipped = newest_error.map(|e| e.to_string());
                return Ok(Some(Loaded { checkpoint, skipped, bytes }));
            }
            Err(e @ (Error::Corruption { .. } | Error::NotGrove { .. })) => {
                newest_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    newest_error.map_or(Ok(None), Err)
}

fn list(storage: &dyn Storage) -> Result<Vec<String>> {
    storage.list().map_err(|e| Error::io("list", storage.describe(""), e))
}

fn sync_dir(storage: &dyn Storage) -> Result<()> {
    storage.sync_dir().map_err(|e| Error::io("sync directory", storage.describe(""), e))
}

/// Reads and validates checkpoint `seq`; returns it and its file size.
fn read(storage: &dyn Storage, seq: u64) -> Result<(Checkpoint, u64)> {
    let name = file_name(seq);
    let shown = storage.describe(&name);
    let file = storage.open(&name).map_err(|e| Error::io("open", &shown, e))?;
    let file_len = file.len().map_err(|e| Error::io("stat", &shown, e))?;

    let mut header = [0u8; HEADER_LEN];
    let got = read_fully(&*file, &mut header, 0).map_err(|e| Error::io("read", &shown, e))?;
    let header = Header::decode(&header[..got], &shown)?;
    if header.seq != seq {
        return Err(Error::corruption(
            shown,
            24,
            format!("header says checkpoint {}, file name says {seq}", header.seq),
        ));
    }
    let expected_len = header.body_len.checked_add(HEADER_LEN_U64);
    if expected_len != Some(file_len) {
        return Err(Error::corruption(
            shown,
            56,
            format!(
                "header says {} body bytes, the file holds {}",
                header.body_len,
                file_len.saturating_sub(HEADER_LEN_U64)
            ),
        ));
    }
    // The length was just checked against the real file size.
    let body_len = usize::try_from(header.body_len)
        .map_err(|_| Error::corruption(&shown, 56, "body too large for this platform"))?;
    let mut body = vec![0u8; body_len];
    let got =
        read_fully(&*file, &mut body, HEADER_LEN_U64).map_err(|e| Error::io("read", &shown, e))?;
    if got != body_len {
        return Err(Error::corruption(&shown, HEADER_LEN_U64, "file shrank while being read"));
    }
    let computed = crc32fast::hash(&body);
    if computed != header.body_crc {
        return Err(Error::corruption(
            shown,
            HEADER_LEN_U64,
            format!("body checksum {:#010x}, computed {computed:#010x}", header.body_crc),
        ));
    }
    let (pages, rest) = Pages::decode(body, header.pages).map_err(|(at, reason)| {
        Error::corruption(&shown, to_u64(at).saturating_add(HEADER_LEN_U64), reason)
    })?;
    let slots_len = to_u64(pages.body().len()).saturating_add(HEADER_LEN_U64);
    let live = decode_live(&rest).map_err(|(at, reason)| {
        Error::corruption(&shown, to_u64(at).saturating_add(slots_len), reason)
    })?;
    let checkpoint = Checkpoint {
        seq: header.seq,
        delta_from: header.delta_from,
        base_from: header.base_from,
        pages,
        live,
    };
    Ok((checkpoint, file_len))
}

/// Reads from `offset` until `buf` is full or the file ends; returns the bytes read.
fn read_fully(
    file: &dyn crate::storage::StorageFile,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.saturating_add(u64::try_from(done).map_err(std::io::Error::other)?);
        let n = file.read_at(&mut buf[done..], at)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// The fixed header of a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    seq: u64,
    delta_from: Lsn,
    base_from: Lsn,
    pages: u64,
    body_len: u64,
    body_crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        let prefix_crc = crc32fast::hash(&out[0..12]);
        out[12..16].copy_from_slice(&prefix_crc.to_le_bytes());
        out[20..24].copy_from_slice(&self.body_crc.to_le_bytes());
        out[24..32].copy_from_slice(&self.seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.delta_from.0.to_le_bytes());
        out[40..48].copy_from_slice(&self.base_from.0.to_le_bytes());
        out[48..56].copy_from_slice(&self.pages.to_le_bytes());
        out[56..64].copy_from_slice(&self.body_len.to_le_bytes());
        let crc = header_crc(&out);
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and validates a header read from `file`, in the order that gives the most
    /// useful error: foreign file, then newer version, then damage.
    fn decode(bytes: &[u8], file: &str) -> Result<Header> {
        if let Some(magic) = bytes.get(0..8)
            && magic != MAGIC
        {
            return Err(Error::NotGrove { file: file.to_owned(), found: le_u64(bytes, 0) });
        }
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return Err(Error::corruption(
                file,
                0,
                format!(
                    "file is {} bytes, shorter than the {HEADER_LEN}-byte checkpoint header",
                    bytes.len()
                ),
            ));
        };
        let prefix_crc = le_u32(bytes, 12);
        let computed = crc32fast::hash(&bytes[0..12]);
        if prefix_crc != computed {
            return Err(Error::corruption(
                file,
                8,
                format!("header prefix checksum {prefix_crc:#010x}, computed {computed:#010x}"),
            ));
        }
        let version = le_u32(bytes, 8);
        if version != CHECKPOINT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: file.to_owned(),
                found: version,
                supported: CHECKPOINT_VERSION,
            });
        }
        let stored = le_u32(bytes, 16);
        let computed = header_crc(bytes);
        if stored != computed {
            return Err(Error::corruption(
                file,
                16,
                format!("header checksum {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        let header = Header {
            body_crc: le_u32(bytes, 20),
            seq: le_u64(bytes, 24),
            delta_from: Lsn(le_u64(bytes, 32)),
            base_from: Lsn(le_u64(bytes, 40)),
            pages: le_u64(bytes, 48),
            body_len: le_u64(bytes, 56),
        };
        if header.seq == 0 {
            return Err(Error::corruption(file, 24, "checkpoint sequence number 0"));
        }
        Ok(header)
    }
}

fn header_crc(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[0..16]);
    hasher.update(&bytes[20..HEADER_LEN]);
    hasher.finalize()
}

/// The live-bytes section: a count, then `stream segment bytes` per segment.
fn encode_live(live: &[SegmentLive]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + live.len() * 8);
    varint::put(&mut out, to_u64(live.len()));
    for entry in live {
        out.push(u8::try_from(entry.stream.index()).unwrap_or(0));
        varint::put(&mut out, entry.segment.0);
        varint::put(&mut out, entry.bytes);
    }
    out
}

/// Decodes the live-bytes section, which must fill `bytes`.
fn decode_live(bytes: &[u8]) -> Result<Vec<SegmentLive>, (usize, String)> {
    let mut at = 0;
    let count = varint::get(bytes, &mut at)?;
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n <= bytes.len() / 3)
        .ok_or_else(|| (0, format!("{count} segments in {} bytes", bytes.len())))?;
    let mut live = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = *bytes.get(at).ok_or_else(|| (at, "body ends early".to_owned()))?;
        let stream =
            Stream::from_tag(tag).ok_or_else(|| (at, format!("unknown stream {tag:#04x}")))?;
        at += 1;
        let segment = SegmentId(varint::get(bytes, &mut at)?);
        let bytes_live = varint::get(bytes, &mut at)?;
        live.push(SegmentLive { stream, segment, bytes: bytes_live });
    }
    if at != bytes.len() {
        return Err((at, format!("{} bytes after the last segment", bytes.len() - at)));
    }
    Ok(live)
}

/// The whole file: header and body.
fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut body = checkpoint.pages.body().to_vec();
    body.extend_from_slice(&encode_live(&checkpoint.live));
    let body = &body[..];
    let header = Header {
        seq: checkpoint.seq,
        delta_from: checkpoint.delta_from,
        base_from: checkpoint.base_from,
        pages: to_u64(checkpoint.pages.len()),
        body_len: to_u64(body.len()),
        body_crc: crc32fast::hash(body),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(body);
    out
}

/// A length in memory as a `u64`, which holds every `usize` on supported platforms.
fn to_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::{
        pagecache::{
            loc::{Loc, Stream},
            pages::SlotImage,
        },
        storage::{FaultOp, MemStorage, SimStorage},
    };

    fn random_loc(rng: &mut fastrand::Rng) -> Loc {
        let stream = if rng.bool() { Stream::Delta } else { Stream::Base };
        let lsn = match rng.u8(0..4) {
            0 => 0,
            1 => rng.u64(..),
            2 => u64::MAX - rng.u64(0..3),
            _ => rng.u64(0..1 << 40),
        };
        let len = match rng.u8(0..3) {
            0 => 1,
            1 => u32::MAX,
            _ => rng.u32(1..100_000),
        };
        Loc { stream, lsn: Lsn(lsn), len }
    }

    fn random_version(rng: &mut fastrand::Rng) -> u64 {
        if rng.bool() { rng.u64(0..300) } else { rng.u64(..) }
    }

    fn random_checkpoint(rng: &mut fastrand::Rng, seq: u64) -> Checkpoint {
        let count = if rng.u8(0..8) == 0 { 0 } else { rng.usize(0..40) };
        let pages = (0..count)
            .map(|_| {
                if rng.u8(0..3) == 0 {
                    SlotImage::Free { version: random_version(rng) }
                } else {
                    SlotImage::Live {
                        version: random_version(rng),
                        weighs: (rng.u64(..), rng.i64(..)),
                        base: random_loc(rng),
                        frags: (0..rng.usize(0..5)).map(|_| random_loc(rng)).collect(),
                    }
                }
            })
            .collect::<Vec<_>>()
            .into();
        let live = (0..rng.usize(0..4))
            .map(|_| SegmentLive {
                stream: if rng.bool() { Stream::Delta } else { Stream::Base },
                segment: SegmentId(rng.u64(..)),
                bytes: rng.u64(..),
            })
            .collect();
        Checkpoint { seq, delta_from: Lsn(rng.u64(..)), base_from: Lsn(rng.u64(..)), pages, live }
    }

    /// A small checkpoint with one slot of each shape, for the snapshot and damage tests.
    fn small(seq: u64) -> Checkpoint {
        let loc = |stream, lsn, len| Loc { stream, lsn: Lsn(lsn), len };
        Checkpoint {
            seq,
            delta_from: Lsn(4096 * seq),
            base_from: Lsn(300),
            pages: vec![
                SlotImage::Live {
                    version: 1,
                    weighs: (7, 12),
                    base: loc(Stream::Base, 200, 100),
                    frags: vec![loc(Stream::Delta, 5000, 40), loc(Stream::Delta, 5040, 33)],
                },
                SlotImage::Free { version: 0 },
                SlotImage::Free { version: 2 },
                SlotImage::Live {
                    version: 3,
                    weighs: (7, -2),
                    base: loc(Stream::Delta, 4000, 1000),
                    frags: vec![],
                },
            ]
            .into(),
            live: vec![SegmentLive { stream: Stream::Base, segment: SegmentId(0), bytes: 100 }],
        }
    }

    fn load_some(storage: &dyn Storage) -> Loaded {
        load(storage).unwrap().expect("a checkpoint")
    }

    fn checkpoint_names(storage: &dyn Storage) -> Vec<String> {
        let mut names: Vec<String> =
            storage.list().unwrap().into_iter().filter(|n| n.starts_with(PREFIX)).collect();
        names.sort();
        names
    }

    /// A file with a valid header (checksums included) around an arbitrary body.
    fn file_with_body(seq: u64, pages: u64, body: &[u8]) -> Vec<u8> {
        let header = Header {
            seq,
            delta_from: Lsn(1),
            base_from: Lsn(2),
            pages,
            body_len: to_u64(body.len()),
            body_crc: crc32fast::hash(body),
        };
        let mut out = header.encode().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(26), "checkpoint-000000000000001a.ckpt");
        assert_eq!(parse_name("checkpoint-000000000000001a.ckpt"), Some(26));
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("checkpoint-000000000000001A.ckpt"), None);
        assert_eq!(parse_name("checkpoint-1a.ckpt"), None);
        assert_eq!(parse_name("checkpoint-000000000000001a.ckpt.tmp"), None);
        assert_eq!(parse_temp_name("checkpoint-000000000000001a.ckpt.tmp"), Some(26));
        assert_eq!(parse_name("delta-000000000000001a.seg"), None);
        assert_eq!(parse_name("checkpoint-+00000000000001a.ckpt"), None);
    }

    #[test]
    fn random_checkpoints_round_trip() {
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let storage = MemStorage::new();
            let seq = rng.u64(1..);
            let checkpoint = random_checkpoint(&mut rng, seq);
            let bytes = write(&storage, &checkpoint).unwrap();
            let loaded = load_some(&storage);
            assert_eq!(loaded.checkpoint, checkpoint, "seed {seed}");
            assert_eq!(loaded.bytes, bytes, "seed {seed}");
            assert!(loaded.skipped.is_none(), "seed {seed}");
        }
        let empty = Checkpoint {
            seq: 1,
            delta_from: Lsn(0),
            base_from: Lsn(0),
            pages: Pages::default(),
            live: vec![],
        };
        let storage = MemStorage::new();
        // The body of an empty checkpoint is the live section's count alone.
        assert_eq!(write(&storage, &empty).unwrap(), HEADER_LEN_U64 + 1);
        assert_eq!(load_some(&storage).checkpoint, empty);
    }

    #[test]
    fn no_checkpoint_is_none_and_other_files_are_ignored() {
        let storage = MemStorage::new();
        assert!(load(&storage).unwrap().is_none());
        for name in ["delta-0000000000000000.seg", "grove.lock", "checkpoint-zz.ckpt"] {
            storage.create_new(name).unwrap().write_at(b"not a checkpoint", 0).unwrap();
        }
        let temp = format!("{}.tmp", file_name(7));
        storage.create_new(&temp).unwrap().write_at(b"half", 0).unwrap();
        assert!(load(&storage).unwrap().is_none());
        let mut names = storage.list().unwrap();
        names.sort();
        assert_eq!(names, ["checkpoint-zz.ckpt", "delta-0000000000000000.seg", "grove.lock"]);

        // A stale temporary of the same number does not stop a write.
        storage.create_new(&temp).unwrap().write_at(b"stale", 0).unwrap();
        write(&storage, &small(7)).unwrap();
        assert_eq!(load_some(&storage).checkpoint, small(7));
        assert_eq!(checkpoint_names(&storage), [file_name(7), "checkpoint-zz.ckpt".to_owned()]);
    }

    #[test]
    fn writing_keeps_only_the_two_newest() {
        let storage = MemStorage::new();
        for seq in 1..=4 {
            write(&storage, &small(seq)).unwrap();
            let want: Vec<String> = (seq.saturating_sub(1).max(1)..=seq).map(file_name).collect();
            assert_eq!(checkpoint_names(&storage), want);
        }
        assert_eq!(load_some(&storage).checkpoint, small(4));
    }

    /// A disk holding checkpoints 1 and 2 (`small`); returns checkpoint 2's bytes.
    fn two_checkpoints() -> (SimStorage, Vec<u8>) {
        let disk = SimStorage::new(0);
        write(&disk, &small(1)).unwrap();
        write(&disk, &small(2)).unwrap();
        let bytes = disk.current_bytes(&file_name(2)).unwrap();
        (disk, bytes)
    }

    fn assert_fell_back(disk: &SimStorage, what: &str) {
        let loaded = load(disk).unwrap_or_else(|e| panic!("{what}: {e}")).expect("checkpoint");
        assert_eq!(loaded.checkpoint, small(1), "{what}");
        let skipped = loaded.skipped.unwrap_or_else(|| panic!("{what}: nothing skipped"));
        assert!(skipped.contains(&file_name(2)), "{what}: {skipped}");
    }

    #[test]
    fn a_flipped_bit_anywhere_falls_back_to_the_previous() {
        let (disk, bytes) = two_checkpoints();
        let name = file_name(2);
        for offset in 0..to_u64(bytes.len()) {
            for bit in 0..8 {
                disk.flip_bit(&name, offset, bit).unwrap();
                assert_fell_back(&disk, &format!("bit {bit} of byte {offset}"));
                disk.flip_bit(&name, offset, bit).unwrap();
            }
        }
        assert_eq!(load_some(&disk).checkpoint, small(2));
    }

    #[test]
    fn a_truncated_or_extended_newest_falls_back_to_the_previous() {
        let (disk, bytes) = two_checkpoints();
        for len in 0..bytes.len() {
            disk.set_bytes(&file_name(2), bytes[..len].to_vec());
            assert_fell_back(&disk, &format!("truncated to {len}"));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        disk.set_bytes(&file_name(2), longer);
        assert_fell_back(&disk, "one byte too long");
    }

    #[test]
    fn every_checkpoint_damaged_is_the_newest_ones_corruption() {
        let (disk, bytes) = two_checkpoints();
        let body_byte = to_u64(bytes.len()) - 1;
        disk.flip_bit(&file_name(1), body_byte, 0).unwrap();
        disk.flip_bit(&file_name(2), body_byte, 0).unwrap();
        match load(&disk) {
            Err(Error::Corruption { file, offset, reason }) => {
                assert_eq!(file, file_name(2));
                assert_eq!(offset, HEADER_LEN_U64);
                assert!(reason.contains("body checksum"), "{reason}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // The files are left as they were.
        assert_eq!(checkpoint_names(&disk), [file_name(1), file_name(2)]);
    }

    #[test]
    fn foreign_magic_is_skipped_but_reported_when_nothing_else_is_left() {
        let disk = SimStorage::new(0);
        write(&disk, &small(1)).unwrap();
        disk.set_bytes(&file_name(2), b"SQLite format 3\0 and more bytes".to_vec());
        let loaded = load_some(&disk);
        assert_eq!(loaded.checkpoint, small(1));
        assert!(loaded.skipped.unwrap().contains("not a Grove file"));
        disk.remove(&file_name(1)).unwrap();
        assert!(matches!(load(&disk), Err(Error::NotGrove { .. })));
    }

    #[test]
    fn a_newer_version_is_an_error_not_a_fallback() {
        let (disk, mut bytes) = two_checkpoints();
        bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
        let prefix_crc = crc32fast::hash(&bytes[0..12]);
        bytes[12..16].copy_from_slice(&prefix_crc.to_le_bytes());
        disk.set_bytes(&file_name(2), bytes);
        assert!(matches!(
            load(&disk),
            Err(Error::UnsupportedVersion { found: 3, supported: 2, .. })
        ));
    }

    #[test]
    fn a_header_naming_another_checkpoint_is_damage() {
        let (disk, _) = two_checkpoints();
        let third = encode(&small(3));
        disk.set_bytes(&file_name(2), third);
        assert_fell_back(&disk, "checkpoint 3 under the name of 2");
    }

    fn reason(result: Result<(Checkpoint, u64)>) -> String {
        match result {
            Err(Error::Corruption { reason, .. }) => reason,
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn malformed_bodies_are_corruption_with_a_reason() {
        let cases: [(&str, u64, &[u8]); 12] = [
            ("unknown slot tag 0x02", 1, &[2, 0]),
            ("unknown stream 0x02", 1, &[1, 0, 0, 0, 2, 0, 1, 0]),
            ("record length 0", 1, &[1, 0, 0, 0, 0, 0, 0, 0]),
            ("record length 4294967296", 1, &[1, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0]),
            ("shortest form", 1, &[0, 0x80, 0]),
            ("overflows 64 bits", 1, &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2]),
            (
                "longer than 10 bytes",
                1,
                &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0],
            ),
            ("2 fragments in 3 bytes", 1, &[1, 0, 0, 0, 0, 0, 1, 2, 0, 0, 1]),
            ("body ends early", 2, &[0, 0, 1, 0, 0, 0]),
            ("cannot fit", 3, &[0, 0, 0, 0]),
            ("unknown stream 0x07", 1, &[0, 0, 1, 7, 0, 0]),
            ("2 bytes after the last segment", 1, &[0, 0, 0, 0, 0]),
        ];
        for (want, pages, body) in cases {
            let storage = MemStorage::new();
            let file = storage.create_new(&file_name(1)).unwrap();
            file.write_at(&file_with_body(1, pages, body), 0).unwrap();
            let got = reason(read(&storage, 1));
            assert!(got.contains(want), "wanted {want:?}, got {got:?}");
        }
    }

    #[test]
    fn random_bodies_never_panic() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..20_000 {
            let body: Vec<u8> = (0..rng.usize(0..48))
                .map(|_| if rng.bool() { rng.u8(0..3) } else { rng.u8(..) })
                .collect();
            let pages = rng.u64(0..30);
            if let Ok((slots, rest)) = Pages::decode(body.clone(), pages) {
                assert_eq!([slots.body(), &rest].concat(), body, "decoding is one to one");
            }
        }
    }

    /// How many mutating storage calls one `write` of `small(3)` makes on a disk holding
    /// checkpoints 1 and 2.
    fn write_steps() -> u64 {
        let (disk, _) = two_checkpoints();
        let count =
            |disk: &SimStorage| FaultOp::MUTATING.iter().map(|&op| disk.op_count(op)).sum::<u64>();
        let before = count(&disk);
        write(&disk, &small(3)).unwrap();
        count(&disk) - before
    }

    #[test]
    fn a_crash_at_any_step_of_write_leaves_the_old_or_the_new_checkpoint() {
        let steps = write_steps();
        // remove stale temp, create, write, sync, rename, sync_dir, remove 1, sync_dir.
        assert_eq!(steps, 8);
        let mut outcomes = [0u32; 2];
        for cut in 0..=steps {
            for seed in 0..40 {
                let disk = SimStorage::new(seed);
                write(&disk, &small(1)).unwrap();
                write(&disk, &small(2)).unwrap();
                disk.power_cut_after(cut);
                let result = write(&disk, &small(3));
                assert_eq!(result.is_ok(), cut == steps, "cut {cut} seed {seed}");
                disk.crash();
                let what = format!("cut after {cut} steps, seed {seed}");
                let loaded = load(&disk).unwrap_or_else(|e| panic!("{what}: {e}"));
                let loaded = loaded.unwrap_or_else(|| panic!("{what}: no checkpoint"));
                assert!(loaded.skipped.is_none(), "{what}: {:?}", loaded.skipped);
                let seq = loaded.checkpoint.seq;
                assert!(seq == 2 || seq == 3, "{what}: loaded {seq}");
                assert_eq!(loaded.checkpoint, small(seq), "{what}");
                outcomes[usize::from(seq == 3)] += 1;
                // No temporary is left, and the next write works.
                assert!(disk.list().unwrap().iter().all(|n| parse_temp_name(n).is_none()));
                write(&disk, &small(4)).unwrap();
                assert_eq!(load_some(&disk).checkpoint, small(4), "{what}");
                assert_eq!(checkpoint_names(&disk), [file_name(seq), file_name(4)], "{what}");
            }
        }
        assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    }

    #[test]
    fn storage_errors_are_reported_not_skipped() {
        let (disk, _) = two_checkpoints();
        disk.inject(crate::storage::Fault {
            op: FaultOp::Read,
            nth: 0,
            kind: crate::storage::FaultKind::Eio,
        });
        assert!(matches!(load(&disk), Err(Error::Io { op: "read", .. })));
        assert_eq!(load_some(&disk).checkpoint, small(2));
    }

    #[test]
    fn a_full_disk_fails_the_write_and_keeps_the_old_checkpoint() {
        for op in [FaultOp::CreateNew, FaultOp::Write, FaultOp::Sync, FaultOp::Rename] {
            let (disk, _) = two_checkpoints();
            disk.inject(crate::storage::Fault {
                op,
                nth: 0,
                kind: crate::storage::FaultKind::Enospc,
            });
            let err = write(&disk, &small(3)).unwrap_err();
            assert_eq!(err.io_kind(), Some(std::io::ErrorKind::StorageFull), "{op:?}");
            assert_eq!(load_some(&disk).checkpoint, small(2), "{op:?}");
            write(&disk, &small(3)).unwrap();
            assert_eq!(load_some(&disk).checkpoint, small(3), "{op:?}");
        }
    }

    #[test]
    fn encoding_of_a_small_checkpoint_does_not_drift() {
        let bytes = encode(&small(2));
        let mut hex = String::new();
        for line in bytes.chunks(16) {
            for byte in line {
                write!(hex, "{byte:02x} ").unwrap();
            }
            hex.pop();
            hex.push('\n');
        }
        insta::assert_snapshot!(hex);
    }
}
