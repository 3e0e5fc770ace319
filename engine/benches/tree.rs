//! `tree`: random inserts, random gets and ranges of 100 entries on a database of 1M keys,
//! from 1 and 2 threads, with criterion.
//!
//! # What it measures
//! One database on a real directory, default [`Config`] except the path (8 KiB nodes, a
//! 256 MiB cache, a flush every 500 ms). Keys are 24 random bytes, values 150 random bytes
//! (slices of a random pool, so that nothing compresses), all from fixed seeds.
//!
//! 1. **Load.** 1M keys in random order, in batches of 1,000 ([`Db::apply_batch`]), then
//!    one [`Db::flush`]; the time includes the flush. Printed: load time and rate,
//!    `size_on_disk` against the logical bytes (keys + values), the page cache's memory,
//!    and the process's `VmRSS`.
//! 2. **`get_random`**: a `get` of a random loaded key (it must be there).
//! 3. **`range_100`**: `range(key..)` from a random loaded key, taking 100 entries.
//! 4. **`insert_random`**: an `insert` of a 150 B value under a random key, half of the
//!    time a new one and half of the time a loaded one. It runs last, so that the reads
//!    see exactly the loaded data set; the tree grows by the new keys.
//!
//! Each group runs from 1 and 2 threads; one element is one operation (one range of 100
//! counts once). Two threads split each criterion iteration count in halves, started
//! together behind a barrier; the time is the wall time until both are done, so the
//! figure is the total throughput of both. Warm-up 1 s, 20 samples over 5 s per benchmark.
//! At the end a table gives each benchmark's median over its samples in operations/s.
//!
//! # How to run it
//! ```text
//! cargo bench -p grove-engine --bench tree
//! GROVE_BENCH_QUICK=1 cargo bench -p grove-engine --bench tree   # 50k keys, seconds
//! ```
//! Without cargo bench's `--bench` argument (as under `cargo test --benches`) it also runs
//! quick, and criterion runs each benchmark once as a test. Criterion's own arguments
//! (a filter, `--sample-size`, ...) work as usual after `--`.
//!
//! Data goes to a temporary directory under `GROVE_BENCH_DIR` if set, else under the cargo
//! target directory (next to the bench binary), never `/tmp`, which may be a RAM disk. It
//! is removed at the end. The full run needs about 1 GB of free disk.

