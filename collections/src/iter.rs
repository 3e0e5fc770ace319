//! [`Iter`]: a collection's entries in key order, decoded as they are taken.

use std::{fmt, marker::PhantomData, sync::Arc};

use serde::de::DeserializeOwned;

use crate::{
    Types,
    error::{Error, Result, hex},
    key,
    value::{self, Codec},
};

/// An iterator over a [`Map`](crate::Map)'s entries in key order, from `iter`, `range` and
/// `prefix`. Double-ended. Each entry is decoded when it is taken; one that does not
/// decode is an `Err` item, and the iterator goes on after it. Like the engine's
/// iterators it is not a snapshot: an entry written after the iterator passed its place is
/// not seen, one written ahead of it may be.
pub struct Iter<K, V, C> {
    collection: Arc<str>,
    inner: Option<grove_engine::Iter>,
    /// An error to yield first (a bound that could not be encoded), ending the iterator.
    failed: Option<Error>,
    types: Types<K, V, C>,
}

impl<K, V, C> fmt::Debug for Iter<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("collection", &self.collection).finish_non_exhaustive()
    }
}

impl<K, V, C> Iter<K, V, C>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
    C: Codec,
{
    pub(crate) fn new(collection: Arc<str>, inner: grove_engine::Iter) -> Self {
        Iter { collection, inner: Some(inner), failed: None, types: PhantomData }
    }

    pub(crate) fn failed(collection: Arc<str>, error: Error) -> Self {
        Iter { collection, inner: None, failed: Some(error), types: PhantomData }
    }

    fn decode(
        &self,
        entry: grove_engine::Result<(grove_engine::Bytes, grove_engine::Bytes)>,
    ) -> Result<(K, V)> {
        let (key, value) = entry?;
        let decoded = key::from_key(&key)
            .map_err(|source| Error::Key { collection: self.collection.to_string(), source })?;
        let value = value::decode::<C, V>(&value, 0).map_err(|reason| Error::Value {
            collection: self.collection.to_string(),
            key: hex(&key),
            reason,
        })?;
        Ok((decoded, value))
    }
}

impl<K, V, C> Iterator for Iter<K, V, C>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
    C: Codec,
{
    type Item = Result<(K, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.failed.take() {
            return Some(Err(error));
        }
        let entry = self.inner.as_mut()?.next()?;
        Some(self.decode(entry))
    }
}

impl<K, V, C> DoubleEndedIterator for Iter<K, V, C>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
    C: Codec,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.failed.take() {
            return Some(Err(error));
        }
        let entry = self.inner.as_mut()?.next_back()?;
        Some(self.decode(entry))
    }
}
