//! Prints the placement figures recorded in docs/ARCHITECTURE.md:
//! lookup cost, table rebuild time, load balance by shard count, and the
//! balance of a 128-vnode hash ring (what Flock and Horde use) for contrast.
//!
//! Run: `cargo run --release -p flock-actix --example placement_figures`

use flock_actix::core::placement::{DEFAULT_SHARDS, Member, Placement, name_hash};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Instant;

fn node_names(set: u64, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("n{:x}@10.0.{set}.{i}", name_hash(&format!("{set}/{i}"))))
        .collect()
}

fn members(names: &[String]) -> Vec<Member> {
    names.iter().map(|n| Member::new(n.as_str(), 1)).collect()
}

fn max_over_mean(counts: impl Iterator<Item = usize>, total: usize, n: usize) -> f64 {
    counts.max().unwrap_or(0) as f64 / (total as f64 / n as f64)
}

/// Median of `runs` timings of `f`, in nanoseconds per `per` operations.
fn median_ns(runs: usize, per: usize, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / per as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let birds: Vec<String> = (0..100_000).map(|i| format!("bird:{i}")).collect();

    println!("== lookup cost (100k names, 10 nodes, {DEFAULT_SHARDS} shards)");
    let p = Placement::new(DEFAULT_SHARDS, members(&node_names(0, 10))).unwrap();
    let lookup = median_ns(15, birds.len(), || {
        for b in &birds {
            black_box(p.owner(black_box(b)).unwrap());
        }
    });
    let hash_only = median_ns(15, birds.len(), || {
        for b in &birds {
            black_box(name_hash(black_box(b)));
        }
    });
    let shards: Vec<u32> = birds.iter().map(|b| p.shard_of(b)).collect();
    let by_shard = median_ns(15, shards.len(), || {
        for &s in &shards {
            black_box(p.owner_of_shard(black_box(s)).unwrap());
        }
    });
    println!("owner(name): {lookup:.1} ns median; of which xxh3 of the name: {hash_only:.1} ns");
    println!("owner_of_shard(shard), the shard cached with the name: {by_shard:.1} ns");
    for shards in [1_024, 16_384, DEFAULT_SHARDS] {
        let p = Placement::new(shards, members(&node_names(0, 10))).unwrap();
        let ns = median_ns(15, birds.len(), || {
            for b in &birds {
                black_box(p.owner(black_box(b)).unwrap());
            }
        });
        println!("owner(name) with {shards:>6} shards: {ns:.1} ns");
    }

    println!("== table rebuild ({DEFAULT_SHARDS} shards)");
    for n in [3, 10, 50] {
        let ms = members(&node_names(1, n));
        let ns = median_ns(9, 1, || {
            black_box(Placement::new(DEFAULT_SHARDS, ms.clone()).unwrap());
        });
        println!("{n:>3} nodes: {:.2} ms", ns / 1e6);
    }

    println!("== load max/mean, 10 equal nodes, 100k names, 20 random node sets");
    for shards in [4_096, 16_384, DEFAULT_SHARDS] {
        let (mut worst, mut sum) = (0.0f64, 0.0);
        for set in 0..20 {
            let p = Placement::new(shards, members(&node_names(set, 10))).unwrap();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for b in &birds {
                *counts.entry(p.owner(b).unwrap()).or_default() += 1;
            }
            let r = max_over_mean(counts.into_values(), birds.len(), 10);
            worst = worst.max(r);
            sum += r;
        }
        println!(
            "{shards:>6} shards: mean {:.3}, worst {worst:.3}",
            sum / 20.0
        );
    }
    let (mut worst, mut sum) = (0.0f64, 0.0);
    for set in 0..20 {
        let mut ring = BTreeMap::new();
        for node in node_names(set, 10) {
            for v in 0..128 {
                ring.insert(name_hash(&format!("{node}#{v}")), node.clone());
            }
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for b in &birds {
            let h = name_hash(b);
            let owner = ring
                .range(h..)
                .next()
                .or_else(|| ring.iter().next())
                .unwrap()
                .1;
            *counts.entry(owner.as_str()).or_default() += 1;
        }
        let r = max_over_mean(counts.into_values(), birds.len(), 10);
        worst = worst.max(r);
        sum += r;
    }
    println!("128-vnode ring: mean {:.3}, worst {worst:.3}", sum / 20.0);
}
