//! Tree nodes: the byte layout of a node image and of the fragments linked onto it, and the
//! forms the tree works with: [`NodeRef`] (a zero-copy view of an image, for reads),
//! [`Draft`] (a node being rebuilt from borrowed entries, for writes; in `draft.rs`),
//! [`FragmentBuilder`] (a fragment written op by op), and the owned [`Node`] and [`Op`]
//! (decoded, for tests, tools and new roots). [`encode_image`] is the one node encoder.
//!
//! A node is a page: a base image plus fragments, oldest first. Leaves get fragments (small
//! batches of puts and removes); index nodes are always rewritten whole. [`TreeMaterializer`]
//! folds a leaf's fragments into a new image for the page cache.
//!
//! # Node image (format tag 3)
//!
//! Little-endian; varints are unsigned LEB128 in their shortest form ([`crate::varint`]).
//!
//! ```text
//! 0   u8    format tag: 3 (tag 1, the same without key heads, is no longer read)
//! 1   u8    level (0 = leaf)
//! 2   u8    flags: bit 0 high fence present, bit 1 right sibling present (others 0)
//! 3   u8    reserved, 0
//! 4   u32   entry count n
//! 8   u64   tree id
//! 16  u64   right sibling page id (0 when absent)
//! 24        varint low-fence length, low-fence bytes
//!           varint high-fence length, high-fence bytes         (only when present)
//!           varint prefix length p
//!           n x 8-byte slots: u32 entry offset, from the start of the image, then the
//!             key head: the suffix's first 4 bytes, zero-padded past its end
//!           n entries: varint suffix length, suffix bytes, then
//!             leaf:  u8 value tag: 0 inline (varint length, bytes)
//!                                | 1 blob (u64 page id, u64 length)
//!             index: u64 child page id
//! ```
//!
//! Key `i` is `low[..p] ++ suffix_i`. With a high fence, `p` is the length of the common
//! prefix of the two fences (every key `k` of the node has `low <= k < high`, so every key
//! starts with it); without one, `p` is 0.
//!
//! The key heads make a binary search read the slot table alone until it nears its answer.
//! Zero-padded heads, read as big-endian numbers, never decrease as keys increase, so a
//! probe whose head differs from an entry's is ordered by the heads; only equal heads need
//! the entry itself. A search thus touches the contiguous table and one or two entries,
//! instead of a cache line per probe (and decodes no varint per probe).
//!
//! Readers accept exactly what [`Node::encode`] writes, so an image that parses re-encodes
//! to its own bytes: the entries follow the offset table back to back, each offset is where
//! the previous entry ended, and the last entry ends the image; keys are strictly increasing,
//! the first key is at least the low fence (equal to it in an index node), the last is below
//! the high fence, and the low fence is below the high fence; an index node has an entry;
//! the right sibling field is 0 without its flag. The low fence is inclusive and the high
//! fence exclusive; the leftmost node of a level has the empty low fence and the rightmost
//! has no high fence.
//!
//! # Fragment (format tag 2)
//!
//! ```text
//! 0   u8    format tag: 2
//! 1         varint op count (at least 1)
//!           ops: u8 op (0 put, 1 remove), varint key length, key bytes (the whole key),
//!                then for a put the value, as in leaf entries (u8 tag, then its fields)
//! ```
//!
//! Ops apply in order: a put inserts or overwrites, a remove deletes the key if present.
//! Every key of a fragment lies within the fences of the leaf it is linked onto.

use std::{
    cmp::Ordering,
    ops::{ControlFlow, Range},
};

mod split;

pub(crate) use split::LeafSplit;

use super::{draft::Draft, filter};
use crate::{
    error::Error,
    ids::{PageId, TreeId},
    pagecache::Materializer,
    varint,
};

/// Format tag of a node image.
const NODE_TAG: u8 = 3;
/// Format tag of the node images of earlier builds, which had no key heads.
const OLD_NODE_TAG: u8 = 1;
/// Format tag of a fragment.
const FRAGMENT_TAG: u8 = 2;
/// Header flag: a high fence follows the low fence.
const FLAG_HIGH: u8 = 1;
/// Header flag: the right sibling field holds a page id.
const FLAG_RIGHT: u8 = 2;
/// Bytes before the low fence.
const HEADER_LEN: usize = 24;
/// Bytes of one slot of the table: an entry offset and a key head.
const SLOT_LEN: usize = OFFSET_LEN + HEAD_LEN;
/// Bytes of an entry offset.
const OFFSET_LEN: usize = 4;
/// Bytes of a key head.
const HEAD_LEN: usize = 4;
/// Value tag: the value's bytes follow.
const VALUE_INLINE: u8 = 0;
/// Value tag: the value is in its own page.
const VALUE_BLOB: u8 = 1;
/// Bytes of a blob value after its tag: page id and length.
const BLOB_LEN: usize = 16;
/// Bytes of an index entry's child after its key.
const CHILD_LEN: usize = 8;
/// Fragment op: put.
const OP_PUT: u8 = 0;
/// Fragment op: remove.
const OP_REMOVE: u8 = 1;
/// The fewest bytes an op takes (a remove of the empty key), which bounds the op count a
/// fragment of a given length can hold.
const MIN_OP_LEN: usize = 2;

/// What is wrong with the bytes of a node image or fragment. The tree reports it as
/// [`crate::Error::Corruption`] naming the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {reason}")]
pub(crate) struct Malformed {
    /// Where in the image (or in the fragment that `reason` names) the damage is.
    pub(crate) offset: usize,
    /// What was expected and what was found.
    pub(crate) reason: String,
}

impl Malformed {
    #[cold]
    pub(crate) fn new(offset: usize, reason: impl Into<String>) -> Malformed {
        Malformed { offset, reason: reason.into() }
    }

    /// Says which of a page's fragments the error is in (its offset is within that fragment).
    #[cold]
    fn in_fragment(self, index: usize) -> Malformed {
        Malformed { offset: self.offset, reason: format!("fragment {index}: {}", self.reason) }
    }
}

/// How a leaf stores a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Value {
    /// The value's bytes, in the leaf.
    Inline(Vec<u8>),
    /// A large value, stored out of line in its own page.
    Blob {
        /// The page holding the value.
        page: PageId,
        /// The value's length in bytes.
        len: u64,
    },
}

impl Value {
    /// A borrowed view of the value.
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Inline(bytes) => ValueRef::Inline(bytes),
            &Value::Blob { page, len } => ValueRef::Blob { page, len },
        }
    }
}

/// A value as it lies in an image or fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ValueRef<'a> {
    /// The value's bytes.
    Inline(&'a [u8]),
    /// A value stored in its own page.
    Blob {
        /// The page holding the value.
        page: PageId,
        /// The value's length in bytes.
        len: u64,
    },
}

impl ValueRef<'_> {
    /// The owned value.
    pub(crate) fn to_value(self) -> Value {
        match self {
            ValueRef::Inline(bytes) => Value::Inline(bytes.to_vec()),
            ValueRef::Blob { page, len } => Value::Blob { page, len },
        }
    }

    /// Bytes of the encoded value, tag included.
    fn encoded_len(self) -> usize {
        1 + match self {
            ValueRef::Inline(bytes) => bytes_len(bytes),
            ValueRef::Blob { .. } => BLOB_LEN,
        }
    }

    fn encode_into(self, out: &mut Vec<u8>) {
        match self {
            ValueRef::Inline(bytes) => {
                out.push(VALUE_INLINE);
                put_bytes(out, bytes);
            }
            ValueRef::Blob { page, len } => {
                out.push(VALUE_BLOB);
                out.extend_from_slice(&page.get().to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
    }
}

/// One change to a leaf: what a fragment holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// Sets `key` to `value`, inserting or overwriting.
    Put {
        /// The whole key.
        key: Vec<u8>,
        /// The new value.
        value: Value,
    },
    /// Deletes `key` if present.
    Remove {
        /// The whole key.
        key: Vec<u8>,
    },
}

impl Op {
    /// The key the op changes.
    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Remove { key } => key,
        }
    }
}

/// An op as it lies in a fragment.
#[derive(Debug, Clone, Copy)]
struct OpRef<'a> {
    key: &'a [u8],
    /// The value put, or `None` for a remove.
    value: Option<ValueRef<'a>>,
}

impl OpRef<'_> {
    fn to_op(self) -> Op {
        let key = self.key.to_vec();
        match self.value {
            Some(value) => Op::Put { key, value: value.to_value() },
            None => Op::Remove { key },
        }
    }
}

/// What every node says about itself, besides its entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Header {
    /// The tree the node belongs to.
    pub(crate) tree: TreeId,
    /// 0 for a leaf; an index node's children are one level lower.
    pub(crate) level: u8,
    /// The inclusive low fence: no key of the node is smaller. Empty in the leftmost node of
    /// a level.
    pub(crate) low: Vec<u8>,
    /// The exclusive high fence: every key of the node is smaller. `None` (+infinity) in the
    /// rightmost node of a level.
    pub(crate) high: Option<Vec<u8>>,
    /// The next node to the right at the same level, whose low fence is this node's high
    /// fence.
    pub(crate) right: Option<PageId>,
}

impl Header {
    /// The length of the prefix every key of the node shares and the image stores once.
    pub(crate) fn prefix_len(&self) -> usize {
        prefix_len(&self.low, self.high.as_deref())
    }
}

/// What a key maps to in a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Entry {
    /// In a leaf: the key's value.
    Value(Value),
    /// In an index node: the child that covers keys from this entry's key up to the next
    /// entry's key (or the node's high fence).
    Child(PageId),
}

impl Entry {
    /// A borrowed view of the entry.
    pub(crate) fn as_ref(&self) -> EntryRef<'_> {
        match self {
            Entry::Value(value) => EntryRef::Value(value.as_ref()),
            &Entry::Child(page) => EntryRef::Child(page),
        }
    }
}

/// An entry as it lies in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EntryRef<'a> {
    /// In a leaf: the key's value.
    Value(ValueRef<'a>),
    /// In an index node: the child.
    Child(PageId),
}

impl EntryRef<'_> {
    /// The owned entry.
    pub(crate) fn to_entry(self) -> Entry {
        match self {
            EntryRef::Value(value) => Entry::Value(value.to_value()),
            EntryRef::Child(page) => Entry::Child(page),
        }
    }
}

/// A key as an image stores it: the node's shared prefix, then the entry's own suffix.
/// Compares with a whole key without joining the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KeyRef<'a> {
    prefix: &'a [u8],
    suffix: &'a [u8],
}

impl<'a> KeyRef<'a> {
    /// A whole key, as a fragment holds it.
    pub(crate) fn whole(key: &'a [u8]) -> KeyRef<'a> {
        KeyRef { prefix: &[], suffix: key }
    }

    /// The key as two parts to join: the node's shared prefix and the rest.
    pub(crate) fn parts(self) -> (&'a [u8], &'a [u8]) {
        (self.prefix, self.suffix)
    }

    /// How this key orders against `other`.
    pub(crate) fn compare(self, other: &[u8]) -> Ordering {
        // Most keys have no prefix (random keys share none): one comparison, not two.
        if self.prefix.is_empty() {
            return order(self.suffix, other);
        }
        let (head, tail) = other.split_at(other.len().min(self.prefix.len()));
        // `head` is shorter than the prefix only when `other` is; the slice order then
        // already puts this (longer) key after it, unless they differ first.
        order(self.prefix, head).then_with(|| order(self.suffix, tail))
    }

    /// The whole key.
    pub(crate) fn to_vec(self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.len());
        key.extend_from_slice(self.prefix);
        key.extend_from_slice(self.suffix);
        key
    }

    /// The key's bytes from `n` on, as two slices to join (both empty past the end).
    fn tail(self, n: usize) -> (&'a [u8], &'a [u8]) {
        let (prefix, suffix) = (self.prefix.len(), self.suffix.len());
        (
            self.prefix.get(n.min(prefix)..).unwrap_or_default(),
            self.suffix.get(n.saturating_sub(prefix).min(suffix)..).unwrap_or_default(),
        )
    }

    /// The key's length in bytes.
    pub(crate) fn len(self) -> usize {
        self.prefix.len() + self.suffix.len()
    }

    /// Whether the key is the empty key.
    #[cfg_attr(not(test), expect(dead_code, reason = "the tests' and tools' view"))]
    pub(crate) fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A decoded node: its header and its entries, sorted by key, keys unique.
///
/// In a leaf (level 0) every entry is an [`Entry::Value`]; in an index node every entry is
/// an [`Entry::Child`], there is at least one, and the first key equals the low fence (entry
/// `i`'s key is the smallest key child `i` covers). Every key lies within the fences. The
/// tree keeps these invariants; [`Node::encode`] assumes them and the decoders check them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    /// Tree, level, fences and right sibling.
    pub(crate) header: Header,
    /// The entries, in key order.
    pub(crate) entries: Vec<(Vec<u8>, Entry)>,
}

impl Node {
    /// A node of tree `tree` at `level` with no entries, covering every key: the root of a
    /// new tree when `level` is 0. An index node must get an entry (whose key is the empty
    /// low fence) before it is encoded.
    pub(crate) fn empty(tree: TreeId, level: u8) -> Node {
        Node {
            header: Header { tree, level, low: Vec::new(), high: None, right: None },
            entries: Vec::new(),
        }
    }

    /// Whether the node is a leaf.
    pub(crate) fn is_leaf(&self) -> bool {
        self.header.level == 0
    }

    /// Whether `key` lies within the node's fences: `low <= key` and `key < high`.
    pub(crate) fn covers(&self, key: &[u8]) -> bool {
        covers(&self.header.low, self.header.high.as_deref(), key)
    }

    /// Decodes an image without fragments.
    ///
    /// # Errors
    /// [`Malformed`] if the bytes are not a node image (see the module docs for every check).
    #[cfg_attr(not(test), expect(dead_code, reason = "the tests' and tools' view"))]
    pub(crate) fn decode(image: &[u8]) -> Result<Node, Malformed> {
        NodeRef::parse(image)?.to_node()
    }

    /// The exact length of [`Node::encode`]'s output, computed without encoding.
    #[cfg_attr(not(test), expect(dead_code, reason = "writes rebuild nodes as drafts"))]
    pub(crate) fn encoded_len(&self) -> usize {
        image_len(&self.header, self.entry_refs())
    }

