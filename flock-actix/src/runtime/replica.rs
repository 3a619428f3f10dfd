//! The CrdtReplica actor: this node's copy of the registry set, and its
//! anti-entropy with every peer.
//!
//! A thin shell around [`Replica`] and [`AntiEntropy`]: it applies local
//! starts and stops as delta mutations, joins what peers send, acknowledges
//! it, ships deltas (or full states) on a timer and right after a local
//! change, and tells the Registry what changed.

use super::durable::Durable;
use super::messages::{Begin, Reply, SetChanged, SyncAcked, SyncIn, SyncRaw};
use super::node::{Node, View};
use super::peer::{Close, Frame, RawFrame, encode_frame};
use super::telemetry;
use crate::core::anti_entropy::{AntiEntropy, Assembled, Assembler, Inbound, SyncMessage, digest};
use crate::core::crdt::{
    Added, BirdMap, BirdSpec, Changes, CounterExhausted, ForgedOwnDots, NodeName, Replica,
    ReplicaId,
};
use crate::core::placement::ShardSet;
use crate::error::Error;
use crate::wire::message::Message;
use actix::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct CrdtReplica {
    node: Arc<Node>,
    replica: Replica,
    sync: AntiEntropy,
    /// Deltas received from peers in the last `RELAY_KEEP_MS`, by origin:
    /// relayed to everyone if their origin goes down, in case it had not
    /// reached every node (a crash right after a change, a short-lived
    /// client). While the origin is up it delivers its deltas itself, so
    /// nothing is sent twice in the common case.
    relay: VecDeque<(NodeName, u64, BirdMap)>,
    /// Where each peer's delta stream is joined up to: what to
    /// acknowledge (an interval after a gap or after one withheld for
    /// claims cut off is not; see `core::anti_entropy::inbound`).
    inbound: Inbound,
    /// What each peer sent that had claims cut off by the trust rule (the
    /// join of those messages), with when it was last added to: joined
    /// again whenever trust may have grown (any join, a peer up or down),
    /// until nothing is cut off any more or [`PARKED_KEEP_MS`] passed.
    /// Without it a claim cut off from a *full state* (never re-sent: it is
    /// acknowledged all the same) waited for the next periodic full sync —
    /// after a heal, replicas stayed unequal for up to
    /// `full_sync_interval_ms` (the simulation, docs/ARCHITECTURE.md).
    parked: std::collections::BTreeMap<NodeName, (ReplicaId, BirdMap, u64)>,
    /// Full-state transfers from peers being received in chunks.
    assembler: Assembler,
    /// The registry on disk, if this node keeps one (`FlockBuilder::data_dir`).
    durable: Option<Durable>,
    /// What was restored from disk at start, for the Registry once running.
    restored: Changes,
    /// Bumped whenever the replica may have changed: keys `digests`.
    generation: u64,
    /// The last digests computed, by range count, with the generation they
    /// are of: one scan of the registry serves every peer until it changes.
    digests: Vec<(u64, u32, Arc<Vec<u64>>)>,
    /// Holds digests back while the registry changes (see `DigestGate`).
    digest_gate: digest::DigestGate,
    /// Peers whose link speaks protocol v1: no digest frames for them.
    no_digests: std::collections::HashSet<NodeName>,
}

/// Most v1 peers remembered (bounded like every table fed by the network;
/// past it, a v1 peer gets digests and its link closes and redials).
const MAX_V1_PEERS: usize = 4096;

/// Most names in one change notification to the Registry.
const NOTIFY_SLICE: usize = 10_000;

/// How long received deltas are kept for relaying: well past the time an
/// origin needs to deliver (its first attempt is immediate, its retry after
/// `retry_ms` = 2 s) or to be declared down (≤ 1.2 s).
const RELAY_KEEP_MS: u64 = 5_000;

/// At most this many received deltas are kept for relaying, the oldest
/// dropped first. Kept by time alone, the buffer grew with the change rate
/// (5 s of every peer's deltas): part of the heap held during fast
/// start/stop churn (issue #9 item 14, docs/ARCHITECTURE.md §11.4). A relay
/// is best effort; what it misses the periodic full sync repairs.
const RELAY_MAX_DELTAS: usize = 10_000;

/// How long a message with claims cut off is kept to be joined again
/// (see `CrdtReplica::parked`): far longer than an origin needs to show
/// its own dots (its next delta or full state) or to be declared down;
/// past it, the periodic full sync repairs what is left.
const PARKED_KEEP_MS: u64 = 30_000;

