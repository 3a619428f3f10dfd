//! The wire messages: the one [`Message`] enum and its versioned encoding.
//!
//! # Encoding
//!
//! A message is encoded with rmp-serde's default configuration (what
//! [`rmp_serde::encode::write`] does), chosen explicitly for compactness:
//!
//! - structs and struct variants are MessagePack **arrays** of their fields,
//!   in declaration order (no field names on the wire). Consequence: fields
//!   are positional, so a field may never be reordered, removed or made
//!   optional within one [`PROTOCOL_VERSION`]; change the version instead.
//!   (`#[serde(default)]`/`skip_serializing_if` do not work with this layout
//!   and must not be used.)
//! - an enum variant with data is a one-entry map `{ "VariantName": data }`;
//!   a unit variant is the bare string `"VariantName"`. Variant names are
//!   therefore part of the protocol too.
//! - every byte payload (`payload`, `Reply`'s `Ok` value, nonces, MACs,
//!   [`BirdSpec::args`](crate::core::crdt::BirdSpec)) goes through
//!   `serde_bytes`, i.e. is a MessagePack `bin`, copied as one block, instead
//!   of an array of integers (one marker per byte, two bytes for each byte
//!   ≥ 128, and a per-element visitor call on both sides).
//!
//! Measured (test `payload_is_carried_as_bin_not_array`): a [`Message::Call`]
//! with a 1 KiB payload of `0xAB` bytes, bird/kind/msg of 8/5/4 characters
//! encodes to **1 059 bytes** with `serde_bytes` (payload: 3-byte `bin16`
//! header + 1 024 bytes) versus **2 083 bytes** without (payload: 3-byte
//! `array16` header + 1 024 × `0xcc xx`).
//!
//! # Versioning
//!
//! The first frame each side sends ([`Message::Hello`] from the initiator,
//! [`Message::Challenge`] from the acceptor) has the protocol version as its
//! first field. Its encoded prefix is frozen for all future versions:
//!
//! ```text
//! 0x81                      map of one entry
//! "Hello" | "Challenge"     variant name (MessagePack str)
//! array header              the variant's fields (fixarray/array16/array32)
//! uint                      the protocol version (any MessagePack uint)
//! ```
//!
//! [`peek_version`] reads only that prefix, so a node can tell a peer of
//! another version "we speak vX, you speak vY" even if the rest of that
//! version's `Hello` is unreadable; [`Message::decode_first`] does this before
//! decoding the rest.
//!
//! # Robustness
//!
//! [`Message::decode`] never panics: malformed, truncated or trailing bytes
//! give [`Error::Decode`]. Nesting is capped at [`MAX_DEPTH`] (our deepest
//! message needs about 10) so a hostile frame cannot exhaust the stack, and
//! declared lengths never cause allocations beyond the frame's own size.

use crate::core::anti_entropy::SyncMessage;
use crate::core::crdt::{BirdMap, ReplicaId};
use crate::error::{Error, Result};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

/// The newest protocol version this build speaks (what it offers first).
/// It interoperates with [`MIN_PROTOCOL_VERSION`]`..=PROTOCOL_VERSION`
/// (N and N−1; docs/ARCHITECTURE.md §13.1 and §27).
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest protocol version this build still speaks (N−1): a link to a
/// node of that version uses that version's frames in both directions.
pub const MIN_PROTOCOL_VERSION: u32 = PROTOCOL_VERSION - 1;

/// The most kind tags one node announces in [`Message::Kinds`]: with tags
/// of at most 255 bytes the frame stays under the pre-authentication cap.
pub const MAX_ANNOUNCED_KINDS: usize = 128;

/// Length of a handshake nonce in bytes.
pub const NONCE_LEN: usize = 32;

/// A handshake nonce: 32 random bytes, drawn by the runtime.
pub type Nonce = [u8; NONCE_LEN];

/// Length of a handshake MAC (HMAC-SHA256 output) in bytes.
pub const MAC_LEN: usize = 32;

