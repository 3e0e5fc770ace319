//! Transactions and snapshots: serializability under concurrent transactions (invariants
//! hold in every snapshot, and the final state equals replaying the committed transactions
//! in commit order), phantoms, conflicts and their limit, user aborts, snapshot expiry and
//! the memory old versions take, and crashes on simulated storage.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use grove_engine::{Batch, Bytes, Config, Db, Error, SimStorage, Storage, TransactionError, Tree};

fn number(bytes: Option<Bytes>) -> u64 {
    bytes.map_or(0, |b| u64::from_be_bytes(<[u8; 8]>::try_from(&b[..]).unwrap()))
}

fn temporary() -> Db {
    Config::new().temporary(true).open().unwrap()
}

#[test]
fn a_snapshot_reads_the_moment_it_was_taken() {
    let db = temporary();
    let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
    for i in 0..200u32 {
        a.insert(i.to_be_bytes(), b"old").unwrap();
    }
    b.insert(b"kept", b"1").unwrap();
    let snapshot = db.snapshot();

    // Overwrites, removals, inserts, a batch across trees, a clear.
    for i in (0..200u32).step_by(3) {
        a.insert(i.to_be_bytes(), b"new").unwrap();
    }
    for i in (1..200u32).step_by(3) {
        a.remove(i.to_be_bytes()).unwrap();
    }
    for i in 200..300u32 {
        a.insert(i.to_be_bytes(), b"later").unwrap();
    }
    let mut batch = Batch::default();
    batch.insert(&a, 5u32.to_be_bytes(), b"batch");
    batch.insert(&b, b"added", b"2");
    db.apply_batch(batch).unwrap();
    b.clear().unwrap();

    let expected: Vec<(Bytes, Bytes)> =
        (0..200u32).map(|i| (Bytes::from(i.to_be_bytes().to_vec()), Bytes::from("old"))).collect();
    let forward: Vec<_> = snapshot.iter(&a).map(Result::unwrap).collect();
    assert_eq!(forward, expected);
    let mut backward: Vec<_> = snapshot.iter(&a).rev().map(Result::unwrap).collect();
    backward.reverse();
    assert_eq!(backward, expected);
    assert_eq!(snapshot.get(&a, 5u32.to_be_bytes()).unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(snapshot.get(&a, 250u32.to_be_bytes()).unwrap(), None);
    let range: Vec<_> =
        snapshot.range(&a, 10u32.to_be_bytes()..13u32.to_be_bytes()).map(Result::unwrap).collect();
    assert_eq!(range, expected[10..13]);
    assert_eq!(
        snapshot.iter(&b).map(Result::unwrap).collect::<Vec<_>>(),
        [(Bytes::from("kept"), Bytes::from("1"))]
    );

    // The trees themselves moved on; a new snapshot sees that.
    assert_eq!(b.len().unwrap(), 0);
    let now = db.snapshot();
    assert_eq!(now.get(&a, 5u32.to_be_bytes()).unwrap().as_deref(), Some(&b"batch"[..]));
    assert_eq!(now.iter(&a).count(), a.iter().count());
}

#[test]
fn a_snapshot_still_reads_a_tree_dropped_after_it() {
    let db = temporary();
    let logs = db.open_tree("logs").unwrap();
    for i in 0..50u32 {
        logs.insert(i.to_be_bytes(), b"line").unwrap();
    }
    let snapshot = db.snapshot();
    assert!(db.drop_tree("logs").unwrap());
    let recreated = db.open_tree("logs").unwrap();
    recreated.insert(b"fresh", b"").unwrap();
    assert_eq!(snapshot.iter(&logs).count(), 50);
    assert_eq!(snapshot.get(&logs, 7u32.to_be_bytes()).unwrap().as_deref(), Some(&b"line"[..]));
    assert_eq!(snapshot.iter(&recreated).count(), 0, "the new tree did not exist yet");
}

#[test]
fn old_values_are_kept_only_while_a_snapshot_needs_them() {
    let db = temporary();
    for i in 0..100u32 {
        db.insert(i.to_be_bytes(), [0u8; 100]).unwrap();
    }
    assert_eq!(db.stats().unwrap().versions.versions, 0, "no snapshot, no versions");
    let snapshot = db.snapshot();
    for i in 0..100u32 {
        db.insert(i.to_be_bytes(), [1u8; 100]).unwrap();
    }
    let stats = db.stats().unwrap().versions;
    assert_eq!(stats.open_snapshots, 1);
    assert_eq!(stats.versions, 100);
    assert!(stats.version_bytes >= 100 * 104, "{stats:?}");
    drop(snapshot);
    let stats = db.stats().unwrap().versions;
    assert_eq!((stats.open_snapshots, stats.versions, stats.version_bytes), (0, 0, 0));
}

#[test]
fn a_snapshot_that_needs_too_much_memory_expires() {
    let db = Config::new().temporary(true).snapshot_memory(20_000).open().unwrap();
    db.insert(b"k", b"v0").unwrap();
    let old = db.snapshot();
    for i in 0..1000u32 {
        db.insert(i.to_be_bytes(), [7u8; 100]).unwrap();
    }
    let stats = db.stats().unwrap().versions;
    assert!(stats.version_bytes <= 20_000, "{stats:?}");
    assert_eq!(stats.expired_snapshots, 1);
    assert!(matches!(old.get(&db, b"k"), Err(Error::SnapshotExpired { limit: 20_000 })));
    assert!(matches!(old.iter(&db).next(), Some(Err(Error::SnapshotExpired { .. }))));
    let fresh = db.snapshot();
    assert_eq!(fresh.get(&db, b"k").unwrap().as_deref(), Some(&b"v0"[..]));
}

#[test]
fn a_transaction_sees_its_own_writes_and_commits_them_atomically() {
    let db = temporary();
    let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
    a.insert(b"k1", b"1").unwrap();
    a.insert(b"k3", b"3").unwrap();
    let snapshot = db.snapshot();
    db.transaction(|tx| {
        assert_eq!(tx.insert(&a, b"k2", b"2")?, None);
        assert_eq!(tx.remove(&a, b"k3")?.as_deref(), Some(&b"3"[..]));
        tx.insert(&b, b"x", b"y")?;
        let keys: Vec<Bytes> = tx.iter(&a).map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
        assert_eq!(keys, [Bytes::from("k1"), Bytes::from("k2")]);
        let last = tx.iter(&a).next_back().transpose()?;
        assert_eq!(last.map(|(k, _)| k), Some(Bytes::from("k2")));
        assert_eq!(tx.get(&b, b"x")?.as_deref(), Some(&b"y"[..]));
        // Nothing is visible outside before the commit.
        assert_eq!(a.get(b"k2")?, None);
        Ok::<_, TransactionError<()>>(())
    })
    .unwrap();
    assert_eq!(a.get(b"k2").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(a.get(b"k3").unwrap(), None);
    assert_eq!(b.get(b"x").unwrap().as_deref(), Some(&b"y"[..]));
    // A snapshot from before sees none of it.
    assert_eq!(snapshot.get(&a, b"k3").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(snapshot.get(&b, b"x").unwrap(), None);
    assert_eq!(db.stats().unwrap().versions.commits, 1);
}

#[test]
fn a_tree_of_another_database_is_an_error_not_an_empty_read() {
    let (db, other) = (temporary(), temporary());
    let foreign = other.open_tree("t").unwrap();
    foreign.insert(b"k", b"v").unwrap();
    let snapshot = db.snapshot();
    assert!(matches!(snapshot.get(&foreign, b"k"), Err(Error::Config(_))));
    assert!(matches!(snapshot.iter(&foreign).next(), Some(Err(Error::Config(_)))));
    let result = db.transaction(|tx| {
        let first = tx.iter(&foreign).next().transpose()?;
        Ok::<_, TransactionError<()>>(first)
    });
    assert!(matches!(result, Err(TransactionError::Storage(Error::Config(_)))), "{result:?}");
    let result = db.transaction(|tx| tx.insert(&foreign, b"k", b"w").map_err(Into::into));
    assert!(matches!(result, Err(TransactionError::<()>::Storage(Error::Config(_)))));
    assert_eq!(foreign.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[derive(Debug, PartialEq)]
struct Insufficient {
    wanted: u64,
}

#[test]
fn a_user_abort_reaches_the_caller_unchanged_and_writes_nothing() {
    let db = temporary();
    let result = db.transaction(|tx| {
        tx.insert(&db, b"written", b"then aborted")?;
        Err::<(), _>(TransactionError::Abort(Insufficient { wanted: 7 }))
    });
    assert!(matches!(result, Err(TransactionError::Abort(Insufficient { wanted: 7 }))));
    assert_eq!(db.get(b"written").unwrap(), None);
}

#[test]
fn a_read_changed_before_commit_runs_the_closure_again() {
    let db = temporary();
    db.insert(b"counter", 0u64.to_be_bytes()).unwrap();
    let mut runs = 0;
    db.transaction(|tx| {
        runs += 1;
        let n = number(tx.get(&db, b"counter")?);
        if runs == 1 {
            // Another writer changes what this run read.
            db.insert(b"counter", 10u64.to_be_bytes())?;
        }
        tx.insert(&db, b"counter", (n + 1).to_be_bytes())?;
        Ok::<_, TransactionError<()>>(())
    })
    .unwrap();
    assert_eq!(runs, 2);
    assert_eq!(number(db.get(b"counter").unwrap()), 11, "the second run read 10");
    assert_eq!(db.stats().unwrap().versions.conflicts, 1);
}

#[test]
fn conflicts_past_the_attempt_limit_are_their_own_error() {
    let db = Config::new().temporary(true).transaction_attempts(3).open().unwrap();
    let mut runs = 0u64;
    let result = db.transaction(|tx| {
        runs += 1;
        tx.get(&db, b"hot")?;
        db.insert(b"hot", runs.to_be_bytes())?;
        tx.insert(&db, b"mine", b"")?;
        Ok::<_, TransactionError<()>>(())
    });
    assert!(matches!(result, Err(TransactionError::Conflict { attempts: 3 })), "{result:?}");
    assert_eq!(runs, 3);
    assert_eq!(db.get(b"mine").unwrap(), None, "nothing of a conflicted transaction is written");
}

#[test]
fn an_insert_into_a_scanned_range_is_a_conflict() {
    let db = temporary();
    let items = db.open_tree("items").unwrap();
    for key in ["c1", "c2", "c4"] {
        items.insert(key, b"").unwrap();
    }
    let mut runs = 0;
    db.transaction(|tx| {
        runs += 1;
        let count = tx.scan_prefix(&items, b"c").count() as u64;
        if runs == 1 {
            // A phantom: a new key inside the range this run scanned.
            items.insert(b"c3", b"")?;
        }
        tx.insert(&items, b"summary", count.to_be_bytes())?;
        Ok::<_, TransactionError<()>>(())
    })
    .unwrap();
    assert_eq!(runs, 2);
    assert_eq!(number(items.get(b"summary").unwrap()), 4);

    // Only the part of a range an iterator walked counts: a key inserted past it is no
    // conflict.
    let mut runs = 0;
    db.transaction(|tx| {
        runs += 1;
        let first = tx.scan_prefix(&items, b"c").next().transpose()?;
        if runs == 1 {
            items.insert(b"c5", b"")?;
        }
        tx.insert(&items, b"first", first.map(|(k, _)| k).unwrap_or_default())?;
        Ok::<_, TransactionError<()>>(())
    })
    .unwrap();
    assert_eq!(runs, 1);
    assert_eq!(items.get(b"first").unwrap().as_deref(), Some(&b"c1"[..]));
}

#[test]
fn a_durable_commit_survives_a_crash_and_an_aborted_one_leaves_nothing() {
    for seed in support::seeds(20) {
        let storage = Arc::new(SimStorage::new(seed));
        let open = || {
            let storage: Arc<dyn Storage> = storage.clone();
            let db = Config::tiny().flush_every_ms(None).storage(storage).open().unwrap();
            let trees = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
            (db, trees)
        };
        let (db, (a, b)) = open();
        db.flush().unwrap();
        db.transaction(|tx| {
            for i in 0..40u32 {
                tx.insert(&a, i.to_be_bytes(), [1u8; 30])?;
                tx.insert(&b, i.to_be_bytes(), [2u8; 30])?;
            }
            tx.flush_on_commit();
            Ok::<_, TransactionError<()>>(())
        })
        .unwrap();
        let aborted = db.transaction(|tx| {
            for i in 100..140u32 {
                tx.insert(&a, i.to_be_bytes(), [3u8; 30])?;
            }
            Err::<(), _>(TransactionError::Abort(()))
        });
        assert!(matches!(aborted, Err(TransactionError::Abort(()))));
        // Committed, not durable: after the crash, all of it or none of it.
        db.transaction(|tx| {
            for i in 200..240u32 {
                tx.insert(&a, i.to_be_bytes(), [4u8; 30])?;
                tx.insert(&b, i.to_be_bytes(), [4u8; 30])?;
            }
            Ok::<_, TransactionError<()>>(())
        })
        .unwrap();
        storage.crash();
        drop((a, b, db));

        let (db, (a, b)) = open();
        db.check().unwrap();
        for i in 0..40u32 {
            assert!(a.get(i.to_be_bytes()).unwrap().is_some(), "seed {seed}: durable commit lost");
            assert!(b.get(i.to_be_bytes()).unwrap().is_some(), "seed {seed}: durable commit lost");
        }
        assert_eq!(a.range(100u32.to_be_bytes()..140u32.to_be_bytes()).count(), 0);
        let late =
            a.range(200u32.to_be_bytes()..).count() + b.range(200u32.to_be_bytes()..).count();
        assert!(late == 0 || late == 80, "seed {seed}: a transaction half applied ({late} of 80)");
    }
}

/// Accounts in two trees, with transfers between any two; items under prefixes "a" and
/// "b", counted in the meta tree. Both kinds of transaction append themselves to a history
/// under a sequence number each reads and increments, so the history is the commit order.
/// Items under "c" and "d" are capped at `CAP` each, with no counter and no history: only
/// range conflicts (no phantoms) keep the cap, since those transactions share no key.
struct Bank {
    checking: Tree,
    savings: Tree,
    items: Tree,
    meta: Tree,
    history: Tree,
}

const ACCOUNTS: u64 = 8;
const OPENING: u64 = 1_000;
const CAP: usize = 5;

fn account(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

impl Bank {
    fn open(db: &Db) -> Bank {
        let bank = Bank {
            checking: db.open_tree("checking").unwrap(),
            savings: db.open_tree("savings").unwrap(),
            items: db.open_tree("items").unwrap(),
            meta: db.open_tree("meta").unwrap(),
            history: db.open_tree("history").unwrap(),
        };
        for i in 0..ACCOUNTS {
            bank.checking.insert(account(i), OPENING.to_be_bytes()).unwrap();
            bank.savings.insert(account(i), OPENING.to_be_bytes()).unwrap();
        }
        bank
    }

    fn tree(&self, which: u8) -> &Tree {
        if which == 0 { &self.checking } else { &self.savings }
    }
}

/// A committed transaction as the history records it.
#[derive(Debug, PartialEq)]
enum Op {
    /// From (tree, account), to (tree, account), amount.
    Transfer((u8, u64), (u8, u64), u64),
    /// An item key under a counted prefix, inserted if absent, else removed.
    Toggle([u8; 2]),
}

impl Op {
    fn encode(&self) -> Vec<u8> {
        match self {
            Op::Transfer(from, to, amount) => {
                let mut bytes = vec![0, from.0, to.0];
                bytes.extend(from.1.to_be_bytes());
                bytes.extend(to.1.to_be_bytes());
                bytes.extend(amount.to_be_bytes());
                bytes
            }
            Op::Toggle(key) => vec![1, key[0], key[1]],
        }
    }

    fn decode(bytes: &[u8]) -> Op {
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        match bytes[0] {
            0 => Op::Transfer((bytes[1], word(3)), (bytes[2], word(11)), word(19)),
            _ => Op::Toggle([bytes[1], bytes[2]]),
        }
    }
}

/// Appends `op` to the history under the next sequence number, in `tx`.
fn record(tx: &grove_engine::Transaction<'_>, bank: &Bank, op: &Op) -> grove_engine::Result<()> {
    let seq = number(tx.get(&bank.meta, b"seq")?);
    tx.insert(&bank.history, seq.to_be_bytes(), op.encode())?;
    tx.insert(&bank.meta, b"seq", (seq + 1).to_be_bytes())?;
    Ok(())
}

/// The invariants, read from one snapshot: money is conserved, counted prefixes match
/// their counters, capped ones hold at most `CAP`, and the history is as long as the
/// sequence says.
fn check_invariants(db: &Db, bank: &Bank) {
    let snapshot = db.snapshot();
    let mut total = 0;
    for tree in [&bank.checking, &bank.savings] {
        for entry in snapshot.iter(tree) {
            total += number(Some(entry.unwrap().1));
        }
    }
    assert_eq!(total, 2 * ACCOUNTS * OPENING, "money is conserved in every snapshot");
    for prefix in [b"a", b"b"] {
        let count = snapshot.scan_prefix(&bank.items, prefix).count() as u64;
        let counter = number(snapshot.get(&bank.meta, prefix).unwrap());
        assert_eq!(count, counter, "items under {prefix:?} match their counter");
    }
    for prefix in [b"c", b"d"] {
        let count = snapshot.scan_prefix(&bank.items, prefix).count();
        assert!(count <= CAP, "{count} items under {prefix:?}: a phantom slipped through");
    }
    let seq = number(snapshot.get(&bank.meta, b"seq").unwrap());
    assert_eq!(snapshot.iter(&bank.history).count() as u64, seq, "history length");
}

fn run_round(db: &Db, bank: &Bank, rng: &mut fastrand::Rng) -> Result<(), TransactionError<()>> {
    match rng.u8(..10) {
        0..6 => {
            let from = (rng.u8(..2), rng.u64(..ACCOUNTS));
            let to = loop {
                let to = (rng.u8(..2), rng.u64(..ACCOUNTS));
                if to != from {
                    break to;
                }
            };
            let amount = rng.u64(1..300);
            db.transaction(|tx| {
                let have = number(tx.get(bank.tree(from.0), account(from.1))?);
                if have >= amount {
                    let theirs = number(tx.get(bank.tree(to.0), account(to.1))?);
                    tx.insert(bank.tree(from.0), account(from.1), (have - amount).to_be_bytes())?;
                    tx.insert(bank.tree(to.0), account(to.1), (theirs + amount).to_be_bytes())?;
                }
                record(tx, bank, &Op::Transfer(from, to, amount))?;
                Ok(())
            })
        }
        6..8 => {
            let prefix = if rng.bool() { b"a" } else { b"b" };
            let key = [prefix[0], b'0' + rng.u8(..10)];
            db.transaction(|tx| {
                let count = tx.scan_prefix(&bank.items, prefix).count() as u64;
                assert_eq!(count, number(tx.get(&bank.meta, prefix)?), "counter in a transaction");
                let new = if tx.remove(&bank.items, key)?.is_some() {
                    count - 1
                } else {
                    tx.insert(&bank.items, key, b"")?;
                    count + 1
                };
                tx.insert(&bank.meta, prefix, new.to_be_bytes())?;
                record(tx, bank, &Op::Toggle(key))?;
                Ok(())
            })
        }
        _ => {
            let prefix = if rng.bool() { b"c" } else { b"d" };
            let key = [prefix[0], b'0' + rng.u8(..10)];
            db.transaction(|tx| {
                let present: Vec<Bytes> = tx
                    .scan_prefix(&bank.items, prefix)
                    .map(|e| e.map(|(k, _)| k))
                    .collect::<Result<_, _>>()?;
                if present.len() < CAP {
                    tx.insert(&bank.items, key, b"")?;
                } else {
                    tx.remove(&bank.items, &present[0])?;
                }
                Ok(())
            })
        }
    }
}

#[test]
fn concurrent_transactions_are_serializable() {
    support::run_seeds("db_transactions", 2, |seed| {
        let db = temporary();
        let bank = Arc::new(Bank::open(&db));
        let done = Arc::new(AtomicBool::new(false));
        let checks = Arc::new(AtomicU64::new(0));
        let checker = {
            let (db, bank, done, checks) = (db.clone(), bank.clone(), done.clone(), checks.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    check_invariants(&db, &bank);
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let workers: Vec<_> = (0..3u64)
            .map(|thread| {
                let (db, bank) = (db.clone(), bank.clone());
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(seed * 10 + thread);
                    for _ in 0..300 {
                        match run_round(&db, &bank, &mut rng) {
                            Ok(()) | Err(TransactionError::Conflict { .. }) => {}
                            Err(other) => panic!("transaction failed: {other:?}"),
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        checker.join().unwrap();
        check_invariants(&db, &bank);
        assert!(checks.load(Ordering::Relaxed) > 0);

        // Replaying the committed transactions in commit order gives the final state.
        let mut balances: BTreeMap<(u8, u64), u64> = BTreeMap::new();
        for which in 0..2 {
            for i in 0..ACCOUNTS {
                balances.insert((which, i), OPENING);
            }
        }
        let mut items: BTreeMap<[u8; 2], ()> = BTreeMap::new();
        let mut replayed = 0;
        for (expected, entry) in bank.history.iter().enumerate() {
            let (seq, op) = entry.unwrap();
            assert_eq!(number(Some(seq)), expected as u64, "the history has no gaps");
            match Op::decode(&op) {
                Op::Transfer(from, to, amount) => {
                    if balances[&from] >= amount {
                        *balances.get_mut(&from).unwrap() -= amount;
                        *balances.get_mut(&to).unwrap() += amount;
                    }
                }
                Op::Toggle(key) => {
                    if items.remove(&key).is_none() {
                        items.insert(key, ());
                    }
                }
            }
            replayed += 1;
        }
        assert!(replayed > 100, "only {replayed} transactions committed");
        for ((which, i), balance) in balances {
            let stored = number(bank.tree(which).get(account(i)).unwrap());
            assert_eq!(stored, balance, "account {which}/{i} after replaying {replayed}");
        }
        for prefix in [b"a", b"b"] {
            let stored: Vec<Bytes> = bank.items.scan_prefix(prefix).map(|e| e.unwrap().0).collect();
            let replayed: Vec<Bytes> = items
                .keys()
                .filter(|k| k[0] == prefix[0])
                .map(|k| Bytes::from(k.to_vec()))
                .collect();
            assert_eq!(stored, replayed, "items under {prefix:?}");
            assert_eq!(number(bank.meta.get(prefix).unwrap()), stored.len() as u64);
        }
        let stats = db.stats().unwrap().versions;
        assert_eq!(stats.open_snapshots, 0);
        assert_eq!(stats.versions, 0, "no snapshot open, no versions kept");
        println!("seed {seed}: {replayed} in the history, {stats:?}");
    });
}

/// Plain batches (no transactions) each write one value to every key; readers open and
/// close snapshots all the time, so writers keep switching between recording old values
/// and not. Every snapshot must see one batch's value on every key, read after read.
///
/// This caught a recording writer whose values went stale under a writer that had not
/// recorded: its failed attempt's versions were visible to a snapshot opened meanwhile.
#[test]
fn snapshots_opened_among_plain_writers_see_whole_batches() {
    const KEYS: u32 = 24;
    let db = Config::new().temporary(true).node_bytes(512).open().unwrap();
    let tree = db.open_tree("generations").unwrap();
    let write_all = |tree: &Tree, value: u64| {
        let mut batch = Batch::default();
        for key in 0..KEYS {
            batch.insert(tree, key.to_be_bytes(), value.to_be_bytes());
        }
        tree.apply_batch(batch).unwrap();
    };
    write_all(&tree, 0);
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..=2u64)
        .map(|thread| {
            let (tree, done) = (tree.clone(), done.clone());
            std::thread::spawn(move || {
                let mut generation = 0;
                while !done.load(Ordering::Relaxed) {
                    generation += 1;
                    write_all(&tree, thread << 32 | generation);
                }
                generation
            })
        })
        .collect();
    let mut snapshots = 0;
    while snapshots < 300 {
        let snapshot = db.snapshot();
        let seen: Vec<u64> = snapshot.iter(&tree).map(|e| number(Some(e.unwrap().1))).collect();
        assert_eq!(seen.len(), KEYS as usize);
        assert!(
            seen.iter().all(|&v| v == seen[0]),
            "a snapshot saw part of a batch: {seen:x?} {snapshot:?} {:?}",
            db.stats().unwrap().versions
        );
        // The writers go on; the snapshot does not move.
        std::thread::yield_now();
        for key in (0..KEYS).rev() {
            assert_eq!(number(snapshot.get(&tree, key.to_be_bytes()).unwrap()), seen[0]);
        }
        let backward: Vec<u64> =
            snapshot.iter(&tree).rev().map(|e| number(Some(e.unwrap().1))).collect();
        assert_eq!(backward, seen);
        snapshots += 1;
    }
    done.store(true, Ordering::Relaxed);
    let batches: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(batches > 0);
    assert_eq!(db.stats().unwrap().versions.versions, 0);
    println!("{snapshots} snapshots among {batches} batches");
}
