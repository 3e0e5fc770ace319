//! Reading the tree: pages as nodes, and descents from the root to the leaf for a key.
//!
//! A descent takes no lock. It reads each node's current version from the page cache and
//! checks that the node still covers the key (its fences): a node that split after its
//! parent was read sends the reader right, along its right link; a node that is no longer
//! what the parent pointed at (freed, reused by another tree or level) restarts the descent.

use std::cmp::Ordering;

use smallvec::SmallVec;

use super::{
    draft::Draft,
    filter,
    node::{self, Malformed, Node, NodeRef, ValueRef},
};
use crate::{
    error::{Error, Result},
    ids::{PageId, TreeId},
    pagecache::{Page, PageCache, PageView},
    prefetch,
    sync::epoch,
};

/// How many times a descent restarts before it reports the tree as damaged: a restart
/// needs a concurrent change, and no change leaves a key uncovered for long.
const MAX_RESTARTS: usize = 10_000;

/// One page of a tree, as read.
#[derive(Debug, Clone)]
pub(crate) struct TreePage {
    page: Page,
}

impl TreePage {
    pub(crate) fn id(&self) -> PageId {
        self.page.id()
    }

    pub(crate) fn version(&self) -> u64 {
        self.page.version()
    }

    /// The base image (a blob page's value).
    pub(crate) fn base(&self) -> &[u8] {
        self.page.base()
    }

    /// The base image's header, parsed (entries are checked as they are read).
    pub(crate) fn node(&self) -> Result<NodeRef<'_>> {
        NodeRef::parse_header(self.page.base()).map_err(|m| corrupt(self.id(), &m))
    }

    /// The fragments linked onto the base, oldest first.
    pub(crate) fn fragments(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.page.fragments()
    }

    /// The node with every fragment applied.
    pub(crate) fn materialize(&self) -> Result<Node> {
        let fragments: Vec<&[u8]> = self.page.fragments().collect();
        Node::materialize(self.page.base(), &fragments).map_err(|m| corrupt(self.id(), &m))
    }

    /// The leaf's image with its fragments and then `extra` folded in, spliced (see
    /// [`node::spliced`]); `None` if it would pass 4 GiB. It may be longer than a node:
    /// a split cuts it.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the page is not a well-formed leaf.
    pub(crate) fn merged(&self, extra: &[u8]) -> Result<Option<Vec<u8>>> {
        let fragments: Vec<&[u8]> = self.page.fragments().chain([extra]).collect();
        node::spliced(self.page.base(), &fragments).map_err(|m| corrupt(self.id(), &m))
    }

    /// The node with every fragment applied and then `extra` (ops not linked yet), its
    /// entries borrowed from the page.
    pub(crate) fn draft<'a>(&'a self, extra: Option<&'a [u8]>) -> Result<Draft<'a>> {
        let fragments: Vec<&[u8]> = self.page.fragments().chain(extra).collect();
        Draft::of_page(self.page.base(), &fragments).map_err(|m| corrupt(self.id(), &m))
    }
}

/// A damaged node, as the error the user sees.
pub(crate) fn corrupt(id: PageId, malformed: &Malformed) -> Error {
    Error::corruption(
        format!("tree {id}"),
        u64::try_from(malformed.offset).unwrap_or(0),
        &*malformed.reason,
    )
}

/// Reads page `id`, which a tree refers to.
///
/// # Errors
/// [`Error::Corruption`] if it is free: a tree never refers to a free page for longer than
/// a concurrent change takes, and callers that may race with one use [`try_read`].
pub(crate) fn read_page(cache: &PageCache, id: PageId) -> Result<TreePage> {
    try_read(cache, id)?
        .ok_or_else(|| Error::corruption(format!("tree {id}"), 0, "the tree refers to a free page"))
}

/// Reads page `id`, `None` if it is free.
pub(crate) fn try_read(cache: &PageCache, id: PageId) -> Result<Option<TreePage>> {
    Ok(cache.get(id)?.map(|page| TreePage { page }))
}

