//! The causal context: which dots a state has seen.
//!
//! A context is a *set* of dots, stored compactly as a version vector plus a
//! dot cloud. Compaction is exact: the representation always denotes exactly
//! the dots inserted or joined, never more. That is what makes it sound to
//! join deltas out of order (a dot seen early waits in the cloud until the
//! gap before it fills) and it is what keeps a long-lived context small (once
//! every dot of a replica up to `n` is seen, the whole prefix is one number).

use super::dot::{Dot, NodeName, ReplicaId};
use super::trust::Trust;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A set of dots, stored compactly as a version vector (every dot `1..=n` of a
/// replica) plus a dot cloud (the dots seen out of order), plus per node a
/// floor below which every incarnation is folded away (see
/// [`Replica::compact`](super::Replica::compact)).
///
/// Invariant after every mutation through the methods below (the canonical
/// form): no version-vector entry or floor is 0, no cloud dot of a replica
/// `r` has a counter `<= vv[r] + 1` (it would have been absorbed), and no
/// version-vector entry or cloud dot belongs to an incarnation below its
/// node's floor. Two contexts that denote the same set therefore compare
/// equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    /// `replica → n`: every dot `(replica, 1..=n)` is in the context.
    pub(crate) vv: BTreeMap<ReplicaId, u64>,
    /// Dots in the context that the version vector does not cover yet.
    pub(crate) cloud: BTreeSet<Dot>,
    /// `node → f`: every dot of every incarnation `< f` of `node` is in the
    /// context (the folded, dead incarnations). Last field, and left out of
    /// the encoding while empty, so a context without folds encodes exactly
    /// as before floors existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) floors: BTreeMap<NodeName, u64>,
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `dot` is in the context.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.folds(&dot.replica)
            || self.vv.get(&dot.replica).is_some_and(|&n| dot.counter <= n)
            || self.cloud.contains(dot)
    }

    /// Whether the dot `(replica, counter)` is in the context (no `Dot` made).
    pub(crate) fn contains_dot(&self, replica: &ReplicaId, counter: u64) -> bool {
        self.folds(replica)
            || self.vv.get(replica).is_some_and(|&n| counter <= n)
            || self.cloud.contains(&Dot {
                replica: replica.clone(),
                counter,
            })
    }

    /// Whether every dot of `replica` is in the context through its node's floor.
    pub fn folds(&self, replica: &ReplicaId) -> bool {
        self.floors
            .get(&replica.node)
            .is_some_and(|&f| replica.incarnation < f)
    }

    /// The floor of `node`: every incarnation below it is folded (0: none).
    pub fn floor(&self, node: &str) -> u64 {
        self.floors.get(node).copied().unwrap_or(0)
    }

    /// Adds `dot`, absorbing it (and any cloud dots that become contiguous)
    /// into the version vector when it extends the replica's prefix.
    pub fn insert(&mut self, dot: Dot) {
        if self.contains(&dot) {
            return;
        }
        let replica = dot.replica.clone();
        self.cloud.insert(dot);
        self.compact_replica(&replica);
    }

    /// Adds the dots `from..=to` of `replica` (a run minted in one go):
    /// the same set as inserting each, without a compaction per dot.
    pub(crate) fn insert_run(&mut self, replica: &ReplicaId, from: u64, to: u64) {
        if from > to || self.folds(replica) {
            return;
        }
        let n = self.vv.get(replica).copied().unwrap_or(0);
        if from <= n.saturating_add(1) {
            if to > n {
                self.vv.insert(replica.clone(), to);
            }
        } else {
            self.cloud.extend((from..=to).map(|counter| Dot {
                replica: replica.clone(),
                counter,
            }));
        }
        self.compact_replica(replica);
    }

    /// Set union with `other`, compacted. Returns whether the set grew.
    pub fn join(&mut self, other: &CausalContext) -> bool {
        let mut grew = false;
        for (node, &f) in &other.floors {
            if f > self.floor(node) {
                self.raise_floor(node, f);
                grew = true;
            }
        }
        for (replica, &n) in &other.vv {
            if self.folds(replica) {
                continue;
            }
            let mine = self.vv.entry(replica.clone()).or_insert(0);
            if n > *mine {
                // The prefix grew, unless the cloud already held all of it;
                // the count below is exact because cloud dots lie above the prefix.
                let already = self
                    .cloud
                    .range(replica_range(replica))
                    .take_while(|d| d.counter <= n)
                    .count() as u64;
                grew |= n - *mine > already;
                *mine = n;
            }
        }
        for dot in &other.cloud {
            if self.contains(dot) {
                continue;
            }
            grew = true;
            // The next dot of a prefix extends it at once: a delta of a
            // batch of starts is one run of cloud dots, and putting each
            // into the cloud to absorb it again cost three B-tree
            // operations per dot. (Canonical again below: the touched
            // replicas are compacted.)
            if let Some(n) = self.vv.get_mut(&dot.replica)
                && dot.counter == n.saturating_add(1)
            {
                *n = dot.counter;
                continue;
            }
            self.cloud.insert(dot.clone());
        }
        // Only replicas `other` mentions can have become compactable.
        let mut touched: Vec<&ReplicaId> = other.vv.keys().filter(|r| !self.folds(r)).collect();
        let mut last: Option<&ReplicaId> = None;
        for dot in &other.cloud {
            if last != Some(&dot.replica) {
                touched.push(&dot.replica);
                last = Some(&dot.replica);
            }
        }
        for replica in touched {
            self.compact_replica(replica);
        }
        grew
    }

    /// Folds every incarnation of `node` below `floor` into the floor:
    /// their version-vector entries and cloud dots are covered by it.
    pub(crate) fn raise_floor(&mut self, node: &NodeName, floor: u64) {
        if floor <= self.floor(node) {
            return;
        }
        self.floors.insert(node.clone(), floor);
        let below = |r: &ReplicaId| r.node == *node && r.incarnation < floor;
        self.vv.retain(|r, _| !below(r));
        self.cloud.retain(|d| !below(&d.replica));
    }

    /// The replicas with dots in the version vector or the cloud, each once.
    pub(crate) fn replicas(&self) -> impl Iterator<Item = &ReplicaId> + '_ {
        let mut last: Option<&ReplicaId> = None;
        let cloud = self.cloud.iter().map(|d| &d.replica).filter(move |r| {
            let new = last != Some(*r);
            last = Some(*r);
            new
        });
        self.vv
            .keys()
            .chain(cloud.filter(|r| !self.vv.contains_key(*r)))
    }

    /// Whether every dot and floor lies within what `trust` accepts now.
    pub(crate) fn within(&self, trust: &Trust) -> bool {
        self.vv.iter().all(|(r, &n)| n <= trust.limit(r))
            && self
                .cloud
                .iter()
                .all(|d| d.counter <= trust.limit(&d.replica))
            && self
                .floors
                .iter()
                .all(|(node, &f)| f <= trust.floor_limit(node))
    }

    /// The subset of the context that `trust` accepts now: each replica's
    /// dots up to its limit, each floor up to its limit. Still canonical
    /// (lowering a prefix or a floor never makes a cloud dot absorbable).
    pub(crate) fn restrict(&self, trust: &Trust) -> CausalContext {
        let mut out = CausalContext::new();
        for (node, &f) in &self.floors {
            let f = f.min(trust.floor_limit(node));
            if f > 0 {
                out.floors.insert(node.clone(), f);
            }
        }
        for (r, &n) in &self.vv {
            let n = n.min(trust.limit(r));
            if n > 0 {
                out.vv.insert(r.clone(), n);
            }
        }
        out.cloud = self
            .cloud
            .iter()
            .filter(|d| d.counter <= trust.limit(&d.replica))
            .cloned()
            .collect();
        out
    }

    /// The highest counter of `replica` in the context (0 if none;
    /// `u64::MAX` if a floor folds it).
    pub fn max_counter(&self, replica: &ReplicaId) -> u64 {
        if self.folds(replica) {
            return u64::MAX;
        }
        let from_vv = self.vv.get(replica).copied().unwrap_or(0);
        let from_cloud = self
            .cloud
            .range(replica_range(replica))
            .next_back()
            .map_or(0, |d| d.counter);
        from_vv.max(from_cloud)
    }

    /// Whether the context holds no dot.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty() && self.floors.is_empty()
    }

    /// Number of floors (nodes with folded incarnations).
    pub fn len_floors(&self) -> usize {
        self.floors.len()
    }

    /// Number of version-vector entries (replicas with a contiguous prefix).
    pub fn len_vv(&self) -> usize {
        self.vv.len()
    }

    /// Number of dots held out of order in the cloud.
    pub fn len_cloud(&self) -> usize {
        self.cloud.len()
    }

    /// Number of dots the context denotes (saturating; `u64::MAX` with any
    /// floor, which denotes unboundedly many). Cheap: it sums the version
    /// vector, it does not enumerate.
    pub fn dot_count(&self) -> u64 {
        if !self.floors.is_empty() {
            return u64::MAX;
        }
        self.vv
            .values()
            .fold(self.cloud.len() as u64, |acc, &n| acc.saturating_add(n))
    }

    /// Every dot in the version vector and the cloud (floors, which denote
    /// unboundedly many, are not enumerated). Costs
    /// [`dot_count`](Self::dot_count) steps, so use it only on small
    /// contexts (deltas).
    pub fn dots(&self) -> impl Iterator<Item = Dot> + '_ {
        self.vv
            .iter()
            .flat_map(|(replica, &n)| {
                (1..=n).map(move |counter| Dot {
                    replica: replica.clone(),
                    counter,
                })
            })
            .chain(self.cloud.iter().cloned())
    }

    /// Restores the canonical form for one replica: drops cloud dots the
    /// version vector covers and absorbs those contiguous with it.
    fn compact_replica(&mut self, replica: &ReplicaId) {
        let mut n = self.vv.get(replica).copied().unwrap_or(0);
        while let Some(first) = self.cloud.range(replica_range(replica)).next() {
            if first.counter > n.saturating_add(1) {
                break;
            }
            n = n.max(first.counter);
            let first = first.clone();
            self.cloud.remove(&first);
        }
        if n > 0 {
            self.vv.insert(replica.clone(), n);
        } else {
            self.vv.remove(replica);
        }
    }
}

/// All possible dots of `replica`, as a range of the cloud's ordering
/// (`Dot` orders by replica first, then counter).
fn replica_range(replica: &ReplicaId) -> std::ops::RangeInclusive<Dot> {
    Dot {
        replica: replica.clone(),
        counter: 0,
    }..=Dot {
        replica: replica.clone(),
        counter: u64::MAX,
    }
}
