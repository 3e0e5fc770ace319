//! Read-only opens (`Config::read_only`): every read shows what a normal open shows, every
//! write fails with `Error::ReadOnly`, and not one byte of any file changes: no torn tail is
//! cut, no temporary file removed, no checkpoint written, nothing created.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::{collections::BTreeMap, path::Path, sync::Arc};

use grove_engine::{
    Batch, Bytes, Change, Config, Db, Error, FaultOp, GroupUpdate, LogConfig, PageCache,
    PageCacheConfig, SimStorage, Storage, Weigh,
};
use support::Concat;

/// Every tree's entries, the default tree under its own name.
type Contents = BTreeMap<Bytes, Vec<(Bytes, Bytes)>>;

/// A file's bytes as a read sees them and as they would survive a crash.
type Files = BTreeMap<String, (Option<Vec<u8>>, Option<Vec<u8>>)>;

fn files(sim: &SimStorage) -> Files {
    let mut names = sim.list().unwrap();
    names.sort();
    names.into_iter().map(|n| (n.clone(), (sim.current_bytes(&n), sim.durable_bytes(&n)))).collect()
}

fn mutating_calls(sim: &SimStorage) -> Vec<u64> {
    FaultOp::MUTATING.iter().map(|&op| sim.op_count(op)).collect()
}

/// An independent disk holding the same files (after a crash: current equals durable).
fn copy_of(sim: &SimStorage) -> SimStorage {
    let copy = SimStorage::new(0);
    for (name, (bytes, _)) in files(sim) {
        copy.set_bytes(&name, bytes.unwrap());
    }
    copy
}

fn contents(db: &Db) -> Contents {
    let mut all = Contents::new();
    let mut names = db.tree_names().unwrap();
    names.push(Bytes::from(grove_engine::DEFAULT_TREE));
    for name in names {
        let tree = db.open_tree(&name).unwrap();
        all.insert(name, tree.iter().map(Result::unwrap).collect());
    }
    all
}

/// A value of `len` bytes that names its key.
fn value(key: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((i + usize::try_from(key).unwrap()) % 251).unwrap()).collect()
}

/// Values from empty to larger than a tiny node (stored out of line).
const SIZES: [usize; 6] = [0, 1, 17, 60, 200, 900];

/// Writes trees, batches, removals and a dropped tree, flushing part of it.
fn populate(db: &Db) {
    let trees: Vec<_> = (0..3u8).map(|t| db.open_tree([b't', t]).unwrap()).collect();
    for (t, tree) in trees.iter().enumerate() {
        for key in 0..120u32 {
            let len = SIZES[(usize::try_from(key).unwrap() + t) % SIZES.len()];
            tree.insert(key.to_be_bytes(), value(key, len)).unwrap();
        }
    }
    db.insert(b"default", b"tree").unwrap();
    let doomed = db.open_tree("doomed").unwrap();
    doomed.insert(b"k", b"v").unwrap();
    assert!(db.drop_tree("doomed").unwrap());
    db.generate_id().unwrap();
    db.flush().unwrap();

    let mut batch = Batch::default();
    for key in 0..40u32 {
        batch.insert(&trees[0], key.to_be_bytes(), value(key, 33));
        batch.remove(&trees[1], key.to_be_bytes());
        batch.insert(&trees[2], (1000 + key).to_be_bytes(), value(key, 300));
    }
    db.apply_batch(batch).unwrap();
    for key in (0..120u32).step_by(3) {
        trees[2].remove(key.to_be_bytes()).unwrap();
    }
    db.flush().unwrap();
    // Left unflushed: the crash keeps some prefix of it.
    for key in 200..260u32 {
        trees[0].insert(key.to_be_bytes(), value(key, 90)).unwrap();
    }
}

