//! `pagecache`: space amplification, resident memory against the budget, and open time of
//! the page cache, on a real directory.
//!
//! # What it measures
//! Every scenario runs in a child process of its own (this binary, re-executed with
//! `GROVE_BENCH_PAGECACHE_CHILD` naming the scenario), so that each resident-memory figure
//! belongs to one scenario alone. The parent prints each child's report, then a summary.
//! Pages are 4 KiB images of random bytes (the first 8 bytes hold the page id); fragments
//! are ~100 B of random bytes, and the [`Materializer`] appends them to the base (as the
//! model test does), so a page grows by its fragments until the next `replace`.
//!
//! 1. **Space amplification.** A working set of 64 MiB of pages is allocated, then
//!    overwritten for 10 rounds: every round touches every page in a random order, half
//!    of the time with `replace` (a new 4 KiB image), otherwise with `link` of 2 to 4
//!    fragments. Default [`PageCacheConfig`] except `checkpoint_every` = 4 MiB (the delta
//!    stream keeps about two intervals on disk, which must be small next to the working
//!    set). After each
//!    round: `space_amplification`, `disk_bytes`, `live_bytes`, and the directory's real
//!    size (sum of file lengths) over `live_bytes`, split by file kind. At the end it runs
//!    `checkpoint` + `clean` three times and reports again. Target: at most 1.5.
//! 2. **Resident memory.** `cache_bytes` = 32 MiB; one child writes 10x that in 4 KiB pages
//!    and closes; another opens the data set and reads every page in a random order twice
//!    (`get` + `materialize`, checking the page id inside), sampling `VmRSS` every 1,000
//!    reads. Target: resident memory at most the budget + 10%, judged both for peak RSS
//!    minus the RSS right after open and for peak RSS itself. The log's write buffers
//!    (`2 * buffer_size * buffer_count`) are outside the budget and shown beside it.
//! 3. **Open time.** One child writes 100 MB of pages (plus a fragment or so on one page in
//!    16, so that replay meets fragments) with the default configuration, checkpoints,
//!    overwrites 32 MiB of pages and drops the cache without `close` (dropping flushes the
//!    log, but writes no checkpoint: open replays the 32 MiB, as after a crash; the same
//!    tail at both sizes shows what the data's size costs). Then five fresh
//!    children each time one `PageCache::open`; median and max. The same for 1 GB. The
//!    segment files are in the OS page cache (warm opens). Target: the 1 GB open within 2x
//!    the 100 MB open.
//!
//! # How to run it
//! ```text
//! cargo bench -p grove-engine --bench pagecache
//! GROVE_BENCH_QUICK=1 cargo bench -p grove-engine --bench pagecache   # smaller, seconds
//! ```
//! Quick mode: an 8 MiB working set, an 8 MiB budget, opens of 10 MB and 100 MB. Without
//! cargo bench's `--bench` argument (as under `cargo test --benches`) it also runs quick.
//! The full run needs about 3 GB of free disk.
//!
//! Data goes to a temporary directory under `GROVE_BENCH_DIR` if set, else under the cargo
//! target directory (next to the bench binary), never `/tmp`, which may be a RAM disk.
//! Each scenario's directory is removed once the scenario is done.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::Instant,
};

use grove_engine::{
    FileStorage, Materializer, Outcome, PageCache, PageCacheConfig, PageCacheStats, PageId, Storage,
};

mod support;

use support::{BenchResult, data_root, describe_filesystem};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// Bytes in the MB of the open-time data sets (1 MB = 10^6 bytes).
const MB: u64 = 1_000_000;
/// Every page image is this big when written.
const PAGE: usize = 4096;
/// Overwrite rounds of scenario 1.
const ROUNDS: usize = 10;
/// Fragments per `link` round of scenario 1, and their lengths.
const LINKS: std::ops::RangeInclusive<usize> = 2..=4;
const FRAGMENT: std::ops::RangeInclusive<usize> = 80..=120;
/// Scenario 1's checkpoint interval.
const SPACE_CHECKPOINT_EVERY: u64 = 4 * MIB;
/// Scenario 2 writes this many times its budget.
const DATA_OVER_BUDGET: u64 = 10;
/// Scenario 2 samples RSS every this many reads.
const RSS_EVERY: u64 = 1000;
/// Scenario 3 times this many opens per data set.
const OPENS: usize = 5;
/// Scenario 3 overwrites this many bytes of pages after a checkpoint, before the drop: the
/// log every open replays, the same at both sizes (half of the default `checkpoint_every`).
const OPEN_TAIL: u64 = 32 * MIB;
/// Scenario 3 links fragments onto one page in this many allocations.
const LINK_ONE_IN: u64 = 16;
/// Targets from the issue.
const TARGET_AMPLIFICATION: f64 = 1.5;
const TARGET_MEMORY_SLACK: f64 = 1.1;
const TARGET_OPEN_RATIO: f64 = 2.0;

