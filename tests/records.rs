//! `#[derive(Record)]` at run time: round trips, automatic keys, lookups by each index,
//! unique violations (alone and with 4 threads racing), updates and removes that keep the
//! indexes right, reopening, a migration across schema versions 1, 2 and 3 with data
//! written by each, and `verify` catching a damaged index.

use std::sync::Arc;

use grove::{Error, Record, Records};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(name = "users")]
struct User {
    #[key(auto)]
    id: uuid::Uuid,
    #[index(unique)]
    email: String,
    #[index]
    country: String,
    name: String,
}

fn user(email: &str, country: &str) -> User {
    User { id: uuid::Uuid::nil(), email: email.into(), country: country.into(), name: email.into() }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
struct Order {
    #[key(auto)]
    number: u64,
    #[index]
    customer: (String, u8),
    total: u32,
}

/// A composite primary key: a tuple field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(name = "scores")]
struct Score {
    #[key]
    player_round: (String, u32),
    #[index]
    points: u64,
}

#[test]
fn a_tuple_field_is_a_composite_key_in_tuple_order() {
    let db = grove::Db::open_with(grove::engine::Config::new().temporary(true)).unwrap();
    let scores: Records<Score> = db.records().unwrap();
    for (player, round, points) in [("bob", 1, 5), ("ann", 2, 9), ("ann", 1, 7), ("ann", 10, 1)] {
        let mut score = Score { player_round: (player.into(), round), points };
        scores.insert(&mut score).unwrap();
    }
    let anns: Vec<u32> = scores
        .range(("ann".to_string(), 0)..("ann".to_string(), u32::MAX))
        .map(|s| s.unwrap().player_round.1)
        .collect();
    assert_eq!(anns, [1, 2, 10], "by round as a number, not as text");
    assert_eq!(scores.get(&("bob".to_string(), 1)).unwrap().unwrap().points, 5);
    let high: Vec<u64> = scores.range_by_points(6..).map(|s| s.unwrap().points).collect();
    assert_eq!(high, [7, 9]);
    scores.verify().unwrap();
}

#[test]
fn records_round_trip_and_are_found_by_each_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = grove::open(dir.path()).unwrap();
    let users: Records<User> = db.records().unwrap();
    let mut ann = user("ann@example.com", "fr");
    let ann_id = users.insert(&mut ann).unwrap();
    assert_ne!(ann_id, uuid::Uuid::nil(), "the key was filled in");
    assert_eq!(ann.id, ann_id);
    let mut bob = user("bob@example.com", "de");
    users.insert(&mut bob).unwrap();
    let mut cid = user("cid@example.com", "fr");
    users.insert(&mut cid).unwrap();

    assert_eq!(users.get(&ann_id).unwrap(), Some(ann.clone()));
    assert_eq!(users.get_by_email("bob@example.com").unwrap(), Some(bob.clone()));
    assert_eq!(users.get_by_email("nobody@example.com").unwrap(), None);
    let french: Vec<User> = users.find_by_country("fr").map(Result::unwrap).collect();
    assert_eq!(french, [ann.clone(), cid.clone()], "in primary key order (v7 ids: insertion)");
    let from_e: Vec<String> =
        users.range_by_country("e".to_string()..).map(|u| u.unwrap().country).collect();
    assert_eq!(from_e, ["fr", "fr"]);
    let up_to_de: Vec<String> =
        users.range_by_country(..="de".to_string()).map(|u| u.unwrap().country).collect();
    assert_eq!(up_to_de, ["de"]);
    assert_eq!(users.len().unwrap(), 3);
    assert_eq!(users.iter().count(), 3);
    assert_eq!(users.verify().unwrap().index_entries, 6);

    // Integer auto keys come from the database's ids; composite index values work too.
    let orders: Records<Order> = db.records().unwrap();
    let mut first = Order { number: 0, customer: ("ann".into(), 1), total: 10 };
    let mut second = Order { number: 0, customer: ("ann".into(), 2), total: 20 };
    let a = orders.insert(&mut first).unwrap();
    let b = orders.insert(&mut second).unwrap();
    assert!(b > a);
    let anns: Vec<u32> =
        orders.range_by_customer(("ann".to_string(), 0)..).map(|o| o.unwrap().total).collect();
    assert_eq!(anns, [10, 20]);
    assert_eq!(orders.find_by_customer(&("ann".to_string(), 2)).count(), 1);

    // Reopened: records and indexes are still there.
    drop((users, orders, db));
    let db = grove::open(dir.path()).unwrap();
    let users: Records<User> = db.records().unwrap();
    assert_eq!(users.get_by_email("ann@example.com").unwrap(), Some(ann));
    assert_eq!(users.find_by_country("fr").count(), 2);
    users.verify().unwrap();
}

