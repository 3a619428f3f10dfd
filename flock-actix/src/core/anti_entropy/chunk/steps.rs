//! The steps of one full-state transfer of many names, timed one by one in
//! this process, each as it is now and as it was before stop 21 (the old
//! code kept here, inline; the decode's "before" is rmp-serde's, as before
//! stop 22): `cargo test --release -p flock-actix --lib -- --ignored
//! --nocapture a_transfer_of_many_names_step_by_step` (`FLOCK_STEP_NAMES`,
//! default 1 M). Figures: docs/BENCHMARKS.md "Stop 21: the joiner" and
//! "Stop 22: decoding registry frames". Ignored: a measurement, not a check (it checks only that
//! both ways give the same state).

use super::*;
use crate::core::crdt::{BirdSpec, Replica};
use crate::wire::message::Message;
use std::sync::Arc;
use std::time::Instant;

fn rid(node: &str, incarnation: u64) -> ReplicaId {
    ReplicaId {
        node: node.into(),
        incarnation,
    }
}

/// The sender's cut before stop 21: each name materialized, sized, and
/// inserted (interned again) into the part.
fn old_next_part(after: &mut Option<String>, state: &BirdMap, budget: usize) -> (BirdMap, bool) {
    let mut part = BirdMap::default();
    let mut used = 0usize;
    let mut last = None;
    let mut full = false;
    for (name, list) in state.store.iter_after(after.as_deref()) {
        let cost = name_bound(name, &list);
        if last.is_some() && used + cost > budget {
            full = true;
            break;
        }
        used += cost;
        part.store.insert(name, list);
        last = Some(name.to_owned());
    }
    if last.is_some() {
        *after = last;
    }
    (part, !full)
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[test]
#[ignore = "a measurement: run it in release with --nocapture"]
fn a_transfer_of_many_names_step_by_step() {
    let n: usize = std::env::var("FLOCK_STEP_NAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let budget = (1usize << 20) - CHUNK_OVERHEAD;
    let sender = rid("mbclient-1000000@127.0.0.1", 1_795_859_000_000);
    let mut client = Replica::new(sender.clone());
    let spec = BirdSpec {
        kind: "flock_bench::birds::Sink".into(),
        args: vec![0],
    };
    let names: Vec<String> = (0..n).map(|i| format!("mb{n}-{i}")).collect();
    for batch in names.chunks(10_000) {
        client.add_new(batch.iter().map(|name| (name.as_str(), &spec)), 1);
    }
    let state = client.state();
    println!("{n} names; step: before / now (s)");

    // The sender: cut every part (and the copy kept for retransmission).
    let t = Instant::now();
    let mut after = None;
    let mut old_parts = 0;
    loop {
        let (part, last) = old_next_part(&mut after, state, budget);
        std::hint::black_box(part.clone());
        old_parts += 1;
        if last {
            break;
        }
    }
    let old_cut = secs(t);
    let t = Instant::now();
    let mut cursor = Cursor::new(state.context().clone());
    let mut parts = Vec::new();
    loop {
        let (part, last) = cursor.next_part(state, budget);
        std::hint::black_box(part.clone());
        parts.push((part, last));
        if last {
            break;
        }
    }
    let new_cut = secs(t);
    assert_eq!(parts.len(), old_parts, "both cut the same parts");
    println!("cut {} parts: {old_cut:.3} / {new_cut:.3}", parts.len());

    // Encoding on the sender (unchanged), decoding on the receiver.
    let t = Instant::now();
    let frames: Vec<bytes::BytesMut> = parts
        .iter()
        .enumerate()
        .map(|(i, (part, last))| {
            Message::SyncChunk {
                session: 1,
                index: i as u32,
                last: *last,
                seq: 7,
                part: part.clone(),
            }
            .encode()
            .unwrap()
        })
        .collect();
    println!("encode: {:.3}", secs(t));
    let largest = frames.iter().map(|f| f.len()).max().unwrap_or(0);
    let part_of = |msg| match msg {
        Message::SyncChunk { part, .. } => part,
        _ => unreachable!("a chunk"),
    };
    // Through serde (before stop 22), then read into the layout.
    let t = Instant::now();
    let old_decoded: Vec<BirdMap> = frames
        .iter()
        .map(|f| part_of(Message::decode_general(f).unwrap()))
        .collect();
    let old_decode = secs(t);
    let t = Instant::now();
    let decoded: Vec<BirdMap> = frames
        .iter()
        .map(|f| part_of(Message::decode(f).unwrap()))
        .collect();
    let new_decode = secs(t);
    assert_eq!(decoded, old_decoded, "both decode the same parts");
    drop(old_decoded);
    println!("decode: {old_decode:.3} / {new_decode:.3} (largest frame {largest} B)");

    // The receiver: assemble.
    let t = Instant::now();
    let mut old_whole = BirdMap::default();
    for part in decoded.clone() {
        for (name, list) in part.store.iter() {
            for (dot, _) in &list {
                old_whole.ctx.insert(dot.clone());
            }
            old_whole.store.insert(name, list);
        }
        old_whole.ctx.join(&part.ctx);
    }
    let old_assemble = secs(t);
    let t = Instant::now();
    let mut assembler = Assembler::with_focus(2_000);
    let count = decoded.len();
    let mut whole = None;
    for (i, part) in decoded.into_iter().enumerate() {
        let last = i + 1 == count;
        if let Assembled::Complete { state, .. } =
            assembler.on_chunk(&sender, 1, i as u32, last, 7, part, 0)
        {
            whole = Some(state);
        }
    }
    let new_assemble = secs(t);
    let whole = whole.expect("complete");
    assert_eq!(whole, old_whole);
    println!("assemble: {old_assemble:.3} / {new_assemble:.3}");

    // The receiver: join into its empty replica, then the Registry's list.
    let joiner = rid("mb4@127.0.0.1", 1);
    let t = Instant::now();
    let mut old_replica = Replica::new(joiner.clone());
    let changes = old_replica.join(&sender, &old_whole).unwrap();
    let old_join = secs(t);
    let t = Instant::now();
    let old_list: Vec<(Arc<str>, BirdSpec)> = changes
        .added
        .into_iter()
        .filter_map(|name| {
            let spec = old_replica.state().get(&name)?;
            Some((Arc::from(name), spec))
        })
        .collect();
    let old_notify = secs(t);
    let t = Instant::now();
    let mut replica = Replica::new(joiner);
    let (changes, _) = replica.join_owned(&sender, whole).unwrap();
    let new_join = secs(t);
    let t = Instant::now();
    assert_eq!(changes.added.len(), replica.state().len());
    let list: Vec<(Arc<str>, BirdSpec)> = replica.state().specs().map(BirdSpec::named).collect();
    let new_notify = secs(t);
    assert_eq!(replica.state(), old_replica.state());
    assert_eq!(list, old_list);
    println!("join into the empty replica: {old_join:.3} / {new_join:.3}");
    println!("the Registry's change list: {old_notify:.3} / {new_notify:.3}");
}
