//! A distributed process registry and forgiving supervisor for
//! [Actix](https://docs.rs/actix): start a named actor (a *bird*) anywhere in
//! a cluster by name; the node that placement picks runs it, restarts it when
//! it panics and moves it when nodes join or leave; call it by name with a
//! typed [`FlockAddr`], wherever it lives.
//!
//! # Quickstart
//!
//! In `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! flock-actix = "0.1"
//! # Birds are actix actors, and actix's #[derive(Message)] (re-exported by the
//! # prelude) expands to `::actix::Message`: the crate must be a dependency.
//! actix = "0.13"
//! # serde's derives (also in the prelude) expand to `extern crate serde`.
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! A bird, a one-node cluster, a call by name:
//!
//! ```
//! use flock_actix::prelude::*;
//!
//! #[flock_bird(messages(Ping))] // the messages other nodes may send it
//! struct Echo { greeting: String }
//! impl Actor for Echo { type Context = Context<Self>; }
//! impl Bird for Echo {          // how any node builds it from its arguments
//!     type Args = String;
//!     fn hatch(_name: &str, greeting: String, _: &Nest) -> Result<Self, HatchError> {
//!         Ok(Echo { greeting })
//!     }
//! }
//!
//! #[derive(Message, Serialize, Deserialize)]
//! #[rtype(result = "String")]
//! struct Ping(String);
//! impl Handler<Ping> for Echo {
//!     type Result = String;
//!     fn handle(&mut self, Ping(who): Ping, _: &mut Context<Self>) -> String {
//!         format!("{}, {who}", self.greeting)
//!     }
//! }
//!
//! #[actix::main] // or inside actix-web's main: any actix System
//! async fn main() -> Result<()> {
//!     let flock = Flock::builder("node1@127.0.0.1")
//!         .listen("127.0.0.1:0") // "0.0.0.0:4001" in production
//!         .cookie("secret")      // the same on every node
//!         .bird::<Echo>()        // this node may run Echo birds
//!         .start()
//!         .await?;
//!     flock.start::<Echo>("echo:1", "hello".into()).await?;
//!     let echo: FlockAddr<Echo> = flock.addr("echo:1");
//!     assert_eq!(echo.send(Ping("ada".into())).await?, "hello, ada");
//!     flock.shutdown();
//!     Ok(())
//! }
//! ```
//!
//! More nodes join with `.seeds(["10.0.0.1:4001"])`; nothing else changes.
//! The README walks through a three-node cluster, an actix-web service that
//! embeds a node, and the guarantees; docs/KUBERNETES.md deploys one.
//!
//! # Public API
//!
//! - [`Flock`] (built by [`FlockBuilder`], configured by [`FlockConfig`]):
//!   the handle of a running node: start, stop, address and list birds,
//!   see the members, leave.
//! - [`FlockAddr`]: a bird by name, with `send` (a call with a deadline) and
//!   `do_send` (a cast), like an actix `Addr`.
//! - [`Bird`] and [`#[flock_bird]`](flock_bird): what makes an actor a bird.
//! - [`Error`]: the one error type; each variant says whether anything
//!   changed, so callers know when a retry is safe.
//! - [`prelude`]: the one import a bird author needs.
//! - [`testing`]: in-memory and fault-injecting networks for tests of
//!   applications that embed a node.
//! - `dashboard` (feature `dashboard`): a live web page and JSON API over
//!   a node's view of the cluster, for an actix-web app to mount.
//!
//! # Layout
//!
//! Where things live in the source. Only the items named above (and what
//! they link to) are public API; the modules marked *internal* are public
//! so that the workspace's benchmarks, cluster tests and fuzz target can
//! reach them, but are hidden from these docs and may change in any
//! release.
//!
//! - `core` (*internal*): the pure, deterministic cores. No actix, no tokio,
//!   no clock: placement (name → shard → node), the registry CRDT,
//!   anti-entropy bookkeeping, the cookie handshake, membership, restart
//!   backoff, and the life of the birds on one node (states, instances,
//!   start queue, waiters, exits, restarts) as inputs → effects.
//! - `wire` (*internal*): the one wire `Message` enum, its versioned
//!   encoding and the length-delimited frame codec.
//! - `net` (*internal*): the `Network` trait: TCP, in-memory,
//!   fault-injecting (the last two are public through [`testing`]).
//! - [`runtime`]: the actors of a node around the cores; [`Flock`],
//!   [`FlockAddr`] and [`FlockBuilder`] are its public face.
//! - [`bird`]: the [`Bird`] trait and what `#[flock_bird]` implements.
//! - [`error`]: the one public [`Error`] enum.
//!
//! Design and reasoning: docs/ARCHITECTURE.md in the repository; threat
//! model: docs/SECURITY.md.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bird;
#[doc(hidden)]
pub mod core;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
// Hidden: `Error` and `Result` are documented where users name them, at the
// crate root (below).
#[doc(hidden)]
pub mod error;
mod nest;
#[doc(hidden)]
pub mod net;
pub mod runtime;
#[doc(hidden)]
pub mod wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use bird::{Accepts, Bird, BirdKind, Handoff, Wire};
#[doc(inline)]
pub use error::Result;
/// The error of every fallible call.
///
/// A caller handles the outcomes of its own calls — [`Error::NotFound`],
/// [`Error::Timeout`], [`Error::Unreachable`], [`Error::AlreadyExists`],
/// [`Error::Stopped`] — and logs the rest, which describe refused
/// connections and misconfiguration (they name what to fix). The enum is
/// `#[non_exhaustive]`: keep a catch-all arm.
///
/// ```no_run
/// use flock_actix::prelude::*;
/// use std::time::Duration;
/// # #[flock_bird(messages(Ping))] struct Echo;
/// # impl Actor for Echo { type Context = Context<Self>; }
/// # impl Bird for Echo { type Args = (); fn hatch(_: &str, _: (), _nest: &Nest) -> Result<Self, HatchError> { Ok(Echo) } }
/// # #[derive(Message, Serialize, Deserialize)] #[rtype(result = "String")] struct Ping;
/// # impl Handler<Ping> for Echo { type Result = String;
/// #     fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String { String::new() } }
///
/// /// Asks bird `name`, starting it first if nobody has, and retries once
/// /// when its node went away mid-call (the bird moves to another node).
/// async fn ask(flock: &Flock, name: &str) -> Result<String> {
///     let echo = flock.addr::<Echo>(name);
///     match echo.send(Ping).await {
///         Err(Error::NotFound { .. }) => {
///             match flock.start::<Echo>(name, ()).await {
///                 Ok(()) | Err(Error::AlreadyExists { .. }) => {} // someone else won: fine
///                 Err(e) => return Err(e),
///             }
///             echo.send(Ping).await
///         }
///         Err(Error::Unreachable { .. }) => {
///             actix::clock::sleep(Duration::from_millis(100)).await;
///             echo.send(Ping).await
///         }
///         // Timeout: the bird may or may not have handled Ping; not retried
///         // here because Ping is not idempotent in general.
///         other => other,
///     }
/// }
/// ```
#[doc(inline)]
pub use error::{Error, LinkError};
pub use nest::{HatchError, Nest};
#[cfg(feature = "dns")]
pub use runtime::NameserverResolver;
pub use runtime::{DnsDiscovery, Resolve, SystemResolver};
pub use runtime::{
    Events, Flock, FlockAddr, FlockBuilder, FlockConfig, MemberState, MemberView, current_node,
};

