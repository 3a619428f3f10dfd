//! Anti-entropy bookkeeping: which of our deltas each peer still needs, and
//! whether to send it deltas or the full state.
//!
//! Pure and clock-free: the runtime calls [`AntiEntropy::record`] after every
//! local mutation, [`AntiEntropy::poll`] on a timer and sends what it
//! returns, and [`AntiEntropy::on_ack`] when a peer acknowledges. The
//! receiving side joins the delta or state into its
//! [`Replica`](crate::core::crdt::Replica) and acknowledges what
//! [`Inbound`] says (for [`SyncMessage::Deltas`]) or `seq` (for
//! [`SyncMessage::Full`]).
//!
//! # Protocol
//!
//! Local deltas are numbered `1, 2, …` (`seq`) and buffered; one bigger
//! than a chunk's byte budget is first cut into several that can each be
//! joined alone (see `split`). A peer that has acknowledged `acked` gets
//! the buffered deltas from `acked+1` on, joined into one delta interval of
//! at most `chunk_bytes` (a far-behind peer gets its missing deltas in
//! bounded batches, never in one frame that grows with the registry). Up
//! to `chunk_window` intervals are in flight per peer, each starting after
//! the last one sent: the next goes at once if the last was cut short by
//! the budget, else after `interval_ms`; if the oldest is unacknowledged
//! for `retry_ms`, everything from `acked+1` is sent again. The receiver
//! acknowledges an interval only when it joins on to what it has joined
//! ([`inbound`]), so acknowledging `to_seq` always means "I joined
//! everything up to `to_seq`". A peer that is new, restarted (new
//! incarnation), or whose `acked+1` has left the buffer (it overflowed
//! `max_buffered_deltas`) gets the full state instead, tagged with the
//! current `seq`. Deltas every peer has acknowledged are dropped from the
//! buffer.
//!
//! Only deltas recorded here travel: each node ships its own mutations to
//! every peer, which assumes a full mesh. A peer reachable only through a
//! third node catches up through full-state syncs (or the runtime may also
//! `record` the deltas it receives, to forward them).
//!
//! Deltas alone cannot repair everything: what a node learnt only from a
//! full state (for instance the last mutations of a peer that then crashed,
//! which reached only this node) is in no buffered delta. So every peer also
//! gets the full state every `full_sync_interval_ms`: the classic
//! anti-entropy backstop, and the "full sync" after which replicas are
//! guaranteed to agree. It costs one full state per peer per interval.
//! Between two full syncs, a [`digest`] exchange with every caught-up peer
//! (every `digest_interval_ms`) finds the differences version vectors
//! cannot show — a stop that only a crashed node held — and repairs just
//! the ranges of names that differ.
//!
//! A peer that goes down keeps its place: it still holds back trimming (up
//! to `max_buffered_deltas`), so a short disconnect resumes with deltas.
//!
//! Retransmission: a peer that has everything it was sent is left alone
//! until there is something new; an unacknowledged interval is re-sent
//! (from `acked+1`, cut again, with everything after it) after `retry_ms`.
//! A re-sent interval may duplicate deltas the peer already
//! joined; joins are idempotent, so that only costs bandwidth (and possibly
//! a store scan at the receiver, see [`crate::core::crdt::map`]).

pub mod chunk;
pub mod digest;
pub mod inbound;
mod split;

pub use chunk::{Assembled, Assembler};
pub use inbound::Inbound;

