//! [`Batch`]: writes to one or more trees, applied all together or not at all.

use super::{
    Bytes, Event, Plan, Shared, Tree, VersionStore,
    handle::Replaced,
    node,
    plan::count_change,
    walk::{Finger, LeafAt},
};
use std::{ops::Range, sync::Arc};

use crate::{
    error::Result,
    ids::{PageId, TreeId},
    sync::{self, AtomicUsize, Ordering},
};

/// Inserts and removes across any trees of one database, applied atomically by
/// [`Db::apply_batch`](crate::Db::apply_batch): other threads see all of it or none of it,
/// and so does the database after a crash. Within a batch, the last write to a key wins.
///
/// # Example
/// ```
/// use grove_engine::Batch;
///
/// let db = grove_engine::Config::new().temporary(true).open()?;
/// let users = db.open_tree("users")?;
/// let emails = db.open_tree("emails")?;
/// let mut batch = Batch::default();
/// batch.insert(&users, b"u1", b"ann");
/// batch.insert(&emails, b"ann@example.com", b"u1");
/// db.apply_batch(batch)?;
/// assert_eq!(emails.get(b"ann@example.com")?.as_deref(), Some(&b"u1"[..]));
/// # Ok::<(), grove_engine::Error>(())
/// ```
///
/// A batch copies its keys and values into buffers of its own as they are added, one after
/// another in chunks of up to 64 KiB (those over 1 KiB each into an allocation of their
/// own). Applying it copies each chunk once into a buffer it then shares: the keys and
/// values a subscriber's [`Event::Batch`] holds are slices of those, so holding one keeps
/// the small keys and values of its chunk alive (copy it with `Bytes::copy_from` to keep
/// only its own).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Each write: its tree, its key and its value (`None` to remove), in the order made.
    writes: Vec<(Tree, Held, Option<Held>)>,
    /// The keys and values `insert` and `remove` copied, one after another, in chunks
    /// that never grow past the capacity they were made with. A few chunks for the batch
    /// instead of an allocation for each write: that allocation and its free were 4% of a
    /// bulk load's instructions. Chunks rather than one buffer grown by doubling, which
    /// copied what it held at every doubling (1.3% of a bulk load's instructions).
    chunks: Vec<Vec<u8>>,
    /// Whether applying it makes it durable (see [`Batch::flush_on_apply`]).
    durable: bool,
}

/// Keys and values longer than this are not copied into a batch's chunks (see
/// `Batch::copy`): for them an allocation is cheap beside the copy.
const LONGEST_IN_BUFFER: usize = 1024;

/// A batch's first chunk holds this many bytes, and each of the next [`CHUNK_DOUBLINGS`]
/// twice the one before (up to 64 KiB), the rest as many as the last: a batch of one write
/// stays small, and one of a thousand takes a dozen allocations.
const FIRST_CHUNK: usize = 256;

/// See [`FIRST_CHUNK`].
const CHUNK_DOUBLINGS: usize = 8;

/// A key or value of a [`Batch`].
#[derive(Debug, Clone)]
enum Held {
    /// Copied into the batch's chunk number `.0`, at range `.1`.
    Copied(usize, Range<usize>),
    /// In an allocation of its own: shared already (a transaction's writes), or long.
    Shared(Bytes),
}

impl Batch {
    /// Sets `key` to `value` in `tree`.
    pub fn insert(&mut self, tree: &Tree, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = self.copy(key.as_ref());
        let value = self.copy(value.as_ref());
        self.writes.push((tree.clone(), key, Some(value)));
    }

    /// Removes `key` from `tree`.
    pub fn remove(&mut self, tree: &Tree, key: impl AsRef<[u8]>) {
        let key = self.copy(key.as_ref());
        self.writes.push((tree.clone(), key, None));
    }

