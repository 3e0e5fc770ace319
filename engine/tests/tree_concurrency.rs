//! Four writers and two readers on two trees at once, with nodes small enough that splits
//! happen all the time. Afterwards the trees must agree with every acknowledged operation,
//! `check()` must be clean, and the same must hold after a reopen; meanwhile no iterator
//! may see keys out of order, twice, outside its range, or miss a key that was there all
//! along.
//!
//! Keys are `SSSS` (a slot number) and a kind, so every kind of key occurs all over the key
//! space and every writer touches every leaf:
//! - `SSSSpW`: writer `W`'s private keys, in both trees. Only `W` writes them, so it keeps
//!   an exact model (inserts, removes, compare-and-swaps, batches) and checks every result
//!   and range read of them against it while the others run. The private keys of every
//!   `ANCHOR_EVERY`th slot are anchors: written once before the threads start, never
//!   touched again, so every read of a range must return all the anchors in it.
//! - `SSSSo`: overlapping keys every writer inserts, removes and compare-and-swaps. The
//!   final value of each must be the last acknowledged write to it of *some* writer, and a
//!   writer must never read back its own older value.
//! - `SSSSc`: counters every writer increments (`update_and_fetch`, `fetch_and_update`, or
//!   a `get` and `compare_and_swap` loop). Each ends at the number of acknowledged
//!   increments (no lost update), and no thread ever sees one go down.
//! - `SSSSs`: keys that batches set (or remove) in both trees together: at the end the two
//!   trees agree on each, with the last batch write of some writer.
//!
//! Values start with their key, so a value read under the wrong key is caught. The seed
//! fixes every thread's choice of operations, not the interleaving: replay a failure with
//! `GROVE_SEED`, and `GROVE_CASES` runs more seeds.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    panic::resume_unwind,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use grove_engine::{Batch, Bytes, Config, Db, MemStorage, Tree};

const WRITERS: u8 = 4;
const READERS: u8 = 2;
/// Slots of the key space; each holds one private key per writer.
const SLOTS: u16 = 240;
/// The private keys of every slot that is a multiple of this are anchors.
const ANCHOR_EVERY: u16 = 8;
/// Overlapping keys, counters and shared batch keys: how many of each.
const OVERLAPPING: u16 = 16;
const COUNTERS: u16 = 4;
const SHARED: u16 = 8;
/// A reader stops after this many passes even if the writers are still running.
const MAX_PASSES: u64 = 2_000;

type Key = Vec<u8>;
type Value = Vec<u8>;

// Keys.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Private(u8),
    Overlapping,
    Counter,
    Shared,
}

fn key(slot: u16, kind: Kind) -> Key {
    let mut key = format!("{slot:04}").into_bytes();
    match kind {
        Kind::Private(writer) => key.extend([b'p', b'0' + writer]),
        Kind::Overlapping => key.push(b'o'),
        Kind::Counter => key.push(b'c'),
        Kind::Shared => key.push(b's'),
    }
    key
}

