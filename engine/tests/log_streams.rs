//! Streams, random reads and segment removal: what the page cache needs from the log.
//!
//! Two logs with different stream names share one directory and never see each other's
//! files; every appended record can be read back by (lsn, len) once `written_lsn` passes
//! it, before and after a reopen, compressed or not; damage is `Error::Corruption`, never a
//! panic; dead segments can be removed in any pattern before the recovery start.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod support;

use std::sync::Arc;

use grove_engine::{
    Error, Log, LogConfig, Lsn, MemStorage, SegmentId, SegmentInfo, SimStorage, Storage,
};
use support::{Written, body, kind, run_seeds};

/// A record as appended: where it is, how long it is on disk, what it holds.
#[derive(Debug, Clone)]
struct Located {
    lsn: Lsn,
    len: u32,
    kind: u8,
    body: Vec<u8>,
}

fn open_stream(
    storage: &Arc<dyn Storage>,
    config: &LogConfig,
    stream: &str,
    from: Lsn,
) -> grove_engine::Result<(Log, Vec<Written>)> {
    let mut seen = Vec::new();
    let log = Log::open_stream(storage.clone(), config.clone(), stream, from, |record| {
        seen.push(Written { lsn: record.lsn, kind: record.kind.get(), body: record.body.to_vec() });
        Ok(())
    })?;
    Ok((log, seen))
}

/// Appends `record` as one body or, every other time, in up to three parts at random
/// cuts (`Log::reserve_parts`); returns its LSN and length on disk.
fn append_some_way(log: &Log, rng: &mut fastrand::Rng, k: u8, record: &[u8]) -> (Lsn, u32) {
    if rng.bool() {
        return log.append_located(kind(k), record).unwrap();
    }
    let (a, b) = (rng.usize(..=record.len()), rng.usize(..=record.len()));
    let (a, b) = (a.min(b), a.max(b));
    let reservation =
        log.reserve_parts(kind(k), &[&record[..a], &record[a..b], &record[b..]]).unwrap();
    let len = reservation.len();
    (reservation.complete(), len)
}

/// Appends `count` records of assorted sizes (some compressible, some not, some in parts),
/// aborting a reservation now and then, and flushes at the end.
fn append_records(log: &Log, seed: u64, count: u32) -> Vec<Located> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    for seq in 0..count {
        let len = rng.usize(5..300);
        let b = if rng.bool() { vec![rng.u8(..); len] } else { body(1, seq, len) };
        let k = rng.u8(16..=255);
        let (lsn, record_len) = append_some_way(log, &mut rng, k, &b);
        out.push(Located { lsn, len: record_len, kind: k, body: b });
        if rng.u8(..8) == 0 {
            log.reserve(kind(16), b"aborted").unwrap().abort();
        }
    }
    log.flush().unwrap();
    out
}

fn assert_reads_back(log: &Log, records: &[Located]) {
    for r in records {
        assert!(log.written_lsn() > r.lsn, "{:?} is not written yet", r.lsn);
        let got = log.read(r.lsn, r.len).unwrap();
        assert_eq!((got.lsn, got.kind.get(), &got.body), (r.lsn, r.kind, &r.body));
    }
}

fn as_written(records: &[Located]) -> Vec<Written> {
    records.iter().map(|r| Written { lsn: r.lsn, kind: r.kind, body: r.body.clone() }).collect()
}

/// The file name of segment `id` of `stream`, as `docs/format.md` specifies it.
fn segment_name(stream: &str, id: SegmentId) -> String {
    if stream.is_empty() {
        format!("{:016x}.seg", id.0)
    } else {
        format!("{stream}-{:016x}.seg", id.0)
    }
}

fn segment_holding(segments: &[SegmentInfo], lsn: Lsn) -> SegmentInfo {
    *segments.iter().find(|s| s.base <= lsn && lsn < s.end).unwrap()
}

#[test]
fn two_streams_in_one_directory_recover_independently() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig::tiny();
    let (delta, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    let (base, _) = open_stream(&storage, &config, "base", Lsn::ZERO).unwrap();
    let (default, _) = open_stream(&storage, &config, "", Lsn::ZERO).unwrap();
    let deltas = append_records(&delta, 1, 150);
    let bases = append_records(&base, 2, 90);
    let defaults = append_records(&default, 3, 40);
    // The same LSNs in different streams are different records.
    assert_eq!(deltas[0].lsn, bases[0].lsn);
    drop((delta, base, default));

    let names = storage.list().unwrap();
    assert!(names.iter().any(|n| n == "delta-0000000000000003.seg"), "{names:?}");
    assert!(names.iter().any(|n| n == "base-0000000000000001.seg"), "{names:?}");
    assert!(names.iter().any(|n| n == "0000000000000000.seg"), "{names:?}");

    for (stream, records) in [("delta", &deltas), ("base", &bases), ("", &defaults)] {
        let (log, seen) = open_stream(&storage, &config, stream, Lsn::ZERO).unwrap();
        assert_eq!(seen, as_written(records), "stream {stream:?}");
        assert_reads_back(&log, records);
        let files = names.iter().filter(|n| match stream {
            "" => n.len() == 20,
            s => n.starts_with(&format!("{s}-")),
        });
        assert_eq!(log.segments().len(), files.count(), "stream {stream:?}");
    }
}

