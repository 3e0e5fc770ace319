//! Bad-input test: seeded damage to real log files must never panic or return wrong bytes.
//!
//! A log of a few segments is written once. Each case copies its files, damages them
//! (truncation, bit flips, garbage tails, overwritten ranges, deleted or foreign files) and
//! opens the log. Recovery must return `Ok` with a prefix of what was written (record for
//! record, byte for byte) or a typed error that names the damage; never a panic, never a
//! record whose bytes differ. `GROVE_SEED=n` replays one case; `GROVE_CASES=n` runs more.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::sync::Arc;

use grove_engine::{Error, Log, LogConfig, MemStorage, Storage};
use support::{Written, body, kind, open_recovering, run_seeds};

/// Writes the reference log and returns its files and records.
fn reference(config: &LogConfig) -> (Vec<(String, Vec<u8>)>, Vec<Written>) {
    let storage = MemStorage::new();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let log = Log::open(shared.clone(), config.clone()).unwrap();
    let mut written = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for seq in 0..120 {
        let b = body(1, seq, rng.usize(8..300));
        let lsn = log.append(kind(16), &b).unwrap();
        written.push(Written { lsn, kind: 16, body: b });
        if rng.u8(..10) == 0 {
            log.reserve(kind(17), b"aborted").unwrap().abort();
        }
        if rng.u8(..6) == 0 {
            log.flush().unwrap();
        }
    }
    log.close().unwrap();
    let mut names = shared.list().unwrap();
    names.sort();
    let files = names
        .into_iter()
        .map(|name| {
            let file = shared.open(&name).unwrap();
            let mut bytes = vec![0; usize::try_from(file.len().unwrap()).unwrap()];
            file.read_at(&mut bytes, 0).unwrap();
            (name, bytes)
        })
        .collect();
    (files, written)
}

fn damage(rng: &mut fastrand::Rng, files: &mut Vec<(String, Vec<u8>)>) -> String {
    let index = rng.usize(..files.len());
    let (name, bytes) = &mut files[index];
    let len = bytes.len();
    match rng.u8(..7) {
        0 => {
            let at = rng.usize(..=len);
            bytes.truncate(at);
            format!("truncated {name} to {at}")
        }
        1 | 2 => {
            let flips = rng.usize(1..4);
            for _ in 0..flips {
                let at = rng.usize(..len);
                bytes[at] ^= 1 << rng.u8(..8);
            }
            format!("flipped {flips} bits in {name}")
        }
        3 => {
            let extra = rng.usize(1..600);
            bytes.extend((0..extra).map(|_| rng.u8(..)));
            format!("appended {extra} garbage bytes to {name}")
        }
        4 => {
            let at = rng.usize(..len);
            let run = rng.usize(1..64).min(len - at);
            for byte in &mut bytes[at..at + run] {
                *byte = rng.u8(..);
            }
            format!("overwrote {run} bytes of {name} at {at}")
        }
        5 => {
            let (name, _) = files.remove(index);
            format!("deleted {name}")
        }
        _ => {
            let copy = (format!("{name}.tmp"), bytes.clone());
            let at = rng.usize(..len);
            bytes.truncate(at);
            let what = format!("left a temp copy and truncated {name} to {at}");
            files.push(copy);
            what
        }
    }
}

#[test]
fn damaged_logs_give_a_prefix_or_a_typed_error_and_never_panic() {
    let config = LogConfig::tiny();
    let (files, written) = reference(&config);
    assert!(files.len() > 5, "the reference log spans several segments");
    run_seeds("log_bad_input", 3000, |seed| {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut files = files.clone();
        let what = damage(&mut rng, &mut files);
        let storage = MemStorage::new();
        for (name, bytes) in &files {
            storage.create_new(name).unwrap().write_at(bytes, 0).unwrap();
        }
        let storage: Arc<dyn Storage> = Arc::new(storage);
        match open_recovering(&storage, &config) {
            Ok((log, recovered)) => {
                drop(log);
                assert!(recovered.len() <= written.len(), "{what}: more records than written");
                for (got, want) in recovered.iter().zip(&written) {
                    assert_eq!(
                        got, want,
                        "{what}: a recovered record differs from what was written"
                    );
                }
            }
            Err(
                Error::Corruption { .. }
                | Error::MissingSegment { .. }
                | Error::NotGrove { .. }
                | Error::UnsupportedVersion { .. },
            ) => {}
            Err(other) => panic!("{what}: unexpected error kind: {other}"),
        }
    });
}

