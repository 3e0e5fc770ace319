//! Merging underfull nodes, so that a tree that shrinks gives its pages back.
//!
//! After a remove leaves a node small (under a quarter of `node_bytes`), the node is merged
//! with its right sibling under the same parent (or, for a last child, with its left one),
//! if the two fit in three quarters of a node: the left node takes both nodes' entries and
//! the right one's high fence and right link, the right page is freed, and the parent
//! loses its entry, all in one group update. A parent left small is merged in turn; a root
//! left with one child takes that child's contents and drops a level. Like splits,
//! merges are never half done.
//!
//! Merging is housekeeping, not part of the remove: a merge that loses a race to another
//! change is simply skipped, and the next remove there tries again.

use super::{
    Tree,
    draft::Draft,
    node::{self, EntryRef},
    walk::{self, Target, TreePage},
};
use crate::{
    error::Result,
    ids::PageId,
    pagecache::{Change, GroupUpdate, Weigh},
    sync::epoch,
};

impl Tree {
    /// Merges the node at `level` that holds `key` with a sibling if it is underfull, then
    /// its parent, and so on.
    pub(crate) fn merge_if_underfull(&self, key: &[u8]) -> Result<()> {
        let node_bytes = self.inner.shared.node_bytes;
        for level in 0..u8::MAX {
            let descent = walk::descend_to(
                self.cache(),
                self.inner.id,
                self.inner.root,
                Target::Key(key),
                level,
            )?;
            let page = &descent.leaf;
            if page.node()?.level() != level {
                return Ok(()); // the tree is not that tall (any more)
            }
            if !underfull(page.id(), page.base(), || page.fragments(), node_bytes)? {
                return Ok(());
            }
            let Some(&(parent_id, parent_version)) = descent.path.last() else {
                return Ok(()); // the root: it has no sibling
            };
            let parent = walk::read_page(self.cache(), parent_id)?;
            if parent.version() != parent_version {
                return Ok(());
            }
            let Some(parent_view) = Parent::of(&parent)? else {
                return Ok(());
            };
            let merged = if parent_view.len() == 1 {
                if parent_id == self.inner.root {
                    self.collapse_root(&parent, &parent.draft(None)?)?
                } else {
                    false
                }
            } else {
                self.merge_children(&parent, &parent_view, (page.id(), key), node_bytes)?
            };
            if !merged {
                return Ok(());
            }
        }
        Ok(())
    }

    /// [`Tree::merge_if_underfull`] for leaf `leaf`, which a batch shrank (`key` was one of
    /// its keys): the leaf is read by id first, since most leaves are not underfull and
    /// this spares them a descent.
    pub(crate) fn merge_leaf_if_underfull(&self, leaf: PageId, key: &[u8]) -> Result<()> {
        let small = {
            // Read in place: a leaf that is not underfull is left without taking a
            // reference to any of its fragments.
            let guard = epoch::pin();
            let Some(page) = self.cache().read(leaf, &guard)? else {
                return Ok(()); // merged away already
            };
            // A page freed and reused for something else since: the full check finds the
            // leaf.
            let ours = walk::node_of(&page)
                .is_ok_and(|node| node.tree() == self.inner.id && node.is_leaf());
            let node_bytes = self.inner.shared.node_bytes;
            !ours || underfull(page.id(), page.base(), || page.fragments(), node_bytes)?
        };
        if small { self.merge_if_underfull(key) } else { Ok(()) }
    }

    /// Merges child `id` of `parent` (seen as `view`), which holds `key`, with a sibling;
    /// whether it did.
    fn merge_children(
        &self,
        parent: &TreePage,
        view: &Parent<'_>,
        (id, key): (PageId, &[u8]),
        node_bytes: usize,
    ) -> Result<bool> {
        let Some(at) = view.position(id, key)? else {
            return Ok(false);
        };
        let (left_at, right_at) = if at + 1 < view.len() { (at, at + 1) } else { (at - 1, at) };
        let (Some(left_id), Some(right_id)) = (view.child(left_at)?, view.child(right_at)?) else {
            return Ok(false);
        };
        let (Some(left), Some(right)) =
            (walk::try_read(self.cache(), left_id)?, walk::try_read(self.cache(), right_id)?)
        else {
            return Ok(false);
        };
        let mut merged = left.draft(None)?;
        let right_node = right.draft(None)?;
        // Two nodes merge if the result leaves room to grow; an empty node always merges
        // (its sibling fits in a page already), so emptied nodes never linger.
        let limit = if merged.entries.is_empty() || right_node.entries.is_empty() {
            node_bytes
        } else {
            node_bytes / 4 * 3
        };
        if merged.header.right != Some(right_id) || merged.header.level != right_node.header.level {
            return Ok(false);
        }
        merged.entries.extend(right_node.entries);
        merged.header.high = right_node.header.high;
        merged.header.right = right_node.header.right;
        if merged.encoded_len() > limit {
            return Ok(false);
        }
        let Some(parent_image) = view.without(right_at, node_bytes)? else {
            return Ok(false);
        };
        let merged_weigh = merged.weigh();
        let merged = merged.encode()?;
        let updates = [
            GroupUpdate {
                id: left_id,
                version: Some(left.version()),
                change: Change::Replace(&merged),
                weigh: merged_weigh,
            },
            GroupUpdate {
                id: right_id,
                version: Some(right.version()),
                change: Change::Free,
                weigh: Weigh::Keep,
            },
            GroupUpdate {
                id: parent.id(),
                version: Some(parent.version()),
                change: Change::Replace(&parent_image),
                weigh: Weigh::Keep,
            },
        ];
        Ok(self.cache().apply_group(&updates)? == crate::pagecache::GroupOutcome::Installed)
    }

