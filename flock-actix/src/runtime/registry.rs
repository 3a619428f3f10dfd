//! The Registry actor: the shell around [`crate::core::lifecycle`].
//!
//! It feeds the lifecycle core what happens to this node's birds (set and
//! view changes, messages, exit reports, timers) and performs the effects
//! the core returns: it spawns and stops bird instances, delivers or fails
//! messages, removes a bird that stopped itself from the set, and arms
//! timers. The decisions (what runs, what waits, what restarts, what is
//! removed) are all in the core; what is here is actix plumbing.

use super::directory::{Directory, Running as RunningBird};
use super::kinds::{BirdExited, HatchFailed, Reports, Spawn};
use super::messages::{
    CallReply, HandoffAcked, HandoffIn, InboundCall, InboundCast, SetChanged, Unacked, ViewChanged,
};
use super::node::{Links, Node, View};
use super::peer::{Frame, OutCall};
use super::replica::{CrdtReplica, OwnedBy, Remove};
use super::telemetry;
use crate::bird::BirdKind;
use crate::core::lifecycle::reads::{OwnedRead, OwnedReads};
use crate::core::lifecycle::{Effect, Exit, Input, Lifecycle, Name, Owners, WaiterId};
use crate::core::placement::KindPlacement;
use crate::core::routing;
use crate::wire::message::Message as WireMessage;
use crate::wire::message::RemoteError;
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
// Follows a paused tokio clock (the simulation), like the timers do.
use tokio::time::Instant;

mod outgoing;
mod starts;
mod timers;

/// How often the Registry re-reads the whole owned set, as a safety net for
/// any change notification that raced with a view change; put off while a
/// bulk recording streams in, or while the node is settled
/// (`core::lifecycle::pace`).
const RECONCILE_EVERY: Duration =
    Duration::from_millis(crate::core::lifecycle::pace::RECONCILE_EVERY_MS);

/// The node's published view, as the core's placement, with the links up
/// when it was read: a node is "up" for a handoff while this node has a
/// link to it (a leaving node is out of the view but still hands over).
#[derive(Clone)]
pub(crate) struct ViewRef {
    view: Arc<View>,
    links: Arc<Links>,
    /// This node's name, and the placement of the view without it: where
    /// a bird comes from while this node joins.
    me: Arc<str>,
    /// Computed on first use: it is a second placement table, and most views
    /// never need it (measured: computing it on every view change was a
    /// quarter of all CPU while 100 nodes formed, holding no bird).
    without_me: Arc<OnceLock<Option<KindPlacement>>>,
}

impl ViewRef {
    fn read(node: &Node) -> Self {
        ViewRef {
            links: node.links.load_full(),
            without_me: Arc::default(),
            me: node.name().clone(),
            view: node.view.load_full(),
        }
    }

    /// The placement of this view without this node, if it differs: only a
    /// view that holds this node and others has a different owner without it.
    fn without_me(&self) -> Option<&KindPlacement> {
        self.without_me
            .get_or_init(|| {
                let hosts = self.view.placement.hosts();
                let others = hosts.iter().filter(|m| *m.name != *self.me).count();
                (others > 0 && others < hosts.len())
                    .then(|| self.view.placement.without(&self.me).ok())
                    .flatten()
            })
            .as_ref()
    }
}

impl std::fmt::Debug for ViewRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ViewRef").field(&self.view.epoch).finish()
    }
}

impl Owners for ViewRef {
    fn owner_of(&self, name: &str) -> Option<&str> {
        self.view.placement.all().owner(name).ok().map(|n| &**n)
    }

    fn owner_of_kind(&self, kind: &str, name: &str) -> Option<&str> {
        self.view.placement.owner(kind, name).ok().map(|n| &**n)
    }

    fn is_up(&self, node: &str) -> bool {
        self.links.contains_key(node)
    }

    fn owner_without(&self, kind: &str, name: &str, node: &str) -> Option<&str> {
        if node != &*self.me {
            return None;
        }
        let placement = self.without_me()?;
        placement.owner(kind, name).ok().map(|n| &**n)
    }

    fn others_host(&self, node: &str) -> bool {
        self.view.placement.hosts().iter().any(|m| *m.name != *node)
    }
}

/// An owned-set read under way, slice by slice (`Registry::read_owned`).
struct OwnedScan {
    /// The view the core was fed when it began, and its epoch.
    view: Arc<View>,
    epoch: u64,
    /// Only these shards (`None`: every shard, a complete list).
    shards: Option<Arc<crate::core::placement::ShardSet>>,
    /// What the slices read so far listed.
    owned: Vec<(Name, crate::core::crdt::BirdSpec)>,
    /// The replica's generation at the first slice.
    generation: Option<u64>,
}

