//! Threads hammer shared pages: writers link and replace (retrying when they lose a race),
//! readers check every page they see, a churn thread allocates and frees pages, and a
//! maintenance thread checkpoints and cleans, all with a cache small enough that pages are
//! paged out and read back constantly. No update may be lost or doubled, and no reader may
//! see a page that is not some whole version of it.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use support::Concat;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use grove_engine::{MemStorage, Outcome, PageCache, PageCacheConfig, PageId, Storage};

/// One logical update: 8 bytes naming its writer and sequence number.
fn entry(writer: u32, seq: u32) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&writer.to_le_bytes());
    out[4..].copy_from_slice(&seq.to_le_bytes());
    out
}

/// Splits an image into entries, checking that each writer's entries are in order (a torn
/// or freed state would break this).
fn entries(image: &[u8]) -> Vec<(u32, u32)> {
    assert_eq!(image.len() % 8, 0, "an image is whole entries");
    let mut last: BTreeMap<u32, u32> = BTreeMap::new();
    image
        .chunks(8)
        .map(|chunk| {
            let writer = u32::from_le_bytes(chunk[..4].try_into().unwrap());
            let seq = u32::from_le_bytes(chunk[4..].try_into().unwrap());
            if let Some(previous) = last.insert(writer, seq) {
                assert!(previous < seq, "writer {writer}'s entries out of order");
            }
            (writer, seq)
        })
        .collect()
}

const PAGES: u64 = 24;
/// Entries per page before a writer replaces it with a fresh, compacted image.
const COMPACT_AT: usize = 40;

fn config() -> PageCacheConfig {
    let mut config = PageCacheConfig::tiny();
    config.log.segment_size = 16 << 10;
    config.log.buffer_size = 2048;
    config.cache_bytes = 2 << 10;
    config.consolidate_after = 3;
    config.checkpoint_every = 32 << 10;
    config
}

fn run(writers: u32, per_writer: u32) {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let cache = PageCache::open(storage.clone(), config(), Arc::new(Concat)).unwrap();
    let pages: Vec<PageId> = (0..PAGES).map(|_| cache.allocate(&[]).unwrap().0).collect();
    // Entries moved out of pages when a writer compacts one: "retired", not lost.
    let retired = Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));

    let mut handles = Vec::new();
    for writer in 0..writers {
        let (cache, pages, retired) = (cache.clone(), pages.clone(), retired.clone());
        handles.push(thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(u64::from(writer));
            for seq in 0..per_writer {
                let id = pages[rng.usize(..pages.len())];
                loop {
                    let page = cache.get(id).unwrap().unwrap();
                    let image = page.materialize(&Concat);
                    let new = entry(writer, seq);
                    let outcome = if image.len() / 8 >= COMPACT_AT {
                        // Replace: retire the old entries, start the page afresh.
                        let outcome = cache.replace(id, page.version(), &new).unwrap();
                        if outcome != Outcome::Stale {
                            retired.lock().unwrap().extend(entries(&image));
                        }
                        outcome
                    } else if rng.u8(..10) == 0 {
                        let mut whole = image.clone();
                        whole.extend_from_slice(&new);
                        cache.replace(id, page.version(), &whole).unwrap()
                    } else {
                        cache.link(id, page.version(), &new).unwrap()
                    };
                    if outcome != Outcome::Stale {
                        break;
                    }
                }
            }
        }));
    }

    let mut watchers = Vec::new();
    for reader in 0..2u64 {
        let (cache, pages, done) = (cache.clone(), pages.clone(), done.clone());
        watchers.push(thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(100 + reader);
            let mut versions = vec![0; pages.len()];
            while !done.load(Ordering::Relaxed) {
                let index = rng.usize(..pages.len());
                let page = cache.get(pages[index]).unwrap().expect("shared pages stay allocated");
                assert!(page.version() >= versions[index], "a page's version went backwards");
                versions[index] = page.version();
                entries(&page.materialize(&Concat));
            }
        }));
    }
    {
        // Churn: allocate and free private pages, so ids are reused under the readers.
        let (cache, done) = (cache.clone(), done.clone());
        watchers.push(thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let (id, version) = cache.allocate(&entry(u32::MAX, 0)).unwrap();
                assert_eq!(cache.get(id).unwrap().unwrap().base(), entry(u32::MAX, 0));
                assert!(cache.free(id, version).unwrap().installed().is_some());
            }
        }));
    }
    {
        let (cache, done) = (cache.clone(), done.clone());
        watchers.push(thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                cache.clean().unwrap();
                cache.checkpoint().unwrap();
            }
        }));
    }

    for handle in handles {
        handle.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for handle in watchers {
        handle.join().unwrap();
    }

    let check = |cache: &PageCache| {
        let mut all = retired.lock().unwrap().clone();
        for &id in &pages {
            all.extend(entries(&cache.get(id).unwrap().unwrap().materialize(&Concat)));
        }
        all.sort_unstable();
        let expected: Vec<(u32, u32)> =
            (0..writers).flat_map(|w| (0..per_writer).map(move |s| (w, s))).collect();
        assert_eq!(all, expected, "every update exactly once");
    };
    check(&cache);
    cache.check().unwrap();
    let stats = cache.stats();
    assert!(stats.evictions > 0 && stats.cold_reads > 0, "{stats:?}");
    assert!(stats.checkpoints > 0, "{stats:?}");
    cache.close().unwrap();
    let cache = PageCache::open(storage, config(), Arc::new(Concat)).unwrap();
    check(&cache);
    cache.check().unwrap();
}

#[test]
fn two_writers_lose_no_update() {
    run(2, 4000);
}

#[test]
fn four_writers_lose_no_update() {
    run(4, 2000);
}
