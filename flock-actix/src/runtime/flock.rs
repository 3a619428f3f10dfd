//! The `Flock` handle and its builder: what an application holds.

use super::addr::FlockAddr;
use super::config::FlockConfig;
use super::directory::Directory;
use super::discovery::DnsDiscovery;
use super::kinds::KindTable;
use super::messages::Begin;
use super::node::{Actors, Node};
use super::registry::{Registry, Running};
use super::replica::{CountBirds, CrdtReplica, InsertMany, ListBirds, Lookup, Remove, WholeState};
use super::ring::{Leave, Members, Ring};
use super::{MemberState, MemberView};
use crate::bird::BirdKind;
use crate::core::crdt::{BirdSpec, ReplicaId, check_bird_name};
use crate::core::membership::NodeInfo;
use crate::error::{Error, Result};
use crate::nest::Nest;
use crate::net::Network;
use crate::wire::payload;
use actix::{Actor, Arbiter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Most birds `start_many` records in one turn of the replica.
const START_SLICE: usize = 10_000;

/// How long past a closing link's linger the links arbiter stays up.
const SHUTDOWN_SLACK: Duration = Duration::from_millis(200);

/// How long `leave` waits for peers to take over before it returns anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running flock-actix node. Cheap to clone; every clone is the same node.
///
/// ```no_run
/// use flock_actix::prelude::*;
///
/// # #[actix::main] async fn main() -> Result<()> {
/// let flock = Flock::builder("web-1@10.0.0.5")
///     .listen("0.0.0.0:4001")
///     .seeds(["10.0.0.1:4001"])
///     .cookie("from your secret store")
///     .start()
///     .await?;
/// for member in flock.members().await? {
///     println!("{} {:?} weight {}", member.name, member.status, member.weight);
/// }
/// println!("cart:17 runs on {}", flock.owner_of("cart:17")?);
/// flock.stop("cart:17").await?; // wherever it runs
///
/// // On SIGTERM: hand this node's birds over to the others, then stop.
/// flock.leave().await?;
/// flock.shutdown();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Flock {
    node: Arc<Node>,
    arbiters: Arc<Vec<Arbiter>>,
    /// `None` when the service actors run on the caller's arbiter
    /// (`FlockConfig::service_threads` off: the simulation).
    service: Option<Arc<ServiceArbiters>>,
}

/// The threads of a node's own actors, apart from the birds' arbiters and
/// the caller's (which runs the Registry).
struct ServiceArbiters {
    /// The Ring and every Peer: heartbeats are answered and silence is
    /// judged here, never queued behind registry work.
    links: Arbiter,
    /// The CrdtReplica: recording starts, joining deltas and full states.
    replica: Arbiter,
}

impl ServiceArbiters {
    fn new(name: &crate::core::crdt::NodeName) -> Self {
        let this = ServiceArbiters {
            links: Arbiter::new(),
            replica: Arbiter::new(),
        };
        for arbiter in [&this.links, &this.replica] {
            let name = name.clone();
            arbiter.spawn_fn(move || super::set_current_node(name));
        }
        this
    }
}

impl std::fmt::Debug for Flock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flock")
            .field("name", &self.node.name())
            .field("listen", &self.node.me.addr)
            .finish_non_exhaustive()
    }
}

/// Builds and starts a [`Flock`] node.
///
/// ```no_run
/// use flock_actix::prelude::*;
/// use std::time::Duration;
///
/// # #[actix::main] async fn main() -> Result<()> {
/// // A client node: it routes calls to birds but hosts none.
/// let flock = Flock::builder("api-1@10.0.0.9")
///     .listen("0.0.0.0:4001")
///     .seeds(["flock.shop.svc.cluster.local:4001"])
///     .cluster("shop")
///     .cookie("from your secret store")
///     .weight(0)
///     .call_timeout(Duration::from_secs(2))
///     .configure(|c| c.membership.down_after_ms = 2_000)
///     .start()
///     .await?;
/// # flock.shutdown(); Ok(()) }
/// ```
pub struct FlockBuilder {
    config: FlockConfig,
    kinds: KindTable,
    nest: Nest,
    discovery: Option<DnsDiscovery>,
    data_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for FlockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlockBuilder")
            .field("config", &self.config)
            .field("discovery", &self.discovery)
            .field("data_dir", &self.data_dir)
            .field("nest", &self.nest)
            .finish_non_exhaustive()
    }
}

