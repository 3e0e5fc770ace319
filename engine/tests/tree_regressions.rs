//! Regressions found by other tests, each kept as the scenario that found it.

use std::sync::Arc;

use grove_engine::{Config, MemStorage};

/// Found by the process-kill test: keys inserted on the right and removed on the left (a
/// queue, a time window) left emptied leaves behind, because a leaf was measured with its
/// fragments (its removes among them) and a leaf with a full sibling never merged. The
/// tree grew by about one node per five inserts while holding 500 entries.
#[test]
fn a_sliding_window_of_keys_keeps_the_tree_small() {
    let db = Config::new()
        .storage(Arc::new(MemStorage::new()))
        .node_bytes(512)
        .cache_capacity(256 << 10)
        .open()
        .unwrap();
    let tree = db.open_tree("window").unwrap();
    let mut most = 0;
    for n in 0u64..8000 {
        tree.insert(format!("{n:08}"), [7u8; 30]).unwrap();
        if n >= 500 {
            tree.remove(format!("{:08}", n - 500)).unwrap();
        }
        if n % 1000 == 999 {
            let report = db.check().unwrap();
            assert_eq!(tree.len().unwrap(), 500);
            most = most.max(report.nodes);
        }
    }
    // 500 entries of about 40 bytes fill about 60 nodes of 512 bytes at the fullest, and
    // twice that at the emptiest a merge leaves; the catalog and default tree add 2.
    assert!(most < 150, "the tree grew to {most} nodes for 500 entries");
    // And reading it all back after a reopen-sized cache is done works.
    assert_eq!(tree.iter().count(), 500);
}

/// Found by the concurrency test: once an iterator's front found nothing left between its
/// bounds and took an entry from the back's buffer, a key written into the gap afterwards
/// was still fetched by the front, and came out after a larger key.
#[test]
fn an_iterator_end_that_ran_dry_never_fetches_again() {
    let db = Config::tiny().storage(Arc::new(MemStorage::new())).open().unwrap();
    db.insert(b"b", b"").unwrap();
    db.insert(b"c", b"").unwrap();
    let mut iter = db.range(&b"a"[..]..);
    // The back takes the whole (only) leaf: b and c.
    assert_eq!(iter.next_back().unwrap().unwrap().0, b"c");
    // The front finds nothing in [a, b) and takes b from the back's buffer.
    assert_eq!(iter.next().unwrap().unwrap().0, b"b");
    // A key written into the gap now must not come out after b.
    db.insert(b"a5", b"").unwrap();
    assert!(iter.next().is_none(), "a key came out of order");
    assert!(iter.next_back().is_none());
}

/// Found by the model test while splits moved to drafts: one batch that splits the roots of
/// two trees must keep both, since each root becomes an index node over its own pieces.
#[test]
fn one_batch_that_splits_two_roots_keeps_both_trees() {
    let db = Config::new().storage(Arc::new(MemStorage::new())).node_bytes(256).open().unwrap();
    let (left, right) = (db.open_tree("left").unwrap(), db.open_tree("right").unwrap());
    let mut batch = grove_engine::Batch::default();
    for n in 0u32..40 {
        batch.insert(&left, n.to_be_bytes(), [1u8; 20]);
        batch.insert(&right, n.to_be_bytes(), [2u8; 20]);
    }
    db.apply_batch(batch).unwrap();
    db.check().unwrap();
    for (tree, value) in [(&left, 1u8), (&right, 2u8)] {
        assert_eq!(tree.len().unwrap(), 40);
        for n in 0u32..40 {
            assert_eq!(tree.get(n.to_be_bytes()).unwrap().as_deref(), Some(&[value; 20][..]));
        }
    }
}
