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
    let skew = bytes.as_ptr().addr() % LINE;
    let count = lines_spanned(skew, bytes.len()).min(max_lines);
    from(bytes.as_ptr().addr(), count);
}

/// Asks for `count` cache lines from the one holding `address`, which need not be memory
/// this thread may read, or memory at all: only a hint, for an address that may have gone
/// stale (see `Slot::image` in the page table). 0 asks for nothing.
#[inline]
pub(crate) fn at_address(address: usize, count: usize) {
    if address != 0 {
        from(address, count);
    }
}

/// Asks for `count` lines from the one holding `address`: one address in each line, from
/// the start of that line.
#[inline]
fn from(address: usize, count: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let first = std::ptr::without_provenance::<i8>(address - address % LINE);
        for line in 0..count {
            #[expect(unsafe_code, reason = "the prefetch intrinsic needs a target-feature context")]
            // SAFETY: `_mm_prefetch` only hints the cache: it reads nothing and cannot
            // fault, whatever the address, and `sse` is part of the x86_64 baseline, so the
            // instruction always exists.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    first.wrapping_add(line * LINE),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (address, count);
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
