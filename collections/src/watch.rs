//! Typed subscriptions: [`Map::watch`](crate::Map::watch) and
//! [`Set::watch`](crate::Set::watch), over the engine's `Tree::watch_prefix`.
//!
//! The engine delivers a batch (an `extend`, a transaction) as one event; here it comes
//! out as one typed event per key, in key order. A subscriber never blocks writers: one
//! that falls behind is told how many events it missed.

use std::{collections::VecDeque, fmt, marker::PhantomData, sync::Arc, time::Duration};

use grove_engine::{Bytes, Event, Subscriber};
use serde::de::DeserializeOwned;

use crate::{
    Types,
    error::{Error, Result, hex},
    key,
    value::{self, Codec},
};

/// A change to a [`Map`](crate::Map), from [`MapWatch`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MapEvent<K, V> {
    /// `key` was set to `value`.
    Insert {
        /// The key.
        key: K,
        /// Its new value.
        value: V,
    },
    /// `key` was removed.
    Remove {
        /// The key.
        key: K,
    },
    /// Every entry was removed.
    Cleared,
    /// The subscriber fell behind: `missed` engine events (a batch counts once) were
    /// dropped. Read the map again to catch up.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// A change to a [`Set`](crate::Set), from [`SetWatch`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SetEvent<T> {
    /// The element was added (or added again).
    Insert(T),
    /// The element was removed.
    Remove(T),
    /// Every element was removed.
    Cleared,
    /// The subscriber fell behind: `missed` engine events were dropped.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// An engine event, flattened: one key's change, or a whole-collection one.
enum Change {
    Key(Bytes, Option<Bytes>),
    Cleared,
    Lagged(u64),
}

/// The engine subscription and the changes of its last batch not yet handed out.
struct Flattened {
    subscriber: Subscriber,
    pending: VecDeque<Change>,
}

impl Flattened {
    fn take(&mut self, event: Option<Event>) -> Option<Change> {
        if let Some(change) = self.pending.pop_front() {
            return Some(change);
        }
        match event? {
            Event::Insert { key, value } => Some(Change::Key(key, Some(value))),
            Event::Remove { key } => Some(Change::Key(key, None)),
            Event::Batch(writes) => {
                self.pending.extend(writes.into_iter().map(|(k, v)| Change::Key(k, v)));
                self.pending.pop_front()
            }
            Event::Cleared => Some(Change::Cleared),
            Event::Lagged { missed } => Some(Change::Lagged(missed)),
            // A kind of event this version does not know: report it as a gap.
            _ => Some(Change::Lagged(1)),
        }
    }

    fn next_timeout(&mut self, timeout: Duration) -> Option<Change> {
        if let Some(change) = self.pending.pop_front() {
            return Some(change);
        }
        let event = self.subscriber.next_timeout(timeout);
        self.take(event)
    }

    fn try_next(&mut self) -> Option<Change> {
        if let Some(change) = self.pending.pop_front() {
            return Some(change);
        }
        let event = self.subscriber.try_next();
        self.take(event)
    }

    fn next_blocking(&mut self) -> Option<Change> {
        if let Some(change) = self.pending.pop_front() {
            return Some(change);
        }
        let event = self.subscriber.next();
        self.take(event)
    }
}

/// The changes to a [`Map`](crate::Map) from [`Map::watch`](crate::Map::watch), decoded.
/// Iterating blocks until a change comes and ends when the database closes;
/// [`MapWatch::next_timeout`] and [`MapWatch::try_next`] wait less.
pub struct MapWatch<K, V, C> {
    collection: Arc<str>,
    inner: Flattened,
    types: Types<K, V, C>,
}

impl<K, V, C> fmt::Debug for MapWatch<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapWatch").field("collection", &self.collection).finish_non_exhaustive()
    }
}

impl<K, V, C> MapWatch<K, V, C>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
    C: Codec,
{
    pub(crate) fn new(collection: Arc<str>, subscriber: Subscriber) -> Self {
        let inner = Flattened { subscriber, pending: VecDeque::new() };
        MapWatch { collection, inner, types: PhantomData }
    }

    fn decode(&self, change: Change) -> Result<MapEvent<K, V>> {
        match change {
            Change::Key(key, value) => {
                let decoded = key::from_key(&key).map_err(|source| Error::Key {
                    collection: self.collection.to_string(),
                    source,
                })?;
                match value {
                    None => Ok(MapEvent::Remove { key: decoded }),
                    Some(bytes) => {
                        let value =
                            value::decode::<C, V>(&bytes, 0).map_err(|reason| Error::Value {
                                collection: self.collection.to_string(),
                                key: hex(&key),
                                reason,
                            })?;
                        Ok(MapEvent::Insert { key: decoded, value })
                    }
                }
            }
            Change::Cleared => Ok(MapEvent::Cleared),
            Change::Lagged(missed) => Ok(MapEvent::Lagged { missed }),
        }
    }

    /// The next change, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<MapEvent<K, V>>> {
        self.inner.next_timeout(timeout).map(|c| self.decode(c))
    }

    /// The next change if one is waiting.
    pub fn try_next(&mut self) -> Option<Result<MapEvent<K, V>>> {
        self.inner.try_next().map(|c| self.decode(c))
    }
}

impl<K, V, C> Iterator for MapWatch<K, V, C>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
    C: Codec,
{
    type Item = Result<MapEvent<K, V>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_blocking().map(|c| self.decode(c))
    }
}

/// The changes to a [`Set`](crate::Set) from [`Set::watch`](crate::Set::watch), decoded.
/// Iterating blocks until a change comes and ends when the database closes.
pub struct SetWatch<T> {
    collection: Arc<str>,
    inner: Flattened,
    types: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for SetWatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetWatch").field("collection", &self.collection).finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> SetWatch<T> {
    pub(crate) fn new(collection: Arc<str>, subscriber: Subscriber) -> Self {
        let inner = Flattened { subscriber, pending: VecDeque::new() };
        SetWatch { collection, inner, types: PhantomData }
    }

    fn decode(&self, change: Change) -> Result<SetEvent<T>> {
        match change {
            Change::Key(key, present) => {
                let element = key::from_key(&key).map_err(|source| Error::Key {
                    collection: self.collection.to_string(),
                    source,
                })?;
                Ok(if present.is_some() {
                    SetEvent::Insert(element)
                } else {
                    SetEvent::Remove(element)
                })
            }
            Change::Cleared => Ok(SetEvent::Cleared),
            Change::Lagged(missed) => Ok(SetEvent::Lagged { missed }),
        }
    }

    /// The next change, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<SetEvent<T>>> {
        self.inner.next_timeout(timeout).map(|c| self.decode(c))
    }

    /// The next change if one is waiting.
    pub fn try_next(&mut self) -> Option<Result<SetEvent<T>>> {
        self.inner.try_next().map(|c| self.decode(c))
    }
}

impl<T: DeserializeOwned> Iterator for SetWatch<T> {
    type Item = Result<SetEvent<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_blocking().map(|c| self.decode(c))
    }
}