#[test]
fn a_stream_ignores_other_streams_files_even_damaged_ones() {
    let storage = SimStorage::new(5);
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let config = LogConfig::tiny();
    // Another stream's leftover temp file and a garbage segment: not ours to judge or clean.
    storage.set_bytes("base-0000000000000004.seg.tmp", vec![1; 10]);
    storage.set_bytes("base-0000000000000000.seg", b"not a grove file at all".to_vec());
    storage.set_bytes("0000000000000009.seg.tmp", vec![2; 10]);
    let (log, seen) = open_stream(&shared, &config, "delta", Lsn::ZERO).unwrap();
    assert!(seen.is_empty());
    let records = append_records(&log, 9, 60);
    drop(log);
    let (log, seen) = open_stream(&shared, &config, "delta", Lsn::ZERO).unwrap();
    assert_eq!(seen, as_written(&records));
    drop(log);
    let names = shared.list().unwrap();
    for kept in ["base-0000000000000004.seg.tmp", "0000000000000009.seg.tmp"] {
        assert!(names.iter().any(|n| n == kept), "{kept} was removed: {names:?}");
    }
    // Each stream still reports its own damage.
    let error = open_stream(&shared, &config, "base", Lsn::ZERO).unwrap_err();
    assert!(matches!(error, Error::NotGrove { .. }), "{error}");
    // The default stream cleans only its own temp file.
    drop(open_stream(&shared, &config, "", Lsn::ZERO).unwrap());
    let names = shared.list().unwrap();
    assert!(!names.iter().any(|n| n == "0000000000000009.seg.tmp"), "{names:?}");
    assert!(names.iter().any(|n| n == "base-0000000000000004.seg.tmp"), "{names:?}");
}

#[test]
fn stream_names_other_than_lowercase_letters_are_config_errors() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    for bad in ["Delta", "delta-1", "d.e", "a b", "ü"] {
        let error = open_stream(&storage, &LogConfig::tiny(), bad, Lsn::ZERO).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{bad:?}: {error}");
    }
    assert!(storage.list().unwrap().is_empty());
}

#[test]
fn reads_return_every_record_once_written_and_after_reopen() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig::tiny();
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    let records = append_records(&log, 11, 300);
    assert!(log.written_lsn() >= log.stable_lsn());
    assert_reads_back(&log, &records);
    drop(log);
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    assert_reads_back(&log, &records);
    // Records appended after the reopen go on from the recovered tail.
    let more = append_records(&log, 12, 100);
    assert!(more[0].lsn > records.last().unwrap().lsn);
    assert_reads_back(&log, &records);
    assert_reads_back(&log, &more);
}

#[test]
fn compressed_records_read_back_whole() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig { compression_level: Some(1), ..LogConfig::tiny() };
    let (log, _) = open_stream(&storage, &config, "base", Lsn::ZERO).unwrap();
    let mut records = Vec::new();
    let mut rng = fastrand::Rng::with_seed(5);
    for seq in 0..200u32 {
        // At least `compress_min_len`, compressible; some larger than a tiny buffer raw.
        let len = 64 + usize::try_from(seq * 37 % 3000).unwrap();
        let b: Vec<u8> = (0..len).map(|i| u8::try_from(i / 50 % 4).unwrap()).collect();
        let (lsn, record_len) = append_some_way(&log, &mut rng, 40, &b);
        assert!(
            usize::try_from(record_len).unwrap() < 20 + b.len(),
            "a {len}-byte body was stored compressed"
        );
        records.push(Located { lsn, len: record_len, kind: 40, body: b });
    }
    log.flush().unwrap();
    assert_reads_back(&log, &records);
    drop(log);
    let (log, _) = open_stream(&storage, &config, "base", Lsn::ZERO).unwrap();
    assert_reads_back(&log, &records);
}

