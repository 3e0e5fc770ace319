//! Grove: an embedded database for Rust applications.
//!
//! Grove stores your application's data in one directory, owned by one process, as typed
//! collections of your serde types: [`Map`], [`Set`], [`Queue`] and [`Counter`], and
//! structs with `#[derive(Record)]` ([`Records`]: a primary key and secondary indexes),
//! with serializable [`Db::transaction`]s across them. Underneath is a byte-oriented engine,
//! [`engine`]: named trees of byte strings on a lock-free B-link tree, page cache and
//! storage log, usable directly too.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! let db = grove::open(dir.path())?;
//! let scores = db.map::<String, u32>("scores")?;
//! scores.insert("ann", &10)?;
//! assert_eq!(scores.get("ann")?, Some(10));
//! db.flush()?; // durable from here
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate is the facade: it holds re-exports only. See the README for the status of each
//! layer and the durability promise.

pub use grove_collections::{
    Bincode, Codec, CompareAndSwapError, Counter, Db, Error, Iter, KeyPrefix, Lease, Map, MapEvent,
    MapWatch, Queue, Record, RecordIter, Records, Result, Set, SetEvent, SetIter, SetWatch,
    Transaction, TransactionError, TxCounter, TxMap, TxQueue, TxSet, VerifyReport, key, open,
};
pub use grove_derive::Record;
pub use grove_engine as engine;

/// What the code `#[derive(Record)]` generates names. Not part of the API: it may change
/// in any release.
#[doc(hidden)]
pub mod __private {
    pub use grove_collections::{
        AutoKey, Core, IndexDef, Record, RecordIter, Result, decode_body,
        key::{KeyError, to_key},
    };
    pub use serde::Serialize;
}

/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
