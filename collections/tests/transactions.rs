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

#[test]
fn watchers_see_typed_changes_one_per_key() {
    let db = temporary();
    let prices = db.map::<(String, u8), u32>("prices").unwrap();
    let tags = db.set::<String>("tags").unwrap();
    let mut all = prices.watch();
    let mut apples = prices.watch_prefix(&("apple",)).unwrap();
    let mut tag_events = tags.watch();
    prices.insert(&("apple".to_string(), 1), &3).unwrap();
    prices.extend([(("pear".to_string(), 1), 5), (("apple".to_string(), 2), 4)]).unwrap();
    prices.remove(&("apple".to_string(), 1)).unwrap();
    db.transaction(|tx| {
        tx.set(&tags).insert("fruit")?;
        tx.map(&prices).insert(&("apple".to_string(), 3), &9)?;
        Ok::<_, TransactionError<()>>(())
    })
    .unwrap();
    prices.clear().unwrap();
    tags.remove("fruit").unwrap();

    use grove_collections::{MapEvent, SetEvent};
    let take =
        |watch: &mut grove_collections::MapWatch<(String, u8), u32, grove_collections::Bincode>| {
            let mut seen = Vec::new();
            while let Some(event) = watch.next_timeout(Duration::from_millis(100)) {
                seen.push(event.unwrap());
            }
            seen
        };
    let key = |name: &str, n: u8| (name.to_string(), n);
    assert_eq!(
        take(&mut all),
        [
            MapEvent::Insert { key: key("apple", 1), value: 3 },
            MapEvent::Insert { key: key("apple", 2), value: 4 },
            MapEvent::Insert { key: key("pear", 1), value: 5 },
            MapEvent::Remove { key: key("apple", 1) },
            MapEvent::Insert { key: key("apple", 3), value: 9 },
            MapEvent::Cleared,
        ]
    );
    assert_eq!(
        take(&mut apples),
        [
            MapEvent::Insert { key: key("apple", 1), value: 3 },
            MapEvent::Insert { key: key("apple", 2), value: 4 },
            MapEvent::Remove { key: key("apple", 1) },
            MapEvent::Insert { key: key("apple", 3), value: 9 },
            MapEvent::Cleared,
        ]
    );
    assert_eq!(tag_events.try_next().unwrap().unwrap(), SetEvent::Insert("fruit".to_string()));
    assert_eq!(tag_events.try_next().unwrap().unwrap(), SetEvent::Remove("fruit".to_string()));
    assert!(tag_events.try_next().is_none());
}
