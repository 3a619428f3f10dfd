//! One link to another node: handshake, then frames in both directions.
//!
//! A `Peer` actor owns one byte stream. It runs the pure handshake state
//! machine until both sides proved the cookie, then raises its frame limit
//! and becomes a router: every frame is decoded by the codec and handed to
//! the actor that deals with it (membership to the Ring, sync to the
//! CrdtReplica, calls and casts to the Registry, replies to the caller
//! waiting here). Outgoing calls are tracked here so that a lost link fails
//! them at once instead of letting them wait for their deadline.

mod accept;
mod data;
mod direct;
mod dispatch;
mod io;
mod outgoing;
mod replies;
mod settle;

use super::directory::Directory;
use super::messages::{
    Gossip, HandoffAcked, HandoffIn, Heard, LinkDown, LinkUp, PeerLeft, PeerLeftAck, ProbeIn,
    SyncAcked, SyncIn, SyncRaw,
};
use super::node::{Handshaking, Node, nonce};
use super::ring::{DialFailed, Redial};
use super::telemetry;
use crate::core::crdt::NodeName;
use crate::core::data_links::{DataLanes, LanesConfig};
use crate::core::handshake::{Acceptor, Initiator, Outcome, reject_for};
use crate::core::membership::NodeInfo;
use crate::error::Error;
use crate::net::BoxStream;
use crate::wire::message::{Message, Nonce, RejectReason, RemoteError};
use crate::wire::user::UserIn;
pub(crate) use accept::accept;
use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
pub(crate) use direct::{Direct, PeerLink};
pub(crate) use io::encode_frame;
use io::{Inbound, Outbound, ReadCodec, WriteCodec, WriteSide, oversize};
use outgoing::Data;
pub(crate) use outgoing::{OutCall, OutCast, Outgoing};
pub(crate) use settle::AckLeave;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

/// How long a closing link waits for its last frames (a `Reject`) to leave
/// and for the peer to close its side, before it drops the connection anyway.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Unsent bytes a link may hold, in frames of the configured `max_frame`:
/// past that the peer is not reading and the link is closed.
const MAX_UNSENT_FRAMES: usize = 2;

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// A frame from `peer` arrived (on its control link or one of its data
/// links): tells the Ring at most twice per heartbeat interval rather than
/// once per frame. Data links count too: a sender busy with a burst may
/// route it on the thread that also sends its heartbeats, which then go
/// out late, while the burst itself shows the peer alive (a host declared
/// a casting client down in stop 15's 500k-cast runs).
pub(super) fn heard(node: &Node, peer: &NodeName, last_report: &mut u64) {
    let Some(actors) = node.actors() else { return };
    let now = node.now_ms();
    if now.saturating_sub(*last_report) >= node.config.membership.heartbeat_ms / 2 {
        *last_report = now;
        actors.ring.do_send(Heard(peer.clone()));
    }
}

enum Auth {
    Initiating(Box<Initiator>),
    Accepting(Box<Acceptor>),
    Up(NodeInfo),
    Failed,
}

/// The reply channel of one outgoing call.
pub(crate) type ReplyTx = oneshot::Sender<Result<Vec<u8>, RemoteError>>;

pub(crate) struct Peer {
    node: Arc<Node>,
    directory: Directory,
    link: u64,
    auth: Auth,
    /// The address this node dialled, if it initiated the link.
    dialed: Option<String>,
    writer: FramedWrite<Outbound, WriteSide, WriteCodec>,
    read_limit: Arc<AtomicUsize>,
    /// Who is at the other end, shared with the encoder for its logs.
    label: Rc<RefCell<String>>,
    /// Closing: the writer flushes, half-closes, and the actor stops at the
    /// peer's end-of-stream or after [`CLOSE_LINGER`].
    closing: Rc<Cell<bool>>,
    /// Registered in the node's table of handshakes under way.
    handshaking: bool,
    calls: HashMap<u64, ReplyTx>,
    next_call: u64,
    last_heard_report: u64,
    /// The peer's calls handed to birds and not answered yet.
    replies: replies::Replies,
    /// Who waits for this link to hold nothing (a leave, §39).
    settling: settle::Settling,
    /// The peer is leaving and this node acknowledges (or acknowledged)
    /// it: no new call is written to it (§39).
    peer_leaving: bool,
    /// Set when the peer refused our protocol version but speaks an older
    /// one we speak too: the Ring dials again offering it.
    redial_at: Option<u32>,

