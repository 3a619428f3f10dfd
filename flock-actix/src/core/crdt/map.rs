//! The dot store `name → {dot → entry}` with its causal context.

use super::context::CausalContext;
use super::dot::Dot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the runtime needs to start a bird anywhere: its kind's wire tag and
/// its serialized start arguments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BirdSpec {
    /// The bird kind's stable wire tag.
    pub kind: String,
    /// The start arguments, serialized by the bird's kind.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
}

/// One add of a bird: the spec plus the timestamp used to order concurrent adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The bird's spec as given to `add`.
    pub spec: BirdSpec,
    /// Milliseconds (hybrid: never below the replica's last timestamp + 1).
    pub ts: u64,
}

/// The add-wins observed-remove map. A full state and a delta have the same
/// type, as in the delta-state paper: a delta is a small state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BirdMap {
    /// `name → [(dot, entry)]`, sorted by dot; usually one element. A name
    /// whose list is empty is not stored (no tombstones).
    pub(crate) store: BTreeMap<String, Vec<(Dot, Entry)>>,
    /// Every dot this state has seen, including those of removed adds.
    pub(crate) ctx: CausalContext,
}