impl CrdtReplica {
    /// `durable`: the opened log and the state it held, joined here into the
    /// fresh replica (a new incarnation: its own dots never collide with the
    /// old ones, which stay in the context with the stopped birds' dots).
    pub(crate) fn new(node: Arc<Node>, durable: Option<(Durable, BirdMap)>) -> crate::Result<Self> {
        let mut config = node.config.anti_entropy.clone();
        // A chunk well under the frame cap: the budget is an upper bound of
        // the encoding, and the peer adds its envelope.
        config.chunk_bytes = config.chunk_bytes.min(node.config.max_frame / 4);
        // Folding a dead incarnation is safe once every peer has sent its
        // full state since it died (docs/ARCHITECTURE.md §4.7): four
        // full-sync intervals leave room for a lost or late one.
        let fold_after = config.full_sync_interval_ms.saturating_mul(4);
        let sync = AntiEntropy::new(config)?;
        let mut replica = Replica::new(node.me.id.clone()).with_fold_after(fold_after);
        let (durable, restored) = match durable {
            Some((log, state)) => {
                // Our own earlier state: this fresh replica has heard from
                // nobody yet, so every claim in it is accepted.
                let me = replica.id().clone();
                let restored = replica.join(&me, &state).map_err(|e| {
                    crate::Error::InvalidConfig(format!(
                        "the registry in the data directory is not usable: {e}"
                    ))
                })?;
                tracing::info!(
                    "node {} restored {} bird(s) from its data directory",
                    node.name(),
                    replica.state().len()
                );
                (Some(log), restored)
            }
            None => (None, Changes::default()),
        };
        // A focused transfer that goes a retry time without a part has
        // stalled; another may go on.
        let focus_stale_ms = node.config.anti_entropy.retry_ms;
        Ok(CrdtReplica {
            replica,
            sync,
            node,
            relay: VecDeque::new(),
            inbound: Inbound::new(),
            parked: std::collections::BTreeMap::new(),
            assembler: Assembler::with_focus(focus_stale_ms),
            durable,
            restored,
            generation: 0,
            digests: Vec::new(),
            digest_gate: digest::DigestGate::default(),
            no_digests: std::collections::HashSet::new(),
        })
    }

    /// Sends whatever anti-entropy says is due.
    fn flush(&mut self) {
        let now = self.node.now_ms();
        let links = self.node.links.load();
        // Peers at the same place get the same interval: encoded once (a
        // 10k-bird interval is ≈ 1 MB to encode, per peer before).
        let mut encoded: Vec<((u64, u64), bytes::Bytes)> = Vec::new();
        for (peer, msg) in self.sync.poll(now, self.replica.state()) {
            let Some(link) = links.get(&peer.node).map(|l| &l.addr) else {
                continue;
            };
            let SyncMessage::Deltas {
                from_seq, to_seq, ..
            } = &msg
            else {
                self.send_to(link, &peer.node, msg.into());
                continue;
            };
            let key = (*from_seq, *to_seq);
            if let Some((_, frame)) = encoded.iter().find(|(k, _)| *k == key) {
                telemetry::sync_frame(telemetry::Direction::Out, &msg.into(), frame.len());
                link.do_send(RawFrame(frame.clone()));
            } else if let Some(frame) = self.send_to(link, &peer.node, msg.into()) {
                encoded.push((key, frame));
            }
        }
    }

    /// Writes what was joined to disk (if durable), before it is
    /// acknowledged; `whole`: it was a full state, so a snapshot is as
    /// cheap as an append. A disk error is logged, not fatal: the registry
    /// stays replicated in memory on every node.
    fn persist(&mut self, joined: &BirdMap, whole: bool) {
        let Some(log) = &mut self.durable else {
            return;
        };
        let result = if whole || log.wants_compaction() {
            log.compact(self.replica.state())
        } else {
            log.append(joined)
        };
        if let Err(e) = result {
            tracing::error!(
                "node {}: the registry could not be written to disk, a full restart may lose the latest changes: {e}",
                self.node.name()
            );
        }
    }

    /// Joins a peer's full state, taken by value (a node that joins moves
    /// the first one into its empty replica, `Replica::join_owned`),
    /// persisting the result if it changed and parking it if claims were
    /// cut off.
    fn join_whole(&mut self, from: &ReplicaId, state: BirdMap) -> Result<Changes, ForgedOwnDots> {
        let (changes, state) = self.replica.join_owned(from, state)?;
        if changes.state_changed() {
            // A whole state is written as a snapshot of the replica.
            self.persist(&BirdMap::default(), true);
        }
        if changes.clipped_claims()
            && let Some(state) = state
        {
            tracing::debug!(
                "claims of {}'s full state cut off (not shown by their origin yet); parked",
                from.node
            );
            self.park(from, &state);
        }
        Ok(changes)
    }

