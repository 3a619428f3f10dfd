//! A link to a leaving peer settles before the leave is acknowledged
//! (docs/ARCHITECTURE.md §39).
//!
//! A node acknowledges a peer's `Leave` once its view no longer routes to
//! the peer *and* nothing it already gave the peer's links is waiting: no
//! call unanswered, nothing queued or held unwritten. Acknowledging on the
//! view change alone let the leaver stop while a call was still on a data
//! link (a separate connection, so not ordered with the `LeaveAck` on the
//! control link): the caller then saw the owner unreachable, and could not
//! retry, since the call might have run.

use super::data::DataOut;
use super::{Peer, ReplyTx};
use crate::wire::message::Message;
use actix::prelude::*;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::oneshot;

/// The longest a node holds a leaver's acknowledgement for its links to
/// settle: well under the leaver's own wait for acknowledgements (10 s),
/// so that a call to a bird that takes long delays the leave, not fails it.
const SETTLE_WITHIN: Duration = Duration::from_secs(5);

/// Answer once nothing this link was given is queued, held or unanswered.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Settle(pub oneshot::Sender<()>);

/// Acknowledge the peer's leave once this link and its data links settled.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AckLeave(pub crate::core::crdt::ReplicaId);

/// Who waits for a link to settle.
#[derive(Default)]
pub(super) struct Settling(Vec<oneshot::Sender<()>>);

impl Settling {
    pub(super) fn add(&mut self, waiter: oneshot::Sender<()>) {
        self.0.push(waiter);
    }

    /// Wakes every waiter once `settled` says so; `settled` runs only while
    /// someone waits (a leave is rare, a reply is not).
    pub(super) fn check(&mut self, settled: impl FnOnce() -> bool) {
        if !self.0.is_empty() && settled() {
            for waiter in self.0.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// No call in `calls` still has a caller waiting for it (a caller that
/// gave up does not hold a leave).
pub(super) fn answered(calls: &mut HashMap<u64, ReplyTx>) -> bool {
    calls.retain(|_, tx| !tx.is_closed());
    calls.is_empty()
}

impl Peer {
    /// Whether the control link itself holds nothing for the peer.
    pub(super) fn check_settled(&mut self) {
        let (calls, queued) = (&mut self.calls, self.data.lanes.queued());
        self.settling.check(|| queued == 0 && answered(calls));
    }
}

impl Handler<AckLeave> for Peer {
    type Result = ();

    fn handle(&mut self, AckLeave(id): AckLeave, ctx: &mut Context<Self>) {
        // From now on a call that reaches this link (a caller or a
        // forwarding Registry that read the view before it changed) is
        // refused unsent, and retried on the new view by its caller; so
        // the wait below ends, and no call is written to a node about to go.
        self.peer_leaving = true;
        self.data.direct.withdraw_all();
        let mut waits = Vec::with_capacity(self.data.links.len() + 1);
        for lane in self.data.links.values() {
            let (tx, rx) = oneshot::channel();
            lane.out.do_send(Settle(tx));
            waits.push(rx);
        }
        let (tx, rx) = oneshot::channel();
        self.settling.add(tx);
        waits.push(rx);
        self.check_settled();
        let peer = self.peer_name();
        let settled = async move {
            // A waiter dropped (its link stopped) counts as settled: what
            // it held has failed already.
            for rx in waits {
                let _ = rx.await;
            }
        };
        ctx.spawn(
            async move { tokio::time::timeout(SETTLE_WITHIN, settled).await }
                .into_actor(self)
                .map(move |settled, act, _| {
                    if settled.is_err() {
                        tracing::info!(
                            "acknowledging the leave of {peer} with calls to it still \
                             unanswered after {SETTLE_WITHIN:?}"
                        );
                    }
                    act.write(Message::LeaveAck { id });
                }),
        );
    }
}

impl Handler<Settle> for DataOut {
    type Result = ();

    fn handle(&mut self, Settle(waiter): Settle, ctx: &mut Context<Self>) {
        // What callers queued before the view changed is written first, so
        // that its calls are among those waited for.
        self.drain(ctx);
        self.settling.add(waiter);
        self.check_settled();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_only_once_the_link_holds_nothing() {
        let mut settling = Settling::default();
        let (tx, mut rx) = oneshot::channel();
        settling.add(tx);
        settling.check(|| false);
        assert!(
            rx.try_recv().is_err(),
            "woken while the link held something"
        );
        settling.check(|| true);
        assert_eq!(rx.try_recv(), Ok(()));
        // Nobody waits now: the check does not even ask.
        settling.check(|| panic!("asked with no waiter"));
    }

    #[test]
    fn a_call_whose_caller_gave_up_does_not_hold_a_leave() {
        let mut calls = HashMap::new();
        let (waiting, _caller) = oneshot::channel();
        let (abandoned, gone) = oneshot::channel();
        drop(gone);
        calls.insert(1, waiting);
        calls.insert(2, abandoned);
        assert!(!answered(&mut calls));
        assert_eq!(calls.len(), 1, "the abandoned call is forgotten");
        calls.clear();
        assert!(answered(&mut calls));
    }
}
