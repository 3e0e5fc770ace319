//! [`Batch`]: writes to one or more trees, applied all together or not at all.

use std::collections::BTreeMap;

use super::{Bytes, Event, Plan, Shared, Tree, VersionStore, plan::count_change, walk::Target};
use crate::{
    error::Result,
    ids::{PageId, TreeId},
};

/// Inserts and removes across any trees of one database, applied atomically by
/// [`Db::apply_batch`](crate::Db::apply_batch): other threads see all of it or none of it,
/// and so does the database after a crash. Within a batch, the last write to a key wins.
///
/// # Example
/// ```
/// use grove_engine::Batch;
///
/// let db = grove_engine::Config::new().temporary(true).open()?;
/// let users = db.open_tree("users")?;
/// let emails = db.open_tree("emails")?;
/// let mut batch = Batch::default();
/// batch.insert(&users, b"u1", b"ann");
/// batch.insert(&emails, b"ann@example.com", b"u1");
/// db.apply_batch(batch)?;
/// assert_eq!(emails.get(b"ann@example.com")?.as_deref(), Some(&b"u1"[..]));
/// # Ok::<(), grove_engine::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub(crate) writes: Vec<(Tree, Bytes, Option<Bytes>)>,
}

impl Batch {
    /// Sets `key` to `value` in `tree`.
    pub fn insert(&mut self, tree: &Tree, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let value = Bytes::copy_from(value.as_ref());
        self.writes.push((tree.clone(), Bytes::copy_from(key.as_ref()), Some(value)));
    }

    /// Removes `key` from `tree`.
    pub fn remove(&mut self, tree: &Tree, key: impl AsRef<[u8]>) {
        self.writes.push((tree.clone(), Bytes::copy_from(key.as_ref()), None));
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether the batch holds no writes.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// Applies `batch` atomically (see [`Batch`]): every leaf it touches, across trees, with the
/// splits they need, goes into one plan installed as one group update.
pub(crate) fn apply_batch(shared: &Shared, batch: Batch) -> Result<()> {
    apply_batch_if(shared, batch, |_| true).map(|_| ())
}

/// As [`apply_batch`], if `validate` accepts the versions written since the caller's
/// snapshot (see [`super::Versions::write`]): `false` if it did not, and nothing was
/// written.
pub(crate) fn apply_batch_if(
    shared: &Shared,
    batch: Batch,
    validate: impl FnOnce(&VersionStore) -> bool,
) -> Result<bool> {
    shared.cache.writable()?;
    // The last write to a key wins.
    let mut writes: BTreeMap<(TreeId, Bytes), (Tree, Option<Bytes>)> = BTreeMap::new();
    for (tree, key, value) in batch.writes {
        writes.insert((tree.inner.id, key), (tree, value));
    }
    if writes.is_empty() {
        return Ok(true);
    }
    // One removed key per leaf that lost entries: each such leaf is checked for merging
    // once, not once per key.
    let written = shared.versions.write(validate, |recorder| {
        let mut plan = Plan::new(shared.node_bytes);
        let mut shrunk: BTreeMap<(TreeId, PageId), (&Tree, &Bytes)> = BTreeMap::new();
        for ((_, key), (tree, value)) in &writes {
            let descent = tree.descend(Target::Key(key))?;
            if value.is_none() {
                shrunk.entry((tree.inner.id, descent.leaf.id())).or_insert((tree, key));
            }
            // A value stored out of line is freed with the write that replaces it.
            let Some((current, blob)) = tree.current(&descent, key)? else {
                plan.abandon(&shared.cache);
                return Ok(None);
            };
            if let Some((page, version)) = blob {
                plan.free(page, version);
            }
            let stored = match value {
                Some(value) => Some(tree.store(key, value, &mut plan)?),
                None => None,
            };
            recorder.stage(tree.inner.id, key, current.as_ref());
            plan.add(descent, key, stored, count_change(current.is_some(), value.is_some()));
        }
        recorder.publish();
        if plan.install(&shared.cache)? {
            publish_batch(&writes);
            return Ok(Some(shrunk));
        }
        Ok(None)
    })?;
    let Some(shrunk) = written else {
        return Ok(false);
    };
    for ((_, leaf), (tree, key)) in shrunk {
        tree.merge_leaf_if_underfull(leaf, key)?;
    }
    Ok(true)
}

/// Publishes a batch: to each subscriber, the batch's writes under its prefix.
fn publish_batch(writes: &BTreeMap<(TreeId, Bytes), (Tree, Option<Bytes>)>) {
    let mut trees: BTreeMap<TreeId, &Tree> = BTreeMap::new();
    for ((id, _), (tree, _)) in writes {
        trees.entry(*id).or_insert(tree);
    }
    for (id, tree) in trees {
        let subscriptions = &tree.inner.shared.subscriptions;
        if !subscriptions.any() {
            return;
        }
        subscriptions.publish(id, |prefix| {
            let matching: Vec<(Bytes, Option<Bytes>)> = writes
                .range((id, Bytes::default())..)
                .take_while(|((tree, _), _)| *tree == id)
                .filter(|((_, key), _)| key.starts_with(prefix))
                .map(|((_, key), (_, value))| (key.clone(), value.clone()))
                .collect();
            (!matching.is_empty()).then_some(Event::Batch(matching))
        });
    }
}
