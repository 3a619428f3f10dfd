//! Ordered state handoff over real TCP: birds that move while their old
//! owner is alive (a join, a graceful leave) keep their state, and calls
//! made during the move do not fail.

#[path = "support/counter.rs"]
mod counter;
mod support;

use counter::*;
use std::time::Duration;
use support::*;

#[actix_rt::test]
async fn moved_birds_keep_their_counts_on_a_join_and_a_graceful_leave_under_load() {
    init_logs();
    let mut nodes = cluster_with(2, with_counter).await;
    let birds = names("counter", 50);
    for b in &birds {
        nodes[0].flock.start::<Counter>(b, ()).await.unwrap();
    }
    let via = nodes[0].flock.clone();
    // Five increments each before anything moves.
    for _ in 0..5 {
        for b in &birds {
            via.addr::<Counter>(b).send(Incr).await.unwrap();
        }
    }

    // A third node joins under a steady call load.
    let running = load(via.clone(), birds.clone());
    let third = TestNode::start("node3@127.0.0.1", vec![nodes[0].addr()], with_counter);
    let third_name = third.name();
    wait_until(Duration::from_secs(10), "the third node to be up", || {
        let via = via.clone();
        async move { via.up_count().await.unwrap_or(0) == 3 }
    })
    .await;
    // Let the load run across the move, and until the birds answer there.
    wait_until(Duration::from_secs(10), "birds to answer on node3", || {
        let (via, birds) = (via.clone(), birds.clone());
        let third = third_name.clone();
        async move { owners_on(&via, &birds, &third).await > 0 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed) = running.stop().await;
    assert!(
        failed.is_empty(),
        "calls failed during the join: {failed:?}"
    );
    let moved = owners_on(&via, &birds, &third_name).await;
    assert!(moved > 0, "no bird moved to the new node");
    let expected: Vec<u64> = ok.iter().map(|n| n + 5).collect();
    let wrong = counts_are(&via, &birds, &expected).await;
    assert!(wrong.is_empty(), "{moved} moved; counts lost: {wrong:?}");

    // node2 leaves gracefully, under load: its birds keep their counts.
    let running = load(via.clone(), birds.clone());
    let leaving = nodes.pop().unwrap();
    let leaving_name = leaving.name();
    let had = owners_on(&via, &birds, &leaving_name).await;
    assert!(had > 0, "node2 owns no bird");
    leaving.flock.leave().await.unwrap();
    leaving.kill();
    wait_until(Duration::from_secs(10), "node2 to be gone", || {
        let via = via.clone();
        async move { via.up_count().await.unwrap_or(0) == 2 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok2, failed) = running.stop().await;
    assert!(
        failed.is_empty(),
        "calls failed during the leave: {failed:?}"
    );
    let expected: Vec<u64> = expected.iter().zip(&ok2).map(|(a, b)| a + b).collect();
    let wrong = counts_are(&via, &birds, &expected).await;
    assert!(
        wrong.is_empty(),
        "{had} handed over by the leave; counts lost: {wrong:?}"
    );
    drop(third);
}

#[actix_rt::test]
async fn birds_of_a_killed_owner_hatch_from_their_arguments_on_the_survivor_within_a_bound() {
    init_logs();
    let mut nodes = cluster_with(2, with_counter).await;
    let birds = names("orphan", 30);
    let via = nodes[0].flock.clone();
    for b in &birds {
        via.start::<Counter>(b, ()).await.unwrap();
        via.addr::<Counter>(b).send(Incr).await.unwrap();
    }
    let dead = nodes.pop().unwrap();
    let dead_name = dead.name();
    let orphans: Vec<String> = birds
        .iter()
        .filter(|b| via.owner_of(b).is_ok_and(|o| o == dead_name))
        .cloned()
        .collect();
    assert!(!orphans.is_empty(), "node2 owns no counter");
    // No leave: the state dies with the node, and nobody is waited for
    // longer than the handoff wait.
    dead.kill();
    let t = std::time::Instant::now();
    wait_until(
        Duration::from_secs(10),
        "the orphans to answer from scratch",
        || {
            let (via, orphans) = (via.clone(), orphans.clone());
            async move {
                let zeros = vec![0; orphans.len()];
                counts_are(&via, &orphans, &zeros).await.is_empty()
            }
        },
    )
    .await;
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "orphans took {:?} to hatch again",
        t.elapsed()
    );
    // The survivor's own counters kept their counts.
    let kept: Vec<String> = birds
        .iter()
        .filter(|b| !orphans.contains(b))
        .cloned()
        .collect();
    let ones = vec![1; kept.len()];
    assert_eq!(counts_are(&via, &kept, &ones).await, Vec::<String>::new());
}
