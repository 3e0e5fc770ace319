//! The catalog: for every collection, its kind, key and value types, codec and schema
//! version, so that opening it with other types is an error rather than garbage.
//!
//! The catalog is an engine tree, `__grove_catalog/collections`, keyed by collection name.
//! Each entry is a format byte (`1`) then the [`Entry`] in bincode. A collection's data
//! lives in the engine tree `__grove_collection/` + its name.

use grove_engine::Tree;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The engine tree holding the catalog.
pub(crate) const CATALOG_TREE: &str = "__grove_catalog/collections";
/// The engine tree of collection `name` is this followed by the name.
pub(crate) const DATA_PREFIX: &str = "__grove_collection/";
/// The engine tree of the reserved items of queue `name` is this followed by the name.
pub(crate) const LEASES_PREFIX: &str = "__grove_leases/";
/// The engine tree holding every counter, keyed by name.
pub(crate) const COUNTERS_TREE: &str = "__grove_counters";
/// The format of catalog entries this version writes and reads.
const ENTRY_FORMAT: u8 = 1;

/// What a collection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Map,
    Set,
    Counter,
    Queue,
    Records,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Map => "Map",
            Kind::Set => "Set",
            Kind::Counter => "Counter",
            Kind::Queue => "Queue",
            Kind::Records => "Records",
        }
    }
}

/// A collection as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    /// `std::any::type_name` of the key type (the element type for a set or queue).
    pub(crate) key_type: String,
    /// `std::any::type_name` of the value type; empty for a kind without values.
    pub(crate) value_type: String,
    /// The codec's `Codec::ID`.
    pub(crate) codec: u8,
    /// The value type's schema version (for records: the newest that wrote to it).
    pub(crate) version: u16,
    /// For records: each secondary index's name and whether it is unique.
    pub(crate) indexes: Vec<(String, bool)>,
}

impl Entry {
    /// "Map<alloc::string::String, u64> (codec 1, version 0)".
    fn describe(&self) -> String {
        let types = if self.value_type.is_empty() {
            self.key_type.clone()
        } else {
            format!("{}, {}", self.key_type, self.value_type)
        };
        format!("{}<{types}> (codec {}, version {})", self.kind.name(), self.codec, self.version)
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes = vec![ENTRY_FORMAT];
        let body = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| catalog_error("", e.to_string()))?;
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }

    fn decode(collection: &str, bytes: &[u8]) -> Result<Entry> {
        match bytes.split_first() {
            Some((&ENTRY_FORMAT, body)) => {
                let (entry, _) =
                    bincode::serde::decode_from_slice(body, bincode::config::standard())
                        .map_err(|e| catalog_error(collection, e.to_string()))?;
                Ok(entry)
            }
            Some((format, _)) => Err(catalog_error(
                collection,
                format!("entry format {format}, from a later version of Grove (this one reads 1)"),
            )),
            None => Err(catalog_error(collection, "an empty entry".into())),
        }
    }
}

fn catalog_error(collection: &str, reason: String) -> Error {
    Error::Catalog { collection: collection.to_owned(), reason }
}

/// Records `wanted` for collection `name` if it is new; checks it against the record if
/// not. Returns the name of the collection's engine tree.
///
/// # Errors
/// [`Error::TypeMismatch`] if the catalog records other types; [`Error::Catalog`] for an
/// unreadable entry; the engine's errors.
pub(crate) fn register(catalog: &Tree, name: &str, wanted: &Entry) -> Result<String> {
    let encoded = wanted.encode()?;
    loop {
        if let Some(stored) = catalog.get(name)? {
            let stored = Entry::decode(name, &stored)?;
            if stored != *wanted {
                return Err(Error::TypeMismatch {
                    collection: name.to_owned(),
                    stored: stored.describe(),
                    requested: wanted.describe(),
                });
            }
            return Ok(format!("{DATA_PREFIX}{name}"));
        }
        // Two threads may create the collection at once: one record wins, the other
        // checks against it.
        if catalog.compare_and_swap(name, None::<&[u8]>, Some(&encoded))?.is_ok() {
            return Ok(format!("{DATA_PREFIX}{name}"));
        }
    }
}

/// What [`register_records`] found.
pub(crate) struct Registered {
    /// The collection's engine tree.
    pub(crate) tree: String,
    /// The stored index definitions differ from the wanted ones (or the collection was
    /// written by an earlier version): the indexes must be rebuilt.
    pub(crate) rebuild: bool,
}

/// As [`register`] for records, whose entry may change: a newer schema version than the
/// stored one is recorded (older records are read through the record type's migrations),
/// and changed index definitions are recorded and reported for a rebuild.
///
/// # Errors
/// [`Error::TypeMismatch`] if the kind, key type or codec differ, or the stored version is
/// newer than the wanted one (data from a later version of the program); as [`register`].
pub(crate) fn register_records(catalog: &Tree, name: &str, wanted: &Entry) -> Result<Registered> {
    let encoded = wanted.encode()?;
    let tree = format!("{DATA_PREFIX}{name}");
    loop {
        let Some(stored_bytes) = catalog.get(name)? else {
            if catalog.compare_and_swap(name, None::<&[u8]>, Some(&encoded))?.is_ok() {
                return Ok(Registered { tree, rebuild: false });
            }
            continue;
        };
        let stored = Entry::decode(name, &stored_bytes)?;
        let same_shape = stored.kind == wanted.kind
            && stored.key_type == wanted.key_type
            && stored.value_type == wanted.value_type
            && stored.codec == wanted.codec;
        if !same_shape || stored.version > wanted.version {
            return Err(Error::TypeMismatch {
                collection: name.to_owned(),
                stored: stored.describe(),
                requested: wanted.describe(),
            });
        }
        if stored == *wanted {
            return Ok(Registered { tree, rebuild: false });
        }
        let rebuild = stored.indexes != wanted.indexes || stored.version != wanted.version;
        if catalog.compare_and_swap(name, Some(&stored_bytes), Some(&encoded))?.is_ok() {
            return Ok(Registered { tree, rebuild });
        }
    }
}

/// The names of every collection, in order.
///
/// # Errors
/// The engine's errors.
pub(crate) fn names(catalog: &Tree) -> Result<Vec<String>> {
    catalog
        .iter()
        .map(|entry| {
            let (key, _) = entry?;
            Ok(String::from_utf8_lossy(&key).into_owned())
        })
        .collect()
}
