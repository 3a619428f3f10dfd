//! `#[flock_bird]` on real actix actors: the generated kind tags, message
//! tags and dispatch tables.

use actix::prelude::*;
use flock_actix::__private::RemoteError;
use flock_actix::{Accepts, Bird, BirdKind, HatchError, Nest, flock_bird};
use serde::{Deserialize, Serialize};

mod msgs {
    use actix::Message;
    use serde::{Deserialize, Serialize};

    /// Asks for the bird's greeting, prefixed.
    #[derive(Message, Serialize, Deserialize)]
    #[rtype(result = "String")]
    pub(crate) struct Ping(pub(crate) String);
}
use msgs::Ping;

/// Adds to the bird's counter without a reply.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Add(u32);

/// Reads the counter.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u32")]
struct Count;

#[flock_bird(messages(msgs::Ping, Add, Count))]
struct Greeter {
    greeting: String,
    count: u32,
}

impl Actor for Greeter {
    type Context = Context<Self>;
}

impl Bird for Greeter {
    type Args = String;
    fn hatch(_name: &str, args: String, _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Greeter {
            greeting: args,
            count: 0,
        })
    }
}

impl Handler<Ping> for Greeter {
    type Result = String;
    fn handle(&mut self, Ping(from): Ping, _: &mut Context<Self>) -> String {
        format!("{}, {from}", self.greeting)
    }
}

impl Handler<Add> for Greeter {
    type Result = ();
    fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) {
        self.count += n;
    }
}

impl Handler<Count> for Greeter {
    type Result = u32;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u32 {
        self.count
    }
}

/// Pinned kind and a pinned message tag; an enum bird.
#[flock_bird(kind = "tests.pinned.v1", messages(Count = "count.v2"))]
enum Pinned {
    Only,
}

impl Actor for Pinned {
    type Context = Context<Self>;
}

impl Bird for Pinned {
    type Args = ();
    fn hatch(_name: &str, _args: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Pinned::Only)
    }
}

impl Handler<Count> for Pinned {
    type Result = u32;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u32 {
        match self {
            Pinned::Only => 7,
        }
    }
}

/// A bird that accepts nothing remotely.
#[flock_bird]
struct Quiet;

impl Actor for Quiet {
    type Context = Context<Self>;
}

impl Bird for Quiet {
    type Args = ();
    fn hatch(_name: &str, _args: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Quiet)
    }
}

async fn call<T: BirdKind, R: serde::de::DeserializeOwned>(
    addr: &Addr<T>,
    tag: &str,
    msg: &impl Serialize,
) -> Result<R, RemoteError> {
    let payload = rmp_serde::to_vec(msg).unwrap();
    let reply = T::dispatch_call(addr, tag, &payload, later())?.await?;
    Ok(rmp_serde::from_slice(&reply).unwrap())
}

/// A deadline no test reaches.
fn later() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(3600)
}

/// The bird skips a call it gets to only after its deadline (the reply's
/// timer may not have fired: it can run on the bird's own thread), and the
/// call fails as timed out, not as a panic.
#[actix::test]
async fn a_call_the_bird_gets_to_after_its_deadline_is_skipped_as_timed_out() {
    let addr = Greeter::hatch("g", "hi".into(), &Nest::new())
        .unwrap()
        .start();
    let payload = rmp_serde::to_vec(&Add(3)).unwrap();
    Greeter::dispatch_cast(&addr, "Add", &payload).unwrap();
    let past = std::time::Instant::now();
    let late = Greeter::dispatch_call(&addr, "Count", &rmp_serde::to_vec(&Count).unwrap(), past);
    assert_eq!(late.unwrap().await, Err(RemoteError::Timeout));
    let count: u32 = call(&addr, "Count", &Count).await.unwrap();
    assert_eq!(count, 3, "the bird still answers calls on time");
}

