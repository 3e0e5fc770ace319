//! Subscriptions: the events a `watch_prefix` subscriber sees, a batch as one event, a
//! slow subscriber told that it lagged while writers go on, and the end of the stream when
//! the database closes.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{sync::Arc, time::Duration};

use grove_engine::{Batch, Bytes, Config, Db, Event, MemStorage, SUBSCRIBER_CAPACITY};

fn db() -> Db {
    Config::tiny().storage(Arc::new(MemStorage::new())).open().unwrap()
}

#[test]
fn inserts_removes_batches_and_clears_under_the_prefix_arrive_in_order() {
    let db = db();
    let other = db.open_tree("other").unwrap();
    let mut events = db.watch_prefix(b"a");
    db.insert(b"a1", b"x").unwrap();
    db.insert(b"b1", b"ignored").unwrap();
    other.insert(b"a1", b"another tree").unwrap();
    db.remove(b"a1").unwrap();
    db.remove(b"a-never-there").unwrap(); // changes nothing, so no event
    let mut batch = Batch::default();
    batch.insert(&db, b"a3", b"z");
    batch.insert(&db, b"a2", b"y");
    batch.insert(&db, b"b2", b"ignored");
    batch.insert(&other, b"a9", b"another tree");
    db.apply_batch(batch).unwrap();
    db.clear().unwrap();
    let seen: Vec<Event> = std::iter::from_fn(|| events.try_next()).collect();
    assert_eq!(
        seen,
        vec![
            Event::Insert { key: b"a1".into(), value: b"x".into() },
            Event::Remove { key: b"a1".into() },
            Event::Batch(vec![
                (b"a2".into(), Some(b"y".into())),
                (b"a3".into(), Some(b"z".into())),
            ]),
            Event::Cleared,
        ]
    );
}

#[test]
fn a_slow_subscriber_loses_the_newest_events_and_is_told_how_many() {
    let db = db();
    let mut events = db.watch_prefix(b"");
    let extra = 10;
    for i in 0..SUBSCRIBER_CAPACITY + extra {
        db.insert(u32::try_from(i).unwrap().to_be_bytes(), b"v").unwrap();
    }
    for i in 0..SUBSCRIBER_CAPACITY {
        let key = Bytes::copy_from(&u32::try_from(i).unwrap().to_be_bytes());
        assert_eq!(events.try_next(), Some(Event::Insert { key, value: b"v".into() }));
    }
    assert_eq!(events.try_next(), Some(Event::Lagged { missed: u64::try_from(extra).unwrap() }));
    db.insert(b"after", b"v").unwrap();
    assert_eq!(events.try_next(), Some(Event::Insert { key: b"after".into(), value: b"v".into() }));
    assert_eq!(events.try_next(), None);
}

#[test]
fn a_blocked_subscriber_wakes_for_an_event_and_its_stream_ends_with_the_database() {
    let db = db();
    let mut events = db.watch_prefix(b"k");
    let reader = std::thread::spawn(move || events.by_ref().collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(20));
    db.insert(b"k", b"1").unwrap();
    let writer_done = std::thread::spawn({
        let db = db.clone();
        move || {
            for i in 0..100u8 {
                db.insert([b'k', i], [i]).unwrap();
            }
        }
    });
    writer_done.join().unwrap();
    drop(db);
    let seen = reader.join().unwrap();
    assert_eq!(seen.len(), 101, "every event, then the end of the stream");
}

#[test]
fn a_timed_wait_returns_none_when_nothing_comes() {
    let db = db();
    let mut events = db.watch_prefix(b"");
    assert_eq!(events.next_timeout(Duration::from_millis(10)), None);
}