/// The environment variables the parent hands its children.
const CHILD_VAR: &str = "GROVE_BENCH_PAGECACHE_CHILD";
const DIR_VAR: &str = "GROVE_BENCH_PAGECACHE_DIR";
const BYTES_VAR: &str = "GROVE_BENCH_PAGECACHE_BYTES";
/// A child's stdout line starting with this is a figure for the parent, not for people.
const RESULT_MARK: &str = "@result ";

/// Sizes of one run of the benchmark.
struct Plan {
    quick: bool,
    working_set: u64,
    budget: u64,
    open_sizes: [u64; 2],
}

impl Plan {
    fn from_env() -> Self {
        let forced = std::env::var("GROVE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let under_cargo_bench = std::env::args().skip(1).any(|a| a == "--bench");
        let quick = forced || !under_cargo_bench;
        if quick {
            Self { quick, working_set: 8 * MIB, budget: 8 * MIB, open_sizes: [10 * MB, 100 * MB] }
        } else {
            Self {
                quick,
                working_set: 64 * MIB,
                budget: 32 * MIB,
                open_sizes: [100 * MB, 1000 * MB],
            }
        }
    }
}

/// Fragments are appended to the base: the page's image is the concatenation.
struct Concat;

impl Materializer for Concat {
    fn merge(&self, base: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(base.len() + fragments.iter().map(|f| f.len()).sum::<usize>());
        out.extend_from_slice(base);
        for fragment in fragments {
            out.extend_from_slice(fragment);
        }
        out
    }
}

/// What a child reported: its figures by name.
type Figures = HashMap<String, f64>;

fn main() -> BenchResult<()> {
    if let Ok(scenario) = std::env::var(CHILD_VAR) {
        return child(&scenario);
    }
    let plan = Plan::from_env();
    let root = data_root()?;
    let scratch = tempfile::Builder::new().prefix("grove-bench-pagecache-").tempdir_in(&root)?;
    let dir = scratch.path();

    println!("# Grove `pagecache` benchmark");
    println!();
    println!(
        "- mode: {}",
        if plan.quick { "QUICK (smaller: a smoke test, not figures to quote)" } else { "full" }
    );
    println!("- data directory: `{}` ({})", dir.display(), describe_filesystem(dir));
    println!(
        "- CPUs available: {}",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    println!("- every scenario runs in a child process of its own; 1 MiB = 2^20 B, 1 MB = 10^6 B");
    println!();

    let mut failures = Vec::new();
    let space = run_scenario(&mut failures, "1. space amplification", || {
        run_child("space", &dir.join("space"), plan.working_set)
    });
    let memory = run_scenario(&mut failures, "2. resident memory", || {
        let data = dir.join("memory");
        let written = run_child("memory-write", &data, plan.budget)?;
        let read = run_child("memory-read", &data, plan.budget)?;
        Ok((written, read))
    });
    let mut opens = Vec::new();
    for size in plan.open_sizes {
        let name = format!("3. open time, {}", show_size(size));
        opens.push(run_scenario(&mut failures, &name, || open_scenario(&dir.join("open"), size)));
    }

    println!("## Summary");
    println!();
    println!("| scenario | measure | value | target | met |");
    println!("|---|---|---:|---:|:---:|");
    if let Some(space) = &space {
        summarize_space(space, plan.working_set);
    }
    if let Some((written, read)) = &memory {
        summarize_memory(written, read, plan.budget);
    }
    summarize_opens(&plan, &opens);
    println!();
    if plan.quick {
        println!(
            "(Quick mode: run `cargo bench -p grove-engine --bench pagecache` for real figures.)"
        );
        println!();
    }
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    scratch.close()?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} scenarios failed", failures.len()).into())
    }
}

/// Runs one scenario, noting its failure rather than stopping the others.
fn run_scenario<T>(
    failures: &mut Vec<String>,
    name: &str,
    scenario: impl FnOnce() -> BenchResult<T>,
) -> Option<T> {
    println!("## {name}");
    println!();
    let start = Instant::now();
    let result = scenario();
    println!("({name}: {:.1} s)", start.elapsed().as_secs_f64());
    println!();
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            println!("**{name} FAILED: {error}**");
            println!();
            failures.push(format!("{name}: {error}"));
            None
        }
    }
}

