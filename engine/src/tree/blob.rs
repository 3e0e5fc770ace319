//! Values stored out of line: a value longer than the tree's threshold gets a page of its
//! own, and the leaf keeps only the page id and the length.
//!
//! ```text
//! 0   u64     tree id
//! 8   varint  key length, then the key
//!     ...     the value
//! ```
//!
//! The page names its tree and key because a reader may follow a leaf it read a moment
//! ago to a value page that a concurrent overwrite has freed and another write reused:
//! a page that does not name the reader's tree and key is not the value it wants, and
//! the reader reads the leaf again.

use crate::{ids::TreeId, varint};

/// A value page's image.
pub(crate) fn encode(tree: TreeId, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut image = Vec::with_capacity(18 + key.len() + value.len());
    image.extend_from_slice(&tree.get().to_le_bytes());
    varint::put(&mut image, u64::try_from(key.len()).unwrap_or(u64::MAX));
    image.extend_from_slice(key);
    image.extend_from_slice(value);
    image
}

/// The value in `image`, if it is the value page of `key` in `tree`.
pub(crate) fn decode<'a>(image: &'a [u8], tree: TreeId, key: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = image.split_at_checked(8)?;
    if head != tree.get().to_le_bytes() {
        return None;
    }
    let mut at = 0;
    let len = usize::try_from(varint::get(rest, &mut at).ok()?).ok()?;
    let rest = rest.get(at..)?;
    let (stored_key, value) = rest.split_at_checked(len)?;
    (stored_key == key).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_page_answers_only_for_its_tree_and_key() {
        let image = encode(TreeId(7), b"key", b"value");
        assert_eq!(decode(&image, TreeId(7), b"key"), Some(&b"value"[..]));
        assert_eq!(decode(&image, TreeId(8), b"key"), None);
        assert_eq!(decode(&image, TreeId(7), b"kex"), None);
        for len in 0..image.len() {
            assert!(decode(&image[..len], TreeId(7), b"key").is_none_or(|v| v.len() < 5));
        }
    }
}