#[test]
fn damage_before_the_last_segment_is_reported_with_file_and_offset() {
    let config = LogConfig::tiny();
    let (mut files, _) = reference(&config);
    // Flip a bit in the first record of the first segment (just past the 40-byte header).
    files[0].1[45] ^= 0x10;
    let storage = MemStorage::new();
    for (name, bytes) in &files {
        storage.create_new(name).unwrap().write_at(bytes, 0).unwrap();
    }
    let storage: Arc<dyn Storage> = Arc::new(storage);
    let error = open_recovering(&storage, &config).expect_err("corruption is detected");
    match &error {
        Error::Corruption { file, offset, .. } => {
            assert_eq!(file, &files[0].0);
            assert_eq!(*offset, 40);
        }
        other => panic!("expected Corruption, got {other}"),
    }
    let message = error.to_string();
    assert!(message.contains("offset 40"), "message names the offset: {message}");
}

#[test]
fn foreign_and_newer_files_are_refused_and_left_unmodified() {
    let config = LogConfig::tiny();
    let (files, _) = reference(&config);
    for (patch, expect_newer) in [(0usize, false), (8, true)] {
        let mut files = files.clone();
        files[0].1[patch] = files[0].1[patch].wrapping_add(1);
        let storage = MemStorage::new();
        for (name, bytes) in &files {
            storage.create_new(name).unwrap().write_at(bytes, 0).unwrap();
        }
        let shared: Arc<dyn Storage> = Arc::new(storage.clone());
        let error = open_recovering(&shared, &config).expect_err("refused");
        if expect_newer {
            assert!(matches!(error, Error::UnsupportedVersion { found: 2, .. }), "{error}");
        } else {
            assert!(matches!(error, Error::NotGrove { .. }), "{error}");
        }
        for (name, bytes) in &files {
            let file = shared.open(name).unwrap();
            let mut now = vec![0; bytes.len() + 1];
            let n = file.read_at(&mut now, 0).unwrap();
            assert_eq!(&now[..n], &bytes[..], "{name} was modified");
        }
    }
}

#[test]
fn a_torn_tail_is_cut_so_stale_records_never_come_back() {
    // Three records in the last segment; the middle one is damaged, as when a crash persists
    // the sectors around it but not its own. A new record of the same size then lands exactly
    // where the damaged one was, so the stale third record would line up with the next LSN.
    let config = LogConfig { flush_every_ms: None, ..LogConfig::tiny() };
    let storage = MemStorage::new();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let log = Log::open(shared.clone(), config.clone()).unwrap();
    let a = log.append(kind(16), b"record a").unwrap();
    let b = log.append(kind(16), b"record b").unwrap();
    log.append(kind(16), b"record c").unwrap();
    log.close().unwrap();

    let name = "0000000000000000.seg";
    let file = shared.open(name).unwrap();
    let body_of_b = 40 + b.get() + 20;
    let mut byte = [0u8; 1];
    file.read_at(&mut byte, body_of_b).unwrap();
    file.write_at(&[byte[0] ^ 1], body_of_b).unwrap();

    let (log, recovered) = open_recovering(&shared, &config).unwrap();
    assert_eq!(recovered, vec![Written { lsn: a, kind: 16, body: b"record a".to_vec() }]);
    assert_eq!(file.len().unwrap(), 40 + b.get(), "the file is cut back to the last valid record");
    let d = log.append(kind(16), b"record d").unwrap();
    assert_eq!(d, b, "the new record takes the damaged one's place");
    log.close().unwrap();

    let (log, recovered) = open_recovering(&shared, &config).unwrap();
    drop(log);
    let bodies: Vec<&[u8]> = recovered.iter().map(|w| w.body.as_slice()).collect();
    assert_eq!(bodies, vec![&b"record a"[..], b"record d"]);
}