use crate::core::crdt::{BirdMap, NodeName, ReplicaId};
use crate::error::{Error, Result};
use chunk::Cursor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Intervals and limits of the anti-entropy protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AntiEntropyConfig {
    /// Minimum time between two sends to one peer, in milliseconds. Deltas
    /// recorded within one interval travel together. Must be at least 1.
    pub interval_ms: u64,
    /// Time after which unacknowledged data is sent again, in milliseconds.
    /// Must be at least `interval_ms`.
    pub retry_ms: u64,
    /// Most deltas kept for slow peers. A peer that falls further behind gets
    /// the full state. Must be at least 1.
    pub max_buffered_deltas: usize,
    /// Every connected peer also gets the full state this often, in
    /// milliseconds: the backstop that repairs what deltas cannot (see the
    /// module docs). Must be at least `retry_ms`.
    pub full_sync_interval_ms: u64,
    /// Byte budget of one full-state chunk (see [`SyncMessage::Chunk`]). The
    /// runtime lowers it to a quarter of the frame cap, so no frame grows
    /// with the registry. Must be at least 1024.
    pub chunk_bytes: usize,
    /// Most chunks of one transfer, and most delta intervals, in flight
    /// (sent, not acknowledged) per peer: the pacing of a full sync and of
    /// a catch-up. The next goes when one is acknowledged, so a big
    /// transfer proceeds at the receiver's pace and never floods the link
    /// or the arbiter, while the receiver never waits a round trip for the
    /// next. Must be at least 1.
    pub chunk_window: usize,
    /// Every connected peer that has acknowledged everything is sent a
    /// digest of the registry this often, in milliseconds; ranges that
    /// differ are repaired at once (see [`digest`]). It finds what version
    /// vectors cannot show (a stop only a crashed node had relayed) within
    /// this bound instead of `full_sync_interval_ms`. 0 turns sending
    /// digests off (received ones are still answered): for a rolling
    /// upgrade from a build that does not know them, which would close the
    /// link on one. Otherwise at least `interval_ms`.
    pub digest_interval_ms: u64,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        Self {
            interval_ms: 200,
            retry_ms: 2_000,
            max_buffered_deltas: 10_000,
            full_sync_interval_ms: 300_000,
            chunk_bytes: 1024 * 1024,
            chunk_window: 4,
            digest_interval_ms: 5_000,
        }
    }
}

impl AntiEntropyConfig {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.interval_ms == 0 {
            return Err(Error::InvalidConfig(
                "anti_entropy.interval_ms must be at least 1".into(),
            ));
        }
        if self.retry_ms < self.interval_ms {
            return Err(Error::InvalidConfig(format!(
                "anti_entropy.retry_ms ({}) must be at least interval_ms ({})",
                self.retry_ms, self.interval_ms
            )));
        }
        if self.full_sync_interval_ms < self.retry_ms {
            return Err(Error::InvalidConfig(format!(
                "anti_entropy.full_sync_interval_ms ({}) must be at least retry_ms ({})",
                self.full_sync_interval_ms, self.retry_ms
            )));
        }
        if self.max_buffered_deltas == 0 {
            return Err(Error::InvalidConfig(
                "anti_entropy.max_buffered_deltas must be at least 1".into(),
            ));
        }
        if self.chunk_bytes < 1024 {
            return Err(Error::InvalidConfig(format!(
                "anti_entropy.chunk_bytes ({}) must be at least 1024",
                self.chunk_bytes
            )));
        }
        if self.chunk_window == 0 {
            return Err(Error::InvalidConfig(
                "anti_entropy.chunk_window must be at least 1".into(),
            ));
        }
        if self.digest_interval_ms != 0 && self.digest_interval_ms < self.interval_ms {
            return Err(Error::InvalidConfig(format!(
                "anti_entropy.digest_interval_ms ({}) must be 0 (off) or at least interval_ms ({})",
                self.digest_interval_ms, self.interval_ms
            )));
        }
        Ok(())
    }
}

