//! Fault test: EIO and ENOSPC at every write and sync call of a workload, one at a time.
//!
//! For each fault point the workload runs on a fresh simulated disk until the fault. The
//! caller must get a typed error (an ENOSPC shows as `ErrorKind::StorageFull`), the log must
//! refuse further writes, and after a crash and reopen everything flushed before the fault
//! must be there, as a prefix of what was written.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::{io::ErrorKind, sync::Arc};

use grove_engine::{Error, Fault, FaultKind, FaultOp, Log, LogConfig, Lsn, SimStorage, Storage};
use support::{Written, assert_prefix, body, kind, open_recovering};

/// The workload: appends with a flush every few records. Returns what it wrote, the highest
/// acknowledged stable LSN, and the first error it met.
fn workload(log: &Log) -> (Vec<Written>, Lsn, Option<Error>) {
    let mut written = Vec::new();
    let mut acked = Lsn::ZERO;
    for seq in 0..150 {
        let b = body(1, seq, 20 + usize::try_from(seq * 7 % 90).unwrap());
        match log.append(kind(16), &b) {
            Ok(lsn) => written.push(Written { lsn, kind: 16, body: b }),
            Err(e) => return (written, acked, Some(e)),
        }
        if seq % 4 == 3 {
            match log.flush() {
                Ok(stable) => acked = stable,
                Err(e) => return (written, acked, Some(e)),
            }
        }
    }
    match log.flush() {
        Ok(stable) => (written, stable, None),
        Err(e) => (written, acked, Some(e)),
    }
}

fn config() -> LogConfig {
    // No timer: the number of storage calls is then the same on every run.
    LogConfig { flush_every_ms: None, ..LogConfig::tiny() }
}

fn calls(op: FaultOp) -> u64 {
    let sim = SimStorage::new(1);
    let log = Log::open(Arc::new(sim.clone()), config()).unwrap();
    let (_, _, error) = workload(&log);
    assert!(error.is_none(), "the workload runs clean without faults: {error:?}");
    log.close().unwrap();
    sim.op_count(op)
}

fn fault_case(op: FaultOp, nth: u64, fault: FaultKind) {
    let sim = SimStorage::new(nth);
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    sim.inject(Fault { op, nth, kind: fault });
    let log = Log::open(storage.clone(), config()).unwrap();
    let (written, acked, error) = workload(&log);
    let context = format!("{fault:?} at {op:?} call {nth}");
    match &error {
        Some(error) => {
            assert!(
                matches!(error, Error::LogFailed { .. } | Error::Io { .. }),
                "{context}: untyped error {error}"
            );
            if fault == FaultKind::Enospc {
                assert_eq!(error.io_kind(), Some(ErrorKind::StorageFull), "{context}: {error}");
            }
            // The log refuses writes after a failure instead of carrying on.
            assert!(log.append(kind(16), b"after").is_err(), "{context}: wrote after a failure");
        }
        // Syncs are batched, so a run can make fewer sync calls than the reference run.
        None => assert!(sim.op_count(op) <= nth, "{context}: the fault hit but nobody heard"),
    }
    drop(log);
    sim.crash();
    let (log, recovered) = open_recovering(&storage, &config())
        .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    drop(log);
    assert_prefix(&written, &recovered, acked);
}

/// Fails each call of `op` in turn, with each of `faults`; `op` must occur more than
/// `at_least` times, or the workload does not exercise it.
fn fault_every_call(op: FaultOp, at_least: u64, faults: &[FaultKind]) {
    let count = calls(op);
    assert!(count > at_least, "the workload makes many {op:?} calls: {count}");
    println!("injecting {faults:?} at each of {count} {op:?} calls");
    for nth in 0..count {
        for &fault in faults {
            fault_case(op, nth, fault);
        }
    }
}

#[test]
fn every_failed_write_reaches_the_caller_and_loses_nothing_flushed() {
    fault_every_call(FaultOp::Write, 20, &[FaultKind::Eio, FaultKind::Enospc]);
}

#[test]
fn every_failed_sync_reaches_the_caller_and_loses_nothing_flushed() {
    fault_every_call(FaultOp::Sync, 10, &[FaultKind::Eio, FaultKind::Enospc]);
}

#[test]
fn failed_directory_operations_reach_the_caller_too() {
    for op in [FaultOp::CreateNew, FaultOp::Rename, FaultOp::SyncDir] {
        fault_every_call(op, 0, &[FaultKind::Eio]);
    }
}
