//! The cookie handshake between two nodes: a pure state machine.
//!
//! Both nodes prove knowledge of the shared cluster cookie without sending
//! it: each sends HMAC-SHA256(cookie, role label ‖ transcript), where the
//! transcript binds both nonces and both identities. No clock, no randomness,
//! no I/O: the runtime draws the nonces, passes the time to the
//! [`NonceCache`], moves the returned messages to the socket and decodes the
//! first frame with [`Message::decode_first`](crate::wire::Message::decode_first).
//!
//! # Steps
//!
//! 1. **Initiator → Acceptor: [`Message::Hello`]** `{ version, cluster, id_i,
//!    listen_i, weight_i, shards, nonce_i }` ([`Initiator::start`]), offering
//!    its newest protocol version (or an older one it speaks after a refusal:
//!    [`Initiator::offering`], [`Versions::fallback`]).
//! 2. **Acceptor** checks, in this order: that it speaks the offered version
//!    ([`Versions::accept`], else [`crate::error::LinkError::VersionMismatch`]; the link then
//!    speaks that version and `Challenge` echoes it), cluster ([`crate::error::LinkError::WrongCluster`]), shard
//!    count ([`crate::error::LinkError::ShardMismatch`]), that the peer is not itself (same node
//!    name, or `nonce_i` equal to its own nonce: [`crate::error::LinkError::Reflected`]), and
//!    that `nonce_i` was not seen recently ([`NonceCache`]:
//!    [`crate::error::LinkError::Replayed`]). **Acceptor → Initiator: [`Message::Challenge`]**
//!    `{ version, id_a, listen_a, weight_a, nonce_a }`, carrying no MAC.
//! 3. **Initiator** checks the version, that the challenge is not its own
//!    data reflected (`nonce_a == nonce_i` or `id_a` has its node name:
//!    [`crate::error::LinkError::Reflected`]), and builds the transcript. **Initiator →
//!    Acceptor: [`Message::Proof`]** `{ mac_i = HMAC(cookie,
//!    "flock/v1/initiator" ‖ transcript) }`.
//! 4. **Acceptor** verifies `mac_i` in constant time ([`crate::error::LinkError::WrongCookie`]).
//!    **Acceptor → Initiator: [`Message::Welcome`]** `{ mac_a = HMAC(cookie,
//!    "flock/v1/acceptor" ‖ transcript) }`. The acceptor is done: it returns
//!    the initiator's [`PeerInfo`].
//! 5. **Initiator** checks `mac_a` is not its own `mac_i` sent back
//!    ([`crate::error::LinkError::Reflected`]) and verifies it in constant time
//!    ([`crate::error::LinkError::WrongCookie`]). The initiator is done: it returns the
//!    acceptor's [`PeerInfo`].
//!
//! 6. **On links of version [`KINDS_SINCE`] (2) or later only**: the
//!    initiator sends [`Message::Kinds`] (the kinds it hosts) after `Welcome`
//!    and the acceptor answers with its own; each side is done when it has
//!    the other's, and [`PeerInfo::kinds`] carries them. A v1 link ends at
//!    step 5 exactly as before, with `kinds: None`.
//!
//! A [`Message::Reject`] from the peer in any waiting state ends the
//! handshake with the matching error (see [`RejectReason`]).
//!
//! # Why this order
//!
//! The acceptor (which anyone who can reach the port can talk to) reveals a
//! MAC only *after* the initiator has proven the cookie, so a stranger never
//! obtains a MAC over a transcript it chose, i.e. it cannot collect material
//! for an offline guessing attack on a weak cookie. The initiator only talks
//! to addresses it chose to dial.
//!
//! # Why these defences
//!
//! - *Transcript*: a canonical, length-prefixed encoding (`u64` big-endian
//!   length before every variable-length field; fixed-width big-endian
//!   integers; raw 32-byte nonces) of version, cluster, shards, both ids,
//!   listen addresses, weights and nonces. It is *not* the rmp bytes, so the
//!   MAC does not depend on encoder details, and length prefixes make field
//!   boundaries unambiguous (no `"ab"+"c"` = `"a"+"bc"`).
//! - *Role labels*: the two MACs use different labels, so one side's MAC can
//!   never be replayed as the other side's (reflection).
//! - *Fresh nonces on both sides*: a recorded `Proof` or `Welcome` from an
//!   old session does not verify in a new one ([`crate::error::LinkError::WrongCookie`]). The
//!   [`NonceCache`] additionally refuses a replayed `Hello` early; it is
//!   bounded, so it is defence in depth, not what security rests on.
//! - *Generic rejection*: every authentication failure is reported to the
//!   peer as [`RejectReason::AuthFailed`], whatever the local error.
//!
//! # Limits
//!
//! This authenticates the two nodes at connection time; it neither encrypts
//! nor authenticates the frames that follow, and an active man-in-the-middle
//! that relays both directions is not detected (as with Erlang distribution
//! cookies). Run the cluster on a trusted network or under TLS.
//!
//! # After an error
//!
//! Every error makes the state machine terminal: further messages give
//! [`crate::error::LinkError::UnexpectedMessage`]. Call [`reject_for`] with the error to get
//! the [`Message::Reject`] to send, if any, before closing the connection.

use crate::core::crdt::MAX_NAME_BYTES;
use crate::core::crdt::ReplicaId;
use crate::error::{Error, Result};
use crate::wire::message::{MAX_ANNOUNCED_KINDS, MacTag, Message, Nonce, RejectReason};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;

mod versions;
pub use versions::{KINDS_SINCE, Versions};

type HmacSha256 = Hmac<Sha256>;

