//! The Registry actor: the birds this node runs, their supervision, and the
//! calls addressed to them.
//!
//! It keeps the local birds in line with two inputs: the registry set (from
//! the CrdtReplica) and the placement view (from the Ring). A bird in the set
//! whose owner is this node is started; a running bird that is no longer
//! owned here, or no longer in the set, is stopped. Supervision follows
//! [`crate::core::supervision`]: a panic restarts the bird with backoff, a
//! stop of its own removes it from the set cluster-wide, a stop ordered by
//! flock-actix is neither. Calls for a bird that should run here but is not
//! running yet (just started, moving in, restarting) wait for it within
//! their deadline.

use super::directory::{Directory, Running as RunningBird};
use super::kinds::{BirdExited, Spawn};
use super::messages::{CallReply, InboundCall, InboundCast, SetChanged, ViewChanged};
use super::node::Node;
use super::replica::{OwnedBy, Remove};
use crate::bird::BirdKind;
use crate::core::crdt::BirdSpec;
use crate::core::supervision::Restarts;
use crate::wire::message::RemoteError;
use actix::prelude::*;
use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the Registry re-reads the whole owned set, as a safety net for
/// any change notification that raced with a view change.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// Birds started per turn of the node's arbiter. A batch of 100k starts (a
/// `start_many`, a node joining a big cluster) is worked off in slices, so
/// the Ring and the Peers on the same arbiter keep answering heartbeats: a
/// node busy starting birds must not look dead.
const STARTS_PER_TURN: usize = 256;

enum State {
    Running(Rc<RunningBird>),
    /// Panicked; a restart is scheduled.
    Restarting,
    /// Asked to stop; waiting for its exit report.
    Stopping,
    /// Cannot run here (unknown kind, undecodable arguments).
    Broken(RemoteError),
}

struct Local {
    spec: BirdSpec,
    instance: u64,
    state: State,
    restarts: Restarts,
    /// A new spec to start with once the stopping instance is gone.
    then_start: Option<Box<BirdSpec>>,
}

enum Waiter {
    Call {
        kind: String,
        tag: String,
        payload: Vec<u8>,
        reply: CallReply,
        deadline: Instant,
    },
    Cast {
        kind: String,
        tag: String,
        payload: Vec<u8>,
        deadline: Instant,
    },
}

impl Waiter {
    fn deadline(&self) -> Instant {
        match self {
            Waiter::Call { deadline, .. } | Waiter::Cast { deadline, .. } => *deadline,
        }
    }

    fn fail(self, error: RemoteError) {
        if let Waiter::Call { reply, .. } = self {
            reply.send(Err(error));
        }
    }
}

pub(crate) struct Registry {
    node: Arc<Node>,
    birds: HashMap<Arc<str>, Local>,
    waiting: HashMap<Arc<str>, Vec<Waiter>>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    directory: Directory,
    /// Birds to start here, worked off `STARTS_PER_TURN` at a time.
    pending: HashMap<Arc<str>, BirdSpec>,
    queue: VecDeque<Arc<str>>,
    draining: bool,
    next_instance: u64,
    last_share: Option<(usize, usize)>,
}

impl Registry {
    pub(crate) fn new(node: Arc<Node>, arbiters: Vec<ArbiterHandle>, directory: Directory) -> Self {
        Registry {
            node,
            birds: HashMap::new(),
            waiting: HashMap::new(),
            arbiters,
            next_arbiter: 0,
            directory,
            pending: HashMap::new(),
            queue: VecDeque::new(),
            draining: false,
            next_instance: 1,
            last_share: None,
        }
    }

    fn owned_here(&self, name: &str) -> Result<bool, RemoteError> {
        let view = self.node.view.load();
        match view.placement.owner(name) {
            Ok(owner) => Ok(owner == self.node.name()),
            Err(_) => Err(RemoteError::Internal("no node can host birds".into())),
        }
    }

    fn owner_of(&self, name: &str) -> String {
        let view = self.node.view.load();
        view.placement
            .owner(name)
            .map_or_else(|_| String::new(), |o| o.to_string())
    }