/// How long a handoff this node sent stays unacknowledged before it stops
/// counting (the new owner hatched from the arguments by then).
const UNACKED_FOR: Duration = Duration::from_secs(30);

/// A message waiting for its bird: what the core does not need to know.
struct Waiting {
    kind: String,
    tag: String,
    payload: Vec<u8>,
    /// `None` for a cast.
    reply: Option<CallReply>,
    deadline: Instant,
    deadline_ms: u64,
}

pub(crate) struct Registry {
    node: Arc<Node>,
    core: Lifecycle<ViewRef>,
    /// The view epoch the core last heard of.
    epoch: u64,
    waiting: HashMap<WaiterId, Waiting>,
    next_waiter: WaiterId,
    arbiters: Vec<ArbiterHandle>,
    directory: Directory,
    last_share: Option<(usize, usize)>,
    /// Handoffs sent and not acknowledged yet (a leave waits for them).
    unacked: HashMap<Name, Instant>,
    /// When `unacked` was last pruned of expired entries.
    unacked_pruned: Instant,
    /// Leaves waiting until `unacked` is empty.
    acked_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Handoffs decided and not started yet, worked off in slices
    /// (`registry/outgoing.rs`).
    outgoing: crate::core::lifecycle::OutgoingQueue,
    /// A `DrainOutgoing` is in the mailbox.
    draining: bool,
    /// Handoffs begun whose state has not left yet.
    in_flight: usize,
    /// The replica's generation of the last set change fed to the core.
    set_generation: u64,
    /// An owned list is being read; another is wanted after it.
    reconciling: bool,
    reconcile_again: bool,
    /// The view last fed to the core: the shards this node gains are
    /// counted from it (`core::lifecycle::reads`).
    fed: Arc<View>,
    /// What the next owned list must cover.
    reads: OwnedReads,
    /// The replica's generation of the last complete owned list fed.
    complete_generation: Option<u64>,
    /// Whether a periodic reconciliation is due (set changes counted).
    pace: crate::core::lifecycle::pace::Pace,
    /// Birds prepared and not handed to their arbiters yet
    /// (`registry/starts.rs`).
    starts: starts::Starts,
    /// The core's timers, behind one actix timer (`registry/timers.rs`).
    timers: timers::Timers,
    /// Where the birds report their exits (made on the first spawn).
    reports: Option<Arc<Reports>>,
}

impl Registry {
    pub(crate) fn new(node: Arc<Node>, arbiters: Vec<ArbiterHandle>, directory: Directory) -> Self {
        let view = ViewRef::read(&node);
        Registry {
            epoch: view.view.epoch,
            fed: view.view.clone(),
            reads: OwnedReads::default(),
            complete_generation: None,
            core: Lifecycle::new(node.name().to_string(), view, node.config.backoff)
                .with_kinds(node.kinds.tags())
                .with_handoff(
                    node.kinds.handoff_kinds(),
                    u64::try_from(node.config.handoff_wait.as_millis()).unwrap_or(u64::MAX),
                )
                .with_passivation(node.kinds.passivation()),
            node,
            waiting: HashMap::new(),
            next_waiter: 1,
            arbiters,
            directory,
            last_share: None,
            unacked: HashMap::new(),
            unacked_pruned: Instant::now(),
            acked_waiters: Vec::new(),
            outgoing: Default::default(),
            draining: false,
            in_flight: 0,
            set_generation: 0,
            reconciling: false,
            reconcile_again: false,
            pace: Default::default(),
            starts: Default::default(),
            timers: Default::default(),
            reports: None,
        }
    }

    /// Feeds `input` (after the current view, if the core has not seen it)
    /// and performs the effects, and those of the inputs they produce.
    fn feed(&mut self, input: Input<ViewRef>, ctx: &mut Context<Self>) {
        let mut inputs = self.view_if_new();
        inputs.push_back(input);
        self.run(inputs, ctx);
    }

    /// Tells the core of the current view, if it has not seen it yet.
    fn sync_view(&mut self, ctx: &mut Context<Self>) {
        let inputs = self.view_if_new();
        self.run(inputs, ctx);
    }

