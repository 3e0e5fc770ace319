//! The keys and values every engine is given: derived from an index, so no
//! process holds a million keys in memory and every engine sees the same bytes.

/// SplitMix64: a fast, well-mixed function from an index to 64 random bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The shape of the data set, as the flags set it.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub key_bytes: usize,
    pub value_bytes: usize,
}

impl Shape {
    /// Key number `i`: random bytes, so inserts land all over the key space.
    pub fn key(&self, i: u64) -> Vec<u8> {
        fill(self.key_bytes, i.wrapping_mul(2))
    }

    /// The value stored under key `i` by write number `version`: random bytes,
    /// so no engine gains from compressing them.
    pub fn value(&self, i: u64, version: u64) -> Vec<u8> {
        fill(self.value_bytes, mix(i ^ version.rotate_left(32)).wrapping_mul(2) | 1)
    }
}

fn fill(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut n = 0;
    while out.len() < len {
        out.extend_from_slice(&mix(seed.wrapping_add(n << 40)).to_le_bytes());
        n += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::Shape;

    #[test]
    fn keys_are_distinct_and_sized() {
        let shape = Shape { key_bytes: 24, value_bytes: 150 };
        let keys: std::collections::HashSet<_> = (0..100_000).map(|i| shape.key(i)).collect();
        assert_eq!(keys.len(), 100_000);
        assert!(keys.iter().all(|k| k.len() == 24));
        assert_eq!(shape.value(7, 0).len(), 150);
        assert_ne!(shape.value(7, 0), shape.value(7, 1));
    }
}