    /// The node's image.
    ///
    /// # Errors
    /// As [`encode_image`].
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        encode_image(&self.header, self.entry_refs())
    }

    /// The entries, borrowed: what the image encoder reads.
    fn entry_refs(&self) -> impl ExactSizeIterator<Item = (KeyRef<'_>, EntryRef<'_>)> + Clone {
        self.entries.iter().map(|(key, entry)| (KeyRef::whole(key), entry.as_ref()))
    }

    /// Decodes `base` and applies every op of `fragments` (oldest first) in order: the
    /// owned form of [`Draft::of_page`].
    ///
    /// # Errors
    /// As [`Draft::of_page`].
    pub(crate) fn materialize(base: &[u8], fragments: &[&[u8]]) -> Result<Node, Malformed> {
        Ok(Draft::of_page(base, fragments)?.to_node())
    }

    /// Applies one op to a leaf: a put inserts or overwrites, a remove deletes if present.
    /// The key should lie within the fences (the tree routes it here because it does).
    #[cfg_attr(not(test), expect(dead_code, reason = "writes rebuild leaves as drafts"))]
    pub(crate) fn apply(&mut self, op: &Op) {
        debug_assert!(self.is_leaf(), "ops apply to leaves");
        let at = self.entries.binary_search_by(|(key, _)| key.as_slice().cmp(op.key()));
        match (op, at) {
            (Op::Put { value, .. }, Ok(i)) => {
                if let Some((_, entry)) = self.entries.get_mut(i) {
                    *entry = Entry::Value(value.clone());
                }
            }
            (Op::Put { key, value }, Err(i)) => {
                self.entries.insert(i, (key.clone(), Entry::Value(value.clone())));
            }
            (Op::Remove { .. }, Ok(i)) => {
                self.entries.remove(i);
            }
            (Op::Remove { .. }, Err(_)) => {}
        }
    }

    /// In an index node, points the keys from `low` on at `child` (up to the next entry's
    /// key): inserts the entry, or replaces the child of an entry with that key. This is how
    /// a parent learns of a split child's new right half, whose low fence is `low`.
    #[cfg_attr(not(test), expect(dead_code, reason = "writes rebuild nodes as drafts"))]
    pub(crate) fn apply_child(&mut self, low: Vec<u8>, child: PageId) {
        debug_assert!(!self.is_leaf(), "children go in index nodes");
        match self.entries.binary_search_by(|(key, _)| key.cmp(&low)) {
            Ok(i) => {
                if let Some((_, entry)) = self.entries.get_mut(i) {
                    *entry = Entry::Child(child);
                }
            }
            Err(i) => self.entries.insert(i, (low, Entry::Child(child))),
        }
    }
}

/// A node image, checked once and then read in place: for the reads that must not decode
/// the whole node (a get, a descent through an index node).
///
/// [`NodeRef::parse`] checks everything the module docs list, so the accessors fail only if
/// asked for an entry past the end or for the wrong kind of entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    image: &'a [u8],
    tree: TreeId,
    level: u8,
    right: Option<PageId>,
    low: &'a [u8],
    high: Option<&'a [u8]>,
    /// The length of the prefix all keys share: `low[..prefix_len]`.
    prefix_len: usize,
    /// The entry count.
    len: usize,
    /// Where the entry offsets start.
    table: usize,
}

impl<'a> NodeRef<'a> {
    /// Checks `image` and returns a view of it. O(entries) with no allocation.
    ///
    /// # Errors
    /// [`Malformed`] if the bytes are not a node image exactly as [`Node::encode`] writes one.
    pub(crate) fn parse(image: &'a [u8]) -> Result<NodeRef<'a>, Malformed> {
        let node = NodeRef::parse_header(image)?;
        node.check_entries(|_, _| {})?;
        Ok(node)
    }

    /// As [`NodeRef::parse`], also returning every entry, in order: the checks and the
    /// decoding in one pass over the image, for the write paths that rebuild a node.
    ///
    /// # Errors
    /// As [`NodeRef::parse`].
    pub(crate) fn parse_entries(
        image: &'a [u8],
    ) -> Result<(NodeRef<'a>, Vec<(KeyRef<'a>, EntryRef<'a>)>), Malformed> {
        let node = NodeRef::parse_header(image)?;
        // `parse_header` checked that `len` slots fit in the image: the allocation is
        // bounded by its length.
        let mut entries = Vec::with_capacity(node.len);
        node.check_entries(|key, entry| entries.push((key, entry)))?;
        Ok((node, entries))
    }

    /// As [`NodeRef::parse`], but checks only the header and that the offset table fits:
    /// O(1), for the read path (a get, a descent), which reads two or three entries of
    /// images the log has just verified by checksum. Every accessor still checks the bytes
    /// it reads, so damage gives `Malformed` (or, for keys out of order, a search that
    /// misses), never a panic; [`NodeRef::parse`] and the integrity check catch the rest.
    pub(crate) fn parse_header(image: &'a [u8]) -> Result<NodeRef<'a>, Malformed> {
        // The fixed fields in one bounds check: a descent parses a header per node it passes.
        let Some(&fixed) = image.first_chunk::<HEADER_LEN>() else {
            return Err(match image.first() {
                Some(&tag) if tag != NODE_TAG => Malformed::new(0, not_a_node(tag)),
                _ => {
                    Malformed::new(0, format!("{} bytes, too short for a node header", image.len()))
                }
            });
        };
        let [tag, level, flags, reserved, c0, c1, c2, c3, words @ ..] = fixed;
        let [t0, t1, t2, t3, t4, t5, t6, t7, r0, r1, r2, r3, r4, r5, r6, r7] = words;
        if tag != NODE_TAG {
            return Err(Malformed::new(0, not_a_node(tag)));
        }
        if flags & !(FLAG_HIGH | FLAG_RIGHT) != 0 {
            return Err(Malformed::new(2, format!("unknown flags {flags:#04x}")));
        }
        if reserved != 0 {
            return Err(Malformed::new(3, format!("reserved byte is {reserved:#04x}, not 0")));
        }
        let count = u32::from_le_bytes([c0, c1, c2, c3]);
        let tree = TreeId(u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]));
        let mut reader = Reader { bytes: image, at: HEADER_LEN };
        let right =
            match (flags & FLAG_RIGHT != 0, u64::from_le_bytes([r0, r1, r2, r3, r4, r5, r6, r7])) {
                (true, page) => Some(PageId(page)),
                (false, 0) => None,
                (false, page) => {
                    return Err(Malformed::new(
                        16,
                        format!("right sibling {page} without its flag"),
                    ));
                }
            };
        let low = reader.bytes("low fence")?;
        let high_at = reader.at;
        let high = if flags & FLAG_HIGH != 0 { Some(reader.bytes("high fence")?) } else { None };
        if let Some(high) = high
            && order(high, low).is_le()
        {
            return Err(Malformed::new(high_at, "high fence not above the low fence"));
        }
        let prefix_at = reader.at;
        // A shared prefix is nearly always shorter than 128 bytes: one byte, read inline.
        let prefix = match image.get(prefix_at) {
            Some(&byte) if byte < 0x80 => {
                reader.at += 1;
                u64::from(byte)
            }
            _ => reader.varint()?,
        };
        let prefix_len = usize::try_from(prefix)
            .ok()
            .filter(|&p| is_prefix_len(low, high, p))
            .ok_or_else(|| {
                Malformed::new(
                    prefix_at,
                    format!(
                        "prefix length {prefix}, but the fences share {} bytes",
                        self::prefix_len(low, high)
                    ),
                )
            })?;
        let table = reader.at;
        let len = usize::try_from(count)
            .ok()
            .filter(|&n| n.checked_mul(SLOT_LEN).is_some_and(|bytes| bytes <= reader.left()))
            .ok_or_else(|| {
                Malformed::new(4, format!("{count} entries in {} bytes", reader.left()))
            })?;
        if level > 0 && len == 0 {
            return Err(Malformed::new(4, format!("index node (level {level}) without entries")));
        }
        Ok(NodeRef { image, tree, level, right, low, high, prefix_len, len, table })
    }

    /// Checks the offsets, that every entry decodes and ends where the next starts, and key
    /// order against each other and the fences; hands each entry to `each` once checked.
    fn check_entries(
        &self,
        mut each: impl FnMut(KeyRef<'a>, EntryRef<'a>),
    ) -> Result<(), Malformed> {
        // Every key starts with the prefix the fences share, so comparing suffixes with the
        // fences' rests is comparing keys with the fences.
        let low = self.low.get(self.prefix_len..).unwrap_or_default();
        let high = self.high.map(|high| high.get(self.prefix_len..).unwrap_or_default());
        let mut expected = self.table + SLOT_LEN * self.len;
        let mut previous: Option<&[u8]> = None;
        for i in 0..self.len {
            let slot = self.table + SLOT_LEN * i;
            let mut slot_reader = Reader { bytes: self.image, at: slot };
            let offset = slot_reader.u32()?;
            if usize::try_from(offset).ok() != Some(expected) {
                return Err(Malformed::new(
                    slot,
                    format!(
                        "entry {i} at offset {offset}, but the entry before it ends at {expected}"
                    ),
                ));
            }
            let head = slot_reader.array::<HEAD_LEN>()?;
            let mut reader = Reader { bytes: self.image, at: expected };
            let suffix = reader.bytes("key")?;
            let entry = self.entry_body(&mut reader)?;
            match previous {
                None if self.is_leaf() && suffix < low => {
                    return Err(Malformed::new(expected, "first key below the low fence"));
                }
                None if !self.is_leaf() && suffix != low => {
                    return Err(Malformed::new(
                        expected,
                        "index node's first key is not its low fence",
                    ));
                }
                Some(previous) if suffix <= previous => {
                    return Err(Malformed::new(
                        expected,
                        format!("key {i} not above key {}", i - 1),
                    ));
                }
                _ => {}
            }
            if i + 1 == self.len
                && let Some(high) = high
                && suffix >= high
            {
                return Err(Malformed::new(self.table, "last key not below the high fence"));
            }
            if head != key_head(suffix) {
                return Err(Malformed::new(
                    slot + OFFSET_LEN,
                    format!("entry {i}'s key head is not the start of its key"),
                ));
            }
            each(KeyRef { prefix: self.prefix(), suffix }, entry);
            previous = Some(suffix);
            expected = reader.at;
        }
        if expected != self.image.len() {
            return Err(Malformed::new(
                expected,
                format!("{} bytes after the last entry", self.image.len().saturating_sub(expected)),
            ));
        }
        Ok(())
    }

    /// The tree the node belongs to.
    pub(crate) fn tree(&self) -> TreeId {
        self.tree
    }

    /// 0 for a leaf.
    pub(crate) fn level(&self) -> u8 {
        self.level
    }

    /// Whether the node is a leaf.
    pub(crate) fn is_leaf(&self) -> bool {
        self.level == 0
    }