    /// Starts (or restarts) `name` with `spec`, and serves its waiters.
    fn start(&mut self, name: Arc<str>, spec: BirdSpec, ctx: &mut Context<Self>) {
        let instance = self.next_instance;
        self.next_instance += 1;
        let now = self.node.now_ms();
        let restarts = self
            .birds
            .get(&name)
            .map_or_else(|| Restarts::started(now), |l| l.restarts);
        let state = match self.node.kinds.get(&spec.kind) {
            None => {
                log::error!(
                    "node {} cannot run bird {name}: kind {} is not registered here \
                     (add .bird::<T>() to the node's builder)",
                    self.node.name(),
                    spec.kind
                );
                State::Broken(RemoteError::UnknownKind {
                    kind: spec.kind.clone(),
                })
            }
            Some(kind) => {
                let arbiter = (!self.arbiters.is_empty()).then(|| {
                    self.next_arbiter = (self.next_arbiter + 1) % self.arbiters.len();
                    &self.arbiters[self.next_arbiter]
                });
                match kind.spawn(Spawn {
                    name: name.clone(),
                    args: &spec.args,
                    instance,
                    arbiter,
                    exits: ctx.address().recipient(),
                }) {
                    Ok(bird) => {
                        log::debug!("bird {name} running on node {}", self.node.name());
                        let running = Rc::new(RunningBird { bird });
                        self.directory.insert(name.clone(), running.clone());
                        State::Running(running)
                    }
                    Err(e) => {
                        log::error!("node {} cannot start bird {name}: {e}", self.node.name());
                        State::Broken(e)
                    }
                }
            }
        };
        self.birds.insert(
            name.clone(),
            Local {
                spec,
                instance,
                state,
                restarts,
                then_start: None,
            },
        );
        self.serve_waiters(&name, ctx);
    }

    /// Stops a local bird because flock-actix says so (moved or removed).
    fn stop(&mut self, name: &Arc<str>, removed: bool) {
        let was_pending = self.pending.remove(name).is_some();
        if let Some(local) = self.birds.get_mut(name) {
            local.then_start = None;
            self.directory.remove(name);
            match &local.state {
                State::Running(running) => {
                    running.bird.stop();
                    local.state = State::Stopping;
                }
                State::Stopping => {}
                State::Restarting | State::Broken(_) => {
                    self.birds.remove(name);
                }
            }
        } else if !was_pending {
            // Neither queued nor here: nobody can be waiting for it.
            return;
        }
        let error = stop_error(name, removed, || self.owner_of(name));
        self.fail_waiters(name, error);
    }

    /// Queues `name` to run here with `spec`, started in the next slice.
    fn enqueue(&mut self, name: Arc<str>, spec: BirdSpec, ctx: &mut Context<Self>) {
        if self.pending.insert(name.clone(), spec).is_none() {
            self.queue.push_back(name);
        }
        if !self.draining {
            self.draining = true;
            ctx.address().do_send(Drain);
        }
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        let mut started = 0;
        while started < STARTS_PER_TURN {
            let Some(name) = self.queue.pop_front() else {
                break;
            };
            // Absent if a stop or a move cancelled it meanwhile.
            if let Some(spec) = self.pending.remove(&name) {
                self.ensure(name, spec, ctx);
                started += 1;
            }
        }
        if self.queue.is_empty() {
            self.draining = false;
        } else {
            // To the back of the mailbox: the arbiter runs other actors first.
            ctx.address().do_send(Drain);
        }
    }

    fn fail_waiters(&mut self, name: &str, error: RemoteError) {
        for w in self.waiting.remove(name).unwrap_or_default() {
            w.fail(error.clone());
        }
    }

