//! Process-kill test of the database: a child process applies batches across two trees and
//! flushes on a real directory, and is killed with SIGKILL at a random moment; the parent
//! reopens the directory and checks that every flushed batch is there and every batch is
//! all or nothing.
//!
//! The child re-runs this test binary with `GROVE_DB_KILL_CHILD_DIR` set. It reopens what
//! earlier cycles left, continues their sequence of steps, and reports on stdout before and
//! after each step and each flush (`flushed N`: steps up to N are durable). A step is a pure
//! function of its number (see [`step`]), so the parent can replay any prefix of them into a
//! model. After each kill the parent reopens the directory (which also proves the dead
//! child's lock is gone), runs `check()`, and requires both trees to equal the model after
//! exactly the steps 1..=N, for N the newest step named by any value, and N at or past every
//! `flushed` line. Small nodes, segments, cache and checkpoints make splits, segment rolls,
//! eviction, checkpoints and cleaning happen within a short run.
//!
//! `GROVE_CASES=n` runs n cycles (default 200); `GROVE_SEED` picks the delays before each
//! kill (default 1). The kill moment is wall-clock time, so a seed replays the schedule but
//! not the exact instruction hit; a failure therefore keeps its directory and names it, and
//! the directory is the artifact to inspect.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use grove::engine::{Batch, Config, Db, LogConfig, PageCacheConfig, Tree};

const CHILD_ENV: &str = "GROVE_DB_KILL_CHILD_DIR";
/// A cycle takes well under a second; one that takes this long is hung.
const STALL: Duration = Duration::from_secs(120);
const TEST: &str = "a_killed_writer_leaves_every_flushed_batch_and_no_partial_one";

/// The trees the steps write to.
const TREES: [&str; 2] = ["a", "b"];
/// Steps put and remove keys of the last `WINDOW` steps, and the first batch at or after
/// step m + `WINDOW` removes the other keys of step m, so that the trees stay small.
const WINDOW: u64 = 100;
/// Markers (key 0 of each step, never touched by another step) live longer, `MARKERS`
/// steps: old data that must survive many checkpoints, cleanings and relocations, at a
/// bounded cost.
const MARKERS: u64 = 1000;
/// Fresh keys a batch writes at most: keys 0 (the marker) to 4 of its step.
const FRESH: u64 = 5;

/// Both trees, by tree index and key.
type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

/// SplitMix64: a few lines instead of a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Small sizes, so that a run of a few seconds splits and merges nodes, rolls, cleans and
/// deletes segments, writes checkpoints and evicts pages.
fn config(dir: &Path) -> Config {
    let cache = PageCacheConfig {
        log: LogConfig {
            segment_size: 32 << 10,
            buffer_size: 8 << 10,
            flush_every_ms: Some(20),
            ..LogConfig::default()
        },
        cache_bytes: 256 << 10,
        consolidate_after: 4,
        checkpoint_every: 128 << 10,
        clean_below: 0.6,
        // Killed mid-pass too: the thread's checkpoints and cleaning race with the writes.
        maintenance_thread: true,
    };
    Config::new().path(dir).page_cache(cache).node_bytes(512)
}