/// Scenario 3 for one size: write, then time [`OPENS`] opens, each in a fresh child.
fn open_scenario(dir: &Path, size: u64) -> BenchResult<(u64, Figures, Vec<Figures>)> {
    let written = run_child("open-write", dir, size)?;
    // Let the kernel finish writing the data back first, so that its writeback does not
    // compete with the timed opens (the files stay in the page cache: warm opens).
    for entry in std::fs::read_dir(dir)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    let mut opens = Vec::with_capacity(OPENS);
    for _ in 0..OPENS {
        opens.push(run_child("open-time", dir, size)?);
    }
    println!(
        "| open | `PageCache::open` | checkpoint_bytes | checkpoint_age_bytes | pages | memory_bytes | RSS after open |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (i, open) in opens.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} |",
            i + 1,
            show_ms(get(open, "open_ms")?),
            show_bytes_f(get(open, "checkpoint_bytes")?),
            show_bytes_f(get(open, "checkpoint_age_bytes")?),
            get(open, "pages")?,
            show_bytes_f(get(open, "memory_bytes")?),
            show_bytes_f(get(open, "rss_bytes")?),
        );
    }
    println!();
    println!(
        "Open replays the delta log written since the last checkpoint \
         (`checkpoint_age_bytes`): the same 32 MiB tail of overwrites at both sizes. The \
         files are in the OS page cache."
    );
    println!();
    std::fs::remove_dir_all(dir)?;
    Ok((size, written, opens))
}

/// Runs this binary as the child `scenario` on `dir`, echoes its report, and collects its
/// figures. The directory is removed afterwards unless `scenario` writes a data set that
/// a later child reads.
fn run_child(scenario: &str, dir: &Path, bytes: u64) -> BenchResult<Figures> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_VAR, scenario)
        .env(DIR_VAR, dir)
        .env(BYTES_VAR, bytes.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let mut figures = Figures::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match line.strip_prefix(RESULT_MARK) {
            Some(figure) => {
                let (name, value) = figure.split_once('=').ok_or("malformed child figure")?;
                figures.insert(name.to_owned(), value.parse()?);
            }
            None => println!("{line}"),
        }
    }
    let status = child.wait()?;
    let keeps_data = matches!(scenario, "memory-write" | "open-write" | "open-time");
    if !keeps_data && dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    if !status.success() {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        return Err(format!("child `{scenario}` exited with {status}").into());
    }
    Ok(figures)
}

fn get(figures: &Figures, name: &str) -> BenchResult<f64> {
    figures.get(name).copied().ok_or_else(|| format!("the child did not report `{name}`").into())
}

// ---------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------

fn child(scenario: &str) -> BenchResult<()> {
    let dir = PathBuf::from(std::env::var_os(DIR_VAR).ok_or("no data directory given")?);
    let bytes: u64 = std::env::var(BYTES_VAR)?.parse()?;
    match scenario {
        "space" => space_child(&dir, bytes),
        "memory-write" => memory_write_child(&dir, bytes),
        "memory-read" => memory_read_child(&dir, bytes),
        "open-write" => open_write_child(&dir, bytes),
        "open-time" => open_time_child(&dir),
        other => Err(format!("unknown scenario `{other}`").into()),
    }
}

/// A figure for the parent.
fn report(name: &str, value: f64) {
    println!("{RESULT_MARK}{name}={value}");
}

fn open_cache(dir: &Path, config: &PageCacheConfig) -> BenchResult<PageCache> {
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::open(dir)?);
    Ok(PageCache::open(storage, config.clone(), Arc::new(Concat))?)
}

/// A 4 KiB image of random bytes whose first 8 bytes are the page id.
fn image(rng: &mut fastrand::Rng, id: PageId) -> Vec<u8> {
    let mut bytes = vec![0; PAGE];
    rng.fill(&mut bytes);
    bytes[..8].copy_from_slice(&id.get().to_le_bytes());
    bytes
}

fn fragment(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut bytes = vec![0; rng.usize(FRAGMENT)];
    rng.fill(&mut bytes);
    bytes
}

fn installed(outcome: Outcome, id: PageId) -> BenchResult<u64> {
    outcome.installed().ok_or_else(|| format!("update of {id} was stale, with one writer").into())
}

/// A fresh cache hands out ids 0, 1, 2, ... in order; the images carry their id.
fn expect_id(id: PageId, expected: u64) -> BenchResult<()> {
    if id.get() == expected {
        Ok(())
    } else {
        Err(format!("allocate handed out {id}, expected page {expected}").into())
    }
}

