//! What one run measures: each metric's id (as the child process prints it),
//! its label in the table, its unit and which direction is better.

pub struct Metric {
    pub id: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
}

const fn faster(id: &'static str, label: &'static str, unit: &'static str) -> Metric {
    Metric { id, label, unit, higher_is_better: true }
}

const fn smaller(id: &'static str, label: &'static str, unit: &'static str) -> Metric {
    Metric { id, label, unit, higher_is_better: false }
}

/// In table order. Labels may contain `{placeholders}` for the sizes, filled by the report.
pub const METRICS: &[Metric] = &[
    faster("load", "bulk load of {keys} entries, then a durable flush", "entries/s"),
    faster("durable_writes", "{durable_writes} individual durable writes", "writes/s"),
    faster("durable_batches", "{batches} durable batches of {batch_size}", "entries/s"),
    faster("writes", "{writes} non-durable writes", "writes/s"),
    smaller("len", "len", "ms"),
    faster("gets_1", "{gets} random gets, 1 thread", "gets/s"),
    faster("gets_n", "{gets} random gets, {threads} threads", "gets/s"),
    faster("ranges", "{ranges} ranges of {range_len} entries, 1 thread", "ranges/s"),
    faster("mix", "{gets} operations, 90% get / 10% write, {threads} threads", "ops/s"),
    faster("removes", "remove half the loaded keys, then a durable flush", "removes/s"),
    smaller("disk_load", "disk after the load ({logical} MiB of keys and values)", "MiB"),
    smaller("disk_writes", "disk after the writes", "MiB"),
    smaller("disk_removes", "disk after the removals", "MiB"),
    smaller("peak_rss", "peak RSS (cache budget {cache} MiB)", "MiB"),
    smaller("close", "close", "ms"),
    smaller("reopen", "reopen", "ms"),
];
