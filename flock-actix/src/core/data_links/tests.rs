use super::auth::Session;
use super::*;
use crate::error::Error;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn lanes() -> DataLanes<u32> {
    DataLanes::new(LanesConfig {
        idle_ms: 100,
        max_queued_bytes: 4,
    })
}

#[test]
fn the_first_message_opens_a_link_and_waits_for_it() {
    let mut l = lanes();
    assert_eq!(
        l.route(7, 1, 1, 0),
        vec![Effect::Open { link: 1, shard: 7 }]
    );
    // Another lane while the count is unknown: waits behind the same link.
    assert_eq!(l.route(8, 1, 2, 0), vec![]);
    assert_eq!(l.queued(), 2);
    // Up as lane 1 of 2: shard 7 is lane 1 (sent), shard 8 lane 0 (opens).
    assert_eq!(
        l.up(1, 2, 1, 5),
        vec![
            Effect::Send { link: 1, item: 1 },
            Effect::Open { link: 2, shard: 8 }
        ]
    );
    assert_eq!(l.lanes(), Some(2));
    assert_eq!(l.route(9, 1, 3, 6), vec![Effect::Send { link: 1, item: 3 }]);
    assert_eq!(l.route(10, 1, 4, 6), vec![]);
    assert_eq!(
        l.up(2, 2, 0, 7),
        vec![
            Effect::Send { link: 2, item: 2 },
            Effect::Send { link: 2, item: 4 }
        ]
    );
    assert_eq!(l.queued(), 0);
}

#[test]
fn a_peer_whose_first_link_fails_is_served_by_the_control_link_for_good() {
    let mut l = lanes();
    l.route(7, 1, 1, 0);
    l.route(8, 1, 2, 0);
    assert_eq!(l.failed(1, 1), vec![Effect::Control(1), Effect::Control(2)]);
    assert_eq!(l.route(7, 1, 3, 2), vec![Effect::Control(3)]);
    assert!(l.links().is_empty());
}

#[test]
fn a_lane_whose_link_fails_to_open_stays_on_the_control_link() {
    let mut l = lanes();
    l.route(1, 1, 1, 0);
    l.up(1, 2, 1, 0);
    assert_eq!(
        l.route(2, 1, 2, 0),
        vec![Effect::Open { link: 2, shard: 2 }]
    );
    assert_eq!(l.failed(2, 1), vec![Effect::Control(2)]);
    assert_eq!(l.route(4, 1, 3, 2), vec![Effect::Control(3)]);
    // The other lane keeps its link.
    assert_eq!(l.route(3, 1, 4, 2), vec![Effect::Send { link: 1, item: 4 }]);
}

#[test]
fn an_up_link_that_dies_is_reopened_by_the_next_message() {
    let mut l = lanes();
    l.route(1, 1, 1, 0);
    l.up(1, 2, 1, 0);
    assert_eq!(l.failed(1, 1), vec![]);
    assert_eq!(
        l.route(3, 1, 2, 2),
        vec![Effect::Open { link: 2, shard: 3 }]
    );
}

#[test]
fn an_idle_link_closes_only_after_idle_ms_without_messages() {
    let mut l = lanes();
    l.route(1, 1, 1, 0);
    l.up(1, 2, 1, 0);
    l.route(1, 1, 2, 50);
    assert_eq!(l.idle(1, 120), vec![], "routed to 70 ms ago");
    assert_eq!(l.idle(1, 150), vec![Effect::Close { link: 1 }]);
    assert_eq!(
        l.route(1, 1, 3, 160),
        vec![Effect::Open { link: 2, shard: 1 }]
    );
}

#[test]
fn waiting_messages_are_bounded() {
    let mut l = lanes();
    for i in 0..4 {
        l.route(1, 1, i, 0);
    }
    assert_eq!(l.route(1, 1, 9, 0), vec![Effect::Fail(9)]);
}

#[test]
fn an_answer_that_contradicts_the_shard_fails_the_link() {
    let mut l = lanes();
    l.route(7, 1, 1, 0);
    assert_eq!(
        l.up(1, 2, 0, 0),
        vec![Effect::Close { link: 1 }, Effect::Control(1)]
    );
}

#[test]
fn closing_all_fails_what_waits_and_closes_every_link() {
    let mut l = lanes();
    l.route(1, 1, 1, 0);
    l.up(1, 2, 1, 0);
    l.route(2, 1, 2, 0);
    let mut effects = l.close_all();
    effects.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        effects,
        vec![
            Effect::Close { link: 1 },
            Effect::Close { link: 2 },
            Effect::Fail(2)
        ]
    );
    assert_eq!(l.route(1, 1, 3, 1), vec![Effect::Control(3)]);
}

#[test]
fn lane_of_spreads_shards_and_never_divides_by_zero() {
    assert_eq!(lane_of(5, 0), 0);
    assert_eq!(lane_of(5, 4), 1);
    let counts = (0..1024u32).fold([0u32; 3], |mut c, s| {
        c[lane_of(s, 3) as usize] += 1;
        c
    });
    assert!(
        counts.iter().all(|&n| (341..=342).contains(&n)),
        "{counts:?}"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Route(u32),
    Up(usize),
    Fail(usize),
    Idle(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..6).prop_map(Op::Route),
        2 => (0usize..8).prop_map(Op::Up),
        1 => (0usize..8).prop_map(Op::Fail),
        1 => (0usize..8).prop_map(Op::Idle),
    ]
}

