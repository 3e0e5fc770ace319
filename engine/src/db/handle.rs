//! [`Db`]: the database handle: named trees, batches, ids, flushing.

use std::{collections::HashMap, fmt, ops::Deref, path::PathBuf, sync::Arc};

use super::{Config, meta};
use crate::{
    error::{Error, Result},
    ids::{PageId, TreeId},
    pagecache::{Change, GroupOutcome, GroupUpdate, PageCache, PageCacheStats, Weigh},
    storage::{FileStorage, Storage},
    sync::{self, AtomicUsize, Mutex, Ordering},
    tree::{
        Batch, Bytes, Plan, Shared, Tree, VersionStats, Versions,
        node::{Node, TreeMaterializer, Value, ValueRef},
    },
};

/// What [`Db::stats`] reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DbStats {
    /// The page cache's figures.
    pub page_cache: PageCacheStats,
    /// Every tree's name and entry count, the default tree first.
    pub trees: Vec<(Bytes, usize)>,
    /// Snapshots, the old values kept for them, and transactions.
    pub versions: VersionStats,
}

/// The name of the tree a [`Db`] dereferences to.
pub const DEFAULT_TREE: &[u8] = b"__grove_default";

/// An open database: one directory, owned by this handle (and its clones) alone.
///
/// A `Db` holds named [`Tree`]s and dereferences to its default tree, so the tree methods
/// (`get`, `insert`, `range`, ...) work on it directly. It is cheap to clone, `Send` and
/// `Sync`. The directory stays locked until every clone is dropped.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = grove_engine::open(dir.path())?;
/// db.insert(b"greeting", b"hello")?;
/// let scores = db.open_tree("scores")?;
/// scores.insert(b"ann", 10u64.to_be_bytes())?;
/// db.flush()?; // both writes are durable from here
/// assert_eq!(db.tree_names()?, vec![grove_engine::Bytes::from("scores")]);
/// # Ok::<(), grove_engine::Error>(())
/// ```
#[derive(Clone)]
pub struct Db {
    pub(super) inner: Arc<DbInner>,
    default: Tree,
}

pub(super) struct DbInner {
    pub(super) shared: Arc<Shared>,
    catalog: Tree,
    /// Trees opened so far, by name. A lock: opening a tree is rare, and it keeps two
    /// threads from creating the same tree twice.
    trees: Mutex<HashMap<Bytes, Tree>>,
    ids: meta::Ids,
    /// A directory to delete when the database is dropped (`Config::temporary`).
    temporary: Option<PathBuf>,
    storage: Arc<dyn Storage>,
    /// `Config::transaction_attempts`.
    pub(super) transaction_attempts: u32,
}

impl Drop for DbInner {
    fn drop(&mut self) {
        // Best effort: a close that fails leaves the log to be replayed at the next open,
        // which loses nothing that was flushed.
        self.shared.subscriptions.close_all();
        let _ = self.shared.cache.clone().close();
        if let Some(path) = &self.temporary {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("storage", &self.inner.storage.describe(""))
            .finish_non_exhaustive()
    }
}

impl Deref for Db {
    type Target = Tree;

    fn deref(&self) -> &Tree {
        &self.default
    }
}

/// Opens (or creates) the database in directory `path` with the default settings; see
/// [`Config`] for the others.
///
/// # Errors
/// As [`Config::open`].
pub fn open(path: impl Into<PathBuf>) -> Result<Db> {
    Config::new().path(path).open()
}

/// A process-wide counter for the names of temporary directories.
static TEMPORARY: sync::PlainAtomicU64 = sync::PlainAtomicU64::new(0);

impl Db {
    pub(crate) fn open_config(config: Config) -> Result<Db> {
        let mut temporary = None;
        let storage: Arc<dyn Storage> = match (&config.storage, &config.path) {
            (Some(storage), _) => storage.clone(),
            (None, path) => {
                let path = match path {
                    Some(path) => path.clone(),
                    None if config.temporary => std::env::temp_dir().join(format!(
                        "grove-{}-{}",
                        std::process::id(),
                        TEMPORARY.fetch_add(1, Ordering::Relaxed)
                    )),
                    None => {
                        return Err(Error::Config(
                            "no path: call Config::path, or Config::temporary(true)".into(),
                        ));
                    }
                };
                if config.create_new && has_entries(&path) {
                    return Err(Error::AlreadyExists { path: path.display().to_string() });
                }
                std::fs::create_dir_all(&path)
                    .map_err(|e| Error::io("create directory", path.display().to_string(), e))?;
                if config.temporary {
                    temporary = Some(path.clone());
                }
                Arc::new(FileStorage::open(&path)?)
            }
        };
        if config.create_new && config.storage.is_some() && !storage_is_empty(&*storage)? {
            return Err(Error::AlreadyExists { path: storage.describe("") });
        }
        let cache =
            PageCache::open(storage.clone(), config.cache.clone(), Arc::new(TreeMaterializer))?;
        if cache.is_read_only() && cache.page_id_count() == 0 {
            return Err(super::config::no_database(&storage.describe("")));
        }
        let shared = Arc::new(Shared {
            cache,
            node_bytes: config.node_bytes,
            blob_threshold: config.node_bytes / 4,
            merge_operators: config.merge_operators.clone(),
            subscriptions: Arc::default(),
            versions: Versions::new(config.snapshot_memory),
            batches: AtomicUsize::new(0),
        });
        let id_limit = bootstrap(&shared.cache)?;
        let catalog = Tree::new(
            shared.clone(),
            TreeId(0),
            meta::CATALOG_ROOT,
            Bytes::from("__grove_catalog"),
        );
        let inner = Arc::new(DbInner {
            shared,
            catalog,
            trees: Mutex::new(HashMap::new()),
            ids: meta::Ids::new(id_limit),
            temporary,
            storage,
            transaction_attempts: config.transaction_attempts,
        });
        let default = open_tree(&inner, Bytes::copy_from(DEFAULT_TREE))?;
        Ok(Db { inner, default })
    }

