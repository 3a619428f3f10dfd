//! The bird kinds a node can run, type-erased behind function pointers.
//!
//! The registry stores birds of many types side by side; each running bird
//! is a [`LocalBird`]: its `Addr<T>` as `dyn Any` plus the monomorphised
//! functions that call, cast to and stop it.

use crate::bird::BirdKind;
use crate::nest::Nest;
use crate::wire::message::RemoteError;
use actix::{Addr, AsyncContext, Recipient};
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A bird's mailbox capacity (actix's default for `Actor::start`).
const BIRD_MAILBOX: usize = 16;

/// Sent by a bird's exit guard when the bird's task ends, saying how.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub(crate) struct BirdExited {
    pub name: Arc<str>,
    /// Which start of the bird this was (so a late report of an old
    /// instance cannot touch its successor).
    pub instance: u64,
    pub exit: Exit,
}

pub(crate) use crate::core::lifecycle::Exit;

/// Sent instead of [`BirdExited`] when `hatch` returned an error: the
/// instance never ran (and reports no exit).
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub(crate) struct HatchFailed {
    pub name: Arc<str>,
    pub instance: u64,
    /// The bird's own explanation.
    pub reason: String,
}

/// Lives in the task that runs the bird; reports how the task ended.
///
/// The task ([`BirdTask`]) runs `ctx.into_future(bird)` and sets `completed`
/// when it resolves. actix's `ContextFut` resolves only when the context ran
/// to its end while its task was alive: the bird stopped (its own
/// `ctx.stop()`, or an ordered `StopBird`). A teardown (`System::stop`, an
/// arbiter that stops, a dropped runtime) drops the task while it is
/// pending; `ContextFut`'s own `Drop` then stops the context and runs
/// `stopping`/`stopped`, so the bird itself cannot tell the two apart, but
/// the task can: it never saw the context resolve. A panic unwinds through
/// the task and drops it while the thread is panicking.
struct ExitGuard {
    report: Option<(Arc<str>, u64)>,
    reports: Arc<Reports>,
    completed: bool,
}

/// Where a node's birds report how they ended: made once by the Registry
/// and shared by all its birds (a `Recipient` per bird was two boxed
/// senders, ≈ 190 bytes of heap per idle bird).
pub(crate) struct Reports {
    pub exits: Recipient<BirdExited>,
    pub hatch_failures: Recipient<HatchFailed>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some((name, instance)) = self.report.take() {
            let exit = if self.completed {
                Exit::Completed
            } else if std::thread::panicking() {
                Exit::Panicked
            } else {
                Exit::TornDown
            };
            self.reports.exits.do_send(BirdExited {
                name,
                instance,
                exit,
            });
        }
    }
}

type CallFn = fn(&dyn Any, &str, &[u8], std::time::Instant) -> crate::__private::CallFuture;
type CastFn = fn(&dyn Any, &str, &[u8]) -> Result<(), RemoteError>;
type ProbeFn = fn(&dyn Any) -> bool;
type HandOffFn = fn(&dyn Any) -> crate::__private::StateFuture;

/// The monomorphised operations of one bird kind, one static table per kind.
struct VTable {
    kind: &'static str,
    call: CallFn,
    cast: CastFn,
    stop: ProbeFn,
    hand_off: HandOffFn,
    merge: fn(&(dyn Any + Send + Sync), Vec<u8>),
    connected: ProbeFn,
}

/// Builds the table of kind `T` (a promoted constant: one per kind).
trait HasVTable {
    const VTABLE: VTable;
}

impl<T: BirdKind> HasVTable for T {
    const VTABLE: VTable = VTable {
        kind: T::KIND,
        call: |any, tag, payload, due| T::dispatch_call(downcast::<T>(any)?, tag, payload, due),
        cast: |any, tag, payload| T::dispatch_cast(downcast::<T>(any)?, tag, payload),
        stop: |any| {
            if let Ok(addr) = downcast::<T>(any) {
                addr.do_send(crate::__private::StopBird);
            }
            true
        },
        hand_off: |any| match downcast::<T>(any) {
            Ok(addr) => T::dispatch_hand_off(addr),
            Err(_) => Box::pin(std::future::ready(None)),
        },
        merge: |any, state| {
            if let Ok(addr) = downcast::<T>(any) {
                T::dispatch_merge(addr, state);
            }
        },
        connected: |any| downcast::<T>(any).is_ok_and(|a| a.connected()),
    };
}

/// A running bird of some kind: its `Addr<T>`, its kind's table, its
/// instance and the stop flag, in one allocation shared by the Registry, the directory and
/// calls in flight (three allocations and an `Arc` around them before:
/// ≈ 40 B more per bird, and malloc's overhead on each).
#[derive(Clone)]
pub(crate) struct LocalBird(Arc<Cell<dyn Any + Send + Sync>>);