    /// Records a local mutation, persists it, tells the Registry, and ships it.
    fn local(&mut self, delta: BirdMap, changed: SetChanged) {
        self.persist(&delta, false);
        self.sync.record(delta);
        self.tell_registry(changed);
        self.flush();
    }

    /// Keeps a message whose claims were cut off, to join it again later.
    fn park(&mut self, from: &ReplicaId, map: &BirdMap) {
        let now = self.node.now_ms();
        let entry = self
            .parked
            .entry(from.node.clone())
            .or_insert_with(|| (from.clone(), BirdMap::default(), now));
        // Joining two messages of one sender is a lattice join: the result
        // claims nothing either did not.
        entry.1.join(map);
        entry.0 = from.clone();
        entry.2 = now;
    }

    /// Joins the parked messages again (trust may have grown since), and
    /// drops those now joined in full; `except`: the sender just joined,
    /// whose own parked message it cannot have unblocked.
    fn retry_parked(&mut self, except: Option<&NodeName>) {
        if self.parked.is_empty() {
            return;
        }
        for (node, (from, map, at)) in std::mem::take(&mut self.parked) {
            if Some(&node) == except {
                self.parked.insert(node, (from, map, at));
                continue;
            }
            match self.replica.join(&from, &map) {
                Ok(changes) => {
                    let clipped = changes.clipped_claims();
                    if changes.state_changed() {
                        self.persist(&map, true);
                        tracing::debug!(
                            "node {}: claims of {node} cut off earlier now apply",
                            self.node.name()
                        );
                    }
                    let changed = self.changes_to_set(changes);
                    self.tell_registry(changed);
                    if clipped {
                        self.parked.insert(node, (from, map, at));
                    }
                }
                Err(e) => tracing::warn!("node {}: {e}", self.node.name()),
            }
        }
    }

    /// Tells the Registry, in slices of at most [`NOTIFY_SLICE`] names: a
    /// full state of a million birds must not become one message that keeps
    /// the Registry's arbiter busy for seconds.
    fn tell_registry(&mut self, changed: SetChanged) {
        // Every join and local change comes through here.
        self.generation += 1;
        let Some(actors) = self.node.actors() else {
            return;
        };
        let SetChanged {
            upserts, removed, ..
        } = changed;
        let generation = self.generation;
        // Each name is moved once. (Cutting with `split_off` copied the
        // whole rest at every slice: a full state of 1 M names spent 5 s
        // of a joining node's replica in `memmove`, O(n² / slice).)
        let (mut upserts, mut removed) = (upserts.into_iter(), removed.into_iter());
        loop {
            let up: Vec<_> = upserts.by_ref().take(NOTIFY_SLICE).collect();
            let rm: Vec<_> = removed.by_ref().take(NOTIFY_SLICE).collect();
            if up.is_empty() && rm.is_empty() {
                return;
            }
            actors.registry.do_send(SetChanged {
                upserts: up,
                removed: rm,
                generation,
            });
        }
    }

    /// This replica's digest cut into `buckets` ranges, computed once per
    /// change of the replica (a scan of the registry).
    fn digest(&mut self, buckets: u32) -> Arc<Vec<u64>> {
        let generation = self.generation;
        if let Some((_, _, hashes)) = self
            .digests
            .iter()
            .find(|(g, b, _)| *g == generation && *b == buckets)
        {
            return hashes.clone();
        }
        let hashes = Arc::new(digest::digest(self.replica.state(), buckets));
        self.digests.retain(|(g, _, _)| *g == generation);
        // Peers near a power-of-two boundary of the registry size ask for
        // two counts; more than that is not kept.
        self.digests.truncate(1);
        self.digests.push((generation, buckets, hashes.clone()));
        hashes
    }

    /// Sends a digest to every peer due for one.
    fn send_digests(&mut self) {
        let now = self.node.now_ms();
        // Held back while the registry changes, for at most six digest
        // intervals (30 s by default).
        let max_defer = self
            .node
            .config
            .anti_entropy
            .digest_interval_ms
            .saturating_mul(6);
        // Quiet means unchanged for one anti-entropy retry (2 s by default).
        let quiet = self.node.config.anti_entropy.retry_ms;
        if !self
            .digest_gate
            .tick(self.generation, now, quiet, max_defer)
        {
            return;
        }
        let due = self.sync.digests_due(now);
        if due.is_empty() {
            return;
        }
        let buckets = digest::buckets_for(self.replica.state().len());
        let hashes = self.digest(buckets);
        let links = self.node.links.load();
        for peer in due {
            if self.no_digests.contains(&peer.node) {
                continue;
            }
            if let Some(link) = links.get(&peer.node).map(|l| &l.addr) {
                self.send_to(
                    link,
                    &peer.node,
                    SyncMessage::Digest {
                        hashes: hashes.to_vec(),
                    }
                    .into(),
                );
            }
        }
    }

