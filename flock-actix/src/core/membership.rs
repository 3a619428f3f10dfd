//! Membership and failure detection over the full mesh of peer links.
//!
//! Every node keeps one authenticated link to every other node it knows. A
//! peer is **up** while its link is open and it answers: a killed process is
//! declared down at once (its link closes); a silent one (hung or stopped
//! process, partition, half-open TCP connection) about
//! [`MembershipConfig::down_after_ms`] after it stopped answering. Nodes learn each other transitively: on every new link both sides
//! send the members they know, and each dials the ones it has no link to.
//!
//! The state machine does no I/O: the shell reports links opening and
//! closing, frames arriving and members gossiped, calls [`Membership::tick`]
//! with the time, and carries out the returned [`Effect`]s. The view that
//! placement uses is [`Membership::view`]: this node plus every up peer, minus
//! nodes that announced they are leaving.
//!
//! Silence is judged two ways. A peer that spoke SWIM on its link (every
//! peer of this build) is judged by the SWIM detector, `core::swim`: one
//! probe per period per node, indirect probes, suspicion and refutation,
//! so idle traffic is O(1) per node rather than a heartbeat on each of
//! `n − 1` links (docs/ARCHITECTURE.md §34; the full-mesh heartbeats of §8
//! cost ≈ 2,000 frames/s per node at 100 nodes and kept 60 nodes from
//! forming on 2 vCPUs). A peer of an earlier build keeps the heartbeats and
//! the silence limit of §8. Link loss still takes a peer out at once, whatever
//! judges its silence: SWIM alone would wait for a probe timeout.

use crate::core::crdt::{NodeName, ReplicaId};
use crate::core::placement::Member;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How much longer than `down_after_ms` a new link's peer may take to send
/// its first frame. Its first frames wait until its Ring has taken the link
/// (`ctx.wait` in the Peer), and until they arrive we cannot tell a peer of
/// this build (whose hello hands it to the SWIM detector) from one of an
/// earlier build (judged by heartbeats). On a loaded machine forming a
/// hundred-node mesh that wait crossed 1 s, and judging the silence from
/// link-up dropped healthy peers by the thousand (stop 18). With this
/// grace the limit is the handshake timeout's default, 5 s.
pub const FIRST_FRAME_GRACE_MS: u64 = 4_000;

/// Timing of failure detection and reconnection, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// The protocol period: each node probes one member this often (SWIM,
    /// `core::swim`); peers of an earlier build get a heartbeat this often.
    pub heartbeat_ms: u64,
    /// How long a peer may stay silent before it is declared down: a probed
    /// member is suspected one period after a probe it misses and down
    /// unless it refutes within `down_after_ms − heartbeat_ms`.
    pub down_after_ms: u64,
    /// The first reconnection delay after a link to a known peer is lost.
    pub reconnect_min_ms: u64,
    /// The largest reconnection delay (the delay doubles up to it).
    pub reconnect_max_ms: u64,
    /// How long a peer may stay down (or departed) before it is forgotten:
    /// no longer dialled, listed or gossiped. A node that comes back later
    /// simply joins again. Compare foca's `remove_down_after`.
    pub forget_down_after_ms: u64,
}

impl Default for MembershipConfig {
    /// Heartbeats every 200 ms, down after 1 s of silence (so a silent node is
    /// declared down within 1.2 s), reconnect after 100 ms doubling to 2 s,
    /// forget a peer down for 5 minutes.
    fn default() -> Self {
        MembershipConfig {
            heartbeat_ms: 200,
            down_after_ms: 1_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 2_000,
            forget_down_after_ms: 300_000,
        }
    }
}

impl MembershipConfig {
    /// Checks that the values make sense together.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the offending value.
    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_ms == 0 {
            return Err(Error::InvalidConfig("heartbeat_ms must be above 0".into()));
        }
        if self.down_after_ms < 2 * self.heartbeat_ms {
            return Err(Error::InvalidConfig(format!(
                "down_after_ms ({}) must be at least twice heartbeat_ms ({}), \
                 or one late heartbeat declares a healthy peer down",
                self.down_after_ms, self.heartbeat_ms
            )));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(Error::InvalidConfig(format!(
                "reconnect delays must satisfy 0 < min ({}) <= max ({})",
                self.reconnect_min_ms, self.reconnect_max_ms
            )));
        }
        if self.forget_down_after_ms < self.down_after_ms {
            return Err(Error::InvalidConfig(format!(
                "forget_down_after_ms ({}) must be at least down_after_ms ({}), \
                 or peers are forgotten before they are redialled",
                self.forget_down_after_ms, self.down_after_ms
            )));
        }
        Ok(())
    }
}