    /// The inclusive low fence.
    pub(crate) fn low(&self) -> &'a [u8] {
        self.low
    }

    /// The exclusive high fence; `None` is +infinity.
    pub(crate) fn high(&self) -> Option<&'a [u8]> {
        self.high
    }

    /// The right sibling.
    pub(crate) fn right(&self) -> Option<PageId> {
        self.right
    }

    /// The prefix every key of the node starts with, stored once.
    pub(crate) fn prefix(&self) -> &'a [u8] {
        self.low.get(..self.prefix_len).unwrap_or_default()
    }

    /// The owned header.
    pub(crate) fn header(&self) -> Header {
        Header {
            tree: self.tree,
            level: self.level,
            low: self.low.to_vec(),
            high: self.high.map(<[u8]>::to_vec),
            right: self.right,
        }
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the node has no entries (only a leaf can be empty).
    #[cfg_attr(not(test), expect(dead_code, reason = "the tests' and tools' view"))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `key` lies within the node's fences: `low <= key` and `key < high`.
    pub(crate) fn covers(&self, key: &[u8]) -> bool {
        covers(self.low, self.high, key)
    }

    /// The slot table, one array per entry: a search indexes it without working out and
    /// checking each slot's place in the image.
    fn slots(&self) -> Result<&'a [[u8; SLOT_LEN]], Malformed> {
        let end = SLOT_LEN.checked_mul(self.len).and_then(|bytes| bytes.checked_add(self.table));
        match end.and_then(|end| self.image.get(self.table..end)) {
            Some(table) => Ok(table.as_chunks::<SLOT_LEN>().0),
            None => Err(Malformed::new(self.table, format!("no room for {} slots", self.len))),
        }
    }

    /// The image offset of the entry a slot points at.
    fn offset_in(&self, slot: &[u8; SLOT_LEN]) -> Result<usize, Malformed> {
        let [o0, o1, o2, o3, ..] = *slot;
        let offset = u32::from_le_bytes([o0, o1, o2, o3]);
        usize::try_from(offset)
            .map_err(|_| Malformed::new(self.table, format!("offset {offset} past usize")))
    }

    /// Slot `i` of the table: entry `i`'s offset and key head.
    fn slot(&self, i: usize) -> Result<(usize, u32), Malformed> {
        // One slot's place, worked out directly: bounding the whole table with `slots` for
        // a single slot made a get take 4% more instructions.
        let at = self.table + SLOT_LEN * i;
        let slot = if i < self.len {
            self.image.get(at..).and_then(<[u8]>::first_chunk::<SLOT_LEN>)
        } else {
            None
        };
        let Some(slot) = slot else {
            return Err(Malformed::new(self.table, format!("no entry {i} of {}", self.len)));
        };
        let [.., h0, h1, h2, h3] = *slot;
        Ok((self.offset_in(slot)?, u32::from_be_bytes([h0, h1, h2, h3])))
    }

    /// The bytes the longest entry takes, its slot included: entries lie in slot order,
    /// each up to the next one's offset and the last up to the image's end.
    fn longest_entry(&self) -> Result<usize, Malformed> {
        // The table bounded once, and each offset read as the word it is: the merge check
        // of a batch of removes runs this for every leaf it shrinks.
        let mut longest = 0;
        let mut end = u64::try_from(self.image.len()).unwrap_or(u64::MAX);
        for &[o0, o1, o2, o3, ..] in self.slots()?.iter().rev() {
            let offset = u64::from(u32::from_le_bytes([o0, o1, o2, o3]));
            longest = longest.max(end.saturating_sub(offset));
            end = offset;
        }
        Ok(SLOT_LEN + usize::try_from(longest).unwrap_or(usize::MAX))
    }

    /// A leaf's entries `first..` in order: what a scan reads, the slot table bounded once
    /// rather than per entry, and each value read as a value (a leaf holds no children).
    /// A table that does not fit, or a node that is not a leaf, is one error, then nothing.
    pub(crate) fn values_from(
        &self,
        first: usize,
    ) -> impl Iterator<Item = Result<(KeyRef<'a>, ValueRef<'a>), Malformed>> + use<'a> {
        let node = *self;
        let (slots, failed) = match self.slots() {
            Ok(_) if !self.is_leaf() => (&[][..], Some(Err(self.not_a_leaf()))),
            Ok(slots) => (slots.get(first..).unwrap_or_default(), None),
            Err(malformed) => (&[][..], Some(Err(malformed))),
        };
        let prefix = node.prefix();
        failed.into_iter().chain(slots.iter().map(move |slot| {
            let mut reader = Reader { bytes: node.image, at: node.offset_in(slot)? };
            let suffix = reader.bytes("key")?;
            Ok((KeyRef { prefix, suffix }, reader.value()?))
        }))
    }

    /// The error for a leaf's read of a node that is not one.
    #[cold]
    fn not_a_leaf(&self) -> Malformed {
        Malformed::new(1, format!("level {}: not a leaf", self.level()))
    }

    /// A reader at entry `i`.
    fn entry_reader(&self, i: usize) -> Result<Reader<'a>, Malformed> {
        let (at, _) = self.slot(i)?;
        Ok(Reader { bytes: self.image, at })
    }

    /// Reads what follows an entry's key.
    fn entry_body(&self, reader: &mut Reader<'a>) -> Result<EntryRef<'a>, Malformed> {
        if self.is_leaf() {
            Ok(EntryRef::Value(reader.value()?))
        } else {
            Ok(EntryRef::Child(PageId(reader.u64()?)))
        }
    }

    /// Entry `i`'s key suffix.
    fn suffix(&self, i: usize) -> Result<&'a [u8], Malformed> {
        self.entry_reader(i)?.bytes("key")
    }

    /// Entry `i`'s key.
    ///
    /// # Errors
    /// If there is no entry `i`.
    pub(crate) fn key(&self, i: usize) -> Result<KeyRef<'a>, Malformed> {
        Ok(KeyRef { prefix: self.prefix(), suffix: self.suffix(i)? })
    }

    /// Entry `i`: its key and what it maps to.
    ///
    /// # Errors
    /// If there is no entry `i`.
    pub(crate) fn entry(&self, i: usize) -> Result<(KeyRef<'a>, EntryRef<'a>), Malformed> {
        let mut reader = self.entry_reader(i)?;
        let suffix = reader.bytes("key")?;
        Ok((KeyRef { prefix: self.prefix(), suffix }, self.entry_body(&mut reader)?))
    }

    /// Entry `i`'s value, in a leaf.
    ///
    /// # Errors
    /// If there is no entry `i`, or the node is an index node.
    pub(crate) fn value(&self, i: usize) -> Result<ValueRef<'a>, Malformed> {
        if !self.is_leaf() {
            return Err(self.not_a(i, "leaf"));
        }
        self.after_key(i)?.value()
    }

    /// Entry `i`'s child, in an index node.
    ///
    /// # Errors
    /// If there is no entry `i`, or the node is a leaf.
    pub(crate) fn child(&self, i: usize) -> Result<PageId, Malformed> {
        if self.is_leaf() {
            return Err(self.not_a(i, "index node"));
        }
        Ok(PageId(self.after_key(i)?.u64()?))
    }

    /// A reader just past entry `i`'s key: what [`NodeRef::value`] and [`NodeRef::child`]
    /// read, without the key they do not need.
    fn after_key(&self, i: usize) -> Result<Reader<'a>, Malformed> {
        let mut reader = self.entry_reader(i)?;
        reader.bytes("key")?;
        Ok(reader)
    }

    #[cold]
    fn not_a(&self, i: usize, what: &str) -> Malformed {
        Malformed::new(1, format!("entry {i}: level {} is not a {what}", self.level))
    }

    /// Binary search for `key`, as [`slice::binary_search`]: `Ok(i)` if entry `i` has the
    /// key, else `Err(i)` with `i` where it would be inserted. Allocates nothing: the key is
    /// compared with the shared prefix once, then with suffixes.
    ///
    /// # Errors
    /// Only if the image changed under a parsed view, which it cannot; kept so that no read
    /// of an image can panic.
    pub(crate) fn search(&self, key: &[u8]) -> Result<Result<usize, usize>, Malformed> {
        let prefix = self.prefix();
        let rest = match key.split_at_checked(prefix.len()) {
            Some((head, rest)) if same(head, prefix) => Some(rest),
            _ => None,
        };
        let Some(rest) = rest else {
            // Every key here starts with the prefix; a key that does not sorts before all of
            // them or after all of them.
            return Ok(Err(if key < prefix { 0 } else { self.len }));
        };
        let head = u32::from_be_bytes(key_head(rest));
        let slots = self.slots()?;
        let (mut low, mut high) = (0, slots.len());
        while low < high {
            let mid = low + (high - low) / 2;
            let Some(slot) = slots.get(mid) else {
                return Err(Malformed::new(self.table, format!("no entry {mid} of {}", self.len)));
            };
            let [.., h0, h1, h2, h3] = *slot;
            // Heads order keys wherever they differ (see the module's notes); equal heads
            // need the suffix.
            let order = match u32::from_be_bytes([h0, h1, h2, h3]).cmp(&head) {
                Ordering::Equal => {
                    let at = self.offset_in(slot)?;
                    Reader { bytes: self.image, at }.bytes("key")?.cmp(rest)
                }
                order => order,
            };
            match order {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(low))
    }

    /// In an index node, the child whose range holds `key`: the last entry whose key is at
    /// most `key`. Check [`NodeRef::covers`] first: for a key at or past the high fence this
    /// is the last child (the key belongs to a right sibling), and for a key below the low
    /// fence it is the first.
    ///
    /// # Errors
    /// If the node is a leaf.
    pub(crate) fn child_for(&self, key: &[u8]) -> Result<PageId, Malformed> {
        if self.is_leaf() {
            return Err(Malformed::new(1, "a leaf has no children"));
        }
        let i = match self.search(key)? {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        self.child(i)
    }

    /// The owned node.
    ///
    /// # Errors
    /// Only if the image changed under a parsed view, which it cannot.
    pub(crate) fn to_node(self) -> Result<Node, Malformed> {
        // `len` was checked against the image's length, so this allocation is bounded by it.
        let mut entries = Vec::with_capacity(self.len);
        for i in 0..self.len {
            let (key, entry) = self.entry(i)?;
            entries.push((key.to_vec(), entry.to_entry()));
        }
        Ok(Node { header: self.header(), entries })
    }
}

/// A fragment holding `ops`, in order.
///
/// `ops` should not be empty: a fragment holds at least one op, and decoders reject an empty
/// one.
#[cfg_attr(not(test), expect(dead_code, reason = "plans build fragments op by op"))]
pub(crate) fn encode_fragment(ops: &[Op]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut fragment = FragmentBuilder::begin(&mut buf);
    for op in ops {
        match op {
            Op::Put { key, value } => fragment.put(&mut buf, key, value.as_ref()),
            Op::Remove { key } => fragment.remove(&mut buf, key),
        }
    }
    let end = buf.len();
    let range = fragment.finish(&mut buf, end);
    buf.get(range).unwrap_or_default().to_vec()
}

/// A fragment written op by op, each op encoded as it comes: what a plan builds for each
/// leaf it changes, with no owned [`Op`] (and no copy of the key and value) per write.
///
/// The builder writes into a buffer it does not own, from where it began to the buffer's
/// end: a plan writes every leaf's fragment into one buffer, one after another (a batch's
/// writes come in key order, so a leaf's ops come together), rather than allocate one per
/// leaf. The ops go after room for the longest header, so that
/// [`FragmentBuilder::finish`] writes the header in place and nothing moves.
#[derive(Debug)]
pub(crate) struct FragmentBuilder {
    /// Where its `HEADER_ROOM` bytes begin in the buffer; the ops follow them.
    start: usize,
    count: usize,
}

/// The longest fragment header: the tag and a varint of at most 10 bytes.
const HEADER_ROOM: usize = 11;

impl FragmentBuilder {
    /// Begins a fragment at the end of `buf`.
    pub(crate) fn begin(buf: &mut Vec<u8>) -> FragmentBuilder {
        let start = buf.len();
        buf.resize(start + HEADER_ROOM, 0);
        FragmentBuilder { start, count: 0 }
    }

    /// Where the fragment's bytes begin in the buffer (its header room).
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// Adds setting `key` to `value`, at the end of `buf` (which must end with this
    /// fragment's ops).
    pub(crate) fn put(&mut self, buf: &mut Vec<u8>, key: &[u8], value: ValueRef<'_>) {
        buf.reserve(1 + bytes_len(key) + value.encoded_len());
        buf.push(OP_PUT);
        put_bytes(buf, key);
        value.encode_into(buf);
        self.count += 1;
    }

    /// Adds removing `key`, as [`FragmentBuilder::put`] adds a put.
    pub(crate) fn remove(&mut self, buf: &mut Vec<u8>, key: &[u8]) {
        buf.reserve(1 + bytes_len(key));
        buf.push(OP_REMOVE);
        put_bytes(buf, key);
        self.count += 1;
    }

    /// Writes the fragment's header, and returns where the fragment lies in `buf`, its ops
    /// ending at `end`. It should hold an op: decoders reject an empty fragment.
    pub(crate) fn finish(&self, buf: &mut [u8], end: usize) -> Range<usize> {
        debug_assert!(self.count > 0, "an empty fragment");
        let (varint, varint_len) = varint::encode(to_u64(self.count));
        // A varint is at most 10 bytes, so the header fits in the room kept for it.
        let first = self.start + HEADER_ROOM - 1 - varint_len;
        if let Some(header) = buf.get_mut(first..self.start + HEADER_ROOM) {
            let (tag, rest) = header.split_at_mut(1);
            tag.copy_from_slice(&[FRAGMENT_TAG]);
            rest.copy_from_slice(varint.get(..varint_len).unwrap_or_default());
        }
        first..end
    }
}

/// The ops of a fragment, in order.
///
/// # Errors
/// [`Malformed`] if the bytes are not a fragment exactly as [`encode_fragment`] writes one.
#[cfg_attr(not(test), expect(dead_code, reason = "the tests' and tools' view"))]
pub(crate) fn decode_fragment(fragment: &[u8]) -> Result<Vec<Op>, Malformed> {
    let mut ops = Vec::new();
    scan_fragment(fragment, |_, op| {
        ops.push(op.to_op());
        Ok(())
    })?;
    Ok(ops)
}

/// The value the last op on `key` in `fragment` leaves: `Some(Some(value))` for a put,
/// `Some(None)` if it is a remove, `None` if no op names the key. Allocates only the value
/// found.
///
/// # Errors
/// [`Malformed`] if the bytes are not a fragment (all of it is checked, not only up to the
/// key).
#[cfg(test)]
pub(crate) fn fragment_lookup(
    fragment: &[u8],
    key: &[u8],
) -> Result<Option<Option<Value>>, Malformed> {
    Ok(fragment_lookup_ref(fragment, key)?.map(|value| value.map(ValueRef::to_value)))
}

/// As `fragment_lookup`, borrowing the value from the fragment.
fn fragment_lookup_ref<'a>(
    fragment: &'a [u8],
    key: &[u8],
) -> Result<Option<Option<ValueRef<'a>>>, Malformed> {
    let mut found = None;
    scan_fragment(fragment, |_, op| {
        if op.key == key {
            found = Some(op.value);
        }
        Ok(())
    })?;
    Ok(found)
}

/// The value of `key` in the leaf made of `base` and `fragments` (oldest first), without
/// materializing it: the newest fragment that names the key answers, else a binary search
/// of the base does. A fragment's answer is returned without reading the base.
///
/// # Errors
/// [`Malformed`] if a fragment read is malformed, or the base is when it is read (or is not
/// a leaf). An error in a fragment names it.
#[cfg(test)]
pub(crate) fn leaf_lookup(
    base: &[u8],
    fragments: &[&[u8]],
    key: &[u8],
) -> Result<Option<Value>, Malformed> {
    let node = NodeRef::parse_header(base)?;
    Ok(leaf_lookup_parsed(&node, fragments.iter().copied(), key)?.map(ValueRef::to_value))
}

/// The value of `key` in the leaf made of `node` (its header parsed already, by the descent
/// that found it) and `fragments` (oldest first), as `leaf_lookup` finds it, borrowed from
/// the base or fragment that holds it: the read path of a get allocates nothing until it
/// copies the value out.
///
/// # Errors
/// As `leaf_lookup`.
pub(crate) fn leaf_lookup_parsed<'a>(
    node: &NodeRef<'a>,
    fragments: impl DoubleEndedIterator<Item = &'a [u8]> + ExactSizeIterator,
    key: &[u8],
) -> Result<Option<ValueRef<'a>>, Malformed> {
    for (index, fragment) in fragments.enumerate().rev() {
        if let Some(found) = fragment_lookup_ref(fragment, key).map_err(|e| e.in_fragment(index))? {
            return Ok(found);
        }
    }
    if !node.is_leaf() {
        return Err(node.not_a_leaf());
    }
    match node.search(key)? {
        Ok(i) => Ok(Some(node.value(i)?)),
        Err(_) => Ok(None),
    }
}

/// The entries of the leaf made of `base` and `fragments` (oldest first) whose keys are at
/// least `from`, in key order, borrowed from the page: what a range scan reads, without
/// materializing the leaf (no allocation per entry). The fragments' ops are gathered in one
/// ordered overlay, as [`Node::materialize`] does, and merged with the base's entries from
/// the first one at or after `from`.
///
/// # Errors
/// [`Malformed`] if the base is not a leaf, a fragment is malformed, or an op lies outside
/// the fences. As on the get path, the base's entries are checked as they are read.
pub(crate) fn leaf_entries<'a>(
    base: &'a [u8],
    fragments: impl Iterator<Item = &'a [u8]>,
    from: &[u8],
) -> Result<Vec<(KeyRef<'a>, ValueRef<'a>)>, Malformed> {
    leaf_entries_as(base, fragments, from, |key, value| (key, value))
}

/// As [`leaf_entries`], each entry made into a `T` by `make` as it is found (a draft's
/// entries, say), so that no second vector is built to convert them.
pub(crate) fn leaf_entries_as<'a, T>(
    base: &'a [u8],
    fragments: impl Iterator<Item = &'a [u8]>,
    from: &[u8],
    make: impl Fn(KeyRef<'a>, ValueRef<'a>) -> T,
) -> Result<Vec<T>, Malformed> {
    let (node, overlay, first) = leaf_from(base, fragments, from)?;
    let base_entries = node.values_from(first);
    merge_overlay(base_entries, node.len().saturating_sub(first), overlay, make)
}

/// As [`leaf_entries`], handing each entry to `each` in key order until it breaks, with
/// nothing collected and no entry decoded after the break: the break's value, or `None`
/// if every entry was handed over.
///
/// # Errors
/// As [`leaf_entries`], for the entries read before the break.
pub(crate) fn leaf_entries_each<'a, B>(
    node: &NodeRef<'a>,
    fragments: impl Iterator<Item = &'a [u8]>,
    from: &[u8],
    each: impl FnMut(KeyRef<'a>, ValueRef<'a>) -> ControlFlow<B>,
) -> Result<Option<B>, Malformed> {
    let (overlay, first) = leaf_start(node, fragments, from)?;
    merge_overlay_each(node.values_from(first), overlay, each)
}

/// A leaf's node, its fragments' changes from `from` on, and the index of its first entry
/// at or after `from`: where [`leaf_entries_as`] and [`leaf_entries_each`] start.
fn leaf_from<'a>(
    base: &'a [u8],
    fragments: impl Iterator<Item = &'a [u8]>,
    from: &[u8],
) -> Result<(NodeRef<'a>, Vec<Change<'a>>, usize), Malformed> {
    let node = NodeRef::parse_header(base)?;
    let (overlay, first) = leaf_start(&node, fragments, from)?;
    Ok((node, overlay, first))
}

/// As [`leaf_from`], for a leaf whose header is parsed already.
fn leaf_start<'a>(
    node: &NodeRef<'a>,
    fragments: impl Iterator<Item = &'a [u8]>,
    from: &[u8],
) -> Result<(Vec<Change<'a>>, usize), Malformed> {
    let overlay = overlay(node, fragments, from)?;
    let first = match node.search(from)? {
        Ok(i) | Err(i) => i,
    };
    Ok((overlay, first))
}

