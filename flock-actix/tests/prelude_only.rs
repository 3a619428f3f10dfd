//! A bird author's crate as the README describes it: one import,
//! `flock_actix::prelude::*`, with `actix` and `serde` in `[dependencies]`
//! next to `flock-actix` (actix's `#[derive(Message)]` expands to
//! `::actix::Message`: `tests/ui/derive_message_without_actix.rs` shows the
//! error without it; serde's derives expand to `extern crate serde`).

use flock_actix::prelude::*;

#[flock_bird(messages(Greet))]
struct Greeter {
    greeting: String,
}

impl Actor for Greeter {
    type Context = Context<Self>;
}

impl Bird for Greeter {
    type Args = String;
    fn hatch(_name: &str, greeting: String, _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Greeter { greeting })
    }
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct Greet(String);

impl Handler<Greet> for Greeter {
    type Result = String;
    fn handle(&mut self, Greet(who): Greet, _: &mut Context<Self>) -> String {
        format!("{}, {who}", self.greeting)
    }
}

#[actix::test]
async fn a_bird_written_with_the_prelude_alone_is_started_and_called_by_name() {
    let flock = Flock::builder("prelude@127.0.0.1")
        .listen("127.0.0.1:0")
        .cookie("prelude-test")
        .arbiters(1)
        .bird::<Greeter>()
        .start()
        .await
        .expect("a single node starts");
    flock
        .start::<Greeter>("greeter", "hello".into())
        .await
        .expect("the name is free");
    let greeter: FlockAddr<Greeter> = flock.addr("greeter");
    // The call waits (within its deadline) for the owner to start the bird.
    let reply: Result<String> = greeter.send(Greet("ada".into())).await;
    assert_eq!(reply, Ok("hello, ada".to_owned()));
    flock.shutdown();
}
