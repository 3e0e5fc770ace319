//! Export streams: a round trip keeps every tree, and a damaged, truncated or foreign
//! stream gives a typed error, never a panic.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::sync::Arc;

use grove_engine::{Config, Db, Error, MemStorage};

fn fresh() -> Db {
    Config::tiny().storage(Arc::new(MemStorage::new())).open().unwrap()
}

fn sample() -> Vec<u8> {
    let db = fresh();
    for t in 0..3u8 {
        let tree = db.open_tree([b't', t]).unwrap();
        for i in 0..50u32 {
            tree.insert(i.to_be_bytes(), vec![t; usize::try_from(i).unwrap()]).unwrap();
        }
    }
    db.insert(b"default", b"tree").unwrap();
    let mut stream = Vec::new();
    let transfer = db.export(&mut stream).unwrap();
    assert_eq!((transfer.trees, transfer.entries), (4, 151));
    assert_eq!(transfer.bytes, u64::try_from(stream.len()).unwrap());
    stream
}

#[test]
fn a_round_trip_keeps_every_tree_and_the_stream_is_stable() {
    let stream = sample();
    let copy = fresh();
    copy.import(&stream[..]).unwrap();
    copy.check().unwrap();
    assert_eq!(copy.tree_names().unwrap().len(), 3);
    assert_eq!(copy.get(b"default").unwrap().as_deref(), Some(&b"tree"[..]));
    let mut again = Vec::new();
    copy.export(&mut again).unwrap();
    assert_eq!(again, stream, "equal databases export equal streams");
}

#[test]
fn importing_into_a_tree_with_entries_is_refused() {
    let stream = sample();
    let copy = fresh();
    copy.open_tree([b't', 1]).unwrap().insert(b"x", b"y").unwrap();
    assert!(matches!(copy.import(&stream[..]), Err(Error::AlreadyExists { .. })));
}

#[test]
fn damaged_streams_give_typed_errors() {
    let stream = sample();
    // Every length near the ends, a sample in between (each case opens a database).
    let lengths =
        (0..40).chain((40..stream.len() - 40).step_by(37)).chain(stream.len() - 40..stream.len());
    for len in lengths {
        let result = fresh().import(&stream[..len]);
        assert!(matches!(result, Err(Error::Corruption { .. })), "truncated to {len}: {result:?}");
    }
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..60 {
        let mut damaged = stream.clone();
        let at = rng.usize(..damaged.len());
        damaged[at] ^= 1 << rng.u8(..8);
        let result = fresh().import(&damaged[..]);
        assert!(
            matches!(result, Err(Error::Corruption { .. } | Error::UnsupportedVersion { .. })),
            "a flip at {at} imported: {result:?}"
        );
    }
    let mut newer = stream.clone();
    newer[12] = 2;
    assert!(matches!(fresh().import(&newer[..]), Err(Error::UnsupportedVersion { found: 2, .. })));
}
