//! The key codec's serializer (the format is in `key/mod.rs`).

use serde::{
    Serialize, Serializer,
    ser::{
        SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
        SerializeTupleStruct, SerializeTupleVariant,
    },
};

use super::KeyError;

/// Writes one key's bytes to `out`.
pub(super) struct KeySerializer<'a> {
    pub(super) out: &'a mut Vec<u8>,
}

/// Writes a string or byte string: each `00` as `00 FF`, then the terminator `00 00`.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        out.push(byte);
        if byte == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Writes a signed integer's big-endian bytes with the sign bit flipped.
fn signed<const N: usize>(out: &mut Vec<u8>, mut bytes: [u8; N]) {
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x80;
    }
    out.extend_from_slice(&bytes);
}

/// A float's bits, arranged so that their unsigned order is `total_cmp`'s.
fn float_bits_u32(value: f32) -> u32 {
    let bits = value.to_bits();
    if bits >> 31 == 1 { !bits } else { bits | (1 << 31) }
}

fn float_bits_u64(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

/// One element of a sequence: the marker that says an element follows.
const ELEMENT: u8 = 1;
/// The end of a sequence.
const END: u8 = 0;

impl<'a> Serializer for KeySerializer<'a> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.out.push(u8::from(v));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        signed(self.out, v.to_be_bytes());
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        signed(self.out, v.to_be_bytes());
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        signed(self.out, v.to_be_bytes());
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        signed(self.out, v.to_be_bytes());
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        signed(self.out, v.to_be_bytes());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.out.push(v);
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.out.extend_from_slice(&float_bits_u32(v).to_be_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.out.extend_from_slice(&float_bits_u64(v).to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.out.extend_from_slice(&u32::from(v).to_be_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        escaped(self.out, v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        escaped(self.out, v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), KeyError> {
        self.out.push(0);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.out.push(1);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), KeyError> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyError> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), KeyError> {
        self.serialize_u32(variant_index)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.out.extend_from_slice(&variant_index.to_be_bytes());
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, KeyError> {
        Ok(Compound { out: self.out, sequence: true })
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, KeyError> {
        Ok(Compound { out: self.out, sequence: false })
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        Ok(Compound { out: self.out, sequence: false })
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        self.out.extend_from_slice(&variant_index.to_be_bytes());
        Ok(Compound { out: self.out, sequence: false })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, KeyError> {
        Err(KeyError::Unsupported { shape: "a map" })
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>, KeyError> {
        Ok(Compound { out: self.out, sequence: false })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        self.out.extend_from_slice(&variant_index.to_be_bytes());
        Ok(Compound { out: self.out, sequence: false })
    }
}

/// The fields of a tuple, struct or variant (one after another), or the elements of a
/// sequence (each after a marker, then an end marker).
pub(super) struct Compound<'a> {
    out: &'a mut Vec<u8>,
    sequence: bool,
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        if self.sequence {
            self.out.push(ELEMENT);
        }
        value.serialize(KeySerializer { out: self.out })
    }

    fn finish(self) -> Result<(), KeyError> {
        if self.sequence {
            self.out.push(END);
        }
        Ok(())
    }
}

impl SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), KeyError> {
        // A skipped field would shift every field after it: the decoder could not know.
        let _ = key;
        Err(KeyError::Unsupported { shape: "a struct with a skipped field" })
    }

    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), KeyError> {
        let _ = key;
        Err(KeyError::Unsupported { shape: "a struct with a skipped field" })
    }

    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

/// Never built (`serialize_map` refuses), but the `Serializer` trait needs the type.
impl SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, _key: &T) -> Result<(), KeyError> {
        Err(KeyError::Unsupported { shape: "a map" })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, _value: &T) -> Result<(), KeyError> {
        Err(KeyError::Unsupported { shape: "a map" })
    }

    fn end(self) -> Result<(), KeyError> {
        Err(KeyError::Unsupported { shape: "a map" })
    }
}
