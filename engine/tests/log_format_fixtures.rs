//! Frozen on-disk format: every build must read the log files earlier formats wrote.
//!
//! `fixtures/log-v1/` is a log written by format version 1: several segments, a compressed
//! record and an aborted one. `fixtures/log-v1-corrupt/` is the same log with one bit flipped
//! in its first segment. The files are checked in and must never be regenerated for an
//! existing version: a change that fails these tests broke compatibility. A new format
//! version adds a new fixture directory: `cargo test -p grove-engine --test
//! log_format_fixtures -- --ignored write_fixtures` writes `fixtures/log-v1-new/` (rename the
//! directory and the version in the code) for review.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{path::PathBuf, sync::Arc};

use grove_engine::{Error, Log, LogConfig, Lsn, MemStorage, RecordKind, Storage};

fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The configuration the v1 fixture was written with.
fn config() -> LogConfig {
    LogConfig { flush_every_ms: None, compression_level: Some(3), ..LogConfig::tiny() }
}

/// `len` incompressible bytes from a xorshift generator, written out here so the fixture's
/// contents never depend on a crate's choice of random algorithm.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// The records of the fixture, in order: (kind, body).
fn expected() -> Vec<(u8, Vec<u8>)> {
    (0..40u8)
        .map(|i| {
            let kind = 16 + i % 3;
            let body = if i == 7 {
                vec![b'z'; 3000] // compressed: larger than a tiny buffer uncompressed
            } else {
                let mut body = format!("record {i} of the v1 fixture ").into_bytes();
                body.extend(noise(u64::from(i) + 1, usize::from(i) * 9));
                body
            };
            (kind, body)
        })
        .collect()
}

/// Loads a fixture directory into memory, so tests never modify the checked-in files.
fn load(name: &str) -> Arc<dyn Storage> {
    let storage = MemStorage::new();
    let mut entries: Vec<_> = std::fs::read_dir(fixture_dir(name)).unwrap().collect();
    entries.sort_by_key(|e| e.as_ref().unwrap().file_name());
    for entry in entries {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let name = entry.file_name().into_string().unwrap();
        storage.create_new(&name).unwrap().write_at(&bytes, 0).unwrap();
    }
    Arc::new(storage)
}

fn recover(storage: &Arc<dyn Storage>) -> grove_engine::Result<Vec<(Lsn, u8, Vec<u8>)>> {
    let mut seen = Vec::new();
    let log = Log::open_with(storage.clone(), config(), Lsn::ZERO, |r| {
        seen.push((r.lsn, r.kind.get(), r.body.to_vec()));
        Ok(())
    })?;
    drop(log);
    Ok(seen)
}

#[test]
#[ignore = "a tool, not a check: writes fixture files for a new format version"]
fn write_fixtures() {
    let storage = MemStorage::new();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let log = Log::open(shared.clone(), config()).unwrap();
    for (i, (kind, body)) in expected().into_iter().enumerate() {
        log.append(RecordKind::new(kind).unwrap(), &body).unwrap();
        if i == 12 {
            log.reserve(RecordKind::new(20).unwrap(), b"aborted").unwrap().abort();
        }
        if i % 5 == 4 {
            log.flush().unwrap();
        }
    }
    log.close().unwrap();
    let out = fixture_dir("log-v1-new");
    std::fs::create_dir_all(&out).unwrap();
    for name in shared.list().unwrap() {
        let file = shared.open(&name).unwrap();
        let mut bytes = vec![0; usize::try_from(file.len().unwrap()).unwrap()];
        file.read_at(&mut bytes, 0).unwrap();
        std::fs::write(out.join(name), bytes).unwrap();
    }
}

#[test]
fn format_v1_fixture_reads_back_every_record() {
    let recovered = recover(&load("log-v1")).unwrap();
    let got: Vec<(u8, Vec<u8>)> = recovered.iter().map(|(_, k, b)| (*k, b.clone())).collect();
    assert_eq!(got, expected());
    let lsns: Vec<u64> = recovered.iter().map(|(lsn, _, _)| lsn.get()).collect();
    insta::assert_debug_snapshot!("log_v1_lsns", lsns);
}

#[test]
fn format_v1_fixture_accepts_new_records_after_the_old_ones() {
    let storage = load("log-v1");
    let log = Log::open(storage.clone(), config()).unwrap();
    let lsn = log.append(RecordKind::new(16).unwrap(), b"written by this build").unwrap();
    log.close().unwrap();
    let recovered = recover(&storage).unwrap();
    assert_eq!(recovered.len(), expected().len() + 1);
    assert_eq!(recovered.last().unwrap(), &(lsn, 16, b"written by this build".to_vec()));
}

#[test]
fn corrupted_v1_fixture_is_reported_not_recovered() {
    let error = recover(&load("log-v1-corrupt")).unwrap_err();
    assert!(matches!(error, Error::Corruption { .. }), "{error}");
    insta::assert_snapshot!("log_v1_corrupt_error", error.to_string());
}