/// What one node sends another to synchronize the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMessage {
    /// The sender's deltas `from_seq..=to_seq`, joined into one delta.
    /// Acknowledge with `to_seq`.
    Deltas {
        /// First delta sequence number included.
        from_seq: u64,
        /// Last delta sequence number included.
        to_seq: u64,
        /// The joined delta interval.
        delta: BirdMap,
    },
    /// The sender's full state in one message, which includes all its deltas
    /// `..=seq`. No longer sent (full states travel as [`Chunk`](Self::Chunk)s);
    /// still joined when received. Acknowledge with `seq`.
    Full {
        /// The sender's delta sequence number when the state was taken.
        seq: u64,
        /// The full state.
        state: BirdMap,
    },
    /// Part `index` of full-state transfer `session`: feed it to an
    /// [`Assembler`], which hands over the whole state (covering the
    /// sender's deltas `..=seq`) once every part has arrived. Acknowledge
    /// every part with [`ChunkAck`](Self::ChunkAck).
    Chunk {
        /// The transfer, unique per sender incarnation.
        session: u64,
        /// The part's number, from 0.
        index: u32,
        /// Whether this is the transfer's last part.
        last: bool,
        /// The sender's delta sequence number when the transfer started.
        seq: u64,
        /// A run of names and a piece of the context; not a state on its
        /// own (see [`chunk`]).
        part: BirdMap,
    },
    /// Part `index` of transfer `session` was received (and, if it was the
    /// last missing part, the state joined).
    ChunkAck {
        /// The transfer.
        session: u64,
        /// The part.
        index: u32,
    },
    /// The sender's [`digest::digest`] of its registry, one hash per range
    /// (`hashes.len()` ranges, a power of two). A receiver that has the
    /// same ranges differently answers with a [`Range`](Self::Range).
    Digest {
        /// One hash per range.
        hashes: Vec<u64>,
    },
    /// The sender's entries under the names of `ranges` (among `buckets`),
    /// with its whole causal context (see [`digest::range`]); join it with
    /// [`digest::repair`], never as it is. `reply`: it answers a `Range`,
    /// and is not to be answered.
    Range {
        /// It answers a `Range`.
        reply: bool,
        /// The number of ranges names are cut into.
        buckets: u32,
        /// The ranges included, increasing.
        ranges: Vec<u32>,
        /// Their entries, and the sender's context.
        part: BirdMap,
    },
}

/// A chunk part re-sent without an acknowledgement waits up to
/// `2^MAX_CHUNK_BACKOFF_SHIFT` retry times before the next retry (4 s with
/// the default `retry_ms`): fewer useless re-sends to a receiver busy with
/// another transfer, and at most that long a pause once it is free.
const MAX_CHUNK_BACKOFF_SHIFT: u32 = 1;

/// A full-state transfer to one peer, under way.
#[derive(Debug, Clone)]
struct Outgoing {
    session: u64,
    /// Our seq when the transfer started: what its completion acknowledges.
    seq: u64,
    cursor: Cursor,
    next_index: u32,
    /// Whether the part flagged `last` has been cut.
    all_cut: bool,
    /// Parts sent and not acknowledged, kept for retransmission (at most
    /// `chunk_window` of them): index → (last send, times sent again, last
    /// flag, part).
    in_flight: BTreeMap<u32, (u64, u32, bool, BirdMap)>,
}

impl Outgoing {
    /// Re-sends parts unacknowledged for `retry_ms`, then cuts new parts
    /// while the window has room.
    fn emit(
        &mut self,
        now_ms: u64,
        state: &BirdMap,
        config: &AntiEntropyConfig,
        out: &mut Vec<SyncMessage>,
    ) {
        for (&index, (at, resent, last, part)) in &mut self.in_flight {
            // A part unacknowledged after a retry is most likely held by a
            // receiver taking another peer's transfer first (§16.1), not
            // lost (links are TCP; a reconnect starts a new transfer): the
            // next retries wait longer, so held senders cost that receiver
            // less decoding while it works.
            let wait = config
                .retry_ms
                .saturating_mul(1 << (*resent).min(MAX_CHUNK_BACKOFF_SHIFT));
            if now_ms >= at.saturating_add(wait) {
                *at = now_ms;
                *resent = resent.saturating_add(1);
                out.push(SyncMessage::Chunk {
                    session: self.session,
                    index,
                    last: *last,
                    seq: self.seq,
                    part: part.clone(),
                });
            }
        }
        let budget = config.chunk_bytes.saturating_sub(chunk::CHUNK_OVERHEAD);
        while !self.all_cut && self.in_flight.len() < config.chunk_window {
            let (part, last) = self.cursor.next_part(state, budget);
            let index = self.next_index;
            self.next_index += 1;
            self.all_cut = last;
            out.push(SyncMessage::Chunk {
                session: self.session,
                index,
                last,
                seq: self.seq,
                part: part.clone(),
            });
            self.in_flight.insert(index, (now_ms, 0, last, part));
        }
    }
}

