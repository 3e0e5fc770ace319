//! [`Records`]: persistent structs with a primary key and secondary indexes, from
//! `#[derive(Record)]`.
//!
//! A record type's collection is a tree keyed by the primary key (key codec), holding each
//! record behind the value header with the schema version that wrote it. Each secondary
//! index is a tree of its own, `__grove_index/{record}/{index}`:
//!
//! - unique: the field's key encoding → the record's primary key encoding;
//! - not unique: the field's key encoding followed by the primary key's → the primary
//!   key's. The field's encoding is self-delimiting, so the entries of one value are a
//!   prefix.
//!
//! Every write of a record and its index entries is one engine transaction, so a unique
//! value is held by one record only, even among concurrent inserts. A record stored by an
//! earlier schema version is read through the type's migrations (`From` the older type);
//! when the version or the index definitions change, opening the collection rebuilds the
//! indexes.

use std::{
    fmt,
    marker::PhantomData,
    ops::{Bound, Deref, RangeBounds},
    sync::Arc,
};

use grove_engine::{Bytes, Transaction as EngineTx, TransactionError as EngineError, Tree};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Bincode, Db,
    catalog::{self, Entry, Kind},
    error::{Error, Result, hex},
    key::{self, KeyError},
    value::{self, Codec},
};

/// A secondary index of a record type, as `#[derive(Record)]` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    /// The field's name.
    pub name: &'static str,
    /// Whether two records may not share a value.
    pub unique: bool,
}

/// A struct stored as a record: implemented by `#[derive(Record)]`, not by hand.
pub trait Record: Serialize + DeserializeOwned + Sized + 'static {
    /// The collection's name (`#[record(name = "...")]`, by default the type's name in
    /// snake case).
    const NAME: &'static str;
    /// The schema version (`#[record(version = N)]`, default 1).
    const VERSION: u16;
    /// The secondary indexes, in field order.
    const INDEXES: &'static [IndexDef];
    /// The primary key's type.
    type Key: Serialize + DeserializeOwned;
    /// The typed lookups generated for the indexes (`get_by_...`, `find_by_...`), reached
    /// from [`Records`] by `Deref`.
    type Lookups: From<Arc<Core<Self>>>;

    /// The primary key.
    fn key(&self) -> Self::Key;

    /// Each index's value for this record, key-encoded, in the order of
    /// [`Record::INDEXES`].
    ///
    /// # Errors
    /// A field whose value cannot be encoded as a key.
    fn index_values(&self) -> std::result::Result<Vec<Vec<u8>>, KeyError>;

    /// Each index's value for this record, for error messages.
    fn describe_index(&self, index: usize) -> String;

    /// Fills in an automatic primary key (`#[key(auto)]`), taking an id from `next_id` if
    /// it needs one. The default does nothing.
    ///
    /// # Errors
    /// What `next_id` returns; an id that does not fit the key field.
    fn assign_key(&mut self, next_id: &mut dyn FnMut() -> Result<u64>) -> Result<()> {
        let _ = next_id;
        Ok(())
    }

    /// Reads a record stored at schema version `version`: this type's own encoding at
    /// [`Record::VERSION`], an older type's converted with `From` below it.
    ///
    /// # Errors
    /// The codec's message; a version this type does not know.
    fn decode_version(version: u16, bytes: &[u8]) -> std::result::Result<Self, String>;
}

/// A primary key type that `#[key(auto)]` can fill in: a `Uuid` gets a new time-ordered
/// v7 id, an integer the database's next id (`Db::generate_id`, which only grows).
pub trait AutoKey: Sized {
    /// A new key, taking an id from `next_id` if it needs one.
    ///
    /// # Errors
    /// What `next_id` returns; [`Error::Key`] for an id too large for the type.
    fn auto_key(next_id: &mut dyn FnMut() -> Result<u64>) -> Result<Self>;
}

impl AutoKey for uuid::Uuid {
    fn auto_key(_next_id: &mut dyn FnMut() -> Result<u64>) -> Result<Self> {
        Ok(uuid::Uuid::now_v7())
    }
}

macro_rules! auto_integer_keys {
    ($($ty:ty),*) => {$(
        impl AutoKey for $ty {
            fn auto_key(next_id: &mut dyn FnMut() -> Result<u64>) -> Result<Self> {
                let id = next_id()?;
                <$ty>::try_from(id).map_err(|_| Error::Key {
                    collection: String::new(),
                    source: KeyError::Custom(format!(
                        "the next id, {id}, does not fit a {}",
                        stringify!($ty)
                    )),
                })
            }
        }
    )*};
}