    /// Makes the batch durable before [`Db::apply_batch`](crate::Db::apply_batch) (or
    /// [`Tree::apply_batch`]) returns, as a [`Db::flush`](crate::Db::flush) after it
    /// would, but sooner: the log starts writing and syncing the batch's records as soon
    /// as they are logged, while the batch updates its pages, instead of after.
    ///
    /// # Example
    /// ```
    /// use grove_engine::Batch;
    ///
    /// let db = grove_engine::Config::new().temporary(true).open()?;
    /// let mut batch = Batch::default();
    /// batch.insert(&db, b"k", b"v");
    /// batch.flush_on_apply();
    /// db.apply_batch(batch)?; // on disk when this returns
    /// # Ok::<(), grove_engine::Error>(())
    /// ```
    pub fn flush_on_apply(&mut self) {
        self.durable = true;
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether the batch holds no writes.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// A batch of `writes` whose keys and values are shared already: they are not copied.
    pub(crate) fn of_shared(writes: impl Iterator<Item = (Tree, Bytes, Option<Bytes>)>) -> Batch {
        let writes = writes
            .map(|(tree, key, value)| (tree, Held::Shared(key), value.map(Held::Shared)))
            .collect();
        Batch { writes, chunks: Vec::new(), durable: false }
    }

    /// `bytes`, copied after the keys and values before them (in a new chunk if the last
    /// one has no room), or into an allocation of their own if they are long (a few large
    /// values would leave most of their chunks empty).
    fn copy(&mut self, bytes: &[u8]) -> Held {
        if bytes.len() > LONGEST_IN_BUFFER {
            return Held::Shared(Bytes::copy_from(bytes));
        }
        let fits = |chunk: &Vec<u8>| chunk.capacity() - chunk.len() >= bytes.len();
        if !self.chunks.last().is_some_and(fits) {
            let len = (FIRST_CHUNK << self.chunks.len().min(CHUNK_DOUBLINGS)).max(bytes.len());
            self.chunks.push(Vec::with_capacity(len));
        }
        let index = self.chunks.len() - 1;
        let Some(chunk) = self.chunks.last_mut() else {
            return Held::Shared(Bytes::copy_from(bytes));
        };
        let start = chunk.len();
        chunk.extend_from_slice(bytes);
        Held::Copied(index, start..chunk.len())
    }

    /// The writes, their keys and values slices of the batch's chunks, each copied once
    /// into a buffer that can be shared.
    fn into_writes(self) -> Vec<(Tree, Bytes, Option<Bytes>)> {
        let Batch { writes, chunks, .. } = self;
        let chunks: Vec<Arc<[u8]>> = chunks.into_iter().map(Arc::from).collect();
        // The chunks and ranges were made by `copy`, each range within its chunk.
        let share = |held| match held {
            Held::Copied(chunk, range) => chunks
                .get(chunk)
                .and_then(|chunk| Bytes::slice_of(chunk, range))
                .unwrap_or_default(),
            Held::Shared(bytes) => bytes,
        };
        writes.into_iter().map(|(tree, key, value)| (tree, share(key), value.map(share))).collect()
    }
}

/// Applies `batch` atomically (see [`Batch`]): every leaf it touches, across trees, with the
/// splits they need, goes into one plan installed as one group update.
pub(crate) fn apply_batch(shared: &Shared, batch: Batch) -> Result<()> {
    apply_batch_if(shared, batch, |_| true).map(|_| ())
}

/// As [`apply_batch`], if `validate` accepts the versions written since the caller's
/// snapshot (see [`super::Versions::write`]): `false` if it did not, and nothing was
/// written.
pub(crate) fn apply_batch_if(
    shared: &Shared,
    batch: Batch,
    validate: impl FnOnce(&VersionStore) -> bool,
) -> Result<bool> {
    shared.cache.writable()?;
    let durable = batch.durable;
    let applied = apply_writes_if(shared, batch.into_writes(), durable, validate)?;
    // A durable batch's group asked for its records' sync as soon as it logged them, when
    // it could (see `apply_writes_if`): this waits for it, or makes it.
    if applied && durable {
        shared.cache.flush()?;
    }
    Ok(applied)
}

/// [`apply_batch_if`] of a batch's writes, `made` in the order made, with `durable` if the
/// caller flushes once they are applied.
fn apply_writes_if(
    shared: &Shared,
    made: Vec<(Tree, Bytes, Option<Bytes>)>,
    durable: bool,
    validate: impl FnOnce(&VersionStore) -> bool,
) -> Result<bool> {
    let picks = write_order(&made);
    let mut taken: Vec<Option<(Tree, Bytes, Option<Bytes>)>> = made.into_iter().map(Some).collect();
    let writes: Vec<Write> = picks
        .into_iter()
        .filter_map(|at| taken.get_mut(at)?.take())
        .map(|(tree, key, value)| (tree.inner.id, key, tree, value))
        .collect();
    if writes.is_empty() {
        return Ok(true);
    }
    // A durable batch's group has its records synced while it installs them, unless it
    // removes keys: merging the leaves it shrinks logs more after the group, which the
    // flush at the end would then sync a second time.
    let sync_early = durable && writes.iter().all(|(.., value)| value.is_some());
    // What the plan's fragments will hold.
    let bytes = writes
        .iter()
        .map(|(_, key, _, value)| {
            key.len() + value.as_ref().map_or(0, |v| shared.inline_len(v.len()))
        })
        .sum();
    let applying = Applying::start(&shared.batches);
    let written = shared.versions.write(validate, |recorder| {
        let mut plan = Plan::with_room(shared.node_bytes, writes.len(), bytes);
        if sync_early {
            plan.sync_early();
        }
        // Each leaf a write took an entry out of (removed or replaced), with what it took:
        // a leaf that lost keys is checked for merging once, not once per key, and only if
        // it may have become small. A leaf's writes come together (see `Plan`), so a leaf
        // is only ever the last one listed or a new one.
        let mut shrunk: Vec<Shrunk<'_>> = Vec::new();
        let found = descend(&writes, applying.alone, recorder.records());
        for ((_, key, tree, value), found) in writes.iter().zip(found) {
            let (leaf, replaced) = found?;
            let old_len = replaced.as_ref().and_then(|replaced| replaced.len);
            // A write of a new key takes nothing out (the whole of a bulk load).
            if value.is_none() || old_len.is_some() {
                let took = old_len.map_or(0, |len| node::entry_len_at_most(key.len(), len));
                match shrunk.last_mut() {
                    Some(last) if (last.handle.inner.id, last.leaf) == (tree.inner.id, leaf.id) => {
                        last.taken += took;
                        // Both bound the same page: the higher says more.
                        last.at_least = last.at_least.max(leaf.at_least);
                        last.removed |= value.is_none();
                    }
                    _ => shrunk.push(Shrunk {
                        leaf: leaf.id,
                        handle: tree,
                        key,
                        at_least: leaf.at_least,
                        taken: took,
                        removed: value.is_none(),
                    }),
                }
            }
            // A value stored out of line is freed with the write that replaces it.
            let Some(Replaced { len, value: old, blob }) = replaced else {
                plan.abandon(&shared.cache);
                return Ok(None);
            };
            if let Some((page, version)) = blob {
                plan.free(page, version);
            }
            let stored = match value {
                Some(value) => Some(tree.store(key, value, &mut plan)?),
                None => None,
            };
            recorder.stage(tree.inner.id, key, old.as_ref());
            plan.add(leaf, key, stored, count_change(len.is_some(), value.is_some()));
        }
        recorder.publish();
        if plan.install(&shared.cache)? {
            publish_batch(&writes);
            return Ok(Some(shrunk));
        }
        Ok(None)
    })?;
    let Some(shrunk) = written else {
        return Ok(false);
    };
    // The leaf as the descents found it had at least `at_least` bytes, and the batch took
    // at most `taken` out of it: a leaf still over a quarter of a node after that is not
    // read again (most of the leaves a batch of removes shrinks).
    let quarter = shared.node_bytes / 4;
    for shrunk in shrunk {
        if shrunk.removed && shrunk.at_least.saturating_sub(shrunk.taken) <= quarter {
            shrunk.handle.merge_leaf_if_underfull(shrunk.leaf, shrunk.key)?;
        }
    }
    Ok(true)
}

/// A leaf that a batch took entries out of, to check for merging once the batch is in if
/// it lost keys.
struct Shrunk<'a> {
    leaf: PageId,
    /// The leaf's tree.
    handle: &'a Tree,
    /// One of the keys written in it.
    key: &'a Bytes,
    /// A lower bound on its length before the batch (see [`LeafAt::at_least`]; a remove's
    /// descent takes it).
    at_least: usize,
    /// At most the bytes the batch's writes took out of it.
    taken: usize,
    /// Whether a write removed a key from it: only then is it checked.
    removed: bool,
}

