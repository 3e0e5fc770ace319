//! Typed transactions: atomic across maps, sets, queues and counters; aborts write
//! nothing; concurrent transfers keep their total; a transactional push wakes a consumer
//! once committed.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{thread, time::Duration};

use grove_collections::{Db, Error, TransactionError};
use grove_engine::Config;

fn temporary() -> Db {
    Db::open_with(Config::new().temporary(true)).unwrap()
}

#[test]
fn a_transaction_commits_across_every_kind_of_collection_or_not_at_all() {
    let db = temporary();
    let users = db.map::<u64, String>("users").unwrap();
    let emails = db.set::<String>("emails").unwrap();
    let welcome = db.queue::<u64>("welcome").unwrap();
    let count = db.counter("user_count").unwrap();

    let add = |id: u64, email: &str| {
        db.transaction(|tx| {
            let emails = tx.set(&emails);
            if emails.contains(email)? {
                return Err(TransactionError::Abort(format!("{email} is taken")));
            }
            emails.insert(email)?;
            tx.map(&users).insert(&id, email)?;
            tx.queue(&welcome).push(&id)?;
            tx.counter(&count).add(1)?;
            // The transaction sees its own writes.
            assert_eq!(tx.map(&users).get(&id)?.as_deref(), Some(email));
            Ok(id)
        })
    };
    assert_eq!(add(1, "ann@example.com").unwrap(), 1);
    assert_eq!(add(2, "bob@example.com").unwrap(), 2);
    let taken = add(3, "ann@example.com");
    assert!(matches!(&taken, Err(TransactionError::Abort(message)) if message.contains("taken")));

    assert_eq!(users.len().unwrap(), 2);
    assert_eq!(users.get(&3).unwrap(), None, "nothing of the aborted transaction");
    assert_eq!(emails.len().unwrap(), 2);
    assert_eq!(count.get().unwrap(), 2);
    assert_eq!(welcome.iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 2]);
    let seen = db
        .transaction(|tx| {
            let users = tx.map(&users);
            Ok::<_, TransactionError<()>>((users.first()?, users.last()?, users.range(2..)?))
        })
        .unwrap();
    assert_eq!(seen.0, Some((1, "ann@example.com".to_string())));
    assert_eq!(seen.1, Some((2, "bob@example.com".to_string())));
    assert_eq!(seen.2, [(2, "bob@example.com".to_string())]);
}

#[test]
fn concurrent_transfers_keep_the_total() {
    let db = temporary();
    let accounts = db.map::<u8, i64>("accounts").unwrap();
    for a in 0..4u8 {
        accounts.insert(&a, &100).unwrap();
    }
    let threads: Vec<_> = (0..2u64)
        .map(|seed| {
            let (db, accounts) = (db.clone(), accounts.clone());
            thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed);
                for _ in 0..300 {
                    let (from, to, amount) = (rng.u8(..4), rng.u8(..4), rng.i64(1..30));
                    db.transaction(|tx| {
                        let accounts = tx.map(&accounts);
                        let have = accounts.get(&from)?.unwrap_or(0);
                        if from == to || have < amount {
                            return Ok(());
                        }
                        let theirs = accounts.get(&to)?.unwrap_or(0);
                        accounts.insert(&from, &(have - amount))?;
                        accounts.insert(&to, &(theirs + amount))?;
                        Ok::<_, TransactionError<()>>(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let total: i64 = accounts.iter().map(|e| e.unwrap().1).sum();
    assert_eq!(total, 400);
    assert!(accounts.iter().all(|e| e.unwrap().1 >= 0));
}

#[test]
fn a_push_in_a_transaction_wakes_a_blocked_consumer_after_the_commit() {
    let db = temporary();
    let jobs = db.queue::<String>("jobs").unwrap();
    let consumer = {
        let jobs = jobs.clone();
        thread::spawn(move || jobs.pop_timeout(Duration::from_secs(60)).unwrap())
    };
    thread::sleep(Duration::from_millis(50));
    db.transaction(|tx| {
        tx.queue(&jobs).push("build")?;
        Ok::<_, TransactionError<()>>(())
    })
    .unwrap();
    assert_eq!(consumer.join().unwrap().as_deref(), Some("build"));
}

#[test]
fn typed_errors_inside_a_transaction_come_out_as_failures() {
    let db = temporary();
    let counter = db.counter("c").unwrap();
    counter.set(i64::MAX).unwrap();
    let result = db.transaction(|tx| {
        tx.counter(&counter).add(1)?;
        Ok::<_, TransactionError<()>>(())
    });
    assert!(matches!(result, Err(TransactionError::Failed(Error::Overflow { .. }))), "{result:?}");
    assert_eq!(counter.get().unwrap(), i64::MAX);
}