/// The entries of a leaf (`node`, its `entries` decoded and checked already, as
/// [`NodeRef::parse_entries`] returns them) with `fragments` applied: what a draft of a
/// leaf with fragments is made of, without decoding the base twice.
///
/// # Errors
/// As [`leaf_entries`].
pub(crate) fn apply_fragments<'a>(
    node: &NodeRef<'a>,
    entries: Vec<(KeyRef<'a>, EntryRef<'a>)>,
    fragments: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<(KeyRef<'a>, EntryRef<'a>)>, Malformed> {
    let overlay = overlay(node, fragments, &[])?;
    let len = entries.len();
    let base_entries = entries.into_iter().enumerate().map(|(i, (key, entry))| match entry {
        EntryRef::Value(value) => Ok((key, value)),
        EntryRef::Child(_) => Err(Malformed::new(1, format!("entry {i} of a leaf is a child"))),
    });
    merge_overlay(base_entries, len, overlay, |key, value| (key, EntryRef::Value(value)))
}

/// Merges a leaf's base entries (`len` of them, in key order) with the
/// `overlay` of its fragments' changes, each entry made a `T` by `make`.
fn merge_overlay<'a, T>(
    base: impl Iterator<Item = Result<(KeyRef<'a>, ValueRef<'a>), Malformed>>,
    len: usize,
    overlay: Vec<Change<'a>>,
    make: impl Fn(KeyRef<'a>, ValueRef<'a>) -> T,
) -> Result<Vec<T>, Malformed> {
    let mut entries = Vec::with_capacity(len + overlay.len());
    merge_overlay_each(base, overlay, |key, value| -> ControlFlow<std::convert::Infallible> {
        entries.push(make(key, value));
        ControlFlow::Continue(())
    })?;
    Ok(entries)
}

/// As [`merge_overlay`], handing each entry to `each` in key order until it breaks: the
/// break's value, or `None` if every entry was handed over.
fn merge_overlay_each<'a, B>(
    base: impl Iterator<Item = Result<(KeyRef<'a>, ValueRef<'a>), Malformed>>,
    overlay: Vec<Change<'a>>,
    mut each: impl FnMut(KeyRef<'a>, ValueRef<'a>) -> ControlFlow<B>,
) -> Result<Option<B>, Malformed> {
    let mut changes = overlay.into_iter().peekable();
    // A change that removes the key hands over nothing.
    let mut hand = |key: KeyRef<'a>, value: Option<ValueRef<'a>>| match value {
        Some(value) => each(key, value),
        None => ControlFlow::Continue(()),
    };
    for found in base {
        let (key, value) = found?;
        // The changes to keys before this one go first, and one to this key replaces it:
        // one comparison per change and per entry, not two.
        let mut order = Ordering::Less;
        while let Some(&(changed, changed_value)) = changes.peek() {
            order = key.compare(changed);
            if order != Ordering::Greater {
                break;
            }
            if let ControlFlow::Break(stop) = hand(KeyRef::whole(changed), changed_value) {
                return Ok(Some(stop));
            }
            changes.next();
        }
        let flow = match changes.next_if(|_| order == Ordering::Equal) {
            Some((changed, changed_value)) => hand(KeyRef::whole(changed), changed_value),
            None => hand(key, Some(value)),
        };
        if let ControlFlow::Break(stop) = flow {
            return Ok(Some(stop));
        }
    }
    for (changed, value) in changes {
        if let ControlFlow::Break(stop) = hand(KeyRef::whole(changed), value) {
            return Ok(Some(stop));
        }
    }
    Ok(None)
}

/// The exact length of the image that `base` with `fragments` (oldest first) materializes
/// to, without materializing it: the base's length, plus what the newest op on each key
/// adds and takes away. Merging asks this of every leaf a remove shrank.
///
/// # Errors
/// As [`leaf_entries`].
pub(crate) fn leaf_len<'a>(
    base: &'a [u8],
    fragments: impl Iterator<Item = &'a [u8]>,
) -> Result<usize, Malformed> {
    let node = NodeRef::parse_header(base)?;
    let prefix = node.prefix().len();
    let (mut added, mut removed) = (0, 0);
    for (key, value) in overlay(&node, fragments, &[])? {
        if let Ok(i) = node.search(key)? {
            let (old, entry) = node.entry(i)?;
            removed += entry_len(old.len().saturating_sub(prefix), entry);
        }
        if let Some(value) = value {
            added += entry_len(key.len().saturating_sub(prefix), EntryRef::Value(value));
        }
    }
    Ok((base.len() + added).saturating_sub(removed))
}

/// A lower bound on [`leaf_len`] that reads only the base's slot table and each fragment's
/// op count: an op takes at most one entry out of the base (what a put brings back only
/// adds), and none is longer than the base's longest. Most leaves a remove shrank are far
/// from small enough to merge, and this shows it for a tenth of the exact length's cost.
///
/// # Errors
/// [`Malformed`] if the base's header or slot table, or a fragment's header, is.
pub(crate) fn leaf_len_at_least<'a>(
    base: &'a [u8],
    fragments: impl Iterator<Item = &'a [u8]>,
) -> Result<usize, Malformed> {
    leaf_len_at_least_of(&NodeRef::parse_header(base)?, fragments)
}

/// [`leaf_len_at_least`] of a base whose header is parsed already.
///
/// # Errors
/// As [`leaf_len_at_least`].
pub(crate) fn leaf_len_at_least_of<'a>(
    node: &NodeRef<'_>,
    fragments: impl Iterator<Item = &'a [u8]>,
) -> Result<usize, Malformed> {
    let mut ops = 0usize;
    for fragment in fragments {
        ops = ops.saturating_add(fragment_header(&mut Reader { bytes: fragment, at: 0 })?);
    }
    Ok(node.image.len().saturating_sub(ops.saturating_mul(node.longest_entry()?)))
}

/// An upper bound on the bytes that a leaf entry for a key of `key_len` bytes holding a
/// value of `value_len` bytes takes in an image, its slot included: exact for an inline
/// value in a node without a shared key prefix; an entry whose value is stored out of line
/// only names the value's page, and takes less.
pub(crate) fn entry_len_at_most(key_len: usize, value_len: usize) -> usize {
    SLOT_LEN
        + varint::len(to_u64(key_len))
        + key_len
        + 1
        + varint::len(to_u64(value_len))
        + value_len
}

/// A key and what the newest op on it leaves: a value, or `None` for a remove.
type Change<'a> = (&'a [u8], Option<ValueRef<'a>>);

/// The ops of a leaf's `fragments` (oldest first) on keys from `from` on, in key order, the
/// newest op on each key only (`None` removes it).
///
/// # Errors
/// [`Malformed`] if `node` is not a leaf, a fragment is malformed, or an op lies outside
/// the fences.
fn overlay<'a>(
    node: &NodeRef<'a>,
    fragments: impl Iterator<Item = &'a [u8]>,
    from: &[u8],
) -> Result<Vec<Change<'a>>, Malformed> {
    if !node.is_leaf() {
        return Err(node.not_a_leaf());
    }
    // Under random writes a fragment holds an op or two; a batch's may hold more (then the
    // vector grows).
    let mut overlay = Vec::with_capacity(2 * fragments.size_hint().0);
    for (index, fragment) in fragments.enumerate() {
        scan_fragment(fragment, |at, op| {
            if !node.covers(op.key) {
                return Err(Malformed::new(at, "an op on a key outside the leaf's fences"));
            }
            if op.key >= from {
                overlay.push((op.key, op.value));
            }
            Ok(())
        })
        .map_err(|error| error.in_fragment(index))?;
    }
    // Newest first, a stable sort by key, then the first of each key's run.
    overlay.reverse();
    overlay.sort_by(|a, b| a.0.cmp(b.0));
    overlay.dedup_by(|later, first| later.0 == first.0);
    Ok(overlay)
}

/// The tree's [`Materializer`]: decodes a leaf, applies its fragments and encodes the result.
///
/// If the base or a fragment is malformed, `merge` returns the base unchanged. The page cache
/// calls it only on images it wrote or read back with their checksums verified, so damage
/// here is a bug, not the disk; and `merge` cannot fail. Returning the base drops nothing
/// silently for good: the tree decodes the page itself on every read and reports the damage
/// as corruption naming the page. The law (associativity over fragment runs) holds for
/// well-formed pages, since the encoding is canonical and applying ops in order is
/// associative.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TreeMaterializer;

impl Materializer for TreeMaterializer {
    fn merge(&self, base: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
        spliced(base, fragments).ok().flatten().unwrap_or_else(|| base.to_vec())
    }

    fn summarize(&self, fragment: &[u8]) -> u64 {
        fragment_filter(fragment)
    }
}

/// A piece of a spliced node: a run of the base's entries (indexes), or a new entry (its
/// key suffix and what it maps to).
enum Piece<'a> {
    Run(Range<usize>),
    New(&'a [u8], EntryRef<'a>),
}

/// The image of leaf `base` with `fragments` (oldest first) applied, as [`splice`] makes
/// it: what consolidation writes. `None` if the image would pass 4 GiB.
///
/// # Errors
/// As [`splice`]; [`Malformed`] too if `base` is not a leaf, a fragment is malformed, or an
/// op lies outside the fences.
pub(crate) fn spliced(base: &[u8], fragments: &[&[u8]]) -> Result<Option<Vec<u8>>, Malformed> {
    let node = NodeRef::parse_header(base)?;
    let overlay = overlay(&node, fragments.iter().copied(), &[])?;
    splice(&node, overlay.into_iter().map(|(key, value)| (key, value.map(EntryRef::Value))))
}

/// `node`'s image with `changes` made: each a whole key (within the fences, in increasing
/// order) and what it maps to now (an entry of the node's kind), or `None` to remove it.
/// Byte for byte what decoding the node and encoding the result gives, but made by
/// splicing: the fences stay, hence the header and the shared prefix, so every entry no
/// change names is copied as it lies, a run of them with one copy, and only its slot's
/// offset changes. Each change's place comes from a search, not from decoding every entry:
/// a consolidation merges a handful of ops into dozens of entries, a split adds one or two
/// children to hundreds. `None` if the image would pass 4 GiB.
///
/// The header and the slot table are checked as they are read; the entries copied whole
/// are not decoded (the reads that use them check them), so damage there carries into the
/// new image rather than being caught here.
///
/// # Errors
/// [`Malformed`] if the slots are out of order or out of bounds, or the changes' keys, as
/// the node orders them, are.
pub(crate) fn splice<'a>(
    node: &NodeRef<'a>,
    changes: impl Iterator<Item = (&'a [u8], Option<EntryRef<'a>>)>,
) -> Result<Option<Vec<u8>>, Malformed> {
    let base = node.image;
    let slots = node.slots()?;
    // Entry i lies from its offset to the next entry's (the last to the image's end): the
    // offsets must climb from the end of the table.
    let entries_at = node.table + SLOT_LEN * node.len;
    let mut end = entries_at;
    for slot in slots {
        let offset = node.offset_in(slot)?;
        if offset < end || offset > base.len() {
            return Err(Malformed::new(node.table, format!("entry offset {offset} out of order")));
        }
        end = offset;
    }
    let offset_of = |i: usize| match slots.get(i) {
        Some(slot) => node.offset_in(slot),
        None => Ok(base.len()),
    };

    // The pieces in key order, and the entry count and image length they make.
    let prefix = node.prefix_len;
    // At most a run before each change, the change, and a last run.
    let mut pieces = Vec::with_capacity(2 * changes.size_hint().0 + 1);
    let (mut next, mut count, mut len) = (0, 0, node.table);
    let mut previous: Option<&[u8]> = None;
    for change in changes.map(Some).chain([None]) {
        if let Some((key, _)) = change {
            if previous.is_some_and(|previous| previous >= key) {
                return Err(Malformed::new(node.table, "the changes' keys are out of order"));
            }
            previous = Some(key);
        }
        // The base's entries before this change's key (all that are left, after the last
        // change), then the entry it replaces, skipped.
        let (at, replaces) = match change {
            Some((key, _)) => match node.search(key)? {
                Ok(i) => (i, true),
                Err(i) => (i, false),
            },
            None => (node.len, false),
        };
        if at < next {
            return Err(Malformed::new(node.table, "the changes' keys are out of order"));
        }
        if at > next {
            len += offset_of(at)?.saturating_sub(offset_of(next)?) + SLOT_LEN * (at - next);
            count += at - next;
            pieces.push(Piece::Run(next..at));
        }
        next = at + usize::from(replaces);
        if let Some((key, Some(entry))) = change {
            debug_assert_eq!(matches!(entry, EntryRef::Value(_)), node.is_leaf(), "entry kind");
            let suffix = key.get(prefix..).unwrap_or_default();
            len += entry_len(suffix.len(), entry);
            count += 1;
            pieces.push(Piece::New(suffix, entry));
        }
    }
    let (Ok(_), Ok(count_field)) = (u32::try_from(len), u32::try_from(count)) else {
        return Ok(None);
    };

    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(base.get(..node.table).unwrap_or_default());
    if let Some(field) = out.get_mut(4..8) {
        field.copy_from_slice(&count_field.to_le_bytes());
    }
    let mut slot_at = out.len();
    out.resize(slot_at + SLOT_LEN * count, 0);
    // Every offset written is below `len`, which fits in a u32.
    let mut put_slot = |out: &mut Vec<u8>, offset: usize, head: [u8; HEAD_LEN]| {
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        if let Some(at) = out.get_mut(slot_at..slot_at + SLOT_LEN) {
            at.copy_from_slice(&slot(offset, head));
        }
        slot_at += SLOT_LEN;
    };
    for piece in pieces {
        match piece {
            Piece::Run(run) => {
                let (from, to) = (offset_of(run.start)?, offset_of(run.end)?);
                let moved_to = out.len();
                for slot in slots.get(run).unwrap_or_default() {
                    let [.., h0, h1, h2, h3] = *slot;
                    let offset = node.offset_in(slot)?.saturating_sub(from) + moved_to;
                    put_slot(&mut out, offset, [h0, h1, h2, h3]);
                }
                out.extend_from_slice(base.get(from..to).unwrap_or_default());
            }
            Piece::New(suffix, entry) => {
                let offset = out.len();
                put_slot(&mut out, offset, padded(suffix));
                put_bytes(&mut out, suffix);
                match entry {
                    EntryRef::Value(value) => value.encode_into(&mut out),
                    EntryRef::Child(page) => out.extend_from_slice(&page.get().to_le_bytes()),
                }
            }
        }
    }
    debug_assert_eq!(out.len(), len, "the spliced image's length");
    Ok(Some(out))
}

/// The key filter of `fragment` (see `filter.rs`): the bits of every key its ops name. A
/// malformed fragment gets every bit, so that each read still scans it and reports it.
pub(crate) fn fragment_filter(fragment: &[u8]) -> u64 {
    let mut bits = 0;
    let scanned = scan_fragment(fragment, |_, op| {
        bits |= filter::key_bits(op.key);
        Ok(())
    });
    if scanned.is_ok() { bits } else { u64::MAX }
}