/// What we know about one peer.
#[derive(Debug, Clone)]
struct PeerState {
    incarnation: u64,
    connected: bool,
    /// Highest seq the peer acknowledged; `None` until it acknowledges a
    /// full state (it needs one).
    acked: Option<u64>,
    /// The last delta send: its time and the seq it covered.
    last_sent: Option<Sent>,
    /// Delta intervals sent and not acknowledged, oldest first: the last
    /// seq each covers and when it was sent. At most `chunk_window`.
    window: VecDeque<(u64, u64)>,
    /// When the last full-state transfer started (for the periodic full sync).
    last_full_ms: Option<u64>,
    /// The full-state transfer under way, if any.
    full: Option<Outgoing>,
    /// When this peer was last sent a digest.
    last_digest_ms: Option<u64>,
    /// When a digest or range of this peer was last answered: at most one
    /// answer per `interval_ms`, so a peer cannot make this node scan its
    /// registry for every frame it sends.
    last_answer_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    at_ms: u64,
    /// The interval was cut short by the byte budget: the rest goes as
    /// soon as this part is acknowledged, not an `interval_ms` later.
    more: bool,
}

impl PeerState {
    fn new(incarnation: u64) -> Self {
        Self {
            incarnation,
            connected: true,
            acked: None,
            last_sent: None,
            window: VecDeque::new(),
            last_full_ms: None,
            full: None,
            last_digest_ms: None,
            last_answer_ms: None,
        }
    }

    /// Whether this peer has everything this node sent and nothing is in
    /// flight to it: a digest difference then is a real one, not a delta
    /// on its way.
    fn idle(&self, seq: u64) -> bool {
        self.connected && self.acked == Some(seq) && self.full.is_none()
    }

    /// The delta intervals to send this peer now, each with the seq it
    /// starts after (`cut(base)` joins the buffered deltas from `base+1`
    /// within the budget). Acknowledged intervals leave the window; if the
    /// oldest unacknowledged one is older than `retry_ms`, everything from
    /// `acked+1` goes again (go-back-N: the receiver acknowledges only what
    /// joins on to what it has, so "ack `to_seq`" keeps meaning "joined
    /// everything up to `to_seq`"). Otherwise the next interval starts after
    /// the last one sent, while the window has room, at once if the last
    /// was cut short by the budget, else `interval_ms` after the last send.
    /// At most one interval over the budget, alone and first: the caller
    /// sends a full state instead.
    fn next_intervals(
        &mut self,
        seq: u64,
        (window, budget): (usize, usize),
        (now_ms, interval_ms, retry_ms): (u64, u64, u64),
        mut cut: impl FnMut(u64) -> Interval,
    ) -> Vec<(u64, Interval)> {
        let acked = self.acked.unwrap_or(0);
        self.window.retain(|&(to, _)| to > acked);
        let retry = self
            .window
            .front()
            .is_some_and(|&(_, at)| now_ms >= at.saturating_add(retry_ms));
        if retry {
            self.window.clear();
        }
        let mut due = retry
            || match self.last_sent {
                None => true,
                Some(s) => s.more || now_ms >= s.at_ms.saturating_add(interval_ms),
            };
        let mut base = self.window.back().map_or(acked, |&(to, _)| to);
        let mut out: Vec<(u64, Interval)> = Vec::new();
        while due && base < seq && self.window.len() + out.len() < window {
            let interval = cut(base);
            if !out.is_empty() && interval.bytes > budget {
                break;
            }
            let to = interval.to;
            due = to < seq;
            out.push((base, interval));
            base = to;
        }
        out
    }

    /// The seq below which this peer needs no buffered delta: what it
    /// acknowledged or, while a full state is in flight, that state's seq.
    fn floor(&self) -> Option<u64> {
        let pending_full = self.full.as_ref().map(|f| f.seq);
        match (self.acked, pending_full) {
            (Some(a), Some(p)) => Some(a.max(p)),
            (a, p) => a.or(p),
        }
    }
}

/// The buffered deltas a peer gets next, joined.
#[derive(Debug, Clone)]
struct Interval {
    delta: BirdMap,
    /// The last seq included.
    to: u64,
    /// Upper bound of the encoding of `delta`'s items.
    bytes: usize,
}