#[actix::test]
async fn dispatch_call_round_trips_a_message_through_rmp_bytes() {
    let addr = Greeter::hatch("g", "hello".into(), &Nest::new())
        .unwrap()
        .start();
    let reply: String = call(&addr, "Ping", &Ping("remote".into())).await.unwrap();
    assert_eq!(reply, "hello, remote");
}

#[actix::test]
async fn dispatch_cast_delivers_without_a_reply() {
    let addr = Greeter::hatch("g", "hi".into(), &Nest::new())
        .unwrap()
        .start();
    let payload = rmp_serde::to_vec(&Add(3)).unwrap();
    Greeter::dispatch_cast(&addr, "Add", &payload).unwrap();
    Greeter::dispatch_cast(&addr, "Add", &payload).unwrap();
    let count: u32 = call(&addr, "Count", &Count).await.unwrap();
    assert_eq!(count, 6);
}

#[actix::test]
async fn unknown_tag_is_an_unknown_message_error_naming_kind_and_tag() {
    let addr = Greeter::hatch("g", "hi".into(), &Nest::new())
        .unwrap()
        .start();
    let expected = RemoteError::UnknownMessage {
        kind: Greeter::KIND.to_owned(),
        msg: "Pong".to_owned(),
    };
    assert_eq!(
        Greeter::dispatch_call(&addr, "Pong", &[], later()).err(),
        Some(expected.clone())
    );
    assert_eq!(Greeter::dispatch_cast(&addr, "Pong", &[]), Err(expected));
}

#[actix::test]
async fn undecodable_payload_is_a_decode_error() {
    let addr = Greeter::hatch("g", "hi".into(), &Nest::new())
        .unwrap()
        .start();
    let bad = rmp_serde::to_vec(&"not a number").unwrap();
    assert!(matches!(
        Greeter::dispatch_cast(&addr, "Add", &bad),
        Err(RemoteError::Decode(_))
    ));
}

#[test]
fn default_kind_is_the_module_path_and_type_name() {
    assert_eq!(Greeter::KIND, concat!(module_path!(), "::Greeter"));
    assert!(
        Greeter::KIND.starts_with("bird_macro::"),
        "{}",
        Greeter::KIND
    );
}

#[test]
fn default_message_tag_is_the_last_path_segment() {
    assert_eq!(<Greeter as Accepts<Ping>>::TAG, "Ping");
    assert_eq!(<Greeter as Accepts<Add>>::TAG, "Add");
    assert_eq!(<Greeter as Accepts<Count>>::TAG, "Count");
}

#[test]
fn pinned_kind_and_message_tag_are_used_verbatim() {
    assert_eq!(Pinned::KIND, "tests.pinned.v1");
    assert_eq!(<Pinned as Accepts<Count>>::TAG, "count.v2");
}

#[actix::test]
async fn pinned_message_tag_is_what_dispatch_matches() {
    let addr = Pinned::hatch("p", (), &Nest::new()).unwrap().start();
    let count: u32 = call(&addr, "count.v2", &Count).await.unwrap();
    assert_eq!(count, 7);
    assert!(matches!(
        Pinned::dispatch_call(&addr, "Count", &[], later()).err(),
        Some(RemoteError::UnknownMessage { .. })
    ));
}

#[actix::test]
async fn bird_without_messages_rejects_every_tag() {
    let addr = Quiet::hatch("q", (), &Nest::new()).unwrap().start();
    assert!(matches!(
        Quiet::dispatch_call(&addr, "Anything", &[], later()).err(),
        Some(RemoteError::UnknownMessage { .. })
    ));
    assert!(Quiet::dispatch_cast(&addr, "Anything", &[]).is_err());
}

#[actix::test]
async fn stop_bird_stops_the_actor() {
    let addr = Quiet::hatch("q", (), &Nest::new()).unwrap().start();
    addr.send(flock_actix::__private::StopBird).await.unwrap();
    for _ in 0..200 {
        if !addr.connected() {
            return;
        }
        actix::clock::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the bird is still running after StopBird");
}
