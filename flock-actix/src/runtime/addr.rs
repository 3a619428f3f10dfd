//! `FlockAddr<T>`: the address of a bird by name, wherever it runs.

use super::deadline::{Caller, Due, FirstPoll, Quick, deadline_after, within};
use super::messages::{CallReply, InboundCall, InboundCast};
use super::node::Node;
use super::peer::{OutCall, OutCast, PeerLink};
use super::registry::Resolve;
use super::replica::Lookup;
use super::telemetry;
use crate::__private::Slot;
use crate::bird::{Accepts, BirdKind, Wire};
use crate::core::crdt::{NodeName, check_bird_name};
use crate::core::routing;
use crate::error::{Error, Result};
use crate::wire::message::RemoteError;
use crate::wire::payload::{self, Payload};
use actix::{Actor, Addr, MailboxError, Message};
use arc_swap::ArcSwapOption;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

/// The longest pause between two attempts of a call whose owner is moving.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The address of bird `T` called `name`, typed like an actix `Addr<T>`.
///
/// It does not point at one running actor but at whichever node owns the
/// name in this node's current view: calls made while the bird moves or
/// restarts wait for it within their deadline. Cloning is cheap; clones
/// share the cached route to a bird running on this node.
///
/// ```no_run
/// use flock_actix::prelude::*;
/// use std::time::Duration;
/// # #[flock_bird(messages(Add, Total))] struct Counter(u64);
/// # impl Actor for Counter { type Context = Context<Self>; }
/// # impl Bird for Counter { type Args = (); fn hatch(_: &str, _: (), _nest: &Nest) -> Result<Self, HatchError> { Ok(Counter(0)) } }
/// # #[derive(Message, Serialize, Deserialize)] #[rtype(result = "()")] struct Add(u64);
/// # impl Handler<Add> for Counter { type Result = ();
/// #     fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) { self.0 += n } }
/// # #[derive(Message, Serialize, Deserialize)] #[rtype(result = "u64")] struct Total;
/// # impl Handler<Total> for Counter { type Result = u64;
/// #     fn handle(&mut self, _: Total, _: &mut Context<Self>) -> u64 { self.0 } }
///
/// async fn count_visit(flock: &Flock, page: &str) -> Result<u64> {
///     let counter: FlockAddr<Counter> = flock.addr(&format!("visits:{page}"));
///     counter.do_send(Add(1)); // a cast: no reply, best effort
///     // A call: waits for the reply, up to 500 ms here.
///     counter.send_timeout(Total, Duration::from_millis(500)).await
/// }
/// ```
pub struct FlockAddr<T: BirdKind>(Arc<Shared<T>>);

/// What the clones of one address share: cloning an address is one
/// reference count, as for an actix `Addr` (issue #12).
struct Shared<T: BirdKind> {
    node: Arc<Node>,
    name: Arc<str>,
    shard: u32,
    /// Whether `name` follows the naming rules, checked once (the error is
    /// built again, rarely, by the call that returns it).
    name_ok: bool,
    routes: Routes<T>,
}

/// What the clones of one address learn: the routes, each read
/// with one atomic load (no lock on the call path, issue #12).
struct Routes<T: BirdKind> {
    /// The bird, when it last ran on this node.
    local: ArcSwapOption<Route<T>>,
    /// The link to the owner, when it last was another node.
    link: ArcSwapOption<LinkRoute>,
    /// For a kind that activates on demand: set once this address saw the
    /// bird registered, so later casts go straight out.
    activated: AtomicBool,
    /// Whether calls through the local route from a thread are answered by
    /// their second poll (runtime/deadline.rs): the bird runs on that
    /// thread. Here rather than in the route, so that a call need not hold
    /// the route (two reference counts) until it is answered; forgotten
    /// when a new route is stored.
    quick: Quick,
}

/// An address learned in the view of `epoch`: of the bird when it runs on
/// this node, or of the link to its owner when that is another node. Valid
/// while the view is the same and the actor is alive.
struct Route<A: Actor> {
    epoch: u64,
    addr: Addr<A>,
}

