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

use std::collections::BTreeMap;

use super::{
    node::{self, Entry, Node, Op},
    walk::Descent,
};
use crate::{
    error::Result,
    ids::PageId,
    pagecache::{Change, GroupOutcome, GroupUpdate, Outcome, PageCache, Weigh},
};

/// What a write changes in its tree's entry count, given whether the key was there before
/// and is after.
pub(crate) fn count_change(before: bool, after: bool) -> i64 {
    i64::from(after) - i64::from(before)
}

/// A node's weight in the page cache: its entry count for a leaf (so that a tree's total
/// weight is its length), 0 for an index node; owned by its tree.
pub(crate) fn weigh(node: &Node) -> Weigh {
    let weight =
        if node.is_leaf() { i64::try_from(node.entries.len()).unwrap_or(i64::MAX) } else { 0 };
    Weigh::Set { owner: node.header.tree.get(), weight }
}

/// What will happen to one existing page.
#[derive(Debug)]
enum Planned {
    /// Link these operations as one fragment (a leaf with room for them); `delta` is the
    /// change in the leaf's entry count.
    Link { version: u64, ops: Vec<Op>, delta: i64 },
    /// Rewrite the page with this node.
    Replace { version: u64, node: Node },
}

/// One page's bytes in a group update: a fragment to link or an image to write.
struct Image {
    id: PageId,
    /// `None` for a new page.
    version: Option<u64>,
    link: bool,
    bytes: Vec<u8>,
    weigh: Weigh,
}

/// A write in the making. Build it with [`Plan::add`], then [`Plan::install`].
#[derive(Debug)]
pub(crate) struct Plan {
    node_bytes: usize,
    /// The touched leaves' descents, by leaf id, with the operations on each and the
    /// change they make to the leaf's entry count.
    leaves: BTreeMap<PageId, (Descent, Vec<Op>, i64)>,
    /// New pages' images (ids from `PageCache::reserve_id`, given back if the plan fails):
    /// a new tree's root, a value stored out of line.
    created: Vec<(PageId, Vec<u8>, Weigh)>,
    /// Pages to free, at the versions read.
    freed: Vec<(PageId, u64)>,
}

