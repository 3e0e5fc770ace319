//! The page cache (placeholder table of contents; the real one is written in parallel).

#[cfg_attr(not(test), expect(dead_code, reason = "the page cache is not merged yet"))]
mod checkpoint;
#[expect(dead_code, reason = "the page cache is not merged yet")]
mod loc;
