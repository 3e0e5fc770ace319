//! [`Bytes`]: the owned, cheap-to-clone byte string the tree hands out for keys and values.

use std::{borrow::Borrow, fmt, ops::Deref, sync::Arc};

/// An immutable byte string, shared: cloning it copies a pointer, not the bytes.
///
/// It dereferences to `[u8]` and compares with byte slices, vectors and arrays. It may be a
/// slice of a larger shared buffer: an iterator copies one leaf's keys and values into one
/// allocation and hands out slices of it, so holding one entry of a scan keeps that leaf's
/// copy (a few KiB) alive. Copy it (`Bytes::copy_from(&b)`) to keep only its own bytes.
///
/// # Example
/// ```
/// use grove_engine::Bytes;
///
/// let value = Bytes::from(&b"hello"[..]);
/// let copy = value.clone(); // no copy of the bytes
/// assert_eq!(copy, b"hello");
/// assert_eq!(&*value, b"hello");
/// ```
#[derive(Clone, Default)]
pub struct Bytes {
    buffer: Arc<[u8]>,
    /// Where this string lies in `buffer`: `start..end`, within it.
    start: usize,
    end: usize,
}

impl Bytes {
    /// A copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Bytes {
        Bytes::whole(Arc::from(bytes))
    }

    fn whole(buffer: Arc<[u8]>) -> Bytes {
        let end = buffer.len();
        Bytes { buffer, start: 0, end }
    }

    /// `range` of `buffer`, sharing it; `None` if the range is not within it.
    pub(crate) fn slice_of(buffer: &Arc<[u8]>, range: std::ops::Range<usize>) -> Option<Bytes> {
        buffer.get(range.clone())?;
        Some(Bytes { buffer: Arc::clone(buffer), start: range.start, end: range.end })
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // `start..end` was checked against the buffer when the value was made.
        self.buffer.get(self.start..self.end).unwrap_or_default()
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Bytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    fn cmp(&self, other: &Bytes) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::hash::Hash for Bytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Bytes {
        Bytes::copy_from(bytes)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Bytes {
        Bytes::whole(Arc::from(bytes))
    }
}

impl From<&str> for Bytes {
    fn from(text: &str) -> Bytes {
        Bytes::copy_from(text.as_bytes())
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(bytes: &[u8; N]) -> Bytes {
        Bytes::copy_from(bytes)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Vec<u8> {
        bytes.to_vec()
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for Bytes {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl PartialEq<Vec<u8>> for Bytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Bytes {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Bytes {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Bytes {
    /// Printable ASCII as text, other bytes escaped: `b"key\x00"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.escape_ascii())
    }
}

/// A bound on owned keys as a bound on byte slices.
pub(crate) fn slices(bound: &std::ops::Bound<Bytes>) -> std::ops::Bound<&[u8]> {
    bound.as_ref().map(|key| &key[..])
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeSet, HashSet},
        sync::Arc,
    };

    use super::Bytes;

    #[test]
    fn a_slice_of_a_shared_buffer_behaves_like_its_own_copy() {
        let buffer: Arc<[u8]> = Arc::from(&b"keyvalueother"[..]);
        let key = Bytes::slice_of(&buffer, 0..3).unwrap();
        let value = Bytes::slice_of(&buffer, 3..8).unwrap();
        assert_eq!(key, Bytes::copy_from(b"key"));
        assert_eq!(&*value, b"value");
        assert_eq!(format!("{value:?}"), "b\"value\"");
        assert!(key < value && value > Bytes::copy_from(b"other"));
        let hashed: HashSet<Bytes> = [key.clone(), Bytes::copy_from(b"key")].into();
        assert_eq!(hashed.len(), 1, "a slice hashes as its bytes");
        let ordered: BTreeSet<Bytes> = [value.clone(), key.clone()].into();
        assert_eq!(ordered.first(), Some(&key));
        assert!(Bytes::slice_of(&buffer, 10..20).is_none(), "a range past the buffer");
        assert_eq!(Vec::from(value), b"value");
    }
}
