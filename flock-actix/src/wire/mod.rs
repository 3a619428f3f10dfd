//! Everything nodes say to each other, and how it is framed on a byte stream.
//!
//! - [`message`]: the one [`Message`] enum, its compact rmp-serde encoding
//!   and the version prefix of the first frame;
//! - [`codec`]: [`FrameCodec`], 4-byte big-endian length-delimited frames
//!   with a small cap before authentication and a configurable one after;
//! - `sync`: the registry sync frames carrying a map, read straight into
//!   the store's layout;
//! - `payload`: how user messages, replies and start arguments are encoded
//!   (with field names, so messages can gain optional fields in a rolling
//!   upgrade).

pub mod codec;
pub mod message;
mod mpack;
pub(crate) mod payload;
pub(crate) mod sync;
pub(crate) mod user;

pub use codec::FrameCodec;
pub use message::{MemberInfo, MemberStatus, Message, RejectReason, RemoteError};

#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