    /// Makes `name` run here with `spec` (start, or restart on a new spec).
    fn ensure(&mut self, name: Arc<str>, spec: BirdSpec, ctx: &mut Context<Self>) {
        match self.birds.get_mut(&name) {
            None => self.start(name, spec, ctx),
            Some(local) if local.spec == spec => {
                if let State::Stopping = local.state {
                    local.then_start = Some(Box::new(spec));
                }
            }
            Some(local) => match local.state {
                State::Running(ref running) => {
                    // The set now holds another spec for the name (a
                    // concurrent start elsewhere won): run that one instead.
                    self.directory.remove(&name);
                    running.bird.stop();
                    local.state = State::Stopping;
                    local.then_start = Some(Box::new(spec));
                }
                State::Stopping => local.then_start = Some(Box::new(spec)),
                State::Restarting | State::Broken(_) => self.start(name, spec, ctx),
            },
        }
    }

    fn dispatch(&mut self, name: &Arc<str>, waiter: Waiter, ctx: &mut Context<Self>) {
        let local = self.birds.get(name);
        match local.map(|l| (&l.state, &l.spec)) {
            // Dead but its exit report is still on the way: the restart (or
            // removal) it triggers serves the waiter.
            Some((State::Running(running), _)) if !running.bird.connected() => {
                self.wait(name, waiter, ctx)
            }
            Some((State::Running(running), spec)) => {
                let bird = &running.bird;
                let (kind, tag, payload) = match &waiter {
                    Waiter::Call {
                        kind, tag, payload, ..
                    }
                    | Waiter::Cast {
                        kind, tag, payload, ..
                    } => (kind, tag, payload),
                };
                if *kind != spec.kind {
                    let error = RemoteError::Internal(format!(
                        "bird {name} is of kind {}, not {kind}",
                        spec.kind
                    ));
                    return waiter.fail(error);
                }
                match waiter {
                    Waiter::Cast { .. } => {
                        if let Err(e) = bird.cast(tag, payload) {
                            log::warn!("cast to bird {name} dropped: {e}");
                        }
                    }
                    Waiter::Call {
                        ref tag,
                        ref payload,
                        ..
                    } => {
                        let call = bird.call(tag, payload);
                        let Waiter::Call { reply, .. } = waiter else {
                            return;
                        };
                        match call {
                            Err(e) => reply.send(Err(e)),
                            Ok(fut) => {
                                let name = name.clone();
                                ctx.spawn(
                                    async move {
                                        let result = fut.await.map_err(|e| match e {
                                            RemoteError::BirdPanicked { .. } => {
                                                RemoteError::BirdPanicked {
                                                    bird: name.to_string(),
                                                }
                                            }
                                            other => other,
                                        });
                                        reply.send(result);
                                    }
                                    .into_actor(self),
                                );
                            }
                        }
                    }
                }
            }
            Some((State::Broken(e), _)) => waiter.fail(e.clone()),
            Some((State::Restarting | State::Stopping, _)) => self.wait(name, waiter, ctx),
            None if self.pending.contains_key(name) => self.wait(name, waiter, ctx),
            None => match self.owned_here(name) {
                // Not in the set as far as this node knows: the caller
                // checks its own replica and retries if it knows better.
                Ok(true) => waiter.fail(RemoteError::NotFound {
                    bird: name.to_string(),
                }),
                Ok(false) => waiter.fail(RemoteError::Moved {
                    bird: name.to_string(),
                    owner: self.owner_of(name),
                }),
                Err(e) => waiter.fail(e),
            },
        }
    }

    fn wait(&mut self, name: &Arc<str>, waiter: Waiter, ctx: &mut Context<Self>) {
        let after = waiter.deadline().saturating_duration_since(Instant::now());
        self.waiting.entry(name.clone()).or_default().push(waiter);
        let name = name.clone();
        ctx.run_later(after, move |act, _| {
            let now = Instant::now();
            if let Some(list) = act.waiting.get_mut(&name) {
                let (expired, kept): (Vec<_>, Vec<_>) =
                    list.drain(..).partition(|w| w.deadline() <= now);
                *list = kept;
                if list.is_empty() {
                    act.waiting.remove(&name);
                }
                for w in expired {
                    w.fail(RemoteError::Timeout);
                }
            }
        });
    }

