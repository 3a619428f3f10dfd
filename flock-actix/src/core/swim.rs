//! SWIM-style failure detection over the mesh's links (issue #10 target 3).
//!
//! Every *protocol period* (`MembershipConfig::heartbeat_ms`) this node
//! probes **one** member: it sends a [`Probe::Ping`] over the existing link.
//! Members are probed round-robin over a list shuffled at the start of each
//! round, so every member is probed once per round of `n` periods. With no
//! ack within half a period it asks up to [`SwimConfig::indirect`] other
//! members to probe the target for it ([`Probe::PingReq`]); with no ack,
//! direct or relayed, by the end of the period the target is **suspected**:
//! the suspicion is sent to every member (the mesh is full, so dissemination
//! is a direct broadcast of one small frame rather than piggybacked gossip),
//! and the suspected node refutes it with a higher incarnation
//! ([`Probe::Alive`]). A suspicion not refuted in time makes the member
//! **down** ([`Out::Down`]): within [`SwimConfig::suspicion_ms`] once other
//! members confirmed it, up to [`SwimConfig::suspicion_max_ms`] if nobody
//! did (Lifeguard's dynamic suspicion). A node that must refute suspicions
//! of itself, or whose ticks come late, stretches its own period (Lifeguard's
//! local health), so a loaded node accuses less.
//!
//! So a member that stops answering is down `period + suspicion_ms` =
//! `down_after_ms` after the first probe it misses (once confirmed), which is
//! what `down_after_ms` has always meant ("silent this long"), and idle traffic is
//! O(1) per node — a ping, an ack, and the pings of others — instead of a
//! heartbeat on each of `n − 1` links. Any frame heard from the target after
//! a ping counts as its ack, as any frame used to count as a heartbeat.
//!
//! Link loss (a killed process) is still judged by
//! [`Membership`](super::membership::Membership) at once; this machine only
//! judges members whose links stay open but who stopped answering (a stopped
//! or hung process, a partition, a half-open connection).
//!
//! Pure: time and a random seed are arguments, effects are returned as
//! [`Out`] values. The shell sends [`Probe`]s as system casts (see
//! `runtime::ring`), which a build without SWIM drops.

use crate::core::crdt::{NodeName, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;

/// Timing of the detector, derived from `MembershipConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimConfig {
    /// One probe per period (`heartbeat_ms`).
    pub period_ms: u64,
    /// Without a direct ack this long after the ping, ask others to probe.
    pub ack_timeout_ms: u64,
    /// How many other members are asked to probe indirectly.
    pub indirect: usize,
    /// How long a suspicion may stand unrefuted before the member is down,
    /// once enough members confirmed it (`down_after_ms − heartbeat_ms`).
    pub suspicion_ms: u64,
    /// How long a suspicion nobody else confirmed may stand (Lifeguard's
    /// dynamic suspicion: the timeout falls from this to `suspicion_ms` as
    /// independent suspicions of the member arrive).
    pub suspicion_max_ms: u64,
    /// Independent suspicions (beyond the first) after which the timeout is
    /// `suspicion_ms`; fewer in a smaller cluster.
    pub confirmations: usize,
    /// The largest local-health score: a node that misses its own probes'
    /// deadlines stretches its period and ack timeout up to `1 + this`
    /// times (Lifeguard's local health multiplier).
    pub max_health: u32,
    /// Consecutive probes answered only through others after which this
    /// node's own link to the member is taken as broken (half-open) and closed.
    pub link_strikes: u32,
}

impl SwimConfig {
    /// The detector's timing for a protocol period of `heartbeat_ms` and a
    /// member declared down `down_after_ms` after the first probe it misses.
    pub fn from_membership(heartbeat_ms: u64, down_after_ms: u64) -> Self {
        let suspicion_ms = down_after_ms.saturating_sub(heartbeat_ms).max(heartbeat_ms);
        SwimConfig {
            period_ms: heartbeat_ms.max(1),
            ack_timeout_ms: (heartbeat_ms / 2).max(1),
            indirect: 3,
            suspicion_ms,
            suspicion_max_ms: suspicion_ms * 3 / 2,
            confirmations: 3,
            max_health: 8,
            link_strikes: 2,
        }
    }
}

