//! The Storage trait: the only way the engine touches the filesystem.
//!
//! A [`Storage`] is one flat directory of named files; a [`StorageFile`] is one open file
//! with positioned reads and writes. Three implementations:
//!
//! - [`FileStorage`]: a real directory. Durability by `fdatasync` (never `sync_file_range`,
//!   which does not flush the drive's cache nor the metadata needed to read the data back),
//!   and an `fsync` of the directory after a file is created, renamed or removed. It holds an
//!   exclusive lock on the directory for as long as it lives.
//! - [`MemStorage`]: everything in memory, every write immediately "durable". For temporary
//!   databases and fast tests.
//! - [`SimStorage`]: a deterministic simulated disk for crash and fault tests. It keeps synced
//!   and unsynced bytes apart, can crash (losing, tearing or garbling unsynced writes), can
//!   fail a chosen call with `EIO` or `ENOSPC`, and can flip bits.
//!
//! All methods return `std::io::Result`: the layer above adds which operation and file it
//! was (see [`crate::Error::Io`]).

mod file;
mod memory;
mod sim;

use std::{fmt, io, sync::Arc};

pub use file::FileStorage;
pub use memory::MemStorage;
pub use sim::{Fault, FaultKind, FaultOp, SimStorage};

/// A flat directory of named files.
///
/// # Contract
/// - Names are plain file names (no separators), chosen by the engine.
/// - After `create_new`, `rename` or `remove` returns, the change is visible to `list` and
///   `open`; it is durable once `sync_dir` returns.
/// - Implementations are shared between threads.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens an existing file for reading and writing. `NotFound` if it does not exist.
    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>>;

    /// Creates a new, empty file. `AlreadyExists` if there is one by that name.
    fn create_new(&self, name: &str) -> io::Result<Arc<dyn StorageFile>>;

    /// The names of all files, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;

    /// Removes a file. `NotFound` if it does not exist.
    fn remove(&self, name: &str) -> io::Result<()>;

    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Makes every completed `create_new`, `rename` and `remove` durable.
    fn sync_dir(&self) -> io::Result<()>;

    /// A human-readable location of `name`, for error messages (a path, for real files).
    fn describe(&self, name: &str) -> String {
        name.to_owned()
    }
}

/// One open file with positioned I/O.
///
/// # Contract
/// - `write_at` either writes all of `buf` or returns an error; after an error the bytes in
///   that range are unspecified.
/// - A write is durable only once a later `sync` returns `Ok`. After a failed `sync` the
///   durability of every write since the previous successful `sync` is unknown: the caller
///   must not retry as if nothing happened.
/// - `read_at` sees every completed write, synced or not.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads into `buf` starting at `offset`; returns how many bytes were read, which is less
    /// than `buf.len()` only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes all completed writes and length changes durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;

    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// The current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}
