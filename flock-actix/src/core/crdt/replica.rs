//! One node's replica of the registry CRDT.
//!
//! A [`Replica`] owns the node's [`BirdMap`], mints dots under its
//! [`ReplicaId`] and turns mutations into deltas. It is pure: the caller
//! passes the time in.
//!
//! # Restarts
//!
//! A restarted node must start with a **new, larger incarnation** (e.g. its
//! start time in milliseconds). Its counters restart at 1, so with the old
//! incarnation it would mint dots that its peers' contexts already hold, and
//! those adds would be silently dropped by every join. The old incarnation's
//! dots stay in every context forever (one version-vector entry per dead
//! incarnation); garbage-collecting dead incarnations is future work.

use super::dot::{Dot, ReplicaId};
use super::map::{BirdMap, BirdSpec, Changes, Entry};

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
}

impl Replica {
    /// An empty replica. `id.incarnation` must be larger than any earlier
    /// incarnation of the same node (see the module docs).
    pub fn new(id: ReplicaId) -> Self {
        Self {
            id,
            state: BirdMap::default(),
            last_ts: 0,
        }
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
    pub fn add(&mut self, name: &str, spec: BirdSpec, now_ms: u64) -> BirdMap {
        let ts = now_ms.max(self.last_ts.saturating_add(1));
        self.last_ts = ts;
        // Our own dots are minted in order and always joined locally, so the
        // context's maximum is the last one we minted (also right if a state
        // holding our dots was joined in).
        let dot = Dot {
            replica: self.id.clone(),
            counter: self.state.ctx.max_counter(&self.id) + 1,
        };
        let mut delta = self.observed(name);
        delta.ctx.insert(dot.clone());
        delta
            .store
            .insert(name.to_owned(), vec![(dot, Entry { spec, ts })]);
        self.state.join(&delta);
        delta
    }

    /// Removes `name` and returns the delta to ship: a touch marker for
    /// `name` (empty dot list) and a context of the dots of `name` this
    /// replica had observed. Removing an absent name returns the empty delta.
    pub fn remove(&mut self, name: &str) -> BirdMap {
        let mut delta = self.observed(name);
        if delta.ctx.is_empty() {
            return BirdMap::default();
        }
        delta.store.insert(name.to_owned(), Vec::new());
        self.state.join(&delta);
        delta
    }

    /// Joins a remote state or delta and advances the hybrid clock past
    /// every timestamp it carries.
    pub fn join(&mut self, other: &BirdMap) -> Changes {
        self.last_ts = self.last_ts.max(other.max_ts());
        self.state.join(other)
    }

    /// A delta with an empty store whose context is the dots of `name` held here.
    fn observed(&self, name: &str) -> BirdMap {
        let mut delta = BirdMap::default();
        for (dot, _) in self.state.store.get(name).into_iter().flatten() {
            delta.ctx.insert(dot.clone());
        }
        delta
    }
}
