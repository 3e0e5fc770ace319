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
        // One address in each line, from the start of the line the bytes start in (the
        // first address may lie before the bytes, in that line).
        let skew = bytes.as_ptr().addr() % LINE;
        let first = bytes.as_ptr().wrapping_sub(skew);
        for line in 0..lines_spanned(skew, bytes.len()).min(max_lines) {
            #[expect(unsafe_code, reason = "the prefetch intrinsic needs a target-feature context")]
            // SAFETY: `_mm_prefetch` only hints the cache: it reads nothing and cannot
            // fault, whatever the address, and `sse` is part of the x86_64 baseline, so the
            // instruction always exists.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    first.wrapping_add(line * LINE).cast(),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, max_lines);
}

/// How many cache lines `len` bytes span when they start `skew` bytes into a line.
/// (Stepping a line at a time from the start of the bytes would miss the last line when
/// they do not start on a boundary.)
fn lines_spanned(skew: usize, len: usize) -> usize {
    if len == 0 { 0 } else { (skew + len).div_ceil(LINE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_the_bytes_span_is_asked_for_once() {
        for addr in [0, 1, 32, 63, 64, 100] {
            for len in [0, 1, 2, 63, 64, 65, 127, 128, 129, 1000] {
                // The lines asked for: one a line apart from the start's line.
                let first = addr / LINE;
                let asked: Vec<usize> = (first..first + lines_spanned(addr % LINE, len)).collect();
                let mut spanned: Vec<usize> = (addr..addr + len).map(|a| a / LINE).collect();
                spanned.dedup();
                assert_eq!(asked, spanned, "{len} bytes at {addr}");
            }
        }
    }
}
