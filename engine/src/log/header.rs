//! [`BufferHeader`]: the packed atomic word that coordinates writers of one log buffer.

/// The state of one in-memory log buffer, packed into a `u64` so that a single CAS reserves
/// space, counts the writer and checks that the buffer is still open.
///
/// Bit layout, least significant first:
///
/// ```text
///  bits   field       meaning
///  0..27  offset      bytes reserved so far (buffers are smaller than 128 MiB)
/// 27..39  writers     reservations taken and not yet completed or aborted (at most 4095)
/// 39      sealed      no more reservations; flushed once writers reaches 0
/// 40..64  generation  low 24 bits of the buffer's incarnation number
/// ```
///
/// Legal transitions (all by CAS or fetch-sub on the slot's `AtomicU64`):
/// - open, writers `w` -> open, offset + len, writers `w + 1` (a reservation);
/// - any, writers `w > 0` -> same, writers `w - 1` (a completion or abort);
/// - open -> sealed (by one thread, which then opens the next buffer);
/// - sealed, writers 0 -> reopened as `BufferHeader::open(next generation)` by the sealer of
///   the buffer before it, only after the flusher has written and released this one.
///
/// The generation makes a stale reader's CAS fail if the buffer was recycled under it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct BufferHeader(u64);

impl BufferHeader {
    const OFFSET_BITS: u32 = 27;
    const WRITER_SHIFT: u32 = 27;
    const WRITER_BITS: u32 = 12;
    const SEALED_BIT: u64 = 1 << 39;
    const GENERATION_SHIFT: u32 = 40;

    /// The largest offset a buffer can reach.
    pub(crate) const MAX_OFFSET: u64 = (1 << Self::OFFSET_BITS) - 1;
    /// The most concurrent writers one buffer counts; more wait their turn.
    pub(crate) const MAX_WRITERS: u64 = (1 << Self::WRITER_BITS) - 1;
    /// The raw value one writer adds to the word.
    pub(crate) const ONE_WRITER: u64 = 1 << Self::WRITER_SHIFT;

    /// An open, empty buffer of incarnation `incarnation`.
    pub(crate) const fn open(incarnation: u64) -> Self {
        Self(Self::generation_of(incarnation) << Self::GENERATION_SHIFT)
    }

    /// The generation field that incarnation `incarnation` carries.
    pub(crate) const fn generation_of(incarnation: u64) -> u64 {
        incarnation & ((1 << 24) - 1)
    }

    pub(crate) const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    pub(crate) const fn raw(self) -> u64 {
        self.0
    }

    pub(crate) const fn offset(self) -> u64 {
        self.0 & Self::MAX_OFFSET
    }

    pub(crate) const fn writers(self) -> u64 {
        (self.0 >> Self::WRITER_SHIFT) & Self::MAX_WRITERS
    }

    pub(crate) const fn is_sealed(self) -> bool {
        self.0 & Self::SEALED_BIT != 0
    }

    pub(crate) const fn generation(self) -> u64 {
        self.0 >> Self::GENERATION_SHIFT
    }

    /// Whether this header belongs to incarnation `incarnation`.
    pub(crate) const fn is_incarnation(self, incarnation: u64) -> bool {
        self.generation() == Self::generation_of(incarnation)
    }

    /// This header with `len` more bytes reserved by one more writer. The caller has checked
    /// that the offset stays within the buffer and the writer count below the maximum.
    pub(crate) const fn reserve(self, len: u64) -> Self {
        Self(self.0 + len + Self::ONE_WRITER)
    }

    /// This header, sealed.
    pub(crate) const fn sealed(self) -> Self {
        Self(self.0 | Self::SEALED_BIT)
    }
}

impl std::fmt::Debug for BufferHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferHeader")
            .field("offset", &self.offset())
            .field("writers", &self.writers())
            .field("sealed", &self.is_sealed())
            .field("generation", &self.generation())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_bleed_into_each_other() {
        let open = BufferHeader::open((1 << 24) + 5);
        assert_eq!(open.generation(), 5);
        assert!(open.is_incarnation(5) && !open.is_incarnation(6));
        let full = open.reserve(BufferHeader::MAX_OFFSET);
        assert_eq!(full.offset(), BufferHeader::MAX_OFFSET);
        assert_eq!(full.writers(), 1);
        assert!(!full.is_sealed());
        let sealed = full.sealed();
        assert!(sealed.is_sealed());
        assert_eq!((sealed.offset(), sealed.writers(), sealed.generation()), (full.offset(), 1, 5));
        let done = BufferHeader::from_raw(sealed.raw() - BufferHeader::ONE_WRITER);
        assert_eq!(
            (done.writers(), done.offset(), done.is_sealed()),
            (0, BufferHeader::MAX_OFFSET, true)
        );
    }

    #[test]
    fn writer_count_holds_its_maximum() {
        let mut header = BufferHeader::open(1);
        for _ in 0..BufferHeader::MAX_WRITERS {
            header = header.reserve(1);
        }
        assert_eq!(header.writers(), BufferHeader::MAX_WRITERS);
        assert!(!header.is_sealed());
        assert_eq!(header.generation(), 1);
    }
}