/// A handshake MAC (HMAC-SHA256 tag).
pub type MacTag = [u8; MAC_LEN];

/// Maximum nesting depth accepted by [`Message::decode`]. Our messages nest
/// about 10 levels deep (`SyncFull` → `BirdMap` → store → entries → dot →
/// replica id); the cap keeps a frame of nested arrays from exhausting the
/// decoder's stack.
pub const MAX_DEPTH: usize = 32;

/// Everything one node says to another.
///
/// Grouped by purpose: the handshake (`Hello` … `Reject`, see
/// [`crate::core::handshake`]), membership, registry sync, and the call
/// envelopes. See the [module documentation](self) for the encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    // ---- handshake ----
    /// Handshake step 1, initiator → acceptor: who I am, and my nonce.
    Hello {
        /// The initiator's protocol version. MUST stay the first field.
        version: u32,
        /// The cluster the initiator belongs to.
        cluster: String,
        /// The initiator's identity.
        id: ReplicaId,
        /// The address the initiator listens on (for others to dial).
        listen: String,
        /// The initiator's placement weight (0: hosts no birds).
        weight: u32,
        /// The initiator's shard count.
        shards: u32,
        /// The initiator's fresh nonce.
        #[serde(with = "serde_bytes")]
        nonce: Nonce,
    },
    /// Handshake step 2, acceptor → initiator: who I am, and my nonce.
    Challenge {
        /// The acceptor's protocol version. MUST stay the first field.
        version: u32,
        /// The acceptor's identity.
        id: ReplicaId,
        /// The address the acceptor listens on.
        listen: String,
        /// The acceptor's placement weight.
        weight: u32,
        /// The acceptor's fresh nonce.
        #[serde(with = "serde_bytes")]
        nonce: Nonce,
    },
    /// Handshake step 3, initiator → acceptor: proof of the cookie.
    Proof {
        /// HMAC-SHA256(cookie, initiator label ‖ transcript).
        #[serde(with = "serde_bytes")]
        mac: MacTag,
    },
    /// Handshake step 4, acceptor → initiator: accepted, and the acceptor's
    /// own proof of the cookie.
    Welcome {
        /// HMAC-SHA256(cookie, acceptor label ‖ transcript).
        #[serde(with = "serde_bytes")]
        mac: MacTag,
    },
    /// Either side, during the handshake: the connection is refused, and why.
    Reject {
        /// Why the sender refuses.
        reason: RejectReason,
    },

    // ---- membership ----
    /// The sender's view of the cluster members.
    Members {
        /// Every member the sender knows, itself included.
        members: Vec<MemberInfo>,
    },
    /// Liveness probe; answered by [`Message::HeartbeatAck`] with the same `seq`.
    Heartbeat {
        /// Sequence number chosen by the sender.
        seq: u64,
    },
    /// Answer to [`Message::Heartbeat`].
    HeartbeatAck {
        /// The `seq` of the heartbeat being answered.
        seq: u64,
    },
    /// The sender (or the node `id`) leaves the cluster gracefully.
    Leave {
        /// The leaving node.
        id: ReplicaId,
    },
    /// Answer to [`Message::Leave`]: the sender took the leaver out of its
    /// view and started the birds it now owns.
    LeaveAck {
        /// The node whose leave is acknowledged.
        id: ReplicaId,
    },

    // ---- registry sync ----
    /// Registry deltas covering the sender's delta sequence numbers
    /// `from_seq..=to_seq` for this peer (see
    /// [`SyncMessage`]).
    SyncDeltas {
        /// First delta sequence number covered (inclusive).
        from_seq: u64,
        /// Last delta sequence number covered (inclusive); the receiver
        /// acknowledges `to_seq`.
        to_seq: u64,
        /// The joined deltas.
        delta: BirdMap,
    },
    /// The sender's full registry state, as of its delta sequence `seq`.
    SyncFull {
        /// The sender's delta sequence number the state corresponds to.
        seq: u64,
        /// The full state.
        state: BirdMap,
    },
    /// Everything up to `seq` was received and joined.
    SyncAck {
        /// The acknowledged sequence number.
        seq: u64,
    },

    // ---- calls ----
    /// A request to a bird; answered by [`Message::Reply`] with the same `id`.
    Call {
        /// Request id, unique per connection and direction.
        id: u64,
        /// The bird's name.
        bird: String,
        /// The bird kind's wire tag.
        kind: String,
        /// The message's wire tag within the kind.
        msg: String,
        /// The serialized message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// How long the caller waits, in milliseconds.
        timeout_ms: u32,
        /// Whether this call was already forwarded once (a node that does not
        /// own the bird answers `Moved` instead of forwarding again, so calls
        /// cannot loop while views disagree).
        forwarded: bool,
    },
    /// The answer to [`Message::Call`] `id`.
    Reply {
        /// The request id of the call.
        id: u64,
        /// The serialized reply, or why there is none.
        #[serde(with = "reply_result")]
        result: std::result::Result<Vec<u8>, RemoteError>,
    },
    /// A fire-and-forget message to a bird (no reply, no id).
    Cast {
        /// The bird's name.
        bird: String,
        /// The bird kind's wire tag.
        kind: String,
        /// The message's wire tag within the kind.
        msg: String,
        /// The serialized message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },

    // ---- registry sync in chunks (appended last: the variants above keep
    // their encodings) ----
    /// Part `index` of the sender's full-state transfer `session` (see
    /// [`SyncMessage::Chunk`]):
    /// a full state travels as bounded parts, so no frame grows with the
    /// registry. Answered by [`Message::SyncChunkAck`].
    SyncChunk {
        /// The transfer, unique per sender incarnation.
        session: u64,
        /// The part's number, from 0.
        index: u32,
        /// Whether this is the transfer's last part.
        last: bool,
        /// The sender's delta sequence number when the transfer started.
        seq: u64,
        /// A run of names and a piece of the causal context.
        part: BirdMap,
    },
    /// Part `index` of transfer `session` was received.
    SyncChunkAck {
        /// The transfer.
        session: u64,
        /// The part.
        index: u32,
    },

    // ---- state handoff of a moved bird (appended last) ----
    /// The sender owned `bird` before a view change moved it to the
    /// receiver: its instance has stopped, and this is its last state
    /// (`None`: no instance ran there, nothing to wait for). Answered by
    /// [`Message::HandoffAck`].
    Handoff {
        /// The bird's name.
        bird: String,
        /// The bird kind's wire tag.
        kind: String,
        /// The kind's serialized state.
        #[serde(with = "serde_bytes")]
        state: Option<Vec<u8>>,
    },
    /// The receiver took the state of `bird` over.
    HandoffAck {
        /// The bird's name.
        bird: String,
    },

    // ---- digest exchange (appended last; docs/ARCHITECTURE.md §24) ----
    /// A digest of the sender's registry: one hash per range of names
    /// (see [`SyncMessage::Digest`]). Answered by [`Message::SyncRange`]
    /// with the ranges that differ, or not at all.
    SyncDigest {
        /// One hash per range; their number is a power of two.
        hashes: Vec<u64>,
    },
    /// The sender's entries under the names of some ranges, with its
    /// causal context (see [`SyncMessage::Range`]).
    SyncRange {
        /// It answers a `SyncRange`, and is not to be answered.
        reply: bool,
        /// The number of ranges names are cut into.
        buckets: u32,
        /// The ranges included, increasing.
        ranges: Vec<u32>,
        /// Their entries, and the sender's causal context.
        part: BirdMap,
    },

    // ---- protocol version 2 (appended last; sent only on v2 links) ----
    /// Handshake step 5 on a link of version 2 or later, each side once
    /// (initiator first, after `Welcome`): the bird kinds the sender hosts,
    /// so placement gives it only those kinds' birds. At most
    /// [`MAX_ANNOUNCED_KINDS`] tags of at most 255 bytes each.
    Kinds {
        /// The kind tags the sender hosts, sorted, without duplicates.
        kinds: Vec<String>,
    },

    // ---- data links (appended last; docs/ARCHITECTURE.md §26) ----
    /// First frame of a *data link* (a connection that carries only calls,
    /// casts and replies, opened beside an authenticated control link):
    /// initiator → acceptor. Never sent on a control link.
    DataHello {
        /// Which control-link session this link belongs to (an HMAC of the
        /// cookie over that session's handshake nonces, see
        /// `core::data_links::auth`).
        #[serde(with = "serde_bytes")]
        session: MacTag,
        /// The shard of the bird whose call opened the link: the acceptor
        /// runs the link on the arbiter of that shard's lane.
        shard: u32,
        /// The initiator's fresh nonce.
        #[serde(with = "serde_bytes")]
        nonce: Nonce,
    },
    /// Data link step 2, acceptor → initiator: the acceptor's lane count
    /// and the lane this link serves, its fresh nonce, and its proof of the
    /// session key.
    DataChallenge {
        /// How many lanes (bird arbiters) the acceptor has.
        lanes: u32,
        /// The lane this link serves (`shard % lanes`).
        lane: u32,
        /// The acceptor's fresh nonce.
        #[serde(with = "serde_bytes")]
        nonce: Nonce,
        /// HMAC-SHA256(session key, acceptor label ‖ nonces ‖ shard ‖ lanes).
        #[serde(with = "serde_bytes")]
        mac: MacTag,
    },
    /// Data link step 3, initiator → acceptor: the initiator's proof of the
    /// session key; calls and casts may follow at once.
    DataProof {
        /// HMAC-SHA256(session key, initiator label ‖ nonces ‖ shard).
        #[serde(with = "serde_bytes")]
        mac: MacTag,
    },
}

