//! Loom model of the handoff between snapshots and writers in `versions.rs`.
//!
//! Two writers each set two keys to their generation in one install: a compare-and-swap
//! of one word holding both values, which fails if the word changed since the writer read
//! it (as a group install fails on a changed page). Each writer goes through
//! [`Versions::write`], so it records or not depending on whether a snapshot is open when
//! it starts. The main thread opens a snapshot meanwhile and reads the two keys separately
//! (two loads, as a reader reads two leaves at different moments), each corrected by
//! [`Versions::value_at`]. It must see one generation on both keys, whichever writers
//! recorded and whatever the interleaving.
//!
//! This covers the case a concurrency test found: a recording writer whose values went
//! stale under a writer that had not recorded. Evidence that the model reaches it: with the
//! sequencer step removed from [`Versions::open`], it fails ("a snapshot saw parts of two
//! writes", the unrecorded writer installing between the recording writer's read and its
//! install); it needs a preemption bound of 4 to get there (2 and 3 pass the broken code).
//! With the handoff's checks as plain `SeqCst` loads rather than read-modify-writes, it
//! fails at once: loom models `SeqCst` as acquire/release, under which a store then a load
//! on another location (the Dekker pattern) may miss each other; see `Versions::write`.
//!
//! Cost: about one minute on a 2-core machine.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p grove-engine --release --lib tree::versions_loom
//! ```

use loom::{model::Builder, sync::Arc};

use super::{Bytes, versions::Versions};
use crate::{
    ids::TreeId,
    sync::{AtomicU64, Ordering, thread},
};

const TREE: TreeId = TreeId(1);

fn pack(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

fn unpack(word: u64) -> (u32, u32) {
    let [a0, a1, a2, a3, b0, b1, b2, b3] = word.to_be_bytes();
    (u32::from_be_bytes([a0, a1, a2, a3]), u32::from_be_bytes([b0, b1, b2, b3]))
}

fn bytes(value: u32) -> Bytes {
    Bytes::from(value.to_be_bytes().to_vec())
}

/// Sets both keys to `generation` through [`Versions::write`].
fn write_both(versions: &Versions, tree: &AtomicU64, generation: u32) {
    let written = versions.write(
        |_| true,
        |recorder| {
            let current = tree.load(Ordering::SeqCst);
            let (a, b) = unpack(current);
            recorder.stage(TREE, b"a", Some(&bytes(a)));
            recorder.stage(TREE, b"b", Some(&bytes(b)));
            recorder.publish();
            let next = pack(generation, generation);
            let installed =
                tree.compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst);
            Ok(installed.ok().map(|_| ()))
        },
    );
    assert!(matches!(written, Ok(Some(()))));
}

/// One key's value at snapshot `seq`: the tree's, corrected by the versions.
fn read(versions: &Versions, tree: &AtomicU64, seq: u64, key: &[u8]) -> u32 {
    let (a, b) = unpack(tree.load(Ordering::SeqCst));
    let current = if key == b"a" { a } else { b };
    let value = versions.value_at(seq, TREE, key, Some(bytes(current)));
    let value = value.ok().flatten().and_then(|v| <[u8; 4]>::try_from(&v[..]).ok());
    value.map_or(u32::MAX, u32::from_be_bytes)
}

#[test]
fn a_snapshot_sees_whole_writes_among_recording_and_unrecorded_writers() {
    let mut builder = Builder::new();
    builder.preemption_bound = Some(4);
    builder.check(|| {
        let versions = Arc::new(Versions::new(1 << 20));
        let tree = Arc::new(AtomicU64::new(pack(0, 0)));
        let writers: Vec<_> = [1, 2]
            .into_iter()
            .map(|generation| {
                let (versions, tree) = (versions.clone(), tree.clone());
                thread::spawn(move || write_both(&versions, &tree, generation))
            })
            .collect();
        let seq = versions.open();
        let a = read(&versions, &tree, seq, b"a");
        let b = read(&versions, &tree, seq, b"b");
        assert_eq!(a, b, "a snapshot saw parts of two writes");
        versions.close(seq);
        for writer in writers {
            if writer.join().is_err() {
                panic!("a writer panicked");
            }
        }
    });
}
