//! Data links (docs/ARCHITECTURE.md §26): calls and casts to a peer travel on
//! connections of their own, one per lane (bird arbiter) of the peer, opened
//! on demand; per-bird order holds, and calls fail over when the owner dies.

mod support;

use flock_actix::net::{BoxFuture, BoxStream, Listener, Network, TcpNetwork};
use flock_actix::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::*;

/// TCP, counting the connections dialled.
#[derive(Default)]
struct Dials(Arc<AtomicU64>);

impl Network for Dials {
    fn bind(&self, addr: &str) -> BoxFuture<'static, std::io::Result<Box<dyn Listener>>> {
        TcpNetwork.bind(addr)
    }
    fn connect(&self, addr: &str) -> BoxFuture<'static, std::io::Result<BoxStream>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        TcpNetwork.connect(addr)
    }
}

fn data_links(arbiters: usize) -> impl Fn(FlockBuilder) -> FlockBuilder + Send + Sync + Clone {
    move |b| b.arbiters(arbiters).data_links(true)
}

/// Birds of `names` owned by `owner` in `via`'s view.
fn owned_by(via: &Flock, owner: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| via.owner_of(n).as_deref() == Ok(owner))
        .cloned()
        .collect()
}

#[actix_rt::test]
async fn casts_then_a_call_to_a_remote_bird_arrive_in_order_over_data_links() {
    init_logs();
    let nodes = cluster_with(2, data_links(2)).await;
    let (a, b) = (&nodes[0].flock, &nodes[1].flock);
    let all = names(&unique("order"), 40);
    start_all(a, &all).await;
    let remote = owned_by(a, b.name(), &all);
    assert!(remote.len() >= 4, "some birds live on the other node");
    wait_until(Duration::from_secs(10), "owners to answer", || {
        all_answer_from_owner(a, &all)
    })
    .await;
    // Interleaved casts to birds of both lanes, then a call each: the call
    // travels behind the casts to its bird, so it sees all of them.
    for round in 0..200u64 {
        for name in &remote {
            a.addr::<Echo>(name).do_send(Add(round));
        }
    }
    let expected: u64 = (0..200).sum();
    for name in &remote {
        let got = a
            .addr::<Echo>(name)
            .send_timeout(Get, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, expected, "bird {name} saw every cast before the call");
    }
}

#[actix_rt::test]
async fn data_links_open_only_for_the_lanes_that_are_called() {
    init_logs();
    let dials = Arc::new(AtomicU64::new(0));
    let counter = dials.clone();
    let nodes = cluster_with(2, move |b| {
        b.arbiters(4)
            .data_links(true)
            .network(Arc::new(Dials(counter.clone())))
    })
    .await;
    let (a, b) = (&nodes[0].flock, &nodes[1].flock);
    let before = dials.load(Ordering::Relaxed);
    let all = names(&unique("lanes"), 40);
    start_all(a, &all).await;
    let remote = owned_by(a, b.name(), &all);
    let one = remote.first().expect("a bird on the other node");
    wait_until(Duration::from_secs(10), "the bird to answer", || async {
        a.addr::<Echo>(one)
            .send_timeout(Ping, Duration::from_secs(1))
            .await
            .is_ok()
    })
    .await;
    for _ in 0..50 {
        a.addr::<Echo>(one)
            .send_timeout(Ping, Duration::from_secs(1))
            .await
            .unwrap();
    }
    assert_eq!(
        dials.load(Ordering::Relaxed) - before,
        1,
        "calls to one bird open one data link, once"
    );
}

#[actix_rt::test]
async fn calls_fail_over_to_the_new_owner_when_the_owner_of_a_data_link_dies() {
    init_logs();
    let mut nodes = cluster_with(3, data_links(2)).await;
    let victim = nodes.pop().expect("three nodes");
    let a = nodes[0].flock.clone();
    let all = names(&unique("failover"), 30);
    start_all(&a, &all).await;
    wait_until(Duration::from_secs(10), "owners to answer", || {
        all_answer_from_owner(&a, &all)
    })
    .await;
    let gone = victim.name();
    assert!(
        !owned_by(&a, &gone, &all).is_empty(),
        "the victim owns birds"
    );
    victim.kill();
    wait_until(
        Duration::from_secs(10),
        "every bird to answer from a live node",
        || async {
            all_answer_from_owner(&a, &all).await
                && all
                    .iter()
                    .all(|n| a.owner_of(n).as_deref() != Ok(gone.as_str()))
        },
    )
    .await;
}

/// A bird that counts the casts it got out of order (`Next(n)` after
/// anything but `n - 1`).
#[flock_bird(kind = "test.Seq", messages(Next, Seen))]
struct Seq {
    last: u64,
    out_of_order: u64,
}

impl Actor for Seq {
    type Context = Context<Self>;
}

impl Bird for Seq {
    type Args = ();
    fn hatch(_: &str, _: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Seq {
            last: 0,
            out_of_order: 0,
        })
    }
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Next(u64);

impl Handler<Next> for Seq {
    type Result = ();
    fn handle(&mut self, Next(n): Next, _: &mut Context<Self>) {
        if n != self.last + 1 {
            self.out_of_order += 1;
        }
        self.last = n;
    }
}

/// Answered with the last number and how many came out of order.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "Vec<u64>")]
struct Seen;

impl Handler<Seen> for Seq {
    type Result = Vec<u64>;
    fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Vec<u64> {
        vec![self.last, self.out_of_order]
    }
}

#[actix_rt::test]
async fn casts_sent_while_a_data_link_reopens_are_never_overtaken_by_a_later_call() {
    init_logs();
    // Links close after 40 ms without traffic, so every round below starts
    // with the lanes' links closed: its first casts go through the control
    // Peer while a link opens, the later ones straight into the link's
    // queue once it is up (docs/ARCHITECTURE.md §35), and the call last.
    let dials = Arc::new(AtomicU64::new(0));
    let counter = dials.clone();
    let nodes = cluster_with(2, move |b| {
        b.arbiters(2)
            .data_links(true)
            .configure(|c| c.data_idle_ms = 40)
            .network(Arc::new(Dials(counter.clone())))
            .bird::<Seq>()
    })
    .await;
    let (a, b) = (&nodes[0].flock, &nodes[1].flock);
    let remote = names_owned_by(a, b.name(), "reopen", 4);
    for name in &remote {
        a.start::<Seq>(name, ()).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "the birds to answer", || async {
        for name in &remote {
            let addr = a.addr::<Seq>(name);
            if addr
                .send_timeout(Seen, Duration::from_secs(1))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    })
    .await;
    let before = dials.load(Ordering::Relaxed);
    let rounds = 6u64;
    const PER_ROUND: u64 = 400;
    for round in 1..=rounds {
        // Not a wait for a condition: a pause long enough for the idle
        // links to close, so that the round crosses a link's opening (the
        // dial count below shows it did).
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Spread over the link's opening: some casts wait in the Peer,
        // later ones may go straight to the link.
        for k in 1..=PER_ROUND {
            for name in &remote {
                a.addr::<Seq>(name)
                    .do_send(Next((round - 1) * PER_ROUND + k));
            }
            tokio::task::yield_now().await;
        }
        for name in &remote {
            let seen = a
                .addr::<Seq>(name)
                .send_timeout(Seen, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(
                seen,
                vec![round * PER_ROUND, 0],
                "bird {name}, round {round}: every cast in order, and before the call"
            );
        }
    }
    assert!(
        dials.load(Ordering::Relaxed) - before >= rounds,
        "the links closed and opened again between rounds"
    );
}
