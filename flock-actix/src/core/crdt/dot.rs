//! Replica identities and dots.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A node's name, e.g. `node1@127.0.0.1`. Stable across restarts: placement
/// is computed over names, so a restarted node gets its share back.
pub type NodeName = Arc<str>;

/// Who minted a dot: a node name plus the incarnation of the process.
///
/// A restarted node takes a new, larger incarnation (e.g. its start time in
/// milliseconds), so it never reuses a dot it minted before it crashed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId {
    /// The node's name.
    pub node: NodeName,
    /// The process incarnation; strictly larger after every restart.
    pub incarnation: u64,
}

/// One event: the `counter`-th mutation minted by `replica` (counters start at 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that minted the dot.
    pub replica: ReplicaId,
    /// Its sequence number at that replica, from 1.
    pub counter: u64,
}
