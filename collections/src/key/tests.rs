//! The key codec's law, checked by property tests for every supported shape, and its
//! bytes, frozen by a snapshot.

use std::{cmp::Ordering, collections::BTreeMap, fmt::Debug};

use proptest::{prelude::*, test_runner::TestCaseError};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{KeyError, from_key, to_key};

/// `a` and `b` order as their encodings do, and each decodes back to itself.
fn law<T>(a: &T, b: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + Ord + Debug,
{
    let (ka, kb) = (to_key(a).map_err(fail)?, to_key(b).map_err(fail)?);
    prop_assert_eq!(a.cmp(b), ka.cmp(&kb), "{:?} {:?} -> {:x?} {:x?}", a, b, ka, kb);
    prop_assert_eq!(&from_key::<T>(&ka).map_err(fail)?, a);
    prop_assert_eq!(&from_key::<T>(&kb).map_err(fail)?, b);
    Ok(())
}

fn fail(error: KeyError) -> TestCaseError {
    TestCaseError::fail(error.to_string())
}

/// Strings from a small alphabet with zero bytes, so that prefixes and escapes collide.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!['\0', 'a', 'b', '\u{ff}', 'é', '\u{1}']), 0..6)
        .prop_map(|chars| chars.into_iter().collect())
}

/// A byte string that serializes as one (not as a sequence of `u8`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ByteString(Vec<u8>);

impl Serialize for ByteString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = ByteString;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteString, E> {
                Ok(ByteString(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteString, E> {
                Ok(ByteString(v.to_vec()))
            }
        }
        deserializer.deserialize_byte_buf(Visit)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Account {
    region: u8,
    name: String,
    balance: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Meters(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Level {
    Low,
    Mid,
    High,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Event {
    Start,
    Move(i16, i16),
    Named { name: String, at: Option<u32> },
    Wrapped(Meters),
}

fn account() -> impl Strategy<Value = Account> {
    (any::<u8>(), text(), any::<i64>()).prop_map(|(region, name, balance)| Account {
        region: region % 3,
        name,
        balance,
    })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Start),
        (any::<i16>(), any::<i16>()).prop_map(|(x, y)| Event::Move(x, y)),
        (text(), any::<Option<u32>>()).prop_map(|(name, at)| Event::Named { name, at }),
        any::<u32>().prop_map(|m| Event::Wrapped(Meters(m))),
    ]
}

fn level() -> impl Strategy<Value = Level> {
    prop::sample::select(vec![Level::Low, Level::Mid, Level::High])
}

/// Integers near zero and at the extremes, as well as anywhere.
fn signed() -> impl Strategy<Value = i64> {
    prop_oneof![-3i64..3, Just(i64::MIN), Just(i64::MAX), any::<i64>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn scalars_keep_their_order(
        a in any::<(bool, u8, u16, u32)>(), b in any::<(bool, u8, u16, u32)>(),
        c in any::<(u64, u128, char)>(), d in any::<(u64, u128, char)>(),
    ) {
        law(&a, &b)?;
        law(&c, &d)?;
        law(&a.0, &b.0)?;
        law(&c.2, &d.2)?;
    }

    #[test]
    fn signed_integers_keep_their_order_across_zero(
        a in signed(), b in signed(), c in any::<(i8, i16, i32, i128)>(), d in any::<(i8, i16, i32, i128)>(),
    ) {
        law(&a, &b)?;
        law(&c, &d)?;
        #[expect(clippy::cast_possible_truncation, reason = "any i32 will do")]
        let (x, y) = (a as i32, b as i32);
        law(&x, &y)?;
    }

    #[test]
    fn floats_keep_their_total_order(
        a in prop_oneof![any::<f64>(), Just(-0.0), Just(0.0), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(f64::NAN), Just(-f64::NAN), Just(f64::MIN_POSITIVE), Just(-f64::MIN_POSITIVE)],
        b in prop_oneof![any::<f64>(), Just(-0.0), Just(0.0), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-1.5)],
        c in any::<f32>(), d in prop_oneof![any::<f32>(), Just(-0.0f32), Just(f32::NAN)],
    ) {
        let (ka, kb) = (to_key(&a).map_err(fail)?, to_key(&b).map_err(fail)?);
        prop_assert_eq!(a.total_cmp(&b), ka.cmp(&kb));
        prop_assert_eq!(from_key::<f64>(&ka).map_err(fail)?.to_bits(), a.to_bits());
        let (kc, kd) = (to_key(&c).map_err(fail)?, to_key(&d).map_err(fail)?);
        prop_assert_eq!(c.total_cmp(&d), kc.cmp(&kd));
        prop_assert_eq!(from_key::<f32>(&kd).map_err(fail)?.to_bits(), d.to_bits());
    }

    #[test]
    fn strings_and_byte_strings_keep_their_order(
        a in text(), b in text(),
        c in prop::collection::vec(prop::sample::select(vec![0u8, 1, 0xFF, b'a']), 0..6),
        d in prop::collection::vec(prop::sample::select(vec![0u8, 1, 0xFF, b'a']), 0..6),
    ) {
        law(&a, &b)?;
        law(&ByteString(c.clone()), &ByteString(d.clone()))?;
        law(&c, &d)?;
    }

    #[test]
    fn options_and_unit_keep_their_order(
        a in any::<Option<i32>>(), b in any::<Option<i32>>(),
        c in any::<Option<Option<u8>>>(), d in any::<Option<Option<u8>>>(),
        e in prop::option::of(text()), f in prop::option::of(text()),
    ) {
        law(&a, &b)?;
        law(&c, &d)?;
        law(&e, &f)?;
        law(&(), &())?;
    }

    #[test]
    fn tuples_nested_and_flat_keep_their_order(
        a in (text(), signed()), b in (text(), signed()),
        c in ((any::<u8>(), text()), prop::option::of(any::<i16>()), any::<bool>()),
        d in ((any::<u8>(), text()), prop::option::of(any::<i16>()), any::<bool>()),
        e in any::<[u16; 3]>(), f in any::<[u16; 3]>(),
    ) {
        law(&a, &b)?;
        law(&c, &d)?;
        law(&e, &f)?;
    }

    #[test]
    fn structs_newtypes_and_enums_keep_their_order(
        a in account(), b in account(),
        c in event(), d in event(),
        e in level(), f in level(),
        g in (level(), any::<u32>()), h in (level(), any::<u32>()),
    ) {
        law(&a, &b)?;
        law(&c, &d)?;
        law(&e, &f)?;
        law(&g, &h)?;
        law(&Meters(g.1), &Meters(h.1))?;
    }

    #[test]
    fn sequences_keep_their_order(
        a in prop::collection::vec(text(), 0..4), b in prop::collection::vec(text(), 0..4),
        c in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3), 0..3),
        d in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3), 0..3),
        e in prop::collection::btree_set(any::<i8>(), 0..4), f in prop::collection::btree_set(any::<i8>(), 0..4),
    ) {
        law(&a, &b)?;
        law(&c, &d)?;
        law(&e, &f)?;
    }

    #[test]
    fn uuids_keep_their_order(a in any::<u128>(), b in any::<u128>()) {
        law(&uuid::Uuid::from_u128(a), &uuid::Uuid::from_u128(b))?;
    }

    #[test]
    fn a_tuple_starts_with_the_bytes_of_its_leading_fields(a in (text(), any::<u32>(), text())) {
        let whole = to_key(&a).map_err(fail)?;
        prop_assert!(whole.starts_with(&to_key(&a.0).map_err(fail)?));
        prop_assert!(whole.starts_with(&to_key(&(&a.0, a.1)).map_err(fail)?));
    }
}

