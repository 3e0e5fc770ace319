use std::{ops::ControlFlow, path::Path};

use grove_engine::{Batch, Db, Tree};

use super::{Result, Store};

pub struct Grove {
    db: Db,
    tree: Tree,
}

impl Grove {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Grove> {
        let db = grove_engine::Config::new().path(dir).cache_capacity(cache_bytes).open()?;
        let tree = db.open_tree("bench")?;
        Ok(Grove { db, tree })
    }

    fn done(&self, durable: bool) -> Result<()> {
        if durable {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Applies `batch`, durable on return with `durable` as RocksDB's synced write batch
    /// is: the log syncs the batch's records while it updates its pages.
    fn apply(&self, mut batch: Batch, durable: bool) -> Result<()> {
        if durable {
            batch.flush_on_apply();
        }
        Ok(self.db.apply_batch(batch)?)
    }
}

/// With `GROVE_COMPARE_STATS` set, the page cache's figures go to stderr at close: to see
/// where memory, disk and cold reads went.
impl Drop for Grove {
    fn drop(&mut self) {
        if std::env::var_os("GROVE_COMPARE_STATS").is_some()
            && let Ok(stats) = self.db.stats()
        {
            eprintln!("{:#?}", stats.page_cache);
        }
    }
}

/// With `GROVE_COMPARE_STATS` set, the cache's memory after a phase, what the disk holds
/// (live bytes against the segments' bytes, per stream) and the maintenance passes so far.
fn print_phase(phase: &str, db: &Db) {
    let Ok(stats) = db.stats() else { return };
    let cache = stats.page_cache;
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let sum = |segments: &[grove_engine::SegmentUse]| {
        let file: u64 = segments.iter().map(|s| s.file_len).sum();
        let live: u64 = segments.iter().map(|s| s.live_bytes).sum();
        format!("{} segments, {:.1} MiB holding {:.1} live", segments.len(), mib(file), mib(live))
    };
    eprintln!(
        "after {phase}: cache {:.1} MiB ({} evictions, {} cold reads); {} passes in {:?}, \
         cleaning {:?}; disk {:.1} MiB, live {:.1} MiB, checkpoint {:.1} MiB; delta: {}; \
         base: {}",
        mib(cache.memory_bytes),
        cache.evictions,
        cache.cold_reads,
        cache.maintenance_passes,
        cache.maintenance_time,
        cache.cleaning_time,
        mib(cache.disk_bytes),
        mib(cache.live_bytes),
        mib(cache.checkpoint_bytes),
        sum(&cache.delta_segments),
        sum(&cache.base_segments),
    );
}

impl Store for Grove {
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()> {
        self.tree.insert(key, value)?;
        self.done(durable)
    }

    fn batch(&self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Result<()> {
        let mut batch = Batch::default();
        for (key, value) in entries {
            batch.insert(&self.tree, key, value);
        }
        self.apply(batch, durable)
    }

    fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<()> {
        let mut batch = Batch::default();
        for key in keys {
            batch.remove(&self.tree, key);
        }
        self.apply(batch, durable)
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let mut found = 0;
        // Read in place, as the other engines' gets are (LMDB's borrowed slices, redb's
        // guards, RocksDB's pinned slices): no copy of the value.
        for key in keys {
            if let Some(filled) = self.tree.get_with(key, |value| !value.is_empty())? {
                found += usize::from(filled);
            }
        }
        Ok(found)
    }

    fn range(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        // Visited in place, as LMDB's cursors and redb's guards are read: no copy per entry.
        let mut read = 0;
        for start in starts {
            let mut taken = 0;
            self.tree.range(start.as_slice()..).visit(|_, value| {
                read += usize::from(!value.is_empty());
                taken += 1;
                if taken == len { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })?;
        }
        Ok(read)
    }

    fn len(&self) -> Result<u64> {
        Ok(u64::try_from(self.tree.len()?)?)
    }

    fn sync(&self) -> Result<()> {
        self.done(true)
    }

    fn after(&self, phase: &str) {
        if std::env::var_os("GROVE_COMPARE_STATS").is_some() {
            print_phase(phase, &self.db);
        }
    }
}
