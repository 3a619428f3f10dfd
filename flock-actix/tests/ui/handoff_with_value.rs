use flock_actix::flock_bird;

#[flock_bird(handoff = true)]
struct Counter;

fn main() {}
