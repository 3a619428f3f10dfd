//! Support for the code `#[flock_bird]` generates. Not a public API: paths
//! here may change in any release.

pub use crate::bird::{Accepts, Bird, BirdKind, Handoff, Wire};
pub use crate::nest::{HatchError, Nest};
/// Named by the generated `dispatch_cast` signature, so that generated code
/// does not depend on where the error type lives.
pub use crate::wire::message::RemoteError;
pub use actix;

use crate::bird::BoxedCall;
use actix::{Addr, Handler, Message};
use std::future::Future;

/// Tells a bird to stop because flock-actix asked (migration or `stop`), not
/// because it chose to: the supervisor does not count it as an exit.
#[derive(Debug, Clone, Copy)]
pub struct StopBird;

impl Message for StopBird {
    type Result = ();
}

/// The future returned by [`BirdKind::dispatch_call`].
pub type CallFuture = Result<BoxedCall, RemoteError>;

/// Decodes `M` from `payload`, sends it to `addr`, encodes the reply.
///
/// The bird skips the message, and the call fails with a timeout, if it
/// gets to it only after `due`: on a data link the reply's own timer runs on
/// the bird's thread, so it cannot fire while a bird of that thread blocks
/// it, and the caller's deadline would otherwise not be kept (§32).
pub fn call<T, M>(addr: &Addr<T>, payload: &[u8], due: std::time::Instant) -> CallFuture
where
    T: Accepts<M>,
    M: Message + Wire,
    M::Result: Wire,
{
    let msg: M = decode::<M>(T::KIND, <T as Accepts<M>>::TAG, payload)?;
    let sent = addr.send(Slot::due(msg, due));
    Ok(Box::pin(async move {
        let reply = sent.await.map_err(|_| {
            if std::time::Instant::now() >= due {
                RemoteError::Timeout
            } else {
                RemoteError::BirdPanicked {
                    bird: String::new(),
                }
            }
        })?;
        crate::wire::payload::encode(&reply).map_err(RemoteError::Encode)
    }))
}

/// Decodes `M` from `payload` and delivers it to `addr` without a reply.
pub fn cast<T, M>(addr: &Addr<T>, payload: &[u8]) -> Result<(), RemoteError>
where
    T: Accepts<M>,
    M: Message + Wire,
    M::Result: Wire,
{
    let msg: M = decode::<M>(T::KIND, <T as Accepts<M>>::TAG, payload)?;
    addr.do_send(msg);
    Ok(())
}

/// The answer for a message tag the bird kind does not know.
pub fn unknown_message<T: BirdKind>(tag: &str) -> RemoteError {
    RemoteError::UnknownMessage {
        kind: T::KIND.to_owned(),
        msg: tag.to_owned(),
    }
}

/// Stops the bird: the body of the generated `Handler<StopBird>`.
///
/// Bounded by `Actor` only, so that a bird missing its `impl Bird` gets one
/// error (from `BirdKind`'s supertrait) instead of two.
pub fn stop_bird<T: actix::Actor<Context = actix::Context<T>>>(ctx: &mut actix::Context<T>) {
    actix::ActorContext::stop(ctx);
}

fn decode<M: Wire>(kind: &str, tag: &str, payload: &[u8]) -> Result<M, RemoteError> {
    crate::wire::payload::decode(payload)
        .map_err(|e| RemoteError::Decode(format!("message {tag} for bird kind {kind}: {e}")))
}

/// Tells a bird with a state to stop because it moved, and to give its
/// state back (the reply).
#[derive(Debug, Clone, Copy)]
pub struct TakeState;

impl Message for TakeState {
    type Result = Option<Vec<u8>>;
}

/// The encoded state of a bird stopped for a move (`None`: none to hand).
pub type StateFuture = std::pin::Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>;

/// Stops the bird at `addr` and takes its state: the body of the generated
/// `dispatch_hand_off`.
pub fn hand_off<T>(addr: &Addr<T>) -> StateFuture
where
    T: BirdKind + Handler<TakeState>,
{
    let sent = addr.send(TakeState);
    Box::pin(async move { sent.await.ok().flatten() })
}

/// The body of the generated `Handler<TakeState>`: takes the state, then
/// stops the bird, so no message is handled after the state was taken.
pub fn take_state<T: Handoff>(bird: &mut T, ctx: &mut actix::Context<T>) -> Option<Vec<u8>> {
    let state = bird.hand_off();
    actix::ActorContext::stop(ctx);
    rmp_serde::to_vec(&state)
        .map_err(|e| {
            tracing::error!(
                "cannot encode the state of a {}: {e}",
                std::any::type_name::<T>()
            )
        })
        .ok()
}

