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

    /// Bytes could not be decoded into a message. Nothing was applied.
    #[error("decode error: {0}")]
    Decode(String),

    /// A value could not be encoded. Nothing was sent.
    #[error("encode error: {0}")]
    Encode(String),

    /// `start` found the name already in the registry. Nothing changed.
    #[error("bird {name:?} already exists; stop it first or pick another name")]
    AlreadyExists {
        /// The bird's name.
        name: String,
    },

    /// The bird name breaks the naming rules (see
    /// [`check_bird_name`](crate::core::crdt::check_bird_name)): names are 1
    /// to [`MAX_NAME_BYTES`](crate::core::crdt::MAX_NAME_BYTES) bytes of
    /// UTF-8 without control characters. Nothing was recorded or sent.
    #[error(
        "invalid bird name {name:?}: {reason}; use 1 to 255 bytes of UTF-8 without control characters"
    )]
    InvalidName {
        /// The name as given, cut to its first 64 characters (a name can be
        /// arbitrarily long).
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No bird of that name is in the registry (as this node sees it).
    /// Nothing changed.
    #[error("bird {name:?} not found")]
    NotFound {
        /// The bird's name.
        name: String,
    },

    /// The call got no reply within its deadline. The bird may or may not
    /// have handled the message.
    #[error("no reply from bird {name:?} within {after_ms} ms")]
    Timeout {
        /// The bird's name.
        name: String,
        /// The deadline that passed.
        after_ms: u64,
    },

    /// The node that owns the bird could not be reached (its link closed
    /// while the call was in flight). The bird may or may not have handled
    /// the message; placement moves it once the node is declared down.
    #[error("node {node} is unreachable")]
    Unreachable {
        /// The owner node's name.
        node: String,
    },

    /// The bird panicked while handling the message (it is being restarted).
    #[error("bird {name:?} panicked while handling the message; it is being restarted")]
    BirdPanicked {
        /// The bird's name.
        name: String,
    },

    /// The bird's kind is not registered on the node that should run it.
    /// Register it with `FlockBuilder::bird::<T>()` on every hosting node.
    #[error("bird kind {kind:?} is not registered on node {node}; add .bird::<T>() to its builder")]
    UnknownKind {
        /// The kind's wire tag.
        kind: String,
        /// The node missing it.
        node: String,
    },

    /// No live member hosts the bird kind (none registered it with
    /// `.bird::<T>()`, or those that did are down), so no node can own a
    /// bird of it. Nothing was recorded.
    #[error(
        "no live node hosts bird kind {kind:?}; add .bird::<T>() to the builder of a node \
         with weight > 0, or start the bird once one is up"
    )]
    KindNotHosted {
        /// The kind's wire tag.
        kind: String,
    },

    /// The owner's bird kind does not accept this message (a node running
    /// other code, e.g. mid rolling upgrade). Nothing was delivered.
    #[error("bird kind {kind:?} does not accept message {msg:?}")]
    UnknownMessage {
        /// The kind's wire tag.
        kind: String,
        /// The message's wire tag.
        msg: String,
    },

    /// The name belongs to a bird of another kind than the `FlockAddr`'s.
    /// Nothing was delivered.
    #[error("bird {name:?} is of kind {actual:?}, not {expected:?}")]
    WrongKind {
        /// The bird's name.
        name: String,
        /// The kind of the `FlockAddr` used.
        expected: String,
        /// The kind in the registry.
        actual: String,
    },

    /// The bird's `hatch` failed on its owner (e.g. the node was not given
    /// the [`Nest`](crate::Nest) context it needs): it does not run there.
    /// Nothing was delivered. Fix the owner's configuration (the message says
    /// what is missing) and restart that node, or stop and start the bird
    /// with other arguments.
    #[error("bird {name:?} cannot hatch on node {node}: {reason}")]
    HatchFailed {
        /// The bird's name.
        name: String,
        /// The node it should run on.
        node: String,
        /// What its `hatch` said.
        reason: String,
    },

    /// The remote node failed in a way not covered above.
    #[error("remote error: {0}")]
    Remote(String),

    /// The local node is shutting down or stopped. Nothing was done.
    #[error("this flock node is stopped")]
    Stopped,

    /// A link to a peer could not be set up or was broken by the peer:
    /// handshake refusals (wrong cookie, cluster, protocol version, …) and
    /// framing violations. These concern operators, not callers of
    /// `FlockAddr`/`Flock::start`: a call whose owner cannot be linked fails
    /// as [`Error::Unreachable`] or [`Error::Timeout`]. They are logged by the
    /// node (with the peer's address) and returned where a link is made
    /// explicitly; see [`LinkError`] for each case.
    #[error(transparent)]
    Link(#[from] LinkError),

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

/// Why a link to a peer could not be set up, or was closed by a protocol
/// violation: the handshake and framing errors, kept apart from the errors
/// callers handle (see [`Error::Link`]). Every case leaves the registry
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
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

    /// The peer refused the handshake for a reason that has no more specific
    /// variant (e.g. it saw a message out of order); `reason` is the peer's
    /// own words. The connection is closed; no state changed.
    #[error("the peer refused the connection: {reason}")]
    Rejected {
        /// The reason the peer gave.
        reason: String,
    },
}

impl LinkError {
    /// A short, fixed name for this error's variant, as
    /// [`Error::kind_label`] reports it.
    pub fn kind_label(&self) -> &'static str {
        match self {
            LinkError::VersionMismatch { .. } => "version_mismatch",
            LinkError::WrongCluster { .. } => "wrong_cluster",
            LinkError::ShardMismatch { .. } => "shard_mismatch",
            LinkError::WrongCookie => "wrong_cookie",
            LinkError::Replayed => "replayed",
            LinkError::Reflected => "reflected",
            LinkError::UnexpectedMessage { .. } => "unexpected_message",
            LinkError::FrameTooLarge { .. } => "frame_too_large",
            LinkError::Rejected { .. } => "rejected",
        }
    }
}

impl Error {
    /// A short, fixed name for this error's variant (`"timeout"`,
    /// `"not_found"`, …), for metric labels and log fields: static, so
    /// recording it allocates nothing.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Error::NoNodes => "no_nodes",
            Error::InvalidConfig(_) => "invalid_config",
            Error::Decode(_) => "decode",
            Error::Encode(_) => "encode",
            Error::AlreadyExists { .. } => "already_exists",
            Error::InvalidName { .. } => "invalid_name",
            Error::NotFound { .. } => "not_found",
            Error::Timeout { .. } => "timeout",
            Error::Unreachable { .. } => "unreachable",
            Error::BirdPanicked { .. } => "bird_panicked",
            Error::UnknownKind { .. } => "unknown_kind",
            Error::KindNotHosted { .. } => "kind_not_hosted",
            Error::UnknownMessage { .. } => "unknown_message",
            Error::WrongKind { .. } => "wrong_kind",
            Error::HatchFailed { .. } => "hatch_failed",
            Error::Remote(_) => "remote",
            Error::Stopped => "stopped",
            Error::Link(e) => e.kind_label(),
            Error::Io { .. } => "io",
        }
    }
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
