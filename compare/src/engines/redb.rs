use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::{Result, Store};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

pub struct Redb {
    db: Database,
}

impl Redb {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Redb> {
        let db = Database::builder()
            .set_cache_size(usize::try_from(cache_bytes)?)
            .create(dir.join("bench.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        Ok(Redb { db })
    }

    /// Runs `write` in one write transaction, committed durably or not.
    fn write(
        &self,
        durable: bool,
        write: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> Result<()>,
    ) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        {
            let mut table = txn.open_table(TABLE)?;
            write(&mut table)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl Store for Redb {
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()> {
        self.write(durable, |table| {
            table.insert(key, value)?;
            Ok(())
        })
    }

    fn batch(&self, entries: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Result<()> {
        self.write(durable, |table| {
            for (key, value) in entries {
                table.insert(key.as_slice(), value.as_slice())?;
            }
            Ok(())
        })
    }

    fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<()> {
        self.write(durable, |table| {
            for key in keys {
                table.remove(key.as_slice())?;
            }
            Ok(())
        })
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut found = 0;
        for key in keys {
            if let Some(value) = table.get(key.as_slice())? {
                found += usize::from(!value.value().is_empty());
            }
        }
        Ok(found)
    }

    fn range(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut read = 0;
        for start in starts {
            for entry in table.range(start.as_slice()..)?.take(len) {
                let (_, value) = entry?;
                read += usize::from(!value.value().is_empty());
            }
        }
        Ok(read)
    }

    fn len(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(TABLE)?.len()?)
    }

    /// An empty durable commit makes the earlier non-durable ones durable.
    fn sync(&self) -> Result<()> {
        self.write(true, |_| Ok(()))
    }
}
