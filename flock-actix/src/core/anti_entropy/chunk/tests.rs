//! Laws of chunked full-state transfers.

use super::*;
use crate::core::crdt::{BirdSpec, Replica};
use crate::wire::message::Message;
use proptest::prelude::*;

fn rid(node: &str, incarnation: u64) -> ReplicaId {
    ReplicaId {
        node: node.into(),
        incarnation,
    }
}

/// One mutation: on replica `r`, add (with spec `k`) or remove name `n`,
/// or join the other replica's state into `r`.
#[derive(Debug, Clone)]
enum Op {
    Add { r: usize, n: usize, k: u8 },
    Remove { r: usize, n: usize },
    Join { r: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..40usize, any::<u8>()).prop_map(|(r, n, k)| Op::Add { r, n, k }),
        2 => (0..2usize, 0..40usize).prop_map(|(r, n)| Op::Remove { r, n }),
        1 => (0..2usize).prop_map(|r| Op::Join { r }),
    ]
}

fn apply(replicas: &mut [Replica; 2], op: &Op) {
    match *op {
        Op::Add { r, n, k } => {
            let spec = BirdSpec {
                kind: format!("kind{}", k % 3),
                args: vec![k; usize::from(k % 7)],
            };
            replicas[r].add(&format!("bird-{n:03}"), spec, 0).unwrap();
        }
        Op::Remove { r, n } => {
            replicas[r].remove(&format!("bird-{n:03}"));
        }
        Op::Join { r } => {
            let other = replicas[1 - r].state().clone();
            let from = replicas[1 - r].id().clone();
            replicas[r].join(&from, &other).unwrap();
        }
    }
}

fn fresh() -> [Replica; 2] {
    replicas_of("a", "b")
}

/// Two replicas of nodes `x` and `y` (receivers get names of their own: a
/// state may not claim dots of its receiver beyond what it minted).
fn replicas_of(x: &str, y: &str) -> [Replica; 2] {
    [Replica::new(rid(x, 1)), Replica::new(rid(y, 7))]
}

/// Cuts `state` into parts of at most `budget` bytes of items.
fn cut(state: &BirdMap, budget: usize) -> Vec<(BirdMap, bool)> {
    let mut cursor = Cursor::new(state.context().clone());
    let mut parts = Vec::new();
    loop {
        let (part, last) = cursor.next_part(state, budget);
        parts.push((part, last));
        if last {
            return parts;
        }
    }
}

