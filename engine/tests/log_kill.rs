//! Process-kill test: a child process appends and flushes on a real directory and is killed
//! with SIGKILL at a random moment; the parent reopens the log and checks the prefix rule.
//!
//! The child re-runs this test binary with `GROVE_KILL_CHILD_DIR` set. It recovers the
//! records of earlier cycles, continues their sequence, flushes every few records and prints
//! `acked N` once record N is durable. After each kill the parent reopens (which also proves
//! the dead child's directory lock is gone) and requires records 0..n in order, with n past
//! every acknowledged record. `GROVE_CASES=n` runs more cycles; `GROVE_SEED` picks the timing.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use grove_engine::{FileStorage, Log, LogConfig, Lsn, RecordKind, Storage};

const CHILD_ENV: &str = "GROVE_KILL_CHILD_DIR";

fn config() -> LogConfig {
    // Small segments so kills land on segment creation too.
    LogConfig { segment_size: 64 << 10, buffer_size: 8 << 10, ..LogConfig::default() }
}

fn body(seq: u64) -> Vec<u8> {
    let mut body = seq.to_le_bytes().to_vec();
    let len = usize::try_from(seq % 300).unwrap() + 8;
    body.extend((0..len).map(|i| u8::try_from((i + usize::try_from(seq).unwrap()) % 251).unwrap()));
    body
}

/// Opens the log and returns it with the sequence numbers of the records it recovered,
/// checking each body.
fn open(dir: &std::path::Path) -> (Log, Vec<u64>) {
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::open(dir).unwrap());
    let mut seqs = Vec::new();
    let log = Log::open_with(storage, config(), Lsn::ZERO, |record| {
        let seq = u64::from_le_bytes(record.body[..8].try_into().unwrap());
        assert_eq!(record.body, body(seq), "record {seq} came back with other bytes");
        seqs.push(seq);
        Ok(())
    })
    .unwrap();
    (log, seqs)
}

/// The child: append forever, acknowledging durable records on stdout.
fn child(dir: &str) {
    let (log, seqs) = open(std::path::Path::new(dir));
    let kind = RecordKind::new(16).unwrap();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    for seq in u64::try_from(seqs.len()).unwrap().. {
        log.append(kind, &body(seq)).unwrap();
        if seq % 7 == 0 {
            log.flush().unwrap();
            writeln!(stdout, "acked {seq}").unwrap();
            stdout.flush().unwrap();
        }
    }
}

#[test]
fn a_killed_writer_leaves_a_prefix_holding_every_acknowledged_record() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let seed = std::env::var("GROVE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let cycles = std::env::var("GROVE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_max: Option<u64> = None;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "a_killed_writer_leaves_a_prefix_holding_every_acknowledged_record"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            let mut acked = None;
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("acked ") {
                    acked = Some(n.parse::<u64>().unwrap());
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(rng.u64(5..80)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        if let Some(acked) = reader.join().unwrap() {
            acked_max = Some(acked_max.map_or(acked, |m| m.max(acked)));
        }

        let (log, seqs) = open(dir.path());
        drop(log);
        let expected: Vec<u64> = (0..u64::try_from(seqs.len()).unwrap()).collect();
        assert_eq!(seqs, expected, "cycle {cycle} (seed {seed}): records are not a prefix");
        if let Some(acked) = acked_max {
            assert!(
                u64::try_from(seqs.len()).unwrap() > acked,
                "cycle {cycle} (seed {seed}): record {acked} was acknowledged but only {} came back",
                seqs.len()
            );
        }
    }
    assert!(acked_max.is_some_and(|a| a > 100), "the children made progress: {acked_max:?}");
}
