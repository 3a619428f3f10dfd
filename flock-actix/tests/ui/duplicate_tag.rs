use flock_actix::flock_bird;

#[flock_bird(messages(v1::Ping, v2::Ping))]
struct MyBird;

#[flock_bird(messages(Ping = "ping", Pong = "ping"))]
struct Other;

fn main() {}
