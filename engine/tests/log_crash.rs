//! Crash property test: concurrent writers and flushes, power cut at a seeded point.
//!
//! Each case: 2 to 4 threads append records of random sizes (some reservations aborted) and
//! call `flush` at random moments, on a simulated disk whose power goes out after a seeded
//! number of mutating calls. The disk then "reboots" (unsynced writes lost, the last one
//! possibly torn or garbled) and the log is reopened. Recovery must return exactly a prefix
//! of the append order (LSN order) that holds every record a completed flush acknowledged,
//! and never an aborted or torn record. The reopened log must then accept new records that
//! survive a further reopen (the torn tail was cleaned).
//!
//! Seeds choose the workload and the crash point; thread interleavings still vary between
//! runs, so a replayed seed (`GROVE_SEED=n`) reproduces the case, not one exact schedule.
//! `GROVE_CASES=n` runs more cases.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use grove_engine::{Log, LogConfig, Lsn, SimStorage, Storage};
use support::{Written, assert_prefix, body, kind, open_recovering, run_seeds};

/// Cases whose crash lost appended but unflushed records, and cases with a flush acknowledged
/// before the crash: both must be common, or the test proves nothing.
static LOST_SOMETHING: AtomicU64 = AtomicU64::new(0);
static ACKED_SOMETHING: AtomicU64 = AtomicU64::new(0);

fn crash_case(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let sim = SimStorage::new(seed);
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let config = LogConfig {
        flush_every_ms: if rng.bool() { Some(1) } else { None },
        compression_level: if rng.u8(..4) == 0 { Some(1) } else { None },
        ..LogConfig::tiny()
    };

    // Some history from an earlier run, so crashes also hit a log that was reopened.
    let mut written: Vec<Written> = Vec::new();
    let mut acked = Lsn::ZERO;
    if rng.bool() {
        let log = Log::open(storage.clone(), config.clone()).unwrap();
        for seq in 0..rng.u32(1..40) {
            let b = body(9, seq, rng.usize(8..120));
            let lsn = log.append(kind(25), &b).unwrap();
            written.push(Written { lsn, kind: 25, body: b });
        }
        acked = log.close().unwrap();
    }

    sim.power_cut_after(rng.u64(0..160));
    let threads = rng.u8(2..=4);
    let log = match Log::open(storage.clone(), config.clone()) {
        Ok(log) => log,
        // The power may go out during open itself.
        Err(_) => {
            sim.crash();
            let (log, recovered) = open_recovering(&storage, &config).unwrap();
            assert_prefix(&written, &recovered, acked);
            drop(log);
            return;
        }
    };
    let shared = Mutex::new((written, acked));
    std::thread::scope(|scope| {
        for writer in 0..threads {
            let thread_seed = rng.u64(..);
            let (log, shared) = (&log, &shared);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(thread_seed);
                for seq in 0..rng.u32(10..80) {
                    let b = body(writer, seq, rng.usize(8..200));
                    let k = 16 + writer;
                    if rng.u8(..10) == 0 {
                        match log.reserve(kind(k), &b) {
                            Ok(reservation) => reservation.abort(),
                            Err(_) => return,
                        }
                    } else {
                        match log.append(kind(k), &b) {
                            Ok(lsn) => {
                                shared.lock().unwrap().0.push(Written { lsn, kind: k, body: b })
                            }
                            Err(_) => return,
                        }
                    }
                    if rng.u8(..8) == 0 {
                        match log.flush() {
                            Ok(stable) => {
                                let mut guard = shared.lock().unwrap();
                                guard.1 = guard.1.max(stable);
                            }
                            Err(_) => return,
                        }
                    }
                }
            });
        }
    });
    drop(log);
    let (written, acked) = shared.into_inner().unwrap();

    sim.crash();
    let (log, recovered) = open_recovering(&storage, &config).unwrap();
    assert_prefix(&written, &recovered, acked);
    if recovered.len() < written.len() {
        LOST_SOMETHING.fetch_add(1, Ordering::Relaxed);
    }
    if acked > Lsn::ZERO {
        ACKED_SOMETHING.fetch_add(1, Ordering::Relaxed);
    }

    // The cleaned tail takes new records, and they come back after the old prefix.
    let mut expected = recovered.clone();
    for seq in 0..rng.u32(1..20) {
        let b = body(7, seq, rng.usize(8..150));
        let lsn = log.append(kind(30), &b).unwrap();
        expected.push(Written { lsn, kind: 30, body: b });
    }
    log.close().unwrap();
    let (log, again) = open_recovering(&storage, &config).unwrap();
    drop(log);
    assert_eq!(again, expected, "records appended after recovery must follow the prefix");
}

#[test]
fn recovery_after_a_power_cut_returns_a_prefix_holding_every_flushed_record() {
    let cases = support::seeds(2000).len() as u64;
    run_seeds("log_crash", 2000, crash_case);
    let (lost, acked) =
        (LOST_SOMETHING.load(Ordering::Relaxed), ACKED_SOMETHING.load(Ordering::Relaxed));
    println!("{cases} cases: {lost} lost unflushed records, {acked} had acknowledged flushes");
    if cases >= 100 {
        assert!(lost * 5 >= cases, "only {lost} of {cases} crashes lost anything");
        assert!(acked * 5 >= cases, "only {acked} of {cases} cases acknowledged a flush");
    }
}
