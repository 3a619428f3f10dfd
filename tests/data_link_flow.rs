//! Flow control on data links (docs/ARCHITECTURE.md §26): a receiver that
//! reads slower than its sender writes slows the sender down; no cast is
//! lost on the way.

mod support;

use flock_actix::prelude::*;
use std::time::{Duration, Instant};
use support::*;

/// A bird that takes its time over each cast, so that the thread of its
/// lane (which also reads the data link) falls behind the sender.
#[flock_bird(kind = "test.Slow", messages(Chunk, Taken))]
pub struct Slow {
    taken: u64,
}

impl Actor for Slow {
    type Context = Context<Self>;
}

impl Bird for Slow {
    type Args = ();
    fn hatch(_: &str, _: (), _: &Nest) -> Result<Self, HatchError> {
        Ok(Slow { taken: 0 })
    }
}

/// A cast with a body, taken slowly.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Chunk(pub String);

impl Handler<Chunk> for Slow {
    type Result = ();
    fn handle(&mut self, _: Chunk, _: &mut Context<Self>) {
        // Busy, not asleep: the lane's thread is taken, as by real work.
        let until = Instant::now() + Duration::from_micros(20);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        self.taken += 1;
    }
}

/// Answered with the casts taken so far.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
pub struct Taken;

impl Handler<Taken> for Slow {
    type Result = u64;
    fn handle(&mut self, _: Taken, _: &mut Context<Self>) -> u64 {
        self.taken
    }
}

/// Casts taken by all of `birds`, asked through `via` (`None` if one does
/// not answer).
async fn taken(via: &Flock, birds: &[String]) -> Option<u64> {
    let mut sum = 0;
    for name in birds {
        sum += via
            .addr::<Slow>(name)
            .send_timeout(Taken, Duration::from_secs(2))
            .await
            .ok()?;
    }
    Some(sum)
}

#[actix_rt::test]
async fn a_cast_burst_far_above_the_unsent_bound_all_arrives_over_data_links() {
    init_logs();
    // A small max_frame makes the data link's bound on unsent bytes small
    // (2 × max_frame = 128 KiB); the burst is ≈ 30 MB, far beyond it and
    // beyond what the sockets buffer.
    let nodes = cluster_with(2, |b| {
        b.arbiters(1)
            .data_links(true)
            .configure(|c| c.max_frame = 64 * 1024)
            .bird::<Slow>()
    })
    .await;
    let (a, b) = (&nodes[0].flock, &nodes[1].flock);
    let remote = names_owned_by(a, b.name(), "slow", 4);
    for name in &remote {
        a.start::<Slow>(name, ()).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "the birds to answer", || async {
        taken(a, &remote).await == Some(0)
    })
    .await;
    const CASTS: u64 = 30_000;
    let body = "x".repeat(1000);
    for i in 0..CASTS {
        a.addr::<Slow>(&remote[i as usize % remote.len()])
            .do_send(Chunk(body.clone()));
        if i % 1024 == 1023 {
            tokio::task::yield_now().await;
        }
    }
    let remote = &remote;
    let waited = Instant::now();
    wait_until(
        Duration::from_secs(8),
        "every cast to be taken",
        move || async move { taken(a, remote).await == Some(CASTS) },
    )
    .await;
    log::info!("{CASTS} casts taken in {:?}", waited.elapsed());
}
