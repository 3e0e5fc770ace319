//! The database against a model (one `BTreeMap` per tree), through the public API: random
//! inserts, removes, compare-and-swaps, updates, pops, reads, ranges in both directions,
//! batches across trees, transactions (some aborted, some durable), snapshots read long
//! after later writes, clears, flushes, restarts and simulated crashes, in the tiny
//! configuration (256-byte nodes, tiny segments and cache), so that splits, eviction,
//! checkpoints and cleaning happen all the time. `check()` runs after every restart. After
//! a crash the trees must equal the model at some point at or after the last completed
//! flush (or durable commit), with every batch and transaction all or nothing.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::{
    collections::BTreeMap,
    ops::{Bound, ControlFlow},
    sync::Arc,
};

use grove_engine::{
    Batch, Bytes, Config, Db, Event, SimStorage, Snapshot, Storage, TransactionError, Tree,
};

/// The trees of a case: the default tree and two named ones.
const TREES: [&str; 3] = ["", "alpha", "beta"];

type Model = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

/// The bounds of a range read.
type Range = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn open(storage: &Arc<SimStorage>, flush_every: Option<u64>) -> (Db, Vec<Tree>) {
    let storage: Arc<dyn Storage> = storage.clone();
    let db = Config::tiny()
        .flush_every_ms(flush_every)
        .storage(storage)
        .merge_operator("alpha", Arc::new(append))
        .open()
        .unwrap();
    let trees = TREES
        .iter()
        .map(|name| if name.is_empty() { (*db).clone() } else { db.open_tree(name).unwrap() })
        .collect();
    (db, trees)
}

/// The merge operator of tree "alpha": appends the operand, keeping the last 60 bytes;
/// an empty operand removes the key.
fn append(_key: &[u8], old: Option<&[u8]>, operand: &[u8]) -> Option<Vec<u8>> {
    if operand.is_empty() {
        return None;
    }
    let mut value = old.map(<[u8]>::to_vec).unwrap_or_default();
    value.extend_from_slice(operand);
    let excess = value.len().saturating_sub(60);
    Some(value.split_off(excess))
}

fn key(rng: &mut fastrand::Rng) -> Vec<u8> {
    // A small alphabet, so that keys collide and share prefixes.
    let len = rng.usize(0..10);
    (0..len).map(|_| b"abcde"[rng.usize(..5)]).collect()
}

fn value(rng: &mut fastrand::Rng) -> Vec<u8> {
    // One value in five is long enough to be stored out of line (the tiny threshold is
    // a quarter of a 256-byte node).
    let len = if rng.u8(..5) == 0 { rng.usize(65..200) } else { rng.usize(0..40) };
    (0..len).map(|_| rng.u8(..)).collect()
}

fn contents(trees: &[Tree]) -> Model {
    trees
        .iter()
        .map(|tree| {
            tree.iter()
                .map(|entry| {
                    let (k, v) = entry.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect()
        })
        .collect()
}

fn bytes(value: Option<&Vec<u8>>) -> Option<Bytes> {
    value.map(|v| Bytes::from(v.clone()))
}

fn bound(rng: &mut fastrand::Rng) -> Bound<Vec<u8>> {
    match rng.u8(..3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key(rng)),
        _ => Bound::Excluded(key(rng)),
    }
}

/// Random bounds for a range read, or `None` if they would hold no key.
fn bounds(rng: &mut fastrand::Rng) -> Option<Range> {
    let (lo, hi) = (bound(rng), bound(rng));
    let valid = match (&lo, &hi) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a < b || (a == b && matches!((&lo, &hi), (Bound::Included(_), Bound::Included(_))))
        }
        _ => true,
    };
    valid.then_some((lo, hi))
}

/// Checks a range read from both ends, mixing `next` and `next_back`.
fn check_range(tree: &Tree, model: &BTreeMap<Vec<u8>, Vec<u8>>, rng: &mut fastrand::Rng) {
    let Some((lo, hi)) = bounds(rng) else { return };
    let iter = tree.range::<Vec<u8>, _>((lo.clone(), hi.clone()));
    check_iter(iter, model, (lo, hi), rng);
}

