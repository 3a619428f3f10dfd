//! One node: start, call, cast, stop, supervision, bad input.

mod support;

use flock_actix::prelude::*;
use std::time::{Duration, Instant};
use support::*;

/// A second view of the `test.Echo` kind, as a node with other code would
/// have it: one message the bird does not know, one whose payload is of the
/// wrong type under a tag the bird knows.
#[flock_bird(kind = "test.Echo", messages(Unknown, FakePing = "Ping"))]
struct EchoFromTheFuture;

impl Actor for EchoFromTheFuture {
    type Context = Context<Self>;
}

impl Bird for EchoFromTheFuture {
    type Args = u64;
    fn hatch(_: &str, _: u64, _nest: &Nest) -> Result<Self, HatchError> {
        Ok(EchoFromTheFuture)
    }
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Unknown;

impl Handler<Unknown> for EchoFromTheFuture {
    type Result = ();
    fn handle(&mut self, _: Unknown, _: &mut Context<Self>) {}
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct FakePing {
    a: Vec<String>,
    b: u64,
}

impl Handler<FakePing> for EchoFromTheFuture {
    type Result = String;
    fn handle(&mut self, _: FakePing, _: &mut Context<Self>) -> String {
        String::new()
    }
}

fn node() -> TestNode {
    init_logs();
    TestNode::start("solo@127.0.0.1", vec![], |b| b)
}

#[actix_rt::test]
async fn start_then_send_just_works() {
    let n = node();
    n.flock.start::<Echo>("tweety", 0).await.unwrap();
    let tweety = n.flock.addr::<Echo>("tweety");
    assert_eq!(tweety.send(Ping).await.unwrap(), "tweety");
    assert_eq!(tweety.send(Where).await.unwrap(), "solo@127.0.0.1");
}

#[actix_rt::test]
async fn casts_from_one_addr_arrive_in_order() {
    let n = node();
    n.flock.start::<Echo>("counter", 0).await.unwrap();
    let counter = n.flock.addr::<Echo>("counter");
    for i in 1..=100 {
        counter.do_send(Add(i));
    }
    assert_eq!(counter.send(Get).await.unwrap(), 5050);
}

#[actix_rt::test]
async fn starting_a_name_twice_is_already_exists() {
    let n = node();
    n.flock.start::<Echo>("twice", 0).await.unwrap();
    assert_eq!(
        n.flock.start::<Echo>("twice", 0).await,
        Err(Error::AlreadyExists {
            name: "twice".into()
        })
    );
}

#[actix_rt::test]
async fn stop_removes_the_bird_and_unknown_names_are_not_found_quickly() {
    let n = node();
    n.flock.start::<Echo>("short-lived", 0).await.unwrap();
    let bird = n.flock.addr::<Echo>("short-lived");
    assert_eq!(bird.send(Ping).await.unwrap(), "short-lived");
    n.flock.stop("short-lived").await.unwrap();
    // The running instance stops eventually (a message racing the stop may
    // still be handled); then the name is simply not found.
    wait_until(
        Duration::from_secs(2),
        "calls to the stopped bird to fail",
        || {
            let bird = bird.clone();
            async move {
                bird.send(Ping).await
                    == Err(Error::NotFound {
                        name: "short-lived".into(),
                    })
            }
        },
    )
    .await;
    let never = n.flock.addr::<Echo>("never-started");
    let t = Instant::now();
    assert_eq!(
        never.send(Ping).await,
        Err(Error::NotFound {
            name: "never-started".into()
        })
    );
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        n.flock.stop("short-lived").await,
        Err(Error::NotFound {
            name: "short-lived".into()
        })
    );
    wait_until(Duration::from_secs(2), "the instance to stop", || {
        let f = n.flock.clone();
        async move { f.local_birds().await.unwrap().is_empty() }
    })
    .await;
}

#[actix_rt::test]
async fn bird_restarts_after_panic_with_fresh_state() {
    let n = node();
    n.flock.start::<Echo>("phoenix", 7).await.unwrap();
    let bird = n.flock.addr::<Echo>("phoenix");
    bird.do_send(Add(10));
    assert_eq!(bird.send(Get).await.unwrap(), 17);
    assert_eq!(
        bird.send(Boom).await,
        Err(Error::BirdPanicked {
            name: "phoenix".into()
        })
    );
    // Restarted from its start arguments: the count is 7 again, not 17.
    assert_eq!(bird.send(Get).await.unwrap(), 7);
    // And again: supervision never gives up.
    for _ in 0..3 {
        assert!(bird.send(Boom).await.is_err());
        assert_eq!(bird.send(Get).await.unwrap(), 7);
    }
    assert!(
        n.flock
            .birds()
            .await
            .unwrap()
            .iter()
            .any(|(b, _)| b == "phoenix")
    );
}

#[actix_rt::test]
async fn bird_that_stops_itself_is_removed_and_can_start_again() {
    let n = node();
    n.flock.start::<Echo>("quitter", 0).await.unwrap();
    let bird = n.flock.addr::<Echo>("quitter");
    bird.send(Quit).await.unwrap();
    wait_until(
        Duration::from_secs(2),
        "the quitter to leave the set",
        || {
            let f = n.flock.clone();
            async move { f.birds().await.unwrap().is_empty() }
        },
    )
    .await;
    assert_eq!(
        bird.send(Ping).await,
        Err(Error::NotFound {
            name: "quitter".into()
        })
    );
    n.flock.start::<Echo>("quitter", 0).await.unwrap();
    assert_eq!(bird.send(Ping).await.unwrap(), "quitter");
}

#[actix_rt::test]
async fn unknown_or_mistyped_messages_get_an_error_and_the_node_is_unharmed() {
    let n = node();
    n.flock.start::<Echo>("robust", 0).await.unwrap();
    let future = n.flock.addr::<EchoFromTheFuture>("robust");
    assert_eq!(
        future.send(Unknown).await,
        Err(Error::UnknownMessage {
            kind: "test.Echo".into(),
            msg: "Unknown".into()
        })
    );
    let mistyped = future
        .send(FakePing {
            a: vec!["x".into()],
            b: 1,
        })
        .await;
    assert!(matches!(mistyped, Err(Error::Decode(_))), "{mistyped:?}");
    let bird = n.flock.addr::<Echo>("robust");
    assert_eq!(bird.send(Ping).await.unwrap(), "robust");
}

#[actix_rt::test]
async fn a_call_times_out_within_its_deadline() {
    let n = node();
    // A name owned here that never gets started: the kind is unknown to
    // nobody, but the call waits on a bird in the set that cannot run.
    let bird = n.flock.addr::<Echo>("nobody");
    let t = Instant::now();
    let r = bird.send_timeout(Ping, Duration::from_millis(200)).await;
    assert_eq!(
        r,
        Err(Error::NotFound {
            name: "nobody".into()
        })
    );
    assert!(t.elapsed() < Duration::from_millis(200));
}

#[actix_rt::test]
async fn start_many_records_every_bird_and_reports_duplicates() {
    let n = node();
    n.flock.start::<Echo>("dup", 0).await.unwrap();
    let birds = (0..500)
        .map(|i| (format!("many:{i}"), i))
        .chain([("dup".to_owned(), 0)]);
    let results = n.flock.start_many::<Echo>(birds).await.unwrap();
    assert_eq!(results.len(), 501);
    assert!(results[..500].iter().all(Result::is_ok));
    assert_eq!(
        results[500],
        Err(Error::AlreadyExists { name: "dup".into() })
    );
    assert_eq!(
        n.flock.addr::<Echo>("many:499").send(Get).await.unwrap(),
        499
    );
    wait_until(Duration::from_secs(5), "all 501 birds running", || {
        let f = n.flock.clone();
        async move { f.local_birds().await.unwrap().len() == 501 }
    })
    .await;
}

static FRAGILE_HATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A bird whose first two hatches panic.
#[flock_bird(kind = "test.Fragile", messages(Ping))]
struct Fragile;

impl Actor for Fragile {
    type Context = Context<Self>;
}

impl Bird for Fragile {
    type Args = ();
    fn hatch(_: &str, _: (), _nest: &Nest) -> Result<Self, HatchError> {
        let n = FRAGILE_HATCHES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(n >= 2, "hatch {n} fails, as asked");
        Ok(Fragile)
    }
}

impl Handler<Ping> for Fragile {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        "fragile".into()
    }
}

