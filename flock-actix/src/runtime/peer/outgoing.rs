//! A control link's outgoing calls and casts: routed by its
//! [`DataLanes`] to a data link of the peer's lane or to the control link
//! itself (docs/ARCHITECTURE.md §26).

use super::super::directory::DataSession;
use super::super::telemetry;
use super::data::{DataDown, DataIdle, DataOut, DataUp};
use super::direct::{self, Direct, Lane, Ticket};
use super::io::{Outbound, oversize_payload};
use super::{Auth, Close, Peer, ReplyTx, accept};
use crate::core::data_links::auth::Session;
use crate::core::data_links::direct::LaneQueue;
use crate::core::data_links::flow::Throttle;
use crate::core::data_links::{DataLanes, Effect, LanesConfig};
use crate::wire::payload::Payload;
use crate::wire::{self, message::RemoteError};
use actix::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// The data links this control link opened (docs/ARCHITECTURE.md §26).
pub(super) struct Data {
    pub(super) lanes: DataLanes<Outgoing>,
    pub(super) links: HashMap<u64, Arc<Lane>>,
    /// What the callers share with this link: their direct path to the
    /// data links (docs/ARCHITECTURE.md §35).
    pub(super) direct: Arc<Direct>,
    pub(super) session: Option<Session>,
    /// Dropped when this link stops: the data links the peer opened to us
    /// in this session close then.
    pub(super) alive: Option<watch::Sender<()>>,
    pub(super) drops: Drops,
}

/// How often a link logs the casts it dropped (each is counted in
/// `flock_casts_dropped_total` meanwhile).
const DROP_LOG_EVERY_MS: u64 = 10_000;

/// The casts a link drops: counted, and logged at most every
/// [`DROP_LOG_EVERY_MS`] with how many the line covers.
pub(crate) struct Drops(Throttle);

impl Default for Drops {
    fn default() -> Self {
        Drops(Throttle::new(DROP_LOG_EVERY_MS))
    }
}

impl Drops {
    fn cast(&mut self, bird: &str, why: &RemoteError, now_ms: u64) {
        let reason = match why {
            RemoteError::LinkClosed | RemoteError::NotSent => "link_closed",
            RemoteError::Encode(_) => "oversize",
            _ => "refused",
        };
        telemetry::cast_dropped(reason);
        if let Some(n) = self.0.hit(now_ms) {
            tracing::warn!(
                "{n} cast(s) to remote birds dropped since the last report (the last to \
                 bird {bird}): {why}"
            );
        }
    }
}

impl Peer {
    /// Derives the data-link session of this (just authenticated) link, and
    /// registers it for the data links the peer opens to us if this node
    /// accepts them.
    pub(super) fn start_data_session(&mut self) {
        // The simulation (no service threads) has no lanes to accept data
        // links on, and opening them would only add refused connections to
        // its schedules.
        if !self.node.config.data_links || !self.node.config.service_threads {
            return;
        }
        let (Some(hello), Some(challenge)) = (self.hello_nonce, self.challenge_nonce) else {
            return;
        };
        let session = match Session::derive(&self.node.config.cookie, &hello, &challenge) {
            Ok(s) => s,
            Err(e) => return tracing::error!("no data links to {}: {e}", self.peer_name()),
        };
        let config = LanesConfig {
            idle_ms: self.node.config.data_idle_ms,
            // The bound a data link puts on what it holds.
            max_queued_bytes: self.node.config.data_queue_bytes,
        };
        self.data.lanes = DataLanes::new(config);
        if let (true, Auth::Up(info)) = (
            accept::accepts_data_links(&self.node, &self.directory),
            &self.auth,
        ) {
            let (alive, watcher) = watch::channel(());
            self.directory.session_up(DataSession {
                session: session.clone(),
                link: self.link,
                alive: watcher,
                peer: info.id.node.clone(),
            });
            self.data.alive = Some(alive);
        }
        self.data.session = Some(session);
    }

