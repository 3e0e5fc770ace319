//! [`Set`]: an ordered, persistent set of `T`.

use std::{borrow::Borrow, fmt, marker::PhantomData, ops::RangeBounds, sync::Arc};

use grove_engine::{Batch, Tree};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::{Error, Result},
    key,
    watch::SetWatch,
};

/// An ordered set of `T`, stored in the database, from [`Db::set`](crate::Db::set).
/// Elements are ordered by `T`'s `Ord`, and stored as keys alone (no value bytes).
/// A handle: cheap to clone, `Send` and `Sync`.
///
/// # Example
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = grove_collections::open(dir.path())?;
/// let tags = db.set::<String>("tags")?;
/// assert!(tags.insert("rust")?);
/// assert!(!tags.insert("rust")?); // already there
/// tags.insert("db")?;
/// let all: Vec<String> = tags.iter().collect::<Result<_, _>>()?;
/// assert_eq!(all, ["db", "rust"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Set<T> {
    pub(crate) tree: Tree,
    pub(crate) name: Arc<str>,
    types: PhantomData<fn() -> T>,
}

impl<T> Clone for Set<T> {
    fn clone(&self) -> Self {
        Set { tree: self.tree.clone(), name: self.name.clone(), types: PhantomData }
    }
}

impl<T> fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Set")
            .field("name", &self.name)
            .field("element", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T> Set<T>
where
    T: Serialize + DeserializeOwned,
{
    pub(crate) fn new(tree: Tree, name: &str) -> Self {
        Set { tree, name: Arc::from(name), types: PhantomData }
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn key_bytes<Q: Serialize + ?Sized>(&self, element: &Q) -> Result<Vec<u8>> {
        key::to_key(element)
            .map_err(|source| Error::Key { collection: self.name.to_string(), source })
    }

    /// Adds `element`; `true` if it was not there.
    ///
    /// # Errors
    /// [`Error::Key`] if the element cannot be encoded; the engine's errors.
    pub fn insert<Q>(&self, element: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tree.insert(self.key_bytes(element)?, [])?.is_none())
    }

    /// Removes `element`; `true` if it was there.
    ///
    /// # Errors
    /// As [`Set::insert`].
    pub fn remove<Q>(&self, element: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tree.remove(self.key_bytes(element)?)?.is_some())
    }

    /// Whether `element` is in the set.
    ///
    /// # Errors
    /// As [`Set::insert`].
    pub fn contains<Q>(&self, element: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tree.contains_key(self.key_bytes(element)?)?)
    }

    /// Adds every element of `elements` in one atomic batch.
    ///
    /// # Errors
    /// As [`Set::insert`]; then nothing was written.
    pub fn extend<I, Q>(&self, elements: I) -> Result<()>
    where
        I: IntoIterator<Item = Q>,
        T: Borrow<Q>,
        Q: Serialize,
    {
        let mut batch = Batch::default();
        for element in elements {
            batch.insert(&self.tree, self.key_bytes(&element)?, []);
        }
        Ok(self.tree.apply_batch(batch)?)
    }

    /// Every element, in order; double-ended.
    pub fn iter(&self) -> SetIter<T> {
        SetIter::new(self.name.clone(), self.tree.iter())
    }

    /// The elements in `range`, in order; double-ended.
    pub fn range<Q, R>(&self, range: R) -> SetIter<T>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
        R: RangeBounds<Q>,
    {
        match key::to_key_range(&range) {
            Ok(bounds) => SetIter::new(self.name.clone(), self.tree.range::<Vec<u8>, _>(bounds)),
            Err(source) => SetIter::failed(
                self.name.clone(),
                Error::Key { collection: self.name.to_string(), source },
            ),
        }
    }

    /// The smallest element.
    ///
    /// # Errors
    /// [`Error::Key`] if it does not decode as a `T`; the engine's errors.
    pub fn first(&self) -> Result<Option<T>> {
        self.iter().next().transpose()
    }

    /// The largest element.
    ///
    /// # Errors
    /// As [`Set::first`].
    pub fn last(&self) -> Result<Option<T>> {
        self.iter().next_back().transpose()
    }

    /// Removes and returns the smallest element.
    ///
    /// # Errors
    /// As [`Set::first`].
    pub fn pop_first(&self) -> Result<Option<T>> {
        self.decode(self.tree.pop_first()?)
    }

    /// Removes and returns the largest element.
    ///
    /// # Errors
    /// As [`Set::first`].
    pub fn pop_last(&self) -> Result<Option<T>> {
        self.decode(self.tree.pop_last()?)
    }

    fn decode(
        &self,
        entry: Option<(grove_engine::Bytes, grove_engine::Bytes)>,
    ) -> Result<Option<T>> {
        entry
            .map(|(key, _)| {
                key::from_key(&key)
                    .map_err(|source| Error::Key { collection: self.name.to_string(), source })
            })
            .transpose()
    }

    /// A subscription to every change of the set from now on, decoded.
    pub fn watch(&self) -> SetWatch<T> {
        SetWatch::new(self.name.clone(), self.tree.watch_prefix([]))
    }

    /// The number of elements, in O(1).
    ///
    /// # Errors
    /// The engine's errors.
    pub fn len(&self) -> Result<usize> {
        Ok(self.tree.len()?)
    }

    /// Whether the set is empty.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.tree.is_empty()?)
    }

    /// Removes every element, atomically.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn clear(&self) -> Result<()> {
        Ok(self.tree.clear()?)
    }
}

/// An iterator over a [`Set`]'s elements in order, decoded as they are taken.
/// Double-ended.
pub struct SetIter<T> {
    collection: Arc<str>,
    inner: Option<grove_engine::Iter>,
    failed: Option<Error>,
    types: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for SetIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetIter").field("collection", &self.collection).finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> SetIter<T> {
    fn new(collection: Arc<str>, inner: grove_engine::Iter) -> Self {
        SetIter { collection, inner: Some(inner), failed: None, types: PhantomData }
    }

    fn failed(collection: Arc<str>, error: Error) -> Self {
        SetIter { collection, inner: None, failed: Some(error), types: PhantomData }
    }

    fn decode(
        &self,
        entry: grove_engine::Result<(grove_engine::Bytes, grove_engine::Bytes)>,
    ) -> Result<T> {
        let (key, _) = entry?;
        key::from_key(&key)
            .map_err(|source| Error::Key { collection: self.collection.to_string(), source })
    }
}

impl<T: DeserializeOwned> Iterator for SetIter<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.failed.take() {
            return Some(Err(error));
        }
        let entry = self.inner.as_mut()?.next()?;
        Some(self.decode(entry))
    }
}

impl<T: DeserializeOwned> DoubleEndedIterator for SetIter<T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.failed.take() {
            return Some(Err(error));
        }
        let entry = self.inner.as_mut()?.next_back()?;
        Some(self.decode(entry))
    }
}
