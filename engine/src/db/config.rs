//! [`Config`]: how to open a database.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use super::Db;
use crate::{
    config::{LogConfig, PageCacheConfig},
    error::{Error, Result},
    storage::Storage,
    tree::{Bytes, MergeOperator},
};

/// How to open a [`Db`]: a builder. `Config::new().path("app.grove").open()` is the usual
/// start; [`crate::open`] is the same with every default.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = grove_engine::Config::new()
///     .path(dir.path().join("app.grove"))
///     .cache_capacity(64 << 20)
///     .flush_every_ms(Some(100))
///     .open()?;
/// db.insert(b"hello", b"world")?;
/// # Ok::<(), grove_engine::Error>(())
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) path: Option<PathBuf>,
    pub(crate) storage: Option<Arc<dyn Storage>>,
    pub(crate) cache: PageCacheConfig,
    pub(crate) node_bytes: usize,
    pub(crate) temporary: bool,
    pub(crate) create_new: bool,
    pub(crate) read_only: bool,
    pub(crate) merge_operators: HashMap<Bytes, MergeOperator>,
    pub(crate) snapshot_memory: usize,
    pub(crate) transaction_attempts: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("storage", &self.storage.as_ref().map(|s| s.describe("")))
            .field("cache", &self.cache)
            .field("node_bytes", &self.node_bytes)
            .field("temporary", &self.temporary)
            .field("create_new", &self.create_new)
            .field("read_only", &self.read_only)
            .field("merge_operators", &self.merge_operators.keys().collect::<Vec<_>>())
            .field("snapshot_memory", &self.snapshot_memory)
            .field("transaction_attempts", &self.transaction_attempts)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            storage: None,
            cache: PageCacheConfig::default(),
            node_bytes: 8192,
            temporary: false,
            create_new: false,
            read_only: false,
            merge_operators: HashMap::new(),
            snapshot_memory: 64 << 20,
            transaction_attempts: 100,
        }
    }
}

impl Config {
    /// The defaults: no path yet, a 256 MiB cache, a flush every 500 ms, 8 KiB nodes.
    pub fn new() -> Config {
        Config::default()
    }

    /// Tiny sizes for tests, so that splits, eviction, checkpoints and cleaning happen
    /// constantly: 256-byte nodes and [`PageCacheConfig::tiny`].
    pub fn tiny() -> Config {
        Config { cache: PageCacheConfig::tiny(), node_bytes: 256, ..Config::default() }
    }