fn page_count(bytes: u64) -> BenchResult<u64> {
    Ok(bytes / u64::try_from(PAGE)?)
}

/// Scenario 1.
fn space_child(dir: &Path, working_set: u64) -> BenchResult<()> {
    // The delta stream keeps about two checkpoint intervals on disk, so for a working set
    // this small the interval must be small too (see `PageCacheConfig::checkpoint_every`).
    let config =
        PageCacheConfig { checkpoint_every: SPACE_CHECKPOINT_EVERY, ..PageCacheConfig::default() };
    let pages = page_count(working_set)?;
    println!(
        "{pages} pages of {PAGE} B ({}), {ROUNDS} overwrite rounds: per page and round, half of \
         the time a `replace`, otherwise {}..={} `link`s of {}..={} B fragments.",
        show_bytes(working_set),
        LINKS.start(),
        LINKS.end(),
        FRAGMENT.start(),
        FRAGMENT.end()
    );
    println!();
    println!("Config: `{config:?}`");
    println!();
    let mut rng = fastrand::Rng::with_seed(1);
    let cache = open_cache(dir, &config)?;
    let mut versions = Vec::new();
    // What each page materializes to, in bytes: the logical size of the data.
    let mut sizes = Vec::new();
    for n in 0..pages {
        let (id, version) = cache.allocate(&image(&mut rng, PageId(n)))?;
        expect_id(id, n)?;
        versions.push(version);
        sizes.push(PAGE);
    }
    cache.flush()?;
    space_header();
    space_row(dir, &cache, "0 (allocate)", &sizes)?;

    let mut order: Vec<u64> = (0..pages).collect();
    for round in 1..=ROUNDS {
        rng.shuffle(&mut order);
        for &index in &order {
            let id = PageId(index);
            let slot = usize::try_from(index)?;
            if rng.bool() {
                let outcome = cache.replace(id, versions[slot], &image(&mut rng, id))?;
                versions[slot] = installed(outcome, id)?;
                sizes[slot] = PAGE;
            } else {
                for _ in 0..rng.usize(LINKS) {
                    let fragment = fragment(&mut rng);
                    let outcome = cache.link(id, versions[slot], &fragment)?;
                    versions[slot] = installed(outcome, id)?;
                    sizes[slot] += fragment.len();
                }
            }
        }
        cache.flush()?;
        space_row(dir, &cache, &round.to_string(), &sizes)?;
    }
    let stats = cache.stats();
    let files = DirSize::of(dir)?;
    report("amplification", stats.space_amplification);
    report("dir_amplification", files.total() / count_f64(stats.live_bytes));
    report("disk_bytes", count_f64(stats.disk_bytes));
    report("live_bytes", count_f64(stats.live_bytes));
    report("dir_bytes", files.total());
    report("logical_bytes", count_f64(u64::try_from(sizes.iter().sum::<usize>())?));
    println!();
    let over = stats.space_amplification > TARGET_AMPLIFICATION
        || files.total() / count_f64(stats.live_bytes) > TARGET_AMPLIFICATION;
    if over {
        println!(
            "Above the {TARGET_AMPLIFICATION} target after round {ROUNDS}. Where the bytes are:"
        );
        println!();
        space_breakdown(&stats, &files);
    }

    println!("Then `checkpoint()` + `clean()`, three times:");
    println!();
    space_header();
    for attempt in 1..=3 {
        cache.checkpoint()?;
        cache.clean()?;
        space_row(dir, &cache, &format!("+ maintenance {attempt}"), &sizes)?;
    }
    let stats = cache.stats();
    let files = DirSize::of(dir)?;
    report("after_amplification", stats.space_amplification);
    report("after_dir_amplification", files.total() / count_f64(stats.live_bytes));
    println!();
    if over {
        println!("After the extra maintenance:");
        println!();
        space_breakdown(&stats, &files);
    }
    if stats.maintenance_errors > 0 {
        println!(
            "**Maintenance errors: {} (last: {:?})**",
            stats.maintenance_errors, stats.last_maintenance_error
        );
        println!();
    }
    cache.close()?;
    let files = DirSize::of(dir)?;
    println!(
        "After `close()`: the directory holds {} (the live bytes above: {}).",
        show_bytes_f(files.total()),
        show_bytes(stats.live_bytes)
    );
    println!();
    Ok(())
}

