//! A stateful counter bird that hands its count over when it moves, and a
//! steady call load on a set of counters: the handoff and rolling-restart
//! tests check that no increment is lost and no call fails.
#![allow(dead_code, unreachable_pub)]

use flock_actix::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

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
    fn hatch(_: &str, _: (), _: &Nest) -> Result<Self, HatchError> {
        Ok(Counter { count: 0 })
    }
}

impl Handoff for Counter {
    type State = u64;
    fn hand_off(&mut self) -> u64 {
        self.count
    }
    fn resume(_: &str, _: (), count: u64, _: &Nest) -> Result<Self, HatchError> {
        Ok(Counter { count })
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

/// The builder edit that hosts counters.
pub fn with_counter(b: FlockBuilder) -> FlockBuilder {
    b.bird::<Counter>()
}

/// Calls `Incr` on the birds in turn until stopped; counts successes per
/// bird and failures.
pub struct Load {
    done: Rc<Cell<bool>>,
    ok: Rc<RefCell<Vec<u64>>>,
    failed: Rc<RefCell<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a steady load through `via` (one call at a time, round robin).
pub fn load(via: Flock, birds: Vec<String>) -> Load {
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
    /// Calls that succeeded so far, in total.
    pub fn succeeded(&self) -> u64 {
        self.ok.borrow().iter().sum()
    }

    /// Stops the load: successes per bird, and the failures.
    pub async fn stop(self) -> (Vec<u64>, Vec<String>) {
        self.done.set(true);
        self.task.await.unwrap();
        (self.ok.take(), self.failed.take())
    }
}

/// The birds that do not answer `Count` with `expected` (through `via`).
pub async fn counts_are(via: &Flock, birds: &[String], expected: &[u64]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (b, want) in birds.iter().zip(expected) {
        match via.addr::<Counter>(b).send(Count).await {
            Ok(n) if n == *want => {}
            other => wrong.push(format!("{b}: {other:?}, expected {want}")),
        }
    }
    wrong
}

/// How many of `birds` `via` places on `node`.
pub async fn owners_on(via: &Flock, birds: &[String], node: &str) -> usize {
    birds
        .iter()
        .filter(|b| via.owner_of(b).is_ok_and(|o| o == node))
        .count()
}
