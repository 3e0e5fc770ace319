//! Persistent structs with `#[derive(Record)]`: a primary key filled in on insert, a
//! unique and a non-unique index with generated lookups, and a schema migration from
//! version 1 to version 2.
//!
//! ```text
//! cargo run --example records
//! ```

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The first version of the program stored users without a country.
mod v1 {
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    #[derive(Debug, Serialize, Deserialize, grove::Record)]
    #[record(name = "users")]
    pub struct User {
        #[key(auto)]
        pub id: Uuid,
        #[index(unique)]
        pub email: String,
        pub name: String,
    }
}

/// Version 2 adds a country, indexed; version 1 records are read through `From`.
#[derive(Debug, Serialize, Deserialize, grove::Record)]
#[record(name = "users", version = 2, from = v1::User)]
struct User {
    #[key(auto)]
    id: Uuid,
    #[index(unique)]
    email: String,
    #[index]
    country: String,
    name: String,
}

impl From<v1::User> for User {
    fn from(old: v1::User) -> Self {
        User { id: old.id, email: old.email, country: "unknown".into(), name: old.name }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("grove-records-{}", std::process::id()));

    // The old program writes two users.
    {
        let db = grove::open(&dir)?;
        let users = db.records::<v1::User>()?;
        for (email, name) in [("ann@example.com", "Ann"), ("bob@example.com", "Bob")] {
            let id = users.insert(&mut v1::User {
                id: Uuid::nil(),
                email: email.into(),
                name: name.into(),
            })?;
            println!("v1 stored {name} as {id}");
        }
    }

    // The new program opens the same collection: the indexes are rebuilt for version 2,
    // and version 1 records read as version 2.
    let db = grove::open(&dir)?;
    let users = db.records::<User>()?;
    let mut cid = User {
        id: Uuid::nil(),
        email: "cid@example.com".into(),
        country: "fr".into(),
        name: "Cid".into(),
    };
    users.insert(&mut cid)?;
    users.update(&cid.id, |u| u.country = "pt".into())?;

    let ann = users.get_by_email("ann@example.com")?.ok_or("ann is missing")?;
    println!("found by email: {} from {}", ann.name, ann.country);
    for user in users.find_by_country("unknown") {
        println!("no country yet: {}", user?.name);
    }
    let duplicate = users.insert(&mut User {
        id: Uuid::nil(),
        email: "bob@example.com".into(),
        country: "de".into(),
        name: "Bob 2".into(),
    });
    println!(
        "a second bob@example.com: {}",
        duplicate.err().map_or("accepted".into(), |e| e.to_string())
    );

    // Rewrite the version 1 records as version 2, and check every index entry.
    println!("migrated {} records", users.migrate(100)?);
    let report = users.verify()?;
    println!("verified {} records and {} index entries", report.records, report.index_entries);

    drop((users, db));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