    /// Opens the tree called `name`, creating it (empty) if it does not exist.
    ///
    /// # Errors
    /// The log's errors if it has to be created; [`Error::Corruption`] for a damaged
    /// catalog.
    pub fn open_tree(&self, name: impl AsRef<[u8]>) -> Result<Tree> {
        open_tree(&self.inner, Bytes::copy_from(name.as_ref()))
    }

    /// Deletes the tree called `name` and gives its pages back; `false` if there was no
    /// such tree. Handles to it that are still open fail from then on. The default tree
    /// cannot be dropped (it is cleared instead).
    ///
    /// # Errors
    /// As [`Db::open_tree`].
    pub fn drop_tree(&self, name: impl AsRef<[u8]>) -> Result<bool> {
        self.inner.shared.cache.writable()?;
        let name = name.as_ref();
        if name == DEFAULT_TREE {
            self.default.clear()?;
            return Ok(true);
        }
        let mut trees = sync::lock(&self.inner.trees);
        let shared = &self.inner.shared;
        let dropped = shared.versions.write(
            |_| true,
            |recorder| {
                let catalog = &self.inner.catalog;
                let (leaf, entry) = catalog.entry_for_write(name)?;
                let Some(entry) = entry else {
                    return Ok(Some(None));
                };
                let (tree_id, root) = decode_entry(name, &entry)?;
                let tree = Tree::new(shared.clone(), tree_id, root, Bytes::copy_from(name));
                let mut plan = Plan::new(shared.node_bytes);
                plan.add(leaf, name, None, -1);
                for (id, version) in tree.pages()? {
                    plan.free(id, version);
                }
                // Open snapshots keep seeing the tree's entries: each gets a version.
                if recorder.records() {
                    for entry in tree.iter() {
                        let (key, value) = entry?;
                        recorder.stage(tree_id, &key, Some(&value));
                    }
                }
                recorder.publish();
                if plan.install(&shared.cache)? {
                    return Ok(Some(Some(tree)));
                }
                Ok(None)
            },
        )?;
        trees.remove(name);
        match dropped {
            Some(Some(tree)) => {
                tree.publish_cleared();
                Ok(true)
            }
            Some(None) => Ok(false),
            None => Err(Error::Inconsistent("an unvalidated drop was refused".into())),
        }
    }

