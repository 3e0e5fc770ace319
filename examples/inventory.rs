//! An inventory kept in Grove's byte-level engine: items by id, an index of items by
//! category kept in the same atomic batch, a range query, and a restart.
//!
//! Run it twice to see the first run's stock come back:
//!
//! ```text
//! cargo run --release --example inventory
//! ```
//!
//! Data goes to `./example-data/inventory`.

use std::time::Instant;

use grove::engine::{Batch, Config, Error};

const ITEMS: u64 = 100_000;
const CATEGORIES: [&str; 4] = ["books", "games", "music", "tools"];

fn main() -> Result<(), Error> {
    let db = Config::new().path("example-data/inventory").open()?;
    let items = db.open_tree("items")?;
    let by_category = db.open_tree("items-by-category")?;

    let before = items.len()?;
    println!("{before} items from earlier runs");

    // Each item and its index entry go in one batch: a crash keeps both or neither.
    let started = Instant::now();
    let mut batch = Batch::default();
    for _ in 0..ITEMS {
        let id = db.generate_id()?.to_be_bytes();
        let category = CATEGORIES[usize::try_from(u64::from_be_bytes(id) % 4).unwrap_or(0)];
        let record = format!("{category}: item {} in stock", u64::from_be_bytes(id));
        batch.insert(&items, id, record.as_bytes());
        let mut index_key = category.as_bytes().to_vec();
        index_key.push(0);
        index_key.extend_from_slice(&id);
        batch.insert(&by_category, index_key, b"");
        if batch.len() >= 200 {
            db.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    db.apply_batch(batch)?;
    db.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let per_second = f64::from(u32::try_from(ITEMS).unwrap_or(u32::MAX)) / seconds;
    println!("stocked {ITEMS} items in {seconds:.2} s, durably ({per_second:.0} items/s)");

    // Every game, through the index: a prefix scan, then a lookup per hit.
    let started = Instant::now();
    let mut games = 0;
    for entry in by_category.scan_prefix(b"games\0") {
        let (key, _) = entry?;
        let id = &key[b"games\0".len()..];
        if items.get(id)?.is_some() {
            games += 1;
        }
    }
    println!("{games} games found through the index in {:.2} s", started.elapsed().as_secs_f64());

    // The newest item: the largest id.
    if let Some((id, record)) = items.last()? {
        let id = u64::from_be_bytes(id.as_ref().try_into().unwrap_or([0; 8]));
        println!("newest item {id}: {}", String::from_utf8_lossy(&record));
    }
    // Ids: one atomic increment each, a durable reservation every 2^20.
    let started = Instant::now();
    let mut last = 0;
    for _ in 0..ITEMS * 10 {
        last = db.generate_id()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let per_second = f64::from(u32::try_from(ITEMS * 10).unwrap_or(u32::MAX)) / seconds;
    println!(
        "generated {} ids in {seconds:.3} s ({per_second:.0} ids/s), the last {last}",
        ITEMS * 10
    );

    let report = db.check()?;
    println!(
        "check: {} trees, {} nodes, {} entries; {} bytes on disk",
        report.trees,
        report.nodes,
        report.entries,
        db.size_on_disk()
    );
    Ok(())
}
