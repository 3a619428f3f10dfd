//! The Ring actor: membership, links, and the placement table.
//!
//! A thin shell around [`Membership`] and the SWIM detector
//! ([`Detector`], shell in `probe`): it accepts and dials links, feeds
//! their events to the state machines on a timer, carries out their effects
//! (dial, probe, heartbeat to a peer of an earlier build, close), and on
//! every view change rebuilds the
//! [`Placement`](crate::core::placement::Placement) table, publishes it for lock-free readers and tells the
//! Registry to reconcile.

use super::directory::Directory;
use super::messages::{Begin, Gossip, Heard, LinkDown, LinkUp, PeerLeft, PeerLeftAck, ViewChanged};
use super::node::{Links, MAX_UNAUTHENTICATED, Node, View};
use super::peer::{AckLeave, Close, Direct, Frame, Peer, PeerLink};
use super::replica::{PeerDown, PeerUp};
use super::telemetry;
use super::{MemberState, MemberView};
use crate::core::crdt::NodeName;
use crate::core::events::{Presence, Seen, Snapshot};
use crate::core::membership::{Effect, Joined, Membership, NodeInfo, PeerStatus};
use crate::core::placement::{HostedMember, MAX_WEIGHT};
use crate::core::swim::{Detector, SwimConfig};
use crate::net::Listener;
use crate::wire::message::{MemberInfo, MemberStatus, Message, RejectReason};
use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

mod probe;
pub(crate) use probe::probe_in;

/// At most one warning per this interval about strangers refused on accept.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

struct Link {
    id: u64,
    peer: Addr<Peer>,
    direct: Arc<Direct>,
    /// The name of the node that dialled this link.
    initiator: NodeName,
    /// When it came up (node clock, ms).
    since_ms: u64,
}

/// A link that closes this young, was dialled by the larger of the two
/// names, and closes while another link *to the same peer* is still in its
/// handshake, may be the loser of two nodes dialling each other at once,
/// closed by the other side before our copy of the winning link completed
/// its handshake: wait [`DUPLICATE_GRACE`] for a replacement before declaring
/// the peer down, so views do not flap. Any other link loss is acted on at
/// once (a killed process must be noticed immediately, whatever handshakes
/// other strangers keep open).
const YOUNG_LINK_MS: u64 = 200;
const DUPLICATE_GRACE: Duration = Duration::from_millis(250);

struct Leaving {
    waiting: HashSet<NodeName>,
    done: Option<oneshot::Sender<()>>,
}

pub(crate) struct Ring {
    node: Arc<Node>,
    directory: Directory,
    membership: Membership,
    /// Judges the silence of peers of this build (SWIM probes).
    detector: Detector,
    /// Ordered, so links are closed and told of a leave in the same order
    /// on every run (the deterministic simulation replays a seed exactly).
    links: BTreeMap<NodeName, Link>,
    /// The kinds each peer announced in its handshake (`None`: a v1 peer,
    /// hosting every kind); entries go when membership forgets the peer.
    kinds: HashMap<NodeName, Option<BTreeSet<String>>>,
    listener: Option<Box<dyn Listener>>,
    epoch: u64,
    heartbeat_seq: u64,
    leaving: Option<Leaving>,
    /// A view change is waiting for the placement rebuild, queued once
    /// behind the messages already in the mailbox (see [`Rebuild`]).
    rebuild_due: bool,
    /// Links whose Peer waits until the view holds them (§23 item 6).
    view_waiters: Vec<oneshot::Sender<()>>,
}

/// Rebuilds the placement once the Ring's mailbox is drained: a burst of
/// link-ups (100 nodes forming: 99 per node within seconds) pays one
/// rebuild, not one per link (measured: a rebuild per link-up, here and in
/// the Registry, was half of all CPU while 100 nodes formed).
struct Rebuild;

impl actix::Message for Rebuild {
    type Result = ();
}