/// The length of a page of `base` and `fragments`, in bytes: its size until it is next
/// consolidated, which decides whether a write's ops still fit as a fragment.
pub(crate) fn page_len<'a>(base: &[u8], fragments: impl Iterator<Item = &'a [u8]>) -> usize {
    base.len() + fragments.map(<[u8]>::len).sum::<usize>()
}

/// The index nodes a descent passed through (id and version), root first. Inline up to
/// four levels, which a tree of 8 KiB nodes reaches only past billions of entries: every
/// write descends, and a list on the heap was an allocation per write (1.25 per batched
/// insert on the comparison's load).
pub(crate) type Path = SmallVec<[(PageId, u64); 4]>;

/// A descent to a node (merging's): the node, and the index nodes above it (id and version),
/// root first.
#[derive(Debug, Clone)]
pub(crate) struct Descent {
    pub(crate) leaf: TreePage,
    pub(crate) path: Path,
}

/// The leaf a write changes, as the write's descent found it. A plan needs the leaf's
/// contents only to split it, and reads the page again then; most writes only link a
/// fragment. Not holding the page spares each write a reference to every fragment of its
/// leaf (each one a cache miss on a large tree) and a list to keep them in.
#[derive(Debug, Clone)]
pub(crate) struct LeafAt {
    pub(crate) id: PageId,
    pub(crate) version: u64,
    /// Base plus fragments, in bytes (see [`page_len`]).
    pub(crate) len: usize,
    /// The index nodes above the leaf (id and version), root first.
    pub(crate) path: Path,
    /// For a remove, a lower bound on the leaf's length as its image would be now (see
    /// [`node::leaf_len_at_least`]), read while the descent had the leaf in hand: a batch
    /// leaves the leaves it shrank alone when this, less what its writes took out, is
    /// still over a quarter of a node. 0 (the bound that says nothing) when not asked for.
    pub(crate) at_least: usize,
}

/// Descends tree `tree` from `root` to the leaf for `key`, for a write: the leaf as a
/// [`LeafAt`], and the page itself under `guard` (with its base's header parsed), to look
/// up the value the write replaces.
///
/// # Errors
/// As [`descend_to`].
pub(crate) fn descend_for_write<'g>(
    cache: &PageCache,
    tree: TreeId,
    root: PageId,
    key: &[u8],
    guard: &'g epoch::Guard,
    finger: Option<&mut Finger>,
) -> Result<(LeafAt, (PageView<'g>, NodeRef<'g>))> {
    let mut path = Path::new();
    let (page, node) =
        descend_from(cache, tree, root, finger, Target::Key(key), 0, guard, Some(&mut path))?;
    let len = page_len(page.base(), page.fragments());
    let leaf = LeafAt { id: page.id(), version: page.version(), len, path, at_least: 0 };
    Ok((leaf, (page, node)))
}

/// Where the last of a run of writes in key order found its leaf's parent: the next write
/// starts its descent there when its key is still below the parent's high fence, rather
/// than at the root. A batch's writes come sorted, and at a million keys a thousand of
/// them share about 150 parents, so this spares most of them the root's read and search.
/// The parent is read and checked as any node of a descent is (its tree, its level, its
/// range), so a finger gone stale only costs a restart from the root; the ancestors it
/// keeps for the path are checked when a split needs them, as every descent's are. The
/// descent keeps it, from the parent it has in hand.
#[derive(Debug, Default)]
pub(crate) struct Finger {
    /// The index nodes from the root down to the parent (id and version).
    path: Path,
    /// The parent's high fence (`None`: the parent is the rightmost at its level).
    high: Option<Vec<u8>>,
}

