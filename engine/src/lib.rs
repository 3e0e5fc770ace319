//! Grove's byte-level engine.
//!
//! **What it is:** the layers under Grove's typed collections: an embedded database of
//! byte strings. [`Db`] (from [`open`] or [`Config`]) holds named [`Tree`]s, ordered maps
//! of byte strings on a lock-free B-link tree, applies [`Batch`]es across trees
//! atomically, and runs serializable [`Transaction`]s and point-in-time [`Snapshot`]s.
//! Beneath it, [`PageCache`] keeps pages (a base image plus fragments) over two log
//! streams, with a memory budget, checkpoints and a cleaner; [`Log`] is a segmented,
//! checksummed, lock-free append log with group commit and crash recovery; and
//! [`Storage`] is the only way the engine touches the filesystem.
//!
//! **What it is not:** a typed API (that is `grove-collections`), a server, or
//! multi-process: one process opens a directory at a time.
//!
//! # Example
//! ```
//! use grove_engine::{Log, LogConfig, Lsn, MemStorage, RecordKind};
//! use std::sync::Arc;
//!
//! let storage = Arc::new(MemStorage::new());
//! let kind = RecordKind::new(42).expect("user kinds are 16 and up");
//!
//! let log = Log::open(storage.clone(), LogConfig::default())?;
//! let lsn = log.append(kind, b"hello")?;
//! log.flush()?; // `hello` is durable now
//! drop(log);
//!
//! let mut seen = Vec::new();
//! let log = Log::open_with(storage, LogConfig::default(), Lsn::ZERO, |record| {
//!     seen.push((record.lsn, record.body.to_vec()));
//!     Ok(())
//! })?;
//! assert_eq!(seen, vec![(lsn, b"hello".to_vec())]);
//! # drop(log);
//! # Ok::<(), grove_engine::Error>(())
//! ```

pub(crate) mod buffer;
pub mod config;
pub mod db;
pub mod error;
pub mod ids;
pub mod log;
pub mod pagecache;
pub(crate) mod prefetch;
pub mod storage;
pub(crate) mod sync;
pub mod tree;
pub(crate) mod varint;

pub use config::{LogConfig, PageCacheConfig};
pub use db::{
    Config, DEFAULT_TREE, Db, DbCheckReport, DbStats, Transaction, TransactionError,
    TransactionIter, Transfer, open,
};
pub use error::{Error, Result};
pub use ids::{Lsn, PageId, SegmentId, TreeId};
pub use log::{Log, LogStats, OwnedRecord, Record, RecordKind, Reservation, SegmentInfo};
pub use pagecache::{
    Change, CheckReport, GroupOutcome, GroupUpdate, Materializer, Outcome, Page, PageCache,
    PageCacheStats, SegmentUse, Weigh,
};
pub use storage::{
    Fault, FaultKind, FaultOp, FileStorage, MemStorage, SimStorage, Storage, StorageFile,
};
pub use tree::{
    Batch, Bytes, CompareAndSwapError, Event, Iter, MergeOperator, SUBSCRIBER_CAPACITY, Snapshot,
    SnapshotIter, Subscriber, Tree, VersionStats,
};