    fn serve_waiters(&mut self, name: &Arc<str>, ctx: &mut Context<Self>) {
        for w in self.waiting.remove(name).unwrap_or_default() {
            self.dispatch(name, w, ctx);
        }
    }

    fn reconcile(
        &mut self,
        owned: Vec<(Arc<str>, BirdSpec)>,
        total: usize,
        ctx: &mut Context<Self>,
    ) {
        let keep: HashSet<Arc<str>> = owned.iter().map(|(n, _)| n.clone()).collect();
        let moved: Vec<Arc<str>> = self
            .birds
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        for name in &moved {
            self.stop(name, false);
        }
        let count = owned.len();
        for (name, spec) in owned {
            self.enqueue(name, spec, ctx);
        }
        if self.last_share != Some((count, total)) {
            self.last_share = Some((count, total));
            let pct = if total == 0 {
                0.0
            } else {
                100.0 * count as f64 / total as f64
            };
            log::info!(
                "node {} has {pct:.1} % of the load ({count} out of {total})",
                self.node.name()
            );
        }
        // Waiters for birds that moved away get told where to go.
        let stale: Vec<Arc<str>> = self
            .waiting
            .keys()
            .filter(|n| !self.birds.contains_key(*n) && !self.pending.contains_key(*n))
            .cloned()
            .collect();
        for name in stale {
            let owner = self.owner_of(&name);
            self.fail_waiters(
                &name,
                RemoteError::Moved {
                    bird: name.to_string(),
                    owner,
                },
            );
        }
    }

    fn request_reconcile(&mut self, ctx: &mut Context<Self>) {
        let Some(actors) = self.node.actors() else {
            return;
        };
        let view = self.node.view.load_full();
        actors
            .replica
            .send(OwnedBy(view))
            .into_actor(self)
            .map(|result, act, ctx| {
                if let Ok((owned, total)) = result {
                    act.reconcile(owned, total, ctx);
                }
            })
            .wait(ctx);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(RECONCILE_EVERY, |act, ctx| act.request_reconcile(ctx));
    }
}

impl Handler<ViewChanged> for Registry {
    type Result = ();

    fn handle(&mut self, _: ViewChanged, ctx: &mut Context<Self>) {
        self.request_reconcile(ctx);
    }
}

impl Handler<SetChanged> for Registry {
    type Result = ();

    fn handle(&mut self, changed: SetChanged, ctx: &mut Context<Self>) {
        for (name, spec) in changed.upserts {
            match self.owned_here(&name) {
                Ok(true) => self.enqueue(name, spec, ctx),
                _ => self.stop(&name, false),
            }
        }
        for name in changed.removed {
            if self.birds.contains_key(&name) {
                log::debug!("bird {name} removed from the flock; stopping it");
            }
            self.stop(&name, true);
        }
    }
}

impl Handler<BirdExited> for Registry {
    type Result = ();

    fn handle(&mut self, exit: BirdExited, ctx: &mut Context<Self>) {
        if self.node.is_stopping() {
            return;
        }
        let name = exit.name;
        let Some(local) = self.birds.get_mut(&name) else {
            return;
        };
        if local.instance != exit.instance {
            return;
        }
        if matches!(local.state, State::Running(_)) {
            self.directory.remove(&name);
        }
        match local.state {
            State::Stopping => {
                let then = local.then_start.take();
                self.birds.remove(&name);
                match then {
                    Some(spec) => self.start(name, *spec, ctx),
                    // Calls that waited on the stopping instance learn that
                    // the bird is gone or moved.
                    None => self.serve_waiters(&name, ctx),
                }
            }
            State::Running(_) if exit.panicked => {
                let now = self.node.now_ms();
                let delay = local.restarts.on_panic(&self.node.config.backoff, now);
                log::warn!(
                    "bird {name} panicked on node {}; restarting it in {delay} ms",
                    self.node.name()
                );
                local.state = State::Restarting;
                let instance = local.instance;
                ctx.run_later(Duration::from_millis(delay), move |act, ctx| {
                    act.restart(name, instance, ctx);
                });
            }
            State::Running(_) => {
                log::info!("bird {name} stopped itself; removing it from the flock");
                self.birds.remove(&name);
                self.fail_waiters(
                    &name,
                    RemoteError::NotFound {
                        bird: name.to_string(),
                    },
                );
                if let Some(actors) = self.node.actors() {
                    // NotFound is fine: a stop raced with the exit.
                    actors.replica.do_send(Remove { name });
                }
            }
            State::Restarting | State::Broken(_) => {}
        }
    }
}

