//! The wire messages.

/// The wire message (implementation pending).
#[derive(Debug)]
pub enum Message {}

/// PLACEHOLDER until the wire branch lands: errors a remote node reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// No such bird.
    #[error("bird {bird} not found")]
    NotFound {
        /// Bird name.
        bird: String,
    },
    /// Unknown message tag.
    #[error("bird kind {kind} does not accept message {msg}")]
    UnknownMessage {
        /// Kind tag.
        kind: String,
        /// Message tag.
        msg: String,
    },
    /// Decode failed.
    #[error("decode: {0}")]
    Decode(String),
    /// Encode failed.
    #[error("encode: {0}")]
    Encode(String),
    /// The bird panicked.
    #[error("bird {bird} panicked")]
    BirdPanicked {
        /// Bird name.
        bird: String,
    },
}
