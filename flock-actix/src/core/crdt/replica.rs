//! One node's replica of the registry CRDT.
//!
//! A [`Replica`] owns the node's [`BirdMap`], mints dots under its
//! [`ReplicaId`] and turns mutations into deltas. It is pure: the caller
//! passes the time in.
//!
//! # What it accepts from peers
//!
//! [`Replica::join`] takes the authenticated sender with every message and
//! applies the trust rule of `trust`: claims about this replica's own dots
//! beyond what it minted refuse the message; claims about another live
//! replica's dots beyond what that replica has shown this node are cut off
//! ([`Changes::clipped_claims`]), and the sender's retransmission or a later
//! full state brings them again once that replica has shown them.
//!
//! # Restarts
//!
//! A restarted node must start with a **new, larger incarnation** (e.g. its
//! start time in milliseconds). Its counters restart at 1, so with the old
//! incarnation it would mint dots that its peers' contexts already hold, and
//! those adds would be silently dropped by every join. The old
//! incarnation's dots stay in every context until [`Replica::compact`]
//! folds them into a per-node floor, once the incarnation has been dead for
//! the fold delay (docs/ARCHITECTURE.md §4.7 argues why that is safe).

use super::dot::{Dot, NodeName, ReplicaId};
use super::map::{BirdMap, BirdSpec, Changes, Entry};
use super::trust::Trust;
use std::collections::{BTreeMap, BTreeSet};

/// Why a message was refused whole: it claims dots of this very replica
/// that it never minted. No honest peer can hold such a dot; nothing of the
/// message was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused a sync from {from:?}: it claims dots of this replica up to {claimed}, \
     but this replica minted only {minted}"
)]
pub struct ForgedOwnDots {
    /// The sender.
    pub from: ReplicaId,
    /// The highest own counter (or `u64::MAX` for a floor) it claimed.
    pub claimed: u64,
    /// The highest counter this replica minted.
    pub minted: u64,
}

/// This replica minted `u64::MAX` dots: it cannot mint another without
/// reusing one. Unreachable in practice (one add per nanosecond takes 584
/// years); the node must restart, taking a new incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this replica's dot counter is exhausted; restart the node to take a new incarnation")]
pub struct CounterExhausted;

/// What [`Replica::add_new`] did with one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Added: its entry is in the state and the delta.
    New,
    /// The name has a visible spec already (or came earlier in the batch).
    Exists,
    /// The dot counter is exhausted ([`CounterExhausted`]); nothing added.
    Exhausted,
}

/// One node's replica: its identity, its state, and a hybrid clock.
#[derive(Debug, Clone)]
pub struct Replica {
    id: ReplicaId,
    state: BirdMap,
    /// The largest timestamp minted here or seen in a join. A new add gets
    /// `max(now_ms, last_ts + 1)`, so a causally later add always carries a
    /// larger timestamp than anything this replica has seen, even if the
    /// wall clock went backwards.
    last_ts: u64,
    /// The counter of the last dot minted here.
    minted: u64,
    /// Who could have minted what, as far as this replica knows.
    trust: Trust,
    /// When each dead incarnation still in the context was first seen dead.
    dead_since: BTreeMap<ReplicaId, u64>,
    /// How long an incarnation stays dead before it is folded.
    fold_after_ms: u64,
}

/// The default fold delay: 20 minutes, four default full-sync intervals.
pub const DEFAULT_FOLD_AFTER_MS: u64 = 20 * 60 * 1000;

impl Replica {
    /// An empty replica. `id.incarnation` must be larger than any earlier
    /// incarnation of the same node (see the module docs).
    pub fn new(id: ReplicaId) -> Self {
        Self {
            trust: Trust::new(&id),
            id,
            state: BirdMap::default(),
            last_ts: 0,
            minted: 0,
            dead_since: BTreeMap::new(),
            fold_after_ms: DEFAULT_FOLD_AFTER_MS,
        }
    }