    /// Routes a call or cast for a bird of `shard` (data link or control
    /// link, see `core::data_links`).
    fn send_out(&mut self, shard: u32, item: Outgoing, ctx: &mut Context<Self>) {
        let bytes = item.bytes();
        let effects = self
            .data
            .lanes
            .route(shard, bytes, item, self.node.now_ms());
        self.apply(effects, ctx);
    }

    pub(super) fn apply(&mut self, effects: Vec<Effect<Outgoing>>, ctx: &mut Context<Self>) {
        let now = self.node.now_ms();
        for effect in effects {
            match effect {
                Effect::Open { link, shard } => self.open_data_link(link, shard, ctx),
                Effect::Send { link, item } => match self.data.links.get(&link) {
                    Some(lane) => lane.push_routed(item, &self.node, &mut self.data.drops),
                    None => item.fail(RemoteError::NotSent, &mut self.data.drops, now),
                },
                Effect::Control(item) => self.send_control(item),
                Effect::Close { link } => {
                    if let Some(lane) = self.data.links.remove(&link) {
                        lane.out.do_send(Close);
                    }
                }
                Effect::Fail(item) => item.fail(RemoteError::NotSent, &mut self.data.drops, now),
            }
        }
        self.check_settled();
    }

    fn open_data_link(&mut self, link: u64, shard: u32, ctx: &mut Context<Self>) {
        let queue = Arc::new(std::sync::Mutex::new(LaneQueue::new(
            self.node.config.data_queue_bytes,
        )));
        // On a bird arbiter, or with none (`arbiters(0)`) on the home
        // arbiter where the birds and usually the callers run: never on the
        // links arbiter, whose heartbeats a burst must not delay (§35).
        let arbiters = self.directory.arbiters();
        let arbiter = arbiters
            .get(link as usize % arbiters.len().max(1))
            .or(self.directory.home());
        let opened = match (&self.auth, &self.data.session) {
            (Auth::Up(info), Some(session)) if !self.closing.get() => DataOut::open(
                arbiter,
                queue.clone(),
                self.node.clone(),
                ctx.address(),
                link,
                session.clone(),
                shard,
                info.addr.clone(),
                info.id.node.to_string(),
            ),
            _ => None,
        };
        match opened {
            Some(out) => {
                self.data.links.insert(link, Arc::new(Lane { queue, out }));
            }
            None => {
                let effects = self.data.lanes.failed(link, self.node.now_ms());
                self.apply(effects, ctx);
            }
        }
    }

    /// Writes a call or cast on this (control) link.
    fn send_control(&mut self, item: Outgoing) {
        if !matches!(self.auth, Auth::Up(_)) || self.closing.get() {
            let now = self.node.now_ms();
            return item.fail(RemoteError::NotSent, &mut self.data.drops, now);
        }
        let max_frame = self.node.config.max_frame;
        match item {
            Outgoing::Cast(cast) => {
                let frame = cast.into_frame();
                match frame.oversize(max_frame) {
                    Some(what) => tracing::warn!("not sending to {}: {what}", self.peer_name()),
                    None => self.writer.write(Outbound::Cast(frame)),
                }
            }
            Outgoing::Call(call) => {
                let id = self.next_call;
                self.next_call += 1;
                // Callers that gave up (timed out) drop their receiver;
                // forget them now and then so the map cannot grow without
                // bound.
                if self.calls.len() >= 1024 && id.is_multiple_of(1024) {
                    self.calls.retain(|_, tx| !tx.is_closed());
                }
                let (frame, reply) = call.into_frame(id);
                if let Some(what) = frame.oversize(max_frame) {
                    tracing::warn!("not sending to {}: {what}", self.peer_name());
                    let _ = reply.send(Err(RemoteError::Encode(what)));
                    return;
                }
                self.calls.insert(id, reply);
                self.writer.write(Outbound::Call(frame));
            }
        }
    }
}

/// An outgoing call: the reply arrives on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct OutCall {
    pub bird: Arc<str>,
    /// The bird's shard (picks its data link).
    pub shard: u32,
    /// Borrowed from the typed caller's `BirdKind`; owned when a node
    /// forwards a call it received for a bird that moved.
    pub kind: Cow<'static, str>,
    pub tag: Cow<'static, str>,
    pub payload: Payload,
    pub timeout_ms: u32,
    /// Already forwarded once by a node whose view was newer than the
    /// caller's: the receiver answers `Moved` rather than forward again.
    pub forwarded: bool,
    pub reply: ReplyTx,
    /// Held while the call is on the `Peer`'s path (§35).
    pub ticket: Option<Ticket>,
}

