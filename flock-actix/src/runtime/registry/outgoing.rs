//! Moving many birds off this node without holding the Registry: handoffs
//! are worked off in slices (`core::lifecycle::OutgoingQueue`), and a bird
//! its new owner has a message waiting for is handed over at once.
//!
//! Two messages between Registries ride on `Cast` frames of a kind no bird
//! can have (`SYSTEM_KIND`, starting with a NUL byte; the builder refuses
//! such kind tags):
//! - a *want* (new owner → old): hand this bird over first, a message waits
//!   for it;
//! - an *announce* (old owner → new, just before the state): the bird's kind
//!   and start arguments, so a node that does not know it yet (a joining
//!   node before the registry's full state reached it) can resume it.
//!
//! An existing frame on purpose, so that mixing versions during a rolling
//! upgrade stays safe: a node of an earlier build finds no bird of that kind
//! and drops the cast like any cast to a bird it does not run, where a new
//! frame variant (or a new field of `Handoff`) would have closed the link.

use super::{Registry, send_state};
use crate::core::crdt::BirdSpec;
use crate::core::lifecycle::Outgoing;
use crate::runtime::messages::InboundCast;
use crate::runtime::node::Node;
use crate::runtime::peer::Frame;
use crate::wire::message::Message as WireMessage;
use actix::prelude::*;

/// Handoffs started per turn of the Registry: small enough that calls,
/// wants and state completions are served between slices (≈ 1–3 ms each
/// on a loaded 2-vCPU machine), large enough that a leave of 10k birds is
/// not dominated by mailbox round trips.
const HANDOFFS_PER_TURN: usize = 64;

/// Handoffs begun whose state has not left yet, at most. Each is a
/// `TakeState` message in a bird arbiter's queue; beginning all of a leave's
/// 3,300 at once (in 27 ms) left them queued there for 60 ms, and a bird
/// a caller waited for could not jump that queue. With few in flight, a
/// wanted bird's state is taken after at most this many others.
const MAX_IN_FLIGHT: usize = 128;

// The kind of the Registries' own casts: no bird kind starts with a NUL
// byte (`HandshakeConfig::validate` refuses one).
use crate::core::data_links::age::SYSTEM_KIND;
/// The tag of a want.
const WANT_TAG: &str = "handoff-want";
/// The tag of an announce; the payload is the `BirdSpec`, MessagePack.
const ANNOUNCE_TAG: &str = "handoff-spec";

/// A cast between Registries, decoded.
pub(super) enum System {
    Want,
    Announce(BirdSpec),
    /// Of the system kind, but not understood (a later build's, or broken):
    /// dropped.
    Unreadable,
}

/// Asks `from` to hand `name` over before the other birds it is moving.
pub(super) fn want(node: &Node, name: &str, from: &str) {
    system_cast(node, name, from, WANT_TAG, Vec::new());
}

fn system_cast(node: &Node, name: &str, to: &str, tag: &str, payload: Vec<u8>) {
    if let Some(peer) = node.link(to) {
        peer.do_send(Frame(WireMessage::Cast {
            bird: name.to_owned(),
            kind: SYSTEM_KIND.to_owned(),
            msg: tag.to_owned(),
            payload,
        }));
    }
}

/// The Registries' own message in an inbound cast, if it is one.
pub(super) fn system(cast: &InboundCast) -> Option<System> {
    if cast.kind != SYSTEM_KIND {
        return None;
    }
    Some(match cast.tag.as_str() {
        WANT_TAG => System::Want,
        ANNOUNCE_TAG => match rmp_serde::from_slice(&cast.payload) {
            Ok(spec) => System::Announce(spec),
            Err(e) => {
                tracing::debug!("unreadable announce for bird {}: {e}", cast.bird);
                System::Unreadable
            }
        },
        _ => System::Unreadable,
    })
}

/// Works off the rest of the queued handoffs on a later turn.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct DrainOutgoing;

