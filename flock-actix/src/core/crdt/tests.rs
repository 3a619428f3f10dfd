//! Laws and behaviours of the registry CRDT.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn rid(node: &str, incarnation: u64) -> ReplicaId {
    ReplicaId {
        node: node.into(),
        incarnation,
    }
}

pub(super) fn dot(node: &str, incarnation: u64, counter: u64) -> Dot {
    Dot {
        replica: rid(node, incarnation),
        counter,
    }
}

pub(super) fn spec(k: u8) -> BirdSpec {
    BirdSpec {
        kind: format!("kind{k}"),
        args: vec![k],
    }
}

pub(super) const NAMES: [&str; 4] = ["a", "b", "c", "d"];
pub(super) const NODES: [&str; 3] = ["n1", "n2", "n3"];

pub(super) fn visible(map: &BirdMap) -> BTreeMap<String, BirdSpec> {
    map.iter().map(|(n, s)| (n.to_owned(), s.clone())).collect()
}

/// The changes a join should report, computed from the visible maps.
fn diff(before: &BirdMap, after: &BirdMap) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (b, a) = (visible(before), visible(after));
    let names: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let (mut added, mut removed, mut replaced) = (vec![], vec![], vec![]);
    for name in names {
        match (b.get(name), a.get(name)) {
            (None, Some(_)) => added.push(name.clone()),
            (Some(_), None) => removed.push(name.clone()),
            (Some(x), Some(y)) if x != y => replaced.push(name.clone()),
            _ => {}
        }
    }
    (added, removed, replaced)
}

/// Joins `other` into `replica` and checks the join against the reference
/// (a forced full scan) and its reported changes against the visible diff.
pub(super) fn checked_join(replica: &mut Replica, from: &ReplicaId, other: &BirdMap) -> Changes {
    let before = replica.state().clone();
    let mut reference = replica.clone();
    let reference_changes = reference.join_with_full_scan(from, other).unwrap();
    let changes = replica.join(from, other).unwrap();
    assert_eq!(
        replica.state(),
        reference.state(),
        "fast-path join differs from a full scan"
    );
    assert_eq!(
        (&changes.added, &changes.removed, &changes.replaced),
        (
            &reference_changes.added,
            &reference_changes.removed,
            &reference_changes.replaced
        )
    );
    let (added, removed, replaced) = diff(&before, replica.state());
    assert_eq!(
        (
            changes.added.clone(),
            changes.removed.clone(),
            changes.replaced.clone()
        ),
        (added, removed, replaced),
        "reported changes differ from the visible diff"
    );
    assert_eq!(changes.state_changed(), &before != replica.state());
    assert!(
        replica
            .state()
            .store
            .keys()
            .all(|n| replica.state().store.has_dots(n)),
        "a full state holds no empty lists"
    );
    changes
}

/// An operation of the simulated cluster.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Add {
        r: usize,
        name: usize,
        spec: u8,
        now: u64,
    },
    Remove {
        r: usize,
        name: usize,
    },
    /// Deliver the in-flight delta at this index (mod length): reordering.
    Deliver(usize),
    /// Deliver it but keep it in flight: duplication.
    Duplicate(usize),
    /// Lose it.
    Drop(usize),
    /// Its receiver forwards it to the third replica, as the runtime relays
    /// the deltas of a peer that went down: the sender is not the origin.
    Relay(usize),
    /// The replica crashes and restarts with the next incarnation.
    Restart(usize),
    /// The replica folds its dead incarnations (the delay is 0 in the sim)
    /// and ships the fold.
    Compact(usize),
}

/// [`op`] plus restarts and folds: states that carry floors, for the laws.
fn op_with_churn() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => op(),
        1 => (0..3usize).prop_map(Op::Restart),
        1 => (0..3usize).prop_map(Op::Compact),
    ]
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..NAMES.len(), 0..3u8, 0..50u64)
            .prop_map(|(r, name, spec, now)| Op::Add { r, name, spec, now }),
        2 => (0..3usize, 0..NAMES.len()).prop_map(|(r, name)| Op::Remove { r, name }),
        3 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Duplicate),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Relay),
    ]
}

/// Three replicas exchanging deltas over an unreliable network.
pub(super) struct Sim {
    pub(super) replicas: Vec<Replica>,
    /// `(sender, receiver, delta)`.
    pub(super) in_flight: Vec<(usize, usize, BirdMap)>,
    /// Every delta ever produced.
    pub(super) all_deltas: Vec<BirdMap>,
}

