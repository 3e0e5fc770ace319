//! [`FileStorage`]: a real directory on the local filesystem.

use std::{
    fs::{self, File, OpenOptions},
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{Storage, StorageFile};
use crate::error::{Error, Result};

/// The name of the lock file inside every database directory.
const LOCK_FILE: &str = "grove.lock";

/// A directory on the local filesystem, locked for exclusive use while this value lives.
///
/// Durability: file data by `fdatasync` ([`File::sync_data`]); file creation, renames and
/// removals by an `fsync` of the directory in [`Storage::sync_dir`].
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    /// Held for its lock: dropping it releases the directory.
    _lock: File,
}

impl FileStorage {
    /// Opens `dir`, creating it if it does not exist, and takes its exclusive lock.
    ///
    /// # Errors
    /// [`Error::AlreadyOpen`] if another handle, in this process or another, holds the lock;
    /// [`Error::Io`] if the directory cannot be created or the lock file opened.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let shown = dir.display().to_string();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &shown, e))?;
            // Make the new directory's own entry durable in its parent.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_directory(parent).map_err(|e| Error::io("sync directory", &shown, e))?;
            }
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io("open lock file", lock_path.display().to_string(), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::AlreadyOpen { path: shown }),
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::io("lock", lock_path.display().to_string(), e));
            }
        }
        Ok(Self { dir, _lock: lock })
    }

    /// The directory this storage lives in.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Storage for FileStorage {
    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(self.dir.join(name))?;
        Ok(Arc::new(DiskFile(file)))
    }

    fn create_new(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let file =
            OpenOptions::new().read(true).write(true).create_new(true).open(self.dir.join(name))?;
        Ok(Arc::new(DiskFile(file)))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
                && name != LOCK_FILE
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn sync_dir(&self) -> io::Result<()> {
        sync_directory(&self.dir)
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// `fsync` of a directory, so that entries created, renamed or removed in it are durable.
fn sync_directory(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; NTFS journals directory changes.
        let _ = dir;
        Ok(())
    }
}

/// One open file of a [`FileStorage`].
#[derive(Debug)]
struct DiskFile(File);

impl StorageFile for DiskFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + u64::try_from(done).map_err(io::Error::other)?;
            match positioned::read(&self.0, &mut buf[done..], at) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + u64::try_from(done).map_err(io::Error::other)?;
            match positioned::write(&self.0, &buf[done..], at) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

/// Positioned reads and writes, which std spells differently per platform.
mod positioned {
    use std::{fs::File, io};

    #[cfg(unix)]
    pub(super) fn read(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }

    #[cfg(unix)]
    pub(super) fn write(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::write_at(file, buf, offset)
    }

    #[cfg(windows)]
    pub(super) fn read(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }

    #[cfg(windows)]
    pub(super) fn write(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_write(file, buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStorage::open(dir.path()).unwrap();
        let second = FileStorage::open(dir.path());
        assert!(matches!(second, Err(Error::AlreadyOpen { .. })), "{second:?}");
        drop(first);
        FileStorage::open(dir.path()).unwrap();
    }

    #[test]
    fn files_round_trip_and_list_hides_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileStorage::open(dir.path().join("db")).unwrap();
        let file = storage.create_new("a").unwrap();
        file.write_at(b"hello", 3).unwrap();
        file.sync().unwrap();
        storage.sync_dir().unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 8);
        assert_eq!(&buf[..8], b"\0\0\0hello");
        assert!(storage.create_new("a").is_err());
        storage.rename("a", "b").unwrap();
        assert_eq!(storage.list().unwrap(), vec!["b".to_owned()]);
        storage.remove("b").unwrap();
        assert!(storage.list().unwrap().is_empty());
    }
}