/// Batches of at least this many writes descend on two threads.
const DESCEND_BESIDE_FROM: usize = 256;

/// A batch being applied, counted in [`Shared::batches`] while this lives.
struct Applying<'a> {
    batches: &'a AtomicUsize,
    /// Whether no other batch was being applied when this one started.
    alone: bool,
}

impl Applying<'_> {
    fn start(batches: &AtomicUsize) -> Applying<'_> {
        // Relaxed: a count to decide on, not a lock; a batch that misreads it only
        // descends on one thread, or on two beside another batch.
        let alone = batches.fetch_add(1, Ordering::Relaxed) == 0;
        Applying { batches, alone }
    }
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.batches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Each write's leaf and the value it replaces, in order. The descents only read, and a
/// batch's changes are planned on what they found (and installed only if it is still so),
/// so on a large batch, with more than one core, they can all go first: the second half on
/// a thread of its own (`grove-descend`) while this one takes the first, if this is the
/// only batch being applied (`alone`). Otherwise each descent is made as the plan reaches
/// its write.
///
/// They were a fifth of a batch's instructions (callgrind, the comparison's batch
/// workload at 100k keys). At 1M keys, 9 runs of each build alternated: durable batches
/// of 1,000 went from 208,000 to 221,000 entries a second and removals from 258,000 to
/// 271,000; the bulk load, whose log flusher works on the other core meanwhile, stayed
/// where it was (356,000 and 353,000). The thread is started per batch, about 40 µs
/// against a batch's milliseconds. Beside another batch the second thread did harm (two
/// threads applying batches of 1,000 to one tree: 534,000 entries a second without it,
/// 432,000 with it, medians of 5 runs on 2 cores), so a batch that is not alone descends
/// on its own thread (then 554,000 against 571,500, medians of 4: batches still overlap
/// at their ends).
fn descend(writes: &[Write], alone: bool, copy: bool) -> impl Iterator<Item = Found> + '_ {
    let beside = writes.len() >= DESCEND_BESIDE_FROM && alone && sync::cores() >= 2;
    // The halves are read one after the other rather than joined into one vector: a
    // descent's result is a few hundred bytes, and moving the second half's into the
    // first's (a reallocation and a copy) was 1% of a bulk load's instructions.
    let (first, second, later): (Vec<Found>, Vec<Found>, &[Write]) = if beside {
        let (first, second) = writes.split_at(writes.len() / 2);
        let all = |writes| descents(writes, copy).collect::<Vec<_>>();
        let (second, first) = sync::join("grove-descend", || all(second), || all(first));
        (first, second, &[])
    } else {
        (Vec::new(), Vec::new(), writes)
    };
    first.into_iter().chain(second).chain(descents(later, copy))
}