auto_integer_keys!(u32, u64, u128, i32, i64, i128, usize);

/// Decodes a record body of exactly this type: for generated `decode_version` code.
///
/// # Errors
/// The codec's message.
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    Bincode::decode(bytes)
}

/// What a record collection shares among its handles: its trees and name.
pub struct Core<T> {
    db: Db,
    data: Tree,
    indexes: Vec<Tree>,
    types: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Core<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core").field("record", &std::any::type_name::<T>()).finish_non_exhaustive()
    }
}

/// The records of type `T`, from [`Db::records`]. Cheap to clone, `Send` and `Sync`.
/// Dereferences to `T`'s generated lookups, so `users.get_by_email("...")` works on it.
pub struct Records<T: Record> {
    core: Arc<Core<T>>,
    lookups: T::Lookups,
}

impl<T: Record> Clone for Records<T>
where
    T::Lookups: Clone,
{
    fn clone(&self) -> Self {
        Records { core: self.core.clone(), lookups: self.lookups.clone() }
    }
}

impl<T: Record> fmt::Debug for Records<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records").field("name", &T::NAME).finish_non_exhaustive()
    }
}

impl<T: Record> Deref for Records<T> {
    type Target = T::Lookups;

    fn deref(&self) -> &T::Lookups {
        &self.lookups
    }
}

/// What [`Records::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Index entries checked.
    pub index_entries: u64,
}

impl Db {
    /// The records of type `T` (a struct with `#[derive(Record)]`), in the collection the
    /// type names. Opening rebuilds the indexes if their definitions or the schema version
    /// changed since the collection was last opened.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] if the collection holds another key type or kind, or was
    /// written by a later schema version; the engine's errors.
    pub fn records<T: Record>(&self) -> Result<Records<T>> {
        let entry = Entry {
            kind: Kind::Records,
            key_type: std::any::type_name::<T::Key>().to_owned(),
            value_type: T::NAME.to_owned(),
            codec: Bincode::ID,
            version: T::VERSION,
            indexes: T::INDEXES.iter().map(|i| (i.name.to_owned(), i.unique)).collect(),
        };
        let registered = catalog::register_records(self.catalog(), T::NAME, &entry)?;
        let data = self.engine().open_tree(registered.tree)?;
        let indexes = T::INDEXES
            .iter()
            .map(|index| {
                self.engine().open_tree(format!("__grove_index/{}/{}", T::NAME, index.name))
            })
            .collect::<grove_engine::Result<Vec<Tree>>>()?;
        let core = Arc::new(Core { db: self.clone(), data, indexes, types: PhantomData });
        if registered.rebuild {
            core.rebuild_indexes()?;
        }
        let lookups = T::Lookups::from(core.clone());
        Ok(Records { core, lookups })
    }
}

/// A transaction's outcome, with the typed layer's errors carried through `Abort`.
fn finish<R>(record: &str, result: std::result::Result<R, EngineError<Error>>) -> Result<R> {
    match result {
        Ok(value) => Ok(value),
        Err(EngineError::Abort(error)) => Err(error),
        Err(EngineError::Conflict { attempts }) => {
            Err(Error::Conflict { collection: record.to_owned(), attempts })
        }
        Err(EngineError::Storage(error)) => Err(error.into()),
    }
}

fn abort(error: Error) -> EngineError<Error> {
    match error {
        // The engine's own errors go back to it: an expired snapshot is retried.
        Error::Engine(error) => EngineError::Storage(error),
        other => EngineError::Abort(other),
    }
}

impl<T: Record> Core<T> {
    fn key_error(source: KeyError) -> Error {
        Error::Key { collection: T::NAME.to_owned(), source }
    }

    fn encode_key<Q: Serialize + ?Sized>(key: &Q) -> Result<Vec<u8>> {
        key::to_key(key).map_err(Self::key_error)
    }

    fn encode(record: &T) -> Result<Vec<u8>> {
        value::encode::<Bincode, T>(record, T::VERSION).map_err(|reason| Error::Value {
            collection: T::NAME.to_owned(),
            key: String::from("(a record being written)"),
            reason,
        })
    }

