use actix::prelude::*;
use flock_actix::{flock_bird, Bird, HatchError, Nest};

#[derive(Message)]
#[rtype(result = "String")]
struct Ping;

#[flock_bird(messages(Ping))]
struct MyBird;

impl Actor for MyBird {
    type Context = Context<Self>;
}

impl Bird for MyBird {
    type Args = ();
    fn hatch(_: &str, _: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(MyBird)
    }
}

impl Handler<Ping> for MyBird {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        String::new()
    }
}

fn main() {}