use std::{
    fmt::Display,
    hint::black_box,
    sync::{
        Barrier, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput};
use grove_engine::{Batch, Config, Db};

mod support;

use support::{BenchResult, data_root, describe_filesystem, thousands};

const KEY: usize = 24;
const VALUE: usize = 150;
/// Writes per batch while loading.
const LOAD_BATCH: usize = 1000;
/// Entries each `range_100` iteration takes.
const RANGE: usize = 100;
/// Thread counts of every group.
const THREADS: [u64; 2] = [1, 2];
/// Random bytes the values are cut from.
const VALUE_POOL: usize = 1 << 16;
const MIB: f64 = 1_048_576.0;

/// Sizes and criterion settings of one run.
struct Plan {
    quick: bool,
    keys: usize,
    warm_up: Duration,
    measurement: Duration,
    samples: usize,
}

impl Plan {
    fn from_env() -> Self {
        let forced = std::env::var("GROVE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let under_cargo_bench = std::env::args().skip(1).any(|a| a == "--bench");
        if forced || !under_cargo_bench {
            Self {
                quick: true,
                keys: 50_000,
                warm_up: Duration::from_millis(50),
                measurement: Duration::from_millis(200),
                samples: 10,
            }
        } else {
            Self {
                quick: false,
                keys: 1_000_000,
                warm_up: Duration::from_secs(1),
                measurement: Duration::from_secs(5),
                samples: 20,
            }
        }
    }
}

/// What every benchmark reads: the database, the loaded keys (sorted) and the values' pool.
struct Fixture {
    db: Db,
    keys: Vec<[u8; KEY]>,
    pool: Vec<u8>,
    /// Seeds for the workers' generators, so that no two workers draw the same sequence.
    seeds: AtomicU64,
    /// Every `(iterations, time)` criterion asked for, by benchmark name.
    samples: Mutex<Vec<(String, u64, Duration)>>,
    /// `get`s that found nothing and ranges that ended early: both should stay 0.
    misses: AtomicU64,
    short_ranges: AtomicU64,
}

impl Fixture {
    fn value<'a>(&'a self, rng: &mut fastrand::Rng) -> &'a [u8] {
        let start = rng.usize(..=self.pool.len() - VALUE);
        &self.pool[start..start + VALUE]
    }

    fn loaded_key(&self, rng: &mut fastrand::Rng) -> &[u8; KEY] {
        &self.keys[rng.usize(..self.keys.len())]
    }

    /// A loaded key with at least [`RANGE`] loaded keys from it on.
    fn range_start(&self, rng: &mut fastrand::Rng) -> &[u8; KEY] {
        &self.keys[rng.usize(..=self.keys.len().saturating_sub(RANGE))]
    }

    /// Runs `work(rng, n)` on `threads` threads, splitting `iters` between them, and
    /// returns the wall time from their common start until the last one is done.
    fn run<W>(&self, name: &str, threads: u64, iters: u64, work: &W) -> Duration
    where
        W: Fn(&mut fastrand::Rng, u64) + Sync,
    {
        let elapsed = if threads == 1 {
            let mut rng = fastrand::Rng::with_seed(self.seeds.fetch_add(1, Ordering::Relaxed));
            let start = Instant::now();
            work(&mut rng, iters);
            start.elapsed()
        } else {
            let barrier = Barrier::new(usize::try_from(threads + 1).unwrap_or(usize::MAX));
            thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let share = iters / threads + u64::from(t < iters % threads);
                        let seed = self.seeds.fetch_add(1, Ordering::Relaxed);
                        let barrier = &barrier;
                        scope.spawn(move || {
                            let mut rng = fastrand::Rng::with_seed(seed);
                            barrier.wait();
                            work(&mut rng, share);
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                for handle in handles {
                    if let Err(panic) = handle.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                start.elapsed()
            })
        };
        lock(&self.samples).push((name.to_owned(), iters, elapsed));
        elapsed
    }
}

fn main() -> BenchResult<()> {
    let plan = Plan::from_env();
    let root = data_root()?;
    let scratch = tempfile::Builder::new().prefix("grove-bench-tree-").tempdir_in(&root)?;
    let dir = scratch.path();

    println!("# Grove `tree` benchmark");
    println!();
    println!(
        "- mode: {}",
        if plan.quick { "QUICK (50k keys: a smoke test, not figures to quote)" } else { "full" }
    );
    println!("- data directory: `{}` ({})", dir.display(), describe_filesystem(dir));
    println!(
        "- CPUs available: {}",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    println!("- {} keys of {KEY} B, values of {VALUE} B, batches of {LOAD_BATCH}", plan.keys);
    println!();

    let fixture = load(&plan, dir)?;

    let mut criterion = Criterion::default()
        .warm_up_time(plan.warm_up)
        .measurement_time(plan.measurement)
        .sample_size(plan.samples)
        .configure_from_args();
    bench_get(&mut criterion, &fixture);
    bench_range(&mut criterion, &fixture);
    bench_insert(&mut criterion, &fixture);
    criterion.final_summary();

    summarize(&plan, &fixture)?;
    let Fixture { db, .. } = fixture;
    drop(db);
    scratch.close()?;
    Ok(())
}

/// Opens a fresh database in `dir` and loads `plan.keys` keys, printing what it cost.
fn load(plan: &Plan, dir: &std::path::Path) -> BenchResult<Fixture> {
    let mut rng = fastrand::Rng::with_seed(0x0067_726f_7665);
    let mut pool = vec![0_u8; VALUE_POOL];
    rng.fill(&mut pool);
    let mut keys = vec![[0_u8; KEY]; plan.keys];
    for key in &mut keys {
        rng.fill(key);
    }

    let config = Config::new().path(dir);
    println!("Config: `{config:?}`");
    println!();
    let db = config.open()?;
    let rss_before = vm_rss()?;
    let start = Instant::now();
    for chunk in keys.chunks(LOAD_BATCH) {
        let mut batch = Batch::default();
        for key in chunk {
            let at = rng.usize(..=VALUE_POOL - VALUE);
            batch.insert(&db, key, &pool[at..at + VALUE]);
        }
        db.apply_batch(batch)?;
    }
    db.flush()?;
    let elapsed = start.elapsed().as_secs_f64();
    let rss = vm_rss()?;
    let stats = db.stats()?.page_cache;
    let logical = count_f64(keys.len()) * count_f64(KEY + VALUE);
    let disk = count_f64_u64(db.size_on_disk());
    println!("## Load");
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| load time (batches + final flush) | {elapsed:.2} s |");
    println!("| load rate | {:.0} keys/s |", count_f64(keys.len()) / elapsed);
    println!("| logical bytes (keys + values) | {:.1} MiB |", logical / MIB);
    println!("| `size_on_disk` after the flush | {:.1} MiB |", disk / MIB);
    println!("| `size_on_disk` / logical bytes | {:.2} |", disk / logical);
    println!(
        "| page cache `memory_bytes` (budget {}) | {} |",
        mib(stats.cache_bytes),
        mib(stats.memory_bytes)
    );
    println!(
        "| pages / resident / evictions | {} / {} / {} |",
        stats.pages, stats.resident_pages, stats.evictions
    );
    println!("| VmRSS before the load / after | {} / {} |", mib(rss_before), mib(rss));
    let counted_start = Instant::now();
    let counted = db.len()?;
    println!(
        "| `len()` (O(1): the tree's page weight) | {counted} in {:.2} s |",
        counted_start.elapsed().as_secs_f64()
    );
    println!();
    if counted != keys.len() {
        return Err(format!("loaded {} keys but `len()` counts {counted}", keys.len()).into());
    }
    keys.sort_unstable();
    Ok(Fixture {
        db,
        keys,
        pool,
        seeds: AtomicU64::new(1),
        samples: Mutex::new(Vec::new()),
        misses: AtomicU64::new(0),
        short_ranges: AtomicU64::new(0),
    })
}

fn bench_get(criterion: &mut Criterion, fixture: &Fixture) {
    let work = |rng: &mut fastrand::Rng, n: u64| {
        for _ in 0..n {
            let found = must(fixture.db.get(fixture.loaded_key(rng)), "get");
            if found.is_none() {
                fixture.misses.fetch_add(1, Ordering::Relaxed);
            }
            black_box(found);
        }
    };
    group(criterion, fixture, "get_random", &work);
}

fn bench_range(criterion: &mut Criterion, fixture: &Fixture) {
    let work = |rng: &mut fastrand::Rng, n: u64| {
        for _ in 0..n {
            let start = fixture.range_start(rng);
            let mut taken = 0;
            for entry in fixture.db.range(start.as_slice()..).take(RANGE) {
                black_box(must(entry, "range"));
                taken += 1;
            }
            if taken < RANGE {
                fixture.short_ranges.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    group(criterion, fixture, "range_100", &work);
}

fn bench_insert(criterion: &mut Criterion, fixture: &Fixture) {
    let work = |rng: &mut fastrand::Rng, n: u64| {
        let mut fresh = [0_u8; KEY];
        for _ in 0..n {
            let key = if rng.bool() {
                rng.fill(&mut fresh);
                &fresh
            } else {
                fixture.loaded_key(rng)
            };
            black_box(must(fixture.db.insert(key, fixture.value(rng)), "insert"));
        }
    };
    group(criterion, fixture, "insert_random", &work);
}

/// One criterion group: `work` from each of [`THREADS`].
fn group<W>(criterion: &mut Criterion, fixture: &Fixture, name: &str, work: &W)
where
    W: Fn(&mut fastrand::Rng, u64) + Sync,
{
    let mut group = criterion.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for threads in THREADS {
        let id = bench_name(name, threads);
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| fixture.run(&id, threads, iters, work));
        });
    }
    group.finish();
}

/// Prints each benchmark's median throughput, and the state of the database at the end.
fn summarize(plan: &Plan, fixture: &Fixture) -> BenchResult<()> {
    let samples = lock(&fixture.samples);
    println!("## Summary");
    println!();
    println!(
        "Median over each benchmark's last {} timed runs (criterion's samples; warm-up runs \
         come before them) of iterations / time, all threads together.",
        plan.samples
    );
    println!();
    println!("| benchmark | median ops/s | per thread | samples |");
    println!("|---|---:|---:|---:|");
    for name in ["get_random", "range_100", "insert_random"] {
        for threads in THREADS {
            let id = bench_name(name, threads);
            let mut rates: Vec<f64> = samples
                .iter()
                .filter(|(n, ..)| *n == id)
                .map(|(_, iters, time)| count_f64_u64(*iters) / time.as_secs_f64())
                .collect();
            let taken = rates.len().saturating_sub(plan.samples);
            let mut rates = rates.split_off(taken);
            if rates.is_empty() {
                println!("| {id} | not run | | |");
                continue;
            }
            rates.sort_by(f64::total_cmp);
            let median = rates[rates.len() / 2];
            println!(
                "| {id} | {} | {} | {} |",
                thousands(median),
                thousands(median / count_f64_u64(threads)),
                rates.len()
            );
        }
    }
    drop(samples);
    println!();
    let stats = fixture.db.stats()?.page_cache;
    println!(
        "At the end: {} keys, `size_on_disk` {}, `memory_bytes` {}, {} evictions, {} cold \
         reads, VmRSS {}, VmHWM {}.",
        fixture.db.len()?,
        mib(fixture.db.size_on_disk()),
        mib(stats.memory_bytes),
        stats.evictions,
        stats.cold_reads,
        mib(vm_rss()?),
        mib(proc_status("VmHWM:")?),
    );
    println!(
        "Gets that found nothing: {}; ranges shorter than {RANGE}: {} (both should be 0).",
        fixture.misses.load(Ordering::Relaxed),
        fixture.short_ranges.load(Ordering::Relaxed)
    );
    if plan.quick {
        println!();
        println!("(Quick mode: run `cargo bench -p grove-engine --bench tree` for real figures.)");
    }
    Ok(())
}

fn bench_name(group: &str, threads: u64) -> String {
    format!("{group}/threads/{threads}")
}

/// The value of an engine call inside a timed loop, where an error can only stop the run.
fn must<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|error| panic!("`{what}` failed during the benchmark: {error}"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// This process's `VmRSS`, in bytes.
fn vm_rss() -> BenchResult<u64> {
    proc_status("VmRSS:")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn proc_status(field: &str) -> BenchResult<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", count_f64_u64(bytes) / MIB)
}

#[expect(clippy::cast_precision_loss, reason = "counts printed as f64; below 2^53 they are exact")]
fn count_f64(n: usize) -> f64 {
    n as f64
}

#[expect(
    clippy::cast_precision_loss,
    reason = "byte and operation counts printed as f64; below 2^53 they are exact"
)]
fn count_f64_u64(n: u64) -> f64 {
    n as f64
}