impl FlockBuilder {
    /// Keeps this node's copy of the registry on disk in `dir` (created if
    /// missing), so that it survives a restart, including a full restart of
    /// every node at once: the birds started and not stopped run again,
    /// the stopped ones stay stopped. Every change is fsynced before it is
    /// acknowledged; see `docs/ARCHITECTURE.md` ("A registry that survives
    /// a full restart") for what an unclean stop can lose. One directory
    /// per node; off by default.
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The address to listen on (`host:port`; port 0 picks a free one).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.config.listen = addr.into();
        self
    }

    /// The address peers dial to reach this node (`host:port`), when it is
    /// not the bound one: behind NAT, or to choose among interfaces. By
    /// default the bound address is advertised, and a node bound to every
    /// interface (`0.0.0.0:4001`) advertises the local address that routes
    /// to its seeds.
    pub fn advertise(mut self, addr: impl Into<String>) -> Self {
        self.config.advertise = Some(addr.into());
        self
    }

    /// Nodes to join through; any one that answers is enough.
    pub fn seeds<S: Into<String>>(mut self, seeds: impl IntoIterator<Item = S>) -> Self {
        self.config.seeds = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// The cluster cookie every node must share.
    pub fn cookie(mut self, cookie: impl AsRef<[u8]>) -> Self {
        self.config.cookie = cookie.as_ref().to_vec();
        self
    }

    /// The cluster name (nodes of other clusters are refused).
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.config.cluster = name.into();
        self
    }

    /// The node's placement weight; 0 makes it a client that hosts no birds.
    pub fn weight(mut self, weight: u32) -> Self {
        self.config.weight = weight;
        self
    }

    /// The default call timeout.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = timeout;
        self
    }

    /// How long a new owner waits for a moved bird's state (kinds with
    /// `#[flock_bird(handoff)]`) before it hatches the bird from its
    /// arguments; 2 s by default. Calls to the bird wait meanwhile.
    pub fn handoff_wait(mut self, wait: Duration) -> Self {
        self.config.handoff_wait = wait;
        self
    }

    /// The number of arbiters (threads) birds are spread over; 0 runs them
    /// on the calling arbiter.
    pub fn arbiters(mut self, n: usize) -> Self {
        self.config.arbiters = n;
        self
    }

    /// Carries calls and casts on data links (docs/ARCHITECTURE.md §26):
    /// per peer and per bird arbiter of the peer, a connection beside the
    /// control link, opened when the first call to a bird on that arbiter
    /// is made, so a received call is handled on the thread of its bird.
    /// A data link whose peer reads slower than this node writes holds
    /// messages back, up to `FlockConfig::data_queue_bytes`, rather than
    /// dropping them. On by default (hidden); a call's wait in a data link's
    /// socket counts against its deadline (§32).
    #[doc(hidden)]
    pub fn data_links(mut self, on: bool) -> Self {
        self.config.data_links = on;
        self
    }

    /// Use another network (tests: an in-memory or fault-injecting one from
    /// [`testing`](crate::testing)).
    pub fn network(mut self, network: Arc<dyn Network>) -> Self {
        self.config.network = network;
        self
    }

    /// Secures every link with mutual TLS (feature `tls`): this node presents
    /// `tls`'s certificate and accepts only peers whose certificates chain to
    /// the cluster CA, in addition to the cookie. It wraps the network set so
    /// far, so call it after [`FlockBuilder::network`] if you use both; every
    /// node of the cluster must use TLS (see docs/TLS.md).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the key does not fit the certificate.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::net::TlsConfig) -> Result<Self> {
        let network = crate::net::TlsNetwork::over(self.config.network.clone(), tls)?;
        self.config.network = Arc::new(network);
        Ok(self)
    }

    /// Finds peers through a DNS name that resolves to every node (e.g. a
    /// Kubernetes headless service), re-resolved periodically, in addition
    /// to the seeds: new addresses are dialled as they appear.
    pub fn discovery(mut self, discovery: DnsDiscovery) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Replace the whole configuration (the name included).
    pub fn config(mut self, config: FlockConfig) -> Self {
        self.config = config;
        self
    }

    /// Edit the configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut FlockConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Lets this node run birds of kind `T`.
    pub fn bird<T: BirdKind>(mut self) -> Self {
        self.kinds.insert::<T>();
        self
    }

    /// Passivates idle birds of kind `T` on this node: one to which no
    /// message was handed for `after` is stopped here but stays in the
    /// registry, and its next message (a call or a cast, from any node)
    /// starts it again, from the state it handed over when it stopped if
    /// the kind implements [`Handoff`](crate::Handoff), else from its start
    /// arguments. Overrides the kind's `#[flock_bird(passivate_after =
    /// "...")]`; `None` turns passivation off for the kind. Give every
    /// hosting node the same setting. See the README ("Idle passivation").
    pub fn passivate_after<T: BirdKind>(mut self, after: Option<Duration>) -> Self {
        self.kinds.set_passivate_after(T::KIND, after);
        self
    }

    /// Puts `value` in this node's [`Nest`]: node-local context (a database
    /// pool, configuration, an actix `Addr`) that every
    /// [`Bird::hatch`](crate::Bird::hatch) on this node can read by type,
    /// without a global static. One value per type; a later one of the same
    /// type replaces the earlier. Give every hosting node the context its
    /// bird kinds need: a bird that finds none fails to hatch
    /// ([`Error::HatchFailed`]).
    pub fn nest<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.nest.insert(value);
        self
    }

    /// Binds the listener and starts the node's actors (call it inside an
    /// actix `System`, e.g. in actix-web's main): the bird registry on the
    /// current arbiter, links and failure detection on an arbiter of their
    /// own, and the registry replica on another, so that a node busy with
    /// a big batch never looks dead to its peers.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad configuration, [`Error::Io`] if the
    /// address cannot be bound.
    pub async fn start(self) -> Result<Flock> {
        super::telemetry::describe();
        let FlockBuilder {
            config,
            kinds,
            nest,
            discovery,
            data_dir,
        } = self;
        config.validate()?;
        discovery.as_ref().map(DnsDiscovery::validate).transpose()?;
        let durable = data_dir
            .map(|dir| super::durable::Durable::open(&dir))
            .transpose()?;
        let listener = config.network.bind(&config.listen).await?;
        let addr = crate::net::advertised_addr(
            &listener.local_addr(),
            config.advertise.as_deref(),
            &config.seeds,
        )
        .await?;
        let me = NodeInfo {
            id: ReplicaId {
                node: config.name.as_str().into(),
                incarnation: config.wall_ms(),
            },
            addr,
            weight: config.weight,
        };
        let arbiters: Vec<Arbiter> = (0..config.arbiters).map(|_| Arbiter::new()).collect();
        let handles: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
        let name: crate::core::crdt::NodeName = config.name.as_str().into();
        super::set_current_node(name.clone());
        for arbiter in &arbiters {
            let name = name.clone();
            arbiter.spawn_fn(move || super::set_current_node(name));
        }
        let node = Arc::new(Node::new(config, me, kinds, nest)?);
        // The announced kinds are bounded (MAX_ANNOUNCED_KINDS tags).
        node.handshake_config().validate()?;
        let replica = CrdtReplica::new(node.clone(), durable)?;
        let directory = Directory::new(handles.clone());
        let ring = Ring::new(node.clone(), listener, directory.clone())?;
        // Liveness and bulk work on separate threads (docs/ARCHITECTURE.md,
        // "Failure detection off the work threads"): the Ring and every
        // link's Peer on one arbiter, the registry replica on another, the
        // Registry on the caller's.
        let service = node
            .config
            .service_threads
            .then(|| ServiceArbiters::new(&name));
        let registry = Registry::new(node.clone(), handles, directory).start();
        let actors = match &service {
            Some(service) => Actors {
                replica: CrdtReplica::start_in_arbiter(&service.replica.handle(), move |_| replica),
                registry,
                ring: Ring::start_in_arbiter(&service.links.handle(), move |_| ring),
            },
            None => Actors {
                replica: replica.start(),
                registry,
                ring: ring.start(),
            },
        };
        let _ = node.actors.set(actors);
        // Only now may they work: each may already be running on its arbiter
        // and must see every address when it does.
        if let Some(a) = node.actors() {
            a.replica.do_send(Begin);
            a.ring.do_send(Begin);
        }
        // Return only once every actor has run `started` (a reply proves
        // it): their timers need the runtime, and an application that drops
        // its System right after `start` must not leave actors that still
        // have to start while the runtime is torn down.
        if let Some(a) = node.actors() {
            let (ring, replica, registry) = tokio::join!(
                a.ring.send(Members),
                a.replica.send(ListBirds),
                a.registry.send(Running)
            );
            if ring.is_err() || replica.is_err() || registry.is_err() {
                return Err(Error::Stopped);
            }
        }
        if let Some(discovery) = discovery {
            discovery.spawn(node.clone())?;
        }
        tracing::info!(
            "node {} listening on {} (cluster {:?})",
            node.name(),
            node.me.addr,
            node.config.cluster
        );
        Ok(Flock {
            node,
            arbiters: Arc::new(arbiters),
            service: service.map(Arc::new),
        })
    }
}