impl Finger {
    /// Where a descent to the leaf for `target` may start: the parent, and the path from
    /// the root down to it. Never the root itself: the root changes level as the tree
    /// grows, and a descent takes a root at an unexpected level for a damaged tree.
    fn start(&self, target: Target<'_>, root: PageId) -> Option<(PageId, Path)> {
        let Target::Key(key) = target else {
            return None;
        };
        let &(id, _) = self.path.last()?;
        if id == root || self.high.as_deref().is_some_and(|high| node::order(key, high).is_ge()) {
            return None;
        }
        Some((id, self.path.clone()))
    }

    /// Holds the leaves' parent a descent just passed, `path` ending with it.
    fn hold(&mut self, path: &Path, high: Option<&[u8]>) {
        if path.last() != self.path.last() {
            self.path.clone_from(path);
            self.high = high.map(<[u8]>::to_vec);
        }
    }
}

/// Where a descent is going.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'k> {
    /// The leaf whose range holds this key.
    Key(&'k [u8]),
    /// The leaf whose range holds the keys just below this one (the leaf before the one
    /// holding it, when it is a low fence): for walking backwards.
    Below(&'k [u8]),
    /// The rightmost leaf.
    Last,
}

impl Target<'_> {
    /// Whether `node`'s range is where the target lies, or the target is to its right
    /// (`Greater`) or left (`Less`).
    fn place(self, low: &[u8], high: Option<&[u8]>) -> Ordering {
        match self {
            Target::Key(key) => {
                if node::order(key, low).is_lt() {
                    Ordering::Less
                } else if high.is_some_and(|h| node::order(key, h).is_ge()) {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            }
            Target::Below(key) => {
                if key <= low && !low.is_empty() {
                    Ordering::Less
                } else if high.is_some_and(|h| key > h) {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            }
            Target::Last if high.is_some() => Ordering::Greater,
            Target::Last => Ordering::Equal,
        }
    }
}

/// Descends tree `tree` from `root` to the node for `target` at `stop` levels above the
/// leaves (the leaf for 0; the lowest node on the way if the tree is not that tall).
///
/// # Errors
/// [`Error::Corruption`] for damaged nodes, or a tree that keeps sending the descent
/// nowhere.
pub(crate) fn descend_to(
    cache: &PageCache,
    tree: TreeId,
    root: PageId,
    target: Target<'_>,
    stop: u8,
) -> Result<Descent> {
    let guard = epoch::pin();
    let mut path = Path::new();
    let (leaf, _) = descend_in(cache, tree, root, target, stop, &guard, Some(&mut path))?;
    Ok(Descent { leaf: TreePage { page: leaf.to_page() }, path })
}

/// Cache lines a scan asks for when it reaches a leaf: all of a default-sized (8 KiB) node.
const LEAF_LINES: usize = 128;

/// Cache lines of each fragment a scan asks for: the whole of a fragment of a few ops.
const FRAGMENT_LINES: usize = 8;

/// Asks for every line a scan of `leaf` reads: its fragments, each a separate allocation
/// the merge reads first, and its base (the first 8 KiB), which the scan reads from its
/// start key to the end. Together they arrive in about the time of one miss instead of one
/// after another; the lines before a range's start key are asked for too, which costs
/// memory bandwidth but no waiting. On the comparison benchmark's ranges of 100 (1M keys):
/// 109k ranges/s without, 165k with; the fragments alone +16%, the base alone +21%.
pub(crate) fn prefetch_leaf(leaf: &PageView<'_>) {
    for fragment in leaf.fragments() {
        prefetch::lines(fragment, FRAGMENT_LINES);
    }
    prefetch::lines(leaf.base(), LEAF_LINES);
}

/// The node of a page read under a guard, its header parsed.
pub(crate) fn node_of<'g>(page: &PageView<'g>) -> Result<NodeRef<'g>> {
    NodeRef::parse_header(page.base()).map_err(|m| corrupt(page.id(), &m))
}

/// The value of `key` in a leaf read under a guard (`node` is its base, as the descent
/// parsed it), borrowed from the page.
pub(crate) fn lookup_in<'g>(
    (page, node): &(PageView<'g>, NodeRef<'g>),
    key: &[u8],
) -> Result<Option<ValueRef<'g>>> {
    // Fragments whose filter shows they cannot name the key are not read at all.
    let fragments = page.fragments_covering(filter::key_bits(key));
    node::leaf_lookup_parsed(node, fragments, key).map_err(|m| corrupt(page.id(), &m))
}

