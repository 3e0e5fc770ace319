//! `typed`: what the typed layer costs over the byte engine, on the same data: random
//! gets, random inserts and ranges of 100 small values, from 1 thread.
//!
//! # What it measures
//! One database on a real directory, default configuration. A typed `Map<u64, (u32, u32)>`
//! and an engine tree holding the same bytes (the typed map's own encoded keys and values),
//! `KEYS` entries each. Each workload runs on both for a fixed time, alternating, and the
//! table gives operations per second and the typed layer's time per operation over the
//! engine's (the target is at most 1.3x). Medians of 3 runs of 2 s (0.2 s quick).
//!
//! # How to run it
//! ```text
//! cargo bench -p grove-collections --bench typed
//! GROVE_BENCH_QUICK=1 cargo bench -p grove-collections --bench typed
//! ```

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use grove_collections::{Db, Map};
use grove_engine::{Batch, Config, Tree};

const KEYS: u64 = 200_000;
const RANGE: usize = 100;
const TRIALS: usize = 3;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn value(key: u64) -> (u32, u32) {
    #[expect(clippy::cast_possible_truncation, reason = "any bits will do")]
    let low = key as u32;
    (low, low.rotate_left(7))
}

/// Runs `op` for `duration`; returns operations per second.
fn rate(
    duration: Duration,
    rng: &mut fastrand::Rng,
    mut op: impl FnMut(&mut fastrand::Rng) -> BenchResult<()>,
) -> BenchResult<f64> {
    let start = Instant::now();
    let mut done = 0u32;
    while start.elapsed() < duration {
        for _ in 0..64 {
            op(rng)?;
        }
        done += 64;
    }
    Ok(f64::from(done) / start.elapsed().as_secs_f64())
}

/// Medians over `TRIALS` of the engine's and the typed layer's rates, alternating.
fn compare(
    duration: Duration,
    mut engine: impl FnMut(&mut fastrand::Rng) -> BenchResult<()>,
    mut typed: impl FnMut(&mut fastrand::Rng) -> BenchResult<()>,
) -> BenchResult<(f64, f64)> {
    let (mut e, mut t) = (Vec::new(), Vec::new());
    for trial in 0..TRIALS {
        let seed = u64::try_from(trial).unwrap_or(0);
        e.push(rate(duration, &mut fastrand::Rng::with_seed(seed), &mut engine)?);
        t.push(rate(duration, &mut fastrand::Rng::with_seed(seed), &mut typed)?);
    }
    e.sort_by(f64::total_cmp);
    t.sort_by(f64::total_cmp);
    Ok((e[TRIALS / 2], t[TRIALS / 2]))
}

fn main() -> BenchResult<()> {
    let quick = std::env::var("GROVE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
        || !std::env::args().skip(1).any(|a| a == "--bench");
    let duration = if quick { Duration::from_millis(200) } else { Duration::from_secs(2) };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| std::path::PathBuf::from("target"), Into::into);
    std::fs::create_dir_all(&target)?;
    let scratch = tempfile::Builder::new().prefix("grove-bench-typed-").tempdir_in(&target)?;
    let db = Db::open_with(Config::new().path(scratch.path()))?;
    let map: Map<u64, (u32, u32)> = db.map("typed")?;
    let tree: Tree = db.engine().open_tree("bytes")?;
    let encoded = |key: u64| -> BenchResult<(Vec<u8>, Vec<u8>)> {
        // The typed map's own bytes for this entry, so both hold the same data.
        let k = grove_collections::key::to_key(&key)?;
        map.insert(&key, &value(key))?;
        let v = db.engine().open_tree("__grove_collection/typed")?.get(&k)?.ok_or("missing")?;
        Ok((k, v.to_vec()))
    };
    let sample = encoded(0x9E37_79B9_7F4A_7C15)?;
    println!("# Grove `typed` benchmark");
    println!();
    println!(
        "- mode: {}",
        if quick { "QUICK (a smoke test, not figures to quote)" } else { "full" }
    );
    println!(
        "- {KEYS} entries: key u64 ({} bytes encoded), value (u32, u32) ({} bytes with its header)",
        sample.0.len(),
        sample.1.len()
    );
    println!("- medians of {TRIALS} runs of {duration:?}, 1 thread, engine and typed alternating");
    println!();

    let keys: Vec<u64> = (0..KEYS).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
    for chunk in keys.chunks(1000) {
        let entries: Vec<(u64, (u32, u32))> = chunk.iter().map(|&k| (k, value(k))).collect();
        map.extend(entries)?;
        let mut batch = Batch::default();
        for &k in chunk {
            let key = grove_collections::key::to_key(&k)?;
            let bytes =
                db.engine().open_tree("__grove_collection/typed")?.get(&key)?.ok_or("missing")?;
            batch.insert(&tree, key, bytes);
        }
        db.engine().apply_batch(batch)?;
    }
    db.flush()?;

    println!("| workload | engine ops/s | typed ops/s | typed time / engine time |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, (engine, typed): (f64, f64)| {
        println!("| {name} | {engine:.0} | {typed:.0} | {:.2}x |", engine / typed);
    };
    let pick = |rng: &mut fastrand::Rng| keys[rng.usize(..keys.len())];
    row(
        "get",
        compare(
            duration,
            |rng| {
                black_box(tree.get(pick(rng).to_be_bytes())?);
                Ok(())
            },
            |rng| {
                black_box(map.get(&pick(rng))?);
                Ok(())
            },
        )?,
    );
    row(
        &format!("range of {RANGE}"),
        compare(
            duration,
            |rng| {
                for entry in tree.range(pick(rng).to_be_bytes()..).take(RANGE) {
                    black_box(entry?);
                }
                Ok(())
            },
            |rng| {
                for entry in map.range(pick(rng)..).take(RANGE) {
                    black_box(entry?);
                }
                Ok(())
            },
        )?,
    );
    row(
        "insert (overwrite)",
        compare(
            duration,
            |rng| {
                let k = pick(rng);
                let bytes = &sample.1;
                black_box(tree.insert(k.to_be_bytes(), bytes)?);
                Ok(())
            },
            |rng| {
                let k = pick(rng);
                black_box(map.insert(&k, &value(k))?);
                Ok(())
            },
        )?,
    );
    drop((map, tree, db));
    scratch.close()?;
    Ok(())
}