/// Reads each op of `fragment` and hands it to `each` with its offset; checks the whole
/// fragment, including that nothing follows the last op.
fn scan_fragment<'a>(
    fragment: &'a [u8],
    mut each: impl FnMut(usize, OpRef<'a>) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    let mut reader = Reader { bytes: fragment, at: 0 };
    let count = fragment_header(&mut reader)?;
    for _ in 0..count {
        let at = reader.at;
        let op = reader.u8()?;
        let key = reader.bytes("key")?;
        let value = match op {
            OP_PUT => Some(reader.value()?),
            OP_REMOVE => None,
            _ => return Err(Malformed::new(at, format!("unknown op {op:#04x}"))),
        };
        each(at, OpRef { key, value })?;
    }
    if reader.left() != 0 {
        return Err(Malformed::new(
            reader.at,
            format!("{} bytes after the last op", reader.left()),
        ));
    }
    Ok(())
}

/// Reads a fragment's tag and op count, leaving `reader` at its first op.
fn fragment_header(reader: &mut Reader<'_>) -> Result<usize, Malformed> {
    let tag = reader.u8()?;
    if tag != FRAGMENT_TAG {
        return Err(Malformed::new(
            0,
            format!("format tag {tag:#04x}, not a fragment ({FRAGMENT_TAG})"),
        ));
    }
    let count_at = reader.at;
    let count = reader.varint()?;
    usize::try_from(count)
        .ok()
        .filter(|&n| n >= 1 && n <= reader.left() / MIN_OP_LEN)
        .ok_or_else(|| Malformed::new(count_at, format!("{count} ops in {} bytes", reader.left())))
}

/// A cursor over an image or fragment; every read is checked.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    /// The next `len` bytes.
    fn take(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        let taken = self.at.checked_add(len).and_then(|end| self.bytes.get(self.at..end));
        let Some(taken) = taken else {
            return Err(Malformed::new(
                self.at,
                format!("{len} bytes wanted, {} left", self.left()),
            ));
        };
        self.at += len;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let at = self.at;
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| Malformed::new(at, "short read"))
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        varint::get(self.bytes, &mut self.at)
            .map_err(|(offset, reason)| Malformed { offset, reason })
    }

    /// A varint length, then that many bytes.
    // Every key and value read goes through here, and nearly every length fits in one or
    // two bytes (below 16 KiB): those cases are inline; longer lengths, lengths not in
    // their shortest form, and every error take the general path.
    #[inline]
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        let (len, width) = match self.bytes.get(self.at..) {
            Some(&[first, ..]) if first < 0x80 => (usize::from(first), 1),
            Some(&[first, second, ..]) if (1..0x80).contains(&second) => {
                (usize::from(first & 0x7f) | usize::from(second) << 7, 2)
            }
            _ => return self.long_bytes(what),
        };
        let start = self.at + width;
        match self.bytes.get(start..start + len) {
            Some(bytes) => {
                self.at = start + len;
                Ok(bytes)
            }
            None => self.long_bytes(what),
        }
    }

    /// [`Reader::bytes`] for lengths of more than one byte, and its errors.
    #[inline(never)]
    fn long_bytes(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        let at = self.at;
        let len = self.varint()?;
        match usize::try_from(len) {
            Ok(len) if len <= self.left() => self.take(len),
            _ => Err(Malformed::new(at, format!("{what} of {len} bytes, {} left", self.left()))),
        }
    }

    /// A value: its tag, then its fields.
    // Every scan reads a value per entry, and nearly all are inline: that case is inline
    // here, the rest (and every error) out of line.
    #[inline]
    fn value(&mut self) -> Result<ValueRef<'a>, Malformed> {
        if self.bytes.get(self.at) == Some(&VALUE_INLINE) {
            self.at += 1;
            return Ok(ValueRef::Inline(self.bytes("value")?));
        }
        self.other_value()
    }

    /// [`Reader::value`] for values stored out of line, and its errors.
    #[inline(never)]
    fn other_value(&mut self) -> Result<ValueRef<'a>, Malformed> {
        let at = self.at;
        let Some(&tag) = self.bytes.get(at) else {
            return Err(Malformed::new(at, "1 bytes wanted, 0 left"));
        };
        self.at += 1;
        match tag {
            VALUE_INLINE => Ok(ValueRef::Inline(self.bytes("value")?)),
            VALUE_BLOB => Ok(ValueRef::Blob { page: PageId(self.u64()?), len: self.u64()? }),
            tag => Err(Malformed::new(at, format!("unknown value tag {tag:#04x}"))),
        }
    }
}

/// Whether `key` lies in `[low, high)`, with `None` for +infinity.
fn covers(low: &[u8], high: Option<&[u8]>, key: &[u8]) -> bool {
    order(low, key).is_le() && high.is_none_or(|high| order(key, high).is_lt())
}

/// Whether `a` and `b` are the same bytes, as `a == b`: a byte loop for the short strings
/// a node's shared prefix usually is, rather than a call to `memcmp`.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// How byte string `a` orders against `b`, as `a.cmp(b)`. A key and the fences of the node
/// it is checked against usually differ within their first few bytes: a byte loop finds
/// that sooner than a call to `memcmp`, which is left the strings that agree longer.
#[inline]
pub(crate) fn order(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b).take(8) {
        if x != y {
            return x.cmp(y);
        }
    }
    // The shorter one ended within the bytes compared: it is the smaller, or they are equal.
    if a.len().min(b.len()) <= 8 { a.len().cmp(&b.len()) } else { a.cmp(b) }
}

/// The length of the key prefix a node with these fences stores once.
fn prefix_len(low: &[u8], high: Option<&[u8]>) -> usize {
    high.map_or(0, |high| common_prefix_len(low, high))
}

/// Whether `p` is [`prefix_len`] of these fences, checked with two comparisons rather than
/// a byte loop (the read path parses a header per node it passes).
fn is_prefix_len(low: &[u8], high: Option<&[u8]>, p: usize) -> bool {
    let Some(high) = high else { return p == 0 };
    match (low.get(..p), high.get(..p)) {
        (Some(a), Some(b)) if same(a, b) => low.get(p).zip(high.get(p)).is_none_or(|(x, y)| x != y),
        _ => false,
    }
}

/// The first [`HEAD_LEN`] bytes of a key suffix, zero-padded past its end.
fn key_head(suffix: &[u8]) -> [u8; HEAD_LEN] {
    match suffix.first_chunk::<HEAD_LEN>() {
        Some(&head) => head,
        None => padded(suffix),
    }
}

/// The first `N` of `bytes`, zero-padded past their end: read big-endian, such heads never
/// decrease as byte strings increase (key heads, a batch's sort heads, a hash's last word).
pub(crate) fn padded<'b, const N: usize>(bytes: impl IntoIterator<Item = &'b u8>) -> [u8; N] {
    let mut head = [0; N];
    for (to, from) in head.iter_mut().zip(bytes) {
        *to = *from;
    }
    head
}

/// Why an image with format tag `tag` is not a node image.
#[cold]
fn not_a_node(tag: u8) -> String {
    if tag == OLD_NODE_TAG {
        format!(
            "format tag {tag:#04x}: a node image of an earlier format (without key heads), \
             which this build does not read"
        )
    } else {
        format!("format tag {tag:#04x}, not a node ({NODE_TAG})")
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The shortest prefix of `right` greater than `left`, for `left < right`: up to and
/// including the first byte where they differ (or, if `left` is a prefix of `right`, the
/// byte after it).
pub(crate) fn shortest_separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    let len = (common_prefix_len(left, right) + 1).min(right.len());
    right.get(..len).unwrap_or(right).to_vec()
}

/// Bytes of an entry whose key suffix is `suffix_len` long, its slot included.
pub(crate) fn entry_len(suffix_len: usize, entry: EntryRef<'_>) -> usize {
    SLOT_LEN
        + varint::len(to_u64(suffix_len))
        + suffix_len
        + match entry {
            EntryRef::Value(value) => value.encoded_len(),
            EntryRef::Child(_) => CHILD_LEN,
        }
}

/// The exact length of the image of a node with `header` and `entries`.
pub(crate) fn image_len<'e>(
    header: &Header,
    entries: impl Iterator<Item = (KeyRef<'e>, EntryRef<'e>)>,
) -> usize {
    let prefix = header.prefix_len();
    let entries: usize =
        entries.map(|(key, entry)| entry_len(key.len().saturating_sub(prefix), entry)).sum();
    head_len(&header.low, header.high.as_deref()) + entries
}

/// The image of a node with `header` and `entries` (sorted, within the fences, of the
/// header's level's kind): the one encoder, for owned nodes and drafts alike.
///
/// # Errors
/// [`Error::RecordTooLarge`] if the image would pass 4 GiB, which its 32-bit entry offsets
/// cannot address. The tree keeps nodes near a page in size and stores large values as
/// blobs, so only keys of gigabytes get here (and the log refuses far smaller records).
pub(crate) fn encode_image<'e>(
    header: &Header,
    entries: impl ExactSizeIterator<Item = (KeyRef<'e>, EntryRef<'e>)> + Clone,
) -> Result<Vec<u8>, Error> {
    try_encode_image(header, entries.clone()).ok_or_else(|| Error::RecordTooLarge {
        len: image_len(header, entries),
        max: usize::try_from(u32::MAX).unwrap_or(usize::MAX),
    })
}

/// [`encode_image`], or `None` if the image would pass 4 GiB.
fn try_encode_image<'e>(
    header: &Header,
    entries: impl ExactSizeIterator<Item = (KeyRef<'e>, EntryRef<'e>)> + Clone,
) -> Option<Vec<u8>> {
    let len = image_len(header, entries.clone());
    u32::try_from(len).ok()?;
    let count = u32::try_from(entries.len()).ok()?;
    let prefix = header.prefix_len();
    let mut out = Vec::with_capacity(len);
    let fences = (&header.low[..], header.high.as_deref());
    let table = put_head(&mut out, (header.tree, header.level), fences, header.right, count);
    for (i, (key, entry)) in entries.enumerate() {
        // Below `len`, which fits in a u32.
        let offset = u32::try_from(out.len()).ok()?;
        debug_assert!(
            key.to_vec().starts_with(header.low.get(..prefix).unwrap_or_default()),
            "key outside the fences"
        );
        debug_assert_eq!(matches!(entry, EntryRef::Value(_)), header.level == 0, "entry kind");
        let (head, tail) = key.tail(prefix);
        // The suffix is `head ++ tail`; its key head is its first bytes, zero-padded.
        let at = table + SLOT_LEN * i;
        out.get_mut(at..at + SLOT_LEN)?
            .copy_from_slice(&slot(offset, padded(head.iter().chain(tail))));
        varint::put(&mut out, to_u64(head.len() + tail.len()));
        out.extend_from_slice(head);
        out.extend_from_slice(tail);
        match entry {
            EntryRef::Value(value) => value.encode_into(&mut out),
            EntryRef::Child(page) => out.extend_from_slice(&page.get().to_le_bytes()),
        }
    }
    debug_assert_eq!(out.len(), len);
    Some(out)
}

/// Writes a node image's fixed header, its fences and the prefix length they share, then
/// zeros for `count` slots; returns where the slot table starts.
fn put_head(
    out: &mut Vec<u8>,
    (tree, level): (TreeId, u8),
    (low, high): (&[u8], Option<&[u8]>),
    right: Option<PageId>,
    count: u32,
) -> usize {
    let mut flags = 0;
    if high.is_some() {
        flags |= FLAG_HIGH;
    }
    if right.is_some() {
        flags |= FLAG_RIGHT;
    }
    out.extend_from_slice(&[NODE_TAG, level, flags, 0]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&tree.get().to_le_bytes());
    out.extend_from_slice(&right.map_or(0, PageId::get).to_le_bytes());
    put_bytes(out, low);
    if let Some(high) = high {
        put_bytes(out, high);
    }
    varint::put(out, to_u64(prefix_len(low, high)));
    let table = out.len();
    out.resize(table + SLOT_LEN * usize::try_from(count).unwrap_or(0), 0);
    table
}

/// Bytes of an image before its slot table: the fixed header, the fences and the prefix
/// length they share.
fn head_len(low: &[u8], high: Option<&[u8]>) -> usize {
    HEADER_LEN
        + bytes_len(low)
        + high.map_or(0, bytes_len)
        + varint::len(to_u64(prefix_len(low, high)))
}

/// A slot: the entry's offset and its key head (the suffix's first bytes, zero-padded).
fn slot(offset: u32, head: [u8; HEAD_LEN]) -> [u8; SLOT_LEN] {
    let ([o0, o1, o2, o3], [h0, h1, h2, h3]) = (offset.to_le_bytes(), head);
    [o0, o1, o2, o3, h0, h1, h2, h3]
}

/// Bytes of a length-prefixed byte string.
fn bytes_len(bytes: &[u8]) -> usize {
    varint::len(to_u64(bytes.len())) + bytes.len()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint::put(out, to_u64(bytes.len()));
    out.extend_from_slice(bytes);
}

