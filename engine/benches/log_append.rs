//! `log_append`: durable append throughput and flush latency of the storage log, next to this
//! machine's own disk figures.
//!
//! # What it measures
//! All on one directory of the real disk, in one process:
//!
//! 1. **Raw baseline.** (a) Sequential write bandwidth: a fresh file written in 1 MiB
//!    writes with an `fdatasync` every 8 MiB (the log's segment size) and at the end; the
//!    time includes the syncs. It runs before and after the append runs; the better figure
//!    is the baseline. (b) `fdatasync` latency: 100 bytes written at the end of a growing
//!    file, then a timed `fdatasync`; median and p99. For reference it also times
//!    `fdatasync` after overwriting 100 bytes of already-allocated blocks.
//! 2. **Appends.** 100 B and 1 KiB bodies from 1 and 2 threads into a fresh [`Log`] with the
//!    default [`LogConfig`], then one final [`Log::flush`]; timed from the first append to
//!    the end of that flush, so the figures are *durable* throughput. Records/s, MB/s of
//!    body bytes (1 MB = 10^6 bytes), MB/s of bytes on disk (20-byte record headers
//!    included), the ratio of body MB/s to the raw bandwidth of 1(a), and the log's own
//!    counters (segments, group commits, `fdatasync`s).
//! 3. **Flush latency.** One 100-byte append, then a timed [`Log::flush`]; median and p99,
//!    and the ratio of the median to the median `fdatasync` of 1(b). Rounds of 3 alternate
//!    with rounds of 1(b), so both see the same disk and machine load.
//!
//! The targets it checks: appends at 50% or more of the raw sequential write bandwidth; a
//! single-record flush within 1.5x of one `fdatasync`.
//!
//! # How to run it
//! ```text
//! cargo bench -p grove-engine --bench log_append
//! GROVE_BENCH_QUICK=1 cargo bench -p grove-engine --bench log_append   # 10x smaller
//! ```
//! Without cargo bench's `--bench` argument (as under `cargo test --benches`) it also runs
//! the quick mode. Other arguments are ignored.
//!
//! Data goes to a temporary directory under `GROVE_BENCH_DIR` if set, else under the cargo
//! target directory (next to the bench binary), never `/tmp`, which may be a RAM disk. The
//! filesystem it lands on is printed; point `GROVE_BENCH_DIR` at the disk you care about.
//! Every temporary file is removed at the end.