impl Interval {
    /// The buffered deltas from `acked + 1` on, as many as fit in `budget`
    /// bytes (at least one, which may not fit: the caller checks `bytes`).
    fn cut(buffer: &BTreeMap<u64, (BirdMap, usize)>, acked: u64, budget: usize) -> Self {
        let mut interval = Interval {
            delta: BirdMap::default(),
            to: acked,
            bytes: 0,
        };
        for (&seq, (delta, bytes)) in buffer.range(acked + 1..) {
            if interval.to > acked && interval.bytes.saturating_add(*bytes) > budget {
                break;
            }
            // The first delta is copied, not joined into the empty map: a
            // join interns, looks up and sorts every name again, and most
            // intervals are one buffered delta (a part of a `start_many`
            // is cut to nearly the budget). Same map: joining into the
            // bottom element changes nothing.
            if interval.to == acked {
                interval.delta = delta.clone();
            } else {
                interval.delta.join_delta(delta);
            }
            interval.bytes = interval.bytes.saturating_add(*bytes);
            interval.to = seq;
        }
        interval
    }
}

/// Per-peer delta bookkeeping for one node. See the module docs.
#[derive(Debug, Clone)]
pub struct AntiEntropy {
    config: AntiEntropyConfig,
    /// Sequence number of the last recorded delta (0: none yet).
    seq: u64,
    /// Recorded deltas not yet acknowledged by every peer, each with an
    /// upper bound of its encoding ([`chunk::size_bound`]); contiguous keys.
    buffer: BTreeMap<u64, (BirdMap, usize)>,
    peers: BTreeMap<NodeName, PeerState>,
    /// The last full-state transfer number handed out.
    sessions: u64,
}

