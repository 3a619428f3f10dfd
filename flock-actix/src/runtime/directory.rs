//! The birds running on this node, for dispatch without a mailbox hop.
//!
//! The Registry writes it (a bird enters when it starts running and leaves
//! the moment it stops, panics or moves); the Peer actors read it to hand a
//! remote call or cast straight to a running bird and answer from where the
//! frame arrived. Everything else (a bird not running yet, restarting,
//! moving) still goes through the Registry, which waits for it.
//!
//! The Peers run on the node's links arbiter and the Registry on the
//! arbiter that started the node (see "Failure detection off the work
//! threads" in docs/ARCHITECTURE.md), so the map sits behind a `RwLock`:
//! readers (one per call or cast) do not block each other, and the Registry
//! writes once per bird start or stop.

use super::kinds::LocalBird;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A running bird.
pub(crate) struct Running {
    pub bird: LocalBird,
}

type Map = HashMap<Arc<str>, Arc<Running>>;

/// Shared view of the running birds (clones share it).
#[derive(Clone, Default)]
pub(crate) struct Directory(Arc<RwLock<Map>>);

impl Directory {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        // A panic while holding the lock leaves a map that is still valid
        // (every operation is a single insert or remove).
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, name: Arc<str>, running: Arc<Running>) {
        self.write().insert(name, running);
    }

    pub(crate) fn remove(&self, name: &str) {
        self.write().remove(name);
    }

    pub(crate) fn clear(&self) {
        self.write().clear();
    }

    /// The bird, if it runs here, is of `kind`, and its mailbox is open.
    pub(crate) fn get(&self, name: &str, kind: &str) -> Option<Arc<Running>> {
        let running = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()?;
        (running.bird.kind() == kind && running.bird.connected()).then_some(running)
    }
}