fn space_header() {
    println!(
        "| round | logical | live_bytes | disk_bytes | space_amplification | directory | directory / live | delta files | base files | checkpoint files | consolidations | cleaned segs | relocations | deleted segs | checkpoints written |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn space_row(dir: &Path, cache: &PageCache, round: &str, sizes: &[usize]) -> BenchResult<()> {
    let stats = cache.stats();
    let files = DirSize::of(dir)?;
    let logical = u64::try_from(sizes.iter().sum::<usize>())?;
    println!(
        "| {round} | {} | {} | {} | {:.2} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
        show_bytes(logical),
        show_bytes(stats.live_bytes),
        show_bytes(stats.disk_bytes),
        stats.space_amplification,
        show_bytes_f(files.total()),
        files.total() / count_f64(stats.live_bytes),
        show_bytes_f(files.delta),
        show_bytes_f(files.base),
        show_bytes_f(files.checkpoints),
        stats.consolidations,
        stats.cleaned_segments,
        stats.relocations,
        stats.deleted_segments,
        stats.checkpoints,
    );
    Ok(())
}

fn space_breakdown(stats: &PageCacheStats, files: &DirSize) {
    println!("| measure | delta stream | base stream | checkpoints | other |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| files in the directory | {} in {} | {} in {} | {} in {} | {} in {} |",
        show_bytes_f(files.delta),
        files.delta_files,
        show_bytes_f(files.base),
        files.base_files,
        show_bytes_f(files.checkpoints),
        files.checkpoint_files,
        show_bytes_f(files.other),
        files.other_files,
    );
    println!(
        "| bytes written by the log (`LogStats::bytes_written`) | {} | {} | | |",
        show_bytes(stats.delta_log.bytes_written),
        show_bytes(stats.base_log.bytes_written),
    );
    println!(
        "| segments created (`LogStats::segments_created`) | {} | {} | | |",
        stats.delta_log.segments_created, stats.base_log.segments_created
    );
    println!();
    println!(
        "Cleaner: {} segments chosen, {} pages relocated, {} segment files deleted; {} \
         consolidations; {} checkpoints written (newest #{}, {}); {} maintenance errors.",
        stats.cleaned_segments,
        stats.relocations,
        stats.deleted_segments,
        stats.consolidations,
        stats.checkpoints,
        stats.checkpoint_seq,
        show_bytes(stats.checkpoint_bytes),
        stats.maintenance_errors,
    );
    println!();
}

/// The directory's files, by kind (file-name prefix), in bytes.
#[derive(Default)]
struct DirSize {
    delta: f64,
    delta_files: u64,
    base: f64,
    base_files: u64,
    checkpoints: f64,
    checkpoint_files: u64,
    other: f64,
    other_files: u64,
}

impl DirSize {
    fn of(dir: &Path) -> BenchResult<Self> {
        let mut size = Self::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let len = count_f64(entry.metadata()?.len());
            let name = entry.file_name().to_string_lossy().into_owned();
            let (bytes, files) = if name.starts_with("delta-") {
                (&mut size.delta, &mut size.delta_files)
            } else if name.starts_with("base-") {
                (&mut size.base, &mut size.base_files)
            } else if name.starts_with("checkpoint-") {
                (&mut size.checkpoints, &mut size.checkpoint_files)
            } else {
                (&mut size.other, &mut size.other_files)
            };
            *bytes += len;
            *files += 1;
        }
        Ok(size)
    }

    fn total(&self) -> f64 {
        self.delta + self.base + self.checkpoints + self.other
    }
}

/// Scenario 2, first child: 10x the budget of pages, then `close`.
fn memory_write_child(dir: &Path, budget: u64) -> BenchResult<()> {
    let config = PageCacheConfig { cache_bytes: budget, ..PageCacheConfig::default() };
    let pages = page_count(DATA_OVER_BUDGET * budget)?;
    println!(
        "Writing {pages} pages of {PAGE} B ({}, {DATA_OVER_BUDGET}x the budget), then `close()`.",
        show_bytes(pages * u64::try_from(PAGE)?)
    );
    println!();
    println!("Config: `{config:?}`");
    println!();
    let mut rng = fastrand::Rng::with_seed(2);
    let cache = open_cache(dir, &config)?;
    let start = Instant::now();
    let mut peak_memory = 0;
    for n in 0..pages {
        let (id, _) = cache.allocate(&image(&mut rng, PageId(n)))?;
        expect_id(id, n)?;
        if n.is_multiple_of(RSS_EVERY) {
            peak_memory = peak_memory.max(cache.stats().memory_bytes);
        }
    }
    let elapsed = start.elapsed();
    let stats = cache.stats();
    cache.close()?;
    let status = ProcStatus::read()?;
    println!(
        "Wrote in {:.1} s; `memory_bytes` at the end {} (peak sampled {}), {} evictions; \
         writer's peak RSS (VmHWM) {}.",
        elapsed.as_secs_f64(),
        show_bytes(stats.memory_bytes),
        show_bytes(peak_memory.max(stats.memory_bytes)),
        stats.evictions,
        show_bytes(status.hwm),
    );
    println!();
    report("writer_hwm", count_f64(status.hwm));
    report("writer_memory_peak", count_f64(peak_memory.max(stats.memory_bytes)));
    report("pages", count_f64(pages));
    Ok(())
}