/// What a [`LocalBird`] shares; `A` is the `Addr<T>`, erased.
struct Cell<A: ?Sized> {
    vtable: &'static VTable,
    /// Which start of the bird this is (the Registry's and the core's
    /// `instance`; here rather than beside the handle in the directory),
    /// and in [`STOP_ORDERED`] whether flock-actix asked it to stop: a call
    /// whose mailbox closes after that was not handled by a panic but cut
    /// by the stop, and is answered `NotRunning` (callers retry on the new
    /// owner). One word for both, not two: 8 bytes per hosted bird.
    instance: AtomicU64,
    addr: A,
}

/// The stop flag's bit in [`Cell::instance`]. Instances count starts on one
/// node from 1 and never reach it.
const STOP_ORDERED: u64 = 1 << 63;

impl<A: ?Sized> Cell<A> {
    fn order_stop(&self) {
        self.instance.fetch_or(STOP_ORDERED, Ordering::Release);
    }

    fn stop_ordered(&self) -> bool {
        self.instance.load(Ordering::Acquire) & STOP_ORDERED != 0
    }
}

impl std::fmt::Debug for LocalBird {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBird").finish_non_exhaustive()
    }
}

impl LocalBird {
    /// Which start of the bird this is.
    pub(crate) fn instance(&self) -> u64 {
        self.0.instance.load(Ordering::Relaxed) & !STOP_ORDERED
    }

    /// The kind's wire tag.
    pub(crate) fn kind(&self) -> &'static str {
        self.0.vtable.kind
    }

    /// Calls the bird; the reply must come within `within`. A call that
    /// times out is dropped, and actix skips a message whose caller is gone,
    /// so a call whose caller gave up never runs late; the bird also skips
    /// it if it gets to it after `within` (the timer cannot fire while the
    /// thread is blocked, and a data link polls it on the bird's thread).
    pub(crate) fn call(
        &self,
        name: &str,
        tag: &str,
        payload: &[u8],
        within: Duration,
    ) -> crate::__private::CallFuture {
        let (call, cell) = self.start_call(tag, payload, within)?;
        let bird = name.to_owned();
        Ok(Box::pin(async move {
            match tokio::time::timeout(within, call).await {
                Err(_) => Err(RemoteError::Timeout),
                Ok(Err(RemoteError::BirdPanicked { .. })) if cell.stop_ordered() => {
                    Err(RemoteError::NotRunning { bird })
                }
                Ok(Err(RemoteError::BirdPanicked { .. })) => {
                    Err(RemoteError::BirdPanicked { bird })
                }
                Ok(result) => result,
            }
        }))
    }

    /// Hands the call to the bird (which skips it past `within`); its
    /// reply, and the bird's cell for the stop flag.
    fn start_call(
        &self,
        tag: &str,
        payload: &[u8],
        within: Duration,
    ) -> Result<(crate::bird::BoxedCall, Arc<Cell<dyn Any + Send + Sync>>), RemoteError> {
        let due = std::time::Instant::now() + within;
        let call = (self.0.vtable.call)(&self.0.addr, tag, payload, due)?;
        Ok((call, self.0.clone()))
    }

    /// Calls the bird as [`LocalBird::call`] does, without a timer and
    /// without its name: the link that polls the reply ends it at its
    /// deadline with its own deadline queue (one timer per link, not one
    /// per call; `runtime::peer::replies`), and names the bird in its
    /// errors.
    pub(crate) fn call_untimed(
        &self,
        tag: &str,
        payload: &[u8],
        within: Duration,
    ) -> crate::__private::CallFuture {
        let (call, cell) = self.start_call(tag, payload, within)?;
        Ok(Box::pin(async move {
            match call.await {
                Err(RemoteError::BirdPanicked { .. }) if cell.stop_ordered() => {
                    Err(RemoteError::NotRunning {
                        bird: String::new(),
                    })
                }
                result => result,
            }
        }))
    }

    pub(crate) fn cast(&self, tag: &str, payload: &[u8]) -> Result<(), RemoteError> {
        (self.0.vtable.cast)(&self.0.addr, tag, payload)
    }

    /// Asks the bird to stop (a Flock stop, not an exit of its own).
    pub(crate) fn stop(&self) {
        self.0.order_stop();
        (self.0.vtable.stop)(&self.0.addr);
    }

    /// Stops the bird because it moved, taking its state if its kind has
    /// one (the future resolves once the bird handled its last message).
    pub(crate) fn hand_off(&self) -> crate::__private::StateFuture {
        self.0.order_stop();
        (self.0.vtable.hand_off)(&self.0.addr)
    }

    /// Hands another instance's state to the running bird (its kind's
    /// conflict hook, [`crate::Handoff::merge`]).
    pub(crate) fn merge(&self, state: Vec<u8>) {
        (self.0.vtable.merge)(&self.0.addr, state)
    }

    pub(crate) fn connected(&self) -> bool {
        (self.0.vtable.connected)(&self.0.addr)
    }

    /// The typed address, if the bird is a `T`.
    pub(crate) fn addr<T: BirdKind>(&self) -> Option<Addr<T>> {
        self.0.addr.downcast_ref::<Addr<T>>().cloned()
    }
}