    /// Encodes `msg` here (not on the links arbiter) and sends it; the
    /// frame sent, if it could be encoded.
    fn send_to(
        &self,
        link: &Addr<super::peer::Peer>,
        to: &str,
        msg: Message,
    ) -> Option<bytes::Bytes> {
        match encode_frame(&msg, self.node.config.max_frame) {
            Ok(frame) => {
                telemetry::sync_frame(telemetry::Direction::Out, &msg, frame.len());
                link.do_send(RawFrame(frame.clone()));
                Some(frame)
            }
            Err(e) => {
                tracing::error!(
                    "node {}: not sending a {} to {to}: {e}",
                    self.node.name(),
                    msg.name()
                );
                None
            }
        }
    }

    /// A peer's digest: answers with the ranges that differ, if any (see
    /// `core::anti_entropy::digest`).
    fn on_digest(&mut self, from: &ReplicaId, hashes: &[u64], peer: &Addr<super::peer::Peer>) {
        let Ok(buckets) = u32::try_from(hashes.len()) else {
            return;
        };
        if !digest::valid_buckets(buckets) {
            tracing::warn!(
                "node {}: ignoring a digest of {} ranges from {} (a power of two up to {} expected)",
                self.node.name(),
                hashes.len(),
                from.node,
                digest::MAX_BUCKETS
            );
            return;
        }
        // While this registry changes, the difference is most likely what
        // is on its way; the peer's next digest will tell.
        if !self.digest_gate.is_open() || !self.sync.answer_digest(from, self.node.now_ms()) {
            return;
        }
        let mine = self.digest(buckets);
        let Some(differ) = digest::differing(&mine, hashes) else {
            return;
        };
        if differ.is_empty() {
            return;
        }
        self.send_range(from, buckets, &differ, false, peer);
    }

    /// Sends `peer` this replica's entries of the `wanted` ranges (as many
    /// as fit one range's budget).
    fn send_range(
        &self,
        to: &ReplicaId,
        buckets: u32,
        wanted: &[u32],
        reply: bool,
        peer: &Addr<super::peer::Peer>,
    ) {
        let (ranges, part) = digest::range(
            self.replica.state(),
            buckets,
            wanted,
            self.sync.range_budget(),
        );
        tracing::debug!(
            "node {}: registry differs from {}'s in {} of {buckets} ranges; sending {} ({} birds)",
            self.node.name(),
            to.node,
            wanted.len(),
            ranges.len(),
            part.len()
        );
        let msg = SyncMessage::Range {
            reply,
            buckets,
            ranges,
            part,
        };
        self.send_to(peer, &to.node, msg.into());
    }

    /// A peer's ranges: joins exactly what they say about their names and,
    /// unless it was a reply, answers with this replica's same ranges.
    fn on_range(
        &mut self,
        from: &ReplicaId,
        reply: bool,
        buckets: u32,
        ranges: &[u32],
        part: &BirdMap,
        peer: &Addr<super::peer::Peer>,
    ) {
        if !digest::valid_ranges(buckets, ranges) {
            tracing::warn!(
                "node {}: ignoring a malformed range message from {}",
                self.node.name(),
                from.node
            );
            return;
        }
        let delta = digest::repair(self.replica.state(), buckets, ranges, part);
        match self.replica.join(from, &delta) {
            Ok(changes) => {
                if changes.clipped_claims() {
                    self.park(from, &delta);
                }
                if changes.state_changed() {
                    tracing::debug!(
                        "node {}: repaired {} range(s) from {} (+{} -{} ~{})",
                        self.node.name(),
                        ranges.len(),
                        from.node,
                        changes.added.len(),
                        changes.removed.len(),
                        changes.replaced.len()
                    );
                    self.persist(&delta, changes.clipped_claims());
                }
                let changed = self.changes_to_set(changes);
                self.tell_registry(changed);
                self.retry_parked(Some(&from.node));
            }
            Err(e) => {
                tracing::warn!(
                    "node {}: {e}; a peer with a broken or hostile implementation",
                    self.node.name()
                );
                return;
            }
        }
        if !reply && self.sync.answer_digest(from, self.node.now_ms()) {
            self.send_range(from, buckets, ranges, true, peer);
        }
    }

