use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Result, Store};

pub struct Fjall {
    db: Database,
    keyspace: Keyspace,
}

impl Fjall {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Fjall> {
        let db = Database::builder(dir).cache_size(cache_bytes).open()?;
        let keyspace = db.keyspace("bench", KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, keyspace })
    }

    fn done(&self, durable: bool) -> Result<()> {
        if durable {
            self.db.persist(PersistMode::SyncAll)?;
        }
        Ok(())
    }
}

impl Store for Fjall {
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()> {
        self.keyspace.insert(key, value)?;
        self.done(durable)
    }

    fn batch(&self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Result<()> {
        let mut batch = self.db.batch();
        for (key, value) in entries {
            batch.insert(&self.keyspace, key.as_slice(), value.as_slice());
        }
        batch.commit()?;
        self.done(durable)
    }

    fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<()> {
        let mut batch = self.db.batch();
        for key in keys {
            batch.remove(&self.keyspace, key.as_slice());
        }
        batch.commit()?;
        self.done(durable)
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let mut found = 0;
        for key in keys {
            if let Some(value) = self.keyspace.get(key)? {
                found += usize::from(!value.is_empty());
            }
        }
        Ok(found)
    }

    fn range(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let mut read = 0;
        for start in starts {
            for guard in self.keyspace.range(start.as_slice()..).take(len) {
                let (_, value) = guard.into_inner()?;
                read += usize::from(!value.is_empty());
            }
        }
        Ok(read)
    }

    fn len(&self) -> Result<u64> {
        Ok(u64::try_from(self.keyspace.len()?)?)
    }

    fn sync(&self) -> Result<()> {
        self.done(true)
    }
}