impl Registry {
    fn restart(&mut self, name: Arc<str>, instance: u64, ctx: &mut Context<Self>) {
        let Some(local) = self.birds.get(&name) else {
            return;
        };
        if local.instance != instance || !matches!(local.state, State::Restarting) {
            return;
        }
        if !self.owned_here(&name).unwrap_or(false) {
            self.birds.remove(&name);
            return;
        }
        let spec = local.spec.clone();
        self.start(name.clone(), spec, ctx);
        if let Some(local) = self.birds.get_mut(&name) {
            local.restarts.restarted(self.node.now_ms());
        }
    }
}

impl Handler<InboundCall> for Registry {
    type Result = ();

    fn handle(&mut self, call: InboundCall, ctx: &mut Context<Self>) {
        let waiter = Waiter::Call {
            kind: call.kind,
            tag: call.tag,
            payload: call.payload,
            reply: call.reply,
            deadline: Instant::now() + call.timeout,
        };
        self.dispatch(&call.bird, waiter, ctx);
    }
}

impl Handler<InboundCast> for Registry {
    type Result = ();

    fn handle(&mut self, cast: InboundCast, ctx: &mut Context<Self>) {
        let waiter = Waiter::Cast {
            kind: cast.kind,
            tag: cast.tag,
            payload: cast.payload,
            deadline: Instant::now() + self.node.config.call_timeout,
        };
        self.dispatch(&cast.bird, waiter, ctx);
    }
}

/// Start the next slice of queued birds.
#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

impl Handler<Drain> for Registry {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

/// What waiters of a bird stopped here are told: gone, or moved to `owner`.
fn stop_error(name: &str, removed: bool, owner: impl FnOnce() -> String) -> RemoteError {
    if removed {
        RemoteError::NotFound {
            bird: name.to_owned(),
        }
    } else {
        RemoteError::Moved {
            bird: name.to_owned(),
            owner: owner(),
        }
    }
}

/// The typed address of a bird running here, for the local fast path.
pub(crate) struct Resolve<T> {
    pub name: Arc<str>,
    pub _kind: PhantomData<fn() -> T>,
}

impl<T: BirdKind> Message for Resolve<T> {
    type Result = Option<Addr<T>>;
}

impl<T: BirdKind> Handler<Resolve<T>> for Registry {
    type Result = Option<Addr<T>>;

    fn handle(&mut self, msg: Resolve<T>, _: &mut Context<Self>) -> Option<Addr<T>> {
        match &self.birds.get(&msg.name)?.state {
            State::Running(running) if running.bird.connected() => running.bird.addr::<T>(),
            _ => None,
        }
    }
}

/// The names of the birds running here.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub(crate) struct Running;

impl Handler<Running> for Registry {
    type Result = MessageResult<Running>;

    fn handle(&mut self, _: Running, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.birds
                .iter()
                .filter(|(_, l)| matches!(l.state, State::Running(_)))
                .map(|(n, _)| n.to_string())
                .collect(),
        )
    }
}

/// Stop every local bird without removing it from the set, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

impl Handler<Shutdown> for Registry {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.directory.clear();
        self.pending.clear();
        self.queue.clear();
        for (_, local) in self.birds.drain() {
            if let State::Running(running) = local.state {
                running.bird.stop();
            }
        }
        for (_, waiters) in self.waiting.drain() {
            for w in waiters {
                w.fail(RemoteError::Internal("node shutting down".into()));
            }
        }
        ctx.stop();
    }
}