#[test]
fn uuid_v7_keys_sort_by_time() {
    let first = uuid::Uuid::now_v7();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let second = uuid::Uuid::now_v7();
    assert_eq!(to_key(&first).unwrap().cmp(&to_key(&second).unwrap()), Ordering::Less);
}

#[test]
fn shapes_that_cannot_keep_the_order_are_errors() {
    let map: BTreeMap<u8, u8> = BTreeMap::from([(1, 2)]);
    assert_eq!(to_key(&map), Err(KeyError::Unsupported { shape: "a map" }));
    assert!(matches!(from_key::<BTreeMap<u8, u8>>(&[]), Err(KeyError::Unsupported { .. })));

    #[derive(Serialize, Deserialize, Debug)]
    #[serde(untagged)]
    enum Loose {
        Number(u32),
        Text(String),
    }
    let bytes = to_key(&Loose::Number(3)).unwrap();
    assert!(matches!(from_key::<Loose>(&bytes), Err(KeyError::Unsupported { .. })));

    #[derive(Serialize)]
    struct Sometimes {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<u8>,
    }
    assert!(matches!(to_key(&Sometimes { note: None }), Err(KeyError::Unsupported { .. })));
}

#[test]
fn bytes_of_another_type_are_errors_not_garbage() {
    let key = to_key(&("ann", 7u32)).unwrap();
    assert_eq!(from_key::<(String, u32, u8)>(&key), Err(KeyError::Truncated));
    assert_eq!(from_key::<String>(&key), Err(KeyError::TrailingBytes { count: 4 }));
    assert!(matches!(from_key::<bool>(&[7]), Err(KeyError::Invalid { .. })));
    assert!(matches!(from_key::<String>(&[b'a', 0, 7]), Err(KeyError::Invalid { .. })));
    assert!(matches!(from_key::<String>(&[0xC3, 0, 0]), Err(KeyError::Invalid { .. })));
    assert!(matches!(from_key::<char>(&[0, 0x11, 0, 0]), Err(KeyError::Invalid { .. })));
    assert!(matches!(from_key::<Level>(&[0, 0, 0, 9]), Err(KeyError::Custom(_))));
}

/// The bytes of the format, frozen: a change here changes every stored key.
#[test]
fn encodings_are_frozen() {
    fn line<T: Serialize + Debug>(value: &T) -> String {
        let hex: Vec<String> = to_key(value).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        format!("{value:?} => {}", hex.join(" "))
    }
    let lines = [
        line(&false),
        line(&true),
        line(&0u8),
        line(&0x1234u16),
        line(&7u64),
        line(&-1i32),
        line(&0i32),
        line(&1i32),
        line(&i64::MIN),
        line(&-0.0f64),
        line(&0.0f64),
        line(&1.5f32),
        line(&-1.5f32),
        line(&'é'),
        line(&""),
        line(&"a\0b"),
        line(&ByteString(vec![0, 0xFF])),
        line(&None::<u8>),
        line(&Some(3u8)),
        line(&()),
        line(&("ann", 7u32)),
        line(&[1u16, 2]),
        line(&vec!["x", "y"]),
        line(&Vec::<u8>::new()),
        line(&Meters(5)),
        line(&Level::High),
        line(&Event::Move(-1, 1)),
        line(&Event::Named { name: "n".into(), at: None }),
        line(&Account { region: 1, name: "b".into(), balance: -2 }),
        line(&uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)),
    ];
    insta::assert_snapshot!(lines.join("\n"));
}