    fn changes_to_set(&self, changes: Changes) -> SetChanged {
        let state = self.replica.state();
        // Every name of the state is new (a node that joined took a whole
        // state into its empty replica): the specs are read in one ordered
        // pass instead of a lookup per name (≈ 1 s per million before).
        // `added` holds distinct names of the state, so as many as it has
        // are all of them, in the same order.
        if changes.removed.is_empty()
            && changes.replaced.is_empty()
            && changes.added.len() == state.len()
        {
            let upserts = state.specs().map(BirdSpec::named).collect();
            return SetChanged {
                upserts,
                removed: Vec::new(),
                generation: 0,
            };
        }
        let upserts = changes
            .added
            .into_iter()
            .chain(changes.replaced)
            .filter_map(|name| {
                let spec = state.get(&name)?;
                Some((Arc::from(name), spec))
            })
            .collect();
        let removed = changes.removed.into_iter().map(Arc::from).collect();
        SetChanged {
            upserts,
            removed,
            generation: 0,
        }
    }
}

impl Actor for CrdtReplica {
    type Context = Context<Self>;
}

impl Handler<Begin> for CrdtReplica {
    type Result = ();

    fn handle(&mut self, _: Begin, ctx: &mut Context<Self>) {
        // The Registry starts the restored birds this node owns, as if a
        // peer had sent them.
        let restored = std::mem::take(&mut self.restored);
        let changed = self.changes_to_set(restored);
        self.tell_registry(changed);
        let every = Duration::from_millis(self.node.config.anti_entropy.interval_ms);
        ctx.run_interval(every, |act, _| {
            let now = act.node.now_ms();
            while act
                .relay
                .front()
                .is_some_and(|(_, at, _)| now.saturating_sub(*at) > RELAY_KEEP_MS)
            {
                act.relay.pop_front();
            }
            act.parked
                .retain(|_, (_, _, at)| now.saturating_sub(*at) <= PARKED_KEEP_MS);
            let folded = act.replica.compact(now);
            if !folded.is_empty() {
                tracing::debug!(
                    "replica {}: folded dead incarnations ({} floors)",
                    act.node.name(),
                    folded.context().len_floors()
                );
                act.sync.record(folded);
            }
            act.flush();
            act.send_digests();
            telemetry::registry_size(act.replica.state().len());
            tracing::trace!(
                "replica {}: {} birds, {} deltas buffered",
                act.node.name(),
                act.replica.state().len(),
                act.sync.buffered()
            );
        });
    }
}

/// Add birds to the set (`start`, `start_many`): one delta, one
/// notification and one shipment for the whole batch.
#[derive(Message)]
#[rtype(result = "Vec<Reply<()>>")]
pub(crate) struct InsertMany(pub Vec<(Arc<str>, BirdSpec)>);

impl Handler<InsertMany> for CrdtReplica {
    type Result = MessageResult<InsertMany>;

    fn handle(&mut self, InsertMany(birds): InsertMany, _: &mut Context<Self>) -> Self::Result {
        let now = self.node.config.wall_ms();
        let (batch, outcomes) = self
            .replica
            .add_new(birds.iter().map(|(name, spec)| (&**name, spec)), now);
        let mut upserts = Vec::with_capacity(birds.len());
        let results = birds
            .into_iter()
            .zip(outcomes)
            .map(|((name, spec), added)| match added {
                Added::New => {
                    upserts.push((name, spec));
                    Ok(())
                }
                Added::Exists => Err(Error::AlreadyExists {
                    name: name.to_string(),
                }),
                Added::Exhausted => {
                    tracing::error!("node {}: {CounterExhausted}", self.node.name());
                    Err(Error::Stopped)
                }
            })
            .collect();
        self.local(
            batch,
            SetChanged {
                upserts,
                removed: vec![],
                generation: 0,
            },
        );
        MessageResult(results)
    }
}

/// Remove a bird from the set (a `stop`, or a bird that exited normally).
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub(crate) struct Remove {
    pub name: Arc<str>,
}

impl Handler<Remove> for CrdtReplica {
    type Result = Reply<()>;

    fn handle(&mut self, Remove { name }: Remove, _: &mut Context<Self>) -> Reply<()> {
        if !self.replica.state().contains(&name) {
            return Err(Error::NotFound {
                name: name.to_string(),
            });
        }
        let delta = self.replica.remove(&name);
        self.local(
            delta,
            SetChanged {
                upserts: vec![],
                removed: vec![name],
                generation: 0,
            },
        );
        Ok(())
    }
}