/// One write of a step: `value` `None` removes.
struct Op {
    tree: usize,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

fn rng_of(n: u64) -> Rng {
    Rng::new(n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED)
}

/// Whether step n is a single insert rather than a batch (one step in five).
fn is_single(n: u64) -> bool {
    rng_of(n).below(5) == 0
}

/// Step `n` (from 1): a single insert of its marker, or a batch of about 1 to 20 writes: its
/// fresh keys (marker first), puts and removes of keys of the last `WINDOW` steps, and the
/// removal of what expired since the previous batch (the non-marker keys of steps `WINDOW`
/// back, the markers of steps `MARKERS` back). Every value names step n. A pure function of
/// `n`, so the child and the parent agree on it.
fn step(n: u64) -> (bool, Vec<Op>) {
    let mut rng = rng_of(n);
    let single = rng.below(5) == 0;
    let put = |rng: &mut Rng, m: u64, j: u64| Op {
        tree: tree_of(m, j),
        key: key(m, j),
        value: Some(value(rng, n, m, j)),
    };
    let remove = |m: u64, j: u64| Op { tree: tree_of(m, j), key: key(m, j), value: None };
    if single {
        return (true, vec![put(&mut rng, n, 0)]);
    }
    let mut writes: Vec<Op> = (0..1 + rng.below(FRESH)).map(|j| put(&mut rng, n, j)).collect();
    if n > 1 {
        for _ in 0..rng.below(7) {
            let m = n - 1 - rng.below((n - 1).min(WINDOW - 1));
            let j = 1 + rng.below(FRESH - 1);
            writes.push(if rng.below(5) < 3 { put(&mut rng, m, j) } else { remove(m, j) });
        }
    }
    // Expire what came due since the previous batch (singles expire nothing).
    let previous = (1..n).rev().find(|&p| !is_single(p)).unwrap_or(0);
    for due in previous + 1..=n {
        if let Some(m) = due.checked_sub(WINDOW).filter(|&m| m > 0) {
            writes.extend((1..FRESH).map(|j| remove(m, j)));
        }
        if let Some(m) = due.checked_sub(MARKERS).filter(|&m| m > 0) {
            writes.push(remove(m, 0));
        }
    }
    (false, writes)
}

/// Key j of step m lives in one tree, so puts and removes by later steps find it.
fn tree_of(m: u64, j: u64) -> usize {
    usize::from((m + j) % 2 == 1)
}

/// Key j of step m: a hashed prefix spreads each batch over the whole tree (and keeps the
/// trees from sliding to the right as old keys expire), then the step and j for reading.
fn key(m: u64, j: u64) -> Vec<u8> {
    let spread = Rng::new(m * 8 + j).next() & 0xFFFF;
    format!("{spread:04x}.{m:08}:{j:02}").into_bytes()
}

/// A value naming step n (first 9 bytes: `s` and n) and the key it was written to; one in
/// ten is long (over a quarter of a node).
fn value(rng: &mut Rng, n: u64, m: u64, j: u64) -> Vec<u8> {
    let mut value = format!("s{n:08} {m:08}:{j:02} ").into_bytes();
    let pad = if rng.below(10) == 0 { 150 + rng.below(250) } else { rng.below(40) };
    value.extend((0..pad).map(|i| b'a' + u8::try_from((n + i) % 26).unwrap()));
    value
}

/// The step a value names.
fn named_step(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value.get(1..9)?).ok()?.parse().ok()
}

fn apply(model: &mut Model, n: u64) {
    for write in step(n).1 {
        match write.value {
            Some(value) => model.insert((write.tree, write.key), value),
            None => model.remove(&(write.tree, write.key)),
        };
    }
}

