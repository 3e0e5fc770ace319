//! How values are stored: a [`Codec`] turns them into bytes and back, behind a small
//! header that names the codec and the schema version.
//!
//! Every stored value starts with 3 bytes: the codec's id, then the schema version as a
//! big-endian `u16`. A reader can then tell values of a later format, or of an earlier
//! version of the user's type, from garbage, and say which it found.

use serde::{Serialize, de::DeserializeOwned};

/// Turns values into bytes and back. [`Bincode`] is the default; implement this to store
/// a collection's values another way.
pub trait Codec: Send + Sync + 'static {
    /// The codec's id, written in the header of every value it stores and in the catalog.
    /// It must never change once data is written; ids up to 15 are Grove's.
    const ID: u8;
    /// A name for error messages.
    const NAME: &'static str;

    /// Appends `value`'s bytes to `out`.
    ///
    /// # Errors
    /// The codec's message, if the value cannot be encoded.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String>;

    /// Reads a value from `bytes`, all of which belong to it.
    ///
    /// # Errors
    /// The codec's message, if the bytes are not a `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String>;
}

/// bincode 2 in serde mode, with its standard configuration (variable-length integers,
/// little-endian): compact and fast. The default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const ID: u8 = 1;
    const NAME: &'static str = "bincode";

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| e.to_string())?;
        if read != bytes.len() {
            return Err(format!("{} bytes left after the value", bytes.len() - read));
        }
        Ok(value)
    }
}

/// Bytes of the header before every stored value.
pub(crate) const HEADER: usize = 3;

/// A value's bytes as stored: the header, then the codec's bytes.
pub(crate) fn encode<C: Codec, T: Serialize + ?Sized>(
    value: &T,
    version: u16,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(32);
    out.push(C::ID);
    out.extend_from_slice(&version.to_be_bytes());
    C::encode(value, &mut out)?;
    Ok(out)
}

/// Reads a stored value written by codec `C` at schema version `version`.
pub(crate) fn decode<C: Codec, T: DeserializeOwned>(
    bytes: &[u8],
    version: u16,
) -> Result<T, String> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER>() else {
        return Err(format!("{} bytes: shorter than a value's header", bytes.len()));
    };
    let [codec, high, low] = *header;
    if codec != C::ID {
        return Err(format!("written by codec {codec}, read with {} ({})", C::NAME, C::ID));
    }
    let stored = u16::from_be_bytes([high, low]);
    if stored != version {
        return Err(format!("written at schema version {stored}, read as version {version}"));
    }
    C::decode(body)
}

#[cfg(test)]
mod tests {
    use super::{Bincode, decode, encode};

    #[test]
    fn values_round_trip_behind_their_header() {
        let bytes = encode::<Bincode, _>(&("ann", 7u64, vec![1.5f32]), 2).unwrap();
        assert_eq!(&bytes[..3], &[1, 0, 2]);
        let back: (String, u64, Vec<f32>) = decode::<Bincode, _>(&bytes, 2).unwrap();
        assert_eq!(back, ("ann".to_string(), 7, vec![1.5]));
    }

    #[test]
    fn foreign_bytes_are_errors_that_say_what_was_found() {
        let bytes = encode::<Bincode, _>(&7u32, 0).unwrap();
        assert!(decode::<Bincode, u32>(&bytes, 1).unwrap_err().contains("version 0"));
        assert!(decode::<Bincode, u32>(&[9, 0, 0, 1], 0).unwrap_err().contains("codec 9"));
        assert!(decode::<Bincode, u32>(&[1], 0).unwrap_err().contains("header"));
        let long = encode::<Bincode, _>(&(1u8, 2u8), 0).unwrap();
        assert!(decode::<Bincode, u8>(&long, 0).unwrap_err().contains("left"));
        assert!(decode::<Bincode, String>(&[1, 0, 0, 5, b'a'], 0).is_err());
    }
}
