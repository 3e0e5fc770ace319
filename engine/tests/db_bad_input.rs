//! The database handle against bad input: a second opener, foreign, newer-format,
//! truncated and damaged directories (typed errors, files left as they were), a
//! directory that already exists with `create_new`, and handles to a dropped tree.

#![expect(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::{collections::BTreeMap, path::Path};

use grove_engine::{Batch, Config, Error};

/// Every file in `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

/// A small database in `dir`, closed.
fn write_sample(dir: &Path) {
    let db = Config::new().path(dir).segment_size(64 << 10).open().unwrap();
    let tree = db.open_tree("t").unwrap();
    for i in 0..2000u32 {
        tree.insert(i.to_be_bytes(), [7u8; 30]).unwrap();
    }
    db.flush().unwrap();
}

#[test]
fn a_second_opener_gets_already_open_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Config::new().path(dir.path()).open().unwrap();
    let second = Config::new().path(dir.path()).open();
    assert!(matches!(second, Err(Error::AlreadyOpen { .. })), "{second:?}");
    drop(db);
    Config::new().path(dir.path()).open().unwrap();
}

#[test]
fn create_new_refuses_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    write_sample(dir.path());
    let result = Config::new().path(dir.path()).create_new(true).open();
    assert!(matches!(result, Err(Error::AlreadyExists { .. })), "{result:?}");
}

#[test]
fn a_foreign_file_is_refused_and_nothing_is_modified() {
    let dir = tempfile::tempdir().unwrap();
    write_sample(dir.path());
    let name = files(dir.path())
        .keys()
        .find(|n| n.starts_with("delta-") && n.ends_with(".seg"))
        .cloned()
        .unwrap();
    std::fs::write(
        dir.path().join(&name),
        b"this is not a grove segment, but it is long enough to have a header",
    )
    .unwrap();
    let before = files(dir.path());
    let result = Config::new().path(dir.path()).open();
    assert!(matches!(result, Err(Error::NotGrove { .. })), "{result:?}");
    assert_eq!(files(dir.path()), before, "a refused open modified the directory");
}

#[test]
fn a_newer_format_is_refused_and_nothing_is_modified() {
    let dir = tempfile::tempdir().unwrap();
    write_sample(dir.path());
    let name = files(dir.path()).keys().find(|n| n.ends_with(".seg")).cloned().unwrap();
    let path = dir.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 2; // the segment header's format version
    std::fs::write(&path, bytes).unwrap();
    let before = files(dir.path());
    let result = Config::new().path(dir.path()).open();
    assert!(matches!(result, Err(Error::UnsupportedVersion { found: 2, .. })), "{result:?}");
    assert_eq!(files(dir.path()), before);
}

#[test]
fn truncated_and_damaged_files_give_typed_errors_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    write_sample(dir.path());
    let pristine = files(dir.path());
    let mut rng = fastrand::Rng::with_seed(11);
    let names: Vec<String> = pristine.keys().filter(|n| *n != "grove.lock").cloned().collect();
    for case in 0..40 {
        // Restore, then damage one file: truncate it or flip a bit.
        for (name, bytes) in &pristine {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let name = &names[rng.usize(..names.len())];
        let path = dir.path().join(name);
        let mut bytes = pristine[name].clone();
        if bytes.is_empty() {
            continue;
        }
        if rng.bool() {
            bytes.truncate(rng.usize(..bytes.len()));
        } else {
            let at = rng.usize(..bytes.len());
            bytes[at] ^= 1 << rng.u8(..8);
        }
        std::fs::write(&path, &bytes).unwrap();
        // Either a typed error, or a database whose every entry is one that was written.
        match Config::new().path(dir.path()).open() {
            Err(error) => assert!(
                matches!(
                    error,
                    Error::Corruption { .. }
                        | Error::NotGrove { .. }
                        | Error::UnsupportedVersion { .. }
                        | Error::MissingSegment { .. }
                ),
                "case {case}, {name}: {error:?}"
            ),
            Ok(db) => {
                let Ok(tree) = db.open_tree("t") else { continue };
                for entry in tree.iter() {
                    let Ok((key, value)) = entry else { break };
                    assert_eq!(key.len(), 4, "case {case}, {name}: a key that was never written");
                    assert_eq!(&*value, &[7u8; 30], "case {case}, {name}: a wrong value");
                }
            }
        }
    }
}

#[test]
fn handles_to_a_dropped_tree_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = Config::tiny().path(dir.path()).open().unwrap();
    let old = db.open_tree("t").unwrap();
    let mut batch = Batch::default();
    for i in 0..200u32 {
        batch.insert(&old, i.to_be_bytes(), b"old");
    }
    db.apply_batch(batch).unwrap();
    assert!(db.drop_tree("t").unwrap());
    assert!(!db.drop_tree("t").unwrap(), "a second drop finds nothing");
    assert!(matches!(old.get(1u32.to_be_bytes()), Err(Error::TreeDropped { .. })));
    assert!(matches!(old.insert(b"k", b"v"), Err(Error::TreeDropped { .. })));
    // A new tree of the same name is empty, and the old handle still fails.
    let new = db.open_tree("t").unwrap();
    assert_eq!(new.len().unwrap(), 0);
    for i in 0..200u32 {
        new.insert(i.to_be_bytes(), b"new").unwrap();
    }
    assert!(matches!(old.get(1u32.to_be_bytes()), Err(Error::TreeDropped { .. })));
    assert_eq!(new.get(1u32.to_be_bytes()).unwrap().as_deref(), Some(&b"new"[..]));
    db.check().unwrap();
}