/// What a write's descent found: its leaf and the value it replaces (`None`: it moved,
/// plan again).
type Found = Result<(LeafAt, Option<Replaced>)>;

/// The descents for `writes`, one at a time as the iterator is driven, copying the values
/// they replace with `copy`. The writes are in key order within each tree, so each descent
/// starts where the last one in its tree found its leaf's parent.
fn descents(writes: &[Write], copy: bool) -> impl Iterator<Item = Found> + '_ {
    let mut finger = (None, Finger::default());
    writes.iter().map(move |(id, key, tree, value)| {
        if finger.0 != Some(*id) {
            finger = (Some(*id), Finger::default());
        }
        // A remove asks for its leaf's length while the descent has the leaf in hand.
        tree.replaced_after(key, Some(&mut finger.1), value.is_none(), copy)
    })
}

/// The positions of the writes to apply, in key order within each tree, trees in the order
/// of their ids (descents then meet their leaves in order, and a leaf's writes come
/// together), and of each key only its last write: the last write to a key wins.
fn write_order(writes: &[(Tree, Bytes, Option<Bytes>)]) -> Vec<usize> {
    // The sort moves one number per write: the tree's rank among the batch's trees, the
    // key's head and the write's position, packed so that comparing the numbers compares
    // all three (a sort of (tree, head, key, position) tuples was 3% of a bulk load's
    // instructions). The head orders keys as they order wherever it differs; writes that
    // tie on it are ordered by the rest of their keys afterwards, which random keys
    // almost never need.
    let Ok(count) = u32::try_from(writes.len()) else {
        return write_order_by_tuples(writes);
    };
    let mut trees: Vec<TreeId> = writes.iter().map(|(tree, ..)| tree.inner.id).collect();
    trees.sort_unstable();
    trees.dedup();
    let rank = |id: TreeId| {
        u128::from(u32::try_from(trees.partition_point(|&t| t < id)).unwrap_or(u32::MAX))
    };
    let mut order: Vec<u128> = (0..count)
        .zip(writes)
        .map(|(at, (tree, key, _))| {
            rank(tree.inner.id) << 96 | u128::from(head(key)) << 32 | u128::from(at)
        })
        .collect();
    order.sort_unstable();
    let at = |packed: u128| usize::try_from(packed & u128::from(u32::MAX)).unwrap_or(usize::MAX);
    let key = |packed: u128| writes.get(at(packed)).map_or(&[][..], |(_, key, _)| &**key);
    // Tree and head alike: ordered by the whole key, then the position.
    let tie = |a: &u128, b: &u128| a >> 32 == b >> 32;
    for run in order.chunk_by_mut(tie).filter(|run| run.len() > 1) {
        run.sort_unstable_by(|a, b| key(*a).cmp(key(*b)).then(a.cmp(b)));
    }
    // Of each key's writes, now together and in the order made, the last.
    let mut picks = Vec::with_capacity(order.len());
    for (i, packed) in order.iter().enumerate() {
        let next = order.get(i + 1);
        if !next.is_some_and(|next| tie(packed, next) && key(*packed) == key(*next)) {
            picks.push(at(*packed));
        }
    }
    picks
}

