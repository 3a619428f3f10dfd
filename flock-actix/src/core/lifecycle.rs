//! The life of the birds on one node: which run, which start next, which
//! stop, and what the messages waiting for them are told.
//!
//! A pure state machine in the style of the other cores: everything arrives
//! as an [`Input`] with the time (`now_ms`, monotonic) passed in, everything
//! leaves as [`Effect`] values, and timers are effects too. The Registry
//! actor is the shell: it feeds the inputs (set and view changes, messages,
//! exit reports, timers) and performs the effects (spawn or stop an
//! instance, deliver or fail a message, remove a name from the set, arm a
//! timer).
//!
//! # States
//!
//! A name this node knows is in at most one of:
//! - *queued*: owned here, waiting for its slice of the start queue;
//! - `Running(instance)`: told to run; `closed` once a delivery found its
//!   mailbox closed (its exit report is on the way);
//! - `Restarting`: exited without being asked; a restart timer is armed;
//! - `Stopping`: told to stop; waiting for its exit report (then, maybe, a
//!   new spec to start: `then_start`);
//! - `Broken`: cannot run here (unknown kind, undecodable arguments);
//! - `Awaiting`: moved here from a node that may still run it (a kind with
//!   a handed-over state): waits for that state, at most `handoff_wait`
//!   (see `lifecycle/handoff.rs`).
//! - `Passivating`, `Passivated`: stopped here because it was idle (a kind
//!   that passivates); it keeps its entry (and the state it handed over on
//!   the way out), and the next message starts it again (see
//!   `lifecycle/passivate.rs`).
//!
//! # Guarantees (each is a property in `lifecycle/tests.rs`)
//! - No two instances of one name are ever told to run on this node: a
//!   `Spawn` only follows the exit report of the previous instance.
//! - Every message gets exactly one answer from the core: a `Deliver` to a
//!   running instance or a `Reply` with an error, by its deadline at the
//!   latest (unless the shell hands a delivery back as undeliverable).
//! - Only names this node owns in its current view are started: a view
//!   change cancels every queued start this node no longer owns and stops
//!   the instances it no longer owns.
//! - A bird is removed from the set only on its own exit (`Completed` while
//!   running and not asked to stop); a teardown or a panic restarts it with
//!   [`crate::core::supervision`] backoff, an ordered stop does neither.
//! - A passivated bird is started again only by a message, exactly once,
//!   and never by a reconciliation (it is not lost, only asleep).

use crate::core::crdt::BirdSpec;
use crate::core::supervision::{Backoff, Restarts};
use crate::wire::message::RemoteError;
use spec::{Kinds, Spec};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

mod handoff;
#[cfg(test)]
mod handoff_tests;
mod outgoing;
pub mod pace;
mod passivate;
#[cfg(test)]
mod passivate_tests;
pub mod reads;
mod spec;
#[cfg(test)]
mod steps;
#[cfg(test)]
mod tests;

pub use outgoing::{Outgoing, OutgoingQueue};

/// A bird's name.
pub type Name = Arc<str>;

/// Identifies one message waiting for an answer (chosen by the shell).
pub type WaiterId = u64;

/// Birds started per [`Input::StartSlice`]: a batch of 100k starts is worked
/// off in slices, so the actors sharing the node's arbiter keep answering
/// heartbeats in between.
pub const STARTS_PER_SLICE: usize = 256;

/// Where a name lives in one placement view.
pub trait Owners {
    /// The node that owns `name`, or `None` if no node can host birds.
    fn owner_of(&self, name: &str) -> Option<&str>;

    /// The node that owns `name` of kind `kind` (placement per kind: only
    /// nodes hosting a kind own its birds). Views that do not place per
    /// kind answer [`Owners::owner_of`].
    fn owner_of_kind(&self, _kind: &str, name: &str) -> Option<&str> {
        self.owner_of(name)
    }

    /// Whether `node` is an up member of this view (it can hand a bird's
    /// state over). Views that do not know say no: nothing waits for them.
    fn is_up(&self, _node: &str) -> bool {
        false
    }

    /// The owner of `name` of kind `kind` if `node` were not a member:
    /// while `node` joins, that is where a bird it now owns comes from (its
    /// first views may not hold every member yet). Per kind, like
    /// [`Owners::owner_of_kind`]: a member that does not host the kind never
    /// ran the bird. Views that do not know say `None`.
    fn owner_without(&self, _kind: &str, _name: &str, _node: &str) -> Option<&str> {
        None
    }

    /// Whether a member other than `node` hosts birds in this view.
    fn others_host(&self, _node: &str) -> bool {
        false
    }
}

/// How long a new owner waits for a moved bird's state by default.
pub const HANDOFF_WAIT_MS: u64 = 2_000;

/// Handed-over states kept for names this node does not own yet (the state
/// can arrive before the view that moves the bird here).
pub const MAX_STASHED: usize = 100_000;

/// How an instance's task ended, as observed positively by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The bird's context ran to its end while its task was alive: the bird
    /// stopped itself, or stopped because it was told to ([`Effect::Stop`]).
    Completed,
    /// The task was dropped while the bird was alive: its arbiter or the
    /// whole system is going down. Never a reason to remove the bird.
    TornDown,
    /// A panic (in `hatch`, `started` or a handler) ended the task.
    Panicked,
}

