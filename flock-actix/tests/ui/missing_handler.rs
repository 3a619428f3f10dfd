use actix::prelude::*;
use flock_actix::{flock_bird, Bird, HatchError, Nest};
use serde::{Deserialize, Serialize};

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
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

fn main() {}
