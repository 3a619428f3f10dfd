use super::*;
use proptest::prelude::*;

const SHARDS: u32 = 1024;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bird:{i}")).collect()
}

fn node(name: &str, kinds: &[&str]) -> HostedMember {
    HostedMember::hosting(Member::new(name, 1), kinds.iter().copied())
}

fn build(members: Vec<HostedMember>) -> KindPlacement {
    KindPlacement::new(SHARDS, members).expect("valid placement")
}

/// The owner's name, for comparing with literals.
fn own<'a>(p: &'a KindPlacement, kind: &str, name: &str) -> &'a str {
    p.owner(kind, name).expect("has hosts")
}

#[test]
fn a_node_that_does_not_host_a_kind_owns_none_of_its_birds() {
    let p = build(vec![node("a", &["X", "Y"]), node("b", &["X"])]);
    let birds = names(2000);
    assert!(birds.iter().all(|n| own(&p, "Y", n) == "a"));
    // X birds spread over both.
    let on_b = birds.iter().filter(|n| own(&p, "X", n) == "b").count();
    assert!((700..1300).contains(&on_b), "{on_b} of 2000 X birds on b");
}

#[test]
fn nodes_hosting_the_same_kinds_share_one_table_equal_to_the_kind_blind_one() {
    let p = build(vec![node("a", &["X", "Y"]), node("b", &["Y", "X"])]);
    assert_eq!(p.distinct_tables(), 1);
    for n in names(500) {
        assert_eq!(p.owner("X", &n).unwrap(), p.all().owner(&n).unwrap());
        assert_eq!(p.owner("Y", &n).unwrap(), p.all().owner(&n).unwrap());
    }
}

#[test]
fn a_node_that_announces_nothing_hosts_every_kind() {
    let p = build(vec![
        HostedMember::all_kinds(Member::new("old", 1)),
        node("a", &["X"]),
        node("b", &["Y"]),
    ]);
    let birds = names(1000);
    assert!(birds.iter().any(|n| own(&p, "X", n) == "old"));
    assert!(birds.iter().any(|n| own(&p, "Y", n) == "old"));
    assert!(birds.iter().all(|n| own(&p, "X", n) != "b"));
    assert!(birds.iter().all(|n| own(&p, "Y", n) != "a"));
}

#[test]
fn a_kind_nobody_announces_is_placed_over_every_member() {
    let p = build(vec![node("a", &["X"]), node("b", &["Y"])]);
    for n in names(200) {
        assert_eq!(p.owner("Z", &n).unwrap(), p.all().owner(&n).unwrap());
    }
}

#[test]
fn a_client_node_hosts_nothing_even_if_it_announces_kinds() {
    let p = build(vec![
        node("a", &["X"]),
        HostedMember::hosting(Member::new("client", 0), ["X"]),
    ]);
    assert!(names(500).iter().all(|n| own(&p, "X", n) == "a"));
}

fn kind_sets() -> impl Strategy<Value = Vec<Vec<bool>>> {
    // Up to 5 nodes, each hosting a subset of kinds K0..K3 (at least one).
    prop::collection::vec(prop::collection::vec(any::<bool>(), 4), 1..5)
        .prop_filter("every node hosts something", |v| {
            v.iter().all(|k| k.contains(&true))
        })
}

