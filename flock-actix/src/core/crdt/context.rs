//! The causal context: which dots a state has seen.

use super::dot::{Dot, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A set of dots, stored compactly as a version vector (every dot `1..=n` of a
/// replica) plus a dot cloud (the dots seen out of order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    /// `replica → n`: every dot `(replica, 1..=n)` is in the context.
    pub(crate) vv: BTreeMap<ReplicaId, u64>,
    /// Dots in the context that the version vector does not cover yet.
    pub(crate) cloud: BTreeSet<Dot>,
}
