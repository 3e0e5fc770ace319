//! Unsigned LEB128 varints, as every encoded structure of the engine writes them.
//!
//! A value is written 7 bits a byte, low bits first, with the high bit set on every byte but
//! the last: at most 10 bytes for a `u64`. Readers accept only the shortest form, so each
//! value has exactly one encoding (a checkpoint or node image re-encodes to its own bytes).

/// The longest varint: ten 7-bit groups hold 64 bits.
const MAX_LEN: usize = 10;

/// Appends `value` to `out`.
#[inline]
pub(crate) fn put(out: &mut Vec<u8>, value: u64) {
    // Most lengths an image or record writes fit in one byte.
    if value < 0x80 {
        out.push(low_seven_bits(value));
        return;
    }
    // And most of the rest in two (a value of up to 16 KiB): no loop, no copy call.
    if value < 0x4000 {
        out.extend_from_slice(&[low_seven_bits(value) | 0x80, low_seven_bits(value >> 7)]);
        return;
    }
    let (bytes, len) = encode(value);
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

/// `value`'s encoding: the first `len` bytes of the array.
pub(crate) fn encode(mut value: u64) -> ([u8; MAX_LEN], usize) {
    let mut bytes = [0; MAX_LEN];
    let mut len = 0;
    for byte in &mut bytes {
        len += 1;
        if value < 0x80 {
            *byte = low_seven_bits(value);
            break;
        }
        *byte = low_seven_bits(value) | 0x80;
        value >>= 7;
    }
    (bytes, len)
}

/// The number of bytes [`put`] writes for `value`.
pub(crate) fn len(value: u64) -> usize {
    // One byte per started group of 7 significant bits, and one byte for 0.
    let bits = u64::BITS - value.leading_zeros();
    usize::try_from(bits.max(1).div_ceil(7)).unwrap_or(MAX_LEN)
}

/// Reads what [`put`] wrote at `*at`, advancing `*at` past it.
///
/// # Errors
/// The offset of the varint and what is wrong with it: the bytes end inside it, it is longer
/// than 10 bytes, it is not in its shortest form, or it overflows 64 bits. `*at` is left
/// unchanged then.
// Opening a database is mostly this function (a checkpoint is ~3 varints a page): the
// one-byte case returns before the loop, the loop reads the slice directly, and every
// error is built out of line.
#[inline]
pub(crate) fn get(bytes: &[u8], at: &mut usize) -> Result<u64, (usize, String)> {
    let start = *at;
    if let Some(&byte) = bytes.get(start)
        && byte < 0x80
    {
        *at = start + 1;
        return Ok(u64::from(byte));
    }
    let mut value = 0u64;
    for i in 0..MAX_LEN {
        let Some(&byte) = bytes.get(start + i) else {
            return Err(ends_early(start + i));
        };
        let bits = u64::from(byte & 0x7f);
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if (byte == 0 && i > 0) || (i == MAX_LEN - 1 && bits > 1) {
                return Err(bad(start, byte));
            }
            *at = start + i + 1;
            return Ok(value);
        }
    }
    Err(bad(start, 0x80))
}

fn low_seven_bits(value: u64) -> u8 {
    // The mask leaves seven bits, which always fit.
    u8::try_from(value & 0x7f).unwrap_or(0)
}

#[cold]
fn ends_early(at: usize) -> (usize, String) {
    (at, "bytes end inside a varint".to_owned())
}

#[cold]
fn bad(at: usize, last: u8) -> (usize, String) {
    let reason = if last & 0x80 != 0 {
        "varint longer than 10 bytes"
    } else if last == 0 {
        "varint not in its shortest form"
    } else {
        "varint overflows 64 bits"
    };
    (at, reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_every_width() {
        for shift in 0..64 {
            for value in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
                let mut out = vec![7];
                put(&mut out, value);
                assert_eq!(out.len() - 1, len(value), "{value}");
                let mut at = 1;
                assert_eq!(get(&out, &mut at).unwrap(), value);
                assert_eq!(at, out.len());
            }
        }
    }

    #[test]
    fn rejects_what_put_never_writes() {
        let cases: [(&[u8], &str); 5] = [
            (&[], "end inside"),
            (&[0x80], "end inside"),
            (&[0x80, 0], "shortest form"),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2], "overflows"),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0], "longer than 10"),
        ];
        for (bytes, want) in cases {
            let mut at = 0;
            let (offset, reason) = get(bytes, &mut at).unwrap_err();
            assert!(reason.contains(want), "{bytes:?}: {reason}");
            assert!(offset <= bytes.len());
            assert_eq!(at, 0, "a failed read does not advance");
        }
    }
}
