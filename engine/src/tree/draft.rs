//! [`Draft`]: a node being rebuilt (consolidated, split or merged), its entries borrowed
//! from the images and fragments they come from.
//!
//! Rewriting a node through an owned [`Node`] copies every key and value
//! twice, and allocates for each: once into the node, once into the new image. A draft
//! copies each once, into the new image; its only allocation is the list of entries. This
//! is what a write pays every few fragments (consolidation) and every few inserts into a
//! leaf (splits), so it is most of the cost of a write that is not logging.

use super::node::{
    self, EntryRef, Header, KeyRef, Malformed, Node, NodeRef, encode_image, image_len,
    shortest_separator,
};
use crate::{error::Result, pagecache::Weigh};

/// A node's header and entries, the entries borrowed from images and fragments: sorted by
/// key, keys unique, with the invariants of [`Node`].
#[derive(Debug, Clone)]
pub(crate) struct Draft<'a> {
    /// Tree, level, fences and right sibling (owned: splits and merges change them).
    pub(crate) header: Header,
    /// The entries, in key order.
    pub(crate) entries: Vec<(KeyRef<'a>, EntryRef<'a>)>,
}

impl<'a> Draft<'a> {
    /// The node made of `base` and `fragments` (oldest first), every op applied.
    ///
    /// # Errors
    /// [`Malformed`] if the base or a fragment is malformed, if there are fragments on an
    /// index node, or if an op's key lies outside the leaf's fences.
    pub(crate) fn of_page(base: &'a [u8], fragments: &[&'a [u8]]) -> Result<Draft<'a>, Malformed> {
        // One pass checks the base and decodes its entries; the fragments apply to those.
        let (node, entries) = NodeRef::parse_entries(base)?;
        let entries = if fragments.is_empty() {
            entries
        } else if node.is_leaf() {
            node::apply_fragments(&node, entries, fragments.iter().copied())?
        } else {
            return Err(Malformed::new(
                1,
                format!("{} fragments on an index node (level {})", fragments.len(), node.level()),
            ));
        };
        Ok(Draft { header: node.header(), entries })
    }

    /// An owned node's entries, borrowed.
    pub(crate) fn of_node(node: &'a Node) -> Draft<'a> {
        let entries =
            node.entries.iter().map(|(key, entry)| (KeyRef::whole(key), entry.as_ref())).collect();
        Draft { header: node.header.clone(), entries }
    }

    /// The owned node.
    pub(crate) fn to_node(&self) -> Node {
        let entries =
            self.entries.iter().map(|(key, entry)| (key.to_vec(), entry.to_entry())).collect();
        Node { header: self.header.clone(), entries }
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.header.level == 0
    }

    /// The exact length of [`Draft::encode`]'s output.
    pub(crate) fn encoded_len(&self) -> usize {
        image_len(&self.header, self.entries.iter().copied())
    }

    /// The node's image.
    ///
    /// # Errors
    /// As [`encode_image`].
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        encode_image(&self.header, self.entries.iter().copied())
    }

    /// The node's weight in the page cache: its entry count for a leaf (so that a tree's
    /// total weight is its length), 0 for an index node; owned by its tree.
    pub(crate) fn weigh(&self) -> Weigh {
        let weight =
            if self.is_leaf() { i64::try_from(self.entries.len()).unwrap_or(i64::MAX) } else { 0 };
        Weigh::Set { owner: self.header.tree.get(), weight }
    }

    /// Splits the draft into pieces of at most `node_bytes` each, in key order (a piece
    /// with one entry may be larger: it cannot be split further). Each piece but the last
    /// keeps the original right link: the caller links the pieces once they have pages.
    pub(crate) fn split_into(self, node_bytes: usize) -> Vec<Draft<'a>> {
        let mut done = Vec::new();
        let mut todo = vec![self];
        while let Some(draft) = todo.pop() {
            if draft.entries.len() < 2 || draft.encoded_len() <= node_bytes {
                done.push(draft);
            } else {
                let (left, right) = draft.split();
                // Right first on the stack so the left comes out first: `done` stays in order.
                todo.push(right);
                todo.push(left);
            }
        }
        done
    }

    /// Splits into a left and a right half of about equal encoded size.
    ///
    /// The separator becomes the left's high fence and the right's low fence. In an index
    /// node it is the right's first key; in a leaf it is the shortest prefix of the right's
    /// first key that is still greater than the left's last key (suffix truncation: shorter
    /// separators make smaller index nodes). The left keeps the low fence; the right takes
    /// the high fence and the right sibling. Both keep tree and level. With fewer than 2
    /// entries the right half is empty ([`Draft::split_into`] never asks for that).
    pub(crate) fn split(mut self) -> (Draft<'a>, Draft<'a>) {
        let prefix = self.header.prefix_len();
        let size = |(key, entry): &(KeyRef<'_>, EntryRef<'_>)| {
            node::entry_len(key.len().saturating_sub(prefix), *entry)
        };
        let total: usize = self.entries.iter().map(size).sum();
        // The cut `at` (entries before it go left) with the left's bytes closest to half.
        let (mut at, mut best, mut left) = (1, usize::MAX, 0);
        for (i, entry) in self.entries.iter().enumerate().take(self.entries.len().saturating_sub(1))
        {
            left += size(entry);
            let gap = (2 * left).abs_diff(total);
            if gap < best {
                (at, best) = (i + 1, gap);
            }
        }
        let right_entries = self.entries.split_off(at.min(self.entries.len()));
        let separator = match (self.entries.last(), right_entries.first()) {
            (Some((last, _)), Some((first, _))) if self.is_leaf() => {
                shortest_separator(&last.to_vec(), &first.to_vec())
            }
            (_, Some((first, _))) => first.to_vec(),
            // `at` is in 1..len, so both halves have entries.
            (_, None) => Vec::new(),
        };
        let right = Draft {
            header: Header {
                tree: self.header.tree,
                level: self.header.level,
                low: separator.clone(),
                high: self.header.high.take(),
                right: self.header.right,
            },
            entries: right_entries,
        };
        self.header.high = Some(separator);
        (self, right)
    }
}
