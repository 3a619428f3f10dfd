//! Data links (docs/ARCHITECTURE.md §26): connections beside a control link
//! that carry only calls, casts and replies.
//!
//! [`DataOut`] is the opening end. The control `Peer` starts it on the links
//! arbiter when its [`DataLanes`](crate::core::data_links::DataLanes) says
//! so, routes calls and casts of one lane to it, and is told when it is up,
//! idle or gone. [`DataIn`] is the accepting end; it runs on the bird
//! arbiter of its lane, so an inbound call is handed to its bird and its
//! reply written on the thread that runs the bird.

use super::super::directory::{DataSession, Directory};
use super::super::node::{Node, nonce};
use super::direct::{self, Queue};
use super::dispatch::Reply;
use super::io::{Backlog, Inbound, Outbound, ReadCodec, WriteCodec, WriteSide};
use super::outgoing::Drops;
use super::replies::{self, Answers, Dispatches, Replies};
use super::settle::{self, Settling};
use super::{Close, Frame, MAX_UNSENT_FRAMES, Outgoing, Peer, ReplyTx};
use crate::core::crdt::NodeName;
use crate::core::data_links::age::{self, Ages, Stamper, Verdict};
use crate::core::data_links::auth::Session;
use crate::core::data_links::flow::{Admit, Flow, FlowConfig};
use crate::error::Error;
use crate::net::BoxStream;
use crate::wire::message::{Message, Nonce, RemoteError};
use crate::wire::user::UserIn;
use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::codec::FramedRead;

type Writer = FramedWrite<Outbound, WriteSide, WriteCodec>;

/// Splits `stream` into the actor's framed reader and a framed writer
/// whose unsent bytes `backlog` follows.
fn framed<A>(
    node: &Node,
    stream: BoxStream,
    codec: ReadCodec,
    label: Rc<RefCell<String>>,
    backlog: Backlog,
    ctx: &mut Context<A>,
) -> Writer
where
    A: Actor<Context = Context<A>> + StreamHandler<Result<Inbound, Error>> + WriteHandler<Error>,
{
    let (read, write) = tokio::io::split(stream);
    ctx.add_stream(FramedRead::new(read, codec));
    let max_frame = node.config.max_frame;
    // The hard bound stays as on a control link; the opening end's flow
    // control keeps its unsent bytes below it (`FlowConfig::for_link`).
    let encoder = WriteCodec::new(
        max_frame,
        max_frame.saturating_mul(MAX_UNSENT_FRAMES),
        label,
    )
    .with_backlog(backlog.clone());
    let side = WriteSide::new(write, Rc::default()).with_backlog(backlog);
    FramedWrite::new(side, encoder, ctx)
}

/// A data link is up: it serves `lane` of the peer's `lanes`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DataUp {
    pub link: u64,
    pub lanes: u32,
    pub lane: u32,
}

/// A data link stopped (or never came up).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DataDown(pub u64);

/// A data link has nothing in flight and saw no traffic lately; its queue
/// had seen `pushes` pushes (a push since makes the report stale, §35).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DataIdle {
    pub link: u64,
    pub pushes: u64,
}

/// Something was pushed into an empty queue: drain it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Drain;

/// The most a data link takes from its queue per turn before it lets the
/// other actors and timers of its thread run (a burst must not hold it).
const DRAIN_BATCH: usize = 128;

/// The opening end of a data link.
pub(crate) struct DataOut {
    node: Arc<Node>,
    control: Addr<Peer>,
    link: u64,
    /// What callers and the control `Peer` push for this link (§35).
    queue: Queue,
    session: Session,
    shard: u32,
    addr: String,
    nonce: Nonce,
    up: bool,
    writer: Option<Writer>,
    read_limit: Arc<AtomicUsize>,
    label: Rc<RefCell<String>>,
    calls: HashMap<u64, ReplyTx>,
    next_call: u64,
    /// Traffic since the last idle check.
    busy: bool,
    /// The writer's unsent bytes.
    backlog: Backlog,
    /// What waits for the peer to read (flow control, §26).
    flow: Flow<Outgoing>,
    /// A wait for the writer to drain is under way.
    draining: bool,
    drops: Drops,
    /// When to tell the peer our clock (`core::data_links::age`).
    stamper: Stamper,
    /// The buffer a turn takes its batch into (empty between turns).
    batch: Vec<Outgoing>,
    /// Who waits for this link to hold nothing (a leave, §39).
    pub(super) settling: Settling,
}