/// A timer the core asked for, handed back in [`Input::Timer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// Restart `instance` of `name` (its backoff delay passed).
    Restart {
        /// The bird.
        name: Name,
        /// The instance that exited.
        instance: u64,
    },
    /// The wait for the state of moved `instance` of `name` is over.
    Handoff {
        /// The bird.
        name: Name,
        /// The instance that waits.
        instance: u64,
    },
    /// The deadline of a waiting message passed.
    Deadline {
        /// The bird it waits for.
        name: Name,
        /// The message.
        waiter: WaiterId,
    },
    /// `instance` of `name` may have been idle for its kind's passivation
    /// time (the core checks; a message in between moves the deadline).
    Idle {
        /// The bird.
        name: Name,
        /// The instance that may be idle.
        instance: u64,
    },
}

/// What happens to the node's birds.
#[derive(Debug, Clone)]
pub enum Input<V> {
    /// The placement view changed (fed before any input that follows it).
    View(V),
    /// Every bird of the set this node owns (read after a view change, and
    /// periodically as a safety net): the ones to run here.
    Owned(Vec<(Name, BirdSpec)>),
    /// An owned list read before a set change or a view this core has
    /// already heard of (the shell does not block while the list is read):
    /// it starts what it lists that this node owns, and stops nothing: a
    /// bird missing from it may have been added since (the next complete
    /// list settles what to stop).
    OwnedStale(Vec<(Name, BirdSpec)>),
    /// The shell asked for the owned list ([`Input::Owned`] or
    /// [`Input::OwnedStale`] follows): until it comes, a message for a name
    /// this node owns but does not know waits for it instead of being told
    /// "not found" (the list may hold the name: a view change just moved it
    /// here).
    ReadingOwned,
    /// The node handing `name` over says what it is, ahead of its state: a
    /// node that does not know the bird yet (a joining node, before the
    /// registry's full state reached it) resumes it from the state on
    /// arrival, if it owns it, instead of waiting for the set.
    Announced {
        /// The bird.
        name: Name,
        /// Its kind and start arguments on the old owner.
        spec: BirdSpec,
    },
    /// The set changed: names added or updated, names removed.
    SetChanged {
        /// Added or updated names with their specs.
        upserts: Vec<(Name, BirdSpec)>,
        /// Removed names.
        removed: Vec<Name>,
    },
    /// A message for `name` arrived (a call, or a cast).
    Message {
        /// The message, as the shell knows it.
        waiter: WaiterId,
        /// The bird.
        name: Name,
        /// The kind the sender expects.
        kind: String,
        /// When the sender stops waiting.
        deadline_ms: u64,
    },
    /// Start the next slice of the start queue.
    StartSlice,
    /// The shell could not start `instance` (unknown kind, bad arguments).
    SpawnFailed {
        /// The bird.
        name: Name,
        /// The instance it tried.
        instance: u64,
        /// Why, told to the bird's callers.
        error: RemoteError,
    },
    /// A `Deliver` found the instance's mailbox closed: it is ending, and
    /// its exit report is on the way. The message waits again.
    Undeliverable {
        /// The message.
        waiter: WaiterId,
        /// The bird.
        name: Name,
        /// The instance it was given to.
        instance: u64,
        /// The sender's kind and deadline, as in `Message`.
        kind: String,
        /// When the sender stops waiting.
        deadline_ms: u64,
    },
    /// An instance's task ended.
    Exited {
        /// The bird.
        name: Name,
        /// Which instance.
        instance: u64,
        /// How.
        exit: Exit,
    },
    /// The previous owner of `name` stopped its instance and handed its
    /// state over (`None`: it had no instance to hand over).
    HandedOff {
        /// The bird.
        name: Name,
        /// The serialized state.
        state: Option<Vec<u8>>,
    },
    /// A timer the core armed went off.
    Timer(Timer),
    /// The node shuts down: stop everything, remove nothing.
    Shutdown,
    /// The state of passivating `instance` of `name` was taken
    /// ([`Effect::Passivate`] with `take_state`); `None`: it could not be
    /// (the instance was gone), so the bird wakes from its arguments.
    StateSaved {
        /// The bird.
        name: Name,
        /// The instance told to passivate.
        instance: u64,
        /// The serialized state.
        state: Option<Vec<u8>>,
    },
}

