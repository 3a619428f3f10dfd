use flock_actix::flock_bird;

#[flock_bird(messages(Ping = ""))]
struct EmptyTag;

#[flock_bird(messages(Ping = ping))]
struct TagNotAString;

#[flock_bird(messages(&'static str))]
struct NotAType;

#[flock_bird(messages(Ping), messages(Pong))]
struct Twice;

#[flock_bird(messages = Ping)]
struct NoList;

fn main() {}
