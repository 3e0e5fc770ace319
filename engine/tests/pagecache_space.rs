//! Maintenance does what it must and no more: the pass that finds segments emptied (by
//! overwrites, or by its own cleaning) deletes them in the same pass, steady overwriting
//! keeps the disk within a bound of the live data, the cleaner empties segments that are
//! cheap to empty, closing after a session that wrote nothing does not rewrite the
//! checkpoint, and the bytes written and the time maintenance took are counted.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::sync::Arc;

use grove_engine::{
    Change, GroupOutcome, GroupUpdate, LogConfig, Outcome, PageCache, PageCacheConfig, PageId,
    SimStorage, Storage, Weigh,
};
use support::Concat;

/// 64 pages of 256 bytes in 4 KiB segments, a checkpoint every 32 KiB of log.
fn config() -> PageCacheConfig {
    PageCacheConfig {
        log: LogConfig { segment_size: 4096, buffer_size: 1024, ..LogConfig::tiny() },
        cache_bytes: 1 << 20,
        consolidate_after: 4,
        checkpoint_every: 32 << 10,
        clean_below: 0.6,
        // On the writes, so that each run measures the same checkpoints.
        maintenance_thread: false,
    }
}

const PAGES: usize = 64;
const IMAGE: usize = 256;

type Failed = Box<dyn std::error::Error>;

fn overwrite_all(cache: &PageCache, pages: &mut [(PageId, u64)], round: u8) -> Result<(), Failed> {
    for (id, version) in pages.iter_mut() {
        match cache.replace(*id, *version, &[round; IMAGE])? {
            Outcome::Installed { version: new } => *version = new,
            Outcome::Stale => return Err(format!("{id} changed under a single writer").into()),
        }
    }
    Ok(())
}

/// A cache on a simulated disk seeded with `seed`, holding `PAGES` pages (id, version).
fn with_pages(seed: u64) -> (PageCache, Vec<(PageId, u64)>) {
    with_pages_on(Arc::new(SimStorage::new(seed))).unwrap()
}

/// A cache on `storage` holding `PAGES` pages (id, version).
fn with_pages_on(storage: Arc<dyn Storage>) -> Result<(PageCache, Vec<(PageId, u64)>), Failed> {
    let cache = PageCache::open(storage, config(), Arc::new(Concat))?;
    let pages = (0..PAGES).map(|_| cache.allocate(&[0; IMAGE])).collect::<Result<_, _>>()?;
    Ok((cache, pages))
}

#[test]
fn the_first_maintenance_pass_deletes_what_it_finds_dead() {
    let (cache, mut pages) = with_pages(7);
    // Each round writes ~17 KiB of replaces, which leave the previous round's records dead:
    // the second round crosses the first checkpoint's 32 KiB mark.
    let mut round = 0;
    while cache.stats().checkpoints == 0 {
        round += 1;
        overwrite_all(&cache, &mut pages, round).unwrap();
        assert!(round < 10, "no maintenance ran: {:?}", cache.stats());
    }
    let stats = cache.stats();
    assert!(
        stats.deleted_segments > 0,
        "the pass that took the first checkpoint left every dead segment on disk: {stats:#?}"
    );
}

#[test]
fn maintenance_passes_are_counted_with_the_time_they_took() -> Result<(), Failed> {
    // What a tool shows of what maintenance cost the writes: the passes, their time, and
    // the part of it spent moving records.
    let (cache, mut pages) = with_pages(9);
    assert_eq!(cache.stats().maintenance_passes, 0);
    for round in 1..=20 {
        overwrite_all(&cache, &mut pages, round)?;
    }
    let stats = cache.stats();
    assert!(stats.maintenance_passes > 0 && stats.cleaned_segments > 0, "{stats:#?}");
    assert!(!stats.maintenance_time.is_zero() && !stats.cleaning_time.is_zero(), "{stats:#?}");
    // An explicit checkpoint or cleaning is not a periodic pass.
    cache.checkpoint()?;
    cache.clean()?;
    let after = cache.stats();
    assert_eq!(after.maintenance_passes, stats.maintenance_passes);
    assert_eq!(after.maintenance_time, stats.maintenance_time);
    assert_eq!(after.checkpoints, stats.checkpoints + 1);
    Ok(())
}

