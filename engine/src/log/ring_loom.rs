//! Loom models of the log's lock-free reservation protocol ([`super::ring`]).
//!
//! Each model runs two or three writers (the model's main thread is one of them) and one
//! model flusher on a [`Ring`] of two 32-byte buffers in 64-byte segments, so reservations
//! overflow, buffers are sealed and rotated, the ring wraps (a sealer must wait for the
//! flusher) and buffers jump to the next segment.
//!
//! - A writer reserves a few small records; for each it logs `(lsn, len, pattern)` in a
//!   shared list *before* releasing it, fills the claim with its pattern and releases it.
//!   Some records are "aborted": written partly, then overwritten with a marker pattern
//!   before the release (at the ring level an abort is just other bytes).
//! - In one model, writer 0 also flushes after its first record (`seal_for_flush` +
//!   `wait_flushed`) and then checks that the stable LSN covers the end of every record it
//!   reserved before.
//! - While a writer holds a claim, the stable LSN must not have passed the claim's start.
//! - The flusher takes incarnations 0, 1, 2, ... once `ready`, checks that the claims logged
//!   inside `[base, base + used)` tile it exactly and that every byte carries its claim's
//!   final pattern (the loom `SharedBuffer` also reports any read not ordered after the
//!   write), checks that nothing logged below the new stable LSN is outside a flushed
//!   buffer, then publishes.
//! - The last writer to finish closes the ring. The flusher then seals what is left with
//!   `seal_if_idle` (its idle timer's call), writes it and stops. At the end: no claim was
//!   lost, claims are pairwise disjoint, all lie below the final stable LSN, and their total
//!   length equals the bytes the flusher wrote.
//!
//! The claim list is bookkeeping of the test, not part of the protocol, so it is a `std`
//! mutex: loom runs every model thread on one OS thread, sees no scheduling point in it
//! and, more importantly, no happens-before edge, so it cannot hide a missing one in the
//! ring.
//!
//! Cost: the ring's waits spin 64 times before they block, and loom explores every spin,
//! so the models avoid waits that are not part of the protocol (the flusher exits by
//! itself, there is no final flush from the main thread) and the preemption bound shrinks
//! as threads are added: 2 with two writers, 1 with three, 0 for three writers of two
//! records each. Together they take about five minutes of CPU on a 2-core machine.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test -p grove-engine --release --lib log::ring_loom -- --nocapture
//! ```

use std::time::Duration;

use loom::model::Builder;

use super::{geometry::Geometry, ring::Ring};
use loom::sync::Arc;

use crate::sync::{AtomicU64, Ordering, thread};

/// Segment size: a 40-byte header, 64 usable bytes and 20 bytes kept for the segment end.
const SEGMENT_SIZE: u64 = 40 + 64 + 20;
/// Bytes per buffer: smaller than a segment, so buffers fill before segments do.
const MAX_BUFFER: u64 = 32;
/// Two buffers, so the third incarnation must wait for the first to be flushed.
const BUFFERS: usize = 2;

/// One reservation as its writer logged it: LSN, length and the bytes it finally holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Logged {
    lsn: u64,
    len: u64,
    pattern: u8,
    writer: usize,
}

impl Logged {
    fn end(&self) -> u64 {
        self.lsn + self.len
    }
}

/// One buffer the flusher wrote.
#[derive(Debug, Clone, Copy)]
struct Written {
    base: u64,
    used: u64,
    next_base: u64,
}

/// What the threads of one model execution share.
struct Model {
    ring: Ring,
    /// Every claim, logged by its writer before it releases the claim. A `std` mutex on
    /// purpose: see the module docs.
    logged: std::sync::Mutex<Vec<Logged>>,
    /// How many writers the model runs.
    writers: u64,
    /// Writers that have finished; the last one closes the ring.
    finished: AtomicU64,
}

impl Model {
    fn logged(&self) -> Vec<Logged> {
        self.logged.lock().expect("a model thread panicked").clone()
    }

    fn log(&self, claim: Logged) {
        self.logged.lock().expect("a model thread panicked").push(claim);
    }
}

/// A writer's script: the lengths of its records, and whether it flushes after its first.
struct Script {
    writer: usize,
    lens: &'static [u64],
    flush_after_first: bool,
}

fn geometry() -> Geometry {
    Geometry { first_id: 0, first_base: 0, first_size: SEGMENT_SIZE, size: SEGMENT_SIZE }
}

/// The pattern record `seq` of `writer` finally holds; aborted ones have the top bit set.
fn pattern(writer: usize, seq: usize, aborted: bool) -> u8 {
    let base = u8::try_from(0x10 * (writer + 1) + seq).expect("small model");
    if aborted { base | 0x80 } else { base }
}