/// A detector frame between two nodes (carried as a system cast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Probe {
    /// Are you there? Answered with `Ack` of the same `seq`.
    Ping {
        /// Chosen by the sender, echoed in the ack.
        seq: u64,
    },
    /// The answer to a `Ping` (or, relayed, to a `PingReq`).
    Ack {
        /// The sequence number of the ping or ping request answered.
        seq: u64,
    },
    /// Probe `target` for me and send me an `Ack { seq }` if it answers.
    PingReq {
        /// The requester's sequence number.
        seq: u64,
        /// The member to probe.
        target: String,
    },
    /// `node` did not answer a probe, direct or indirect.
    Suspect {
        /// The process suspected.
        node: ReplicaId,
        /// Its incarnation as the suspecter knew it.
        inc: u64,
    },
    /// `node` is alive at incarnation `inc`: refutes suspicions of a lower
    /// one. Also sent on every new link, which tells the peer that this
    /// node speaks SWIM.
    Alive {
        /// The process that is alive.
        node: ReplicaId,
        /// Its incarnation (raised by each refutation).
        inc: u64,
    },
}

impl Probe {
    /// The payload bytes (MessagePack; variants by name, fields by position).
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: plain integers and strings into a Vec.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    /// Decodes a payload; `None` for anything not understood (a later
    /// build's variant, or garbage): such a frame is ignored, never fatal.
    pub fn decode(bytes: &[u8]) -> Option<Probe> {
        rmp_serde::from_slice(bytes).ok()
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Send this frame on the link to the member.
    Send(NodeName, Probe),
    /// Send this frame to every member.
    Broadcast(Probe),
    /// The member is now suspected (for logs; it stays in the view).
    Suspected(NodeName),
    /// The member refuted a suspicion (for logs).
    Refuted(NodeName),
    /// The suspicion stood for `suspicion_ms`: the member is down. It is no
    /// longer probed; the shell closes its link and takes it out of the view.
    Down(NodeName),
    /// Probes of the member were answered only through other members, for
    /// `link_strikes` probes in a row: this node's own link to it is
    /// broken. The shell closes the link (and dials again).
    LinkBroken(NodeName),
}

#[derive(Debug, Clone)]
struct Member {
    id: ReplicaId,
    /// Its SWIM incarnation as last heard.
    inc: u64,
    /// The suspicion standing against it, if any.
    suspicion: Option<Suspicion>,
    /// Probes in a row answered only through others.
    strikes: u32,
}

#[derive(Debug, Clone)]
struct Suspicion {
    since_ms: u64,
    /// The members that suspected it independently (this node included if
    /// its own probe failed), at most `confirmations + 1`.
    by: Vec<NodeName>,
    /// Confirmations that bring the timeout down to `suspicion_ms`.
    needed: usize,
}

impl Suspicion {
    /// Lifeguard: `max − (max − min)·log(C + 1)/log(K + 1)`, for C
    /// confirmations beyond the first of K needed.
    fn timeout_ms(&self, config: &SwimConfig) -> u64 {
        let (min, max) = (
            config.suspicion_ms,
            config.suspicion_max_ms.max(config.suspicion_ms),
        );
        let c = self.by.len().saturating_sub(1);
        if c >= self.needed {
            return min;
        }
        let frac = ((c + 1) as f64).ln() / ((self.needed + 1) as f64).ln();
        max - ((max - min) as f64 * frac) as u64
    }

