//! Configuration of the log (and, as the layers above land, of the whole engine).

use crate::error::{Error, Result};

/// How the log lays out and flushes its data.
///
/// The defaults suit a server or desktop application. [`LogConfig::tiny`] shrinks every size
/// so that tests cross segment and buffer boundaries constantly.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Size of one segment file in bytes, header included. Default 8 MiB.
    pub segment_size: u64,
    /// Size of one in-memory write buffer in bytes; the largest record is a little smaller
    /// than this. Clipped to what fits in a segment. Default 1 MiB.
    pub buffer_size: u64,
    /// Number of write buffers: while the flusher writes one, writers fill the others.
    /// At least 2. Default 4: every buffer a log has written through stays in memory, and
    /// 8 (the default before) cost 8 MiB more per database without a measurable gain.
    pub buffer_count: usize,
    /// The flusher makes every write durable within this many milliseconds even if nobody
    /// calls `flush`. `None` leaves durability entirely to explicit flushes. Default 500.
    pub flush_every_ms: Option<u64>,
    /// zstd level for record bodies of at least `compress_min_len` bytes; `None` disables
    /// compression. Default `None`.
    pub compression_level: Option<i32>,
    /// Bodies shorter than this are never compressed. Default 256.
    pub compress_min_len: usize,
    /// Open without changing a byte of any file: recovery stops at a torn tail without
    /// cutting it and leaves leftover temporary files alone, no flusher thread runs, reads
    /// work, and every write fails with [`Error::ReadOnly`]. Default `false`.
    pub read_only: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_size: 8 << 20,
            buffer_size: 1 << 20,
            buffer_count: 4,
            flush_every_ms: Some(500),
            compression_level: None,
            compress_min_len: 256,
            read_only: false,
        }
    }
}

impl LogConfig {
    /// The smallest segment the log accepts.
    pub const MIN_SEGMENT_SIZE: u64 = 256;

    /// Tiny sizes for tests: 2 KiB segments, 512-byte buffers, 3 buffers.
    pub fn tiny() -> Self {
        Self {
            segment_size: 2048,
            buffer_size: 512,
            buffer_count: 3,
            flush_every_ms: Some(5),
            compression_level: None,
            compress_min_len: 64,
            read_only: false,
        }
    }

    /// Checks that the settings are consistent.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting to change.
    pub fn validate(&self) -> Result<()> {
        if self.segment_size < Self::MIN_SEGMENT_SIZE {
            return Err(Error::Config(format!(
                "segment_size {} is below the minimum of {}",
                self.segment_size,
                Self::MIN_SEGMENT_SIZE
            )));
        }
        if self.segment_size > 1 << 40 {
            return Err(Error::Config(format!(
                "segment_size {} is above the maximum of 1 TiB",
                self.segment_size
            )));
        }
        if self.buffer_size < 64 {
            return Err(Error::Config(format!(
                "buffer_size {} is below the minimum of 64",
                self.buffer_size
            )));
        }
        if self.buffer_count < 2 {
            return Err(Error::Config(format!(
                "buffer_count {} is below the minimum of 2",
                self.buffer_count
            )));
        }
        if let Some(level) = self.compression_level
            && !zstd::compression_level_range().contains(&level)
        {
            return Err(Error::Config(format!(
                "compression_level {level} is outside zstd's range {:?}",
                zstd::compression_level_range()
            )));
        }
        if self.buffer_size > 64 << 20 {
            return Err(Error::Config(format!(
                "buffer_size {} is above the maximum of 64 MiB",
                self.buffer_size
            )));
        }
        Ok(())
    }
}

/// How the page cache keeps pages in memory and on disk.
///
/// [`PageCacheConfig::tiny`] shrinks every size so that eviction, consolidation,
/// checkpoints and cleaning happen all the time in tests.
#[derive(Debug, Clone, PartialEq)]
pub struct PageCacheConfig {
    /// The log settings, used for both segment streams (deltas and bases). With
    /// `log.read_only` the page cache is read-only too: reads and eviction work, every
    /// update, checkpoint and cleaning fails with [`Error::ReadOnly`], and closing writes
    /// nothing.
    pub log: LogConfig,
    /// Memory the page cache may hold, in bytes: page images, fragments, per-page metadata
    /// and the page table itself (the log's write buffers are separate:
    /// `2 * buffer_size * buffer_count`). Default 256 MiB.
    pub cache_bytes: u64,
    /// A page is consolidated into a new base image once it has this many fragments.
    /// At least 1. Default 8.
    pub consolidate_after: usize,
    /// A checkpoint is written after this many bytes of log (either stream) since the last
    /// one. Open time is bounded by it: recovery replays at most about this much log. The
    /// delta stream keeps one to two times this much log on disk (back to the older of the
    /// two kept checkpoints), so a small database that cares about disk space should lower it;
    /// each checkpoint writes the whole page table (about 12 bytes a page). Default 64 MiB.
    pub checkpoint_every: u64,
    /// The cleaner copies what is still live out of sealed segments whose live fraction is
    /// below this, so that they can be deleted: the emptiest first, at most about
    /// `checkpoint_every` of live records per pass. Between 0 and 1. Default 0.6.
    pub clean_below: f64,
    /// Whether checkpoints and cleaning run on a thread of their own (`grove-maintain`),
    /// woken when a checkpoint falls due, or on the write that carried the log past the
    /// line, which then waits for them. With the thread, a write waits only once the log
    /// is two intervals past due. Default false: on the comparison benchmark the thread
    /// made the bulk load 15% faster but left about 300 MiB on disk after it instead of
    /// 237, since the log runs up to two intervals ahead of the cleaner.
    pub maintenance_thread: bool,
}

impl Default for PageCacheConfig {
    fn default() -> Self {
        Self {
            log: LogConfig::default(),
            cache_bytes: 256 << 20,
            consolidate_after: 8,
            checkpoint_every: 64 << 20,
            clean_below: 0.6,
            maintenance_thread: false,
        }
    }
}

impl PageCacheConfig {
    /// Tiny sizes for tests: 4 KiB segments, a 16 KiB cache, consolidation after 2
    /// fragments, a checkpoint every 8 KiB of log, maintenance on the writes.
    pub fn tiny() -> Self {
        Self {
            log: LogConfig { segment_size: 4096, buffer_size: 1024, ..LogConfig::tiny() },
            cache_bytes: 16 << 10,
            consolidate_after: 2,
            checkpoint_every: 8 << 10,
            clean_below: 0.6,
            maintenance_thread: false,
        }
    }

    /// Checks that the settings are consistent.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting to change.
    pub fn validate(&self) -> Result<()> {
        self.log.validate()?;
        if self.consolidate_after == 0 || self.consolidate_after > 64 {
            return Err(Error::Config(format!(
                "consolidate_after {} must be between 1 and 64",
                self.consolidate_after
            )));
        }
        if !(0.0..=1.0).contains(&self.clean_below) {
            return Err(Error::Config(format!(
                "clean_below {} must be between 0 and 1",
                self.clean_below
            )));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::Config("checkpoint_every must be at least 1 byte".into()));
        }
        Ok(())
    }
}