/// As [`descend_to`], under the caller's guard and without taking a reference to any page:
/// the read path. Returns the page with its base's header parsed, so that the caller need
/// not parse it again. The index nodes passed on the way (id and version, root first) go to
/// `path` if given.
///
/// # Errors
/// As [`descend_to`].
pub(crate) fn descend_in<'g>(
    cache: &PageCache,
    tree: TreeId,
    root: PageId,
    target: Target<'_>,
    stop: u8,
    guard: &'g epoch::Guard,
    path: Option<&mut Path>,
) -> Result<(PageView<'g>, NodeRef<'g>)> {
    descend_from(cache, tree, root, None, target, stop, guard, path)
}

/// As [`descend_in`], for a leaf (`stop` 0) starting where `finger` says if it can (and
/// from the root if the descent must start again), and leaving `finger` at the leaves'
/// parent it passed.
#[expect(clippy::too_many_arguments, reason = "descend_in's, and the finger")]
fn descend_from<'g>(
    cache: &PageCache,
    tree: TreeId,
    root: PageId,
    mut finger: Option<&mut Finger>,
    target: Target<'_>,
    stop: u8,
    guard: &'g epoch::Guard,
    mut path: Option<&mut Path>,
) -> Result<(PageView<'g>, NodeRef<'g>)> {
    let mut start = finger
        .as_deref()
        .filter(|_| stop == 0 && path.is_some())
        .and_then(|f| f.start(target, root));
    'restart: for _ in 0..MAX_RESTARTS {
        if let Some(path) = path.as_deref_mut() {
            path.clear();
        }
        let mut id = root;
        let mut level: Option<u8> = None;
        // Only the first try starts there: a restart goes from the root.
        if let Some((parent, down_to_parent)) = start.take()
            && let Some(path) = path.as_deref_mut()
            && let Some((_, above)) = down_to_parent.split_last()
        {
            (id, level) = (parent, Some(1));
            path.extend_from_slice(above);
        }
        loop {
            let Some(page) = cache.read(id, guard)? else {
                if id == root {
                    return Err(Error::corruption(
                        format!("tree {root}"),
                        0,
                        format!("the root of {tree} is a free page"),
                    ));
                }
                continue 'restart;
            };
            let node = node_of(&page)?;
            if node.tree() != tree || level.is_some_and(|l| l != node.level()) {
                if id == root {
                    return Err(Error::corruption(
                        format!("tree {root}"),
                        0,
                        format!("the root page of {tree} belongs to {}", node.tree()),
                    ));
                }
                continue 'restart;
            }
            match target.place(node.low(), node.high()) {
                Ordering::Less => continue 'restart,
                Ordering::Greater => match node.right() {
                    Some(right) => {
                        id = right;
                        continue;
                    }
                    None => continue 'restart,
                },
                Ordering::Equal => {}
            }
            if node.level() <= stop {
                return Ok((page, node));
            }
            let child = match target {
                Target::Key(key) => node.child_for(key),
                Target::Below(key) => child_below(&node, key),
                Target::Last => node.child(node.len().saturating_sub(1)),
            }
            .map_err(|m| corrupt(id, &m))?;
            if let Some(path) = path.as_deref_mut() {
                path.push((id, page.version()));
                if let Some(finger) = finger.as_deref_mut()
                    && node.level() == 1
                {
                    finger.hold(path, node.high());
                }
            }
            level = Some(node.level() - 1);
            id = child;
        }
    }
    Err(Error::corruption(
        format!("tree {root}"),
        0,
        format!("{tree}: a descent restarted {MAX_RESTARTS} times without finding its leaf"),
    ))
}

