//! Races between calls and a bird's lifecycle, over real TCP: the owner
//! enforces the caller's deadline, and calls racing a migration all succeed
//! (delivered before the ordered stop, or retried on the new owner).

mod support;

use flock_actix::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::*;

/// A counter whose handler can block its arbiter, to hold calls in its
/// mailbox.
#[flock_bird(kind = "test.Blocker", messages(Block, Incr, Count))]
struct Blocker {
    name: String,
    count: u64,
}

/// The names of the `Blocker`s blocking their thread right now.
static BLOCKING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn blocking(name: &str) -> bool {
    BLOCKING.lock().unwrap().iter().any(|n| n == name)
}

impl Actor for Blocker {
    type Context = Context<Self>;
}

impl Bird for Blocker {
    type Args = ();
    fn hatch(name: &str, (): (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Blocker {
            name: name.to_owned(),
            count: 0,
        })
    }
}

/// Blocks the bird's thread for this many milliseconds.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Block(u64);

impl Handler<Block> for Blocker {
    type Result = ();
    fn handle(&mut self, Block(ms): Block, _: &mut Context<Self>) {
        BLOCKING.lock().unwrap().push(self.name.clone());
        std::thread::sleep(Duration::from_millis(ms));
        BLOCKING.lock().unwrap().retain(|n| *n != self.name);
    }
}

/// Adds one; answered with the new count.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Incr;

impl Handler<Incr> for Blocker {
    type Result = u64;
    fn handle(&mut self, _: Incr, _: &mut Context<Self>) -> u64 {
        self.count += 1;
        self.count
    }
}

/// Answered with the count.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Count;

impl Handler<Count> for Blocker {
    type Result = u64;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u64 {
        self.count
    }
}

/// Two nodes, and a started `Blocker` that node2 owns, answering via node1.
async fn blocker_on_node2(prefix: &str) -> (Vec<TestNode>, String) {
    let nodes = cluster_with(2, |b| b.bird::<Blocker>()).await;
    let name = (0..)
        .map(|i| format!("{prefix}:{i}"))
        .find(|n| nodes[0].flock.owner_of(n).unwrap() == "node2@127.0.0.1")
        .unwrap();
    nodes[0].flock.start::<Blocker>(&name, ()).await.unwrap();
    let bird = nodes[0].flock.addr::<Blocker>(&name);
    wait_until(Duration::from_secs(5), "the blocker to answer", || {
        let bird = bird.clone();
        async move { bird.send(Count).await.is_ok() }
    })
    .await;
    (nodes, name)
}

#[actix_rt::test]
async fn a_call_whose_caller_gave_up_never_runs_late_on_the_owner() {
    init_logs();
    let (nodes, name) = blocker_on_node2("late").await;
    let bird = nodes[0].flock.addr::<Blocker>(&name);
    bird.do_send(Block(800));
    gives_up_and_never_runs(&bird).await;
}

/// An `Incr` with a 200 ms deadline to a bird blocked for 800 ms times out,
/// and once the bird is free again it has not run.
async fn gives_up_and_never_runs(bird: &FlockAddr<Blocker>) {
    let gave_up = bird.send_timeout(Incr, Duration::from_millis(200)).await;
    assert!(
        matches!(gave_up, Err(Error::Timeout { .. })),
        "expected a timeout, got {gave_up:?}"
    );
    let count = bird.send_timeout(Count, Duration::from_secs(5)).await;
    assert_eq!(count, Ok(0), "the abandoned call ran after its deadline");
}

/// The call is sent once the owner's thread is blocked, so it waits unread
/// in the socket of a data link (read on that same thread): its deadline
/// must count that wait (`core::data_links::age`), or it runs late once the
/// thread is free. (On a control link it is read at once and its deadline
/// runs on the links thread.)
#[actix_rt::test]
async fn a_call_sent_while_the_owner_is_blocked_never_runs_late() {
    init_logs();
    let (nodes, name) = blocker_on_node2("blocked").await;
    let bird = nodes[0].flock.addr::<Blocker>(&name);
    bird.do_send(Block(800));
    let named = name.as_str();
    wait_until(
        Duration::from_secs(5),
        "the owner to block",
        || async move { blocking(named) },
    )
    .await;
    gives_up_and_never_runs(&bird).await;
}

