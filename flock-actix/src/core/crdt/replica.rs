//! One node's replica of the registry CRDT.

/// One node's replica (implementation pending).
#[derive(Debug)]
pub struct Replica;
