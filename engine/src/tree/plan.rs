//! Planning a write: which pages change and how, splits included, so that the whole change
//! is installed at once (one `link` or `replace` when it touches one page, a group update
//! of the page cache otherwise).
//!
//! A plan starts from the leaves a write touches (each found by a descent that remembered
//! its path) and the operations on each. A leaf whose operations fit gets them as one
//! fragment; a leaf that would outgrow `node_bytes` is rewritten, split into as many nodes
//! as it takes, and the new nodes' separators go into its parent, which may split in turn,
//! up to the root. The root keeps its page id (the catalog names it): a root that splits
//! moves its contents into new children and becomes an index node one level higher.
//!
//! Because a split, its new pages and its parent change in one group update, the tree is
//! never half split: no reader or writer ever has to finish someone else's split. Readers
//! still follow right links, for the case where they read a parent before a split and the
//! child after it.

use std::{borrow::Cow, collections::BTreeMap, ops::Range};

use super::{
    draft::Draft,
    node::{self, Entry, EntryRef, FragmentBuilder, KeyRef, LeafSplit, Node, NodeRef, ValueRef},
    walk::{self, LeafAt, TreePage},
};
use crate::{
    error::{Error, Result},
    ids::{PageId, TreeId},
    pagecache::{Change, GroupOutcome, GroupUpdate, Outcome, PageCache, Weigh},
};

/// What a write changes in its tree's entry count, given whether the key was there before
/// and is after.
pub(crate) fn count_change(before: bool, after: bool) -> i64 {
    i64::from(after) - i64::from(before)
}

/// A leaf with room for its fragment: it links it, at `version`.
#[derive(Debug)]
struct Link {
    version: u64,
    /// Where the fragment lies in the plan's fragments.
    fragment: Range<usize>,
    /// The change in the leaf's entry count.
    delta: i64,
}

/// An existing page rewritten with `image`, at `version`: a node rebuilt, or the left
/// piece of a split.
#[derive(Debug)]
struct Rewritten {
    version: u64,
    image: Vec<u8>,
    weigh: Weigh,
}

/// Whether `leaf` has room for `fragment` in a node of `node_bytes`: then it links it, and
/// splits nothing.
fn fits(leaf: &LeafAt, fragment: &[u8], node_bytes: usize) -> bool {
    leaf.len + fragment.len() <= node_bytes
}

/// A child that split, and its new right siblings (low fence and page), in order.
type Split = (PageId, Vec<(Vec<u8>, PageId)>);

/// The splits of one level that the level above must take in: by parent, the parent's
/// version and its children's splits.
type Attachments = BTreeMap<PageId, (u64, Vec<Split>)>;

/// The roots that split (one per tree at most): each root's id and version, and the index
/// node over its pieces that it becomes (one level up; it may have to split in its turn).
type NewRoots = Vec<(PageId, u64, Node)>;

/// A leaf a plan changes: as its descent found it, the fragment of operations on it, and
/// the change they make to its entry count.
type Leaf = (LeafAt, FragmentBuilder, i64);

/// One page's bytes in a group update: a fragment to link (in the plan's fragments) or an
/// image to write.
struct Image<'a> {
    id: PageId,
    /// `None` for a new page.
    version: Option<u64>,
    link: bool,
    bytes: Cow<'a, [u8]>,
    weigh: Weigh,
}

/// A write in the making. Build it with [`Plan::add`], then [`Plan::install`].
#[derive(Debug)]
pub(crate) struct Plan {
    node_bytes: usize,
    /// The touched leaves, in the order touched, with the fragment of operations on each
    /// and the change they make to the leaf's entry count. Writes come in key order (a
    /// batch sorts them; the others write one key), so a leaf's writes come together: a
    /// leaf met again after another one means the tree changed between the descents, and
    /// the plan is out of date ([`Plan::install`] says so). (A map from leaf to position
    /// cost 290 instructions a write, to find what was always last.)
    leaves: Vec<Leaf>,
    /// The leaves' fragments, each after the one before, in the order of `leaves`: one
    /// buffer for the plan rather than an allocation per leaf.
    fragments: Vec<u8>,
    /// New pages' images (ids from `PageCache::reserve_id`, given back if the plan fails):
    /// a new tree's root, a value stored out of line.
    created: Vec<(PageId, Vec<u8>, Weigh)>,
    /// Pages to free, at the versions read.
    freed: Vec<(PageId, u64)>,
    /// Whether the caller flushes once the plan is installed: a group update then has its
    /// records synced while it installs (see `PageCache::apply_group_in_order`).
    sync_early: bool,
}