/// What the shell is told to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start `instance` of `name` from `spec`.
    Spawn {
        /// The bird.
        name: Name,
        /// Its kind and start arguments.
        spec: BirdSpec,
        /// A number never used before on this node.
        instance: u64,
    },
    /// Ask `instance` of `name` to stop (an ordered stop, not its own).
    Stop {
        /// The bird.
        name: Name,
        /// The instance.
        instance: u64,
    },
    /// Start `instance` of `name` from the state its previous owner
    /// handed over (the kind's `resume`).
    Resume {
        /// The bird.
        name: Name,
        /// Its kind and start arguments.
        spec: BirdSpec,
        /// A number never used before on this node.
        instance: u64,
        /// The handed-over state.
        state: Vec<u8>,
    },
    /// The bird moved to `to`: stop `instance` (if any), take its state and
    /// send it to `to`; with no instance, tell `to` there is nothing to wait
    /// for.
    HandOff {
        /// The bird.
        name: Name,
        /// The running instance, if one runs here.
        instance: Option<u64>,
        /// The new owner.
        to: String,
        /// With a running instance: its kind and start arguments, announced
        /// to the new owner ahead of the state (`Input::Announced` there), so
        /// a node that does not know the bird yet can resume it.
        spec: Option<BirdSpec>,
    },
    /// Another instance's state arrived while `instance` of `name` runs
    /// (a partition healed, or a late handoff): give it to the running
    /// instance, whose kind's conflict hook decides what survives.
    Merge {
        /// The bird.
        name: Name,
        /// The running instance.
        instance: u64,
        /// The other instance's serialized state.
        state: Vec<u8>,
    },
    /// Hand the message to `instance` of `name`.
    Deliver {
        /// The message.
        waiter: WaiterId,
        /// The bird.
        name: Name,
        /// The running instance.
        instance: u64,
    },
    /// Answer the message with an error.
    Reply {
        /// The message.
        waiter: WaiterId,
        /// The answer.
        error: RemoteError,
    },
    /// Remove `name` from the set cluster-wide (the bird stopped itself).
    RemoveFromSet {
        /// The bird.
        name: Name,
    },
    /// A message waits for `name`, whose state is awaited from `from`: ask
    /// `from` to hand this bird over before the others it is moving (a
    /// node that moves thousands of birds works them off in slices; the
    /// one a caller is blocked on should not wait for its turn).
    Want {
        /// The bird.
        name: Name,
        /// The node its state is awaited from.
        from: String,
    },
    /// Feed [`Input::StartSlice`] after the node's other actors had a turn.
    StartSliceLater,
    /// Feed [`Input::Timer`] with `timer` at `at_ms`.
    Timer {
        /// When.
        at_ms: u64,
        /// What.
        timer: Timer,
    },
    /// `instance` of `name` was idle: stop it here but keep its entry; with
    /// `take_state`, take its state on the way out (in mailbox order, like
    /// a handoff) and feed it back as [`Input::StateSaved`].
    Passivate {
        /// The bird.
        name: Name,
        /// The idle instance.
        instance: u64,
        /// Whether its kind hands a state over.
        take_state: bool,
    },
    /// A passivated bird moved to `to`: send it the state saved when it
    /// passivated, as a handoff (`None`: nothing to wait for).
    SendState {
        /// The bird.
        name: Name,
        /// Its kind's wire tag.
        kind: String,
        /// The saved state.
        state: Option<Vec<u8>>,
        /// The new owner.
        to: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Running {
        closed: bool,
    },
    /// Moved here from another node that is up and may still run it:
    /// waits for its state before it is started (boxed, like every state
    /// with data but `Running`: the state sizes every bird's entry).
    Awaiting(Box<Awaiting>),
    Restarting,
    Stopping,
    /// Boxed: a rare state, and the error inline would size every bird's
    /// entry (see `Local`).
    Broken(Box<RemoteError>),
    /// Told to passivate: waits for its exit report and, for a kind with a
    /// state, the state; then `Passivated`, or handed over if it moved
    /// meanwhile.
    Passivating(Box<Passivating>),
    /// Idle and stopped; `Local::saved` holds its state, if its kind has one.
    Passivated,
}

/// A bird moved here from `from`, a node that is up and may still run it:
/// it waits for its state at most until `until_ms` (a `Handoff` timer is
/// armed for it).
#[derive(Debug, Clone, PartialEq)]
struct Awaiting {
    from: String,
    until_ms: u64,
    /// A message waits for it and `from` was asked to hand this bird over
    /// first ([`Effect::Want`]); asked once per wait.
    wanted: bool,
}

/// A bird told to passivate: it waits for its exit report and, for a kind
/// with a state, the state (`state_due`); then it sleeps, or goes to
/// `hand_to` if it moved meanwhile.
#[derive(Debug, Clone, PartialEq)]
struct Passivating {
    exited: bool,
    state_due: bool,
    hand_to: Option<String>,
}

/// One bird of this node. Kept for every bird for its whole life, so kept
/// small (80 bytes; 225 before stop 19, docs/ARCHITECTURE.md §36): the
/// spec compact, the states with data and what few birds need boxed.
#[derive(Debug)]
struct Local {
    spec: Spec,
    instance: u64,
    state: State,
    restarts: Restarts,
    /// When a message was last handed to it (kinds that passivate).
    last_active_ms: u64,
    aside: Option<Box<Aside>>,
}

/// What few birds need: a spec to start once the stopping instance is
/// gone; the state taken when it passivated (it wakes from it).
#[derive(Debug, Default)]
struct Aside {
    then_start: Option<BirdSpec>,
    saved: Option<Vec<u8>>,
}

impl Local {
    fn aside(&mut self) -> &mut Aside {
        self.aside.get_or_insert_with(Default::default)
    }

    fn set_then_start(&mut self, spec: BirdSpec) {
        self.aside().then_start = Some(spec);
    }

    fn take_then_start(&mut self) -> Option<BirdSpec> {
        let spec = self.aside.as_mut()?.then_start.take();
        self.tidy();
        spec
    }

    fn set_saved(&mut self, state: Option<Vec<u8>>) {
        match state {
            Some(state) => self.aside().saved = Some(state),
            None => {
                self.take_saved();
            }
        }
    }

    fn take_saved(&mut self) -> Option<Vec<u8>> {
        let state = self.aside.as_mut()?.saved.take();
        self.tidy();
        state
    }

    /// Frees the box once it holds nothing.
    fn tidy(&mut self) {
        if let Some(Aside {
            then_start: None,
            saved: None,
        }) = self.aside.as_deref()
        {
            self.aside = None;
        }
    }
}

#[derive(Debug, Clone)]
struct Waiter {
    id: WaiterId,
    kind: String,
    deadline_ms: u64,
}

