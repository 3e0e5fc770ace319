use std::path::{Path, PathBuf};

use super::{Result, Store};

pub struct Sled {
    db: sled::Db,
    dir: PathBuf,
}

impl Sled {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Sled> {
        let db = sled::Config::new().path(dir).cache_capacity(cache_bytes).open()?;
        Ok(Sled { db, dir: dir.to_path_buf() })
    }

    /// sled's `flush`, then an fsync of every file it keeps, as the harness
    /// promises for sled: its flush alone has been reported not to reach the disk.
    fn done(&self, durable: bool) -> Result<()> {
        if durable {
            self.db.flush()?;
            fsync_tree(&self.dir)?;
        }
        Ok(())
    }
}

fn fsync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fsync_tree(&entry.path())?;
        } else {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

impl Store for Sled {
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()> {
        self.db.insert(key, value)?;
        self.done(durable)
    }

    fn batch(&self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in entries {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.db.apply_batch(batch)?;
        self.done(durable)
    }

    fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in keys {
            batch.remove(key.as_slice());
        }
        self.db.apply_batch(batch)?;
        self.done(durable)
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let mut found = 0;
        for key in keys {
            if let Some(value) = self.db.get(key)? {
                found += usize::from(!value.is_empty());
            }
        }
        Ok(found)
    }

    fn range(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let mut read = 0;
        for start in starts {
            for entry in self.db.range(start.as_slice()..).take(len) {
                let (_, value) = entry?;
                read += usize::from(!value.is_empty());
            }
        }
        Ok(read)
    }

    fn len(&self) -> Result<u64> {
        Ok(u64::try_from(self.db.len())?)
    }

    fn sync(&self) -> Result<()> {
        self.done(true)
    }
}
