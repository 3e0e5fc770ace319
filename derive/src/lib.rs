//! The `#[derive(Record)]` procedural macro for Grove.
//!
//! **Status:** not built yet. Derived records arrive with their own issue; until then this crate
//! exports no macro. Generated code will name only `::grove::__private` paths.