#[test]
fn updates_and_removes_keep_the_indexes_right() {
    let db = grove::Db::open_with(grove::engine::Config::new().temporary(true)).unwrap();
    let users: Records<User> = db.records().unwrap();
    let mut ann = user("ann@example.com", "fr");
    let id = users.insert(&mut ann).unwrap();

    let moved = users.update(&id, |u| {
        u.country = "it".into();
        u.email = "ann@example.it".into();
    });
    assert_eq!(moved.unwrap().unwrap().country, "it");
    assert_eq!(users.find_by_country("fr").count(), 0, "the old index entry is gone");
    assert_eq!(users.find_by_country("it").count(), 1);
    assert_eq!(users.get_by_email("ann@example.com").unwrap(), None);
    assert!(users.get_by_email("ann@example.it").unwrap().is_some());
    users.verify().unwrap();

    // The old email is free again; the new one is taken.
    users.insert(&mut user("ann@example.com", "fr")).unwrap();
    let taken = users.insert(&mut user("ann@example.it", "es"));
    match taken {
        Err(Error::UniqueViolation { record, index, value }) => {
            assert_eq!((record.as_str(), index.as_str()), ("users", "email"));
            assert_eq!(value, "\"ann@example.it\"");
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert_eq!(users.len().unwrap(), 2, "nothing of the refused insert was written");

    // An update that would take someone else's email is refused whole.
    let result = users.update(&id, |u| u.email = "ann@example.com".into());
    assert!(matches!(result, Err(Error::UniqueViolation { .. })), "{result:?}");
    assert_eq!(users.get(&id).unwrap().unwrap().email, "ann@example.it");
    let result = users.update(&id, |u| u.id = uuid::Uuid::nil());
    assert!(matches!(result, Err(Error::KeyChanged { .. })), "{result:?}");

    // An insert always takes a fresh automatic key: a copy is a new record, refused here
    // for its email. Upsert replaces the record under its key, reindexing.
    let mut again = users.get(&id).unwrap().unwrap();
    let copy = users.insert(&mut User { ..again.clone() });
    assert!(matches!(copy, Err(Error::UniqueViolation { .. })), "{copy:?}");
    again.country = "pt".into();
    let old = users.upsert(&again).unwrap();
    assert_eq!(old.unwrap().country, "it");
    assert_eq!(users.find_by_country("pt").count(), 1);
    assert_eq!(users.find_by_country("it").count(), 0);

    let removed = users.remove(&id).unwrap();
    assert_eq!(removed.unwrap().email, "ann@example.it");
    assert_eq!(users.get_by_email("ann@example.it").unwrap(), None);
    assert_eq!(users.find_by_country("pt").count(), 0);
    let report = users.verify().unwrap();
    assert_eq!((report.records, report.index_entries), (1, 2));
}

#[test]
fn of_four_threads_inserting_one_unique_value_exactly_one_wins() {
    for round in 0..10 {
        let db = grove::Db::open_with(grove::engine::Config::new().temporary(true)).unwrap();
        let users: Arc<Records<User>> = Arc::new(db.records().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let users = users.clone();
                std::thread::spawn(move || {
                    let mut candidate = user("same@example.com", &format!("c{t}"));
                    users.insert(&mut candidate)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        let refused =
            results.iter().filter(|r| matches!(r, Err(Error::UniqueViolation { .. }))).count();
        assert_eq!((won, refused), (1, 3), "round {round}: {results:?}");
        assert_eq!(users.len().unwrap(), 1);
        users.verify().unwrap();
    }
}

mod v1 {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, grove::Record)]
    #[record(name = "people")]
    pub struct Person {
        #[key]
        pub id: u32,
        pub name: String,
    }
}

mod v2 {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, grove::Record)]
    #[record(name = "people", version = 2, from = super::v1::Person)]
    pub struct Person {
        #[key]
        pub id: u32,
        pub first: String,
        pub last: String,
    }

    impl From<super::v1::Person> for Person {
        fn from(old: super::v1::Person) -> Self {
            let mut parts = old.name.splitn(2, ' ');
            let first = parts.next().unwrap_or_default().to_owned();
            Person { id: old.id, first, last: parts.next().unwrap_or_default().to_owned() }
        }
    }
}

mod v3 {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, grove::Record)]
    #[record(name = "people", version = 3, from = super::v2::Person)]
    pub struct Person {
        #[key]
        pub id: u32,
        pub first: String,
        #[index]
        pub last: String,
        pub nickname: Option<String>,
    }

    impl From<super::v2::Person> for Person {
        fn from(old: super::v2::Person) -> Self {
            Person { id: old.id, first: old.first, last: old.last, nickname: None }
        }
    }
}

