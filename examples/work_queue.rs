//! A work queue: producer threads push jobs, consumer threads block until a job arrives
//! and acknowledge each one they finish; a job whose consumer gives up comes back.
//!
//! ```text
//! cargo run --example work_queue
//! ```

use std::{thread, time::Duration};

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    producer: u8,
    number: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("grove-queue-{}", std::process::id()));
    let db = grove::open(&dir)?;
    let jobs = db.queue::<Job>("jobs")?;
    let done = db.counter("done")?;

    let producers: Vec<_> = (0..2u8)
        .map(|producer| {
            let jobs = jobs.clone();
            thread::spawn(move || -> grove::Result<()> {
                for number in 0..500 {
                    jobs.push(&Job { producer, number })?;
                }
                Ok(())
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|consumer| {
            let (jobs, done) = (jobs.clone(), done.clone());
            thread::spawn(move || -> grove::Result<u32> {
                let mut finished = 0;
                // Wait up to half a second for each job: the queue wakes us when one comes.
                while let Some(lease) =
                    jobs.reserve_timeout(Duration::from_secs(10), Duration::from_millis(500))?
                {
                    // Consumer 1 gives up on one job in a hundred: it comes back later.
                    if consumer == 1 && lease.item().number % 100 == 7 && lease.release()? {
                        continue;
                    }
                    if lease.ack()? {
                        done.add(1)?;
                        finished += 1;
                    }
                }
                Ok(finished)
            })
        })
        .collect();
    for producer in producers {
        producer.join().map_err(|_| "a producer panicked")??;
    }
    for (n, consumer) in consumers.into_iter().enumerate() {
        let finished = consumer.join().map_err(|_| "a consumer panicked")??;
        println!("consumer {n} finished {finished} jobs");
    }
    println!("{} jobs done, {} left, {} reserved", done.get()?, jobs.len()?, jobs.reserved()?);
    drop((jobs, done, db));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
