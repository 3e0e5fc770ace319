//! The page cache: pages as chains of records in the log, found through a lock-free page table.

#[expect(dead_code, reason = "used by the page cache, written in parallel")]
mod loc;
#[cfg_attr(
    any(not(test), loom),
    expect(dead_code, reason = "used by the page cache, written in parallel")
)]
mod slots;

#[cfg(all(test, loom))]
mod slot_loom;
