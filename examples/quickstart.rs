//! Grove in one page: typed maps, sets, queues and counters of your own types, a
//! transaction across them, and a restart that finds everything again.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Data goes to `./example-data/quickstart`; run it twice to see the first run's data.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    name: String,
    email: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = grove::open("example-data/quickstart")?;

    // A map from ids to your own type; keys sort by their Ord.
    let users = db.map::<u64, User>("users")?;
    let emails = db.set::<String>("emails")?;
    let signups = db.queue::<u64>("signups")?;
    let count = db.counter("user-count")?;
    println!("{} users from earlier runs", users.len()?);

    // One transaction: all of it happens, or none (here: an email already taken).
    let signup = |name: &str, email: &str| {
        db.transaction(|tx| {
            if tx.set(&emails).contains(email)? {
                return Err(grove::TransactionError::Abort(format!("{email} is taken")));
            }
            let id = db.engine().generate_id()?;
            let user = User { name: name.into(), email: email.into() };
            tx.map(&users).insert(&id, &user)?;
            tx.set(&emails).insert(email)?;
            tx.queue(&signups).push(&id)?;
            tx.counter(&count).add(1)?;
            Ok(id)
        })
    };
    let run = count.get()?;
    match signup("Ann", &format!("ann{run}@example.com")) {
        Ok(id) => println!("signed up Ann as user {id}"),
        Err(error) => println!("no signup: {error}"),
    }
    if let Err(error) = signup("Impostor", &format!("ann{run}@example.com")) {
        println!("no signup: {error}");
    }

    // A worker takes the signups, oldest first.
    while let Some(id) = signups.pop()? {
        let user = users.get(&id)?.ok_or("a signup without its user")?;
        println!("welcome mail to {} <{}>", user.name, user.email);
    }

    // Ranges follow the key's order, both ways.
    for entry in users.iter().rev().take(3) {
        let (id, user) = entry?;
        println!("user {id}: {}", user.name);
    }
    println!("{} users in all", count.get()?);
    db.flush()?; // durable from here
    Ok(())
}