    /// Reads a stored record, of any schema version this type can read.
    fn decode(key: &[u8], bytes: &[u8]) -> Result<T> {
        let error =
            |reason: String| Error::Value { collection: T::NAME.to_owned(), key: hex(key), reason };
        let Some((header, body)) = bytes.split_first_chunk::<{ value::HEADER }>() else {
            return Err(error(format!("{} bytes: shorter than a value's header", bytes.len())));
        };
        let [codec, high, low] = *header;
        if codec != Bincode::ID {
            return Err(error(format!("written by codec {codec}, read with bincode (1)")));
        }
        T::decode_version(u16::from_be_bytes([high, low]), body).map_err(error)
    }

    /// The index tree entries of `record` (stored under primary key `key`).
    fn index_entries(key: &[u8], record: &T) -> Result<Vec<Vec<u8>>> {
        let values = record.index_values().map_err(Self::key_error)?;
        Ok(T::INDEXES
            .iter()
            .zip(values)
            .map(|(index, mut value)| {
                if !index.unique {
                    value.extend_from_slice(key);
                }
                value
            })
            .collect())
    }

    /// Inside a transaction: writes `record` under `key`, replacing `old` (its index
    /// entries go), after checking its unique values are free.
    fn write(
        &self,
        tx: &EngineTx<'_>,
        key: &[u8],
        record: &T,
        old: Option<&T>,
    ) -> std::result::Result<(), EngineError<Error>> {
        let entries = Self::index_entries(key, record).map_err(abort)?;
        let old_entries = match old {
            Some(old) => Self::index_entries(key, old).map_err(abort)?,
            None => Vec::new(),
        };
        for (i, (index, tree)) in T::INDEXES.iter().zip(&self.indexes).enumerate() {
            // `index_values` gives one value per index (the derive guarantees it).
            let Some(entry) = entries.get(i) else {
                return Err(EngineError::Abort(Error::IndexMismatch {
                    record: T::NAME.to_owned(),
                    index: index.name.to_owned(),
                    what: format!(
                        "the record gave {} index values for {} indexes",
                        entries.len(),
                        T::INDEXES.len()
                    ),
                }));
            };
            let old_entry = old_entries.get(i);
            if old_entry == Some(entry) {
                continue;
            }
            if let Some(old_entry) = old_entry {
                tx.remove(tree, old_entry)?;
            }
            if index.unique
                && let Some(holder) = tx.get(tree, entry)?
                && holder != key
            {
                return Err(EngineError::Abort(Error::UniqueViolation {
                    record: T::NAME.to_owned(),
                    index: index.name.to_owned(),
                    value: record.describe_index(i),
                }));
            }
            tx.insert(tree, entry, key)?;
        }
        let bytes = Self::encode(record).map_err(abort)?;
        tx.insert(&self.data, key, bytes)?;
        Ok(())
    }

    /// Inside a transaction: the record stored under `key`, if any.
    fn read(
        &self,
        tx: &EngineTx<'_>,
        key: &[u8],
    ) -> std::result::Result<Option<T>, EngineError<Error>> {
        match tx.get(&self.data, key)? {
            Some(bytes) => Self::decode(key, &bytes).map(Some).map_err(abort),
            None => Ok(None),
        }
    }