/// What a node says about itself and what is gossiped about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Name and incarnation.
    pub id: ReplicaId,
    /// The address it listens on, which others dial.
    pub addr: String,
    /// Its placement weight (0: a client node that hosts no birds).
    pub weight: u32,
}

/// Where a known peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// A link is open and the peer was heard from recently.
    Up,
    /// No link: never connected, lost, or declared silent. Dialled with backoff.
    Down,
    /// It announced a graceful leave; not dialled again until it comes back
    /// with a new incarnation.
    Left,
}

#[derive(Debug, Clone)]
struct Peer {
    info: NodeInfo,
    status: PeerStatus,
    last_heard_ms: u64,
    /// Whether any frame arrived on the current link yet.
    heard_once: bool,
    last_beat_ms: u64,
    next_dial_ms: u64,
    backoff_ms: u64,
    dialing: bool,
    /// Since when it is down or departed (meaningless while up).
    down_since_ms: u64,
    /// Judged by the SWIM detector (`core::swim`), not by heartbeats: it
    /// spoke SWIM on its current link. Peers of an earlier build never do,
    /// and keep the heartbeats and silence limit of before.
    probed: bool,
}

impl Peer {
    /// A peer known but not linked yet (learnt from gossip).
    fn unlinked(info: NodeInfo, now_ms: u64, backoff_ms: u64) -> Self {
        Peer {
            info,
            status: PeerStatus::Down,
            last_heard_ms: now_ms,
            heard_once: false,
            last_beat_ms: now_ms,
            next_dial_ms: now_ms,
            backoff_ms,
            dialing: false,
            down_since_ms: now_ms,
            probed: false,
        }
    }

    fn goes_down(&mut self, now_ms: u64, backoff_ms: u64) {
        self.status = PeerStatus::Down;
        self.backoff_ms = backoff_ms;
        self.next_dial_ms = now_ms + backoff_ms;
        self.down_since_ms = now_ms;
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a link to this address (a seed, or a known peer that is down).
    Dial(String),
    /// Send a heartbeat on the link to this peer.
    Heartbeat(NodeName),
    /// Close the link to this peer: it was silent too long.
    Close(NodeName),
    /// The view changed: rebuild placement from [`Membership::view`].
    ViewChanged,
    /// This peer was down or departed for `forget_down_after_ms` and is
    /// forgotten: drop whatever else is kept about it.
    Forget(NodeName),
}

/// What happened to a peer when a link opened, for the sync layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A peer never seen before.
    New,
    /// A known peer came back with the same incarnation (a reconnect).
    Reconnected,
    /// A known peer came back with a new incarnation: it restarted and lost
    /// its state.
    Restarted,
    /// An older incarnation than one that is up, or the same process that
    /// announced its leave: a second live process with the peer's name, or a
    /// stale one. The link should be refused, loudly.
    ///
    /// An older incarnation than a known peer that is *down* is taken as a
    /// restart instead ([`Joined::Restarted`]): incarnations come from the
    /// wall clock, and a clock stepped back before a restart must not lock
    /// the restarted node out. At most one process per name is up at a time.
    Stale,
}

/// The membership state machine of one node.
#[derive(Debug, Clone)]
pub struct Membership {
    config: MembershipConfig,
    me: NodeInfo,
    leaving: bool,
    peers: BTreeMap<NodeName, Peer>,
    /// Seed addresses not (yet) known to belong to a peer, with their next dial time.
    seeds: BTreeMap<String, (u64, u64)>,
    /// Every address this node was told to dial (configured seeds and
    /// discovery's answers), with the peer it turned out to lead to. Such an
    /// address goes back to `seeds` when that peer is forgotten, so it is
    /// always dialled by someone: otherwise a partition longer than
    /// `forget_down_after_ms` makes both sides forget each other and,
    /// nobody dialling anybody, splits the cluster for good.
    configured: BTreeMap<String, Option<NodeName>>,
}

