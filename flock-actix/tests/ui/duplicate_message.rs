use flock_actix::flock_bird;

#[flock_bird(messages(Ping, Pong, Ping))]
struct MyBird;

fn main() {}