/// The state of another instance of the bird, for [`Handoff::merge`].
#[derive(Debug, Clone)]
pub struct MergeState(pub Vec<u8>);

impl Message for MergeState {
    type Result = ();
}

/// Sends the loser's state to the running bird: the body of the generated
/// `dispatch_merge`.
pub fn merge<T>(addr: &Addr<T>, state: Vec<u8>)
where
    T: BirdKind + Handler<MergeState>,
{
    addr.do_send(MergeState(state));
}

/// The body of the generated `Handler<MergeState>`: decodes the loser's
/// state and merges it; a state that does not decode is dropped (logged),
/// which keeps the survivor's, as without a hook.
pub fn merge_state<T: Handoff + BirdKind>(bird: &mut T, state: &[u8]) {
    match rmp_serde::from_slice::<T::State>(state) {
        Ok(loser) => bird.merge(loser),
        Err(e) => tracing::error!(
            "a {} bird: the state of its other instance does not decode ({e}); \
             keeping this one's",
            T::KIND
        ),
    }
}

/// Starts a bird from its handed-over `state`; from its arguments if the
/// state does not decode (a kind whose `State` changed incompatibly).
pub fn resume<T: Handoff + BirdKind>(
    name: &str,
    args: T::Args,
    state: &[u8],
    nest: &crate::Nest,
) -> Result<T, crate::HatchError> {
    match rmp_serde::from_slice::<T::State>(state) {
        Ok(state) => T::resume(name, args, state, nest),
        Err(e) => {
            tracing::error!(
                "bird {name} ({}): its handed-over state does not decode ({e}); \
                 hatching it from its arguments",
                T::KIND
            );
            T::hatch(name, args, nest)
        }
    }
}

#[allow(dead_code)]
fn _assert_handler_bound<T: Handler<StopBird>>() {}

/// A message for the typed local fast path, in a slot the bird's handler
/// takes it from: if the bird stops before it handles it (a stop or a move
/// ordered meanwhile drops the rest of its mailbox), the slot hands the
/// message back to its caller, who sends it again, on the encoded path,
/// instead of failing the call as if the bird had panicked.
///
/// The message travels in the slot itself, inside actix's envelope: no
/// allocation and no shared state per call, and the slot stays as small as
/// the shared one it replaced (a larger one is copied by `memcpy` calls on
/// its way into the envelope; issue #12). Only a slot dropped unhandled
/// does more: it leaves the message in a process-wide store under the
/// call's ticket, where the caller, told by its reply channel that the
/// mailbox closed, looks for it (`Slot::handed_back`). actix drops an
/// envelope's message before its reply channel, so the message is in the
/// store by the time the caller hears.
///
/// A remote call's message travels in a slot too, with the time past which
/// the bird skips it (see [`call`]).
pub struct Slot<M> {
    msg: Option<M>,
    way: Way<M>,
}

enum Way<M> {
    /// A remote call's: skipped if the bird gets to it at `due` or later.
    Due(std::time::Instant),
    /// A local call's: handed back under `ticket` if dropped unhandled.
    /// `give` is `hand_back::<M>`, named here so that `Slot` needs no
    /// bounds on `M` (its `Drop` could not add them).
    Back { ticket: u64, give: fn(u64, M) },
}

impl<M> Slot<M> {
    /// A local call's slot holding `msg`: handed back under `ticket` if it
    /// is dropped unhandled.
    pub(crate) fn back(msg: M, ticket: u64) -> Self
    where
        M: Send + 'static,
    {
        Slot {
            msg: Some(msg),
            way: Way::Back {
                ticket,
                give: hand_back::<M>,
            },
        }
    }

    /// `msg` alone, skipped if the bird gets to it at `due` or later.
    fn due(msg: M, due: std::time::Instant) -> Self {
        Slot {
            msg: Some(msg),
            way: Way::Due(due),
        }
    }

    /// The message of the call numbered `ticket` if its slot was dropped
    /// unhandled; `None` if a handler took it.
    pub(crate) fn handed_back(ticket: u64) -> Option<M>
    where
        M: Send + 'static,
    {
        let held = lock_handed_back().held.remove(&ticket)?;
        // Older than that, it may be another call's whose ticket repeats.
        if held.at.elapsed() >= KEPT_FOR {
            return None;
        }
        held.msg.downcast::<M>().ok().map(|msg| *msg)
    }