impl Membership {
    /// A node that knows only itself and its seed addresses.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is inconsistent.
    pub fn new(
        config: MembershipConfig,
        me: NodeInfo,
        seeds: impl IntoIterator<Item = String>,
    ) -> Result<Self> {
        config.validate()?;
        let seeds: BTreeMap<String, (u64, u64)> = seeds
            .into_iter()
            .filter(|s| *s != me.addr)
            .map(|s| (s, (0, config.reconnect_min_ms)))
            .collect();
        let configured = seeds.keys().map(|s| (s.clone(), None)).collect();
        Ok(Membership {
            config,
            me,
            leaving: false,
            peers: BTreeMap::new(),
            seeds,
            configured,
        })
    }

    /// This node.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// The configuration in force.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// A peer's status, if it is known.
    pub fn status(&self, name: &str) -> Option<PeerStatus> {
        self.peers.get(name).map(|p| p.status)
    }

    /// What is known about peer `name` (any status).
    pub fn info(&self, name: &str) -> Option<&NodeInfo> {
        self.peers.get(name).map(|p| &p.info)
    }

    /// The peers that are up.
    pub fn up_peers(&self) -> impl Iterator<Item = &NodeInfo> {
        self.peers
            .values()
            .filter(|p| p.status == PeerStatus::Up)
            .map(|p| &p.info)
    }

    /// Every node known, this one included, for gossip.
    pub fn known(&self) -> Vec<NodeInfo> {
        std::iter::once(self.me.clone())
            .chain(
                self.peers
                    .values()
                    .filter(|p| p.status != PeerStatus::Left)
                    .map(|p| p.info.clone()),
            )
            .collect()
    }

    /// What this node gossips to a new link: itself and the peers it sees
    /// up. A peer that is down here is not passed on: a node that learns of
    /// a dead member from gossip would keep it (and redial it) for
    /// `forget_down_after_ms` from the moment *it* heard, and pass it on
    /// again — with clients coming and going, a dead member could be
    /// resurrected forever (issue #9 item 7; simulation seed 1001631, where a
    /// restarted node listed a node killed before it started). Nodes that
    /// knew the dead member keep redialling it on their own until they
    /// forget it; a member that comes back dials them and is gossiped again.
    pub fn gossiped(&self) -> Vec<NodeInfo> {
        std::iter::once(self.me.clone())
            .chain(
                self.peers
                    .values()
                    .filter(|p| p.status == PeerStatus::Up)
                    .map(|p| p.info.clone()),
            )
            .collect()
    }

    /// The peers that left gracefully and are not forgotten yet (for
    /// membership events: `known` leaves them out).
    pub fn departed(&self) -> impl Iterator<Item = &NodeInfo> {
        self.peers
            .values()
            .filter(|p| p.status == PeerStatus::Left)
            .map(|p| &p.info)
    }

    /// The members placement is computed over: this node (unless leaving)
    /// and every up peer, with their weights.
    pub fn view(&self) -> Vec<Member> {
        let me = (!self.leaving).then(|| Member::new(self.me.id.node.clone(), self.me.weight));
        me.into_iter()
            .chain(
                self.up_peers()
                    .map(|i| Member::new(i.id.node.clone(), i.weight)),
            )
            .collect()
    }

    /// Whether this node announced its leave.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// This node starts leaving: it drops out of its own view (its birds go
    /// to their new owners). The shell announces the leave to every peer.
    pub fn leave(&mut self) -> Vec<Effect> {
        if self.leaving {
            return Vec::new();
        }
        self.leaving = true;
        vec![Effect::ViewChanged]
    }

    /// A link to `info` completed the handshake at `now_ms`.
    pub fn link_up(&mut self, info: NodeInfo, now_ms: u64) -> (Joined, Vec<Effect>) {
        self.seed_belongs_to(&info.addr, &info.id.node);
        let min = self.config.reconnect_min_ms;
        let fresh = Peer {
            status: PeerStatus::Up,
            ..Peer::unlinked(info.clone(), now_ms, min)
        };
        let joined = match self.peers.get_mut(&info.id.node) {
            None => {
                self.peers.insert(info.id.node.clone(), fresh);
                Joined::New
            }
            Some(p)
                if info.id.incarnation < p.info.id.incarnation && p.status == PeerStatus::Up =>
            {
                return (Joined::Stale, vec![]);
            }
            Some(p) => {
                let was_up = p.status == PeerStatus::Up;
                let joined = if info.id.incarnation != p.info.id.incarnation {
                    Joined::Restarted
                } else if p.status == PeerStatus::Left {
                    // The same process that said goodbye: keep it out.
                    return (Joined::Stale, vec![]);
                } else {
                    Joined::Reconnected
                };
                *p = fresh;
                if was_up && joined == Joined::Reconnected {
                    // A replacement link to a peer that never went down.
                    return (joined, vec![]);
                }
                joined
            }
        };
        (joined, vec![Effect::ViewChanged])
    }

