//! Cutting a local delta too big for one frame into smaller deltas, each
//! joinable on its own, so that no delta a peer is sent grows with a batch.
//!
//! # Why a part of a delta can be joined alone
//!
//! A part of a *full state* cannot (see [`super::chunk`]): its context
//! speaks for names it does not list. A delta is different because its
//! dots are of two sorts: *live* (an entry in its store) and *removed* (in
//! its context only). [`split`] puts each name, with its whole dot list,
//! in one part whose context holds exactly those dots; the removed dots
//! (and touch markers) go after every name. So no part's context holds a
//! live dot whose entry it lacks (a join would read that as a remove), each
//! part is below the delta in the lattice, and the parts join back to it.
//!
//! # Order
//!
//! The parts are recorded as consecutive sequence numbers, and a peer is
//! always sent an interval that starts at the first delta it has not
//! acknowledged (see [`super::AntiEntropy::poll`]), so it joins them in
//! order: the adds of a delta before its removals. A name whose entry
//! replaces dots of another entry (a re-add) may briefly show both entries
//! between two parts; the conflict rule picks the same winner everywhere.
//!
//! A delta whose removed dots cannot be listed cheaply (a folded context,
//! or far more context dots than entries) is left whole; the caller falls
//! back to a chunked full-state transfer for it.

use super::chunk::{dot_bound, name_bound, size_bound, str_bound};
use crate::core::crdt::{BirdMap, Dot};
use std::collections::HashSet;

/// Most removed dots a split lists beyond twice the live ones.
const MAX_REMOVED_LISTED: u64 = 100_000;

/// Cuts `delta` into parts of at most `budget` bytes of items each (an item
/// bigger than the budget travels alone); a delta within the budget, or one
/// that cannot be cut (see the module docs), comes back whole.
pub(crate) fn split(delta: BirdMap, budget: usize) -> Vec<BirdMap> {
    if size_bound(&delta) <= budget {
        return vec![delta];
    }
    let live = delta.store.dot_count() as u64;
    if !delta.ctx.floors.is_empty()
        || delta.ctx.dot_count() > live.saturating_mul(2).saturating_add(MAX_REMOVED_LISTED)
    {
        return vec![delta];
    }
    let live_dots: HashSet<Dot> = delta.store.all_dots().collect();
    let removed: Vec<Dot> = delta
        .ctx
        .dots()
        .filter(|dot| !live_dots.contains(dot))
        .collect();
    drop(live_dots);
    let mut cutter = Cutter::new(budget);
    let mut markers = Vec::new();
    for (name, list) in delta.store.iter() {
        if list.is_empty() {
            markers.push(name);
            continue;
        }
        // Each dot is encoded twice: in the list and in the context.
        let cost = name_bound(name, &list) + list.iter().map(|(d, _)| dot_bound(d)).sum::<usize>();
        let part = cutter.room_for(cost);
        for (dot, _) in &list {
            part.ctx.insert(dot.clone());
        }
        part.store.insert(name, list);
    }
    for name in markers {
        let part = cutter.room_for(str_bound(name.len()) + 5);
        part.store.insert(name, Vec::new());
    }
    for dot in removed {
        let part = cutter.room_for(dot_bound(&dot));
        part.ctx.insert(dot);
    }
    cutter.finish()
}

/// Fills parts up to the budget, in order.
struct Cutter {
    budget: usize,
    done: Vec<BirdMap>,
    part: BirdMap,
    used: usize,
}

impl Cutter {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            done: Vec::new(),
            part: BirdMap::default(),
            used: 0,
        }
    }

    /// The part an item of `cost` bytes goes into: the current one if it
    /// fits (or is empty), else a fresh one.
    fn room_for(&mut self, cost: usize) -> &mut BirdMap {
        if self.used > 0 && self.used.saturating_add(cost) > self.budget {
            self.done.push(std::mem::take(&mut self.part));
            self.used = 0;
        }
        self.used = self.used.saturating_add(cost);
        &mut self.part
    }

    fn finish(mut self) -> Vec<BirdMap> {
        if self.used > 0 {
            self.done.push(self.part);
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crdt::{BirdSpec, Replica, ReplicaId};
    use proptest::prelude::*;

    fn replica(name: &str) -> Replica {
        Replica::new(ReplicaId {
            node: name.into(),
            incarnation: 1,
        })
    }

    fn spec(k: u8) -> BirdSpec {
        BirdSpec {
            kind: "kind".into(),
            args: vec![k; usize::from(k % 40)],
        }
    }

    proptest! {
        /// Any batch of adds and removes, cut at any budget: every part fits
        /// (or is a single item), and joining the parts in order into any
        /// replica gives what joining the whole delta gives.
        #[test]
        fn parts_joined_in_order_equal_the_whole_delta(
            adds in prop::collection::vec((0u16..400, any::<u8>()), 1..300),
            removes in prop::collection::vec(0u16..400, 0..60),
            before in prop::collection::vec(0u16..400, 0..50),
            budget in 256usize..4096,
        ) {
            let mut a = replica("a");
            let mut b = replica("b");
            // Some names the receiver already has from a.
            let mut base = BirdMap::default();
            for n in &before {
                if let Ok(d) = a.add(&format!("bird-{n}"), spec(1), 1) {
                    base.join_delta(&d);
                }
            }
            b.join(a.id(), &base).unwrap();
            let mut delta = BirdMap::default();
            for (n, k) in &adds {
                delta.join_delta(&a.add(&format!("bird-{n}"), spec(*k), 2).unwrap());
            }
            for n in &removes {
                delta.join_delta(&a.remove(&format!("bird-{n}")));
            }
            let mut whole = b.clone();
            whole.join(a.id(), &delta).unwrap();
            let parts = split(delta, budget);
            for part in &parts {
                let items = part.store.len() + part.ctx.len_cloud() + part.ctx.len_vv();
                prop_assert!(size_bound(part) <= budget || items <= 2, "a part over budget");
                b.join(a.id(), part).unwrap();
            }
            prop_assert_eq!(b.state(), whole.state());
            prop_assert_eq!(b.state(), a.state());
        }
    }

    #[test]
    fn a_delta_within_the_budget_stays_whole() {
        let mut a = replica("a");
        let delta = a.add("x", spec(1), 0).unwrap();
        assert_eq!(split(delta.clone(), 4096), vec![delta]);
    }
}
