use std::{ops::Bound, path::Path};

use heed::{Database, Env, EnvFlags, EnvOpenOptions, types::Bytes};

use super::{Result, Store};

/// LMDB maps the whole file; the map must be larger than the data will grow.
const MAP_BYTES: usize = 64 << 30;

pub struct Lmdb {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl Lmdb {
    /// LMDB has no cache of its own (it reads through the OS page cache), so
    /// the budget does not apply. It is opened with `NO_SYNC` so that
    /// non-durable writes skip the sync; durable calls end with `force_sync`,
    /// which is what a default commit would do.
    pub fn open(dir: &Path) -> Result<Lmdb> {
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_BYTES).max_dbs(1);
        // SAFETY: `NO_SYNC` only delays syncs, which `force_sync` performs
        // before every durable call returns; nothing else shares the file.
        let env = unsafe {
            options.flags(EnvFlags::NO_SYNC);
            options.open(dir)?
        };
        let mut txn = env.write_txn()?;
        let db = env.create_database(&mut txn, Some("bench"))?;
        txn.commit()?;
        Ok(Lmdb { env, db })
    }

    fn write(
        &self,
        durable: bool,
        write: impl FnOnce(&mut heed::RwTxn) -> Result<()>,
    ) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        write(&mut txn)?;
        txn.commit()?;
        if durable {
            self.env.force_sync()?;
        }
        Ok(())
    }
}

impl Store for Lmdb {
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()> {
        self.write(durable, |txn| Ok(self.db.put(txn, key, value)?))
    }

    fn batch(&self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Result<()> {
        self.write(durable, |txn| {
            for (key, value) in entries {
                self.db.put(txn, key, value)?;
            }
            Ok(())
        })
    }

    fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<()> {
        self.write(durable, |txn| {
            for key in keys {
                self.db.delete(txn, key)?;
            }
            Ok(())
        })
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let txn = self.env.read_txn()?;
        let mut found = 0;
        for key in keys {
            if let Some(value) = self.db.get(&txn, key)? {
                found += usize::from(!value.is_empty());
            }
        }
        Ok(found)
    }

    fn range(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let txn = self.env.read_txn()?;
        let mut read = 0;
        for start in starts {
            for entry in self
                .db
                .range(&txn, &(Bound::Included(start.as_slice()), Bound::Unbounded))?
                .take(len)
            {
                let (_, value) = entry?;
                read += usize::from(!value.is_empty());
            }
        }
        Ok(read)
    }

    fn len(&self) -> Result<u64> {
        let txn = self.env.read_txn()?;
        Ok(self.db.len(&txn)?)
    }

    fn sync(&self) -> Result<()> {
        Ok(self.env.force_sync()?)
    }
}
