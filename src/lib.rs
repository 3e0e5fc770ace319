//! Grove: an embedded database for Rust applications.
//!
//! Grove stores your application's data in one directory, owned by one process. Underneath is
//! a byte-oriented engine (a storage log today; a page cache and a B-link tree next); on top
//! will come typed `Map`, `Set`, `Queue` collections and derived records.
//!
//! This crate is the facade: it holds re-exports only. See the README for the status of each
//! layer and the durability promise.

pub use grove_collections as collections;
pub use grove_engine as engine;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