    /// Sets how long an incarnation must have been dead before
    /// [`compact`](Self::compact) folds it. It must exceed the time in which
    /// every peer sends this node its full state (see §4.7 of
    /// docs/ARCHITECTURE.md); the runtime uses four full-sync intervals.
    pub fn with_fold_after(mut self, ms: u64) -> Self {
        self.fold_after_ms = ms;
        self
    }

    /// Pretends this replica has minted `counter` dots (to test exhaustion).
    #[cfg(test)]
    pub(crate) fn set_minted(&mut self, counter: u64) {
        self.minted = counter;
        self.trust.minted(&self.id, counter);
    }

    /// This replica's identity.
    pub fn id(&self) -> &ReplicaId {
        &self.id
    }

    /// The full state (what a full sync sends).
    pub fn state(&self) -> &BirdMap {
        &self.state
    }

    /// The largest timestamp minted or seen so far.
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    /// Adds (or replaces) `name → spec` and returns the delta to ship.
    ///
    /// The delta stores `name → [(new dot, entry)]`; its context holds the
    /// new dot plus every dot of `name` this replica had observed, so the
    /// add replaces them everywhere but leaves concurrent adds alone.
    ///
    /// # Errors
    /// [`CounterExhausted`] after `u64::MAX` adds; nothing changed.
    pub fn add(
        &mut self,
        name: &str,
        spec: BirdSpec,
        now_ms: u64,
    ) -> Result<BirdMap, CounterExhausted> {
        let counter = self.minted.checked_add(1).ok_or(CounterExhausted)?;
        self.minted = counter;
        self.trust.minted(&self.id, counter);
        let ts = now_ms.max(self.last_ts.saturating_add(1));
        self.last_ts = ts;
        let dot = Dot {
            replica: self.id.clone(),
            counter,
        };
        let mut delta = self.observed(name);
        delta.ctx.insert(dot.clone());
        delta.store.insert(name, vec![(dot, Entry { spec, ts })]);
        self.state.join(&delta);
        Ok(delta)
    }

