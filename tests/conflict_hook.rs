//! The conflict hook: after a partition heals, the surviving instance of a
//! bird sees the losing instance's state (`Handoff::merge`) and keeps what
//! both sides wrote. Over real TCP, with a partition in the transport.

mod support;

use flock_actix::net::{Faults, FaultyNetwork, TcpNetwork};
use flock_actix::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A guest book whose two instances merge by union.
#[flock_bird(kind = "test.Guestbook", handoff, messages(Sign, Entries))]
struct Guestbook {
    entries: BTreeSet<String>,
}

impl Actor for Guestbook {
    type Context = Context<Self>;
}

impl Bird for Guestbook {
    type Args = ();
    fn hatch(_: &str, _: (), _: &Nest) -> Result<Self, HatchError> {
        Ok(Guestbook {
            entries: BTreeSet::new(),
        })
    }
}

impl Handoff for Guestbook {
    type State = BTreeSet<String>;
    fn hand_off(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.entries)
    }
    fn resume(_: &str, _: (), entries: BTreeSet<String>, _: &Nest) -> Result<Self, HatchError> {
        Ok(Guestbook { entries })
    }
    fn merge(&mut self, loser: BTreeSet<String>) {
        self.entries.extend(loser);
    }
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Sign(String);

impl Handler<Sign> for Guestbook {
    type Result = ();
    fn handle(&mut self, Sign(who): Sign, _: &mut Context<Self>) {
        self.entries.insert(who);
    }
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "Vec<String>")]
struct Entries;

impl Handler<Entries> for Guestbook {
    type Result = Vec<String>;
    fn handle(&mut self, _: Entries, _: &mut Context<Self>) -> Vec<String> {
        self.entries.iter().cloned().collect()
    }
}

async fn up_count_is(f: &Flock, n: usize) -> bool {
    f.up_count().await.unwrap_or(0) == n
}

/// Signs through `via`, retrying while the side's view settles.
async fn sign(via: &Flock, who: &str) {
    let addr = via.addr::<Guestbook>("book");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while addr.send(Sign(who.into())).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{who} never signed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn after_a_partition_heals_the_survivor_merges_the_losers_state() {
    init_logs();
    let faults = Faults::new();
    let f = faults.clone();
    let nodes = cluster_with(2, move |b| {
        b.bird::<Guestbook>().network(Arc::new(FaultyNetwork::new(
            Arc::new(TcpNetwork),
            f.clone(),
        )))
    })
    .await;
    let (one, two) = (&nodes[0].flock, &nodes[1].flock);
    one.start::<Guestbook>("book", ()).await.unwrap();
    sign(one, "before").await;

    faults.isolate(&nodes[1].addr());
    wait_until(Duration::from_secs(10), "each side alone", || async {
        up_count_is(one, 1).await && up_count_is(two, 1).await
    })
    .await;
    // Each side runs its own instance of the book and signs it.
    sign(one, "left").await;
    sign(two, "right").await;
    assert_eq!(one.local_birds().await.unwrap(), ["book"]);
    assert_eq!(two.local_birds().await.unwrap(), ["book"]);

    faults.heal_all();
    wait_until(Duration::from_secs(15), "the mesh to re-form", || async {
        up_count_is(one, 2).await && up_count_is(two, 2).await
    })
    .await;
    // One instance survives, and it holds what both sides wrote.
    wait_until(
        Duration::from_secs(15),
        "both sides' entries merged",
        || async {
            let entries = one.addr::<Guestbook>("book").send(Entries).await;
            let running = one.local_birds().await.unwrap_or_default().len()
                + two.local_birds().await.unwrap_or_default().len();
            running == 1
                && entries.is_ok_and(|e| ["left", "right"].iter().all(|w| e.iter().any(|x| x == w)))
        },
    )
    .await;
    let entries = two.addr::<Guestbook>("book").send(Entries).await.unwrap();
    assert!(entries.contains(&"left".to_owned()) && entries.contains(&"right".to_owned()));
}