/// Feeds `parts` (index, part, last) to a fresh assembler in the given
/// order, each twice; returns the one state it completes.
fn assemble(from: &ReplicaId, seq: u64, parts: &[(u32, BirdMap, bool)]) -> BirdMap {
    let mut assembler = Assembler::new();
    let mut complete = None;
    for (index, part, last) in parts.iter().chain(parts) {
        match assembler.on_chunk(from, 1, *index, *last, seq, part.clone(), 0) {
            Assembled::Complete { seq: s, state } => {
                assert_eq!(s, seq);
                assert!(complete.replace(state).is_none(), "completed twice");
            }
            Assembled::Pending => {}
            Assembled::Ignored | Assembled::Held => panic!("part {index} not taken"),
        }
    }
    assert_eq!(assembler.pending(), 0);
    complete.expect("every part was delivered")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Cut into parts, delivered in any order and duplicated, a full state
    /// reassembles into exactly the whole; joined into any receiver it does
    /// what the whole does; and no part's frame exceeds the budget.
    #[test]
    fn a_chunked_full_state_joined_in_any_order_equals_the_whole(
        ops in prop::collection::vec(op(), 0..80),
        receiver_ops in prop::collection::vec(op(), 0..30),
        budget in 40..600usize,
        order in prop::collection::vec(any::<u64>(), 64),
    ) {
        let mut replicas = fresh();
        for op in &ops {
            apply(&mut replicas, op);
        }
        let whole = replicas[0].state().clone();
        let mut parts: Vec<(u32, BirdMap, bool)> = cut(&whole, budget)
            .into_iter()
            .enumerate()
            .map(|(i, (part, last))| (i as u32, part, last))
            .collect();
        for (index, part, last) in &parts {
            let frame = Message::SyncChunk {
                session: u64::MAX,
                index: *index,
                last: *last,
                seq: u64::MAX,
                part: part.clone(),
            }
            .encode()
            .unwrap();
            let items = part.len() + part.context().len_vv() + part.context().len_cloud();
            // A part over the budget may only be a single item too big alone.
            prop_assert!(
                frame.len() <= budget + CHUNK_OVERHEAD || items == 1,
                "a part of {} items encodes to {} bytes, budget {}",
                items,
                frame.len(),
                budget
            );
        }
        parts.sort_by_key(|(i, _, _)| order[*i as usize % order.len()] ^ u64::from(*i));
        let assembled = assemble(&rid("a", 1), 5, &parts);
        prop_assert_eq!(&assembled, &whole);

        let mut receivers = replicas_of("c", "d");
        for op in &receiver_ops {
            apply(&mut receivers, op);
        }
        let mut via_parts = receivers[1].clone();
        let mut via_whole = receivers[1].clone();
        let sender = rid("a", 1);
        prop_assert_eq!(
            via_parts.join(&sender, &assembled).unwrap(),
            via_whole.join(&sender, &whole).unwrap()
        );
        prop_assert_eq!(via_parts.state(), via_whole.state());
    }

    /// Parts cut from a state that changes during the transfer assemble
    /// into a state `A` with `S0 ≤ A ≤ S_end`: acknowledging the transfer's
    /// starting seq is sound, and nothing is resurrected or invented.
    #[test]
    fn a_transfer_cut_from_a_changing_state_lies_between_its_start_and_end(
        before in prop::collection::vec(op(), 0..60),
        during in prop::collection::vec(prop::collection::vec(op(), 0..4), 1..30),
        budget in 40..300usize,
    ) {
        let mut replicas = fresh();
        for op in &before {
            apply(&mut replicas, op);
        }
        let start = replicas[0].state().clone();
        let mut cursor = Cursor::new(start.context().clone());
        let mut parts = Vec::new();
        let mut batches = during.iter();
        loop {
            let (part, last) = cursor.next_part(replicas[0].state(), budget);
            parts.push((parts.len() as u32, part, last));
            if last {
                break;
            }
            for op in batches.next().into_iter().flatten() {
                apply(&mut replicas, op);
            }
        }
        let end = replicas[0].state().clone();
        let assembled = assemble(&rid("a", 1), 0, &parts);

        let mut joined = assembled.clone();
        joined.join(&start);
        prop_assert_eq!(&joined, &assembled, "S0 ≤ A");
        let mut joined = end.clone();
        joined.join(&assembled);
        prop_assert_eq!(&joined, &end, "A ≤ S_end");
    }
}

#[test]
fn a_newer_transfer_replaces_an_unfinished_older_one_and_stale_parts_are_ignored() {
    let from = rid("a", 3);
    let mut assembler = Assembler::new();
    let part = BirdMap::default();
    assert_eq!(
        assembler.on_chunk(&from, 1, 0, false, 4, part.clone(), 0),
        Assembled::Pending
    );
    assert_eq!(assembler.pending(), 1);
    // Transfer 2 starts over; transfer 1's parts are stale now.
    assert_eq!(
        assembler.on_chunk(&from, 2, 1, true, 9, part.clone(), 0),
        Assembled::Pending
    );
    assert_eq!(
        assembler.on_chunk(&from, 1, 1, true, 4, part.clone(), 0),
        Assembled::Ignored
    );
    assert_eq!(
        assembler.on_chunk(&rid("a", 2), 5, 0, true, 4, part.clone(), 0),
        Assembled::Ignored,
        "an older incarnation"
    );
    assert_eq!(
        assembler.on_chunk(&from, 2, 2, false, 9, part.clone(), 0),
        Assembled::Ignored,
        "past the part flagged last"
    );
    assert_eq!(
        assembler.on_chunk(&from, 2, MAX_CHUNKS, false, 9, part.clone(), 0),
        Assembled::Ignored
    );
    assert!(matches!(
        assembler.on_chunk(&from, 2, 0, false, 9, part.clone(), 0),
        Assembled::Complete { seq: 9, .. }
    ));
    assert_eq!(
        assembler.on_chunk(&from, 2, 0, false, 9, part, 0),
        Assembled::Pending,
        "a duplicate after completion is only acknowledged"
    );
    assert_eq!(assembler.pending(), 0);
}