impl Flock {
    /// A builder for a node called `name` (e.g. `node1@127.0.0.1`).
    pub fn builder(name: impl Into<String>) -> FlockBuilder {
        FlockBuilder {
            config: FlockConfig::new(name),
            kinds: KindTable::default(),
            nest: Nest::default(),
            discovery: None,
            data_dir: None,
        }
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// The address peers dial to reach this node (with the real port): the
    /// advertised address, see [`FlockBuilder::advertise`].
    pub fn listen_addr(&self) -> &str {
        &self.node.me.addr
    }

    /// The configuration in force.
    pub fn config(&self) -> &FlockConfig {
        &self.node.config
    }

    /// The node-local context given to the builder
    /// ([`FlockBuilder::nest`]), the same birds get in `hatch`.
    pub fn nest(&self) -> &Nest {
        &self.node.nest
    }

    fn actors(&self) -> Result<&Actors> {
        actors_of(&self.node)
    }

    /// Records bird `name` of kind `T` in the registry and returns; the node
    /// that owns the name starts it soon after.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if the name breaks the naming rules (see
    /// [`check_bird_name`]), [`Error::AlreadyExists`] if the name is in the
    /// registry, [`Error::KindNotHosted`] if no live member hosts `T`,
    /// [`Error::Encode`] if `args` cannot be serialized, [`Error::Stopped`].
    pub async fn start<T: BirdKind>(&self, name: &str, args: T::Args) -> Result<()> {
        let mut results = self.start_many::<T>([(name.to_owned(), args)]).await?;
        results.pop().unwrap_or(Err(Error::Stopped))
    }

    /// Records many birds of kind `T` at once (one registry delta per
    /// 10,000 of them), returning one result per bird in order: the way to
    /// start thousands of birds quickly. A batch of millions is recorded in
    /// slices, so the node keeps serving its peers meanwhile; if the node
    /// stops in between, the slices recorded so far stay recorded.
    ///
    /// # Errors
    /// The outer error is [`Error::InvalidName`] (a name breaks the naming
    /// rules of [`check_bird_name`]; nothing was recorded), [`Error::Encode`]
    /// (arguments that cannot be serialized; nothing was recorded) or
    /// [`Error::Stopped`]; each inner
    /// result is `Ok` or [`Error::AlreadyExists`].
    pub async fn start_many<T: BirdKind>(
        &self,
        birds: impl IntoIterator<Item = (String, T::Args)>,
    ) -> Result<Vec<Result<()>>> {
        start_many::<T>(&self.node, birds).await
    }

    /// Starts bird `name` of kind `T` unless it already exists as a `T`:
    /// start-or-get in one call. `Ok` when it was started or was there.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the name is taken by a bird of another
    /// kind, [`Error::Encode`], [`Error::Stopped`].
    pub async fn ensure<T: BirdKind>(&self, name: &str, args: T::Args) -> Result<()> {
        ensure::<T>(&self.node, name, args).await
    }

    /// Waits until at least `min_hosts` members host birds in this node's
    /// view (this one included, if it hosts), up to `timeout`: start birds
    /// after it so that they are placed in the formed cluster, not here
    /// first and moved later. Returns whether the cluster got there in time.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn ready(&self, min_hosts: usize, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first look: the Ring publishes a new view
        // before the events that tell of it, so a view that changes after
        // the look wakes this wait (no sampling).
        let mut events = self.events();
        loop {
            self.actors()?;
            if self.node.view.load().placement.hosts().len() >= min_hosts {
                return Ok(true);
            }
            match tokio::time::timeout_at(deadline, events.next()).await {
                Err(_) => {
                    let hosts = self.node.view.load().placement.hosts().len();
                    return Ok(hosts >= min_hosts);
                }
                // The node stopped.
                Ok(None) => return Err(Error::Stopped),
                Ok(Some(_)) => {}
            }
        }
    }

