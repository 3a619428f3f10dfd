//! A rolling restart over real TCP: three nodes hosting stateful counters
//! under a steady call load are restarted one by one (a graceful leave,
//! then a new node under the same name), and no increment is lost and no
//! call fails. The load runs through a client node (weight 0) that is not
//! restarted.

#[path = "support/counter.rs"]
mod counter;
mod support;

use counter::*;
use flock_actix::prelude::*;
use std::time::{Duration, Instant};
use support::*;

const BIRDS: usize = 100;

async fn up_count_is(flock: &Flock, n: usize) -> bool {
    flock.up_count().await.unwrap_or(0) == n
}

#[actix_rt::test]
async fn a_rolling_restart_of_three_nodes_loses_no_counter_and_fails_no_call() {
    init_logs();
    let began = Instant::now();
    let mut nodes = cluster_with(3, with_counter).await;
    let client = TestNode::start("client@127.0.0.1", vec![nodes[0].addr()], |b| {
        with_counter(b).weight(0)
    });
    let via = client.flock.clone();
    wait_until(
        Duration::from_secs(10),
        "the client to see 4 members",
        || {
            let via = via.clone();
            async move { up_count_is(&via, 4).await }
        },
    )
    .await;
    let birds = names("rolling", BIRDS);
    for b in &birds {
        via.start::<Counter>(b, ()).await.unwrap();
    }
    // One increment each: every counter runs before the restarts begin.
    for b in &birds {
        assert_eq!(via.addr::<Counter>(b).send(Incr).await, Ok(1), "{b}");
    }

    let running = load(via.clone(), birds.clone());
    for i in 0..nodes.len() {
        let old = nodes.remove(i);
        let name = old.name();
        let had = owners_on(&via, &birds, &name).await;
        assert!(had > 0, "{name} owns no counter");
        old.flock.leave().await.unwrap();
        old.kill();
        wait_until(
            Duration::from_secs(10),
            "the client to see the leave",
            || {
                let via = via.clone();
                async move { up_count_is(&via, 3).await }
            },
        )
        .await;

        let seed = nodes[0].addr();
        let new = TestNode::start(&name, vec![seed], with_counter);
        let (f, n) = (new.flock.clone(), name.clone());
        wait_until(
            Duration::from_secs(10),
            "the restarted node to rejoin",
            || {
                let (via, f, birds, n) = (via.clone(), f.clone(), birds.clone(), n.clone());
                async move {
                    up_count_is(&via, 4).await
                        && up_count_is(&f, 4).await
                        && owners_on(&via, &birds, &n).await > 0
                }
            },
        )
        .await;
        // The load goes on across the move back: a full round of calls
        // after the node rejoined.
        let after = running.succeeded() + BIRDS as u64;
        wait_until(Duration::from_secs(10), "the load to go on", || {
            let done = running.succeeded() >= after;
            async move { done }
        })
        .await;
        nodes.insert(i, new);
    }
    let (ok, failed) = running.stop().await;
    assert!(failed.is_empty(), "calls failed: {failed:?}");
    let calls: u64 = ok.iter().sum();
    assert!(calls >= 3 * BIRDS as u64, "too little load: {calls} calls");
    let expected: Vec<u64> = ok.iter().map(|n| n + 1).collect();
    let lost = counts_are(&via, &birds, &expected).await;
    assert!(lost.is_empty(), "counters lost increments: {lost:?}");
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "the rolling restart took {:?}",
        began.elapsed()
    );
    drop(client);
}
