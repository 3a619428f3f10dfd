//! Roles and mixed protocol versions over real TCP: only the nodes that
//! host a kind own its birds, and v1 and v2 nodes form one cluster
//! (docs/ARCHITECTURE.md §27).

mod support;

use flock_actix::prelude::*;
use flock_actix::testing::CountingNetwork;
use std::time::Duration;
use support::*;

/// A kind only some nodes register.
#[flock_bird(kind = "test.Tile", messages(TileHost))]
struct Tile;

impl Actor for Tile {
    type Context = Context<Self>;
}

impl Bird for Tile {
    type Args = ();
    fn hatch(_: &str, _: (), _: &Nest) -> Result<Self, HatchError> {
        Ok(Tile)
    }
}

/// Answered with the node the tile runs on.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct TileHost;

impl Handler<TileHost> for Tile {
    type Result = String;
    fn handle(&mut self, _: TileHost, _: &mut Context<Self>) -> String {
        current_node().map(|n| n.to_string()).unwrap_or_default()
    }
}

/// A kind no node registers.
#[flock_bird(kind = "test.Orphan", messages(TileHost))]
struct Orphan;

impl Actor for Orphan {
    type Context = Context<Self>;
}

impl Bird for Orphan {
    type Args = ();
    fn hatch(_: &str, _: (), _: &Nest) -> Result<Self, HatchError> {
        Ok(Orphan)
    }
}

impl Handler<TileHost> for Orphan {
    type Result = String;
    fn handle(&mut self, _: TileHost, _: &mut Context<Self>) -> String {
        String::new()
    }
}

async fn meshed_nodes(nodes: &[&TestNode]) {
    let flocks: Vec<Flock> = nodes.iter().map(|n| n.flock.clone()).collect();
    meshed(&flocks, Duration::from_secs(15)).await;
}