impl AntiEntropy {
    /// Bookkeeping with no peers and no deltas.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn new(config: AntiEntropyConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            seq: 0,
            buffer: BTreeMap::new(),
            peers: BTreeMap::new(),
            sessions: 0,
        })
    }

    /// Sequence number of the last recorded delta.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of buffered deltas.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Sequence numbers of the buffered deltas, oldest first.
    pub fn buffered_range(&self) -> Option<(u64, u64)> {
        Some((
            *self.buffer.first_key_value()?.0,
            *self.buffer.last_key_value()?.0,
        ))
    }

    /// What `node` acknowledged (`None`: unknown peer, or it needs a full state).
    pub fn acked(&self, node: &str) -> Option<u64> {
        self.peers.get(node)?.acked
    }

    /// Buffers a local delta and returns its (last) sequence number. A
    /// delta bigger than one chunk's budget is cut into several, each
    /// joinable on its own and numbered in order (see [`split`]), so that
    /// no delta sent grows with a batch. An empty delta (e.g. removing an
    /// absent name) is not buffered; the current seq is returned.
    pub fn record(&mut self, delta: BirdMap) -> u64 {
        if delta.is_empty() {
            return self.seq;
        }
        for part in split::split(delta, self.budget()) {
            self.seq += 1;
            let bytes = chunk::size_bound(&part);
            self.buffer.insert(self.seq, (part, bytes));
        }
        self.trim();
        self.seq
    }

    /// Byte budget of one message's items.
    fn budget(&self) -> usize {
        self.config
            .chunk_bytes
            .saturating_sub(chunk::CHUNK_OVERHEAD)
    }

    /// A peer connected. A new node, or a new incarnation of a known one,
    /// needs the full state; a reconnect of the same incarnation resumes
    /// from what it acknowledged (and is due at once; a full-state transfer
    /// under way starts over, as a new transfer). An older incarnation than
    /// the one known is ignored (a stale announcement).
    pub fn peer_up(&mut self, peer: &ReplicaId) {
        match self.peers.get_mut(&peer.node) {
            Some(known) if known.incarnation == peer.incarnation => {
                known.connected = true;
                known.last_sent = None;
                known.window.clear();
                known.full = None;
            }
            Some(known) if known.incarnation > peer.incarnation => {}
            _ => {
                self.peers
                    .insert(peer.node.clone(), PeerState::new(peer.incarnation));
            }
        }
        self.trim();
    }

    /// A peer disconnected. It keeps its place (see the module docs); use
    /// [`forget_peer`](Self::forget_peer) for a node that left for good.
    pub fn peer_down(&mut self, node: &str) {
        if let Some(peer) = self.peers.get_mut(node) {
            peer.connected = false;
        }
    }

    /// Forgets a node that left the cluster; it no longer holds back trimming.
    pub fn forget_peer(&mut self, node: &str) {
        self.peers.remove(node);
        self.trim();
    }

    /// A peer acknowledged deltas up to `seq`. Returns whether the ack was
    /// applied: acks from an unknown node or another incarnation, acks
    /// beyond our `seq`, and delta acks from a peer that still needs a full
    /// state are ignored; older acks are harmless.
    pub fn on_ack(&mut self, peer: &ReplicaId, seq: u64) -> bool {
        let Some(state) = self.peers.get_mut(&peer.node) else {
            return false;
        };
        if state.incarnation != peer.incarnation || seq > self.seq {
            return false;
        }
        // A peer that needs a full state is only caught up by a completed
        // transfer: a late ack of older deltas must not end the wait.
        let Some(acked) = state.acked else {
            return false;
        };
        state.acked = Some(acked.max(seq));
        self.trim();
        true
    }

    /// A peer acknowledged part `index` of full-state transfer `session`.
    /// Once every part is acknowledged the peer has joined the state, and
    /// counts as having acknowledged the transfer's seq. Returns whether the
    /// ack was applied (acks of another incarnation or transfer are not).
    pub fn on_chunk_ack(&mut self, peer: &ReplicaId, session: u64, index: u32) -> bool {
        let Some(state) = self.peers.get_mut(&peer.node) else {
            return false;
        };
        if state.incarnation != peer.incarnation {
            return false;
        }
        let Some(full) = state.full.as_mut().filter(|f| f.session == session) else {
            return false;
        };
        if full.in_flight.remove(&index).is_none() {
            return false;
        }
        if full.all_cut && full.in_flight.is_empty() {
            let seq = full.seq;
            state.full = None;
            state.acked = Some(state.acked.map_or(seq, |a| a.max(seq)));
            self.trim();
        }
        true
    }

    /// What to send now: to every connected peer that needs it, the next
    /// parts of its full-state transfer (started here when the peer is new,
    /// restarted, too far behind for the buffer, or due for the periodic
    /// full sync; paced by `chunk_window`), and, to a peer that has a base
    /// to apply them to and is due (`interval_ms` since the last send), its
    /// unacknowledged delta interval. `state` must include every recorded
    /// delta. Call it again after each [`on_chunk_ack`](Self::on_chunk_ack):
    /// that is what moves a transfer along.
    pub fn poll(&mut self, now_ms: u64, state: &BirdMap) -> Vec<(ReplicaId, SyncMessage)> {
        let mut out = Vec::new();
        // Peers at the same `acked` share one joined interval.
        let mut intervals: HashMap<u64, Interval> = HashMap::new();
        let budget = self.budget();
        let first_buffered = self.buffer.first_key_value().map(|(&k, _)| k);
        let seq = self.seq;
        for (node, peer) in &mut self.peers {
            if !peer.connected {
                continue;
            }
            let id = ReplicaId {
                node: node.clone(),
                incarnation: peer.incarnation,
            };
            // A new peer gets the full state even at seq 0: the state may
            // hold what we learnt from others. The buffer holds a contiguous
            // run; a peer needs acked+1 onwards.
            let behind = match peer.acked {
                None => true,
                Some(acked) => acked < seq && first_buffered.is_none_or(|first| first > acked + 1),
            };
            let periodic_full = peer
                .last_full_ms
                .is_some_and(|t| now_ms >= t.saturating_add(self.config.full_sync_interval_ms));
            // The delta intervals, if the peer can take them and is due: up
            // to `chunk_window` in flight, each starting after the last one
            // sent (see `next_intervals`).
            let mut deltas = Vec::new();
            if !behind && peer.acked != Some(seq) {
                let buffer = &self.buffer;
                let window = self.config.chunk_window;
                let timing = (now_ms, self.config.interval_ms, self.config.retry_ms);
                deltas = peer.next_intervals(seq, (window, budget), timing, |base| {
                    intervals
                        .entry(base)
                        .or_insert_with(|| Interval::cut(buffer, base, budget))
                        .clone()
                });
            }
            // An interval too big for one chunk (a start_many of thousands)
            // goes as a full-state transfer instead: no frame grows with a
            // batch either.
            let too_big = deltas.first().is_some_and(|(_, i)| i.bytes > budget);
            if peer.full.is_none() && (behind || periodic_full || too_big) {
                self.sessions += 1;
                peer.last_full_ms = Some(now_ms);
                // The transfer counts as a send: deltas after it wait an interval.
                peer.last_sent = Some(Sent {
                    at_ms: now_ms,
                    more: false,
                });
                peer.full = Some(Outgoing {
                    session: self.sessions,
                    seq,
                    cursor: Cursor::new(state.context().clone()),
                    next_index: 0,
                    all_cut: false,
                    in_flight: BTreeMap::new(),
                });
            }
            if let Some(full) = &mut peer.full {
                let mut parts = Vec::new();
                full.emit(now_ms, state, &self.config, &mut parts);
                out.extend(parts.into_iter().map(|m| (id.clone(), m)));
            }
            // A periodic transfer does not hold up the deltas of a peer that
            // can apply them; anything else waits for the transfer.
            if behind || too_big {
                continue;
            }
            for (base, interval) in deltas {
                peer.last_sent = Some(Sent {
                    at_ms: now_ms,
                    more: interval.to < seq,
                });
                peer.window.push_back((interval.to, now_ms));
                out.push((
                    id.clone(),
                    SyncMessage::Deltas {
                        from_seq: base + 1,
                        to_seq: interval.to,
                        delta: interval.delta,
                    },
                ));
            }
        }
        self.trim();
        out
    }

    /// The peers due for a digest (see
    /// [`AntiEntropyConfig::digest_interval_ms`]): connected, caught up
    /// with everything this node sent, and not sent one for the interval.
    /// They count as sent one now.
    pub fn digests_due(&mut self, now_ms: u64) -> Vec<ReplicaId> {
        let every = self.config.digest_interval_ms;
        if every == 0 {
            return Vec::new();
        }
        let seq = self.seq;
        let mut due = Vec::new();
        for (node, peer) in &mut self.peers {
            if peer.idle(seq)
                && peer
                    .last_digest_ms
                    .is_none_or(|t| now_ms >= t.saturating_add(every))
            {
                peer.last_digest_ms = Some(now_ms);
                due.push(ReplicaId {
                    node: node.clone(),
                    incarnation: peer.incarnation,
                });
            }
        }
        due
    }

    /// Whether to answer a digest or range from `peer` now: it is the
    /// incarnation known, caught up with everything this node sent (else
    /// the difference may be a delta on its way, and the next digest will
    /// tell), and nothing of it was answered within `interval_ms`. Counts
    /// as answered when it returns `true`.
    pub fn answer_digest(&mut self, peer: &ReplicaId, now_ms: u64) -> bool {
        let seq = self.seq;
        let interval = self.config.interval_ms;
        let Some(state) = self.peers.get_mut(&peer.node) else {
            return false;
        };
        if state.incarnation != peer.incarnation
            || !state.idle(seq)
            || state
                .last_answer_ms
                .is_some_and(|t| now_ms < t.saturating_add(interval))
        {
            return false;
        }
        state.last_answer_ms = Some(now_ms);
        true
    }

    /// Byte budget of one [`SyncMessage::Range`].
    pub fn range_budget(&self) -> usize {
        self.budget()
    }

    /// Drops the deltas every peer has (or will get in a full state in
    /// flight), then the oldest beyond `max_buffered_deltas`.
    fn trim(&mut self) {
        // A peer with no floor will get a full state anyway; with no such
        // constraint at all every buffered delta can go.
        let floor = self
            .peers
            .values()
            .filter_map(PeerState::floor)
            .min()
            .unwrap_or(self.seq);
        while self
            .buffer
            .first_key_value()
            .is_some_and(|(&k, _)| k <= floor)
        {
            self.buffer.pop_first();
        }
        while self.buffer.len() > self.config.max_buffered_deltas {
            self.buffer.pop_first();
        }
    }
}

#[cfg(test)]
mod tests;