/// How to start birds of one kind.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    spawn: fn(Spawn) -> Result<(LocalBird, Start), RemoteError>,
    hands_off: bool,
    /// `#[flock_bird(passivate_after = "...")]`, unless the builder says.
    passivate_after: Option<Duration>,
}

/// What runs a prepared bird: called on the arbiter the bird is to run
/// on (the Registry hands these to each arbiter in batches). Dropped
/// unrun (the arbiter stopped), it reports the bird `TornDown`.
pub(crate) type Start = Box<dyn FnOnce() + Send>;

/// Everything needed to start one bird.
pub(crate) struct Spawn<'a> {
    pub name: Arc<str>,
    pub args: &'a [u8],
    /// The state handed over by the previous owner, to resume from.
    pub state: Option<Vec<u8>>,
    pub instance: u64,
    /// Where the bird reports its exit or a failed hatch.
    pub reports: Arc<Reports>,
    /// The node's context for `hatch`.
    pub nest: Arc<Nest>,
}

impl Kind {
    pub(crate) fn of<T: BirdKind>() -> Self {
        Kind {
            spawn: spawn::<T>,
            hands_off: T::HANDS_OFF,
            passivate_after: T::PASSIVATE_AFTER,
        }
    }

    /// Prepares a bird: its address works at once (messages queue), and it
    /// hatches once the returned [`Start`] runs on its arbiter. Err: the
    /// bird cannot run here (undecodable arguments), told to callers.
    pub(crate) fn spawn(&self, s: Spawn) -> Result<(LocalBird, Start), RemoteError> {
        (self.spawn)(s)
    }
}

/// The kinds registered on a node, by wire tag.
#[derive(Clone, Default)]
pub(crate) struct KindTable {
    kinds: HashMap<&'static str, Kind>,
    /// The builder's per-kind passivation times (`None`: never), which
    /// win over the kind's own.
    passivation: HashMap<&'static str, Option<Duration>>,
}

impl KindTable {
    pub(crate) fn insert<T: BirdKind>(&mut self) {
        self.kinds.insert(T::KIND, Kind::of::<T>());
    }

    pub(crate) fn get(&self, tag: &str) -> Option<&Kind> {
        self.kinds.get(tag)
    }

    /// Every registered kind's tag: what this node hosts (announced to
    /// peers on v2 links).
    pub(crate) fn tags(&self) -> std::collections::BTreeSet<String> {
        self.kinds.keys().map(|tag| (*tag).to_owned()).collect()
    }

    /// Sets (or, with `None`, turns off) the idle time after which birds of
    /// kind `tag` are passivated, whatever the kind declares.
    pub(crate) fn set_passivate_after(&mut self, tag: &'static str, after: Option<Duration>) {
        self.passivation.insert(tag, after);
    }

    /// The idle time after which birds of kind `tag` are passivated.
    pub(crate) fn passivate_after(&self, tag: &str) -> Option<Duration> {
        match self.passivation.get(tag) {
            Some(after) => *after,
            None => self.kinds.get(tag)?.passivate_after,
        }
    }

    /// The kinds that passivate, with their idle time in ms.
    pub(crate) fn passivation(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.kinds.keys().filter_map(|tag| {
            let after = self.passivate_after(tag)?;
            // At least 1 ms: a zero idle time would stop a bird as it starts.
            let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX).max(1);
            Some(((*tag).to_owned(), ms))
        })
    }

    /// The tags of the kinds that hand their state over when they move.
    pub(crate) fn handoff_kinds(&self) -> impl Iterator<Item = String> + '_ {
        self.kinds
            .iter()
            .filter(|(_, k)| k.hands_off)
            .map(|(tag, _)| (*tag).to_owned())
    }
}

fn downcast<T: BirdKind>(any: &dyn Any) -> Result<&Addr<T>, RemoteError> {
    any.downcast_ref::<Addr<T>>()
        .ok_or_else(|| RemoteError::Internal(format!("bird handle is not a {}", T::KIND)))
}