/// Checks `Iter::visit` against `model`: after a few entries taken from either end, it
/// hands over what is left in key order, and stops when its closure asks.
fn check_visit(tree: &Tree, model: &BTreeMap<Vec<u8>, Vec<u8>>, rng: &mut fastrand::Rng) {
    let Some((lo, hi)) = bounds(rng) else { return };
    let mut iter = tree.range::<Vec<u8>, _>((lo.clone(), hi.clone()));
    let mut expected: std::collections::VecDeque<(Vec<u8>, Vec<u8>)> =
        model.range((lo, hi)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let owned = |entry: Option<Result<(Bytes, Bytes), _>>| {
        entry.map(|e: Result<_, grove_engine::Error>| {
            e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()
        })
    };
    for _ in 0..rng.usize(0..4) {
        if rng.bool() {
            assert_eq!(owned(iter.next()), expected.pop_front(), "next before visit");
        } else {
            assert_eq!(owned(iter.next_back()), expected.pop_back(), "next_back before visit");
        }
    }
    let limit = rng.usize(1..=expected.len() + 1);
    let mut seen = Vec::new();
    iter.visit(|key, value| {
        seen.push((key.to_vec(), value.to_vec()));
        if seen.len() == limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap();
    let want: Vec<_> = expected.into_iter().take(limit).collect();
    assert_eq!(seen, want, "visit");
}

/// Checks that `iter` gives the entries of `model` within `range`, taking them from both
/// ends at random.
fn check_iter<E: std::fmt::Debug>(
    mut iter: impl DoubleEndedIterator<Item = Result<(Bytes, Bytes), E>>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    range: Range,
    rng: &mut fastrand::Rng,
) {
    let mut expected: std::collections::VecDeque<(Vec<u8>, Vec<u8>)> =
        model.range(range).map(|(k, v)| (k.clone(), v.clone())).collect();
    loop {
        let (got, want) = if rng.bool() {
            (iter.next(), expected.pop_front())
        } else {
            (iter.next_back(), expected.pop_back())
        };
        let got = got.map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap());
        assert_eq!(got, want, "range read");
        if want.is_none() {
            break;
        }
    }
}

/// Applies a subscriber's event to a copy of the keys it watches.
fn apply_event(shadow: &mut BTreeMap<Vec<u8>, Vec<u8>>, event: Event) {
    match event {
        Event::Insert { key, value } => {
            shadow.insert(key.to_vec(), value.to_vec());
        }
        Event::Remove { key } => {
            shadow.remove(&*key);
        }
        Event::Batch(writes) => {
            for (key, value) in writes {
                match value {
                    Some(value) => shadow.insert(key.to_vec(), value.to_vec()),
                    None => shadow.remove(&*key),
                };
            }
        }
        Event::Cleared => shadow.clear(),
        other => panic!("unexpected event {other:?}"),
    }
}

#[derive(Debug, Default)]
struct Seen {
    crashes: u64,
    crashes_that_lost_writes: u64,
    batches: u64,
    max_entries: usize,
    /// Mass removals after which the trees had fewer nodes (merges happened).
    shrinks: u64,
    drops: u64,
    transactions: u64,
    snapshot_reads: u64,
}

fn run_case(seed: u64, seen: &mut Seen) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let storage = Arc::new(SimStorage::new(seed));
    let flush_every = if rng.bool() { Some(2) } else { None };
    let (mut db, mut trees) = open(&storage, flush_every);
    let mut model: Model = vec![BTreeMap::new(); TREES.len()];
    let mut history = vec![model.clone()];
    // A subscriber on tree "beta" under prefix "a": applying its events to a copy must
    // give the model's keys under that prefix after every step.
    let watched = |model: &Model| -> BTreeMap<Vec<u8>, Vec<u8>> {
        model[2]
            .iter()
            .filter(|(k, _)| k.starts_with(b"a"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut events = trees[2].watch_prefix(b"a");
    let mut shadow = watched(&model);
    let mut last_id: Option<u64> = None;
    // Open snapshots, each with the model and the tree handles of its moment.
    let mut snapshots: Vec<(Snapshot, Model, Vec<Tree>)> = Vec::new();
    let steps = rng.usize(50..300);
    for _ in 0..steps {
        let mut reopened = false;
        let t = rng.usize(..TREES.len());
        let (tree, m) = (&trees[t], &mut model[t]);
        match rng.u32(..124) {
            0..30 => {
                let (k, v) = (key(&mut rng), value(&mut rng));
                let old = tree.insert(&k, &v).unwrap();
                assert_eq!(old, bytes(m.get(&k)), "insert's old value");
                m.insert(k, v);
            }
            30..40 => {
                let k = key(&mut rng);
                assert_eq!(tree.remove(&k).unwrap(), bytes(m.get(&k)), "remove");
                m.remove(&k);
            }
            40..46 => {
                let k = key(&mut rng);
                let expected = if rng.bool() { m.get(&k).cloned() } else { Some(value(&mut rng)) };
                let new = rng.bool().then(|| value(&mut rng));
                let result = tree.compare_and_swap(&k, expected.as_ref(), new.as_ref()).unwrap();
                if expected.as_ref() == m.get(&k) {
                    assert!(result.is_ok(), "compare_and_swap with the right value failed");
                    match new {
                        Some(v) => m.insert(k, v),
                        None => m.remove(&k),
                    };
                } else {
                    assert_eq!(result.unwrap_err().current, bytes(m.get(&k)));
                }
            }
            46..50 => {
                let k = key(&mut rng);
                let suffix = rng.u8(..);
                let new = tree
                    .update_and_fetch(&k, |old| {
                        let mut v = old.map(<[u8]>::to_vec).unwrap_or_default();
                        v.push(suffix);
                        v.truncate(40);
                        Some(v)
                    })
                    .unwrap();
                let mut v = m.get(&k).cloned().unwrap_or_default();
                v.push(suffix);
                v.truncate(40);
                assert_eq!(new, Some(Bytes::from(v.clone())));
                m.insert(k, v);
            }
            50..60 => {
                let k = key(&mut rng);
                assert_eq!(tree.get(&k).unwrap(), bytes(m.get(&k)), "get");
                assert_eq!(
                    tree.get_with(&k, <[u8]>::to_vec).unwrap().as_ref(),
                    m.get(&k),
                    "get_with"
                );
                assert_eq!(tree.contains_key(&k).unwrap(), m.contains_key(&k));
                let lt = tree.get_lt(&k).unwrap().map(|(k, v)| (k.to_vec(), v.to_vec()));
                assert_eq!(
                    lt,
                    m.range(..k.clone()).next_back().map(|(k, v)| (k.clone(), v.clone()))
                );
                let gt = tree.get_gt(&k).unwrap().map(|(k, v)| (k.to_vec(), v.to_vec()));
                let after = (Bound::Excluded(k), Bound::Unbounded);
                assert_eq!(gt, m.range(after).next().map(|(k, v)| (k.clone(), v.clone())));
            }
            60..68 => {
                check_range(tree, m, &mut rng);
                check_visit(tree, m, &mut rng);
            }
            68..70 => {
                let popped = if rng.bool() { tree.pop_first() } else { tree.pop_last() };
                let popped = popped.unwrap().map(|(k, v)| (k.to_vec(), v.to_vec()));
                let expected = if popped.as_ref().map(|p| &p.0) == m.keys().next() {
                    m.pop_first()
                } else {
                    m.pop_last()
                };
                assert_eq!(popped, expected, "pop");
            }
            70..71 => {
                assert_eq!(tree.len().unwrap(), m.len());
                assert_eq!(tree.is_empty().unwrap(), m.is_empty());
            }
            71..72 if rng.u8(..4) == 0 => {
                tree.clear().unwrap();
                m.clear();
            }
            72..82 => {
                let mut batch = Batch::default();
                for _ in 0..rng.usize(1..30) {
                    let t = rng.usize(..TREES.len());
                    let k = key(&mut rng);
                    if rng.u8(..4) == 0 {
                        batch.remove(&trees[t], &k);
                        model[t].remove(&k);
                    } else {
                        let v = value(&mut rng);
                        batch.insert(&trees[t], &k, &v);
                        model[t].insert(k, v);
                    }
                }
                let durable = rng.u8(..4) == 0;
                if durable {
                    batch.flush_on_apply();
                }
                if rng.bool() {
                    db.apply_batch(batch).unwrap();
                } else {
                    trees[rng.usize(..TREES.len())].apply_batch(batch).unwrap();
                }
                seen.batches += 1;
                if durable {
                    // Durable on return: a crash from here on keeps all of it.
                    history.clear();
                }
            }
            82..88 => {
                db.flush().unwrap();
                history.clear();
            }
            88..92 => {
                snapshots.clear();
                drop(trees);
                drop(db);
                (db, trees) = open(&storage, flush_every);
                reopened = true;
                db.check().unwrap();
                assert_eq!(contents(&trees), model, "after a clean restart");
                history.clear();
            }
            92..96 => {
                storage.crash();
                snapshots.clear();
                drop(trees);
                drop(db);
                (db, trees) = open(&storage, flush_every);
                reopened = true;
                db.check().unwrap();
                let recovered = contents(&trees);
                seen.crashes += 1;
                if recovered != model {
                    seen.crashes_that_lost_writes += 1;
                }
                assert!(
                    history.contains(&recovered),
                    "after a crash the trees are not the model at any point since the last \
                     flush ({} candidates)",
                    history.len()
                );
                model = recovered;
                history.clear();
            }
            96..100 if m.len() > 20 => {
                // Remove most of a range, one key at a time: leaves empty out and merge.
                let nodes = db.check().unwrap().nodes;
                let from = key(&mut rng);
                let doomed: Vec<Vec<u8>> =
                    m.range(from..).map(|(k, _)| k.clone()).filter(|_| rng.u8(..8) != 0).collect();
                for k in doomed {
                    assert!(tree.remove(&k).unwrap().is_some());
                    m.remove(&k);
                }
                if db.check().unwrap().nodes < nodes {
                    seen.shrinks += 1;
                }
            }
            100..105 => {
                let k = key(&mut rng);
                let operand = value(&mut rng);
                let merged = tree.merge(&k, &operand);
                if TREES[t] == "alpha" {
                    let expected = append(&k, m.get(&k).map(Vec::as_slice), &operand);
                    assert_eq!(merged.unwrap(), expected.clone().map(Bytes::from), "merge");
                    match expected {
                        Some(v) => m.insert(k, v),
                        None => m.remove(&k),
                    };
                } else {
                    assert!(matches!(merged, Err(grove_engine::Error::NoMergeOperator { .. })));
                }
            }
            105..107 => {
                // Export, import into a fresh database, compare.
                let mut stream = Vec::new();
                db.export(&mut stream).unwrap();
                let copy = Config::tiny()
                    .storage(Arc::new(grove_engine::MemStorage::new()))
                    .merge_operator("alpha", Arc::new(append))
                    .open()
                    .unwrap();
                copy.import(&stream[..]).unwrap();
                let copied: Vec<Tree> = TREES
                    .iter()
                    .map(
                        |n| if n.is_empty() { (*copy).clone() } else { copy.open_tree(n).unwrap() },
                    )
                    .collect();
                assert_eq!(contents(&copied), model, "an exported and imported copy");
                copy.check().unwrap();
            }
            107..109 => {
                // Ids grow, across restarts and crashes too.
                let id = db.generate_id().unwrap();
                assert!(last_id.is_none_or(|last| id > last), "id {id} after {last_id:?}");
                last_id = Some(id);
            }
            109..110 => {
                // Drop tree "beta" and open a new, empty one of that name.
                assert!(db.drop_tree("beta").unwrap());
                trees[2] = db.open_tree("beta").unwrap();
                assert!(trees[2].is_empty().unwrap());
                model[2].clear();
                reopened = true; // the old tree's subscription ended with it
                seen.drops += 1;
            }
            112..116 => {
                // A transaction of random reads and writes across trees, checked against
                // the model with its own writes over it; one in five aborts.
                let abort = rng.u8(..5) == 0;
                let durable = rng.u8(..3) == 0;
                let ops = rng.usize(1..12);
                let mut committed = None;
                let result = db.transaction(|tx| {
                    let mut staged = model.clone();
                    for _ in 0..ops {
                        let t = rng.usize(..TREES.len());
                        let (tree, m) = (&trees[t], &mut staged[t]);
                        let k = key(&mut rng);
                        match rng.u8(..6) {
                            0 | 1 => {
                                let v = value(&mut rng);
                                assert_eq!(tx.insert(tree, &k, &v)?, bytes(m.get(&k)), "tx insert");
                                m.insert(k, v);
                            }
                            2 => {
                                assert_eq!(tx.remove(tree, &k)?, bytes(m.get(&k)), "tx remove");
                                m.remove(&k);
                            }
                            3 => assert_eq!(tx.get(tree, &k)?, bytes(m.get(&k)), "tx get"),
                            4 => {
                                let new = rng.bool().then(|| value(&mut rng));
                                let swapped =
                                    tx.compare_and_swap(tree, &k, m.get(&k), new.as_ref())?.is_ok();
                                assert!(swapped, "tx compare_and_swap with the right value");
                                match new {
                                    Some(v) => m.insert(k, v),
                                    None => m.remove(&k),
                                };
                            }
                            _ => {
                                if let Some((lo, hi)) = bounds(&mut rng) {
                                    let iter =
                                        tx.range::<Vec<u8>, _>(tree, (lo.clone(), hi.clone()));
                                    check_iter(iter, m, (lo, hi), &mut rng);
                                }
                            }
                        }
                    }
                    committed = Some(staged);
                    if durable {
                        tx.flush_on_commit();
                    }
                    if abort { Err(TransactionError::Abort("abort")) } else { Ok(()) }
                });
                if abort {
                    assert!(matches!(result, Err(TransactionError::Abort("abort"))));
                } else {
                    result.unwrap();
                    model = committed.unwrap();
                    seen.transactions += 1;
                    if durable {
                        // Durable on return: a crash from here on keeps all of it.
                        history.clear();
                    }
                }
            }
            116..118 if snapshots.len() < 3 => {
                snapshots.push((db.snapshot(), model.clone(), trees.clone()));
            }
            118..122 if !snapshots.is_empty() => {
                // An open snapshot still reads as the model did when it was taken.
                let (snapshot, at, handles) = &snapshots[rng.usize(..snapshots.len())];
                let t = rng.usize(..TREES.len());
                let k = key(&mut rng);
                assert_eq!(
                    snapshot.get(&handles[t], &k).unwrap(),
                    bytes(at[t].get(&k)),
                    "snapshot get"
                );
                if let Some((lo, hi)) = bounds(&mut rng) {
                    let iter = snapshot.range::<Vec<u8>, _>(&handles[t], (lo.clone(), hi.clone()));
                    check_iter(iter, &at[t], (lo, hi), &mut rng);
                }
                seen.snapshot_reads += 1;
            }
            122..124 if !snapshots.is_empty() => {
                snapshots.swap_remove(rng.usize(..snapshots.len()));
            }
            _ => {}
        }
        if reopened {
            // The old database's subscription ended with it.
            events = trees[2].watch_prefix(b"a");
            shadow = watched(&model);
        }
        while let Some(event) = events.try_next() {
            apply_event(&mut shadow, event);
        }
        assert_eq!(shadow, watched(&model), "the subscriber's view of beta/a*");
        seen.max_entries = seen.max_entries.max(model.iter().map(BTreeMap::len).sum());
        history.push(model.clone());
    }
    assert_eq!(contents(&trees), model, "at the end");
    db.check().unwrap();
    drop(snapshots);
    assert_eq!(db.stats().unwrap().versions.versions, 0, "versions left with no snapshot open");
}

#[test]
fn trees_match_the_model_across_restarts_and_crashes() {
    let seen = std::cell::RefCell::new(Seen::default());
    support::run_seeds("tree_model", 1000, |seed| run_case(seed, &mut seen.borrow_mut()));
    let seen = seen.into_inner();
    println!("{seen:?}");
    if support::seeds(1000).len() >= 100 {
        assert!(seen.crashes_that_lost_writes * 10 >= seen.crashes, "{seen:?}");
        assert!(seen.batches > 0 && seen.max_entries > 100, "{seen:?}");
        assert!(seen.shrinks > 0, "no removal ever merged nodes: {seen:?}");
        assert!(seen.transactions > 0 && seen.snapshot_reads > 0, "{seen:?}");
    }
}
