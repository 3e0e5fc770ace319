//! Typed transactions: the engine's serializable transactions, over collections.
//!
//! [`Db::transaction`] runs a closure on a [`Transaction`]; `tx.map(&map)`, `tx.set(&set)`,
//! `tx.queue(&queue)` and `tx.counter(&counter)` give views of those collections that read
//! the transaction's snapshot (with its own writes over it) and write at its commit. All of
//! them commit together, or none. As with the engine, the closure **may run more than
//! once** when another write changes what it read.

use std::{borrow::Borrow, cell::RefCell, fmt, ops::RangeBounds, sync::Arc};

use grove_engine::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Counter, Db, Map, Queue, Set,
    error::{Error, Result},
    key,
    queue::Signal,
    value::Codec,
};

/// Why [`Db::transaction`] did not commit. Nothing was written.
#[derive(Debug)]
pub enum TransactionError<E> {
    /// The closure returned this, unchanged.
    Abort(E),
    /// Other writers kept changing what the transaction read: it ran `attempts` times
    /// (`Config::transaction_attempts`) without committing.
    Conflict {
        /// How many times the closure ran.
        attempts: u32,
    },
    /// The typed layer or the engine failed: a key or value that does not decode, I/O...
    Failed(Error),
}

impl<E> From<Error> for TransactionError<E> {
    fn from(error: Error) -> Self {
        TransactionError::Failed(error)
    }
}

impl<E> From<grove_engine::Error> for TransactionError<E> {
    fn from(error: grove_engine::Error) -> Self {
        TransactionError::Failed(Error::Engine(error))
    }
}

impl<E: fmt::Display> fmt::Display for TransactionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::Abort(error) => write!(f, "transaction aborted: {error}"),
            TransactionError::Conflict { attempts } => {
                write!(f, "transaction gave up after {attempts} conflicting attempts")
            }
            TransactionError::Failed(error) => write!(f, "transaction failed: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TransactionError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransactionError::Abort(error) => Some(error),
            TransactionError::Conflict { .. } => None,
            TransactionError::Failed(error) => Some(error),
        }
    }
}

/// What the engine's transaction carries out of the closure besides its errors: the user's
/// abort, or a typed error that is not the engine's.
enum Inner<E> {
    User(E),
    Typed(Error),
}

/// One run of a [`Db::transaction`] closure. Get typed views of collections from it.
pub struct Transaction<'t> {
    inner: &'t grove_engine::Transaction<'t>,
    /// Queues pushed to: their consumers are woken after the commit.
    pushed: RefCell<Vec<Arc<Signal>>>,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<'t> Transaction<'t> {
    /// `map` as this transaction sees it.
    pub fn map<'a, K, V, C>(&'a self, map: &'a Map<K, V, C>) -> TxMap<'a, K, V, C> {
        TxMap { tx: self, map }
    }

    /// `set` as this transaction sees it.
    pub fn set<'a, T>(&'a self, set: &'a Set<T>) -> TxSet<'a, T> {
        TxSet { tx: self, set }
    }

    /// `queue` as this transaction sees it.
    pub fn queue<'a, T, C>(&'a self, queue: &'a Queue<T, C>) -> TxQueue<'a, T, C> {
        TxQueue { tx: self, queue }
    }

    /// `counter` as this transaction sees it.
    pub fn counter<'a>(&'a self, counter: &'a Counter) -> TxCounter<'a> {
        TxCounter { tx: self, counter }
    }

    /// Makes the commit durable before [`Db::transaction`] returns.
    pub fn flush_on_commit(&self) {
        self.inner.flush_on_commit();
    }
}

/// A [`Map`] inside a transaction.
pub struct TxMap<'a, K, V, C> {
    tx: &'a Transaction<'a>,
    map: &'a Map<K, V, C>,
}