impl<A: Actor> Route<A> {
    fn valid_at(&self, epoch: u64) -> bool {
        self.epoch == epoch && self.addr.connected()
    }
}

/// The link to the owner learned in the view of `epoch`, valid while the
/// view is the same and the link's `Peer` runs.
struct LinkRoute {
    epoch: u64,
    /// The owner (another node) in that view.
    owner: NodeName,
    link: PeerLink,
}

impl LinkRoute {
    fn valid_at(&self, epoch: u64) -> bool {
        self.epoch == epoch && self.link.connected()
    }
}

impl<T: BirdKind> Clone for FlockAddr<T> {
    fn clone(&self) -> Self {
        FlockAddr(self.0.clone())
    }
}

impl<T: BirdKind> std::fmt::Debug for FlockAddr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlockAddr")
            .field("name", &self.0.name)
            .field("shard", &self.0.shard)
            .finish_non_exhaustive()
    }
}

enum Outcome {
    Done(Vec<u8>),
    Retry(Error),
    /// `Moved` naming a node whose view is newer than ours: the next
    /// attempt goes there at once (`core::routing::after_moved`).
    Redirect(String),
    Fail(Error),
}

impl<T: BirdKind> FlockAddr<T> {
    pub(crate) fn new(node: Arc<Node>, name: &str) -> Self {
        let shard = node.view.load().placement.shard_of(name);
        FlockAddr(Arc::new(Shared {
            node,
            name: name.into(),
            shard,
            name_ok: check_bird_name(name).is_ok(),
            routes: Routes {
                local: ArcSwapOption::empty(),
                link: ArcSwapOption::empty(),
                activated: AtomicBool::new(false),
                quick: Quick::default(),
            },
        }))
    }

    /// The bird's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The node that owns the bird in this node's current view.
    ///
    /// # Errors
    /// [`Error::NoNodes`] if no member can host birds.
    pub fn owner(&self) -> Result<String> {
        Ok(self.owner_name()?.to_string())
    }

    /// The owner in the current view, without copying its name.
    fn owner_name(&self) -> Result<NodeName> {
        let view = self.0.node.view.load();
        Ok(view
            .placement
            .for_kind(T::KIND)
            .owner_of_shard(self.0.shard)?
            .clone())
    }

    /// Sends `msg` and waits for the reply, up to the node's default call
    /// timeout (5 s unless configured).
    ///
    /// # Errors
    /// See [`FlockAddr::send_timeout`].
    // Not an `async fn`: a layer of future less to build and move on every
    // call (issue #12); the future is `send_timeout`'s.
    pub fn send<M>(&self, msg: M) -> impl Future<Output = Result<M::Result>> + '_
    where
        T: Accepts<M>,
        M: Message + Wire,
        M::Result: Wire,
    {
        self.send_timeout(msg, self.0.node.config.call_timeout)
    }

    /// Sends `msg` and waits at most `timeout` for the reply.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if the name breaks the naming rules,
    /// [`Error::NotFound`] if the bird is not in the registry,
    /// [`Error::WrongKind`] if it is registered with another kind than `T`,
    /// [`Error::Timeout`] if no reply came in time, [`Error::Unreachable`]
    /// if the owner's link closed while the call was in flight (it may have
    /// been handled), [`Error::BirdPanicked`] if the bird panicked (or was
    /// stopped) while handling it, [`Error::NoNodes`], [`Error::UnknownKind`],
    /// [`Error::UnknownMessage`], [`Error::Encode`]/[`Error::Decode`].
    pub async fn send_timeout<M>(&self, msg: M, timeout: Duration) -> Result<M::Result>
    where
        T: Accepts<M>,
        M: Message + Wire,
        M::Result: Wire,
    {
        // Per call, so TRACE, and made and instrumented only when TRACE is
        // on: a disabled span still records its fields for the `log` crate
        // and enters and exits on every poll, which a local call notices
        // (issue #12). No `Span` exists at all unless TRACE is on, and the
        // call's future is built where it is awaited (the instrumented one
        // boxed, so the common one sizes the state).
        let started = Instant::now();
        let (path, result) = if tracing::level_enabled!(tracing::Level::TRACE) {
            let span = tracing::trace_span!("flock_call", bird = %self.0.name, kind = T::KIND);
            if span.is_disabled() {
                self.send_untimed(msg, started, timeout).await
            } else {
                Box::pin(self.send_untimed(msg, started, timeout))
                    .instrument(span)
                    .await
            }
        } else {
            self.send_untimed(msg, started, timeout).await
        };
        telemetry::call_done(path, result.as_ref().err(), started);
        result
    }