impl OutCall {
    /// The `Call` frame with request id `id`, and where its reply goes.
    pub(super) fn into_frame(self, id: u64) -> (CallFrame, ReplyTx) {
        let frame = CallFrame {
            id,
            bird: self.bird,
            kind: self.kind,
            tag: self.tag,
            payload: self.payload,
            timeout_ms: self.timeout_ms,
            forwarded: self.forwarded,
        };
        (frame, self.reply)
    }

    /// The bytes it takes, for the bounds on what waits.
    fn bytes(&self) -> usize {
        self.payload.len() + self.bird.len()
    }
}

/// An outgoing cast (a `Cast` frame) to a bird of `shard`. Its names are
/// shared or static, like an [`OutCall`]'s: the frame's strings are made on
/// the link's thread, not the caller's (issue #12), and not at all if the
/// link is down.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct OutCast {
    pub shard: u32,
    pub bird: Arc<str>,
    pub kind: &'static str,
    pub tag: &'static str,
    pub payload: Payload,
    /// Held while the cast is on the `Peer`'s path (§35).
    pub ticket: Option<Ticket>,
}

impl OutCast {
    /// The `Cast` frame.
    pub(super) fn into_frame(self) -> CastFrame {
        CastFrame {
            bird: self.bird,
            kind: self.kind,
            tag: self.tag,
            payload: self.payload,
        }
    }
}

/// A `Call` frame in parts, written by the link's encoder straight into its
/// buffer (`wire::user`): no envelope `String`s (issue #12, §37).
pub(crate) struct CallFrame {
    id: u64,
    bird: Arc<str>,
    kind: Cow<'static, str>,
    tag: Cow<'static, str>,
    payload: Payload,
    timeout_ms: u32,
    forwarded: bool,
}

impl CallFrame {
    pub(super) fn write(&self, dst: &mut bytes::BytesMut) {
        wire::user::write_call(
            &wire::user::CallOut {
                id: self.id,
                bird: &self.bird,
                kind: &self.kind,
                msg: &self.tag,
                payload: &self.payload,
                timeout_ms: self.timeout_ms,
                forwarded: self.forwarded,
            },
            dst,
        );
    }

    /// Why it must not be sent, if it is too large for the peer.
    pub(super) fn oversize(&self, max_frame: usize) -> Option<String> {
        oversize_payload("Call", self.payload.len(), max_frame)
    }
}

/// A `Cast` frame in parts (see [`CallFrame`]).
pub(crate) struct CastFrame {
    bird: Arc<str>,
    kind: &'static str,
    tag: &'static str,
    payload: Payload,
}

impl CastFrame {
    pub(super) fn write(&self, dst: &mut bytes::BytesMut) {
        wire::user::write_cast(&self.bird, self.kind, self.tag, &self.payload, dst);
    }

    /// Why it must not be sent, if it is too large for the peer.
    pub(super) fn oversize(&self, max_frame: usize) -> Option<String> {
        oversize_payload("Cast", self.payload.len(), max_frame)
    }

    pub(super) fn bird(&self) -> &str {
        &self.bird
    }
}

/// A call or cast on its way to a link.
pub(crate) enum Outgoing {
    Call(OutCall),
    Cast(OutCast),
}

impl Outgoing {
    /// About the bytes it takes (payload and envelope), for the bound on
    /// what waits for a data link.
    pub(super) fn bytes(&self) -> usize {
        const ENVELOPE: usize = 64;
        ENVELOPE
            + match self {
                Outgoing::Call(call) => call.bytes(),
                Outgoing::Cast(cast) => cast.payload.len() + cast.bird.len(),
            }
    }

