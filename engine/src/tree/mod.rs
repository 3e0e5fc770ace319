//! The tree: an ordered map over byte strings, stored as B-link tree nodes in pages.
//!
//! Nodes are pages of the page cache: a base image plus fragments (small deltas). The tree
//! knows key order; it never sees files, segments or log positions. Start at [`Tree`].

mod batch;
mod blob;
mod bytes;
mod draft;
mod filter;
mod handle;
mod iter;
mod merge;
pub(crate) mod node;
mod plan;
mod snapshot;
mod versions;
#[cfg(all(test, loom))]
mod versions_loom;
pub(crate) mod walk;
mod watch;

pub use batch::Batch;
pub use bytes::Bytes;
pub use handle::{CompareAndSwapError, MergeOperator, Tree};
pub use iter::Iter;
pub use snapshot::{Snapshot, SnapshotIter};
pub use versions::VersionStats;
pub use watch::{Event, SUBSCRIBER_CAPACITY, Subscriber};

pub(crate) use watch::Subscriptions;

pub(crate) use batch::{apply_batch, apply_batch_if};
pub(crate) use bytes::slices;
pub(crate) use handle::Shared;
pub(crate) use handle::prefix_end;
pub(crate) use plan::Plan;
pub(crate) use versions::{Store as VersionStore, Versions};

/// For the tree's own tests: a temporary database with tiny nodes (many leaves and levels
/// from a few thousand keys), and its tree `t` holding each of `keys` set to `value`.
#[cfg(test)]
pub(crate) fn tiny_tree(
    keys: impl IntoIterator<Item = String>,
    value: &[u8],
) -> crate::error::Result<(crate::Db, Tree)> {
    let db = crate::Config::tiny().temporary(true).open()?;
    let tree = db.open_tree("t")?;
    for key in keys {
        tree.insert(key, value)?;
    }
    Ok((db, tree))
}