/// MAC label of the initiator's proof (step 3).
const INITIATOR_LABEL: &[u8] = b"flock/v1/initiator";
/// MAC label of the acceptor's proof (step 4).
const ACCEPTOR_LABEL: &[u8] = b"flock/v1/acceptor";

/// What a node needs to know to run handshakes.
#[derive(Clone)]
pub struct HandshakeConfig {
    /// The cluster name; both nodes must use the same.
    pub cluster: String,
    /// The shared secret. Never sent, never printed by `Debug`.
    pub cookie: Vec<u8>,
    /// This node's identity.
    pub me: ReplicaId,
    /// The address this node listens on.
    pub listen: String,
    /// This node's placement weight.
    pub weight: u32,
    /// The shard count; both nodes must use the same.
    pub shards: u32,
    /// The protocol versions this node speaks (N−1 and N unless a test
    /// makes it behave like an older build).
    pub versions: Versions,
    /// The kind tags this node hosts, announced on links of version
    /// [`KINDS_SINCE`] or later.
    pub kinds: BTreeSet<String>,
}

impl fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("cluster", &self.cluster)
            .field("cookie", &"<redacted>")
            .field("me", &self.me)
            .field("listen", &self.listen)
            .field("weight", &self.weight)
            .field("shards", &self.shards)
            .field("versions", &self.versions)
            .field("kinds", &self.kinds)
            .finish()
    }
}

impl HandshakeConfig {
    /// Checks the configuration: the cookie and cluster name must not be
    /// empty, the shard count must be positive.
    ///
    /// Errors: [`Error::InvalidConfig`]. Nothing is changed either way.
    pub fn validate(&self) -> Result<()> {
        if self.cookie.is_empty() {
            return Err(Error::InvalidConfig("the cluster cookie is empty".into()));
        }
        if self.cluster.is_empty() {
            return Err(Error::InvalidConfig("the cluster name is empty".into()));
        }
        if self.shards == 0 {
            return Err(Error::InvalidConfig("the shard count is 0".into()));
        }
        self.versions.validate()?;
        // Kinds starting with a NUL byte are the flock's own (a handoff
        // want travels as a cast of kind "\0flock"; ARCHITECTURE §31).
        if let Some(kind) = self.kinds.iter().find(|k| k.starts_with('\0')) {
            return Err(Error::InvalidConfig(format!(
                "kind tag {kind:?} starts with a NUL byte, which is reserved for the flock's own messages"
            )));
        }
        check_kinds(&self.kinds).map_err(Error::InvalidConfig)
    }
}

/// The bounds on an announced kind list (ours or a peer's): at most
/// [`MAX_ANNOUNCED_KINDS`] tags of 1 to [`MAX_NAME_BYTES`] bytes each.
fn check_kinds<'a>(kinds: impl IntoIterator<Item = &'a String>) -> std::result::Result<(), String> {
    let mut count = 0usize;
    for kind in kinds {
        count += 1;
        if kind.is_empty() || kind.len() > MAX_NAME_BYTES {
            return Err(format!(
                "kind tag of {} bytes announced (1 to {MAX_NAME_BYTES} allowed)",
                kind.len()
            ));
        }
    }
    if count > MAX_ANNOUNCED_KINDS {
        return Err(format!(
            "{count} kinds announced, at most {MAX_ANNOUNCED_KINDS} allowed"
        ));
    }
    Ok(())
}

/// The authenticated peer, returned when a handshake completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's identity.
    pub id: ReplicaId,
    /// The address the peer listens on.
    pub listen: String,
    /// The peer's placement weight.
    pub weight: u32,
    /// The link's protocol version (the peer speaks it; we speak it to the
    /// peer).
    pub version: u32,
    /// The kind tags the peer hosts; `None` on a link older than
    /// [`KINDS_SINCE`] (the peer does not announce them: it hosts all).
    pub kinds: Option<BTreeSet<String>>,
}

/// What one handshake step asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// A message to send to the peer, if any.
    pub send: Option<Message>,
    /// Set when the handshake has completed: the authenticated peer. Send
    /// `send` first, then switch the connection to normal traffic (and raise
    /// the frame cap).
    pub done: Option<PeerInfo>,
}

/// One side's contribution to the transcript.
#[derive(Debug, Clone)]
struct Side {
    id: ReplicaId,
    listen: String,
    weight: u32,
    nonce: Nonce,
}

/// Everything both MACs cover.
#[derive(Debug, Clone)]
struct Transcript {
    version: u32,
    cluster: String,
    shards: u32,
    initiator: Side,
    acceptor: Side,
}

impl Transcript {
    /// A MAC keyed with `cookie` over `label ‖ transcript`, ready to finalize
    /// or verify.
    fn mac(&self, cookie: &[u8], label: &[u8]) -> Result<HmacSha256> {
        // HMAC accepts keys of any length; map the error anyway rather than
        // unwrap, so there is no panic path.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(cookie)
            .map_err(|e| Error::InvalidConfig(format!("cookie: {e}")))?;
        put_bytes(&mut mac, label);
        mac.update(&self.version.to_be_bytes());
        put_bytes(&mut mac, self.cluster.as_bytes());
        mac.update(&self.shards.to_be_bytes());
        for side in [&self.initiator, &self.acceptor] {
            put_bytes(&mut mac, side.id.node.as_bytes());
            mac.update(&side.id.incarnation.to_be_bytes());
            put_bytes(&mut mac, side.listen.as_bytes());
            mac.update(&side.weight.to_be_bytes());
            mac.update(&side.nonce);
        }
        Ok(mac)
    }

    fn tag(&self, cookie: &[u8], label: &[u8]) -> Result<MacTag> {
        Ok(self.mac(cookie, label)?.finalize().into_bytes().into())
    }

