//! The causal context: which dots a state has seen.
//!
//! A context is a *set* of dots, stored compactly as a version vector plus a
//! dot cloud. Compaction is exact: the representation always denotes exactly
//! the dots inserted or joined, never more. That is what makes it sound to
//! join deltas out of order (a dot seen early waits in the cloud until the
//! gap before it fills) and it is what keeps a long-lived context small (once
//! every dot of a replica up to `n` is seen, the whole prefix is one number).

use super::dot::{Dot, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A set of dots, stored compactly as a version vector (every dot `1..=n` of a
/// replica) plus a dot cloud (the dots seen out of order).
///
/// Invariant after every mutation through the methods below (the canonical
/// form): no version-vector entry is 0, and no cloud dot of a replica `r` has
/// a counter `<= vv[r] + 1` (it would have been absorbed). Two contexts that
/// denote the same set therefore compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    /// `replica → n`: every dot `(replica, 1..=n)` is in the context.
    pub(crate) vv: BTreeMap<ReplicaId, u64>,
    /// Dots in the context that the version vector does not cover yet.
    pub(crate) cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `dot` is in the context.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.vv.get(&dot.replica).is_some_and(|&n| dot.counter <= n) || self.cloud.contains(dot)
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

    /// Set union with `other`, compacted. Returns whether the set grew.
    pub fn join(&mut self, other: &CausalContext) -> bool {
        let mut grew = false;
        for (replica, &n) in &other.vv {
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
            if !self.contains(dot) {
                self.cloud.insert(dot.clone());
                grew = true;
            }
        }
        // Only replicas `other` mentions can have become compactable.
        let mut touched: Vec<&ReplicaId> = other.vv.keys().collect();
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

    /// The highest counter of `replica` in the context (0 if none).
    pub fn max_counter(&self, replica: &ReplicaId) -> u64 {
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
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Number of version-vector entries (replicas with a contiguous prefix).
    pub fn len_vv(&self) -> usize {
        self.vv.len()
    }

    /// Number of dots held out of order in the cloud.
    pub fn len_cloud(&self) -> usize {
        self.cloud.len()
    }

    /// Number of dots the context denotes (saturating). Cheap: it sums the
    /// version vector, it does not enumerate.
    pub fn dot_count(&self) -> u64 {
        self.vv
            .values()
            .fold(self.cloud.len() as u64, |acc, &n| acc.saturating_add(n))
    }

    /// Every dot in the context. Costs [`dot_count`](Self::dot_count) steps,
    /// so use it only on small contexts (deltas).
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
            if first.counter > n + 1 {
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