    /// The initiator's and the acceptor's handshake nonces, for the
    /// data-link session.
    hello_nonce: Option<Nonce>,
    challenge_nonce: Option<Nonce>,
    data: Data,
}

impl Peer {
    /// Starts a link over `stream`; `dialed` is the address this node
    /// dialled (it then initiates the handshake, offering protocol version
    /// `offer`, or its newest if `None`), `None` for accepted links.
    pub(crate) fn start(
        node: Arc<Node>,
        directory: Directory,
        stream: BoxStream,
        dialed: Option<String>,
        offer: Option<u32>,
    ) -> Addr<Peer> {
        Peer::create(move |ctx| {
            let link = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
            let (read, write) = tokio::io::split(stream);
            let read_limit = Arc::new(AtomicUsize::new(crate::wire::codec::PRE_AUTH_MAX_FRAME));
            ctx.add_stream(FramedRead::new(read, ReadCodec::new(read_limit.clone())));
            let label = Rc::new(RefCell::new(
                dialed
                    .clone()
                    .unwrap_or_else(|| "an unauthenticated peer".into()),
            ));
            let closing = Rc::new(Cell::new(false));
            let max_frame = node.config.max_frame;
            let encoder = WriteCodec::new(
                max_frame,
                max_frame.saturating_mul(MAX_UNSENT_FRAMES),
                label.clone(),
            );
            let mut writer = FramedWrite::new(WriteSide::new(write, closing.clone()), encoder, ctx);
            let mine = nonce();
            let (hello_nonce, challenge_nonce) = match (&mine, &dialed) {
                (Ok(n), Some(_)) => (Some(*n), None),
                (Ok(n), None) => (None, Some(*n)),
                (Err(_), _) => (None, None),
            };
            let auth = match mine {
                Err(e) => {
                    tracing::error!("cannot open a link: {e}");
                    Auth::Failed
                }
                Ok(n) if dialed.is_some() => {
                    let cfg = node.handshake_config();
                    let offer = offer.unwrap_or(cfg.versions.max);
                    let (initiator, hello) = Initiator::offering(cfg, n, offer);
                    writer.write(Outbound::Msg(hello));
                    Auth::Initiating(Box::new(initiator))
                }
                Ok(n) => Auth::Accepting(Box::new(Acceptor::new(node.handshake_config(), n))),
            };
            let handshaking = !matches!(auth, Auth::Failed);
            if handshaking {
                node.handshake_started(
                    link,
                    Handshaking {
                        accepted: dialed.is_none(),
                        dialed: dialed.clone(),
                        claimed: None,
                    },
                );
            }
            Peer {
                node,
                directory,
                link,
                auth,
                dialed,
                writer,
                read_limit,
                label,
                closing,
                handshaking,
                calls: HashMap::new(),
                next_call: 1,
                last_heard_report: 0,
                replies: Default::default(),
                settling: Default::default(),
                peer_leaving: false,
                redial_at: None,

                hello_nonce,
                challenge_nonce,
                data: Data {
                    lanes: DataLanes::control_only(LanesConfig::default()),
                    links: HashMap::new(),
                    direct: Arc::default(),
                    session: None,
                    alive: None,
                    drops: Default::default(),
                },
            }
        })
    }

    fn peer_name(&self) -> String {
        self.label.borrow().clone()
    }

