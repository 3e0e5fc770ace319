//! [`Db`]: a database of typed collections.

use std::path::PathBuf;

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Map,
    catalog::{self, Entry, Kind},
    error::Result,
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
/// # let dir = tempfile::tempdir().unwrap();
/// let db = grove_collections::open(dir.path())?;
/// let scores = db.map::<String, u32>("scores")?;
/// scores.insert("ann", &10)?;
/// assert_eq!(scores.get("ann")?, Some(10));
/// # Ok::<(), grove_collections::Error>(())
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
        Ok(Db { engine, catalog })
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
        let entry = Entry {
            kind: Kind::Map,
            key_type: std::any::type_name::<K>().to_owned(),
            value_type: std::any::type_name::<V>().to_owned(),
            codec: C::ID,
            version: 0,
        };
        let tree_name = catalog::register(&self.catalog, name, &entry)?;
        let tree = self.engine.open_tree(tree_name)?;
        Ok(Map::new(tree, name))
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

    /// The byte-level database underneath, for what the typed layer does not offer.
    /// Trees whose names start with `__grove` belong to the typed layer: leave them alone.
    pub fn engine(&self) -> &grove_engine::Db {
        &self.engine
    }
}