#[test]
fn steady_overwrites_keep_the_disk_within_a_bound_of_the_live_data() {
    let (cache, mut pages) = with_pages(8);
    let mut worst: f64 = 0.0;
    for round in 1..=60 {
        overwrite_all(&cache, &mut pages, round).unwrap();
        let stats = cache.stats();
        if stats.checkpoints >= 2 {
            worst = worst.max(stats.space_amplification);
        }
    }
    let stats = cache.stats();
    assert!(stats.deleted_segments > 0, "{stats:#?}");
    // Live data is ~17 KiB; the log keeps about one checkpoint interval (32 KiB) of delta
    // stream behind the newest checkpoint, plus the segments being filled and those the
    // cleaner has not reached. Measured: 2.9x at worst; 4.9x when deleting waited for two
    // more checkpoints.
    assert!(worst < 4.0, "space amplification reached {worst:.2}: {stats:#?}");
}

#[test]
fn the_fallback_checkpoint_of_a_pass_that_deletes_what_it_cleaned_still_opens() -> Result<(), Failed>
{
    let storage = Arc::new(SimStorage::new(11));
    let (cache, mut pages) = with_pages_on(storage.clone())?;
    // Overwrite until a pass empties segments by cleaning and deletes them at once: it
    // keeps its checkpoint twice, so that both checkpoints on disk postdate the cleaning.
    let mut round = 0;
    loop {
        let before = cache.stats();
        round += 1;
        overwrite_all(&cache, &mut pages, round)?;
        let after = cache.stats();
        if after.cleaned_segments > before.cleaned_segments
            && after.deleted_segments > before.deleted_segments
        {
            break;
        }
        assert!(round < 40, "no pass cleaned and deleted: {after:#?}");
    }
    cache.flush()?;
    storage.crash();
    drop(cache);

    // With the newest checkpoint damaged, the one before it must still find every record
    // it names: the pass deleted nothing it needs.
    let mut names: Vec<String> =
        storage.list()?.into_iter().filter(|name| name.ends_with(".ckpt")).collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    if let Some(newest) = names.last() {
        storage.flip_bit(newest, 70, 3)?;
    }
    let cache = PageCache::open(storage, config(), Arc::new(Concat))?;
    assert!(cache.stats().checkpoint_fallback.is_some());
    for &(id, _) in &pages {
        let base = cache.get(id)?.map(|page| page.base().to_vec());
        assert_eq!(base, Some(vec![round; IMAGE]), "{id}");
    }
    cache.check()?;
    Ok(())
}

#[test]
fn delta_segments_half_full_of_whole_images_are_emptied() {
    // Allocating writes every image to the delta stream; overwriting every other page
    // leaves those segments about half live, all of it whole images. Emptying one costs
    // what is live in it, under `clean_below` (0.6) of it: worth doing, although a delta
    // segment of the same liveness made of fragments (each costing its whole page) would
    // not be.
    let (cache, mut pages) = with_pages(10);
    let evens: Vec<usize> = (0..PAGES).step_by(2).collect();
    for &i in &evens {
        let (id, version) = pages[i];
        match cache.replace(id, version, &[9; IMAGE]).unwrap() {
            Outcome::Installed { version: new } => pages[i].1 = new,
            Outcome::Stale => panic!("{id} changed under a single writer"),
        }
    }
    let before = cache.stats();
    assert_eq!(before.relocations, 0, "{before:#?}");
    cache.clean().unwrap();
    let after = cache.stats();
    assert!(after.cleaned_segments > 0 && after.relocations > 0, "{after:#?}");
    // Each page moved has only its base, an image.
    let moved = after.relocations - before.relocations;
    assert_eq!(after.relocated_bytes - before.relocated_bytes, moved * IMAGE as u64);
    for (i, &(id, _)) in pages.iter().enumerate() {
        let want = if i % 2 == 0 { [9; IMAGE] } else { [0; IMAGE] };
        assert_eq!(cache.get(id).unwrap().unwrap().base(), &want[..], "page {i}");
    }
    cache.check().unwrap();
}

/// The version an update installed, or an error if it found the page changed.
fn installed(outcome: Outcome) -> Result<u64, Failed> {
    match outcome {
        Outcome::Installed { version } => Ok(version),
        Outcome::Stale => Err("a page changed under a single writer".into()),
    }
}