impl Plan {
    pub(crate) fn new(node_bytes: usize) -> Plan {
        Plan::with_room(node_bytes, 0, 0)
    }

    /// A plan with room for `writes` writes whose keys and values take about `bytes`:
    /// grown from nothing, its vectors were reallocated four or five times for a single
    /// write, and a dozen times or more for a batch of 1,000.
    pub(crate) fn with_room(node_bytes: usize, writes: usize, bytes: usize) -> Plan {
        // Each op adds a tag and two lengths to its key and value; each leaf a header.
        let fragment_bytes = bytes.saturating_add(writes.saturating_mul(8 + 11));
        Plan {
            node_bytes,
            leaves: Vec::with_capacity(writes),
            fragments: Vec::with_capacity(fragment_bytes),
            created: Vec::new(),
            freed: Vec::new(),
            sync_early: false,
        }
    }

    /// Says that the caller will flush once the plan is installed.
    pub(crate) fn sync_early(&mut self) {
        self.sync_early = true;
    }

    /// Adds a new page holding `image`; `id` comes from `PageCache::reserve_id`, and the
    /// plan gives it back if it is not installed.
    pub(crate) fn create(&mut self, id: PageId, image: Vec<u8>, weigh: Weigh) {
        self.created.push((id, image, weigh));
    }

    /// Drops the plan without installing it, giving back the ids of the pages it would
    /// have created.
    pub(crate) fn abandon(self, cache: &PageCache) {
        self.created.iter().for_each(|(id, ..)| cache.release_id(*id));
    }

    /// Adds freeing page `id`, read at `version`.
    pub(crate) fn free(&mut self, id: PageId, version: u64) {
        self.freed.push((id, version));
    }

    /// Adds setting `key` to `value` (or removing it, for `None`) on `leaf`; `delta` is what
    /// it changes in the leaf's entry count (+1 a new key, -1 a removed one, 0 an
    /// overwrite).
    pub(crate) fn add(
        &mut self,
        leaf: LeafAt,
        key: &[u8],
        value: Option<ValueRef<'_>>,
        delta: i64,
    ) {
        if self.leaves.last().is_none_or(|(last, ..)| last.id != leaf.id) {
            self.leaves.push((leaf, FragmentBuilder::begin(&mut self.fragments), 0));
        }
        // Pushed just now if it was not there.
        let Some((_, fragment, leaf_delta)) = self.leaves.last_mut() else {
            return;
        };
        match value {
            Some(value) => fragment.put(&mut self.fragments, key, value),
            None => fragment.remove(&mut self.fragments, key),
        }
        *leaf_delta += delta;
    }