/// The lifecycle of every bird on one node.
#[derive(Debug)]
pub struct Lifecycle<V> {
    me: String,
    view: V,
    backoff: Backoff,
    birds: HashMap<Name, Local>,
    /// Queued starts: the spec to start, and the order (names in `queue`
    /// but not in `pending` were cancelled).
    pending: HashMap<Name, BirdSpec>,
    queue: VecDeque<Name>,
    slice_asked: bool,
    waiting: HashMap<Name, Vec<Waiter>>,
    next_instance: u64,
    shut_down: bool,
    /// The view before the current one: where moved birds come from.
    prev_view: Option<V>,
    /// The kinds registered on this node ([`Lifecycle::with_kinds`]).
    kinds: Kinds,
    /// Kinds that hand their state over when they move.
    handoff_kinds: std::collections::HashSet<String>,
    /// An owned list was asked for and has not come yet.
    reading_owned: bool,
    handoff_wait_ms: u64,
    /// States handed over for names not (yet) owned here, with arrival.
    stashed: HashMap<Name, (Option<Vec<u8>>, u64)>,
    /// Specs announced by old owners for names not known here, and when.
    announced: HashMap<Name, (BirdSpec, u64)>,
    /// Birds started from an announce that no set change or owned list has
    /// named yet, and when: an owned list read before this node knew them
    /// must not stop them (their state would be lost).
    unconfirmed: HashMap<Name, u64>,
    /// Where this node handed a bird's state: if the bird comes back, its
    /// instance there may run, so its state is waited for from there.
    sent_to: HashMap<Name, String>,
    /// Where this node is in joining a cluster (see `handoff.rs`).
    join: handoff::Join,
    /// Kinds that passivate, with their idle time in ms.
    passivate_after: HashMap<String, u64>,
}

impl<V: Owners> Lifecycle<V> {
    /// The lifecycle of node `me`, starting with placement `view`.
    pub fn new(me: impl Into<String>, view: V, backoff: Backoff) -> Self {
        Lifecycle {
            me: me.into(),
            view,
            backoff,
            birds: HashMap::new(),
            pending: HashMap::new(),
            queue: VecDeque::new(),
            slice_asked: false,
            waiting: HashMap::new(),
            next_instance: 1,
            shut_down: false,
            prev_view: None,
            kinds: Kinds::default(),
            handoff_kinds: Default::default(),
            reading_owned: false,
            handoff_wait_ms: HANDOFF_WAIT_MS,
            stashed: HashMap::new(),
            announced: HashMap::new(),
            unconfirmed: HashMap::new(),
            sent_to: HashMap::new(),
            join: handoff::Join::Alone,
            passivate_after: HashMap::new(),
        }
    }

    /// The kinds registered on this node: their birds share one copy of
    /// the kind's tag (any other kind works too, with a copy per bird).
    pub fn with_kinds(mut self, tags: impl IntoIterator<Item = String>) -> Self {
        self.kinds = Kinds::new(tags);
        self
    }

    /// Birds of `kinds` hand their state over when they move; a new owner
    /// waits up to `wait_ms` for it.
    pub fn with_handoff(mut self, kinds: impl IntoIterator<Item = String>, wait_ms: u64) -> Self {
        self.handoff_kinds = kinds.into_iter().collect();
        self.handoff_wait_ms = wait_ms;
        self
    }

    /// Names told to run (their instance is running or being started).
    pub fn running(&self) -> impl Iterator<Item = (&Name, u64)> {
        self.birds
            .iter()
            .filter(|(_, l)| matches!(l.state, State::Running { .. }))
            .map(|(n, l)| (n, l.instance))
    }

    /// Whether a bird started from a handoff's announce still waits for the
    /// set (or an owned list) to name it: a complete read may stop it.
    pub fn awaits_confirmation(&self) -> bool {
        !self.unconfirmed.is_empty()
    }

    /// How many starts are queued.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Applies `input` at `now_ms` and returns what to do, in order.
    pub fn handle(&mut self, input: Input<V>, now_ms: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.shut_down {
            if let Input::Message { waiter, .. } | Input::Undeliverable { waiter, .. } = input {
                out.push(shutting_down(waiter));
            }
            return out;
        }
        match input {
            Input::View(view) => self.on_view(view, now_ms, &mut out),
            Input::Owned(owned) => self.on_owned(owned, true, now_ms, &mut out),
            Input::OwnedStale(owned) => self.on_owned(owned, false, now_ms, &mut out),
            Input::ReadingOwned => self.reading_owned = true,
            Input::Announced { name, spec } => self.on_announced(name, spec, now_ms, &mut out),
            Input::SetChanged { upserts, removed } => {
                for name in upserts.iter().map(|(n, _)| n).chain(&removed) {
                    self.unconfirmed.remove(name);
                }
                for (name, spec) in upserts {
                    if self.owned_here_as(&spec.kind, &name) {
                        self.enqueue(name, spec, &mut out);
                    } else {
                        self.stop(&name, false, &mut out);
                    }
                }
                for name in removed {
                    self.stop(&name, true, &mut out);
                }
            }
            Input::Message {
                waiter,
                name,
                kind,
                deadline_ms,
            } => {
                let waiter = Waiter {
                    id: waiter,
                    kind,
                    deadline_ms,
                };
                self.dispatch(&name, waiter, now_ms, &mut out);
            }
            Input::Undeliverable {
                waiter,
                name,
                instance,
                kind,
                deadline_ms,
            } => {
                self.mark_closed(&name, instance);
                let waiter = Waiter {
                    id: waiter,
                    kind,
                    deadline_ms,
                };
                self.dispatch(&name, waiter, now_ms, &mut out);
            }
            Input::StartSlice => self.start_slice(now_ms, &mut out),
            Input::SpawnFailed {
                name,
                instance,
                error,
            } => {
                if let Some(local) = self.instance_mut(&name, instance) {
                    local.state = State::Broken(Box::new(error));
                    self.serve_waiters(&name, now_ms, &mut out);
                }
            }
            Input::Exited {
                name,
                instance,
                exit,
            } => self.on_exit(name, instance, exit, now_ms, &mut out),
            Input::Timer(Timer::Restart { name, instance }) => {
                self.on_restart(name, instance, now_ms, &mut out);
            }
            Input::HandedOff { name, state } => self.on_handed_off(name, state, now_ms, &mut out),
            Input::Timer(Timer::Handoff { name, instance }) => {
                self.on_handoff_timer(name, instance, now_ms, &mut out);
            }
            Input::Timer(Timer::Deadline { name, waiter }) => {
                if let Some(list) = self.waiting.get_mut(&name)
                    && let Some(i) = list.iter().position(|w| w.id == waiter)
                {
                    // `remove`, not `swap_remove`: the rest keep their
                    // arrival order (per sender order on delivery).
                    list.remove(i);
                    if list.is_empty() {
                        self.waiting.remove(&name);
                    }
                    out.push(Effect::Reply {
                        waiter,
                        error: RemoteError::Timeout,
                    });
                }
            }
            Input::Shutdown => self.shutdown(&mut out),
            Input::Timer(Timer::Idle { name, instance }) => {
                self.on_idle_timer(name, instance, now_ms, &mut out);
            }
            Input::StateSaved {
                name,
                instance,
                state,
            } => self.on_state_saved(&name, instance, state, now_ms, &mut out),
        }
        out
    }

