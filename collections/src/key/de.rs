//! The key codec's deserializer (the format is in `key/mod.rs`). The format does not
//! describe itself: the key type's `Deserialize` says what comes next.

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, SeqAccess, VariantAccess, Visitor,
};

use super::KeyError;

/// Reads one key from `input`, consuming what it reads.
pub(super) struct KeyDeserializer<'de> {
    pub(super) input: &'de [u8],
}

impl KeyDeserializer<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let (head, rest) = self.input.split_first_chunk::<N>().ok_or(KeyError::Truncated)?;
        self.input = rest;
        Ok(*head)
    }

    fn byte(&mut self) -> Result<u8, KeyError> {
        self.take::<1>().map(|[byte]| byte)
    }

    /// A signed integer's bytes, with the sign bit flipped back.
    fn signed<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let mut bytes = self.take::<N>()?;
        if let Some(first) = bytes.first_mut() {
            *first ^= 0x80;
        }
        Ok(bytes)
    }

    /// A string's or byte string's bytes, unescaped, up to and past its terminator.
    fn escaped(&mut self) -> Result<Vec<u8>, KeyError> {
        let mut bytes = Vec::new();
        loop {
            let byte = self.byte()?;
            if byte != 0 {
                bytes.push(byte);
                continue;
            }
            match self.byte()? {
                0 => return Ok(bytes),
                0xFF => bytes.push(0),
                _ => return Err(KeyError::Invalid { expected: "00 or FF after a 00 in a string" }),
            }
        }
    }
}

fn float_from_u32(bits: u32) -> f32 {
    f32::from_bits(if bits >> 31 == 1 { bits & !(1 << 31) } else { !bits })
}

fn float_from_u64(bits: u64) -> f64 {
    f64::from_bits(if bits >> 63 == 1 { bits & !(1 << 63) } else { !bits })
}

impl<'de> Deserializer<'de> for &mut KeyDeserializer<'de> {
    type Error = KeyError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, KeyError> {
        Err(KeyError::Unsupported { shape: "a type that needs a self-describing format" })
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(KeyError::Invalid { expected: "a bool (00 or 01)" }),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_i8(i8::from_be_bytes(self.signed()?))
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_i16(i16::from_be_bytes(self.signed()?))
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_i32(i32::from_be_bytes(self.signed()?))
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_i64(i64::from_be_bytes(self.signed()?))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_i128(i128::from_be_bytes(self.signed()?))
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_u8(self.byte()?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_u16(u16::from_be_bytes(self.take()?))
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_u32(u32::from_be_bytes(self.take()?))
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_u64(u64::from_be_bytes(self.take()?))
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_u128(u128::from_be_bytes(self.take()?))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_f32(float_from_u32(u32::from_be_bytes(self.take()?)))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_f64(float_from_u64(u64::from_be_bytes(self.take()?)))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        let code = u32::from_be_bytes(self.take()?);
        let c = char::from_u32(code).ok_or(KeyError::Invalid { expected: "a char" })?;
        visitor.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        let bytes = self.escaped()?;
        let string =
            String::from_utf8(bytes).map_err(|_| KeyError::Invalid { expected: "UTF-8" })?;
        visitor.visit_string(string)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_byte_buf(self.escaped()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            _ => Err(KeyError::Invalid { expected: "an Option (00 or 01)" }),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_seq(Elements { de: self, left: None })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_seq(Elements { de: self, left: Some(len) })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_seq(Elements { de: self, left: Some(len) })
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, KeyError> {
        Err(KeyError::Unsupported { shape: "a map" })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_seq(Elements { de: self, left: Some(fields.len()) })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        self.deserialize_u32(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, KeyError> {
        Err(KeyError::Unsupported { shape: "a type that skips unknown fields" })
    }
}

/// The elements of a sequence (`left: None`, each after a marker) or the fields of a
/// tuple or struct (`left: Some(n)`, one after another).
struct Elements<'a, 'de> {
    de: &'a mut KeyDeserializer<'de>,
    left: Option<usize>,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = KeyError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, KeyError> {
        match &mut self.left {
            Some(0) => return Ok(None),
            Some(left) => *left -= 1,
            None => match self.de.byte()? {
                0 => return Ok(None),
                1 => {}
                _ => return Err(KeyError::Invalid { expected: "a sequence marker (00 or 01)" }),
            },
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.left
    }
}

impl<'de> EnumAccess<'de> for &mut KeyDeserializer<'de> {
    type Error = KeyError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), KeyError> {
        let index = u32::from_be_bytes(self.take()?);
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for &mut KeyDeserializer<'de> {
    type Error = KeyError;

    fn unit_variant(self) -> Result<(), KeyError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, KeyError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_seq(Elements { de: self, left: Some(len) })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_seq(Elements { de: self, left: Some(fields.len()) })
    }
}