#[actix_rt::test]
async fn a_panicking_hatch_is_retried_and_harms_nothing_even_on_the_node_arbiter() {
    init_logs();
    // `arbiters(0)`: birds hatch on the node's own arbiter, beside its actors.
    let n = TestNode::start("hatch@127.0.0.1", vec![], |b| {
        b.arbiters(0).bird::<Fragile>()
    });
    n.flock.start::<Fragile>("fragile", ()).await.unwrap();
    let bird = n.flock.addr::<Fragile>("fragile");
    // A call queued in an instance whose hatch panics fails with
    // BirdPanicked, like one queued behind a panicking handler; the restart
    // (with backoff) then serves calls.
    wait_until(
        Duration::from_secs(5),
        "the third hatch to serve calls",
        || {
            let bird = bird.clone();
            async move { bird.send(Ping).await.as_deref() == Ok("fragile") }
        },
    )
    .await;
    assert_eq!(FRAGILE_HATCHES.load(std::sync::atomic::Ordering::SeqCst), 3);
    // The node's own actors are unharmed.
    n.flock.start::<Echo>("after", 0).await.unwrap();
    assert_eq!(
        n.flock.addr::<Echo>("after").send(Ping).await.unwrap(),
        "after"
    );
}

#[actix_rt::test]
async fn invalid_names_are_refused_with_a_typed_error_and_nothing_is_recorded() {
    let n = node();
    let long = "x".repeat(256);
    for name in ["", "line\nbreak", long.as_str()] {
        let started = n.flock.start::<Echo>(name, 0).await;
        assert!(
            matches!(started, Err(Error::InvalidName { .. })),
            "start({name:?}): {started:?}"
        );
        let many = n.flock.start_many::<Echo>([(name.to_owned(), 0)]).await;
        assert!(
            matches!(many, Err(Error::InvalidName { .. })),
            "start_many({name:?}): {many:?}"
        );
        let stopped = n.flock.stop(name).await;
        assert!(
            matches!(stopped, Err(Error::InvalidName { .. })),
            "stop({name:?}): {stopped:?}"
        );
        let sent = n.flock.addr::<Echo>(name).send(Ping).await;
        assert!(
            matches!(sent, Err(Error::InvalidName { .. })),
            "send({name:?}): {sent:?}"
        );
    }
    assert_eq!(
        n.flock.start::<Echo>("", 0).await,
        Err(Error::InvalidName {
            name: String::new(),
            reason: "it is empty".into()
        })
    );
    assert!(n.flock.birds().await.unwrap().is_empty());
    // The longest valid name still works.
    let longest = "y".repeat(255);
    n.flock.start::<Echo>(&longest, 0).await.unwrap();
    assert_eq!(
        n.flock.addr::<Echo>(&longest).send(Ping).await.unwrap(),
        longest
    );
}

/// `test.Other` is registered too, so the bird exists and runs: only the
/// caller's kind is wrong.
#[flock_bird(kind = "test.Other", messages(Ping))]
struct Other;

impl Actor for Other {
    type Context = Context<Self>;
}

impl Bird for Other {
    type Args = u64;
    fn hatch(_: &str, _: u64, _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Other)
    }
}

impl Handler<Ping> for Other {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        "other".into()
    }
}

#[actix_rt::test]
async fn calling_a_bird_through_the_wrong_kind_is_wrong_kind() {
    init_logs();
    let n = TestNode::start("solo@127.0.0.1", vec![], |b| b.bird::<Other>());
    n.flock.start::<Other>("mistaken", 0).await.unwrap();
    assert_eq!(
        n.flock.addr::<Other>("mistaken").send(Ping).await.unwrap(),
        "other"
    );
    assert_eq!(
        n.flock.addr::<Echo>("mistaken").send(Ping).await,
        Err(Error::WrongKind {
            name: "mistaken".into(),
            expected: "test.Echo".into(),
            actual: "test.Other".into(),
        })
    );
}