    /// A `Deliver` handed back: if it was for the running instance, that
    /// instance is ending; mark it so that messages wait for its exit.
    fn mark_closed(&mut self, name: &str, instance: u64) {
        if let Some(local) = self.birds.get_mut(name)
            && local.instance == instance
            && let State::Running { closed } = &mut local.state
        {
            *closed = true;
        }
    }

    /// The owner of `name`, per its kind when this node knows the kind.
    fn owner(&self, name: &str) -> Option<&str> {
        let kind = (self.birds.get(name).map(|l| l.spec.kind()))
            .or_else(|| self.pending.get(name).map(|spec| spec.kind.as_str()));
        match kind {
            Some(kind) => self.view.owner_of_kind(kind, name),
            None => self.view.owner_of(name),
        }
    }

    fn owned_here(&self, name: &str) -> bool {
        self.owner(name) == Some(self.me.as_str())
    }

    fn owned_here_as(&self, kind: &str, name: &str) -> bool {
        self.view.owner_of_kind(kind, name) == Some(self.me.as_str())
    }

    fn instance_mut(&mut self, name: &str, instance: u64) -> Option<&mut Local> {
        self.birds.get_mut(name).filter(|l| l.instance == instance)
    }

    /// The error for a message to a name this node neither runs nor queues.
    fn absent(&self, name: &str) -> RemoteError {
        match self.owner(name) {
            // Not in the set as far as this node knows: the caller checks
            // its own replica and retries if it knows better.
            Some(owner) if owner == self.me => RemoteError::NotFound {
                bird: name.to_owned(),
            },
            Some(owner) => RemoteError::Moved {
                bird: name.to_owned(),
                owner: owner.to_owned(),
            },
            None => RemoteError::Internal("no node can host birds".into()),
        }
    }

    fn on_view(&mut self, view: V, now_ms: u64, out: &mut Vec<Effect>) {
        self.prev_view = Some(std::mem::replace(&mut self.view, view));
        self.track_join(now_ms);
        // Queued starts this node no longer owns are cancelled here, not
        // when their slice comes: the new owner may already run them.
        // Each bird's kind read from its entry (what `owned_here` would look
        // up again per name): a known bird's own, else its queued spec's.
        let mut lost: Vec<Name> = self
            .birds
            .iter()
            .filter(|(n, l)| !self.owned_here_as(l.spec.kind(), n))
            .map(|(n, _)| n)
            .chain(
                self.pending
                    .iter()
                    .filter(|(n, spec)| {
                        !self.birds.contains_key(*n) && !self.owned_here_as(&spec.kind, n)
                    })
                    .map(|(n, _)| n),
            )
            .cloned()
            .collect();
        // In name order, not hash order: a run is a function of its inputs
        // (the deterministic simulation replays a seed exactly).
        lost.sort_unstable();
        lost.dedup();
        for name in lost {
            self.stop(&name, false, out);
        }
        self.retarget_awaiting(now_ms, out);
        self.redirect_stale_waiters(now_ms, out);
    }

