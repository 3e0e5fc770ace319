//! The page cache's log records: what each kind means and how its body is laid out.
//!
//! Every body starts with the same 16 bytes, little-endian:
//!
//! ```text
//! 0   page id   u64
//! 8   version   u64   the page's version after this record
//! 16  weigh           delta stream only: how the page's weight changes (below)
//!     payload         image (replace, base), fragment (link), nothing (free)
//! ```
//!
//! `weigh` is a tag byte: 0 keep the owner and weight; 1 add a zigzag varint to the weight;
//! 2 set the owner (varint) and the weight (zigzag varint). A free always leaves weight 0.
//!
//! In the delta stream the kinds are updates, replayed at recovery in LSN order: a record
//! applies to a page exactly when its version is one more than the page's. In the base
//! stream the only kind is [`BASE`]: what the page cache wrote on its own (a consolidated
//! image, or a base or fragment the cleaner moved as it was), found only through a
//! checkpoint or the page table.

use super::{loc::Loc, page::Weigh};
use crate::{
    error::{Error, Result},
    ids::{Lsn, PageId},
    log::RecordKind,
    varint,
};

/// Delta stream: a whole new image for the page (also how a page is allocated).
pub(crate) const REPLACE: RecordKind = kind(16);
/// Delta stream: a fragment linked onto the page.
pub(crate) const LINK: RecordKind = kind(17);
/// Delta stream: the page is freed; its id may be reused.
pub(crate) const FREE: RecordKind = kind(18);
/// Delta stream: a member of a group update (see `group.rs`), replaced image. Applied at
/// recovery only if the group's commit record follows.
pub(crate) const GROUP_REPLACE: RecordKind = kind(19);
/// Delta stream: a member of a group update, linked fragment.
pub(crate) const GROUP_LINK: RecordKind = kind(20);
/// Delta stream: a member of a group update, freed page.
pub(crate) const GROUP_FREE: RecordKind = kind(21);
/// Delta stream: a group's commit record: the LSNs of its members. Its body is a varint
/// count, then each member's LSN as a varint (the first whole, the rest as the
/// difference to the previous one; members are written in increasing LSN order).
pub(crate) const GROUP_COMMIT: RecordKind = kind(22);
/// Base stream: a consolidated image, or a record the cleaner moved (a base or a fragment,
/// as it was); the version is unchanged by it.
pub(crate) const BASE: RecordKind = kind(32);

/// Bytes before the payload.
pub(crate) const PREFIX_LEN: usize = 16;

/// The largest page id a record may name; anything larger is damage, not data.
pub(crate) const MAX_PAGE_ID: u64 = 1 << 40;

const fn kind(n: u8) -> RecordKind {
    match RecordKind::new(n) {
        Some(kind) => kind,
        None => panic!("page cache kinds are user kinds"),
    }
}

/// The bytes of a record body before its payload, built on the stack: a record is
/// reserved as this head and the payload ([`crate::log::Log::reserve_parts`]), so the
/// payload is copied once, into the log's buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    bytes: [u8; HEAD_MAX],
    len: usize,
}

/// The longest head: the prefix, a weight tag and two varints.
const HEAD_MAX: usize = PREFIX_LEN + 1 + 2 * 10;

impl Head {
    /// A base-stream record's head (no weight: the base stream is never replayed).
    pub(crate) fn base(id: PageId, version: u64) -> Head {
        let mut head = Head { bytes: [0; HEAD_MAX], len: 0 };
        head.put(&id.get().to_le_bytes());
        head.put(&version.to_le_bytes());
        head
    }

