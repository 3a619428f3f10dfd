//! One link to another node: handshake, then frames in both directions.
//!
//! A `Peer` actor owns one byte stream. It runs the pure handshake state
//! machine until both sides proved the cookie, then raises its frame limit
//! and becomes a router: every frame is decoded by the codec and handed to
//! the actor that deals with it (membership to the Ring, sync to the
//! CrdtReplica, calls and casts to the Registry, replies to the caller
//! waiting here). Outgoing calls are tracked here so that a lost link fails
//! them at once instead of letting them wait for their deadline.

use super::directory::Directory;
use super::messages::{
    CallReply, Gossip, Heard, InboundCall, InboundCast, LinkDown, LinkUp, PeerLeft, PeerLeftAck,
    SyncAcked, SyncIn,
};
use super::node::{Node, nonce};
use crate::core::anti_entropy::SyncMessage;
use crate::core::handshake::{Acceptor, Initiator, Outcome, reject_for};
use crate::core::membership::NodeInfo;
use crate::error::Error;
use crate::net::BoxStream;
use crate::wire::codec::FrameCodec;
use crate::wire::message::{Message, RemoteError};
use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::WriteHalf;
use tokio::sync::oneshot;
use tokio_util::codec::{Decoder, FramedRead};

/// Frame overhead allowance when checking payload sizes against the limit.
const ENVELOPE_SLACK: usize = 1024;

/// The error text of calls failed because their link closed.
pub(crate) const LINK_CLOSED: &str = "link closed";

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

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
    writer: FramedWrite<Message, WriteHalf<BoxStream>, WriteCodec>,
    read_limit: Arc<AtomicUsize>,
    calls: HashMap<u64, ReplyTx>,
    next_call: u64,
    last_heard_report: u64,
}

impl Peer {
    /// Starts a link over `stream`; `dialed` is the address this node
    /// dialled (it then initiates the handshake), `None` for accepted links.
    pub(crate) fn start(
        node: Arc<Node>,
        directory: Directory,
        stream: BoxStream,
        dialed: Option<String>,
    ) -> Addr<Peer> {
        Peer::create(move |ctx| {
            let (read, write) = tokio::io::split(stream);
            let read_limit = Arc::new(AtomicUsize::new(crate::wire::codec::PRE_AUTH_MAX_FRAME));
            ctx.add_stream(FramedRead::new(
                read,
                ReadCodec {
                    inner: FrameCodec::new(),
                    limit: read_limit.clone(),
                },
            ));
            let mut encoder = FrameCodec::new();
            // Our own frames are bounded by what an authenticated peer
            // accepts; the handshake frames are tiny anyway.
            let _ = encoder.set_max_frame(node.config.max_frame);
            let mut writer = FramedWrite::new(write, WriteCodec(encoder), ctx);
            let auth = match nonce() {
                Err(e) => {
                    log::error!("cannot open a link: {e}");
                    Auth::Failed
                }
                Ok(n) if dialed.is_some() => {
                    let (initiator, hello) = Initiator::start(node.handshake_config(), n);
                    writer.write(hello);
                    Auth::Initiating(Box::new(initiator))
                }
                Ok(n) => Auth::Accepting(Box::new(Acceptor::new(node.handshake_config(), n))),
            };
            if !matches!(auth, Auth::Failed) {
                node.handshaking(true);
            }
            Peer {
                node,
                directory,
                link: NEXT_LINK.fetch_add(1, Ordering::Relaxed),
                auth,
                dialed,
                writer,
                read_limit,
                calls: HashMap::new(),
                next_call: 1,
                last_heard_report: 0,
            }
        })
    }

    fn peer_name(&self) -> String {
        match &self.auth {
            Auth::Up(info) => info.id.node.to_string(),
            _ => self
                .dialed
                .clone()
                .unwrap_or_else(|| "an unauthenticated peer".into()),
        }
    }

    /// Writes a frame, refusing (rather than sending) one the peer would
    /// reject for its size: the link stays up and the caller gets an error.
    fn write(&mut self, msg: Message) {
        let payload_len = match &msg {
            Message::Call { payload, .. } | Message::Cast { payload, .. } => payload.len(),
            Message::Reply { result: Ok(b), .. } => b.len(),
            _ => 0,
        };
        let max = self.node.config.max_frame.saturating_sub(ENVELOPE_SLACK);
        if payload_len > max {
            let what = format!(
                "a {} of {payload_len} bytes exceeds max_frame {max}",
                msg.name()
            );
            log::warn!("not sending to {}: {what}", self.peer_name());
            match msg {
                Message::Reply { id, .. } => self.writer.write(Message::Reply {
                    id,
                    result: Err(RemoteError::Encode(what)),
                }),
                Message::Call { id, .. } => {
                    if let Some(tx) = self.calls.remove(&id) {
                        let _ = tx.send(Err(RemoteError::Encode(what)));
                    }
                }
                _ => {}
            }
            return;
        }
        self.writer.write(msg);
    }

