//! Medians of the runs, as a markdown table for the README and a CSV.

use std::{collections::BTreeMap, fmt::Write};

use crate::{metrics::METRICS, run::Sizes};

pub struct Report<'a> {
    pub engines: &'a [String],
    pub results: &'a BTreeMap<String, Vec<BTreeMap<String, f64>>>,
    pub sizes: &'a Sizes,
    pub args: &'a [String],
}

impl Report<'_> {
    fn median(&self, engine: &str, metric: &str) -> Option<f64> {
        let mut values: Vec<f64> =
            self.results.get(engine)?.iter().filter_map(|run| run.get(metric).copied()).collect();
        values.sort_by(f64::total_cmp);
        match values.len() {
            0 => None,
            n if n % 2 == 1 => Some(values[n / 2]),
            n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
        }
    }

    fn runs(&self) -> usize {
        self.results.values().map(Vec::len).min().unwrap_or(0)
    }

    fn label(&self, template: &str) -> String {
        let s = self.sizes;
        let logical =
            (s.keys * (s.shape.key_bytes + s.shape.value_bytes) as u64) as f64 / f64::from(1 << 20);
        template
            .replace("{keys}", &thousands(s.keys))
            .replace("{durable_writes}", &thousands(s.durable_writes))
            .replace("{batches}", &thousands(s.batches))
            .replace("{batch_size}", &thousands(s.batch_size))
            .replace("{writes}", &thousands(s.writes))
            .replace("{gets}", &thousands(s.gets))
            .replace("{ranges}", &thousands(s.ranges))
            .replace("{range_len}", &s.range_len.to_string())
            .replace("{threads}", &s.threads.to_string())
            .replace("{logical}", &format!("{logical:.1}"))
            .replace("{cache}", &(s.cache_bytes >> 20).to_string())
    }

    /// Grove's value divided by the best peer's, and whether Grove leads.
    fn versus_best(&self, metric: &crate::metrics::Metric) -> Option<(f64, &str, bool)> {
        let grove = self.median("grove", metric.id)?;
        let better = |a: f64, b: f64| if metric.higher_is_better { a > b } else { a < b };
        let (best, name) = self
            .engines
            .iter()
            .filter(|e| *e != "grove")
            .filter_map(|e| Some((self.median(e, metric.id)?, e.as_str())))
            .reduce(|a, b| if better(b.0, a.0) { b } else { a })?;
        Some((grove / best, name, !better(best, grove)))
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Medians of {} runs, each engine in its own process. {}.\n",
            self.runs(),
            machine()
        );
        let _ = write!(md, "| workload | unit |");
        for engine in self.engines {
            let _ = write!(md, " {engine} |");
        }
        let _ = writeln!(md, " Grove ÷ best peer |");
        let _ = write!(md, "|---|---|");
        for _ in self.engines {
            let _ = write!(md, "---:|");
        }
        let _ = writeln!(md, "---|");
        for metric in METRICS {
            let _ = write!(md, "| {} | {} |", self.label(metric.label), metric.unit);
            for engine in self.engines {
                let cell =
                    self.median(engine, metric.id).map_or_else(|| "–".to_string(), format_value);
                let _ = write!(md, " {cell} |");
            }
            let verdict = match self.versus_best(metric) {
                Some((ratio, peer, leads)) => {
                    format!("{ratio:.2}x {peer}{}", if leads { "" } else { " (behind)" })
                }
                None => "–".to_string(),
            };
            let _ = writeln!(md, " {verdict} |");
        }
        let _ = writeln!(
            md,
            "\nHigher is better for rates, lower for times and sizes. Reproduce with `cd compare && cargo run --release -- {}`.",
            self.args.join(" ")
        );
        md
    }

    pub fn csv(&self) -> String {
        let mut csv = String::from("metric,unit,engine,median,runs\n");
        for metric in METRICS {
            for engine in self.engines {
                let runs: Vec<String> = self
                    .results
                    .get(engine)
                    .map(|r| {
                        r.iter().filter_map(|run| run.get(metric.id)).map(f64::to_string).collect()
                    })
                    .unwrap_or_default();
                let median =
                    self.median(engine, metric.id).map(|m| m.to_string()).unwrap_or_default();
                let _ = writeln!(
                    csv,
                    "{},{},{engine},{median},{}",
                    metric.id,
                    metric.unit,
                    runs.join(" ")
                );
            }
        }
        csv
    }
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        thousands(value.round() as u64)
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The machine and the date, for the table's caption.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown CPU", |l| l.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / f64::from(1 << 20));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {}, {date}", kernel.trim())
}