fn spawn<T: BirdKind>(s: Spawn) -> Result<(LocalBird, Start), RemoteError> {
    let args: T::Args = crate::wire::payload::decode(s.args).map_err(|e| {
        RemoteError::Decode(format!(
            "start arguments of bird {} ({}): {e}",
            s.name,
            T::KIND
        ))
    })?;
    let guard = ExitGuard {
        report: Some((s.name.clone(), s.instance)),
        reports: s.reports.clone(),
        completed: false,
    };
    let (tx, rx) = actix::dev::channel::channel(BIRD_MAILBOX);
    let bird = LocalBird(Arc::new(Cell {
        vtable: &<T as HasVTable>::VTABLE,
        instance: AtomicU64::new(s.instance & !STOP_ORDERED),
        addr: Addr::<T>::new(tx),
    }));
    let hatch = Hatch {
        name: s.name,
        instance: s.instance,
        args,
        state: s.state,
        nest: s.nest,
        reports: s.reports,
        refused: bird.clone(),
    };
    // Runs on the bird's arbiter (the context is not `Send`, so it is built
    // there). Always a task of its own, also with `arbiters(0)`: a panicking
    // `hatch` then takes down only that task, never the Registry.
    let run = move || {
        let mut ctx = actix::Context::<T>::with_receiver(rx);
        // Keeps the context alive when every `Addr` is dropped (the
        // Registry going away), so that the context only completes when
        // it is stopped.
        ctx.spawn(actix::fut::wrap_future(std::future::pending::<()>()));
        actix::spawn(BirdTask {
            stage: Stage::Hatch(Box::new((ctx, hatch))),
            guard,
        });
    };
    Ok((bird, Box::new(run)))
}

/// What a bird's task needs until the bird hatched.
struct Hatch<T: BirdKind> {
    name: Arc<str>,
    instance: u64,
    args: T::Args,
    state: Option<Vec<u8>>,
    nest: Arc<Nest>,
    reports: Arc<Reports>,
    /// Its stop flag is set if `hatch` refuses: a call handed over before
    /// sees the mailbox close, and is answered `NotRunning` (retried) like
    /// a call cut by a stop, so the retry learns why from the Registry.
    /// Released once hatched.
    refused: LocalBird,
}

/// The task that runs one bird: hatches it on its first poll, then runs
/// its context. Written out rather than as an `async` block, whose state
/// machine kept the hatch's inputs (arguments, state, context, the
/// reporting handles) beside the running context for the bird's whole
/// life: ≈ 380 bytes per idle bird (docs/BENCHMARKS.md, "Stop 19"). Here
/// the hatch's inputs wait in a box that the first poll empties, and the
/// task is the size of a plain actor's (the guard fits beside the context).
struct BirdTask<T: BirdKind> {
    // Dropped before `guard`, like the `await`ed context before the guard
    // in the `async` block this replaces: the bird's `stopped` has run when
    // its exit is reported.
    stage: Stage<T>,
    guard: ExitGuard,
}

// The large variant is the one that lives (boxing it would cost an
// allocation per bird); the small ones are brief.
#[allow(clippy::large_enum_variant)]
enum Stage<T: BirdKind> {
    /// Boxed: the context and the arguments exist until the first poll
    /// only, and inline they would size the task for the bird's life.
    Hatch(Box<(actix::Context<T>, Hatch<T>)>),
    Run(actix::dev::ContextFut<T, actix::Context<T>>),
    Done,
}

// No field is ever pinned: the context future is `Unpin` and polled
// through `Pin::new`, the hatch's inputs are moved out, never polled.
impl<T: BirdKind> Unpin for BirdTask<T> {}

impl<T: BirdKind> std::future::Future for BirdTask<T> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            // The running bird is polled in place: moving its context out
            // and back costs two copies of a few hundred bytes per poll,
            // a poll per message (issue #12).
            if let Stage::Run(fut) = &mut this.stage {
                let polled = std::pin::Pin::new(fut).poll(cx);
                if polled.is_ready() {
                    this.guard.completed = true;
                }
                return polled;
            }
            match std::mem::replace(&mut this.stage, Stage::Done) {
                Stage::Hatch(boxed) => {
                    let (ctx, h) = *boxed;
                    let hatched = match h.state {
                        Some(state) => T::resume_from(&h.name, h.args, &state, &h.nest),
                        None => T::hatch(&h.name, h.args, &h.nest),
                    };
                    match hatched {
                        Ok(bird) => this.stage = Stage::Run(ctx.into_future(bird)),
                        Err(e) => {
                            // Not an exit: the bird never ran.
                            this.guard.report = None;
                            h.refused.0.order_stop();
                            h.reports.hatch_failures.do_send(HatchFailed {
                                name: h.name,
                                instance: h.instance,
                                reason: e.to_string(),
                            });
                            return Poll::Ready(());
                        }
                    }
                }
                // Polled above; `Done` is taken as well, for a task polled
                // again after it finished.
                Stage::Run(_) | Stage::Done => return Poll::Ready(()),
            }
        }
    }
}
