//! Grove: an embedded database for Rust applications.
//!
//! Grove stores your application's data in one directory, owned by one process. Underneath is
//! a byte-oriented engine, [`engine`]: named trees of byte strings with atomic batches across
//! them, on a lock-free B-link tree, page cache and storage log. On top will come typed
//! `Map`, `Set`, `Queue` collections and derived records.
//!
//! This crate is the facade: it holds re-exports only. See the README for the status of each
//! layer and the durability promise.

pub use grove_collections as collections;
pub use grove_engine as engine;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
