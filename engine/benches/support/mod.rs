//! Helpers shared by the engine's benchmarks.
#![allow(dead_code, reason = "each benchmark uses a different subset")]

use std::{
    error::Error,
    path::{Path, PathBuf},
};

/// What a benchmark's fallible steps return.
pub type BenchResult<T> = Result<T, Box<dyn Error>>;

/// Where the temporary directory goes: `GROVE_BENCH_DIR`, else the target directory the
/// bench binary lives in (`target/<profile>/deps/..`), else the working directory.
pub fn data_root() -> BenchResult<PathBuf> {
    if let Some(dir) = std::env::var_os("GROVE_BENCH_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        return Ok(dir);
    }
    let exe = std::env::current_exe()?;
    let beside_binary = exe.parent().map(|deps| deps.parent().unwrap_or(deps).to_path_buf());
    Ok(beside_binary.unwrap_or_else(|| PathBuf::from(".")))
}

/// "ext4 on /dev/vda, mounted at /" for the mount holding `path`, from `/proc/mounts`.
pub fn describe_filesystem(path: &Path) -> String {
    let Ok(path) = path.canonicalize() else {
        return "filesystem unknown".to_owned();
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "filesystem unknown".to_owned();
    };
    let best = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let point = fields.next()?.replace("\\040", " ");
            let kind = fields.next()?;
            path.starts_with(&point)
                .then(|| (point.len(), format!("{kind} on {device}, mounted at {point}")))
        })
        .max_by_key(|(len, _)| *len);
    match best {
        Some((_, text)) if text.starts_with("tmpfs") => {
            format!("{text}: WARNING, a RAM disk; set GROVE_BENCH_DIR to a real disk")
        }
        Some((_, text)) => text,
        None => "filesystem unknown".to_owned(),
    }
}

/// `1234567.8` as "1,234,568".
pub fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