    fn view_if_new(&mut self) -> VecDeque<Input<ViewRef>> {
        let mut inputs = VecDeque::new();
        if self.node.view.load().epoch != self.epoch {
            let view = ViewRef::read(&self.node);
            self.epoch = view.view.epoch;
            // Only names of the shards gained can be newly owned here; the
            // core's view input stops what is lost without any read.
            let gained = view
                .view
                .placement
                .gained(&self.fed.placement, self.node.name());
            self.reads.gained(&gained);
            self.fed = view.view.clone();
            inputs.push_back(Input::View(view));
        }
        inputs
    }

    fn run(&mut self, mut inputs: VecDeque<Input<ViewRef>>, ctx: &mut Context<Self>) {
        while let Some(input) = inputs.pop_front() {
            let now = self.node.now_ms();
            for effect in self.core.handle(input, now) {
                self.perform(effect, &mut inputs, ctx);
            }
        }
        self.drain_outgoing(ctx);
    }

    fn perform(
        &mut self,
        effect: Effect,
        inputs: &mut VecDeque<Input<ViewRef>>,
        ctx: &mut Context<Self>,
    ) {
        if let Effect::Spawn { name, .. }
        | Effect::Resume { name, .. }
        | Effect::Stop { name, .. }
        | Effect::Merge { name, .. }
        | Effect::Passivate { name, .. } = &effect
        {
            // A queued handoff of this bird comes first: the effect was
            // decided after it (no two instances of one name run here).
            self.hand_off_now(name);
        }
        match effect {
            Effect::Spawn {
                name,
                spec,
                instance,
            } => {
                if let Some(failed) = self.spawn(name, &spec, None, instance, ctx) {
                    inputs.push_back(failed);
                }
            }
            Effect::Resume {
                name,
                spec,
                instance,
                state,
            } => {
                tracing::debug!("bird {name} resumes from its handed-over state");
                if let Some(failed) = self.spawn(name, &spec, Some(state), instance, ctx) {
                    inputs.push_back(failed);
                }
            }
            Effect::HandOff {
                name,
                instance,
                to,
                spec,
            } => {
                // Counted as unacknowledged from now: a leave waits for it.
                self.note_unacked(&name);
                self.outgoing.push(name, instance, to, spec);
            }
            Effect::Want { name, from } => outgoing::want(&self.node, &name, &from),
            Effect::Stop { name, instance } => {
                if let Some(running) = self.directory.remove(&name, instance) {
                    running.bird.stop();
                    telemetry::bird_stopped("asked", self.directory.len());
                }
            }
            Effect::Merge {
                name,
                instance,
                state,
            } => {
                if let Some(running) = self.directory.instance(&name, instance) {
                    tracing::info!(bird = %name, "bird {name}: another instance's state arrived; merging it");
                    running.bird.merge(state);
                }
            }
            Effect::Deliver {
                waiter,
                name,
                instance,
            } => {
                if let Some(back) = self.deliver(waiter, &name, instance) {
                    inputs.push_back(back);
                }
            }
            Effect::Reply { waiter, error } => {
                if let Some(mut w) = self.waiting.remove(&waiter) {
                    match w.reply.take() {
                        Some(reply) => self.reply_or_forward(w, reply, error),
                        None => tracing::debug!("cast dropped: {error}"),
                    }
                }
            }
            Effect::RemoveFromSet { name } => {
                tracing::info!(node = %self.node.name(), bird = %name, exit = "completed", "bird {name} stopped itself; removing it from the flock");
                if let Some(actors) = self.node.actors() {
                    // NotFound is fine: a stop raced with the exit.
                    actors.replica.do_send(Remove { name });
                }
            }
            Effect::Passivate {
                name,
                instance,
                take_state,
            } => {
                if let Some(saved) = self.passivate(name, instance, take_state, ctx) {
                    inputs.push_back(saved);
                }
            }
            Effect::SendState {
                name,
                kind,
                state,
                to,
            } => {
                self.note_unacked(&name);
                send_state(&self.node, &name, &to, kind, state);
            }
            Effect::StartSliceLater => ctx.address().do_send(StartSlice),
            Effect::Timer { at_ms, timer } => self.schedule(at_ms, timer, ctx),
        }
    }