/// [`write_order`] for a batch too large to number its writes in 32 bits: a sort of
/// (tree, head, key, position) tuples.
fn write_order_by_tuples(writes: &[(Tree, Bytes, Option<Bytes>)]) -> Vec<usize> {
    let mut order: Vec<(TreeId, u64, &[u8], usize)> = writes
        .iter()
        .enumerate()
        .map(|(at, (tree, key, _))| (tree.inner.id, head(key), &**key, at))
        .collect();
    order.sort_unstable();
    order.dedup_by(|later, kept| {
        let same = later.0 == kept.0 && later.2 == kept.2;
        if same {
            *kept = *later;
        }
        same
    });
    order.into_iter().map(|(.., at)| at).collect()
}

/// `key`'s first eight bytes, zero-padded, as a big-endian number: it never decreases as
/// keys increase.
fn head(key: &[u8]) -> u64 {
    u64::from_be_bytes(node::padded(key))
}

/// One write of a batch, as applied: the tree's id (the sort key, with the key), the key,
/// the tree, and the value (`None` to remove).
type Write = (TreeId, Bytes, Tree, Option<Bytes>);

/// Publishes a batch (sorted by tree and key): to each subscriber, the batch's writes
/// under its prefix.
fn publish_batch(writes: &[Write]) {
    for run in writes.chunk_by(|a, b| a.0 == b.0) {
        let Some((id, _, tree, _)) = run.first() else {
            continue;
        };
        let id = *id;
        let subscriptions = &tree.inner.shared.subscriptions;
        if !subscriptions.any() {
            return;
        }
        subscriptions.publish(id, |prefix| {
            let matching: Vec<(Bytes, Option<Bytes>)> = run
                .iter()
                .filter(|(_, key, ..)| key.starts_with(prefix))
                .map(|(_, key, _, value)| (key.clone(), value.clone()))
                .collect();
            (!matching.is_empty()).then_some(Event::Batch(matching))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{Batch, head, write_order, write_order_by_tuples};
    use crate::{
        error::Result,
        tree::{Bytes, tiny_tree},
    };

    #[test]
    fn a_batch_hands_back_each_key_and_value_as_given_and_in_order() -> Result<()> {
        let (_db, tree) = tiny_tree(Vec::<String>::new(), b"")?;
        let mut batch = Batch::default();
        batch.insert(&tree, b"k1", b"first value");
        batch.remove(&tree, b"");
        batch.insert(&tree, b"", b"");
        batch.insert(&tree, b"k1", [9; 300]);
        batch.insert(&tree, b"long", [8; 5000]);
        let writes = batch.into_writes();
        let seen: Vec<(&[u8], Option<&[u8]>)> =
            writes.iter().map(|(_, key, value)| (&**key, value.as_deref())).collect();
        let (long, longer) = ([9; 300], [8; 5000]);
        let expected: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"k1", Some(b"first value")),
            (b"", None),
            (b"", Some(b"")),
            (b"k1", Some(&long)),
            (b"long", Some(&longer)),
        ];
        assert_eq!(seen, expected);
        // Shared writes (a transaction's) are handed back as they are.
        let shared = Batch::of_shared(
            [(tree.clone(), Bytes::copy_from(b"s"), Some(Bytes::copy_from(b"v")))].into_iter(),
        );
        let writes = shared.into_writes();
        assert_eq!(writes.len(), 1);
        assert!(
            writes.iter().all(|(_, key, value)| key == b"s" && value.as_deref() == Some(&b"v"[..]))
        );
        Ok(())
    }

    #[test]
    fn a_batch_keeps_every_key_and_value_across_its_chunks_and_its_clones() -> Result<()> {
        let (_db, tree) = tiny_tree(Vec::<String>::new(), b"")?;
        // Lengths from 0 to the longest kept in a chunk (and one past), the first one longer
        // than the first chunk: about 1 MiB in all, so that chunks reach their largest size.
        let value = |i: usize| vec![u8::try_from(i % 251).unwrap_or(0); (i * 37) % 1026];
        let mut batch = Batch::default();
        batch.insert(&tree, b"first", [3; 1000]);
        for i in 0..2000 {
            batch.insert(&tree, i.to_string(), value(i));
        }
        // A clone copies the chunks written so far; each batch then writes its own.
        let mut clone = batch.clone();
        batch.insert(&tree, b"after", b"original");
        clone.insert(&tree, b"after", b"clone");
        for (batch, last) in [(batch, &b"original"[..]), (clone, &b"clone"[..])] {
            let writes = batch.into_writes();
            assert_eq!(writes.len(), 2002);
            let first = writes.first().map(|(_, key, value)| (key.to_vec(), value.clone()));
            assert_eq!(first, Some((b"first".to_vec(), Some(Bytes::copy_from(&[3; 1000])))));
            for (i, (_, key, held)) in writes.iter().skip(1).take(2000).enumerate() {
                assert_eq!(**key, *i.to_string().as_bytes());
                assert_eq!(held.as_deref(), Some(&value(i)[..]), "write {i}");
            }
            assert_eq!(writes.last().and_then(|(_, _, value)| value.as_deref()), Some(last));
        }
        Ok(())
    }

    #[test]
    fn a_batch_frees_the_pages_of_the_values_it_replaces_or_removes() -> Result<()> {
        // Out-of-line values replaced or removed by a batch with no snapshot open: the
        // batch needs only their length and page, not a copy, and must still free them.
        let (db, tree) = tiny_tree(Vec::<String>::new(), b"")?;
        let pages = || db.stats().map(|stats| stats.page_cache.pages);
        let before = pages()?;
        let mut batch = Batch::default();
        batch.insert(&tree, b"a", [1; 150]);
        batch.insert(&tree, b"b", [2; 150]);
        db.apply_batch(batch)?;
        assert!(pages()? >= before + 2, "{before} pages, then {}", pages()?);
        let mut batch = Batch::default();
        batch.insert(&tree, b"a", b"small");
        batch.remove(&tree, b"b");
        db.apply_batch(batch)?;
        assert_eq!(pages()?, before);
        assert_eq!(tree.get(b"a")?.as_deref(), Some(&b"small"[..]));
        assert_eq!(tree.get(b"b")?, None);
        Ok(())
    }

    #[test]
    fn a_batch_that_empties_leaves_gives_their_pages_back() -> Result<()> {
        let key = |i: u32| format!("key{i:05}");
        let (db, tree) = tiny_tree((0..3000).map(key), b"value")?;
        let before = tree.pages()?.len();
        let mut batch = Batch::default();
        for i in (0..3000).filter(|i| i % 300 != 0) {
            batch.remove(&tree, key(i));
        }
        db.apply_batch(batch)?;
        let after = tree.pages()?.len();
        // Each shrunk leaf is merged once, with a neighbour (749 pages to 389 here).
        assert!(after * 3 < before * 2, "{before} pages before the removals, {after} after");
        assert_eq!(tree.len()?, 10);
        Ok(())
    }

    #[test]
    fn a_batch_that_shrinks_values_beside_its_removes_still_merges_the_leaves() -> Result<()> {
        // 48-byte values in 512-byte nodes: removing a third of the keys alone leaves every
        // leaf over a quarter of a node, but emptying the other values as well does not.
        let db = crate::Config::tiny().node_bytes(512).temporary(true).open()?;
        let tree = db.open_tree("t")?;
        let key = |i: u32| format!("key{i:05}");
        for i in 0..600 {
            tree.insert(key(i), [7; 48])?;
        }
        let before = tree.pages()?.len();
        let mut batch = Batch::default();
        for i in 0..600 {
            if i % 3 == 0 {
                batch.remove(&tree, key(i));
            } else {
                batch.insert(&tree, key(i), b"");
            }
        }
        db.apply_batch(batch)?;
        let after = tree.pages()?.len();
        assert!(after * 3 < before * 2, "{before} pages before the batch, {after} after");
        assert_eq!(tree.len()?, 400);
        Ok(())
    }

    #[test]
    fn a_batch_of_keys_alike_in_their_first_bytes_keeps_each_keys_last_write() -> Result<()> {
        // Every key shares its first 12 bytes, so the sort's heads are all equal and the
        // rest of each key orders them. Written in descending order, each key twice.
        let key = |i: u32| format!("same-prefix-{i:05}");
        let (db, tree) = tiny_tree((0..600).step_by(2).map(key), b"old")?;
        let mut batch = Batch::default();
        for i in (0..600).rev() {
            batch.insert(&tree, key(i), b"first");
            batch.insert(&tree, key(i), format!("last-{i}"));
        }
        db.apply_batch(batch)?;
        let entries: Vec<(String, String)> = tree
            .iter()
            .map(|entry| {
                entry.map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let expected: Vec<(String, String)> =
            (0..600).map(|i| (key(i), format!("last-{i}"))).collect();
        assert_eq!(entries, expected);
        Ok(())
    }

    #[test]
    fn the_packed_write_order_is_the_order_of_whole_keys() -> Result<()> {
        // Three trees, keys that tie on their first eight bytes or not at all, and writes
        // made twice: the packed sort must pick and order exactly as sorting whole
        // (tree, key, position) tuples does.
        let (db, first) = tiny_tree(Vec::<String>::new(), b"")?;
        let trees = [first, db.open_tree("second")?, db.open_tree("third")?];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50 {
            let mut batch = Batch::default();
            for _ in 0..rng.usize(1..200) {
                let tree = &trees[rng.usize(0..trees.len())];
                let key = match rng.u8(0..3) {
                    0 => format!("prefix--{}", rng.u16(0..40)),
                    1 => format!("{}", rng.u16(0..40)),
                    _ => String::from_utf8_lossy(&[b'p'; 8][..rng.usize(0..9)]).into_owned(),
                };
                if rng.bool() {
                    batch.insert(tree, key, b"v");
                } else {
                    batch.remove(tree, key);
                }
            }
            let writes = batch.into_writes();
            assert_eq!(write_order(&writes), write_order_by_tuples(&writes));
        }
        Ok(())
    }

    #[test]
    fn heads_never_decrease_as_keys_increase() {
        let mut keys: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"\0\0",
            b"a",
            b"a\0",
            b"a\x01",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgh\xff",
            b"abcdefgi",
            b"\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        keys.sort();
        for pair in keys.windows(2) {
            assert!(head(pair[0]) <= head(pair[1]), "{:?} then {:?}", pair[0], pair[1]);
        }
        assert!(head(b"a") < head(b"b") && head(b"abcdefgh") < head(b"abcdefgi"));
    }
}
