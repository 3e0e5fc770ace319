//! [`Geometry`]: where each LSN lives, and how much room a buffer starting there may use.

use super::format::{SEGMENT_END_LEN, SEGMENT_HEADER_LEN};

/// The segment layout of the log from its tail onwards.
///
/// The tail segment (the last one found at open) keeps the size it was created with; every
/// segment after it gets the configured size. LSNs are contiguous across segments: segment
/// `n + 1` starts at the LSN where segment `n`'s capacity ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// The first segment this geometry describes.
    pub(crate) first_id: u64,
    /// Its base LSN.
    pub(crate) first_base: u64,
    /// Its size in bytes, header included.
    pub(crate) first_size: u64,
    /// Size of every later segment.
    pub(crate) size: u64,
}

/// One segment's place in the LSN space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSpan {
    pub(crate) id: u64,
    pub(crate) base: u64,
    pub(crate) size: u64,
}

impl SegmentSpan {
    /// The first LSN after this segment.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.size - SEGMENT_HEADER_LEN
    }

    /// The last LSN at which a record other than the segment end may finish.
    pub(crate) fn usable_end(&self) -> u64 {
        self.end() - SEGMENT_END_LEN
    }

    /// The file offset of `lsn`, which lies in this segment.
    pub(crate) fn file_offset(&self, lsn: u64) -> u64 {
        SEGMENT_HEADER_LEN + (lsn - self.base)
    }
}

impl Geometry {
    /// The segment that holds `lsn`, which is at or after the first segment's base.
    pub(crate) fn span(&self, lsn: u64) -> SegmentSpan {
        let first = SegmentSpan { id: self.first_id, base: self.first_base, size: self.first_size };
        if lsn < first.end() {
            return first;
        }
        let capacity = self.size - SEGMENT_HEADER_LEN;
        let index = (lsn - first.end()) / capacity;
        SegmentSpan {
            // Saturating: ids come from disk, and a forged one must not overflow.
            id: first.id.saturating_add(1).saturating_add(index),
            base: first.end() + index * capacity,
            size: self.size,
        }
    }

    /// How many bytes a buffer starting at `start` may hold: at most `max`, and never past the
    /// point where its segment must keep room for the segment-end record.
    pub(crate) fn buffer_capacity(&self, start: u64, max: u64) -> u64 {
        self.span(start).usable_end().saturating_sub(start).min(max)
    }

    /// Where the buffer after one ending at `end` starts: right there if `need` more bytes
    /// (and at least a minimal record) still fit in the segment, else at the next segment.
    pub(crate) fn next_buffer_start(&self, end: u64, need: u64) -> u64 {
        let span = self.span(end);
        let room = span.usable_end().saturating_sub(end);
        if room >= need.max(super::format::RECORD_HEADER_LEN_U64 + 1) { end } else { span.end() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_contiguous_across_a_differently_sized_first_segment() {
        let geometry = Geometry { first_id: 3, first_base: 1000, first_size: 140, size: 240 };
        let first = geometry.span(1000);
        assert_eq!((first.id, first.base, first.end()), (3, 1000, 1100));
        assert_eq!(geometry.span(1099).id, 3);
        let second = geometry.span(1100);
        assert_eq!((second.id, second.base, second.end()), (4, 1100, 1300));
        let third = geometry.span(1300);
        assert_eq!((third.id, third.base, third.file_offset(1305)), (5, 1300, 45));
    }

    #[test]
    fn buffers_keep_room_for_the_segment_end() {
        let geometry = Geometry { first_id: 0, first_base: 0, first_size: 240, size: 240 };
        assert_eq!(geometry.buffer_capacity(0, 1000), 200 - SEGMENT_END_LEN);
        assert_eq!(geometry.buffer_capacity(0, 50), 50);
        assert_eq!(geometry.buffer_capacity(170, 1000), 10);
        assert_eq!(geometry.next_buffer_start(100, 30), 100);
        assert_eq!(geometry.next_buffer_start(100, 100), 200);
        assert_eq!(geometry.next_buffer_start(175, 0), 200);
    }
}