// The types of `FlockConfig`'s public fields and of `current_node`, public
// here so that the internal modules they live in can stay hidden.
pub use crate::core::anti_entropy::AntiEntropyConfig;
pub use crate::core::crdt::NodeName;
pub use crate::core::events::MemberEvent;
pub use crate::core::membership::MembershipConfig;
pub use crate::core::supervision::Backoff;

/// Networks for tests of applications that embed a node: pass one to
/// [`FlockBuilder::network`] to run several nodes in one process without
/// sockets, or to cut and heal links between them.
///
/// ```
/// use flock_actix::prelude::*;
/// use flock_actix::testing::{Faults, FaultyNetwork, MemoryNetwork};
/// use std::sync::Arc;
///
/// # #[actix::main] async fn main() -> Result<()> {
/// let faults = Faults::new();
/// let network = Arc::new(FaultyNetwork::new(Arc::new(MemoryNetwork::new()), faults.clone()));
/// let a = Flock::builder("a").listen("a:1").network(network.clone()).start().await?;
/// let b = Flock::builder("b").listen("b:1").seeds(["a:1"]).network(network).start().await?;
/// faults.cut("a:1", "b:1"); // a partition: both sides stop hearing each other
/// faults.heal_all();
/// # a.shutdown(); b.shutdown(); Ok(()) }
/// ```
pub mod testing {
    pub use crate::net::{
        CountingNetwork, Faults, FaultyNetwork, MemoryNetwork, Tally, TcpNetwork,
    };
}

