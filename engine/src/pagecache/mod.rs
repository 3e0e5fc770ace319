//! The page cache: pages over the storage log.
//!
//! A [`PageId`](crate::PageId) maps to a page whose state lives in memory, in the log, or
//! both. Updates are log records installed by compare-and-swap; long fragment chains are
//! consolidated; pages are paged out to meet a memory budget; checkpoints bound open time;
//! a cleaner bounds disk space. The page cache knows pages, fragments and log locations,
//! never key order. Start at [`PageCache`].

mod cache;
mod check;
mod checkpoint;
mod group;
mod live;
mod loc;
mod maintainer;
mod maintenance;
mod open;
mod page;
mod pages;
mod payload;
mod record;
mod slots;
mod state;
mod stats;
mod table;
mod weights;

pub use cache::PageCache;
pub use check::CheckReport;
pub use group::{Change, GroupOutcome, GroupUpdate};
pub(crate) use page::PageView;
pub use page::{Materializer, Outcome, Page, Weigh};
pub use stats::{PageCacheStats, SegmentUse};

#[cfg(all(test, loom))]
mod claim_loom;
#[cfg(all(test, loom))]
mod slot_loom;