fn run_writer(model: &Model, script: &Script) {
    let ring = &model.ring;
    let mut mine: Vec<Logged> = Vec::new();
    for (seq, &len) in script.lens.iter().enumerate() {
        let claim = ring.reserve(len).expect("reserve");
        let aborted = (script.writer + seq) % 2 == 1;
        let logged = Logged {
            lsn: claim.lsn(),
            len,
            pattern: pattern(script.writer, seq, aborted),
            writer: script.writer,
        };
        model.log(logged);
        mine.push(logged);
        let n = usize::try_from(len).expect("small model");
        if aborted {
            // A record abandoned half-way: its first half written, then the whole range
            // overwritten with the abort marker.
            claim.write(0, &vec![pattern(script.writer, seq, false); n / 2]);
        }
        claim.write(0, &vec![logged.pattern; n]);
        // Not released yet, so incomplete: stable must not have passed its start.
        let stable = ring.stable();
        assert!(
            stable <= logged.lsn,
            "stable {stable} passed the start of the unreleased {logged:?}"
        );
        ring.release(claim);

        if seq == 0 && script.flush_after_first {
            let target = ring
                .seal_for_flush(true)
                .expect("seal")
                .expect("something was reserved, so something must be flushed");
            ring.request(target, true);
            let stable = ring.wait_flushed(target).expect("flush");
            for logged in &mine {
                assert!(
                    stable >= logged.end(),
                    "flush returned stable {stable} below the end of {logged:?}"
                );
            }
        }
    }
    // AcqRel: the last writer's close then follows every writer's work.
    if model.finished.fetch_add(1, Ordering::AcqRel) + 1 == model.writers {
        ring.close();
    }
}

/// Checks one ready buffer against the logged claims.
fn check_buffer(logged: &[Logged], written: &Written, bytes: &[u8]) {
    let start = written.base;
    let end = written.base + written.used;
    assert_eq!(bytes.len(), usize::try_from(written.used).expect("small"));
    assert!(
        end <= written.next_base,
        "next buffer {} starts inside {written:?}",
        written.next_base
    );
    let mut inside: Vec<Logged> =
        logged.iter().copied().filter(|l| l.lsn < end && l.end() > start).collect();
    inside.sort_by_key(|l| l.lsn);
    // Every claim in the buffer was logged before its release, and the buffer is ready
    // only once all its writers released: the logged claims must tile it.
    let mut cursor = start;
    for l in &inside {
        assert!(l.lsn >= start && l.end() <= end, "{l:?} straddles the buffer {written:?}");
        assert_eq!(l.lsn, cursor, "gap or overlap at {cursor} in {written:?}: {inside:?}");
        cursor = l.end();
        let from = usize::try_from(l.lsn - start).expect("small");
        let to = usize::try_from(l.end() - start).expect("small");
        assert!(
            bytes[from..to].iter().all(|&b| b == l.pattern),
            "flusher saw an incomplete record {l:?}: {:?}",
            &bytes[from..to]
        );
    }
    assert_eq!(cursor, end, "reserved bytes of {written:?} with no logged claim: {inside:?}");
}

/// The model flusher: writes incarnations in order; once the ring is closed, seals what
/// is left, writes it and returns what it wrote.
fn run_flusher(model: &Model) -> Vec<Written> {
    let ring = &model.ring;
    let mut done: Vec<Written> = Vec::new();
    let mut f = 0;
    loop {
        if let Some(sealed) = ring.ready(f) {
            let written =
                Written { base: sealed.base, used: sealed.used, next_base: sealed.next_base };
            if let Some(previous) = done.last() {
                assert_eq!(
                    previous.next_base, written.base,
                    "incarnation {f} does not start where the previous one said"
                );
            }
            let logged = model.logged();
            sealed.with_bytes(|bytes| check_buffer(&logged, &written, bytes));
            done.push(written);
            // Nothing logged below the new stable LSN may lie outside a written buffer.
            for l in logged.iter().filter(|l| l.lsn < written.next_base) {
                assert!(
                    done.iter().any(|w| l.lsn >= w.base && l.end() <= w.base + w.used),
                    "publishing stable {} would pass {l:?}, which no flushed buffer holds",
                    written.next_base
                );
            }
            f += 1;
            ring.publish(f, written.next_base);
            continue;
        }
        if ring.is_closing() {
            // Every writer has finished: seal the open buffer if it holds anything, as the
            // flusher's idle timer would, and stop once nothing is left.
            ring.seal_if_idle(f).expect("final seal");
            if ring.ready(f).is_none() {
                return done;
            }
            continue;
        }
        // Under loom this is a plain wait: a lost wake-up shows up as a deadlock.
        ring.wait_for_work(Duration::from_secs(1));
    }
}