impl Ring {
    pub(crate) fn new(
        node: Arc<Node>,
        listener: Box<dyn Listener>,
        directory: Directory,
    ) -> crate::Result<Self> {
        let membership = Membership::new(
            node.config.membership.clone(),
            node.me.clone(),
            node.config.seeds.clone(),
        )?;
        let m = &node.config.membership;
        let detector = Detector::new(
            SwimConfig::from_membership(m.heartbeat_ms, m.down_after_ms),
            node.me.id.clone(),
            probe::seed(&node.me.id.node, node.me.id.incarnation),
        );
        Ok(Ring {
            node,
            directory,
            membership,
            detector,
            links: BTreeMap::new(),
            kinds: HashMap::new(),
            listener: Some(listener),
            epoch: 0,
            heartbeat_seq: 0,
            leaving: None,
            rebuild_due: false,
            view_waiters: Vec::new(),
        })
    }

    fn publish_links(&self) {
        let links: Links = self
            .links
            .iter()
            .map(|(name, l)| {
                let link = PeerLink {
                    addr: l.peer.clone(),
                    direct: l.direct.clone(),
                };
                (name.clone(), link)
            })
            .collect();
        self.node.links.store(Arc::new(links));
    }

    fn apply(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        self.apply_effects(effects, ctx);
        // Everything that changes a member's state ends here (the tick, a
        // link up or down, a leave), so subscribers hear of it at once.
        self.node.events.publish(self.snapshot());
    }

    /// The members and hosts now, for membership events.
    fn snapshot(&self) -> Snapshot {
        let members = self
            .member_views()
            .into_iter()
            .map(|m| {
                let presence = match m.status {
                    MemberState::Up => Presence::Up,
                    MemberState::Down => Presence::Down,
                    MemberState::Leaving | MemberState::Left => Presence::Left,
                };
                let seen = Seen {
                    presence,
                    addr: m.addr,
                    weight: m.weight,
                };
                (m.name, seen)
            })
            .chain(self.membership.departed().map(|info| {
                let seen = Seen {
                    presence: Presence::Left,
                    addr: info.addr.clone(),
                    weight: info.weight,
                };
                (info.id.node.to_string(), seen)
            }))
            .collect();
        let mut hosts: Vec<String> = self
            .node
            .view
            .load()
            .placement
            .hosts()
            .iter()
            .map(|m| m.name.to_string())
            .collect();
        hosts.sort_unstable();
        Snapshot { members, hosts }
    }

    fn apply_effects(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        for effect in effects {
            match effect {
                Effect::Dial(addr) => self.dial(addr, ctx),
                Effect::Heartbeat(name) => {
                    if let Some(link) = self.links.get(&name) {
                        self.heartbeat_seq += 1;
                        link.peer.do_send(Frame(Message::Heartbeat {
                            seq: self.heartbeat_seq,
                        }));
                    }
                }
                Effect::Close(name) => {
                    telemetry::member_event("down");
                    tracing::warn!(
                        node = %self.node.name(), peer = %name, event = "down",
                        "node {} declares {name} down: silent for more than {} ms",
                        self.node.name(),
                        self.node.config.membership.down_after_ms
                    );
                    if let Some(link) = self.links.remove(&name) {
                        link.peer.do_send(Close);
                        self.publish_links();
                    }
                    self.detector.remove(&name);
                    self.peer_gone(&name);
                }
                Effect::ViewChanged => self.rebuild_now(),
                Effect::Forget(name) => {
                    tracing::info!(
                        "node {} forgets {name}: down for more than {} ms",
                        self.node.name(),
                        self.node.config.membership.forget_down_after_ms
                    );
                    // Its anti-entropy state goes too, as for a node that left.
                    self.kinds.remove(&name);
                    self.detector.remove(&name);
                    if let Some(actors) = self.node.actors() {
                        actors.replica.do_send(PeerDown { name, left: true });
                    }
                }
            }
        }
    }

