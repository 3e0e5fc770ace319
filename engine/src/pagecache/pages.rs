//! [`Pages`]: the page table's locations in the compact form a checkpoint stores, which is
//! also what an opened cache keeps for the pages it has not touched yet.
//!
//! The entries are kept encoded (the checkpoint body, about 12 bytes a page) with a 4-byte
//! offset per page id for random access. Opening a large database reads and checks the
//! body and builds the offsets, and nothing more: a page becomes a `PageState` only when it
//! is first used. Decoding into a struct per page instead touched three times the memory,
//! and on this machine's VM the page faults of that memory dominated open time.
//!
//! # Body format (checkpoint format version 2)
//!
//! One slot per page id, in page id order, then nothing:
//!
//! ```text
//! slot  := 0x00 version                                   a free id (never allocated: version 0)
//!        | 0x01 version owner weight base frags frag*     a live page: base image, then fragments
//! loc   := stream lsn len                    stream: 0 delta, 1 base; len in 1..=u32::MAX
//! ```
//!
//! `weight` is a zigzag varint (0, -1, 1, -2 ... as 0, 1, 2, 3 ...).
//! `version`, `owner`, `frags`, `lsn` and `len` are unsigned LEB128 varints in their shortest form (at
//! most 10 bytes; 7 bits a byte, low bits first, high bit set on every byte but the last).
//! `stream` and the slot tag are single bytes.

use super::{
    loc::{Loc, Stream},
    record::{unzigzag, zigzag},
    weights::ByOwner,
};
use crate::{ids::Lsn, varint};

/// Slot tag of a free page id.
const TAG_FREE: u8 = 0;
/// Slot tag of a live page.
const TAG_LIVE: u8 = 1;
/// The fewest body bytes a slot takes (a tag and a one-byte version), which bounds the page
/// count a body of a given length can hold.
const MIN_SLOT_LEN: usize = 2;
/// The fewest body bytes a `loc` takes (stream, lsn and len of one byte each).
const MIN_LOC_LEN: usize = 3;

/// One page id's entry in a checkpoint, as an owned value, for tests.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SlotImage {
    /// A free id; one never allocated has version 0.
    Free {
        /// The slot's version, as the page cache keeps it.
        version: u64,
    },
    /// A live page: its base image and the fragments on top of it, oldest first.
    Live {
        /// The slot's version.
        version: u64,
        /// The page's owner and weight.
        weighs: (u64, i64),
        /// Where the page's base image is.
        base: Loc,
        /// Where its fragments are; usually 0 or 1 of them.
        frags: Vec<Loc>,
    },
}

/// One page id's entry, read from [`Pages`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum PageImage<'a> {
    /// A free id (version 0: never allocated).
    Free { version: u64 },
    /// A live page.
    Live { version: u64, weighs: (u64, i64), base: Loc, frags: Frags<'a> },
}

impl<'a> PageImage<'a> {
    /// Every record the entry names.
    pub(crate) fn locs(&self) -> impl Iterator<Item = Loc> + 'a {
        let (base, frags) = match *self {
            PageImage::Free { .. } => (None, Frags::EMPTY),
            PageImage::Live { base, frags, .. } => (Some(base), frags),
        };
        base.into_iter().chain(frags)
    }
}

/// The fragment locations of one entry, decoded as they are iterated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frags<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl Frags<'_> {
    const EMPTY: Frags<'static> = Frags { reader: Reader { bytes: &[], at: 0 }, left: 0 };
}

impl Iterator for Frags<'_> {
    type Item = Loc;

    fn next(&mut self) -> Option<Loc> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The body was checked when it was built or loaded, so this cannot fail.
        self.reader.loc().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Frags<'_> {}

/// Every page id's entry, indexed by page id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pages {
    /// The encoded slots, back to back (the checkpoint body).
    body: Vec<u8>,
    /// Where each page id's slot starts in `body`.
    offsets: Vec<u32>,
    /// What opening needs to know about all entries, kept as they are added, so that an
    /// open makes one pass over a checkpoint, not two.
    summary: Summary,
}

/// Totals over the entries of a [`Pages`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Free ids (version 0 included), in increasing order.
    pub(crate) free: Vec<u64>,
    /// Live pages.
    pub(crate) live: u64,
    /// Per stream, the end (LSN plus length) of the furthest record an entry names.
    pub(crate) ends: [u64; 2],
    /// Each owner's total weight.
    pub(crate) weights: ByOwner<i64>,
}