impl Sim {
    pub(super) fn new() -> Self {
        Self {
            replicas: NODES
                .iter()
                .map(|n| Replica::new(rid(n, 1)).with_fold_after(0))
                .collect(),
            in_flight: vec![],
            all_deltas: vec![],
        }
    }

    pub(super) fn mutate(&mut self, r: usize, delta: BirdMap) {
        for to in 0..self.replicas.len() {
            if to != r {
                self.in_flight.push((r, to, delta.clone()));
            }
        }
        self.all_deltas.push(delta);
    }

    pub(super) fn apply(&mut self, op: &Op) {
        match *op {
            Op::Add {
                r,
                name,
                spec: s,
                now,
            } => {
                let before = self.replicas[r].state().clone();
                let delta = self.replicas[r].add(NAMES[name], spec(s), now).unwrap();
                assert_delta_law(&before, &delta, self.replicas[r].state());
                self.mutate(r, delta);
            }
            Op::Remove { r, name } => {
                let before = self.replicas[r].state().clone();
                let delta = self.replicas[r].remove(NAMES[name]);
                assert_delta_law(&before, &delta, self.replicas[r].state());
                self.mutate(r, delta);
            }
            Op::Deliver(i) | Op::Duplicate(i) | Op::Drop(i) | Op::Relay(i)
                if self.in_flight.is_empty() =>
            {
                let _ = i;
            }
            Op::Deliver(i) => {
                let (from, to, delta) = self.in_flight.remove(i % self.in_flight.len());
                self.deliver(from, to, &delta);
            }
            Op::Duplicate(i) => {
                let (from, to, delta) = self.in_flight[i % self.in_flight.len()].clone();
                self.deliver(from, to, &delta);
            }
            // Its state and its in-flight deltas are lost with the process.
            Op::Restart(r) => {
                let old = self.replicas[r].id().clone();
                self.replicas[r] =
                    Replica::new(rid(&old.node, old.incarnation + 1)).with_fold_after(0);
                self.in_flight
                    .retain(|(from, to, _)| *to != r && *from != r);
            }
            Op::Compact(r) => {
                let fold = self.replicas[r].compact(1);
                if !fold.is_empty() {
                    self.mutate(r, fold);
                }
            }
            Op::Relay(i) => {
                let (from, to, delta) = self.in_flight[i % self.in_flight.len()].clone();
                let third = (0..self.replicas.len()).find(|&t| t != from && t != to);
                if let Some(third) = third {
                    self.in_flight.push((to, third, delta));
                }
            }
            Op::Drop(i) => {
                self.in_flight.remove(i % self.in_flight.len());
            }
        }
    }

    /// A sim after `before`, a crash and restart of `restarted`, and `after`.
    pub(super) fn restarted_between(before: &[Op], restarted: usize, after: &[Op]) -> Self {
        let mut sim = Sim::new();
        for op in before {
            sim.apply(op);
        }
        // Its state and its in-flight deltas are lost.
        sim.apply(&Op::Restart(restarted));
        for op in after {
            sim.apply(op);
        }
        sim
    }

    pub(super) fn deliver(&mut self, from: usize, to: usize, delta: &BirdMap) {
        let sender = self.replicas[from].id().clone();
        checked_join(&mut self.replicas[to], &sender, delta);
    }

    /// Every replica joins every other's full state.
    pub(super) fn full_sync(&mut self) {
        for _ in 0..2 {
            for i in 0..self.replicas.len() {
                for j in 0..self.replicas.len() {
                    if i != j {
                        let state = self.replicas[j].state().clone();
                        self.deliver(j, i, &state);
                    }
                }
            }
        }
    }
}

/// The delta-mutator law: the new state is the old state joined with the delta.
fn assert_delta_law(before: &BirdMap, delta: &BirdMap, after: &BirdMap) {
    let mut joined = before.clone();
    joined.join(delta);
    assert_eq!(
        &joined, after,
        "joining the delta differs from applying the mutation"
    );
}

fn states_after(ops: &[Op]) -> Vec<BirdMap> {
    let mut sim = Sim::new();
    for op in ops {
        sim.apply(op);
    }
    let mut out: Vec<BirdMap> = sim.replicas.iter().map(|r| r.state().clone()).collect();
    // Deltas are lattice elements too.
    out.extend(sim.all_deltas.last().cloned());
    out
}