#[test]
fn reservation_len_matches_the_record_on_disk() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let log = Log::open(storage, LogConfig::tiny()).unwrap();
    let reservation = log.reserve(kind(16), b"twelve bytes").unwrap();
    assert_eq!(reservation.len(), 32);
    let (lsn, len) = (reservation.lsn(), reservation.len());
    assert_eq!(reservation.complete(), lsn);
    let (next, _) = log.append_located(kind(16), b"x").unwrap();
    assert_eq!(next.0, lsn.0 + u64::from(len), "records are back to back");
    log.flush().unwrap();
    assert_eq!(log.read(lsn, len).unwrap().body, b"twelve bytes");
}

#[test]
fn reads_at_or_beyond_the_written_end_or_with_bad_lengths_are_errors() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig { flush_every_ms: None, ..LogConfig::tiny() };
    let log = Log::open(storage, config).unwrap();
    let (first, first_len) = log.append_located(kind(16), b"first").unwrap();
    log.flush().unwrap();
    // Appended but not written: the flusher has not been asked to.
    let (second, second_len) = log.append_located(kind(16), b"second").unwrap();
    assert!(log.written_lsn() <= second);
    let error = log.read(second, second_len).unwrap_err();
    assert!(matches!(error, Error::NoRecord { lsn, .. } if lsn == second), "{error}");
    let error = log.read(Lsn(1 << 40), 30).unwrap_err();
    assert!(matches!(error, Error::NoRecord { .. }), "{error}");
    // A length that runs past the written end, or that no record can have.
    for len in [0, 19, first_len + 1_000_000, u32::MAX] {
        let error = log.read(first, len).unwrap_err();
        assert!(matches!(error, Error::NoRecord { .. }), "len {len}: {error}");
    }
    // Wrong but plausible lengths and positions: the bytes there are not that record.
    for (lsn, len) in [(first, first_len - 1), (first, 20), (Lsn(first.0 + 1), first_len - 1)] {
        let error = log.read(lsn, len).unwrap_err();
        assert!(matches!(error, Error::Corruption { .. }), "({lsn}, {len}): {error}");
    }
    log.flush().unwrap();
    assert_eq!(log.read(second, second_len).unwrap().body, b"second");
}

#[test]
fn a_flipped_bit_in_a_record_is_corruption_and_never_a_panic() {
    run_seeds("log_streams", 40, |seed| {
        let disk = SimStorage::new(seed);
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let config = LogConfig { compression_level: Some(1), ..LogConfig::tiny() };
        let (log, _) = open_stream(&storage, &config, "", Lsn::ZERO).unwrap();
        let records = append_records(&log, seed, 80);
        let segments = log.segments();
        let mut rng = fastrand::Rng::with_seed(seed);
        for _ in 0..20 {
            let r = &records[rng.usize(..records.len())];
            let segment = segment_holding(&segments, r.lsn);
            let name = segment_name("", segment.id);
            let offset = 40 + (r.lsn.0 - segment.base.0) + rng.u64(..u64::from(r.len));
            let bit = rng.u8(..8);
            disk.flip_bit(&name, offset, bit).unwrap();
            match log.read(r.lsn, r.len) {
                Err(Error::Corruption { file, offset: at, .. }) => {
                    assert_eq!(file, name);
                    assert!(at >= 40 + (r.lsn.0 - segment.base.0));
                }
                other => panic!("bit {bit} at {offset} of {name}: {other:?}"),
            }
            disk.flip_bit(&name, offset, bit).unwrap();
            assert_eq!(log.read(r.lsn, r.len).unwrap().body, r.body);
        }
    });
}

#[test]
fn segments_created_after_open_are_listed_and_segment_of_agrees() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig::tiny();
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    assert!(log.segments().is_empty());
    assert_eq!(log.segment_of(Lsn::ZERO), Some(SegmentId(0)));
    let records = append_records(&log, 21, 200);
    let segments = log.segments();
    assert!(segments.len() > 5, "tiny segments roll over: {segments:?}");
    for pair in segments.windows(2) {
        assert_eq!(pair[0].id.0 + 1, pair[1].id.0);
        assert_eq!(pair[0].end, pair[1].base);
        assert!(pair[0].file_len <= config.segment_size && pair[0].file_len > 40);
    }
    for r in &records {
        assert_eq!(log.segment_of(r.lsn), Some(segment_holding(&segments, r.lsn).id));
    }
    let last = segments.last().unwrap();
    let file = storage.open(&segment_name("delta", last.id)).unwrap();
    // The flusher keeps the tail's file longer than its data, up to the segment's size,
    // and what lies past the data reads as zeros (a hole on a real filesystem).
    let len = file.len().unwrap();
    assert!(last.file_len <= len && len <= config.segment_size, "{last:?}, file {len} bytes");
    let mut past = vec![1; usize::try_from(len - last.file_len).unwrap()];
    file.read_at(&mut past, last.file_len).unwrap();
    assert!(past.iter().all(|&b| b == 0));
    // Beyond the tail, segment_of computes where records will go.
    assert_eq!(log.segment_of(last.end), Some(SegmentId(last.id.0 + 1)));
}

