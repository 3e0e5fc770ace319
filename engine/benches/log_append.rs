//! Placeholder: the log_append benchmark is being written.
fn main() {}
