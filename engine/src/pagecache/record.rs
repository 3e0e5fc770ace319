//! The page cache's log records: what each kind means and how its body is laid out.
//!
//! Every body starts with the same 16 bytes, little-endian:
//!
//! ```text
//! 0   page id   u64
//! 8   version   u64   the page's version after this record
//! 16  payload         image (replace, base), fragment (link), nothing (free)
//! ```
//!
//! In the delta stream the kinds are updates, replayed at recovery in LSN order: a record
//! applies to a page exactly when its version is one more than the page's. In the base
//! stream the only kind is [`BASE`]: an image the page cache wrote on its own (a
//! consolidation or a relocation), found only through a checkpoint or the page table.

use crate::{
    error::{Error, Result},
    ids::PageId,
    log::RecordKind,
};

/// Delta stream: a whole new image for the page (also how a page is allocated).
pub(crate) const REPLACE: RecordKind = kind(16);
/// Delta stream: a fragment linked onto the page.
pub(crate) const LINK: RecordKind = kind(17);
/// Delta stream: the page is freed; its id may be reused.
pub(crate) const FREE: RecordKind = kind(18);
/// Base stream: a consolidated or relocated image; the version is unchanged by it.
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

/// Encodes a record body.
pub(crate) fn encode(id: PageId, version: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(PREFIX_LEN + payload.len());
    body.extend_from_slice(&id.get().to_le_bytes());
    body.extend_from_slice(&version.to_le_bytes());
    body.extend_from_slice(payload);
    body
}

/// A decoded record body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Body<'a> {
    pub(crate) id: PageId,
    pub(crate) version: u64,
    pub(crate) payload: &'a [u8],
}

/// Decodes a record body; `what` names the record in the error.
pub(crate) fn decode<'a>(body: &'a [u8], what: impl FnOnce() -> String) -> Result<Body<'a>> {
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
}