    fn handshake(&mut self, msg: Message, ctx: &mut Context<Self>) {
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
                    self.authenticated(info, ctx);
                }
            }
            Err(e) => self.refuse(e, ctx),
        }
    }

    /// Leaves the handshaking count, once: on success, refusal or close.
    fn end_handshake(&mut self) {
        if matches!(self.auth, Auth::Initiating(_) | Auth::Accepting(_)) {
            self.node.handshaking(false);
        }
    }

    fn authenticated(&mut self, info: NodeInfo, ctx: &mut Context<Self>) {
        self.end_handshake();
        log::debug!("link {} to {} authenticated", self.link, info.id.node);
        self.read_limit
            .store(self.node.config.max_frame, Ordering::Relaxed);
        self.auth = Auth::Up(info.clone());
        if let Some(actors) = self.node.actors() {
            actors.ring.do_send(LinkUp {
                info,
                peer: ctx.address(),
                link: self.link,
                dialed: self.dialed.clone(),
            });
        }
    }

    fn refuse(&mut self, e: Error, ctx: &mut Context<Self>) {
        match e {
            Error::WrongCookie | Error::Replayed | Error::Reflected => {
                log::warn!("refusing link with {}: {e}", self.peer_name())
            }
            _ => log::error!("refusing link with {}: {e}", self.peer_name()),
        }
        if let Some(reject) = reject_for(&e) {
            self.writer.write(reject);
        }
        self.end_handshake();
        self.auth = Auth::Failed;
        self.writer.close();
        // Give the reject a moment to leave before the socket closes.
        ctx.run_later(Duration::from_millis(50), |_, ctx| ctx.stop());
    }

    fn route(&mut self, msg: Message, ctx: &mut Context<Self>) {
        let Auth::Up(info) = &self.auth else { return };
        let Some(actors) = self.node.actors() else {
            return;
        };
        let now = self.node.now_ms();
        // Any frame proves the peer alive; tell the Ring at most twice per
        // heartbeat interval rather than once per frame.
        if now.saturating_sub(self.last_heard_report)
            >= self.node.config.membership.heartbeat_ms / 2
        {
            self.last_heard_report = now;
            actors.ring.do_send(Heard(info.id.node.clone()));
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
            Message::SyncDeltas {
                from_seq,
                to_seq,
                delta,
            } => actors.replica.do_send(SyncIn {
                from: info.id.clone(),
                msg: SyncMessage::Deltas {
                    from_seq,
                    to_seq,
                    delta,
                },
                peer: ctx.address(),
            }),
            Message::SyncFull { seq, state } => actors.replica.do_send(SyncIn {
                from: info.id.clone(),
                msg: SyncMessage::Full { seq, state },
                peer: ctx.address(),
            }),
            Message::SyncAck { seq } => actors.replica.do_send(SyncAcked {
                from: info.id.clone(),
                seq,
            }),
            Message::Call {
                id,
                bird,
                kind,
                msg,
                payload,
                timeout_ms,
                forwarded: _,
            } => match self.directory.get(&bird, &kind) {
                // Running here: straight to the bird, answered from here.
                Some(running) => match running.bird.call(
                    &bird,
                    &msg,
                    &payload,
                    Duration::from_millis(u64::from(timeout_ms)),
                ) {
                    Err(e) => self.write(Message::Reply { id, result: Err(e) }),
                    Ok(reply) => {
                        ctx.spawn(reply.into_actor(self).map(move |result, act, _| {
                            let result = result.map_err(|e| match e {
                                RemoteError::BirdPanicked { .. } => {
                                    RemoteError::BirdPanicked { bird }
                                }
                                other => other,
                            });
                            act.write(Message::Reply { id, result });
                        }));
                    }
                },
                None => actors.registry.do_send(InboundCall {
                    bird: bird.into(),
                    kind,
                    tag: msg,
                    payload,
                    timeout: Duration::from_millis(u64::from(timeout_ms)),
                    reply: CallReply::Peer {
                        peer: ctx.address(),
                        id,
                    },
                }),
            },
            Message::Cast {
                bird,
                kind,
                msg,
                payload,
            } => match self.directory.get(&bird, &kind) {
                Some(running) => {
                    if let Err(e) = running.bird.cast(&msg, &payload) {
                        log::warn!("cast to bird {bird} dropped: {e}");
                    }
                }
                None => actors.registry.do_send(InboundCast {
                    bird: bird.into(),
                    kind,
                    tag: msg,
                    payload,
                }),
            },
            Message::Reply { id, result } => {
                if let Some(tx) = self.calls.remove(&id) {
                    let _ = tx.send(result);
                }
            }
            other => {
                log::warn!(
                    "closing link to {}: unexpected {} after the handshake",
                    info.id.node,
                    other.name()
                );
                ctx.stop();
            }
        }
    }
}

