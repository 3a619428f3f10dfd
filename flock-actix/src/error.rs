//! The one error type of the public API.
//!
//! Every fallible operation in flock-actix returns [`Error`]. Each variant's
//! documentation says what happened and whether any state was changed, so a
//! caller knows whether a retry is safe.

/// Everything that can go wrong in flock-actix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Placement was asked for an owner while no member can host birds (the
    /// member set is empty, or every member has weight 0). No state changed.
    #[error("no nodes can host birds: the member set is empty or every member has weight 0")]
    NoNodes,

    /// A configuration value is out of range. Nothing was created.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The peer speaks another protocol version. The connection is refused
    /// before anything else is read; no state changed.
    #[error(
        "protocol version mismatch: we speak v{ours}, the peer speaks v{theirs}; upgrade the older node"
    )]
    VersionMismatch {
        /// Our protocol version.
        ours: u32,
        /// The peer's protocol version.
        theirs: u32,
    },

    /// The peer belongs to another cluster (its cluster name differs). The
    /// connection is refused; no state changed.
    #[error("wrong cluster: we are in cluster {ours:?}, the peer is in {theirs:?}")]
    WrongCluster {
        /// Our cluster name.
        ours: String,
        /// The peer's cluster name.
        theirs: String,
    },

    /// The peer uses another shard count, so it would place birds elsewhere.
    /// The connection is refused; no state changed.
    #[error(
        "shard count mismatch: we use {ours} shards, the peer uses {theirs}; every node must use the same"
    )]
    ShardMismatch {
        /// Our shard count.
        ours: u32,
        /// The peer's shard count.
        theirs: u32,
    },

    /// The peer's proof of the cluster cookie did not verify: it does not know
    /// the cookie. The connection is refused; no state changed.
    #[error("authentication failed: the peer does not know the cluster cookie")]
    WrongCookie,

    /// A handshake message carried a nonce that was already used: a replayed
    /// message. The connection is refused; no state changed.
    #[error("handshake replay detected: a nonce was used twice")]
    Replayed,

    /// A handshake message was our own message sent back to us (reflection),
    /// or we connected to ourselves. The connection is refused.
    #[error("handshake reflection detected: the peer sent back our own identity or nonce")]
    Reflected,

    /// A handshake or protocol message arrived out of order. The connection is
    /// refused; no state changed.
    #[error("unexpected message: expected {expected}, got {got}")]
    UnexpectedMessage {
        /// What the state machine was waiting for.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },

    /// A frame's declared length exceeds the limit in force. The frame is not
    /// read and the connection is closed; no state changed.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The declared frame length.
        size: usize,
        /// The limit in force (smaller before authentication).
        max: usize,
    },

    /// Bytes could not be decoded into a message. Nothing was applied.
    #[error("decode error: {0}")]
    Decode(String),

    /// A value could not be encoded. Nothing was sent.
    #[error("encode error: {0}")]
    Encode(String),

    /// The peer refused the handshake for a reason that has no more specific
    /// variant (e.g. it saw a message out of order); `reason` is the peer's
    /// own words. The connection is closed; no state changed.
    #[error("the peer refused the connection: {reason}")]
    Rejected {
        /// The reason the peer gave.
        reason: String,
    },

    /// An I/O error on a connection (reported by the frame codec, e.g. the
    /// stream ended in the middle of a frame). Stored as kind + message so
    /// that `Error` stays `Clone + PartialEq`. The connection is unusable and
    /// is closed; frames decoded before it were already delivered, nothing of
    /// the broken frame was applied.
    #[error("I/O error ({kind:?}): {message}")]
    Io {
        /// The kind of the underlying [`std::io::Error`].
        kind: std::io::ErrorKind,
        /// Its message.
        message: String,
    },
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