impl Handler<SyncRaw> for CrdtReplica {
    type Result = ();

    fn handle(&mut self, SyncRaw { from, frame, peer }: SyncRaw, _: &mut Context<Self>) {
        match Message::decode(&frame) {
            Ok(msg) => {
                telemetry::sync_frame(telemetry::Direction::In, &msg, frame.len());
                if let Some(msg) = msg.into_sync() {
                    self.on_sync(from, msg, peer);
                }
            }
            Err(e) => {
                // As the link would for any malformed frame.
                tracing::warn!("closing link to {}: {e}", from.node);
                peer.do_send(Close);
            }
        }
    }
}

impl Handler<SyncIn> for CrdtReplica {
    type Result = ();

    fn handle(&mut self, SyncIn { from, msg, peer }: SyncIn, _: &mut Context<Self>) {
        self.on_sync(from, msg, peer);
    }
}

impl CrdtReplica {
    fn on_sync(&mut self, from: ReplicaId, msg: SyncMessage, peer: Addr<super::peer::Peer>) {
        // Synchronous handler: the span covers joining the sync, no await.
        let _span = tracing::debug_span!("flock_sync", node = %self.node.name(), peer = %from.node)
            .entered();
        // `Some(interval)` for deltas, `None` for a full state.
        let (ack, seq, joined, interval) = match msg {
            SyncMessage::Digest { hashes } => {
                self.on_digest(&from, &hashes, &peer);
                return;
            }
            SyncMessage::Range {
                reply,
                buckets,
                ranges,
                part,
            } => {
                self.on_range(&from, reply, buckets, &ranges, &part, &peer);
                return;
            }
            SyncMessage::Deltas {
                from_seq,
                to_seq,
                delta,
            } => {
                let joined = self.replica.join(&from, &delta);
                if let Ok(changes) = &joined
                    && changes.clipped_claims()
                {
                    self.park(&from, &delta);
                }
                if let Ok(changes) = &joined
                    && changes.state_changed()
                {
                    // What was cut off is not on disk either: a restart
                    // must not accept claims this node refused.
                    if changes.clipped_claims() {
                        self.persist(&delta, true);
                    } else {
                        self.persist(&delta, false);
                    }
                    // Keep news for a while in case its origin dies before
                    // reaching every node (see `PeerDown`).
                    self.relay
                        .push_back((from.node.clone(), self.node.now_ms(), delta));
                    if self.relay.len() > RELAY_MAX_DELTAS {
                        self.relay.pop_front();
                    }
                }
                let interval = Some((from_seq, to_seq));
                (Message::SyncAck { seq: to_seq }, to_seq, joined, interval)
            }
            SyncMessage::Full { seq, state } => {
                let joined = self.join_whole(&from, state);
                (Message::SyncAck { seq }, seq, joined, None)
            }
            SyncMessage::Chunk {
                session,
                index,
                last,
                seq,
                part,
            } => {
                // What the sender shows about its own dots counts at once,
                // even in a part held back: another peer's full state may
                // be parked for exactly that (a joining node's first
                // transfer, from a host, names a client's million dots).
                if self.replica.vouch(&from, &part) {
                    self.retry_parked(Some(&from.node));
                }
                let ack = Message::SyncChunkAck { session, index };
                let now = self.node.now_ms();
                if index == 0 {
                    tracing::debug!(
                        "node {} got the first part of transfer {session} from {}",
                        self.node.name(),
                        from.node
                    );
                }
                match self
                    .assembler
                    .on_chunk(&from, session, index, last, seq, part, now)
                {
                    Assembled::Ignored => return,
                    Assembled::Held => {
                        tracing::trace!(
                            "part {index} of {}'s full state held: another transfer has the focus",
                            from.node
                        );
                        return;
                    }
                    Assembled::Pending => {
                        peer.do_send(Frame(ack));
                        return;
                    }
                    Assembled::Complete { seq, state } => {
                        tracing::debug!(
                            "node {} joining the full state of {} ({} birds, up to its seq {seq})",
                            self.node.name(),
                            from.node,
                            state.len()
                        );
                        let started = std::time::Instant::now();
                        let joined = self.join_whole(&from, state);
                        if let Ok(changes) = &joined {
                            // The changes are told to the Registry below;
                            // the join's own time is what the log shows.
                            tracing::debug!(
                                "node {} joined the full state of {} in {} ms ({} added)",
                                self.node.name(),
                                from.node,
                                started.elapsed().as_millis(),
                                changes.added.len()
                            );
                        }
                        (ack, seq, joined, None)
                    }
                }
            }
            SyncMessage::ChunkAck { session, index } => {
                // The next parts go as soon as one is acknowledged: the
                // transfer runs at the receiver's pace.
                if self.sync.on_chunk_ack(&from, session, index) {
                    self.flush();
                }
                return;
            }
        };
        let clipped = match joined {
            Ok(changes) => {
                tracing::trace!("joined sync from {} up to {seq}", from.node);
                let clipped = changes.clipped_claims();
                let changed = self.changes_to_set(changes);
                self.tell_registry(changed);
                // What it showed may vouch for claims others made earlier.
                self.retry_parked(Some(&from.node));
                clipped
            }
            // Acknowledged all the same: a re-send would be refused again,
            // and a full state re-sent every retry would only cost bandwidth.
            Err(e) => {
                tracing::warn!(
                    "node {}: {e}; a peer with a broken or hostile implementation",
                    self.node.name()
                );
                false
            }
        };
        let Some((from_seq, to_seq)) = interval else {
            // A full state is acknowledged even with claims cut off
            // (re-sending one is costly); the next one repairs it.
            self.inbound.on_full(&from, seq);
            peer.do_send(Frame(ack));
            return;
        };
        // At most one retransmission per clipped delta (a claim about an
        // origin that crashed for good would otherwise be re-sent forever);
        // nothing after a gap, so that an ack means "joined up to it".
        match self.inbound.on_deltas(&from, from_seq, to_seq, clipped) {
            Some(upto) => peer.do_send(Frame(Message::SyncAck { seq: upto })),
            None if self.inbound.withheld(&from.node) => tracing::debug!(
                "sync from {} up to {seq} claimed dots not shown to us yet (it overtook \
                 the origin's own delta, or it lies); not acknowledged, it comes again \
                 after retry_ms",
                from.node
            ),
            None => tracing::trace!(
                "sync from {} {from_seq}..={to_seq} after a gap; joined, not acknowledged",
                from.node
            ),
        }
    }
}