impl DataOut {
    /// Opens data link `link` (the core's id) to the peer at `addr`, on
    /// `arbiter` (one of this node's bird arbiters when it has some: its
    /// encoding and writing then never delay the links arbiter's heartbeats).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        arbiter: Option<&ArbiterHandle>,
        queue: Queue,
        node: Arc<Node>,
        control: Addr<Peer>,
        link: u64,
        session: Session,
        shard: u32,
        addr: String,
        peer: String,
    ) -> Option<Addr<DataOut>> {
        let nonce = nonce().ok()?;
        let flow = FlowConfig::for_link(node.config.max_frame, node.config.data_queue_bytes);
        let make = move |_: &mut Context<DataOut>| DataOut {
            node,
            control,
            link,
            queue,
            session,
            shard,
            addr,
            nonce,
            up: false,
            writer: None,
            read_limit: Arc::new(AtomicUsize::new(crate::wire::codec::PRE_AUTH_MAX_FRAME)),
            label: Rc::new(RefCell::new(format!("{peer} (data link)"))),
            calls: HashMap::new(),
            next_call: 1,
            busy: false,
            backlog: Backlog::default(),
            flow: Flow::new(flow),
            draining: false,
            drops: Drops::default(),
            stamper: Stamper::default(),
            batch: Vec::with_capacity(DRAIN_BATCH),
            settling: Settling::default(),
        };
        Some(match arbiter {
            Some(arbiter) => DataOut::start_in_arbiter(arbiter, make),
            None => DataOut::create(make),
        })
    }

    fn connected(&mut self, stream: BoxStream, ctx: &mut Context<Self>) {
        let codec = ReadCodec::new(self.read_limit.clone());
        let mut writer = framed(
            &self.node,
            stream,
            codec,
            self.label.clone(),
            self.backlog.clone(),
            ctx,
        );
        writer.write(Outbound::Msg(Message::DataHello {
            session: self.session.id,
            shard: self.shard,
            nonce: self.nonce,
        }));
        self.writer = Some(writer);
    }

    fn challenged(
        &mut self,
        lanes: u32,
        lane: u32,
        nonce_a: Nonce,
        mac: [u8; 32],
        ctx: &mut Context<Self>,
    ) {
        let verified =
            self.session
                .verify_acceptor(&self.nonce, &nonce_a, self.shard, lanes, lane, &mac);
        let proof = self
            .session
            .initiator_mac(&self.nonce, &nonce_a, self.shard);
        match (verified, proof, &mut self.writer) {
            (Ok(()), Ok(mac), Some(writer)) => {
                writer.write(Outbound::Msg(Message::DataProof { mac }));
                // The first sample of the clocks' offset, taken while the
                // peer's lane is most likely free to read it at once.
                let now = self.stamper.opened(self.node.now_us());
                writer.write(Outbound::Msg(stamp(now)));
                self.up = true;
                self.read_limit
                    .store(self.node.config.max_frame, Ordering::Relaxed);
                self.control.do_send(DataUp {
                    link: self.link,
                    lanes,
                    lane,
                });
                let every = Duration::from_millis(self.node.config.data_idle_ms.max(2) / 2);
                ctx.run_interval(every, |act, _| act.check_idle());
            }
            _ => {
                tracing::warn!(
                    "closing {}: its answer does not prove the session",
                    self.label.borrow()
                );
                ctx.stop();
            }
        }
    }

    fn check_idle(&mut self) {
        self.calls.retain(|_, tx| !tx.is_closed());
        let (queued, pushes) = {
            let queue = direct::lock(&self.queue);
            (!queue.is_empty(), queue.pushes())
        };
        if !std::mem::take(&mut self.busy)
            && !queued
            && self.calls.is_empty()
            && !self.flow.holding()
        {
            self.control.do_send(DataIdle {
                link: self.link,
                pushes,
            });
        }
    }

    /// Takes a batch from the queue and sends it; while more is left, lets
    /// the thread's other work run and comes back (a burst pushed by a
    /// caller on another thread must not hold this one).
    pub(super) fn drain(&mut self, ctx: &mut Context<Self>) {
        // The batch's buffer is kept from turn to turn: a turn per call is
        // the common case at low load, and a fresh buffer of 128 messages
        // (≈ 15 KB) per turn was a malloc and a free per call.
        let mut batch = std::mem::take(&mut self.batch);
        let more = direct::lock(&self.queue).take(DRAIN_BATCH, &mut batch);
        for item in batch.drain(..) {
            self.send(item, ctx);
        }
        self.batch = batch;
        self.check_settled();
        if more {
            ctx.spawn(
                tokio::task::yield_now()
                    .into_actor(self)
                    .map(|(), act, ctx| act.drain(ctx)),
            );
        }
    }

    /// Writes `item` now, holds it until the peer has read, or refuses it
    /// if too much is held already (`core::data_links::flow`).
    fn send(&mut self, item: Outgoing, ctx: &mut Context<Self>) {
        self.busy = true;
        if self.writer.is_none() || !self.up {
            let now = self.node.now_ms();
            return item.fail(RemoteError::NotSent, &mut self.drops, now);
        }
        let bytes = item.bytes();
        match self.flow.offer(bytes, item, self.backlog.unsent()) {
            Admit::Write(item) => self.write(item),
            Admit::Held => self.wait_for_room(ctx),
            Admit::Refused(item) => {
                let why = format!(
                    "the data link to {} holds {} bytes the peer has not read yet, its bound \
                     (data_queue_bytes): the owner reads slower than this node sends; \
                     retry later or send less at once",
                    self.label.borrow(),
                    self.flow.held_bytes(),
                );
                let now = self.node.now_ms();
                item.fail(RemoteError::Internal(why), &mut self.drops, now);
            }
        }
    }

    /// Once the writer has drained to the low mark, writes what is held
    /// until it is back at the high mark, and waits again while anything
    /// is left.
    fn wait_for_room(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.draining, true) {
            return;
        }
        let low = self.flow.config().low;
        ctx.spawn(
            self.backlog
                .drained_to(low)
                .into_actor(self)
                .map(|(), act, ctx| {
                    act.draining = false;
                    while let Some(item) = act.flow.drained(act.backlog.unsent()) {
                        act.write(item);
                    }
                    if act.flow.holding() {
                        act.wait_for_room(ctx);
                    }
                    act.check_settled();
                }),
        );
    }

    /// Whether this link holds nothing: nothing queued by callers, nothing
    /// held for room, no call unanswered.
    pub(super) fn check_settled(&mut self) {
        // Looked at only while a leave waits: this runs on every reply,
        // and the queue's lock is shared with the callers.
        let (flow, queue, calls) = (&self.flow, &self.queue, &mut self.calls);
        self.settling
            .check(|| !flow.holding() && direct::lock(queue).is_empty() && settle::answered(calls));
    }

    fn write(&mut self, item: Outgoing) {
        let Some(writer) = self.writer.as_mut() else {
            let now = self.node.now_ms();
            return item.fail(RemoteError::NotSent, &mut self.drops, now);
        };
        let max_frame = self.node.config.max_frame;
        let out = match item {
            Outgoing::Cast(cast) => {
                let frame = cast.into_frame();
                if let Some(what) = frame.oversize(max_frame) {
                    let now = self.node.now_ms();
                    return Outgoing::oversized(frame.bird(), what, &mut self.drops, now);
                }
                Outbound::Cast(frame)
            }
            Outgoing::Call(call) => {
                if call.reply.is_closed() {
                    return;
                }
                let id = self.next_call;
                self.next_call += 1;
                let (frame, reply) = call.into_frame(id);
                if let Some(what) = frame.oversize(max_frame) {
                    let _ = reply.send(Err(RemoteError::Encode(what)));
                    return;
                }
                self.calls.insert(id, reply);
                if let Some(now) = self.stamper.before_call(self.node.now_us()) {
                    writer.write(Outbound::Msg(stamp(now)));
                }
                Outbound::Call(frame)
            }
        };
        writer.write(out);
    }
}