impl Handler<DrainOutgoing> for Registry {
    type Result = ();

    fn handle(&mut self, _: DrainOutgoing, ctx: &mut Context<Self>) {
        self.draining = false;
        self.drain_outgoing(ctx);
    }
}

/// A handoff's state left (or could not be taken): room for the next.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct HandoffSent;

impl Handler<HandoffSent> for Registry {
    type Result = ();

    fn handle(&mut self, _: HandoffSent, ctx: &mut Context<Self>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.drain_outgoing(ctx);
    }
}

impl Registry {
    /// Starts the next slice of queued handoffs; the rest on a later turn.
    pub(super) fn drain_outgoing(&mut self, ctx: &mut Context<Self>) {
        // Called after every input the Registry handles: nothing to do for
        // almost all of them.
        if self.outgoing.is_empty() {
            return;
        }
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight);
        for o in self.outgoing.next_slice(room.min(HANDOFFS_PER_TURN)) {
            self.hand_off(o);
        }
        // At the in-flight bound, each state that leaves (`HandoffSent`)
        // makes room and drains on.
        if !self.outgoing.is_empty() && self.in_flight < MAX_IN_FLIGHT && !self.draining {
            self.draining = true;
            // The rest after the messages already in the mailbox (calls,
            // and wants from the new owners, which jump the queue).
            ctx.address().do_send(DrainOutgoing);
        }
    }

    /// Hands `name` over now if its handoff is queued.
    pub(super) fn hand_off_now(&mut self, name: &str) {
        if let Some(o) = self.outgoing.take(name) {
            self.hand_off(o);
        }
    }

    /// Starts every queued handoff (the node is shutting down).
    pub(super) fn hand_off_all(&mut self) {
        for o in self.outgoing.next_slice(usize::MAX) {
            self.hand_off(o);
        }
    }

    /// Stops the instance of a bird that moved to `to`, takes its state and
    /// sends it there (or tells `to` there is nothing to wait for).
    ///
    /// The state is awaited on the bird's own arbiter, which also takes
    /// it: an arbiter's tasks woken from another thread wait behind the
    /// work of the thread they run on, and the Registry's thread is busy
    /// starting the next slices (measured: with the wait on the Registry's
    /// thread, 3,300 handoffs were all begun before the first state left).
    fn hand_off(&mut self, o: Outgoing) {
        let Outgoing {
            name,
            instance,
            to,
            spec,
        } = o;
        let running = match instance {
            Some(i) => self.directory.remove(&name, i),
            None => None,
        };
        // Unacknowledged since it was queued (`Effect::HandOff`); the clock
        // of its expiry restarts now that it is sent (a long queue must not
        // expire before its handoffs leave).
        self.note_unacked(&name);
        let Some(running) = running else {
            return send_state(&self.node, &name, &to, String::new(), None);
        };
        let kind = running.bird.kind().to_owned();
        // What the bird is goes ahead of its state, on the same link.
        if let Some(payload) = spec.and_then(|spec| rmp_serde::to_vec(&spec).ok()) {
            system_cast(&self.node, &name, &to, ANNOUNCE_TAG, payload);
        }
        // Resolves once the bird handled the messages before it.
        let state = running.bird.hand_off();
        let node = self.node.clone();
        self.in_flight += 1;
        let arbiter = self.lane_arbiter(&name).cloned();
        let send = async move {
            send_state(&node, &name, &to, kind, state.await);
            if let Some(actors) = node.actors() {
                actors.registry.do_send(HandoffSent);
            }
        };
        match arbiter {
            // A stopped arbiter took the bird with it (the node is going
            // down, `arbiters_gone`): nothing will leave.
            Some(arbiter) => {
                if !arbiter.spawn(send) {
                    self.in_flight -= 1;
                }
            }
            None => {
                actix::spawn(send);
            }
        }
    }
}
