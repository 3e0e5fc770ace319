//! `transactions`: commits per second of small transactions, and what transactions and
//! snapshots cost the plain operations around them.
//!
//! # What it measures
//! One database on a real directory, default [`Config`] except the path. A tree of
//! `ACCOUNTS` accounts (8-byte keys, 8-byte balances). A *transfer* is a transaction of 2
//! reads and 2 writes: it reads two accounts and moves 1 from one to the other.
//!
//! 1. **Transfers, uncontended**: random accounts among all of them, from 1 thread, and
//!    from 2 threads each on its own half.
//! 2. **Transfers, contended**: 2 threads both on the same `HOT` accounts, so most commits
//!    meet a conflict and run again. Printed with the conflicts per commit.
//! 3. **Durable transfers**: each commit `flush_on_commit`, from 1, 2 and 8 threads. Printed
//!    with the log syncs per commit (below 1: commits shared syncs).
//! 4. **Plain gets beside other work**: random `get`s from 1 thread, alone; beside a thread
//!    of plain inserts; beside a thread of transfers. The gap between the last two is what
//!    transactions cost readers beyond a second busy thread (the machine has 2 cores).
//! 5. **Plain inserts with a snapshot open**: random inserts from 1 thread with no snapshot
//!    open, and with one open (each insert then records the value it replaces).
//!
//! Each figure is the median of `TRIALS` runs of a fixed duration (2 s, or 0.2 s quick).
//!
//! # How to run it
//! ```text
//! cargo bench -p grove-engine --bench transactions
//! GROVE_BENCH_QUICK=1 cargo bench -p grove-engine --bench transactions   # seconds
//! ```
//! Data goes under `GROVE_BENCH_DIR` if set, else under the cargo target directory.

