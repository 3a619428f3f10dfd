use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn members(names: &[&str]) -> Vec<Member> {
    names.iter().map(|n| Member::new(*n, 1)).collect()
}

fn placement(names: &[&str]) -> Placement {
    Placement::new(DEFAULT_SHARDS, members(names)).expect("valid placement")
}

fn bird_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bird:{i}")).collect()
}

/// Owners of `names` as indices into the sorted host list.
fn owners<'a>(p: &'a Placement, names: &[String]) -> Vec<&'a NodeName> {
    names
        .iter()
        .map(|n| p.owner(n).expect("has hosts"))
        .collect()
}

fn moved_fraction(before: &Placement, after: &Placement, names: &[String]) -> f64 {
    let moved = owners(before, names)
        .iter()
        .zip(owners(after, names))
        .filter(|(a, b)| **a != *b)
        .count();
    moved as f64 / names.len() as f64
}

/// A deterministic stream of pseudo-random node names (no RNG dependency).
fn random_node_names(seed: u64, n: usize) -> Vec<String> {
    (0..n as u64)
        .map(|i| format!("n{:016x}@10.0.0.{}", mix(seed ^ mix(i)), i))
        .collect()
}

#[test]
fn empty_member_set_answers_no_nodes() {
    let p = Placement::new(DEFAULT_SHARDS, []).unwrap();
    assert_eq!(p.owner("bird:1"), Err(Error::NoNodes));
    assert!(p.hosts().is_empty());
}

#[test]
fn members_of_weight_zero_host_nothing() {
    let p = Placement::new(64, [Member::new("client@x", 0)]).unwrap();
    assert_eq!(p.owner("bird:1"), Err(Error::NoNodes));
    let p = Placement::new(64, [Member::new("client@x", 0), Member::new("node1@x", 1)]).unwrap();
    for name in bird_names(100) {
        assert_eq!(&**p.owner(&name).unwrap(), "node1@x");
    }
}