fn kind_of(key: &[u8]) -> Kind {
    match key.get(4..) {
        Some([b'p', w]) if (b'0'..b'0' + WRITERS).contains(w) => Kind::Private(w - b'0'),
        Some(b"o") => Kind::Overlapping,
        Some(b"c") => Kind::Counter,
        Some(b"s") => Kind::Shared,
        _ => panic!("a key no thread writes: {:?}", String::from_utf8_lossy(key)),
    }
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn is_anchor(key: &[u8]) -> bool {
    let slot: u16 = std::str::from_utf8(&key[..4]).unwrap().parse().unwrap();
    matches!(kind_of(key), Kind::Private(_)) && slot.is_multiple_of(ANCHOR_EVERY)
}

fn overlapping_key(i: u16) -> Key {
    key(i * (SLOTS / OVERLAPPING) + 1, Kind::Overlapping)
}

fn counter_key(i: u16) -> Key {
    key(i * (SLOTS / COUNTERS) + 2, Kind::Counter)
}

fn shared_key(i: u16) -> Key {
    key(i * (SLOTS / SHARED) + 5, Kind::Shared)
}

/// A private key of `writer` that is not an anchor.
fn private_key(rng: &mut fastrand::Rng, writer: u8) -> Key {
    loop {
        let slot = rng.u16(..SLOTS);
        if !slot.is_multiple_of(ANCHOR_EVERY) {
            return key(slot, Kind::Private(writer));
        }
    }
}

/// Every anchor with its value (the same in both trees).
fn anchors() -> BTreeMap<Key, Value> {
    let mut anchors = BTreeMap::new();
    for slot in (0..SLOTS).step_by(usize::from(ANCHOR_EVERY)) {
        for writer in 0..WRITERS {
            let k = key(slot, Kind::Private(writer));
            let v = stamped(&k, writer, u32::MAX - 1, 3);
            anchors.insert(k, v);
        }
    }
    anchors
}

// Values.

/// A value for `key`: the key, its writer, a per-writer counter, then `pad` filler bytes.
fn stamped(key: &[u8], writer: u8, counter: u32, pad: usize) -> Value {
    let mut value = key.to_vec();
    value.push(writer);
    value.extend_from_slice(&counter.to_le_bytes());
    value.resize(value.len() + pad, b'.');
    value
}

/// The writer and counter of a stamped value, checking that it belongs to `key`.
fn stamp_of(key: &[u8], value: &[u8]) -> (u8, u32) {
    assert!(
        value.len() >= key.len() + 5 && value.starts_with(key),
        "the value {:?} under key {} belongs to another key",
        show(value),
        show(key)
    );
    let counter = u32::from_le_bytes(value[key.len() + 1..key.len() + 5].try_into().unwrap());
    (value[key.len()], counter)
}

fn count_value(key: &[u8], count: u64) -> Value {
    let mut value = key.to_vec();
    value.extend_from_slice(&count.to_le_bytes());
    value
}

/// A counter's count (absent: 0), checking that the value belongs to `key`.
fn count_of(key: &[u8], value: Option<&[u8]>) -> u64 {
    let Some(value) = value else { return 0 };
    assert!(
        value.len() == key.len() + 8 && value.starts_with(key),
        "the value {:?} under counter {} is not a count of it",
        show(value),
        show(key)
    );
    u64::from_le_bytes(value[key.len()..].try_into().unwrap())
}

// Ranges.

fn bound(rng: &mut fastrand::Rng) -> Bound<Key> {
    let mut key = format!("{:04}", rng.u16(..SLOTS + 2)).into_bytes();
    if rng.bool() {
        key.push(b"acops"[rng.usize(..5)]);
        if rng.bool() {
            key.push(b'0' + rng.u8(..WRITERS + 1));
        }
    }
    match rng.u8(..5) {
        0 => Bound::Unbounded,
        1 | 2 => Bound::Included(key),
        _ => Bound::Excluded(key),
    }
}

/// A random range, low end first (it may still be empty).
fn bounds(rng: &mut fastrand::Rng) -> (Bound<Key>, Bound<Key>) {
    let (a, b) = (bound(rng), bound(rng));
    let key = |b: &Bound<Key>| match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k.clone()),
        Bound::Unbounded => None,
    };
    match (key(&a), key(&b)) {
        (Some(x), Some(y)) if x > y => (b, a),
        _ => (a, b),
    }
}

fn within(range: &(Bound<Key>, Bound<Key>), key: &[u8]) -> bool {
    let above = match &range.0 {
        Bound::Unbounded => true,
        Bound::Included(lo) => key >= lo.as_slice(),
        Bound::Excluded(lo) => key > lo.as_slice(),
    };
    let below = match &range.1 {
        Bound::Unbounded => true,
        Bound::Included(hi) => key <= hi.as_slice(),
        Bound::Excluded(hi) => key < hi.as_slice(),
    };
    above && below
}

fn show_range(range: &(Bound<Key>, Bound<Key>)) -> String {
    let end = |b: &Bound<Key>| match b {
        Bound::Unbounded => "..".to_owned(),
        Bound::Included(k) => format!("[{}]", show(k)),
        Bound::Excluded(k) => format!("({})", show(k)),
    };
    format!("{} to {}", end(&range.0), end(&range.1))
}