/// The child: runs steps forever, reporting progress on stdout.
fn child(dir: &Path) {
    let db = config(dir).open().unwrap();
    let trees: Vec<Tree> = TREES.iter().map(|name| db.open_tree(name).unwrap()).collect();
    // Every step writes its own marker and names itself in every value it writes, so the
    // newest step named is the last one applied.
    let mut done = 0;
    for tree in &trees {
        for entry in tree.iter() {
            done = done.max(named_step(&entry.unwrap().1).unwrap());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    say(format!("ready {done}"));
    for n in done + 1.. {
        say(format!("apply {n}"));
        let (single, writes) = step(n);
        if single {
            let write = &writes[0];
            trees[write.tree].insert(&write.key, write.value.as_ref().unwrap()).unwrap();
        } else {
            let mut batch = Batch::default();
            for write in &writes {
                match &write.value {
                    Some(value) => batch.insert(&trees[write.tree], &write.key, value),
                    None => batch.remove(&trees[write.tree], &write.key),
                }
            }
            db.apply_batch(batch).unwrap();
        }
        say(format!("applied {n}"));
        if Rng::new(n ^ 0xF1_0511).below(6) == 0 {
            say(format!("flush {n}"));
            db.flush().unwrap();
            say(format!("flushed {n}"));
        }
    }
}

/// What the child printed before it was killed.
#[derive(Default)]
struct Report {
    ready: Option<u64>,
    applying: Option<u64>,
    flushed: Option<u64>,
    last: String,
}

/// Where the kills landed, judged from the child's last line, and what they cost.
#[derive(Default, Debug)]
struct Stats {
    /// Before `ready`: while the child opened (recovery, maybe a checkpoint).
    in_open: u64,
    /// After `apply n`, before `applied n`: inside `apply_batch` or `insert`.
    in_step: u64,
    /// After `applied n` or `ready`.
    between_steps: u64,
    /// After `flush n`, before `flushed n`: inside `flush`.
    in_flush: u64,
    /// Right after `flushed n`.
    after_flush: u64,
    /// Kills with steps applied since the last flush (or the open), by whether the
    /// newest step was on disk all the same (the background flush) or lost.
    unflushed_kept: u64,
    unflushed_lost: u64,
}

impl Stats {
    fn count(&mut self, report: &Report, recovered: u64) {
        let word = report.last.split(' ').next().unwrap_or("");
        match word {
            "apply" => self.in_step += 1,
            "applied" | "ready" => self.between_steps += 1,
            "flush" => self.in_flush += 1,
            "flushed" => self.after_flush += 1,
            _ => self.in_open += 1,
        }
        let flushed = report.flushed.or(report.ready).unwrap_or(0);
        if report.applying.is_some_and(|a| a > flushed) {
            if recovered > flushed {
                self.unflushed_kept += 1;
            } else {
                self.unflushed_lost += 1;
            }
        }
    }
}

/// Spawns the child and collects what it prints; `ready` hears of its `ready` line.
fn spawn(
    exe: &Path,
    db_dir: &Path,
    stderr: &Path,
    ready: mpsc::Sender<()>,
) -> (Child, std::thread::JoinHandle<Report>) {
    let mut child = Command::new(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db_dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut report = Report::default();
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            // libtest prints `test NAME ... ` without a newline before the test runs, so
            // the first line starts with that: read each line's last two words.
            let mut words = line.split_whitespace().rev();
            let (Some(n), Some(word)) = (words.next(), words.next()) else { continue };
            let Ok(n) = n.parse::<u64>() else { continue };
            match word {
                "ready" => {
                    report.ready = Some(n);
                    let _ = ready.send(());
                }
                "apply" => report.applying = Some(n),
                "flushed" => report.flushed = Some(n),
                _ => {}
            }
            report.last = format!("{word} {n}");
        }
        report
    });
    (child, reader)
}

/// Reads both trees of the reopened database, without creating them if they are missing.
fn contents(db: &Db) -> Result<Model, String> {
    let names = db.tree_names().map_err(|e| format!("tree_names failed: {e}"))?;
    let mut model = Model::new();
    for (index, name) in TREES.iter().enumerate() {
        if !names.iter().any(|n| &**n == name.as_bytes()) {
            continue;
        }
        let tree = db.open_tree(name).map_err(|e| format!("open_tree {name} failed: {e}"))?;
        for entry in tree.iter() {
            let (key, value) = entry.map_err(|e| format!("reading tree {name} failed: {e}"))?;
            model.insert((index, key.to_vec()), value.to_vec());
        }
    }
    Ok(model)
}

/// The differences between the trees and the model after steps 1..=n, a few of them.
fn describe_diff(got: &Model, want: &Model, n: u64) -> String {
    let show = |v: Option<&Vec<u8>>| match v {
        None => "absent".to_owned(),
        Some(v) => {
            format!("{:?} ({} bytes)", String::from_utf8_lossy(&v[..v.len().min(24)]), v.len())
        }
    };
    let mut keys: Vec<&(usize, Vec<u8>)> = got.keys().chain(want.keys()).collect();
    keys.sort();
    keys.dedup();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| {
            format!(
                "  tree {} key {}: want {}, got {}",
                TREES[k.0],
                String::from_utf8_lossy(&k.1),
                show(want.get(k)),
                show(got.get(k))
            )
        })
        .collect();
    format!(
        "the trees are not the state after steps 1..={n} ({} differences; a partial step or a \
         gap):\n{}",
        diffs.len(),
        diffs.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    )
}