/// Waits until every tile answers through `via`; returns where each runs.
async fn tile_hosts(via: &Flock, tiles: &[String]) -> Vec<String> {
    let mut hosts = Vec::new();
    for t in tiles {
        let addr = via.addr::<Tile>(t);
        let mut last = None;
        for _ in 0..100 {
            match addr.send(TileHost).await {
                Ok(host) => {
                    last = Some(host);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        hosts.push(last.unwrap_or_else(|| panic!("tile {t} never answered")));
    }
    hosts
}

#[actix_rt::test]
async fn a_node_without_a_kind_runs_none_of_its_birds_and_calls_through_it_work() {
    init_logs();
    let a = TestNode::start("roles-a@127.0.0.1", vec![], |b| b.bird::<Tile>());
    let seed = vec![a.addr()];
    let b = TestNode::start("roles-b@127.0.0.1", seed.clone(), |b| b.bird::<Tile>());
    let c = TestNode::start("roles-c@127.0.0.1", seed, |b| b);
    meshed_nodes(&[&a, &b, &c]).await;
    let tiles = names("tile", 24);
    // Started through the node that lacks the kind.
    for t in &tiles {
        c.flock.start::<Tile>(t, ()).await.unwrap();
    }
    for via in [&c.flock, &a.flock] {
        let hosts = tile_hosts(via, &tiles).await;
        assert!(
            hosts.iter().all(|h| h != &c.name()),
            "a tile ran on the node without .bird::<Tile>(): {hosts:?}"
        );
        // Both hosts share the kind (24 names, 2 equal hosts).
        assert!(hosts.contains(&a.name()) && hosts.contains(&b.name()));
    }
    assert!(c.flock.local_birds().await.unwrap().is_empty());
    for t in &tiles {
        assert_ne!(c.flock.addr::<Tile>(t).owner().unwrap(), c.name());
    }
    // A kind every node hosts is still spread over all three.
    let echoes = names("roles-echo", 24);
    start_all(&c.flock, &echoes).await;
    let mut on_c = 0;
    for e in &echoes {
        wait_until(Duration::from_secs(10), "the echo answers", || {
            let addr = a.flock.addr::<Echo>(e);
            async move { addr.send(Where).await.is_ok() }
        })
        .await;
        if a.flock.addr::<Echo>(e).send(Where).await.unwrap() == c.name() {
            on_c += 1;
        }
    }
    assert!(on_c > 0, "no Echo bird on the node that hosts Echo");
    // A kind nobody hosts has no owner: a typed error, nothing recorded.
    assert_eq!(
        c.flock.start::<Orphan>("orphan-1", ()).await,
        Err(Error::KindNotHosted {
            kind: "test.Orphan".into()
        })
    );
    assert!(
        !c.flock
            .birds()
            .await
            .unwrap()
            .iter()
            .any(|(n, _)| n == "orphan-1")
    );
}

#[actix_rt::test]
async fn v1_and_v2_nodes_form_one_cluster_and_start_call_and_stop_birds() {
    init_logs();
    // The old node speaks exactly protocol 1 (the previous release's wire);
    // the new ones dial it, are refused at v2, and dial again at v1.
    let old = TestNode::start("mixed-old@127.0.0.1", vec![], |b| {
        b.configure(|c| c.protocol_version = Some(1))
    });
    let seed = vec![old.addr()];
    let new1 = TestNode::start("mixed-new1@127.0.0.1", seed.clone(), |b| b);
    let new2 = TestNode::start("mixed-new2@127.0.0.1", seed, |b| b);
    meshed_nodes(&[&old, &new1, &new2]).await;
    let birds = names("mixed", 30);
    start_all(&old.flock, &birds[..15]).await;
    start_all(&new1.flock, &birds[15..]).await;
    // Every node agrees on the owners (v1 peers host every kind; v2 nodes
    // announce Echo), and every bird answers through every node.
    for b in &birds {
        let owner = old.flock.addr::<Echo>(b).owner().unwrap();
        for n in [&new1, &new2] {
            assert_eq!(n.flock.addr::<Echo>(b).owner().unwrap(), owner, "{b}");
        }
    }
    for via in [&old.flock, &new1.flock, &new2.flock] {
        let via = via.clone();
        let birds = birds.clone();
        wait_until(Duration::from_secs(15), "every bird answers", || {
            let (via, birds) = (via.clone(), birds.clone());
            async move { all_answer_from_owner(&via, &birds).await }
        })
        .await;
    }
    let per_node = instances(&[&old.flock, &new1.flock, &new2.flock], &birds)
        .await
        .expect("each bird runs exactly once");
    assert!(per_node.values().all(|&n| n > 0), "{per_node:?}");
    // Stop through the other version than the one that started them.
    for b in &birds[..15] {
        new2.flock.stop(b).await.unwrap();
    }
    for b in &birds[15..] {
        old.flock.stop(b).await.unwrap();
    }
    wait_until(
        Duration::from_secs(15),
        "every bird stopped everywhere",
        || {
            let flocks = [old.flock.clone(), new1.flock.clone(), new2.flock.clone()];
            async move {
                for f in &flocks {
                    if !f.local_birds().await.unwrap_or_default().is_empty()
                        || !f.birds().await.unwrap_or_default().is_empty()
                    {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
}

/// Digest frames came with protocol v2: a node built before them cannot
/// decode them, and its link would close every digest interval. A v2 node
/// sends none on a v1 link, and does send them on a v2 link (the control).
#[actix_rt::test]
async fn digests_go_to_v2_peers_and_never_to_a_v1_peer() {
    init_logs();
    let sent_digests = |peer_version: Option<u32>| async move {
        let old = TestNode::start("digest-peer@127.0.0.1", vec![], move |b| {
            b.configure(move |c| c.protocol_version = peer_version)
        });
        let counting = CountingNetwork::default();
        let net = counting.clone();
        let new = TestNode::start("digest-new@127.0.0.1", vec![old.addr()], move |b| {
            b.network(std::sync::Arc::new(net)).configure(|c| {
                c.anti_entropy.interval_ms = 50;
                c.anti_entropy.digest_interval_ms = 50;
            })
        });
        meshed_nodes(&[&old, &new]).await;
        start_all(&new.flock, &names("digest", 10)).await;
        // Bounded: a v2 peer gets its first digest within a few intervals.
        let digests = || {
            let t = counting.tally.lock().unwrap();
            t.get("SyncDigest").map_or(0, |(frames, _)| *frames)
        };
        let t = std::time::Instant::now();
        while digests() == 0 && t.elapsed() < Duration::from_millis(1_500) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = digests();
        assert_eq!(old.flock.up_count().await.unwrap(), 2);
        n
    };
    assert!(sent_digests(None).await > 0, "a v2 peer gets digests");
    assert_eq!(sent_digests(Some(1)).await, 0, "a v1 peer gets none");
}