    /// What the handler handles: nothing if the message is past its time.
    fn into_msg(mut self) -> Option<M> {
        if let Way::Due(due) = self.way
            && std::time::Instant::now() >= due
        {
            return None;
        }
        self.msg.take()
    }
}

impl<M> Drop for Slot<M> {
    fn drop(&mut self) {
        // A handler took the message, or it is a remote call's: nothing to
        // do (the common case: one branch).
        if let Way::Back { ticket, give } = self.way
            && let Some(msg) = self.msg.take()
        {
            give(ticket, msg);
        }
    }
}

/// Local calls' messages dropped unhandled, by ticket, until their caller
/// takes them: at once, when it is next polled.
struct HandedBack {
    held: std::collections::BTreeMap<u64, Held>,
    /// Purge the entries older than [`KEPT_FOR`] when this many are held
    /// (doubling, so that a stop that drops a long mailbox costs linear
    /// time, not quadratic).
    purge_at: usize,
}

struct Held {
    at: std::time::Instant,
    msg: Box<dyn std::any::Any + Send>,
}

/// How long a message handed back waits for its caller. Its caller looks
/// as soon as it is polled again, so only the message of a caller that
/// has gone (it timed out or was cancelled, and the bird's mailbox dropped
/// the message after) waits this long, and is then dropped.
const KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The fewest entries that trigger a purge.
const PURGE_AT: usize = 64;

static HANDED_BACK: std::sync::Mutex<HandedBack> = std::sync::Mutex::new(HandedBack {
    held: std::collections::BTreeMap::new(),
    purge_at: PURGE_AT,
});

fn lock_handed_back() -> std::sync::MutexGuard<'static, HandedBack> {
    HANDED_BACK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a local call's unhandled message for its caller.
fn hand_back<M: Send + 'static>(ticket: u64, msg: M) {
    let at = std::time::Instant::now();
    let msg = Box::new(msg);
    let mut store = lock_handed_back();
    if store.held.len() >= store.purge_at {
        store
            .held
            .retain(|_, held| at.duration_since(held.at) < KEPT_FOR);
        store.purge_at = (store.held.len() * 2).max(PURGE_AT);
    }
    store.held.insert(ticket, Held { at, msg });
}

impl<M: Message> Message for Slot<M> {
    type Result = M::Result;
}

/// The reply of a [`Slot`]ted message: the handler's own reply.
pub struct SlotResponse<R>(Option<R>);

impl<A, M, R> actix::dev::MessageResponse<A, Slot<M>> for SlotResponse<R>
where
    A: actix::Actor,
    M: Message,
    R: actix::dev::MessageResponse<A, M>,
{
    fn handle(self, ctx: &mut A::Context, tx: Option<actix::dev::OneshotSender<M::Result>>) {
        // Empty if past its time (the caller has given up), or taken twice,
        // which never happens: the reply channel then closes unanswered.
        if let Some(response) = self.0 {
            response.handle(ctx, tx);
        }
    }
}

/// The body of the generated `Handler<Slot<M>>`: takes the message and
/// handles it as `Handler<M>` does.
pub fn handle_slot<T, M>(
    bird: &mut T,
    slot: Slot<M>,
    ctx: &mut actix::Context<T>,
) -> SlotResponse<<T as Handler<M>>::Result>
where
    T: Handler<M> + actix::Actor<Context = actix::Context<T>>,
    M: Message,
{
    SlotResponse(slot.into_msg().map(|msg| bird.handle(msg, ctx)))
}

#[cfg(test)]
mod tests {
    use super::Slot;
    use crate::runtime::deadline::Caller;

    #[test]
    fn a_local_slot_dropped_unhandled_hands_its_message_back_once() {
        let ticket = Caller::next().ticket();
        drop(Slot::back(String::from("cut"), ticket));
        assert_eq!(Slot::<String>::handed_back(ticket).as_deref(), Some("cut"));
        assert_eq!(Slot::<String>::handed_back(ticket), None);
    }

    #[test]
    fn a_local_slot_whose_message_was_taken_hands_nothing_back() {
        let ticket = Caller::next().ticket();
        let slot = Slot::back(5u8, ticket);
        assert_eq!(slot.into_msg(), Some(5));
        assert_eq!(Slot::<u8>::handed_back(ticket), None);
    }
}