    /// A dial to seed address `addr` reached node `name`: stop dialling it
    /// as a seed (the node is now known by name and its advertised address)
    /// until `name` is forgotten.
    pub fn seed_reached(&mut self, addr: &str, name: &NodeName) {
        self.seed_belongs_to(addr, name);
    }

    /// `addr` is now dialled as peer `name`, not as a seed.
    fn seed_belongs_to(&mut self, addr: &str, name: &NodeName) {
        self.seeds.remove(addr);
        if let Some(owner) = self.configured.get_mut(addr) {
            *owner = Some(name.clone());
        }
    }

    /// `name` was forgotten: the configured addresses that led to it (or
    /// that it advertised) are dialled as seeds again, from `now_ms`.
    fn release_seeds(&mut self, name: &NodeName, addr: &str, now_ms: u64) {
        for (seed, owner) in &mut self.configured {
            if owner.as_ref() == Some(name) || seed == addr {
                *owner = None;
                self.seeds
                    .entry(seed.clone())
                    .or_insert((now_ms, self.config.reconnect_min_ms));
            }
        }
    }

    /// Discovery found `addr`: dial it as a seed unless it is this node's,
    /// already a seed, or the address of a peer that has not left (those
    /// are dialled by name already). Returns whether it became a seed.
    pub fn add_seed(&mut self, addr: &str, now_ms: u64) -> bool {
        if addr == self.me.addr {
            return false;
        }
        let known = self
            .peers
            .values()
            .find(|p| p.info.addr == addr && p.status != PeerStatus::Left)
            .map(|p| p.info.id.node.clone());
        let owner = self.configured.entry(addr.to_owned()).or_default();
        if known.is_some() {
            owner.clone_from(&known);
        }
        if known.is_some() || self.seeds.contains_key(addr) {
            return false;
        }
        self.seeds
            .insert(addr.to_owned(), (now_ms, self.config.reconnect_min_ms));
        true
    }

    /// Discovery lost `addr`: stop dialling it as a seed (known peers are
    /// unaffected).
    pub fn forget_seed(&mut self, addr: &str) {
        self.seeds.remove(addr);
        self.configured.remove(addr);
    }

    /// The link to `name` closed (or a dial to its address failed).
    pub fn link_down(&mut self, name: &str, now_ms: u64) -> Vec<Effect> {
        let Some(p) = self.peers.get_mut(name) else {
            return vec![];
        };
        p.dialing = false;
        let was_up = p.status == PeerStatus::Up;
        if was_up {
            p.goes_down(now_ms, self.config.reconnect_min_ms);
        }
        if was_up {
            vec![Effect::ViewChanged]
        } else {
            vec![]
        }
    }

    /// A dial to `addr` failed: back off before the next one.
    pub fn dial_failed(&mut self, addr: &str, now_ms: u64) {
        let max = self.config.reconnect_max_ms;
        if let Some((next, backoff)) = self.seeds.get_mut(addr) {
            *next = now_ms + *backoff;
            *backoff = (*backoff * 2).min(max);
        }
        if let Some(p) = self.peers.values_mut().find(|p| p.info.addr == addr) {
            p.dialing = false;
            p.next_dial_ms = now_ms + p.backoff_ms;
            p.backoff_ms = (p.backoff_ms * 2).min(max);
        }
    }

    /// `name` spoke SWIM on its link: from now on the detector judges it,
    /// and it gets no heartbeats. Returns whether that is new (false for a
    /// peer not up, or already probed). A new link starts unprobed again.
    pub fn set_probed(&mut self, name: &str) -> bool {
        match self.peers.get_mut(name) {
            Some(p) if p.status == PeerStatus::Up && !p.probed => {
                p.probed = true;
                true
            }
            _ => false,
        }
    }

    /// Whether `name` is judged by the SWIM detector.
    pub fn is_probed(&self, name: &str) -> bool {
        self.peers.get(name).is_some_and(|p| p.probed)
    }

