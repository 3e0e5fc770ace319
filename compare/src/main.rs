//! Grove beside sled, redb, fjall, LMDB (and RocksDB with `--features rocksdb`)
//! on the same workloads: one process per engine per run, engines interleaved
//! across runs, medians reported as a markdown table and a CSV.
//!
//! ```text
//! cargo run --release -- --runs 3 --out results
//! ```

mod data;
mod engines;
mod metrics;
mod report;
mod run;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use engines::Result;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
grove-compare [flags]
  --engines a,b,...    engines to run (default: all this build has)
  --runs N             runs per engine; medians are reported (default 3)
  --dir PATH           where the databases go; must be a real disk (default target/compare-data)
  --out PATH           writes PATH.md and PATH.csv (default target/compare-results)
  --keys N             entries in the bulk load (default 1000000)
  --key-bytes N        (default 24)
  --value-bytes N      (default 150)
  --load-batch N       entries per write batch in the load and the removals (default 1000)
  --durable-writes N   individual durable writes (default 1000)
  --batches N          durable batches (default 100)
  --batch-size N       entries per durable batch (default 1000)
  --writes N           non-durable writes (default 10000)
  --gets N             random gets, and operations of the mixed workload (default 1000000)
  --ranges N           random ranges (default 10000)
  --range-len N        entries per range (default 100)
  --threads N          threads of the parallel workloads (default 2)
  --cache-mb N         cache budget given to each engine (default 256)
  --seed N             (default 1)";

/// Whether `name` is a flag: one `USAGE` lists, or `child`, which the driver passes to
/// the processes it starts. Read from the usage text, so the two cannot disagree.
fn known_flag(name: &str) -> bool {
    name == "child"
        || USAGE.lines().any(|line| {
            let listed = line.trim_start().strip_prefix("--");
            listed.and_then(|rest| rest.split_whitespace().next()) == Some(name)
        })
}

fn main() {
    if let Err(error) = main_result() {
        eprintln!("grove-compare: {error}");
        std::process::exit(1);
    }
}

fn main_result() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut flags = BTreeMap::new();
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}\n{USAGE}"))?;
        if name == "help" {
            println!("{USAGE}");
            return Ok(());
        }
        // A misspelt flag would otherwise run the whole default benchmark without a word.
        if !known_flag(name) {
            return Err(format!("unknown flag {flag:?}\n{USAGE}").into());
        }
        let value = iter.next().ok_or_else(|| format!("--{name} needs a value\n{USAGE}"))?;
        flags.insert(name.to_string(), value.clone());
    }
    let number = |name: &str, default: u64| -> Result<u64> {
        match flags.get(name) {
            Some(v) => v.parse().map_err(|e| format!("--{name} {v}: {e}").into()),
            None => Ok(default),
        }
    };
    let sizes = run::Sizes {
        keys: number("keys", 1_000_000)?,
        shape: data::Shape {
            key_bytes: usize::try_from(number("key-bytes", 24)?)?,
            value_bytes: usize::try_from(number("value-bytes", 150)?)?,
        },
        load_batch: number("load-batch", 1000)?.max(1),
        durable_writes: number("durable-writes", 1000)?,
        batches: number("batches", 100)?,
        batch_size: number("batch-size", 1000)?,
        writes: number("writes", 10_000)?,
        gets: number("gets", 1_000_000)?,
        ranges: number("ranges", 10_000)?,
        range_len: usize::try_from(number("range-len", 100)?)?,
        threads: number("threads", 2)?.max(1),
        cache_bytes: number("cache-mb", 256)? << 20,
        seed: number("seed", 1)?,
    };
    let dir = PathBuf::from(flags.get("dir").map_or("target/compare-data", String::as_str));

    // The driver starts this same binary with --child for each engine and run.
    if let Some(engine) = flags.get("child") {
        return run::run(engine, &dir, &sizes);
    }

    let engines: Vec<String> = match flags.get("engines") {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => engines::names().into_iter().map(str::to_string).collect(),
    };
    let runs = number("runs", 3)?.max(1);
    let out = PathBuf::from(flags.get("out").map_or("target/compare-results", String::as_str));
    let child_flags: Vec<&String> = args.iter().collect();

    let mut results: BTreeMap<String, Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    for run in 0..runs {
        // Interleaved: each run starts with the next engine, so no engine always
        // runs first on a cold machine or last on a hot one.
        let offset = usize::try_from(run)? % engines.len();
        for engine in engines[offset..].iter().chain(&engines[..offset]) {
            eprintln!("run {}/{runs}: {engine}", run + 1);
            let data = dir.join(format!("{engine}-{run}"));
            let _ = std::fs::remove_dir_all(&data);
            let measured = child(engine, &data, &child_flags)?;
            std::fs::remove_dir_all(&data)?;
            results.entry(engine.clone()).or_default().push(measured);
        }
    }

    let table = report::Report { engines: &engines, results: &results, sizes: &sizes, args: &args };
    let markdown = table.markdown();
    write(&out.with_extension("md"), &markdown)?;
    write(&out.with_extension("csv"), &table.csv())?;
    println!("{markdown}");
    eprintln!(
        "wrote {} and {}",
        out.with_extension("md").display(),
        out.with_extension("csv").display()
    );
    Ok(())
}

fn child(engine: &str, data: &Path, flags: &[&String]) -> Result<BTreeMap<String, f64>> {
    let output = Command::new(std::env::current_exe()?)
        .args(flags)
        .arg("--child")
        .arg(engine)
        .arg("--dir")
        .arg(data)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("{engine} failed ({})", output.status).into());
    }
    let mut measured = BTreeMap::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        let (metric, value) =
            line.split_once(' ').ok_or_else(|| format!("{engine} printed {line:?}"))?;
        measured.insert(metric.to_string(), value.parse()?);
    }
    Ok(measured)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(std::fs::write(path, text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_the_usage_lists_is_accepted() {
        let listed: Vec<&str> = USAGE
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("--"))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        assert_eq!(listed.len(), 18, "USAGE lists {listed:?}");
        for name in listed {
            assert!(known_flag(name), "--{name} is listed but refused");
        }
        assert!(known_flag("child"));
        for misspelt in ["removes", "mix", "key", "", "flags]"] {
            assert!(!known_flag(misspelt), "--{misspelt} is accepted");
        }
    }
}