impl Plan {
    pub(crate) fn new(node_bytes: usize) -> Plan {
        Plan { node_bytes, leaves: BTreeMap::new(), created: Vec::new(), freed: Vec::new() }
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

    /// Adds `op` on the leaf that `descent` found; `delta` is what it changes in the leaf's
    /// entry count (+1 a new key, -1 a removed one, 0 an overwrite).
    pub(crate) fn add(&mut self, descent: Descent, op: Op, delta: i64) {
        let entry =
            self.leaves.entry(descent.leaf.id()).or_insert_with(|| (descent, Vec::new(), 0));
        entry.1.push(op);
        entry.2 += delta;
    }

    /// Installs the plan: all of it or, if any page changed since it was read, none of it
    /// (`false`: read again and make a new plan).
    ///
    /// # Errors
    /// The page cache's errors; [`crate::Error::Corruption`] for a damaged page.
    pub(crate) fn install(self, cache: &PageCache) -> Result<bool> {
        let node_bytes = self.node_bytes;
        let freed = self.freed;
        let created = self.created;
        let mut new_pages: Vec<(PageId, Node)> = Vec::new();
        let mut planned: BTreeMap<PageId, Planned> = BTreeMap::new();
        // Parents and their versions, from the descents, for the splits that need them.
        let mut parents: BTreeMap<PageId, (PageId, u64)> = BTreeMap::new();
        for (id, (descent, ops, delta)) in self.leaves {
            let leaf = &descent.leaf;
            for pair in descent.path.windows(2) {
                parents.insert(pair[1].0, pair[0]);
            }
            // A leaf without a parent is the root (split_all treats it so).
            if let Some(&parent) = descent.path.last() {
                parents.insert(id, parent);
            }
            let fragment_len = node::encode_fragment(&ops).len();
            let fits = leaf.page_len() + fragment_len <= node_bytes;
            if fits {
                planned.insert(id, Planned::Link { version: leaf.version(), ops, delta });
            } else {
                let mut node = leaf.materialize()?;
                for op in &ops {
                    node.apply(op);
                }
                planned.insert(id, Planned::Replace { version: leaf.version(), node });
            }
        }

        // Split what outgrew its page, from the leaves up: a split adds separators to the
        // parent, which is then planned as a rewrite and may split in its turn.
        let result = split_all(cache, node_bytes, &mut planned, &parents, &mut new_pages);
        if !matches!(result, Ok(true)) {
            new_pages.iter().for_each(|(id, _)| cache.release_id(*id));
            created.iter().for_each(|(id, ..)| cache.release_id(*id));
            return result;
        }

        // One page and nothing new: a plain link or replace.
        if new_pages.is_empty() && created.is_empty() && freed.is_empty() && planned.len() == 1 {
            let Some((id, change)) = planned.into_iter().next() else {
                return Ok(true);
            };
            let outcome = match change {
                Planned::Link { version, ops, delta } => {
                    cache.link_with(id, version, &node::encode_fragment(&ops), Weigh::Add(delta))?
                }
                Planned::Replace { version, node } => {
                    cache.replace_with(id, version, &node.encode(), weigh(&node))?
                }
            };
            return Ok(outcome != Outcome::Stale);
        }

        let images: Vec<Image> = planned
            .into_iter()
            .map(|(id, change)| match change {
                Planned::Link { version, ops, delta } => Image {
                    id,
                    version: Some(version),
                    link: true,
                    bytes: node::encode_fragment(&ops),
                    weigh: Weigh::Add(delta),
                },
                Planned::Replace { version, node } => Image {
                    id,
                    version: Some(version),
                    link: false,
                    bytes: node.encode(),
                    weigh: weigh(&node),
                },
            })
            .chain(new_pages.iter().map(|(id, node)| Image {
                id: *id,
                version: None,
                link: false,
                bytes: node.encode(),
                weigh: weigh(node),
            }))
            .chain(created.iter().map(|(id, image, w)| Image {
                id: *id,
                version: None,
                link: false,
                bytes: image.clone(),
                weigh: *w,
            }))
            .collect();
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
            .chain(frees)
            .collect();
        // Descents made at different moments can name one page in two roles (a value page
        // freed and reused as a leaf meanwhile, say): the plan is out of date.
        let mut ids: Vec<PageId> = updates.iter().map(|u| u.id).collect();
        ids.sort_unstable();
        let outcome = if ids.windows(2).any(|w| w[0] == w[1]) {
            Ok(GroupOutcome::Stale)
        } else {
            cache.apply_group(&updates)
        };
        if !matches!(outcome, Ok(GroupOutcome::Installed)) {
            new_pages.iter().for_each(|(id, _)| cache.release_id(*id));
            created.iter().for_each(|(id, ..)| cache.release_id(*id));
        }
        Ok(outcome? == GroupOutcome::Installed)
    }
}

/// Splits every planned rewrite that is larger than `node_bytes`, adding the new pages to
/// `new_pages` and the separators to the parents (planned as rewrites in turn). `false`
/// if a remembered parent is no longer the parent (the descent moved right past a split
/// that happened meanwhile): the write must start again.
fn split_all(
    cache: &PageCache,
    node_bytes: usize,
    planned: &mut BTreeMap<PageId, Planned>,
    parents: &BTreeMap<PageId, (PageId, u64)>,
    new_pages: &mut Vec<(PageId, Node)>,
) -> Result<bool> {
    // Level by level from the leaves: a parent is only complete once all its children
    // have been split.
    for level in 0..=u8::MAX {
        let oversized: Vec<PageId> = planned
            .iter()
            .filter_map(|(id, change)| match change {
                Planned::Replace { node, .. }
                    if node.header.level == level && node.encoded_len() > node_bytes =>
                {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        if oversized.is_empty() && !planned.values().any(|p| planned_level(p) > level) {
            return Ok(true);
        }
        for id in oversized {
            let Some(Planned::Replace { version, node }) = planned.remove(&id) else {
                continue;
            };
            let pieces = split_into(node, node_bytes);
            let mut ids = Vec::with_capacity(pieces.len());
            match parents.get(&id) {
                // A child: the first piece stays here, the others get new pages and their
                // separators go into the parent.
                Some(&(parent, parent_version)) => {
                    let mut parent_node = match planned.remove(&parent) {
                        Some(Planned::Replace { node, .. }) => node,
                        Some(Planned::Link { .. }) | None => read_index(cache, parent)?,
                    };
                    let child = Entry::Child(id);
                    if parent_node.header.level != level + 1
                        || !parent_node.entries.iter().any(|(_, entry)| *entry == child)
                    {
                        return Ok(false);
                    }
                    ids.push(id);
                    ids.extend(reserve_ids(cache, pieces.len() - 1)?);
                    let linked = link_pieces(pieces, &ids);
                    for (piece_id, piece) in ids.iter().zip(&linked).skip(1) {
                        parent_node.apply_child(piece.header.low.clone(), *piece_id);
                    }
                    let mut linked = linked.into_iter();
                    if let Some(first) = linked.next() {
                        planned.insert(id, Planned::Replace { version, node: first });
                    }
                    new_pages.extend(ids.iter().skip(1).copied().zip(linked));
                    planned.insert(
                        parent,
                        Planned::Replace { version: parent_version, node: parent_node },
                    );
                }
                // The root: every piece moves to a new page, and the root becomes an index
                // node over them, one level up, keeping its id.
                None => {
                    ids.extend(reserve_ids(cache, pieces.len())?);
                    let linked = link_pieces(pieces, &ids);
                    let first = &linked[0].header;
                    let mut root = Node::empty(first.tree, first.level + 1);
                    for (piece_id, piece) in ids.iter().zip(&linked) {
                        root.entries.push((piece.header.low.clone(), Entry::Child(*piece_id)));
                    }
                    new_pages.extend(ids.iter().copied().zip(linked));
                    planned.insert(id, Planned::Replace { version, node: root });
                }
            }
        }
    }
    Ok(true)
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

fn planned_level(planned: &Planned) -> u8 {
    match planned {
        Planned::Link { .. } => 0,
        Planned::Replace { node, .. } => node.header.level,
    }
}

/// Splits `node` into pieces of at most `node_bytes` each (a piece with one entry may be
/// larger: it cannot be split further).
fn split_into(node: Node, node_bytes: usize) -> Vec<Node> {
    let mut done = Vec::new();
    let mut todo = vec![node];
    while let Some(node) = todo.pop() {
        if node.encoded_len() <= node_bytes || node.entries.len() < 2 {
            done.push(node);
        } else {
            let (left, right) = node.split();
            // Right first on the stack so the left comes out first: `done` stays in order.
            todo.push(right);
            todo.push(left);
        }
    }
    done
}

/// Sets each piece's right link to the next piece's page; the last keeps the original.
fn link_pieces(mut pieces: Vec<Node>, ids: &[PageId]) -> Vec<Node> {
    let count = pieces.len();
    for (i, piece) in pieces.iter_mut().enumerate().take(count.saturating_sub(1)) {
        piece.header.right = Some(ids[i + 1]);
    }
    pieces
}

/// The current image of index page `id`, as a node.
fn read_index(cache: &PageCache, id: PageId) -> Result<Node> {
    let page = super::walk::read_page(cache, id)?;
    page.materialize()
}
