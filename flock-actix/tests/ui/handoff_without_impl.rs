use actix::prelude::*;
use flock_actix::{Bird, flock_bird};

#[flock_bird(handoff)]
struct Counter {
    count: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Bird for Counter {
    type Args = ();
    fn hatch(_: &str, _: (), _: &flock_actix::Nest) -> Result<Self, flock_actix::HatchError> {
        Ok(Counter { count: 0 })
    }
}

fn main() {}
