use actix::prelude::*;
use flock_actix::{flock_bird, Accepts, Bird, HatchError, Nest};
use serde::{Deserialize, Serialize};

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Ping;

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Pong;

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
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}

impl Handler<Pong> for MyBird {
    type Result = ();
    fn handle(&mut self, _: Pong, _: &mut Context<Self>) {}
}

/// Stands in for `FlockAddr<T>::send::<M>`.
fn needs<T: Accepts<M>, M>()
where
    M: Message + flock_actix::Wire,
    M::Result: flock_actix::Wire,
{
}

fn main() {
    needs::<MyBird, Ping>();
    needs::<MyBird, Pong>();
}