/// Every kind of write, each of which must fail with `Error::ReadOnly`.
fn assert_every_write_fails(db: &Db) {
    let tree = db.open_tree([b't', 0]).unwrap();
    let key = 5u32.to_be_bytes();
    let read_only = |what: &str, result: Result<(), Error>| {
        assert!(matches!(result, Err(Error::ReadOnly)), "{what}: {result:?}");
    };
    read_only("insert", tree.insert(key, b"new").map(drop));
    read_only("insert of a large value", tree.insert(b"big", vec![7; 2000]).map(drop));
    read_only("insert into the default tree", db.insert(b"x", b"y").map(drop));
    read_only("remove", tree.remove(key).map(drop));
    read_only(
        "compare_and_swap",
        tree.compare_and_swap(key, tree.get(key).unwrap(), Some(b"z")).map(drop),
    );
    read_only("update_and_fetch", tree.update_and_fetch(key, |_| Some(b"u".to_vec())).map(drop));
    read_only("fetch_and_update", tree.fetch_and_update(key, |_| None).map(drop));
    read_only("merge", tree.merge(key, b"m").map(drop));
    read_only("pop_first", tree.pop_first().map(drop));
    read_only("pop_last", tree.pop_last().map(drop));
    read_only("clear", tree.clear());
    read_only("clear of the default tree", db.clear());
    let mut batch = Batch::default();
    batch.insert(&tree, b"b", b"c");
    read_only("apply_batch", db.apply_batch(batch));
    read_only("apply_batch of nothing", db.apply_batch(Batch::default()));
    read_only("drop_tree", db.drop_tree([b't', 1]).map(drop));
    read_only("drop_tree of a missing tree", db.drop_tree("missing").map(drop));
    read_only("open_tree of a missing tree", db.open_tree("missing").map(drop));
    read_only("generate_id", db.generate_id().map(drop));
    let transaction = db.transaction(|tx| {
        tx.insert(&tree, key, b"t")?;
        Ok::<_, grove_engine::TransactionError<()>>(())
    });
    assert!(
        matches!(transaction, Err(grove_engine::TransactionError::Storage(Error::ReadOnly))),
        "a writing transaction: {transaction:?}"
    );
    // Reading is fine: snapshots and transactions that only read.
    let snapshot = db.snapshot();
    assert_eq!(snapshot.get(&tree, key).unwrap(), tree.get(key).unwrap());
    let read =
        db.transaction(|tx| Ok::<_, grove_engine::TransactionError<()>>(tx.get(&tree, key)?));
    assert_eq!(read.unwrap(), tree.get(key).unwrap());
    // Nothing was written, so there is nothing to make durable.
    db.flush().unwrap();
}

fn read_only_config(storage: Arc<dyn Storage>) -> Config {
    // The merge operator makes `merge` reach the write instead of failing for lack of one.
    Config::tiny()
        .storage(storage)
        .merge_operator(
            [b't', 0],
            Arc::new(|_: &[u8], _: Option<&[u8]>, o: &[u8]| Some(o.to_vec())),
        )
        .read_only(true)
}

