//! Splitting a leaf by copying its entries: [`LeafSplit`] cuts a leaf's image where
//! [`Draft::split_into`](super::Draft::split_into) would, and writes each piece's image from
//! the bytes of the entries, as [`splice`](super::splice) writes a consolidated leaf.
//!
//! Decoding a leaf into a draft, splitting the draft and encoding its pieces took about
//! 48,000 instructions a split on the comparison benchmark's load (a split every 30 or so
//! inserts), over a tenth of the load. Here the only per-entry work is a length sum for each
//! cut and one copy: a piece's fences are closer together than the leaf's, so its keys may
//! share a longer prefix, and each suffix then loses its first bytes and gets a new key
//! head; what follows the suffix (the value, inline or a blob reference) is copied as it is.
//! The images are byte for byte those of the draft path (`split_matches_the_draft_path`).

use std::ops::Range;

use super::{
    Malformed, NodeRef, Reader, SLOT_LEN, head_len, padded, prefix_len, put_bytes, put_head,
    shortest_separator, slot, to_u64,
};
use crate::{ids::PageId, varint};

/// One entry of the leaf being split: where its key and value lie in the image.
#[derive(Debug)]
struct Located {
    /// Where its suffix (the key without the leaf's prefix) starts.
    suffix: usize,
    /// The whole key's length: the leaf's prefix and the suffix.
    key_len: usize,
    /// The bytes after the suffix: the value, inline or a blob reference.
    value: Range<usize>,
}

/// One piece of the split: a run of the leaf's entries and its fences.
#[derive(Debug)]
struct Piece {
    entries: Range<usize>,
    low: Vec<u8>,
    high: Option<Vec<u8>>,
}

/// A leaf cut into pieces of at most `node_bytes` each (a piece of one entry may be larger),
/// in key order. Each piece but the last links to the next once the pieces have page ids;
/// the last keeps the leaf's right link.
#[derive(Debug)]
pub(crate) struct LeafSplit<'a> {
    node: NodeRef<'a>,
    entries: Vec<Located>,
    pieces: Vec<Piece>,
}