    fn on_owned(
        &mut self,
        owned: Vec<(Name, BirdSpec)>,
        complete: bool,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        self.reading_owned = false;
        if !self.unconfirmed.is_empty() {
            for (name, _) in &owned {
                self.unconfirmed.remove(name);
            }
        }
        // One lookup per listed name: is it known here, and is it already
        // told to run this very spec? Most are, every time: a periodic
        // read of a host of 333k birds lists 333k names it runs.
        let mut known = 0usize;
        let mut todo: Vec<usize> = Vec::new();
        for (i, (name, spec)) in owned.iter().enumerate() {
            match self.birds.get(name) {
                Some(l) => {
                    known += 1;
                    // A bird told to run this very spec, with no start
                    // queued, would only go through the queue to a no-op
                    // `ensure`: skipped (see `told_to_run`).
                    if matches!(l.state, State::Stopping)
                        || !l.spec.is(spec)
                        || (!self.pending.is_empty() && self.pending.contains_key(name))
                    {
                        todo.push(i);
                    }
                }
                None => todo.push(i),
            }
        }
        // A list in strictly ascending name order (the replica's store
        // order) has no name twice; if every name of it is known here, no
        // bird is missing from it and nothing is stopped: the set of kept
        // names (a hash per bird, twice) is not needed.
        let distinct = owned.windows(2).all(|w| w[0].0 < w[1].0);
        if complete && !(distinct && known == self.birds.len()) {
            let keep: std::collections::HashSet<&Name> = owned.iter().map(|(n, _)| n).collect();
            // An announced bird is spared for a while: the list may have
            // been read before the set reached this node.
            let spare = self.handoff_wait_ms.saturating_mul(5);
            let mut gone: Vec<Name> = self
                .birds
                .keys()
                .filter(|n| !keep.contains(n))
                .filter(|n| {
                    self.unconfirmed
                        .get(*n)
                        .is_none_or(|at| now_ms.saturating_sub(*at) > spare)
                })
                .cloned()
                .collect();
            gone.sort_unstable();
            for name in gone {
                self.stop(&name, false, out);
            }
        }
        // Queueing every owned bird again cost a map insert and a slice
        // turn per bird per reconciliation, every 5 s: at 1 M birds on 3
        // hosts, half of each host's Registry time while births were still
        // coming (docs/BENCHMARKS.md, stop 20). Only the ones found above
        // not told to run are looked at again (the stops in between touch
        // only names the list does not hold).
        if !todo.is_empty() {
            // `todo` is in list order.
            let mut todo = todo.into_iter().peekable();
            for (i, (name, spec)) in owned.into_iter().enumerate() {
                if todo.next_if_eq(&i).is_none() {
                    continue;
                }
                if self.told_to_run(&name, &spec) {
                    continue;
                }
                // The list may come from an older view than the current one.
                if self.owned_here_as(&spec.kind, &name) {
                    self.enqueue(name, spec, out);
                }
            }
        }
        self.redirect_stale_waiters(now_ms, out);
    }

    /// Whether `ensure(name, spec)` would change nothing and no start of
    /// `name` is queued: `name` is known here with this spec and not
    /// stopping (see the arms of `ensure`).
    fn told_to_run(&self, name: &Name, spec: &BirdSpec) -> bool {
        !self.pending.contains_key(name)
            && self
                .birds
                .get(name)
                .is_some_and(|l| !matches!(l.state, State::Stopping) && l.spec.is(spec))
    }

    /// Waiters for names neither here nor queued are told where to go.
    fn redirect_stale_waiters(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let mut stale: Vec<Name> = self
            .waiting
            .keys()
            .filter(|n| !self.birds.contains_key(*n) && !self.pending.contains_key(*n))
            .cloned()
            .collect();
        stale.sort_unstable();
        for name in stale {
            self.serve_waiters(&name, now_ms, out);
        }
    }

    fn enqueue(&mut self, name: Name, spec: BirdSpec, out: &mut Vec<Effect>) {
        if self.pending.insert(name.clone(), spec).is_none() {
            self.queue.push_back(name);
        }
        if !self.slice_asked {
            self.slice_asked = true;
            out.push(Effect::StartSliceLater);
        }
    }

    fn start_slice(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        self.slice_asked = false;
        let mut started = 0;
        while started < STARTS_PER_SLICE {
            let Some(name) = self.queue.pop_front() else {
                break;
            };
            // Absent if a stop, a removal or a view change cancelled it.
            if let Some(spec) = self.pending.remove(&name) {
                self.ensure(name, spec, now_ms, out);
                started += 1;
            }
        }
        if !self.queue.is_empty() {
            self.slice_asked = true;
            out.push(Effect::StartSliceLater);
        } else {
            self.release_queue();
        }
    }

    /// Gives back what a large batch of starts left in the drained queue:
    /// a map and a deque sized for the whole batch (≈ 130 B per bird of a
    /// batch, kept for the node's life; docs/BENCHMARKS.md, "Stop 19").
    /// Small ones are kept for the next start.
    fn release_queue(&mut self) {
        const KEEP: usize = 1024;
        if self.queue.capacity() > KEEP {
            self.queue = VecDeque::new();
        }
        if self.pending.is_empty() && self.pending.capacity() > KEEP {
            self.pending = HashMap::new();
        }
    }

    /// Makes `name` run here with `spec` (start, or restart on a new spec).
    pub(super) fn ensure(
        &mut self,
        name: Name,
        spec: BirdSpec,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(local) = self.birds.get_mut(&name) else {
            return self.start(name, spec, now_ms, out);
        };
        match local.state {
            State::Stopping => local.set_then_start(spec),
            _ if local.spec.is(&spec) => {}
            // Still waiting for its state: it starts with the new spec.
            State::Awaiting(_) => local.spec = Spec::new(&spec, &self.kinds),
            State::Running { .. } => {
                // The set now holds another spec for the name (a concurrent
                // start elsewhere won): run that one instead.
                out.push(Effect::Stop {
                    name: name.clone(),
                    instance: local.instance,
                });
                local.state = State::Stopping;
                local.set_then_start(spec);
            }
            State::Restarting | State::Broken(_) => self.start(name, spec, now_ms, out),
            // Another spec won while it slept: it wakes as that one (and
            // not from the old one's state).
            State::Passivated => {
                local.spec = Spec::new(&spec, &self.kinds);
                local.set_saved(None);
            }
            // Already told to stop: that one ends, the new spec starts.
            State::Passivating(_) => {
                local.state = State::Stopping;
                local.set_then_start(spec);
            }
        }
    }