#[test]
fn the_bytes_written_are_counted_by_kind() -> Result<(), Failed> {
    // What an operator's tool shows of where the log's bytes go: each write's payload,
    // counted once it is installed. Allocations and replacements are images, links (a
    // group's too) fragments, and a consolidation counts the image it writes.
    let (cache, pages) = with_pages(11);
    let start = cache.stats();
    assert_eq!((start.image_bytes, start.fragment_bytes), ((PAGES * IMAGE) as u64, 0));
    let (id, mut version) = pages[0];
    for _ in 0..3 {
        version = installed(cache.link(id, version, &[7; 10])?)?;
    }
    let linked = cache.stats();
    assert_eq!((linked.fragment_bytes, linked.consolidated_bytes), (30, 0), "{linked:#?}");
    // The fourth fragment makes the chain long enough (`consolidate_after` is 4).
    installed(cache.link(id, version, &[7; 10])?)?;
    let merged = cache.stats();
    assert_eq!((merged.fragment_bytes, merged.consolidations), (40, 1), "{merged:#?}");
    assert_eq!(merged.consolidated_bytes, (IMAGE + 40) as u64);
    let image = [9; IMAGE];
    let group = [
        GroupUpdate {
            id: pages[1].0,
            version: Some(pages[1].1),
            change: Change::Link(&[1; 5]),
            weigh: Weigh::Keep,
        },
        GroupUpdate {
            id: pages[2].0,
            version: Some(pages[2].1),
            change: Change::Replace(&image),
            weigh: Weigh::Keep,
        },
    ];
    assert_eq!(cache.apply_group(&group)?, GroupOutcome::Installed);
    let grouped = cache.stats();
    assert_eq!(grouped.fragment_bytes, 45);
    assert_eq!(grouped.image_bytes, ((PAGES + 1) * IMAGE) as u64);
    // Stale updates write nothing that counts.
    assert_eq!(cache.link(id, version, &[7; 10])?, Outcome::Stale);
    assert_eq!(cache.stats().fragment_bytes, 45);
    Ok(())
}

#[test]
fn closing_without_writes_keeps_the_checkpoint() {
    let storage = Arc::new(SimStorage::new(9));
    let open = || {
        let storage: Arc<dyn Storage> = storage.clone();
        PageCache::open(storage, config(), Arc::new(Concat)).unwrap()
    };
    let cache = open();
    let (id, _) = cache.allocate(&[1; IMAGE]).unwrap();
    cache.close().unwrap();

    let cache = open();
    let written = cache.stats().checkpoint_seq;
    assert!(written > 0, "closing after a write takes a checkpoint");
    assert_eq!(cache.get(id).unwrap().unwrap().base(), &[1; IMAGE][..]);
    cache.close().unwrap();

    let cache = open();
    assert_eq!(cache.stats().checkpoint_seq, written, "a session that only read took one");
    let version = cache.get(id).unwrap().unwrap().version();
    assert!(matches!(cache.replace(id, version, &[2; IMAGE]).unwrap(), Outcome::Installed { .. }));
    cache.close().unwrap();

    let cache = open();
    assert_eq!(cache.stats().checkpoint_seq, written + 1, "a session that wrote takes one");
    assert_eq!(cache.get(id).unwrap().unwrap().base(), &[2; IMAGE][..]);
    cache.check().unwrap();
}

#[test]
fn segment_figures_add_up_to_the_totals_and_to_a_recount() {
    let (cache, mut pages) = with_pages(11);
    for round in 1..=6 {
        overwrite_all(&cache, &mut pages, round).unwrap();
    }
    // As they stand, with records still in the log's buffers: some may lie in segments
    // that have no file yet, and count all the same.
    let stats = cache.stats();
    let segments = || stats.delta_segments.iter().chain(&stats.base_segments);
    assert!(!stats.delta_segments.is_empty() && !stats.base_segments.is_empty(), "{stats:#?}");
    for list in [&stats.delta_segments, &stats.base_segments] {
        assert!(list.windows(2).all(|w| w[0].id < w[1].id), "oldest first: {list:?}");
    }
    assert_eq!(segments().map(|s| s.live_bytes).sum::<u64>(), stats.live_bytes);
    let files: u64 = segments().map(|s| s.file_len).sum();
    assert!(files <= stats.disk_bytes && stats.disk_bytes - files <= 2 * stats.checkpoint_bytes);
    assert_eq!(cache.check().unwrap().live_bytes, stats.live_bytes, "the counters drifted");

    // Once both streams are written (a checkpoint flushes them), no segment holds more
    // live bytes than its file, and the overwrites' dead records show.
    cache.checkpoint().unwrap();
    let written = cache.stats();
    let segments = || written.delta_segments.iter().chain(&written.base_segments);
    assert!(segments().all(|s| s.live_bytes <= s.file_len), "{written:#?}");
    assert!(segments().any(|s| s.live_bytes < s.file_len), "{written:#?}");
}
