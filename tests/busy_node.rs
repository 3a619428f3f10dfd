//! A node busy recording or joining a big batch of birds must never look
//! dead to its peers: heartbeats are answered and silence judged on the
//! node's links arbiter, never behind registry work (docs/ARCHITECTURE.md,
//! "Failure detection off the work threads"). Real nodes over TCP, with a
//! failure detector several times stricter than the default.

mod support;

use flock_actix::prelude::*;
use std::time::{Duration, Instant};
use support::*;

/// Enough that recording them (and merging them on every peer) keeps a
/// replica busy for far longer than `DOWN_AFTER_MS` in a test build.
const BIRDS: usize = 40_000;
const HEARTBEAT_MS: u64 = 100;
const DOWN_AFTER_MS: u64 = 400;

fn strict(b: FlockBuilder) -> FlockBuilder {
    b.configure(|c| {
        c.membership.heartbeat_ms = HEARTBEAT_MS;
        c.membership.down_after_ms = DOWN_AFTER_MS;
    })
}

/// Polls every 20 ms until each of `holders` holds `n` birds (counted every
/// 0.5 s: listing them is not free), failing at once if any of `watched`
/// ever sees fewer than `members` up. A peer declared down loses its link
/// and is redialled after ≥ 100 ms, so a flap cannot hide between polls.
async fn busy_phase(watched: &[&Flock], members: usize, holders: &[&Flock], n: usize, what: &str) {
    let start = Instant::now();
    let mut last_count = Instant::now() - Duration::from_secs(1);
    loop {
        for f in watched {
            let up = f.up_count().await.unwrap();
            assert_eq!(
                up,
                members,
                "{} saw only {up} of {members} members up during {what} (after {:?})",
                f.name(),
                start.elapsed()
            );
        }
        if last_count.elapsed() >= Duration::from_millis(500) {
            last_count = Instant::now();
            let mut all = true;
            for f in holders {
                all &= f.birds().await.unwrap().len() == n;
            }
            if all {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_node_recording_or_joining_a_big_batch_never_looks_dead_to_its_peers() {
    init_logs();
    let mut nodes = cluster_with(3, strict).await;
    let flocks: Vec<Flock> = nodes.iter().map(|n| n.flock.clone()).collect();
    let busy = flocks[0].clone();
    let birds = names("busy", BIRDS);
    let batch = birds.clone();
    // One call for every bird: the node records them while its peers merge.
    let recording = actix_rt::spawn(async move {
        busy.start_many::<Echo>(batch.into_iter().map(|n| (n, 0)))
            .await
    });
    let all: Vec<&Flock> = flocks.iter().collect();
    busy_phase(&all, 3, &all, BIRDS, "recording and merging the batch").await;
    let results = recording.await.unwrap().unwrap();
    assert!(results.iter().all(Result::is_ok));

    // A new node merges the whole registry (a full state, in chunks) while
    // its peers send it their own traffic.
    let seed = nodes[0].addr();
    nodes.push(TestNode::start("node4@127.0.0.1", vec![seed], strict));
    let joiner = nodes[3].flock.clone();
    wait_until(
        Duration::from_secs(10),
        "the new node to see every member",
        || {
            let joiner = joiner.clone();
            async move { joiner.up_count().await.unwrap() == 4 }
        },
    )
    .await;
    let mut all = all;
    all.push(&joiner);
    busy_phase(&all, 4, &[&joiner], BIRDS, "the new node's full sync").await;
}
