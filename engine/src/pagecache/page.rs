//! What the page cache hands to the layer above: [`Page`], [`Outcome`], and the
//! [`Materializer`] that gives fragments their meaning.

use super::{
    payload::Payload,
    state::{PageState, Part},
};
use crate::ids::PageId;

/// Folds a page's fragments into a new base image. The layer above (the tree) defines what
/// a fragment means; the page cache only stores fragments and asks for a merge when a
/// chain gets long and when it evicts a page.
///
/// # Law
/// Merging must be associative over fragment runs: merging `f1..fk` and then merging
/// `fk+1..fn` into the result must equal merging `f1..fn` at once. The page cache relies
/// on this whenever it consolidates part of a chain.
pub trait Materializer: Send + Sync + 'static {
    /// Returns the image of `base` with `fragments` (oldest first) applied.
    fn merge(&self, base: &[u8], fragments: &[&[u8]]) -> Vec<u8>;

    /// A one-word summary of what `fragment` holds, for readers to skip fragments by: the
    /// page cache keeps the bitwise OR of the summaries of a page's fragments in the page's
    /// state, where a read finds it without touching a fragment, and skips the fragments
    /// when the read's own summary has a bit the OR lacks. The tree makes it a Bloom filter
    /// of the keys a fragment names. The default, all bits set, says nothing, and skips
    /// nothing.
    fn summarize(&self, fragment: &[u8]) -> u64 {
        let _ = fragment;
        UNSUMMARIZED
    }
}

/// Whether `summary` has every bit of `probe`: if not, no fragment it summarizes can hold
/// what the probe stands for.
fn covers(summary: u64, probe: u64) -> bool {
    probe & !summary == 0
}

/// The summary of fragments that were never summarized (see [`Materializer::summarize`]):
/// all bits, so it covers every probe.
pub(crate) const UNSUMMARIZED: u64 = u64::MAX;

/// A version of one page: its base image and the fragments linked onto it since, oldest
/// first. Cheap to clone; the bytes are shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub(crate) id: PageId,
    pub(crate) version: u64,
    pub(crate) base: Payload,
    pub(crate) fragments: Vec<Payload>,
}

impl Page {
    /// The page's id.
    pub fn id(&self) -> PageId {
        self.id
    }

    /// The page's version: it grows by one with every link, replace and free. Pass it to
    /// [`PageCache::link`](super::PageCache::link) and friends so that they apply only to
    /// the version you read.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The base image.
    pub fn base(&self) -> &[u8] {
        &self.base
    }

    /// The fragments linked onto the base, oldest first.
    pub fn fragments(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.fragments.iter().map(|f| &**f)
    }

    /// The page as one image: `materializer.merge(base, fragments)`, or the base itself if
    /// there are no fragments.
    pub fn materialize(&self, materializer: &dyn Materializer) -> Vec<u8> {
        merge(materializer, &self.base, self.fragments())
    }
}

/// `base` with `fragments` applied by `materializer`, or `base` itself without fragments.
fn merge<'a>(
    materializer: &dyn Materializer,
    base: &[u8],
    fragments: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    if fragments.len() == 0 {
        return base.to_vec();
    }
    let fragments: Vec<&[u8]> = fragments.collect();
    materializer.merge(base, &fragments)
}

/// A page read under an epoch guard ([`PageCache::read`](super::PageCache::read)): it
/// borrows the cache's own copy, so reading it touches no reference count and allocates
/// nothing. The read path of the tree uses it; [`Page`] is the owned form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageView<'g> {
    id: PageId,
    version: u64,
    base: &'g Payload,
    fragments: Fragments<'g>,
    /// Covers the summaries of all of `fragments` (see [`Materializer::summarize`]).
    summary: u64,
}

/// Where a view's fragments are: a page state's parts (every one resident, which
/// [`PageView::of_state`] checks), then possibly one more, which a committed group links.
#[derive(Debug, Clone, Copy)]
struct Fragments<'g> {
    parts: &'g [Part],
    linked: Option<&'g Payload>,
}

impl<'g> Fragments<'g> {
    fn len(self) -> usize {
        self.parts.len() + usize::from(self.linked.is_some())
    }