impl Handler<SyncAcked> for CrdtReplica {
    type Result = ();

    fn handle(&mut self, SyncAcked { from, seq }: SyncAcked, _: &mut Context<Self>) {
        // A peer catching up gets its next batch of deltas as soon as it
        // acknowledged the last: the catch-up runs at the receiver's pace.
        if self.sync.on_ack(&from, seq) {
            self.flush();
        }
    }
}

/// A peer's link came up (new, reconnected or restarted).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PeerUp {
    pub id: ReplicaId,
    /// Whether the link speaks protocol v2 or later, which added the digest
    /// frames: a v1 node (mid rolling upgrade) cannot decode them and would
    /// close the link, so it is sent none.
    pub digests: bool,
}

impl Handler<PeerUp> for CrdtReplica {
    type Result = ();

    fn handle(&mut self, PeerUp { id, digests }: PeerUp, _: &mut Context<Self>) {
        if digests {
            self.no_digests.remove(&id.node);
        } else if self.no_digests.len() < MAX_V1_PEERS {
            self.no_digests.insert(id.node.clone());
        }
        self.sync.peer_up(&id);
        // Its older incarnations are dead: claims about them now apply.
        self.replica.saw(&id);
        self.retry_parked(None);
        self.flush();
    }
}

/// A peer's link went down; `left` if it left the cluster for good.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PeerDown {
    pub name: Arc<str>,
    pub left: bool,
}

impl Handler<PeerDown> for CrdtReplica {
    type Result = ();

    fn handle(&mut self, PeerDown { name, left }: PeerDown, _: &mut Context<Self>) {
        self.inbound.peer_down(&name);
        if left {
            self.sync.forget_peer(&name);
            // It mints nothing more: claims about its dots now apply.
            self.replica.retire(&name);
            self.assembler.forget(&name);
            self.inbound.forget(&name);
        } else {
            self.sync.peer_down(&name);
            // Its recent changes now reach the others only as relays.
            self.replica.peer_down(&name);
        }
        // Claims about its dots may apply now (see `Replica::peer_down`).
        self.retry_parked(None);
        // Relay what the departed node told us recently: the others may not
        // have heard it. Receivers that have it join it as a no-op.
        let (from_it, rest): (VecDeque<_>, VecDeque<_>) = self
            .relay
            .drain(..)
            .partition(|(origin, _, _)| *origin == name);
        self.relay = rest;
        if !from_it.is_empty() {
            tracing::debug!("relaying {} recent delta(s) of {name}", from_it.len());
            for (_, _, delta) in from_it {
                self.sync.record(delta);
            }
            self.flush();
        }
    }
}