    /// Adds every `(name, spec)` whose name has no visible spec yet, as one
    /// delta (what `start_many` records): the same state, delta and
    /// outcomes as [`add`](Self::add) for each name in turn (skipping those
    /// [`BirdMap::contains`] already, or that came earlier in `birds`) with
    /// the deltas joined by [`BirdMap::join_delta`].
    ///
    /// Why not that loop: each `add` joined a one-bird delta into the
    /// state, and the caller joined it again into the batch, each join with
    /// its own hash sets and materialized copies, and the context took one
    /// dot at a time; half of a recording client's time at 1 M birds
    /// (docs/BENCHMARKS.md, stop 20). A new name holds no dot here (a full
    /// state keeps no touch markers), so its add observes nothing: its
    /// entry goes straight into the state and the delta, and the dots
    /// minted, one contiguous run, into both contexts at once.
    pub fn add_new<'a>(
        &mut self,
        birds: impl IntoIterator<Item = (&'a str, &'a BirdSpec)>,
        now_ms: u64,
    ) -> (BirdMap, Vec<Added>) {
        let mut delta = BirdMap::default();
        let before = self.minted;
        let outcomes = birds
            .into_iter()
            .map(|(name, spec)| {
                if self.state.contains(name) || delta.store.contains_key(name) {
                    return Added::Exists;
                }
                let Some(counter) = self.minted.checked_add(1) else {
                    return Added::Exhausted;
                };
                self.minted = counter;
                let ts = now_ms.max(self.last_ts.saturating_add(1));
                self.last_ts = ts;
                let dot = Dot {
                    replica: self.id.clone(),
                    counter,
                };
                let spec = spec.clone();
                let list = vec![(dot, Entry { spec, ts })];
                self.state.store.insert(name, list.clone());
                delta.store.insert(name, list);
                Added::New
            })
            .collect();
        if self.minted > before {
            self.trust.minted(&self.id, self.minted);
            delta.ctx.insert_run(&self.id, before + 1, self.minted);
            self.state.ctx.insert_run(&self.id, before + 1, self.minted);
        }
        (delta, outcomes)
    }

    /// Removes `name` and returns the delta to ship: a touch marker for
    /// `name` (empty dot list) and a context of the dots of `name` this
    /// replica had observed. Removing an absent name returns the empty delta.
    pub fn remove(&mut self, name: &str) -> BirdMap {
        let mut delta = self.observed(name);
        if delta.ctx.is_empty() {
            return BirdMap::default();
        }
        delta.store.insert(name, Vec::new());
        self.state.join(&delta);
        delta
    }

    /// Joins a state or delta that the authenticated peer `from` sent,
    /// under the trust rule (module docs): only what it may claim is joined;
    /// [`Changes::clipped_claims`] says whether anything was cut off (then
    /// do not acknowledge a delta, so that it is sent again). Advances the
    /// hybrid clock past every timestamp joined.
    ///
    /// # Errors
    /// [`ForgedOwnDots`] if the message claims dots of this replica beyond
    /// what it minted; nothing was applied.
    pub fn join(&mut self, from: &ReplicaId, other: &BirdMap) -> Result<Changes, ForgedOwnDots> {
        self.join_impl(from, other, false)
    }

    /// [`join`](Self::join) whose state join always scans: the reference
    /// the fast path is tested against.
    #[cfg(test)]
    pub(crate) fn join_with_full_scan(
        &mut self,
        from: &ReplicaId,
        other: &BirdMap,
    ) -> Result<Changes, ForgedOwnDots> {
        self.join_impl(from, other, true)
    }

    fn join_impl(
        &mut self,
        from: &ReplicaId,
        other: &BirdMap,
        force_scan: bool,
    ) -> Result<Changes, ForgedOwnDots> {
        let clipped = self.admit(from, other)?;
        Ok(self.join_admitted(other, clipped, force_scan))
    }

    /// [`join`](Self::join) of a whole state taken by value: into an empty
    /// store (a node that joins the cluster) it is moved in rather than
    /// rebuilt name by name (`BirdMap::join_owned`). The state is given
    /// back when it was not moved in (claims cut off, or a store already
    /// holding names), e.g. to be parked and joined again later.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn join_owned(
        &mut self,
        from: &ReplicaId,
        other: BirdMap,
    ) -> Result<(Changes, Option<BirdMap>), ForgedOwnDots> {
        let clipped = self.admit(from, &other)?;
        if clipped || !self.state.store.is_empty() {
            let changes = self.join_admitted(&other, clipped, false);
            return Ok((changes, Some(other)));
        }
        self.last_ts = self.last_ts.max(other.max_ts());
        Ok((self.state.join_owned(other), None))
    }

    /// The trust rule's checks before a join: refuses forged own dots,
    /// takes what the sender shows of its own, and says whether claims
    /// must be cut off.
    fn admit(&mut self, from: &ReplicaId, other: &BirdMap) -> Result<bool, ForgedOwnDots> {
        let claimed = other.max_counter_of(&self.id);
        if claimed > self.minted {
            return Err(ForgedOwnDots {
                from: from.clone(),
                claimed,
                minted: self.minted,
            });
        }
        self.trust.vouch(from, other);
        Ok(!other.within(&self.trust))
    }

    fn join_admitted(&mut self, other: &BirdMap, clipped: bool, force_scan: bool) -> Changes {
        let restricted;
        let accepted = if clipped {
            restricted = other.restrict(&self.trust);
            &restricted
        } else {
            other
        };
        self.last_ts = self.last_ts.max(accepted.max_ts());
        let mut changes = if force_scan {
            self.state.join_with_full_scan(accepted)
        } else {
            self.state.join(accepted)
        };
        changes.clipped = clipped;
        changes
    }

    /// Takes what `from` shows about its own dots in `msg` (a part of a full
    /// state, which is joined only once all its parts are in) as vouched
    /// for now: claims of other peers about those dots, cut off and parked
    /// until `from` showed them, may apply at once. Returns whether trust
    /// grew. The sender speaks only for its own dots, exactly as a join of
    /// `msg` would take them.
    pub fn vouch(&mut self, from: &ReplicaId, msg: &BirdMap) -> bool {
        self.trust.vouch(from, msg)
    }

    /// The link to `node` is down: claims about its dots that peers relay
    /// are accepted until it speaks again (see the trust rule).
    pub fn peer_down(&mut self, node: &str) {
        self.trust.down(node);
    }

    /// The newest known incarnation of `node` will never mint again (it
    /// left the cluster for good; this node's own name is ignored): claims
    /// about its dots are accepted in full from now on.
    pub fn retire(&mut self, node: &str) {
        self.trust.retire(node);
    }

    /// `replica` is alive (a link to it came up): every older incarnation
    /// of its node is dead, and claims about their dots are accepted in
    /// full from now on.
    pub fn saw(&mut self, replica: &ReplicaId) {
        self.trust.saw_incarnation(replica);
    }

    /// Folds dead incarnations into their node's floor once they have been
    /// dead for the fold delay, and returns the fold as a delta to ship
    /// (empty if nothing folded). Call it on a timer with the current time.
    ///
    /// An incarnation is dead once a newer incarnation of its node has
    /// spoken to this node ([`saw`](Self::saw), or any message from it).
    /// A node's floor rises past its dead incarnations in order, and stops
    /// at the first one still within the delay or alive.
    pub fn compact(&mut self, now_ms: u64) -> BirdMap {
        let mut by_node: BTreeMap<NodeName, Vec<ReplicaId>> = BTreeMap::new();
        for r in self.state.ctx.replicas() {
            by_node.entry(r.node.clone()).or_default().push(r.clone());
        }
        let present: BTreeSet<&ReplicaId> = by_node.values().flatten().collect();
        self.dead_since.retain(|r, _| present.contains(r));
        let mut delta = BirdMap::default();
        for (node, mut incarnations) in by_node {
            incarnations.sort_by_key(|r| r.incarnation);
            // Every dead incarnation starts its delay when first seen dead,
            // whether or not an older one is still waiting.
            for r in incarnations.iter().filter(|r| self.trust.is_dead(r)) {
                self.dead_since.entry(r.clone()).or_insert(now_ms);
            }
            let ready = |r: &ReplicaId| {
                self.dead_since
                    .get(r)
                    .is_some_and(|&since| now_ms.saturating_sub(since) >= self.fold_after_ms)
            };
            let floor = incarnations
                .iter()
                .take_while(|r| ready(r))
                .last()
                .map_or(0, |r| r.incarnation.saturating_add(1));
            if floor > self.state.ctx.floor(&node) {
                delta.ctx.raise_floor(&node, floor);
            }
        }
        if delta.is_empty() {
            return delta;
        }
        // The fold carries the adds of the folded incarnations still stored:
        // a context without them would remove them (a state's context says
        // that the dots it has seen but does not store were removed).
        for (name, list) in self.state.store.iter() {
            if !list.iter().any(|(d, _)| delta.ctx.folds(&d.replica)) {
                continue;
            }
            let folded: Vec<(Dot, Entry)> = list
                .into_iter()
                .filter(|(d, _)| delta.ctx.folds(&d.replica))
                .collect();
            delta.store.insert(name, folded);
        }
        self.state.join(&delta);
        self.dead_since.retain(|r, _| !delta.ctx.folds(r));
        delta
    }

    /// A delta with an empty store whose context is the dots of `name` held here.
    fn observed(&self, name: &str) -> BirdMap {
        let mut delta = BirdMap::default();
        for dot in self.state.store.dots_of(name) {
            delta.ctx.insert(dot);
        }
        delta
    }
}
