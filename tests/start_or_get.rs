//! Start-or-get (`Flock::ensure`) and readiness (`Flock::ready`).

mod support;

use flock_actix::prelude::*;
use std::time::Duration;
use support::*;

/// Another kind, to take a name away from `Echo`.
#[flock_bird(kind = "test.Other", messages(Ping))]
struct Other;

impl Actor for Other {
    type Context = Context<Self>;
}

impl Bird for Other {
    type Args = ();
    fn hatch(_: &str, (): ()) -> Self {
        Other
    }
}

impl Handler<Ping> for Other {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        "other".into()
    }
}

#[actix_rt::test]
async fn ensure_starts_a_bird_once_and_then_gets_it() {
    init_logs();
    let node = TestNode::start("ensure@127.0.0.1", vec![], |b| b.bird::<Other>());
    let flock = &node.flock;
    flock.ensure::<Echo>("room", 7).await.unwrap();
    flock.ensure::<Echo>("room", 99).await.unwrap();
    let room = flock.addr::<Echo>("room");
    // The first start's arguments hold: the second call only got it.
    assert_eq!(room.send(Get).await, Ok(7));
    assert_eq!(
        flock.ensure::<Other>("room", ()).await,
        Err(Error::AlreadyExists {
            name: "room".into()
        })
    );
}

#[actix_rt::test]
async fn ready_waits_for_the_hosts_asked_for() {
    init_logs();
    let first = TestNode::start("ready1@127.0.0.1", vec![], |b| b);
    assert_eq!(first.flock.ready(1, Duration::ZERO).await, Ok(true));
    assert_eq!(
        first.flock.ready(2, Duration::from_millis(50)).await,
        Ok(false)
    );
    let _second = TestNode::start("ready2@127.0.0.1", vec![first.addr()], |b| b);
    assert_eq!(
        first.flock.ready(2, Duration::from_secs(10)).await,
        Ok(true)
    );
}
