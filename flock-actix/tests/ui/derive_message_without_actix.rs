// A crate without `actix` in its [dependencies]: actix's `#[derive(Message)]`,
// re-exported by the prelude, expands to `impl ::actix::Message`, so it needs
// the `actix` crate by that name. (Here `actix` is shadowed by another crate
// to stand for its absence.) The README says to add `actix = "0.13"`.
extern crate core as actix;

use flock_actix::prelude::*;

#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

fn main() {}