#[test]
fn a_log_closed_cleanly_leaves_no_zeros_after_its_last_record() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig::tiny();
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    let records = append_records(&log, 7, 50);
    log.flush().unwrap();
    let last = *log.segments().last().unwrap();
    let name = segment_name("delta", last.id);
    assert!(storage.open(&name).unwrap().len().unwrap() > last.file_len, "extended ahead");
    drop(log);
    // The zeros are cut at the close, so the next open has nothing to cut and finds every
    // record.
    assert_eq!(storage.open(&name).unwrap().len().unwrap(), last.file_len);
    let (_, seen) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    assert_eq!(seen.len(), records.len());
}

#[test]
fn segments_keep_their_sizes_when_the_configuration_changes() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let small = LogConfig::tiny();
    let large = LogConfig { segment_size: 4096, buffer_size: 1024, ..LogConfig::tiny() };
    let mut all = Vec::new();
    for (round, config) in [&small, &large, &small, &large].into_iter().enumerate() {
        let (log, seen) = open_stream(&storage, config, "base", Lsn::ZERO).unwrap();
        assert_eq!(seen, as_written(&all));
        all.extend(append_records(&log, 30 + u64::try_from(round).unwrap(), 60));
        assert_reads_back(&log, &all);
        let segments = log.segments();
        for r in &all {
            assert_eq!(log.segment_of(r.lsn), Some(segment_holding(&segments, r.lsn).id));
        }
    }
    let (log, _) = open_stream(&storage, &small, "base", Lsn::ZERO).unwrap();
    let sizes: Vec<u64> = log.segments().iter().map(|s| s.end.0 - s.base.0).collect();
    assert!(sizes.contains(&(2048 - 40)) && sizes.contains(&(4096 - 40)), "{sizes:?}");
}

/// Writes a log of many segments, returns its records and segments.
fn many_segments(
    storage: &Arc<dyn Storage>,
    config: &LogConfig,
) -> (Vec<Located>, Vec<SegmentInfo>) {
    let (log, _) = open_stream(storage, config, "delta", Lsn::ZERO).unwrap();
    let records = append_records(&log, 41, 400);
    let segments = log.segments();
    assert!(segments.len() >= 10, "{} segments", segments.len());
    (records, segments)
}

#[test]
fn removed_segments_before_from_are_skipped_on_reopen() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig::tiny();
    let (records, segments) = many_segments(&storage, &config);
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    // Any pattern of gaps: the first, two in a row, one alone.
    let removed = [segments[0].id, segments[2].id, segments[3].id, segments[5].id];
    for id in removed {
        log.remove_segment(id).unwrap();
    }
    let left: Vec<SegmentId> = log.segments().iter().map(|s| s.id).collect();
    assert!(removed.iter().all(|id| !left.contains(id)), "{left:?}");
    assert_eq!(left.len(), segments.len() - removed.len());
    assert_eq!(log.segment_of(segments[2].base), None);
    assert_eq!(log.segment_of(segments[4].base), Some(segments[4].id));
    // Records in removed segments are gone; the others still read back.
    let (gone, kept): (Vec<Located>, Vec<Located>) = records
        .iter()
        .cloned()
        .partition(|r| removed.contains(&segment_holding(&segments, r.lsn).id));
    for r in &gone {
        let error = log.read(r.lsn, r.len).unwrap_err();
        assert!(matches!(error, Error::MissingSegment { .. }), "{error}");
    }
    assert_reads_back(&log, &kept);
    drop(log);
    assert!(!storage.list().unwrap().contains(&segment_name("delta", removed[1])));

    // Reopen from a record in segment 7: segments 0, 2, 3 and 5 are not needed.
    let from = records.iter().find(|r| segment_holding(&segments, r.lsn).id == segments[7].id);
    let from = from.unwrap().lsn;
    let (log, seen) = open_stream(&storage, &config, "delta", from).unwrap();
    let expected: Vec<Located> = records.iter().filter(|r| r.lsn >= from).cloned().collect();
    assert_eq!(seen, as_written(&expected));
    assert_eq!(log.segments().iter().map(|s| s.id).collect::<Vec<_>>(), left);
    assert_reads_back(&log, &kept);
    // From the very start of segment 6 (after a gap) works too.
    drop(log);
    let (log, seen) = open_stream(&storage, &config, "delta", segments[6].base).unwrap();
    assert_eq!(
        seen.first().map(|w| w.lsn),
        records.iter().map(|r| r.lsn).find(|&l| l >= segments[6].base)
    );
    // And the log goes on.
    let more = append_records(&log, 42, 50);
    assert_reads_back(&log, &more);
}