impl Actor for Peer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.auth, Auth::Failed) {
            ctx.stop();
            return;
        }
        let timeout = self.node.config.handshake_timeout;
        ctx.run_later(timeout, move |act, ctx| {
            if !matches!(act.auth, Auth::Up(_)) {
                log::warn!(
                    "closing link to {}: no handshake within {timeout:?}",
                    act.peer_name()
                );
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.end_handshake();
        for (_, tx) in self.calls.drain() {
            let _ = tx.send(Err(RemoteError::Internal(LINK_CLOSED.into())));
        }
        if let (Auth::Up(info), Some(actors)) = (&self.auth, self.node.actors()) {
            log::debug!("link {} to {} closed", self.link, info.id.node);
            actors.ring.do_send(LinkDown {
                name: info.id.node.clone(),
                link: self.link,
            });
        }
    }
}

impl StreamHandler<Result<Message, Error>> for Peer {
    fn handle(&mut self, item: Result<Message, Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(msg) if matches!(self.auth, Auth::Up(_)) => self.route(msg, ctx),
            Ok(msg) => self.handshake(msg, ctx),
            Err(e) => {
                log::warn!("closing link to {}: {e}", self.peer_name());
                if !matches!(self.auth, Auth::Up(_))
                    && let Some(reject) = reject_for(&e)
                {
                    self.writer.write(reject);
                }
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl WriteHandler<Error> for Peer {
    fn error(&mut self, err: Error, _: &mut Context<Self>) -> Running {
        log::warn!("closing link to {}: write failed: {err}", self.peer_name());
        Running::Stop
    }
}

/// A frame for the peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Frame(pub Message);

impl Handler<Frame> for Peer {
    type Result = ();

    fn handle(&mut self, Frame(msg): Frame, _: &mut Context<Self>) {
        if matches!(self.auth, Auth::Up(_)) {
            self.write(msg);
        }
    }
}

/// An outgoing call: the reply arrives on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct OutCall {
    pub bird: Arc<str>,
    pub kind: &'static str,
    pub tag: &'static str,
    pub payload: Vec<u8>,
    pub timeout_ms: u32,
    pub reply: ReplyTx,
}

impl Handler<OutCall> for Peer {
    type Result = ();

    fn handle(&mut self, call: OutCall, _: &mut Context<Self>) {
        if !matches!(self.auth, Auth::Up(_)) {
            let _ = call
                .reply
                .send(Err(RemoteError::Internal("link not up".into())));
            return;
        }
        let id = self.next_call;
        self.next_call += 1;
        // Callers that gave up (timed out) drop their receiver; forget them
        // now and then so the map cannot grow without bound.
        if self.calls.len() >= 1024 && id.is_multiple_of(1024) {
            self.calls.retain(|_, tx| !tx.is_closed());
        }
        self.calls.insert(id, call.reply);
        self.write(Message::Call {
            id,
            bird: call.bird.to_string(),
            kind: call.kind.to_owned(),
            msg: call.tag.to_owned(),
            payload: call.payload,
            timeout_ms: call.timeout_ms,
            forwarded: false,
        });
    }
}

/// Closes the link.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Close;

impl Handler<Close> for Peer {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Buffers above this size are released once they are mostly empty.
const SHRINK_ABOVE: usize = 1 << 20;

/// A link's read or write buffer grows to its largest frame (a full registry
/// state can be megabytes) and would keep that capacity for the link's
/// lifetime; give it back once the big frame is gone.
fn shrink(buf: &mut BytesMut) {
    if buf.capacity() > SHRINK_ABOVE && buf.len() < SHRINK_ABOVE / 16 {
        *buf = BytesMut::from(&buf[..]);
    }
}

/// The frame encoder of a link's writer, releasing an oversized buffer.
pub(crate) struct WriteCodec(FrameCodec);

impl tokio_util::codec::Encoder<Message> for WriteCodec {
    type Error = Error;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), Error> {
        shrink(dst);
        self.0.encode(msg, dst)
    }
}

/// The frame decoder with a limit the actor can raise after authentication
/// (the `FramedRead` owns its decoder once it is a stream of the actor).
struct ReadCodec {
    inner: FrameCodec,
    limit: Arc<AtomicUsize>,
}

impl ReadCodec {
    fn sync_limit(&mut self) {
        let limit = self.limit.load(Ordering::Relaxed);
        if self.inner.max_frame() != limit {
            // The limit is validated by the config; a refused value keeps
            // the old (smaller) one, which only makes us stricter.
            let _ = self.inner.set_max_frame(limit);
        }
    }
}

impl Decoder for ReadCodec {
    type Item = Message;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        self.sync_limit();
        let frame = self.inner.decode(src);
        shrink(src);
        frame
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        self.sync_limit();
        self.inner.decode_eof(src)
    }
}