    /// Closes the link without losing what was written last (a `Reject`):
    /// the writer flushes and half-closes, and the actor stops when the peer
    /// closes its side, or after [`CLOSE_LINGER`] at the latest. Whatever
    /// arrives meanwhile is ignored.
    fn close_gracefully(&mut self, ctx: &mut Context<Self>) {
        if self.closing.get() {
            return;
        }
        self.end_handshake();
        self.closing.set(true);
        // Callers take the Peer's path again, which refuses what comes
        // while the link closes, as before the direct path (§35).
        self.data.direct.withdraw_all();
        self.writer.close();
        ctx.run_later(CLOSE_LINGER, |_, ctx| ctx.stop());
    }

    /// Writes a frame, refusing (rather than sending) one the peer would
    /// reject for its size: the link stays up and the caller gets an error.
    fn write(&mut self, msg: Message) {
        if let Some(what) = oversize(&msg, self.node.config.max_frame) {
            tracing::warn!("not sending to {}: {what}", self.peer_name());
            match msg {
                Message::Reply { id, .. } => self.writer.write(Outbound::Msg(Message::Reply {
                    id,
                    result: Err(RemoteError::Encode(what)),
                })),
                Message::Call { id, .. } => {
                    if let Some(tx) = self.calls.remove(&id) {
                        let _ = tx.send(Err(RemoteError::Encode(what)));
                    }
                }
                _ => {}
            }
            return;
        }
        self.writer.write(Outbound::Msg(msg));
    }

    /// Notes who the other side claims to be (for the Ring's duplicate-link
    /// grace), and says loudly if it claims to be this very node.
    fn note_claim(&self, msg: &Message) {
        let (Message::Hello { id, .. } | Message::Challenge { id, .. }) = msg else {
            return;
        };
        self.node.handshake_claims(self.link, &id.node);
        let me = &self.node.me.id;
        if id.node == me.node && id.incarnation != me.incarnation {
            tracing::error!(
                "another live process is also named {} (incarnation {}; this one is {}), \
                 reached at {}: node names must be unique in a cluster, stop one of them",
                me.node,
                id.incarnation,
                me.incarnation,
                self.peer_name()
            );
        }
    }

    fn handshake(&mut self, msg: Message, ctx: &mut Context<Self>) {
        self.note_claim(&msg);
        match (&self.auth, &msg) {
            (Auth::Accepting(_), Message::Hello { nonce, .. }) => self.hello_nonce = Some(*nonce),
            (Auth::Initiating(_), Message::Challenge { nonce, .. }) => {
                self.challenge_nonce = Some(*nonce)
            }
            _ => {}
        }
        let now = self.node.now_ms();
        let result = match &mut self.auth {
            Auth::Initiating(i) => i.on_message(msg),
            Auth::Accepting(a) => {
                let mut nonces = self.node.nonces.lock().unwrap_or_else(|e| e.into_inner());
                a.on_message(msg, &mut nonces, now)
            }
            _ => return,
        };
        match result {
            Ok(Outcome { send, done }) => {
                if let Some(m) = send {
                    self.write(m);
                }
                if let Some(peer) = done {
                    let info = NodeInfo {
                        id: peer.id,
                        addr: peer.listen,
                        weight: peer.weight,
                    };
                    self.authenticated(info, peer.kinds, ctx);
                }
            }
            Err(e) => self.refuse(e, ctx),
        }
    }