/// The one import a bird author needs: the flock-actix items, actix's
/// prelude (`Actor`, `Context`, `Handler`, `Message` and its derive, …) and
/// serde's `Serialize`/`Deserialize` derives.
///
/// The derives expand to paths of their own crates (`::actix::Message`,
/// `extern crate serde`), so a crate using them lists `actix` and `serde` in
/// its `[dependencies]` next to `flock-actix` (see the quickstart above).
pub mod prelude {
    pub use crate::bird::{Bird, Handoff, Wire};
    pub use crate::error::{Error, Result};
    pub use crate::nest::{HatchError, Nest};
    pub use crate::runtime::{Flock, FlockAddr, FlockBuilder, FlockConfig, current_node};
    pub use actix::prelude::*;
    pub use flock_actix_macros::flock_bird;
    pub use serde::{Deserialize, Serialize};
}

/// Turns an actix actor into a bird: adds a stable kind tag and a table of the
/// messages other nodes may send it.
///
/// ```
/// use flock_actix::prelude::*;
///
/// // Pin the kind tag before moving the type to another module in a rolling
/// // upgrade; `AddItem` travels as "add", `Checkout` as "Checkout".
/// #[flock_bird(kind = "shop.cart.v1", messages(AddItem = "add", Checkout))]
/// struct Cart { items: Vec<String> }
/// impl Actor for Cart { type Context = Context<Self>; }
/// impl Bird for Cart {
///     type Args = ();
///     fn hatch(_name: &str, _: (), _: &Nest) -> Result<Self, HatchError> {
///         Ok(Cart { items: Vec::new() })
///     }
/// }
///
/// #[derive(Message, Serialize, Deserialize)]
/// #[rtype(result = "usize")]
/// struct AddItem(String);
/// impl Handler<AddItem> for Cart {
///     type Result = usize;
///     fn handle(&mut self, AddItem(item): AddItem, _: &mut Context<Self>) -> usize {
///         self.items.push(item);
///         self.items.len()
///     }
/// }
///
/// #[derive(Message, Serialize, Deserialize)]
/// #[rtype(result = "Vec<String>")]
/// struct Checkout;
/// impl Handler<Checkout> for Cart {
///     type Result = Vec<String>;
///     fn handle(&mut self, _: Checkout, ctx: &mut Context<Self>) -> Vec<String> {
///         ctx.stop(); // a bird that stops itself is removed cluster-wide
///         std::mem::take(&mut self.items)
///     }
/// }
///
/// assert_eq!(<Cart as flock_actix::BirdKind>::KIND, "shop.cart.v1");
/// ```
///
/// The full grammar follows.
#[doc(inline)]
pub use flock_actix_macros::flock_bird;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
