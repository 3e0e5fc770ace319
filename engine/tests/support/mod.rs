//! Helpers shared by the engine's integration tests.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use grove_engine::{Log, LogConfig, Lsn, Materializer, RecordKind, Storage};

/// How many seeded cases to run: `default`, or `GROVE_CASES` if set. A single seed can be
/// replayed with `GROVE_SEED`.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("GROVE_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("GROVE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (0..count).collect()
}

/// Runs `case` for every seed; on failure, names the seed and how to replay it.
pub fn run_seeds(test: &str, default: u64, case: impl Fn(u64)) {
    for seed in seeds(default) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(seed))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "{test} failed for seed {seed}: {message}\n\
                 replay with: GROVE_SEED={seed} cargo test -p grove-engine --test {test}"
            );
        }
    }
}

/// A record as the tests remember it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Written {
    pub lsn: Lsn,
    pub kind: u8,
    pub body: Vec<u8>,
}

/// Opens the log in `storage`, returning it and every record recovery handed out.
pub fn open_recovering(
    storage: &Arc<dyn Storage>,
    config: &LogConfig,
) -> grove_engine::Result<(Log, Vec<Written>)> {
    let mut seen = Vec::new();
    let log = Log::open_with(storage.clone(), config.clone(), Lsn::ZERO, |record| {
        seen.push(Written { lsn: record.lsn, kind: record.kind.get(), body: record.body.to_vec() });
        Ok(())
    })?;
    Ok((log, seen))
}

/// A body that names its writer and sequence number, of length `len` (at least 8).
pub fn body(writer: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.push(writer);
    out.extend_from_slice(&seq.to_le_bytes());
    while out.len() < len {
        let byte = u8::try_from((out.len() * 31 + usize::try_from(seq).unwrap()) % 251).unwrap();
        out.push(byte);
    }
    out.truncate(len.max(5));
    out
}

/// A user record kind.
pub fn kind(k: u8) -> RecordKind {
    RecordKind::new(k).expect("user kind")
}

/// Checks the prefix rule: `recovered` is, in LSN order, exactly the completed records of
/// `written` up to some point, and it contains every record below `acked` (the highest
/// stable LSN a completed flush returned).
pub fn assert_prefix(written: &[Written], recovered: &[Written], acked: Lsn) {
    let mut written = written.to_vec();
    written.sort();
    assert!(
        recovered.windows(2).all(|w| w[0].lsn < w[1].lsn),
        "recovered records are not in LSN order"
    );
    assert!(
        recovered.len() <= written.len(),
        "recovered {} records, only {} were written",
        recovered.len(),
        written.len()
    );
    for (i, (got, want)) in recovered.iter().zip(&written).enumerate() {
        assert_eq!(got, want, "record {i} of the recovered prefix differs from what was written");
    }
    let must_have = written.iter().filter(|w| w.lsn < acked).count();
    assert!(
        recovered.len() >= must_have,
        "lost flushed records: {} recovered, {must_have} were below the acknowledged {acked}",
        recovered.len()
    );
}

/// A materializer for page cache tests: fragments are appended to the base, so a page's
/// image is the concatenation.
pub struct Concat;

impl Materializer for Concat {
    fn merge(&self, base: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
        let mut out = base.to_vec();
        for fragment in fragments {
            out.extend_from_slice(fragment);
        }
        out
    }
}
