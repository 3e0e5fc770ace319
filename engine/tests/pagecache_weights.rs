//! Page weights against a model: random allocations, links, replaces and frees (single
//! and in groups) that set, add to or keep each page's owner and weight, with flushes,
//! checkpoints, restarts and crashes, in the tiny configuration. After every step each
//! owner's total (`PageCache::weight`) equals the model's; after a crash it equals the
//! model's at some point since the last completed flush.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::{collections::BTreeMap, sync::Arc};

use grove_engine::{
    Change, GroupOutcome, GroupUpdate, Outcome, PageCache, PageCacheConfig, PageId, SimStorage,
    Storage, Weigh,
};
use support::Concat;

/// Each live page's owner and weight.
type Model = BTreeMap<PageId, (u64, i64)>;

const OWNERS: u64 = 3;

fn totals(model: &Model) -> BTreeMap<u64, i64> {
    let mut totals = BTreeMap::new();
    for &(owner, weight) in model.values() {
        *totals.entry(owner).or_default() += weight;
    }
    totals.retain(|_, total| *total != 0);
    totals
}

fn kept(cache: &PageCache) -> BTreeMap<u64, i64> {
    (0..OWNERS).map(|owner| (owner, cache.weight(owner))).filter(|(_, t)| *t != 0).collect()
}

fn weigh(rng: &mut fastrand::Rng) -> Weigh {
    match rng.u8(..3) {
        0 => Weigh::Keep,
        1 => Weigh::Add(rng.i64(-5..=5)),
        _ => Weigh::Set { owner: rng.u64(..OWNERS), weight: rng.i64(-3..=20) },
    }
}

fn apply(model: &mut Model, id: PageId, weigh: Weigh) {
    let old = model.get(&id).copied();
    let (owner, weight) = old.unwrap_or((0, 0));
    let new = match weigh {
        Weigh::Keep => (owner, weight),
        Weigh::Add(delta) => (owner, weight + delta),
        Weigh::Set { owner, weight } => (owner, weight),
    };
    model.insert(id, new);
}

fn version(cache: &PageCache, id: PageId) -> u64 {
    cache.get(id).unwrap().unwrap().version()
}

fn run_case(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let storage = Arc::new(SimStorage::new(seed));
    let config = PageCacheConfig::tiny();
    let open = |storage: &Arc<SimStorage>| {
        let storage: Arc<dyn Storage> = storage.clone();
        PageCache::open(storage, config.clone(), Arc::new(Concat)).unwrap()
    };
    let mut cache = open(&storage);
    let mut model = Model::new();
    let mut history = vec![totals(&model)];
    for _ in 0..rng.usize(50..200) {
        let live: Vec<PageId> = model.keys().copied().collect();
        match rng.u8(..100) {
            0..20 => {
                let (id, version) = cache.allocate(b"page").unwrap();
                model.insert(id, (0, 0));
                let w = weigh(&mut rng);
                assert!(cache.replace_with(id, version, b"new", w).unwrap().installed().is_some());
                apply(&mut model, id, w);
            }
            20..45 if !live.is_empty() => {
                let id = live[rng.usize(..live.len())];
                let w = weigh(&mut rng);
                let outcome = if rng.bool() {
                    cache.link_with(id, version(&cache, id), b"+", w).unwrap()
                } else {
                    cache.replace_with(id, version(&cache, id), b"image", w).unwrap()
                };
                assert_ne!(outcome, Outcome::Stale);
                apply(&mut model, id, w);
            }
            45..55 if !live.is_empty() => {
                let id = live[rng.usize(..live.len())];
                assert!(cache.free(id, version(&cache, id)).unwrap().installed().is_some());
                model.remove(&id);
            }
            55..70 if live.len() >= 2 => {
                // A group over two pages and a new one.
                let (a, b) = (live[0], live[live.len() - 1]);
                let fresh = cache.reserve_id().unwrap();
                let weighs = [weigh(&mut rng), weigh(&mut rng), weigh(&mut rng)];
                let free_b = rng.bool();
                let updates = [
                    GroupUpdate {
                        id: a,
                        version: Some(version(&cache, a)),
                        change: Change::Link(b"+"),
                        weigh: weighs[0],
                    },
                    GroupUpdate {
                        id: b,
                        version: Some(version(&cache, b)),
                        change: if free_b { Change::Free } else { Change::Replace(b"b") },
                        weigh: weighs[1],
                    },
                    GroupUpdate {
                        id: fresh,
                        version: None,
                        change: Change::Replace(b"n"),
                        weigh: weighs[2],
                    },
                ];
                assert_eq!(cache.apply_group(&updates).unwrap(), GroupOutcome::Installed);
                apply(&mut model, a, weighs[0]);
                if free_b {
                    model.remove(&b);
                } else {
                    apply(&mut model, b, weighs[1]);
                }
                model.insert(fresh, (0, 0));
                apply(&mut model, fresh, weighs[2]);
            }
            70..78 => {
                cache.flush().unwrap();
                history.clear();
            }
            78..84 => cache.checkpoint().unwrap(),
            84..90 => {
                cache.close().unwrap();
                cache = open(&storage);
                cache.check().unwrap();
                history.clear();
            }
            90..96 => {
                storage.crash();
                drop(cache);
                cache = open(&storage);
                cache.check().unwrap();
                let recovered = kept(&cache);
                assert!(
                    history.contains(&recovered),
                    "after a crash the totals {recovered:?} are none of the model's since the \
                     last flush: {history:?}"
                );
                // Take the pages as recovered, to go on from there.
                model = Model::new();
                for id in 0..cache.page_id_count() {
                    if cache.get(PageId(id)).unwrap().is_some() {
                        model.insert(PageId(id), (u64::MAX, 0));
                    }
                }
                // Owners and weights per page are not readable from outside; continue with
                // totals only by resetting every page to a known weight.
                for (&id, entry) in &mut model {
                    let set = Weigh::Set { owner: 0, weight: 1 };
                    assert!(
                        cache
                            .replace_with(id, version(&cache, id), b"r", set)
                            .unwrap()
                            .installed()
                            .is_some()
                    );
                    *entry = (0, 1);
                }
                cache.flush().unwrap();
                history.clear();
            }
            _ => {}
        }
        assert_eq!(kept(&cache), totals(&model), "owner totals");
        history.push(totals(&model));
    }
    cache.check().unwrap();
}

#[test]
fn owner_totals_match_the_model_across_restarts_and_crashes() {
    support::run_seeds("pagecache_weights", 300, run_case);
}
