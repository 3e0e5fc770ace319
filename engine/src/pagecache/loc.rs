//! [`Loc`]: where one record of a page lives in the log.

use crate::ids::Lsn;

/// The two segment streams of the page cache.
///
/// Every update (a fragment, a replaced image, a free) goes to [`Stream::Delta`] in the order
/// it happened; recovery replays it. Records the page cache writes on its own (consolidated
/// images, records the cleaner moves) go to [`Stream::Base`], which is never replayed. Short
/// lived deltas thus never share a segment with long lived bases, so dead deltas do not pin
/// live bases (mixing them gave sled 2x to 10x space amplification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Stream {
    /// Updates in the order they happened: the write-ahead stream.
    Delta,
    /// Consolidated images, and records the cleaner moved.
    Base,
}

impl Stream {
    /// Both streams, in index order.
    pub(crate) const ALL: [Stream; 2] = [Stream::Delta, Stream::Base];

    /// The stream's name; its segment files are called `{name}-{id:016x}.seg`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stream::Delta => "delta",
            Stream::Base => "base",
        }
    }

    /// 0 for delta, 1 for base (the on-disk tag in checkpoints).
    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Delta => 0,
            Stream::Base => 1,
        }
    }

    /// The stream with on-disk tag `tag`.
    pub(crate) fn from_tag(tag: u8) -> Option<Stream> {
        match tag {
            0 => Some(Stream::Delta),
            1 => Some(Stream::Base),
            _ => None,
        }
    }
}

/// Where one record lives: its stream, its LSN, and its whole length on disk (record header
/// plus stored body), so that it can be read back with one positioned read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Loc {
    pub(crate) stream: Stream,
    pub(crate) lsn: Lsn,
    pub(crate) len: u32,
}