/// `a ⊔ b` without touch markers: a marker is a hint that means the same as
/// an absent name, so the laws hold up to markers.
fn join(a: &BirdMap, b: &BirdMap) -> BirdMap {
    let mut out = a.clone();
    out.join(b);
    normalized(out)
}

fn normalized(mut map: BirdMap) -> BirdMap {
    map.store.retain(|_, list| !list.is_empty());
    map
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn join_is_associative(ops in prop::collection::vec(op_with_churn(), 0..40), pick in any::<[usize; 3]>()) {
        let states = states_after(&ops);
        let [a, b, c] = pick.map(|i| &states[i % states.len()]);
        prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)));
    }

    #[test]
    fn join_is_commutative(ops in prop::collection::vec(op_with_churn(), 0..40), pick in any::<[usize; 2]>()) {
        let states = states_after(&ops);
        let [a, b] = pick.map(|i| &states[i % states.len()]);
        prop_assert_eq!(join(a, b), join(b, a));
    }

    #[test]
    fn join_is_idempotent(ops in prop::collection::vec(op_with_churn(), 0..40), pick in any::<usize>()) {
        let states = states_after(&ops);
        let a = &states[pick % states.len()];
        let mut twice = a.clone();
        let changes = twice.join(a);
        prop_assert_eq!(normalized(twice), normalized(a.clone()));
        prop_assert!(changes.is_empty());
    }

    /// `Sim::apply` checks the law on every mutation, on states shaped by
    /// arbitrary earlier deliveries.
    #[test]
    fn joining_a_delta_equals_applying_the_mutation(ops in prop::collection::vec(op(), 0..60)) {
        let mut sim = Sim::new();
        for op in &ops {
            sim.apply(op);
        }
    }

    #[test]
    fn replicas_converge_under_reordered_duplicated_and_dropped_deltas(
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let mut sim = Sim::new();
        for op in &ops {
            sim.apply(op);
        }
        sim.full_sync();
        // Delivery order, duplicates and losses do not matter: the outcome is
        // the join of every delta ever produced.
        let mut expected = BirdMap::default();
        for delta in &sim.all_deltas {
            expected.join(delta);
        }
        for replica in &sim.replicas {
            prop_assert_eq!(replica.state(), &expected);
        }
    }

    #[test]
    fn restarted_node_with_new_incarnation_keeps_its_new_adds(
        before in prop::collection::vec(op(), 0..40),
        after in prop::collection::vec(op(), 0..40),
        restarted in 0..3usize,
    ) {
        let mut sim = Sim::restarted_between(&before, restarted, &after);
        let delta = sim.replicas[restarted].add("fresh", spec(7), 0).unwrap();
        sim.mutate(restarted, delta);
        sim.full_sync();
        let first = sim.replicas[0].state().clone();
        for replica in &sim.replicas {
            prop_assert_eq!(replica.state(), &first);
            prop_assert_eq!(replica.state().get("fresh"), Some(spec(7)));
        }
    }

    /// Canonical, exact compaction: the context is exactly the inserted set,
    /// whatever the order, and equal sets have equal representations.
    #[test]
    fn context_is_exact_and_canonical_under_any_insertion_order(
        dots in prop::collection::vec((0..2usize, 1..12u64), 0..30),
        split in any::<usize>(),
    ) {
        let dots: Vec<Dot> = dots.iter().map(|&(r, c)| dot(NODES[r], 1, c)).collect();
        let set: BTreeSet<Dot> = dots.iter().cloned().collect();
        let mut forward = CausalContext::new();
        for d in &dots {
            forward.insert(d.clone());
        }
        let mut backward = CausalContext::new();
        for d in dots.iter().rev() {
            backward.insert(d.clone());
        }
        // Two halves joined, as when deltas arrive out of order.
        let cut = if dots.is_empty() { 0 } else { split % dots.len() };
        let (mut left, mut right) = (CausalContext::new(), CausalContext::new());
        dots[..cut].iter().for_each(|d| left.insert(d.clone()));
        dots[cut..].iter().for_each(|d| right.insert(d.clone()));
        right.join(&left);
        prop_assert_eq!(&forward, &backward);
        prop_assert_eq!(&forward, &right);
        prop_assert_eq!(forward.dots().collect::<BTreeSet<_>>(), set.clone());
        prop_assert_eq!(forward.dot_count(), set.len() as u64);
        for node in &NODES[..2] {
            for c in 1..14 {
                let d = dot(node, 1, c);
                prop_assert_eq!(forward.contains(&d), set.contains(&d));
            }
        }
        for d in &forward.cloud {
            let n = forward.vv.get(&d.replica).copied().unwrap_or(0);
            prop_assert!(d.counter > n + 1, "cloud dot {:?} should have been absorbed", d);
        }
    }
}

