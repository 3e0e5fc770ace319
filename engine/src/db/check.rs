//! [`Db::check`](super::Db::check): the page cache's check, then every tree's invariants.

use crate::{
    error::{Error, Result},
    ids::PageId,
    pagecache::{CheckReport, PageCache},
    tree::{
        Tree,
        node::{Entry, Node, Value},
        walk,
    },
};

/// What [`Db::check`](super::Db::check) found (everything it checked was sound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbCheckReport {
    /// The page cache's report: pages and records read back.
    pub pages: CheckReport,
    /// Trees checked, the catalog included.
    pub trees: u64,
    /// Tree nodes checked.
    pub nodes: u64,
    /// Entries in every tree but the catalog.
    pub entries: u64,
}

pub(crate) fn check(cache: &PageCache, catalog: &Tree) -> Result<DbCheckReport> {
    let pages = cache.check()?;
    let mut report = DbCheckReport { pages, ..DbCheckReport::default() };
    check_tree(cache, catalog, &mut report)?;
    report.entries = 0;
    for entry in catalog.iter() {
        let (name, value) = entry?;
        let tree = catalog_tree(catalog, &name, &value)?;
        check_tree(cache, &tree, &mut report)?;
    }
    Ok(report)
}

fn catalog_tree(catalog: &Tree, name: &[u8], value: &[u8]) -> Result<Tree> {
    let (id, root) = super::handle::decode_entry(name, &Value::Inline(value.to_vec()))?;
    Ok(Tree::new(catalog.inner.shared.clone(), id, root, name.into()))
}

/// Checks one tree: levels, fences, order, right links, and that every leaf is reachable
/// both from its parent and from its left neighbour.
fn check_tree(cache: &PageCache, tree: &Tree, report: &mut DbCheckReport) -> Result<()> {
    report.trees += 1;
    let before = report.entries;
    check_nodes(cache, tree, report)?;
    let counted = report.entries - before;
    let kept = u64::try_from(tree.len()?).unwrap_or(u64::MAX);
    if counted != kept {
        return Err(Error::Inconsistent(format!(
            "{:?} ({}): {counted} entries in its leaves, but its length is {kept}",
            tree.name(),
            tree.inner.id
        )));
    }
    Ok(())
}

/// The tree's nodes, level by level (`check_tree`).
fn check_nodes(cache: &PageCache, tree: &Tree, report: &mut DbCheckReport) -> Result<()> {
    let fail = |id: PageId, what: String| {
        Error::Inconsistent(format!("{:?} ({}), {id}: {what}", tree.name(), tree.inner.id))
    };
    let root = walk::read_page(cache, tree.inner.root)?.materialize()?;
    if !root.header.low.is_empty() || root.header.high.is_some() || root.header.right.is_some() {
        return Err(fail(
            tree.inner.root,
            "the root must cover every key and have no right link".into(),
        ));
    }
    // Breadth first, one level at a time: each level's nodes in key order.
    let mut level: Vec<(PageId, Node)> = vec![(tree.inner.root, root)];
    loop {
        let mut below: Vec<(PageId, Node)> = Vec::new();
        for (i, (id, node)) in level.iter().enumerate() {
            report.nodes += 1;
            if node.header.tree != tree.inner.id {
                return Err(fail(*id, format!("belongs to {}", node.header.tree)));
            }
            let next = level.get(i + 1);
            if node.header.right != next.map(|(id, _)| *id) {
                return Err(fail(
                    *id,
                    format!(
                        "right link {:?}, next node {:?}",
                        node.header.right,
                        next.map(|n| n.0)
                    ),
                ));
            }
            if let Some((_, next)) = next
                && node.header.high.as_ref() != Some(&next.header.low)
            {
                return Err(fail(*id, "high fence differs from the next node's low fence".into()));
            }
            let keys: Vec<&Vec<u8>> = node.entries.iter().map(|(k, _)| k).collect();
            if keys.windows(2).any(|w| w[0] >= w[1]) {
                return Err(fail(*id, "keys out of order".into()));
            }
            if !keys.iter().all(|k| node.covers(k)) {
                return Err(fail(*id, "a key outside the fences".into()));
            }
            if node.is_leaf() {
                report.entries += u64::try_from(node.entries.len()).unwrap_or(u64::MAX);
                for (_, entry) in &node.entries {
                    match entry {
                        Entry::Value(Value::Blob { page, .. }) => {
                            walk::read_page(cache, *page)?;
                        }
                        Entry::Value(Value::Inline(_)) => {}
                        Entry::Child(_) => return Err(fail(*id, "a leaf with a child".into())),
                    }
                }
                continue;
            }
            if node.entries.first().map(|(k, _)| k) != Some(&node.header.low) {
                return Err(fail(*id, "an index node's first key is not its low fence".into()));
            }
            for (j, (key, entry)) in node.entries.iter().enumerate() {
                let Entry::Child(child) = entry else {
                    return Err(fail(*id, "an index node with a value".into()));
                };
                let child_node = walk::read_page(cache, *child)?.materialize()?;
                let high = node.entries.get(j + 1).map(|(k, _)| k).or(node.header.high.as_ref());
                if child_node.header.level + 1 != node.header.level
                    || &child_node.header.low != key
                    || child_node.header.high.as_ref() != high
                {
                    return Err(fail(*child, format!("does not match its entry in {id}")));
                }
                below.push((*child, child_node));
            }
        }
        if below.is_empty() {
            return Ok(());
        }
        level = below;
    }
}