impl<'a> LeafSplit<'a> {
    /// Plans the split of `leaf` (its header parsed) as [`Draft::split_into`] would.
    ///
    /// # Errors
    /// [`Malformed`] if `leaf` is not a leaf or an entry is malformed.
    ///
    /// [`Draft::split_into`]: super::Draft::split_into
    pub(crate) fn new(leaf: &NodeRef<'a>, node_bytes: usize) -> Result<LeafSplit<'a>, Malformed> {
        if !leaf.is_leaf() {
            return Err(leaf.not_a_leaf());
        }
        let slots = leaf.slots()?;
        let mut entries = Vec::with_capacity(slots.len());
        for (i, slot) in slots.iter().enumerate() {
            let at = leaf.offset_in(slot)?;
            let mut reader = Reader { bytes: leaf.image, at };
            let suffix_len = reader.bytes("key")?.len();
            let suffix = reader.at - suffix_len;
            // The value runs to the next entry's offset (the last to the image's end).
            let end = match slots.get(i + 1) {
                Some(next) => leaf.offset_in(next)?,
                None => leaf.image.len(),
            };
            if end < reader.at {
                return Err(Malformed::new(at, format!("entry {i} runs past the next one")));
            }
            let key_len = leaf.prefix_len + suffix_len;
            entries.push(Located { suffix, key_len, value: reader.at..end });
        }
        let mut split = LeafSplit { node: *leaf, entries, pieces: Vec::new() };
        split.cut(node_bytes);
        Ok(split)
    }

    /// Cuts the entries as `Draft::split_into` does: a piece that is too long, with two
    /// entries or more, splits where its left half's bytes come closest to half, at the
    /// shortest separator of the keys either side of the cut; then each half again.
    fn cut(&mut self, node_bytes: usize) {
        let whole = Piece {
            entries: 0..self.entries.len(),
            low: self.node.low.to_vec(),
            high: self.node.high.map(<[u8]>::to_vec),
        };
        let mut todo = vec![whole];
        while let Some(piece) = todo.pop() {
            let prefix = prefix_len(&piece.low, piece.high.as_deref());
            let located = self.entries.get(piece.entries.clone()).unwrap_or_default();
            let sizes: Vec<usize> = located.iter().map(|e| entry_len(e, prefix)).collect();
            let total: usize = sizes.iter().sum();
            if sizes.len() < 2 || head_len(&piece.low, piece.high.as_deref()) + total <= node_bytes
            {
                self.pieces.push(piece);
                continue;
            }
            let (mut at, mut best, mut left) = (1, usize::MAX, 0);
            for (i, size) in sizes.iter().enumerate().take(sizes.len() - 1) {
                left += size;
                let gap = (2 * left).abs_diff(total);
                if gap < best {
                    (at, best) = (i + 1, gap);
                }
            }
            let at = piece.entries.start + at;
            let separator = shortest_separator(&self.key(at - 1), &self.key(at));
            let Piece { entries, low, high } = piece;
            // Right first on the stack so that the left comes out first.
            todo.push(Piece { entries: at..entries.end, low: separator.clone(), high });
            todo.push(Piece { entries: entries.start..at, low, high: Some(separator) });
        }
    }

    /// The whole key of entry `i`.
    fn key(&self, i: usize) -> Vec<u8> {
        let Some(entry) = self.entries.get(i) else {
            return Vec::new();
        };
        let prefix = self.node.low.get(..self.node.prefix_len).unwrap_or_default();
        let suffix_len = entry.key_len - self.node.prefix_len;
        let suffix = self.node.image.get(entry.suffix..entry.suffix + suffix_len);
        [prefix, suffix.unwrap_or_default()].concat()
    }

    /// How many pieces.
    pub(crate) fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Piece `i`'s low fence.
    pub(crate) fn low(&self, i: usize) -> &[u8] {
        self.pieces.get(i).map_or(&[], |piece| &piece.low)
    }

    /// Piece `i`'s entry count.
    pub(crate) fn count(&self, i: usize) -> usize {
        self.pieces.get(i).map_or(0, |piece| piece.entries.len())
    }

    /// The leaf's right link, which the last piece keeps.
    pub(crate) fn right(&self) -> Option<PageId> {
        self.node.right
    }

    /// The length of piece `i`'s image (with any right link).
    pub(crate) fn piece_len(&self, i: usize) -> usize {
        let Some(piece) = self.pieces.get(i) else {
            return 0;
        };
        let prefix = prefix_len(&piece.low, piece.high.as_deref());
        let entries = self.entries.get(piece.entries.clone()).unwrap_or_default();
        head_len(&piece.low, piece.high.as_deref())
            + entries.iter().map(|e| entry_len(e, prefix)).sum::<usize>()
    }

    /// Piece `i`'s image, linking to `right`; `None` if it would pass 4 GiB.
    ///
    /// # Errors
    /// [`Malformed`] if a piece's keys do not share the prefix its fences do, which only a
    /// damaged leaf can cause.
    pub(crate) fn image(
        &self,
        i: usize,
        right: Option<PageId>,
    ) -> Result<Option<Vec<u8>>, Malformed> {
        let Some(piece) = self.pieces.get(i) else {
            return Ok(None);
        };
        let entries = self.entries.get(piece.entries.clone()).unwrap_or_default();
        let prefix = prefix_len(&piece.low, piece.high.as_deref());
        // Each suffix loses what the piece's prefix adds to the leaf's.
        let dropped = prefix.checked_sub(self.node.prefix_len).ok_or_else(|| {
            Malformed::new(self.node.table, "a piece's fences share less than the leaf's")
        })?;
        let len = self.piece_len(i);
        let (Ok(_), Ok(count)) = (u32::try_from(len), u32::try_from(entries.len())) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(len);
        let fences = (&piece.low[..], piece.high.as_deref());
        let mut slot_at = put_head(&mut out, (self.node.tree, 0), fences, right, count);
        let image = self.node.image;
        for entry in entries {
            let suffix_len = entry.key_len - self.node.prefix_len;
            let suffix =
                image.get(entry.suffix + dropped..entry.suffix + suffix_len).ok_or_else(|| {
                    Malformed::new(entry.suffix, "a key shorter than its piece's prefix")
                })?;
            let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
            if let Some(at) = out.get_mut(slot_at..slot_at + SLOT_LEN) {
                at.copy_from_slice(&slot(offset, padded(suffix)));
            }
            slot_at += SLOT_LEN;
            put_bytes(&mut out, suffix);
            out.extend_from_slice(image.get(entry.value.clone()).unwrap_or_default());
        }
        debug_assert_eq!(out.len(), len, "a split piece's length");
        Ok(Some(out))
    }
}

/// Bytes of `entry` in a piece whose keys share `prefix` bytes, its slot included (as
/// [`entry_len`](super::entry_len) counts them).
fn entry_len(entry: &Located, prefix: usize) -> usize {
    let suffix_len = entry.key_len.saturating_sub(prefix);
    SLOT_LEN + varint::len(to_u64(suffix_len)) + suffix_len + entry.value.len()
}