/// Runs `scripts[0]` on the model's main thread and the others on threads of their own,
/// with a flusher, under loom with `preemption_bound`.
fn check_model(scripts: &'static [Script], preemption_bound: usize) {
    let mut builder = Builder::new();
    builder.preemption_bound = Some(preemption_bound);
    builder.check(move || {
        let model = Arc::new(Model {
            ring: Ring::new(geometry(), 0, MAX_BUFFER, BUFFERS),
            logged: std::sync::Mutex::new(Vec::new()),
            writers: u64::try_from(scripts.len()).expect("small"),
            finished: AtomicU64::new(0),
        });
        let flusher = {
            let model = Arc::clone(&model);
            thread::spawn(move || run_flusher(&model))
        };
        let others: Vec<_> = scripts[1..]
            .iter()
            .map(|script| {
                let model = Arc::clone(&model);
                thread::spawn(move || run_writer(&model, script))
            })
            .collect();
        run_writer(&model, &scripts[0]);
        for other in others {
            other.join().expect("writer panicked");
        }
        let written = flusher.join().expect("flusher panicked");

        let ring = &model.ring;
        let stable = ring.stable();
        let mut logged = model.logged();
        let expected: usize = scripts.iter().map(|s| s.lens.len()).sum();
        assert_eq!(logged.len(), expected, "a reservation was lost: {logged:?}");
        for script in scripts {
            let lens: Vec<u64> =
                logged.iter().filter(|l| l.writer == script.writer).map(|l| l.len).collect();
            assert_eq!(lens, script.lens, "writer {} lost a record", script.writer);
        }
        logged.sort_by_key(|l| l.lsn);
        for pair in logged.windows(2) {
            assert!(
                pair[0].end() <= pair[1].lsn,
                "overlapping reservations {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
        for l in &logged {
            assert!(l.end() <= stable, "{l:?} is not below the final stable {stable}");
        }
        let reserved: u64 = logged.iter().map(|l| l.len).sum();
        let flushed: u64 = written.iter().map(|w| w.used).sum();
        assert_eq!(reserved, flushed, "reserved and flushed byte counts differ");
        assert_eq!(
            written.last().map(|w| w.next_base),
            Some(stable),
            "the final stable LSN is not where the last flushed buffer ends"
        );
    });
}

/// Two writers of two records each race to reserve, abort and seal: every order overflows
/// the first buffer, and some fill the second too, so the sealer must wait for the flusher
/// before reusing the first slot (ring wrap) and the next buffer jumps to a new segment.
#[test]
fn two_writers_reserve_abort_seal_and_wrap() {
    static SCRIPTS: [Script; 2] = [
        Script { writer: 0, lens: &[16, 8], flush_after_first: false },
        Script { writer: 1, lens: &[24, 8], flush_after_first: false },
    ];
    check_model(&SCRIPTS, 2);
}

/// A flush (`seal_for_flush` + `wait_flushed`) races a writer whose record overflows the
/// buffer the flush wants to seal.
#[test]
fn a_flush_races_an_overflowing_writer() {
    static SCRIPTS: [Script; 2] = [
        Script { writer: 0, lens: &[16], flush_after_first: true },
        Script { writer: 1, lens: &[24], flush_after_first: false },
    ];
    check_model(&SCRIPTS, 2);
}

/// Three writers race for one buffer that holds only some of them; one aborts.
/// Preemption bound 1: with 2 it had not finished after 10 minutes (3.4 million runs).
#[test]
fn three_writers_race_to_seal() {
    static SCRIPTS: [Script; 3] = [
        Script { writer: 0, lens: &[16], flush_after_first: false },
        Script { writer: 1, lens: &[24], flush_after_first: false },
        Script { writer: 2, lens: &[8], flush_after_first: false },
    ];
    check_model(&SCRIPTS, 1);
}

/// Three writers of two records each, without preemption: every thread runs until it
/// blocks, spins or ends, so this covers the longer scripts (three incarnations, ring
/// wrap, segment jump) at a fraction of the cost of a preemption bound.
#[test]
fn three_writers_two_records_each() {
    static SCRIPTS: [Script; 3] = [
        Script { writer: 0, lens: &[16, 8], flush_after_first: false },
        Script { writer: 1, lens: &[24, 8], flush_after_first: false },
        Script { writer: 2, lens: &[8, 16], flush_after_first: false },
    ];
    check_model(&SCRIPTS, 0);
}
