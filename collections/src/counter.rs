//! [`Counter`]: a named, persistent integer with atomic add.

use std::sync::Arc;

use grove_engine::Tree;

use crate::error::{Error, Result, hex};

/// A named `i64` stored in the database, from [`Db::counter`](crate::Db::counter), that
/// many threads can add to at once without losing an increment. It starts at 0.
/// A handle: cheap to clone, `Send` and `Sync`.
///
/// # Example
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = grove_collections::open(dir.path())?;
/// let visits = db.counter("visits")?;
/// visits.add(1)?;
/// assert_eq!(visits.add(2)?, 3);
/// assert_eq!(visits.get()?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Counter {
    /// The tree every counter of the database lives in, keyed by name.
    pub(crate) tree: Tree,
    pub(crate) name: Arc<str>,
}

impl Counter {
    pub(crate) fn new(tree: Tree, name: &str) -> Counter {
        Counter { tree, name: Arc::from(name) }
    }

    /// The counter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn decode(&self, bytes: Option<&[u8]>) -> Result<i64> {
        match bytes {
            None => Ok(0),
            Some(bytes) => {
                <[u8; 8]>::try_from(bytes).map(i64::from_be_bytes).map_err(|_| Error::Value {
                    collection: self.name.to_string(),
                    key: hex(self.name.as_bytes()),
                    reason: format!("a counter is 8 bytes, found {}", bytes.len()),
                })
            }
        }
    }

    /// The counter's value.
    ///
    /// # Errors
    /// [`Error::Value`] if the stored bytes are not a counter; the engine's errors.
    pub fn get(&self) -> Result<i64> {
        self.decode(self.tree.get(self.name.as_bytes())?.as_deref())
    }

    /// Adds `delta` (negative to subtract) atomically; returns the new value.
    ///
    /// # Errors
    /// [`Error::Overflow`] if the sum does not fit an `i64` (nothing is written); as
    /// [`Counter::get`].
    pub fn add(&self, delta: i64) -> Result<i64> {
        loop {
            let stored = self.tree.get(self.name.as_bytes())?;
            let current = self.decode(stored.as_deref())?;
            let new = current.checked_add(delta).ok_or_else(|| Error::Overflow {
                counter: self.name.to_string(),
                current,
                delta,
            })?;
            let swapped = self.tree.compare_and_swap(
                self.name.as_bytes(),
                stored.as_ref(),
                Some(new.to_be_bytes()),
            )?;
            if swapped.is_ok() {
                return Ok(new);
            }
        }
    }

    /// Sets the counter to `value`; returns the value it had.
    ///
    /// # Errors
    /// As [`Counter::get`].
    pub fn set(&self, value: i64) -> Result<i64> {
        let old = self.tree.insert(self.name.as_bytes(), value.to_be_bytes())?;
        self.decode(old.as_deref())
    }
}
