use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};

use super::{Result, Store};

pub struct Rocks {
    db: DB,
}

impl Rocks {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Rocks> {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(usize::try_from(cache_bytes)?));
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_block_based_table_factory(&table);
        Ok(Rocks { db: DB::open(&options, dir)? })
    }

    fn options(durable: bool) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(durable);
        options
    }
}

impl Store for Rocks {
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()> {
        Ok(self.db.put_opt(key, value, &Self::options(durable))?)
    }

    fn batch(&self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            batch.put(key, value);
        }
        Ok(self.db.write_opt(batch, &Self::options(durable))?)
    }

    fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        for key in keys {
            batch.delete(key);
        }
        Ok(self.db.write_opt(batch, &Self::options(durable))?)
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let mut found = 0;
        for key in keys {
            if let Some(value) = self.db.get_pinned(key)? {
                found += usize::from(!value.is_empty());
            }
        }
        Ok(found)
    }

    fn range(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let mut read = 0;
        for start in starts {
            for entry in self.db.iterator(IteratorMode::From(start, Direction::Forward)).take(len) {
                let (_, value) = entry?;
                read += usize::from(!value.is_empty());
            }
        }
        Ok(read)
    }

    fn len(&self) -> Result<u64> {
        let mut count = 0;
        for entry in self.db.iterator(IteratorMode::Start) {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    fn sync(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }
}