    /// Leaves the table of handshakes under way, once: on success, refusal
    /// or close.
    fn end_handshake(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.node.handshake_ended(self.link);
        }
    }

    fn authenticated(
        &mut self,
        info: NodeInfo,
        kinds: Option<std::collections::BTreeSet<String>>,
        ctx: &mut Context<Self>,
    ) {
        self.end_handshake();
        tracing::debug!("link {} to {} authenticated", self.link, info.id.node);
        self.read_limit
            .store(self.node.config.max_frame, Ordering::Relaxed);
        *self.label.borrow_mut() = info.id.node.to_string();
        self.auth = Auth::Up(info.clone());
        self.start_data_session();
        let Some(actors) = self.node.actors() else {
            return;
        };
        let up = actors.ring.send(LinkUp {
            info,
            kinds,
            peer: ctx.address(),
            direct: self.data.direct.clone(),
            link: self.link,
            dialed: self.dialed.clone(),
        });
        // No frame of the peer's is handled before the Ring has put it in
        // the view: its registry sync, handed-over states and calls would
        // otherwise reach this node's Registry under a view without the
        // peer, where a joining node owns every bird and starts the peer's
        // birds afresh instead of waiting for their state (the rolling
        // restart lost counts this way). `wait` holds the mailbox and the
        // read stream; bounded, since a Ring that does not answer within
        // the handshake timeout is stopping.
        let bound = self.node.config.handshake_timeout;
        ctx.wait(
            async move {
                if tokio::time::timeout(bound, up).await.is_err() {
                    tracing::warn!("the Ring did not take a new link within {bound:?}");
                }
            }
            .into_actor(self),
        );
    }

    fn refuse(&mut self, e: Error, ctx: &mut Context<Self>) {
        if let (
            Auth::Initiating(_),
            Error::Link(crate::error::LinkError::VersionMismatch { ours, theirs }),
        ) = (&self.auth, &e)
        {
            self.redial_at = self.node.config.versions().fallback(*ours, *theirs);
        }
        match e {
            Error::Link(crate::error::LinkError::VersionMismatch { theirs, .. })
                if self.redial_at.is_some() =>
            {
                tracing::info!(
                    "{} speaks protocol v{theirs}: dialling again at v{theirs}",
                    self.peer_name()
                )
            }
            Error::Link(crate::error::LinkError::WrongCookie)
            | Error::Link(crate::error::LinkError::Replayed)
            | Error::Link(crate::error::LinkError::Reflected) => {
                tracing::warn!("refusing link with {}: {e}", self.peer_name())
            }
            _ => tracing::error!("refusing link with {}: {e}", self.peer_name()),
        }
        if let Some(reject) = reject_for(&e) {
            self.writer.write(Outbound::Msg(reject));
        }
        self.end_handshake();
        self.auth = Auth::Failed;
        self.close_gracefully(ctx);
    }

    /// Any frame proves the peer alive.
    fn heard(&mut self) {
        if let Auth::Up(info) = &self.auth {
            heard(&self.node, &info.id.node, &mut self.last_heard_report);
        }
    }

    /// A registry transfer frame, undecoded: to the replica, which decodes
    /// it on its own arbiter.
    fn route_sync(&mut self, frame: bytes::Bytes, ctx: &mut Context<Self>) {
        if self.closing.get() {
            return;
        }
        self.heard();
        if let (Auth::Up(info), Some(actors)) = (&self.auth, self.node.actors()) {
            actors.replica.do_send(SyncRaw {
                from: info.id.clone(),
                frame,
                peer: ctx.address(),
            });
        }
    }

    fn route(&mut self, msg: Message, ctx: &mut Context<Self>) {
        if self.closing.get() {
            return;
        }
        self.heard();
        let Auth::Up(info) = &self.auth else { return };
        let Some(actors) = self.node.actors() else {
            return;
        };
        // A SWIM probe: to the Ring, on this (the links) arbiter, so a node
        // busy elsewhere still answers.
        if let Some(probe) = super::ring::probe_in(&msg) {
            if let Some(probe) = probe {
                actors.ring.do_send(ProbeIn {
                    from: info.id.node.clone(),
                    probe,
                });
            }
            return;
        }
        match msg {
            Message::Heartbeat { seq } => self.write(Message::HeartbeatAck { seq }),
            Message::HeartbeatAck { .. } => {}
            Message::Members { members } => actors.ring.do_send(Gossip(members)),
            Message::Leave { id } => actors.ring.do_send(PeerLeft {
                id,
                peer: ctx.address(),
            }),
            Message::LeaveAck { .. } => actors.ring.do_send(PeerLeftAck(info.id.node.clone())),
            msg @ (Message::SyncDeltas { .. }
            | Message::SyncFull { .. }
            | Message::SyncChunk { .. }
            | Message::SyncChunkAck { .. }
            | Message::SyncDigest { .. }
            | Message::SyncRange { .. }) => {
                telemetry::sync_frame(telemetry::Direction::In, &msg, 0);
                if let Some(msg) = msg.into_sync() {
                    actors.replica.do_send(SyncIn {
                        from: info.id.clone(),
                        msg,
                        peer: ctx.address(),
                    });
                }
            }
            Message::Handoff { bird, state, .. } => actors.registry.do_send(HandoffIn {
                bird: bird.into(),
                state,
                peer: ctx.address(),
            }),
            Message::HandoffAck { bird } => actors.registry.do_send(HandoffAcked(bird.into())),
            Message::SyncAck { seq } => actors.replica.do_send(SyncAcked {
                from: info.id.clone(),
                seq,
            }),
            // A user frame in a form the fast reader leaves to the general
            // decoder arrives as a user frame too (`wire::user::decode`).
            // An authenticated peer refusing us after all: it already knows
            // a newer process by our name (see the Ring). Never silent.
            Message::Reject { reason } => {
                tracing::error!(
                    "node {} is refused by {}: {}",
                    self.node.name(),
                    info.id.node,
                    match reason {
                        RejectReason::Protocol(why) => why,
                        other => format!("{other:?}"),
                    }
                );
                ctx.stop();
            }
            other => {
                tracing::warn!(
                    "closing link to {}: unexpected {} after the handshake",
                    info.id.node,
                    other.name()
                );
                ctx.stop();
            }
        }
    }
}

