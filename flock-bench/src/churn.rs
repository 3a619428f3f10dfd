//! `__churn_memory CYCLES SAMPLES`: issue #9 item 14. Under long start/stop
//! churn a node's RSS grew (≈ 21 → 40 MiB over 4.7 M cycles on 3 nodes).
//! Leak or allocator high-water? Three nodes run in this one process over
//! the in-memory network; every `CYCLES / SAMPLES` cycles it prints the live
//! heap bytes (counted by [`crate::tap::CountingAlloc`]: allocated and not
//! freed), the RSS, and the RSS after `malloc_trim` (what the allocator
//! holds but could give back). A leak grows the live heap; high-water
//! grows only the RSS. Run it with
//! `cargo run --profile test -p flock-bench -- __churn_memory 1000000 10`.

use crate::birds::{Sink, rss_bytes, rss_untrimmed};
use flock_actix::prelude::*;
use flock_actix::testing::MemoryNetwork;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const NODES: usize = 3;

pub fn churn_main(args: &[String]) {
    let cycles: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let samples: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let every = (cycles / samples.max(1)).max(1);
    crate::tap::ALLOC_ON.store(true, Relaxed);
    let sys = actix::System::new();
    sys.block_on(async move {
        let memory = Arc::new(MemoryNetwork::new());
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let seeds: Vec<String> = (0..NODES)
                .filter(|&j| j != i)
                .map(|j| format!("c{j}:1"))
                .collect();
            let flock = Flock::builder(format!("c{i}"))
                .listen(format!("c{i}:1"))
                .seeds(seeds)
                .network(memory.clone())
                .arbiters(0)
                .bird::<Sink>()
                .start()
                .await
                .expect("node starts");
            nodes.push(flock);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            while node.up_count().await.unwrap_or(0) < NODES {
                assert!(Instant::now() < deadline, "the nodes did not link");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        println!("cycles\tlive_heap_bytes\trss_bytes\trss_after_trim_bytes\tregistry\tseconds");
        let began = Instant::now();
        let sample = |cycles: u64, registry: usize| {
            let heap = crate::tap::HEAP.load(Relaxed);
            let rss = rss_untrimmed();
            let trimmed = rss_bytes();
            println!(
                "{cycles}\t{heap}\t{rss}\t{trimmed}\t{registry}\t{:.0}",
                began.elapsed().as_secs_f64()
            );
        };
        sample(0, 0);
        let mut failed = 0u64;
        for i in 0..cycles {
            let node = &nodes[(i % NODES as u64) as usize];
            let name = format!("churn-{i}");
            if node.start::<Sink>(&name, 0).await.is_err() || node.stop(&name).await.is_err() {
                failed += 1;
            }
            if (i + 1) % every == 0 {
                // Let deltas, acks and stops settle before looking.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let registry = nodes[0].birds().await.map_or(0, |b| b.len());
                sample(i + 1, registry);
            }
        }
        // Idle: what is kept for a while only (relays, unacknowledged
        // deltas, buffers) goes; what stays after this would be a leak.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let registry = nodes[0].birds().await.map_or(0, |b| b.len());
        sample(cycles, registry);
        println!("failed cycles: {failed} (the last row: after 15 s idle)");
        for node in &nodes {
            node.shutdown();
        }
    });
}