    fn at(self, i: usize) -> &'g [u8] {
        match self.parts.get(i) {
            // `of_state` checked that every part is resident: the default is never taken.
            Some(part) => part.bytes.as_deref().unwrap_or_default(),
            None => self.linked.map_or(&[], |f| &**f),
        }
    }
}

/// The fragments of a [`PageView`], oldest first.
#[derive(Debug, Clone)]
pub(crate) struct FragmentIter<'g> {
    fragments: Fragments<'g>,
    front: usize,
    back: usize,
}

impl<'g> Iterator for FragmentIter<'g> {
    type Item = &'g [u8];

    fn next(&mut self) -> Option<&'g [u8]> {
        (self.front < self.back).then(|| {
            self.front += 1;
            self.fragments.at(self.front - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.back - self.front, Some(self.back - self.front))
    }
}

impl DoubleEndedIterator for FragmentIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.back -= 1;
            self.fragments.at(self.back)
        })
    }
}

impl ExactSizeIterator for FragmentIter<'_> {}

impl<'g> PageView<'g> {
    /// A view of `state`, if it is live and every payload is in memory.
    pub(crate) fn of_state(id: PageId, state: &'g PageState) -> Option<PageView<'g>> {
        let live = state.live.as_ref()?;
        let base = live.base.bytes.as_ref()?;
        // The state's flag, not a walk of its fragment list: every read passes here, and
        // the list is another cache line, which a read that skips the fragments never needs.
        if !live.frags_resident {
            return None;
        }
        Some(PageView {
            id,
            version: state.version,
            base,
            fragments: Fragments { parts: &live.frags, linked: None },
            summary: live.summary,
        })
    }

    /// A view of a new image a group update holds for the page.
    pub(crate) fn of_image(id: PageId, version: u64, base: &'g Payload) -> PageView<'g> {
        let fragments = Fragments { parts: &[], linked: None };
        PageView { id, version, base, fragments, summary: 0 }
    }

    /// This view with `fragment` linked, at `version`: what a group's link makes of it.
    pub(crate) fn with_fragment(self, version: u64, fragment: &'g Payload) -> PageView<'g> {
        let fragments = Fragments { linked: Some(fragment), ..self.fragments };
        // The linked fragment was never summarized: nothing can be skipped.
        PageView { version, fragments, summary: UNSUMMARIZED, ..self }
    }

    /// The page's id.
    pub(crate) fn id(&self) -> PageId {
        self.id
    }

    /// The page's version, as [`Page::version`].
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// The base image.
    pub(crate) fn base(&self) -> &'g [u8] {
        self.base
    }

    /// The fragments linked onto the base, oldest first.
    pub(crate) fn fragments(&self) -> FragmentIter<'g> {
        FragmentIter { fragments: self.fragments, front: 0, back: self.fragments.len() }
    }

    /// The fragments, or none when `probe` has a bit that no fragment's summary has: then
    /// no fragment can hold what the probe stands for (for the tree, a key), and a read
    /// can skip them all without touching one. `probe` is a summary in the materializer's
    /// own terms.
    pub(crate) fn fragments_covering(&self, probe: u64) -> FragmentIter<'g> {
        let back = if covers(self.summary, probe) { self.fragments.len() } else { 0 };
        FragmentIter { fragments: self.fragments, front: 0, back }
    }

    /// The page as one image, as [`Page::materialize`].
    pub(crate) fn materialize(&self, materializer: &dyn Materializer) -> Vec<u8> {
        merge(materializer, self.base, self.fragments())
    }

    /// The owned page, which outlives the guard.
    pub(crate) fn to_page(self) -> Page {
        let Fragments { parts, linked } = self.fragments;
        let fragments =
            parts.iter().filter_map(|p| p.bytes.clone()).chain(linked.cloned()).collect();
        Page { id: self.id, version: self.version, base: self.base.clone(), fragments }
    }
}

