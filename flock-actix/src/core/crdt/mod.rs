//! The registry CRDT: a delta-state add-wins observed-remove map
//! `bird name → BirdSpec`, after Almeida, Shoker and Baquero, "Delta State
//! Replicated Data Types" (2018).
//!
//! - [`dot`]: replica identities `(node, incarnation)` and dots.
//! - [`context`]: the causal context (version vector + dot cloud, compacted).
//! - [`map`]: the dot store and its join; [`BirdMap`] is both a full state and
//!   a delta, as in the paper.
//! - [`name`]: the rules for bird names (the map's keys).
//! - [`store`]: the dot store's compact in-memory layout.
//! - [`replica`]: one node's replica: mints dots, applies mutators, returns
//!   deltas, and joins what peers send under the trust rule of `trust`.

pub mod context;
pub mod dot;
pub mod map;
pub mod name;
pub mod replica;
pub mod store;
pub(crate) mod trust;

pub use context::CausalContext;
pub use dot::{Dot, NodeName, ReplicaId};
pub use map::{BirdMap, BirdSpec, Changes, Entry, MapSize};
pub use name::{MAX_NAME_BYTES, check_bird_name};
pub use replica::{Added, CounterExhausted, ForgedOwnDots, Replica};

#[cfg(test)]
mod owned_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;
