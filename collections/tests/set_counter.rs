//! `Set` against a `BTreeSet` model with restarts and crashes, and `Counter` under
//! concurrent adds.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{collections::BTreeSet, ops::Bound, sync::Arc, thread};

use grove_collections::{Db, Error, Set};
use grove_engine::{Config, SimStorage, Storage};

fn open(storage: &Arc<SimStorage>) -> (Db, Set<(i16, String)>) {
    let storage: Arc<dyn Storage> = storage.clone();
    let db = Db::open_with(Config::tiny().flush_every_ms(None).storage(storage)).unwrap();
    let set = db.set("members").unwrap();
    (db, set)
}

fn element(rng: &mut fastrand::Rng) -> (i16, String) {
    (rng.i16(-3..3), (0..rng.usize(0..3)).map(|_| ['a', '\0', 'z'][rng.usize(..3)]).collect())
}

fn run_case(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let storage = Arc::new(SimStorage::new(seed));
    let (mut db, mut set) = open(&storage);
    let mut model = BTreeSet::new();
    let mut history = vec![model.clone()];
    for _ in 0..rng.usize(30..150) {
        match rng.u8(..100) {
            0..35 => {
                let e = element(&mut rng);
                assert_eq!(set.insert(&e).unwrap(), model.insert(e), "insert");
            }
            35..50 => {
                let e = element(&mut rng);
                assert_eq!(set.remove(&e).unwrap(), model.remove(&e), "remove");
            }
            50..60 => {
                let e = element(&mut rng);
                assert_eq!(set.contains(&e).unwrap(), model.contains(&e), "contains");
            }
            60..70 => {
                let lo = element(&mut rng);
                let got: Vec<_> = set
                    .range((Bound::Excluded(&lo), Bound::Unbounded))
                    .rev()
                    .map(Result::unwrap)
                    .collect();
                let want: Vec<_> =
                    model.range((Bound::Excluded(&lo), Bound::Unbounded)).rev().cloned().collect();
                assert_eq!(got, want, "range");
            }
            70..75 => {
                assert_eq!(set.first().unwrap().as_ref(), model.first());
                assert_eq!(set.last().unwrap().as_ref(), model.last());
                assert_eq!(set.len().unwrap(), model.len());
            }
            75..80 => assert_eq!(set.pop_first().unwrap(), model.pop_first(), "pop_first"),
            80..85 => {
                let elements: Vec<_> = (0..rng.usize(1..8)).map(|_| element(&mut rng)).collect();
                set.extend(elements.clone()).unwrap();
                model.extend(elements);
            }
            85..90 => {
                db.flush().unwrap();
                history.clear();
            }
            90..94 => {
                drop((set, db));
                (db, set) = open(&storage);
                let all: BTreeSet<_> = set.iter().map(Result::unwrap).collect();
                assert_eq!(all, model, "after a restart");
            }
            94..97 => {
                storage.crash();
                drop((set, db));
                (db, set) = open(&storage);
                let recovered: BTreeSet<_> = set.iter().map(Result::unwrap).collect();
                assert!(history.contains(&recovered), "after a crash");
                model = recovered;
                history.clear();
            }
            _ => {}
        }
        history.push(model.clone());
    }
}

#[test]
fn sets_match_the_model_across_restarts_and_crashes() {
    for seed in 0..100 {
        if let Err(panic) = std::panic::catch_unwind(|| run_case(seed)) {
            eprintln!("set model failed for seed {seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn concurrent_adds_to_a_counter_lose_nothing() {
    let db = Db::open_with(Config::new().temporary(true)).unwrap();
    let counter = db.counter("hits").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            thread::spawn(move || {
                for _ in 0..500 {
                    counter.add(1).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(counter.get().unwrap(), 2000);
    assert_eq!(db.counter("hits").unwrap().add(-1000).unwrap(), 1000);
    assert_eq!(counter.set(i64::MAX).unwrap(), 1000);
    assert!(matches!(counter.add(1), Err(Error::Overflow { current: i64::MAX, delta: 1, .. })));
    assert_eq!(counter.get().unwrap(), i64::MAX);
    assert_eq!(db.counter("other").unwrap().get().unwrap(), 0);
    // Names are shared across kinds: a counter is not a set.
    assert!(matches!(db.set::<u8>("hits"), Err(Error::TypeMismatch { .. })));
}