    fn confirm(&mut self, by: &NodeName) -> bool {
        if self.by.len() > self.needed || self.by.contains(by) {
            return false;
        }
        self.by.push(by.clone());
        true
    }
}

/// This node's probe under way.
#[derive(Debug, Clone)]
struct Pending {
    target: NodeName,
    seq: u64,
    sent_ms: u64,
    asked_others: bool,
    /// An ack came through another member (the direct one did not).
    indirect_ack: bool,
}

/// A probe made for another member (`PingReq`).
#[derive(Debug, Clone)]
struct Relay {
    requester: NodeName,
    their_seq: u64,
    target: NodeName,
    sent_ms: u64,
}

/// The failure detector of one node.
#[derive(Debug, Clone)]
pub struct Detector {
    config: SwimConfig,
    me: ReplicaId,
    /// This node's incarnation, raised to refute a suspicion of it.
    inc: u64,
    members: BTreeMap<NodeName, Member>,
    /// This round's probe order and the position in it.
    order: Vec<NodeName>,
    cursor: usize,
    pending: Option<Pending>,
    relays: BTreeMap<u64, Relay>,
    next_seq: u64,
    next_period_ms: Option<u64>,
    last_tick_ms: Option<u64>,
    /// Lifeguard's local health: 0 when this node keeps its own deadlines,
    /// up to `max_health` when it does not (it had to refute a suspicion of
    /// itself, its ticks come late); each directly answered probe takes one
    /// off. Its period and
    /// ack timeout are stretched `1 + health` times: a node under load
    /// probes less and accuses less, instead of feeding the load.
    health: u32,
    rng: u64,
}

/// Relays and probes older than this many periods are dropped unanswered.
const RELAY_PERIODS: u64 = 2;
/// Relays kept at most: a `PingReq` flood from a peer cannot grow the table.
const MAX_RELAYS: usize = 1024;

impl Detector {
    /// A detector for node `me`, with no members yet; `seed` shuffles the
    /// probe order (any value; the shell passes something per process).
    pub fn new(config: SwimConfig, me: ReplicaId, seed: u64) -> Self {
        Detector {
            config,
            me,
            inc: 0,
            members: BTreeMap::new(),
            order: Vec::new(),
            cursor: 0,
            pending: None,
            relays: BTreeMap::new(),
            next_seq: 1,
            next_period_ms: None,
            last_tick_ms: None,
            health: 0,
            rng: seed,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SwimConfig {
        &self.config
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.inc
    }

    /// Whether `name` is probed by this detector.
    pub fn is_member(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// Whether `name` is suspected now.
    pub fn is_suspected(&self, name: &str) -> bool {
        self.members
            .get(name)
            .is_some_and(|m| m.suspicion.is_some())
    }

    /// This node's local-health score (0: healthy).
    pub fn health(&self) -> u32 {
        self.health
    }

    fn healthier(&mut self) {
        self.health = self.health.saturating_sub(1);
    }

    fn sicker(&mut self) {
        self.health = (self.health + 1).min(self.config.max_health);
    }

    /// The period and ack timeout, stretched by local health.
    fn period_ms(&self) -> u64 {
        self.config.period_ms * u64::from(1 + self.health)
    }

    fn ack_timeout_ms(&self) -> u64 {
        self.config.ack_timeout_ms * u64::from(1 + self.health)
    }

    /// The members probed.
    pub fn members(&self) -> impl Iterator<Item = &NodeName> {
        self.members.keys()
    }

    /// What this node sends on every new link: it is alive, and speaks SWIM.
    pub fn hello(&self) -> Probe {
        Probe::Alive {
            node: self.me.clone(),
            inc: self.inc,
        }
    }

    /// `id` (linked, speaking SWIM) is probed from now on. A different
    /// process of the same name replaces the old one's state.
    pub fn add(&mut self, id: ReplicaId) {
        if self
            .members
            .get(&id.node)
            .is_some_and(|m| m.id.incarnation == id.incarnation)
        {
            return;
        }
        let name = id.node.clone();
        self.members.insert(
            name.clone(),
            Member {
                id,
                inc: 0,
                suspicion: None,
                strikes: 0,
            },
        );
        // Into the rest of this round at a random place, so a joiner is
        // probed within the round like everyone else.
        let rest = self.order.len().saturating_sub(self.cursor);
        let at = self.cursor + self.random(rest as u64 + 1) as usize;
        self.order.insert(at.min(self.order.len()), name);
    }

    /// `name` is no longer probed (its link closed, it left, or it is down).
    pub fn remove(&mut self, name: &str) {
        self.members.remove(name);
        if self.pending.as_ref().is_some_and(|p| *p.target == *name) {
            self.pending = None;
        }
        self.relays
            .retain(|_, r| *r.target != *name && *r.requester != *name);
    }

    /// Any frame from `name` arrived at `now_ms`: it answers for a probe of
    /// it (ours or one we relay) sent before.
    pub fn heard(&mut self, name: &str, now_ms: u64) -> Vec<Out> {
        let mut out = Vec::new();
        if let Some(p) = &self.pending
            && *p.target == *name
            && now_ms >= p.sent_ms
        {
            self.acked_directly();
        }
        self.answer_relays(name, now_ms, &mut out);
        out
    }

    fn acked_directly(&mut self) {
        if let Some(p) = self.pending.take() {
            self.healthier();
            if let Some(m) = self.members.get_mut(&p.target) {
                m.strikes = 0;
            }
        }
    }

    /// Relays whose target answered: ack their requesters.
    fn answer_relays(&mut self, target: &str, now_ms: u64, out: &mut Vec<Out>) {
        let done: Vec<u64> = self
            .relays
            .iter()
            .filter(|(_, r)| *r.target == *target && now_ms >= r.sent_ms)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in done {
            if let Some(r) = self.relays.remove(&seq) {
                out.push(Out::Send(r.requester, Probe::Ack { seq: r.their_seq }));
            }
        }
    }

    /// A detector frame from member `from` (the shell adds `from` first).
    pub fn on_probe(&mut self, from: &NodeName, probe: Probe, now_ms: u64) -> Vec<Out> {
        let mut out = self.heard(from, now_ms);
        match probe {
            Probe::Ping { seq } => out.push(Out::Send(from.clone(), Probe::Ack { seq })),
            Probe::Ack { seq } => {
                if let Some(p) = &mut self.pending
                    && p.seq == seq
                {
                    // Only a relayed ack reaches here with `from` ≠ target
                    // (the target's own frames were taken by `heard`).
                    p.indirect_ack = true;
                }
            }
            Probe::PingReq { seq, target } => self.relay(from, seq, &target, now_ms, &mut out),
            Probe::Suspect { node, inc } => self.on_suspect(from, node, inc, now_ms, &mut out),
            Probe::Alive { node, inc } => {
                if let Some(m) = self.members.get_mut(&node.node)
                    && m.id == node
                    && inc > m.inc
                {
                    m.inc = inc;
                    if m.suspicion.take().is_some() {
                        out.push(Out::Refuted(node.node));
                    }
                }
            }
        }
        out
    }

    fn relay(&mut self, from: &NodeName, seq: u64, target: &str, now_ms: u64, out: &mut Vec<Out>) {
        let Some(target) = self.members.get(target).map(|m| m.id.node.clone()) else {
            return; // not a member here: no answer, the requester times out
        };
        if self.relays.len() >= MAX_RELAYS {
            return;
        }
        let ours = self.seq();
        self.relays.insert(
            ours,
            Relay {
                requester: from.clone(),
                their_seq: seq,
                target: target.clone(),
                sent_ms: now_ms,
            },
        );
        out.push(Out::Send(target, Probe::Ping { seq: ours }));
    }

    fn on_suspect(
        &mut self,
        from: &NodeName,
        node: ReplicaId,
        inc: u64,
        now_ms: u64,
        out: &mut Vec<Out>,
    ) {
        if node == self.me {
            if inc >= self.inc {
                // Suspected: this node was too slow for someone. Refute,
                // and take it as a sign of its own poor health.
                self.inc = inc + 1;
                self.sicker();
                out.push(Out::Broadcast(self.hello()));
            }
            return;
        }
        let needed = self.needed_confirmations();
        let Some(m) = self.members.get_mut(&node.node) else {
            return;
        };
        if m.id != node || inc < m.inc {
            return;
        }
        match &mut m.suspicion {
            // Another member's own suspicion: a confirmation.
            Some(s) if inc == m.inc => {
                s.confirm(from);
            }
            Some(_) => {}
            None => {
                m.inc = inc;
                m.suspicion = Some(Suspicion {
                    since_ms: now_ms,
                    by: vec![from.clone()],
                    needed,
                });
                out.push(Out::Suspected(node.node.clone()));
            }
        }
    }

    /// Independent suspicions that settle a member's fate: at most
    /// `confirmations`, and no more than the other members that could.
    fn needed_confirmations(&self) -> usize {
        self.config
            .confirmations
            .min(self.members.len().saturating_sub(1))
    }

    /// Advances time: a probe due, others asked, a suspicion raised, a
    /// member down.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Out> {
        let mut out = Vec::new();
        self.absorb_own_stall(now_ms);
        self.expire_suspicions(now_ms, &mut out);
        if let Some(p) = &self.pending
            && !p.asked_others
            && now_ms >= p.sent_ms + self.ack_timeout_ms()
        {
            self.ask_others(&mut out);
        }
        let due = self.next_period_ms.is_none_or(|at| now_ms >= at);
        if due {
            self.end_probe(now_ms, &mut out);
            self.next_period_ms = Some(now_ms + self.period_ms());
            self.start_probe(now_ms, &mut out);
        }
        let oldest = now_ms.saturating_sub(RELAY_PERIODS * self.period_ms());
        self.relays.retain(|_, r| r.sent_ms >= oldest);
        out
    }

    /// Lifeguard's lesson, simplified: if this node's own tick comes late
    /// (its thread was starved or the process stopped), the silence it
    /// measured is its own. Every deadline moves by the lateness, so a slow
    /// node does not suspect healthy members whose acks wait in its mailbox.
    fn absorb_own_stall(&mut self, now_ms: u64) {
        let last = self.last_tick_ms.replace(now_ms);
        let Some(last) = last else { return };
        let late = now_ms.saturating_sub(last);
        if late <= self.config.period_ms {
            return;
        }
        self.sicker();
        let shift = late - self.config.period_ms / 2;
        if let Some(p) = &mut self.pending {
            p.sent_ms += shift;
        }
        if let Some(at) = &mut self.next_period_ms {
            *at += shift;
        }
        for m in self.members.values_mut() {
            if let Some(s) = &mut m.suspicion {
                s.since_ms += shift;
            }
        }
    }

    fn expire_suspicions(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        let config = &self.config;
        let down: Vec<NodeName> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.suspicion
                    .as_ref()
                    .is_some_and(|s| now_ms >= s.since_ms + s.timeout_ms(config))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in down {
            self.remove(&name);
            out.push(Out::Down(name));
        }
    }

    fn ask_others(&mut self, out: &mut Vec<Out>) {
        let Some(p) = &mut self.pending else { return };
        p.asked_others = true;
        let (target, seq) = (p.target.clone(), p.seq);
        let mut others: Vec<NodeName> = self
            .members
            .iter()
            .filter(|(n, m)| **n != target && m.suspicion.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for _ in 0..self.config.indirect.min(others.len()) {
            let i = self.random(others.len() as u64) as usize;
            let via = others.swap_remove(i);
            out.push(Out::Send(
                via,
                Probe::PingReq {
                    seq,
                    target: target.to_string(),
                },
            ));
        }
    }

    /// The period ended: an unanswered probe makes its target suspect, or
    /// confirms a suspicion others raised.
    fn end_probe(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        let Some(p) = self.pending.take() else { return };
        let needed = self.needed_confirmations();
        let me = self.me.node.clone();
        let Some(m) = self.members.get_mut(&p.target) else {
            return;
        };
        if p.indirect_ack {
            m.strikes += 1;
            if m.strikes >= self.config.link_strikes {
                m.strikes = 0;
                out.push(Out::LinkBroken(p.target));
            }
            return;
        }
        let suspect = Probe::Suspect {
            node: m.id.clone(),
            inc: m.inc,
        };
        match &mut m.suspicion {
            Some(s) => {
                if s.confirm(&me) {
                    out.push(Out::Broadcast(suspect));
                }
            }
            None => {
                m.suspicion = Some(Suspicion {
                    since_ms: now_ms,
                    by: vec![me],
                    needed,
                });
                out.push(Out::Suspected(p.target));
                out.push(Out::Broadcast(suspect));
            }
        }
        // Not a sign of this node's own health: an isolated node's probes
        // all fail, and it must still judge the other side at full speed.
    }

    fn start_probe(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        let Some(target) = self.next_target() else {
            return;
        };
        let seq = self.seq();
        self.pending = Some(Pending {
            target: target.clone(),
            seq,
            sent_ms: now_ms,
            asked_others: false,
            indirect_ack: false,
        });
        out.push(Out::Send(target.clone(), Probe::Ping { seq }));
        // Lifeguard's buddy system: a suspected member we probe hears of
        // the suspicion from us too, in case the suspecter's frame to it
        // was lost with its link.
        if let Some(m) = self.members.get(&target)
            && m.suspicion.is_some()
        {
            let suspect = Probe::Suspect {
                node: m.id.clone(),
                inc: m.inc,
            };
            out.push(Out::Send(target, suspect));
        }
    }

    /// The next member in this round's order; a new shuffled round when
    /// the order is used up. Names that left the member set are skipped.
    fn next_target(&mut self) -> Option<NodeName> {
        if self.members.is_empty() {
            return None;
        }
        loop {
            if self.cursor >= self.order.len() {
                self.order = self.members.keys().cloned().collect();
                self.shuffle_order();
                self.cursor = 0;
            }
            let name = self.order[self.cursor].clone();
            self.cursor += 1;
            if self.members.contains_key(&name) {
                return Some(name);
            }
        }
    }

    fn shuffle_order(&mut self) {
        for i in (1..self.order.len()).rev() {
            let j = self.random(i as u64 + 1) as usize;
            self.order.swap(i, j);
        }
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Uniform-enough in `0..bound` (splitmix64; `bound` ≥ 1 or 0 → 0).
    fn random(&mut self, bound: u64) -> u64 {
        if bound <= 1 {
            return 0;
        }
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z % bound
    }
}
