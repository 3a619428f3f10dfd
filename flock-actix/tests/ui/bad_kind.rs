use flock_actix::flock_bird;

#[flock_bird(kind = "")]
struct Empty;

#[flock_bird(kind = my_kind)]
struct NotAString;

#[flock_bird(kind = "a", messages(), kind = "b")]
struct Twice;

#[flock_bird(kind)]
struct NoValue;

fn main() {}