/// Why a node refuses a handshake ([`Message::Reject`]).
///
/// Configuration mismatches are named precisely so the operator can fix
/// them; every authentication failure (wrong cookie, replay, reflection) is
/// the same generic [`RejectReason::AuthFailed`], so a prober learns nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The sender speaks protocol version `ours`.
    Version {
        /// The sender's protocol version.
        ours: u32,
    },
    /// The sender belongs to cluster `ours`.
    Cluster {
        /// The sender's cluster name.
        ours: String,
    },
    /// The sender uses `ours` shards.
    Shards {
        /// The sender's shard count.
        ours: u32,
    },
    /// Authentication failed (deliberately unspecific).
    AuthFailed,
    /// The handshake went wrong otherwise (e.g. a message out of order).
    Protocol(String),
}

/// One cluster member as seen by the sender of [`Message::Members`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's identity.
    pub id: ReplicaId,
    /// The address it listens on.
    pub addr: String,
    /// Its placement weight (0: hosts no birds).
    pub weight: u32,
    /// Whether it is running normally or leaving.
    pub status: MemberStatus,
}

/// A member's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Running normally.
    Alive,
    /// Handing its birds over before shutting down.
    Leaving,
}

/// Why a remote call has no reply ([`Message::Reply`]'s `Err`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// No bird of that name is registered.
    #[error("no bird named {bird:?} is registered")]
    NotFound {
        /// The bird's name.
        bird: String,
    },
    /// The receiving node does not know the bird kind.
    #[error("unknown bird kind {kind:?} on the remote node")]
    UnknownKind {
        /// The kind's wire tag.
        kind: String,
    },
    /// The bird kind does not know the message.
    #[error("bird kind {kind:?} has no message {msg:?} on the remote node")]
    UnknownMessage {
        /// The kind's wire tag.
        kind: String,
        /// The message's wire tag.
        msg: String,
    },
    /// The remote node could not decode the call's payload.
    #[error("remote decode error: {0}")]
    Decode(String),
    /// The remote node could not encode the reply.
    #[error("remote encode error: {0}")]
    Encode(String),
    /// The bird panicked while handling the call.
    #[error("bird {bird:?} panicked while handling the call")]
    BirdPanicked {
        /// The bird's name.
        bird: String,
    },
    /// The bird lives on another node (and the call was already forwarded once).
    #[error("bird {bird:?} is owned by {owner}")]
    Moved {
        /// The bird's name.
        bird: String,
        /// The owner's node name.
        owner: String,
    },
    /// The bird did not answer in time.
    #[error("the remote call timed out")]
    Timeout,
    /// The bird is registered but not running (e.g. being restarted).
    #[error("bird {bird:?} is not running")]
    NotRunning {
        /// The bird's name.
        bird: String,
    },
    /// Anything else.
    #[error("remote internal error: {0}")]
    Internal(String),
    // New variants go below. A variant travels by its name
    // (`{"Internal": "…"}`), so the existing variants keep their exact
    // encodings (`existing_remote_errors_keep_their_encoding`); a node of an
    // older build cannot decode the new ones.
    /// The bird is registered with another kind than the caller's
    /// `FlockAddr` (e.g. two kinds used under one name). Nothing was
    /// delivered.
    #[error("bird {bird:?} is of kind {actual:?}, not {expected:?}")]
    WrongKind {
        /// The bird's name.
        bird: String,
        /// The kind the caller addressed (the call's `kind`).
        expected: String,
        /// The kind the registry holds for the name.
        actual: String,
    },
    /// The link to the owner closed while the call was in flight, or was
    /// not up when the call was handed to it. Produced locally by the link,
    /// never sent by a peer (a decoded one is treated the same way).
    #[error("the link to the owner closed")]
    LinkClosed,
    /// The bird's `hatch` returned an error on its owner: it does not run
    /// there (e.g. the node was not given the context the bird needs).
    #[error("bird {bird:?} cannot hatch: {reason}")]
    HatchFailed {
        /// The bird's name.
        bird: String,
        /// What `hatch` said.
        reason: String,
    },
    /// The call never left this node: its link closed (or was not up)
    /// before the call was written, so nothing was delivered and it is
    /// safe to try again. Produced locally by the link, never sent by a
    /// node of this build (a forwarding node that could not send a call on
    /// answers the `Moved` it would have answered without forwarding).
    #[error("the call was not sent: the link to the owner closed first")]
    NotSent,
}

