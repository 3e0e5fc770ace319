//! The engine's error type.
//!
//! One enum for the whole engine, because callers branch on *what happened* (corruption,
//! a full disk, a second opener), not on which layer noticed. Every variant carries the
//! context needed to print a useful message: the file, the offset, what was expected.

use std::io;

use crate::ids::{Lsn, SegmentId};

/// The result type of every fallible engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed. Check `source` (a full disk shows as
    /// `ErrorKind::StorageFull`); the log refuses further writes after this.
    #[error("I/O error during {op} on {file:?}: {source}")]
    Io {
        /// What the engine was doing: "write", "sync", "create", ...
        op: &'static str,
        /// The file involved, or the directory for directory operations.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Stored data failed validation at a place where it cannot be a torn tail left by a
    /// crash: media corruption or outside tampering. Restore from a backup, or export what is
    /// readable; the files were left unmodified.
    #[error("corruption in {file:?} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        file: String,
        /// Byte offset of the damage within the file.
        offset: u64,
        /// What was expected and what was found.
        reason: String,
    },

    /// A file in the database directory is not a Grove file (wrong magic number). Nothing
    /// was modified; point Grove at its own directory.
    #[error("{file:?} is not a Grove file (magic number {found:#018x}); nothing was modified")]
    NotGrove {
        /// The foreign file.
        file: String,
        /// The first eight bytes found, little-endian.
        found: u64,
    },

    /// A file was written by a newer (or unknown) format version of Grove. Nothing was
    /// modified; open it with a Grove release that supports this version.
    #[error(
        "{file:?} has format version {found}, this build reads version {supported}; \
         nothing was modified"
    )]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// The version found in its header.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// Another handle, in this process or another, holds the directory's lock. Close it
    /// first; Grove allows one process per directory.
    #[error("database directory {path:?} is already open (locked by another handle)")]
    AlreadyOpen {
        /// The locked directory.
        path: String,
    },

    /// A record is larger than the log can hold in one buffer. Raise `buffer_size` and
    /// `segment_size` in the configuration, or store less per record.
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Encoded length of the record.
        len: usize,
        /// The largest record this configuration accepts.
        max: usize,
    },

    /// A previous write or sync failed, so the log no longer accepts writes: the data that
    /// failed is in an unknown state on disk, and retrying a failed fsync can silently lose
    /// data. Reopen the database to recover to the last durable state.
    #[error("the log stopped accepting writes after an earlier failure: {cause}")]
    LogFailed {
        /// The failure that stopped the log, as it was first reported.
        cause: String,
        /// The I/O error kind of that failure, if it was one (`StorageFull` for a full disk).
        kind: Option<io::ErrorKind>,
    },

    /// The log was shut down while this operation waited.
    #[error("the log is closed")]
    Closed,

    /// An integrity check (`PageCache::check`) found in-memory bookkeeping that disagrees
    /// with the pages themselves. This is a bug in Grove: please report it with the
    /// message; reopening rebuilds the bookkeeping from the files.
    #[error("integrity check failed: {0}")]
    Inconsistent(String),

    /// `Config::create_new` was set, but the directory already holds files.
    #[error("{path:?} already exists and is not empty (Config::create_new was set)")]
    AlreadyExists {
        /// The directory.
        path: String,
    },

    /// The tree was dropped (`Db::drop_tree`) after this handle to it was opened. Open it
    /// again to create a new, empty tree of that name.
    #[error("tree {tree:?} was dropped")]
    TreeDropped {
        /// The tree's name.
        tree: String,
    },

    /// `Tree::merge` was called on a tree with no merge operator. Register one for the
    /// tree's name with `Config::merge_operator` when opening the database.
    #[error("tree {tree:?} has no merge operator: register one with Config::merge_operator")]
    NoMergeOperator {
        /// The tree's name.
        tree: String,
    },

    /// The database (or log, or page cache) was opened read-only (`Config::read_only`), so
    /// it refuses every write. Open it without `read_only` to change it.
    #[error("the database was opened read-only (Config::read_only): writes are refused")]
    ReadOnly,

    /// The configuration is inconsistent; the message says which setting to change.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A record was requested at an LSN that holds no valid record.
    #[error("no record at {lsn}: {reason}")]
    NoRecord {
        /// The requested position.
        lsn: Lsn,
        /// Why it could not be read.
        reason: String,
    },

    /// A log segment is missing from the middle of the sequence.
    #[error("log segment {missing} is missing (found segments up to {found})")]
    MissingSegment {
        /// The segment that should exist.
        missing: SegmentId,
        /// The segment found after the gap.
        found: SegmentId,
    },

    /// `Log::remove_segment` refused: the segment does not exist, or the log still writes
    /// to it. Only segments wholly below `Log::written_lsn`, other than the newest, can go.
    #[error("cannot remove log {segment}: {reason}")]
    SegmentNotRemovable {
        /// The segment asked for.
        segment: SegmentId,
        /// Why it must stay.
        reason: String,
    },
    /// A snapshot (or the transaction reading from it) lived while so much was written
    /// that the old values it needed passed `Config::snapshot_memory`, and were dropped.
    /// Take a new snapshot; a transaction does so itself when it runs again.
    #[error(
        "the snapshot expired: the old values it needed passed the limit of {limit} bytes \
         (Config::snapshot_memory); take a new snapshot"
    )]
    SnapshotExpired {
        /// `Config::snapshot_memory`.
        limit: u64,
    },
}

impl Error {
    /// Wraps an I/O error with the operation and file it came from.
    pub(crate) fn io(op: &'static str, file: impl Into<String>, source: io::Error) -> Self {
        Self::Io { op, file: file.into(), source }
    }

    /// A corruption error at `offset` of `file`.
    pub(crate) fn corruption(
        file: impl Into<String>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Self::Corruption { file: file.into(), offset, reason: reason.into() }
    }

    /// The `io::ErrorKind` behind this error, if it came from the operating system.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::Io { source, .. } => Some(source.kind()),
            Self::LogFailed { kind, .. } => *kind,
            _ => None,
        }
    }
}