#[test]
fn records_of_versions_1_and_2_are_read_as_version_3_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = grove::open(dir.path()).unwrap();
        let people: Records<v1::Person> = db.records().unwrap();
        people.insert(&mut v1::Person { id: 1, name: "Ada Lovelace".into() }).unwrap();
        people.insert(&mut v1::Person { id: 2, name: "Alan Turing".into() }).unwrap();
        let again = people.insert(&mut v1::Person { id: 2, name: "Someone Else".into() });
        assert!(matches!(again, Err(Error::KeyExists { .. })), "{again:?}");
    }
    {
        let db = grove::open(dir.path()).unwrap();
        let people: Records<v2::Person> = db.records().unwrap();
        let ada = people.get(&1).unwrap().unwrap();
        assert_eq!((ada.first.as_str(), ada.last.as_str()), ("Ada", "Lovelace"));
        people.upsert(&v2::Person { id: 3, first: "Grace".into(), last: "Hopper".into() }).unwrap();
    }
    let db = grove::open(dir.path()).unwrap();
    // The stored version is now 2: the version 1 type can no longer open it.
    assert!(matches!(db.records::<v1::Person>(), Err(Error::TypeMismatch { .. })));
    let people: Records<v3::Person> = db.records().unwrap();
    // The new index was built from every record, whatever version wrote it.
    let turing: Vec<u32> = people.find_by_last("Turing").map(|p| p.unwrap().id).collect();
    assert_eq!(turing, [2]);
    people
        .upsert(&v3::Person {
            id: 4,
            first: "Edsger".into(),
            last: "Dijkstra".into(),
            nickname: Some("EWD".into()),
        })
        .unwrap();
    let all: Vec<v3::Person> = people.iter().map(Result::unwrap).collect();
    assert_eq!(all.len(), 4);
    assert_eq!(
        all[0],
        v3::Person { id: 1, first: "Ada".into(), last: "Lovelace".into(), nickname: None }
    );
    assert_eq!(people.migrate(2).unwrap(), 3, "two records of version 1 and one of version 2");
    assert_eq!(people.migrate(2).unwrap(), 0, "nothing left to migrate");
    assert_eq!(people.iter().map(Result::unwrap).collect::<Vec<_>>(), all);
    people.verify().unwrap();
}

#[test]
fn verify_finds_a_damaged_index() {
    let db = grove::Db::open_with(grove::engine::Config::new().temporary(true)).unwrap();
    let users: Records<User> = db.records().unwrap();
    users.insert(&mut user("ann@example.com", "fr")).unwrap();
    users.verify().unwrap();
    let index = db.engine().open_tree("__grove_index/users/country").unwrap();
    let (entry, _) = index.first().unwrap().unwrap();
    index.remove(&entry).unwrap();
    let result = users.verify();
    assert!(
        matches!(result, Err(Error::IndexMismatch { ref index, .. }) if index == "country"),
        "{result:?}"
    );
    index.insert(b"stray", b"nothing").unwrap();
    assert!(matches!(users.verify(), Err(Error::IndexMismatch { .. })));
}
