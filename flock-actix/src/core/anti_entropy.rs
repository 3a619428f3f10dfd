//! Anti-entropy bookkeeping: which of our deltas each peer still needs, and
//! whether to send it deltas or the full state.
//!
//! Pure and clock-free: the runtime calls [`AntiEntropy::record`] after every
//! local mutation, [`AntiEntropy::poll`] on a timer and sends what it
//! returns, and [`AntiEntropy::on_ack`] when a peer acknowledges. The
//! receiving side needs no bookkeeping: it joins the delta or state into its
//! [`Replica`](crate::core::crdt::Replica) and acknowledges `to_seq` (for
//! [`SyncMessage::Deltas`]) or `seq` (for [`SyncMessage::Full`]).
//!
//! # Protocol
//!
//! Local deltas are numbered `1, 2, …` (`seq`) and buffered. A peer that has
//! acknowledged `acked` gets the buffered deltas `acked+1..=seq` joined into
//! one delta interval. A peer that is new, restarted (new incarnation), or
//! whose `acked+1` has left the buffer (it overflowed `max_buffered_deltas`)
//! gets the full state instead, tagged with the current `seq`. Deltas every
//! peer has acknowledged are dropped from the buffer.
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
//! guaranteed to agree. It costs one full state per peer per interval; a
//! digest exchange that sends the state only when digests differ is future
//! work.
//!
//! A peer that goes down keeps its place: it still holds back trimming (up
//! to `max_buffered_deltas`), so a short disconnect resumes with deltas.
//!
//! Retransmission: a peer that has everything it was sent is left alone
//! until there is something new; unacknowledged data is re-sent after
//! `retry_ms`. A re-sent interval may duplicate deltas the peer already
//! joined; joins are idempotent, so that only costs bandwidth (and possibly
//! a store scan at the receiver, see [`crate::core::crdt::map`]).

use crate::core::crdt::{BirdMap, NodeName, ReplicaId};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        Self {
            interval_ms: 200,
            retry_ms: 2_000,
            max_buffered_deltas: 10_000,
            full_sync_interval_ms: 300_000,
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
    /// The sender's full state, which includes all its deltas `..=seq`.
    /// Acknowledge with `seq`.
    Full {
        /// The sender's delta sequence number when the state was taken.
        seq: u64,
        /// The full state.
        state: BirdMap,
    },
}

/// What we know about one peer.
#[derive(Debug, Clone)]
struct PeerState {
    incarnation: u64,
    connected: bool,
    /// Highest seq the peer acknowledged; `None` until it acknowledges a
    /// full state (it needs one).
    acked: Option<u64>,
    /// The last send: its time, the seq it covered, whether it was a full state.
    last_sent: Option<Sent>,
    /// When the last full state was sent (for the periodic full sync).
    last_full_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    at_ms: u64,
    upto: u64,
    full: bool,
}

impl PeerState {
    fn new(incarnation: u64) -> Self {
        Self {
            incarnation,
            connected: true,
            acked: None,
            last_sent: None,
            last_full_ms: None,
        }
    }

    /// The seq below which this peer needs no buffered delta: what it
    /// acknowledged or, while a full state is in flight, that state's seq.
    fn floor(&self) -> Option<u64> {
        let pending_full = self.last_sent.filter(|s| s.full).map(|s| s.upto);
        match (self.acked, pending_full) {
            (Some(a), Some(p)) => Some(a.max(p)),
            (a, p) => a.or(p),
        }
    }
}

/// Per-peer delta bookkeeping for one node. See the module docs.
#[derive(Debug, Clone)]
pub struct AntiEntropy {
    config: AntiEntropyConfig,
    /// Sequence number of the last recorded delta (0: none yet).
    seq: u64,
    /// Recorded deltas not yet acknowledged by every peer; contiguous keys.
    buffer: BTreeMap<u64, BirdMap>,
    peers: BTreeMap<NodeName, PeerState>,
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

    /// Buffers a local delta and returns its sequence number. An empty delta
    /// (e.g. removing an absent name) is not buffered; the current seq is
    /// returned.
    pub fn record(&mut self, delta: BirdMap) -> u64 {
        if delta.is_empty() {
            return self.seq;
        }
        self.seq += 1;
        self.buffer.insert(self.seq, delta);
        self.trim();
        self.seq
    }