fn members_of(sets: &[Vec<bool>]) -> Vec<HostedMember> {
    sets.iter()
        .enumerate()
        .map(|(i, ks)| {
            let kinds: Vec<String> = (0..4).filter(|k| ks[*k]).map(|k| format!("K{k}")).collect();
            HostedMember::hosting(Member::new(format!("n{i}"), 1), kinds)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn an_owner_always_hosts_the_kind(sets in kind_sets()) {
        let members = members_of(&sets);
        let p = KindPlacement::new(SHARDS, members.clone()).unwrap();
        for k in 0..4 {
            let kind = format!("K{k}");
            // A kind nobody announces is placed over everyone, by design.
            if !sets.iter().any(|s| s[k]) {
                continue;
            }
            for n in names(50) {
                match p.owner(&kind, &n) {
                    Ok(owner) => {
                        let m = members.iter().find(|m| m.member.name == *owner).unwrap();
                        prop_assert!(m.hosts(&kind), "{owner} owns {n} of {kind}");
                    }
                    Err(_) => prop_assert!(false, "no owner for {}", kind),
                }
            }
        }
    }

    #[test]
    fn adding_a_node_that_hosts_only_k_moves_only_ks_birds_and_only_to_it(
        sets in kind_sets(), k in 0usize..4,
    ) {
        let before_members = members_of(&sets);
        let before = KindPlacement::new(SHARDS, before_members.clone()).unwrap();
        let kind_k = format!("K{k}");
        let mut after_members = before_members;
        after_members.push(node("joiner", &[kind_k.as_str()]));
        let after = KindPlacement::new(SHARDS, after_members).unwrap();
        for other in 0..4 {
            let kind = format!("K{other}");
            // A kind nobody announced before is placed over everyone; skip it.
            if !sets.iter().any(|s| s[other]) {
                continue;
            }
            for n in names(200) {
                let (was, is) = (before.owner(&kind, &n).unwrap(), after.owner(&kind, &n).unwrap());
                if kind == kind_k {
                    prop_assert!(was == is || &**is == "joiner");
                } else {
                    prop_assert_eq!(was, is);
                }
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// `KindPlacement::next` is only an optimisation: after any sequence of
    /// member sets (each member hosting some of two kinds, or all of them)
    /// every kind's table equals the one a full build holds.
    #[test]
    fn incremental_kind_placement_equals_a_full_build(
        views in proptest::collection::vec(
            proptest::collection::vec((0u8..8, 0u32..3, 0u8..4), 0..7), 1..8),
    ) {
        let kinds_of = |k: u8| match k {
            0 => None,
            1 => Some(vec!["a"]),
            2 => Some(vec!["b"]),
            _ => Some(vec!["a", "b"]),
        };
        let view = |v: &[(u8, u32, u8)]| -> Vec<HostedMember> {
            v.iter()
                .map(|&(n, w, k)| {
                    let m = Member::new(format!("node{n}@x"), w);
                    match kinds_of(k) {
                        None => HostedMember::all_kinds(m),
                        Some(ks) => HostedMember::hosting(m, ks),
                    }
                })
                .collect()
        };
        let mut p = KindPlacement::new(256, view(&views[0])).unwrap();
        for v in &views[1..] {
            p = p.next(view(v)).unwrap();
            let full = KindPlacement::new(256, view(v)).unwrap();
            for kind in ["a", "b", "c"] {
                proptest::prop_assert_eq!(&p.for_kind(kind).table, &full.for_kind(kind).table);
                proptest::prop_assert_eq!(p.for_kind(kind).hosts(), full.for_kind(kind).hosts());
            }
            proptest::prop_assert_eq!(&p.all.table, &full.all.table);
        }
    }

    /// `KindPlacement::without(node)` (where a joining node's birds come
    /// from) equals a full build without that node, for every kind some
    /// remaining member announces; a kind only `node` announced has no
    /// owner without it (nobody else ran its birds), never a kind-blind one.
    #[test]
    fn a_placement_without_a_member_equals_a_full_build_without_it(
        view in proptest::collection::vec((0u8..8, 0u32..3, 1u8..4), 1..7),
        gone in 0u8..8,
    ) {
        let kinds_of = |k: u8| match k {
            1 => vec!["a"],
            2 => vec!["b"],
            _ => vec!["a", "b"],
        };
        let members = |keep: &dyn Fn(u8) -> bool| -> Vec<HostedMember> {
            let mut seen = std::collections::BTreeSet::new();
            view.iter()
                .filter(|&&(n, _, _)| keep(n) && seen.insert(n))
                .map(|&(n, w, k)| HostedMember::hosting(Member::new(format!("node{n}@x"), w), kinds_of(k)))
                .collect()
        };
        let gone_name = format!("node{gone}@x");
        let p = KindPlacement::new(256, members(&|_| true)).unwrap().without(&gone_name).unwrap();
        let rest = members(&|n| n != gone);
        let full = KindPlacement::new(256, rest.clone()).unwrap();
        for kind in ["a", "b"] {
            let announced = rest.iter().any(|m| m.member.weight > 0 && m.hosts(kind));
            if announced {
                proptest::prop_assert_eq!(p.for_kind(kind).hosts(), full.for_kind(kind).hosts());
                proptest::prop_assert_eq!(&p.for_kind(kind).table, &full.for_kind(kind).table);
            } else {
                proptest::prop_assert!(
                    p.for_kind(kind).hosts().iter().all(|m| m.weight == 0 || *m.name != *gone_name)
                );
            }
        }
    }
}

/// A kind every host hosts reuses the kind-blind table instead of building
/// it again: it must be exactly the table a fresh build over its hosts
/// gives, also after an incremental join.
#[test]
fn a_kind_every_host_hosts_is_placed_as_a_fresh_build_over_its_hosts() {
    let fresh = |hosts: &[&str]| {
        Placement::new(SHARDS, hosts.iter().map(|h| Member::new(*h, 1))).expect("valid placement")
    };
    let p = build(vec![
        node("a", &["X"]),
        node("b", &["X"]),
        node("c", &["X"]),
    ]);
    let joined = p
        .next(vec![
            node("a", &["X"]),
            node("b", &["X"]),
            node("c", &["X"]),
            node("d", &["X"]),
        ])
        .expect("valid placement");
    let (three, four) = (fresh(&["a", "b", "c"]), fresh(&["a", "b", "c", "d"]));
    for n in names(2000) {
        assert_eq!(own(&p, "X", &n), &**three.owner(&n).unwrap(), "{n}");
        assert_eq!(own(&joined, "X", &n), &**four.owner(&n).unwrap(), "{n}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// What a node owns after a view change is what it owned before and
    /// still owns, plus the owned names of the shards `gained` lists: an
    /// owned-set read of only those shards misses nothing. For any two
    /// member sets (weights, announced kinds, `me` in either, both or
    /// neither) and birds of kinds announced or not.
    #[test]
    fn what_a_node_owns_after_a_view_change_is_what_it_kept_plus_its_gained_shards(
        before in proptest::collection::vec((0u8..6, 0u32..3, 0u8..4), 0..6),
        after in proptest::collection::vec((0u8..6, 0u32..3, 0u8..4), 0..6),
        me in 0u8..6,
    ) {
        let view = |v: &[(u8, u32, u8)]| -> Vec<HostedMember> {
            v.iter()
                .map(|&(n, w, k)| {
                    let m = Member::new(format!("node{n}@x"), w);
                    match k {
                        0 => HostedMember::all_kinds(m),
                        1 => HostedMember::hosting(m, ["a"]),
                        2 => HostedMember::hosting(m, ["b"]),
                        _ => HostedMember::hosting(m, ["a", "b"]),
                    }
                })
                .collect()
        };
        let old = KindPlacement::new(256, view(&before)).unwrap();
        let new = old.next(view(&after)).unwrap();
        let me = format!("node{me}@x");
        let gained = new.gained(&old, &me);
        let mine = |p: &KindPlacement, kind: &str, n: &str| {
            p.owner(kind, n).is_ok_and(|o| **o == *me)
        };
        for kind in ["a", "b", "c"] {
            for n in names(400) {
                let owned_now = mine(&new, kind, &n);
                let kept = mine(&old, kind, &n) && owned_now;
                let read = gained.contains(new.shard_of(&n)) && owned_now;
                proptest::prop_assert_eq!(owned_now, kept || read, "{} of {}", n, kind);
                // And no shard is listed that `me` owns for no kind now.
                if gained.contains(new.shard_of(&n)) {
                    proptest::prop_assert!(
                        ["a", "b", "c"].iter().any(|k| mine(&new, k, &n)),
                        "shard of {} gained but not owned", n
                    );
                }
            }
        }
    }
}

#[test]
fn a_node_that_only_loses_shards_to_a_joiner_gains_none() {
    let three = vec![node("a", &["X"]), node("b", &["X"]), node("c", &["X"])];
    let old = build(three.clone());
    let mut four = three;
    four.push(node("d", &["X"]));
    let new = old.next(four).unwrap();
    for me in ["a", "b", "c"] {
        assert!(new.gained(&old, me).is_empty(), "{me} gains nothing");
    }
    let joiner = new.gained(&old, "d");
    assert_eq!(
        joiner.len(),
        new.all().shard_counts()[3],
        "the joiner gains what it owns"
    );
    // And when it leaves again, the others gain exactly what it had.
    let back = new
        .next(vec![
            node("a", &["X"]),
            node("b", &["X"]),
            node("c", &["X"]),
        ])
        .unwrap();
    let regained: usize = ["a", "b", "c"]
        .iter()
        .map(|m| back.gained(&new, m).len())
        .sum();
    assert_eq!(regained, joiner.len());
}