    /// Starts an instance; the input to feed back if it could not start.
    fn spawn(
        &mut self,
        name: Name,
        spec: &crate::core::crdt::BirdSpec,
        state: Option<Vec<u8>>,
        instance: u64,
        ctx: &mut Context<Self>,
    ) -> Option<Input<ViewRef>> {
        let (kind, args) = (spec.kind.as_str(), spec.args.as_slice());
        let reports = self.reports(ctx);
        let Some(kind_table) = self.node.kinds.get(kind) else {
            tracing::error!(
                "node {} cannot run bird {name}: kind {kind} is not registered here \
                 (add .bird::<T>() to the node's builder)",
                self.node.name()
            );
            let error = RemoteError::UnknownKind {
                kind: kind.to_owned(),
            };
            return Some(Input::SpawnFailed {
                name,
                instance,
                error,
            });
        };
        let spawned = kind_table.spawn(Spawn {
            name: name.clone(),
            args,
            state,
            instance,
            reports,
            nest: self.node.nest.clone(),
        });
        match spawned {
            Ok((bird, start)) => {
                self.queue_start(&name, start, ctx);
                tracing::debug!(node = %self.node.name(), bird = %name, kind, "bird {name} running on node {}", self.node.name());
                let running = RunningBird { bird };
                let live = self.directory.insert(name, running);
                telemetry::bird_started(live);
                None
            }
            Err(error) => {
                tracing::error!(
                    "node {} cannot start bird {name}: {error}",
                    self.node.name()
                );
                Some(Input::SpawnFailed {
                    name,
                    instance,
                    error,
                })
            }
        }
    }

    /// Where this Registry's birds report their exits: made once, shared.
    fn reports(&mut self, ctx: &mut Context<Self>) -> Arc<Reports> {
        self.reports
            .get_or_insert_with(|| {
                Arc::new(Reports {
                    exits: ctx.address().recipient(),
                    hatch_failures: ctx.address().recipient(),
                })
            })
            .clone()
    }

    /// The arbiter `name` runs on: a stable function of the name (its
    /// placement shard's lane), so a data link of that lane runs on the
    /// bird's thread (§26). `None` with no bird arbiters (`arbiters(0)`).
    fn lane_arbiter(&self, name: &str) -> Option<&ArbiterHandle> {
        self.arbiters.get(self.lane(name))
    }

    /// The index of `name`'s lane among the bird arbiters (0 with none).
    fn lane(&self, name: &str) -> usize {
        let lanes = u32::try_from(self.arbiters.len()).unwrap_or(u32::MAX);
        let shard = self.node.view.load().placement.shard_of(name);
        crate::core::data_links::lane_of(shard, lanes) as usize
    }

    /// The bird arbiters stopped under the node (`System::stop`, a runtime
    /// going away): it cannot host birds any more. It shuts down like
    /// `Flock::shutdown`, so its peers take its birds over; none is removed.
    fn arbiters_gone(&mut self, ctx: &mut Context<Self>) {
        if self.node.is_stopping() {
            return;
        }
        tracing::warn!(
            "node {}: its bird arbiters stopped (System::stop?); shutting the node down, \
             its birds restart on the other nodes",
            self.node.name()
        );
        self.node.set_stopping();
        if let Some(actors) = self.node.actors() {
            actors.ring.do_send(super::ring::Shutdown);
        }
        self.shutdown(ctx);
    }

    /// Answers a call that failed here, except that a call from another
    /// node for a bird that moved goes on to its new owner, once
    /// (`core::routing::on_moved` says when and why).
    fn reply_or_forward(&self, w: Waiting, reply: CallReply, error: RemoteError) {
        let forward = match (&error, &reply) {
            (RemoteError::Moved { owner, bird }, CallReply::Link { forwarded, .. }) => {
                let link = self.node.link(owner);
                let decision = routing::on_moved(routing::Answering {
                    owner,
                    me: self.node.name(),
                    remote: true,
                    forwarded: *forwarded,
                    leaving: self.node.is_leaving() || self.node.is_stopping(),
                    linked: link.is_some(),
                });
                link.filter(|_| decision == routing::OnMoved::Forward)
                    .map(|peer| (peer, bird.as_str()))
            }
            _ => None,
        };
        let Some((peer, bird)) = forward else {
            return reply.send(Err(error));
        };
        // Answered if the call is not sent on: the caller's own routing
        // then decides where to try next, as if it had not been forwarded.
        let unsent = error.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let remaining = w.deadline.saturating_duration_since(Instant::now());
        peer.do_send(OutCall {
            bird: bird.into(),
            shard: self.node.view.load().placement.shard_of(bird),
            kind: w.kind.into(),
            tag: w.tag.into(),
            payload: w.payload.into(),
            timeout_ms: u32::try_from(remaining.as_millis()).unwrap_or(u32::MAX),
            forwarded: true,
            reply: tx,
            ticket: None,
        });
        telemetry::call_forwarded();
        let deadline = w.deadline;
        actix::spawn(async move {
            reply.send(match tokio::time::timeout_at(deadline, rx).await {
                // Not sent on (the owner's link closed, or it is leaving):
                // `NotSent` itself would not decode on an earlier build.
                Ok(Ok(Err(RemoteError::NotSent))) => Err(unsent),
                Ok(Ok(result)) => result,
                // The link closed with it in flight: it may have run.
                Ok(Err(_)) => Err(RemoteError::LinkClosed),
                Err(_) => Err(RemoteError::Timeout),
            });
        });
    }

