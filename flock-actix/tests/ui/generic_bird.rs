use flock_actix::flock_bird;

#[flock_bird(messages(Ping))]
struct MyBird<T> {
    inner: T,
}

fn main() {}