    /// Starts a new instance. Only called when no instance of `name` is
    /// running or stopping.
    fn start(&mut self, name: Name, spec: BirdSpec, now_ms: u64, out: &mut Vec<Effect>) {
        let instance = self.next_instance;
        self.next_instance += 1;
        let fresh = !self.birds.contains_key(&name);
        let restarts = match self.birds.get(&name) {
            Some(local) => {
                let mut r = local.restarts;
                r.restarted(now_ms);
                r
            }
            None => Restarts::started(now_ms),
        };
        self.birds.insert(
            name.clone(),
            Local {
                spec: Spec::new(&spec, &self.kinds),
                instance,
                // Set by `launch` or `await_state` below.
                state: State::Running { closed: false },
                restarts,
                last_active_ms: now_ms,
                aside: None,
            },
        );
        if fresh && let Some(state) = self.take_stashed(&name, now_ms) {
            return self.launch(name, spec, instance, state, now_ms, out);
        }
        if fresh && let Some(from) = self.previous_owner(&name, &spec, now_ms) {
            // Its old instance may still run: never start a second one.
            // Messages park meanwhile (the `Awaiting` state).
            return self.await_state(name, from, now_ms, out);
        }
        self.launch(name, spec, instance, None, now_ms, out);
    }

    /// Spawns (or resumes) `instance`, which was told to start, and serves
    /// the messages that waited for it.
    fn launch(
        &mut self,
        name: Name,
        spec: BirdSpec,
        instance: u64,
        state: Option<Vec<u8>>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        out.push(match state {
            Some(state) => Effect::Resume {
                name: name.clone(),
                spec,
                instance,
                state,
            },
            None => Effect::Spawn {
                name: name.clone(),
                spec,
                instance,
            },
        });
        if let Some(local) = self.birds.get_mut(&name) {
            local.state = State::Running { closed: false };
        }
        self.arm_idle(&name, now_ms, out);
        self.serve_waiters(&name, now_ms, out);
    }

    /// Stops `name` here because flock-actix says so: it moved (`removed`
    /// false) or was removed from the set. Its waiters learn which.
    fn stop(&mut self, name: &Name, removed: bool, out: &mut Vec<Effect>) {
        // A move of a kind with state: the new owner waits for it.
        let hand_to = self.hand_to(name, removed);
        let was_queued = self.pending.remove(name).is_some();
        if let Some(to) = &hand_to {
            if self.sent_to.len() >= MAX_STASHED {
                // A bound, not a policy: forgetting only shortens a wait.
                self.sent_to.clear();
            }
            self.sent_to.insert(name.clone(), to.clone());
        }
        if let Some(local) = self.birds.get_mut(name) {
            local.take_then_start();
            match (local.state.clone(), hand_to) {
                (State::Running { .. }, Some(to)) => {
                    out.push(Effect::HandOff {
                        name: name.clone(),
                        instance: Some(local.instance),
                        to,
                        spec: Some(local.spec.to_spec()),
                    });
                    local.state = State::Stopping;
                }
                (State::Running { .. }, None) => {
                    out.push(Effect::Stop {
                        name: name.clone(),
                        instance: local.instance,
                    });
                    local.state = State::Stopping;
                }
                (State::Stopping, _) => {}
                // Its state may be on its way here: the next owner waits
                // for its own timeout rather than hatch from the arguments.
                (State::Awaiting(_), _) => {
                    self.birds.remove(name);
                }
                (State::Restarting | State::Broken(_), to) => {
                    self.birds.remove(name);
                    if let Some(to) = to {
                        out.push(Effect::HandOff {
                            name: name.clone(),
                            instance: None,
                            to,
                            spec: None,
                        });
                    }
                }
                (State::Passivated | State::Passivating(_), to) => {
                    self.stop_passivated(name, to, out);
                }
            }
        } else if let Some(to) = hand_to.filter(|_| was_queued) {
            out.push(Effect::HandOff {
                name: name.clone(),
                instance: None,
                to,
                spec: None,
            });
        } else if !was_queued {
            // Neither queued nor here: nobody waits for it here.
            return;
        }
        let error = if removed {
            RemoteError::NotFound {
                bird: name.to_string(),
            }
        } else {
            self.absent_or_moved(name)
        };
        self.fail_waiters(name, &error, out);
    }

    /// `Moved` to its owner in the current view; `NotRunning` (also
    /// retried by callers) if the view still says here.
    fn absent_or_moved(&self, name: &str) -> RemoteError {
        match self.absent(name) {
            RemoteError::NotFound { bird } => RemoteError::NotRunning { bird },
            other => other,
        }
    }

    fn fail_waiters(&mut self, name: &str, error: &RemoteError, out: &mut Vec<Effect>) {
        for w in self.waiting.remove(name).unwrap_or_default() {
            out.push(Effect::Reply {
                waiter: w.id,
                error: error.clone(),
            });
        }
    }

    fn serve_waiters(&mut self, name: &Name, now_ms: u64, out: &mut Vec<Effect>) {
        for w in self.waiting.remove(name).unwrap_or_default() {
            self.dispatch(name, w, now_ms, out);
        }
    }