impl Actor for DataOut {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let timeout = self.node.config.handshake_timeout;
        let connect = self.node.config.network.connect(&self.addr);
        ctx.run_later(timeout, move |act, ctx| {
            if !act.up {
                tracing::debug!("{}: not up within {timeout:?}", act.label.borrow());
                ctx.stop();
            }
        });
        ctx.spawn(
            async move { tokio::time::timeout(timeout, connect).await }
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(Ok(stream)) => act.connected(stream, ctx),
                    _ => {
                        tracing::debug!("{}: cannot connect", act.label.borrow());
                        ctx.stop();
                    }
                }),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Held messages never left: their calls fail (not sent, so safe to
        // retry), their casts are counted and logged as dropped.
        // Then what waits in the queue, closed now: a caller that still
        // finds it takes the `Peer`'s path (§35).
        let now = self.node.now_ms();
        let queued = direct::lock(&self.queue).close();
        for item in self.flow.close().into_iter().chain(queued) {
            item.fail(RemoteError::NotSent, &mut self.drops, now);
        }
        if self.up && self.backlog.unsent() > 0 {
            tracing::warn!(
                "{} closed with {} bytes unsent: the calls among them fail, the casts are lost",
                self.label.borrow(),
                self.backlog.unsent()
            );
        }
        let mut calls: Vec<_> = self.calls.drain().collect();
        calls.sort_unstable_by_key(|(id, _)| *id);
        for (_, tx) in calls {
            let _ = tx.send(Err(RemoteError::LinkClosed));
        }
        self.control.do_send(DataDown(self.link));
    }
}

