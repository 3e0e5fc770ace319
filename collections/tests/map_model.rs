//! `Map` against a `BTreeMap` model: random inserts, removes, reads, ranges from both
//! ends, prefix scans, pops, compare-and-swaps, updates, atomic extends and clears, with
//! flushes, restarts and simulated crashes, on a tiny engine configuration. After a crash
//! the map must equal the model at some point since the last flush, every extend whole.
//! Also: type mismatches and undecodable values are typed errors.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{collections::BTreeMap, ops::Bound, sync::Arc};

use grove_collections::{Db, Error, Map};
use grove_engine::{Config, SimStorage, Storage};

/// Keys: a small region and a short name, so that keys collide and share prefixes.
type Key = (u8, String);
/// Values: a count and an optional note.
type Value = (u32, Option<String>);
type Model = BTreeMap<Key, Value>;

fn open(storage: &Arc<SimStorage>) -> (Db, Map<Key, Value>) {
    let storage: Arc<dyn Storage> = storage.clone();
    let db = Db::open_with(Config::tiny().flush_every_ms(None).storage(storage)).unwrap();
    let map = db.map::<Key, Value>("items").unwrap();
    (db, map)
}

fn key(rng: &mut fastrand::Rng) -> Key {
    let name: String =
        (0..rng.usize(0..4)).map(|_| ['a', 'b', '\0', 'é'][rng.usize(..4)]).collect();
    (rng.u8(..4), name)
}

fn value(rng: &mut fastrand::Rng) -> Value {
    let note = rng.bool().then(|| "x".repeat(rng.usize(0..80)));
    (rng.u32(..1000), note)
}

fn bound(rng: &mut fastrand::Rng) -> Bound<Key> {
    match rng.u8(..3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key(rng)),
        _ => Bound::Excluded(key(rng)),
    }
}

fn contents(map: &Map<Key, Value>) -> Model {
    map.iter().map(Result::unwrap).collect()
}

