use actix::prelude::*;
use flock_actix::flock_bird;

#[flock_bird]
struct MyBird;

impl Actor for MyBird {
    type Context = Context<Self>;
}

fn main() {}