impl<K, V, C> TxMap<'_, K, V, C>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
    C: Codec,
{
    /// As [`Map::get`].
    ///
    /// # Errors
    /// As [`Map::get`].
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = self.map.key_bytes(key)?;
        let stored = self.tx.inner.get(&self.map.tree, &key)?;
        stored.map(|bytes| self.map.decode_value(&key, &bytes)).transpose()
    }

    /// As [`Map::contains_key`].
    ///
    /// # Errors
    /// As [`Map::get`].
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tx.inner.contains_key(&self.map.tree, self.map.key_bytes(key)?)?)
    }

    /// As [`Map::insert`], at commit.
    ///
    /// # Errors
    /// As [`Map::insert`].
    pub fn insert<Q, W>(&self, key: &Q, value: &W) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        V: Borrow<W>,
        Q: Serialize + ?Sized,
        W: Serialize + ?Sized,
    {
        let key = self.map.key_bytes(key)?;
        let value = self.map.value_bytes(&key, value)?;
        let old = self.tx.inner.insert(&self.map.tree, &key, value)?;
        old.map(|bytes| self.map.decode_value(&key, &bytes)).transpose()
    }

    /// As [`Map::remove`], at commit.
    ///
    /// # Errors
    /// As [`Map::get`].
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = self.map.key_bytes(key)?;
        let old = self.tx.inner.remove(&self.map.tree, &key)?;
        old.map(|bytes| self.map.decode_value(&key, &bytes)).transpose()
    }

    /// The entries in `range`, in key order, as the transaction sees them (read into a
    /// vector: the part of the range read is what the transaction depends on, all of it).
    ///
    /// # Errors
    /// As [`Map::get`]; [`Error::Key`] for a stored key that does not decode.
    pub fn range<Q, R>(&self, range: R) -> Result<Vec<(K, V)>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
        R: RangeBounds<Q>,
    {
        let (lo, hi) = key::to_key_range(&range)
            .map_err(|source| Error::Key { collection: self.map.name.to_string(), source })?;
        self.tx
            .inner
            .range::<Vec<u8>, _>(&self.map.tree, (lo, hi))
            .map(|e| self.decode(e))
            .collect()
    }

    /// The entry with the smallest key, as the transaction sees it (a read of the range
    /// up to it).
    ///
    /// # Errors
    /// As [`TxMap::range`].
    pub fn first(&self) -> Result<Option<(K, V)>> {
        self.tx.inner.iter(&self.map.tree).next().map(|e| self.decode(e)).transpose()
    }

    /// The entry with the largest key, as the transaction sees it.
    ///
    /// # Errors
    /// As [`TxMap::range`].
    pub fn last(&self) -> Result<Option<(K, V)>> {
        self.tx.inner.iter(&self.map.tree).next_back().map(|e| self.decode(e)).transpose()
    }

    fn decode(&self, entry: grove_engine::Result<(Bytes, Bytes)>) -> Result<(K, V)> {
        let (key, value) = entry?;
        let decoded = key::from_key(&key)
            .map_err(|source| Error::Key { collection: self.map.name.to_string(), source })?;
        Ok((decoded, self.map.decode_value(&key, &value)?))
    }
}

/// A [`Set`] inside a transaction.
pub struct TxSet<'a, T> {
    tx: &'a Transaction<'a>,
    set: &'a Set<T>,
}

impl<T> TxSet<'_, T>
where
    T: Serialize + DeserializeOwned,
{
    /// As [`Set::insert`], at commit.
    ///
    /// # Errors
    /// As [`Set::insert`].
    pub fn insert<Q>(&self, element: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tx.inner.insert(&self.set.tree, self.set.key_bytes(element)?, [])?.is_none())
    }

    /// As [`Set::remove`], at commit.
    ///
    /// # Errors
    /// As [`Set::insert`].
    pub fn remove<Q>(&self, element: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tx.inner.remove(&self.set.tree, self.set.key_bytes(element)?)?.is_some())
    }

    /// As [`Set::contains`].
    ///
    /// # Errors
    /// As [`Set::insert`].
    pub fn contains<Q>(&self, element: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.tx.inner.contains_key(&self.set.tree, self.set.key_bytes(element)?)?)
    }

    /// Every element, in order, as the transaction sees them.
    ///
    /// # Errors
    /// As [`Set::first`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.tx
            .inner
            .iter(&self.set.tree)
            .map(|entry| {
                let (key, _) = entry?;
                key::from_key(&key)
                    .map_err(|source| Error::Key { collection: self.set.name.to_string(), source })
            })
            .collect()
    }
}

/// A [`Queue`] inside a transaction.
pub struct TxQueue<'a, T, C> {
    tx: &'a Transaction<'a>,
    queue: &'a Queue<T, C>,
}

impl<T, C> TxQueue<'_, T, C>
where
    T: Serialize + DeserializeOwned,
    C: Codec,
{
    /// As [`Queue::push`], at commit; consumers are woken after it.
    ///
    /// # Errors
    /// As [`Queue::push`].
    pub fn push<W>(&self, item: &W) -> Result<()>
    where
        T: Borrow<W>,
        W: Serialize + ?Sized,
    {
        let bytes = self.queue.encode(item)?;
        let id = self.queue.engine.generate_id()?;
        self.tx.inner.insert(&self.queue.ready, id.to_be_bytes(), bytes)?;
        self.tx.pushed.borrow_mut().push(self.queue.signal.clone());
        Ok(())
    }

    /// As [`Queue::pop`], at commit: another consumer taking the same item first makes
    /// the transaction run again.
    ///
    /// # Errors
    /// As [`Queue::pop`].
    pub fn pop(&self) -> Result<Option<T>> {
        let Some(entry) = self.tx.inner.iter(&self.queue.ready).next() else { return Ok(None) };
        let (key, bytes) = entry?;
        self.tx.inner.remove(&self.queue.ready, &key)?;
        self.queue.decode(&key, &bytes).map(Some)
    }
}