    /// Constant-time verification (`Mac::verify_slice`).
    fn verify(&self, cookie: &[u8], label: &[u8], tag: &MacTag) -> Result<()> {
        self.mac(cookie, label)?
            .verify_slice(tag)
            .map_err(|_| Error::Link(crate::error::LinkError::WrongCookie))
    }
}

impl Transcript {
    /// The other side, as the handshake's result: the initiator's side if
    /// we accepted, the acceptor's if we dialled. Kinds come later (v2+).
    fn peer_info(&self, we_accepted: bool) -> PeerInfo {
        let side = if we_accepted {
            &self.initiator
        } else {
            &self.acceptor
        };
        PeerInfo {
            id: side.id.clone(),
            listen: side.listen.clone(),
            weight: side.weight,
            version: self.version,
            kinds: None,
        }
    }
}

/// Our [`Message::Kinds`].
fn announce(cfg: &HandshakeConfig) -> Message {
    Message::Kinds {
        kinds: cfg.kinds.iter().cloned().collect(),
    }
}

/// A peer's announced kinds, within the bounds.
///
/// Errors: [`Error::Decode`] naming the bound it breaks (the peer is told
/// with a `Reject`).
fn received_kinds(kinds: Vec<String>) -> Result<BTreeSet<String>> {
    check_kinds(&kinds).map_err(Error::Decode)?;
    Ok(kinds.into_iter().collect())
}