/// In an index node, the child whose range holds the keys just below `key`: the last entry
/// whose key is strictly below `key` (the first entry when none is).
fn child_below(node: &NodeRef<'_>, key: &[u8]) -> Result<PageId, Malformed> {
    let at = match node.search(key)? {
        Ok(i) | Err(i) => i,
    };
    node.child(at.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::{Finger, Path, Target, descend_for_write};
    use crate::{error::Result, ids::PageId, sync::epoch, tree::tiny_tree};

    #[test]
    fn descents_from_a_finger_find_the_leaves_descents_from_the_root_find() -> Result<()> {
        let keys = (0..3000u32).map(|i| format!("key{:05}", (i * 7919) % 3000));
        let (_db, tree) = tiny_tree(keys, b"v")?;
        let (cache, id, root) = (tree.cache(), tree.inner.id, tree.inner.root);
        let guard = epoch::pin();
        let leaf_of = |key: &[u8], finger: Option<&mut Finger>| -> Result<(PageId, Path)> {
            let (leaf, _) = descend_for_write(cache, id, root, key, &guard, finger)?;
            Ok((leaf.id, leaf.path))
        };
        let keys: Vec<String> = (0..3000u32).step_by(7).map(|i| format!("key{i:05}")).collect();
        let mut finger = Finger::default();
        let mut started_at_a_parent = 0;
        for key in &keys {
            let from_root = leaf_of(key.as_bytes(), None)?;
            let target = Target::Key(key.as_bytes());
            started_at_a_parent += usize::from(finger.start(target, root).is_some());
            assert_eq!(leaf_of(key.as_bytes(), Some(&mut finger))?, from_root, "{key}");
        }
        assert!(leaf_of(b"key00000", None)?.1.len() >= 2, "a tree of three levels or more");
        assert!(started_at_a_parent > keys.len() / 2, "{started_at_a_parent} of {}", keys.len());

        // Fingers gone wrong cost a restart from the root, never a wrong leaf: a parent
        // that is a leaf, one whose range lies after the key, and a freed page.
        let (leaf, path) = leaf_of(b"key02000", None)?;
        let wrong =
            [(vec![(leaf, 0)], None), (path.to_vec(), None), (vec![(PageId(1 << 20), 0)], None)];
        for (path, high) in wrong {
            let mut finger = Finger { path: path.into_iter().collect(), high };
            assert_eq!(leaf_of(b"key00003", Some(&mut finger))?, leaf_of(b"key00003", None)?);
        }
        Ok(())
    }

    #[test]
    fn a_finger_at_a_root_that_grew_a_level_since_is_no_error() -> Result<()> {
        let (_db, tree) = tiny_tree([], b"v")?;
        let key = |i: u32| format!("key{i:05}");
        let mut count = 0;
        while count < 20_000 {
            tree.insert(key(count), b"v")?;
            count += 1;
            let guard = epoch::pin();
            let (leaf, _) = descend_for_write(
                tree.cache(),
                tree.inner.id,
                tree.inner.root,
                b"k",
                &guard,
                None,
            )?;
            if leaf.path.len() == 1 {
                break; // two levels: the root is the leaves' parent
            }
        }
        let guard = epoch::pin();
        let (cache, id, root) = (tree.cache(), tree.inner.id, tree.inner.root);
        let mut finger = Finger::default();
        descend_for_write(cache, id, root, b"key00000", &guard, Some(&mut finger))?;
        assert_eq!(finger.path.first().map(|(page, _)| *page), Some(root));
        drop(guard);
        for i in count..count + 3000 {
            tree.insert(key(i), b"v")?;
        }
        let guard = epoch::pin();
        let (from_root, _) = descend_for_write(cache, id, root, b"key00001", &guard, None)?;
        assert!(from_root.path.len() >= 2, "the root grew a level");
        let (from_finger, _) =
            descend_for_write(cache, id, root, b"key00001", &guard, Some(&mut finger))?;
        assert_eq!((from_finger.id, from_finger.path), (from_root.id, from_root.path));
        Ok(())
    }
}
