use flock_actix::flock_bird;

#[flock_bird(mesages(Ping))]
struct MyBird;

fn main() {}