    /// A call, and which path it took (for the metrics).
    async fn send_untimed<M>(
        &self,
        msg: M,
        started: Instant,
        timeout: Duration,
    ) -> (telemetry::Path, Result<M::Result>)
    where
        T: Accepts<M>,
        M: Message + Wire,
        M::Result: Wire,
    {
        if !self.0.name_ok
            && let Err(e) = check_bird_name(&self.0.name)
        {
            return (self.path(), Err(e));
        }
        let due = Due::after(started, timeout);
        let epoch = self.0.node.view.epoch();
        let caller = Caller::next();
        // In a slot: a message an ordered stop or move cuts from the
        // mailbox unhandled is handed back, and sent again (the encoded
        // path waits for the bird's next instance).
        let slot = move |msg: M| Slot::back(msg, caller.ticket());
        // The cached route is there only for a kind that takes the typed
        // path and a bird owned here in this view: one load decides. It is
        // read under the load's guard, not cloned: the request needs the
        // route only to be sent (issue #12).
        let mut local = self.0.routes.local.load();
        let mut path = telemetry::Path::Local;
        if !local.as_ref().is_some_and(|route| route.valid_at(epoch)) {
            drop(local);
            // Boxed, like the encoded path below: rare, and their futures
            // would make the common one larger to build and move.
            match Box::pin(self.typed_route()).await {
                // Resolved and cached: read back from the cache below.
                Ok((found, Some(_))) => path = found,
                Ok((found, None)) => {
                    let deadline = due.instant();
                    let result = Box::pin(self.send_encoded(msg, deadline, timeout)).await;
                    return (found, result);
                }
                Err(e) => return (telemetry::Path::Remote, Err(e)),
            }
            local = self.0.routes.local.load();
        }
        let Some(route) = local.as_ref().filter(|route| route.valid_at(epoch)) else {
            // Replaced by a newer view's since it was resolved: the encoded
            // path finds the bird wherever it is now.
            drop(local);
            let result = Box::pin(self.send_encoded(msg, due.instant(), timeout)).await;
            return (path, result);
        };
        // Sent here, where the request is pinned, so that it is built in
        // place rather than moved (a `memcpy` call per call).
        let request = std::pin::pin!(route.addr.send(slot(msg)));
        let route = Arc::as_ptr(route).addr();
        drop(local);
        let quick = &self.0.routes.quick;
        let first = quick.first_poll(caller);
        let mut call = within(due, request, first);
        let answer = (&mut call).await;
        quick.learn(caller, first, call.armed());
        let msg = match answer {
            // Dropping the request at the deadline is what keeps the bird
            // from handling it late: actix skips a message whose caller is
            // gone.
            Err(_) | Ok(Err(MailboxError::Timeout)) => {
                return (path, Err(self.timed_out(timeout)));
            }
            Ok(Ok(reply)) => return (path, Ok(reply)),
            Ok(Err(MailboxError::Closed)) => match Slot::<M>::handed_back(caller.ticket()) {
                Some(unhandled) => unhandled,
                None => {
                    // Taken and not answered: the bird panicked in its
                    // handler.
                    Box::pin(self.mailbox_closed(route)).await;
                    let name = self.0.name.to_string();
                    return (path, Err(Error::BirdPanicked { name }));
                }
            },
        };
        (
            path,
            Box::pin(self.send_encoded(msg, due.instant(), timeout)).await,
        )
    }