/// One step of a focus scenario: at `now`, part `index` (flagged `last`)
/// of session 1 from node `from` arrives; what the assembler makes of it.
struct Step {
    now: u64,
    from: &'static str,
    index: u32,
    last: bool,
    expect: &'static str,
}

fn outcome(a: &Assembled) -> &'static str {
    match a {
        Assembled::Ignored => "ignored",
        Assembled::Pending => "pending",
        Assembled::Held => "held",
        Assembled::Complete { .. } => "complete",
    }
}

fn run_focus_scenario(stale_ms: u64, steps: &[Step]) {
    let mut assembler = Assembler::with_focus(stale_ms);
    for (i, s) in steps.iter().enumerate() {
        let got = assembler.on_chunk(
            &rid(s.from, 1),
            1,
            s.index,
            s.last,
            0,
            BirdMap::default(),
            s.now,
        );
        assert_eq!(
            outcome(&got),
            s.expect,
            "step {i}: part {} of {}",
            s.index,
            s.from
        );
    }
}

const fn step(now: u64, from: &'static str, index: u32, last: bool, expect: &'static str) -> Step {
    Step {
        now,
        from,
        index,
        last,
        expect,
    }
}

#[test]
fn multi_part_transfers_are_taken_one_at_a_time() {
    run_focus_scenario(
        2_000,
        &[
            // a's transfer takes the focus; b's parts wait (not buffered,
            // not acknowledged: b sends them again after its retry time).
            step(0, "a", 0, false, "pending"),
            step(1, "b", 0, false, "held"),
            step(2, "b", 1, false, "held"),
            step(3, "a", 1, false, "pending"),
            // A duplicate of a part a already gave is acknowledged again.
            step(4, "a", 0, false, "pending"),
            step(5, "a", 2, true, "complete"),
            // a is done: b's retransmission takes the focus now.
            step(2_001, "b", 0, false, "pending"),
            step(2_002, "c", 0, false, "held"),
            step(2_003, "b", 1, true, "complete"),
            // b is done: c's retransmission takes the focus.
            step(2_004, "c", 0, false, "pending"),
            // A duplicate of a's done transfer is acknowledged, whoever
            // has the focus.
            step(2_005, "a", 1, false, "pending"),
        ],
    );
}

#[test]
fn a_transfer_of_one_part_is_never_held() {
    run_focus_scenario(
        2_000,
        &[
            step(0, "a", 0, false, "pending"),
            // A small registry's whole state in one part: joined at once.
            step(1, "b", 0, true, "complete"),
            step(2, "a", 1, true, "complete"),
        ],
    );
}

#[test]
fn a_stalled_transfer_loses_the_focus_after_the_stale_time_and_keeps_its_parts() {
    run_focus_scenario(
        2_000,
        &[
            step(0, "a", 0, false, "pending"),
            step(1_999, "b", 0, false, "held"),
            // a went 2 s without a part: b may go on.
            step(2_000, "b", 0, false, "pending"),
            step(2_001, "a", 1, false, "held"),
            step(2_002, "b", 1, true, "complete"),
            // a's part 0 was kept: its transfer completes with part 1.
            step(4_000, "a", 1, true, "complete"),
        ],
    );
}

#[test]
fn without_a_focus_every_transfer_is_taken_at_once() {
    let mut assembler = Assembler::new();
    let part = BirdMap::default();
    for from in ["a", "b", "c"] {
        assert_eq!(
            assembler.on_chunk(&rid(from, 1), 1, 0, false, 0, part.clone(), 0),
            Assembled::Pending
        );
    }
    assert_eq!(assembler.pending(), 3);
}

#[test]
fn a_departed_senders_focus_is_released_at_once() {
    let mut assembler = Assembler::with_focus(2_000);
    let part = BirdMap::default();
    let on = |a: &mut Assembler, from: &str, now| {
        a.on_chunk(&rid(from, 1), 1, 0, false, 0, part.clone(), now)
    };
    assert_eq!(on(&mut assembler, "a", 0), Assembled::Pending);
    assert_eq!(on(&mut assembler, "b", 1), Assembled::Held);
    assembler.forget("a");
    assert_eq!(on(&mut assembler, "b", 2), Assembled::Pending);
}