/// Reads `range` of `tree`, forward (mode 0), backward (1), mixing both ends (2) or with
/// `Iter::visit` (3), checking that the keys come in order from each end, never twice, and
/// inside the range; returns the entries in key order.
fn read_range(
    tree: &Tree,
    range: &(Bound<Key>, Bound<Key>),
    mode: u8,
    rng: &mut fastrand::Rng,
) -> Vec<(Bytes, Bytes)> {
    let mut iter = tree.range::<Key, _>(range.clone());
    if mode == 3 {
        let mut read: Vec<(Bytes, Bytes)> = Vec::new();
        iter.visit(|k, v| {
            let context = || format!("visit in {} returned {}", show_range(range), show(k));
            assert!(within(range, k), "out of range: {}", context());
            assert!(read.last().is_none_or(|e| *e.0 < *k), "out of order: {}", context());
            read.push((Bytes::from(k), Bytes::from(v)));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        return read;
    }
    let mut front: Vec<(Bytes, Bytes)> = Vec::new();
    let mut back: Vec<(Bytes, Bytes)> = Vec::new();
    loop {
        let forward = match mode {
            0 => true,
            1 => false,
            _ => rng.bool(),
        };
        let next = if forward { iter.next() } else { iter.next_back() };
        let Some(entry) = next else { break };
        let (k, v) = entry.unwrap();
        let what = if forward { "next" } else { "next_back" };
        let context = || {
            format!(
                "{what} in {} of {:?} returned {} after {} from the front and {} from the back",
                show_range(range),
                tree.name(),
                show(&k),
                front.last().map_or("nothing".into(), |e| show(&e.0)),
                back.last().map_or("nothing".into(), |e| show(&e.0)),
            )
        };
        assert!(within(range, &k), "out of range: {}", context());
        if forward {
            assert!(front.last().is_none_or(|e| e.0 < k), "out of order: {}", context());
            assert!(back.last().is_none_or(|e| k < e.0), "ends crossed: {}", context());
            front.push((k, v));
        } else {
            assert!(back.last().is_none_or(|e| k < e.0), "out of order: {}", context());
            assert!(front.last().is_none_or(|e| e.0 < k), "ends crossed: {}", context());
            back.push((k, v));
        }
    }
    front.extend(back.into_iter().rev());
    front
}

// Writers.

#[derive(Debug, Default, Clone, Copy)]
struct WriterStats {
    ops: u64,
    writes: u64,
    cas_swapped: u64,
    cas_refused: u64,
    increments: u64,
    increment_retries: u64,
    batches: u64,
    batch_writes: u64,
    range_checks: u64,
    flushes: u64,
}

/// What one writer did, for the final check.
#[derive(Default)]
struct Acknowledged {
    /// The private keys, per tree: exact.
    private: [BTreeMap<Key, Value>; 2],
    /// Per tree, the last acknowledged write to each overlapping key (`None`: removed).
    overlapping: [HashMap<Key, Option<Value>>; 2],
    /// Per tree, acknowledged increments of each counter.
    increments: [HashMap<Key, u64>; 2],
    /// The last acknowledged batch write to each shared key (both trees).
    shared: HashMap<Key, Option<Value>>,
}

struct Writer<'a> {
    me: u8,
    rng: fastrand::Rng,
    db: &'a Db,
    trees: &'a [Tree; 2],
    anchors: &'a BTreeMap<Key, Value>,
    max_pad: usize,
    /// Stamps values, so every value this writer writes is unique.
    counter: u32,
    done: Acknowledged,
    /// Per tree, the highest count this writer has seen of each counter.
    counts_seen: [HashMap<Key, u64>; 2],
    stats: WriterStats,
}

impl Writer<'_> {
    fn value(&mut self, key: &[u8]) -> Value {
        self.counter += 1;
        let pad = self.rng.usize(..=self.max_pad);
        stamped(key, self.me, self.counter, pad)
    }

    fn run(&mut self, ops: u64) {
        for _ in 0..ops {
            self.stats.ops += 1;
            let t = self.rng.usize(..2);
            match self.rng.u32(..1000) {
                0..300 => self.private_write(t),
                300..400 => self.private_cas(t),
                400..425 => self.private_range(t),
                425..575 => self.overlapping(t),
                575..775 => self.increment(t),
                775..998 => self.batch(),
                _ => {
                    self.db.flush().unwrap();
                    self.stats.flushes += 1;
                }
            }
        }
    }

    fn private_write(&mut self, t: usize) {
        let tree = &self.trees[t];
        let k = private_key(&mut self.rng, self.me);
        let model = &self.done.private[t];
        let expected = model.get(&k).cloned().map(Bytes::from);
        assert_eq!(tree.get(&k).unwrap(), expected, "get of private key {}", show(&k));
        if self.rng.u8(..3) == 0 {
            let old = tree.remove(&k).unwrap();
            assert_eq!(old, expected, "remove's old value of private key {}", show(&k));
            self.done.private[t].remove(&k);
        } else {
            let v = self.value(&k);
            let old = tree.insert(&k, &v).unwrap();
            assert_eq!(old, expected, "insert's old value of private key {}", show(&k));
            self.done.private[t].insert(k, v);
        }
        self.stats.writes += 1;
    }

    fn private_cas(&mut self, t: usize) {
        let tree = &self.trees[t];
        let k = private_key(&mut self.rng, self.me);
        let current = self.done.private[t].get(&k).cloned();
        let old = match self.rng.u8(..3) {
            0 => current.clone(),
            1 => None,
            _ => Some(stamped(&k, self.me, u32::MAX, 0)), // never written
        };
        let new = if self.rng.u8(..4) == 0 { None } else { Some(self.value(&k)) };
        let result = tree.compare_and_swap(&k, old.as_ref(), new.as_ref()).unwrap();
        if old == current {
            assert!(result.is_ok(), "compare_and_swap of private key {} refused", show(&k));
            match new {
                Some(v) => self.done.private[t].insert(k, v),
                None => self.done.private[t].remove(&k),
            };
            self.stats.cas_swapped += 1;
        } else {
            let refused = result.expect_err("compare_and_swap with the wrong old value swapped");
            assert_eq!(refused.current, current.map(Bytes::from), "refused CAS of {}", show(&k));
            self.stats.cas_refused += 1;
        }
    }

    /// Reads a range while the others write: this writer's keys in it must be exactly its
    /// model's.
    fn private_range(&mut self, t: usize) {
        let range = bounds(&mut self.rng);
        let mode = self.rng.u8(..4);
        let read = read_range(&self.trees[t], &range, mode, &mut self.rng);
        let mine: Vec<(Key, Value)> = read
            .into_iter()
            .filter(|(k, _)| kind_of(k) == Kind::Private(self.me))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let expected: Vec<(Key, Value)> = self.done.private[t]
            .iter()
            .chain(self.anchors.iter().filter(|(k, _)| kind_of(k) == Kind::Private(self.me)))
            .filter(|(k, _)| within(&range, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        if mine != expected {
            let got: Vec<String> = mine.iter().map(|e| show(&e.0)).collect();
            let want: Vec<String> = expected.iter().map(|e| show(&e.0)).collect();
            panic!(
                "writer {}'s keys in {} of tree {t} (mode {mode}): read {got:?}, model {want:?}",
                self.me,
                show_range(&range)
            );
        }
        self.stats.range_checks += 1;
    }

    /// Checks a value read from an overlapping key: it belongs to the key, and if this
    /// writer wrote it, it is this writer's last write there.
    fn check_overlapping(&self, t: usize, key: &[u8], value: Option<&[u8]>) {
        let Some(value) = value else { return };
        let (writer, _) = stamp_of(key, value);
        if writer == self.me {
            let last = self.done.overlapping[t].get(key);
            assert_eq!(
                last.map(|v| v.as_deref()),
                Some(Some(value)),
                "writer {} read back one of its own older values of {} in tree {t}",
                self.me,
                show(key)
            );
        }
    }

    fn overlapping(&mut self, t: usize) {
        let tree = &self.trees[t];
        let k = overlapping_key(self.rng.u16(..OVERLAPPING));
        match self.rng.u8(..4) {
            0 => {
                let old = tree.remove(&k).unwrap();
                self.check_overlapping(t, &k, old.as_deref());
                self.done.overlapping[t].insert(k, None);
                self.stats.writes += 1;
            }
            1 => {
                let v = self.value(&k);
                let old = tree.insert(&k, &v).unwrap();
                self.check_overlapping(t, &k, old.as_deref());
                self.done.overlapping[t].insert(k, Some(v));
                self.stats.writes += 1;
            }
            _ => {
                let current = tree.get(&k).unwrap();
                self.check_overlapping(t, &k, current.as_deref());
                self.widen_race();
                let old = match self.rng.u8(..3) {
                    0 => None,
                    1 => self.done.overlapping[t].get(&k).cloned().flatten(),
                    _ => current.map(Vec::from),
                };
                let new = if self.rng.u8(..5) == 0 { None } else { Some(self.value(&k)) };
                match tree.compare_and_swap(&k, old.as_ref(), new.as_ref()).unwrap() {
                    Ok(()) => {
                        self.done.overlapping[t].insert(k, new);
                        self.stats.cas_swapped += 1;
                    }
                    Err(refused) => {
                        assert_ne!(
                            refused.current.as_deref(),
                            old.as_deref(),
                            "compare_and_swap of {} refused although the value matched",
                            show(&k)
                        );
                        self.check_overlapping(t, &k, refused.current.as_deref());
                        self.stats.cas_refused += 1;
                    }
                }
            }
        }
    }

    /// Sometimes gives up the processor between a read and the write that depends on it,
    /// so that other writers get in between even on few cores.
    fn widen_race(&mut self) {
        if self.rng.bool() {
            thread::yield_now();
        }
    }

    /// Notes a count read from a counter: counts never go down.
    fn saw_count(&mut self, t: usize, key: &[u8], count: u64, how: &str) {
        let seen = self.counts_seen[t].entry(key.to_vec()).or_default();
        assert!(
            count >= *seen,
            "{how} of counter {} in tree {t}: {count}, after writer {} saw {}",
            show(key),
            self.me,
            *seen
        );
        *seen = count;
    }

    fn increment(&mut self, t: usize) {
        let tree = &self.trees[t];
        let k = counter_key(self.rng.u16(..COUNTERS));
        let plus_one = |old: Option<&[u8]>| Some(count_value(&k, count_of(&k, old) + 1));
        match self.rng.u8(..3) {
            0 => {
                let new = tree.update_and_fetch(&k, plus_one).unwrap();
                let count = count_of(&k, new.as_deref());
                self.saw_count(t, &k, count - 1, "update_and_fetch");
                self.saw_count(t, &k, count, "update_and_fetch");
            }
            1 => {
                let old = tree.fetch_and_update(&k, plus_one).unwrap();
                let count = count_of(&k, old.as_deref());
                self.saw_count(t, &k, count, "fetch_and_update");
                self.saw_count(t, &k, count + 1, "fetch_and_update");
            }
            _ => {
                let mut current = tree.get(&k).unwrap().map(Vec::from);
                loop {
                    let count = count_of(&k, current.as_deref());
                    self.saw_count(t, &k, count, "get");
                    let new = count_value(&k, count + 1);
                    self.widen_race();
                    match tree.compare_and_swap(&k, current.as_ref(), Some(&new)).unwrap() {
                        Ok(()) => {
                            self.saw_count(t, &k, count + 1, "compare_and_swap");
                            break;
                        }
                        Err(refused) => {
                            let now = count_of(&k, refused.current.as_deref());
                            assert!(now > count, "a refused increment of {} saw {now}", show(&k));
                            current = refused.current.map(Vec::from);
                            self.stats.increment_retries += 1;
                        }
                    }
                }
            }
        }
        *self.done.increments[t].entry(k).or_default() += 1;
        self.stats.increments += 1;
    }

    /// A batch across both trees: private writes, and shared keys set to one token (or
    /// removed) in both trees.
    fn batch(&mut self) {
        let mut batch = Batch::default();
        let mut private = self.done.private.clone();
        let mut shared = self.done.shared.clone();
        for _ in 0..self.rng.usize(1..8) {
            if self.rng.u8(..3) == 0 {
                let k = shared_key(self.rng.u16(..SHARED));
                if self.rng.u8(..5) == 0 {
                    for tree in self.trees {
                        batch.remove(tree, &k);
                    }
                    shared.insert(k, None);
                } else {
                    let v = self.value(&k);
                    for tree in self.trees {
                        batch.insert(tree, &k, &v);
                    }
                    shared.insert(k, Some(v));
                }
            } else {
                let t = self.rng.usize(..2);
                let k = private_key(&mut self.rng, self.me);
                if self.rng.u8(..4) == 0 {
                    batch.remove(&self.trees[t], &k);
                    private[t].remove(&k);
                } else {
                    let v = self.value(&k);
                    batch.insert(&self.trees[t], &k, &v);
                    private[t].insert(k, v);
                }
            }
        }
        self.stats.batch_writes += u64::try_from(batch.len()).unwrap();
        self.db.apply_batch(batch).unwrap();
        self.done.private = private;
        self.done.shared = shared;
        self.stats.batches += 1;
    }
}

// Readers.

#[derive(Debug, Default, Clone, Copy)]
struct ReaderStats {
    passes: u64,
    full_passes: u64,
    entries: u64,
    anchors: u64,
    /// Batch probes that found a shared key's token unchanged around the other tree's read.
    batch_probes: u64,
}

struct Reader<'a> {
    rng: fastrand::Rng,
    trees: &'a [Tree; 2],
    anchors: &'a BTreeMap<Key, Value>,
    /// Per tree, the highest count seen of each counter.
    counts_seen: [HashMap<Key, u64>; 2],
    stats: ReaderStats,
}

impl Reader<'_> {
    /// One pass: a full scan forward or backward, or a random range read forward,
    /// backward or from both ends.
    fn pass(&mut self) {
        let t = self.rng.usize(..2);
        let mode = self.rng.u8(..6);
        let range =
            if mode < 2 { (Bound::Unbounded, Bound::Unbounded) } else { bounds(&mut self.rng) };
        let read = read_range(&self.trees[t], &range, mode % 4, &mut self.rng);
        let mut anchors_seen = Vec::new();
        for (k, v) in &read {
            match kind_of(k) {
                Kind::Private(writer) => {
                    if is_anchor(k) {
                        assert_eq!(Some(&v.to_vec()), self.anchors.get(&**k), "anchor {}", show(k));
                        anchors_seen.push(k.to_vec());
                    } else {
                        assert_eq!(stamp_of(k, v).0, writer, "the writer of {}", show(k));
                    }
                }
                Kind::Overlapping | Kind::Shared => {
                    stamp_of(k, v);
                }
                Kind::Counter => {
                    let count = count_of(k, Some(v));
                    let seen = self.counts_seen[t].entry(k.to_vec()).or_default();
                    assert!(
                        count >= *seen,
                        "counter {} of tree {t} went down from {} to {count} between passes",
                        show(k),
                        *seen
                    );
                    *seen = count;
                }
            }
        }
        let expected: Vec<Key> =
            self.anchors.keys().filter(|k| within(&range, k)).cloned().collect();
        if anchors_seen != expected {
            let missing: Vec<String> =
                expected.iter().filter(|k| !anchors_seen.contains(k)).map(|k| show(k)).collect();
            panic!(
                "a read of {} of tree {t} (mode {mode}) missed anchors {missing:?}",
                show_range(&range)
            );
        }
        self.stats.passes += 1;
        self.stats.full_passes += u64::from(mode < 2);
        self.stats.entries += u64::try_from(read.len()).unwrap();
        self.stats.anchors += u64::try_from(anchors_seen.len()).unwrap();
    }

    /// Reads a shared key in one tree, then the other, then the first again. Every value is
    /// written once, by a batch that writes it to both trees, so if the first tree held the
    /// same value at both reads it held it all along, and the other tree must have held it
    /// in between: a batch is never seen half applied.
    fn probe_batch(&mut self) {
        let k = shared_key(self.rng.u16(..SHARED));
        let t = self.rng.usize(..2);
        let (first, other) = (&self.trees[t], &self.trees[1 - t]);
        let before = first.get(&k).unwrap();
        let between = other.get(&k).unwrap();
        let after = first.get(&k).unwrap();
        if before.is_some() && before == after {
            assert_eq!(
                between.as_deref().map(|v| stamp_of(&k, v)),
                before.as_deref().map(|v| stamp_of(&k, v)),
                "a batch seen half applied: shared key {} in tree {} (left, as writer and counter) \
                 while tree {t} held the right one before and after",
                show(&k),
                1 - t
            );
            self.stats.batch_probes += 1;
        }
    }
}

