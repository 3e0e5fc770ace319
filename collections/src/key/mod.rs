//! The key codec: serde types to bytes that sort the way the values do.
//!
//! **The law.** For any two keys `a` and `b` of a supported type, `a.cmp(&b)` equals the
//! order of their encodings as byte strings, and decoding an encoding gives the key back.
//! (Floats have no `Ord`: for them the law is `total_cmp`.) The engine orders keys by
//! their bytes, so a typed map's `range`, `first` and `last` follow the key type's `Ord`.
//!
//! **The format** (also in `docs/format.md`, and frozen by snapshot tests):
//!
//! | shape | bytes |
//! |---|---|
//! | `bool` | `00` or `01` |
//! | unsigned integers | big-endian, fixed width |
//! | signed integers | big-endian, fixed width, sign bit flipped |
//! | `f32`, `f64` | the bits big-endian; negative: every bit flipped, else the sign bit set |
//! | `char` | its code point as a `u32` |
//! | strings, byte strings | each `00` byte written `00 FF`, then `00 00` |
//! | `Option` | `None`: `00`; `Some(x)`: `01` then `x` |
//! | unit, unit structs | nothing |
//! | tuples, arrays, structs, tuple structs | the fields in order, nothing between |
//! | newtype structs | the inner value |
//! | enums | the variant's index as a `u32`, then its fields as a tuple |
//! | sequences (`Vec`, slices, sets) | `01` before each element, then `00` |
//!
//! Every encoding is *self-delimiting*: a decoder knows where it ends without a length. So
//! a tuple's bytes are its fields' bytes one after another, and the keys whose leading
//! fields are given all start with those fields' bytes: a prefix scan of a composite key
//! is a range of the byte order (see [`crate::Map::prefix`]).
//!
//! Shapes that cannot keep the law are errors at the first key encoded or decoded, never a
//! silent misorder: maps (their order is not their entries' order), and types that ask the
//! format to describe itself (`deserialize_any`: untagged enums, `serde_json::Value`,
//! `#[serde(flatten)]`).

mod de;
mod ser;

#[cfg(test)]
mod tests;

use std::{
    fmt,
    ops::{Bound, RangeBounds},
};

use serde::{Serialize, de::DeserializeOwned};

/// Why a key could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key's type has a shape the order-preserving format does not support.
    Unsupported {
        /// What the type asked for ("a map", "a self-describing format"...).
        shape: &'static str,
    },
    /// The bytes end before the key does.
    Truncated,
    /// Bytes left after a whole key: the stored key is of another type.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A byte that the key's type cannot have at that place.
    Invalid {
        /// What was expected.
        expected: &'static str,
    },
    /// The type's own serde code failed.
    Custom(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Unsupported { shape } => write!(
                f,
                "{shape} cannot be a key: its order could not be kept in bytes (use a tuple, \
                 struct, enum, sequence or scalar)"
            ),
            KeyError::Truncated => write!(f, "the key's bytes end early"),
            KeyError::TrailingBytes { count } => {
                write!(f, "{count} bytes left after the key: it was stored as another type")
            }
            KeyError::Invalid { expected } => write!(f, "invalid key bytes: expected {expected}"),
            KeyError::Custom(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl serde::ser::Error for KeyError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        KeyError::Custom(message.to_string())
    }
}

impl serde::de::Error for KeyError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        KeyError::Custom(message.to_string())
    }
}

/// Encodes `key` so that its bytes sort as the key does.
///
/// # Errors
/// [`KeyError::Unsupported`] for a shape that cannot keep the order (a map, say);
/// [`KeyError::Custom`] if the type's `Serialize` fails.
///
/// # Example
/// ```
/// use grove_collections::key::{from_key, to_key};
///
/// let (a, b) = (("ann", -3i32), ("ann", 7i32));
/// assert!(to_key(&a)? < to_key(&b)?);
/// let back: (String, i32) = from_key(&to_key(&a)?)?;
/// assert_eq!(back, ("ann".to_string(), -3));
/// # Ok::<(), grove_collections::key::KeyError>(())
/// ```
pub fn to_key<T: Serialize + ?Sized>(key: &T) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::new();
    key.serialize(ser::KeySerializer { out: &mut out })?;
    Ok(out)
}

/// Appends `key`'s encoding to `out`.
///
/// # Errors
/// As [`to_key`].
pub fn to_key_into<T: Serialize + ?Sized>(key: &T, out: &mut Vec<u8>) -> Result<(), KeyError> {
    key.serialize(ser::KeySerializer { out })
}

/// Decodes a key encoded by [`to_key`]; every byte must belong to it.
///
/// # Errors
/// [`KeyError::Truncated`], [`KeyError::TrailingBytes`] or [`KeyError::Invalid`] for bytes
/// that are not an encoding of a `T`; [`KeyError::Unsupported`] as for [`to_key`].
pub fn from_key<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, KeyError> {
    let mut decoder = de::KeyDeserializer { input: bytes };
    let key = T::deserialize(&mut decoder)?;
    match decoder.input.len() {
        0 => Ok(key),
        count => Err(KeyError::TrailingBytes { count }),
    }
}

/// A range over encoded keys: the bounds' encodings.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The encodings of `range`'s bounds: the same range over the keys' bytes.
///
/// # Errors
/// As [`to_key`], for either bound.
pub fn to_key_range<Q, R>(range: &R) -> Result<KeyRange, KeyError>
where
    Q: Serialize + ?Sized,
    R: RangeBounds<Q> + ?Sized,
{
    let encode = |bound: Bound<&Q>| -> Result<Bound<Vec<u8>>, KeyError> {
        Ok(match bound {
            Bound::Included(key) => Bound::Included(to_key(key)?),
            Bound::Excluded(key) => Bound::Excluded(to_key(key)?),
            Bound::Unbounded => Bound::Unbounded,
        })
    };
    Ok((encode(range.start_bound())?, encode(range.end_bound())?))
}
