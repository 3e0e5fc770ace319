//! [`Db`]: a database of typed collections.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Counter, Map, Queue, Set,
    catalog::{self, Entry, Kind},
    error::Result,
    queue::Signal,
    value::{Bincode, Codec},
};

/// Opens (or creates) the database in directory `path`, with every default.
///
/// # Errors
/// As [`grove_engine::open`]: [`grove_engine::Error::AlreadyOpen`] if another handle holds
/// the directory, I/O and corruption errors.
///
/// # Example
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = grove_collections::open(dir.path())?;
/// let scores = db.map::<String, u32>("scores")?;
/// scores.insert("ann", &10)?;
/// assert_eq!(scores.get("ann")?, Some(10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open(path: impl Into<PathBuf>) -> Result<Db> {
    Db::open_with(grove_engine::Config::new().path(path))
}

/// A database of typed collections, in one directory owned by this handle (and its
/// clones). Cheap to clone, `Send` and `Sync`.
///
/// Collections are named and remembered by the catalog with their types: opening one
/// with other types is [`Error::TypeMismatch`](crate::Error::TypeMismatch). Type names come
/// from `std::any::type_name`, which names a type by its path: moving or renaming a type
/// (or a compiler that spells a name differently) is a mismatch too.
#[derive(Debug, Clone)]
pub struct Db {
    engine: grove_engine::Db,
    catalog: grove_engine::Tree,
    /// Each queue's wake-up signal, shared by every handle to it.
    signals: Arc<Mutex<HashMap<String, Arc<Signal>>>>,
    /// A fresh id for this opening of the database, taken when the first queue is opened
    /// (the first id after an open writes and flushes the meta page: a database without
    /// queues should not pay that at open). Queue leases record it, so that leases of an
    /// earlier opening (whose consumers died with it) are known.
    instance: Arc<Mutex<Option<u64>>>,
}

impl Db {
    /// Opens a database with the engine's configuration `config` (cache size, flush
    /// interval, storage...).
    ///
    /// # Errors
    /// As [`grove_engine::Config::open`].
    pub fn open_with(config: grove_engine::Config) -> Result<Db> {
        let engine = config.open()?;
        Db::from_engine(engine)
    }

    /// The typed layer over an open engine database.
    ///
    /// # Errors
    /// The engine's errors, opening the catalog.
    pub fn from_engine(engine: grove_engine::Db) -> Result<Db> {
        let catalog = engine.open_tree(catalog::CATALOG_TREE)?;
        Ok(Db { engine, catalog, signals: Arc::default(), instance: Arc::default() })
    }

    /// The map called `name`, created empty if it does not exist, with keys of type `K`
    /// and values of type `V` stored with [`Bincode`].
    ///
    /// # Errors
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) if `name` was created with other
    /// types or as another kind of collection; the engine's errors.
    pub fn map<K, V>(&self, name: &str) -> Result<Map<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        self.map_with_codec::<K, V, Bincode>(name)
    }

    /// As [`Db::map`], with values stored by codec `C`.
    ///
    /// # Errors
    /// As [`Db::map`].
    pub fn map_with_codec<K, V, C>(&self, name: &str) -> Result<Map<K, V, C>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
        C: Codec,
    {
        let tree_name = self.register(
            name,
            Kind::Map,
            std::any::type_name::<K>(),
            std::any::type_name::<V>(),
            C::ID,
        )?;
        let tree = self.engine.open_tree(tree_name)?;
        Ok(Map::new(tree, name))
    }

    /// The set called `name`, created empty if it does not exist, of elements of type `T`.
    ///
    /// # Errors
    /// As [`Db::map`].
    pub fn set<T>(&self, name: &str) -> Result<Set<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        let tree = self.register(name, Kind::Set, std::any::type_name::<T>(), "", 0)?;
        Ok(Set::new(self.engine.open_tree(tree)?, name))
    }

    /// The queue called `name`, created empty if it does not exist, of items of type `T`
    /// stored with [`Bincode`]. Opening it returns the items that consumers of an earlier
    /// opening of the database had reserved and not acknowledged.
    ///
    /// # Errors
    /// As [`Db::map`].
    pub fn queue<T>(&self, name: &str) -> Result<Queue<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        self.queue_with_codec::<T, Bincode>(name)
    }

    /// As [`Db::queue`], with items stored by codec `C`.
    ///
    /// # Errors
    /// As [`Db::map`].
    pub fn queue_with_codec<T, C>(&self, name: &str) -> Result<Queue<T, C>>
    where
        T: Serialize + DeserializeOwned,
        C: Codec,
    {
        let tree = self.register(name, Kind::Queue, std::any::type_name::<T>(), "", C::ID)?;
        let ready = self.engine.open_tree(tree)?;
        let leased = self.engine.open_tree(format!("{}{name}", catalog::LEASES_PREFIX))?;
        let signal = {
            let mut signals = self.signals.lock().unwrap_or_else(PoisonError::into_inner);
            signals.entry(name.to_owned()).or_default().clone()
        };
        Queue::open(self.engine.clone(), ready, leased, name, signal, self.instance()?)
    }

    /// This opening's instance id (see the field), taken on first use.
    fn instance(&self) -> Result<u64> {
        let mut instance = self.instance.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = *instance {
            return Ok(id);
        }
        // A read-only database hands out no leases: any instance will do.
        let id = match self.engine.generate_id() {
            Ok(id) => id,
            Err(grove_engine::Error::ReadOnly) => 0,
            Err(error) => return Err(error.into()),
        };
        *instance = Some(id);
        Ok(id)
    }

    /// The counter called `name`, created at 0 if it does not exist.
    ///
    /// # Errors
    /// As [`Db::map`].
    pub fn counter(&self, name: &str) -> Result<Counter> {
        self.register(name, Kind::Counter, "i64", "", 0)?;
        Ok(Counter::new(self.engine.open_tree(catalog::COUNTERS_TREE)?, name))
    }

    /// Records collection `name` in the catalog (or checks it against the record);
    /// returns its engine tree's name.
    fn register(
        &self,
        name: &str,
        kind: Kind,
        key_type: &str,
        value_type: &str,
        codec: u8,
    ) -> Result<String> {
        let entry = Entry {
            kind,
            key_type: key_type.to_owned(),
            value_type: value_type.to_owned(),
            codec,
            version: 0,
            indexes: Vec::new(),
        };
        catalog::register(&self.catalog, name, &entry)
    }

    /// The names of every collection, in order.
    ///
    /// # Errors
    /// The engine's errors.
    pub fn collection_names(&self) -> Result<Vec<String>> {
        catalog::names(&self.catalog)
    }

    /// Makes every write made before this call durable; returns once it is.
    ///
    /// # Errors
    /// As [`grove_engine::Db::flush`].
    pub fn flush(&self) -> Result<()> {
        Ok(self.engine.flush()?)
    }

    pub(crate) fn catalog(&self) -> &grove_engine::Tree {
        &self.catalog
    }

    /// The byte-level database underneath, for what the typed layer does not offer.
    /// Trees whose names start with `__grove` belong to the typed layer: leave them alone.
    pub fn engine(&self) -> &grove_engine::Db {
        &self.engine
    }
}