    /// The detector declared `name` down (a suspicion nobody refuted):
    /// close its link and take it out of the view, as silence does for a
    /// peer judged by heartbeats.
    pub fn silent(&mut self, name: &str, now_ms: u64) -> Vec<Effect> {
        match self.peers.get_mut(name) {
            Some(p) if p.status == PeerStatus::Up => {
                p.goes_down(now_ms, self.config.reconnect_min_ms);
                vec![Effect::Close(p.info.id.node.clone()), Effect::ViewChanged]
            }
            _ => vec![],
        }
    }

    /// Any frame from `name` arrived: it is alive.
    pub fn heard_from(&mut self, name: &str, now_ms: u64) {
        if let Some(p) = self.peers.get_mut(name) {
            p.last_heard_ms = now_ms;
            p.heard_once = true;
        }
    }

    /// `name` announced a graceful leave at `now_ms`.
    pub fn peer_left(&mut self, name: &str, now_ms: u64) -> Vec<Effect> {
        match self.peers.get_mut(name) {
            Some(p) if p.status != PeerStatus::Left => {
                let was_up = p.status == PeerStatus::Up;
                p.status = PeerStatus::Left;
                p.down_since_ms = now_ms;
                if was_up {
                    vec![Effect::ViewChanged]
                } else {
                    vec![]
                }
            }
            _ => vec![],
        }
    }

    /// A peer told us the nodes it knows: remember the new ones so they get dialled.
    pub fn gossip(&mut self, nodes: impl IntoIterator<Item = NodeInfo>, now_ms: u64) {
        for info in nodes {
            if info.id.node == self.me.id.node {
                continue;
            }
            match self.peers.get_mut(&info.id.node) {
                Some(p)
                    if info.id.incarnation > p.info.id.incarnation
                        && p.status != PeerStatus::Up =>
                {
                    // A newer incarnation of a down or departed peer: dial it.
                    p.info = info;
                    p.status = PeerStatus::Down;
                    p.next_dial_ms = now_ms;
                    p.down_since_ms = now_ms;
                }
                Some(_) => {}
                None => {
                    self.seed_belongs_to(&info.addr, &info.id.node);
                    let min = self.config.reconnect_min_ms;
                    self.peers
                        .insert(info.id.node.clone(), Peer::unlinked(info, now_ms, min));
                }
            }
        }
    }

    /// Advances time: peers down too long to forget, heartbeats due, silent
    /// peers to close, dials due. Peers judged by the SWIM detector get no
    /// heartbeats and are not judged here.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let forget_after = self.config.forget_down_after_ms;
        let mut effects = Vec::new();
        let mut forgotten = Vec::new();
        self.peers.retain(|name, p| {
            let forget = p.status != PeerStatus::Up
                && now_ms.saturating_sub(p.down_since_ms) >= forget_after;
            if forget {
                effects.push(Effect::Forget(name.clone()));
                forgotten.push((name.clone(), p.info.addr.clone()));
            }
            !forget
        });
        for (name, addr) in forgotten {
            self.release_seeds(&name, &addr, now_ms);
        }
        let mut view_changed = false;
        for (name, p) in &mut self.peers {
            match p.status {
                PeerStatus::Up if p.probed => {}
                PeerStatus::Up
                    if now_ms.saturating_sub(p.last_heard_ms)
                        > self.config.down_after_ms
                            + if p.heard_once {
                                0
                            } else {
                                FIRST_FRAME_GRACE_MS
                            } =>
                {
                    p.goes_down(now_ms, self.config.reconnect_min_ms);
                    effects.push(Effect::Close(name.clone()));
                    view_changed = true;
                }
                PeerStatus::Up
                    if now_ms.saturating_sub(p.last_beat_ms) >= self.config.heartbeat_ms =>
                {
                    p.last_beat_ms = now_ms;
                    effects.push(Effect::Heartbeat(name.clone()));
                }
                PeerStatus::Down if !p.dialing && now_ms >= p.next_dial_ms && !self.leaving => {
                    p.dialing = true;
                    effects.push(Effect::Dial(p.info.addr.clone()));
                }
                _ => {}
            }
        }
        if !self.leaving {
            for (addr, (next, _)) in &mut self.seeds {
                if now_ms >= *next {
                    // Dial again only after the failure (or success) is reported.
                    *next = u64::MAX;
                    effects.push(Effect::Dial(addr.clone()));
                }
            }
        }
        if view_changed {
            effects.push(Effect::ViewChanged);
        }
        effects
    }
}

#[cfg(test)]
mod tests;