fn run_case(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let storage = Arc::new(SimStorage::new(seed));
    let (mut db, mut map) = open(&storage);
    let mut model = Model::new();
    let mut history = vec![model.clone()];
    for _ in 0..rng.usize(50..250) {
        match rng.u8(..100) {
            0..30 => {
                let (k, v) = (key(&mut rng), value(&mut rng));
                assert_eq!(map.insert(&k, &v).unwrap(), model.insert(k, v), "insert");
            }
            30..40 => {
                let k = key(&mut rng);
                assert_eq!(map.remove(&k).unwrap(), model.remove(&k), "remove");
            }
            40..50 => {
                let k = key(&mut rng);
                assert_eq!(map.get(&k).unwrap(), model.get(&k).cloned(), "get");
                assert_eq!(map.contains_key(&k).unwrap(), model.contains_key(&k));
            }
            50..58 => {
                let (lo, hi) = (bound(&mut rng), bound(&mut rng));
                let valid = match (&lo, &hi) {
                    (
                        Bound::Included(a) | Bound::Excluded(a),
                        Bound::Included(b) | Bound::Excluded(b),
                    ) => {
                        a < b
                            || (a == b
                                && matches!((&lo, &hi), (Bound::Included(_), Bound::Included(_))))
                    }
                    _ => true,
                };
                if valid {
                    let mut expected: std::collections::VecDeque<(Key, Value)> = model
                        .range((lo.clone(), hi.clone()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let mut iter = map.range((lo, hi));
                    loop {
                        let (got, want) = if rng.bool() {
                            (iter.next(), expected.pop_front())
                        } else {
                            (iter.next_back(), expected.pop_back())
                        };
                        assert_eq!(got.transpose().unwrap(), want, "range");
                        if want.is_none() {
                            break;
                        }
                    }
                }
            }
            58..63 => {
                let region = rng.u8(..4);
                let got: Vec<(Key, Value)> = map.prefix(&(&region,)).map(Result::unwrap).collect();
                let want: Vec<(Key, Value)> = model
                    .range((region, String::new())..)
                    .take_while(|((r, _), _)| *r == region)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "prefix");
            }
            63..66 => {
                assert_eq!(
                    map.first().unwrap(),
                    model.first_key_value().map(|(k, v)| (k.clone(), v.clone()))
                );
                assert_eq!(
                    map.last().unwrap(),
                    model.last_key_value().map(|(k, v)| (k.clone(), v.clone()))
                );
                assert_eq!(map.len().unwrap(), model.len());
                assert_eq!(map.is_empty().unwrap(), model.is_empty());
            }
            66..69 => {
                if rng.bool() {
                    assert_eq!(map.pop_first().unwrap(), model.pop_first(), "pop_first");
                } else {
                    assert_eq!(map.pop_last().unwrap(), model.pop_last(), "pop_last");
                }
            }
            69..74 => {
                let k = key(&mut rng);
                let expected =
                    if rng.bool() { model.get(&k).cloned() } else { Some(value(&mut rng)) };
                let new = rng.bool().then(|| value(&mut rng));
                let result = map.compare_and_swap(&k, expected.as_ref(), new.as_ref()).unwrap();
                if expected.as_ref() == model.get(&k) {
                    assert!(result.is_ok(), "compare_and_swap with the right value");
                    match new {
                        Some(v) => model.insert(k, v),
                        None => model.remove(&k),
                    };
                } else {
                    assert_eq!(result.unwrap_err().current, model.get(&k).cloned());
                }
            }
            74..78 => {
                let k = key(&mut rng);
                let new = map.update(&k, |v| match v {
                    Some((n, _)) if n > 900 => None,
                    Some((n, note)) => Some((n + 1, note)),
                    None => Some((0, None)),
                });
                let expected = match model.get(&k).cloned() {
                    Some((n, _)) if n > 900 => None,
                    Some((n, note)) => Some((n + 1, note)),
                    None => Some((0, None)),
                };
                assert_eq!(new.unwrap(), expected, "update");
                match expected {
                    Some(v) => model.insert(k, v),
                    None => model.remove(&k),
                };
            }
            78..84 => {
                let entries: Vec<(Key, Value)> =
                    (0..rng.usize(1..20)).map(|_| (key(&mut rng), value(&mut rng))).collect();
                map.extend(entries.clone()).unwrap();
                model.extend(entries);
            }
            84..85 => {
                map.clear().unwrap();
                model.clear();
            }
            85..90 => {
                db.flush().unwrap();
                history.clear();
            }
            90..94 => {
                drop((map, db));
                (db, map) = open(&storage);
                assert_eq!(contents(&map), model, "after a clean restart");
                history.clear();
            }
            94..98 => {
                storage.crash();
                drop((map, db));
                (db, map) = open(&storage);
                let recovered = contents(&map);
                assert!(
                    history.contains(&recovered),
                    "after a crash: not the model at any point since the last flush"
                );
                model = recovered;
                history.clear();
            }
            _ => {}
        }
        history.push(model.clone());
    }
    assert_eq!(contents(&map), model, "at the end");
}

#[test]
fn maps_match_the_model_across_restarts_and_crashes() {
    let cases = std::env::var("GROVE_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200u64);
    let seeds: Vec<u64> = match std::env::var("GROVE_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..cases).collect(),
    };
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(|| run_case(seed)) {
            eprintln!("map_model failed for seed {seed}; replay with GROVE_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn opening_a_collection_with_other_types_is_a_type_mismatch() {
    let db = Db::open_with(Config::new().temporary(true)).unwrap();
    let scores = db.map::<String, u32>("scores").unwrap();
    scores.insert("ann", &3).unwrap();
    let wrong = db.map::<String, String>("scores");
    match wrong {
        Err(Error::TypeMismatch { collection, stored, requested }) => {
            assert_eq!(collection, "scores");
            assert!(
                stored.contains("u32") && requested.contains("String"),
                "{stored} / {requested}"
            );
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    assert!(matches!(db.map::<u64, u32>("scores"), Err(Error::TypeMismatch { .. })));
    // The right types still open it, and nothing was changed.
    assert_eq!(db.map::<String, u32>("scores").unwrap().get("ann").unwrap(), Some(3));
    assert_eq!(db.collection_names().unwrap(), ["scores"]);
}

#[test]
fn a_value_that_does_not_decode_is_a_typed_error_naming_collection_and_key() {
    let db = Db::open_with(Config::new().temporary(true)).unwrap();
    let scores = db.map::<String, u32>("scores").unwrap();
    scores.insert("ann", &3).unwrap();
    scores.insert("bob", &4).unwrap();
    // Damage ann's value underneath, through the byte-level engine.
    let tree = db.engine().open_tree("__grove_collection/scores").unwrap();
    let key = grove_collections::key::to_key("ann").unwrap();
    tree.insert(&key, [1u8, 0, 0, 0xFF, 0xFF, 0xFF]).unwrap();
    match scores.get("ann") {
        Err(Error::Value { collection, key, .. }) => {
            assert_eq!(collection, "scores");
            assert_eq!(key, "616e6e0000");
        }
        other => panic!("expected a value error, got {other:?}"),
    }
    // Other entries still read; the iterator goes on past the damaged one.
    assert_eq!(scores.get("bob").unwrap(), Some(4));
    let entries: Vec<_> = scores.iter().collect();
    assert!(matches!(entries[0], Err(Error::Value { .. })));
    assert_eq!(entries[1].as_ref().unwrap(), &("bob".to_string(), 4));
    // A value written by another codec or version names what it found.
    tree.insert(&key, [9u8, 0, 0, 3]).unwrap();
    let message = scores.get("ann").unwrap_err().to_string();
    assert!(message.contains("codec 9"), "{message}");
}

#[test]
fn a_key_type_that_cannot_keep_its_order_is_an_error_at_first_use() {
    let db = Db::open_with(Config::new().temporary(true)).unwrap();
    let by_map = db.map::<BTreeMap<u8, u8>, u8>("odd").unwrap();
    let result = by_map.insert(&BTreeMap::from([(1, 2)]), &3);
    assert!(matches!(result, Err(Error::Key { .. })), "{result:?}");
    assert_eq!(by_map.len().unwrap(), 0);
}