// The run.

/// Counts the writers still running; a writer that panics still counts itself out, so the
/// readers stop.
struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Joins a thread, rethrowing its panic as it was, so that the message names the failure.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| resume_unwind(panic))
}

/// What the trees must hold at the end.
struct Expected {
    /// Per tree: anchors, private keys and counters, exactly.
    exact: [BTreeMap<Key, Value>; 2],
    /// Per tree, the values each overlapping key may end with.
    overlapping: [HashMap<Key, Vec<Option<Value>>>; 2],
    /// The values each shared key may end with, in both trees.
    shared: HashMap<Key, Vec<Option<Value>>>,
}

impl Expected {
    fn new(anchors: &BTreeMap<Key, Value>, writers: &[Acknowledged]) -> Expected {
        let mut exact = [anchors.clone(), anchors.clone()];
        let mut overlapping: [HashMap<Key, Vec<Option<Value>>>; 2] = Default::default();
        let mut shared: HashMap<Key, Vec<Option<Value>>> = HashMap::new();
        for t in 0..2 {
            let mut counts: BTreeMap<Key, u64> = BTreeMap::new();
            for done in writers {
                exact[t].extend(done.private[t].clone());
                for (k, n) in &done.increments[t] {
                    *counts.entry(k.clone()).or_default() += n;
                }
                for (k, v) in &done.overlapping[t] {
                    overlapping[t].entry(k.clone()).or_default().push(v.clone());
                }
            }
            exact[t].extend(counts.into_iter().map(|(k, n)| {
                let v = count_value(&k, n);
                (k, v)
            }));
        }
        for done in writers {
            for (k, v) in &done.shared {
                shared.entry(k.clone()).or_default().push(v.clone());
            }
        }
        Expected { exact, overlapping, shared }
    }

