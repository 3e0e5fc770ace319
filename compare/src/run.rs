//! One engine, one run, in this process: the workloads in order, each
//! measured on its own, printed as `metric value` lines for the driver.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    data::Shape,
    engines::{self, Result},
};

/// The sizes of the workloads, as the flags set them.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub keys: u64,
    pub shape: Shape,
    pub load_batch: u64,
    pub durable_writes: u64,
    pub batches: u64,
    pub batch_size: u64,
    pub writes: u64,
    pub gets: u64,
    pub ranges: u64,
    pub range_len: usize,
    pub threads: u64,
    pub cache_bytes: u64,
    pub seed: u64,
}

/// Operations per chunk of a read workload: one call, one read transaction.
const CHUNK: u64 = 1000;

pub fn run(engine: &str, dir: &Path, sizes: &Sizes) -> Result<()> {
    let shape = sizes.shape;
    let out = |metric: &str, value: f64| println!("{metric} {value}");
    let per_second = |ops: u64, took: Duration| ops as f64 / took.as_secs_f64();
    // The peak RSS so far goes with each step, to show which workload sets it.
    let progress = |what: &str| {
        let peak = peak_rss_mib().map_or_else(|_| "?".to_owned(), |mib| format!("{mib:.0}"));
        eprintln!("  {engine}: {what} (peak RSS so far {peak} MiB)");
    };

    let store = engines::open(engine, dir, sizes.cache_bytes)?;

    progress("load");
    let mut took = Duration::ZERO;
    for start in (0..sizes.keys).step_by(to_usize(sizes.load_batch)) {
        let end = (start + sizes.load_batch).min(sizes.keys);
        let entries: Vec<_> = (start..end).map(|i| (shape.key(i), shape.value(i, 0))).collect();
        took += timed(|| store.batch(&entries, false))?;
    }
    took += timed(|| store.sync())?;
    out("load", per_second(sizes.keys, took));
    out("disk_load", mib(disk_bytes(dir)?));
    store.after("load");

    // New keys, one write each, from key number `next` on; the time they took.
    let puts = |next: &mut u64, count: u64, durable: bool| -> Result<Duration> {
        let mut took = Duration::ZERO;
        for i in *next..*next + count {
            let (key, value) = (shape.key(i), shape.value(i, 0));
            took += timed(|| store.put(&key, &value, durable))?;
        }
        *next += count;
        Ok(took)
    };

    progress("durable writes");
    let mut next = sizes.keys;
    let took = puts(&mut next, sizes.durable_writes, true)?;
    out("durable_writes", per_second(sizes.durable_writes, took));
    store.after("durable writes");

    progress("durable batches");
    let mut took = Duration::ZERO;
    for _ in 0..sizes.batches {
        let entries: Vec<_> =
            (next..next + sizes.batch_size).map(|i| (shape.key(i), shape.value(i, 0))).collect();
        took += timed(|| store.batch(&entries, true))?;
        next += sizes.batch_size;
    }
    out("durable_batches", per_second(sizes.batches * sizes.batch_size, took));
    store.after("durable batches");

    progress("writes");
    let took = puts(&mut next, sizes.writes, false)?;
    out("writes", per_second(sizes.writes, took));

    progress("len");
    let start = Instant::now();
    let len = store.len()?;
    out("len", ms(start.elapsed()));
    expect("len after the writes", len, next)?;
    store.sync()?;
    out("disk_writes", mib(disk_bytes(dir)?));
    store.after("writes");

    progress("gets");
    let gets = |threads: u64| -> Result<f64> {
        parallel(threads, |thread| {
            let mut rng = fastrand::Rng::with_seed(sizes.seed ^ thread);
            let mut took = Duration::ZERO;
            let ops = sizes.gets / threads;
            for done in (0..ops).step_by(to_usize(CHUNK)) {
                let keys: Vec<_> =
                    (0..CHUNK.min(ops - done)).map(|_| shape.key(rng.u64(..sizes.keys))).collect();
                let mut found = 0;
                took += timed(|| {
                    found = store.get(&keys)?;
                    Ok(())
                })?;
                expect("keys found by get", found as u64, keys.len() as u64)?;
            }
            Ok(per_second(ops, took))
        })
    };
    out("gets_1", gets(1)?);
    out("gets_n", gets(sizes.threads)?);
    store.after("gets");

    progress("ranges");
    let mut rng = fastrand::Rng::with_seed(sizes.seed);
    let mut took = Duration::ZERO;
    for done in (0..sizes.ranges).step_by(to_usize(CHUNK)) {
        let starts: Vec<_> =
            (0..CHUNK.min(sizes.ranges - done)).map(|_| shape.key(rng.u64(..sizes.keys))).collect();
        took += timed(|| store.range(&starts, sizes.range_len).map(drop))?;
    }
    out("ranges", per_second(sizes.ranges, took));
    store.after("ranges");

    progress("mix");
    let mix = parallel(sizes.threads, |thread| {
        let mut rng = fastrand::Rng::with_seed(sizes.seed ^ thread ^ 0x5eed);
        let mut took = Duration::ZERO;
        let ops = sizes.gets / sizes.threads;
        // Chunks of 100 operations: 90 gets in one call, then 10 writes.
        for _ in 0..ops / 100 {
            let keys: Vec<_> = (0..90).map(|_| shape.key(rng.u64(..sizes.keys))).collect();
            took += timed(|| store.get(&keys).map(drop))?;
            for _ in 0..10 {
                let i = rng.u64(..sizes.keys);
                let (key, value) = (shape.key(i), shape.value(i, 1));
                took += timed(|| store.put(&key, &value, false))?;
            }
        }
        Ok(per_second(ops / 100 * 100, took))
    })?;
    out("mix", mix);
    store.after("mix");

    progress("removes");
    let mut took = Duration::ZERO;
    let removed: Vec<u64> = (0..sizes.keys).step_by(2).collect();
    for chunk in removed.chunks(to_usize(sizes.load_batch)) {
        let keys: Vec<_> = chunk.iter().map(|&i| shape.key(i)).collect();
        took += timed(|| store.remove(&keys, false))?;
    }
    took += timed(|| store.sync())?;
    out("removes", per_second(removed.len() as u64, took));
    out("disk_removes", mib(disk_bytes(dir)?));
    store.after("removes");

    progress("close and reopen");
    let start = Instant::now();
    drop(store);
    out("close", ms(start.elapsed()));
    let start = Instant::now();
    let store = engines::open(engine, dir, sizes.cache_bytes)?;
    out("reopen", ms(start.elapsed()));
    expect("len after reopening", store.len()?, next - removed.len() as u64)?;
    expect(
        "removed keys found after reopening",
        store.get(&[shape.key(0), shape.key(2)])? as u64,
        0,
    )?;
    expect(
        "kept keys found after reopening",
        store.get(&[shape.key(1), shape.key(next - 1)])? as u64,
        2,
    )?;
    drop(store);

    out("peak_rss", peak_rss_mib()?);
    Ok(())
}

