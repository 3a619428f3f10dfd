//! Several nodes over real TCP on 127.0.0.1: placement, convergence, node
//! loss, joins, leaves, authentication, client nodes.

mod support;

use flock_actix::prelude::*;
use std::time::Duration;
use support::*;

#[actix_rt::test]
async fn three_nodes_share_300_birds_and_owners_answer() {
    init_logs();
    let nodes = cluster(3).await;
    let birds = names("bird", 300);
    start_all(&nodes[0].flock, &birds).await;
    let flocks: Vec<&Flock> = nodes.iter().map(|n| &n.flock).collect();
    wait_until(
        Duration::from_secs(10),
        "every replica to hold 300 birds",
        || async {
            for f in &flocks {
                if f.birds().await.unwrap().len() != 300 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    // Calls through every node reach the owner, which reports itself.
    for f in &flocks {
        wait_until(Duration::from_secs(10), "owners to answer", || {
            all_answer_from_owner(f, &birds)
        })
        .await;
    }
    let per_node = instances(&flocks, &birds)
        .await
        .expect("one instance per bird");
    for (node, count) in per_node {
        let share = count as f64 / 300.0;
        assert!((0.20..=0.47).contains(&share), "{node} holds {share:.2}");
    }
}

#[actix_rt::test]
async fn killed_node_birds_answer_again_from_the_survivors() {
    init_logs();
    let mut nodes = cluster(3).await;
    let birds = names("phoenix", 60);
    start_all(&nodes[0].flock, &birds).await;
    wait_until(Duration::from_secs(10), "owners to answer", || {
        all_answer_from_owner(&nodes[0].flock, &birds)
    })
    .await;
    let victim = nodes.pop().unwrap();
    let victim_name = victim.name();
    victim.kill();
    let survivors: Vec<&Flock> = nodes.iter().map(|n| &n.flock).collect();
    wait_until(
        Duration::from_secs(10),
        "birds to answer from survivors",
        || async {
            for f in &survivors {
                if !all_answer_from_owner(f, &birds).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for b in &birds {
        assert_ne!(nodes[0].flock.owner_of(b).unwrap(), victim_name);
    }
    let per_node = instances(&survivors, &birds)
        .await
        .expect("none lost, none doubled");
    assert_eq!(per_node.values().sum::<usize>(), 60);
}

#[actix_rt::test]
async fn a_fourth_node_takes_about_a_quarter_of_the_birds() {
    init_logs();
    let mut nodes = cluster(3).await;
    let birds = names("mover", 300);
    start_all(&nodes[0].flock, &birds).await;
    wait_until(Duration::from_secs(10), "owners to answer", || {
        all_answer_from_owner(&nodes[0].flock, &birds)
    })
    .await;
    let before: Vec<String> = birds
        .iter()
        .map(|b| nodes[0].flock.owner_of(b).unwrap())
        .collect();
    nodes.push(TestNode::start(
        "node4@127.0.0.1",
        vec![nodes[0].addr()],
        |b| b,
    ));
    let flocks: Vec<&Flock> = nodes.iter().map(|n| &n.flock).collect();
    wait_until(Duration::from_secs(10), "4 nodes up everywhere", || async {
        for f in &flocks {
            if f.up_count().await.unwrap() != 4 {
                return false;
            }
        }
        true
    })
    .await;
    wait_until(Duration::from_secs(10), "owners to answer", || {
        all_answer_from_owner(&nodes[3].flock, &birds)
    })
    .await;
    let moved = birds
        .iter()
        .zip(&before)
        .filter(|(b, old)| nodes[0].flock.owner_of(b).unwrap() != **old)
        .count();
    let fraction = moved as f64 / 300.0;
    assert!((0.20..=0.30).contains(&fraction), "moved {fraction:.3}");
    wait_until(
        Duration::from_secs(10),
        "exactly one instance each",
        || async { instances(&flocks, &birds).await.is_some() },
    )
    .await;
}

#[actix_rt::test]
async fn graceful_leave_hands_birds_over_before_returning() {
    init_logs();
    let mut nodes = cluster(3).await;
    let birds = names("migrant", 60);
    start_all(&nodes[0].flock, &birds).await;
    wait_until(Duration::from_secs(10), "owners to answer", || {
        all_answer_from_owner(&nodes[0].flock, &birds)
    })
    .await;
    let leaver = nodes.pop().unwrap();
    leaver.flock.leave().await.unwrap();
    assert!(
        leaver.flock.local_birds().await.unwrap().is_empty() || {
            // Stops are asynchronous; give the last ones a moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
            leaver.flock.local_birds().await.unwrap().is_empty()
        }
    );
    for b in &birds {
        assert_ne!(nodes[0].flock.owner_of(b).unwrap(), leaver.name());
    }
    leaver.kill();
    let survivors: Vec<&Flock> = nodes.iter().map(|n| &n.flock).collect();
    wait_until(
        Duration::from_secs(5),
        "birds to answer from the others",
        || all_answer_from_owner(survivors[1], &birds),
    )
    .await;
}

#[actix_rt::test]
async fn a_node_with_the_wrong_cookie_is_refused() {
    init_logs();
    let nodes = cluster(2).await;
    let intruder = TestNode::start("intruder@127.0.0.1", vec![nodes[0].addr()], |b| {
        b.cookie("not-the-cookie")
    });
    // Give it several dial attempts; it must never be linked.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(intruder.flock.up_count().await.unwrap(), 1);
    assert_eq!(nodes[0].flock.up_count().await.unwrap(), 2);
    let members = nodes[0].flock.members().await.unwrap();
    assert!(members.iter().all(|m| m.name != "intruder@127.0.0.1"));
}

#[actix_rt::test]
async fn a_client_node_routes_calls_but_hosts_nothing() {
    init_logs();
    let nodes = cluster(2).await;
    let client = TestNode::start("call@127.0.0.1", vec![nodes[0].addr()], |b| b.weight(0));
    wait_until(Duration::from_secs(10), "the client to link", || async {
        client.flock.up_count().await.unwrap() == 3
    })
    .await;
    let birds = names("routed", 30);
    start_all(&client.flock, &birds).await;
    wait_until(
        Duration::from_secs(10),
        "owners to answer via the client",
        || all_answer_from_owner(&client.flock, &birds),
    )
    .await;
    assert!(client.flock.local_birds().await.unwrap().is_empty());
    for b in &birds {
        assert_ne!(client.flock.owner_of(b).unwrap(), "call@127.0.0.1");
    }
}

#[actix_rt::test]
async fn casts_and_calls_to_a_remote_bird_arrive_in_order() {
    init_logs();
    let nodes = cluster(2).await;
    // Find a name that node2 owns, and talk to it through node1.
    let name = (0..)
        .map(|i| format!("remote-counter:{i}"))
        .find(|n| nodes[0].flock.owner_of(n).unwrap() == "node2@127.0.0.1")
        .unwrap();
    nodes[0].flock.start::<Echo>(&name, 0).await.unwrap();
    let bird = nodes[0].flock.addr::<Echo>(&name);
    assert_eq!(bird.send(Where).await.unwrap(), "node2@127.0.0.1");
    for i in 1..=200 {
        bird.do_send(Add(i));
    }
    // The call travels the same link after the casts: it sees all of them.
    assert_eq!(bird.send(Get).await.unwrap(), 200 * 201 / 2);
}

#[actix_rt::test]
async fn the_same_cluster_works_over_the_in_memory_network() {
    init_logs();
    let network = std::sync::Arc::new(flock_actix::net::MemoryNetwork::new());
    let nodes = cluster_with(3, move |b| b.network(network.clone())).await;
    let birds = names("memory", 30);
    start_all(&nodes[1].flock, &birds).await;
    for n in &nodes {
        wait_until(Duration::from_secs(10), "owners to answer", || {
            all_answer_from_owner(&n.flock, &birds)
        })
        .await;
    }
}
