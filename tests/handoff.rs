//! Ordered state handoff over real TCP: birds that move while their old
//! owner is alive (a join, a graceful leave) keep their state, and calls
//! made during the move do not fail.

mod support;

use flock_actix::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use support::*;

/// A counter whose count moves with it.
#[flock_bird(kind = "test.Counter", handoff, messages(Incr, Count))]
pub struct Counter {
    count: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Bird for Counter {
    type Args = ();
    fn hatch(_: &str, _: ()) -> Self {
        Counter { count: 0 }
    }
}

impl Handoff for Counter {
    type State = u64;
    fn hand_off(&mut self) -> u64 {
        self.count
    }
    fn resume(_: &str, _: (), count: u64) -> Self {
        Counter { count }
    }
}

/// Adds one; answered with the new count.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
pub struct Incr;

impl Handler<Incr> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Incr, _: &mut Context<Self>) -> u64 {
        self.count += 1;
        self.count
    }
}

/// Answered with the count.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
pub struct Count;

impl Handler<Count> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u64 {
        self.count
    }
}

fn with_counter(b: FlockBuilder) -> FlockBuilder {
    b.bird::<Counter>()
}

/// Calls `Incr` on the birds in turn until stopped; counts successes per
/// bird and failures.
struct Load {
    done: Rc<Cell<bool>>,
    ok: Rc<RefCell<Vec<u64>>>,
    failed: Rc<RefCell<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

fn load(via: Flock, birds: Vec<String>) -> Load {
    let done = Rc::new(Cell::new(false));
    let ok = Rc::new(RefCell::new(vec![0; birds.len()]));
    let failed = Rc::new(RefCell::new(Vec::new()));
    let (d, o, f) = (done.clone(), ok.clone(), failed.clone());
    let task = actix_rt::spawn(async move {
        let mut i = 0;
        while !d.get() {
            let b = i % birds.len();
            match via.addr::<Counter>(&birds[b]).send(Incr).await {
                Ok(_) => o.borrow_mut()[b] += 1,
                Err(e) => f.borrow_mut().push(format!("{}: {e}", birds[b])),
            }
            i += 1;
        }
    });
    Load {
        done,
        ok,
        failed,
        task,
    }
}

impl Load {
    async fn stop(self) -> (Vec<u64>, Vec<String>) {
        self.done.set(true);
        self.task.await.unwrap();
        (self.ok.take(), self.failed.take())
    }
}

/// Every bird answers `Count` with `expected` (through `via`).
async fn counts_are(via: &Flock, birds: &[String], expected: &[u64]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (b, want) in birds.iter().zip(expected) {
        match via.addr::<Counter>(b).send(Count).await {
            Ok(n) if n == *want => {}
            other => wrong.push(format!("{b}: {other:?}, expected {want}")),
        }
    }
    wrong
}

async fn owners_on(via: &Flock, birds: &[String], node: &str) -> usize {
    birds
        .iter()
        .filter(|b| via.owner_of(b).is_ok_and(|o| o == node))
        .count()
}

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
