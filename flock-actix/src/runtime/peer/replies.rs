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

use super::super::directory::Directory;
use super::super::node::Node;
use super::Frame;
use super::dispatch::{self, Dispatched, Reply, ReplyIn};
use super::io::oversize_payload;
use crate::core::timers::TimerQueue;
use crate::wire::message::RemoteError;
use crate::wire::user::UserIn;
use actix::prelude::*;
use std::time::Duration;

/// Most calls one link holds handed to birds and not answered yet. An
/// honest peer stays far below it (its callers wait for their answers, and
/// data links' flow control bounds what is in flight); a peer that floods
/// calls with long deadlines to a bird that does not answer would
/// otherwise pile up one reply future per call for as long as the
/// deadlines last. Calls past it are answered at once with an error, and
/// not handed to the bird.
pub(crate) const MAX_PENDING_CALLS: usize = 65_536;

/// A link's unanswered calls, by deadline.
pub(crate) struct Replies {
    /// Each call's id, and its reply future (set once spawned).
    due: TimerQueue<(u64, Option<SpawnHandle>)>,
    timer: Option<SpawnHandle>,
    /// At most this many in `due` ([`MAX_PENDING_CALLS`]; lower in tests).
    cap: usize,
}

impl Default for Replies {
    fn default() -> Self {
        Self {
            due: TimerQueue::default(),
            timer: None,
            cap: MAX_PENDING_CALLS,
        }
    }
}

impl Replies {
    /// Whether a call handed over now would go past the bound.
    fn full(&self) -> bool {
        self.due.len() >= self.cap
    }
}

/// A link that answers calls: the control `Peer` and `DataIn`.
pub(crate) trait Answers: Actor<Context = Context<Self>> {
    fn replies(&mut self) -> &mut Replies;
    /// Writes the answer to a call.
    fn answer(&mut self, reply: Reply);
    /// The node's clock, in ms.
    fn now_ms(&self) -> u64;
}

/// A link that hands inbound calls and casts to birds.
pub(crate) trait Dispatches: Answers + Handler<Frame> {
    fn directory(&self) -> &Directory;
    fn node(&self) -> &Node;
}

/// Hands an inbound call or cast to its bird and answers the call (see
/// [`answer`]); a reply is given back, for the link's own callers.
pub(crate) fn hand_over<A: Dispatches>(
    act: &mut A,
    msg: UserIn,
    ctx: &mut Context<A>,
) -> Option<ReplyIn> {
    if let UserIn::Call(call) = &msg
        && !admit_call(act, call.id, call.bird.as_str())
    {
        return None;
    }
    let done = {
        let node = act.node();
        let actors = node.actors()?;
        dispatch::user_message(
            act.directory(),
            actors,
            msg,
            || node.now_ms(),
            || ctx.address().recipient(),
        )
    };
    match done {
        Ok(done) => {
            answer(act, done, ctx);
            None
        }
        Err(reply) => Some(reply),
    }
}