impl StreamHandler<Result<Inbound, Error>> for DataOut {
    fn handle(&mut self, item: Result<Inbound, Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(Inbound::User(UserIn::Reply { id, result })) if self.up => {
                self.busy = true;
                if let Some(tx) = self.calls.remove(&id) {
                    let _ = tx.send(result.map(|reply| reply.to_vec()));
                }
                self.check_settled();
            }
            Ok(Inbound::Frame(Message::DataChallenge {
                lanes,
                lane,
                nonce,
                mac,
            })) if !self.up => self.challenged(lanes, lane, nonce, mac, ctx),
            // An older node, or one that does not accept data links, refuses
            // the DataHello: the lane falls back to the control link.
            Ok(Inbound::Frame(Message::Reject { reason })) => {
                tracing::debug!("{} refused: {reason:?}", self.label.borrow());
                ctx.stop();
            }
            stray => {
                closing(&self.label.borrow(), stray);
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl WriteHandler<Error> for DataOut {
    fn error(&mut self, err: Error, ctx: &mut Context<Self>) -> Running {
        // What it held is lost with it (see `stopped`): worth a warning.
        tracing::warn!("closing {}: {err}", self.label.borrow());
        ctx.stop();
        Running::Stop
    }
}

impl Handler<Drain> for DataOut {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

impl Handler<Close> for DataOut {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The frame that tells the peer our clock (`core::data_links::age`): a
/// cast of the reserved kind, which a node of an earlier build drops.
fn stamp(now_us: u64) -> Message {
    Message::Cast {
        bird: String::new(),
        kind: age::SYSTEM_KIND.to_owned(),
        msg: age::SENT_AT_TAG.to_owned(),
        payload: age::encode_stamp(now_us),
    }
}

/// What the accept path read from a data link's first frame.
pub(crate) struct Hello {
    pub session: DataSession,
    pub shard: u32,
    pub nonce: Nonce,
}

/// The accepting end of a data link, on the bird arbiter of its lane.
pub(crate) struct DataIn {
    node: Arc<Node>,
    directory: Directory,
    /// Counted among the handshakes under way until the proof arrives.
    handshake: Option<u64>,
    session: Session,
    shard: u32,
    nonce_i: Nonce,
    nonce_a: Nonce,
    up: bool,
    writer: Writer,
    read_limit: Arc<AtomicUsize>,
    label: Rc<RefCell<String>>,
    /// The peer, told to the Ring as heard (see `peer::heard`).
    peer: NodeName,
    last_heard_report: u64,
    /// How long the calls read here waited in the socket.
    ages: Ages,
    /// The calls handed to birds and not answered yet.
    replies: Replies,
}

impl DataIn {
    /// Runs the data link on `stream`, whose `DataHello` was read, on the
    /// bird arbiter of its lane (dropped if this node has none).
    pub(crate) fn accept(node: Arc<Node>, directory: Directory, stream: BoxStream, hello: Hello) {
        let lanes = directory.arbiters().len();
        let Ok(lanes32) = u32::try_from(lanes) else {
            return;
        };
        let lane = crate::core::data_links::lane_of(hello.shard, lanes32);
        let Some(arbiter) = directory.arbiters().get(lane as usize).cloned() else {
            return;
        };
        let Ok(nonce_a) = nonce() else { return };
        let Ok(mac) =
            hello
                .session
                .session
                .acceptor_mac(&hello.nonce, &nonce_a, hello.shard, lanes32, lane)
        else {
            return;
        };
        DataIn::start_in_arbiter(&arbiter, move |ctx| {
            let link = super::accept::stranger(&node);
            let read_limit = Arc::new(AtomicUsize::new(crate::wire::codec::PRE_AUTH_MAX_FRAME));
            let label = Rc::new(RefCell::new("a data link".to_owned()));
            let codec = ReadCodec::after_first(read_limit.clone());
            let mut writer = framed(&node, stream, codec, label.clone(), Backlog::default(), ctx);
            writer.write(Outbound::Msg(Message::DataChallenge {
                lanes: lanes32,
                lane,
                nonce: nonce_a,
                mac,
            }));
            // The control link's end is this link's end (a partition cuts
            // both; a peer declared down has no data links).
            let mut alive = hello.session.alive.clone();
            ctx.spawn(
                actix::fut::wrap_future::<_, DataIn>(async move {
                    while alive.changed().await.is_ok() {}
                })
                .map(|(), _, ctx| ctx.stop()),
            );
            DataIn {
                node,
                directory,
                handshake: Some(link),
                session: hello.session.session,
                shard: hello.shard,
                nonce_i: hello.nonce,
                nonce_a,
                up: false,
                writer,
                read_limit,
                label,
                peer: hello.session.peer,
                last_heard_report: 0,
                ages: Ages::default(),
                replies: Replies::default(),
            }
        });
    }

    fn end_handshake(&mut self) {
        if let Some(link) = self.handshake.take() {
            self.node.handshake_ended(link);
        }
    }

    /// Reads a stamp (`core::data_links::age`), and answers a call whose
    /// caller has given up while it waited unread in the socket (a bird of
    /// this lane held the thread); what is left runs with what is left of
    /// its deadline.
    fn aged(&mut self, mut msg: UserIn) -> Option<UserIn> {
        match &mut msg {
            UserIn::Cast(cast)
                if cast.kind.as_str() == age::SYSTEM_KIND
                    && cast.msg.as_str() == age::SENT_AT_TAG =>
            {
                if let Some(sent) = age::decode_stamp(&cast.payload) {
                    self.ages.stamped(sent, self.node.now_us());
                }
                return None;
            }
            UserIn::Call(call) => match self.ages.call(call.timeout_ms, self.node.now_us()) {
                Verdict::Run { timeout_ms: left } => call.timeout_ms = left,
                Verdict::Late { waited_ms } => {
                    tracing::debug!(
                        "call {} to bird {} read {waited_ms} ms after it was sent, past \
                         its deadline of {} ms: answered as timed out, not run",
                        call.id,
                        call.bird,
                        call.timeout_ms
                    );
                    self.answer((call.id, Err(RemoteError::Timeout)));
                    return None;
                }
            },
            _ => {}
        }
        Some(msg)
    }

    fn route(&mut self, msg: UserIn, ctx: &mut Context<Self>) {
        let Some(msg) = self.aged(msg) else { return };
        if replies::hand_over(self, msg, ctx).is_some() {
            tracing::warn!("closing {}: unexpected Reply", self.label.borrow());
            ctx.stop();
        }
    }
}

impl Dispatches for DataIn {
    fn directory(&self) -> &Directory {
        &self.directory
    }

    fn node(&self) -> &Node {
        &self.node
    }
}

impl Answers for DataIn {
    fn replies(&mut self) -> &mut Replies {
        &mut self.replies
    }

    fn answer(&mut self, reply: Reply) {
        let (id, result) = replies::sized(reply, self.node.config.max_frame, &self.label.borrow());
        self.writer.write(Outbound::Reply(id, result));
    }

    fn now_ms(&self) -> u64 {
        self.node.now_ms()
    }
}

impl Actor for DataIn {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let timeout = self.node.config.handshake_timeout;
        ctx.run_later(timeout, move |act, ctx| {
            if !act.up {
                tracing::warn!(
                    "closing {}: no proof within {timeout:?}",
                    act.label.borrow()
                );
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.end_handshake();
    }
}

impl StreamHandler<Result<Inbound, Error>> for DataIn {
    fn handle(&mut self, item: Result<Inbound, Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(Inbound::User(msg)) if self.up => {
                super::heard(&self.node, &self.peer, &mut self.last_heard_report);
                self.route(msg, ctx);
            }
            Ok(Inbound::Frame(Message::DataProof { mac })) => {
                match self
                    .session
                    .verify_initiator(&self.nonce_i, &self.nonce_a, self.shard, &mac)
                {
                    Ok(()) => {
                        self.up = true;
                        self.end_handshake();
                        self.read_limit
                            .store(self.node.config.max_frame, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!("refusing {}: {e}", self.label.borrow());
                        ctx.stop();
                    }
                }
            }
            stray => {
                closing(&self.label.borrow(), stray);
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl WriteHandler<Error> for DataIn {
    fn error(&mut self, err: Error, ctx: &mut Context<Self>) -> Running {
        tracing::debug!("closing {}: {err}", self.label.borrow());
        ctx.stop();
        Running::Stop
    }
}

/// A reply from the Registry (a call that waited for its bird).
impl Handler<Frame> for DataIn {
    type Result = ();

    fn handle(&mut self, Frame(msg): Frame, _: &mut Context<Self>) {
        if self.up {
            match msg {
                Message::Reply { id, result } => self.answer((id, result)),
                other => self.writer.write(Outbound::Msg(other)),
            }
        }
    }
}

/// Says why a data link closes on what it read: a frame that has no place
/// on a data link (either end), or a broken stream.
fn closing(label: &str, item: Result<Inbound, Error>) {
    match item {
        Ok(Inbound::Frame(other)) => {
            tracing::warn!("closing {label}: unexpected {}", other.name());
        }
        Ok(Inbound::User(other)) => {
            tracing::warn!(
                "closing {label}: unexpected {}",
                other.into_message().name()
            );
        }
        Ok(Inbound::Sync(_)) => {
            tracing::warn!("closing {label}: unexpected registry transfer");
        }
        Ok(Inbound::Broken(e)) | Err(e) => tracing::debug!("closing {label}: {e}"),
    }
}