proptest! {
    /// Per shard, messages are delivered in routing order, a path is only
    /// left for another once it is dead, the control link is never left,
    /// and every message is delivered, waiting or failed exactly once.
    #[test]
    fn messages_to_one_shard_keep_their_order_and_none_is_lost(
        ops in proptest::collection::vec(op(), 1..80),
        lanes_count in 1u32..4,
    ) {
        let mut l = DataLanes::new(LanesConfig { idle_ms: 0, max_queued_bytes: 16 });
        let mut opened: Vec<(u64, u32)> = Vec::new();
        let mut dead: BTreeSet<u64> = BTreeSet::new();
        // Path per shard: None = control link.
        let mut last: BTreeMap<u32, (u32, Option<u64>)> = BTreeMap::new();
        let mut shard_of: BTreeMap<u32, u32> = BTreeMap::new();
        let mut settled: BTreeSet<u32> = BTreeSet::new();
        let mut next = 0u32;
        for (now, op) in ops.into_iter().enumerate() {
            let now = now as u64;
            let effects = match op {
                Op::Route(shard) => {
                    next += 1;
                    shard_of.insert(next, shard);
                    l.route(shard, 1, next, now)
                }
                Op::Up(i) => match opened.get(i) {
                    Some(&(link, shard)) if !dead.contains(&link) => {
                        l.up(link, lanes_count, lane_of(shard, lanes_count), now)
                    }
                    _ => continue,
                },
                Op::Fail(i) => match opened.get(i) {
                    Some(&(link, _)) => { dead.insert(link); l.failed(link, now) }
                    None => continue,
                },
                Op::Idle(i) => match opened.get(i) {
                    Some(&(link, _)) => l.idle(link, now),
                    None => continue,
                },
            };
            for e in effects {
                let (item, path) = match e {
                    Effect::Open { link, shard } => { opened.push((link, shard)); continue }
                    Effect::Close { link } => { dead.insert(link); continue }
                    Effect::Fail(item) => { prop_assert!(settled.insert(item)); continue }
                    Effect::Send { link, item } => {
                        prop_assert!(!dead.contains(&link), "sent on closed link {link}");
                        (item, Some(link))
                    }
                    Effect::Control(item) => (item, None),
                };
                prop_assert!(settled.insert(item), "message {item} delivered twice");
                let shard = shard_of[&item];
                if let Some(&(prev, prev_path)) = last.get(&shard) {
                    prop_assert!(prev < item, "shard {shard}: {item} after {prev}");
                    if prev_path != path {
                        prop_assert!(prev_path.is_some(), "left the control link");
                        prop_assert!(dead.contains(&prev_path.unwrap_or(0)), "left a live link");
                    }
                }
                last.insert(shard, (item, path));
            }
        }
        prop_assert_eq!(settled.len() + l.queued(), next as usize);
        let rest = l.close_all();
        let failed = rest.iter().filter(|e| matches!(e, Effect::Fail(_))).count();
        prop_assert_eq!(settled.len() + failed, next as usize);
    }
}

#[test]
fn both_ends_of_a_control_link_derive_the_same_session_and_it_needs_the_cookie() {
    let (hn, cn) = ([1u8; 32], [2u8; 32]);
    let a = Session::derive(b"cookie", &hn, &cn).unwrap();
    let b = Session::derive(b"cookie", &hn, &cn).unwrap();
    assert_eq!(a, b);
    assert_ne!(Session::derive(b"other", &hn, &cn).unwrap().id, a.id);
    assert_ne!(Session::derive(b"cookie", &cn, &hn).unwrap().id, a.id);
}

#[test]
fn data_link_proofs_verify_only_for_their_role_nonces_and_key() {
    let s = Session::derive(b"cookie", &[1; 32], &[2; 32]).unwrap();
    let other = Session::derive(b"cookie", &[1; 32], &[3; 32]).unwrap();
    let (ni, na) = ([7u8; 32], [8u8; 32]);
    let mac_a = s.acceptor_mac(&ni, &na, 5, 2, 1).unwrap();
    assert!(s.verify_acceptor(&ni, &na, 5, 2, 1, &mac_a).is_ok());
    assert_eq!(
        s.verify_acceptor(&ni, &na, 5, 3, 1, &mac_a),
        Err(Error::Link(crate::error::LinkError::WrongCookie))
    );
    assert!(other.verify_acceptor(&ni, &na, 5, 2, 1, &mac_a).is_err());
    let mac_i = s.initiator_mac(&ni, &na, 5).unwrap();
    assert!(s.verify_initiator(&ni, &na, 5, &mac_i).is_ok());
    // A replayed proof with a fresh acceptor nonce, or a reflected one.
    assert!(s.verify_initiator(&ni, &[9; 32], 5, &mac_i).is_err());
    assert!(s.verify_initiator(&ni, &na, 5, &mac_a).is_err());
}