    /// Subscribes to this node's membership events: members up, down and
    /// left, and changes of the hosting set. The subscription starts with
    /// the current state as events (every member up, then the hosts), then
    /// follows changes as this node sees them, and ends (`None`) when the
    /// node stops. It is bounded: a subscriber that falls behind by more
    /// than 256 events is told how many it lost
    /// ([`MemberEvent::Lagged`](crate::MemberEvent::Lagged)); the node
    /// never waits for it.
    ///
    /// ```no_run
    /// use flock_actix::{prelude::*, MemberEvent};
    ///
    /// # async fn watch(flock: Flock) {
    /// let mut events = flock.events();
    /// while let Some(event) = events.next().await {
    ///     match event {
    ///         MemberEvent::Up { name, .. } => println!("{name} is up"),
    ///         MemberEvent::Down { name } => println!("{name} is down"),
    ///         MemberEvent::Left { name } => println!("{name} left"),
    ///         MemberEvent::ViewChanged { hosts } => println!("hosts: {hosts:?}"),
    ///         MemberEvent::Lagged { missed } => println!("missed {missed} events"),
    ///         _ => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub fn events(&self) -> super::Events {
        self.node.events.subscribe()
    }

    /// Removes bird `name` from the registry; the running instance stops soon
    /// after, wherever it is.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if the name breaks the naming rules,
    /// [`Error::NotFound`] if the name is not in the registry, [`Error::Stopped`].
    pub async fn stop(&self, name: &str) -> Result<()> {
        check_bird_name(name)?;
        self.actors()?
            .replica
            .send(Remove { name: name.into() })
            .await
            .map_err(|_| Error::Stopped)?
    }

    /// The address of bird `name` of kind `T` (whether or not it exists yet).
    pub fn addr<T: BirdKind>(&self, name: &str) -> FlockAddr<T> {
        FlockAddr::new(self.node.clone(), name)
    }

    /// The node that owns `name` in this node's view, whatever its kind
    /// hosts (for the owner of a bird of kind `T`, which only nodes hosting
    /// `T` own, use `self.addr::<T>(name).owner()`, or
    /// [`Flock::owner_of_kind`] with the kind's tag).
    ///
    /// # Errors
    /// [`Error::NoNodes`] if no member can host birds.
    pub fn owner_of(&self, name: &str) -> Result<String> {
        Ok(self
            .node
            .view
            .load()
            .placement
            .all()
            .owner(name)?
            .to_string())
    }

    /// The node that owns bird `name` of kind `kind` (its tag, as
    /// [`Flock::birds`] lists it) in this node's view: only nodes that host
    /// a kind own its birds. For tools that know birds by tag, like the
    /// dashboard; typed code uses `self.addr::<T>(name).owner()`.
    ///
    /// # Errors
    /// [`Error::NoNodes`] if no member hosts `kind`.
    pub fn owner_of_kind(&self, kind: &str, name: &str) -> Result<String> {
        Ok(self
            .node
            .view
            .load()
            .placement
            .owner(kind, name)?
            .to_string())
    }

    /// The members as this node sees them, this node first.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn members(&self) -> Result<Vec<MemberView>> {
        self.actors()?
            .ring
            .send(Members)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Names and kinds of every bird in this node's replica of the registry.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn birds(&self) -> Result<Vec<(String, String)>> {
        self.actors()?
            .replica
            .send(ListBirds)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// How many birds this node's replica of the registry holds: what
    /// `birds().len()` says, without listing them (a poll of a registry of a
    /// million names costs one message, not a million strings).
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn bird_count(&self) -> Result<usize> {
        self.actors()?
            .replica
            .send(CountBirds)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// A copy of this node's whole replica, dots and causal context
    /// included. Hidden: the deterministic simulation (tests/sim)
    /// fingerprints it after every step to prove a seed replays exactly.
    #[doc(hidden)]
    pub async fn replica_state(&self) -> Result<crate::core::crdt::BirdMap> {
        self.actors()?
            .replica
            .send(WholeState)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Names of the birds running on this node.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn local_birds(&self) -> Result<Vec<String>> {
        self.actors()?
            .registry
            .send(Running)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Names of the birds passivated on this node: owned here and in the
    /// registry, stopped while idle, started again by their next message
    /// (see [`FlockBuilder::passivate_after`]). Not in
    /// [`Flock::local_birds`], which lists the running ones.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn passivated_birds(&self) -> Result<Vec<String>> {
        self.actors()?
            .registry
            .send(super::registry::Passivated)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Leaves the cluster gracefully: this node drops out of placement, its
    /// birds stop here and restart on their new owners, and once every peer
    /// acknowledged (or after 10 s) the call returns. Then shut the node down.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn leave(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.actors()?.ring.do_send(Leave(tx));
        if tokio::time::timeout(LEAVE_TIMEOUT, rx).await.is_err() {
            tracing::warn!(
                "node {}: not every peer acknowledged the leave within {LEAVE_TIMEOUT:?}",
                self.name()
            );
        }
        self.await_handoffs().await;
        Ok(())
    }

    /// Waits (bounded by the handoff wait, twice) until the new owners
    /// acknowledged the states of the birds this node handed over, so that
    /// a shutdown right after `leave` loses none in flight.
    async fn await_handoffs(&self) {
        let Ok(actors) = self.actors() else { return };
        let within = self.node.config.handoff_wait.saturating_mul(2);
        // Answered by the Registry when the last acknowledgement arrives
        // (or at once if none is due); dropped if it stops.
        let Ok(all_acked) = actors.registry.send(super::registry::AllAcked).await else {
            return;
        };
        if tokio::time::timeout(within, all_acked).await.is_ok() {
            return;
        }
        if let Ok(n @ 1..) = actors.registry.send(super::messages::Unacked).await {
            tracing::warn!(
                "node {}: {n} bird state handoff(s) not acknowledged within {within:?}; \
                 their new owners hatch them from their arguments",
                self.name()
            );
        }
    }

    /// A future that resolves once SIGINT or SIGTERM arrived and this node
    /// left the cluster (its birds handed over to their new owners): the
    /// graceful way to stop an embedding app. With actix-web it is one line,
    /// which also replaces the server's own signal handling so that the
    /// system stops only after the leave:
    ///
    /// ```ignore
    /// HttpServer::new(app).shutdown_signal(flock.leave_on_signal()).bind(addr)?.run().await
    /// ```
    ///
    /// A plain actix app awaits it, then stops its system. Without it, a
    /// signal or a `System::stop` is still safe (no bird is removed from the
    /// cluster; the peers restart this node's birds once they notice it is
    /// gone), only slower to hand over.
    pub fn leave_on_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let flock = self.clone();
        async move {
            wait_for_signal().await;
            tracing::info!(
                "node {}: signal received; leaving the cluster",
                flock.name()
            );
            if let Err(e) = flock.leave().await {
                tracing::warn!("node {}: leave on signal: {e}", flock.name());
            }
        }
    }

    /// Stops the node: closes its links, stops its birds (they stay in the
    /// registry, so their new owners restart them) and its arbiters.
    pub fn shutdown(&self) {
        if self.node.is_stopping() {
            return;
        }
        self.node.set_stopping();
        self.node.events.close();
        if let Some(actors) = self.node.actors() {
            actors.ring.do_send(super::ring::Shutdown);
            actors.registry.do_send(super::registry::Shutdown);
        }
        for arbiter in self.arbiters.iter() {
            arbiter.stop();
        }
        if let Some(service) = &self.service {
            service.replica.stop();
            // The links arbiter stops once the closing links had their
            // linger to flush (they stop themselves by then).
            service.links.spawn(async {
                tokio::time::sleep(super::peer::CLOSE_LINGER + SHUTDOWN_SLACK).await;
                Arbiter::current().stop();
            });
        }
        tracing::info!("node {} stopped", self.name());
    }

    /// Whether this node hosts birds in its own current view.
    pub fn is_host(&self) -> bool {
        self.node
            .view
            .load()
            .placement
            .hosts()
            .iter()
            .any(|m| m.name == *self.node.name())
    }

    /// How many members are up, this node included.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn up_count(&self) -> Result<usize> {
        Ok(self
            .members()
            .await?
            .iter()
            .filter(|m| m.status == MemberState::Up)
            .count())
    }
}