    /// Checks both trees against what was acknowledged; returns the entries found.
    fn verify(&self, trees: &[Tree; 2], when: &str) -> u64 {
        let mut rng = fastrand::Rng::with_seed(0);
        let mut shared: [BTreeMap<Key, Value>; 2] = Default::default();
        let mut entries = 0;
        for t in 0..2 {
            let full = (Bound::Unbounded, Bound::Unbounded);
            let forward = read_range(&trees[t], &full, 0, &mut rng);
            let backward = read_range(&trees[t], &full, 1, &mut rng);
            assert!(forward == backward, "{when}: tree {t} reads differently backward");
            let mut exact = BTreeMap::new();
            let mut overlapping = BTreeMap::new();
            for (k, v) in forward {
                let (k, v) = (k.to_vec(), v.to_vec());
                entries += 1;
                match kind_of(&k) {
                    Kind::Private(_) | Kind::Counter => exact.insert(k, v),
                    Kind::Overlapping => overlapping.insert(k, v),
                    Kind::Shared => shared[t].insert(k, v),
                };
            }
            for (k, v) in &self.exact[t] {
                let got = exact.get(k);
                assert_eq!(got, Some(v), "{when}: tree {t}, key {}", show(k));
                assert_eq!(trees[t].get(k).unwrap().as_deref(), Some(&v[..]), "{when}: get");
            }
            if let Some(k) = exact.keys().find(|k| !self.exact[t].contains_key(*k)) {
                panic!("{when}: tree {t} holds {}, which no acknowledged write left", show(k));
            }
            for i in 0..OVERLAPPING {
                let k = overlapping_key(i);
                let allowed = self.overlapping[t].get(&k).cloned().unwrap_or_else(|| vec![None]);
                let got = overlapping.get(&k).cloned();
                assert!(
                    allowed.contains(&got),
                    "{when}: overlapping key {} of tree {t} ends as {:?}, no writer's last write",
                    show(&k),
                    got.map(|v| stamp_of(&k, &v))
                );
            }
        }
        assert!(shared[0] == shared[1], "{when}: the trees differ on the shared batch keys");
        for i in 0..SHARED {
            let k = shared_key(i);
            let allowed = self.shared.get(&k).cloned().unwrap_or_else(|| vec![None]);
            let got = shared[0].get(&k).cloned();
            assert!(
                allowed.contains(&got),
                "{when}: shared key {} ends as {:?}, no writer's last batch write",
                show(&k),
                got.map(|v| stamp_of(&k, &v))
            );
        }
        entries
    }
}

