//! Prefetching: asking for memory a read is about to need, so that its cache misses overlap
//! instead of following one another.
//!
//! A get at the bottom of a large tree misses the cache on each line it reads of the leaf:
//! the header, then each probe of the binary search over the slot table, then the entry.
//! Each probe's address depends on the last probe's result, so the misses queue one behind
//! the other. The first lines are known up front, though (the header and slot table lie
//! at the start of the image), so a read asks for them at once and the search finds them
//! arriving together. A scan reads a whole leaf and its fragments, and asks for all of it.

/// Bytes in a cache line on the machines we run on.
const LINE: usize = 64;

/// Asks for the cache lines of `bytes`, at most `max_lines` of them from the start. Only a
/// hint: no effect on what any read returns, and nothing on targets without one.
#[inline]
pub(crate) fn lines(bytes: &[u8], max_lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let starts = line_starts(bytes.as_ptr().addr(), bytes.len());
        for byte in starts.take(max_lines).filter_map(|at| bytes.get(at)) {
            #[expect(unsafe_code, reason = "the prefetch intrinsic needs a target-feature context")]
            // SAFETY: `_mm_prefetch` only hints the cache: it reads nothing, cannot fault,
            // and `sse` is part of the x86_64 baseline, so the instruction always exists.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    std::ptr::from_ref(byte).cast(),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, max_lines);
}

/// One offset into `len` bytes at address `addr` in each cache line they span, in order:
/// 0, then every line boundary within them. (Stepping a line at a time from the start
/// would miss the last line when the bytes do not start on a boundary.)
fn line_starts(addr: usize, len: usize) -> impl Iterator<Item = usize> {
    let next_line = LINE - addr % LINE;
    std::iter::once(0).filter(move |_| len > 0).chain((next_line..len).step_by(LINE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_the_bytes_span_is_asked_for_once() {
        for addr in [0, 1, 32, 63, 64, 100] {
            for len in [0, 1, 2, 63, 64, 65, 127, 128, 129, 1000] {
                let asked: Vec<usize> =
                    line_starts(addr, len).map(|at| (addr + at) / LINE).collect();
                let spanned: Vec<usize> =
                    (addr..addr + len).map(|a| a / LINE).fold(Vec::new(), |mut lines, line| {
                        if lines.last() != Some(&line) {
                            lines.push(line);
                        }
                        lines
                    });
                assert_eq!(asked, spanned, "{len} bytes at {addr}");
            }
        }
    }
}
