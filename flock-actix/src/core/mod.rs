//! The pure cores: deterministic state machines with no I/O.
//!
//! Nothing under `core` imports actix or tokio, reads a clock or draws a
//! random number: time and randomness arrive as arguments and effects leave
//! as return values. The actors of the runtime are thin shells around these
//! modules, and the modules are tested directly against the laws they obey.

pub mod anti_entropy;
pub mod crdt;
pub mod data_links;
pub mod discovery;
pub mod events;
pub mod handshake;
pub mod lifecycle;
pub mod membership;
pub mod placement;
pub mod routing;
pub mod supervision;
pub mod swim;
pub mod timers;