    /// Its ticket, if it came by the `Peer`'s path: the `Peer` drops it
    /// once the message is in its link's queue (§35).
    pub(super) fn take_ticket(&mut self) -> Option<Ticket> {
        match self {
            Outgoing::Call(call) => call.ticket.take(),
            Outgoing::Cast(cast) => cast.ticket.take(),
        }
    }

    /// It cannot be sent: a call's caller hears why, a cast is dropped
    /// (counted, and logged through `drops`).
    pub(super) fn fail(self, e: RemoteError, drops: &mut Drops, now_ms: u64) {
        match self {
            Outgoing::Call(call) => {
                let _ = call.reply.send(Err(e));
            }
            Outgoing::Cast(cast) => drops.cast(&cast.bird, &e, now_ms),
        }
    }

    /// A cast too large for the peer: dropped (counted, and logged through
    /// `drops`).
    pub(super) fn oversized(bird: &str, what: String, drops: &mut Drops, now_ms: u64) {
        drops.cast(bird, &RemoteError::Encode(what), now_ms);
    }
}

impl Handler<OutCall> for Peer {
    type Result = ();

    fn handle(&mut self, call: OutCall, ctx: &mut Context<Self>) {
        // The caller already gave up (its deadline passed while the call
        // waited in this mailbox): sending it would only load both nodes.
        if call.reply.is_closed() {
            return;
        }
        if !matches!(self.auth, Auth::Up(_)) || self.closing.get() || self.peer_leaving {
            let _ = call.reply.send(Err(RemoteError::NotSent));
            return;
        }
        self.send_out(call.shard, Outgoing::Call(call), ctx);
    }
}

impl Handler<OutCast> for Peer {
    type Result = ();

    fn handle(&mut self, cast: OutCast, ctx: &mut Context<Self>) {
        if matches!(self.auth, Auth::Up(_)) && !self.closing.get() {
            let shard = cast.shard;
            self.send_out(shard, Outgoing::Cast(cast), ctx);
        }
    }
}

impl Handler<DataUp> for Peer {
    type Result = ();

    fn handle(&mut self, up: DataUp, ctx: &mut Context<Self>) {
        let effects = self
            .data
            .lanes
            .up(up.link, up.lanes, up.lane, self.node.now_ms());
        // Published before the waiting messages are pushed: they hold their
        // tickets until they are in the queue, so no caller goes direct
        // ahead of them.
        if let Some(lane) = self.data.lanes.up_lane(up.link)
            && let Some(link) = self.data.links.get(&up.link)
            && !self.peer_leaving
        {
            self.data.direct.publish(up.lanes, lane, link.clone());
        }
        self.apply(effects, ctx);
    }
}

impl Handler<DataDown> for Peer {
    type Result = ();

    fn handle(&mut self, DataDown(link): DataDown, ctx: &mut Context<Self>) {
        if self.data.links.remove(&link).is_some() {
            let effects = self.data.lanes.failed(link, self.node.now_ms());
            self.apply(effects, ctx);
        }
    }
}

impl Handler<DataIdle> for Peer {
    type Result = ();

    fn handle(&mut self, DataIdle { link, pushes }: DataIdle, ctx: &mut Context<Self>) {
        let Some(lane) = self.data.links.get(&link).cloned() else {
            return;
        };
        // Decided under the queue's lock: a caller pushing meanwhile either
        // made the report stale (kept) or finds the queue closed and takes
        // the `Peer`'s path (core::data_links::direct).
        let effects = {
            let mut queue = direct::lock(&lane.queue);
            if !queue.quiet_since(pushes) {
                return;
            }
            let effects = self.data.lanes.idle(link, self.node.now_ms());
            if effects
                .iter()
                .any(|e| matches!(e, Effect::Close { link: l } if *l == link))
            {
                queue.close();
            }
            effects
        };
        self.apply(effects, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline payload must not make every queued message larger: a
    /// link's queue holds `Outgoing`s by value.
    #[test]
    fn a_cast_with_its_inline_payload_is_no_larger_than_a_call() {
        let (cast, call) = (size_of::<OutCast>(), size_of::<OutCall>());
        assert!(cast <= call, "OutCast is {cast} bytes, OutCall {call}");
    }
}