    /// A handoff this node sent is not acknowledged yet (a leave waits).
    fn note_unacked(&mut self, name: &Name) {
        let now = Instant::now();
        // Expired entries are pruned at most once a second: pruning on
        // every handoff made a leave of n birds cost n² (55 ms of the
        // Registry's thread for 3,300 birds, before any state left).
        if now.duration_since(self.unacked_pruned) >= Duration::from_secs(1) {
            self.unacked_pruned = now;
            self.unacked
                .retain(|_, at| now.duration_since(*at) < UNACKED_FOR);
        }
        self.unacked.insert(name.clone(), now);
    }

    /// Stops an idle instance, taking its state for a kind with one (fed
    /// back as `StateSaved` once the bird handled the messages before it);
    /// the input to feed at once if there is no instance to take it from.
    fn passivate(
        &mut self,
        name: Name,
        instance: u64,
        take_state: bool,
        ctx: &mut Context<Self>,
    ) -> Option<Input<ViewRef>> {
        let Some(running) = self.directory.remove(&name, instance) else {
            // Gone already: its exit report is on the way, with no state.
            return take_state.then_some(Input::StateSaved {
                name,
                instance,
                state: None,
            });
        };
        telemetry::bird_stopped("passivated", self.directory.len());
        tracing::debug!(node = %self.node.name(), bird = %name, "bird {name} idle: passivated");
        if !take_state {
            running.bird.stop();
            return None;
        }
        let state = running.bird.hand_off();
        let registry = ctx.address();
        actix::spawn(async move {
            let state = state.await;
            registry.do_send(StateSaved {
                name,
                instance,
                state,
            });
        });
        None
    }

    /// Hands a message to the running instance; the input to feed back if
    /// its mailbox is closed.
    fn deliver(&mut self, waiter: WaiterId, name: &Name, instance: u64) -> Option<Input<ViewRef>> {
        let w = self.waiting.remove(&waiter)?;
        let bird = match self.directory.instance(name, instance) {
            Some(running) if running.bird.connected() => running,
            // Ending: its exit report is on the way; the message waits again.
            _ => {
                let back = Input::Undeliverable {
                    waiter,
                    name: name.clone(),
                    instance,
                    kind: w.kind.clone(),
                    deadline_ms: w.deadline_ms,
                };
                self.waiting.insert(waiter, w);
                return Some(back);
            }
        };
        match w.reply {
            None => {
                if let Err(e) = bird.bird.cast(&w.tag, &w.payload) {
                    tracing::warn!("cast to bird {name} dropped: {e}");
                }
            }
            Some(reply) => {
                let within = w.deadline.saturating_duration_since(Instant::now());
                match bird.bird.call(name, &w.tag, &w.payload, within) {
                    Err(e) => reply.send(Err(e)),
                    Ok(call) => {
                        actix::spawn(async move { reply.send(call.await) });
                    }
                }
            }
        }
        None
    }

    fn message(&mut self, name: Name, w: Waiting, ctx: &mut Context<Self>) {
        let waiter = self.next_waiter;
        self.next_waiter += 1;
        let input = Input::Message {
            waiter,
            name,
            kind: w.kind.clone(),
            deadline_ms: w.deadline_ms,
        };
        self.waiting.insert(waiter, w);
        self.feed(input, ctx);
    }

