//! Export and import: every tree as one stream that does not depend on the on-disk format,
//! so a database can move to a build with another format, or be inspected.
//!
//! ```text
//! magic   "grove-export" (12 bytes), then u32 stream version 1
//! tree*   u8 1, varint name length, name, entry*, u8 0
//!         entry: u8 1, varint key length, key, varint value length, value
//! end     u8 0, then u32 CRC-32 of every byte before it
//! ```
//!
//! All integers are little-endian. Trees come in name order and entries in key order,
//! so equal databases export equal streams.

use std::io::{BufReader, BufWriter, Read, Write};

use super::{Db, handle::DEFAULT_TREE};
use crate::{
    error::{Error, Result},
    tree::{Batch, Bytes},
    varint,
};

const MAGIC: &[u8; 12] = b"grove-export";
const VERSION: u32 = 1;
/// Imported entries are written in batches of this many.
const IMPORT_BATCH: usize = 1000;

/// What an export or import moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transfer {
    /// Trees, the default tree included.
    pub trees: u64,
    /// Entries, over every tree.
    pub entries: u64,
    /// Bytes of the stream.
    pub bytes: u64,
}

/// A writer that counts and checksums what passes through it.
struct Summing<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Summing<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc.update(bytes);
        self.bytes += u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.inner.write_all(bytes).map_err(|e| Error::io("write", "export stream", e))
    }

    fn put_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let mut len = Vec::with_capacity(10);
        varint::put(&mut len, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        self.put(&len)?;
        self.put(bytes)
    }
}

/// A reader that checksums what it reads.
struct Checked<R> {
    inner: R,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<R: Read> Checked<R> {
    fn take(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let read = (&mut self.inner)
            .take(u64::try_from(len).unwrap_or(u64::MAX))
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read", "export stream", e))?;
        if read != len {
            return Err(bad(self.bytes, "the stream ends early"));
        }
        self.crc.update(&buf);
        self.bytes += u64::try_from(len).unwrap_or(u64::MAX);
        Ok(buf)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(bad(self.bytes, "a length is longer than 10 bytes"))
    }

    /// A length-prefixed byte string, read in steps so a damaged length cannot make it
    /// allocate more than the stream holds.
    fn bytes(&mut self) -> Result<Vec<u8>> {
        let len =
            usize::try_from(self.varint()?).map_err(|_| bad(self.bytes, "a length overflows"))?;
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let step = left.min(1 << 20);
            out.extend(self.take(step)?);
            left -= step;
        }
        Ok(out)
    }
}

fn bad(offset: u64, reason: &str) -> Error {
    Error::corruption("export stream", offset, reason)
}

impl Db {
    /// Writes every tree (the default one included) to `out` as an export stream (format
    /// in `docs/format.md`), in name and key order. Meant for backups and for moving data
    /// to another format version; concurrent writes may or may not be included.
    ///
    /// # Errors
    /// [`Error::Io`] if `out` fails; the tree reads' errors.
    ///
    /// # Example
    /// ```
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// db.open_tree("users")?.insert(b"u1", b"ann")?;
    /// let mut stream = Vec::new();
    /// db.export(&mut stream)?;
    ///
    /// let copy = grove_engine::Config::new().temporary(true).open()?;
    /// let moved = copy.import(&stream[..])?;
    /// assert_eq!((moved.trees, moved.entries), (2, 1));
    /// assert_eq!(copy.open_tree("users")?.get(b"u1")?.as_deref(), Some(&b"ann"[..]));
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn export(&self, out: impl Write) -> Result<Transfer> {
        let mut out =
            Summing { inner: BufWriter::new(out), crc: crc32fast::Hasher::new(), bytes: 0 };
        let mut transfer = Transfer::default();
        out.put(MAGIC)?;
        out.put(&VERSION.to_le_bytes())?;
        let mut names = vec![Bytes::copy_from(DEFAULT_TREE)];
        names.extend(self.tree_names()?);
        names.sort();
        for name in names {
            let tree = self.open_tree(&name)?;
            out.put(&[1])?;
            out.put_bytes(&name)?;
            transfer.trees += 1;
            for entry in tree.iter() {
                let (key, value) = entry?;
                out.put(&[1])?;
                out.put_bytes(&key)?;
                out.put_bytes(&value)?;
                transfer.entries += 1;
            }
            out.put(&[0])?;
        }
        out.put(&[0])?;
        let crc = out.crc.clone().finalize();
        out.inner
            .write_all(&crc.to_le_bytes())
            .map_err(|e| Error::io("write", "export stream", e))?;
        out.inner.flush().map_err(|e| Error::io("flush", "export stream", e))?;
        transfer.bytes = out.bytes + 4;
        Ok(transfer)
    }

    /// Reads an export stream into this database, creating its trees. Every tree the
    /// stream names must be empty here (a fresh database is). The entries are written in
    /// atomic batches as they are read; call [`Db::flush`] afterwards to make them
    /// durable. The checksum is checked at the end of the stream, so a damaged stream may
    /// leave part of itself imported: import into a fresh database, and discard it on error.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a stream that is not an export stream, is damaged (its
    /// checksum) or ends early; [`Error::UnsupportedVersion`] for a newer stream;
    /// [`Error::AlreadyExists`] if a tree it names already has entries; [`Error::Io`].
    pub fn import(&self, input: impl Read) -> Result<Transfer> {
        let mut input =
            Checked { inner: BufReader::new(input), crc: crc32fast::Hasher::new(), bytes: 0 };
        if input.take(MAGIC.len())? != MAGIC {
            return Err(bad(0, "not a Grove export stream (wrong magic)"));
        }
        let version = input.take(4)?;
        let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                file: "export stream".into(),
                found: version,
                supported: VERSION,
            });
        }
        let mut transfer = Transfer::default();
        loop {
            match input.byte()? {
                0 => break,
                1 => {}
                tag => return Err(bad(input.bytes - 1, &format!("unknown tag {tag}"))),
            }
            let name = input.bytes()?;
            let tree = self.open_tree(&name)?;
            if !tree.is_empty()? {
                return Err(Error::AlreadyExists {
                    path: format!("tree {:?}", Bytes::copy_from(&name)),
                });
            }
            transfer.trees += 1;
            let mut batch = Batch::default();
            loop {
                match input.byte()? {
                    0 => break,
                    1 => {}
                    tag => return Err(bad(input.bytes - 1, &format!("unknown tag {tag}"))),
                }
                let key = input.bytes()?;
                let value = input.bytes()?;
                batch.insert(&tree, key, value);
                transfer.entries += 1;
                if batch.len() >= IMPORT_BATCH {
                    self.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            self.apply_batch(batch)?;
        }
        let expected = input.crc.clone().finalize();
        let mut stored = [0u8; 4];
        input
            .inner
            .read_exact(&mut stored)
            .map_err(|_| bad(input.bytes, "the stream ends before its checksum"))?;
        if u32::from_le_bytes(stored) != expected {
            return Err(bad(input.bytes, "checksum mismatch: the stream is damaged"));
        }
        transfer.bytes = input.bytes + 4;
        Ok(transfer)
    }
}
