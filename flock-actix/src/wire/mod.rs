//! Everything nodes say to each other, and how it is framed on a byte stream.

pub mod codec;
pub mod message;

pub use codec::FrameCodec;
pub use message::Message;