#[test]
fn context_absorbs_contiguous_cloud_dots() {
    let mut ctx = CausalContext::new();
    ctx.insert(dot("n1", 1, 3));
    ctx.insert(dot("n1", 1, 2));
    assert_eq!((ctx.len_vv(), ctx.len_cloud()), (0, 2));
    assert_eq!(ctx.max_counter(&rid("n1", 1)), 3);
    ctx.insert(dot("n1", 1, 1));
    assert_eq!((ctx.len_vv(), ctx.len_cloud()), (1, 0));
    assert_eq!(ctx.vv[&rid("n1", 1)], 3);
    assert!(!ctx.contains(&dot("n1", 1, 4)));
    assert!(
        !ctx.contains(&dot("n1", 2, 1)),
        "another incarnation is another replica"
    );
}

#[test]
fn add_wins_over_concurrent_remove() {
    for remove_first in [false, true] {
        let mut a = Replica::new(rid("n1", 1));
        let mut b = Replica::new(rid("n2", 1));
        let d = a.add("x", spec(1), 10).unwrap();
        b.join(&rid("n1", 1), &d).unwrap();
        // Concurrently: a removes x, b re-adds x.
        let removal = a.remove("x");
        let re_add = b.add("x", spec(2), 11).unwrap();
        assert!(!a.state().contains("x"));
        if remove_first {
            checked_join(&mut b, &rid("n1", 1), &removal);
            checked_join(&mut a, &rid("n2", 1), &re_add);
        } else {
            checked_join(&mut a, &rid("n2", 1), &re_add);
            checked_join(&mut b, &rid("n1", 1), &removal);
        }
        assert_eq!(a.state(), b.state());
        assert_eq!(
            a.state().get("x"),
            Some(spec(2)),
            "the unobserved add survives"
        );
    }
}

#[test]
fn remove_removes_only_observed_adds() {
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    let from_b = b.add("x", spec(2), 5).unwrap();
    let from_a = a.add("x", spec(1), 50).unwrap();
    // a has not seen b's add, so its remove leaves b's add alone.
    let removal = a.remove("x");
    b.join(&rid("n1", 1), &from_a).unwrap();
    b.join(&rid("n1", 1), &removal).unwrap();
    a.join(&rid("n2", 1), &from_b).unwrap();
    assert_eq!(a.state(), b.state());
    assert_eq!(a.state().get("x"), Some(spec(2)));
}

#[test]
fn concurrent_adds_resolve_by_highest_timestamp_then_dot() {
    // Higher timestamp wins, whichever node it came from.
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    let da = a.add("x", spec(1), 20).unwrap();
    let db = b.add("x", spec(2), 10).unwrap();
    let changes = checked_join(&mut a, &rid("n2", 1), &db);
    assert!(changes.is_empty(), "a's own add still wins on a");
    let changes = checked_join(&mut b, &rid("n1", 1), &da);
    assert_eq!(changes.replaced, vec!["x".to_owned()]);
    assert_eq!(a.state(), b.state());
    assert_eq!(a.state().get("x"), Some(spec(1)));
    // Both adds stay stored until a later add or remove observes them.
    assert_eq!(a.state().size().dots, 2);

    // A timestamp tie is broken by the dot: node name first.
    let mut a = Replica::new(rid("n1", 9));
    let mut b = Replica::new(rid("n2", 1));
    let da = a.add("x", spec(1), 7).unwrap();
    let db = b.add("x", spec(2), 7).unwrap();
    a.join(&rid("n2", 1), &db).unwrap();
    b.join(&rid("n1", 9), &da).unwrap();
    assert_eq!(a.state().get("x"), Some(spec(2)));
    assert_eq!(b.state().get("x"), Some(spec(2)));
    let (winning_dot, _) = a.state().get_entry("x").unwrap();
    assert_eq!(winning_dot, dot("n2", 1, 1));

    // A later add observes both and leaves one dot.
    a.add("x", spec(3), 0).unwrap();
    assert_eq!(a.state().size().dots, 1);
    assert_eq!(a.state().get("x"), Some(spec(3)));
}