/// `Reply::result` with its `Ok` bytes as a MessagePack `bin` (serde has no
/// per-variant `with` for `Result`, so the whole field gets this wrapper).
mod reply_result {
    use super::RemoteError;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub(super) fn serialize<S: Serializer>(
        result: &Result<Vec<u8>, RemoteError>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let borrowed: Result<&Bytes, &RemoteError> = match result {
            Ok(bytes) => Ok(Bytes::new(bytes)),
            Err(e) => Err(e),
        };
        borrowed.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Result<Vec<u8>, RemoteError>, D::Error> {
        let owned: Result<ByteBuf, RemoteError> = Deserialize::deserialize(deserializer)?;
        Ok(owned.map(ByteBuf::into_vec))
    }
}

impl Message {
    /// The variant's name, for logs and [`crate::error::LinkError::UnexpectedMessage`].
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Challenge { .. } => "Challenge",
            Message::Proof { .. } => "Proof",
            Message::Welcome { .. } => "Welcome",
            Message::Reject { .. } => "Reject",
            Message::Members { .. } => "Members",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::HeartbeatAck { .. } => "HeartbeatAck",
            Message::Leave { .. } => "Leave",
            Message::LeaveAck { .. } => "LeaveAck",
            Message::SyncDeltas { .. } => "SyncDeltas",
            Message::SyncFull { .. } => "SyncFull",
            Message::SyncAck { .. } => "SyncAck",
            Message::Call { .. } => "Call",
            Message::Reply { .. } => "Reply",
            Message::Cast { .. } => "Cast",
            Message::SyncChunk { .. } => "SyncChunk",
            Message::SyncChunkAck { .. } => "SyncChunkAck",
            Message::Handoff { .. } => "Handoff",
            Message::HandoffAck { .. } => "HandoffAck",
            Message::SyncDigest { .. } => "SyncDigest",
            Message::SyncRange { .. } => "SyncRange",