#[test]
fn a_read_only_open_after_a_crash_reads_what_a_normal_open_does_and_changes_nothing() {
    let sim = SimStorage::new(11);
    let db = Config::tiny().storage(Arc::new(sim.clone())).open().unwrap();
    populate(&db);
    assert!(
        db.stats().unwrap().page_cache.checkpoints > 0,
        "tiny checkpoints happen during the writes"
    );
    // Cut the power, so that dropping the handle writes nothing, then lose what was not
    // synced.
    sim.power_cut_after(0);
    drop(db);
    sim.crash();
    // What crashes also leave: a torn record after the delta stream's tail, and temporary
    // files of an interrupted segment creation and an interrupted checkpoint.
    let mut names = sim.list().unwrap();
    names.sort();
    let tail = names.iter().rfind(|n| n.starts_with("delta-") && n.ends_with(".seg")).unwrap();
    let mut torn = sim.current_bytes(tail).unwrap();
    let complete = closed_by_its_segment_end(&torn);
    torn.extend_from_slice(&[0xa5; 37]);
    sim.set_bytes(tail, torn);
    sim.set_bytes("base-00000000000000ff.seg.tmp", vec![1; 100]);
    sim.set_bytes("checkpoint-00000000000000ff.ckpt.tmp", vec![2; 100]);

    // What a normal open shows, on a copy; it does clean the tail and the temporaries.
    let copy = copy_of(&sim);
    let normal = Config::tiny().storage(Arc::new(copy.clone())).open().unwrap();
    let expected = contents(&normal);
    drop(normal);
    let cleaned = files(&copy);
    assert!(!cleaned.contains_key("base-00000000000000ff.seg.tmp"));
    assert!(!cleaned.contains_key("checkpoint-00000000000000ff.ckpt.tmp"));
    // Unless the crash left that segment closed by its segment-end record: recovery then
    // reads nothing past that record, and has nothing to cut. (Where the crash falls
    // depends on when the flusher ran, so this happens in some runs and not others.)
    assert!(complete || cleaned[tail] != files(&sim)[tail], "a normal open cuts the torn tail");
    assert!(expected.len() == 4 && expected.values().all(|entries| !entries.is_empty()));

    let before = files(&sim);
    let calls = mutating_calls(&sim);
    let db = read_only_config(Arc::new(sim.clone())).open().unwrap();
    assert_eq!(contents(&db), expected);
    let tree = db.open_tree([b't', 2]).unwrap();
    assert_eq!(tree.get(1001u32.to_be_bytes()).unwrap().as_deref(), Some(&value(1, 300)[..]));
    assert_eq!(tree.range(10u32.to_be_bytes()..20u32.to_be_bytes()).count(), 7);
    db.check().unwrap();
    let stats = db.stats().unwrap().page_cache;
    assert!(stats.cold_reads > 0 && stats.evictions > 0, "reads page in and out: {stats:?}");
    assert_eq!((stats.checkpoints, stats.consolidations, stats.maintenance_errors), (0, 0, 0));
    assert_every_write_fails(&db);
    assert_eq!(contents(&db), expected, "failed writes change nothing");
    drop(db);

    assert_eq!(mutating_calls(&sim), calls, "no write, sync, create, remove or rename");
    assert_eq!(files(&sim), before, "every file byte-identical, none added or removed");
    // And the directory is still what a normal open recovers.
    let reopened = Config::tiny().storage(Arc::new(sim)).open().unwrap();
    assert_eq!(contents(&reopened), expected);
}

/// Whether a segment file's records end with a segment-end record (see `docs/format.md`):
/// walked from the 40-byte segment header by each record's length, up to the first record
/// header that is all zeros (past the data) or runs off the file.
fn closed_by_its_segment_end(segment: &[u8]) -> bool {
    const SEGMENT_END: u8 = 2;
    let mut at = 40;
    while let Some(header) = segment.get(at..at + 20) {
        if header.iter().all(|&byte| byte == 0) {
            return false;
        }
        if header[16] == SEGMENT_END {
            return true;
        }
        let body = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        at = at.saturating_add(20).saturating_add(usize::try_from(body).unwrap_or(usize::MAX));
    }
    false
}

/// Every file of `dir` with its bytes.
fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().into_string().unwrap(), std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

#[test]
fn a_read_only_open_of_a_directory_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Config::tiny().path(dir.path()).open().unwrap();
    populate(&db);
    let expected = contents(&db);
    drop(db);

    let before = read_dir(dir.path());
    assert!(before.contains_key("grove.lock"));
    let db = Config::tiny().path(dir.path()).read_only(true).open().unwrap();
    assert_eq!(contents(&db), expected);
    // The directory stays locked, read-only or not.
    assert!(matches!(Config::tiny().path(dir.path()).open(), Err(Error::AlreadyOpen { .. })));
    assert!(matches!(db.insert(b"k", b"v"), Err(Error::ReadOnly)));
    drop(db);
    assert_eq!(read_dir(dir.path()), before);
}

