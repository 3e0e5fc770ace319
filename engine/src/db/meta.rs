//! The meta page (page 1): the database's format version and the id generator's limit.
//!
//! ```text
//! 0   8 bytes  magic "grove-db"
//! 8   u32      format version (2; version 1 had node images without key heads)
//! 12  u32      reserved, 0
//! 16  u64      id limit: every id handed out by `generate_id` is below it, and the next
//!              open starts from it
//! ```
//!
//! Ids are handed out from memory; when they reach the limit, the limit is raised by
//! [`ID_BATCH`] and the page rewritten and flushed *before* any id past the old limit is
//! handed out. A crash therefore never hands out an id twice: the next open starts at a
//! limit that was durable before any id below it was returned.

use crate::{
    error::{Error, Result},
    ids::PageId,
    pagecache::PageCache,
    sync::{self, AtomicU64, Mutex, Ordering},
};

/// The page of the catalog tree's root.
pub(crate) const CATALOG_ROOT: PageId = PageId(0);
/// The meta page.
pub(crate) const META: PageId = PageId(1);

const MAGIC: &[u8; 8] = b"grove-db";
const VERSION: u32 = 2;
const LEN: usize = 24;

/// How many ids one durable write of the meta page covers.
pub(crate) const ID_BATCH: u64 = 1 << 20;

/// The meta page's image.
pub(crate) fn encode(id_limit: u64) -> Vec<u8> {
    let mut image = Vec::with_capacity(LEN);
    image.extend_from_slice(MAGIC);
    image.extend_from_slice(&VERSION.to_le_bytes());
    image.extend_from_slice(&0u32.to_le_bytes());
    image.extend_from_slice(&id_limit.to_le_bytes());
    image
}

/// The id limit in a meta page's image.
pub(crate) fn decode(image: &[u8]) -> Result<u64> {
    let what = || format!("meta {META}");
    if image.len() != LEN || &image[..8] != MAGIC {
        let mut first = [0u8; 8];
        let n = image.len().min(8);
        first[..n].copy_from_slice(&image[..n]);
        return Err(Error::NotGrove { file: what(), found: u64::from_le_bytes(first) });
    }
    let field = |at: usize| -> [u8; 8] {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&image[at..at + 8]);
        bytes
    };
    let version = u32::from_le_bytes([image[8], image[9], image[10], image[11]]);
    if version != VERSION {
        return Err(Error::UnsupportedVersion { file: what(), found: version, supported: VERSION });
    }
    Ok(u64::from_le_bytes(field(16)))
}

/// Monotonic ids, durable in batches.
#[derive(Debug)]
pub(crate) struct Ids {
    /// The next id to hand out. Owner: `generate` (fetch-add only). Relaxed: uniqueness
    /// comes from the fetch-add; ordering with the limit comes from the lock.
    next: AtomicU64,
    /// Every id below this is covered by a durable meta page. Raised under `raising`.
    /// Acquire/release: a thread that sees the raised limit sees that it is durable.
    limit: AtomicU64,
    raising: Mutex<()>,
}

impl Ids {
    pub(crate) fn new(durable_limit: u64) -> Ids {
        Ids {
            next: AtomicU64::new(durable_limit),
            limit: AtomicU64::new(durable_limit),
            raising: Mutex::new(()),
        }
    }

    /// The next id.
    pub(crate) fn generate(&self, cache: &PageCache) -> Result<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if id < self.limit.load(Ordering::Acquire) {
            return Ok(id);
        }
        let _raising = sync::lock(&self.raising);
        while id >= self.limit.load(Ordering::Acquire) {
            let limit = self.limit.load(Ordering::Acquire).max(id + 1).saturating_add(ID_BATCH);
            loop {
                let page = cache.get(META)?.ok_or_else(|| {
                    Error::corruption(format!("meta {META}"), 0, "the meta page is missing")
                })?;
                if cache.replace(META, page.version(), &encode(limit))?.installed().is_some() {
                    break;
                }
            }
            cache.flush()?;
            self.limit.store(limit, Ordering::Release);
        }
        Ok(id)
    }
}
