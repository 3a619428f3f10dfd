//! Issue #10 target 2 (replica side), in process: where a registry
//! replica's heap goes, per bird, measured with the counting allocator.
//!
//! `registry_memory` measures a real weight-0 node end to end (its replica
//! plus whatever the runtime keeps); this row builds only the replica's
//! state, the way such a node receives it (deltas of 10k birds from a
//! client), and the same entries as a plain `BTreeMap<String, Vec<(Dot,
//! Entry)>>` (the map the encoding denotes, and the layout up to stop 15),
//! and splits both into names, kinds, arguments, per-entry records and the
//! ordered tree. Seconds, not minutes: the quick check for layout work.

use crate::Row;
use crate::benches::scale;
use crate::scale::label;
use crate::tap::{ALLOC_ON, HEAP};
use flock_actix::core::crdt::store::{INLINE_ARGS, SLOT_BYTES};
use flock_actix::core::crdt::{BirdMap, BirdSpec, Dot, Entry, Replica, ReplicaId};
use serde_json::json;
use std::collections::BTreeMap;

type DotList = Vec<(Dot, Entry)>;
use std::sync::atomic::Ordering::Relaxed;

/// Birds per delta, as `start_many` records them.
const BATCH: usize = 10_000;

fn heap() -> i64 {
    HEAP.load(Relaxed)
}

fn id(node: &str) -> ReplicaId {
    ReplicaId {
        node: node.into(),
        incarnation: 1_764_000_000_000,
    }
}

/// The bench's birds: `rm<n>-<i>`, kind `bench.Sink`, arguments a `u64` 0.
fn spec() -> BirdSpec {
    BirdSpec {
        kind: "bench.Sink".into(),
        args: rmp_serde::to_vec(&0u64).expect("a u64 encodes"),
    }
}

/// A replica that received `n` birds from a client in deltas of
/// [`BATCH`], with its heap bytes; and the same entries inserted in the
/// same order into a plain map, with its heap bytes. Only the growth
/// around each join (each insert) is counted: the client's state and the
/// deltas are not.
fn received(n: usize) -> (Replica, i64, BTreeMap<String, DotList>, i64) {
    let client_id = id(&format!("rmclient-{n}@127.0.0.1"));
    let mut client = Replica::new(client_id.clone());
    let mut replica = Replica::new(id("rmreplica@127.0.0.1"));
    let mut plain = BTreeMap::new();
    let (mut compact_bytes, mut plain_bytes) = (0, 0);
    let mut now = 1_764_000_000_000u64;
    for start in (0..n).step_by(BATCH) {
        let mut batch = BirdMap::default();
        for i in start..(start + BATCH).min(n) {
            let delta = client
                .add(&format!("rm{n}-{i}"), spec(), now)
                .expect("counter not exhausted");
            batch.join_delta(&delta);
            now += 1;
        }
        let mark = heap();
        replica.join(&client_id, &batch).expect("an honest client");
        compact_bytes += heap() - mark;
        let mark = heap();
        for (name, mut list) in batch.stored() {
            let name = name.to_owned();
            // As the join did up to stop 15: one exact-capacity list per name.
            list.shrink_to_fit();
            plain.insert(name, list);
        }
        plain_bytes += heap() - mark;
    }
    (replica, compact_bytes, plain, plain_bytes)
}

pub fn registry_layout() -> Vec<Row> {
    let n = scale(100_000);
    ALLOC_ON.store(true, Relaxed);
    let (replica, compact, map, plain_bytes) = received(n);
    ALLOC_ON.store(false, Relaxed);
    let state = replica.state();
    let per = |b: usize| b as f64 / n as f64;
    let names: usize = state.iter().map(|(name, _)| name.len()).sum();
    let (kinds, args): (usize, usize) = map.values().flatten().fold((0, 0), |(k, a), (_, e)| {
        (k + e.spec.kind.len(), a + e.spec.args.len())
    });
    let lists = map.values().map(|l| l.len()).sum::<usize>() * size_of::<(Dot, Entry)>();
    let plain_tree = plain_bytes as usize - names - kinds - args - lists;
    let slots = state.len() * SLOT_BYTES;
    // Short arguments live in the slot; only longer ones have a heap block.
    let boxed_args: usize = map
        .values()
        .flatten()
        .map(|(_, e)| e.spec.args.len())
        .filter(|&len| len > INLINE_ARGS)
        .sum();
    let compact_rest = (compact as usize).saturating_sub(names + boxed_args + slots);
    let heap = compact as f64 / n as f64;
    vec![
        Row::new(&format!("registry_layout_{}_heap", label(n)), "B/bird", vec![heap])
            .target("<= 100 B/bird", heap <= 100.0)
            .layout("in process: one replica joining deltas of 10k birds, counting allocator")
            .extra(json!({
                "birds": n,
                "compact": {"total": heap, "names": per(names), "args": per(boxed_args),
                    "slots": per(slots), "tree_tables_context": per(compact_rest)},
                "plain_btreemap": {"total": per(plain_bytes as usize), "names": per(names),
                    "kinds": per(kinds), "args": per(args), "dot_lists": per(lists),
                    "tree": per(plain_tree)},
            }))
            .note("live heap of the replica's state alone, per bird; `extra` splits it, next to the same entries in a plain BTreeMap<String, Vec<(Dot, Entry)>> (the layout up to stop 15)"),
    ]
}