    fn waiting(&self, kind: String, tag: String, payload: Vec<u8>, within: Duration) -> Waiting {
        Waiting {
            kind,
            tag,
            payload,
            reply: None,
            deadline: Instant::now() + within,
            deadline_ms: self
                .node
                .now_ms()
                .saturating_add(u64::try_from(within.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    fn reconcile(
        &mut self,
        owned: Vec<(Name, crate::core::crdt::BirdSpec)>,
        total: usize,
        (generation, epoch): (u64, u64),
        ctx: &mut Context<Self>,
    ) {
        let count = owned.len();
        // Read while this actor went on: complete only if no set change
        // newer than it was fed and the view is the one it was read under.
        let complete = generation >= self.set_generation && epoch == self.node.view.load().epoch;
        if complete {
            self.complete_generation = Some(generation);
        }
        self.feed(
            if complete {
                Input::Owned(owned)
            } else {
                Input::OwnedStale(owned)
            },
            ctx,
        );
        if self.last_share != Some((count, total)) {
            self.last_share = Some((count, total));
            let pct = if total == 0 {
                0.0
            } else {
                100.0 * count as f64 / total as f64
            };
            tracing::info!(
                "node {} has {pct:.1} % of the load ({count} out of {total})",
                self.node.name()
            );
        }
    }

    fn request_reconcile(&mut self, ctx: &mut Context<Self>) {
        let Some(replica) = self.node.actors().map(|a| a.replica.clone()) else {
            return;
        };
        if self.reconciling {
            // One read at a time; the one in flight is followed by another.
            self.reconcile_again = true;
            return;
        }
        // The core hears of the current view first: its gains are owed too.
        self.sync_view(ctx);
        let Some(read) = self.reads.take() else {
            // Nothing gained since the last read (a host that hands shards
            // to a joiner): nothing can be newly owned, and the view input
            // already stopped what moved away. Before stop 22 every view
            // change read every name here (docs/BENCHMARKS.md, stop 22).
            return;
        };
        self.reconciling = true;
        self.feed(Input::ReadingOwned, ctx);
        // The view the core was fed: the gains are counted against it.
        let view = self.fed.clone();
        let read = OwnedScan {
            epoch: view.epoch,
            view,
            shards: match read {
                OwnedRead::Full => None,
                OwnedRead::Shards(set) => Some(Arc::new(set)),
            },
            owned: Vec::new(),
            generation: None,
        };
        self.read_owned(replica, read, None, ctx);
    }

    /// Reads the next slice of the owned set after `after`, then the next,
    /// and feeds the core the whole list after the last one. Slices let the
    /// replica's arbiter do its other work in between (the acks of a
    /// full-state transfer): one read of a million names held it ≈ 0.35 s
    /// at load 5 (docs/BENCHMARKS.md, stop 22).
    fn read_owned(
        &mut self,
        replica: Addr<CrdtReplica>,
        mut read: OwnedScan,
        after: Option<Name>,
        ctx: &mut Context<Self>,
    ) {
        // Not `wait`: the replica may be busy for a while (joining a full
        // state from a peer), and calls, handoffs and wants must go on
        // meanwhile (measured: a joining node's Registry blocked 317 ms
        // here, and every caller with it). `reconcile` tells a list read
        // under an older view or set apart.
        replica
            .send(OwnedBy {
                view: read.view.clone(),
                shards: read.shards.clone(),
                after,
            })
            .into_actor(self)
            .map(move |result, act, ctx| {
                let slice = match result {
                    Ok(slice) => slice,
                    // The replica is gone (the node is stopping): messages
                    // that waited for the list are answered now.
                    Err(_) => {
                        act.reconciling = false;
                        act.feed(Input::OwnedStale(Vec::new()), ctx);
                        return;
                    }
                };
                // The first slice's generation: a set change fed after it
                // may be missing from a later slice's names, so the list is
                // complete only if none was (`reconcile`).
                read.generation.get_or_insert(slice.generation);
                if read.owned.is_empty() {
                    read.owned = slice.owned;
                } else {
                    read.owned.extend(slice.owned);
                }
                if let Some(next) = slice.next {
                    return act.read_owned(replica, read, Some(next), ctx);
                }
                act.reconciling = false;
                let generation = read.generation.unwrap_or(slice.generation);
                match read.shards {
                    None => act.reconcile(read.owned, slice.total, (generation, read.epoch), ctx),
                    // Some shards only: it starts what it lists and stops
                    // nothing (the names of other shards are not in it).
                    Some(_) => act.feed(Input::OwnedStale(read.owned), ctx),
                }
                if std::mem::take(&mut act.reconcile_again) {
                    act.request_reconcile(ctx);
                }
            })
            .spawn(ctx);
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        self.hand_off_all();
        // Out of the directory first (no call is handed to a bird that is
        // stopping); the core's stops then find them gone, and they are
        // stopped here, each once.
        let live = self.directory.drain();
        self.feed(Input::Shutdown, ctx);
        let mut hosted = live.len();
        for (_, running) in live {
            running.bird.stop();
            hosted -= 1;
            telemetry::bird_stopped("asked", hosted);
        }
        ctx.stop();
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(RECONCILE_EVERY, |act, ctx| {
            // Settled: no set change fed since the last complete read
            // (view changes are settled by the core's view input and the
            // gained shards' reads), and no announced bird unconfirmed.
            // (A set change fed at or below the list's generation was in
            // the state the list was read from.)
            let settled = act.complete_generation >= Some(act.set_generation)
                && !act.core.awaits_confirmation();
            if act.pace.due(act.node.now_ms(), settled) {
                act.reads.whole();
                act.request_reconcile(ctx);
            }
        });
    }
}

impl Handler<ViewChanged> for Registry {
    type Result = ();

    fn handle(&mut self, _: ViewChanged, ctx: &mut Context<Self>) {
        // The core hears of the new view now (queued starts it moved are
        // cancelled at once), then of the owned set read under it.
        self.sync_view(ctx);
        self.request_reconcile(ctx);
    }
}

impl Handler<SetChanged> for Registry {
    type Result = ();

    fn handle(&mut self, changed: SetChanged, ctx: &mut Context<Self>) {
        self.set_generation = self.set_generation.max(changed.generation);
        self.pace
            .changed(changed.upserts.len() + changed.removed.len());
        self.feed(
            Input::SetChanged {
                upserts: changed.upserts,
                removed: changed.removed,
            },
            ctx,
        );
    }
}

impl Handler<BirdExited> for Registry {
    type Result = ();

    fn handle(&mut self, exit: BirdExited, ctx: &mut Context<Self>) {
        if self.node.is_stopping() {
            return;
        }
        let name = exit.name;
        if self.directory.remove(&name, exit.instance).is_some() {
            telemetry::bird_stopped(telemetry::exit_label(&exit.exit), self.directory.len());
            match exit.exit {
                Exit::Panicked => tracing::warn!(
                    node = %self.node.name(), bird = %name, exit = "panicked",
                    "bird {name} panicked on node {}; it restarts after a backoff",
                    self.node.name()
                ),
                Exit::TornDown => tracing::warn!(
                    node = %self.node.name(), bird = %name, exit = "torn_down",
                    "bird {name} was torn down on node {} (its arbiter stopped); \
                     it restarts after a backoff",
                    self.node.name()
                ),
                Exit::Completed => {}
            }
        }
        self.feed(
            Input::Exited {
                name,
                instance: exit.instance,
                exit: exit.exit,
            },
            ctx,
        );
    }
}

impl Handler<HatchFailed> for Registry {
    type Result = ();

    fn handle(&mut self, failed: HatchFailed, ctx: &mut Context<Self>) {
        if self.node.is_stopping() {
            return;
        }
        let HatchFailed {
            name,
            instance,
            reason,
        } = failed;
        if self.directory.remove(&name, instance).is_none() {
            // Stopped or replaced before its hatch ran: nobody waits for it.
            return;
        }
        telemetry::bird_stopped("hatch_failed", self.directory.len());
        tracing::error!(
            node = %self.node.name(), bird = %name, exit = "hatch_failed",
            "bird {name} cannot hatch on node {}: {reason}; it does not run here until \
             its arguments change or it moves (fix the node's configuration and restart it)",
            self.node.name()
        );
        // The core marks it broken: its callers get the reason, not a wait.
        let error = RemoteError::HatchFailed {
            bird: name.to_string(),
            reason,
        };
        self.feed(
            Input::SpawnFailed {
                name,
                instance,
                error,
            },
            ctx,
        );
    }
}

impl Handler<InboundCall> for Registry {
    type Result = ();

    fn handle(&mut self, call: InboundCall, ctx: &mut Context<Self>) {
        let mut w = self.waiting(call.kind, call.tag, call.payload, call.timeout);
        w.reply = Some(call.reply);
        self.message(call.bird, w, ctx);
    }
}

impl Handler<InboundCast> for Registry {
    type Result = ();

    fn handle(&mut self, cast: InboundCast, ctx: &mut Context<Self>) {
        match outgoing::system(&cast) {
            Some(outgoing::System::Want) => return self.hand_off_now(&cast.bird),
            Some(outgoing::System::Announce(spec)) => {
                return self.feed(
                    Input::Announced {
                        name: cast.bird,
                        spec,
                    },
                    ctx,
                );
            }
            Some(outgoing::System::Unreadable) => return,
            None => {}
        }
        let w = self.waiting(
            cast.kind,
            cast.tag,
            cast.payload,
            self.node.config.call_timeout,
        );
        self.message(cast.bird, w, ctx);
    }
}

impl Handler<HandoffIn> for Registry {
    type Result = ();

    fn handle(&mut self, msg: HandoffIn, ctx: &mut Context<Self>) {
        let bird = msg.bird.to_string();
        self.feed(
            Input::HandedOff {
                name: msg.bird,
                state: msg.state,
            },
            ctx,
        );
        msg.peer.do_send(Frame(WireMessage::HandoffAck { bird }));
    }
}

impl Handler<HandoffAcked> for Registry {
    type Result = ();

    fn handle(&mut self, HandoffAcked(name): HandoffAcked, _: &mut Context<Self>) {
        self.unacked.remove(&name);
        if self.unacked.is_empty() {
            for waiter in self.acked_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// Answered (the receiver resolves) once every handoff this node sent is
/// acknowledged: at once if none is due. The caller bounds the wait.
#[derive(Message)]
#[rtype(result = "tokio::sync::oneshot::Receiver<()>")]
pub(crate) struct AllAcked;

impl Handler<AllAcked> for Registry {
    type Result = MessageResult<AllAcked>;

    fn handle(&mut self, _: AllAcked, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let now = Instant::now();
        self.unacked
            .retain(|_, at| now.duration_since(*at) < UNACKED_FOR);
        if self.unacked.is_empty() {
            let _ = tx.send(());
        } else {
            // Waiters whose leave gave up are dropped here, bounding the list.
            self.acked_waiters.retain(|w| !w.is_closed());
            self.acked_waiters.push(tx);
        }
        MessageResult(rx)
    }
}

impl Handler<Unacked> for Registry {
    type Result = usize;

    fn handle(&mut self, _: Unacked, _: &mut Context<Self>) -> usize {
        let now = Instant::now();
        self.unacked
            .retain(|_, at| now.duration_since(*at) < UNACKED_FOR);
        self.unacked.len()
    }
}

/// Sends a bird's state (or `None`: nothing to wait for) to its new owner.
fn send_state(node: &Node, name: &str, to: &str, kind: String, state: Option<Vec<u8>>) {
    let Some(peer) = node.link(to) else {
        tracing::warn!(
            "bird {name} moved to {to}, but there is no link to it: \
             its state is lost, {to} hatches it from its arguments"
        );
        return;
    };
    tracing::debug!("bird {name} handed over to {to}");
    peer.do_send(Frame(WireMessage::Handoff {
        bird: name.to_owned(),
        kind,
        state,
    }));
}

/// The state a passivating bird handed over on its way out.
#[derive(Message)]
#[rtype(result = "()")]
struct StateSaved {
    name: Name,
    instance: u64,
    state: Option<Vec<u8>>,
}

impl Handler<StateSaved> for Registry {
    type Result = ();

    fn handle(&mut self, saved: StateSaved, ctx: &mut Context<Self>) {
        let StateSaved {
            name,
            instance,
            state,
        } = saved;
        self.feed(
            Input::StateSaved {
                name,
                instance,
                state,
            },
            ctx,
        );
    }
}

/// The names of the birds passivated here.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub(crate) struct Passivated;

impl Handler<Passivated> for Registry {
    type Result = MessageResult<Passivated>;

    fn handle(&mut self, _: Passivated, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.passivated().map(|n| n.to_string()).collect())
    }
}

/// Start the next slice of queued birds.
#[derive(Message)]
#[rtype(result = "()")]
struct StartSlice;

impl Handler<StartSlice> for Registry {
    type Result = ();

    fn handle(&mut self, _: StartSlice, ctx: &mut Context<Self>) {
        self.feed(Input::StartSlice, ctx);
    }
}

/// The typed address of a bird running here, for the local fast path.
pub(crate) struct Resolve<T> {
    pub name: Arc<str>,
    pub _kind: PhantomData<fn() -> T>,
}

impl<T: BirdKind> Message for Resolve<T> {
    type Result = Option<Addr<T>>;
}

impl<T: BirdKind> Handler<Resolve<T>> for Registry {
    type Result = Option<Addr<T>>;

    fn handle(&mut self, msg: Resolve<T>, _: &mut Context<Self>) -> Option<Addr<T>> {
        let running = self.directory.any_instance(&msg.name)?;
        running
            .bird
            .connected()
            .then(|| running.bird.addr::<T>())
            .flatten()
    }
}

/// The names of the birds running here.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub(crate) struct Running;

impl Handler<Running> for Registry {
    type Result = MessageResult<Running>;

    fn handle(&mut self, _: Running, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.directory.names())
    }
}

/// Stop every local bird without removing it from the set, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

impl Handler<Shutdown> for Registry {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.shutdown(ctx);
    }
}