#[test]
fn a_read_only_open_of_an_empty_place_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let result = Config::new().path(&missing).read_only(true).open();
    assert!(
        matches!(&result, Err(Error::Config(m)) if m.contains("no Grove database")),
        "{result:?}"
    );
    assert!(!missing.exists());

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(Config::new().path(&empty).read_only(true).open(), Err(Error::Config(_))));
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"not a database").unwrap();
    assert!(matches!(Config::new().path(&foreign).read_only(true).open(), Err(Error::Config(_))));
    assert_eq!(read_dir(&empty).len(), 0);
    assert_eq!(read_dir(&foreign).into_keys().collect::<Vec<_>>(), ["notes.txt"]);

    let sim = SimStorage::new(3);
    let result = Config::new().storage(Arc::new(sim.clone())).read_only(true).open();
    assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    assert!(sim.list().unwrap().is_empty());
    assert_eq!(mutating_calls(&sim), vec![0; FaultOp::MUTATING.len()]);
}

#[test]
fn read_only_cannot_be_combined_with_options_that_write() {
    let dir = tempfile::tempdir().unwrap();
    grove_engine::open(dir.path()).unwrap().insert(b"k", b"v").unwrap();
    for config in [Config::new().temporary(true), Config::new().create_new(true)] {
        let result = config.path(dir.path()).read_only(true).open();
        assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    }
    // Set through the page cache settings, read-only works the same.
    let cache = PageCacheConfig {
        log: LogConfig { read_only: true, ..LogConfig::default() },
        ..PageCacheConfig::default()
    };
    let db = Config::new().path(dir.path()).page_cache(cache).open().unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(matches!(db.insert(b"k", b"w"), Err(Error::ReadOnly)));
}

#[test]
fn a_read_only_page_cache_refuses_every_change_and_still_pages_in_and_out() {
    let sim = SimStorage::new(5);
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let config = PageCacheConfig::tiny();
    let cache = PageCache::open(storage.clone(), config.clone(), Arc::new(Concat)).unwrap();
    let mut pages = Vec::new();
    for i in 0..60u8 {
        let (id, version) = cache.allocate(&[i; 300]).unwrap();
        // Fragments left unconsolidated at the end of the log: replayed into memory.
        assert!(cache.link(id, version, &[i; 5]).unwrap().installed().is_some());
        pages.push(id);
    }
    cache.flush().unwrap();
    drop(cache); // without `close`: no final checkpoint
    let before = files(&sim);
    let calls = mutating_calls(&sim);

    let read_only = PageCacheConfig { log: LogConfig { read_only: true, ..config.log }, ..config };
    let cache = PageCache::open(storage, read_only, Arc::new(Concat)).unwrap();
    assert!(cache.is_read_only());
    for (i, &id) in (0u8..).zip(&pages) {
        let page = cache.get(id).unwrap().unwrap();
        let mut expected = vec![i; 300];
        expected.extend_from_slice(&[i; 5]);
        assert_eq!(page.materialize(&Concat), expected);
    }
    assert!(cache.stats().evictions > 0, "{:?}", cache.stats());
    let (id, version) = (pages[0], cache.get(pages[0]).unwrap().unwrap().version());
    let refused = |what: &str, failed: bool| assert!(failed, "{what} was not refused");
    refused("allocate", matches!(cache.allocate(b"x"), Err(Error::ReadOnly)));
    refused("link", matches!(cache.link(id, version, b"x"), Err(Error::ReadOnly)));
    refused("replace", matches!(cache.replace(id, version, b"x"), Err(Error::ReadOnly)));
    refused("free", matches!(cache.free(id, version), Err(Error::ReadOnly)));
    refused("reserve_id", matches!(cache.reserve_id(), Err(Error::ReadOnly)));
    let update =
        GroupUpdate { id, version: Some(version), change: Change::Link(b"x"), weigh: Weigh::Keep };
    refused("apply_group", matches!(cache.apply_group(&[update]), Err(Error::ReadOnly)));
    refused("checkpoint", matches!(cache.checkpoint(), Err(Error::ReadOnly)));
    refused("clean", matches!(cache.clean(), Err(Error::ReadOnly)));
    cache.check().unwrap();
    cache.close().unwrap();

    assert_eq!(mutating_calls(&sim), calls);
    assert_eq!(files(&sim), before);
}