/// How many names one [`OwnedBy`] slice reads: a read of a million names is
/// cut into slices so that what else the replica's arbiter does (the acks
/// of a full-state transfer to a joining node) goes on between them. About
/// 10 ms of work on the bench machine.
pub(crate) const OWNED_SLICE: usize = 65_536;

/// The birds the given view assigns to this node (of the given shards
/// only, if any are given), read from the first name after `after`, at most
/// [`OWNED_SLICE`] names.
#[derive(Message)]
#[rtype(result = "OwnedSlice")]
pub(crate) struct OwnedBy {
    pub view: Arc<View>,
    /// The shards gained since the last read (`core::lifecycle::reads`);
    /// `None`: every shard.
    pub shards: Option<Arc<ShardSet>>,
    /// Where the previous slice stopped (`None`: the first slice).
    pub after: Option<Arc<str>>,
}

/// One slice of an owned-set read.
pub(crate) struct OwnedSlice {
    pub owned: Vec<(Arc<str>, BirdSpec)>,
    /// The last name read, if names are left after it.
    pub next: Option<Arc<str>>,
    /// How many birds the set holds.
    pub total: usize,
    /// The replica's generation the slice was read at.
    pub generation: u64,
}

impl Handler<OwnedBy> for CrdtReplica {
    type Result = MessageResult<OwnedBy>;

    fn handle(
        &mut self,
        OwnedBy {
            view,
            shards,
            after,
        }: OwnedBy,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let me = self.node.name();
        let state = self.replica.state();
        let mut slice = OwnedSlice {
            owned: Vec::new(),
            next: None,
            total: state.len(),
            generation: self.generation,
        };
        // A node that hosts nothing (weight 0, a client) owns nothing: no
        // owner() per name (a million every 5 s on a client before).
        if !view.placement.hosts().iter().any(|m| m.name == *me) {
            return MessageResult(slice);
        }
        // Kinds read in place: only the owned birds' specs are copied. The
        // table of the last kind is kept: names of one kind come in runs,
        // and a kind lookup hashes the kind's name.
        let mut table: Option<(&str, &crate::core::placement::Placement)> = None;
        let mut last: Option<&str> = None;
        // Specs read in place too: no second lookup per owned name.
        for (read, (name, kind, args)) in state.specs_after(after.as_deref()).enumerate() {
            if read == OWNED_SLICE {
                // Names are left: the next slice starts after the last read.
                slice.next = last.map(Arc::from);
                break;
            }
            last = Some(name);
            let t = match table {
                Some((k, t)) if k == kind => t,
                _ => {
                    let t = view.placement.for_kind(kind);
                    table = Some((kind, t));
                    t
                }
            };
            // One hash per name, for both the shard and its owner.
            let shard = t.shard_of(name);
            if shards.as_ref().is_none_or(|s| s.contains(shard))
                && t.owner_of_shard(shard).is_ok_and(|o| o == me)
            {
                slice.owned.push(BirdSpec::named((name, kind, args)));
            }
        }
        MessageResult(slice)
    }
}

/// Whether a bird is in the set, and its spec.
#[derive(Message)]
#[rtype(result = "Option<BirdSpec>")]
pub(crate) struct Lookup(pub Arc<str>);

impl Handler<Lookup> for CrdtReplica {
    type Result = Option<BirdSpec>;

    fn handle(&mut self, Lookup(name): Lookup, _: &mut Context<Self>) -> Option<BirdSpec> {
        self.replica.state().get(&name)
    }
}

/// A copy of the whole replica, dots and causal context included.
#[derive(Message)]
#[rtype(result = "BirdMap")]
pub(crate) struct WholeState;

impl Handler<WholeState> for CrdtReplica {
    type Result = MessageResult<WholeState>;

    fn handle(&mut self, _: WholeState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.replica.state().clone())
    }
}

/// Every bird name in the set, with its kind.
#[derive(Message)]
#[rtype(result = "Vec<(String, String)>")]
pub(crate) struct ListBirds;

impl Handler<ListBirds> for CrdtReplica {
    type Result = MessageResult<ListBirds>;

    fn handle(&mut self, _: ListBirds, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.replica
                .state()
                .kinds()
                .map(|(n, kind)| (n.to_owned(), kind.to_owned()))
                .collect(),
        )
    }
}

/// How many birds the set holds.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct CountBirds;

impl Handler<CountBirds> for CrdtReplica {
    type Result = usize;

    fn handle(&mut self, _: CountBirds, _: &mut Context<Self>) -> usize {
        self.replica.state().len()
    }
}