/// A [`Counter`] inside a transaction.
pub struct TxCounter<'a> {
    tx: &'a Transaction<'a>,
    counter: &'a Counter,
}

impl TxCounter<'_> {
    /// As [`Counter::get`].
    ///
    /// # Errors
    /// As [`Counter::get`].
    pub fn get(&self) -> Result<i64> {
        let stored = self.tx.inner.get(&self.counter.tree, self.counter.name.as_bytes())?;
        self.counter.decode(stored.as_deref())
    }

    /// As [`Counter::add`], at commit.
    ///
    /// # Errors
    /// As [`Counter::add`].
    pub fn add(&self, delta: i64) -> Result<i64> {
        let current = self.get()?;
        let new = current.checked_add(delta).ok_or_else(|| Error::Overflow {
            counter: self.counter.name.to_string(),
            current,
            delta,
        })?;
        self.tx.inner.insert(
            &self.counter.tree,
            self.counter.name.as_bytes(),
            new.to_be_bytes(),
        )?;
        Ok(new)
    }
}

impl Db {
    /// Runs `f` as a serializable transaction over any of this database's collections and
    /// commits what it wrote atomically: all of it or none, also across a crash.
    ///
    /// `f` reads from a snapshot taken when it starts; if another write changes something
    /// it read before it commits, **`f` runs again** from the start, so it should have no
    /// effect besides its reads and writes through the transaction. No lock is held while
    /// it runs. Return `Err(TransactionError::Abort(your_error))` to give up: nothing is
    /// written and your error comes back unchanged; the typed layer's errors convert with
    /// `?`.
    ///
    /// # Errors
    /// [`TransactionError::Abort`], [`TransactionError::Conflict`] past the attempt limit,
    /// [`TransactionError::Failed`] for the typed layer's and the engine's errors.
    ///
    /// # Example
    /// ```
    /// use grove_collections::TransactionError;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let db = grove_collections::open(dir.path())?;
    /// let stock = db.map::<String, u32>("stock")?;
    /// let orders = db.queue::<String>("orders")?;
    /// stock.insert("apple", &1)?;
    ///
    /// let order = |db: &grove_collections::Db| db.transaction(|tx| {
    ///     let (stock, orders) = (tx.map(&stock), tx.queue(&orders));
    ///     let left = stock.get("apple")?.unwrap_or(0);
    ///     if left == 0 {
    ///         return Err(TransactionError::Abort("sold out"));
    ///     }
    ///     stock.insert("apple", &(left - 1))?;
    ///     orders.push("apple")?;
    ///     Ok(())
    /// });
    /// assert!(order(&db).is_ok());
    /// assert!(matches!(order(&db), Err(TransactionError::Abort("sold out"))));
    /// assert_eq!((stock.get("apple")?, orders.len()?), (Some(0), 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transaction<T, E, F>(&self, mut f: F) -> std::result::Result<T, TransactionError<E>>
    where
        F: FnMut(&Transaction<'_>) -> std::result::Result<T, TransactionError<E>>,
    {
        let mut pushed = Vec::new();
        let result = self.engine().transaction(|inner| {
            let tx = Transaction { inner, pushed: RefCell::new(Vec::new()) };
            let outcome = f(&tx);
            pushed = tx.pushed.into_inner();
            match outcome {
                Ok(value) => Ok(value),
                Err(TransactionError::Abort(error)) => {
                    Err(grove_engine::TransactionError::Abort(Inner::User(error)))
                }
                // The engine's own errors go back to it: it retries an expired snapshot.
                Err(TransactionError::Failed(Error::Engine(error))) => {
                    Err(grove_engine::TransactionError::Storage(error))
                }
                Err(TransactionError::Failed(error)) => {
                    Err(grove_engine::TransactionError::Abort(Inner::Typed(error)))
                }
                Err(TransactionError::Conflict { attempts }) => {
                    Err(grove_engine::TransactionError::Conflict { attempts })
                }
            }
        });
        match result {
            Ok(value) => {
                for signal in pushed {
                    signal.notify();
                }
                Ok(value)
            }
            Err(grove_engine::TransactionError::Abort(Inner::User(error))) => {
                Err(TransactionError::Abort(error))
            }
            Err(grove_engine::TransactionError::Abort(Inner::Typed(error))) => {
                Err(TransactionError::Failed(error))
            }
            Err(grove_engine::TransactionError::Conflict { attempts }) => {
                Err(TransactionError::Conflict { attempts })
            }
            Err(grove_engine::TransactionError::Storage(error)) => {
                Err(TransactionError::Failed(Error::Engine(error)))
            }
        }
    }
}