    /// Waits (up to 50 ms) for the mailbox of a bird that panicked in its
    /// handler to close, if `route` (its address, as a number) is still
    /// the cached one: the reply channel can close a moment before the
    /// mailbox does, and the next call should see the bird gone.
    async fn mailbox_closed(&self, route: usize) {
        let cached = self.0.routes.local.load_full();
        if let Some(cached) = cached.filter(|r| Arc::as_ptr(r).addr() == route) {
            mailbox_closed(&cached.addr).await;
        }
    }

    /// The path a call takes, for the metrics, when not the cached one.
    fn path(&self) -> telemetry::Path {
        telemetry::Path::of(matches!(self.owned_here(), Ok(true)))
    }

    /// The route of the typed local path when the cache had none: asks
    /// the Registry if the bird is owned here and its kind takes that path.
    async fn typed_route(&self) -> Result<(telemetry::Path, Option<Arc<Route<T>>>)> {
        let view = self.0.node.view.load_full();
        let owner = view
            .placement
            .for_kind(T::KIND)
            .owner_of_shard(self.0.shard);
        let here = matches!(owner, Ok(o) if **o == **self.0.node.name());
        let path = telemetry::Path::of(here);
        // Kinds that hand their state over skip the typed fast path: it
        // consumes the message, so a call that races the bird's move could
        // not be retried on the new owner (the encoded path retries it).
        // Kinds that passivate skip it too: the Registry must see every
        // message to know when a bird is idle.
        if T::HANDS_OFF || self.0.node.kinds.passivate_after(T::KIND).is_some() {
            return Ok((path, None));
        }
        owner?;
        if !here {
            return Ok((path, None));
        }
        Ok((path, self.resolve_local(view.epoch).await))
    }

