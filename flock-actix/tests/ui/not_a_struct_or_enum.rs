use flock_actix::flock_bird;

#[flock_bird(messages(Ping))]
fn my_bird() {}

#[flock_bird]
trait MyBird {}

fn main() {}
