//! Grove's typed layer: collections of serde types over the byte-level engine.
//!
//! [`open`] gives a [`Db`]; [`Db::map`] gives a [`Map<K, V>`](Map), an ordered map
//! stored in the database, whose keys sort by `K`'s `Ord` (the [`key`] codec keeps the
//! order in bytes) and whose values are stored by a [`Codec`] ([`Bincode`] by default),
//! behind a header that names the codec and the schema version. A catalog remembers
//! every collection's types: opening one with other types is [`Error::TypeMismatch`],
//! never garbage.
//!
//! This crate never sees pages or log segments: it is written against `grove-engine`'s
//! public API alone, which [`engine`] re-exports.
//!
//! # Example
//! ```
//! # let dir = tempfile::tempdir()?;
//! let db = grove_collections::open(dir.path())?;
//! let stock = db.map::<String, u32>("stock")?;
//! stock.insert("apple", &3)?;
//! stock.update("apple", |n| n.map(|n| n - 1))?;
//! assert_eq!(stock.get("apple")?, Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
mod counter;
mod db;
mod error;
mod iter;
pub mod key;
mod map;
mod prefix;
mod queue;
mod records;
mod set;
mod transaction;
mod value;
mod watch;

pub use grove_engine as engine;

pub use counter::Counter;
pub use db::{Db, open};
pub use error::{Error, Result};
pub use iter::Iter;
pub use map::{CompareAndSwapError, Map};
pub use prefix::KeyPrefix;
pub use queue::{Lease, Queue};
pub use records::{
    AutoKey, Core, IndexDef, Record, RecordIter, Records, VerifyReport, decode_body,
};
pub use set::{Set, SetIter};
pub use transaction::{Transaction, TransactionError, TxCounter, TxMap, TxQueue, TxSet};
pub use value::{Bincode, Codec};
pub use watch::{MapEvent, MapWatch, SetEvent, SetWatch};

/// A collection's key, value and codec types, held by a handle that stores none of them
/// (`fn() -> _`: the handle is `Send` and `Sync` whatever they are).
type Types<K, V, C> = std::marker::PhantomData<fn() -> (K, V, C)>;