#[test]
fn timestamps_are_monotonic_and_advance_past_joined_ones() {
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    a.add("x", spec(1), 100).unwrap();
    // The wall clock went backwards: the later add still wins locally.
    a.add("y", spec(1), 5).unwrap();
    assert_eq!(a.state().get_entry("y").unwrap().1.ts, 101);
    b.join(&rid("n1", 1), a.state()).unwrap();
    assert_eq!(b.last_ts(), 101);
    let d = b.add("z", spec(1), 3).unwrap();
    assert_eq!(d.get_entry("z").unwrap().1.ts, 102);
}

#[test]
fn remove_leaves_no_tombstone_and_absent_remove_is_empty() {
    let mut a = Replica::new(rid("n1", 1));
    assert!(a.remove("x").is_empty());
    a.add("x", spec(1), 1).unwrap();
    let delta = a.remove("x");
    assert!(!delta.is_empty());
    assert_eq!(delta.get("x"), None);
    assert_eq!(a.state().len(), 0);
    assert!(a.state().store.is_empty());
    assert!(a.remove("x").is_empty(), "already removed");
}

#[test]
fn restarted_node_reusing_its_incarnation_would_lose_adds() {
    // Why incarnations exist: a restart that reused (node, 1) would mint dots
    // its peers have already seen, and its adds would be dropped.
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    b.join(&rid("n1", 1), &a.add("x", spec(1), 1).unwrap())
        .unwrap();
    b.join(&rid("n1", 1), &a.remove("x")).unwrap();
    let mut reused = Replica::new(rid("n1", 1));
    b.join(&rid("n1", 1), &reused.add("y", spec(2), 2).unwrap())
        .unwrap();
    assert!(!b.state().contains("y"), "dot (n1,1,1) was already seen");

    let mut restarted = Replica::new(rid("n1", 2));
    let delta = restarted.add("y", spec(2), 2).unwrap();
    b.join(&rid("n1", 2), &delta).unwrap();
    restarted.join(&rid("n2", 1), &b.state().clone()).unwrap();
    assert_eq!(b.state().get("y"), Some(spec(2)));
    assert_eq!(restarted.state(), b.state());
}

#[test]
fn state_size_is_bounded_under_add_remove_cycles() {
    let mut replicas: Vec<Replica> = NODES.iter().map(|n| Replica::new(rid(n, 1))).collect();
    let mut sizes = vec![];
    for round in 0..60u64 {
        let mut deltas = vec![];
        for (r, replica) in replicas.iter_mut().enumerate() {
            for (i, name) in NAMES.iter().enumerate() {
                deltas.push((r, replica.add(name, spec(i as u8), round).unwrap()));
                if (i + r) % 2 == 0 {
                    deltas.push((r, replica.remove(name)));
                }
            }
        }
        // Deliver in reverse order to exercise the dot cloud.
        for (from, delta) in deltas.iter().rev() {
            for (to, replica) in replicas.iter_mut().enumerate() {
                if to != *from {
                    checked_join(replica, &rid(NODES[*from], 1), delta);
                }
            }
        }
        let state = replicas[0].state();
        for replica in &replicas {
            assert_eq!(replica.state(), state);
        }
        sizes.push(state.size());
    }
    let last = *sizes.last().unwrap();
    assert_eq!(
        sizes[5], last,
        "size changed between round 5 and the last round"
    );
    assert!(last.names <= NAMES.len());
    assert!(last.dots <= NAMES.len() * NODES.len());
    assert_eq!(last.cloud_dots, 0);
    assert_eq!(last.vv_entries, NODES.len());

    // Removing everything empties the store completely.
    for replica in &mut replicas {
        for name in NAMES {
            let delta = replica.remove(name);
            let _ = delta;
        }
    }
    assert_eq!(replicas[0].state().size().names, 0);
    assert_eq!(replicas[0].state().size().dots, 0);
}