    /// The directory of the database; created if missing.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Config {
        self.path = Some(path.into());
        self
    }

    /// Store the database in `storage` instead of a directory (for tests: a
    /// [`crate::SimStorage`] or [`crate::MemStorage`]).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Config {
        self.storage = Some(storage);
        self
    }

    /// Memory the page cache may hold, in bytes. Default 256 MiB.
    pub fn cache_capacity(mut self, bytes: u64) -> Config {
        self.cache.cache_bytes = bytes;
        self
    }

    /// Writes become durable on their own within this many milliseconds; `None` leaves
    /// durability to [`Db::flush`]. Default 500.
    pub fn flush_every_ms(mut self, every: Option<u64>) -> Config {
        self.cache.log.flush_every_ms = every;
        self
    }

    /// zstd compression of large log records at this level; `None` (the default) stores
    /// them as they are.
    pub fn compression(mut self, level: Option<i32>) -> Config {
        self.cache.log.compression_level = level;
        self
    }

    /// The size of one log segment file, in bytes. Default 8 MiB.
    pub fn segment_size(mut self, bytes: u64) -> Config {
        self.cache.log.segment_size = bytes;
        self
    }

    /// Nodes split when they would grow past this many bytes. Default 8 KiB: against 4 KiB,
    /// on 1M random keys of 24 bytes with 150-byte values, the disk after the load was 14%
    /// smaller, the load 6% fewer instructions and gets about 15% faster.
    pub fn node_bytes(mut self, bytes: usize) -> Config {
        self.node_bytes = bytes;
        self
    }

    /// The most memory the old values kept for open snapshots and transactions may take.
    /// Past it, the oldest are dropped and the snapshots that needed them expire: their
    /// reads fail with [`Error::SnapshotExpired`], and a transaction reading from one runs
    /// again with a new snapshot. Default 64 MiB. Old values are never written to disk.
    pub fn snapshot_memory(mut self, bytes: usize) -> Config {
        self.snapshot_memory = bytes;
        self
    }

    /// How many times [`Db::transaction`] runs a transaction that keeps conflicting with
    /// others before it gives up with
    /// [`TransactionError::Conflict`](crate::TransactionError::Conflict). Default 100; at
    /// least 1.
    pub fn transaction_attempts(mut self, attempts: u32) -> Config {
        self.transaction_attempts = attempts.max(1);
        self
    }

    /// Delete the database's directory when the [`Db`] is dropped. Without a path, a new
    /// directory under the system's temporary directory is used.
    pub fn temporary(mut self, temporary: bool) -> Config {
        self.temporary = temporary;
        self
    }

    /// Fail with [`Error::AlreadyExists`] if the directory already holds a database.
    pub fn create_new(mut self, create_new: bool) -> Config {
        self.create_new = create_new;
        self
    }

    /// Open the database without changing a byte of its files: every read works and shows
    /// what a normal open would (a crash's torn log tail is read up to where it tears, but
    /// not cut off), and every write ([`Tree::insert`](crate::Tree::insert) and the other
    /// tree writes, [`Db::apply_batch`], [`Db::drop_tree`], [`Db::generate_id`], creating a
    /// tree with [`Db::open_tree`]) fails with [`Error::ReadOnly`]. No checkpoint is written
    /// on close and no background flush runs.
    ///
    /// The one file a read-only open may create is the directory's lock file, `grove.lock`
    /// (an existing one is only locked, not written): the lock is exclusive, so one process
    /// at a time opens a directory, read-only or not. Opening a path that holds no
    /// database read-only is [`Error::Config`], and creates nothing. Cannot be combined with
    /// [`Config::temporary`] or [`Config::create_new`].
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// grove_engine::open(dir.path())?.insert(b"k", b"v")?;
    /// let db = grove_engine::Config::new().path(dir.path()).read_only(true).open()?;
    /// assert_eq!(db.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert!(matches!(db.insert(b"k", b"w"), Err(grove_engine::Error::ReadOnly)));
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn read_only(mut self, read_only: bool) -> Config {
        self.read_only = read_only;
        self
    }

    /// Registers `operator` as the merge operator of the tree called `tree`, for
    /// [`Tree::merge`](crate::Tree::merge). Operators are not stored in the database:
    /// register them at every open.
    pub fn merge_operator(mut self, tree: impl AsRef<[u8]>, operator: MergeOperator) -> Config {
        self.merge_operators.insert(Bytes::copy_from(tree.as_ref()), operator);
        self
    }

    /// Every page cache and log setting, for fine tuning. (`config.log.read_only` is the
    /// same as [`Config::read_only`]; either one makes the open read-only.)
    pub fn page_cache(mut self, config: PageCacheConfig) -> Config {
        self.cache = config;
        self
    }

    /// The log settings in effect.
    pub fn log(&self) -> &LogConfig {
        &self.cache.log
    }

    /// Opens the database.
    ///
    /// # Errors
    /// [`Error::AlreadyOpen`] if another handle holds the directory; [`Error::AlreadyExists`]
    /// with `create_new`; [`Error::NotGrove`], [`Error::UnsupportedVersion`] or
    /// [`Error::Corruption`] for a directory that is not a usable Grove database (left
    /// unmodified); [`Error::Config`] for inconsistent settings, or with `read_only` for a
    /// path that holds no database; [`Error::Io`].
    pub fn open(mut self) -> Result<Db> {
        if self.node_bytes < 128 {
            return Err(Error::Config(format!(
                "node_bytes {} is below the minimum of 128",
                self.node_bytes
            )));
        }
        self.cache.log.read_only |= self.read_only;
        if self.cache.log.read_only {
            self.check_read_only()?;
        }
        Db::open_config(self)
    }

    /// Refuses a read-only open that would have to write: with `temporary` (deletes the
    /// directory) or `create_new`, or of a place that holds no database (checked before
    /// anything, the directory included, is created).
    fn check_read_only(&self) -> Result<()> {
        if self.temporary || self.create_new {
            return Err(Error::Config(
                "read_only cannot be combined with temporary or create_new, which write".into(),
            ));
        }
        let (place, names) = match (&self.storage, &self.path) {
            (Some(storage), _) => (
                storage.describe(""),
                storage.list().map_err(|e| Error::io("list", storage.describe(""), e))?,
            ),
            (None, Some(path)) => {
                let names = match std::fs::read_dir(path) {
                    Ok(entries) => entries
                        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                        .collect(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(Error::io("list", path.display().to_string(), e)),
                };
                (path.display().to_string(), names)
            }
            (None, None) => return Ok(()), // `open` reports the missing path
        };
        if names.iter().any(|name| is_database_file(name)) {
            Ok(())
        } else {
            Err(no_database(&place))
        }
    }
}

/// Whether `name` is one of the files a database is made of: a log segment or a
/// checkpoint (`format.md`).
fn is_database_file(name: &str) -> bool {
    name.ends_with(".seg") || name.ends_with(".ckpt")
}

/// The error of a read-only open of `place`, which holds no database.
pub(crate) fn no_database(place: &str) -> Error {
    Error::Config(format!(
        "{place:?} holds no Grove database, and read_only cannot create one: check the path, \
         or open without read_only"
    ))
}