impl Pages {
    pub(crate) fn with_capacity(pages: usize) -> Pages {
        Pages {
            body: Vec::with_capacity(pages.saturating_mul(12)),
            offsets: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// Appends a free id's entry. Returns `false` (appending nothing) once the body would
    /// pass 4 GiB.
    pub(crate) fn push_free(&mut self, version: u64) -> bool {
        let Ok(offset) = u32::try_from(self.body.len()) else {
            return false;
        };
        self.summary.free.push(u64::try_from(self.offsets.len()).unwrap_or(u64::MAX));
        self.offsets.push(offset);
        self.body.push(TAG_FREE);
        varint::put(&mut self.body, version);
        true
    }

    /// Appends a live page's entry. Returns `false` (appending nothing) once the body would
    /// pass 4 GiB.
    pub(crate) fn push_live(
        &mut self,
        version: u64,
        (owner, weight): (u64, i64),
        base: Loc,
        frags: impl ExactSizeIterator<Item = Loc>,
    ) -> bool {
        let Ok(offset) = u32::try_from(self.body.len()) else {
            return false;
        };
        self.offsets.push(offset);
        self.summary.live += 1;
        self.body.push(TAG_LIVE);
        varint::put(&mut self.body, version);
        varint::put(&mut self.body, owner);
        varint::put(&mut self.body, zigzag(weight));
        self.summary.weigh(owner, weight);
        put_loc(&mut self.body, base);
        self.summary.reach(base);
        varint::put(&mut self.body, u64::try_from(frags.len()).unwrap_or(u64::MAX));
        for frag in frags {
            put_loc(&mut self.body, frag);
            self.summary.reach(frag);
        }
        true
    }

    /// Checks that `body` starts with exactly `pages` slots and indexes them; returns them
    /// and the bytes after them. On error returns the offset in `body` and what is wrong
    /// there.
    pub(crate) fn decode(
        mut body: Vec<u8>,
        pages: u64,
    ) -> Result<(Pages, Vec<u8>), (usize, String)> {
        let most = body.len() / MIN_SLOT_LEN;
        let count =
            usize::try_from(pages).ok().filter(|&count| count <= most).ok_or_else(|| {
                (0, format!("{pages} pages cannot fit in a body of {} bytes", body.len()))
            })?;
        if u32::try_from(body.len()).is_err() {
            return Err((0, format!("a body of {} bytes is over 4 GiB", body.len())));
        }
        let mut offsets = Vec::with_capacity(count);
        let mut summary = Summary::default();
        let mut reader = Reader { bytes: &body, at: 0 };
        for page in 0..count {
            offsets.push(u32::try_from(reader.at).unwrap_or(u32::MAX));
            let live = reader
                .slot_with(&mut summary)
                .map_err(|(at, reason)| (at, format!("page {page}: {reason}")))?;
            if live {
                summary.live += 1;
            } else {
                summary.free.push(u64::try_from(page).unwrap_or(0));
            }
        }
        let rest = body.split_off(reader.at);
        Ok((Pages { body, offsets, summary }, rest))
    }

    /// Totals over the entries.
    pub(crate) fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The encoded slots: a checkpoint's body.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }

    /// The number of page ids.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The entry of page id `index`.
    pub(crate) fn get(&self, index: usize) -> Option<PageImage<'_>> {
        let at = usize::try_from(*self.offsets.get(index)?).ok()?;
        // Checked when pushed or loaded: decoding cannot fail.
        Reader { bytes: &self.body, at }.slot().ok()
    }

    /// Every entry, in page id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = PageImage<'_>> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    /// Memory held, in bytes.
    pub(crate) fn heap_bytes(&self) -> u64 {
        let bytes = self.body.capacity() + self.offsets.capacity() * size_of::<u32>();
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

impl Summary {
    fn weigh(&mut self, owner: u64, weight: i64) {
        if weight != 0 {
            *self.weights.entry(owner).or_default() += weight;
        }
    }

    fn reach(&mut self, loc: Loc) {
        let end = loc.lsn.get().saturating_add(u64::from(loc.len));
        let furthest = &mut self.ends[loc.stream.index()];
        *furthest = (*furthest).max(end);
    }
}

fn put_loc(out: &mut Vec<u8>, loc: Loc) {
    out.push(match loc.stream {
        Stream::Delta => 0,
        Stream::Base => 1,
    });
    varint::put(out, loc.lsn.0);
    varint::put(out, u64::from(loc.len));
}

/// A cursor over an encoded body; every method checks what it reads.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, (usize, String)> {
        match self.bytes.get(self.at) {
            Some(&byte) => {
                self.at += 1;
                Ok(byte)
            }
            None => Err(ends_early(self.at)),
        }
    }

    fn varint(&mut self) -> Result<u64, (usize, String)> {
        varint::get(self.bytes, &mut self.at)
    }

    /// Reads one slot; its fragments are checked here and decoded again as iterated.
    /// Checks one slot, handing each of its locations to `each` (decoded once: this is the
    /// loop that opening runs over every page). Returns whether the page is live.
    fn slot_with(&mut self, summary: &mut Summary) -> Result<bool, (usize, String)> {
        let at = self.at;
        match self.byte()? {
            TAG_FREE => {
                self.varint()?;
                Ok(false)
            }
            TAG_LIVE => {
                self.varint()?;
                let owner = self.varint()?;
                summary.weigh(owner, unzigzag(self.varint()?));
                summary.reach(self.loc()?);
                for _ in 0..self.frag_count()? {
                    summary.reach(self.loc()?);
                }
                Ok(true)
            }
            tag => Err((at, format!("unknown slot tag {tag:#04x}"))),
        }
    }

    /// Reads a fragment count, which must fit in the bytes left.
    fn frag_count(&mut self) -> Result<usize, (usize, String)> {
        let count_at = self.at;
        let count = self.varint()?;
        usize::try_from(count)
            .ok()
            .filter(|&n| n <= self.left() / MIN_LOC_LEN)
            .ok_or_else(|| (count_at, format!("{count} fragments in {} bytes", self.left())))
    }

    fn slot(&mut self) -> Result<PageImage<'a>, (usize, String)> {
        let at = self.at;
        match self.byte()? {
            TAG_FREE => Ok(PageImage::Free { version: self.varint()? }),
            TAG_LIVE => {
                let version = self.varint()?;
                let owner = self.varint()?;
                let weight = unzigzag(self.varint()?);
                let base = self.loc()?;
                let count = self.frag_count()?;
                let frags = Frags { reader: *self, left: count };
                for _ in 0..count {
                    self.loc()?;
                }
                Ok(PageImage::Live { version, weighs: (owner, weight), base, frags })
            }
            tag => Err((at, format!("unknown slot tag {tag:#04x}"))),
        }
    }