    /// The record stored under encoded key `key`.
    fn get_encoded(&self, key: &[u8]) -> Result<Option<T>> {
        match self.data.get(key)? {
            Some(bytes) => Self::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The record holding `value` in unique index `index`.
    ///
    /// # Errors
    /// As [`Records::get`].
    pub fn unique<Q: Serialize + ?Sized>(&self, index: usize, value: &Q) -> Result<Option<T>> {
        let value = Self::encode_key(value)?;
        let Some(tree) = self.indexes.get(index) else { return Ok(None) };
        // Read the index and the record at one moment: a concurrent update cannot show
        // a record that no longer holds the value.
        let snapshot = self.db.engine().snapshot();
        let Some(key) = snapshot.get(tree, &value)? else { return Ok(None) };
        match snapshot.get(&self.data, &key)? {
            Some(bytes) => Self::decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The records whose value in non-unique index `index` lies in `range`, in the order
    /// of that value, then of primary key.
    pub fn find_range<Q, R>(&self, index: usize, range: R) -> RecordIter<T>
    where
        Q: Serialize + ?Sized,
        R: RangeBounds<Q>,
    {
        let Some(tree) = self.indexes.get(index) else { return RecordIter::empty() };
        let bounds = key::to_key_range(&range).map_err(Self::key_error);
        let (lo, hi) = match bounds {
            Ok(bounds) => bounds,
            Err(error) => return RecordIter::failed(error),
        };
        // An entry is the value's bytes then the key's: a bound on values is a bound on
        // the prefix.
        let lo = match lo {
            Bound::Excluded(value) => match prefix_end(&value) {
                Some(end) => Bound::Included(end),
                None => return RecordIter::empty(),
            },
            other => other,
        };
        let hi = match hi {
            Bound::Included(value) => prefix_end(&value).map_or(Bound::Unbounded, Bound::Excluded),
            other => other,
        };
        let snapshot = self.db.engine().snapshot();
        let entries = snapshot.range::<Vec<u8>, _>(tree, (lo, hi));
        RecordIter::index(snapshot, self.data.clone(), entries)
    }

    /// The records holding exactly `value` in non-unique index `index`.
    pub fn find<Q: Serialize + ?Sized>(&self, index: usize, value: &Q) -> RecordIter<T> {
        self.find_range::<Q, _>(index, (Bound::Included(value), Bound::Included(value)))
    }

    /// Rewrites every index from the records, in one transaction.
    fn rebuild_indexes(&self) -> Result<()> {
        for tree in &self.indexes {
            tree.clear()?;
        }
        let mut batch = grove_engine::Batch::default();
        for entry in self.data.iter() {
            let (key, bytes) = entry?;
            let record = Self::decode(&key, &bytes)?;
            let entries = Self::index_entries(&key, &record)?;
            for (tree, entry) in self.indexes.iter().zip(entries) {
                batch.insert(tree, entry, &key);
            }
        }
        Ok(self.db.engine().apply_batch(batch)?)
    }
}

/// The byte string just above every string that starts with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl<T: Record> Records<T> {
    /// Stores `record`, filling in an automatic key first; returns its key.
    ///
    /// # Errors
    /// [`Error::KeyExists`] if a record has that key; [`Error::UniqueViolation`] if a
    /// unique index already holds one of its values (nothing is written); as
    /// [`Records::get`].
    pub fn insert(&self, record: &mut T) -> Result<T::Key> {
        let db = &self.core.db;
        record.assign_key(&mut || Ok(db.engine().generate_id()?))?;
        let key = Core::<T>::encode_key(&record.key())?;
        let record = &*record;
        finish(
            T::NAME,
            db.engine().transaction(|tx| {
                if tx.contains_key(&self.core.data, &key)? {
                    return Err(EngineError::Abort(Error::KeyExists {
                        record: T::NAME.to_owned(),
                        key: hex(&key),
                    }));
                }
                self.core.write(tx, &key, record, None)
            }),
        )?;
        Ok(record.key())
    }

    /// Stores `record` under its key, replacing any record there (and its index entries).
    ///
    /// # Errors
    /// [`Error::UniqueViolation`] as for [`Records::insert`]; as [`Records::get`].
    pub fn upsert(&self, record: &T) -> Result<Option<T>> {
        let key = Core::<T>::encode_key(&record.key())?;
        finish(
            T::NAME,
            self.core.db.engine().transaction(|tx| {
                let old = self.core.read(tx, &key)?;
                self.core.write(tx, &key, record, old.as_ref())?;
                Ok(old)
            }),
        )
    }

    /// The record with primary key `key`.
    ///
    /// # Errors
    /// [`Error::Key`] if the key cannot be encoded; [`Error::Value`] if the stored record
    /// does not decode (at any schema version the type can read); the engine's errors.
    pub fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<T>>
    where
        T::Key: std::borrow::Borrow<Q>,
    {
        self.core.get_encoded(&Core::<T>::encode_key(key)?)
    }

    /// Removes the record with primary key `key`, and its index entries; returns it.
    ///
    /// # Errors
    /// As [`Records::get`].
    pub fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<T>>
    where
        T::Key: std::borrow::Borrow<Q>,
    {
        let key = Core::<T>::encode_key(key)?;
        finish(
            T::NAME,
            self.core.db.engine().transaction(|tx| {
                let Some(old) = self.core.read(tx, &key)? else { return Ok(None) };
                let entries = Core::<T>::index_entries(&key, &old).map_err(abort)?;
                for (tree, entry) in self.core.indexes.iter().zip(entries) {
                    tx.remove(tree, entry)?;
                }
                tx.remove(&self.core.data, &key)?;
                Ok(Some(old))
            }),
        )
    }

    /// Changes the record with primary key `key` with `f`, keeping its indexes right, in one
    /// transaction; returns the new record (`None` if there was none). `f` may run more
    /// than once. It must not change the key.
    ///
    /// # Errors
    /// [`Error::KeyChanged`] if `f` changed the key; [`Error::UniqueViolation`]; as
    /// [`Records::get`].
    pub fn update<Q, F>(&self, key: &Q, mut f: F) -> Result<Option<T>>
    where
        T::Key: std::borrow::Borrow<Q>,
        Q: Serialize + ?Sized,
        F: FnMut(&mut T),
    {
        let key = Core::<T>::encode_key(key)?;
        finish(
            T::NAME,
            self.core.db.engine().transaction(|tx| {
                let Some(bytes) = tx.get(&self.core.data, &key)? else { return Ok(None) };
                let old = Core::<T>::decode(&key, &bytes).map_err(abort)?;
                let mut new = Core::<T>::decode(&key, &bytes).map_err(abort)?;
                f(&mut new);
                if Core::<T>::encode_key(&new.key()).map_err(abort)? != key {
                    return Err(EngineError::Abort(Error::KeyChanged {
                        record: T::NAME.to_owned(),
                    }));
                }
                self.core.write(tx, &key, &new, Some(&old))?;
                Ok(Some(new))
            }),
        )
    }

    /// Every record, in primary key order; double-ended.
    pub fn iter(&self) -> RecordIter<T> {
        RecordIter::data(self.core.data.iter())
    }

    /// The records whose primary keys lie in `range`, in key order; double-ended.
    pub fn range<Q, R>(&self, range: R) -> RecordIter<T>
    where
        T::Key: std::borrow::Borrow<Q>,
        Q: Serialize + ?Sized,
        R: RangeBounds<Q>,
    {
        match key::to_key_range(&range) {
            Ok(bounds) => RecordIter::data(self.core.data.range::<Vec<u8>, _>(bounds)),
            Err(source) => RecordIter::failed(Core::<T>::key_error(source)),
        }
    }

    /// How many records there are, in O(1).
    ///
    /// # Errors
    /// The engine's errors.
    pub fn len(&self) -> Result<usize> {
        Ok(self.core.data.len()?)
    }

    /// Whether there are no records.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.core.data.is_empty()?)
    }

    /// Rewrites every record stored by an earlier schema version in the current one, in
    /// batches of `batch` records, each batch one transaction. Interrupted, it resumes
    /// where it stopped: records already current are skipped. Returns how many it
    /// rewrote. Reading does not need it: old records are converted as they are read.
    ///
    /// # Errors
    /// As [`Records::get`].
    pub fn migrate(&self, batch: usize) -> Result<u64> {
        let mut rewritten = 0;
        let mut from: Bound<Bytes> = Bound::Unbounded;
        loop {
            let mut old: Vec<(Bytes, Bytes)> = Vec::new();
            let mut last = None;
            for entry in self.core.data.range::<Bytes, _>((from.clone(), Bound::Unbounded)) {
                let (key, bytes) = entry?;
                last = Some(key.clone());
                let version = bytes.get(1..3).map(|v| u16::from_be_bytes([v[0], v[1]]));
                if version != Some(T::VERSION) {
                    old.push((key, bytes));
                }
                if old.len() >= batch.max(1) {
                    break;
                }
            }
            let Some(last) = last else { return Ok(rewritten) };
            finish(
                T::NAME,
                self.core.db.engine().transaction(|tx| {
                    for (key, bytes) in &old {
                        // Rewritten only if unchanged since it was read.
                        if tx.get(&self.core.data, key)?.as_ref() == Some(bytes) {
                            let record = Core::<T>::decode(key, bytes).map_err(abort)?;
                            tx.insert(
                                &self.core.data,
                                key,
                                Core::<T>::encode(&record).map_err(abort)?,
                            )?;
                        }
                    }
                    Ok(())
                }),
            )?;
            rewritten += u64::try_from(old.len()).unwrap_or(u64::MAX);
            from = Bound::Excluded(last);
        }
    }

    /// Checks that every index entry points at a record that holds its value, and that
    /// every record has its index entries. Reads from one snapshot, so concurrent writes
    /// do not disturb it.
    ///
    /// # Errors
    /// [`Error::IndexMismatch`] with what was wrong; as [`Records::get`].
    pub fn verify(&self) -> Result<VerifyReport> {
        let snapshot = self.core.db.engine().snapshot();
        let mut report = VerifyReport::default();
        let mut expected: Vec<std::collections::BTreeSet<Vec<u8>>> =
            vec![std::collections::BTreeSet::new(); T::INDEXES.len()];
        for entry in snapshot.iter(&self.core.data) {
            let (key, bytes) = entry?;
            let record = Core::<T>::decode(&key, &bytes)?;
            for (i, entry) in Core::<T>::index_entries(&key, &record)?.into_iter().enumerate() {
                if let Some(set) = expected.get_mut(i) {
                    set.insert(entry);
                }
            }
            report.records += 1;
        }
        let mismatch = |index: &IndexDef, what: String| Error::IndexMismatch {
            record: T::NAME.to_owned(),
            index: index.name.to_owned(),
            what,
        };
        for ((index, tree), expected) in T::INDEXES.iter().zip(&self.core.indexes).zip(&expected) {
            let mut found = 0;
            for entry in snapshot.iter(tree) {
                let (entry, pointer) = entry?;
                if !expected.contains(&entry[..]) {
                    return Err(mismatch(
                        index,
                        format!("entry {} matches no record", hex(&entry)),
                    ));
                }
                if snapshot.get(&self.core.data, &pointer)?.is_none() {
                    return Err(mismatch(
                        index,
                        format!("entry {} points at no record", hex(&entry)),
                    ));
                }
                found += 1;
                report.index_entries += 1;
            }
            if found != expected.len() {
                return Err(mismatch(
                    index,
                    format!("{} records' entries are missing", expected.len() - found),
                ));
            }
        }
        Ok(report)
    }
}

/// Records in order, decoded as they are taken: from [`Records::iter`] and
/// [`Records::range`] (double-ended), and from the generated `find_by_...` and
/// `range_by_...` lookups. Those read the index and the records from one snapshot, which
/// stays open while the iterator lives (see `grove::engine::Snapshot`): drop it when done.
pub struct RecordIter<T> {
    source: Source,
    failed: Option<Error>,
    types: PhantomData<fn() -> T>,
}

enum Source {
    Empty,
    Data(grove_engine::Iter),
    Index(Box<IndexSource>),
}

/// Index entries, resolved to records in the snapshot the entries come from.
struct IndexSource {
    snapshot: grove_engine::Snapshot,
    data: Tree,
    entries: grove_engine::SnapshotIter,
}

impl<T> fmt::Debug for RecordIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordIter").finish_non_exhaustive()
    }
}

