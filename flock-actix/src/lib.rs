//! flock-actix: a distributed process registry and forgiving supervisor for Actix.
//!
//! # Layout
//!
//! - [`core`]: the pure, deterministic cores. No actix, no tokio, no clock:
//!   - [`core::placement`]: name → shard (jump consistent hash) → node
//!     (weighted rendezvous table), the cluster-wide placement function.
//!   - [`core::crdt`]: the registry CRDT, a delta-state add-wins
//!     observed-remove map `name → BirdSpec` with causal contexts.
//!   - [`core::anti_entropy`]: per-peer delta bookkeeping: what to send to
//!     whom (deltas or full state), acknowledgements, buffer trimming.
//!   - [`core::handshake`]: the cookie handshake between two nodes, a
//!     state machine with numbered steps and HMAC-SHA256 proofs.
//!   - [`core::membership`]: who is up: links, heartbeats, gossip, leave.
//!   - [`core::supervision`]: restart delays for birds that panic.
//! - [`wire`]: everything nodes say to each other:
//!   - [`wire::message`]: the one [`wire::Message`] enum and its versioned
//!     rmp-serde encoding;
//!   - [`wire::codec`]: the length-delimited frame codec with size limits
//!     (smaller before authentication).
//! - [`net`]: the [`net::Network`] trait: TCP, in-memory, fault-injecting.
//! - [`runtime`]: the actors of a node around the cores — [`Flock`] (the
//!   handle), [`FlockAddr`] (a bird by name), and the Ring, CrdtReplica,
//!   Registry and per-link Peer actors.
//! - [`bird`]: the [`Bird`] trait and what `#[flock_bird]` implements.
//! - [`error`]: the one public [`Error`] enum.
//! - [`prelude`]: the one import a bird author needs.
//! - `dashboard` (feature `dashboard`): a live web page and JSON API over
//!   a node's view of the cluster, for an actix-web app to mount.

pub mod bird;
pub mod core;
#[cfg(feature = "dashboard")]
pub mod dashboard;
pub mod error;
pub mod net;
pub mod runtime;
pub mod wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use bird::{Accepts, Bird, BirdKind, Wire};
pub use error::{Error, Result};
pub use runtime::{
    Flock, FlockAddr, FlockBuilder, FlockConfig, MemberState, MemberView, current_node,
};

/// The one import a bird author needs.
pub mod prelude {
    pub use crate::bird::{Bird, Wire};
    pub use crate::error::{Error, Result};
    pub use crate::runtime::{Flock, FlockAddr, FlockBuilder, FlockConfig, current_node};
    pub use actix::prelude::*;
    pub use flock_actix_macros::flock_bird;
    pub use serde::{Deserialize, Serialize};
}
pub use flock_actix_macros::flock_bird;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
