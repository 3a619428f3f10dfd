//! Idle passivation over real TCP: birds idle for their kind's time stop on
//! their node but stay in the registry, and the next message, from either
//! node, wakes them: a kind with a state from the state it handed over when
//! it passivated, a kind without one from its start arguments.

#[path = "support/counter.rs"]
mod counter;
mod support;

use counter::*;
use flock_actix::Flock;
use std::time::Duration;
use support::*;

/// Short enough for a test, long enough that a bird just called is still
/// awake when the test looks.
const IDLE: Duration = Duration::from_millis(700);

fn sleepy(b: flock_actix::FlockBuilder) -> flock_actix::FlockBuilder {
    with_counter(b)
        .passivate_after::<Counter>(Some(IDLE))
        .passivate_after::<Echo>(Some(IDLE))
}

/// (running, passivated) among `names`, over both nodes.
async fn counts(nodes: &[&Flock], names: &[String]) -> (usize, usize) {
    let (mut running, mut asleep) = (0, 0);
    for f in nodes {
        let local = f.local_birds().await.unwrap();
        let passivated = f.passivated_birds().await.unwrap();
        running += names.iter().filter(|n| local.contains(n)).count();
        asleep += names.iter().filter(|n| passivated.contains(n)).count();
    }
    (running, asleep)
}

/// Waits until `via`'s replica has every one of `names`.
async fn knows_all(via: &Flock, names: &[String]) {
    wait_until(
        Duration::from_secs(5),
        "the replica to know every bird",
        || {
            let (via, names) = (via.clone(), names.to_vec());
            async move {
                let known = via.birds().await.unwrap();
                names.iter().all(|n| known.iter().any(|(k, _)| k == n))
            }
        },
    )
    .await;
}

async fn all_passivate(nodes: &[&Flock], names: &[String]) {
    let n = names.len();
    wait_until(Duration::from_secs(15), "every bird to passivate", || {
        let (nodes, names) = (nodes.to_vec(), names.to_vec());
        async move { counts(&nodes, &names).await == (0, n) }
    })
    .await;
}

#[actix_rt::test]
async fn idle_birds_passivate_and_calls_from_the_other_node_wake_them_with_their_state() {
    init_logs();
    let nodes = cluster_with(2, sleepy).await;
    let (a, b) = (&nodes[0].flock, &nodes[1].flock);
    let both = [a, b];
    let birds = names("sleepy", 20);
    for c in &birds {
        a.start::<Counter>(c, ()).await.unwrap();
    }
    knows_all(b, &birds).await;
    for _ in 0..3 {
        for c in &birds {
            b.addr::<Counter>(c).send(Incr).await.unwrap();
        }
    }
    assert!(owners_on(a, &birds, a.name()).await > 0, "node1 owns none");
    assert!(owners_on(a, &birds, b.name()).await > 0, "node2 owns none");

    all_passivate(&both, &birds).await;
    // Asleep, not gone: every replica still has every bird.
    for f in both {
        let known = f.birds().await.unwrap();
        assert!(birds.iter().all(|c| known.iter().any(|(n, _)| n == c)));
    }

    for c in &birds {
        let (owner, other) = if a.owner_of(c).unwrap() == a.name() {
            (a, b)
        } else {
            (b, a)
        };
        let n = other.addr::<Counter>(c).send(Incr).await.unwrap();
        assert_eq!(n, 4, "{c} woke without its state");
        // Counted as running again, no longer as passivated.
        assert!(owner.local_birds().await.unwrap().contains(c));
        assert!(!owner.passivated_birds().await.unwrap().contains(c));
    }
    // One instance each: both nodes see the same counts.
    for f in both {
        assert_eq!(counts_are(f, &birds, &[4; 20]).await, Vec::<String>::new());
    }
    let (running, _) = counts(&both, &birds).await;
    assert_eq!(running, 20);

    // And asleep again once idle: passivation is not a one-off.
    all_passivate(&both, &birds).await;
    assert_eq!(
        counts_are(b, &birds, &[4; 20]).await,
        Vec::<String>::new(),
        "counts lost in a second sleep"
    );
}

#[actix_rt::test]
async fn a_kind_without_a_state_wakes_from_its_arguments_and_a_cast_wakes_it() {
    init_logs();
    let nodes = cluster_with(2, sleepy).await;
    let (a, b) = (&nodes[0].flock, &nodes[1].flock);
    let both = [a, b];
    let echoes = names("sleepy-echo", 8);
    for e in &echoes {
        a.start::<Echo>(e, 10).await.unwrap();
    }
    knows_all(b, &echoes).await;
    for e in &echoes {
        b.addr::<Echo>(e).send(Add(5)).await.unwrap();
        assert_eq!(b.addr::<Echo>(e).send(Get).await.unwrap(), 15);
    }
    all_passivate(&both, &echoes).await;
    for e in &echoes {
        // A cast wakes it (from its arguments: 10), then it counts on.
        b.addr::<Echo>(e).do_send(Add(1));
        let got = b.addr::<Echo>(e).send(Get).await.unwrap();
        assert_eq!(got, 11, "{e} did not wake from its arguments");
    }
    let (running, asleep) = counts(&both, &echoes).await;
    assert_eq!((running, asleep), (8, 0));
}