impl<T: Record> RecordIter<T> {
    fn data(iter: grove_engine::Iter) -> Self {
        RecordIter { source: Source::Data(iter), failed: None, types: PhantomData }
    }

    fn index(
        snapshot: grove_engine::Snapshot,
        data: Tree,
        entries: grove_engine::SnapshotIter,
    ) -> Self {
        let source = Source::Index(Box::new(IndexSource { snapshot, data, entries }));
        RecordIter { source, failed: None, types: PhantomData }
    }

    fn failed(error: Error) -> Self {
        RecordIter { source: Source::Empty, failed: Some(error), types: PhantomData }
    }

    fn empty() -> Self {
        RecordIter { source: Source::Empty, failed: None, types: PhantomData }
    }

    fn take(&mut self, back: bool) -> Option<Result<T>> {
        if let Some(error) = self.failed.take() {
            return Some(Err(error));
        }
        match &mut self.source {
            Source::Empty => None,
            Source::Data(iter) => {
                let entry = if back { iter.next_back()? } else { iter.next()? };
                Some(
                    entry
                        .map_err(Error::from)
                        .and_then(|(key, bytes)| Core::<T>::decode(&key, &bytes)),
                )
            }
            Source::Index(index) => {
                let IndexSource { snapshot, data, entries } = &mut **index;
                let entry = if back { entries.next_back()? } else { entries.next()? };
                Some((|| {
                    let (entry, key) = entry?;
                    let bytes = snapshot.get(data, &key)?.ok_or_else(|| Error::IndexMismatch {
                        record: T::NAME.to_owned(),
                        index: String::new(),
                        what: format!("entry {} points at no record", hex(&entry)),
                    })?;
                    Core::<T>::decode(&key, &bytes)
                })())
            }
        }
    }
}

impl<T: Record> Iterator for RecordIter<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.take(false)
    }
}

impl<T: Record> DoubleEndedIterator for RecordIter<T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.take(true)
    }
}