#[test]
fn reopening_from_inside_a_removed_segment_is_missing_segment() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig::tiny();
    let (_, segments) = many_segments(&storage, &config);
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    for i in [0, 3, 4] {
        log.remove_segment(segments[i].id).unwrap();
    }
    drop(log);
    let cases = [
        (segments[0].base, segments[1].id),
        (Lsn(segments[3].base.0 + 30), segments[5].id),
        (segments[4].base, segments[5].id),
    ];
    for (from, found) in cases {
        let error = open_stream(&storage, &config, "delta", from).unwrap_err();
        assert!(
            matches!(error, Error::MissingSegment { found: f, .. } if f == found),
            "from {from}: {error}"
        );
    }
    // From a segment that exists, all is well.
    drop(open_stream(&storage, &config, "delta", segments[5].base).unwrap());
    // Removing a segment after the recovery start is a gap in the log.
    let (log, _) = open_stream(&storage, &config, "delta", segments[5].base).unwrap();
    log.remove_segment(segments[7].id).unwrap();
    drop(log);
    let error = open_stream(&storage, &config, "delta", segments[5].base).unwrap_err();
    assert!(
        matches!(error, Error::MissingSegment { missing, .. } if missing == segments[7].id),
        "{error}"
    );
    drop(open_stream(&storage, &config, "delta", segments[8].base).unwrap());
}

#[test]
fn remove_segment_refuses_the_tail_unwritten_and_unknown_segments() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig { flush_every_ms: None, ..LogConfig::tiny() };
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    let records = append_records(&log, 51, 150);
    let segments = log.segments();
    let tail = segments.last().unwrap().id;
    let refused = |id: SegmentId| matches!(log.remove_segment(id), Err(Error::SegmentNotRemovable { segment, .. }) if segment == id);
    assert!(refused(tail), "the tail");
    assert!(refused(SegmentId(tail.0 + 1)), "not created yet");
    assert!(refused(SegmentId(u64::MAX)), "unknown");
    log.remove_segment(segments[1].id).unwrap();
    assert!(refused(segments[1].id), "already removed");
    assert_reads_back(&log, &records[records.len() - 5..]);
    drop(log);
    // The newest existing segment is never removed, so the log can always be reopened.
    let (log, _) = open_stream(&storage, &config, "delta", segments[2].base).unwrap();
    let newest = log.segments().last().unwrap().id;
    assert!(matches!(log.remove_segment(newest), Err(Error::SegmentNotRemovable { .. })));
}

#[test]
fn reads_run_alongside_appends_and_the_written_watermark_only_grows() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let config = LogConfig { compression_level: Some(1), ..LogConfig::tiny() };
    let (log, _) = open_stream(&storage, &config, "delta", Lsn::ZERO).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<Located>();
    let receiver = std::sync::Mutex::new(receiver);
    let read = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for writer in 0..2u8 {
            let (log, sender) = (&log, sender.clone());
            scope.spawn(move || {
                for seq in 0..400u32 {
                    let len = usize::try_from(5 + seq * 7 % 200).unwrap();
                    let b = if seq % 3 == 0 {
                        vec![writer; len.max(64)]
                    } else {
                        body(writer, seq, len)
                    };
                    let (lsn, len) = log.append_located(kind(16 + writer), &b).unwrap();
                    sender.send(Located { lsn, len, kind: 16 + writer, body: b }).unwrap();
                }
            });
        }
        drop(sender);
        for _ in 0..2 {
            let (log, receiver, read) = (&log, &receiver, &read);
            scope.spawn(move || {
                let mut last_written = Lsn::ZERO;
                loop {
                    let next = receiver.lock().unwrap().recv();
                    let Ok(r) = next else { break };
                    // The flusher writes within `flush_every_ms` on its own.
                    loop {
                        let written = log.written_lsn();
                        assert!(written >= last_written, "written_lsn went back");
                        last_written = written;
                        if written > r.lsn {
                            break;
                        }
                        std::thread::yield_now();
                    }
                    let got = log.read(r.lsn, r.len).unwrap();
                    assert_eq!((got.kind.get(), got.body), (r.kind, r.body));
                    read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(read.into_inner(), 800);
}
