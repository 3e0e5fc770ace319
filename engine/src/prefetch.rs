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
        // One address in each line: the start, then every line boundary within the bytes
        // (stepping by a line from the start would miss the last line when the bytes do
        // not start on a boundary).
        let next_line = LINE - bytes.as_ptr().addr() % LINE;
        let starts = std::iter::once(0).chain((next_line..bytes.len()).step_by(LINE));
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
