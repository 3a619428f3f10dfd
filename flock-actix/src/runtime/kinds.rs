//! The bird kinds a node can run, type-erased behind function pointers.
//!
//! The registry stores birds of many types side by side; each running bird
//! is a [`LocalBird`]: its `Addr<T>` as `dyn Any` plus the monomorphised
//! functions that call, cast to and stop it.

use crate::bird::BirdKind;
use crate::wire::message::RemoteError;
use actix::{Addr, ArbiterHandle, AsyncContext, Recipient};
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// Sent by a bird's exit guard when the bird's actor is dropped.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub(crate) struct BirdExited {
    pub name: Arc<str>,
    /// Which start of the bird this was (so a late report of an old
    /// instance cannot touch its successor).
    pub instance: u64,
    /// Dropped while its thread was panicking: a handler (or `hatch`, or
    /// `started`) panicked. Otherwise the bird stopped.
    pub panicked: bool,
}

/// Lives inside the bird's context; reports how the bird ended when dropped.
///
/// actix 0.13 drops a panicking actor while the panic unwinds through the
/// arbiter's task, so `std::thread::panicking()` tells a panic from a stop.
struct ExitGuard {
    report: Option<BirdExited>,
    to: Recipient<BirdExited>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(mut report) = self.report.take() {
            report.panicked = std::thread::panicking();
            self.to.do_send(report);
        }
    }
}

type CallFn = fn(&dyn Any, &str, &[u8]) -> crate::__private::CallFuture;
type CastFn = fn(&dyn Any, &str, &[u8]) -> Result<(), RemoteError>;
type ProbeFn = fn(&dyn Any) -> bool;

/// The monomorphised operations of one bird kind, one static table per kind.
struct VTable {
    kind: &'static str,
    call: CallFn,
    cast: CastFn,
    stop: ProbeFn,
    connected: ProbeFn,
}

/// Builds the table of kind `T` (a promoted constant: one per kind).
trait HasVTable {
    const VTABLE: VTable;
}

impl<T: BirdKind> HasVTable for T {
    const VTABLE: VTable = VTable {
        kind: T::KIND,
        call: |any, tag, payload| T::dispatch_call(downcast::<T>(any)?, tag, payload),
        cast: |any, tag, payload| T::dispatch_cast(downcast::<T>(any)?, tag, payload),
        stop: |any| {
            if let Ok(addr) = downcast::<T>(any) {
                addr.do_send(crate::__private::StopBird);
            }
            true
        },
        connected: |any| downcast::<T>(any).is_ok_and(|a| a.connected()),
    };
}

/// A running bird of some kind: its `Addr<T>` and its kind's table (two
/// words per bird, so a node can hold many).
pub(crate) struct LocalBird {
    addr: Box<dyn Any + Send + Sync>,
    vtable: &'static VTable,
}

impl std::fmt::Debug for LocalBird {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBird").finish_non_exhaustive()
    }
}

impl LocalBird {
    /// The kind's wire tag.
    pub(crate) fn kind(&self) -> &'static str {
        self.vtable.kind
    }

    pub(crate) fn call(&self, tag: &str, payload: &[u8]) -> crate::__private::CallFuture {
        (self.vtable.call)(&*self.addr, tag, payload)
    }

    pub(crate) fn cast(&self, tag: &str, payload: &[u8]) -> Result<(), RemoteError> {
        (self.vtable.cast)(&*self.addr, tag, payload)
    }

    /// Asks the bird to stop (a Flock stop, not an exit of its own).
    pub(crate) fn stop(&self) {
        (self.vtable.stop)(&*self.addr);
    }

    pub(crate) fn connected(&self) -> bool {
        (self.vtable.connected)(&*self.addr)
    }

    /// The typed address, if the bird is a `T`.
    pub(crate) fn addr<T: BirdKind>(&self) -> Option<Addr<T>> {
        self.addr.downcast_ref::<Addr<T>>().cloned()
    }
}

/// How to start birds of one kind.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    spawn: fn(Spawn) -> Result<LocalBird, RemoteError>,
}

/// Everything needed to start one bird.
pub(crate) struct Spawn<'a> {
    pub name: Arc<str>,
    pub args: &'a [u8],
    pub instance: u64,
    pub arbiter: Option<&'a ArbiterHandle>,
    pub exits: Recipient<BirdExited>,
}

impl Kind {
    pub(crate) fn of<T: BirdKind>() -> Self {
        Kind { spawn: spawn::<T> }
    }

    pub(crate) fn spawn(&self, s: Spawn) -> Result<LocalBird, RemoteError> {
        (self.spawn)(s)
    }
}

/// The kinds registered on a node, by wire tag.
#[derive(Clone, Default)]
pub(crate) struct KindTable {
    kinds: HashMap<&'static str, Kind>,
}

impl KindTable {
    pub(crate) fn insert<T: BirdKind>(&mut self) {
        self.kinds.insert(T::KIND, Kind::of::<T>());
    }

    pub(crate) fn get(&self, tag: &str) -> Option<&Kind> {
        self.kinds.get(tag)
    }
}

fn downcast<T: BirdKind>(any: &dyn Any) -> Result<&Addr<T>, RemoteError> {
    any.downcast_ref::<Addr<T>>()
        .ok_or_else(|| RemoteError::Internal(format!("bird handle is not a {}", T::KIND)))
}

fn spawn<T: BirdKind>(s: Spawn) -> Result<LocalBird, RemoteError> {
    let args: T::Args = rmp_serde::from_slice(s.args).map_err(|e| {
        RemoteError::Decode(format!(
            "start arguments of bird {} ({}): {e}",
            s.name,
            T::KIND
        ))
    })?;
    let guard = ExitGuard {
        report: Some(BirdExited {
            name: s.name.clone(),
            instance: s.instance,
            panicked: false,
        }),
        to: s.exits,
    };
    let name = s.name;
    let create = move |ctx: &mut actix::Context<T>| {
        // The guard lives as long as the context: it drops when the bird
        // stops or when its task is torn down by a panic.
        ctx.spawn(actix::fut::wrap_future(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        }));
        T::hatch(&name, args)
    };
    // Always hatch in a task of its own (on the pool arbiter, or on this one
    // with `arbiters(0)`): a panicking `hatch` then takes down only that task,
    // which the exit guard reports as a panic, never the Registry.
    let addr = match s.arbiter {
        Some(arbiter) => T::start_in_arbiter(arbiter, create),
        None => T::start_in_arbiter(&actix::Arbiter::current(), create),
    };
    Ok(LocalBird {
        addr: Box::new(addr),
        vtable: &<T as HasVTable>::VTABLE,
    })
}
