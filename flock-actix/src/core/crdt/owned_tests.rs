//! The fast paths of a whole state joined into an empty replica, and of
//! the store's slot-level copies, against the general code they replace.

use super::store::{DotList, Store};
use super::tests::{NAMES, NODES, dot, op, rid, spec};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn raw_dot() -> impl Strategy<Value = Dot> {
    (0..NODES.len(), 1..3u64, 1..6u64).prop_map(|(n, i, c)| dot(NODES[n], i, c))
}

/// Any dot list, as a hostile or buggy peer may send one: unsorted, with
/// repeated dots, or empty (a touch marker).
fn raw_list() -> impl Strategy<Value = DotList> {
    prop::collection::vec((raw_dot(), 0..3u8, 0..4u64), 0..4).prop_map(|v| {
        v.into_iter()
            .map(|(d, k, ts)| (d, Entry { spec: spec(k), ts }))
            .collect()
    })
}

fn raw_store() -> impl Strategy<Value = Store> {
    prop::collection::btree_map(0..NAMES.len(), raw_list(), 0..=NAMES.len()).prop_map(|m| {
        m.into_iter()
            .map(|(n, list)| (NAMES[n].to_owned(), list))
            .collect::<BTreeMap<String, DotList>>()
            .into()
    })
}

/// Any context: dots in any order, and floors.
fn raw_ctx() -> impl Strategy<Value = CausalContext> {
    (
        prop::collection::vec(raw_dot(), 0..10),
        prop::collection::vec((0..NODES.len(), 1..3u64), 0..2),
    )
        .prop_map(|(dots, floors)| {
            let mut ctx = CausalContext::new();
            for d in dots {
                ctx.insert(d);
            }
            for (n, floor) in floors {
                ctx.raise_floor(&NODES[n].into(), floor);
            }
            ctx
        })
}

fn raw_map() -> impl Strategy<Value = BirdMap> {
    (raw_store(), raw_ctx()).prop_map(|(store, ctx)| BirdMap { store, ctx })
}