    fn loc(&mut self) -> Result<Loc, (usize, String)> {
        let at = self.at;
        let tag = self.byte()?;
        let stream =
            Stream::from_tag(tag).ok_or_else(|| (at, format!("unknown stream {tag:#04x}")))?;
        let lsn = Lsn(self.varint()?);
        let len_at = self.at;
        let len = self.varint()?;
        let len = u32::try_from(len)
            .ok()
            .filter(|&len| len > 0)
            .ok_or_else(|| (len_at, format!("record length {len} not in 1..=u32::MAX")))?;
        Ok(Loc { stream, lsn, len })
    }
}

#[cold]
fn ends_early(at: usize) -> (usize, String) {
    (at, "body ends early".to_owned())
}

#[cfg(test)]
impl From<Vec<SlotImage>> for Pages {
    fn from(images: Vec<SlotImage>) -> Pages {
        let mut pages = Pages::with_capacity(images.len());
        for image in images {
            let pushed = match image {
                SlotImage::Free { version } => pages.push_free(version),
                SlotImage::Live { version, weighs, base, frags } => {
                    pages.push_live(version, weighs, base, frags.into_iter())
                }
            };
            assert!(pushed, "test-sized pages fit");
        }
        pages
    }
}

#[cfg(test)]
impl Pages {
    /// The entries as owned values.
    pub(crate) fn images(&self) -> Vec<SlotImage> {
        self.iter()
            .map(|image| match image {
                PageImage::Free { version } => SlotImage::Free { version },
                PageImage::Live { version, weighs, base, frags } => {
                    SlotImage::Live { version, weighs, base, frags: frags.collect() }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_the_encoded_form() {
        let loc = |lsn| Loc { stream: Stream::Base, lsn: Lsn(lsn), len: 9 };
        let images = vec![
            SlotImage::Free { version: 0 },
            SlotImage::Live {
                version: 3,
                weighs: (9, -4),
                base: loc(1),
                frags: vec![loc(2), loc(300)],
            },
            SlotImage::Free { version: 7 },
            SlotImage::Live { version: 1 << 40, weighs: (0, 1 << 40), base: loc(4), frags: vec![] },
        ];
        let pages = Pages::from(images.clone());
        assert_eq!(pages.len(), 4);
        assert_eq!(pages.images(), images);
        assert_eq!(pages.get(1).unwrap().locs().count(), 3);
        assert!(pages.get(4).is_none());
        let (decoded, rest) = Pages::decode(pages.body().to_vec(), 4).unwrap();
        assert_eq!(decoded, pages);
        assert!(rest.is_empty());
        assert!(Pages::decode(pages.body().to_vec(), 5).is_err());
        assert_eq!(pages.summary().free, [0, 2]);
        assert_eq!(pages.summary().live, 2);
        assert_eq!(pages.summary().ends, [0, 309]);
    }
}