    /// A delta-stream record's head.
    pub(crate) fn update(id: PageId, version: u64, weigh: Weigh) -> Head {
        let mut head = Head::base(id, version);
        match weigh {
            Weigh::Keep => head.put(&[WEIGH_KEEP]),
            Weigh::Add(delta) => {
                head.put(&[WEIGH_ADD]);
                head.put_varint(zigzag(delta));
            }
            Weigh::Set { owner, weight } => {
                head.put(&[WEIGH_SET]);
                head.put_varint(owner);
                head.put_varint(zigzag(weight));
            }
        }
        head
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Appends `bytes`; a head never outgrows `HEAD_MAX` (what it holds is fixed above).
    fn put(&mut self, bytes: &[u8]) {
        if let Some(room) = self.bytes.get_mut(self.len..self.len + bytes.len()) {
            room.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    fn put_varint(&mut self, value: u64) {
        let (bytes, len) = varint::encode(value);
        self.put(bytes.get(..len).unwrap_or_default());
    }
}

/// Decodes a delta-stream record body: the body, and how it changes the page's weight.
pub(crate) fn decode_update<'a>(
    body: &'a [u8],
    what: impl Fn() -> String,
) -> Result<(Body<'a>, Weigh)> {
    let decoded = decode(body, &what)?;
    let rest = decoded.payload;
    let bad = |(offset, reason): (usize, String)| {
        Error::corruption(what(), u64::try_from(PREFIX_LEN + offset).unwrap_or(u64::MAX), reason)
    };
    let Some((&tag, _)) = rest.split_first() else {
        return Err(bad((0, "the record ends before its weight".into())));
    };
    let mut at = 1;
    let weigh = match tag {
        WEIGH_KEEP => Weigh::Keep,
        WEIGH_ADD => Weigh::Add(unzigzag(varint::get(rest, &mut at).map_err(bad)?)),
        WEIGH_SET => {
            let owner = varint::get(rest, &mut at).map_err(bad)?;
            Weigh::Set { owner, weight: unzigzag(varint::get(rest, &mut at).map_err(bad)?) }
        }
        _ => return Err(bad((0, format!("unknown weight tag {tag}")))),
    };
    Ok((Body { payload: &rest[at..], ..decoded }, weigh))
}

const WEIGH_KEEP: u8 = 0;
const WEIGH_ADD: u8 = 1;
const WEIGH_SET: u8 = 2;

/// Signed to unsigned, small magnitudes small: 0, -1, 1, -2 ... become 0, 1, 2, 3 ...
pub(crate) fn zigzag(value: i64) -> u64 {
    (value << 1 ^ (value >> 63)).cast_unsigned()
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(value: u64) -> i64 {
    (value >> 1).cast_signed() ^ -((value & 1).cast_signed())
}

/// Encodes a base-stream record body (no weight: the base stream is never replayed).
#[cfg(test)]
pub(crate) fn encode(id: PageId, version: u64, payload: &[u8]) -> Vec<u8> {
    [Head::base(id, version).as_bytes(), payload].concat()
}

/// A decoded record body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Body<'a> {
    pub(crate) id: PageId,
    pub(crate) version: u64,
    pub(crate) payload: &'a [u8],
}

/// Decodes a record body; `what` names the record in the error.
pub(crate) fn decode<'a>(body: &'a [u8], what: impl Fn() -> String) -> Result<Body<'a>> {
    let (Some(id), Some(version)) = (read_u64(body, 0), read_u64(body, 8)) else {
        return Err(Error::corruption(
            what(),
            0,
            format!(
                "page record body is {} bytes, shorter than its {PREFIX_LEN}-byte prefix",
                body.len()
            ),
        ));
    };
    if id >= MAX_PAGE_ID {
        return Err(Error::corruption(what(), 0, format!("page id {id} is out of range")));
    }
    if version == 0 {
        return Err(Error::corruption(what(), 8, "page version 0 is never written"));
    }
    Ok(Body { id: PageId(id), version, payload: &body[PREFIX_LEN..] })
}

/// Whether `kind` is a group member's kind, and the single-page kind it acts as.
pub(crate) fn member_as_single(kind: RecordKind) -> Option<RecordKind> {
    match kind {
        GROUP_REPLACE => Some(REPLACE),
        GROUP_LINK => Some(LINK),
        GROUP_FREE => Some(FREE),
        _ => None,
    }
}

/// Encodes a commit record's body.
pub(crate) fn encode_commit(members: &[Loc]) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 + 4 * members.len());
    varint::put(&mut body, u64::try_from(members.len()).unwrap_or(u64::MAX));
    let mut previous = 0;
    for loc in members {
        varint::put(&mut body, loc.lsn.get() - previous);
        previous = loc.lsn.get();
    }
    body
}

/// Decodes a commit record's body into its members' LSNs.
pub(crate) fn decode_commit(body: &[u8], what: impl Fn() -> String) -> Result<Vec<Lsn>> {
    let bad = |(offset, reason): (usize, String)| {
        Error::corruption(what(), u64::try_from(offset).unwrap_or(u64::MAX), reason)
    };
    let mut at = 0;
    let count = varint::get(body, &mut at).map_err(bad)?;
    // Each member takes at least one byte: a count beyond that is damage, not data.
    if count > u64::try_from(body.len()).unwrap_or(u64::MAX) {
        return Err(bad((
            0,
            format!("commit record lists {count} members in {} bytes", body.len()),
        )));
    }
    let mut members = Vec::new();
    let mut lsn = 0u64;
    for _ in 0..count {
        lsn = lsn
            .checked_add(varint::get(body, &mut at).map_err(bad)?)
            .ok_or_else(|| bad((at, "member lsn overflows".into())))?;
        members.push(Lsn(lsn));
    }
    if at != body.len() {
        return Err(bad((at, "trailing bytes after the commit record's members".into())));
    }
    Ok(members)
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at + 8)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_short_ones_are_corruption() {
        let body = encode(PageId(7), 3, b"frag");
        let decoded = decode(&body, || "test".into()).unwrap();
        assert_eq!(decoded, Body { id: PageId(7), version: 3, payload: b"frag" });
        for len in 0..PREFIX_LEN {
            assert!(matches!(decode(&body[..len], || "t".into()), Err(Error::Corruption { .. })));
        }
        let zero = encode(PageId(7), 0, b"");
        assert!(matches!(decode(&zero, || "t".into()), Err(Error::Corruption { .. })));
    }

    #[test]
    fn update_heads_round_trip_at_every_width() {
        let weighs = [
            Weigh::Keep,
            Weigh::Add(-1),
            Weigh::Add(i64::MIN),
            Weigh::Set { owner: u64::MAX, weight: i64::MIN },
            Weigh::Set { owner: 0, weight: i64::MAX },
        ];
        for weigh in weighs {
            let head = Head::update(PageId(MAX_PAGE_ID - 1), u64::MAX, weigh);
            let body = [head.as_bytes(), b"payload"].concat();
            let (decoded, got) = decode_update(&body, || "test".into()).unwrap();
            assert_eq!(got, weigh);
            assert_eq!(
                decoded,
                Body { id: PageId(MAX_PAGE_ID - 1), version: u64::MAX, payload: b"payload" }
            );
        }
    }
}
