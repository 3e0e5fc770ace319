//! [`MemStorage`]: files held in memory.

use std::{
    collections::HashMap,
    io,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use super::{Storage, StorageFile};

/// A directory held entirely in memory. Every completed write counts as durable; everything
/// is gone when the last handle is dropped. Cloning shares the same files.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    files: Arc<Mutex<HashMap<String, Arc<MemFile>>>>,
}

impl MemStorage {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<MemFile>>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemStorage {
    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        match self.files().get(name) {
            Some(file) => Ok(file.clone()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {name:?}"))),
        }
    }

    fn create_new(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let mut files = self.files();
        if files.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name:?} exists")));
        }
        let file = Arc::new(MemFile::default());
        files.insert(name.to_owned(), file.clone());
        Ok(file)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.files().keys().cloned().collect())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match self.files().remove(name) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {name:?}"))),
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files();
        let Some(file) = files.remove(from) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {from:?}")));
        };
        files.insert(to.to_owned(), file);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

/// One in-memory file.
#[derive(Debug, Default)]
struct MemFile {
    data: RwLock<Vec<u8>>,
}

impl StorageFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(offset).map_err(io::Error::other)?.min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.data.write().unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.data.write().unwrap_or_else(PoisonError::into_inner).resize(len, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let len = self.data.read().unwrap_or_else(PoisonError::into_inner).len();
        u64::try_from(len).map_err(io::Error::other)
    }
}