            Message::Kinds { .. } => "Kinds",

            Message::DataHello { .. } => "DataHello",
            Message::DataChallenge { .. } => "DataChallenge",
            Message::DataProof { .. } => "DataProof",
        }
    }

    /// The registry-sync payload of a sync message, for the replica
    /// (`SyncAck`, whose ack concerns the sender's bookkeeping, is not one);
    /// `None` for every other message.
    pub fn into_sync(self) -> Option<SyncMessage> {
        Some(match self {
            Message::SyncDeltas {
                from_seq,
                to_seq,
                delta,
            } => SyncMessage::Deltas {
                from_seq,
                to_seq,
                delta,
            },
            Message::SyncFull { seq, state } => SyncMessage::Full { seq, state },
            Message::SyncChunk {
                session,
                index,
                last,
                seq,
                part,
            } => SyncMessage::Chunk {
                session,
                index,
                last,
                seq,
                part,
            },
            Message::SyncChunkAck { session, index } => SyncMessage::ChunkAck { session, index },
            Message::SyncDigest { hashes } => SyncMessage::Digest { hashes },
            Message::SyncRange {
                reply,
                buckets,
                ranges,
                part,
            } => SyncMessage::Range {
                reply,
                buckets,
                ranges,
                part,
            },
            _ => return None,
        })
    }

    /// Appends the encoding of `self` to `buf`, writing directly into it (no
    /// intermediate `Vec`). On error `buf` is left as it was.
    pub fn encode_into(&self, buf: &mut BytesMut) -> Result<()> {
        let start = buf.len();
        let mut ser = rmp_serde::Serializer::new((&mut *buf).writer());
        if let Err(e) = self.serialize(&mut ser) {
            buf.truncate(start);
            return Err(Error::Encode(e.to_string()));
        }
        Ok(())
    }

    /// The encoding of `self` in a fresh buffer.
    pub fn encode(&self) -> Result<BytesMut> {
        let mut buf = BytesMut::new();
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// Whether `frame` (an encoded message) is a registry transfer that may
    /// be big (`SyncDeltas`, `SyncFull`, `SyncChunk`, `SyncRange`, and
    /// `SyncDigest`, whose answer scans the registry), from its variant tag
    /// alone: such frames are decoded off the thread that answers
    /// heartbeats. Anything else, malformed frames included, is `false`.
    pub fn is_bulk_sync(frame: &[u8]) -> bool {
        // An externally tagged variant with fields: a one-entry map whose
        // key is the variant's name as a short string.
        let [0x81, tag @ 0xa0..=0xbf, rest @ ..] = frame else {
            return false;
        };
        let len = usize::from(tag & 0x1f);
        matches!(
            rest.get(..len),
            Some(b"SyncDeltas" | b"SyncFull" | b"SyncChunk" | b"SyncRange" | b"SyncDigest")
        )
    }

    /// Decodes one message that must fill `frame` exactly.
    ///
    /// A registry sync frame carrying a map, in the canonical form this
    /// build writes, is read straight into the store's layout (`wire::sync`);
    /// everything else, and any other form of it, goes through rmp-serde
    /// (`decode_general`), which also judges every
    /// malformed frame.
    ///
    /// Errors: [`Error::Decode`] for anything malformed, truncated, nested
    /// deeper than [`MAX_DEPTH`], or followed by trailing bytes. Never panics.
    pub fn decode(frame: &[u8]) -> Result<Message> {
        if let Some(msg) = super::sync::read(frame) {
            return Ok(msg);
        }
        Message::decode_general(frame)
    }

    /// [`decode`](Self::decode) through rmp-serde alone: every form
    /// rmp-serde accepts, and the error of every frame it refuses.
    pub(crate) fn decode_general(frame: &[u8]) -> Result<Message> {
        // The `Read`-based deserializer (rather than `from_slice`) is used
        // because it reports its position, for the trailing-bytes check. It
        // reads strings and binaries with `take(len).read_to_end`, so a
        // hostile declared length cannot allocate more than the frame holds.
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(frame));
        de.set_max_depth(MAX_DEPTH);
        let msg = Message::deserialize(&mut de).map_err(|e| Error::Decode(e.to_string()))?;
        let used = de.position();
        if used != frame.len() as u64 {
            return Err(Error::Decode(format!(
                "{} trailing bytes after a {} message",
                (frame.len() as u64).saturating_sub(used),
                msg.name()
            )));
        }
        Ok(msg)
    }

    /// Decodes the first frame of a connection: checks the protocol version
    /// with [`peek_version`] *before* decoding the rest, so a peer of a
    /// version this build does not speak (outside
    /// [`MIN_PROTOCOL_VERSION`]`..=`[`PROTOCOL_VERSION`]) yields
    /// [`crate::error::LinkError::VersionMismatch`] naming both versions even if its `Hello`
    /// has a different layout. A frame whose version cannot be peeked (not a
    /// `Hello`/`Challenge`) is decoded normally, for the handshake to reject
    /// it as unexpected. Which of the spoken versions a link uses is the
    /// handshake's decision ([`crate::core::handshake::Versions`]).
    pub fn decode_first(frame: &[u8]) -> Result<Message> {
        if let Ok(theirs) = peek_version(frame)
            && !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&theirs)
        {
            return Err(Error::Link(crate::error::LinkError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs,
            }));
        }
        Message::decode(frame)
    }
}