    fn dispatch(&mut self, name: &Name, waiter: Waiter, now_ms: u64, out: &mut Vec<Effect>) {
        if waiter.deadline_ms <= now_ms {
            return out.push(Effect::Reply {
                waiter: waiter.id,
                error: RemoteError::Timeout,
            });
        }
        match self.birds.get(name).map(|l| (&l.state, l)) {
            Some((State::Running { closed: false }, local)) => {
                if waiter.kind != local.spec.kind() {
                    return out.push(wrong_kind(name, &waiter, local.spec.kind()));
                }
                out.push(Effect::Deliver {
                    waiter: waiter.id,
                    name: name.clone(),
                    instance: local.instance,
                });
                self.touch(name, now_ms);
            }
            Some((State::Broken(e), _)) => out.push(Effect::Reply {
                waiter: waiter.id,
                error: (**e).clone(),
            }),
            Some((State::Passivated, _)) => self.wake(name, waiter, now_ms, out),
            Some((State::Awaiting(_), _)) => {
                self.park(name, waiter, out);
                self.want(name, out);
            }
            // Ending, restarting, stopping or queued: its next state serves it.
            Some(_) => self.park(name, waiter, out),
            None if self.pending.contains_key(name) => {
                self.park(name, waiter, out);
                // A bird of a kind that hands its state over is queued here
                // when it moved: a message waiting for it starts it now, not
                // in its slice (a move queues thousands at once; a caller
                // blocked on one should not wait for the rest). Its start
                // then waits for the state, asking the old owner for it
                // first (`Effect::Want`).
                if self
                    .pending
                    .get(name)
                    .is_some_and(|s| self.handoff_kinds.contains(&s.kind))
                    && let Some(spec) = self.pending.remove(name)
                {
                    self.ensure(name.clone(), spec, now_ms, out);
                }
            }
            None => match self.absent(name) {
                // Served once the owned list comes (`redirect_stale_waiters`).
                RemoteError::NotFound { .. } if self.reading_owned => self.park(name, waiter, out),
                error => out.push(Effect::Reply {
                    waiter: waiter.id,
                    error,
                }),
            },
        }
    }

    fn park(&mut self, name: &Name, waiter: Waiter, out: &mut Vec<Effect>) {
        out.push(Effect::Timer {
            at_ms: waiter.deadline_ms,
            timer: Timer::Deadline {
                name: name.clone(),
                waiter: waiter.id,
            },
        });
        self.waiting.entry(name.clone()).or_default().push(waiter);
    }

    fn on_exit(
        &mut self,
        name: Name,
        instance: u64,
        exit: Exit,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let backoff = self.backoff;
        let Some(local) = self.instance_mut(&name, instance) else {
            // A late report of an instance that has a successor.
            return;
        };
        match local.state {
            State::Stopping => {
                let then = local.take_then_start();
                self.birds.remove(&name);
                match then {
                    Some(spec) => self.start(name, spec, now_ms, out),
                    // Messages that waited on the stopping instance learn
                    // that the bird is gone or moved (or wait for its start).
                    None => self.serve_waiters(&name, now_ms, out),
                }
            }
            State::Running { .. } if exit == Exit::Completed => {
                // It stopped itself while nobody asked: its own decision.
                self.birds.remove(&name);
                let error = RemoteError::NotFound {
                    bird: name.to_string(),
                };
                self.fail_waiters(&name, &error, out);
                out.push(Effect::RemoveFromSet { name });
            }
            State::Running { .. } => {
                let delay = local.restarts.on_panic(&backoff, now_ms);
                local.state = State::Restarting;
                out.push(Effect::Timer {
                    at_ms: now_ms.saturating_add(delay),
                    timer: Timer::Restart { name, instance },
                });
            }
            State::Passivating(_) => self.passivate_exited(name, now_ms, out),
            State::Restarting | State::Broken(_) | State::Awaiting(_) | State::Passivated => {}
        }
    }

    fn on_restart(&mut self, name: Name, instance: u64, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(local) = self.birds.get(&name) else {
            return;
        };
        if local.instance != instance || local.state != State::Restarting {
            return;
        }
        let spec = local.spec.to_spec();
        if !self.owned_here(&name) {
            // Moved while it waited for its restart: its messages go after it.
            self.birds.remove(&name);
            self.serve_waiters(&name, now_ms, out);
            return;
        }
        self.start(name, spec, now_ms, out);
    }

    fn shutdown(&mut self, out: &mut Vec<Effect>) {
        self.shut_down = true;
        self.pending.clear();
        self.queue.clear();
        let mut birds: Vec<(Name, Local)> = self.birds.drain().collect();
        birds.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (name, local) in birds {
            if let State::Running { .. } = local.state {
                out.push(Effect::Stop {
                    name,
                    instance: local.instance,
                });
            }
        }
        let mut waiting: Vec<(Name, Vec<Waiter>)> = self.waiting.drain().collect();
        waiting.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (_, waiters) in waiting {
            out.extend(waiters.into_iter().map(|w| shutting_down(w.id)));
        }
    }
}

/// The answer to a message that expects another kind than the bird's.
fn wrong_kind(name: &str, waiter: &Waiter, actual: &str) -> Effect {
    Effect::Reply {
        waiter: waiter.id,
        error: RemoteError::WrongKind {
            bird: name.to_owned(),
            expected: waiter.kind.clone(),
            actual: actual.to_owned(),
        },
    }
}

fn shutting_down(waiter: WaiterId) -> Effect {
    Effect::Reply {
        waiter,
        error: RemoteError::Internal("node shutting down".into()),
    }
}