fn to_u64(n: usize) -> u64 {
    // usize is at most 64 bits on every target Grove builds for.
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeMap, BTreeSet},
        fmt::Write as _,
    };

    use fastrand::Rng;

    use super::*;

    /// Seeds for each randomized test; a failure names its seed.
    const SEEDS: u64 = 300;

    fn inline(bytes: &[u8]) -> Value {
        Value::Inline(bytes.to_vec())
    }

    #[test]
    fn an_inline_entry_takes_at_most_what_entry_len_at_most_says() {
        for (key_len, value_len) in [(0, 0), (1, 127), (24, 150), (200, 5000)] {
            let value = vec![7; value_len];
            let entry = EntryRef::Value(ValueRef::Inline(&value));
            // Exact without a shared prefix, more than enough with one.
            assert_eq!(entry_len_at_most(key_len, value_len), entry_len(key_len, entry));
            let suffix = key_len.saturating_sub(3);
            assert!(entry_len_at_most(key_len, value_len) >= entry_len(suffix, entry));
        }
        // A value stored out of line takes less than it would inline.
        let blob = EntryRef::Value(ValueRef::Blob { page: PageId(9), len: 5000 });
        assert!(entry_len_at_most(24, 5000) > entry_len(24, blob));
    }

    #[test]
    fn order_and_same_agree_with_the_slice_comparisons() {
        // Lengths around the byte loop's 8 and `same`'s 16, differing at every position
        // (or nowhere), with bytes that differ in their top bit too.
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for len in [1, 2, 7, 8, 9, 15, 16, 17, 24] {
            let base: Vec<u8> = (0..len).map(|i: u8| i.wrapping_mul(37)).collect();
            strings.push(base.clone());
            for at in 0..base.len() {
                for byte in [0x00, 0x7f, 0x80, 0xff] {
                    let mut changed = base.clone();
                    changed[at] = byte;
                    strings.push(changed);
                }
            }
        }
        for a in &strings {
            for b in &strings {
                assert_eq!(order(a, b), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(same(a, b), a == b, "{a:?} against {b:?}");
            }
        }
    }

    fn header(level: u8, low: &[u8], high: Option<&[u8]>, right: Option<u64>) -> Header {
        Header {
            tree: TreeId(7),
            level,
            low: low.to_vec(),
            high: high.map(<[u8]>::to_vec),
            right: right.map(PageId),
        }
    }

    fn leaf(
        low: &[u8],
        high: Option<&[u8]>,
        right: Option<u64>,
        entries: &[(&[u8], Value)],
    ) -> Node {
        Node {
            header: header(0, low, high, right),
            entries: entries.iter().map(|(k, v)| (k.to_vec(), Entry::Value(v.clone()))).collect(),
        }
    }

    fn index(level: u8, low: &[u8], high: Option<&[u8]>, children: &[(&[u8], u64)]) -> Node {
        Node {
            header: header(level, low, high, None),
            entries: children.iter().map(|(k, c)| (k.to_vec(), Entry::Child(PageId(*c)))).collect(),
        }
    }

    fn hex(bytes: &[u8]) -> String {
        let mut out = String::new();
        for line in bytes.chunks(16) {
            for byte in line {
                write!(out, "{byte:02x} ").unwrap();
            }
            out.pop();
            out.push('\n');
        }
        out
    }

    /// Encodes `node` and checks every way of reading the image back.
    fn assert_round_trips(node: &Node) -> Vec<u8> {
        let image = node.encode().unwrap();
        assert_eq!(image.len(), node.encoded_len(), "{node:?}");
        assert_eq!(Node::decode(&image).unwrap(), *node);
        let view = NodeRef::parse(&image).unwrap();
        assert_eq!(view.header(), node.header);
        assert_eq!(
            (view.tree(), view.level(), view.low(), view.high(), view.right()),
            (
                node.header.tree,
                node.header.level,
                &node.header.low[..],
                node.header.high.as_deref(),
                node.header.right
            )
        );
        assert_eq!((view.len(), view.is_empty()), (node.entries.len(), node.entries.is_empty()));
        for (i, (key, entry)) in node.entries.iter().enumerate() {
            let found = view.key(i).unwrap();
            assert_eq!(found.to_vec(), *key);
            assert_eq!((found.len(), found.is_empty()), (key.len(), key.is_empty()));
            assert_eq!(found.compare(key), Ordering::Equal);
            assert_eq!(view.search(key).unwrap(), Ok(i));
            assert!(view.covers(key) && node.covers(key));
            match entry {
                Entry::Value(value) => {
                    assert_eq!(view.value(i).unwrap().to_value(), *value);
                    assert!(view.child(i).is_err());
                    assert_eq!(leaf_lookup(&image, &[], key).unwrap().as_ref(), Some(value));
                }
                Entry::Child(page) => {
                    assert_eq!(view.child(i).unwrap(), *page);
                    assert_eq!(view.child_for(key).unwrap(), *page);
                    assert!(view.value(i).is_err());
                }
            }
        }
        assert!(view.key(node.entries.len()).is_err());
        assert_eq!(TreeMaterializer.merge(&image, &[]), image);
        image
    }

    #[test]
    fn leaves_and_index_nodes_round_trip() {
        let blob = Value::Blob { page: PageId(u64::MAX), len: u64::MAX };
        let big = vec![0xab; 300];
        let nodes = [
            leaf(b"", None, None, &[]),
            leaf(b"", None, Some(0), &[(b"", inline(b""))]),
            leaf(b"", Some(b"m"), Some(9), &[(b"", inline(b"empty key")), (b"a", blob.clone())]),
            leaf(b"k", Some(b"ka"), None, &[(b"k", inline(&big)), (b"k\0", inline(b""))]),
            leaf(b"abc", Some(b"abd"), Some(3), &[(b"abc", blob), (b"abc\xff\xff", inline(b"v"))]),
            leaf(&big, None, None, &[(&big, inline(b"x"))]),
            index(1, b"", None, &[(b"", 4), (b"m", 5)]),
            index(255, b"q", Some(b"qz"), &[(b"q", 0), (b"qa", u64::MAX), (b"qy\xff", 2)]),
        ];
        for node in &nodes {
            assert_round_trips(node);
        }
    }

    #[test]
    fn fences_with_a_common_prefix_store_it_once() {
        let entries: [(&[u8], Value); 2] = [
            (b"user/17/b", inline(b"x")),
            (b"user/17/cc", Value::Blob { page: PageId(1), len: 2 }),
        ];
        let node = leaf(b"user/17/a", Some(b"user/17/q"), None, &entries);
        // Header 24, fences 10 + 10, prefix length 1, slots 16; entries: suffix "b" (2),
        // inline "x" (3); suffix "cc" (3), blob (17).
        assert_eq!(node.encoded_len(), 24 + 10 + 10 + 1 + 16 + (2 + 3) + (3 + 17));
        let image = assert_round_trips(&node);
        assert_eq!(NodeRef::parse(&image).unwrap().prefix(), b"user/17/");
        // The same entries under fences that share nothing cost the prefix on every key.
        let wide = leaf(b"user/", Some(b"v"), None, &entries);
        assert_eq!(wide.encoded_len(), node.encoded_len() - 10 + 6 - 8 + 2 * 8);
    }

    #[test]
    fn encoding_does_not_drift() {
        let node = leaf(
            b"ab",
            Some(b"ad"),
            Some(5),
            &[(b"ab", inline(b"v")), (b"ac", Value::Blob { page: PageId(3), len: 1000 })],
        );
        insta::assert_snapshot!(hex(&node.encode().unwrap()), @r"
        03 00 03 00 02 00 00 00 07 00 00 00 00 00 00 00
        05 00 00 00 00 00 00 00 02 61 62 02 61 64 01 2f
        00 00 00 62 00 00 00 34 00 00 00 63 00 00 00 01
        62 00 01 76 01 63 01 03 00 00 00 00 00 00 00 e8
        03 00 00 00 00 00 00
        ");
        let ops = [
            Op::Put { key: b"ab".to_vec(), value: inline(b"w") },
            Op::Remove { key: b"ac".to_vec() },
        ];
        let fragment = hex(&encode_fragment(&ops));
        insta::assert_snapshot!(fragment, @"02 02 00 02 61 62 00 01 77 01 02 61 63");
    }

    /// A byte string shared by most keys of one test node, so that fences and keys share
    /// long prefixes.
    fn random_stem(rng: &mut Rng) -> Vec<u8> {
        let len = [0, 1, 8, 24][rng.usize(..4)];
        (0..len).map(|_| rng.u8(b'a'..b'd')).collect()
    }

    /// A key: usually the stem or part of it, then a few bytes from a small alphabet (with
    /// 0x00 and 0xff, the edges of the order).
    fn random_key(rng: &mut Rng, stem: &[u8]) -> Vec<u8> {
        let mut key = match rng.u8(..4) {
            0 => Vec::new(),
            1 => stem[..rng.usize(..=stem.len())].to_vec(),
            _ => stem.to_vec(),
        };
        for _ in 0..rng.usize(..5) {
            key.push([0, 1, b'a', b'b', 0xff][rng.usize(..5)]);
        }
        key
    }

    fn random_value(rng: &mut Rng) -> Value {
        if rng.u8(..8) == 0 {
            Value::Blob { page: PageId(rng.u64(..)), len: rng.u64(..) }
        } else {
            Value::Inline((0..rng.usize(..12)).map(|_| rng.u8(..)).collect())
        }
    }

    /// Random fences and sorted unique keys within them: the empty low fence or (2 times in
    /// 3) the smallest key drawn, no high fence or (2 times in 3) the largest.
    fn random_keys(rng: &mut Rng, stem: &[u8], most: usize) -> (Header, Vec<Vec<u8>>) {
        // Half the nodes hold only keys that start with the whole stem, so that their fences
        // share it.
        let narrow = rng.bool();
        let mut keys: BTreeSet<Vec<u8>> = (0..rng.usize(..=most) + 2)
            .map(|_| {
                let key = random_key(rng, stem);
                if narrow && !key.starts_with(stem) { [stem, &key].concat() } else { key }
            })
            .collect();
        let low = if rng.u8(..3) == 0 { Vec::new() } else { keys.pop_first().unwrap_or_default() };
        let high = if rng.u8(..3) == 0 { None } else { keys.pop_last().filter(|high| *high > low) };
        let header = Header {
            tree: TreeId(rng.u64(..)),
            level: 0,
            low,
            high,
            right: rng.bool().then(|| PageId(rng.u64(..))),
        };
        let keys = keys.into_iter().filter(|key| covers(&header.low, header.high.as_deref(), key));
        let keys = keys.collect();
        (header, keys)
    }

    fn random_leaf(rng: &mut Rng, stem: &[u8], most: usize) -> Node {
        let (header, keys) = random_keys(rng, stem, most);
        let entries = keys.into_iter().map(|key| (key, Entry::Value(random_value(rng)))).collect();
        Node { header, entries }
    }

    fn random_index(rng: &mut Rng, stem: &[u8], most: usize) -> Node {
        let (mut header, mut keys) = random_keys(rng, stem, most);
        header.level = rng.u8(1..);
        if keys.first() != Some(&header.low) {
            keys.insert(0, header.low.clone());
        }
        let entries = keys.into_iter().map(|key| (key, Entry::Child(PageId(rng.u64(..)))));
        Node { header, entries: entries.collect() }
    }

    /// A key the node covers: often one it holds, else a random one, else its low fence.
    /// Ops on keys `node` covers: fewer than `most` (at least 1), one in `remove_one_in`
    /// a remove, the others puts.
    fn random_ops(
        rng: &mut Rng,
        stem: &[u8],
        node: &Node,
        most: usize,
        remove_one_in: u8,
    ) -> Vec<Op> {
        (0..rng.usize(1..most))
            .map(|_| {
                let key = covered_key(rng, stem, node);
                if rng.u8(..remove_one_in) == 0 {
                    Op::Remove { key }
                } else {
                    Op::Put { key, value: random_value(rng) }
                }
            })
            .collect()
    }

    fn covered_key(rng: &mut Rng, stem: &[u8], node: &Node) -> Vec<u8> {
        if !node.entries.is_empty() && rng.bool() {
            return node.entries[rng.usize(..node.entries.len())].0.clone();
        }
        (0..8)
            .map(|_| random_key(rng, stem))
            .find(|key| node.covers(key))
            .unwrap_or_else(|| node.header.low.clone())
    }

    fn model_of(node: &Node) -> BTreeMap<Vec<u8>, Value> {
        let values = node.entries.iter().map(|(key, entry)| match entry {
            Entry::Value(value) => (key.clone(), value.clone()),
            Entry::Child(_) => panic!("a child in a leaf"),
        });
        values.collect()
    }

    /// Keys to probe a node with: its keys, their neighbours, its fences, random keys.
    fn probes(rng: &mut Rng, stem: &[u8], node: &Node) -> Vec<Vec<u8>> {
        let mut probes = vec![node.header.low.clone(), Vec::new(), vec![0xff; 30]];
        probes.extend(node.header.high.clone());
        for (key, _) in &node.entries {
            probes.push(key.clone());
            let mut after = key.clone();
            after.push(0);
            probes.push(after);
            probes.push(key[..key.len().saturating_sub(1)].to_vec());
        }
        probes.extend((0..20).map(|_| random_key(rng, stem)));
        probes
    }

    /// A leaf split by copying (`LeafSplit`) makes the pieces, fences and images that the
    /// draft path (decode, `Draft::split_into`, encode) makes, for random leaves and
    /// fragments, at sizes from one entry per piece to no split at all.
    #[test]
    fn split_matches_the_draft_path() -> Result<(), Box<dyn std::error::Error>> {
        let (mut split_leaves, mut reprefixed) = (0, 0);
        for seed in 0..SEEDS {
            let mut rng = Rng::with_seed(seed);
            let stem = random_stem(&mut rng);
            let node = random_leaf(&mut rng, &stem, 60);
            let base = node.encode()?;
            let fragments: Vec<Vec<u8>> = (0..rng.usize(..6))
                .map(|_| encode_fragment(&random_ops(&mut rng, &stem, &node, 8, 4)))
                .collect();
            let fragments: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
            let merged = spliced(&base, &fragments)?.ok_or("an image over 4 GiB")?;
            let leaf = NodeRef::parse_header(&merged)?;
            let whole = Draft::of_page(&base, &fragments)?.encoded_len();
            for node_bytes in [1, 64, 256, whole / 3, whole / 2, whole - 1, whole] {
                let pieces = Draft::of_page(&base, &fragments)?.split_into(node_bytes);
                let split = LeafSplit::new(&leaf, node_bytes)?;
                let at = format!("seed {seed}, {node_bytes} bytes");
                assert_eq!(split.len(), pieces.len(), "{at}: pieces");
                let last = pieces.len() - 1;
                for (i, mut piece) in pieces.into_iter().enumerate() {
                    // As the plan links them: each to the next, the last as the leaf was.
                    let right =
                        if i < last { Some(PageId(1000 + to_u64(i))) } else { split.right() };
                    piece.header.right = right;
                    assert_eq!(split.low(i), piece.header.low.as_slice(), "{at}: piece {i}'s low");
                    assert_eq!(split.count(i), piece.entries.len(), "{at}: piece {i}'s count");
                    let image = split.image(i, right)?.ok_or("an image over 4 GiB")?;
                    assert_eq!(image, piece.encode()?, "{at}: piece {i}'s image");
                    reprefixed += usize::from(piece.header.prefix_len() > leaf.prefix_len);
                }
                split_leaves += usize::from(last > 0);
            }
        }
        // The sizes must cut leaves often, and the cuts must lengthen the shared prefix.
        assert!(split_leaves > 1000 && reprefixed > 100, "{split_leaves} splits, {reprefixed}");
        Ok(())
    }

    #[test]
    fn random_leaves_match_a_btreemap_model() {
        let mut long_prefixes = 0;
        for seed in 0..SEEDS {
            let mut rng = Rng::with_seed(seed);
            let stem = random_stem(&mut rng);
            let node = random_leaf(&mut rng, &stem, 60);
            let base = assert_round_trips(&node);
            let mut model = model_of(&node);
            let mut applied = node.clone();
            let mut fragments = Vec::new();
            let count = if rng.bool() { rng.usize(..4) } else { rng.usize(..=64) };
            for _ in 0..count {
                let ops = random_ops(&mut rng, &stem, &node, 5, 3);
                for op in &ops {
                    applied.apply(op);
                    match op {
                        Op::Put { key, value } => model.insert(key.clone(), value.clone()),
                        Op::Remove { key } => model.remove(key),
                    };
                }
                let fragment = encode_fragment(&ops);
                assert_eq!(decode_fragment(&fragment).unwrap(), ops, "seed {seed}");
                fragments.push(fragment);
            }
            let fragments: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();

            if NodeRef::parse(&base).unwrap().prefix().len() >= 8 {
                long_prefixes += 1;
            }
            let merged = Node::materialize(&base, &fragments).unwrap();
            assert_eq!(merged, applied, "seed {seed}");
            assert_eq!(model_of(&merged), model, "seed {seed}");
            let image = assert_round_trips(&merged);
            let len = leaf_len(&base, fragments.iter().copied()).unwrap();
            assert_eq!(len, image.len(), "seed {seed}: leaf_len");
            let at_least = leaf_len_at_least(&base, fragments.iter().copied()).unwrap();
            assert!(at_least <= len, "seed {seed}: a bound of {at_least} over {len} bytes");
            let draft = Draft::of_page(&base, &fragments).unwrap();
            assert_eq!(draft.encode().unwrap(), image, "seed {seed}: the draft's image");
            let spliced = TreeMaterializer.merge(&base, &fragments);
            assert_eq!(spliced, image, "seed {seed}: the spliced image");
            let view = NodeRef::parse(&image).unwrap();
            let (_, entries) = NodeRef::parse_entries(&image).unwrap();
            let one_by_one: Vec<_> = (0..view.len()).map(|i| view.entry(i).unwrap()).collect();
            assert_eq!(entries, one_by_one, "seed {seed}: the entries a parse returns");
            for probe in probes(&mut rng, &stem, &merged) {
                let want = model.get(&probe);
                let got = leaf_lookup(&base, &fragments, &probe).unwrap();
                assert_eq!(got.as_ref(), want, "seed {seed}, key {probe:?}");
                let rank = model.range(..probe.clone()).count();
                let found = view.search(&probe).unwrap();
                assert_eq!(found, if want.is_some() { Ok(rank) } else { Err(rank) }, "seed {seed}");
                // A scan from the probe, read in place, sees what the merged leaf holds.
                let scanned: Vec<(Vec<u8>, Value)> =
                    leaf_entries(&base, fragments.iter().copied(), &probe)
                        .unwrap()
                        .into_iter()
                        .map(|(key, value)| (key.to_vec(), value.to_value()))
                        .collect();
                let expected: Vec<(Vec<u8>, Value)> =
                    model.range(probe.clone()..).map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(scanned, expected, "seed {seed}, scan from {probe:?}");
            }
        }
        assert!(long_prefixes > SEEDS / 20, "only {long_prefixes} nodes with a long prefix");
    }

    #[test]
    fn random_index_nodes_route_like_a_model() {
        for seed in 0..SEEDS {
            let mut rng = Rng::with_seed(seed);
            let stem = random_stem(&mut rng);
            let node = random_index(&mut rng, &stem, 60);
            let image = assert_round_trips(&node);
            let view = NodeRef::parse(&image).unwrap();
            let draft = Draft::of_page(&image, &[]).unwrap();
            assert_eq!(draft.encode().unwrap(), image, "seed {seed}: the draft's image");
            for probe in probes(&mut rng, &stem, &node) {
                let rank = node.entries.partition_point(|(key, _)| *key < probe);
                let at = node.entries.get(rank).filter(|(key, _)| *key == probe).map(|_| rank);
                assert_eq!(view.search(&probe).unwrap(), at.ok_or(rank), "seed {seed}");
                // The last entry whose key is at most the probe, or the first entry.
                let last = node.entries.partition_point(|(key, _)| *key <= probe);
                let Entry::Child(want) = node.entries[last.saturating_sub(1)].1 else {
                    panic!("a value in an index node");
                };
                assert_eq!(view.child_for(&probe).unwrap(), want, "seed {seed}, key {probe:?}");
                assert_eq!(view.covers(&probe), node.covers(&probe));
            }
            assert!(leaf_lookup(&image, &[], b"").is_err(), "an index node is not a leaf");
            // A scan reads values: an index node's children are an error, not values.
            assert!(leaf_entries(&image, std::iter::empty(), b"").is_err(), "seed {seed}");
            assert!(view.values_from(0).next().is_some_and(|first| first.is_err()));
        }
    }

    /// Splicing children into an index node (what a split does to its parent) gives the
    /// image encoding the owned node with them gives: new keys, keys it holds (a child
    /// replaced), the low fence's entry kept first.
    #[test]
    fn spliced_children_match_the_encoded_node() -> Result<(), Box<dyn std::error::Error>> {
        for seed in 0..SEEDS {
            let mut rng = Rng::with_seed(seed);
            let stem = random_stem(&mut rng);
            let mut node = random_index(&mut rng, &stem, 60);
            let image = node.encode()?;
            let mut added: Vec<(Vec<u8>, PageId)> = (0..rng.usize(..6))
                .map(|_| (covered_key(&mut rng, &stem, &node), PageId(rng.u64(..))))
                .filter(|(key, _)| *key != node.header.low)
                .collect();
            added.sort();
            added.dedup_by(|a, b| a.0 == b.0);
            for (key, child) in &added {
                match node.entries.binary_search_by(|(k, _)| k.cmp(key)) {
                    Ok(i) => node.entries[i].1 = Entry::Child(*child),
                    Err(i) => node.entries.insert(i, (key.clone(), Entry::Child(*child))),
                }
            }
            let view = NodeRef::parse(&image)?;
            let changes =
                added.iter().map(|(key, child)| (&key[..], Some(EntryRef::Child(*child))));
            let spliced = splice(&view, changes)?.ok_or("an image over 4 GiB")?;
            assert_eq!(spliced, node.encode()?, "seed {seed}");
            // Out of order, the changes are refused rather than spliced into a wrong image.
            if added.len() > 1 {
                let backwards =
                    added.iter().rev().map(|(k, c)| (&k[..], Some(EntryRef::Child(*c))));
                assert!(splice(&view, backwards).is_err(), "seed {seed}");
            }
        }
        Ok(())
    }

    #[test]
    fn materializer_law_holds_over_fragment_runs() {
        for seed in 0..SEEDS {
            let mut rng = Rng::with_seed(seed);
            let stem = random_stem(&mut rng);
            let node = random_leaf(&mut rng, &stem, 30);
            let fragments: Vec<Vec<u8>> = (0..rng.usize(..12))
                .map(|_| {
                    let ops: Vec<Op> = (0..rng.usize(1..4))
                        .map(|_| {
                            let key = covered_key(&mut rng, &stem, &node);
                            if rng.bool() {
                                Op::Remove { key }
                            } else {
                                Op::Put { key, value: random_value(&mut rng) }
                            }
                        })
                        .collect();
                    encode_fragment(&ops)
                })
                .collect();
            let fragments: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
            let base = node.encode().unwrap();
            let all = TreeMaterializer.merge(&base, &fragments);
            let k = rng.usize(..=fragments.len());
            let first = TreeMaterializer.merge(&base, &fragments[..k]);
            assert_eq!(TreeMaterializer.merge(&first, &fragments[k..]), all, "seed {seed}");
            assert_eq!(all, Node::materialize(&base, &fragments).unwrap().encode().unwrap());
        }
    }

    #[test]
    fn the_materializer_keeps_the_base_of_a_malformed_page() {
        let node = leaf(b"b", Some(b"d"), None, &[(b"c", inline(b"v"))]);
        let base = node.encode().unwrap();
        let outside = encode_fragment(&[Op::Remove { key: b"d".to_vec() }]);
        let inside = encode_fragment(&[Op::Remove { key: b"c".to_vec() }]);
        for fragments in [&[&b"\x02"[..]][..], &[&inside, &outside[..3]], &[&outside]] {
            assert_eq!(TreeMaterializer.merge(&base, fragments), base);
        }
        assert_eq!(TreeMaterializer.merge(b"junk", &[&inside]), b"junk");
        let parent = index(1, b"", None, &[(b"", 1)]).encode().unwrap();
        assert_eq!(TreeMaterializer.merge(&parent, &[&inside]), parent);
    }

    /// The builder writes its header into room kept before the ops: the fragment must come
    /// out whole for every width of the op count's varint, after another in the buffer.
    #[test]
    fn fragment_builders_come_out_whole_at_every_count_width() {
        for count in [1usize, 2, 127, 128, 300, 16_384] {
            let ops: Vec<Op> = (0..count)
                .map(|i| match i % 3 {
                    0 => Op::Remove { key: i.to_be_bytes().to_vec() },
                    _ => Op::Put { key: i.to_be_bytes().to_vec(), value: inline(&[7; 9]) },
                })
                .collect();
            // After another fragment in the same buffer, as a plan writes them.
            let mut buf = encode_fragment(&ops[..1]);
            let mut builder = FragmentBuilder::begin(&mut buf);
            for op in &ops {
                match op {
                    Op::Put { key, value } => builder.put(&mut buf, key, value.as_ref()),
                    Op::Remove { key } => builder.remove(&mut buf, key),
                }
            }
            let (start, end) = (builder.start(), buf.len());
            let range = builder.finish(&mut buf, end);
            assert!(range.start >= start && range.end == end, "{count} ops");
            let fragment = &buf[range];
            assert_eq!(fragment.first(), Some(&FRAGMENT_TAG));
            assert_eq!(decode_fragment(fragment).ok(), Some(ops), "{count} ops");
        }
    }

    #[test]
    fn the_last_op_on_a_key_in_a_fragment_wins() {
        let ops = [
            Op::Put { key: b"k".to_vec(), value: inline(b"1") },
            Op::Put { key: b"j".to_vec(), value: inline(b"") },
            Op::Remove { key: b"k".to_vec() },
            Op::Remove { key: b"".to_vec() },
            Op::Put { key: b"".to_vec(), value: Value::Blob { page: PageId(0), len: 0 } },
        ];
        let fragment = encode_fragment(&ops);
        assert_eq!(decode_fragment(&fragment).unwrap(), ops);
        assert_eq!(fragment_lookup(&fragment, b"k").unwrap(), Some(None));
        assert_eq!(fragment_lookup(&fragment, b"j").unwrap(), Some(Some(inline(b""))));
        let blob = Value::Blob { page: PageId(0), len: 0 };
        assert_eq!(fragment_lookup(&fragment, b"").unwrap(), Some(Some(blob)));
        assert_eq!(fragment_lookup(&fragment, b"x").unwrap(), None);
        // Newer fragments answer before older ones and before the base.
        let base =
            leaf(b"", None, None, &[(b"k", inline(b"0")), (b"x", inline(b"0"))]).encode().unwrap();
        let newer = encode_fragment(&[Op::Put { key: b"k".to_vec(), value: inline(b"2") }]);
        let lookup = |key: &[u8]| leaf_lookup(&base, &[&fragment, &newer], key).unwrap();
        assert_eq!(lookup(b"k"), Some(inline(b"2")));
        assert_eq!(lookup(b"x"), Some(inline(b"0")));
        assert_eq!(lookup(b"j"), Some(inline(b"")));
        assert_eq!(lookup(b"y"), None);
    }

    /// Splits `node` in two as the tree does (through a draft).
    fn split(node: Node) -> (Node, Node) {
        let (left, right) = Draft::of_node(&node).split();
        (left.to_node(), right.to_node())
    }

    /// Checks a split of `node` into `left` and `right`.
    fn assert_split(seed: u64, node: &Node, left: &Node, right: &Node) {
        let both: Vec<_> = left.entries.iter().chain(&right.entries).cloned().collect();
        assert_eq!(both, node.entries, "seed {seed}");
        assert!(!left.entries.is_empty() && !right.entries.is_empty(), "seed {seed}");
        let separator = &right.header.low;
        assert_eq!(left.header.low, node.header.low);
        assert_eq!(left.header.high.as_ref(), Some(separator));
        assert_eq!(right.header.high, node.header.high);
        assert_eq!((left.header.right, right.header.right), (node.header.right, node.header.right));
        for half in [left, right] {
            assert_eq!(
                (half.header.tree, half.header.level),
                (node.header.tree, node.header.level)
            );
            assert!(half.entries.iter().all(|(key, _)| half.covers(key)), "seed {seed}");
            // Decoding checks fences, order and (in index nodes) the first key.
            assert_round_trips(half);
        }
        let last = &left.entries[left.entries.len() - 1].0;
        let first = &right.entries[0].0;
        if node.is_leaf() {
            assert!(first.starts_with(separator) && separator > last, "seed {seed}");
            assert!(separator[..separator.len() - 1] <= last[..], "seed {seed}: not the shortest");
        } else {
            assert_eq!(separator, first, "seed {seed}");
        }

        // The entries as the split node encoded them: halves within one entry of each other.
        let prefix = node.header.prefix_len();
        let size = |(key, entry): &(Vec<u8>, Entry)| entry_len(key.len() - prefix, entry.as_ref());
        let largest = node.entries.iter().map(size).max().unwrap_or(0);
        let (left_bytes, right_bytes): (usize, usize) =
            (left.entries.iter().map(size).sum(), right.entries.iter().map(size).sum());
        assert!(left_bytes.abs_diff(right_bytes) <= largest, "seed {seed}");
        // The images differ by that, plus their fences, plus what each half's longer prefix
        // saves on its keys.
        let saved = |half: &Node| (half.header.prefix_len() - prefix) * half.entries.len();
        let fences = |half: &Node| {
            bytes_len(&half.header.low) + half.header.high.as_deref().map_or(0, bytes_len) + 10
        };
        let slack = largest + fences(left) + fences(right) + saved(left) + saved(right);
        assert!(left.encoded_len().abs_diff(right.encoded_len()) <= slack, "seed {seed}");
    }

    #[test]
    fn split_halves_hold_every_entry_within_their_fences() {
        let mut splits = 0;
        for seed in 0..SEEDS {
            let mut rng = Rng::with_seed(seed);
            let stem = random_stem(&mut rng);
            let mut node = if rng.bool() {
                random_leaf(&mut rng, &stem, 80)
            } else {
                random_index(&mut rng, &stem, 80)
            };
            if node.is_leaf() && rng.u8(..4) == 0 && !node.entries.is_empty() {
                // One large value: the halves balance bytes, not entry counts.
                let at = rng.usize(..node.entries.len());
                node.entries[at].1 = Entry::Value(Value::Inline(vec![7; 500]));
            }
            if node.entries.len() < 2 {
                continue;
            }
            let (left, right) = split(node.clone());
            assert_split(seed, &node, &left, &right);
            splits += 1;
        }
        assert!(splits > SEEDS / 2, "only {splits} splits");
    }

    #[test]
    fn a_leaf_separator_is_the_shortest_prefix_above_the_left() {
        let cases: [(&[u8], &[u8], &[u8]); 4] = [
            (b"abc", b"abd123", b"abd"),
            (b"ab", b"abc", b"abc"),
            (b"a\xff", b"b", b"b"),
            (b"", b"\0\0", b"\0"),
        ];
        for (last, first, want) in cases {
            assert_eq!(shortest_separator(last, first), want);
            let node = leaf(b"", None, None, &[(last, inline(b"")), (first, inline(b""))]);
            let (left, right) = split(node.clone());
            assert_eq!(right.header.low, want);
            assert_split(0, &node, &left, &right);
        }
        // An index node keeps the whole key.
        let node = index(1, b"", None, &[(b"", 1), (b"abc", 2), (b"abd123", 3), (b"b", 4)]);
        let (left, right) = split(node.clone());
        assert_eq!(right.header.low, b"abd123");
        assert_split(0, &node, &left, &right);
    }

    #[test]
    fn the_length_bound_is_exact_when_each_op_removes_a_longest_entry() {
        let mut leaf = Node::empty(TreeId(7), 0);
        for key in [&b"k1"[..], b"k2", b"k3", b"k4"] {
            leaf.apply(&Op::Put { key: key.to_vec(), value: inline(b"0123456789") });
        }
        let base = leaf.encode().unwrap();
        assert_eq!(leaf_len_at_least(&base, std::iter::empty()).unwrap(), base.len());
        let removes = |keys: &[&[u8]]| {
            let ops: Vec<Op> = keys.iter().map(|key| Op::Remove { key: key.to_vec() }).collect();
            encode_fragment(&ops)
        };
        let (one, two) = (removes(&[b"k2"]), removes(&[b"k1", b"k4"]));
        for fragments in [vec![&one[..]], vec![&one[..], &two[..]]] {
            let exact = leaf_len(&base, fragments.iter().copied()).unwrap();
            let bound = leaf_len_at_least(&base, fragments.iter().copied()).unwrap();
            assert_eq!(bound, exact, "{} fragments", fragments.len());
        }
        // A put brings back at least what it takes: the bound stays below.
        let put = encode_fragment(&[Op::Put { key: b"k3".to_vec(), value: inline(b"") }]);
        let exact = leaf_len(&base, std::iter::once(&put[..])).unwrap();
        assert!(leaf_len_at_least(&base, std::iter::once(&put[..])).unwrap() < exact);
        assert!(leaf_len_at_least(&base, std::iter::once(&b"\x07"[..])).is_err());
    }

    #[test]
    fn a_new_root_over_split_children_routes_to_them() {
        let mut leaf = Node::empty(TreeId(7), 0);
        assert_eq!(assert_round_trips(&leaf), leaf.encode().unwrap());
        for key in [&b"a"[..], b"b", b"c", b"d"] {
            leaf.apply(&Op::Put { key: key.to_vec(), value: inline(key) });
        }
        let (mut left, right) = split(leaf);
        left.header.right = Some(PageId(11));
        let mut root = Node::empty(TreeId(7), 1);
        root.apply_child(left.header.low.clone(), PageId(10));
        root.apply_child(right.header.low.clone(), PageId(12));
        root.apply_child(right.header.low.clone(), PageId(11));
        let image = assert_round_trips(&root);
        let view = NodeRef::parse(&image).unwrap();
        assert_eq!(view.child_for(b"b").unwrap(), PageId(10));
        assert_eq!(view.child_for(b"c").unwrap(), PageId(11));
        assert_eq!(view.child_for(b"zz").unwrap(), PageId(11));
    }

    /// Reads `bytes` every way there is, as an image and as a fragment, next to a valid
    /// `leaf` image and a `fragment` for it. Nothing may panic, and whatever parses must be
    /// exactly what the encoder writes.
    fn read_every_way(bytes: &[u8], leaf: &[u8], fragment: &[u8], probes: &[Vec<u8>]) {
        // The one-pass parse a draft uses accepts exactly what the checking parse does.
        assert_eq!(NodeRef::parse_entries(bytes).is_ok(), NodeRef::parse(bytes).is_ok());
        if let Ok(view) = NodeRef::parse(bytes) {
            assert_eq!(view.to_node().unwrap().encode().unwrap(), bytes);
            for i in 0..view.len() {
                view.entry(i).unwrap();
            }
            for probe in probes {
                assert!(view.search(probe).is_ok());
                assert_eq!(view.child_for(probe).is_ok(), !view.is_leaf());
            }
        }
        if let Ok(ops) = decode_fragment(bytes) {
            assert_eq!(encode_fragment(&ops), bytes);
        }
        for probe in probes {
            let _ = leaf_lookup(bytes, &[], probe);
            let _ = leaf_lookup(bytes, &[fragment], probe);
            let _ = leaf_lookup(leaf, &[bytes], probe);
            let _ = fragment_lookup(bytes, probe);
        }
        let _ = Node::materialize(bytes, &[fragment]);
        let _ = Node::materialize(leaf, &[fragment, bytes]);
        let _ = TreeMaterializer.merge(bytes, &[]);
        let _ = TreeMaterializer.merge(leaf, &[bytes]);
        // Splicing skips decoding the entries it copies, yet where decoding succeeds it must
        // give the same image.
        let spliced = TreeMaterializer.merge(bytes, &[fragment]);
        if let Ok(node) = Node::materialize(bytes, &[fragment]) {
            assert_eq!(Some(spliced), node.encode().ok());
        }
    }

    /// Valid images (leaves and index nodes) and fragments to damage, with probe keys.
    struct Corpus {
        leaf: Vec<u8>,
        fragment: Vec<u8>,
        images: Vec<Vec<u8>>,
        fragments: Vec<Vec<u8>>,
        probes: Vec<Vec<u8>>,
    }

    fn corpus(seeds: u64) -> Corpus {
        let mut corpus = Corpus {
            leaf: Vec::new(),
            fragment: Vec::new(),
            images: Vec::new(),
            fragments: Vec::new(),
            probes: Vec::new(),
        };
        for seed in 0..seeds {
            let mut rng = Rng::with_seed(seed);
            let stem = random_stem(&mut rng);
            let node = if seed % 3 == 2 {
                random_index(&mut rng, &stem, 12)
            } else {
                random_leaf(&mut rng, &stem, 12)
            };
            let ops: Vec<Op> = (0..rng.usize(1..4))
                .map(|_| {
                    let key = covered_key(&mut rng, &stem, &node);
                    if rng.bool() {
                        Op::Remove { key }
                    } else {
                        Op::Put { key, value: random_value(&mut rng) }
                    }
                })
                .collect();
            corpus.probes.extend(probes(&mut rng, &stem, &node).into_iter().step_by(5));
            if node.is_leaf() && corpus.leaf.is_empty() {
                corpus.leaf = node.encode().unwrap();
                corpus.fragment = encode_fragment(&ops);
            }
            corpus.images.push(node.encode().unwrap());
            corpus.fragments.push(encode_fragment(&ops));
        }
        corpus
    }

    #[test]
    fn every_truncation_is_malformed() {
        let corpus = corpus(24);
        let (leaf, fragment) = (&corpus.leaf, &corpus.fragment);
        for image in &corpus.images {
            for len in 0..image.len() {
                let short = &image[..len];
                assert!(NodeRef::parse(short).is_err(), "{image:?} cut at {len}");
                assert!(Node::materialize(short, &[]).is_err());
                // The get path reads only what it needs: it may answer from an intact
                // front of the image, but never differently from the whole image.
                let cut = leaf_lookup(short, &[], b"");
                assert!(cut.is_err() || cut == leaf_lookup(image, &[], b""), "cut at {len}");
                read_every_way(short, leaf, fragment, &corpus.probes);
            }
        }
        for whole in &corpus.fragments {
            for len in 0..whole.len() {
                let short = &whole[..len];
                assert!(decode_fragment(short).is_err(), "{whole:?} cut at {len}");
                assert!(fragment_lookup(short, b"").is_err());
                assert!(leaf_lookup(leaf, &[short], b"").is_err());
                assert!(Node::materialize(leaf, &[short]).is_err());
                read_every_way(short, leaf, fragment, &corpus.probes);
            }
        }
    }

    #[test]
    fn random_damage_is_malformed_or_canonical_and_never_panics() {
        let corpus = corpus(30);
        let (leaf, fragment) = (&corpus.leaf, &corpus.fragment);
        let mut rng = Rng::with_seed(0xdead);
        let mut valid = 0;
        for _ in 0..4000 {
            let mut bytes = if rng.bool() {
                corpus.images[rng.usize(..corpus.images.len())].clone()
            } else {
                corpus.fragments[rng.usize(..corpus.fragments.len())].clone()
            };
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..bytes.len().max(1));
                match rng.u8(..5) {
                    0 if at < bytes.len() => bytes[at] ^= 1 << rng.u8(..8),
                    1 if at < bytes.len() => bytes[at] = rng.u8(..),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    3 if at + 4 <= bytes.len() => {
                        let word = [0, 1, 0xffff_ffff, rng.u32(..)][rng.usize(..4)];
                        bytes[at..at + 4].copy_from_slice(&u32::to_le_bytes(word));
                    }
                    _ => bytes.insert(at.min(bytes.len()), rng.u8(..)),
                }
            }
            valid += usize::from(NodeRef::parse(&bytes).is_ok() || decode_fragment(&bytes).is_ok());
            read_every_way(&bytes, leaf, fragment, &corpus.probes);

            let mut garbage: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            if let Some(tag) = garbage.first_mut() {
                *tag = [NODE_TAG, FRAGMENT_TAG, *tag][rng.usize(..3)];
            }
            read_every_way(&garbage, leaf, fragment, &corpus.probes);
        }
        // Some damage leaves a valid encoding (a changed value byte); most does not.
        assert!(valid > 0 && valid < 3000, "{valid} damaged inputs parsed");
    }

    fn reason<T: std::fmt::Debug>(result: Result<T, Malformed>) -> String {
        result.unwrap_err().reason
    }

    #[test]
    fn damaged_images_say_what_is_wrong() {
        // The image of `encoding_does_not_drift`: fences at 24 and 27, prefix length at 30,
        // slots at 31 and 39 (key heads at 35 and 43), entries at 47 and 52.
        let image = leaf(
            b"ab",
            Some(b"ad"),
            Some(5),
            &[(b"ab", inline(b"v")), (b"ac", Value::Blob { page: PageId(3), len: 1000 })],
        )
        .encode()
        .unwrap();
        let damaged = |at: usize, bytes: &[u8]| {
            let mut damaged = image.clone();
            damaged[at..at + bytes.len()].copy_from_slice(bytes);
            reason(NodeRef::parse(&damaged))
        };
        let cases = [
            (damaged(0, &[2]), "format tag 0x02, not a node"),
            (damaged(0, &[1]), "a node image of an earlier format"),
            (damaged(2, &[7]), "unknown flags 0x07"),
            (damaged(3, &[1]), "reserved byte"),
            (damaged(4, &u32::MAX.to_le_bytes()), "4294967295 entries in 40 bytes"),
            (
                damaged(4, &3u32.to_le_bytes()),
                "entry 0 at offset 47, but the entry before it ends at 55",
            ),
            (damaged(2, &[FLAG_HIGH]), "right sibling 5 without its flag"),
            (damaged(24, &[0x7f]), "low fence of 127 bytes"),
            (damaged(26, b"e"), "high fence not above the low fence"),
            (damaged(30, &[0]), "prefix length 0, but the fences share 1 bytes"),
            (
                damaged(39, &47u32.to_le_bytes()),
                "entry 1 at offset 47, but the entry before it ends at 52",
            ),
            (damaged(39, &u32::MAX.to_le_bytes()), "entry 1 at offset 4294967295"),
            (damaged(35, b"c"), "entry 0's key head is not the start of its key"),
            (damaged(44, b"c"), "entry 1's key head is not the start of its key"),
            (damaged(48, b"a"), "first key below the low fence"),
            (damaged(49, &[7]), "unknown value tag 0x07"),
            (damaged(53, b"a"), "key 1 not above key 0"),
            (damaged(53, b"d"), "last key not below the high fence"),
            (
                reason(NodeRef::parse(&[image.as_slice(), &[0]].concat())),
                "1 bytes after the last entry",
            ),
        ];
        for (got, want) in cases {
            assert!(got.contains(want), "wanted {want:?}, got {got:?}");
        }

        let mut empty_index = leaf(b"", None, None, &[]).encode().unwrap();
        empty_index[1] = 1;
        assert!(reason(NodeRef::parse(&empty_index)).contains("without entries"));
        let first_not_low = index(1, b"", None, &[(b"a", 1)]).encode().unwrap();
        assert!(reason(NodeRef::parse(&first_not_low)).contains("first key is not its low fence"));
        let view = NodeRef::parse(&image).unwrap();
        assert!(reason(view.child_for(b"ab")).contains("a leaf has no children"));
        assert!(reason(view.entry(2)).contains("no entry 2 of 2"));
    }

    #[test]
    fn damaged_fragments_say_what_is_wrong() {
        let valid = encode_fragment(&[Op::Remove { key: b"c".to_vec() }]);
        let cases: [(&[u8], &str); 8] = [
            (&[1, 1, 1, 0], "format tag 0x01, not a fragment"),
            (&[2, 0], "0 ops in 0 bytes"),
            (&[2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0], "4294967295 ops in 2 bytes"),
            (&[2, 1, 9, 0], "unknown op 0x09"),
            (&[2, 1, 1, 0x7f], "key of 127 bytes, 0 left"),
            (&[2, 1, 0, 0, 5], "unknown value tag 0x05"),
            (&[2, 1, 0, 0, 0, 0x80], "bytes end inside a varint"),
            (&[2, 1, 1, 1, b'c', 0], "1 bytes after the last op"),
        ];
        for (bytes, want) in cases {
            let got = reason(decode_fragment(bytes));
            assert!(got.contains(want), "wanted {want:?}, got {got:?}");
            assert_eq!(reason(fragment_lookup(bytes, b"c")), got);
        }

        let base = leaf(b"b", Some(b"d"), None, &[(b"c", inline(b"v"))]).encode().unwrap();
        let outside = encode_fragment(&[Op::Remove { key: b"d".to_vec() }]);
        let got = reason(Node::materialize(&base, &[&valid, &outside]));
        assert_eq!(got, "fragment 1: an op on a key outside the leaf's fences");
        let got = reason(leaf_lookup(&base, &[&valid, &[2, 0]], b"c"));
        assert!(got.starts_with("fragment 1: 0 ops"), "{got}");
        let parent = index(1, b"", None, &[(b"", 1)]).encode().unwrap();
        assert!(reason(Node::materialize(&parent, &[&valid])).contains("on an index node"));
    }

    #[test]
    fn reads_through_a_header_only_parse_never_panic_on_damage() {
        let keys: Vec<Vec<u8>> = (0u8..40).map(|i| vec![b'k', i, i]).collect();
        let entries: Vec<(&[u8], Value)> =
            keys.iter().map(|k| (k.as_slice(), Value::Inline(k.repeat(3)))).collect();
        let leaf_image = leaf(b"k", Some(b"l"), Some(9), &entries).encode().unwrap();
        let index_image = index(2, b"k", Some(b"l"), &[(b"k", 1), (b"k\x05", 2), (b"k\x09", 3)])
            .encode()
            .unwrap();
        let mut rng = fastrand::Rng::with_seed(99);
        for image in [leaf_image, index_image] {
            for round in 0..3000 {
                let mut damaged = image.clone();
                if round % 3 == 0 {
                    damaged.truncate(rng.usize(..damaged.len()));
                } else {
                    for _ in 0..rng.usize(1..4) {
                        let at = rng.usize(..damaged.len());
                        damaged[at] ^= 1 << rng.u8(..8);
                    }
                }
                let Ok(view) = NodeRef::parse_header(&damaged) else { continue };
                for key in keys.iter().step_by(7) {
                    let _ = view.search(key);
                    let _ = view.child_for(key);
                    let _ = leaf_lookup(&damaged, &[], key);
                }
                for i in 0..view.len() + 1 {
                    let _ = view.entry(i);
                }
            }
        }
    }
}
