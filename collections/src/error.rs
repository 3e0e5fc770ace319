//! [`Error`]: what the typed layer reports.

use crate::key::KeyError;

/// An error of the typed layer: the engine's, or a mismatch between the types asked for
/// and the bytes stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine failed: I/O, corruption, a second opener, a read-only database...
    #[error(transparent)]
    Engine(#[from] grove_engine::Error),

    /// The collection exists with other types (or as another kind of collection) than the
    /// ones asked for. Nothing was read or written.
    #[error(
        "collection {collection:?} holds {stored}, not {requested}: open it with the types it \
         was created with, or use another name"
    )]
    TypeMismatch {
        /// The collection's name.
        collection: String,
        /// What the catalog records: kind, key and value types, codec and version.
        stored: String,
        /// What was asked for.
        requested: String,
    },

    /// A key could not be encoded (its type cannot keep its order in bytes), or stored key
    /// bytes did not decode as the collection's key type.
    #[error("collection {collection:?}: {source}")]
    Key {
        /// The collection's name.
        collection: String,
        /// What went wrong.
        #[source]
        source: KeyError,
    },

    /// A value could not be encoded, or a stored value did not decode as the collection's
    /// value type. The collection is otherwise readable.
    #[error("collection {collection:?}: the value at key {key} cannot be read: {reason}")]
    Value {
        /// The collection's name.
        collection: String,
        /// The key's stored bytes, in hex (the key codec's format, see `docs/format.md`).
        key: String,
        /// The codec's message.
        reason: String,
    },

    /// A transaction kept meeting concurrent writes to what it read, past
    /// `Config::transaction_attempts`: nothing was written. Try again later.
    #[error("collection {collection:?}: gave up after {attempts} conflicting attempts")]
    Conflict {
        /// The collection the operation was on.
        collection: String,
        /// How many times it ran.
        attempts: u32,
    },

    /// [`Counter::add`](crate::Counter::add) would overflow an `i64`: nothing was written.
    #[error("counter {counter:?} is {current}: adding {delta} would overflow an i64")]
    Overflow {
        /// The counter's name.
        counter: String,
        /// Its value.
        current: i64,
        /// What was to be added.
        delta: i64,
    },

    /// [`Records::insert`](crate::Records::insert): a record with that primary key exists.
    /// Nothing was written; `upsert` replaces.
    #[error("records {record:?}: a record with key {key} exists (use upsert to replace it)")]
    KeyExists {
        /// The record type's collection.
        record: String,
        /// The key's bytes, in hex.
        key: String,
    },

    /// A write would give two records the same value in a unique index. Nothing was
    /// written.
    #[error("records {record:?}: another record already has {index} = {value}")]
    UniqueViolation {
        /// The record type's collection.
        record: String,
        /// The index (the field's name).
        index: String,
        /// The value, as its `Debug`.
        value: String,
    },

    /// [`Records::update`](crate::Records::update)'s closure changed the primary key.
    /// Nothing was written: remove the record and insert it under the new key instead.
    #[error("records {record:?}: an update may not change the primary key")]
    KeyChanged {
        /// The record type's collection.
        record: String,
    },

    /// [`Records::verify`](crate::Records::verify) found an index that does not match the
    /// records.
    #[error("records {record:?}, index {index:?}: {what}")]
    IndexMismatch {
        /// The record type's collection.
        record: String,
        /// The index.
        index: String,
        /// What was wrong.
        what: String,
    },

    /// A catalog entry is damaged: the catalog is not Grove's, or was written by a later
    /// version of Grove.
    #[error("the catalog entry of collection {collection:?} is unreadable: {reason}")]
    Catalog {
        /// The collection's name.
        collection: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// What the typed layer's fallible calls return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Bytes as lowercase hex, for naming keys that do not decode.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