impl Peer {
    /// A call, cast or reply from the peer (`wire::user`, read without
    /// copies): a call or cast to its bird, a reply to its caller.
    fn route_user(&mut self, msg: UserIn, ctx: &mut Context<Self>) {
        if self.closing.get() {
            return;
        }
        self.heard();
        if let Some((id, result)) = replies::hand_over(self, msg, ctx)
            && let Some(tx) = self.calls.remove(&id)
        {
            let _ = tx.send(result.map(|reply| reply.to_vec()));
            self.check_settled();
        }
    }
}

impl replies::Dispatches for Peer {
    fn directory(&self) -> &Directory {
        &self.directory
    }

    fn node(&self) -> &Node {
        &self.node
    }
}

impl replies::Answers for Peer {
    fn replies(&mut self) -> &mut replies::Replies {
        &mut self.replies
    }

    fn answer(&mut self, reply: dispatch::Reply) {
        let (id, result) = replies::sized(reply, self.node.config.max_frame, &self.peer_name());
        self.writer.write(Outbound::Reply(id, result));
    }

    fn now_ms(&self) -> u64 {
        self.node.now_ms()
    }
}

impl Actor for Peer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A link created just before the runtime is torn down is started by
        // its own drop, outside the runtime: no timers then, just stop.
        if matches!(self.auth, Auth::Failed) || tokio::runtime::Handle::try_current().is_err() {
            ctx.stop();
            return;
        }
        let timeout = self.node.config.handshake_timeout;
        ctx.run_later(timeout, move |act, ctx| {
            if !matches!(act.auth, Auth::Up(_)) {
                tracing::warn!(
                    "closing link to {}: no handshake within {timeout:?}",
                    act.peer_name()
                );
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.end_handshake();
        // The data links go with the control link: the ones we opened close
        // (their waiting messages fail), the ones the peer opened to us
        // close when `alive` drops.
        self.data.direct.withdraw_all();
        let effects = self.data.lanes.close_all();
        self.apply(effects, ctx);
        if let Some(session) = self.data.session.take() {
            self.directory.session_down(&session.id, self.link);
        }
        self.data.alive = None;
        // In call order, not hash order: callers wake in a replayable order.
        let mut calls: Vec<_> = self.calls.drain().collect();
        calls.sort_unstable_by_key(|(id, _)| *id);
        for (_, tx) in calls {
            let _ = tx.send(Err(RemoteError::LinkClosed));
        }
        // A dial that reached a listener but never completed the handshake
        // (wrong cookie, timeout, a paused host whose kernel still accepts)
        // is a failed dial: the Ring must back off and try again.
        if let (Some(addr), false, Some(actors)) = (
            &self.dialed,
            matches!(self.auth, Auth::Up(_)),
            self.node.actors(),
        ) {
            match self.redial_at {
                Some(offer) => actors.ring.do_send(Redial(addr.clone(), offer)),
                None => actors.ring.do_send(DialFailed(addr.clone())),
            }
        }
        if let (Auth::Up(info), Some(actors)) = (&self.auth, self.node.actors()) {
            tracing::debug!("link {} to {} closed", self.link, info.id.node);
            actors.ring.do_send(LinkDown {
                name: info.id.node.clone(),
                link: self.link,
            });
        }
    }
}

impl StreamHandler<Result<Inbound, Error>> for Peer {
    fn handle(&mut self, item: Result<Inbound, Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(_) if self.closing.get() => {}
            Ok(Inbound::Frame(msg)) if matches!(self.auth, Auth::Up(_)) => self.route(msg, ctx),
            Ok(Inbound::Frame(msg)) => self.handshake(msg, ctx),
            Ok(Inbound::User(msg)) if matches!(self.auth, Auth::Up(_)) => self.route_user(msg, ctx),
            Ok(Inbound::User(msg)) => self.handshake(msg.into_message(), ctx),
            Ok(Inbound::Sync(frame)) if matches!(self.auth, Auth::Up(_)) => {
                self.route_sync(frame, ctx)
            }
            // Before authentication it is just an unexpected message.
            Ok(Inbound::Sync(frame)) => match Message::decode(&frame) {
                Ok(msg) => self.handshake(msg, ctx),
                Err(e) => self.refuse(e, ctx),
            },
            Ok(Inbound::Broken(e)) if matches!(self.auth, Auth::Up(_)) => {
                tracing::warn!("closing link to {}: {e}", self.peer_name());
                ctx.stop();
            }
            // Before authentication the stranger is told why (§7.4), and the
            // Reject must reach the wire before the socket closes.
            Ok(Inbound::Broken(e)) => self.refuse(e, ctx),
            Err(e) => {
                tracing::warn!("closing link to {}: {e}", self.peer_name());
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl WriteHandler<Error> for Peer {
    fn error(&mut self, err: Error, ctx: &mut Context<Self>) -> Running {
        tracing::warn!("closing link to {}: {err}", self.peer_name());
        ctx.stop();
        Running::Stop
    }

    /// The writer ended. On a closing link it flushed and half-closed: wait
    /// for the peer's end-of-stream (or [`CLOSE_LINGER`]), so that closing
    /// does not reset the connection before the peer read our last frame.
    fn finished(&mut self, ctx: &mut Context<Self>) {
        if !self.closing.get() {
            ctx.stop();
        }
    }
}

/// A frame for the peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Frame(pub Message);

impl Handler<Frame> for Peer {
    type Result = ();

    fn handle(&mut self, Frame(msg): Frame, _: &mut Context<Self>) {
        if matches!(self.auth, Auth::Up(_)) && !self.closing.get() {
            match msg {
                Message::Reply { id, result } => replies::Answers::answer(self, (id, result)),
                other => self.write(other),
            }
        }
    }
}

/// A frame encoded elsewhere (a registry transfer, see [`encode_frame`]).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RawFrame(pub bytes::Bytes);

impl Handler<RawFrame> for Peer {
    type Result = ();

    fn handle(&mut self, RawFrame(frame): RawFrame, _: &mut Context<Self>) {
        if matches!(self.auth, Auth::Up(_)) && !self.closing.get() {
            self.writer.write(Outbound::Raw(frame));
        }
    }
}

/// Closes the link, after the frames already written.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Close;

impl Handler<Close> for Peer {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        self.close_gracefully(ctx);
    }
}
