//! The storage log: segmented, checksummed, lock-free appends with group commit and recovery.
//!
//! The log stores opaque records (a [`RecordKind`] and a body) at increasing [`Lsn`](crate::Lsn)s. It
//! never sees pages or keys. Start at [`Log`].

mod flusher;
mod format;
mod geometry;
mod handle;
mod header;
mod recovery;
mod ring;
mod segments;

pub use format::RecordKind;
pub(crate) use handle::Shared;
pub use handle::{Log, LogStats, OwnedRecord, Record, Reservation};
pub use segments::SegmentInfo;

#[cfg(all(test, loom))]
mod ring_loom;