    /// The names of every tree, in order, except the default tree.
    ///
    /// # Errors
    /// As [`Tree::iter`].
    pub fn tree_names(&self) -> Result<Vec<Bytes>> {
        let mut names = Vec::new();
        for entry in self.inner.catalog.iter() {
            let (name, _) = entry?;
            if &*name != DEFAULT_TREE {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Applies every write of `batch` atomically: all or nothing, for readers and after a
    /// crash. No lock is taken beyond the pages the batch changes.
    ///
    /// # Errors
    /// As [`Tree::insert`]; on error nothing was applied.
    pub fn apply_batch(&self, batch: Batch) -> Result<()> {
        crate::tree::apply_batch(&self.inner.shared, batch)
    }

    /// A new id, larger than every id this database handed out before, across restarts
    /// and crashes. About one in a million calls writes and flushes the meta page; the
    /// others are one atomic increment.
    ///
    /// # Errors
    /// The log's errors, when the ids reserved on disk run out and more are reserved.
    pub fn generate_id(&self) -> Result<u64> {
        self.inner.shared.cache.writable()?;
        self.inner.ids.generate(&self.inner.shared.cache)
    }

    /// Makes every write made before this call durable; returns once it is.
    ///
    /// # Errors
    /// [`Error::LogFailed`] if the log could not write or sync.
    pub fn flush(&self) -> Result<()> {
        self.inner.shared.cache.flush()
    }

    /// The database's figures: the page cache's (memory, disk and live bytes, space
    /// amplification, cleaner work, checkpoints) and every tree's entry count.
    ///
    /// # Errors
    /// As [`Db::tree_names`].
    pub fn stats(&self) -> Result<DbStats> {
        let mut trees = vec![(Bytes::copy_from(DEFAULT_TREE), self.default.len()?)];
        for name in self.tree_names()? {
            let tree = self.open_tree(&name)?;
            trees.push((name, tree.len()?));
        }
        Ok(DbStats {
            page_cache: self.inner.shared.cache.stats(),
            trees,
            versions: self.inner.shared.versions.stats(),
        })
    }

    /// Bytes the database's files take on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.shared.cache.stats().disk_bytes
    }

    /// Checks the whole database: every page's records (checksums) and the page cache's
    /// bookkeeping, then every tree: order, fences, links and levels of every node.
    /// Meant for tests and tools: it reads everything, and assumes no concurrent writes.
    ///
    /// # Errors
    /// [`Error::Corruption`] for damaged records; [`Error::Inconsistent`] for a broken
    /// invariant, with what was found.
    pub fn check(&self) -> Result<super::CheckReport> {
        super::check::check(&self.inner.shared.cache, &self.inner.catalog)
    }
}

/// Opens or creates tree `name`.
fn open_tree(inner: &Arc<DbInner>, name: Bytes) -> Result<Tree> {
    let mut trees = sync::lock(&inner.trees);
    if let Some(tree) = trees.get(&name) {
        return Ok(tree.clone());
    }
    let cache = &inner.shared.cache;
    loop {
        let (leaf, entry) = inner.catalog.entry_for_write(&name)?;
        if let Some(entry) = entry {
            let (id, root) = decode_entry(&name, &entry)?;
            let tree = Tree::new(inner.shared.clone(), id, root, name.clone());
            trees.insert(name, tree.clone());
            return Ok(tree);
        }
        cache.writable()?;
        let id = TreeId(inner.ids.generate(cache)?);
        let image = Node::empty(id, 0).encode()?;
        let root = cache.reserve_id()?;
        let mut plan = Plan::new(inner.shared.node_bytes);
        plan.create(root, image, Weigh::Set { owner: id.get(), weight: 0 });
        plan.add(leaf, &name, Some(ValueRef::Inline(&encode_entry(id, root))), 1);
        if plan.install(cache)? {
            let tree = Tree::new(inner.shared.clone(), id, root, name.clone());
            trees.insert(name, tree.clone());
            return Ok(tree);
        }
    }
}

/// A catalog entry's value: the tree's id and its root page, both u64 little-endian.
fn encode_entry(id: TreeId, root: PageId) -> Vec<u8> {
    let mut value = Vec::with_capacity(16);
    value.extend_from_slice(&id.get().to_le_bytes());
    value.extend_from_slice(&root.get().to_le_bytes());
    value
}

pub(crate) fn decode_entry(name: &[u8], value: &Value) -> Result<(TreeId, PageId)> {
    let bad = || {
        Error::corruption(
            format!("catalog entry {:?}", Bytes::copy_from(name)),
            0,
            "a catalog entry is 16 bytes: tree id and root page",
        )
    };
    let Value::Inline(bytes) = value else {
        return Err(bad());
    };
    if bytes.len() != 16 {
        return Err(bad());
    }
    let mut id = [0u8; 8];
    let mut root = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    root.copy_from_slice(&bytes[8..]);
    Ok((TreeId(u64::from_le_bytes(id)), PageId(u64::from_le_bytes(root))))
}

/// Creates the catalog root and the meta page in a new database; returns the id limit.
fn bootstrap(cache: &PageCache) -> Result<u64> {
    if cache.page_id_count() == 0 {
        let catalog = cache.reserve_id()?;
        let meta_page = cache.reserve_id()?;
        if (catalog, meta_page) != (meta::CATALOG_ROOT, meta::META) {
            return Err(Error::Inconsistent(format!(
                "a new database's first pages are {catalog} and {meta_page}"
            )));
        }
        let root = Node::empty(TreeId(0), 0).encode()?;
        let image = meta::encode(0);
        let updates = [
            GroupUpdate {
                id: catalog,
                version: None,
                change: Change::Replace(&root),
                weigh: Weigh::Set { owner: 0, weight: 0 },
            },
            GroupUpdate {
                id: meta_page,
                version: None,
                change: Change::Replace(&image),
                weigh: Weigh::Keep,
            },
        ];
        if cache.apply_group(&updates)? != GroupOutcome::Installed {
            return Err(Error::Inconsistent("a new database's pages were taken".into()));
        }
        // Ids start at 1: tree id 0 is the catalog.
        return Ok(1);
    }
    let missing = |what: &str| {
        Error::corruption(
            format!("{what} page"),
            0,
            format!("the database has pages but no {what} page: this directory is damaged"),
        )
    };
    let page = cache.get(meta::META)?.ok_or_else(|| missing("meta"))?;
    let limit = meta::decode(page.base())?;
    cache.get(meta::CATALOG_ROOT)?.ok_or_else(|| missing("catalog"))?;
    Ok(limit.max(1))
}

fn has_entries(path: &std::path::Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some())
}

fn storage_is_empty(storage: &dyn Storage) -> Result<bool> {
    let names = storage.list().map_err(|e| Error::io("list", storage.describe(""), e))?;
    Ok(names.iter().all(|name| name == "grove.lock"))
}
