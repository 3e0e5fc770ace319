//! [`SimStorage`]: a deterministic simulated disk (being written).

/// Placeholder.
#[derive(Debug)]
pub struct SimStorage;
/// Placeholder.
#[derive(Debug)]
pub struct Fault;
/// Placeholder.
#[derive(Debug)]
pub enum FaultOp {}
