//! The messages the node's actors send each other.

use super::peer::{Frame, Peer};
use crate::core::anti_entropy::SyncMessage;
use crate::core::crdt::{BirdSpec, NodeName, ReplicaId};
use crate::core::membership::NodeInfo;
use crate::error::Error;
use crate::wire::message::{MemberInfo, Message, RemoteError};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

// ---- to the Ring ----

/// A link completed its handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LinkUp {
    pub info: NodeInfo,
    /// The kinds the peer hosts; `None` from a v1 peer (it hosts all).
    pub kinds: Option<std::collections::BTreeSet<String>>,
    pub peer: Addr<Peer>,
    /// The callers' direct path to the peer's data links (§35).
    pub direct: std::sync::Arc<super::peer::Direct>,
    pub link: u64,
    pub dialed: Option<String>,
}

/// A link closed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LinkDown {
    pub name: NodeName,
    pub link: u64,
}

/// A frame arrived from this peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Heard(pub NodeName);

/// A SWIM detector frame from a peer's control link (`core::swim`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ProbeIn {
    pub from: NodeName,
    pub probe: crate::core::swim::Probe,
}

/// A peer listed the members it knows.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Gossip(pub Vec<MemberInfo>);

/// A peer announced its graceful leave.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PeerLeft {
    pub id: ReplicaId,
    pub peer: Addr<Peer>,
}

/// This peer acknowledged our leave.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PeerLeftAck(pub NodeName);

// ---- to the CrdtReplica ----

/// Registry sync from a peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SyncIn {
    pub from: ReplicaId,
    pub msg: SyncMessage,
    pub peer: Addr<Peer>,
}

/// A registry transfer frame from a peer, not decoded yet: the replica
/// decodes it (see `Inbound::Sync`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SyncRaw {
    pub from: ReplicaId,
    pub frame: bytes::Bytes,
    pub peer: Addr<Peer>,
}

/// A peer acknowledged our deltas up to `seq`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SyncAcked {
    pub from: ReplicaId,
    pub seq: u64,
}

// ---- to the Registry ----

/// Where the answer to a call goes.
pub(crate) enum CallReply {
    /// Back over the link (control or data) the call came on, as a `Reply`
    /// frame.
    /// `forwarded`: the caller's node was not the first to get it (a node
    /// whose view was newer passed it on); it is not forwarded again.
    Link {
        to: Recipient<Frame>,
        id: u64,
        forwarded: bool,
    },
    /// To a caller on this node.
    Local(oneshot::Sender<Result<Vec<u8>, RemoteError>>),
}

impl CallReply {
    pub(crate) fn send(self, result: Result<Vec<u8>, RemoteError>) {
        match self {
            CallReply::Link { to, id, .. } => to.do_send(Frame(Message::Reply { id, result })),
            CallReply::Local(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// A call for a bird this node should run.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct InboundCall {
    pub bird: Arc<str>,
    pub kind: String,
    pub tag: String,
    pub payload: Vec<u8>,
    pub timeout: Duration,
    pub reply: CallReply,
}

/// A cast for a bird this node should run.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct InboundCast {
    pub bird: Arc<str>,
    pub kind: String,
    pub tag: String,
    pub payload: Vec<u8>,
}

/// The registry set changed: start, restart or stop birds accordingly.
#[derive(Message, Default)]
#[rtype(result = "()")]
pub(crate) struct SetChanged {
    pub upserts: Vec<(Arc<str>, BirdSpec)>,
    pub removed: Vec<Arc<str>>,
    /// The replica's generation once this change is in it (set when it is
    /// sent): an owned list read at an older generation misses it.
    pub generation: u64,
}

/// The placement view changed: reconcile the local birds with it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ViewChanged;

/// Result type of requests that can fail with the public error.
pub(crate) type Reply<T> = Result<T, Error>;

/// To the Ring and the CrdtReplica, once every actor's address is published
/// in the node: start working. They run on arbiters of their own and may
/// start before the addresses are set; until this arrives they do nothing
/// that needs another actor (a link that came up then would be lost).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Begin;

// ---- state handoff ----

/// A peer handed over the state of a bird that moved here.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct HandoffIn {
    pub bird: Arc<str>,
    pub state: Option<Vec<u8>>,
    /// Where the ack goes.
    pub peer: Addr<Peer>,
}

/// A peer took over the state of `bird` that this node handed to it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct HandoffAcked(pub Arc<str>);

/// How many handoffs of this node are not acknowledged yet.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct Unacked;
