//! [`Batch`]: writes to one or more trees, applied all together or not at all.

use crate::tree::{Bytes, Tree};

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
