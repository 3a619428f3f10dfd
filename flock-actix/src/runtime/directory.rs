//! The birds running on this node, for dispatch without a mailbox hop.
//!
//! The Registry writes it (a bird enters when it starts running and leaves
//! the moment it stops, panics or moves); the Peer actors read it to hand a
//! remote call or cast straight to a running bird and answer from where the
//! frame arrived. Everything else (a bird not running yet, restarting,
//! moving) still goes through the Registry, which waits for it.
//!
//! The Registry, the Ring and every Peer live on the arbiter that started the
//! node, so the directory is a single-threaded `Rc<RefCell<…>>`: no lock, no
//! atomic on the message path.

use super::kinds::LocalBird;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// A running bird.
pub(crate) struct Running {
    pub bird: LocalBird,
}

/// Shared view of the running birds (clones share it).
#[derive(Clone, Default)]
pub(crate) struct Directory(Rc<RefCell<HashMap<Arc<str>, Rc<Running>>>>);

impl Directory {
    pub(crate) fn insert(&self, name: Arc<str>, running: Rc<Running>) {
        self.0.borrow_mut().insert(name, running);
    }

    pub(crate) fn remove(&self, name: &str) {
        self.0.borrow_mut().remove(name);
    }

    pub(crate) fn clear(&self) {
        self.0.borrow_mut().clear();
    }

    /// The bird, if it runs here, is of `kind`, and its mailbox is open.
    pub(crate) fn get(&self, name: &str, kind: &str) -> Option<Rc<Running>> {
        let running = self.0.borrow().get(name).cloned()?;
        (running.bird.kind() == kind && running.bird.connected()).then_some(running)
    }
}
