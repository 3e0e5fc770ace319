//! Shared byte buffers (`Arc<[u8]>`) written once, for the page cache's payloads.
//!
//! The safe ways to fill a new `Arc<[u8]>` in one allocation zero it first and then copy
//! over the zeros, which writes every byte twice. On the comparison's bulk load that
//! zeroing was 1.4% of the instructions (half a million new payload buffers, most of them
//! page images), hence the `unsafe` here.

use std::{mem::MaybeUninit, sync::Arc};

/// A new buffer of `len` bytes (or the parts' total, if that is more): `parts` one after
/// another, then zeros.
pub(crate) fn concat(parts: &[&[u8]], len: usize) -> Arc<[u8]> {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    let mut buffer = Arc::<[u8]>::new_uninit_slice(len.max(total));
    let Some(mut rest) = Arc::get_mut(&mut buffer) else {
        // A buffer just made has no other reference; were it otherwise, a copy the safe way.
        return parts.concat().into();
    };
    for part in parts {
        let (head, tail) = rest.split_at_mut(part.len());
        head.copy_from_slice(as_uninit(part));
        rest = tail;
    }
    rest.fill(MaybeUninit::new(0));
    #[expect(unsafe_code, reason = "a buffer written once instead of zeroed and overwritten")]
    // SAFETY: every byte is initialized: the parts were copied one after another from the
    // start (each `split_at_mut` takes the bytes the copy then writes), and the fill wrote
    // all that was left.
    unsafe {
        buffer.assume_init()
    }
}

/// `bytes` seen as bytes that may be uninitialized, to copy them into a new buffer with one
/// `memcpy` (`write_copy_of_slice` does this, but is newer than the crate's minimum Rust;
/// a loop writing byte by byte was not made a copy by the compiler, and cost 2% of the
/// bulk load's instructions where the zeroing had cost 1.6%).
fn as_uninit(bytes: &[u8]) -> &[MaybeUninit<u8>] {
    #[expect(unsafe_code, reason = "the one-copy write above, on the crate's minimum Rust")]
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and an initialized byte is a valid
    // `MaybeUninit<u8>`; the slice is only read, for as long as `bytes` is borrowed.
    unsafe {
        std::slice::from_raw_parts(bytes.as_ptr().cast::<MaybeUninit<u8>>(), bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::concat;

    /// The parts, one after another, then zeros up to the length asked for: every byte
    /// is written.
    #[test]
    fn a_buffer_is_its_parts_then_zeros() {
        let cases: [(&[&[u8]], usize); 6] = [
            (&[], 0),
            (&[], 7),
            (&[b"abc"], 16),
            (&[b"abc", b"", b"de"], 5),
            (&[b"abc", b"de"], 2),
            (&[b"", b"xyz"], 4),
        ];
        for (parts, len) in cases {
            let mut expected = parts.concat();
            expected.resize(len.max(expected.len()), 0);
            assert_eq!(&*concat(parts, len), &expected[..], "{parts:?} in {len}");
        }
    }
}