/// A big state receiving small deltas must not be scanned; duplicates and
/// full states may be.
#[test]
fn delta_joins_into_a_large_state_do_not_scan() {
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    b.add("own", spec(1), 0).unwrap();
    let mut full = BirdMap::default();
    for i in 0..2_000u32 {
        full.join(&a.add(&format!("bird{i}"), spec(1), 0).unwrap());
    }
    let changes = b.join(&rid("n1", 1), &full).unwrap();
    assert_eq!(changes.added.len(), 2_000);
    assert!(changes.scanned_whole_state(), "a full state may scan");

    let removal = a.remove("bird7");
    let changes = b.join(&rid("n1", 1), &removal).unwrap();
    assert_eq!(changes.removed, vec!["bird7".to_owned()]);
    assert!(!changes.scanned_whole_state());

    let replace = a.add("bird8", spec(2), 0).unwrap();
    let changes = b.join(&rid("n1", 1), &replace).unwrap();
    assert_eq!(changes.replaced, vec!["bird8".to_owned()]);
    assert!(!changes.scanned_whole_state());

    // A removal inside a delta interval stays findable through its marker.
    let mut interval = a.remove("bird9");
    interval.join_delta(&a.add("bird10", spec(3), 0).unwrap());
    assert!(interval.store.contains_key("bird9"), "the marker survives");
    let changes = b.join(&rid("n1", 1), &interval).unwrap();
    assert_eq!(changes.removed, vec!["bird9".to_owned()]);
    assert_eq!(changes.replaced, vec!["bird10".to_owned()]);
    assert!(!changes.scanned_whole_state());

    // The same interval again: harmless, though it may scan.
    let changes = b.join(&rid("n1", 1), &interval).unwrap();
    assert!(changes.is_empty());
    a.join(&rid("n2", 1), &b.state().clone()).unwrap();
    assert_eq!(a.state(), b.state());
}

#[test]
fn removal_without_marker_is_still_found() {
    // A delta from another implementation (no touch marker) must still work.
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    b.join(&rid("n1", 1), &a.add("x", spec(1), 0).unwrap())
        .unwrap();
    b.join(&rid("n1", 1), &a.add("y", spec(1), 0).unwrap())
        .unwrap();
    let mut removal = a.remove("x");
    removal.store.clear();
    let changes = checked_join(&mut b, &rid("n1", 1), &removal);
    assert_eq!(changes.removed, vec!["x".to_owned()]);
    assert!(b.state().contains("y"));
}

/// `add_new` against what it replaces: for each name, `contains` then
/// `add`, the deltas joined with `join_delta`.
fn add_one_by_one(
    r: &mut Replica,
    birds: &[(&str, BirdSpec)],
    now_ms: u64,
) -> (BirdMap, Vec<Added>) {
    let mut batch = BirdMap::default();
    let outcomes = birds
        .iter()
        .map(|(name, spec)| {
            if r.state().contains(name) {
                return Added::Exists;
            }
            match r.add(name, spec.clone(), now_ms) {
                Ok(delta) => {
                    batch.join_delta(&delta);
                    Added::New
                }
                Err(CounterExhausted) => Added::Exhausted,
            }
        })
        .collect();
    (batch, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Batches of starts, with names repeated within and across batches,
    /// some removed between batches, and a peer's adds joined in between:
    /// `add_new` leaves the same state and returns the same delta and
    /// outcomes as adding one name at a time.
    #[test]
    fn adding_a_batch_is_adding_each_new_name_in_turn(
        batches in prop::collection::vec(
            (prop::collection::vec((0..6usize, 0..3u8), 0..12), 0..6usize, any::<bool>()),
            1..6,
        ),
        exhaust_at in prop::option::of(0..30u64),
    ) {
        let me = rid("n1", 1);
        let (mut bulk, mut single) = (Replica::new(me.clone()), Replica::new(me.clone()));
        let mut peer = Replica::new(rid("n2", 1));
        if let Some(left) = exhaust_at {
            bulk.set_minted(u64::MAX - left);
            single.set_minted(u64::MAX - left);
        }
        let names = ["a", "b", "c", "d", "e", "f"];
        for (i, (birds, removed, peer_adds)) in batches.iter().enumerate() {
            let now = 10 * i as u64;
            let birds: Vec<(&str, BirdSpec)> =
                birds.iter().map(|&(n, k)| (names[n], spec(k))).collect();
            let (got, got_outcomes) = bulk.add_new(birds.iter().map(|(n, s)| (*n, s)), now);
            let (want, want_outcomes) = add_one_by_one(&mut single, &birds, now);
            prop_assert_eq!(got_outcomes, want_outcomes);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(bulk.state(), single.state());
            prop_assert_eq!(bulk.last_ts(), single.last_ts());
            // What happens between batches: a stop, a peer's start.
            bulk.remove(names[*removed]);
            single.remove(names[*removed]);
            if *peer_adds {
                let delta = peer.add(names[(*removed + 1) % 6], spec(9), now).unwrap();
                bulk.join(&rid("n2", 1), &delta).unwrap();
                single.join(&rid("n2", 1), &delta).unwrap();
            }
            prop_assert_eq!(bulk.state(), single.state());
        }
    }
}
