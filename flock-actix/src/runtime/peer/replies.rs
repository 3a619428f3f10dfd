//! The calls a link handed to birds on its thread and has not answered
//! yet, ended at their deadlines by one timer per link (issue #12, §37).
//!
//! Each such call used to carry a tokio timer of its own (registered on its
//! first poll, removed on its answer). Their deadlines now wait in one
//! [`TimerQueue`]: the link arms a single actix timer for the earliest; an
//! answered call takes its deadline out; at a deadline the link drops the
//! call's reply future (actix then skips the message if the bird has not
//! taken it, and the bird skips it past its time anyway, `__private::Slot`)
//! and answers `Timeout`, as the per-call timer did.

use super::dispatch::{Dispatched, Reply};
use crate::core::timers::TimerQueue;
use crate::wire::message::RemoteError;
use actix::prelude::*;
use std::time::Duration;

/// A link's unanswered calls, by deadline.
#[derive(Default)]
pub(crate) struct Replies {
    /// Each call's id, and its reply future (set once spawned).
    due: TimerQueue<(u64, Option<SpawnHandle>)>,
    timer: Option<SpawnHandle>,
}

/// A link that answers calls: the control `Peer` and `DataIn`.
pub(crate) trait Answers: Actor<Context = Context<Self>> {
    fn replies(&mut self) -> &mut Replies;
    /// Writes the answer to a call.
    fn answer(&mut self, reply: Reply);
    /// The node's clock, in ms.
    fn now_ms(&self) -> u64;
}

/// Answers a dispatched call: at once, or once its bird replies or its
/// deadline passes, whichever comes first.
pub(crate) fn answer<A: Answers>(act: &mut A, done: Dispatched, ctx: &mut Context<A>) {
    match done {
        Dispatched::Reply(reply) => act.answer(reply),
        Dispatched::Pending { reply, due_ms, id } => {
            let (key, rearm) = act.replies().due.schedule_keyed(due_ms, (id, None));
            let handle = ctx.spawn(reply.into_actor(act).map(move |reply, act: &mut A, _| {
                act.replies().due.cancel(key);
                act.answer(reply);
            }));
            if let Some(entry) = act.replies().due.get_mut(key) {
                entry.1 = Some(handle);
            }
            if let Some(at) = rearm {
                arm(act, at, ctx);
            }
        }
        Dispatched::Done => {}
    }
}

fn arm<A: Answers>(act: &mut A, at_ms: u64, ctx: &mut Context<A>) {
    if let Some(old) = act.replies().timer.take() {
        ctx.cancel_future(old);
    }
    // At least 1 ms: a timer that fires a tick early is armed again, not
    // spun on.
    let wait = Duration::from_millis(at_ms.saturating_sub(act.now_ms()).max(1));
    let timer = ctx.run_later(wait, |act, ctx| fire(act, ctx));
    act.replies().timer = Some(timer);
}

fn fire<A: Answers>(act: &mut A, ctx: &mut Context<A>) {
    act.replies().timer = None;
    let now = act.now_ms();
    let (late, next) = act.replies().due.fire(now);
    for (id, handle) in late {
        if let Some(handle) = handle {
            ctx.cancel_future(handle);
        }
        act.answer((id, Err(RemoteError::Timeout)));
    }
    if let Some(at) = next {
        arm(act, at, ctx);
    }
}