/// Scenario 2, second child: open, then read every page in a random order, twice.
fn memory_read_child(dir: &Path, budget: u64) -> BenchResult<()> {
    let config = PageCacheConfig { cache_bytes: budget, ..PageCacheConfig::default() };
    let before_open = ProcStatus::read()?;
    let cache = open_cache(dir, &config)?;
    let baseline = ProcStatus::read()?;
    let opened = cache.stats();
    let pages = cache.page_id_count();
    let mut order: Vec<u64> = (0..pages).collect();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut peak_rss = baseline.rss;
    let mut peak_memory = opened.memory_bytes;
    let mut reads = 0_u64;
    let start = Instant::now();
    println!("| after reads | VmRSS | RSS - baseline | `memory_bytes` |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| 0 (just opened) | {} | 0 | {} |",
        show_bytes(baseline.rss),
        show_bytes(opened.memory_bytes)
    );
    let print_every = (2 * pages / 16).max(1);
    for _pass in 0..2 {
        rng.shuffle(&mut order);
        for &index in &order {
            let id = PageId(index);
            let page = cache.get(id)?.ok_or_else(|| format!("{id} is missing"))?;
            let image = page.materialize(&Concat);
            if image.len() != PAGE || image[..8] != index.to_le_bytes() {
                return Err(format!("{id} read back wrong ({} bytes)", image.len()).into());
            }
            reads += 1;
            if reads.is_multiple_of(100) {
                peak_memory = peak_memory.max(cache.stats().memory_bytes);
            }
            if reads.is_multiple_of(RSS_EVERY) {
                let rss = ProcStatus::read()?.rss;
                peak_rss = peak_rss.max(rss);
                if reads % print_every < RSS_EVERY {
                    println!(
                        "| {reads} | {} | {} | {} |",
                        show_bytes(rss),
                        show_signed(rss, baseline.rss),
                        show_bytes(cache.stats().memory_bytes)
                    );
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let end = ProcStatus::read()?;
    peak_rss = peak_rss.max(end.rss);
    let stats = cache.stats();
    peak_memory = peak_memory.max(stats.memory_bytes);
    println!(
        "| {reads} (end) | {} | {} | {} |",
        show_bytes(end.rss),
        show_signed(end.rss, baseline.rss),
        show_bytes(stats.memory_bytes)
    );
    println!();
    println!(
        "{reads} reads of {pages} pages in {:.1} s ({:.0} reads/s); {} cold reads, {} evictions, \
         {} resident pages at the end. VmHWM (the kernel's peak, including open): {}.",
        elapsed.as_secs_f64(),
        count_f64(reads) / elapsed.as_secs_f64(),
        stats.cold_reads,
        stats.evictions,
        stats.resident_pages,
        show_bytes(end.hwm),
    );
    println!();
    let buffers = 2 * config.log.buffer_size * u64::try_from(config.log.buffer_count)?;
    report("rss_before_open", count_f64(before_open.rss));
    report("baseline_rss", count_f64(baseline.rss));
    report("peak_rss", count_f64(peak_rss));
    report("hwm", count_f64(end.hwm));
    report("memory_at_open", count_f64(opened.memory_bytes));
    report("memory_peak", count_f64(peak_memory));
    report("log_buffers", count_f64(buffers));
    report("reads_per_second", count_f64(reads) / elapsed.as_secs_f64());
    cache.close()?;
    Ok(())
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
struct ProcStatus {
    rss: u64,
    hwm: u64,
}

impl ProcStatus {
    fn read() -> BenchResult<Self> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let field = |name: &str| -> BenchResult<u64> {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .ok_or_else(|| format!("no {name} in /proc/self/status"))?;
            let kib: u64 = line.trim().trim_end_matches("kB").trim().parse()?;
            Ok(kib * KIB)
        };
        Ok(Self { rss: field("VmRSS:")?, hwm: field("VmHWM:")? })
    }
}

/// Scenario 3, writer: `bytes` of pages, some fragments, then a drop without `close`.
fn open_write_child(dir: &Path, bytes: u64) -> BenchResult<()> {
    let config = PageCacheConfig::default();
    let pages = page_count(bytes)?;
    let mut rng = fastrand::Rng::with_seed(4);
    let cache = open_cache(dir, &config)?;
    let start = Instant::now();
    let mut versions: Vec<u64> = Vec::with_capacity(usize::try_from(pages)?);
    let mut links = 0_u64;
    for n in 0..pages {
        let (id, version) = cache.allocate(&image(&mut rng, PageId(n)))?;
        expect_id(id, n)?;
        versions.push(version);
        if n % LINK_ONE_IN == LINK_ONE_IN - 1 {
            let target = rng.u64(0..=n);
            let slot = usize::try_from(target)?;
            for _ in 0..rng.usize(1..=3) {
                let outcome = cache.link(PageId(target), versions[slot], &fragment(&mut rng))?;
                versions[slot] = installed(outcome, PageId(target))?;
                links += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    // The same log to replay at either size: a checkpoint, then OPEN_TAIL bytes of page
    // overwrites, so that the comparison shows what the data's size costs, not where it
    // happened to end between two periodic checkpoints.
    cache.checkpoint()?;
    let mut tail = 0_u64;
    while tail < OPEN_TAIL {
        let target = rng.u64(0..pages);
        let slot = usize::try_from(target)?;
        let outcome =
            cache.replace(PageId(target), versions[slot], &image(&mut rng, PageId(target)))?;
        versions[slot] = installed(outcome, PageId(target))?;
        tail += u64::try_from(PAGE)?;
    }
    let stats = cache.stats();
    drop(cache);
    let files = DirSize::of(dir)?;
    println!(
        "Wrote {pages} pages ({}) and {links} fragments in {:.2} s ({:.0} MB/s of page images), \
         checkpointed, overwrote {} of pages, then dropped the cache without `close()`. At the \
         drop: {} checkpoints written, checkpoint_age_bytes {}, live_bytes {}, directory {}. \
         Config: default (checkpoint_every {}).",
        show_size(pages * u64::try_from(PAGE)?),
        elapsed.as_secs_f64(),
        count_f64(pages * u64::try_from(PAGE)?) / count_f64(MB) / elapsed.as_secs_f64(),
        show_bytes(OPEN_TAIL),
        stats.checkpoints,
        show_bytes(stats.checkpoint_age_bytes),
        show_bytes(stats.live_bytes),
        show_bytes_f(files.total()),
        show_bytes(config.checkpoint_every),
    );
    println!();
    report("write_seconds", elapsed.as_secs_f64());
    report("dir_bytes", files.total());
    Ok(())
}

/// Scenario 3, one timed open.
fn open_time_child(dir: &Path) -> BenchResult<()> {
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::open(dir)?);
    let start = Instant::now();
    let cache = PageCache::open(storage, PageCacheConfig::default(), Arc::new(Concat))?;
    let elapsed = start.elapsed();
    let stats = cache.stats();
    let status = ProcStatus::read()?;
    report("open_ms", elapsed.as_secs_f64() * 1e3);
    report("checkpoint_bytes", count_f64(stats.checkpoint_bytes));
    report("checkpoint_age_bytes", count_f64(stats.checkpoint_age_bytes));
    report("pages", count_f64(stats.pages));
    report("memory_bytes", count_f64(stats.memory_bytes));
    report("rss_bytes", count_f64(status.rss));
    if let Some(fallback) = &stats.checkpoint_fallback {
        println!("**checkpoint fallback at open: {fallback}**");
    }
    // Nothing was updated, so dropping writes nothing: the next child replays the same log.
    drop(cache);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

fn summarize_space(space: &Figures, working_set: u64) {
    let name = format!("1. space ({} working set, {ROUNDS} rounds)", show_bytes(working_set));
    let row = |measure: &str, key: &str, judged: bool| {
        let value = space.get(key).copied().unwrap_or(f64::NAN);
        let (target, met) = if judged {
            (format!("<= {TARGET_AMPLIFICATION}"), verdict(value <= TARGET_AMPLIFICATION))
        } else {
            (String::new(), "")
        };
        println!("| {name} | {measure} | {value:.2} | {target} | {met} |");
    };
    row("`space_amplification` after round 10", "amplification", true);
    row("directory size / live_bytes after round 10", "dir_amplification", true);
    row("`space_amplification` after 3x checkpoint + clean", "after_amplification", false);
    row(
        "directory size / live_bytes after 3x checkpoint + clean",
        "after_dir_amplification",
        false,
    );
}

fn summarize_memory(written: &Figures, read: &Figures, budget: u64) {
    let name = format!("2. memory ({} budget, {DATA_OVER_BUDGET}x data)", show_bytes(budget));
    let limit = TARGET_MEMORY_SLACK * count_f64(budget);
    let value = |key: &str| read.get(key).copied().unwrap_or(f64::NAN);
    let baseline = value("baseline_rss");
    let peak = value("peak_rss");
    let target = format!("<= {}", show_bytes_f(limit));
    let rows: [(&str, f64, bool); 10] = [
        ("RSS of the reader before open (binary, libraries)", value("rss_before_open"), false),
        ("RSS right after open (baseline)", baseline, false),
        ("peak RSS (sampled every 1,000 reads)", peak, true),
        ("peak RSS - baseline", peak - baseline, true),
        ("VmHWM of the reader (kernel's peak, open included)", value("hwm"), false),
        ("`memory_bytes` right after open", value("memory_at_open"), false),
        ("`memory_bytes` peak (sampled every 100 reads)", value("memory_peak"), false),
        ("budget (`cache_bytes`)", count_f64(budget), false),
        ("log write buffers, outside the budget", value("log_buffers"), false),
        (
            "writer's VmHWM (write 10x budget + close)",
            written.get("writer_hwm").copied().unwrap_or(f64::NAN),
            false,
        ),
    ];
    for (measure, bytes, judged) in rows {
        let (target, met) =
            if judged { (target.as_str(), verdict(bytes <= limit)) } else { ("", "") };
        println!("| {name} | {measure} | {} | {target} | {met} |", show_bytes_f(bytes));
    }
    println!("| {name} | random reads/s (2 passes) | {:.0} | | |", value("reads_per_second"));
}

fn summarize_opens(plan: &Plan, opens: &[Option<(u64, Figures, Vec<Figures>)>]) {
    let mut medians = Vec::new();
    for (size, written, times) in opens.iter().flatten() {
        let name = format!("3. open ({} written, dropped without close)", show_size(*size));
        let mut ms: Vec<f64> = times.iter().filter_map(|f| f.get("open_ms").copied()).collect();
        ms.sort_by(f64::total_cmp);
        let median = ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN);
        let max = ms.last().copied().unwrap_or(f64::NAN);
        medians.push(median);
        let first = times.first();
        let figure = |key: &str| first.and_then(|f| f.get(key).copied()).unwrap_or(f64::NAN);
        println!(
            "| {name} | `PageCache::open` median / max of {OPENS} | {} / {} | | |",
            show_ms(median),
            show_ms(max)
        );
        println!(
            "| {name} | checkpoint_bytes / checkpoint_age_bytes after open | {} / {} | | |",
            show_bytes_f(figure("checkpoint_bytes")),
            show_bytes_f(figure("checkpoint_age_bytes"))
        );
        println!(
            "| {name} | write time / directory size | {:.2} s / {} | | |",
            written.get("write_seconds").copied().unwrap_or(f64::NAN),
            show_bytes_f(written.get("dir_bytes").copied().unwrap_or(f64::NAN))
        );
    }
    if let [small, large] = medians[..] {
        let ratio = large / small;
        println!(
            "| 3. open | median open of {} / median open of {} | {ratio:.2}x | <= {TARGET_OPEN_RATIO}x | {} |",
            show_size(plan.open_sizes[1]),
            show_size(plan.open_sizes[0]),
            verdict(ratio <= TARGET_OPEN_RATIO)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

#[expect(
    clippy::cast_precision_loss,
    reason = "byte and record counts printed as f64; below 2^53 they are exact"
)]
fn count_f64(n: u64) -> f64 {
    n as f64
}

fn show_bytes(bytes: u64) -> String {
    show_bytes_f(count_f64(bytes))
}

/// Bytes in MiB (or KiB when small).
fn show_bytes_f(bytes: f64) -> String {
    let mib = count_f64(MIB);
    if bytes.abs() >= mib {
        format!("{:.1} MiB", bytes / mib)
    } else {
        format!("{:.1} KiB", bytes / count_f64(KIB))
    }
}

fn show_signed(value: u64, base: u64) -> String {
    if value >= base {
        format!("+{}", show_bytes(value - base))
    } else {
        format!("-{}", show_bytes(base - value))
    }
}

/// A data-set size in MB or GB (decimal).
fn show_size(bytes: u64) -> String {
    let (unit, name) = if bytes >= 1000 * MB { (1000 * MB, "GB") } else { (MB, "MB") };
    if bytes.is_multiple_of(unit) {
        format!("{} {name}", bytes / unit)
    } else {
        format!("{:.1} {name}", count_f64(bytes) / count_f64(unit))
    }
}

fn show_ms(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.1} ms") }
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}