    /// Encodes `msg`, calls, decodes the reply.
    async fn send_encoded<M>(
        &self,
        msg: M,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<M::Result>
    where
        T: Accepts<M>,
        M: Message + Wire,
        M::Result: Wire,
    {
        let payload = payload::encode_small(&msg).map_err(|e| Error::Encode(e.to_string()))?;
        let reply = self
            .call(<T as Accepts<M>>::TAG, payload, deadline, timeout)
            .await?;
        payload::decode(&reply).map_err(|e| {
            Error::Decode(format!(
                "reply to {} from bird {}: {e}",
                <T as Accepts<M>>::TAG,
                self.0.name
            ))
        })
    }

    /// Sends `msg` without waiting for a reply (a cast). Delivery is best
    /// effort: a cast to a bird that does not exist, or whose owner is
    /// unreachable, is dropped with a log line.
    pub fn do_send<M>(&self, msg: M)
    where
        T: Accepts<M>,
        M: Message + Wire,
        M::Result: Wire,
    {
        if !self.0.name_ok
            && let Err(e) = check_bird_name(&self.0.name)
        {
            return tracing::warn!("cast dropped: {e}");
        }
        let epoch = self.0.node.view.epoch();
        {
            let local = self.0.routes.local.load();
            if let Some(route) = local.as_ref().filter(|r| r.valid_at(epoch)) {
                telemetry::cast_sent(telemetry::Path::Local);
                return route.addr.do_send(msg);
            }
        }
        let payload = match payload::encode_small(&msg) {
            Ok(p) => p,
            Err(e) => return tracing::warn!("cast to bird {} not sent: {e}", self.0.name),
        };
        let tag = <T as Accepts<M>>::TAG;
        // A constant of the kind: no user code runs on the cast path.
        if T::ACTIVATES && !self.0.routes.activated.load(Ordering::Acquire) {
            return self.activating_cast(tag, payload.into_vec());
        }
        // The common remote case: the link learned in this view.
        if let Some(route) = self.cached_link(epoch) {
            telemetry::cast_sent(telemetry::Path::Remote);
            return route.link.cast(self.out_cast(tag, payload), &self.0.node);
        }
        let owned_here = self.owned_here();
        telemetry::cast_sent(telemetry::Path::of(matches!(owned_here, Ok(true))));
        match owned_here {
            Ok(true) => {
                if let Some(actors) = self.0.node.actors() {
                    actors.registry.do_send(InboundCast {
                        bird: self.0.name.clone(),
                        kind: T::KIND.to_owned(),
                        tag: tag.to_owned(),
                        payload: payload.into_vec(),
                    });
                }
            }
            Ok(false) => match self.owner_link() {
                Some(route) => route.link.cast(self.out_cast(tag, payload), &self.0.node),
                None => tracing::warn!(
                    "cast to bird {} dropped: its owner is unreachable",
                    self.0.name
                ),
            },
            Err(e) => tracing::warn!("cast to bird {} dropped: {e}", self.0.name),
        }
    }

    fn out_cast(&self, tag: &'static str, payload: Payload) -> OutCast {
        OutCast {
            shard: self.0.shard,
            bird: self.0.name.clone(),
            kind: T::KIND,
            tag,
            payload,
            ticket: None,
        }
    }

    /// A cast to a kind that activates on demand, before this address knows
    /// the bird is registered: sent as a call whose reply is dropped, so
    /// that it activates the bird and waits for it (a plain cast to a name
    /// its owner has not heard of yet would be dropped). Casts sent while
    /// the bird activates are not ordered among themselves.
    fn activating_cast(&self, tag: &'static str, payload: Vec<u8>) {
        let this = self.clone();
        let timeout = self.0.node.config.call_timeout;
        actix::spawn(async move {
            let deadline = deadline_after(Instant::now(), timeout);
            if let Err(e) = this.call(tag, payload.into(), deadline, timeout).await {
                tracing::warn!("cast to bird {} dropped: {e}", this.0.name);
            }
        });
    }

    /// Starts the bird if its kind activates on demand and this call has
    /// not tried yet; whether it did (then the call is tried again).
    async fn activate(&self, tried: &mut bool) -> Result<bool> {
        if *tried {
            return Ok(false);
        }
        if !T::ACTIVATES {
            warn_undeclared_activation::<T>(&self.0.name);
            return Ok(false);
        }
        let Some(args) = T::activate(&self.0.name) else {
            return Ok(false);
        };
        *tried = true;
        super::flock::ensure::<T>(&self.0.node, &self.0.name, args).await?;
        tracing::debug!(bird = %self.0.name, kind = T::KIND, "bird {} activated on demand", self.0.name);
        Ok(true)
    }

    /// The cached link to the owner, if still valid in the view of
    /// `epoch`: the owner is then another node, and neither the placement
    /// nor the link table need asking (one load per cast or call).
    fn cached_link(&self, epoch: u64) -> Option<Arc<LinkRoute>> {
        self.0
            .routes
            .link
            .load_full()
            .filter(|route| route.valid_at(epoch))
    }

    /// The link to the owner (another node), cached per view epoch.
    fn owner_link(&self) -> Option<Arc<LinkRoute>> {
        let view = self.0.node.view.load();
        if let Some(route) = self.cached_link(view.epoch) {
            return Some(route);
        }
        let owner = view
            .placement
            .for_kind(T::KIND)
            .owner_of_shard(self.0.shard)
            .ok()?;
        let route = Arc::new(LinkRoute {
            epoch: view.epoch,
            owner: owner.clone(),
            link: self.0.node.peer_link(owner)?,
        });
        // Racing callers store equal routes; the last one stays.
        self.0.routes.link.store(Some(route.clone()));
        Some(route)
    }

    fn owned_here(&self) -> Result<bool> {
        let view = self.0.node.view.load();
        Ok(view
            .placement
            .for_kind(T::KIND)
            .owner_of_shard(self.0.shard)?
            == self.0.node.name())
    }

    fn timed_out(&self, after: Duration) -> Error {
        Error::Timeout {
            name: self.0.name.to_string(),
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The address of the bird running on this node, owned here in the
    /// view of `epoch`: asks the Registry (once per view, or after a
    /// restart) and caches the answer.
    async fn resolve_local(&self, epoch: u64) -> Option<Arc<Route<T>>> {
        let registry = self.0.node.actors()?.registry.clone();
        let addr = registry
            .send(Resolve::<T> {
                name: self.0.name.clone(),
                _kind: PhantomData,
            })
            .await
            .ok()??;
        let route = Arc::new(Route { epoch, addr });
        self.0.routes.local.store(Some(route.clone()));
        self.0.routes.quick.forget();
        Some(route)
    }

    /// Calls with an encoded payload, retrying while the owner moves or
    /// lags behind, until `deadline`.
    async fn call(
        &self,
        tag: &'static str,
        payload: Payload,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let mut pause = Duration::from_millis(1);
        let mut activated = false;
        let (mut to, mut redirects) = (None, 0);
        loop {
            let outcome = self
                .attempt(
                    tag,
                    payload.clone(),
                    deadline,
                    timeout,
                    (to.take(), redirects),
                )
                .await;
            let retry = match outcome {
                Outcome::Redirect(owner) => {
                    redirects += 1;
                    to = Some(owner);
                    continue;
                }
                Outcome::Done(reply) => {
                    self.0.routes.activated.store(true, Ordering::Release);
                    return Ok(reply);
                }
                Outcome::Fail(e @ Error::NotFound { .. }) => {
                    if self.activate(&mut activated).await? {
                        // Registered here now: the owner learns of it soon.
                        continue;
                    }
                    return Err(e);
                }
                Outcome::Fail(e) => return Err(e),
                Outcome::Retry(e) => {
                    redirects = 0;
                    e
                }
            };
            let now = Instant::now();
            if now + pause >= deadline {
                return Err(match retry {
                    Error::Unreachable { .. } => retry,
                    _ => self.timed_out(timeout),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    async fn attempt(
        &self,
        tag: &'static str,
        payload: Payload,
        deadline: Instant,
        timeout: Duration,
        (to, redirects): (Option<String>, u32),
    ) -> Outcome {
        let Some(actors) = self.0.node.actors() else {
            return Outcome::Fail(Error::Stopped);
        };
        let redirected = to.is_some();
        // The link learned in this view names the owner: no placement
        // lookup on the common remote path.
        let cached = match to {
            None => self.cached_link(self.0.node.view.epoch()),
            Some(_) => None,
        };
        let owner = match (&cached, to) {
            (Some(route), _) => route.owner.clone(),
            (None, to) => match to.map_or_else(|| self.owner_name(), |to| Ok(to.into())) {
                Ok(o) => o,
                Err(e) => return Outcome::Fail(e),
            },
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (tx, rx) = oneshot::channel();
        let local = *owner == **self.0.node.name();
        if local {
            actors.registry.do_send(InboundCall {
                bird: self.0.name.clone(),
                kind: T::KIND.to_owned(),
                tag: tag.to_owned(),
                payload: payload.into_vec(),
                timeout: remaining,
                reply: CallReply::Local(tx),
            });
        } else {
            let call = OutCall {
                bird: self.0.name.clone(),
                shard: self.0.shard,
                kind: T::KIND.into(),
                tag: tag.into(),
                payload,
                timeout_ms: u32::try_from(remaining.as_millis()).unwrap_or(u32::MAX),
                forwarded: false,
                reply: tx,
                ticket: None,
            };
            let sent = if redirected {
                self.0
                    .node
                    .peer_link(&owner)
                    .map(|link| link.call(call, &self.0.node))
            } else {
                cached
                    .or_else(|| self.owner_link())
                    .map(|route| route.link.call(call, &self.0.node))
            };
            if sent.is_none() {
                // Not sent: safe to retry once the view settles.
                return Outcome::Retry(Error::Unreachable {
                    node: owner.to_string(),
                });
            }
        }
        // Over a link or through the Registry: never answered by the
        // caller's next turn, so the timer is armed at once.
        let result = match within(Due::at(deadline), rx, FirstPoll::Arm).await {
            Err(_) => return Outcome::Fail(self.timed_out(timeout)),
            Ok(Err(_)) if local => return Outcome::Fail(Error::Stopped),
            // The link closed with the call in flight: it may have been
            // handled, so it is not retried (at most once).
            Ok(Err(_)) => {
                return Outcome::Fail(Error::Unreachable {
                    node: owner.to_string(),
                });
            }
            Ok(Ok(result)) => result,
        };
        match result {
            Ok(reply) => Outcome::Done(reply),
            Err(RemoteError::Moved { owner: named, .. }) => {
                telemetry::moved_retry();
                let next = routing::after_moved(routing::Calling {
                    named: &named,
                    tried: &owner,
                    me: self.0.node.name(),
                    reachable: self.0.node.link(&named).is_some(),
                    redirects,
                });
                match next {
                    routing::Next::Redirect(to) => Outcome::Redirect(to),
                    routing::Next::Backoff => Outcome::Retry(self.timed_out(timeout)),
                }
            }
            Err(RemoteError::NotRunning { .. }) => {
                telemetry::moved_retry();
                Outcome::Retry(self.timed_out(timeout))
            }
            // The call may have been handled: not retried (at most once).
            Err(RemoteError::LinkClosed) => Outcome::Fail(Error::Unreachable {
                node: owner.to_string(),
            }),
            // It never left this node: safe to retry once the view settles.
            Err(RemoteError::NotSent) => Outcome::Retry(Error::Unreachable {
                node: owner.to_string(),
            }),
            Err(RemoteError::NotFound { .. }) if !local && self.known_here().await => {
                // The owner has not heard of the bird yet; we have.
                Outcome::Retry(self.timed_out(timeout))
            }
            Err(e) => Outcome::Fail(self.error(e, owner)),
        }
    }

    async fn known_here(&self) -> bool {
        let Some(actors) = self.0.node.actors() else {
            return false;
        };
        matches!(
            actors.replica.send(Lookup(self.0.name.clone())).await,
            Ok(Some(_))
        )
    }

    fn error(&self, e: RemoteError, owner: NodeName) -> Error {
        let owner = owner.to_string();
        let name = self.0.name.to_string();
        match e {
            RemoteError::NotFound { .. } => Error::NotFound { name },
            RemoteError::UnknownKind { kind } => Error::UnknownKind { kind, node: owner },
            RemoteError::UnknownMessage { kind, msg } => Error::UnknownMessage { kind, msg },
            RemoteError::Decode(m) => Error::Decode(m),
            RemoteError::Encode(m) => Error::Encode(m),
            RemoteError::BirdPanicked { .. } => Error::BirdPanicked { name },
            RemoteError::Timeout => Error::Timeout { name, after_ms: 0 },
            RemoteError::WrongKind {
                expected, actual, ..
            } => Error::WrongKind {
                name,
                expected,
                actual,
            },
            RemoteError::LinkClosed | RemoteError::NotSent => Error::Unreachable { node: owner },
            RemoteError::HatchFailed { reason, .. } => Error::HatchFailed {
                name,
                node: owner,
                reason,
            },
            other => Error::Remote(other.to_string()),
        }
    }
}

/// A kind that overrides [`Bird::activate`](crate::Bird::activate) but is
/// not declared `#[flock_bird(activate)]` never activates (the flag is what
/// the message paths read, so that no user code runs on every cast). That
/// is easy to miss, so the first call of such a kind that finds no bird says
/// so, once per kind, at warn level. It runs the kind's `activate` only on
/// that path (a call answered `NotFound`), never on casts.
fn warn_undeclared_activation<T: BirdKind>(name: &str) {
    static WARNED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.contains(&T::KIND) || warned.len() >= 1024 {
        return;
    }
    if T::activate(name).is_some() {
        warned.push(T::KIND);
        tracing::warn!(
            kind = T::KIND,
            "bird kind {} overrides Bird::activate but is not declared #[flock_bird(activate)]: \
             its birds are not activated on demand; add `activate` to its #[flock_bird(..)]",
            T::KIND
        );
    }
}

/// Waits (up to 50 ms) for the mailbox of a bird that panicked in its
/// handler to close: the reply channel can close a moment before the
/// mailbox does, and the next call should see the bird gone.
async fn mailbox_closed<A: Actor>(addr: &Addr<A>) {
    for _ in 0..50 {
        if !addr.connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
