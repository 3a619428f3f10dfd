//! A node that fell far behind catches up by its missing deltas, in bounded
//! batches paced by acknowledgements, not by one frame that grows with the
//! registry nor by a full-state transfer: real TCP, a 64 KiB frame cap.

mod support;

use flock_actix::prelude::*;
use flock_actix::testing::{CountingNetwork, Faults, FaultyNetwork};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

/// 64 KiB, the smallest frame cap a node accepts; 20k birds are ≈ 2 MB.
const SMALL_FRAME: usize = 64 * 1024;
const BIRDS: usize = 20_000;

#[actix_rt::test]
async fn a_far_behind_node_catches_up_by_bounded_delta_batches() {
    init_logs();
    let faults = Faults::new();
    let counting = CountingNetwork::default();
    let (f, c) = (faults.clone(), counting.clone());
    let first = TestNode::start("node1@127.0.0.1", vec![], move |b| {
        b.configure(|c| c.max_frame = SMALL_FRAME)
            .network(Arc::new(FaultyNetwork::new(Arc::new(c), f)))
    });
    let f = faults.clone();
    let second = TestNode::start("node2@127.0.0.1", vec![first.addr()], move |b| {
        b.configure(|c| c.max_frame = SMALL_FRAME)
            .network(Arc::new(FaultyNetwork::new(
                Arc::new(CountingNetwork::default()),
                f,
            )))
    });
    let (a, b) = (first.flock.clone(), second.flock.clone());
    wait_until(Duration::from_secs(10), "the two nodes to link", || async {
        a.up_count().await.unwrap() == 2 && b.up_count().await.unwrap() == 2
    })
    .await;

    // The second node drops off the network while the first records
    // thousands of birds, each batch far over one frame.
    faults.cut(&first.addr(), &second.addr());
    wait_until(
        Duration::from_secs(10),
        "each node to see the other down",
        || async { a.up_count().await.unwrap() == 1 && b.up_count().await.unwrap() == 1 },
    )
    .await;
    let birds = names("behind", BIRDS);
    for batch in birds.chunks(2_000) {
        let results = a
            .start_many::<Echo>(batch.iter().map(|n| (n.clone(), 0)))
            .await
            .unwrap();
        assert!(results.iter().all(Result::is_ok));
    }
    counting.tally.lock().unwrap().clear();
    counting.max.store(0, Ordering::Relaxed);

    faults.heal_all();
    wait_until(
        Duration::from_secs(60),
        "the second node to catch up",
        || async { b.birds().await.unwrap().len() == BIRDS },
    )
    .await;
    let tally = counting.tally.lock().unwrap().clone();
    let deltas = tally.get("SyncDeltas").map_or(0, |(frames, _)| *frames);
    assert!(
        deltas >= 20,
        "the catch-up took {deltas} delta frames; expected many bounded batches: {tally:?}"
    );
    assert!(
        !tally.contains_key("SyncChunk") && !tally.contains_key("SyncFull"),
        "a full state was sent instead of the missing deltas: {tally:?}"
    );
    let max = counting.max.load(Ordering::Relaxed);
    assert!(
        max <= SMALL_FRAME as u64 / 2,
        "a frame of {max} bytes; the cap is {SMALL_FRAME}"
    );
}
