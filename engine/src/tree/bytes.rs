//! [`Bytes`]: the owned, cheap-to-clone byte string the tree hands out for keys and values.

use std::{borrow::Borrow, fmt, ops::Deref, sync::Arc};

/// An immutable byte string, shared: cloning it copies a pointer, not the bytes.
///
/// It dereferences to `[u8]` and compares with byte slices, vectors and arrays.
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
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(Arc<[u8]>);

impl Bytes {
    /// A copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Bytes {
        Bytes(Arc::from(bytes))
    }

    /// `a` followed by `b`, in one allocation: a key rebuilt from a node's prefix and suffix.
    pub(crate) fn concat(a: &[u8], b: &[u8]) -> Bytes {
        Bytes(a.iter().chain(b).copied().collect())
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Bytes {
        Bytes::copy_from(bytes)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Bytes {
        Bytes(Arc::from(bytes))
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
        bytes.0.to_vec()
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&[u8]> for Bytes {
    fn eq(&self, other: &&[u8]) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Vec<u8>> for Bytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self.0 == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Bytes {
    fn eq(&self, other: &[u8; N]) -> bool {
        *self.0 == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Bytes {
    fn eq(&self, other: &&[u8; N]) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for Bytes {
    /// Printable ASCII as text, other bytes escaped: `b"key\x00"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}