/// The typed local path arms no timer when it sends (runtime/deadline.rs):
/// its deadline must hold all the same, and the abandoned message must be
/// skipped by the bird, not handled late.
#[actix_rt::test]
async fn a_local_call_whose_caller_gave_up_times_out_on_time_and_never_runs_late() {
    init_logs();
    let nodes = cluster_with(1, |b| b.bird::<Blocker>()).await;
    let name = unique("late-local");
    nodes[0].flock.start::<Blocker>(&name, ()).await.unwrap();
    let bird = nodes[0].flock.addr::<Blocker>(&name);
    // Cached route: the next calls take the typed path.
    assert_eq!(bird.send(Count).await, Ok(0));
    bird.do_send(Block(800));
    let asked = std::time::Instant::now();
    let gave_up = bird.send_timeout(Incr, Duration::from_millis(200)).await;
    let waited = asked.elapsed();
    assert!(
        matches!(gave_up, Err(Error::Timeout { .. })),
        "expected a timeout, got {gave_up:?}"
    );
    assert!(
        waited < Duration::from_millis(700),
        "the caller waited {waited:?} for a 200 ms deadline: it waited for the bird"
    );
    let count = bird.send_timeout(Count, Duration::from_secs(5)).await;
    assert_eq!(count, Ok(0), "the abandoned call ran after its deadline");
}

#[actix_rt::test]
async fn calls_cut_by_a_migration_are_retried_on_the_new_owner() {
    init_logs();
    let (nodes, name) = blocker_on_node2("cut").await;
    let bird = nodes[0].flock.addr::<Blocker>(&name);
    bird.do_send(Block(600));
    // More calls than the bird's mailbox holds: those beyond it wait for
    // room, and the ordered stop of the migration overtakes them.
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let bird = bird.clone();
            actix_rt::spawn(async move { bird.send_timeout(Count, Duration::from_secs(8)).await })
        })
        .collect();
    // Give the calls time to reach node2's mailbox (a race set-up, not an
    // assertion: with any timing every call must succeed).
    tokio::time::sleep(Duration::from_millis(200)).await;
    nodes[1].flock.leave().await.unwrap();
    for call in calls {
        let result = call.await.unwrap();
        assert!(result.is_ok(), "a call racing the move failed: {result:?}");
    }
}

/// A bird slow to stop: its mailbox stays open (and is not read again)
/// while `stopping` runs, so a message sent then is cut unhandled.
#[flock_bird(kind = "test.Lingerer", messages(Count))]
struct Lingerer;

/// Set while a `Lingerer` is in `stopping`.
static LINGERING: AtomicBool = AtomicBool::new(false);

impl Actor for Lingerer {
    type Context = Context<Self>;
    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        LINGERING.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(800));
        Running::Stop
    }
}

impl Bird for Lingerer {
    type Args = ();
    fn hatch(_: &str, (): (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Lingerer)
    }
}

impl Handler<Count> for Lingerer {
    type Result = u64;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u64 {
        7
    }
}

/// The typed local fast path: a call sent on the owner while an ordered
/// stop ends the bird (its mailbox still open, so the call is queued, but
/// never handled) is sent again and answered for what happened,
/// `NotFound`, instead of failing as if the bird had panicked (the fast
/// path used to consume the message).
#[actix_rt::test]
async fn a_local_call_cut_by_an_ordered_stop_is_not_a_panic() {
    init_logs();
    let nodes = cluster_with(1, |b| b.bird::<Lingerer>()).await;
    let flock = nodes[0].flock.clone();
    let name = unique("stopped");
    flock.start::<Lingerer>(&name, ()).await.unwrap();
    let bird = flock.addr::<Lingerer>(&name);
    wait_until(Duration::from_secs(5), "the bird to answer", || {
        let bird = bird.clone();
        async move { bird.send(Count).await == Ok(7) }
    })
    .await;
    // Running here now: this call caches its address (the typed fast path).
    assert_eq!(bird.send(Count).await, Ok(7));
    flock.stop(&name).await.unwrap();
    wait_until(
        Duration::from_secs(5),
        "the bird to be stopping",
        || async { LINGERING.load(Ordering::SeqCst) },
    )
    .await;
    let got = bird.send_timeout(Count, Duration::from_secs(5)).await;
    assert!(
        matches!(got, Err(Error::NotFound { .. })),
        "expected NotFound for a call cut by a stop, got {got:?}"
    );
}
