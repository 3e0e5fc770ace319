//! [`Map`]: an ordered, persistent map from `K` to `V`.

use std::{borrow::Borrow, fmt, marker::PhantomData, ops::RangeBounds, sync::Arc};

use grove_engine::{Batch, Tree};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    KeyPrefix, Types,
    error::{Error, Result, hex},
    iter::Iter,
    key,
    value::{self, Bincode, Codec},
    watch::MapWatch,
};

/// An ordered map from `K` to `V`, stored in the database, from
/// [`Db::map`](crate::Db::map). Keys are ordered by `K`'s `Ord` (the key codec keeps it
/// in bytes); values are stored with codec `C`.
///
/// Every method reads or writes the database directly: there is nothing to load or save.
/// A write is durable once a later [`Db::flush`](crate::Db::flush) returns (or within the
/// database's flush interval). `Map` is a handle: cheap to clone, `Send` and `Sync`.
///
/// Keys and values are taken by reference, as any type they borrow as: a `&str` for a
/// `String`, a `&[u8]` for a `Vec<u8>`.
///
/// # Example
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = grove_collections::open(dir.path())?;
/// let scores = db.map::<(String, u32), f64>("scores")?;
/// scores.insert(&("ann".to_string(), 1), &9.5)?;
/// scores.insert(&("ann".to_string(), 2), &7.0)?;
/// scores.insert(&("bob".to_string(), 1), &8.0)?;
///
/// let ann: Vec<f64> = scores.prefix(&("ann",)).map(|e| e.map(|(_, s)| s)).collect::<Result<_, _>>()?;
/// assert_eq!(ann, [9.5, 7.0]);
/// assert_eq!(scores.last()?.map(|(k, _)| k), Some(("bob".to_string(), 1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Map<K, V, C = Bincode> {
    pub(crate) tree: Tree,
    pub(crate) name: Arc<str>,
    types: Types<K, V, C>,
}

impl<K, V, C> Clone for Map<K, V, C> {
    fn clone(&self) -> Self {
        Map { tree: self.tree.clone(), name: self.name.clone(), types: PhantomData }
    }
}

impl<K, V, C> fmt::Debug for Map<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("name", &self.name)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

/// The value was not what [`Map::compare_and_swap`] expected: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareAndSwapError<V> {
    /// The value the key has now (`None`: absent).
    pub current: Option<V>,
    /// The value that was not written.
    pub proposed: Option<V>,
}

impl<V: fmt::Debug> fmt::Display for CompareAndSwapError<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "compare and swap failed: the current value is {:?}", self.current)
    }
}

impl<V: fmt::Debug> std::error::Error for CompareAndSwapError<V> {}

