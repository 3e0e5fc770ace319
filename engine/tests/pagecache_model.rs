//! The page cache against a plain model (`BTreeMap<PageId, Vec<u8>>`): random allocate,
//! link, replace, free, read, flush, checkpoint, clean, restart and crash, in a tiny
//! configuration where eviction, consolidation, checkpoints and cleaning happen all the
//! time. After a crash the pages must equal the model at some point at or after the last
//! completed flush. Group updates change several pages at once: a crash keeps all of a
//! group or none of it.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use support::Concat;

use std::{collections::BTreeMap, sync::Arc};

use grove_engine::{
    Change, GroupOutcome, GroupUpdate, Outcome, PageCache, PageCacheConfig, PageCacheStats, PageId,
    SimStorage, Storage, Weigh,
};

type Model = BTreeMap<PageId, Vec<u8>>;

/// The largest image a page may grow to (a tiny log record holds a little under 1 KiB).
const MAX_IMAGE: usize = 600;

fn open(storage: &Arc<SimStorage>, config: &PageCacheConfig) -> PageCache {
    let storage: Arc<dyn Storage> = storage.clone();
    PageCache::open(storage, config.clone(), Arc::new(Concat)).unwrap()
}

/// Random bytes, of a random length in `len`.
fn bytes(rng: &mut fastrand::Rng, len: std::ops::Range<usize>) -> Vec<u8> {
    let len = rng.usize(len);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// Every page the cache holds, materialized.
fn contents(cache: &PageCache) -> Model {
    let mut pages = Model::new();
    for id in 0..cache.page_id_count() + 2 {
        if let Some(page) = cache.get(PageId(id)).unwrap() {
            pages.insert(PageId(id), page.materialize(&Concat));
        }
    }
    pages
}

fn version_of(cache: &PageCache, id: PageId) -> u64 {
    cache.get(id).unwrap().expect("the model says this page is allocated").version()
}

/// Totals over every case, to prove the interesting paths ran.
#[derive(Debug, Default)]
struct Seen {
    crashes: u64,
    crashes_that_lost_updates: u64,
    evictions: u64,
    cold_reads: u64,
    consolidations: u64,
    checkpoints: u64,
    relocations: u64,
    deleted_segments: u64,
    groups: u64,
}

impl Seen {
    fn add(&mut self, stats: &PageCacheStats) {
        self.evictions += stats.evictions;
        self.cold_reads += stats.cold_reads;
        self.consolidations += stats.consolidations;
        self.checkpoints += stats.checkpoints;
        self.relocations += stats.relocations;
        self.deleted_segments += stats.deleted_segments;
    }
}

fn run_case(seed: u64, seen: &mut Seen) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let storage = Arc::new(SimStorage::new(seed));
    let mut config = PageCacheConfig::tiny();
    config.consolidate_after = rng.usize(1..=3);
    config.cache_bytes = rng.u64(2 << 10..32 << 10);
    config.log.compression_level = rng.bool().then_some(1);
    config.log.flush_every_ms = if rng.bool() { Some(2) } else { None };

    let mut cache = open(&storage, &config);
    let mut model = Model::new();
    // The model after every update since the last completed flush (or restart).
    let mut history = vec![model.clone()];
    let steps = rng.usize(100..400);
    for _ in 0..steps {
        let live: Vec<PageId> = model.keys().copied().collect();
        let pick = |rng: &mut fastrand::Rng| live[rng.usize(..live.len())];
        match rng.u32(..110) {
            0..20 => {
                let image = bytes(&mut rng, 1..200);
                let (id, _) = cache.allocate(&image).unwrap();
                assert!(model.insert(id, image).is_none(), "allocate returned a used {id}");
            }
            20..50 if !live.is_empty() => {
                let id = pick(&mut rng);
                let version = version_of(&cache, id);
                let fragment = bytes(&mut rng, 1..40);
                let image = model.get_mut(&id).unwrap();
                if image.len() + fragment.len() > MAX_IMAGE {
                    let outcome = cache.replace(id, version, &fragment).unwrap();
                    assert!(matches!(outcome, Outcome::Installed { .. }));
                    *image = fragment;
                } else {
                    let outcome = cache.link(id, version, &fragment).unwrap();
                    assert_eq!(outcome, Outcome::Installed { version: version + 1 });
                    image.extend_from_slice(&fragment);
                }
            }
            50..58 if !live.is_empty() => {
                let id = pick(&mut rng);
                let version = version_of(&cache, id);
                let image = bytes(&mut rng, 1..300);
                assert!(cache.replace(id, version, &image).unwrap().installed().is_some());
                // A stale version must change nothing.
                assert_eq!(cache.link(id, version, b"stale").unwrap(), Outcome::Stale);
                model.insert(id, image);
            }
            58..66 if !live.is_empty() => {
                let id = pick(&mut rng);
                let version = version_of(&cache, id);
                assert!(cache.free(id, version).unwrap().installed().is_some());
                assert_eq!(cache.get(id).unwrap(), None);
                model.remove(&id);
            }
            66..84 => {
                let id = PageId(rng.u64(..cache.page_id_count() + 2));
                let page = cache.get(id).unwrap().map(|p| p.materialize(&Concat));
                assert_eq!(page.as_ref(), model.get(&id), "read of {id}");
            }
            84..90 => {
                cache.flush().unwrap();
                history.clear();
            }
            90..92 => cache.checkpoint().unwrap(),
            92..93 => cache.clean().unwrap(),
            93..94 => {
                cache.check().unwrap();
            }
            94..97 => {
                seen.add(&cache.stats());
                cache.close().unwrap();
                cache = open(&storage, &config);
                cache.check().unwrap();
                assert_eq!(contents(&cache), model, "after a clean restart");
                history.clear();
            }
            97..100 => {
                seen.add(&cache.stats());
                storage.crash();
                drop(cache);
                cache = open(&storage, &config);
                cache.check().unwrap();
                let recovered = contents(&cache);
                seen.crashes += 1;
                if recovered != model {
                    seen.crashes_that_lost_updates += 1;
                }
                assert!(
                    history.contains(&recovered),
                    "after a crash the pages are not the model at any point since the last \
                     flush ({} candidates; recovered {} pages, model {})",
                    history.len(),
                    recovered.len(),
                    model.len()
                );
                model = recovered;
                history.clear();
            }
            100..110 if !live.is_empty() => group(&cache, &mut model, &live, &mut rng, seen),
            _ => {}
        }
        history.push(model.clone());
    }
    assert_eq!(contents(&cache), model, "at the end");
    cache.check().unwrap();
    seen.add(&cache.stats());
}