use std::{
    hint::black_box,
    sync::{
        Barrier,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use grove_engine::{Config, Db, Tree};

mod support;

use support::{BenchResult, data_root, describe_filesystem, thousands};

const ACCOUNTS: u64 = 100_000;
/// Accounts the contended transfers share.
const HOT: u64 = 4;
const TRIALS: usize = 3;

/// One operation of a timed worker.
type Worker<'a> = dyn Fn(&mut fastrand::Rng) -> BenchResult<()> + Sync + 'a;

/// Keys to draw from, for one worker.
#[derive(Clone, Copy)]
enum Accounts {
    All,
    Half(u64),
    Hot,
}

impl Accounts {
    fn pick(self, rng: &mut fastrand::Rng) -> u64 {
        match self {
            Accounts::All => rng.u64(..ACCOUNTS),
            Accounts::Half(half) => half * (ACCOUNTS / 2) + rng.u64(..ACCOUNTS / 2),
            Accounts::Hot => rng.u64(..HOT),
        }
    }
}

fn balance(bytes: Option<grove_engine::Bytes>) -> u64 {
    bytes.and_then(|b| <[u8; 8]>::try_from(&b[..]).ok()).map_or(0, u64::from_be_bytes)
}

/// One transfer between two different accounts of `accounts`.
fn transfer(
    db: &Db,
    tree: &Tree,
    accounts: Accounts,
    durable: bool,
    rng: &mut fastrand::Rng,
) -> BenchResult<()> {
    let from = accounts.pick(rng);
    let to = loop {
        let to = accounts.pick(rng);
        if to != from {
            break to;
        }
    };
    db.transaction(|tx| {
        let a = balance(tx.get(tree, from.to_be_bytes())?);
        let b = balance(tx.get(tree, to.to_be_bytes())?);
        if a > 0 {
            tx.insert(tree, from.to_be_bytes(), (a - 1).to_be_bytes())?;
            tx.insert(tree, to.to_be_bytes(), (b + 1).to_be_bytes())?;
        }
        if durable {
            tx.flush_on_commit();
        }
        Ok::<_, grove_engine::TransactionError<()>>(())
    })
    .map_err(|e| format!("transfer failed: {e:?}"))?;
    Ok(())
}

/// Runs each of `workers` in its own thread for `duration`; returns the operations each
/// completed (a worker does one operation per call).
fn timed(duration: Duration, workers: &[&Worker]) -> BenchResult<Vec<u64>> {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(workers.len() + 1);
    let seeds = AtomicU64::new(7);
    thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter()
            .map(|work| {
                let (stop, barrier, seeds) = (&stop, &barrier, &seeds);
                scope.spawn(move || -> Result<u64, String> {
                    let mut rng = fastrand::Rng::with_seed(seeds.fetch_add(1, Ordering::Relaxed));
                    barrier.wait();
                    let mut done = 0;
                    while !stop.load(Ordering::Relaxed) {
                        work(&mut rng).map_err(|e| e.to_string())?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        barrier.wait();
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(result) => result.map_err(Into::into),
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The median over `TRIALS` of `measure`'s rate (operations per second).
fn median(mut measure: impl FnMut() -> BenchResult<f64>) -> BenchResult<f64> {
    let mut rates = (0..TRIALS).map(|_| measure()).collect::<BenchResult<Vec<f64>>>()?;
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

#[expect(clippy::cast_precision_loss, reason = "operation counts, exact below 2^53")]
fn rate(ops: u64, duration: Duration) -> f64 {
    ops as f64 / duration.as_secs_f64()
}

fn main() -> BenchResult<()> {
    let quick = std::env::var("GROVE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
        || !std::env::args().skip(1).any(|a| a == "--bench");
    let duration = if quick { Duration::from_millis(200) } else { Duration::from_secs(2) };
    let root = data_root()?;
    let scratch = tempfile::Builder::new().prefix("grove-bench-tx-").tempdir_in(&root)?;
    run(scratch.path(), quick, duration)?;
    scratch.close()?;
    Ok(())
}

/// Loads the accounts into a new database in `dir` and runs every workload.
fn run(dir: &std::path::Path, quick: bool, duration: Duration) -> BenchResult<()> {
    let db = Config::new().path(dir).open()?;
    let tree = db.open_tree("accounts")?;
    for chunk in (0..ACCOUNTS).collect::<Vec<_>>().chunks(1000) {
        let mut batch = grove_engine::Batch::default();
        for i in chunk {
            batch.insert(&tree, i.to_be_bytes(), 1_000u64.to_be_bytes());
        }
        db.apply_batch(batch)?;
    }
    db.flush()?;

    println!("# Grove `transactions` benchmark");
    println!();
    println!(
        "- mode: {}",
        if quick { "QUICK (a smoke test, not figures to quote)" } else { "full" }
    );
    println!("- data directory: `{}` ({})", dir.display(), describe_filesystem(dir));
    println!(
        "- CPUs available: {}; {ACCOUNTS} accounts; median of {TRIALS} runs of {duration:?}",
        thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    println!();
    println!("| workload | rate | note |");
    println!("|---|---:|---|");

    let row = |name: &str, rate: f64, note: String| {
        println!("| {name} | {}/s | {note} |", thousands(rate));
    };
    let stats = || db.stats().map(|s| s.versions);
    let syncs = || db.stats().map(|s| s.page_cache.delta_log.syncs);

    // Transfers.
    let (db, tree) = (&db, &tree);
    let one = |accounts: Accounts, durable: bool| {
        move |rng: &mut fastrand::Rng| transfer(db, tree, accounts, durable, rng)
    };
    let all = one(Accounts::All, false);
    row(
        "transfers, 1 thread",
        median(|| Ok(rate(timed(duration, &[&all])?[0], duration)))?,
        String::new(),
    );
    let (left, right) = (one(Accounts::Half(0), false), one(Accounts::Half(1), false));
    let two = median(|| Ok(rate(timed(duration, &[&left, &right])?.iter().sum(), duration)))?;
    row("transfers, 2 threads, own halves", two, String::new());
    let hot = one(Accounts::Hot, false);
    let before = stats()?;
    let mut commits = 0;
    let contended = median(|| {
        let done: u64 = timed(duration, &[&hot, &hot])?.iter().sum();
        commits += done;
        Ok(rate(done, duration))
    })?;
    let after = stats()?;
    let conflicts = after.conflicts - before.conflicts;
    row(
        "transfers, 2 threads, same 4 accounts",
        contended,
        format!("{:.2} conflicts per commit", ratio(conflicts, commits)),
    );

    // Durable transfers.
    for threads in [1usize, 2, 8] {
        let durable = one(Accounts::All, true);
        let workers: Vec<&Worker<'_>> = vec![&durable; threads];
        let before = syncs()?;
        let mut commits = 0;
        let rate = median(|| {
            let done: u64 = timed(duration, &workers)?.iter().sum();
            commits += done;
            Ok(rate(done, duration))
        })?;
        let synced = syncs()? - before;
        row(
            &format!("durable transfers, {threads} thread(s)"),
            rate,
            format!("{:.2} log syncs per commit", ratio(synced, commits)),
        );
    }

    // Plain gets beside other work.
    let get = |rng: &mut fastrand::Rng| -> BenchResult<()> {
        black_box(tree.get(rng.u64(..ACCOUNTS).to_be_bytes())?);
        Ok(())
    };
    let insert = |rng: &mut fastrand::Rng| -> BenchResult<()> {
        tree.insert(rng.u64(..ACCOUNTS).to_be_bytes(), 1_000u64.to_be_bytes())?;
        Ok(())
    };
    let alone = median(|| Ok(rate(timed(duration, &[&get])?[0], duration)))?;
    row("gets, 1 thread, alone", alone, String::new());
    let beside_inserts = median(|| Ok(rate(timed(duration, &[&get, &insert])?[0], duration)))?;
    row(
        "gets beside a thread of inserts",
        beside_inserts,
        format!("{:.2}x alone", beside_inserts / alone),
    );
    let beside_transfers = median(|| Ok(rate(timed(duration, &[&get, &all])?[0], duration)))?;
    row(
        "gets beside a thread of transfers",
        beside_transfers,
        format!(
            "{:.2}x alone, {:.2}x beside inserts",
            beside_transfers / alone,
            beside_transfers / beside_inserts
        ),
    );

    // Plain inserts with a snapshot open.
    let plain = median(|| Ok(rate(timed(duration, &[&insert])?[0], duration)))?;
    row("inserts, 1 thread, no snapshot open", plain, String::new());
    let snapshot = db.snapshot();
    let recorded = median(|| Ok(rate(timed(duration, &[&insert])?[0], duration)))?;
    let kept = stats()?;
    drop(snapshot);
    row(
        "inserts, 1 thread, a snapshot open",
        recorded,
        format!(
            "{:.2}x; {} versions kept, {:.1} MiB",
            recorded / plain,
            kept.versions,
            f64::from(u32::try_from(kept.version_bytes >> 10).unwrap_or(u32::MAX)) / 1024.0
        ),
    );
    println!();
    println!("Versions after the snapshot closed: {:?}", stats()?);
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "counts, exact below 2^53")]
fn ratio(part: u64, whole: u64) -> f64 {
    part as f64 / whole.max(1) as f64
}