    /// Installs the plan: all of it or, if any page changed since it was read, none of it
    /// (`false`: read again and make a new plan).
    ///
    /// # Errors
    /// The page cache's errors; [`crate::Error::Corruption`] for a damaged page.
    pub(crate) fn install(self, cache: &PageCache) -> Result<bool> {
        let Plan { node_bytes, leaves, mut fragments, created, freed, sync_early } = self;
        // One leaf that takes its fragment, and nothing else (most single writes): a plain
        // link, without the bookkeeping below for splits and groups.
        if let [(leaf, builder, delta)] = leaves.as_slice()
            && created.is_empty()
            && freed.is_empty()
        {
            let end = fragments.len();
            let range = builder.finish(&mut fragments, end);
            let fragment = fragments.get(range).unwrap_or_default();
            if fits(leaf, fragment, node_bytes) {
                let outcome =
                    cache.link_with(leaf.id, leaf.version, fragment, Weigh::Add(*delta))?;
                return Ok(outcome != Outcome::Stale);
            }
        }
        // A leaf met twice, apart: the descents saw different trees (see `leaves`).
        if leaves.len() > 1 {
            let mut ids: Vec<PageId> = leaves.iter().map(|(leaf, ..)| leaf.id).collect();
            ids.sort_unstable();
            if ids.windows(2).any(|pair| pair[0] == pair[1]) {
                created.iter().for_each(|(id, ..)| cache.release_id(*id));
                return Ok(false);
            }
        }
        // Each leaf's fragment ends where the next one's begins.
        let mut finished = Vec::with_capacity(leaves.len());
        let mut leaves = leaves.into_iter().peekable();
        while let Some((leaf, builder, delta)) = leaves.next() {
            let end = leaves.peek().map_or(fragments.len(), |(_, next, _)| next.start());
            finished.push((leaf, builder.finish(&mut fragments, end), delta));
        }
        let fragments = fragments;
        let mut rewrite = Rewrite {
            cache,
            node_bytes,
            fragments: &fragments,
            links: Vec::with_capacity(finished.len()),
            planned: BTreeMap::new(),
            parents: BTreeMap::new(),
            new_pages: Vec::new(),
        };
        let result = rewrite.plan(finished);
        let Rewrite { links, mut planned, new_pages, .. } = rewrite;
        let release = || {
            new_pages.iter().for_each(|(id, ..)| cache.release_id(*id));
            created.iter().for_each(|(id, ..)| cache.release_id(*id));
        };
        if !matches!(result, Ok(true)) {
            release();
            return result;
        }

        // One page rewritten and nothing new: a plain replace. (One link and nothing new
        // went by at the top.)
        if links.is_empty()
            && new_pages.is_empty()
            && created.is_empty()
            && freed.is_empty()
            && planned.len() == 1
            && let Some((id, Rewritten { version, image, weigh })) = planned.pop_first()
        {
            let outcome = cache.replace_with(id, version, &image, weigh)?;
            return Ok(outcome != Outcome::Stale);
        }

        // Links first, then the rewrites (a page in both is caught below: see
        // `Rewrite::links`).
        let linked = links.into_iter().map(|(id, Link { version, fragment, delta })| Image {
            id,
            version: Some(version),
            link: true,
            bytes: Cow::Borrowed(fragments.get(fragment).unwrap_or_default()),
            weigh: Weigh::Add(delta),
        });
        let rewritten = planned.into_iter().map(|(id, Rewritten { version, image, weigh })| {
            Image { id, version: Some(version), link: false, bytes: Cow::Owned(image), weigh }
        });
        let images: Vec<Image> = linked.chain(rewritten).collect();
        let news = new_pages.iter().chain(&created).map(|(id, image, weigh)| GroupUpdate {
            id: *id,
            version: None,
            change: Change::Replace(image),
            weigh: *weigh,
        });
        let frees = freed.iter().map(|&(id, version)| GroupUpdate {
            id,
            version: Some(version),
            change: Change::Free,
            weigh: Weigh::Keep,
        });
        let updates: Vec<GroupUpdate<'_>> = images
            .iter()
            .map(|image| GroupUpdate {
                id: image.id,
                version: image.version,
                change: if image.link {
                    Change::Link(&image.bytes)
                } else {
                    Change::Replace(&image.bytes)
                },
                weigh: image.weigh,
            })
            .chain(news)
            .chain(frees)
            .collect();
        // Descents made at different moments can name one page in two roles (a value page
        // freed and reused as a leaf meanwhile, say): the plan is out of date. Sorted by
        // page, which is the order the group needs too.
        let mut order: Vec<&GroupUpdate<'_>> = updates.iter().collect();
        order.sort_unstable_by_key(|u| u.id);
        let outcome = if order.windows(2).any(|w| w[0].id == w[1].id) {
            Ok(GroupOutcome::Stale)
        } else {
            cache.apply_group_in_order(&order, sync_early)
        };
        if !matches!(outcome, Ok(GroupOutcome::Installed)) {
            release();
        }
        Ok(outcome? == GroupOutcome::Installed)
    }
}

/// The pages a plan changes, worked out from the leaves up.
struct Rewrite<'c> {
    cache: &'c PageCache,
    node_bytes: usize,
    /// The plan's fragments (see [`Plan::fragments`]).
    fragments: &'c [u8],
    /// The leaves that take their fragment as it is: most of a batch's pages, kept out of
    /// `planned` (a map insert per write was 2% of a batch's instructions). A leaf that
    /// links splits nothing, so a page here is in `planned` too only if the descents
    /// disagree (a leaf also named as a parent): `Plan::install` finds it named twice and
    /// makes the plan again.
    links: Vec<(PageId, Link)>,
    /// The other existing pages, rewritten.
    planned: BTreeMap<PageId, Rewritten>,
    /// Each page's parent and the parent's version, from the descents.
    parents: BTreeMap<PageId, (PageId, u64)>,
    /// New pages (ids from `reserve_id`, given back if the plan fails) and their images.
    new_pages: Vec<(PageId, Vec<u8>, Weigh)>,
}