    /// A peer connected. A new node, or a new incarnation of a known one,
    /// needs the full state; a reconnect of the same incarnation resumes
    /// from what it acknowledged (and is due at once). An older incarnation
    /// than the one known is ignored (a stale announcement).
    pub fn peer_up(&mut self, peer: &ReplicaId) {
        match self.peers.get_mut(&peer.node) {
            Some(known) if known.incarnation == peer.incarnation => {
                known.connected = true;
                known.last_sent = None;
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

    /// A peer acknowledged everything up to `seq`. Returns whether the ack
    /// was applied: acks from an unknown node or another incarnation, and
    /// acks beyond our `seq`, are ignored; older acks are harmless.
    pub fn on_ack(&mut self, peer: &ReplicaId, seq: u64) -> bool {
        let Some(state) = self.peers.get_mut(&peer.node) else {
            return false;
        };
        if state.incarnation != peer.incarnation || seq > self.seq {
            return false;
        }
        // A peer that needs a full state is only caught up by the ack of
        // one: a late ack of older deltas must not end the wait.
        if state.acked.is_none() && !state.last_sent.is_some_and(|s| s.full && seq >= s.upto) {
            return false;
        }
        state.acked = Some(state.acked.map_or(seq, |a| a.max(seq)));
        self.trim();
        true
    }

    /// What to send now: for every connected peer that is due (at least
    /// `interval_ms` since the last send) and has something unacknowledged,
    /// either its delta interval or, if it needs one, the full `state`.
    /// `state` must include every recorded delta.
    pub fn poll(&mut self, now_ms: u64, state: &BirdMap) -> Vec<(ReplicaId, SyncMessage)> {
        let mut out = Vec::new();
        // Peers at the same `acked` share one joined interval.
        let mut intervals: HashMap<u64, BirdMap> = HashMap::new();
        let first_buffered = self.buffer.first_key_value().map(|(&k, _)| k);
        for (node, peer) in &mut self.peers {
            if !peer.connected {
                continue;
            }
            let periodic_full = peer
                .last_full_ms
                .is_some_and(|t| now_ms >= t.saturating_add(self.config.full_sync_interval_ms));
            // A new peer gets the full state even at seq 0: the state may
            // hold what we learnt from others.
            if peer.acked == Some(self.seq) && !periodic_full {
                continue;
            }
            let (due, retry) = match peer.last_sent {
                None => (true, true),
                Some(s) => (
                    now_ms >= s.at_ms.saturating_add(self.config.interval_ms),
                    now_ms >= s.at_ms.saturating_add(self.config.retry_ms),
                ),
            };
            if !due {
                continue;
            }
            let needs_full = periodic_full
                || match peer.acked {
                    None => true,
                    // The buffer holds a contiguous run; the peer needs acked+1 onwards.
                    Some(acked) => {
                        acked < self.seq && first_buffered.is_none_or(|first| first > acked + 1)
                    }
                };
            let id = ReplicaId {
                node: node.clone(),
                incarnation: peer.incarnation,
            };
            if needs_full {
                // A full state in flight is only re-sent on retry: states are big.
                let pending = peer
                    .last_sent
                    .is_some_and(|s| s.full && peer.acked.is_none_or(|a| a < s.upto));
                if pending && !retry && !periodic_full {
                    continue;
                }
                peer.last_full_ms = Some(now_ms);
                peer.last_sent = Some(Sent {
                    at_ms: now_ms,
                    upto: self.seq,
                    full: true,
                });
                out.push((
                    id,
                    SyncMessage::Full {
                        seq: self.seq,
                        state: state.clone(),
                    },
                ));
            } else {
                let acked = peer.acked.unwrap_or(0);
                let new_data = peer.last_sent.is_none_or(|s| s.full || s.upto < self.seq);
                if !new_data && !retry {
                    continue;
                }
                let buffer = &self.buffer;
                let delta = intervals
                    .entry(acked)
                    .or_insert_with(|| {
                        let mut interval = BirdMap::default();
                        for delta in buffer.range(acked + 1..).map(|(_, d)| d) {
                            interval.join_delta(delta);
                        }
                        interval
                    })
                    .clone();
                peer.last_sent = Some(Sent {
                    at_ms: now_ms,
                    upto: self.seq,
                    full: false,
                });
                out.push((
                    id,
                    SyncMessage::Deltas {
                        from_seq: acked + 1,
                        to_seq: self.seq,
                        delta,
                    },
                ));
            }
        }
        self.trim();
        out
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