    fn peer_gone(&mut self, name: &NodeName) {
        let left = self.membership.status(name) == Some(PeerStatus::Left);
        if let Some(actors) = self.node.actors() {
            actors.replica.do_send(PeerDown {
                name: name.clone(),
                left,
            });
        }
        if let Some(leaving) = &mut self.leaving {
            leaving.waiting.remove(name);
        }
        self.check_leave_done();
    }

    fn dial(&self, addr: String, ctx: &mut Context<Self>) {
        self.dial_offering(addr, None, ctx);
    }

    /// Dials `addr`, offering protocol version `offer` (`None`: the newest).
    fn dial_offering(&self, addr: String, offer: Option<u32>, ctx: &mut Context<Self>) {
        let connect = self.node.config.network.connect(&addr);
        let timeout = self.node.config.handshake_timeout;
        let node = self.node.clone();
        let directory = self.directory.clone();
        ctx.spawn(
            async move { tokio::time::timeout(timeout, connect).await }
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(Ok(stream)) => {
                        Peer::start(node, directory, stream, Some(addr), offer);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("dial {addr} failed: {e}");
                        act.membership.dial_failed(&addr, act.node.now_ms());
                    }
                    Err(_) => {
                        tracing::debug!("dial {addr} timed out");
                        act.membership.dial_failed(&addr, act.node.now_ms());
                    }
                }),
        );
    }

    /// Rebuilds at once: a member left or went down. Its link is gone
    /// already, so until the view drops it too, callers would be routed to
    /// a node they cannot reach (a call failed "unreachable" in a rolling
    /// restart when this waited for the mailbox).
    fn rebuild_now(&mut self) {
        self.rebuild_due = false;
        self.rebuild();
        for waiter in self.view_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Rebuilds once the messages already queued are handled (`notify`
    /// runs after the mailbox is drained), however many link-ups they
    /// bring. Only for members joining: until then callers keep using
    /// the view they have, whose members are all still reachable.
    fn rebuild_soon(&mut self, ctx: &mut Context<Self>) {
        if !std::mem::replace(&mut self.rebuild_due, true) {
            ctx.notify(Rebuild);
        }
    }

    fn rebuild(&mut self) {
        // This node hosts what it registered; each peer what it announced.
        let mine = Some(self.node.kinds.tags());
        let view = self.membership.view().into_iter().map(|member| {
            let kinds = if member.name == *self.node.name() {
                mine.clone()
            } else {
                self.kinds.get(&member.name).cloned().flatten()
            };
            HostedMember { member, kinds }
        });
        // Incremental: a join or leave rescores only the shards it can move
        // (identical to a full build; see `Placement::next`).
        let previous = self.node.view.load_full();
        let placement = match previous.placement.next(view) {
            Ok(p) => p,
            Err(e) => {
                // Only reachable with invalid peer weights, which the
                // handshake bounds; keep the previous table.
                tracing::error!("cannot rebuild placement: {e}");
                return;
            }
        };
        self.epoch += 1;
        let hosts: Vec<String> = placement
            .all()
            .hosts()
            .iter()
            .map(|m| m.name.to_string())
            .collect();
        let up = self.membership.up_peers().count() + 1;
        telemetry::members(up, self.membership.known().len().saturating_sub(up));
        tracing::info!(
            node = %self.node.name(), hosts = hosts.len(),
            "node {} sees {} member(s) hosting birds: {}",
            self.node.name(),
            hosts.len(),
            hosts.join(", ")
        );
        self.node.view.store(Arc::new(View {
            epoch: self.epoch,
            placement,
        }));
        if let Some(actors) = self.node.actors() {
            actors.registry.do_send(ViewChanged);
        }
    }

    fn accept_loop(&mut self, ctx: &mut Context<Self>) {
        let Some(mut listener) = self.listener.take() else {
            return;
        };
        let node = self.node.clone();
        let directory = self.directory.clone();
        ctx.spawn(
            async move {
                let mut refused = 0u64;
                let mut last_warn: Option<Instant> = None;
                loop {
                    match listener.accept().await {
                        Ok(stream) => {
                            if node.is_stopping() {
                                break;
                            }
                            if node.unauthenticated() >= MAX_UNAUTHENTICATED {
                                // Closed at once (the stream drops): strangers
                                // must not hold unbounded actors and sockets.
                                refused += 1;
                                if last_warn.is_none_or(|t| t.elapsed() >= REFUSED_LOG_EVERY) {
                                    last_warn = Some(Instant::now());
                                    tracing::warn!(
                                        "node {} refuses connections: {MAX_UNAUTHENTICATED} are \
                                         still in their handshake ({refused} refused so far)",
                                        node.name()
                                    );
                                }
                                continue;
                            }
                            super::peer::accept(node.clone(), directory.clone(), stream);
                        }
                        Err(e) => {
                            tracing::warn!("accept failed on {}: {e}", listener.local_addr());
                            // Out of file descriptors and the like: back off
                            // instead of spinning.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }

    fn check_leave_done(&mut self) {
        if let Some(leaving) = &mut self.leaving
            && leaving.waiting.is_empty()
            && let Some(done) = leaving.done.take()
        {
            let _ = done.send(());
        }
    }

    fn member_infos(&self) -> Vec<MemberInfo> {
        self.membership
            .gossiped()
            .into_iter()
            .map(|n| MemberInfo {
                status: if n.id == self.node.me.id && self.membership.is_leaving() {
                    MemberStatus::Leaving
                } else {
                    MemberStatus::Alive
                },
                id: n.id,
                addr: n.addr,
                weight: n.weight,
            })
            .collect()
    }
}

impl Actor for Ring {
    type Context = Context<Self>;
}

impl Handler<Begin> for Ring {
    type Result = ();

    fn handle(&mut self, _: Begin, ctx: &mut Context<Self>) {
        if self.listener.is_none() {
            return; // began already
        }
        self.accept_loop(ctx);
        self.rebuild();
        // Tick four times per protocol period: a probe's ack deadline is
        // half a period, and is then met within a quarter.
        let tick = Duration::from_millis((self.node.config.membership.heartbeat_ms / 4).max(1));
        ctx.run_interval(tick, |act, ctx| {
            let effects = act.membership.tick(act.node.now_ms());
            // Most ticks change nothing: skip building a snapshot of every
            // member for the events hub, twenty times a second on every node.
            if !effects.is_empty() {
                act.apply(effects, ctx);
            }
            act.tick_detector(ctx);
        });
        let effects = self.membership.tick(self.node.now_ms());
        self.apply(effects, ctx);
    }
}

impl Handler<LinkUp> for Ring {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, up: LinkUp, ctx: &mut Context<Self>) -> ResponseFuture<()> {
        let now = self.node.now_ms();
        let me = self.node.name().clone();
        let name = up.info.id.node.clone();
        if let Some(addr) = &up.dialed {
            self.membership.seed_reached(addr, &name);
        }
        if up.info.weight > MAX_WEIGHT {
            tracing::error!(
                "refusing {name}: weight {} is above the maximum {MAX_WEIGHT}",
                up.info.weight
            );
            self.refused_dial(&up.dialed);
            up.peer.do_send(Close);
            return Box::pin(std::future::ready(()));
        }
        let initiator = if up.dialed.is_some() {
            me
        } else {
            name.clone()
        };
        let known = self.membership.info(&name).map(|i| i.id.incarnation);
        // A second link to the same *process* (same incarnation): both nodes
        // dialled each other; keep the link dialled by the smaller name, on
        // both sides, so exactly one survives. A new link from the same
        // initiator replaces the old one. A link from another incarnation
        // is not a duplicate: it is a restart or a second process with the
        // same name, which membership judges below (a stale one is refused
        // loudly). Judging it as a duplicate first closed a twin's link
        // silently, and the twin ran the whole registry alone (sim seed 96).
        if let Some(existing) = self.links.get(&name)
            && known == Some(up.info.id.incarnation)
        {
            let keep_new = !existing.peer.connected() || initiator <= existing.initiator;
            if !keep_new {
                up.peer.do_send(Close);
                return Box::pin(std::future::ready(()));
            }
        }
        let (joined, mut effects) = self.membership.link_up(up.info.clone(), now);
        if joined == Joined::Stale {
            self.refuse_stale(&up, known);
            return Box::pin(std::future::ready(()));
        }
        if joined == Joined::Restarted
            && known.is_some_and(|k| k > up.info.id.incarnation)
            && let Some(actors) = self.node.actors()
        {
            // A restart with an older incarnation (its clock was stepped
            // back): the replica must not keep the newer one's sync state.
            actors.replica.do_send(PeerDown {
                name: name.clone(),
                left: true,
            });
        }
        if let Some(old) = self.links.insert(
            name.clone(),
            Link {
                id: up.link,
                peer: up.peer.clone(),
                direct: up.direct.clone(),
                initiator,
                since_ms: now,
            },
        ) {
            old.peer.do_send(Close);
        }
        self.publish_links();
        telemetry::member_event("up");
        // Client nodes (weight 0) come and go often: DEBUG, not INFO.
        if up.info.weight == 0 {
            tracing::debug!(node = %self.node.name(), peer = %name, event = "up", weight = 0, "node {} linked to client {name} ({}, {joined:?})", self.node.name(), up.info.addr);
        } else {
            tracing::info!(node = %self.node.name(), peer = %name, event = "up", weight = up.info.weight, "node {} linked to {name} ({}, {joined:?})", self.node.name(), up.info.addr);
        }
        self.hello(&name, &up.peer);
        up.peer.do_send(Frame(Message::Members {
            members: self.member_infos(),
        }));
        if self.membership.is_leaving() {
            up.peer.do_send(Frame(Message::Leave {
                id: self.node.me.id.clone(),
            }));
        }
        if let Some(actors) = self.node.actors() {
            // A v2 link ends its handshake with the peer's kinds; a v1 one
            // announces none.
            actors.replica.do_send(PeerUp {
                id: up.info.id,
                digests: up.kinds.is_some(),
            });
        }
        let kinds_changed = self.kinds.get(&name) != Some(&up.kinds);
        self.kinds.insert(name, up.kinds);
        // A link-up adds a member (or a restarted one that hosts other kinds
        // now): the rebuild waits for the rest of the burst.
        let view_changed = effects.contains(&Effect::ViewChanged);
        effects.retain(|e| *e != Effect::ViewChanged);
        self.apply(effects, ctx);
        if view_changed || kinds_changed {
            self.rebuild_soon(ctx);
        }
        self.when_view_holds_it()
    }
}

impl Ring {
    /// Answers a link-up once the view that holds the link is published:
    /// at once if it is, else after the pending [`Rebuild`].
    fn when_view_holds_it(&mut self) -> ResponseFuture<()> {
        if !self.rebuild_due {
            return Box::pin(std::future::ready(()));
        }
        let (tx, rx) = oneshot::channel();
        self.view_waiters.push(tx);
        Box::pin(async move {
            // A dropped sender (the Ring stopped) also ends the wait.
            let _ = rx.await;
        })
    }
}

impl Handler<Rebuild> for Ring {
    type Result = ();

    fn handle(&mut self, _: Rebuild, _: &mut Context<Self>) {
        // Nothing due: a member's departure rebuilt in between.
        if self.rebuild_due {
            self.rebuild_now();
            // The hosts in the events' snapshot come from the view.
            self.node.events.publish(self.snapshot());
        }
    }
}

impl Handler<LinkDown> for Ring {
    type Result = ();

    fn handle(&mut self, down: LinkDown, ctx: &mut Context<Self>) {
        let (since_ms, initiator) = match self.links.get(&down.name) {
            Some(link) if link.id == down.link => (link.since_ms, link.initiator.clone()),
            // A replaced or already-closed link: nothing to do.
            _ => return,
        };
        let maybe_duplicate = initiator == down.name && down.name > *self.node.name()
            || initiator == *self.node.name() && *self.node.name() > down.name;
        self.links.remove(&down.name);
        self.publish_links();
        tracing::info!(node = %self.node.name(), peer = %down.name, event = "link_lost", "node {} lost its link to {}", self.node.name(), down.name);
        let addr = self.membership.info(&down.name).map(|i| i.addr.clone());
        if maybe_duplicate
            && self.node.now_ms().saturating_sub(since_ms) < YOUNG_LINK_MS
            && self
                .node
                .handshake_under_way_with(&down.name, addr.as_deref())
        {
            let name = down.name;
            ctx.run_later(DUPLICATE_GRACE, move |act, ctx| {
                if !act.links.contains_key(&name) {
                    act.declare_down(&name, ctx);
                }
            });
        } else {
            self.declare_down(&down.name, ctx);
        }
    }
}

impl Ring {
    /// A dialled link the Ring refuses after its handshake: the dial failed
    /// as far as reconnection is concerned (back off, then try again).
    fn refused_dial(&mut self, dialed: &Option<String>) {
        if let Some(addr) = dialed {
            self.membership.dial_failed(addr, self.node.now_ms());
        }
    }

    /// Refuses a link from a process older than the live one of that name:
    /// tells it why (it logs that at error level) and closes, so two
    /// processes with one name never split the cluster silently.
    fn refuse_stale(&mut self, up: &LinkUp, known: Option<u64>) {
        let name = &up.info.id.node;
        let why = format!(
            "node name {name} is taken: a process with incarnation {} is a live member \
             (this one has incarnation {}). Two processes run with the same node name: \
             node names must be unique, stop one of them",
            known.unwrap_or_default(),
            up.info.id.incarnation
        );
        tracing::error!(
            node = %self.node.name(), peer = %name, event = "refused",
            "node {} refuses {name} at {}: {why}",
            self.node.name(),
            up.info.addr
        );
        self.refused_dial(&up.dialed);
        up.peer.do_send(Frame(Message::Reject {
            reason: RejectReason::Protocol(why),
        }));
        up.peer.do_send(Close);
    }

    fn declare_down(&mut self, name: &NodeName, ctx: &mut Context<Self>) {
        self.detector.remove(name);
        let effects = self.membership.link_down(name, self.node.now_ms());
        self.peer_gone(name);
        self.apply(effects, ctx);
    }
}

impl Handler<Heard> for Ring {
    type Result = ();

    fn handle(&mut self, Heard(name): Heard, ctx: &mut Context<Self>) {
        let now = self.node.now_ms();
        self.membership.heard_from(&name, now);
        let outs = self.detector.heard(&name, now);
        self.apply_probes(outs, ctx);
    }
}

impl Handler<Gossip> for Ring {
    type Result = ();

    fn handle(&mut self, Gossip(members): Gossip, _: &mut Context<Self>) {
        let infos = members
            .into_iter()
            .filter(|m| m.status == MemberStatus::Alive)
            .map(|m| NodeInfo {
                id: m.id,
                addr: m.addr,
                weight: m.weight,
            });
        self.membership.gossip(infos, self.node.now_ms());
    }
}

impl Handler<PeerLeft> for Ring {
    type Result = ();

    fn handle(&mut self, PeerLeft { id, peer }: PeerLeft, ctx: &mut Context<Self>) {
        telemetry::member_event("left");
        tracing::info!(node = %self.node.name(), peer = %id.node, event = "left", "node {} left gracefully", id.node);
        self.detector.remove(&id.node);
        let effects = self.membership.peer_left(&id.node, self.node.now_ms());
        // Rebuild now (the effects hold ViewChanged), so the Registry starts
        // the leaver's birds and no new call goes to the leaver; the link
        // acknowledges once the calls already sent there are answered (§39).
        self.apply(effects, ctx);
        peer.do_send(AckLeave(id));
    }
}

impl Handler<PeerLeftAck> for Ring {
    type Result = ();

    fn handle(&mut self, PeerLeftAck(from): PeerLeftAck, _: &mut Context<Self>) {
        if let Some(leaving) = &mut self.leaving {
            leaving.waiting.remove(&from);
        }
        self.check_leave_done();
    }
}

/// A dial connected but its link never authenticated (the Peer reports it
/// when it stops): back off and dial the address again later.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DialFailed(pub String);

/// A dialled peer refused our protocol version but speaks an older one we
/// speak too (N−1): dial it again at once, offering that one.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Redial(pub String, pub u32);

impl Handler<Redial> for Ring {
    type Result = ();

    fn handle(&mut self, Redial(addr, offer): Redial, ctx: &mut Context<Self>) {
        self.dial_offering(addr, Some(offer), ctx);
    }
}

impl Handler<DialFailed> for Ring {
    type Result = ();

    fn handle(&mut self, DialFailed(addr): DialFailed, _: &mut Context<Self>) {
        tracing::debug!("dial {addr} connected but did not authenticate");
        self.membership.dial_failed(&addr, self.node.now_ms());
    }
}

/// Start leaving: drop out of the view, tell every peer, and resolve when
/// every peer acknowledged (or its link went away).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Leave(pub oneshot::Sender<()>);

impl Handler<Leave> for Ring {
    type Result = ();

    fn handle(&mut self, Leave(done): Leave, ctx: &mut Context<Self>) {
        self.node.set_leaving();
        let waiting: HashSet<NodeName> = self.links.keys().cloned().collect();
        self.leaving = Some(Leaving {
            waiting,
            done: Some(done),
        });
        for link in self.links.values() {
            link.peer.do_send(Frame(Message::Leave {
                id: self.node.me.id.clone(),
            }));
        }
        let effects = self.membership.leave();
        self.apply(effects, ctx);
        self.check_leave_done();
    }
}

/// The members as this node sees them.
#[derive(Message)]
#[rtype(result = "Vec<MemberView>")]
pub(crate) struct Members;

impl Handler<Members> for Ring {
    type Result = MessageResult<Members>;

    fn handle(&mut self, _: Members, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.member_views())
    }
}

impl Ring {
    /// The members as this node sees them, this node first.
    fn member_views(&self) -> Vec<MemberView> {
        let me = &self.node.me;
        let mut out = vec![MemberView {
            name: me.id.node.to_string(),
            addr: me.addr.clone(),
            weight: me.weight,
            status: if self.membership.is_leaving() {
                MemberState::Leaving
            } else {
                MemberState::Up
            },
            this_node: true,
        }];
        for info in self.membership.known().into_iter().skip(1) {
            let status = match self.membership.status(&info.id.node) {
                Some(PeerStatus::Up) => MemberState::Up,
                Some(PeerStatus::Left) => MemberState::Left,
                _ => MemberState::Down,
            };
            out.push(MemberView {
                name: info.id.node.to_string(),
                addr: info.addr,
                weight: info.weight,
                status,
                this_node: false,
            });
        }
        out
    }
}

/// Close every link and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

impl Handler<Shutdown> for Ring {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.node.events.close();
        for (_, link) in std::mem::take(&mut self.links) {
            link.peer.do_send(Close);
        }
        self.publish_links();
        ctx.stop();
    }
}

/// Discovery's answer: dial the addresses membership does not know yet, and
/// stop dialling those that left the answer (unless configured as seeds).
impl Handler<super::discovery::Discovered> for Ring {
    type Result = ();

    fn handle(&mut self, found: super::discovery::Discovered, _: &mut Context<Self>) {
        let now = self.node.now_ms();
        for addr in &found.removed {
            if !self.node.config.seeds.contains(addr) {
                self.membership.forget_seed(addr);
            }
        }
        for addr in &found.current {
            self.membership.add_seed(addr, now);
        }
    }
}