    /// A root with one child takes the child's contents (and drops a level); whether it did.
    fn collapse_root(&self, root: &TreePage, root_draft: &Draft<'_>) -> Result<bool> {
        let Some((_, EntryRef::Child(child_id))) = root_draft.entries.first() else {
            return Ok(false);
        };
        let Some(child) = walk::try_read(self.cache(), *child_id)? else {
            return Ok(false);
        };
        let mut node = child.draft(None)?;
        if node.header.right.is_some() || node.header.high.is_some() {
            return Ok(false);
        }
        node.header.low = Vec::new();
        let image = node.encode()?;
        let updates = [
            GroupUpdate {
                id: root.id(),
                version: Some(root.version()),
                change: Change::Replace(&image),
                weigh: node.weigh(),
            },
            GroupUpdate {
                id: *child_id,
                version: Some(child.version()),
                change: Change::Free,
                weigh: Weigh::Keep,
            },
        ];
        Ok(self.cache().apply_group(&updates)? == crate::pagecache::GroupOutcome::Installed)
    }
}

/// An index node seen for a merge, read in place. A parent holds hundreds of children, and
/// decoding it into a draft and encoding it again was most of a merge's cost (6% of the
/// comparison benchmark's removal instructions): the new parent is spliced (see
/// [`node::splice`]) instead.
struct Parent<'a> {
    id: PageId,
    node: node::NodeRef<'a>,
}

impl<'a> Parent<'a> {
    /// `parent`'s node; `None` if it has fragments, which index nodes never take (splits
    /// and merges replace them whole): the merge is then left alone.
    fn of(parent: &'a TreePage) -> Result<Option<Parent<'a>>> {
        if parent.fragments().len() != 0 {
            return Ok(None);
        }
        Ok(Some(Parent { id: parent.id(), node: parent.node()? }))
    }

    fn len(&self) -> usize {
        self.node.len()
    }

    fn corrupt(&self, malformed: &node::Malformed) -> crate::error::Error {
        walk::corrupt(self.id, malformed)
    }

    /// Where child `id`, which holds `key`, is listed, if it is.
    fn position(&self, id: PageId, key: &[u8]) -> Result<Option<usize>> {
        let at = match self.node.search(key).map_err(|m| self.corrupt(&m))? {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        Ok((self.child(at)? == Some(id)).then_some(at))
    }

    /// Entry `i`'s child, if it is one.
    fn child(&self, i: usize) -> Result<Option<PageId>> {
        match self.node.entry(i).map_err(|m| self.corrupt(&m))? {
            (_, EntryRef::Child(child)) => Ok(Some(child)),
            (_, EntryRef::Value(_)) => Ok(None),
        }
    }

    /// The node's image without entry `i`; `None` if it would not fit in `node_bytes`.
    fn without(&self, i: usize, node_bytes: usize) -> Result<Option<Vec<u8>>> {
        let key = self.node.key(i).map_err(|m| self.corrupt(&m))?.to_vec();
        let image = node::splice(&self.node, std::iter::once((key.as_slice(), None)))
            .map_err(|m| self.corrupt(&m))?;
        Ok(image.filter(|image| image.len() <= node_bytes))
    }
}

/// Whether page `id`, made of `base` and the fragments `fragments` lists (oldest first, a
/// new iterator per call), is under a quarter of `node_bytes`. Fragments (removes among
/// them) count in a page's length until it is next consolidated, so a long page with
/// fragments is measured as the image it would consolidate to.
fn underfull<'a, I: ExactSizeIterator<Item = &'a [u8]>>(
    id: PageId,
    base: &'a [u8],
    fragments: impl Fn() -> I,
    node_bytes: usize,
) -> Result<bool> {
    let quarter = node_bytes / 4;
    let page_len = walk::page_len(base, fragments());
    if page_len <= quarter || fragments().len() == 0 {
        return Ok(page_len <= quarter);
    }
    let corrupt = |m| walk::corrupt(id, &m);
    if node::leaf_len_at_least(base, fragments()).map_err(corrupt)? > quarter {
        return Ok(false);
    }
    Ok(node::leaf_len(base, fragments()).map_err(corrupt)? <= quarter)
}