/// Reopens the directory and checks it; returns the number of the newest step present.
fn verify(
    db_dir: &Path,
    base: &Model,
    base_n: u64,
    flushed: u64,
    most: u64,
) -> Result<u64, String> {
    let db = config(db_dir).open().map_err(|e| format!("reopen failed: {e}"))?;
    db.check().map_err(|e| format!("check failed: {e}"))?;
    let got = contents(&db)?;
    drop(db);
    let newest = got.values().map(|v| named_step(v).unwrap_or(u64::MAX)).max().unwrap_or(0);
    if newest == u64::MAX {
        return Err("a value does not name a step".into());
    }
    if newest < flushed {
        return Err(format!("step {flushed} was flushed, but the newest step present is {newest}"));
    }
    if newest > most {
        return Err(format!("step {newest} is present, but no child got past step {most}"));
    }
    let mut want = base.clone();
    for n in base_n + 1..=newest {
        apply(&mut want, n);
    }
    if got != want {
        return Err(describe_diff(&got, &want, newest));
    }
    Ok(newest)
}

/// Kills `child` unless it already died, which is a failure.
fn kill(child: &mut Child, stderr: &Path) -> Result<(), String> {
    if let Some(status) = child.try_wait().unwrap() {
        let err = std::fs::read_to_string(stderr).unwrap_or_default();
        return Err(format!("the child exited by itself ({status}):\n{err}"));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    Ok(())
}

/// The parent's loop; an error names the cycle it failed in.
fn run(
    seed: u64,
    cycles: u64,
    dir: &Path,
    progress: &mpsc::Sender<u64>,
) -> Result<String, (u64, String)> {
    let mut rng = Rng::new(seed);
    let db_dir = dir.join("db");
    let stderr = dir.join("child.stderr");
    let exe = std::env::current_exe().unwrap();
    // The model after steps 1..=base_n, base_n never past a flushed step.
    let (mut base, mut base_n) = (Model::new(), 0);
    let (mut flushed, mut newest) = (0, 0);
    let mut stats = Stats::default();
    for cycle in 0..cycles {
        let (tx, rx) = mpsc::channel();
        let (mut child, reader) = spawn(&exe, &db_dir, &stderr, tx);
        // One kill in eight counts from the spawn, so it can land while the child opens
        // (recovery, a checkpoint); the others count from `ready`, mid-writing.
        if rng.below(8) != 0 {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
        std::thread::sleep(Duration::from_millis(5 + rng.below(56)));
        kill(&mut child, &stderr).map_err(|e| (cycle, e))?;
        let report = reader.join().unwrap();
        flushed = flushed.max(report.flushed.unwrap_or(0));
        let most = newest.max(report.applying.unwrap_or(0));
        newest = verify(&db_dir, &base, base_n, flushed, most)
            .map_err(|e| (cycle, format!("{e}\n(the child's last line: {:?})", report.last)))?;
        stats.count(&report, newest);
        for n in base_n + 1..=flushed {
            apply(&mut base, n);
        }
        base_n = base_n.max(flushed);
        let _ = progress.send(cycle);
    }
    if flushed < 100 {
        return Err((cycles, format!("the children made too little progress: flushed {flushed}")));
    }
    Ok(format!("{cycles} cycles (seed {seed}): newest step {newest}, flushed {flushed}; {stats:?}"))
}

#[test]
fn a_killed_writer_leaves_every_flushed_batch_and_no_partial_one() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let seed = std::env::var("GROVE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let cycles = std::env::var("GROVE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let (progress, stalls) = mpsc::channel();
    let watched = dir.path().to_owned();
    // A hung reopen or verify cannot be interrupted from inside: after a long stall the
    // watchdog reports it and exits, which skips the directory's removal.
    let watchdog = std::thread::spawn(move || {
        let mut cycle = 0;
        loop {
            match stalls.recv_timeout(STALL) {
                Ok(done) => cycle = done + 1,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "cycle {cycle} (seed {seed}): no progress for {STALL:?}: a hang in the \
                         child's start or the parent's reopen, check or read\n\
                         directory kept at {} (db/ and child.stderr)",
                        watched.display()
                    );
                    std::process::exit(101);
                }
            }
        }
    });
    let result = run(seed, cycles, dir.path(), &progress);
    drop(progress);
    watchdog.join().unwrap();
    match result {
        Ok(summary) => eprintln!("{summary}"),
        Err((cycle, message)) => {
            let kept = dir.keep();
            panic!(
                "cycle {cycle} (seed {seed}): {message}\n\
                 directory kept at {} (db/ and child.stderr)\n\
                 replay the schedule with: GROVE_SEED={seed} GROVE_CASES={} cargo test -p grove \
                 --test db_kill",
                kept.display(),
                cycle + 1
            );
        }
    }
}
