//! The cluster runtime: the actors of a node around the pure cores.
//!
//! - [`Flock`] / [`FlockBuilder`]: the handle an application holds.
//! - [`FlockAddr`]: a bird's address by name, wherever it runs.
//! - `ring`: the Ring actor (membership, links, placement table), on the
//!   node's links arbiter.
//! - `replica`: the CrdtReplica actor (registry set, anti-entropy), on an
//!   arbiter of its own.
//! - `registry`: the Registry actor (local birds, supervision, calls), on
//!   the arbiter that started the node.
//! - `peer`: one actor per link (handshake, framed I/O, routing), on the
//!   links arbiter with the Ring.
//! - `kinds`: bird kinds behind function pointers; exit guards.
//! - `discovery`: DNS discovery (a name re-resolved to every node's address).

mod addr;
mod config;
pub(crate) mod deadline;
mod directory;
mod discovery;
mod durable;
mod events;
mod flock;
mod kinds;
mod messages;
mod node;
mod peer;
mod registry;
mod replica;
mod ring;
mod telemetry;

pub use addr::FlockAddr;
pub use config::FlockConfig;
#[cfg(feature = "dns")]
pub use discovery::NameserverResolver;
pub use discovery::{DnsDiscovery, Resolve, SystemResolver};
pub use events::Events;
pub use flock::{Flock, FlockBuilder};

/// A member as seen by one node ([`Flock::members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The node's name.
    pub name: String,
    /// The address it listens on.
    pub addr: String,
    /// Its placement weight.
    pub weight: u32,
    /// Where it stands.
    pub status: MemberState,
    /// Whether this is the node that answered.
    pub this_node: bool,
}

/// A member's state in one node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Linked and heard from recently.
    Up,
    /// Known but not reachable now.
    Down,
    /// Leaving or left gracefully.
    Leaving,
    /// Left gracefully.
    Left,
}

thread_local! {
    static CURRENT_NODE: std::cell::RefCell<Option<crate::core::crdt::NodeName>> =
        const { std::cell::RefCell::new(None) };
}

/// The name of the flock node whose arbiters run the calling code, e.g. a
/// bird's handler that wants to say where it runs.
///
/// Set on the arbiter that started the node, on its links and replica
/// arbiters and on each arbiter of its bird pool. `None` elsewhere; ambiguous (the last node started) when several
/// nodes share one thread.
pub fn current_node() -> Option<crate::core::crdt::NodeName> {
    CURRENT_NODE.with(|n| n.borrow().clone())
}

pub(crate) fn set_current_node(name: crate::core::crdt::NodeName) {
    CURRENT_NODE.with(|n| *n.borrow_mut() = Some(name));
}