/// The node's actors, unless it is stopping.
fn actors_of(node: &Node) -> Result<&Actors> {
    if node.is_stopping() {
        return Err(Error::Stopped);
    }
    node.actors().ok_or(Error::Stopped)
}

/// [`Flock::start_many`] on `node`.
async fn start_many<T: BirdKind>(
    node: &Node,
    birds: impl IntoIterator<Item = (String, T::Args)>,
) -> Result<Vec<Result<()>>> {
    let birds = birds
        .into_iter()
        .map(|(name, args)| {
            check_bird_name(&name)?;
            let args = payload::encode(&args).map_err(Error::Encode)?;
            let spec = BirdSpec {
                kind: T::KIND.to_owned(),
                args,
            };
            Ok((Arc::<str>::from(name), spec))
        })
        .collect::<Result<Vec<_>>>()?;
    // Placement per kind: a bird of a kind no member hosts has no owner.
    // (A view with no hosts at all is a node still joining: recorded, and
    // placed when members arrive, as always.)
    let view = node.view.load();
    if !view.placement.hosts().is_empty() && !view.placement.is_hosted(T::KIND) {
        return Err(Error::KindNotHosted {
            kind: T::KIND.to_owned(),
        });
    }
    drop(view);
    // In slices, each one delta and one turn of the replica: the replica
    // answers peers (and other callers) between slices, and no delta grows
    // with the caller's batch.
    let replica = &actors_of(node)?.replica;
    let mut results = Vec::with_capacity(birds.len());
    let mut birds = birds.into_iter().peekable();
    while birds.peek().is_some() {
        let slice: Vec<_> = birds.by_ref().take(START_SLICE).collect();
        let done = replica
            .send(InsertMany(slice))
            .await
            .map_err(|_| Error::Stopped)?;
        results.extend(done);
    }
    Ok(results)
}

/// [`Flock::ensure`] on `node`: also the start of an activating
/// [`FlockAddr`].
pub(crate) async fn ensure<T: BirdKind>(node: &Node, name: &str, args: T::Args) -> Result<()> {
    let start = |args: T::Args| async move {
        let mut results = start_many::<T>(node, [(name.to_owned(), args)]).await?;
        results.pop().unwrap_or(Err(Error::Stopped))
    };
    match start(args.clone()).await {
        Err(Error::AlreadyExists { name: taken }) => {
            let spec = actors_of(node)?
                .replica
                .send(Lookup(name.into()))
                .await
                .map_err(|_| Error::Stopped)?;
            match spec {
                Some(spec) if spec.kind == T::KIND => Ok(()),
                Some(_) => Err(Error::AlreadyExists { name: taken }),
                // Stopped in between: start it again.
                None => start(args).await,
            }
        }
        other => other,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; never if neither can be watched.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); leaving on Ctrl-C only");
                ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

/// Resolves on Ctrl-C; never if it cannot be watched.
async fn ctrl_c() {
    if let Err(e) = actix_rt::signal::ctrl_c().await {
        tracing::warn!("cannot watch Ctrl-C ({e}); not leaving on a signal");
        std::future::pending::<()>().await;
    }
}