impl<K, V, C> Map<K, V, C>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
    C: Codec,
{
    pub(crate) fn new(tree: Tree, name: &str) -> Self {
        Map { tree, name: Arc::from(name), types: PhantomData }
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn key_bytes<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Vec<u8>> {
        key::to_key(key).map_err(|source| Error::Key { collection: self.name.to_string(), source })
    }

    pub(crate) fn value_bytes<W: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &W,
    ) -> Result<Vec<u8>> {
        value::encode::<C, W>(value, 0).map_err(|reason| self.value_error(key, reason))
    }

    pub(crate) fn decode_value(&self, key: &[u8], bytes: &[u8]) -> Result<V> {
        value::decode::<C, V>(bytes, 0).map_err(|reason| self.value_error(key, reason))
    }

    fn value_error(&self, key: &[u8], reason: String) -> Error {
        Error::Value { collection: self.name.to_string(), key: hex(key), reason }
    }

    /// The value of `key`, if it is in the map.
    ///
    /// # Errors
    /// [`Error::Key`] if the key cannot be encoded; [`Error::Value`] if the stored value
    /// does not decode as a `V`; the engine's errors.
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = self.key_bytes(key)?;
        // Decoded where it is stored: the value's bytes are never copied.
        self.tree.get_with(&key, |bytes| self.decode_value(&key, bytes))?.transpose()
    }

    /// Whether `key` is in the map.
    ///
    /// # Errors
    /// As [`Map::get`].
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tree.contains_key(self.key_bytes(key)?)?)
    }

    /// Sets `key` to `value`; returns the value it had.
    ///
    /// # Errors
    /// As [`Map::get`]; [`Error::Value`] also if `value` cannot be encoded.
    pub fn insert<Q, W>(&self, key: &Q, value: &W) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        V: Borrow<W>,
        Q: Serialize + ?Sized,
        W: Serialize + ?Sized,
    {
        let key = self.key_bytes(key)?;
        let value = self.value_bytes(&key, value)?;
        match self.tree.insert(&key, value)? {
            Some(old) => Ok(Some(self.decode_value(&key, &old)?)),
            None => Ok(None),
        }
    }

    /// Removes `key`; returns the value it had.
    ///
    /// # Errors
    /// As [`Map::get`].
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = self.key_bytes(key)?;
        match self.tree.remove(&key)? {
            Some(old) => Ok(Some(self.decode_value(&key, &old)?)),
            None => Ok(None),
        }
    }

    /// Sets `key` to `new` (`None`: removes it) if its value is `old` (`None`: absent),
    /// comparing decoded values; otherwise writes nothing and says what the value is.
    ///
    /// # Errors
    /// As [`Map::insert`].
    pub fn compare_and_swap<Q>(
        &self,
        key: &Q,
        old: Option<&V>,
        new: Option<&V>,
    ) -> Result<std::result::Result<(), CompareAndSwapError<V>>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
        V: PartialEq + Clone,
    {
        let key = self.key_bytes(key)?;
        let proposed = new.map(|v| self.value_bytes(&key, v)).transpose()?;
        loop {
            let stored = self.tree.get(&key)?;
            let current = stored.as_ref().map(|b| self.decode_value(&key, b)).transpose()?;
            if current.as_ref() != old {
                return Ok(Err(CompareAndSwapError { current, proposed: new.cloned() }));
            }
            // Swap against the exact bytes read: a concurrent change is retried.
            if self.tree.compare_and_swap(&key, stored.as_ref(), proposed.as_ref())?.is_ok() {
                return Ok(Ok(()));
            }
        }
    }

    /// Sets `key` to `f(current value)` (`None` in or out: absent) atomically, and returns
    /// the new value. `f` may run more than once when other writers change the key
    /// meanwhile, so it should have no other effect.
    ///
    /// # Errors
    /// As [`Map::insert`].
    pub fn update<Q, F>(&self, key: &Q, mut f: F) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
        F: FnMut(Option<V>) -> Option<V>,
    {
        let key = self.key_bytes(key)?;
        loop {
            let stored = self.tree.get(&key)?;
            let current = stored.as_ref().map(|b| self.decode_value(&key, b)).transpose()?;
            let new = f(current);
            let bytes = new.as_ref().map(|v| self.value_bytes(&key, v)).transpose()?;
            if self.tree.compare_and_swap(&key, stored.as_ref(), bytes.as_ref())?.is_ok() {
                return Ok(new);
            }
        }
    }

    /// Inserts every entry of `entries` in one atomic batch: other threads, and the
    /// database after a crash, see all of them or none. Later entries win over earlier
    /// ones with the same key.
    ///
    /// # Errors
    /// As [`Map::insert`]; then nothing was written.
    pub fn extend<I, Q, W>(&self, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (Q, W)>,
        K: Borrow<Q>,
        Q: Serialize,
        W: Borrow<V>,
    {
        let mut batch = Batch::default();
        for (key, value) in entries {
            let key = self.key_bytes(&key)?;
            let value = self.value_bytes(&key, value.borrow())?;
            batch.insert(&self.tree, key, value);
        }
        Ok(self.tree.apply_batch(batch)?)
    }

    /// The entries whose keys lie in `range`, in key order; double-ended.
    ///
    /// The bounds may be of any type the key borrows as. As with `BTreeMap::range`, `str`
    /// bounds over `String` keys are written as a pair of `Bound`s (`"b".."c"` is a range
    /// of `&str`, which a `String` does not borrow as), or as `String` ranges:
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = grove_collections::open(dir.path())?;
    /// let words = db.map::<String, u32>("words")?;
    /// for (word, n) in [("apple", 1), ("banana", 2), ("cherry", 3)] {
    ///     words.insert(word, &n)?;
    /// }
    /// use std::ops::Bound::{Excluded, Included};
    /// let b_to_c = words.range::<str, _>((Included("b"), Excluded("c"))).count();
    /// assert_eq!(b_to_c, 1);
    /// let from_b: Vec<u32> = words.range("b".to_string()..).map(|e| e.map(|(_, n)| n)).collect::<Result<_, _>>()?;
    /// assert_eq!(from_b, [2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn range<Q, R>(&self, range: R) -> Iter<K, V, C>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
        R: RangeBounds<Q>,
    {
        match key::to_key_range(&range) {
            Ok(bounds) => Iter::new(self.name.clone(), self.tree.range::<Vec<u8>, _>(bounds)),
            Err(source) => Iter::failed(
                self.name.clone(),
                Error::Key { collection: self.name.to_string(), source },
            ),
        }
    }

    /// Every entry, in key order; double-ended.
    pub fn iter(&self) -> Iter<K, V, C> {
        Iter::new(self.name.clone(), self.tree.iter())
    }

    /// The entries whose keys start with the leading fields `prefix` (a tuple of references
    /// to them, see [`KeyPrefix`]), in key order; double-ended.
    pub fn prefix<P>(&self, prefix: &P) -> Iter<K, V, C>
    where
        K: KeyPrefix<P>,
        P: Serialize,
    {
        match self.key_bytes(prefix) {
            Ok(bytes) => Iter::new(self.name.clone(), self.tree.scan_prefix(bytes)),
            Err(error) => Iter::failed(self.name.clone(), error),
        }
    }

    /// The entry with the smallest key.
    ///
    /// # Errors
    /// [`Error::Key`] or [`Error::Value`] if it does not decode; the engine's errors.
    pub fn first(&self) -> Result<Option<(K, V)>> {
        self.iter().next().transpose()
    }

    /// The entry with the largest key.
    ///
    /// # Errors
    /// As [`Map::first`].
    pub fn last(&self) -> Result<Option<(K, V)>> {
        self.iter().next_back().transpose()
    }

    /// Removes and returns the entry with the smallest key.
    ///
    /// # Errors
    /// As [`Map::first`].
    pub fn pop_first(&self) -> Result<Option<(K, V)>> {
        self.decode_entry(self.tree.pop_first()?)
    }

    /// Removes and returns the entry with the largest key.
    ///
    /// # Errors
    /// As [`Map::first`].
    pub fn pop_last(&self) -> Result<Option<(K, V)>> {
        self.decode_entry(self.tree.pop_last()?)
    }

    fn decode_entry(
        &self,
        entry: Option<(grove_engine::Bytes, grove_engine::Bytes)>,
    ) -> Result<Option<(K, V)>> {
        let Some((key, value)) = entry else { return Ok(None) };
        let decoded = key::from_key(&key)
            .map_err(|source| Error::Key { collection: self.name.to_string(), source })?;
        Ok(Some((decoded, self.decode_value(&key, &value)?)))
    }

    /// A subscription to every change of the map from now on, decoded: each insert and
    /// remove, each entry of an `extend` or transaction, and clears.
    pub fn watch(&self) -> MapWatch<K, V, C> {
        MapWatch::new(self.name.clone(), self.tree.watch_prefix([]))
    }

    /// A subscription to the changes of keys whose leading fields are `prefix` (see
    /// [`Map::prefix`]).
    ///
    /// # Errors
    /// [`Error::Key`] if the prefix cannot be encoded.
    pub fn watch_prefix<P>(&self, prefix: &P) -> Result<MapWatch<K, V, C>>
    where
        K: KeyPrefix<P>,
        P: Serialize,
    {
        let bytes = self.key_bytes(prefix)?;
        Ok(MapWatch::new(self.name.clone(), self.tree.watch_prefix(bytes)))
    }

    /// The number of entries, in O(1).
    ///
    /// # Errors
    /// The engine's errors.
    pub fn len(&self) -> Result<usize> {
        Ok(self.tree.len()?)
    }

    /// Whether the map has no entries.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.tree.is_empty()?)
    }

    /// Removes every entry, atomically.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn clear(&self) -> Result<()> {
        Ok(self.tree.clear()?)
    }
}