/// Whether call `id` to `bird` may be handed to its bird: no if the link
/// already holds [`MAX_PENDING_CALLS`] unanswered, and then the call is
/// answered with an error at once.
fn admit_call<A: Answers>(act: &mut A, id: u64, bird: &str) -> bool {
    if !act.replies().full() {
        return true;
    }
    let cap = act.replies().cap;
    tracing::warn!(
        "refusing call {id} to bird {bird}: {cap} calls on this link are already waiting \
         for their birds (a peer flooding calls, or birds that do not answer)"
    );
    act.answer((
        id,
        Err(RemoteError::Internal(format!(
            "too many calls in flight on the owner's link ({cap}); not delivered"
        ))),
    ));
    false
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

/// A reply the peer would refuse for its size becomes an `Encode` error
/// (the link stays up, the caller hears why).
pub(crate) fn sized((id, result): Reply, max_frame: usize, peer: &str) -> Reply {
    match result {
        Ok(reply) => match oversize_payload("Reply", reply.len(), max_frame) {
            Some(what) => {
                tracing::warn!("not sending to {peer}: {what}");
                (id, Err(RemoteError::Encode(what)))
            }
            None => (id, Ok(reply)),
        },
        err => (id, err),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Instant;

    type Answered = Rc<RefCell<Vec<(u64, Result<Vec<u8>, RemoteError>, Instant)>>>;

    /// A link that answers into a list.
    struct Link {
        replies: Replies,
        answered: Answered,
        started: Instant,
    }

    impl Actor for Link {
        type Context = Context<Self>;
    }

    impl Answers for Link {
        fn replies(&mut self) -> &mut Replies {
            &mut self.replies
        }
        fn answer(&mut self, (id, result): Reply) {
            self.answered
                .borrow_mut()
                .push((id, result, Instant::now()));
        }
        fn now_ms(&self) -> u64 {
            u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
        }
    }

    /// Hands the link a call answered after `after` (never if `None`), due
    /// `due_ms` from now.
    #[derive(actix::Message)]
    #[rtype(result = "()")]
    struct Call {
        id: u64,
        after: Option<Duration>,
        due_ms: u64,
    }

    impl Handler<Call> for Link {
        type Result = ();
        fn handle(&mut self, c: Call, ctx: &mut Context<Self>) {
            let id = c.id;
            let reply: std::pin::Pin<Box<dyn std::future::Future<Output = Reply>>> = match c.after {
                Some(after) => Box::pin(async move {
                    tokio::time::sleep(after).await;
                    (id, Ok(vec![1]))
                }),
                None => Box::pin(std::future::pending()),
            };
            let due_ms = self.now_ms() + c.due_ms;
            answer(self, Dispatched::Pending { reply, due_ms, id }, ctx);
        }
    }

    /// A link holding at most `cap` unanswered calls; what it answers, and
    /// when it started.
    fn start_link(cap: usize) -> (Addr<Link>, Answered, Instant) {
        let answered = Answered::default();
        let started = Instant::now();
        let link = Link::create({
            let answered = answered.clone();
            move |_| Link {
                replies: Replies {
                    cap,
                    ..Replies::default()
                },
                answered,
                started,
            }
        });
        (link, answered, started)
    }

    /// Asks the link whether one more call may be handed over.
    #[derive(actix::Message)]
    #[rtype(result = "bool")]
    struct Admit(u64);

    impl Handler<Admit> for Link {
        type Result = bool;
        fn handle(&mut self, Admit(id): Admit, _: &mut Context<Self>) -> bool {
            admit_call(self, id, "flooded")
        }
    }

    #[test]
    fn calls_past_the_links_bound_are_answered_with_an_error_and_not_handed_over() {
        actix::System::new().block_on(async {
            let (link, answered, _) = start_link(2);
            assert!(link.send(Admit(1)).await.unwrap());
            // Two calls whose birds never answer, due in an hour.
            for id in [1, 2] {
                let call = Call {
                    id,
                    after: None,
                    due_ms: 3_600_000,
                };
                link.send(call).await.unwrap();
            }
            assert!(!link.send(Admit(3)).await.unwrap(), "past the bound");
            let answered = answered.borrow();
            assert_eq!(answered.len(), 1, "only the refused call is answered");
            let (id, result, _) = &answered[0];
            assert_eq!(*id, 3);
            assert!(
                matches!(result, Err(RemoteError::Internal(why)) if why.contains("too many calls")),
                "{result:?}"
            );
        });
    }

    #[test]
    fn each_call_ends_at_its_deadline_or_its_answer_whichever_first_with_one_timer() {
        actix::System::new().block_on(async {
            let (link, answered, started) = start_link(MAX_PENDING_CALLS);
            // Out of order: a later deadline first, then an earlier one
            // (re-arms the link's one timer), and calls answered in time.
            for (id, after, due_ms) in [
                (1, None, 300),
                (2, None, 100),
                (3, Some(Duration::from_millis(20)), 200),
                (4, Some(Duration::from_millis(400)), 150),
            ] {
                link.send(Call { id, after, due_ms }).await.unwrap();
            }
            let limit = Instant::now() + Duration::from_secs(5);
            while answered.borrow().len() < 4 {
                assert!(Instant::now() < limit, "not all answered");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Nothing answered twice (a cancelled reply future stays quiet).
            tokio::time::sleep(Duration::from_millis(400)).await;
            let answered = answered.borrow();
            let order: Vec<(u64, bool)> =
                answered.iter().map(|(id, r, _)| (*id, r.is_ok())).collect();
            assert_eq!(order, [(3, true), (2, false), (4, false), (1, false)]);
            for (id, result, at) in answered.iter() {
                let due = match id {
                    1 => 300,
                    2 => 100,
                    4 => 150,
                    _ => continue,
                };
                assert_eq!(result, &Err(RemoteError::Timeout));
                let at = at.duration_since(started);
                assert!(
                    at >= Duration::from_millis(due),
                    "call {id} ended early: {at:?}"
                );
                assert!(
                    at < Duration::from_millis(due + 150),
                    "call {id} ended late: {at:?}"
                );
            }
        });
    }
}