/// Length-prefixed field: `u64` big-endian length, then the bytes.
fn put_bytes(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

/// The error a received [`Message::Reject`] stands for, from our side;
/// `speaking` is the version we offered (initiator) or speak at most
/// (acceptor).
fn rejection(reason: RejectReason, cfg: &HandshakeConfig, speaking: u32) -> Error {
    match reason {
        RejectReason::Version { ours } => Error::Link(crate::error::LinkError::VersionMismatch {
            ours: speaking,
            theirs: ours,
        }),
        RejectReason::Cluster { ours } => Error::Link(crate::error::LinkError::WrongCluster {
            ours: cfg.cluster.clone(),
            theirs: ours,
        }),
        RejectReason::Shards { ours } => Error::Link(crate::error::LinkError::ShardMismatch {
            ours: cfg.shards,
            theirs: ours,
        }),
        RejectReason::AuthFailed => Error::Link(crate::error::LinkError::WrongCookie),
        RejectReason::Protocol(reason) => Error::Link(crate::error::LinkError::Rejected { reason }),
    }
}

/// The [`Message::Reject`] to send to the peer after a handshake step failed
/// with `error`, or `None` if nothing should be sent (the peer rejected us
/// first, or the connection itself failed).
///
/// Configuration mismatches name our value; all authentication failures
/// (wrong cookie, replay, reflection) give the same
/// [`RejectReason::AuthFailed`], so a prober learns nothing from them.
pub fn reject_for(error: &Error) -> Option<Message> {
    let reason = match error {
        // Our side of the mismatch: the newest version we speak.
        Error::Link(crate::error::LinkError::VersionMismatch { ours, .. }) => {
            RejectReason::Version { ours: *ours }
        }
        Error::Link(crate::error::LinkError::WrongCluster { ours, .. }) => {
            RejectReason::Cluster { ours: ours.clone() }
        }
        Error::Link(crate::error::LinkError::ShardMismatch { ours, .. }) => {
            RejectReason::Shards { ours: *ours }
        }
        Error::Link(crate::error::LinkError::WrongCookie)
        | Error::Link(crate::error::LinkError::Replayed)
        | Error::Link(crate::error::LinkError::Reflected) => RejectReason::AuthFailed,
        Error::Link(crate::error::LinkError::UnexpectedMessage { .. })
        | Error::Decode(_)
        | Error::Link(crate::error::LinkError::FrameTooLarge { .. }) => {
            RejectReason::Protocol(error.to_string())
        }
        _ => return None,
    };
    Some(Message::Reject { reason })
}

fn unexpected(expected: &'static str, got: &Message) -> Error {
    Error::Link(crate::error::LinkError::UnexpectedMessage {
        expected,
        got: got.name(),
    })
}

const AFTER_DONE: &str = "no handshake message (the handshake is complete)";
const AFTER_FAILURE: &str = "nothing (the handshake failed)";

/// The initiator's state.
#[derive(Debug)]
enum InitiatorState {
    /// Step 1 sent; waiting for step 2.
    AwaitChallenge,
    /// Step 3 sent; waiting for step 4.
    AwaitWelcome {
        transcript: Box<Transcript>,
        sent: MacTag,
    },
    /// Authenticated, our kinds sent (v2+); waiting for the acceptor's.
    AwaitKinds(Box<PeerInfo>),
    Done,
    Failed,
}

/// The side that dialled the connection.
#[derive(Debug)]
pub struct Initiator {
    cfg: HandshakeConfig,
    nonce: Nonce,
    /// The protocol version offered in `Hello`; the acceptor must echo it.
    offered: u32,
    state: InitiatorState,
}

impl Initiator {
    /// Step 1: starts a handshake with a fresh random `nonce` (drawn by the
    /// runtime from a CSPRNG, never reused). Returns the machine and the
    /// [`Message::Hello`] to send.
    pub fn start(cfg: HandshakeConfig, nonce: Nonce) -> (Initiator, Message) {
        let newest = cfg.versions.max;
        Initiator::offering(cfg, nonce, newest)
    }

    /// Step 1 offering protocol version `offer` rather than our newest: the
    /// new connection after a peer refused the newest and
    /// [`Versions::fallback`] named an older one.
    pub fn offering(cfg: HandshakeConfig, nonce: Nonce, offer: u32) -> (Initiator, Message) {
        let hello = Message::Hello {
            version: offer,
            cluster: cfg.cluster.clone(),
            id: cfg.me.clone(),
            listen: cfg.listen.clone(),
            weight: cfg.weight,
            shards: cfg.shards,
            nonce,
        };
        let initiator = Initiator {
            cfg,
            nonce,
            offered: offer,
            state: InitiatorState::AwaitChallenge,
        };
        (initiator, hello)
    }

    /// Whether the handshake has completed successfully.
    pub fn is_done(&self) -> bool {
        matches!(self.state, InitiatorState::Done)
    }

    /// Steps 3 and 5: handles the acceptor's next message.
    ///
    /// Errors (the machine is then terminal; see [`reject_for`]):
    /// [`crate::error::LinkError::VersionMismatch`], [`crate::error::LinkError::Reflected`],
    /// [`crate::error::LinkError::WrongCookie`], [`crate::error::LinkError::UnexpectedMessage`], or the error a
    /// received [`Message::Reject`] stands for.
    pub fn on_message(&mut self, msg: Message) -> Result<Outcome> {
        // Failed unless the step succeeds: every error is terminal.
        let state = std::mem::replace(&mut self.state, InitiatorState::Failed);
        let (next, outcome) = self.step(state, msg)?;
        self.state = next;
        Ok(outcome)
    }

    fn step(&self, state: InitiatorState, msg: Message) -> Result<(InitiatorState, Outcome)> {
        let cfg = &self.cfg;
        match (state, msg) {
            (InitiatorState::Done, msg) => Err(unexpected(AFTER_DONE, &msg)),
            (InitiatorState::Failed, msg) => Err(unexpected(AFTER_FAILURE, &msg)),
            (_, Message::Reject { reason }) => Err(rejection(reason, cfg, self.offered)),
            (
                InitiatorState::AwaitChallenge,
                Message::Challenge {
                    version,
                    id,
                    listen,
                    weight,
                    nonce,
                },
            ) => {
                // The acceptor takes our offer or refuses it; anything
                // else is not a peer following the protocol.
                if version != self.offered {
                    return Err(Error::Link(crate::error::LinkError::VersionMismatch {
                        ours: self.offered,
                        theirs: version,
                    }));
                }
                if nonce == self.nonce || id.node == cfg.me.node {
                    return Err(Error::Link(crate::error::LinkError::Reflected));
                }
                let transcript = Transcript {
                    version,
                    cluster: cfg.cluster.clone(),
                    shards: cfg.shards,
                    initiator: Side {
                        id: cfg.me.clone(),
                        listen: cfg.listen.clone(),
                        weight: cfg.weight,
                        nonce: self.nonce,
                    },
                    acceptor: Side {
                        id,
                        listen,
                        weight,
                        nonce,
                    },
                };
                let mac = transcript.tag(&cfg.cookie, INITIATOR_LABEL)?;
                let next = InitiatorState::AwaitWelcome {
                    transcript: Box::new(transcript),
                    sent: mac,
                };
                let outcome = Outcome {
                    send: Some(Message::Proof { mac }),
                    done: None,
                };
                Ok((next, outcome))
            }
            (InitiatorState::AwaitChallenge, msg) => Err(unexpected("Challenge", &msg)),
            (InitiatorState::AwaitWelcome { transcript, sent }, Message::Welcome { mac }) => {
                if mac == sent {
                    return Err(Error::Link(crate::error::LinkError::Reflected));
                }
                transcript.verify(&cfg.cookie, ACCEPTOR_LABEL, &mac)?;
                let peer = transcript.peer_info(false);
                if peer.version >= KINDS_SINCE {
                    let outcome = Outcome {
                        send: Some(announce(cfg)),
                        done: None,
                    };
                    return Ok((InitiatorState::AwaitKinds(Box::new(peer)), outcome));
                }
                let outcome = Outcome {
                    send: None,
                    done: Some(peer),
                };
                Ok((InitiatorState::Done, outcome))
            }
            (InitiatorState::AwaitWelcome { .. }, msg) => Err(unexpected("Welcome", &msg)),
            (InitiatorState::AwaitKinds(mut peer), Message::Kinds { kinds }) => {
                peer.kinds = Some(received_kinds(kinds)?);
                let outcome = Outcome {
                    send: None,
                    done: Some(*peer),
                };
                Ok((InitiatorState::Done, outcome))
            }
            (InitiatorState::AwaitKinds(_), msg) => Err(unexpected("Kinds", &msg)),
        }
    }
}

/// The acceptor's state.
#[derive(Debug)]
enum AcceptorState {
    /// Waiting for step 1.
    AwaitHello,
    /// Step 2 sent; waiting for step 3.
    AwaitProof {
        transcript: Box<Transcript>,
    },
    /// `Welcome` sent on a v2+ link; waiting for the initiator's kinds.
    AwaitKinds(Box<PeerInfo>),
    Done,
    Failed,
}

/// The side that accepted the connection.
#[derive(Debug)]
pub struct Acceptor {
    cfg: HandshakeConfig,
    nonce: Nonce,
    state: AcceptorState,
}

impl Acceptor {
    /// A machine for a freshly accepted connection, with a fresh random
    /// `nonce` (drawn by the runtime from a CSPRNG, never reused).
    pub fn new(cfg: HandshakeConfig, nonce: Nonce) -> Acceptor {
        Acceptor {
            cfg,
            nonce,
            state: AcceptorState::AwaitHello,
        }
    }

    /// Whether the handshake has completed successfully.
    pub fn is_done(&self) -> bool {
        matches!(self.state, AcceptorState::Done)
    }

    /// Steps 2 and 4: handles the initiator's next message. `replay` is the
    /// node-wide cache of recently seen initiator nonces and `now_ms` the
    /// current time of a monotonic clock, in milliseconds.
    ///
    /// Errors (the machine is then terminal; see [`reject_for`]):
    /// [`crate::error::LinkError::VersionMismatch`], [`crate::error::LinkError::WrongCluster`],
    /// [`crate::error::LinkError::ShardMismatch`], [`crate::error::LinkError::Reflected`], [`crate::error::LinkError::Replayed`],
    /// [`crate::error::LinkError::WrongCookie`], [`crate::error::LinkError::UnexpectedMessage`], or the error a
    /// received [`Message::Reject`] stands for. A `Hello` refused for a
    /// mismatch or reflection does not enter the nonce cache.
    pub fn on_message(
        &mut self,
        msg: Message,
        replay: &mut NonceCache,
        now_ms: u64,
    ) -> Result<Outcome> {
        let state = std::mem::replace(&mut self.state, AcceptorState::Failed);
        let (next, outcome) = self.step(state, msg, replay, now_ms)?;
        self.state = next;
        Ok(outcome)
    }

    fn step(
        &self,
        state: AcceptorState,
        msg: Message,
        replay: &mut NonceCache,
        now_ms: u64,
    ) -> Result<(AcceptorState, Outcome)> {
        let cfg = &self.cfg;
        match (state, msg) {
            (AcceptorState::Done, msg) => Err(unexpected(AFTER_DONE, &msg)),
            (AcceptorState::Failed, msg) => Err(unexpected(AFTER_FAILURE, &msg)),
            (_, Message::Reject { reason }) => Err(rejection(reason, cfg, cfg.versions.max)),
            (
                AcceptorState::AwaitHello,
                Message::Hello {
                    version,
                    cluster,
                    id,
                    listen,
                    weight,
                    shards,
                    nonce,
                },
            ) => {
                let version = cfg.versions.accept(version)?;
                if cluster != cfg.cluster {
                    return Err(Error::Link(crate::error::LinkError::WrongCluster {
                        ours: cfg.cluster.clone(),
                        theirs: cluster,
                    }));
                }
                if shards != cfg.shards {
                    return Err(Error::Link(crate::error::LinkError::ShardMismatch {
                        ours: cfg.shards,
                        theirs: shards,
                    }));
                }
                if nonce == self.nonce || id.node == cfg.me.node {
                    return Err(Error::Link(crate::error::LinkError::Reflected));
                }
                replay.check_and_insert(&nonce, now_ms)?;
                let transcript = Transcript {
                    version,
                    cluster: cfg.cluster.clone(),
                    shards: cfg.shards,
                    initiator: Side {
                        id,
                        listen,
                        weight,
                        nonce,
                    },
                    acceptor: Side {
                        id: cfg.me.clone(),
                        listen: cfg.listen.clone(),
                        weight: cfg.weight,
                        nonce: self.nonce,
                    },
                };
                let challenge = Message::Challenge {
                    version,
                    id: cfg.me.clone(),
                    listen: cfg.listen.clone(),
                    weight: cfg.weight,
                    nonce: self.nonce,
                };
                let next = AcceptorState::AwaitProof {
                    transcript: Box::new(transcript),
                };
                let outcome = Outcome {
                    send: Some(challenge),
                    done: None,
                };
                Ok((next, outcome))
            }
            (AcceptorState::AwaitHello, msg) => Err(unexpected("Hello", &msg)),
            (AcceptorState::AwaitProof { transcript }, Message::Proof { mac }) => {
                transcript.verify(&cfg.cookie, INITIATOR_LABEL, &mac)?;
                let welcome = Message::Welcome {
                    mac: transcript.tag(&cfg.cookie, ACCEPTOR_LABEL)?,
                };
                let peer = transcript.peer_info(true);
                if peer.version >= KINDS_SINCE {
                    let outcome = Outcome {
                        send: Some(welcome),
                        done: None,
                    };
                    return Ok((AcceptorState::AwaitKinds(Box::new(peer)), outcome));
                }
                let outcome = Outcome {
                    send: Some(welcome),
                    done: Some(peer),
                };
                Ok((AcceptorState::Done, outcome))
            }
            (AcceptorState::AwaitProof { .. }, msg) => Err(unexpected("Proof", &msg)),
            (AcceptorState::AwaitKinds(mut peer), Message::Kinds { kinds }) => {
                peer.kinds = Some(received_kinds(kinds)?);
                let outcome = Outcome {
                    send: Some(announce(cfg)),
                    done: Some(*peer),
                };
                Ok((AcceptorState::Done, outcome))
            }
            (AcceptorState::AwaitKinds(_), msg) => Err(unexpected("Kinds", &msg)),
        }
    }
}

/// A bounded set of recently seen initiator nonces, shared by all of a
/// node's acceptors, to refuse a replayed [`Message::Hello`] early.
///
/// An entry is forgotten after `ttl_ms` or when `capacity` newer ones push
/// it out (oldest first). Time is passed in, from a monotonic clock.
#[derive(Debug, Clone)]
pub struct NonceCache {
    capacity: usize,
    ttl_ms: u64,
    seen: HashSet<Nonce>,
    /// Insertion order with insertion time, oldest first.
    order: VecDeque<(Nonce, u64)>,
}

impl NonceCache {
    /// An empty cache remembering at most `capacity` nonces (at least one)
    /// for `ttl_ms` milliseconds each.
    pub fn new(capacity: usize, ttl_ms: u64) -> NonceCache {
        NonceCache {
            capacity: capacity.max(1),
            ttl_ms,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Forgets the nonces older than the TTL at `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        while let Some(&(nonce, at)) = self.order.front() {
            if at.saturating_add(self.ttl_ms) > now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
    }

    /// Records `nonce` as seen at `now_ms`.
    ///
    /// Errors: [`crate::error::LinkError::Replayed`] if it was seen within the TTL; the cache
    /// is then unchanged (apart from expiring old entries).
    pub fn check_and_insert(&mut self, nonce: &Nonce, now_ms: u64) -> Result<()> {
        self.expire(now_ms);
        if self.seen.contains(nonce) {
            return Err(Error::Link(crate::error::LinkError::Replayed));
        }
        if self.order.len() >= self.capacity
            && let Some((oldest, _)) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(*nonce);
        self.order.push_back((*nonce, now_ms));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const NOW: u64 = 1_000_000;

    fn id(node: &str) -> ReplicaId {
        ReplicaId {
            node: Arc::from(node),
            incarnation: 7,
        }
    }

    fn cfg(node: &str, cookie: &str) -> HandshakeConfig {
        HandshakeConfig {
            cluster: "flock".into(),
            cookie: cookie.as_bytes().to_vec(),
            me: id(node),
            listen: format!("{node}:4369"),
            weight: 1,
            shards: 64,
            // These tests are the v1 handshake, which links to v1 nodes
            // still use; `version_tests` covers v2 and the negotiation.
            versions: Versions::exactly(1),
            kinds: BTreeSet::new(),
        }
    }

    fn cache() -> NonceCache {
        NonceCache::new(1024, 60_000)
    }

    fn send(outcome: Result<Outcome>) -> Message {
        outcome.unwrap().send.unwrap()
    }

    /// Runs a full handshake; returns (initiator's peer, acceptor's peer).
    fn handshake(
        i_cfg: HandshakeConfig,
        a_cfg: HandshakeConfig,
        replay: &mut NonceCache,
        nonce_i: Nonce,
        nonce_a: Nonce,
    ) -> (Result<PeerInfo>, Result<PeerInfo>) {
        let (mut ini, hello) = Initiator::start(i_cfg, nonce_i);
        let mut acc = Acceptor::new(a_cfg, nonce_a);
        let challenge = match acc.on_message(hello, replay, NOW) {
            Ok(o) => o.send.unwrap(),
            Err(e) => return (Err(e.clone()), Err(e)),
        };
        let proof = match ini.on_message(challenge) {
            Ok(o) => o.send.unwrap(),
            Err(e) => return (Err(e.clone()), Err(e)),
        };
        let (welcome, a_peer) = match acc.on_message(proof, replay, NOW) {
            Ok(o) => (o.send.unwrap(), o.done.unwrap()),
            Err(e) => {
                let reject = reject_for(&e).unwrap();
                return (ini.on_message(reject).map(|o| o.done.unwrap()), Err(e));
            }
        };
        let i_peer = ini.on_message(welcome).map(|o| o.done.unwrap());
        (i_peer, Ok(a_peer))
    }

    #[test]
    fn handshake_succeeds_with_same_cookie() {
        let (i, a) = handshake(
            cfg("a", "c00k1e"),
            cfg("b", "c00k1e"),
            &mut cache(),
            [1; 32],
            [2; 32],
        );
        assert_eq!(
            i.unwrap(),
            PeerInfo {
                id: id("b"),
                listen: "b:4369".into(),
                weight: 1,
                version: 1,
                kinds: None,
            }
        );
        assert_eq!(
            a.unwrap(),
            PeerInfo {
                id: id("a"),
                listen: "a:4369".into(),
                weight: 1,
                version: 1,
                kinds: None,
            }
        );
    }

    #[test]
    fn wrong_cookie_is_rejected_on_both_sides() {
        let (i, a) = handshake(
            cfg("a", "one"),
            cfg("b", "two"),
            &mut cache(),
            [1; 32],
            [2; 32],
        );
        assert_eq!(a, Err(Error::Link(crate::error::LinkError::WrongCookie)));
        assert_eq!(i, Err(Error::Link(crate::error::LinkError::WrongCookie)));
        // The reject does not say more than "authentication failed".
        assert_eq!(
            reject_for(&Error::Link(crate::error::LinkError::WrongCookie)),
            Some(Message::Reject {
                reason: RejectReason::AuthFailed
            })
        );
    }

    #[test]
    fn impostor_acceptor_is_rejected_by_the_initiator() {
        // An acceptor without the cookie cannot produce step 4.
        let (mut ini, _hello) = Initiator::start(cfg("a", "c"), [1; 32]);
        let challenge = Message::Challenge {
            version: 1,
            id: id("b"),
            listen: "b:1".into(),
            weight: 1,
            nonce: [2; 32],
        };
        send(ini.on_message(challenge));
        let forged = Message::Welcome { mac: [9; 32] };
        assert_eq!(
            ini.on_message(forged),
            Err(Error::Link(crate::error::LinkError::WrongCookie))
        );
        assert!(!ini.is_done());
    }

    #[test]
    fn replayed_hello_is_rejected() {
        let mut replay = cache();
        let (_, hello) = Initiator::start(cfg("a", "c"), [1; 32]);
        let mut first = Acceptor::new(cfg("b", "c"), [2; 32]);
        send(first.on_message(hello.clone(), &mut replay, NOW));
        let mut second = Acceptor::new(cfg("b", "c"), [3; 32]);
        let err = second.on_message(hello.clone(), &mut replay, NOW + 1);
        assert_eq!(err, Err(Error::Link(crate::error::LinkError::Replayed)));
        assert_eq!(
            reject_for(&Error::Link(crate::error::LinkError::Replayed)),
            Some(Message::Reject {
                reason: RejectReason::AuthFailed
            })
        );
        // After the TTL the cache forgets, and only the fresh acceptor nonce
        // protects (the replayer still cannot produce a proof).
        let mut third = Acceptor::new(cfg("b", "c"), [4; 32]);
        send(third.on_message(hello, &mut replay, NOW + 60_000));
    }

    #[test]
    fn replayed_proof_from_an_old_session_is_rejected() {
        let mut replay = cache();
        // An old, successful session, recorded by an eavesdropper.
        let (mut ini, hello) = Initiator::start(cfg("a", "c"), [1; 32]);
        let mut acc = Acceptor::new(cfg("b", "c"), [2; 32]);
        let challenge = send(acc.on_message(hello.clone(), &mut replay, NOW));
        let old_proof = send(ini.on_message(challenge));
        assert!(acc.on_message(old_proof.clone(), &mut replay, NOW).is_ok());

        // The attacker opens a new session with a fresh-looking Hello (a new
        // nonce, so the cache does not catch it) and replays the old proof.
        let Message::Hello {
            version,
            cluster,
            id,
            listen,
            weight,
            shards,
            ..
        } = hello
        else {
            unreachable!()
        };
        let hello2 = Message::Hello {
            version,
            cluster,
            id,
            listen,
            weight,
            shards,
            nonce: [5; 32],
        };
        let mut acc2 = Acceptor::new(cfg("b", "c"), [6; 32]);
        send(acc2.on_message(hello2, &mut replay, NOW));
        assert_eq!(
            acc2.on_message(old_proof, &mut replay, NOW),
            Err(Error::Link(crate::error::LinkError::WrongCookie))
        );
        assert!(!acc2.is_done());
    }

    #[test]
    fn reflected_challenge_is_rejected() {
        // The initiator's own nonce sent back as the acceptor's.
        let (mut ini, _) = Initiator::start(cfg("a", "c"), [1; 32]);
        let reflected = Message::Challenge {
            version: 1,
            id: id("b"),
            listen: "b:1".into(),
            weight: 1,
            nonce: [1; 32],
        };
        assert_eq!(
            ini.on_message(reflected),
            Err(Error::Link(crate::error::LinkError::Reflected))
        );

        // The initiator's own identity (we dialled ourselves).
        let (mut ini, _) = Initiator::start(cfg("a", "c"), [1; 32]);
        let ourselves = Message::Challenge {
            version: 1,
            id: ReplicaId {
                node: Arc::from("a"),
                incarnation: 99,
            },
            listen: "a:4369".into(),
            weight: 1,
            nonce: [2; 32],
        };
        assert_eq!(
            ini.on_message(ourselves),
            Err(Error::Link(crate::error::LinkError::Reflected))
        );

        // The initiator's own proof sent back as the acceptor's Welcome.
        let (mut ini, _) = Initiator::start(cfg("a", "c"), [1; 32]);
        let challenge = Message::Challenge {
            version: 1,
            id: id("b"),
            listen: "b:1".into(),
            weight: 1,
            nonce: [2; 32],
        };
        let Message::Proof { mac } = send(ini.on_message(challenge)) else {
            panic!("expected a Proof")
        };
        assert_eq!(
            ini.on_message(Message::Welcome { mac }),
            Err(Error::Link(crate::error::LinkError::Reflected))
        );
    }

    #[test]
    fn reflected_hello_is_rejected_by_the_acceptor() {
        let mut replay = cache();
        // Our own identity…
        let (_, hello) = Initiator::start(cfg("b", "c"), [1; 32]);
        let mut acc = Acceptor::new(cfg("b", "c"), [2; 32]);
        assert_eq!(
            acc.on_message(hello, &mut replay, NOW),
            Err(Error::Link(crate::error::LinkError::Reflected))
        );
        // …or our own nonce.
        let (_, hello) = Initiator::start(cfg("a", "c"), [2; 32]);
        let mut acc = Acceptor::new(cfg("b", "c"), [2; 32]);
        assert_eq!(
            acc.on_message(hello, &mut replay, NOW),
            Err(Error::Link(crate::error::LinkError::Reflected))
        );
        assert!(replay.is_empty(), "refused hellos do not enter the cache");
    }

    #[test]
    fn initiator_proof_cannot_be_reflected_as_acceptor_proof() {
        // Same transcript, different labels: the MACs differ.
        let t = Transcript {
            version: 1,
            cluster: "flock".into(),
            shards: 64,
            initiator: Side {
                id: id("a"),
                listen: "a".into(),
                weight: 1,
                nonce: [1; 32],
            },
            acceptor: Side {
                id: id("b"),
                listen: "b".into(),
                weight: 1,
                nonce: [2; 32],
            },
        };
        let mac_i = t.tag(b"c", INITIATOR_LABEL).unwrap();
        assert_eq!(
            t.verify(b"c", ACCEPTOR_LABEL, &mac_i),
            Err(Error::Link(crate::error::LinkError::WrongCookie))
        );
        assert_eq!(t.verify(b"c", INITIATOR_LABEL, &mac_i), Ok(()));
    }

    #[test]
    fn wrong_cluster_is_rejected() {
        let mut other = cfg("a", "c");
        other.cluster = "elsewhere".into();
        let (mut ini, hello) = Initiator::start(other, [1; 32]);
        let mut acc = Acceptor::new(cfg("b", "c"), [2; 32]);
        let err = acc.on_message(hello, &mut cache(), NOW).unwrap_err();
        assert_eq!(
            err,
            Error::Link(crate::error::LinkError::WrongCluster {
                ours: "flock".into(),
                theirs: "elsewhere".into()
            })
        );
        // The initiator learns why, from its own point of view.
        let reject = reject_for(&err).unwrap();
        assert_eq!(
            ini.on_message(reject),
            Err(Error::Link(crate::error::LinkError::WrongCluster {
                ours: "elsewhere".into(),
                theirs: "flock".into()
            }))
        );
    }

    #[test]
    fn shard_mismatch_is_rejected() {
        let mut other = cfg("a", "c");
        other.shards = 128;
        let (mut ini, hello) = Initiator::start(other, [1; 32]);
        let mut acc = Acceptor::new(cfg("b", "c"), [2; 32]);
        let err = acc.on_message(hello, &mut cache(), NOW).unwrap_err();
        assert_eq!(
            err,
            Error::Link(crate::error::LinkError::ShardMismatch {
                ours: 64,
                theirs: 128
            })
        );
        assert_eq!(
            ini.on_message(reject_for(&err).unwrap()),
            Err(Error::Link(crate::error::LinkError::ShardMismatch {
                ours: 128,
                theirs: 64
            }))
        );
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let (mut ini, hello) = Initiator::start(cfg("a", "c"), [1; 32]);
        let Message::Hello {
            cluster,
            id,
            listen,
            weight,
            shards,
            nonce,
            ..
        } = hello
        else {
            unreachable!()
        };
        let future = Message::Hello {
            version: 7,
            cluster,
            id,
            listen,
            weight,
            shards,
            nonce,
        };
        // Through the wire: the first frame's version is peeked first.
        let bytes = future.encode().unwrap();
        assert_eq!(crate::wire::message::peek_version(&bytes), Ok(7));
        // The codec names this build's newest version...
        let expected = Error::Link(crate::error::LinkError::VersionMismatch { ours: 2, theirs: 7 });
        assert_eq!(Message::decode_first(&bytes), Err(expected));
        // ...and the state machine the newest this node speaks.
        let mut acc = Acceptor::new(cfg("b", "c"), [2; 32]);
        assert_eq!(
            acc.on_message(future, &mut cache(), NOW),
            Err(Error::Link(crate::error::LinkError::VersionMismatch {
                ours: 1,
                theirs: 7
            }))
        );
        // The initiator is told the acceptor's version.
        let reject = Message::Reject {
            reason: RejectReason::Version { ours: 3 },
        };
        assert_eq!(
            ini.on_message(reject),
            Err(Error::Link(crate::error::LinkError::VersionMismatch {
                ours: 1,
                theirs: 3
            }))
        );
        assert_eq!(
            Error::Link(crate::error::LinkError::VersionMismatch { ours: 1, theirs: 3 })
                .to_string(),
            "protocol version mismatch: we speak v1, the peer speaks v3; upgrade the older node"
        );
    }

    #[test]
    fn out_of_order_messages_are_unexpected_and_errors_are_terminal() {
        let mut replay = cache();
        let mut acc = Acceptor::new(cfg("b", "c"), [2; 32]);
        let proof = Message::Proof { mac: [0; 32] };
        assert_eq!(
            acc.on_message(proof, &mut replay, NOW),
            Err(Error::Link(crate::error::LinkError::UnexpectedMessage {
                expected: "Hello",
                got: "Proof"
            }))
        );
        // Terminal: even a valid Hello is refused now.
        let (_, hello) = Initiator::start(cfg("a", "c"), [1; 32]);
        assert_eq!(
            acc.on_message(hello, &mut replay, NOW),
            Err(Error::Link(crate::error::LinkError::UnexpectedMessage {
                expected: AFTER_FAILURE,
                got: "Hello"
            }))
        );

        let (mut ini, _) = Initiator::start(cfg("a", "c"), [1; 32]);
        let err = ini.on_message(Message::Heartbeat { seq: 1 }).unwrap_err();
        assert_eq!(
            err,
            Error::Link(crate::error::LinkError::UnexpectedMessage {
                expected: "Challenge",
                got: "Heartbeat"
            })
        );
        assert!(matches!(
            reject_for(&err),
            Some(Message::Reject {
                reason: RejectReason::Protocol(_)
            })
        ));
        // A received Protocol reject surfaces as `Rejected`, and is not answered.
        let (mut ini, _) = Initiator::start(cfg("a", "c"), [1; 32]);
        let err = ini
            .on_message(Message::Reject {
                reason: RejectReason::Protocol("bad".into()),
            })
            .unwrap_err();
        assert_eq!(
            err,
            Error::Link(crate::error::LinkError::Rejected {
                reason: "bad".into()
            })
        );
        assert_eq!(reject_for(&err), None);
    }

    #[test]
    fn nonce_cache_is_bounded_and_expires() {
        let mut c = NonceCache::new(2, 100);
        assert_eq!(c.check_and_insert(&[1; 32], 0), Ok(()));
        assert_eq!(
            c.check_and_insert(&[1; 32], 99),
            Err(Error::Link(crate::error::LinkError::Replayed))
        );
        assert_eq!(c.check_and_insert(&[1; 32], 100), Ok(()), "expired at ttl");
        assert_eq!(c.check_and_insert(&[2; 32], 100), Ok(()));
        assert_eq!(
            c.check_and_insert(&[3; 32], 100),
            Ok(()),
            "evicts the oldest"
        );
        assert_eq!(c.len(), 2);
        assert_eq!(
            c.check_and_insert(&[3; 32], 101),
            Err(Error::Link(crate::error::LinkError::Replayed))
        );
        assert_eq!(c.check_and_insert(&[1; 32], 101), Ok(()));
    }

    #[test]
    fn config_debug_hides_the_cookie() {
        let c = cfg("a", "sup3r-s3cret");
        assert!(!format!("{c:?}").contains("sup3r"));
        assert_eq!(c.validate(), Ok(()));
        assert!(cfg("a", "").validate().is_err());
    }

    #[test]
    fn a_kind_tag_starting_with_a_nul_byte_is_refused_as_reserved() {
        let mut c = cfg("a", "cookie");
        c.kinds = ["\0flock".to_owned()].into();
        assert!(matches!(c.validate(), Err(Error::InvalidConfig(e)) if e.contains("reserved")));
    }
}

#[cfg(test)]
mod version_tests;