#[test]
fn invalid_shard_counts_and_weights_are_rejected() {
    assert!(matches!(
        Placement::new(0, []),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Placement::new(MAX_SHARDS + 1, []),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Placement::new(64, [Member::new("a", MAX_WEIGHT + 1)]),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn a_name_listed_twice_keeps_its_largest_weight() {
    let p = Placement::new(
        1024,
        [
            Member::new("a", 1),
            Member::new("b", 1),
            Member::new("a", 3),
        ],
    )
    .unwrap();
    assert_eq!(p.hosts(), &[Member::new("a", 3), Member::new("b", 1)]);
}

/// Pinned values: if these change, nodes built from different versions of
/// flock-actix would disagree on placement. Never update them casually.
#[test]
fn placement_is_stable_across_builds() {
    assert_eq!(name_hash("bird:1"), 0x3e4a_d8bf_da47_ce22);
    let p = placement(&["node1@127.0.0.1", "node2@127.0.0.1", "node3@127.0.0.1"]);
    let got: Vec<(u32, &str)> = [
        "bird:1", "bird:2", "bird:3", "bird:4", "bird:5", "bird:6", "Tweety", "user:42",
    ]
    .iter()
    .map(|n| (p.shard_of(n), &**p.owner(n).unwrap()))
    .collect();
    assert_eq!(
        got,
        vec![
            (52232, "node3@127.0.0.1"),
            (57502, "node3@127.0.0.1"),
            (1544, "node3@127.0.0.1"),
            (40689, "node1@127.0.0.1"),
            (8191, "node1@127.0.0.1"),
            (61804, "node2@127.0.0.1"),
            (277, "node3@127.0.0.1"),
            (34758, "node3@127.0.0.1"),
        ]
    );
}

#[test]
fn adding_a_fourth_node_moves_a_quarter_of_names() {
    let names = bird_names(100_000);
    let three = placement(&["node1@h", "node2@h", "node3@h"]);
    let four = placement(&["node1@h", "node2@h", "node3@h", "node4@h"]);
    let moved = moved_fraction(&three, &four, &names);
    assert!((moved - 0.25).abs() <= 0.015, "moved {moved}");
}

#[test]
fn removing_any_one_of_four_nodes_moves_a_quarter_of_names() {
    let names = bird_names(100_000);
    let all = ["node1@h", "node2@h", "node3@h", "node4@h"];
    let four = placement(&all);
    for leaving in all {
        let rest: Vec<&str> = all.iter().copied().filter(|n| *n != leaving).collect();
        let moved = moved_fraction(&four, &placement(&rest), &names);
        assert!(
            (moved - 0.25).abs() <= 0.015,
            "{leaving} left, moved {moved}"
        );
    }
}

#[test]
fn load_is_balanced_over_ten_equal_nodes() {
    let names = bird_names(100_000);
    let mut worst = 0.0f64;
    for seed in 0..20 {
        let node_names = random_node_names(seed, 10);
        let refs: Vec<&str> = node_names.iter().map(String::as_str).collect();
        let p = placement(&refs);
        let mut counts = std::collections::HashMap::new();
        for owner in owners(&p, &names) {
            *counts.entry(owner.clone()).or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 10);
        let max = *counts.values().max().unwrap() as f64;
        let ratio = max / (names.len() as f64 / 10.0);
        worst = worst.max(ratio);
        assert!(ratio <= 1.10, "node set {seed}: max/mean {ratio:.3}");
    }
    eprintln!("worst max/mean over 20 node sets: {worst:.4}");
}

#[test]
fn a_node_of_weight_two_owns_about_twice_the_shards() {
    let p = Placement::new(
        DEFAULT_SHARDS,
        [
            Member::new("heavy@h", 2),
            Member::new("light1@h", 1),
            Member::new("light2@h", 1),
        ],
    )
    .unwrap();
    let counts = p.shard_counts();
    let (heavy, light) = (counts[0] as f64, (counts[1] + counts[2]) as f64 / 2.0);
    assert!((heavy / light - 2.0).abs() < 0.05, "{counts:?}");
}

#[test]
fn overflowing_jump_keys_are_remapped_without_panicking() {
    let guard = JumpGuard::new(DEFAULT_SHARDS).unwrap();
    assert!(!guard.bad_keys().is_empty(), "the crate's bad state exists");
    for &key in guard.bad_keys() {
        assert!(!guard.bad_keys().contains(&(key ^ REMAP)));
        assert!(guard.shard_of_hash(key) < DEFAULT_SHARDS);
    }
}

/// Shows the guard is needed: the raw crate panics on the bad key in debug.
#[cfg(debug_assertions)]
#[test]
fn raw_jump_hash_overflows_on_the_bad_key_in_debug_builds() {
    let bad = u64::MAX.wrapping_mul(JUMP_MUL_INV);
    assert_eq!(bad.wrapping_mul(JUMP_MUL), u64::MAX);
    let result = std::panic::catch_unwind(|| jump_consistent_hash::hash(bad, 1024));
    assert!(
        result.is_err(),
        "the crate no longer overflows: drop the guard?"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn owner_is_independent_of_member_order(
        nodes in prop::collection::btree_set("[a-z]{1,6}@[0-9]{1,2}", 1..12),
        weights in prop::collection::vec(0u32..4, 12),
        seed in any::<u64>(),
    ) {
        let ms: Vec<Member> = nodes.iter().zip(&weights)
            .map(|(n, w)| Member::new(n.as_str(), *w)).collect();
        let mut shuffled = ms.clone();
        // A deterministic shuffle driven by the generated seed.
        shuffled.sort_by_key(|m| mix(seed ^ name_hash(&m.name)));
        let a = Placement::new(1024, ms).unwrap();
        let b = Placement::new(1024, shuffled).unwrap();
        for name in bird_names(300) {
            prop_assert_eq!(a.owner(&name), b.owner(&name));
        }
    }

    #[test]
    fn no_name_moves_between_two_nodes_that_both_stayed(
        before in prop::collection::btree_set("[a-z]{1,6}", 1..10),
        after in prop::collection::btree_set("[a-z]{1,6}", 1..10),
    ) {
        let to_members = |s: &BTreeSet<String>| -> Vec<Member> {
            s.iter().map(|n| Member::new(n.as_str(), 1)).collect()
        };
        let a = Placement::new(1024, to_members(&before)).unwrap();
        let b = Placement::new(1024, to_members(&after)).unwrap();
        for shard in 0..1024 {
            let (oa, ob) = (a.owner_of_shard(shard).unwrap(), b.owner_of_shard(shard).unwrap());
            if oa != ob {
                // A move is only allowed away from a leaver or onto a joiner.
                prop_assert!(!after.contains(&**oa) || !before.contains(&**ob),
                    "shard {} moved from {} to {}, both stayed", shard, oa, ob);
            }
        }
    }

    #[test]
    fn shard_of_any_hash_is_in_range(
        hash in any::<u64>(),
        shards in prop::sample::select(vec![1u32, 2, 3, 7, 1000, 16_384, DEFAULT_SHARDS]),
    ) {
        prop_assert!(shard_of_hash(hash, shards).unwrap() < shards);
    }
}

/// One membership change for the incremental-placement property.
#[derive(Debug, Clone)]
enum Change {
    Join(u8, u32),
    Leave(u8),
    Reweigh(u8, u32),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u8..12, 0u32..4).prop_map(|(n, w)| Change::Join(n, w)),
        (0u8..12).prop_map(Change::Leave),
        (0u8..12, 0u32..4).prop_map(|(n, w)| Change::Reweigh(n, w)),
    ]
}

#[test]
fn an_incremental_join_and_leave_match_a_full_build_at_a_hundred_members() {
    let names = random_node_names(7, 101);
    let all: Vec<Member> = names.iter().map(|n| Member::new(n.as_str(), 1)).collect();
    let hundred = Placement::new(DEFAULT_SHARDS, all[..100].to_vec()).unwrap();
    let joined = hundred.next(all.clone()).unwrap();
    assert_eq!(
        joined.table,
        Placement::new(DEFAULT_SHARDS, all.clone()).unwrap().table
    );
    let mut without = all.clone();
    without.remove(37);
    let left = joined.next(without.clone()).unwrap();
    assert_eq!(
        left.table,
        Placement::new(DEFAULT_SHARDS, without).unwrap().table
    );
    assert_eq!(left.hosts().len(), 100);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `Placement::next` is only an optimisation: after any sequence of
    /// joins, leaves and weight changes it holds exactly the table a full
    /// build over the same members holds.
    #[test]
    fn incremental_placement_equals_a_full_build(
        start in proptest::collection::vec((0u8..12, 0u32..4), 0..8),
        changes in proptest::collection::vec(change(), 1..12),
        shards in prop_oneof![Just(1u32), Just(7), Just(256), Just(4096)],
    ) {
        let name = |n: u8| format!("node{n}@10.0.0.{n}");
        let mut set: std::collections::BTreeMap<u8, u32> = start.into_iter().collect();
        let view = |set: &std::collections::BTreeMap<u8, u32>| -> Vec<Member> {
            set.iter().map(|(n, w)| Member::new(name(*n), *w)).collect()
        };
        let mut p = Placement::new(shards, view(&set)).unwrap();
        for c in changes {
            match c {
                Change::Join(n, w) | Change::Reweigh(n, w) => { set.insert(n, w); }
                Change::Leave(n) => { set.remove(&n); }
            }
            p = p.next(view(&set)).unwrap();
            let full = Placement::new(shards, view(&set)).unwrap();
            prop_assert_eq!(&p.hosts, &full.hosts);
            prop_assert_eq!(&p.table, &full.table);
        }
    }
}