use std::{
    fs::{File, OpenOptions},
    io::{Seek, SeekFrom, Write},
    path::Path,
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use grove_engine::{FileStorage, Log, LogConfig, LogStats, RecordKind, Storage};

mod support;

use support::{BenchResult, data_root, describe_filesystem};

const MIB: u64 = 1 << 20;
/// Bytes in the MB of every MB/s figure.
const MB: f64 = 1e6;
/// The raw baseline writes in chunks this big...
const RAW_CHUNK: u64 = MIB;
/// ...and syncs this often, as the log does when it closes a default-sized segment.
const RAW_SYNC_EVERY: u64 = 8 * MIB;
/// Body bytes per append run, and bytes of the raw sequential write, in full mode.
const FULL_BYTES: u64 = 256 * MIB;
/// Timed iterations of the latency loops in full mode.
const FULL_ITERATIONS: usize = 200;
/// Untimed iterations before every latency loop.
const WARM_UP: usize = 10;
/// Body size of the flush-latency loop and of the fdatasync baseline writes.
const SMALL_BODY: usize = 100;
/// Every appended record has this kind (16 is the first user kind).
const KIND: u8 = 16;
/// Targets from the issue.
const TARGET_APPEND_RATIO: f64 = 0.5;
const TARGET_FLUSH_RATIO: f64 = 1.5;

/// Sizes of one run of the benchmark.
struct Plan {
    quick: bool,
    bytes: u64,
    iterations: usize,
}

impl Plan {
    fn from_env() -> Self {
        let forced = std::env::var("GROVE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let under_cargo_bench = std::env::args().skip(1).any(|a| a == "--bench");
        let quick = forced || !under_cargo_bench;
        if quick {
            Self { quick, bytes: FULL_BYTES / 10 / MIB * MIB, iterations: FULL_ITERATIONS / 4 }
        } else {
            Self { quick, bytes: FULL_BYTES, iterations: FULL_ITERATIONS }
        }
    }
}

/// Median, p99 (nearest rank) and maximum of a set of latencies.
#[derive(Clone, Copy)]
struct Latency {
    median: Duration,
    p99: Duration,
    max: Duration,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> BenchResult<Self> {
        samples.sort_unstable();
        let n = samples.len();
        let max = *samples.last().ok_or("no latency samples")?;
        Ok(Self { median: samples[n / 2], p99: samples[(99 * n).div_ceil(100) - 1], max })
    }
}

/// The latency figures of 1(b) and 3.
struct SyncAndFlush {
    /// `fdatasync` after a small write at the end of a growing file.
    growing: Latency,
    /// `fdatasync` after a small overwrite of allocated blocks.
    allocated: Latency,
    /// `Log::flush` after one small append.
    flush: Latency,
    /// `fdatasync` calls the log made per timed flush.
    syncs_per_flush: f64,
}

/// One append run's figures.
struct AppendRun {
    body: usize,
    threads: usize,
    records: u64,
    elapsed: Duration,
    stats: LogStats,
}

fn main() -> BenchResult<()> {
    let plan = Plan::from_env();
    let root = data_root()?;
    let scratch = tempfile::Builder::new().prefix("grove-bench-log-append-").tempdir_in(&root)?;
    let dir = scratch.path();
    let cpus = thread::available_parallelism().map_or(1, std::num::NonZero::get);

    println!("# Grove `log_append` benchmark");
    println!();
    println!(
        "- mode: {}",
        if plan.quick {
            "QUICK (about 10x smaller: a smoke test, not figures to quote)"
        } else {
            "full"
        }
    );
    println!("- data directory: `{}` ({})", dir.display(), describe_filesystem(dir));
    println!("- CPUs available: {cpus} (each log also runs one flusher thread)");
    println!(
        "- {:.1} MB per sequential write and per append run; {} latency samples after {WARM_UP} warm-up rounds",
        mb(plan.bytes),
        plan.iterations
    );
    println!();

    // Measure everything first, print afterwards. The sequential baseline runs before and
    // after the append runs, and the ratios use the better of the two (the stricter test).
    let before = raw_sequential_write(&dir.join("raw-sequential-before"), plan.bytes)?;
    let latency = sync_and_flush_latency(dir, plan.iterations)?;
    let mut runs = Vec::new();
    for body in [100, 1024] {
        for threads in [1, 2] {
            let log_dir = dir.join(format!("log-{body}b-{threads}t"));
            runs.push(append_run(&log_dir, body, threads, plan.bytes)?);
            std::fs::remove_dir_all(&log_dir)?;
        }
    }
    let after = raw_sequential_write(&dir.join("raw-sequential-after"), plan.bytes)?;
    let raw_bandwidth = before.max(after);

    println!("## Raw disk baseline (same directory, same process)");
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    let sequential = format!(
        "sequential write of {:.1} MB in {} KiB writes, fdatasync every {} MiB and at the end",
        mb(plan.bytes),
        RAW_CHUNK / 1024,
        RAW_SYNC_EVERY / MIB,
    );
    println!("| {sequential}, before the append runs | {:.1} MB/s |", before / MB);
    println!("| {sequential}, after the append runs | {:.1} MB/s |", after / MB);
    println!(
        "| **raw sequential write bandwidth** (the better of the two) | **{:.1} MB/s** |",
        raw_bandwidth / MB
    );
    println!(
        "| **fdatasync** after a {SMALL_BODY} B write at the end of a growing file: median / p99 / max | **{}** / {} / {} |",
        show(latency.growing.median),
        show(latency.growing.p99),
        show(latency.growing.max)
    );
    println!(
        "| (reference) fdatasync after a {SMALL_BODY} B overwrite of allocated blocks: median / p99 / max | {} / {} / {} |",
        show(latency.allocated.median),
        show(latency.allocated.p99),
        show(latency.allocated.max)
    );
    println!();

    println!("## Appends (durable: first append to the end of the final flush)");
    println!();
    println!(
        "| body | threads | records | time | records/s | body MB/s | on-disk MB/s | body MB/s vs raw | target >= {:.0}% |",
        TARGET_APPEND_RATIO * 100.0
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|:---:|");
    for run in &runs {
        let seconds = run.elapsed.as_secs_f64();
        let body_bytes = run.records * u64::try_from(run.body)?;
        let body_rate = count_f64(body_bytes) / seconds;
        let disk_rate = count_f64(run.stats.bytes_written) / seconds;
        let ratio = body_rate / raw_bandwidth;
        println!(
            "| {} B | {} | {} | {:.2} s | {:.0} | {:.1} | {:.1} | {:.0}% | {} |",
            run.body,
            run.threads,
            run.records,
            seconds,
            count_f64(run.records) / seconds,
            body_rate / MB,
            disk_rate / MB,
            ratio * 100.0,
            verdict(ratio >= TARGET_APPEND_RATIO)
        );
    }
    println!();
    println!("Log internals of the same runs (from `Log::stats`):");
    println!();
    println!(
        "| body | threads | on-disk MB | segments created | group commits | `LogStats::syncs` | MB per group commit |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for run in &runs {
        let stats = &run.stats;
        println!(
            "| {} B | {} | {:.1} | {} | {} | {} | {:.2} |",
            run.body,
            run.threads,
            mb(stats.bytes_written),
            stats.segments_created,
            stats.batches,
            stats.syncs,
            mb(stats.bytes_written) / count_f64(stats.batches.max(1))
        );
    }
    println!();
    println!(
        "`LogStats::syncs` counts every fdatasync and directory fsync: one per group commit, \
         one per segment closed, and two per segment created (its header and the directory)."
    );
    println!();

    let flush = latency.flush;
    let flush_ratio = flush.median.as_secs_f64() / latency.growing.median.as_secs_f64();
    println!("## Flush latency: one {SMALL_BODY} B append, then a timed `flush`");
    println!();
    println!(
        "Measured in the same loop as the fdatasync baseline above, round by round, so both see the same load."
    );
    println!();
    println!(
        "| samples | median | p99 | max | fdatasyncs per flush | median vs fdatasync median | p99 vs fdatasync p99 | target <= {TARGET_FLUSH_RATIO}x |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|:---:|");
    println!(
        "| {} | {} | {} | {} | {:.2} | {:.2}x | {:.2}x | {} |",
        plan.iterations,
        show(flush.median),
        show(flush.p99),
        show(flush.max),
        latency.syncs_per_flush,
        flush_ratio,
        flush.p99.as_secs_f64() / latency.growing.p99.as_secs_f64(),
        verdict(flush_ratio <= TARGET_FLUSH_RATIO)
    );
    println!();
    if plan.quick {
        println!(
            "(Quick mode: run `cargo bench -p grove-engine --bench log_append` for real figures.)"
        );
    }

    scratch.close()?;
    Ok(())
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(0x0067_726f_7665);
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    bytes
}

fn create_file(path: &Path) -> BenchResult<File> {
    Ok(OpenOptions::new().read(true).write(true).create_new(true).open(path)?)
}

/// 1(a): bytes per second of a sequential write of `total` bytes (a multiple of
/// [`RAW_CHUNK`]) to a fresh file, syncs included.
fn raw_sequential_write(path: &Path, total: u64) -> BenchResult<f64> {
    let chunk = random_bytes(usize::try_from(RAW_CHUNK)?);
    let mut file = create_file(path)?;
    let start = Instant::now();
    let mut offset = 0;
    while offset < total {
        file.write_all(&chunk)?;
        offset += RAW_CHUNK;
        if offset % RAW_SYNC_EVERY == 0 {
            file.sync_data()?;
        }
    }
    file.sync_data()?;
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(count_f64(offset) / elapsed.as_secs_f64())
}

fn open_log(dir: &Path) -> BenchResult<Log> {
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::open(dir)?);
    Ok(Log::open(storage, LogConfig::default())?)
}

/// 2: `threads` threads append `body`-byte records, about `total` body bytes in all, then
/// one flush; timed from the first append to the end of the flush.
fn append_run(dir: &Path, body: usize, threads: usize, total: u64) -> BenchResult<AppendRun> {
    let kind = RecordKind::new(KIND).ok_or("record kind 16 is a user kind")?;
    let payload = random_bytes(body);
    let per_thread = total / u64::try_from(body * threads)?;
    let log = open_log(dir)?;
    let start_line = Barrier::new(threads + 1);
    let elapsed = thread::scope(|scope| -> BenchResult<Duration> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (log, payload, start_line) = (&log, &payload, &start_line);
                scope.spawn(move || -> grove_engine::Result<()> {
                    start_line.wait();
                    for _ in 0..per_thread {
                        log.append(kind, payload)?;
                    }
                    Ok(())
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        for worker in workers {
            worker.join().map_err(|_| "appender thread panicked")??;
        }
        log.flush()?;
        Ok(start.elapsed())
    })?;
    let stats = log.stats();
    log.close()?;
    Ok(AppendRun { body, threads, records: per_thread * u64::try_from(threads)?, elapsed, stats })
}

/// 1(b) and 3, interleaved so that both see the same disk and machine load: each iteration
/// times an `fdatasync` after a small write at the end of a growing file (as the log's flusher
/// does on a segment), an `fdatasync` after a small overwrite of allocated blocks (for
/// reference), and a log `flush` after one small append.
fn sync_and_flush_latency(dir: &Path, iterations: usize) -> BenchResult<SyncAndFlush> {
    let kind = RecordKind::new(KIND).ok_or("record kind 16 is a user kind")?;
    let body = random_bytes(SMALL_BODY);
    let step = u64::try_from(SMALL_BODY)?;
    let rounds = WARM_UP + iterations;

    // Both raw files start out durable, directory entries included, as a log segment does.
    let mut growing = create_file(&dir.join("raw-sync-growing"))?;
    growing.sync_all()?;
    let mut allocated = create_file(&dir.join("raw-sync-allocated"))?;
    allocated.write_all(&random_bytes(rounds * SMALL_BODY))?;
    allocated.sync_all()?;
    File::open(dir)?.sync_all()?;
    let log = open_log(&dir.join("log-flush"))?;

    let mut growing_samples = Vec::with_capacity(iterations);
    let mut allocated_samples = Vec::with_capacity(iterations);
    let mut flush_samples = Vec::with_capacity(iterations);
    let mut syncs_before = 0;
    for round in 0..rounds {
        let timed = round >= WARM_UP;
        if round == WARM_UP {
            syncs_before = log.stats().syncs;
        }
        let offset = u64::try_from(round)? * step;

        growing.write_all(&body)?;
        let start = Instant::now();
        growing.sync_data()?;
        let growing_sync = start.elapsed();

        allocated.seek(SeekFrom::Start(offset))?;
        allocated.write_all(&body)?;
        let start = Instant::now();
        allocated.sync_data()?;
        let allocated_sync = start.elapsed();

        let lsn = log.append(kind, &body)?;
        let start = Instant::now();
        let stable = log.flush()?;
        let flush = start.elapsed();
        if stable <= lsn {
            return Err(format!("flush returned stable LSN {stable}, not past {lsn}").into());
        }

        if timed {
            growing_samples.push(growing_sync);
            allocated_samples.push(allocated_sync);
            flush_samples.push(flush);
        }
    }
    let syncs = log.stats().syncs - syncs_before;
    log.close()?;
    Ok(SyncAndFlush {
        growing: Latency::of(growing_samples)?,
        allocated: Latency::of(allocated_samples)?,
        flush: Latency::of(flush_samples)?,
        syncs_per_flush: count_f64(syncs) / count_f64(u64::try_from(iterations)?),
    })
}

#[expect(
    clippy::cast_precision_loss,
    reason = "byte and record counts printed as f64; below 2^53 they are exact"
)]
fn count_f64(n: u64) -> f64 {
    n as f64
}

fn mb(bytes: u64) -> f64 {
    count_f64(bytes) / MB
}

/// A latency in the unit that suits it.
fn show(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 1000.0 { format!("{:.2} ms", micros / 1000.0) } else { format!("{micros:.0} µs") }
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}
