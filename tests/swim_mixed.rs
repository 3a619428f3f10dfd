//! A rolling upgrade to the SWIM detector (docs/ARCHITECTURE.md §34): nodes
//! that probe and nodes of an earlier build (the hidden
//! `FlockConfig::swim = false` behaves like one: it sends no probe frames
//! and drops those it receives) share a cluster over TCP. Links stay up, and
//! silence is still judged on both kinds of peer: by probes between nodes
//! of this build, by heartbeats wherever an earlier build is involved.

mod support;

use flock_actix::net::{Faults, FaultyNetwork, TcpNetwork};
use flock_actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn faulty(
    faults: &Faults,
    swim: bool,
) -> impl FnOnce(FlockBuilder) -> FlockBuilder + Send + 'static {
    let faults = faults.clone();
    move |b: FlockBuilder| {
        b.network(Arc::new(FaultyNetwork::new(Arc::new(TcpNetwork), faults)))
            .configure(move |c| c.swim = swim)
    }
}

async fn ups(nodes: &[&TestNode]) -> Vec<usize> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.flock.up_count().await.unwrap_or(0));
    }
    out
}

#[actix_rt::test]
async fn nodes_of_an_earlier_build_stay_linked_and_silence_is_judged_on_both_kinds() {
    init_logs();
    let faults = Faults::new();
    let a = TestNode::start("new-a@127.0.0.1", vec![], faulty(&faults, true));
    let b = TestNode::start("new-b@127.0.0.1", vec![a.addr()], faulty(&faults, true));
    let old = TestNode::start("old@127.0.0.1", vec![a.addr()], faulty(&faults, false));
    let all = [&a, &b, &old];
    let flocks: Vec<Flock> = all.iter().map(|n| n.flock.clone()).collect();
    meshed(&flocks, Duration::from_secs(10)).await;

    // Three seconds (fifteen protocol periods): every poll sees every node
    // up everywhere. A probe frame that closed the old node's links, or a
    // peer nobody judged alive, would show here as a flap.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(ups(&all).await, [3, 3, 3], "a member flapped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A node of this build goes silent: the other new node drops it by
    // probes, the old node by heartbeats; and it drops both.
    faults.isolate(&b.addr());
    wait_until(Duration::from_secs(5), "everyone to drop new-b", || async {
        ups(&all).await == [2, 1, 2]
    })
    .await;
    faults.heal_all();
    meshed(&flocks, Duration::from_secs(10)).await;

    // The old node goes silent: both new nodes drop it (heartbeats), and
    // keep each other (probes).
    faults.isolate(&old.addr());
    wait_until(Duration::from_secs(5), "everyone to drop old", || async {
        ups(&all).await == [2, 2, 1]
    })
    .await;
}