/// Reads the protocol version from an encoded [`Message::Hello`] or
/// [`Message::Challenge`], looking only at the frozen prefix described in the
/// [module documentation](self). Never panics.
///
/// Errors: [`Error::Decode`] if `frame` does not start with that prefix.
pub fn peek_version(frame: &[u8]) -> Result<u32> {
    let mut r = super::mpack::Cursor::new(frame);
    let hello = r.byte() == Some(0x81)
        && r.str_len()
            .and_then(|len| r.bytes(len))
            .is_some_and(|name| name == b"Hello" || name == b"Challenge")
        && r.array_len().is_some_and(|n| n > 0);
    if !hello {
        return Err(Error::Decode(
            "the first frame is not a Hello or Challenge".into(),
        ));
    }
    let version = r.uint().ok_or_else(|| {
        Error::Decode("the protocol version is missing or not an unsigned integer".into())
    })?;
    u32::try_from(version)
        .map_err(|_| Error::Decode(format!("protocol version {version} is out of range")))
}

impl From<SyncMessage> for Message {
    fn from(msg: SyncMessage) -> Message {
        match msg {
            SyncMessage::Deltas {
                from_seq,
                to_seq,
                delta,
            } => Message::SyncDeltas {
                from_seq,
                to_seq,
                delta,
            },
            SyncMessage::Full { seq, state } => Message::SyncFull { seq, state },
            SyncMessage::Chunk {
                session,
                index,
                last,
                seq,
                part,
            } => Message::SyncChunk {
                session,
                index,
                last,
                seq,
                part,
            },
            SyncMessage::ChunkAck { session, index } => Message::SyncChunkAck { session, index },
            SyncMessage::Digest { hashes } => Message::SyncDigest { hashes },
            SyncMessage::Range {
                reply,
                buckets,
                ranges,
                part,
            } => Message::SyncRange {
                reply,
                buckets,
                ranges,
                part,
            },
        }
    }
}