/// A group update over a few live pages and maybe a new one: links, replaces, frees and an
/// allocation, applied to the model at once (so a crash must keep all of it or none). One
/// time in four, one expected version is wrong and nothing may change.
fn group(
    cache: &PageCache,
    model: &mut Model,
    live: &[PageId],
    rng: &mut fastrand::Rng,
    seen: &mut Seen,
) {
    let mut ids: Vec<PageId> = live.to_vec();
    rng.shuffle(&mut ids);
    ids.truncate(rng.usize(1..=4));
    let fresh = rng.bool().then(|| cache.reserve_id().unwrap());
    let stale = rng.u8(..4) == 0;
    let mut payloads: Vec<(PageId, Option<u64>, u8, Vec<u8>)> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let mut version = version_of(cache, id);
        if stale && i == 0 {
            version += 1;
        }
        let image = &model[&id];
        let (change, payload) = match rng.u8(..3) {
            0 if image.len() + 40 <= MAX_IMAGE => (0, bytes(rng, 1..40)),
            0 | 1 => (1, bytes(rng, 1..200)),
            _ => (2, Vec::new()),
        };
        payloads.push((id, Some(version), change, payload));
    }
    if let Some(id) = fresh {
        payloads.push((id, None, 1, bytes(rng, 1..200)));
    }
    let updates: Vec<GroupUpdate<'_>> = payloads
        .iter()
        .map(|(id, version, change, payload)| GroupUpdate {
            id: *id,
            version: *version,
            change: match change {
                0 => Change::Link(payload),
                1 => Change::Replace(payload),
                _ => Change::Free,
            },
            weigh: Weigh::Keep,
        })
        .collect();
    let outcome = cache.apply_group(&updates).unwrap();
    if stale {
        assert_eq!(outcome, GroupOutcome::Stale, "a group with a wrong version applied");
        if let Some(id) = fresh {
            cache.release_id(id);
        }
        return;
    }
    assert_eq!(outcome, GroupOutcome::Installed);
    seen.groups += 1;
    for (id, _, change, payload) in payloads {
        match change {
            0 => model.get_mut(&id).unwrap().extend_from_slice(&payload),
            1 => {
                model.insert(id, payload);
            }
            _ => {
                model.remove(&id);
            }
        }
        let read = cache.get(id).unwrap().map(|p| p.materialize(&Concat));
        assert_eq!(read.as_ref(), model.get(&id), "read of {id} after its group");
    }
}

#[test]
fn pages_match_the_model_across_restarts_and_crashes() {
    let seen = std::cell::RefCell::new(Seen::default());
    support::run_seeds("pagecache_model", 500, |seed| run_case(seed, &mut seen.borrow_mut()));
    let seen = seen.into_inner();
    println!("{seen:?}");
    if support::seeds(500).len() >= 100 {
        // The tiny configuration must exercise every path, or this test proves little.
        assert!(seen.crashes_that_lost_updates * 10 >= seen.crashes, "{seen:?}");
        assert!(seen.evictions > 0 && seen.cold_reads > 0, "{seen:?}");
        assert!(seen.consolidations > 0 && seen.checkpoints > 0, "{seen:?}");
        assert!(seen.relocations > 0 && seen.deleted_segments > 0, "{seen:?}");
        assert!(seen.groups > 0, "{seen:?}");
    }
}
