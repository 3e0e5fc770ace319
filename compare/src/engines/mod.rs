//! One adapter per engine, each driving the engine the way its documentation
//! recommends, behind one small trait so the workloads are written once.

use std::path::Path;

mod fjall;
mod grove;
mod lmdb;
mod redb;
#[cfg(feature = "rocksdb")]
mod rocksdb;
mod sled;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// What the workloads need from an engine.
///
/// "Durable" means on the disk when the call returns: every adapter ends a
/// durable call with the engine's own sync, and sled's with an fsync of its
/// files as well. Calls that take a slice of keys let engines with read
/// transactions use one transaction for the whole slice, as their own
/// benchmarks do.
pub trait Store: Send + Sync {
    /// Writes one entry, in its own transaction where the engine has them.
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()>;
    /// Writes the entries atomically, as one batch or transaction.
    fn batch(&self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Result<()>;
    /// Removes the keys atomically, as one batch or transaction.
    fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<()>;
    /// Looks the keys up and returns how many were found (reading each value).
    fn get(&self, keys: &[Vec<u8>]) -> Result<usize>;
    /// For each start key, reads up to `len` entries from it on, and returns how many entries were read.
    fn range(&self, starts: &[Vec<u8>], len: usize) -> Result<usize>;
    /// The number of entries.
    fn len(&self) -> Result<u64>;
    /// Makes every write so far durable.
    fn sync(&self) -> Result<()>;
    /// Called after each phase: an engine may print its own figures (to stderr) for the
    /// phase just ended.
    fn after(&self, _phase: &str) {}
}

/// The engines this build can run, in the order tables list them.
pub fn names() -> Vec<&'static str> {
    let mut names = vec!["grove", "lmdb", "redb", "fjall", "sled"];
    if cfg!(feature = "rocksdb") {
        names.push("rocksdb");
    }
    names
}

/// Opens (or creates) engine `name` in `dir` with a cache of `cache_bytes`.
pub fn open(name: &str, dir: &Path, cache_bytes: u64) -> Result<Box<dyn Store>> {
    std::fs::create_dir_all(dir)?;
    Ok(match name {
        "grove" => Box::new(grove::Grove::open(dir, cache_bytes)?),
        "lmdb" => Box::new(lmdb::Lmdb::open(dir)?),
        "redb" => Box::new(redb::Redb::open(dir, cache_bytes)?),
        "fjall" => Box::new(fjall::Fjall::open(dir, cache_bytes)?),
        "sled" => Box::new(sled::Sled::open(dir, cache_bytes)?),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Box::new(rocksdb::Rocks::open(dir, cache_bytes)?),
        other => {
            return Err(format!("unknown engine {other:?}; this build has {:?}", names()).into());
        }
    })
}