/// How an update changes its page's weight (see [`PageCache::weight`](super::PageCache::weight)).
///
/// Every live page belongs to an owner (a number the layer above chooses; the tree uses its
/// tree id) and has a weight (the tree counts a leaf's entries). The cache keeps each
/// owner's total weight exactly, across restarts and crashes, so the layer above can answer
/// "how many" in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weigh {
    /// Keep the page's owner and weight (a new page: owner 0, weight 0).
    #[default]
    Keep,
    /// Add this to the page's weight.
    Add(i64),
    /// Give the page this owner and weight.
    Set {
        /// The owner.
        owner: u64,
        /// The weight.
        weight: i64,
    },
}

impl Weigh {
    /// The owner and weight a page has after this, given what it had.
    pub(crate) fn apply(self, old: Option<(u64, i64)>) -> (u64, i64) {
        let (owner, weight) = old.unwrap_or((0, 0));
        match self {
            Weigh::Keep => (owner, weight),
            Weigh::Add(delta) => (owner, weight.saturating_add(delta)),
            Weigh::Set { owner, weight } => (owner, weight),
        }
    }
}

/// What became of a compare-and-swap update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a stale update did nothing: read the page again and retry"]
pub enum Outcome {
    /// The update is installed; the page now has this version.
    Installed {
        /// The page's new version.
        version: u64,
    },
    /// The page is no longer at the version the caller read (another update won, or the
    /// page was freed): nothing was changed, and the log record written for the attempt
    /// was aborted. Read the page again and retry.
    Stale,
}

impl Outcome {
    /// The new version if the update was installed.
    pub fn installed(self) -> Option<u64> {
        match self {
            Outcome::Installed { version } => Some(version),
            Outcome::Stale => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crossbeam_epoch as epoch;

    use super::*;
    use crate::{config::PageCacheConfig, pagecache::PageCache, storage::MemStorage};

    /// Appends fragments to the base; summarizes a fragment by the bit its first byte
    /// names.
    struct Tagged;

    impl Materializer for Tagged {
        fn merge(&self, base: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
            let mut page = base.to_vec();
            fragments.iter().for_each(|f| page.extend_from_slice(f));
            page
        }

        fn summarize(&self, fragment: &[u8]) -> u64 {
            fragment.first().map_or(0, |b| 1 << (b % 64))
        }
    }

    /// How many fragments a read of `id` looks at for `probe`.
    fn looked_at(cache: &PageCache, id: PageId, probe: u64) -> usize {
        let guard = epoch::pin();
        cache.read(id, &guard).unwrap().unwrap().fragments_covering(probe).len()
    }

    fn assert_skips_what_no_fragment_covers(cache: &PageCache, id: PageId, when: &str) {
        assert_eq!(looked_at(cache, id, 1 << 3), 2, "{when}: a fragment covers bit 3");
        assert_eq!(
            looked_at(cache, id, (1 << 3) | (1 << 5)),
            2,
            "{when}: together they cover both"
        );
        assert_eq!(looked_at(cache, id, 1 << 7), 0, "{when}: no fragment covers bit 7");
        assert_eq!(looked_at(cache, id, (1 << 3) | (1 << 7)), 0, "{when}: bit 7 is still missing");
    }

    #[test]
    fn reads_skip_fragments_no_summary_covers_before_and_after_reopening() {
        let storage = Arc::new(MemStorage::new());
        let open = || {
            PageCache::open(storage.clone(), PageCacheConfig::default(), Arc::new(Tagged)).unwrap()
        };
        let cache = open();
        let (id, version) = cache.allocate(b"base").unwrap();
        assert_eq!(
            cache.link(id, version, &[3]).unwrap(),
            Outcome::Installed { version: version + 1 }
        );
        assert_eq!(
            cache.link(id, version + 1, &[5]).unwrap(),
            Outcome::Installed { version: version + 2 }
        );
        assert_skips_what_no_fragment_covers(&cache, id, "linked");

        // Dropped without a checkpoint: the next open replays the links from the log.
        cache.flush().unwrap();
        drop(cache);
        let cache = open();
        assert_skips_what_no_fragment_covers(&cache, id, "replayed");

        // Reopened from a checkpoint: the page starts on disk, and a read loads it.
        cache.close().unwrap();
        let cache = open();
        assert_skips_what_no_fragment_covers(&cache, id, "loaded");
        assert_eq!(cache.get(id).unwrap().unwrap().materialize(&Tagged), b"base\x03\x05");
    }
}
