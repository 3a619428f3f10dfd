//! The Ring's shell around the SWIM detector (`core::swim`): probe frames in
//! and out over the peers' control links, and its verdicts applied to
//! membership.
//!
//! Probes travel as `Cast` frames of the flock's own kind (`SYSTEM_KIND`,
//! tag [`PROBE_TAG`]), not as a new frame variant: a node of an earlier
//! build drops such a cast like any cast to a bird it does not run, where
//! an unknown variant would close the link in the middle of a rolling
//! upgrade. A peer is judged by the detector only once it sent a probe
//! frame on its current link (every node of this build sends
//! [`Probe::Alive`] on each new link); until then, and for good with a
//! peer of an earlier build, heartbeats and the silence limit judge it.

use super::Ring;
use crate::core::crdt::NodeName;
use crate::core::data_links::age::SYSTEM_KIND;
use crate::core::swim::{Out, Probe};
use crate::runtime::messages::ProbeIn;
use crate::runtime::peer::{Close, Frame, Peer};
use crate::wire::message::Message;
use actix::prelude::*;

/// The message tag of a probe frame within `SYSTEM_KIND`.
pub(crate) const PROBE_TAG: &str = "swim";

/// The frame that carries `probe`.
pub(crate) fn frame(probe: &Probe) -> Frame {
    Frame(Message::Cast {
        bird: PROBE_TAG.to_owned(),
        kind: SYSTEM_KIND.to_owned(),
        msg: PROBE_TAG.to_owned(),
        payload: probe.encode(),
    })
}

/// The probe in an inbound frame, if it is one: `Some(None)` for a probe
/// frame this build cannot read (a later build's), which is dropped.
pub(crate) fn probe_in(msg: &Message) -> Option<Option<Probe>> {
    match msg {
        Message::Cast {
            kind, msg, payload, ..
        } if kind == SYSTEM_KIND && msg == PROBE_TAG => Some(Probe::decode(payload)),
        _ => None,
    }
}

/// A seed for the probe order that differs between processes (and is
/// replayable in the deterministic simulation: name and incarnation only).
pub(super) fn seed(name: &str, incarnation: u64) -> u64 {
    // FNV-1a: not placement-like, any spread will do.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ incarnation
}

impl Ring {
    /// Sends this node's hello on a new link: it tells a peer of this build
    /// to judge us by probes (a peer of an earlier build drops it).
    pub(super) fn hello(&mut self, name: &NodeName, peer: &Addr<Peer>) {
        // Whatever the detector knew of this peer belongs to its old link.
        self.detector.remove(name);
        if self.node.config.swim {
            peer.do_send(frame(&self.detector.hello()));
        }
    }

    pub(super) fn tick_detector(&mut self, ctx: &mut Context<Self>) {
        let outs = self.detector.tick(self.node.now_ms());
        self.apply_probes(outs, ctx);
    }

    pub(super) fn apply_probes(&mut self, outs: Vec<Out>, ctx: &mut Context<Self>) {
        for out in outs {
            match out {
                Out::Send(name, probe) => {
                    if let Some(link) = self.links.get(&name) {
                        link.peer.do_send(frame(&probe));
                    }
                }
                Out::Broadcast(probe) => {
                    let frame = frame(&probe);
                    for name in self.detector.members() {
                        if let Some(link) = self.links.get(name) {
                            link.peer.do_send(Frame(frame.0.clone()));
                        }
                    }
                }
                Out::Suspected(name) => tracing::info!(
                    node = %self.node.name(), peer = %name, event = "suspect",
                    "node {} suspects {name}: it answered no probe, direct or through others",
                    self.node.name()
                ),
                Out::Refuted(name) => tracing::info!(
                    node = %self.node.name(), peer = %name, event = "refuted",
                    "node {}: {name} refuted its suspicion", self.node.name()
                ),
                Out::Down(name) => {
                    let effects = self.membership.silent(&name, self.node.now_ms());
                    self.apply(effects, ctx);
                }
                Out::LinkBroken(name) => {
                    tracing::warn!(
                        node = %self.node.name(), peer = %name, event = "link_broken",
                        "node {} reaches {name} only through other members: closing its \
                         own link to it (it is dialled again)",
                        self.node.name()
                    );
                    // Through the link's own close, so the loss is handled
                    // like any other (down, then redialled).
                    if let Some(link) = self.links.get(&name) {
                        link.peer.do_send(Close);
                    }
                }
            }
        }
    }
}

impl Handler<ProbeIn> for Ring {
    type Result = ();

    fn handle(&mut self, ProbeIn { from, probe }: ProbeIn, ctx: &mut Context<Self>) {
        if !self.links.contains_key(&from) || !self.node.config.swim {
            return;
        }
        if self.membership.set_probed(&from)
            && let Some(info) = self.membership.info(&from)
        {
            self.detector.add(info.id.clone());
        }
        if !self.detector.is_member(&from) {
            return;
        }
        let outs = self.detector.on_probe(&from, probe, self.node.now_ms());
        self.apply_probes(outs, ctx);
    }
}