fn open_trees(db: &Db) -> [Tree; 2] {
    [db.open_tree("left").unwrap(), db.open_tree("right").unwrap()]
}

/// One case: `open` opens (or reopens) the database; `ops` operations per writer, values
/// padded by up to `max_pad` bytes.
fn run_case(name: &str, seed: u64, open: &dyn Fn() -> Db, ops: u64, max_pad: usize) {
    let db = open();
    let trees = open_trees(&db);
    let anchors = anchors();
    for tree in &trees {
        for (k, v) in &anchors {
            tree.insert(k, v).unwrap();
        }
    }
    let running = AtomicU64::new(u64::from(WRITERS));
    let (writers, readers) = thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|me| {
                let (db, trees, anchors, running) = (&db, &trees, &anchors, &running);
                scope.spawn(move || {
                    let _running = Running(running);
                    let mut writer = Writer {
                        me,
                        rng: fastrand::Rng::with_seed(seed * 64 + u64::from(me)),
                        db,
                        trees,
                        anchors,
                        max_pad,
                        counter: 0,
                        done: Acknowledged::default(),
                        counts_seen: Default::default(),
                        stats: WriterStats::default(),
                    };
                    writer.run(ops);
                    (writer.done, writer.stats)
                })
            })
            .collect();
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (trees, anchors, running) = (&trees, &anchors, &running);
                scope.spawn(move || {
                    let mut reader = Reader {
                        rng: fastrand::Rng::with_seed(seed * 64 + 32 + u64::from(r)),
                        trees,
                        anchors,
                        counts_seen: Default::default(),
                        stats: ReaderStats::default(),
                    };
                    while running.load(Ordering::SeqCst) > 0 && reader.stats.passes < MAX_PASSES {
                        reader.pass();
                        for _ in 0..8 {
                            reader.probe_batch();
                        }
                    }
                    reader.stats
                })
            })
            .collect();
        let writers: Vec<_> = writers.into_iter().map(join).collect();
        let readers: Vec<_> = readers.into_iter().map(join).collect();
        (writers, readers)
    });
    let (done, writer_stats): (Vec<Acknowledged>, Vec<WriterStats>) = writers.into_iter().unzip();
    let expected = Expected::new(&anchors, &done);

    let entries = expected.verify(&trees, "after the run");
    let report = db.check().unwrap();
    assert_eq!(report.entries, entries, "check() counts other entries than the iterators");
    drop(trees);
    drop(db);
    let db = open();
    let trees = open_trees(&db);
    let reopened = db.check().unwrap();
    expected.verify(&trees, "after reopening");
    assert_eq!(reopened.nodes, report.nodes, "the reopened trees have other nodes");

    let mut total = WriterStats::default();
    for s in &writer_stats {
        total.ops += s.ops;
        total.writes += s.writes;
        total.cas_swapped += s.cas_swapped;
        total.cas_refused += s.cas_refused;
        total.increments += s.increments;
        total.increment_retries += s.increment_retries;
        total.batches += s.batches;
        total.batch_writes += s.batch_writes;
        total.range_checks += s.range_checks;
        total.flushes += s.flushes;
    }
    println!(
        "{name} seed {seed}: {total:?}\n  readers {readers:?}\n  check: {} trees, {} nodes \
         (about {} added by splits, net of merges), {} entries",
        report.trees,
        report.nodes,
        report.nodes - report.trees,
        report.entries
    );
    assert!(report.nodes - report.trees > 50, "too few splits to test anything");
    assert!(
        readers.iter().all(|r| r.full_passes > 0 && r.batch_probes > 0),
        "a reader made no full pass or no batch probe while the writers ran"
    );
}

#[test]
fn tiny_nodes_in_memory_agree_with_acknowledged_operations() {
    support::run_seeds("tree_concurrency", 1, |seed| {
        let storage = Arc::new(MemStorage::new());
        // `Config::tiny()`'s 16 KiB cache is smaller than the page table of these trees, so
        // every read would be a cold read (about 50 ms a `get` in a debug build); 64 KiB
        // still evicts and reads back pages all the time.
        let open =
            || Config::tiny().cache_capacity(64 << 10).storage(storage.clone()).open().unwrap();
        run_case("tiny nodes, in memory", seed, &open, 800, 24);
    });
}

#[test]
fn larger_nodes_on_disk_agree_with_acknowledged_operations_across_reopen() {
    support::run_seeds("tree_concurrency", 1, |seed| {
        let dir = tempfile::tempdir().unwrap();
        let path: &Path = dir.path();
        let open = || {
            Config::new()
                .path(path)
                .node_bytes(1024)
                .cache_capacity(256 << 10)
                .flush_every_ms(Some(5))
                .open()
                .unwrap()
        };
        run_case("1 KiB nodes, on disk", seed, &open, 800, 120);
    });
}