impl Rewrite<'_> {
    /// Plans every leaf's change, then the splits they cause, level by level up to the
    /// root. `false` if a remembered parent is no longer the parent (the descent moved right
    /// past a split that happened meanwhile) or changed since: the write must start again.
    fn plan(&mut self, leaves: Vec<(LeafAt, Range<usize>, i64)>) -> Result<bool> {
        let mut attachments = Attachments::new();
        let mut new_roots = NewRoots::new();
        for (leaf, range, delta) in leaves {
            let id = leaf.id;
            let fragment = self.fragments.get(range.clone()).unwrap_or_default();
            if fits(&leaf, fragment, self.node_bytes) {
                self.links.push((id, Link { version: leaf.version, fragment: range, delta }));
                continue;
            }
            // A leaf that splits, and the index nodes above it, need their parents; only
            // the paths of splitting leaves are recorded, since only they lead to splits.
            for pair in leaf.path.windows(2) {
                self.parents.insert(pair[1].0, pair[0]);
            }
            // A leaf without a parent is the root (`place` treats it so).
            if let Some(&parent) = leaf.path.last() {
                self.parents.insert(id, parent);
            }
            // The descent kept no page: read it again, as it was planned on.
            let page = walk::try_read(self.cache, id)?;
            let Some(page) = page.filter(|page| page.version() == leaf.version) else {
                return Ok(false);
            };
            // The leaf's entries are copied into its pieces as they lie; only an image too
            // large to address is cut the long way (and refused when encoded).
            if let Some(merged) = page.merged(fragment)? {
                self.place_leaf(id, leaf.version, &merged, &mut attachments, &mut new_roots)?;
            } else {
                let draft = page.draft(Some(fragment))?;
                self.place(id, leaf.version, draft, &mut attachments, &mut new_roots)?;
            }
        }
        // Each level takes in the splits of the one below, and may split in its turn.
        for level in 1..=u8::MAX {
            if attachments.is_empty() && new_roots.is_empty() {
                return Ok(true);
            }
            let (mut above, mut roots_above) = (Attachments::new(), NewRoots::new());
            for (id, version, node) in new_roots {
                self.place(id, version, Draft::of_node(&node), &mut above, &mut roots_above)?;
            }
            for (&parent, (version, children)) in &attachments {
                // A page planned already (as a leaf, by a descent made before it was freed
                // and reused) is nobody's parent: the descents disagree, plan again.
                if self.planned.contains_key(&parent) {
                    return Ok(false);
                }
                // A parent freed or changed since the descent read it: plan again.
                let page = walk::try_read(self.cache, parent)?;
                let Some(page) = page.filter(|page| page.version() == *version) else {
                    return Ok(false);
                };
                if let Some((image, weigh)) = self.spliced_parent(&page, level, children)? {
                    self.planned.insert(parent, Rewritten { version: *version, image, weigh });
                    continue;
                }
                let mut draft = page.draft(None)?;
                if draft.header.level != level || !attach(&mut draft, children) {
                    return Ok(false);
                }
                self.place(parent, *version, draft, &mut above, &mut roots_above)?;
            }
            (attachments, new_roots) = (above, roots_above);
        }
        Ok(attachments.is_empty() && new_roots.is_empty())
    }

    /// The image of index node `page` (at `level`) with its `children`'s new siblings
    /// added, and its weight, if it still fits in a node: spliced (see [`node::splice`]), which copies the
    /// entries it keeps as they lie rather than decoding and encoding each. A split writes
    /// its parent, and a parent holds hundreds of children: this was most of a split's
    /// cost. `None` where the parent must split in its turn, or the plan looks out of date
    /// (a child no longer routes its siblings' keys): the draft path then decides.
    fn spliced_parent(
        &self,
        page: &TreePage,
        level: u8,
        children: &[Split],
    ) -> Result<Option<(Vec<u8>, Weigh)>> {
        let node = page.node()?;
        if node.level() != level || page.fragments().len() != 0 {
            return Ok(None);
        }
        let mut changes = Vec::new();
        for (child, siblings) in children {
            for (low, sibling) in siblings {
                // A split child's siblings take keys it covered: the parent routes them to it.
                if node.child_for(low).ok() != Some(*child) {
                    return Ok(None);
                }
                changes.push((low.as_slice(), Some(EntryRef::Child(*sibling))));
            }
        }
        changes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if changes.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Ok(None);
        }
        let image = node::splice(&node, changes.into_iter())
            .map_err(|malformed| walk::corrupt(page.id(), &malformed))?;
        // An index node weighs nothing (see `Draft::weigh`).
        let weigh = Weigh::Set { owner: node.tree().get(), weight: 0 };
        Ok(image.filter(|image| image.len() <= self.node_bytes).map(|image| (image, weigh)))
    }

    /// Plans rewriting page `id` (read at `version`) as `draft`, split into as many pages
    /// as it takes: the first piece stays at `id`, the others get new pages, and their low
    /// fences go to `attachments` for the parent. The root keeps its page id (the catalog
    /// names it): a root that splits moves every piece to a new page and becomes an index
    /// node over them, one level up (`new_roots`).
    fn place(
        &mut self,
        id: PageId,
        version: u64,
        draft: Draft<'_>,
        attachments: &mut Attachments,
        new_roots: &mut NewRoots,
    ) -> Result<()> {
        let (tree, level) = (draft.header.tree, draft.header.level);
        let mut pieces = draft.split_into(self.node_bytes);
        let ids = self.piece_ids(id, pieces.len())?;
        // Each piece links to the next; the last keeps the original right link.
        for (piece, next) in pieces.iter_mut().zip(ids.iter().skip(1)) {
            piece.header.right = Some(*next);
        }
        let images = match pieces.iter().map(Draft::encode).collect::<Result<Vec<_>>>() {
            Ok(images) => images,
            Err(error) => {
                self.release_new(id, &ids);
                return Err(error);
            }
        };
        let placed = pieces.iter().zip(images).map(|(piece, image)| Placed {
            low: piece.header.low.clone(),
            image,
            weigh: piece.weigh(),
        });
        self.settle(id, version, (tree, level), &ids, placed.collect(), attachments, new_roots);
        Ok(())
    }

    /// As [`Rewrite::place`] for a leaf whose image, with every change made, is `merged`
    /// (see [`TreePage::merged`]): its pieces are copied from it ([`LeafSplit`]), the same
    /// images the draft path makes.
    fn place_leaf(
        &mut self,
        id: PageId,
        version: u64,
        merged: &[u8],
        attachments: &mut Attachments,
        new_roots: &mut NewRoots,
    ) -> Result<()> {
        let leaf = NodeRef::parse_header(merged).map_err(|m| walk::corrupt(id, &m))?;
        let split = LeafSplit::new(&leaf, self.node_bytes).map_err(|m| walk::corrupt(id, &m))?;
        let ids = self.piece_ids(id, split.len())?;
        let mut placed = Vec::with_capacity(ids.len());
        for i in 0..ids.len() {
            // Each piece links to the next; the last keeps the original right link.
            let right = ids.get(i + 1).copied().or(split.right());
            let image = match split.image(i, right) {
                Ok(Some(image)) => image,
                Ok(None) => {
                    self.release_new(id, &ids);
                    let max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
                    return Err(Error::RecordTooLarge { len: split.piece_len(i), max });
                }
                Err(malformed) => {
                    self.release_new(id, &ids);
                    return Err(walk::corrupt(id, &malformed));
                }
            };
            let weight = i64::try_from(split.count(i)).unwrap_or(i64::MAX);
            let weigh = Weigh::Set { owner: leaf.tree().get(), weight };
            placed.push(Placed { low: split.low(i).to_vec(), image, weigh });
        }
        self.settle(id, version, (leaf.tree(), 0), &ids, placed, attachments, new_roots);
        Ok(())
    }

    /// The pages the `count` pieces of node `id` go to: `id` itself alone; with a parent,
    /// `id` and new ids; without one (a root that splits), all new ids, and `id` becomes
    /// the new root above them.
    fn piece_ids(&self, id: PageId, count: usize) -> Result<Vec<PageId>> {
        match self.parents.get(&id) {
            _ if count == 1 => Ok(vec![id]),
            Some(_) => {
                let mut ids = vec![id];
                ids.extend(reserve_ids(self.cache, count - 1)?);
                Ok(ids)
            }
            None => reserve_ids(self.cache, count),
        }
    }

    /// Gives back the ids `piece_ids` reserved for node `id`'s pieces.
    fn release_new(&self, id: PageId, ids: &[PageId]) {
        ids.iter().filter(|&&new| new != id).for_each(|&new| self.cache.release_id(new));
    }

    /// Plans node `id`'s pieces (at `ids`, in key order): the first in place of the node
    /// (or, for a root that split, under it), the rest as new pages, and their links from
    /// the parent, or from a new root.
    #[expect(clippy::too_many_arguments, reason = "one step of `plan`, which owns them all")]
    fn settle(
        &mut self,
        id: PageId,
        version: u64,
        (tree, level): (TreeId, u8),
        ids: &[PageId],
        placed: Vec<Placed>,
        attachments: &mut Attachments,
        new_roots: &mut NewRoots,
    ) {
        let parent = self.parents.get(&id).copied();
        let mut lows = Vec::with_capacity(ids.len());
        for (Placed { low, image, weigh }, &piece_id) in placed.into_iter().zip(ids) {
            if piece_id == id {
                self.planned.insert(id, Rewritten { version, image, weigh });
            } else {
                self.new_pages.push((piece_id, image, weigh));
            }
            lows.push((low, piece_id));
        }
        match parent {
            _ if ids.len() == 1 => {}
            Some((parent, parent_version)) => {
                let siblings = lows.into_iter().skip(1).collect();
                attachments
                    .entry(parent)
                    .or_insert((parent_version, Vec::new()))
                    .1
                    .push((id, siblings));
            }
            None => {
                let mut root = Node::empty(tree, level + 1);
                root.entries = lows.into_iter().map(|(low, id)| (low, Entry::Child(id))).collect();
                new_roots.push((id, version, root));
            }
        }
    }
}

