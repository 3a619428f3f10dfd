//! A registry many times the frame cap syncs between nodes over real TCP:
//! the full state travels in bounded chunks, paced by acknowledgements,
//! while the nodes keep answering each other's heartbeats.

mod support;

use flock_actix::prelude::*;
use std::time::Duration;
use support::*;

/// 64 KiB, the smallest frame cap a node accepts; 20k birds are ≈ 2 MB.
const SMALL_FRAME: usize = 64 * 1024;
const BIRDS: usize = 20_000;

fn small_frames(b: FlockBuilder) -> FlockBuilder {
    b.configure(|c| c.max_frame = SMALL_FRAME)
}

/// Waits until `flock` holds `n` birds, asserting on every poll that
/// neither node ever saw the other down (a node busy syncing must not
/// look dead).
async fn wait_for_birds(flock: &Flock, n: usize, both: [&Flock; 2], what: &str) {
    wait_until(Duration::from_secs(60), what, || async {
        for f in both {
            assert_eq!(
                f.up_count().await.unwrap(),
                2,
                "{} lost its peer during the sync",
                f.name()
            );
        }
        flock.birds().await.unwrap().len() == n
    })
    .await;
}

#[actix_rt::test]
async fn a_registry_many_times_the_frame_cap_syncs_fully_to_a_new_node() {
    init_logs();
    let first = TestNode::start("node1@127.0.0.1", vec![], small_frames);
    let birds = names("chunked", BIRDS);
    // In batches well over the cap too: a batch is one delta.
    for batch in birds.chunks(5_000) {
        let results = first
            .flock
            .start_many::<Echo>(batch.iter().map(|n| (n.clone(), 0)))
            .await
            .unwrap();
        assert!(results.iter().all(Result::is_ok));
    }
    let second = TestNode::start("node2@127.0.0.1", vec![first.addr()], small_frames);
    let both = [&first.flock, &second.flock];
    wait_until(
        Duration::from_secs(10),
        "the two nodes to see each other",
        || async {
            first.flock.up_count().await.unwrap() == 2
                && second.flock.up_count().await.unwrap() == 2
        },
    )
    .await;
    wait_for_birds(
        &second.flock,
        BIRDS,
        both,
        "the new node to hold every bird",
    )
    .await;
    let mut held: Vec<String> = second
        .flock
        .birds()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    held.sort();
    let mut expected = birds.clone();
    expected.sort();
    assert_eq!(held, expected);

    // And back: a batch started on the new node, again over the cap, and
    // stops, reach the first node.
    let more = names("chunked-back", 3_000);
    second
        .flock
        .start_many::<Echo>(more.iter().map(|n| (n.clone(), 0)))
        .await
        .unwrap();
    for name in &birds[..100] {
        second.flock.stop(name).await.unwrap();
    }
    wait_for_birds(
        &first.flock,
        BIRDS + 3_000 - 100,
        both,
        "the first node to hold the new batch and the stops",
    )
    .await;
    let flocks = [&first.flock, &second.flock];
    wait_until(
        Duration::from_secs(30),
        "every live bird to run once",
        || async {
            let mut live: Vec<String> = birds[100..].to_vec();
            live.extend(more.iter().cloned());
            instances(&flocks, &live).await.is_some()
        },
    )
    .await;
}