/// Runs `work` on `threads` threads and sums the rates they return.
fn parallel(threads: u64, work: impl Fn(u64) -> Result<f64> + Sync) -> Result<f64> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|t| scope.spawn(move || work(t))).collect();
        let mut total = 0.0;
        for handle in handles {
            total += handle.join().map_err(|_| "a workload thread panicked")??;
        }
        Ok(total)
    })
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

fn expect(what: &str, got: u64, wanted: u64) -> Result<()> {
    if got == wanted {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, expected {wanted}: the adapter or the engine lost data")
            .into())
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Bytes allocated on disk under `dir`, as `du` counts them: sparse holes are free.
///
/// An engine's background work (RocksDB's compactions) may delete a file between the
/// listing and the look at it: a file gone by then counts nothing.
fn disk_bytes(dir: &Path) -> Result<u64> {
    Ok(du(dir)?)
}

fn du(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let counted = entry.and_then(|entry| {
            let meta = entry.metadata()?;
            if meta.is_dir() { du(&entry.path()) } else { Ok(meta.blocks() * 512) }
        });
        match counted {
            Ok(bytes) => total += bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// The high-water mark of this process's resident memory, from the kernel.
fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line =
        status.lines().find(|l| l.starts_with("VmHWM:")).ok_or("no VmHWM in /proc/self/status")?;
    let kib: f64 =
        line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib / 1024.0)
}
