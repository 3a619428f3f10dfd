//! A caller's direct path to a data link (docs/ARCHITECTURE.md §35): the
//! shell of `core::data_links::direct`.
//!
//! Each control link has a [`Direct`]: the tickets out (messages sent to
//! its `Peer` and not yet handed on) and, once its data links are up, the
//! published lane queues. A caller (`FlockAddr`) pushes a call or cast into
//! the queue of its bird's lane when no ticket is out; otherwise it sends it
//! to the `Peer` with a [`Ticket`], which the `Peer` drops only after
//! pushing it into that same queue (or writing it on the control link, or
//! failing it). The data link ([`DataOut`]) drains its queue on its own
//! thread, woken by the push that found it empty.

use super::super::node::Node;
use super::Peer;
use super::data::{DataOut, Drain};
use super::outgoing::{Drops, OutCall, OutCast, Outgoing};
use crate::core::data_links::direct::{LaneQueue, Pushed, may_go_direct};
use crate::core::data_links::lane_of;
use crate::wire::message::RemoteError;
use actix::Addr;
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The queue of one data link, shared by callers, the `Peer` and the link.
pub(crate) type Queue = Arc<Mutex<LaneQueue<Outgoing>>>;

/// Locks a queue; a panic while it was held (none of its methods panics)
/// leaves a consistent queue, so the poison is ignored.
pub(crate) fn lock(queue: &Mutex<LaneQueue<Outgoing>>) -> MutexGuard<'_, LaneQueue<Outgoing>> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// A data link as its control `Peer` and the callers see it.
pub(crate) struct Lane {
    pub(crate) queue: Queue,
    pub(crate) out: Addr<DataOut>,
}

impl Lane {
    /// Pushes `item` (routed by the `Peer`, or by a caller that was allowed
    /// the direct path), waking the link if it was not draining.
    fn push(&self, item: Outgoing) -> Pushed<Outgoing> {
        let bytes = item.bytes();
        let pushed = lock(&self.queue).push(bytes, item);
        if let Pushed::Queued { wake: true } = pushed {
            self.out.do_send(Drain);
        }
        pushed
    }

    /// A message the `Peer` routed to this (up) link: its ticket is returned
    /// only once it is in the queue, so no caller overtakes it. A link that
    /// closed meanwhile fails it as a closed link does.
    pub(crate) fn push_routed(&self, mut item: Outgoing, node: &Node, drops: &mut Drops) {
        let ticket = item.take_ticket();
        match self.push(item) {
            Pushed::Queued { .. } => {}
            Pushed::NotOpen(item) => item.fail(RemoteError::NotSent, drops, node.now_ms()),
            Pushed::Full(item) => item.fail(self.full(), drops, node.now_ms()),
        }
        drop(ticket);
    }

    /// Why a push was refused at the bound.
    fn full(&self) -> RemoteError {
        RemoteError::Internal(format!(
            "the data link's queue holds {} bytes not yet written, its bound \
             (data_queue_bytes): the owner reads slower than this node sends; retry \
             later or send less at once",
            lock(&self.queue).bytes()
        ))
    }
}

/// The lanes published so far (the peer's lane count is fixed per session).
struct Table {
    lanes: u32,
    slots: Box<[ArcSwapOption<Lane>]>,
}

/// What the callers of one control link share with its `Peer`.
#[derive(Default)]
pub(crate) struct Direct {
    /// Tickets out (`core::data_links::direct::may_go_direct`).
    tickets: AtomicUsize,
    table: ArcSwapOption<Table>,
    /// The casts the direct path drops at a full queue.
    drops: Mutex<Drops>,
}

/// A message on the `Peer`'s path: while it is out, callers of this link
/// take that path too. Dropped (wherever the message ends: handed to a
/// link, written, failed, or lost with a stopped `Peer`), it is returned.
pub(crate) struct Ticket(Arc<Direct>);

impl Drop for Ticket {
    fn drop(&mut self) {
        // Release: the push that preceded the drop is seen by a caller
        // that reads the count (Acquire) and goes direct.
        self.0.tickets.fetch_sub(1, Ordering::Release);
    }
}

impl Direct {
    /// A ticket for a message about to be sent to the `Peer`.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        self.tickets.fetch_add(1, Ordering::AcqRel);
        Ticket(self.clone())
    }

    /// Tries the direct path for a message to a bird of `shard`: done when
    /// no ticket is out and its lane's link is up. Otherwise the message
    /// comes back, for the `Peer` (with a [`Ticket`]).
    pub(crate) fn send(&self, shard: u32, item: Outgoing, node: &Node) -> Option<Outgoing> {
        if !may_go_direct(self.tickets.load(Ordering::Acquire)) {
            return Some(item);
        }
        let table = self.table.load();
        let Some(lane) = table
            .as_ref()
            .and_then(|t| t.slots.get(lane_of(shard, t.lanes) as usize))
            .and_then(|slot| slot.load_full())
        else {
            return Some(item);
        };
        match lane.push(item) {
            Pushed::Queued { .. } => None,
            Pushed::NotOpen(item) => Some(item),
            Pushed::Full(item) => {
                let mut drops = self.drops.lock().unwrap_or_else(|e| e.into_inner());
                item.fail(lane.full(), &mut drops, node.now_ms());
                None
            }
        }
    }

    /// The `Peer` publishes `lane` of the peer's `lanes` (its queue open):
    /// callers may push there once no ticket is out.
    pub(crate) fn publish(&self, lanes: u32, lane: u32, link: Arc<Lane>) {
        lock(&link.queue).open();
        if self.table.load().as_ref().is_none_or(|t| t.lanes != lanes) {
            let slots = (0..lanes).map(|_| ArcSwapOption::empty()).collect();
            self.table.store(Some(Arc::new(Table { lanes, slots })));
        }
        if let Some(slot) = self
            .table
            .load()
            .as_ref()
            .and_then(|t| t.slots.get(lane as usize))
        {
            slot.store(Some(link));
        }
    }

    /// The control link is gone: nothing is published any more.
    pub(crate) fn withdraw_all(&self) {
        self.table.store(None);
    }
}

/// A control link as callers hold it: its `Peer`, and the direct path to its
/// data links.
#[derive(Clone)]
pub(crate) struct PeerLink {
    pub(crate) addr: Addr<Peer>,
    pub(crate) direct: Arc<Direct>,
}

impl PeerLink {
    /// Sends a call to a bird of `shard`: straight into its lane's queue when
    /// allowed (§35), else through the `Peer` with a ticket.
    pub(crate) fn call(&self, call: OutCall, node: &Node) {
        let shard = call.shard;
        if let Some(Outgoing::Call(mut call)) = self.direct.send(shard, Outgoing::Call(call), node)
        {
            call.ticket = Some(self.direct.ticket());
            self.addr.do_send(call);
        }
    }

    /// Sends a cast, as [`PeerLink::call`] does.
    pub(crate) fn cast(&self, cast: OutCast, node: &Node) {
        let shard = cast.shard;
        if let Some(Outgoing::Cast(mut cast)) = self.direct.send(shard, Outgoing::Cast(cast), node)
        {
            cast.ticket = Some(self.direct.ticket());
            self.addr.do_send(cast);
        }
    }

    /// Whether the `Peer` still runs.
    pub(crate) fn connected(&self) -> bool {
        self.addr.connected()
    }
}
