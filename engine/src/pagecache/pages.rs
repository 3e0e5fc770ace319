//! [`Pages`]: the page table's locations in a compact, flat form: what a checkpoint stores,
//! and what an opened cache keeps for the pages it has not touched yet.
//!
//! One fixed-size entry per page id and one shared list of fragment locations, so a million
//! pages are two allocations, not a million: opening a large database decodes its
//! checkpoint into this and nothing more, and a page becomes a `PageState` only when it is
//! first used.

use super::loc::Loc;

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
        /// Where the page's base image is.
        base: Loc,
        /// Where its fragments are; usually 0 or 1 of them.
        frags: Vec<Loc>,
    },
}

/// One page id's entry, borrowed from [`Pages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageImage<'a> {
    /// A free id (version 0: never allocated).
    Free { version: u64 },
    /// A live page.
    Live { version: u64, base: Loc, frags: &'a [Loc] },
}

impl PageImage<'_> {
    /// Every record the entry names.
    pub(crate) fn locs(&self) -> impl Iterator<Item = Loc> + '_ {
        let (base, frags) = match self {
            PageImage::Free { .. } => (None, &[][..]),
            PageImage::Live { base, frags, .. } => (Some(*base), *frags),
        };
        base.into_iter().chain(frags.iter().copied())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    version: u64,
    /// `None` for a free id.
    base: Option<Loc>,
    /// The entry's fragments are `frags[first..first + count]`.
    first: u32,
    count: u32,
}

/// Every page id's entry, indexed by page id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pages {
    entries: Vec<Entry>,
    frags: Vec<Loc>,
}

impl Pages {
    pub(crate) fn with_capacity(pages: usize) -> Pages {
        Pages { entries: Vec::with_capacity(pages), frags: Vec::new() }
    }

    /// Appends a free id's entry.
    pub(crate) fn push_free(&mut self, version: u64) {
        self.entries.push(Entry { version, base: None, first: 0, count: 0 });
    }

    /// Appends a live page's entry. Returns `false` (and appends nothing) if the fragment
    /// list would pass `u32::MAX` entries.
    pub(crate) fn push_live(
        &mut self,
        version: u64,
        base: Loc,
        frags: impl ExactSizeIterator<Item = Loc>,
    ) -> bool {
        let (Ok(first), Ok(count)) = (u32::try_from(self.frags.len()), u32::try_from(frags.len()))
        else {
            return false;
        };
        if first.checked_add(count).is_none() {
            return false;
        }
        self.frags.extend(frags);
        self.entries.push(Entry { version, base: Some(base), first, count });
        true
    }

    /// The number of page ids.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry of page id `index`.
    pub(crate) fn get(&self, index: usize) -> Option<PageImage<'_>> {
        let entry = self.entries.get(index)?;
        Some(match entry.base {
            None => PageImage::Free { version: entry.version },
            Some(base) => {
                let first = usize::try_from(entry.first).unwrap_or(usize::MAX);
                let count = usize::try_from(entry.count).unwrap_or(0);
                let frags = self.frags.get(first..first.saturating_add(count)).unwrap_or(&[]);
                PageImage::Live { version: entry.version, base, frags }
            }
        })
    }

    /// Every entry, in page id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = PageImage<'_>> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    /// Memory held, in bytes.
    pub(crate) fn heap_bytes(&self) -> u64 {
        let bytes =
            self.entries.capacity() * size_of::<Entry>() + self.frags.capacity() * size_of::<Loc>();
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
impl From<Vec<SlotImage>> for Pages {
    fn from(images: Vec<SlotImage>) -> Pages {
        let mut pages = Pages::with_capacity(images.len());
        for image in images {
            match image {
                SlotImage::Free { version } => pages.push_free(version),
                SlotImage::Live { version, base, frags } => {
                    let pushed = pages.push_live(version, base, frags.into_iter());
                    debug_assert!(pushed, "test-sized pages fit");
                }
            }
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
                PageImage::Live { version, base, frags } => {
                    SlotImage::Live { version, base, frags: frags.to_vec() }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ids::Lsn, pagecache::loc::Stream};

    #[test]
    fn entries_round_trip_through_the_flat_form() {
        let loc = |lsn| Loc { stream: Stream::Base, lsn: Lsn(lsn), len: 9 };
        let images = vec![
            SlotImage::Free { version: 0 },
            SlotImage::Live { version: 3, base: loc(1), frags: vec![loc(2), loc(3)] },
            SlotImage::Free { version: 7 },
            SlotImage::Live { version: 1, base: loc(4), frags: vec![] },
        ];
        let pages = Pages::from(images.clone());
        assert_eq!(pages.len(), 4);
        assert_eq!(pages.images(), images);
        assert_eq!(pages.get(1).unwrap().locs().count(), 3);
        assert_eq!(pages.get(4), None);
    }
}
