//! What makes an actix actor a bird.
//!
//! A bird is an ordinary [`actix::Actor`] with a [`Context`] that also says
//! how to build itself from serialized start arguments ([`Bird`]). The
//! `#[flock_bird(messages(...))]` attribute adds the rest: a stable kind tag
//! and the remote dispatch table ([`BirdKind`]), and one [`Accepts`] impl per
//! message it accepts from other nodes, which is what lets
//! `FlockAddr<T>::send(M)` compile.

use crate::nest::{HatchError, Nest};
use crate::wire::message::RemoteError;
use actix::{Actor, Addr, Context, Handler, Message};
use serde::{Serialize, de::DeserializeOwned};
use std::future::Future;
use std::pin::Pin;

/// An actor that flock-actix can start on any node by name.
///
/// ```
/// use flock_actix::prelude::*;
///
/// #[flock_bird]
/// struct MyBird { greeting: String }
/// impl Actor for MyBird { type Context = Context<Self>; }
/// impl Bird for MyBird {
///     type Args = String;
///     fn hatch(_name: &str, args: String, _nest: &Nest) -> Result<Self, HatchError> {
///         Ok(MyBird { greeting: args })
///     }
/// }
/// ```
pub trait Bird: Actor<Context = Context<Self>> {
    /// The start arguments, serialized into the registry and sent to
    /// whichever node ends up running the bird.
    type Args: Wire + Clone;

    /// Builds a fresh bird. Called on the owner node at every (re)start: after
    /// a panic the bird is hatched again from the same arguments.
    ///
    /// `nest` holds the node-local context given to the node's builder
    /// ([`FlockBuilder::nest`](crate::FlockBuilder::nest)): a database pool,
    /// configuration, an actix `Addr` — what cannot travel in `args`.
    ///
    /// # Errors
    /// A [`HatchError`] when the bird cannot run on this node (e.g.
    /// [`Nest::require`] found no context of the type it needs): it is not
    /// started, and its callers get [`Error::HatchFailed`](crate::Error::HatchFailed)
    /// with the message until its arguments change or it moves.
    fn hatch(name: &str, args: Self::Args, nest: &Nest) -> Result<Self, HatchError>;

    /// On-demand activation, opt-in per kind (virtual-actor style): the
    /// start arguments of bird `name`, derived from its name alone, so that
    /// a message to a name nobody started starts it first. Declare it with
    /// `#[flock_bird(activate)]` too (read as a constant on the cast path,
    /// so no code of the kind runs there); without it this function is
    /// never called. `None` (the default) keeps the name explicit: such a
    /// message fails with [`Error::NotFound`](crate::Error::NotFound).
    ///
    /// An activating [`FlockAddr`](crate::FlockAddr) starts the bird with
    /// [`Flock::ensure`](crate::Flock::ensure) (start-or-get), so first
    /// messages sent from many nodes at once still end with one instance.
    /// Return the same arguments for a name on every node.
    ///
    /// ```
    /// use flock_actix::prelude::*;
    ///
    /// #[flock_bird(activate)]
    /// struct Room { topic: String }
    /// impl Actor for Room { type Context = Context<Self>; }
    /// impl Bird for Room {
    ///     type Args = String;
    ///     fn hatch(_: &str, topic: String, _: &Nest) -> Result<Self, HatchError> {
    ///         Ok(Room { topic })
    ///     }
    ///     // "room:rust" starts on its first message, about "rust".
    ///     fn activate(name: &str) -> Option<String> {
    ///         name.strip_prefix("room:").map(str::to_owned)
    ///     }
    /// }
    /// ```
    fn activate(name: &str) -> Option<Self::Args> {
        let _ = name;
        None
    }
}

/// A bird whose state moves with it: when flock-actix stops it because it
/// moved to another node (a join, a graceful leave, a rebalance, a rolling
/// restart), it takes the state with [`Handoff::hand_off`] and the new owner
/// starts the bird with [`Handoff::resume`] instead of [`Bird::hatch`].
/// Opt in with `#[flock_bird(handoff, messages(...))]`.
///
/// What is guaranteed, and what a crash loses, is in docs/ARCHITECTURE.md
/// ("Ordered state handoff"): if the old owner is dead or does not answer
/// in time, the new owner hatches from the arguments.
///
/// ```
/// use flock_actix::prelude::*;
///
/// #[flock_bird(handoff)]
/// struct Counter { count: u64 }
/// impl Actor for Counter { type Context = Context<Self>; }
/// impl Bird for Counter {
///     type Args = ();
///     fn hatch(_name: &str, _: (), _: &Nest) -> Result<Self, HatchError> {
///         Ok(Counter { count: 0 })
///     }
/// }
/// impl Handoff for Counter {
///     type State = u64;
///     fn hand_off(&mut self) -> u64 { self.count }
///     fn resume(_name: &str, _: (), count: u64, _: &Nest) -> Result<Self, HatchError> {
///         Ok(Counter { count })
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared `handoff` but does not implement `Handoff`",
    note = "implement flock_actix::Handoff for `{Self}` (its State, hand_off and resume), or remove `handoff` from #[flock_bird(...)]"
)]
pub trait Handoff: Bird {
    /// What travels to the new owner.
    type State: Wire;