/// A piece of a node, encoded: its low fence, its image and its weight.
struct Placed {
    low: Vec<u8>,
    image: Vec<u8>,
    weigh: Weigh,
}

/// Points index node `draft` at the new right siblings of its split children, given by
/// their low fences. `false` if a child is not in it (any more).
fn attach<'a>(draft: &mut Draft<'a>, children: &'a [Split]) -> bool {
    for (child, siblings) in children {
        if !draft.entries.iter().any(|(_, entry)| *entry == EntryRef::Child(*child)) {
            return false;
        }
        for (low, sibling) in siblings {
            let entry = (KeyRef::whole(low), EntryRef::Child(*sibling));
            match draft.entries.binary_search_by(|(key, _)| key.compare(low)) {
                Ok(i) => draft.entries[i] = entry,
                Err(i) => draft.entries.insert(i, entry),
            }
        }
    }
    true
}

/// `count` new page ids, or none if the page table is full.
fn reserve_ids(cache: &PageCache, count: usize) -> Result<Vec<PageId>> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        match cache.reserve_id() {
            Ok(id) => ids.push(id),
            Err(error) => {
                ids.into_iter().for_each(|id| cache.release_id(id));
                return Err(error);
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::{Plan, count_change};
    use crate::{
        error::Result,
        tree::{node::ValueRef, tiny_tree},
    };

    #[test]
    fn a_leaf_met_again_after_another_makes_the_plan_out_of_date() -> Result<()> {
        let (db, tree) = tiny_tree((0..200u32).map(|i| format!("key{i:04}")), b"old")?;
        let (first, last) = (b"key0000".as_slice(), b"key0199".as_slice());
        let (leaf_first, _) = tree.current(first)?;
        let (leaf_last, _) = tree.current(last)?;
        assert_ne!(leaf_first.id, leaf_last.id, "the keys should lie in different leaves");
        let value = ValueRef::Inline(b"new");

        // Apart: refused, and nothing written.
        let mut plan = Plan::new(db.inner.shared.node_bytes);
        plan.add(leaf_first.clone(), first, Some(value), count_change(true, true));
        plan.add(leaf_last.clone(), last, Some(value), count_change(true, true));
        plan.add(leaf_first.clone(), b"key0001", Some(value), count_change(true, true));
        assert!(!plan.install(tree.cache())?);
        for key in [first, last, b"key0001"] {
            assert_eq!(tree.get(key)?.as_deref(), Some(&b"old"[..]));
        }

        // Together, in key order: installed.
        let mut plan = Plan::new(db.inner.shared.node_bytes);
        plan.add(leaf_first.clone(), first, Some(value), count_change(true, true));
        plan.add(leaf_first, b"key0001", Some(value), count_change(true, true));
        plan.add(leaf_last, last, Some(value), count_change(true, true));
        assert!(plan.install(tree.cache())?);
        for key in [first, last, b"key0001"] {
            assert_eq!(tree.get(key)?.as_deref(), Some(&b"new"[..]));
        }
        Ok(())
    }
}
