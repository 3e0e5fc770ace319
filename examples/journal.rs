//! A durable event journal on Grove's storage log.
//!
//! Until the typed collections land, this example uses the engine directly: it opens a
//! database directory, recovers the events earlier runs wrote, appends a batch of new ones
//! from two threads, makes them durable with one `flush`, and prints what it did.
//! Run it twice to see the first run's events come back:
//!
//! ```text
//! cargo run --release --example journal            # uses ./example-data
//! cargo run --release --example journal -- my-dir  # or a directory of your choice
//! ```

use std::{error::Error, sync::Arc, time::Instant};

use grove::engine::{FileStorage, Log, LogConfig, Lsn, RecordKind, Storage};

/// The record kind this example uses for its events.
const EVENT: u8 = 16;
/// Events appended per run.
const EVENTS_PER_RUN: u32 = 50_000;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "example-data".to_owned());
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::open(&dir)?);
    let kind = RecordKind::new(EVENT).ok_or("16 is a user kind")?;

    // 1. Recover: every event earlier runs flushed comes back, in order.
    let started = Instant::now();
    let mut recovered = 0u64;
    let mut last_event = None;
    let log = Log::open_with(storage, LogConfig::default(), Lsn::ZERO, |record| {
        if record.kind == kind {
            recovered += 1;
            last_event = Some(String::from_utf8_lossy(record.body).into_owned());
        }
        Ok(())
    })?;
    println!("opened {dir:?} in {:.1?}: {recovered} events recovered", started.elapsed());
    if let Some(event) = last_event {
        println!("  last recovered event: {event}");
    }

    // 2. Append from two threads at once; the log hands out LSNs without locks.
    let run = recovered / u64::from(EVENTS_PER_RUN) + 1;
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<(), Box<dyn Error + Send + Sync>> {
        let workers: Vec<_> = (0..2u32)
            .map(|worker| {
                let log = &log;
                scope.spawn(move || -> Result<(), grove::engine::Error> {
                    for i in (worker..EVENTS_PER_RUN).step_by(2) {
                        let event = format!("run {run} event {i}: user {} clicked", i % 97);
                        log.append(kind, event.as_bytes())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "worker panicked")??;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let appended = started.elapsed();

    // 3. One flush makes all of them durable (one write batch, one fdatasync).
    let started = Instant::now();
    let stable = log.flush()?;
    let flushed = started.elapsed();
    let stats = log.stats();
    println!(
        "appended {EVENTS_PER_RUN} events in {appended:.1?}, flushed in {flushed:.1?}; \
         durable up to {stable}"
    );
    println!(
        "  this run wrote {} bytes with {} fdatasyncs and created {} segment files",
        stats.bytes_written, stats.syncs, stats.segments_created
    );
    log.close()?;
    println!("run again to recover {} events", recovered + u64::from(EVENTS_PER_RUN));
    Ok(())
}