/// The logical content of a store: every name with its dot list.
fn listed(store: &Store) -> Vec<(String, DotList)> {
    store.iter().map(|(n, l)| (n.to_owned(), l)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Into a store with no names (any context), a state joined by value
    /// (moved in, less what the context has seen) gives exactly the state
    /// and the changes of the general join, whatever the state holds.
    #[test]
    fn joining_a_state_by_value_equals_joining_it_by_reference(
        ctx in raw_ctx(),
        other in raw_map(),
    ) {
        let receiver = BirdMap { store: Store::default(), ctx };
        let mut general = receiver.clone();
        let general_changes = general.join(&other);
        let mut owned = receiver;
        let owned_changes = owned.join_owned(other);
        prop_assert_eq!(&owned, &general);
        prop_assert_eq!(owned_changes, general_changes);
    }

    /// The same through a replica's trust rule: a fresh or worked replica
    /// joining a peer's state by value ends as joining it by reference, and
    /// the state is given back exactly when it was not moved in.
    #[test]
    fn a_replica_joining_a_state_by_value_equals_joining_it_by_reference(
        ops in prop::collection::vec(op(), 0..40),
        sender in 0..NODES.len(),
        fresh in any::<bool>(),
    ) {
        let mut sim = super::tests::Sim::new();
        for op in &ops {
            sim.apply(op);
        }
        // A node that joins, or a peer of the same cluster (whose store
        // may be empty with a context that saw removals).
        let receiver = if fresh {
            Replica::new(rid("joiner", 1))
        } else {
            sim.replicas[(sender + 1) % NODES.len()].clone()
        };
        let from = sim.replicas[sender].id().clone();
        let state = sim.replicas[sender].state().clone();
        let mut general = receiver.clone();
        let general_changes = general.join(&from, &state).unwrap();
        let mut owned = receiver.clone();
        let (owned_changes, back) = owned.join_owned(&from, state.clone()).unwrap();
        prop_assert_eq!(owned.state(), general.state());
        prop_assert_eq!(owned.last_ts(), general.last_ts());
        prop_assert_eq!(&owned_changes, &general_changes);
        let moved = !general_changes.clipped_claims() && receiver.state().store.is_empty();
        prop_assert_eq!(back.is_none(), moved);
        if let Some(back) = back {
            prop_assert_eq!(back, state);
        }
    }

    /// Moving one store's names into another, slot by slot, equals
    /// inserting each name in turn (a name in both takes the other's list),
    /// whether the other's names come after mine or interleave.
    #[test]
    fn absorbing_a_store_equals_inserting_each_of_its_names(
        mine in raw_store(),
        theirs in raw_store(),
    ) {
        let mut expected = mine.clone();
        for (name, list) in theirs.iter() {
            expected.insert(name, list);
        }
        let mut absorbed = mine;
        absorbed.absorb(theirs);
        prop_assert_eq!(listed(&absorbed), listed(&expected));
        prop_assert_eq!(absorbed.len(), expected.len());
    }

    /// Parts made one store equal inserting each part's names in turn,
    /// whether they overlap (the general path) or are disjoint runs in any
    /// order (the one-pass path, as a transfer's parts cut from a store).
    #[test]
    fn parts_made_one_equal_inserting_each_in_turn(
        parts in prop::collection::vec(raw_store(), 0..4),
        whole in raw_store(),
        cuts in prop::collection::vec(0..NAMES.len(), 0..3),
        shuffle in any::<u64>(),
    ) {
        let mut expected = Store::default();
        for part in &parts {
            for (name, list) in part.iter() {
                expected.insert(name, list);
            }
        }
        prop_assert_eq!(listed(&Store::concat(parts)), listed(&expected));

        // Disjoint runs of one store, in a shuffled order.
        let mut bounds: Vec<&str> = cuts.iter().map(|&c| NAMES[c]).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut runs = Vec::new();
        let mut after = None;
        for b in bounds.iter().copied().chain(std::iter::once(NAMES[NAMES.len() - 1])) {
            runs.push(whole.copy_range(after, b));
            after = Some(b);
        }
        let n = runs.len();
        runs.rotate_left(shuffle as usize % n);
        if shuffle % 2 == 1 {
            runs.reverse();
        }
        prop_assert_eq!(listed(&Store::concat(runs)), listed(&whole));
    }

    /// A range copied slot by slot holds exactly the names of that range,
    /// each with its dots, and what is copied reads the same in place.
    #[test]
    fn a_copied_range_equals_the_names_in_it(
        store in raw_store(),
        after in prop::option::of(0..NAMES.len()),
        through in 0..NAMES.len(),
    ) {
        let after = after.map(|a| NAMES[a]);
        let through = NAMES[through];
        let copy = store.copy_range(after, through);
        let expected: Vec<(String, DotList)> = listed(&store)
            .into_iter()
            .filter(|(n, _)| after.is_none_or(|a| n.as_str() > a) && n.as_str() <= through)
            .collect();
        prop_assert_eq!(listed(&copy), expected);
        let in_place: Vec<(String, usize)> =
            copy.views().map(|(n, d)| (n.to_owned(), d.iter().count())).collect();
        let materialized: Vec<(String, usize)> =
            copy.iter().map(|(n, l)| (n.to_owned(), l.len())).collect();
        prop_assert_eq!(in_place, materialized);
    }

    /// Keeping some dots of a store, slot by slot, equals filtering each
    /// name's materialized list, dropping emptied names, and sorting.
    #[test]
    fn retaining_dots_in_place_equals_filtering_each_list(
        store in raw_store(),
        dropped in prop::collection::vec(raw_dot(), 0..6),
    ) {
        let keep = |r: &ReplicaId, c: u64| !dropped.iter().any(|d| d.replica == *r && d.counter == c);
        let expected: Vec<(String, DotList)> = listed(&store)
            .into_iter()
            .filter_map(|(n, list)| {
                let mut kept: DotList =
                    list.into_iter().filter(|(d, _)| keep(&d.replica, d.counter)).collect();
                kept.sort_by(|a, b| a.0.cmp(&b.0));
                (!kept.is_empty()).then_some((n, kept))
            })
            .collect();
        let mut retained = store;
        retained.retain_dots(keep);
        prop_assert_eq!(listed(&retained), expected);
    }
}
