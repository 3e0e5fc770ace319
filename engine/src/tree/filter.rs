//! Key filters: a one-word Bloom filter of the keys a leaf's fragments name, which lets a
//! get skip the fragments without reading them.
//!
//! A key sets two of 64 bits, picked by a hash of its bytes ([`key_bits`]). A fragment's
//! filter is the OR over its ops' keys ([`fragment_filter`]); the page cache ORs the
//! filters of a page's fragments into the page's state (it calls them summaries, see
//! [`Materializer::summarize`](crate::pagecache::Materializer::summarize)). A get whose key
//! has a bit the page's filter lacks knows no fragment names the key and goes straight to
//! the base: it never touches the fragment list or a fragment, each a cache miss.
//!
//! A leaf holds at most `consolidate_after` fragments (8 by default); under random writes
//! each holds one or two ops, so a page's filter has about 14 of 64 bits set, and a key no
//! fragment names still passes it about one time in 21. Fragments with many ops fill the
//! filter and then skip nothing, which is no worse than having none.

use super::node;

/// The two bits `key` sets in a filter.
pub(crate) fn key_bits(key: &[u8]) -> u64 {
    let hash = hash(key);
    (1 << (hash & 63)) | (1 << ((hash >> 6) & 63))
}

/// A 64-bit hash of `key`: eight bytes at a time, multiplied and rotated in, then mixed so
/// that the low twelve bits, which pick the filter bits, depend on every input byte.
/// Not for anything adversarial: a collision costs a look at the fragments, nothing more.
fn hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let (words, tail) = key.as_chunks::<8>();
    let last = node::padded(tail);
    let mut hash = u64::try_from(key.len()).unwrap_or(u64::MAX);
    for word in words.iter().chain([&last]) {
        hash = (hash.rotate_left(23) ^ u64::from_le_bytes(*word)).wrapping_mul(K);
    }
    // The finalizer of MurmurHash3's 64-bit variant.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sets_one_or_two_bits_and_the_same_ones_each_time() {
        for key in [&b""[..], b"a", b"12345678", b"123456789", &[0xff; 40]] {
            let bits = key_bits(key);
            assert!((1..=2).contains(&bits.count_ones()), "{key:?}");
            assert_eq!(bits, key_bits(key));
        }
    }

    #[test]
    fn keys_that_differ_in_one_byte_spread_over_the_bits() {
        // Keys sharing a long prefix (as a user's ids do) must not pile onto a few filter
        // bits, or a leaf's filter would pass every key of the leaf. 4,096 keys set 8,192
        // bits, 128 per bit on average.
        let mut hits = [0u32; 64];
        let mut same_as_neighbour = 0;
        let mut previous = 0;
        for i in 0..4096u32 {
            let mut key = *b"user:00000000000000000000";
            key[21..].copy_from_slice(&i.to_be_bytes());
            let bits = key_bits(&key);
            (0..64).filter(|b| bits & (1 << b) != 0).for_each(|b| hits[b] += 1);
            same_as_neighbour += usize::from(bits == previous);
            previous = bits;
        }
        let (fewest, most) = (hits.iter().min(), hits.iter().max());
        assert!(fewest >= Some(&64) && most <= Some(&192), "{hits:?}");
        assert!(same_as_neighbour < 16, "{same_as_neighbour} keys had their neighbour's bits");
    }
}