    /// Takes the state, as the bird stops for a move (no message is handled
    /// by this instance after it).
    fn hand_off(&mut self) -> Self::State;

    /// Builds the bird on its new owner from the state its old owner
    /// handed over, with this node's [`Nest`] as in
    /// [`Bird::hatch`]; an error fails the start as a failed hatch does.
    ///
    /// # Errors
    /// A [`HatchError`] when the bird cannot run on this
    /// node (e.g. its context is missing).
    fn resume(
        name: &str,
        args: Self::Args,
        state: Self::State,
        nest: &crate::Nest,
    ) -> Result<Self, crate::HatchError>;

    /// The conflict hook: another instance of this bird handed its state
    /// over while this one runs, and this one survives. That happens after
    /// a partition heals (each side ran an instance; the side that no longer
    /// owns the bird stops its instance and hands its state, `loser`, to the
    /// owner), or when a moved bird's state arrives after the new owner
    /// stopped waiting for it. Called on the running instance, in order with
    /// its messages; whatever `self` is afterwards is the survivor's state.
    ///
    /// The default keeps the survivor's state and drops `loser` (what
    /// happens to kinds without a hook). Override it to merge, e.g. take the
    /// union of two sets or the larger of two counters.
    fn merge(&mut self, loser: Self::State) {
        let _ = loser;
    }
}

/// A value that can travel between nodes: serializable and sendable.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel between nodes",
    label = "`{Self}` must implement Serialize and Deserialize",
    note = "add #[derive(serde::Serialize, serde::Deserialize)] to `{Self}`: messages, their replies and bird arguments are sent over the network"
)]
pub trait Wire: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Wire for T {}

/// A bird kind with a stable wire tag and a remote dispatch table.
/// Implemented by `#[flock_bird]`; do not implement it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a flock bird",
    note = "add #[flock_bird(messages(...))] to the definition of `{Self}` and implement `Bird` for it"
)]
pub trait BirdKind: Bird + Handler<crate::__private::StopBird> {
    /// The kind's wire tag: `module::path::Type` unless pinned with
    /// `#[flock_bird(kind = "...")]`. Nodes find the kind by this tag, so pin
    /// it before moving the type to another module in a rolling upgrade.
    const KIND: &'static str;

    /// Decodes a call for message `tag`, sends it to `addr`, encodes the
    /// reply; the bird skips it if it gets to it at `due` or later.
    #[doc(hidden)]
    fn dispatch_call(
        addr: &Addr<Self>,
        tag: &str,
        payload: &[u8],
        due: std::time::Instant,
    ) -> crate::__private::CallFuture;

    /// Decodes a cast for message `tag` and delivers it to `addr`.
    #[doc(hidden)]
    fn dispatch_cast(addr: &Addr<Self>, tag: &str, payload: &[u8]) -> Result<(), RemoteError>;

    /// Whether the kind implements [`Handoff`] (`#[flock_bird(handoff)]`).
    #[doc(hidden)]
    const HANDS_OFF: bool = false;

    /// Whether the kind activates on its first message
    /// (`#[flock_bird(activate)]`): read on the cast path instead of
    /// running [`Bird::activate`] there.
    #[doc(hidden)]
    const ACTIVATES: bool = false;

    /// `#[flock_bird(passivate_after = "...")]`: how long a bird of this
    /// kind may go without a message before it is passivated (stopped here,
    /// kept in the set, started again by its next message).
    #[doc(hidden)]
    const PASSIVATE_AFTER: Option<std::time::Duration> = None;

    /// Stops the bird at `addr` and takes its encoded state.
    #[doc(hidden)]
    fn dispatch_hand_off(addr: &Addr<Self>) -> crate::__private::StateFuture {
        addr.do_send(crate::__private::StopBird);
        Box::pin(std::future::ready(None))
    }

    /// Hands the encoded state of another instance to the running bird at
    /// `addr` ([`Handoff::merge`]).
    #[doc(hidden)]
    fn dispatch_merge(addr: &Addr<Self>, state: Vec<u8>) {
        let _ = (addr, state);
    }

    /// Starts the bird from an encoded handed-over state.
    #[doc(hidden)]
    fn resume_from(
        name: &str,
        args: Self::Args,
        _state: &[u8],
        nest: &crate::Nest,
    ) -> Result<Self, crate::HatchError> {
        Self::hatch(name, args, nest)
    }
}

/// The bird accepts message `M` from any node. Implemented by
/// `#[flock_bird(messages(M, ...))]` for each listed message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not accept `{M}` through a FlockAddr",
    label = "`{M}` is not listed in the bird's #[flock_bird(messages(...))]",
    note = "add it: #[flock_bird(messages({M}, ...))], and implement Handler<{M}> for `{Self}`"
)]
pub trait Accepts<M>: BirdKind + Handler<M> + Handler<crate::__private::Slot<M>>
where
    M: Message + Wire,
    M::Result: Wire,
{
    /// The message's wire tag within this bird kind: the type's name unless
    /// pinned with `messages(Type = "tag")`.
    const TAG: &'static str;
}

/// A boxed future resolving to an encoded reply.
pub(crate) type BoxedCall = Pin<Box<dyn Future<Output = Result<Vec<u8>, RemoteError>> + Send>>;
