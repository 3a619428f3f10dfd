//! Partitions injected in the transport: both sides serve every bird, and
//! after healing exactly one instance of each remains; starts and stops made
//! on either side merge as the add-wins CRDT says.

mod support;

use flock_actix::net::{Faults, FaultyNetwork, TcpNetwork};
use flock_actix::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use support::*;

struct Partitioned {
    nodes: Vec<TestNode>,
    faults: Faults,
}

async fn partitionable(n: usize) -> Partitioned {
    init_logs();
    let faults = Faults::new();
    let f = faults.clone();
    let nodes = cluster_with(n, move |b| {
        b.network(Arc::new(FaultyNetwork::new(
            Arc::new(TcpNetwork),
            f.clone(),
        )))
    })
    .await;
    Partitioned { nodes, faults }
}

async fn up_count_is(f: &Flock, n: usize) -> bool {
    f.up_count().await.unwrap_or(0) == n
}

/// Each name runs exactly once across `nodes`.
async fn exactly_one_instance(nodes: &[TestNode], names: &[String]) -> bool {
    let flocks: Vec<&Flock> = nodes.iter().map(|n| &n.flock).collect();
    instances(&flocks, names).await.is_some()
}

#[actix_rt::test]
async fn both_sides_of_a_partition_serve_every_bird_and_healing_leaves_one() {
    let p = partitionable(3).await;
    let birds = names("split", 60);
    for b in &birds {
        p.nodes[0].flock.start::<Echo>(b, 0).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "owners to answer", || {
        all_answer_from_owner(&p.nodes[0].flock, &birds)
    })
    .await;

    // Cut node3 off from the others: a silent partition, not a closed socket.
    p.faults.isolate(&p.nodes[2].addr());
    wait_until(
        Duration::from_secs(5),
        "each side to see only itself",
        || async {
            up_count_is(&p.nodes[0].flock, 2).await
                && up_count_is(&p.nodes[1].flock, 2).await
                && up_count_is(&p.nodes[2].flock, 1).await
        },
    )
    .await;
    for side in [&p.nodes[0].flock, &p.nodes[2].flock] {
        wait_until(
            Duration::from_secs(10),
            "a side to serve every bird",
            || all_answer_from_owner(side, &birds),
        )
        .await;
    }
    // Node3 runs all 60 alone; the majority runs all 60 between them.
    assert_eq!(p.nodes[2].flock.local_birds().await.unwrap().len(), 60);

    p.faults.heal_all();
    wait_until(Duration::from_secs(10), "the mesh to re-form", || async {
        for n in &p.nodes {
            if !up_count_is(&n.flock, 3).await {
                return false;
            }
        }
        true
    })
    .await;
    wait_until(
        Duration::from_secs(10),
        "exactly one instance per bird",
        || exactly_one_instance(&p.nodes, &birds),
    )
    .await;
    for n in &p.nodes {
        assert!(all_answer_from_owner(&n.flock, &birds).await);
    }
}

#[actix_rt::test]
async fn starts_and_stops_during_a_partition_merge_with_add_wins() {
    let p = partitionable(3).await;
    let (majority, minority) = (&p.nodes[0].flock, &p.nodes[2].flock);
    for b in ["old-a", "old-b"] {
        majority.start::<Echo>(b, 0).await.unwrap();
    }
    wait_until(
        Duration::from_secs(5),
        "the minority to learn both birds",
        || async { minority.birds().await.unwrap().len() == 2 },
    )
    .await;

    p.faults.isolate(&p.nodes[2].addr());
    wait_until(Duration::from_secs(5), "the split", || async {
        up_count_is(majority, 2).await && up_count_is(minority, 1).await
    })
    .await;
    // Minority: stops a bird both sides knew, starts a new one.
    minority.stop("old-a").await.unwrap();
    minority.start::<Echo>("new-minority", 0).await.unwrap();
    // Majority: stops old-b, starts a new one; the minority re-starts old-b
    // concurrently (an add it made without seeing the stop).
    majority.stop("old-b").await.unwrap();
    majority.start::<Echo>("new-majority", 0).await.unwrap();
    minority.stop("old-b").await.unwrap();
    minority.start::<Echo>("old-b", 1).await.unwrap();

    p.faults.heal_all();
    let expected: HashSet<String> = ["new-minority", "new-majority", "old-b"]
        .into_iter()
        .map(String::from)
        .collect();
    for n in &p.nodes {
        wait_until(Duration::from_secs(10), "the replicas to merge", || async {
            let got: HashSet<String> = n
                .flock
                .birds()
                .await
                .unwrap()
                .into_iter()
                .map(|(b, _)| b)
                .collect();
            got == expected
        })
        .await;
    }
    // old-a: stopped on one side, not re-added anywhere: stays stopped.
    // old-b: the minority's re-add was concurrent with the majority's stop:
    // add wins, and it runs with the minority's arguments.
    let names: Vec<String> = expected.into_iter().collect();
    wait_until(
        Duration::from_secs(10),
        "exactly one instance per bird",
        || exactly_one_instance(&p.nodes, &names),
    )
    .await;
    assert_eq!(majority.addr::<Echo>("old-b").send(Get).await.unwrap(), 1);
}

#[actix_rt::test]
async fn news_reaches_every_node_even_if_its_origin_dies_after_telling_one() {
    let mut p = partitionable(3).await;
    // node1 can reach node2 but not node3; node2 reaches both.
    p.faults.cut(&p.nodes[0].addr(), &p.nodes[2].addr());
    wait_until(
        Duration::from_secs(5),
        "node1 and node3 to lose each other",
        || async {
            up_count_is(&p.nodes[0].flock, 2).await && up_count_is(&p.nodes[2].flock, 2).await
        },
    )
    .await;
    p.nodes[0].flock.start::<Echo>("rumour", 0).await.unwrap();
    wait_until(Duration::from_secs(5), "node2 to hear of it", || async {
        p.nodes[1].flock.birds().await.unwrap().len() == 1
    })
    .await;
    p.nodes.remove(0).kill();
    let node3 = &p.nodes[1].flock;
    assert_eq!(node3.name(), "node3@127.0.0.1");
    wait_until(
        Duration::from_secs(5),
        "node3 to hear of it through node2",
        || async {
            node3.birds().await.unwrap() == vec![("rumour".to_owned(), "test.Echo".to_owned())]
        },
    )
    .await;
    // And the bird runs (once) on its owner among the survivors.
    wait_until(Duration::from_secs(5), "the rumour to answer", || async {
        node3.addr::<Echo>("rumour").send(Ping).await.as_deref() == Ok("rumour")
    })
    .await;
}
