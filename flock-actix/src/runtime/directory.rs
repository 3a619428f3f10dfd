//! The birds running on this node, for dispatch without a mailbox hop.
//!
//! The Registry writes it (a bird enters when it starts running and leaves
//! the moment it stops, panics or moves) and keeps its own list of the
//! instances it started here in it (one map, not two: ≈ 40 B per hosted bird,
//! docs/ARCHITECTURE.md §36); the Peer actors read it to hand a
//! remote call or cast straight to a running bird and answer from where the
//! frame arrived. Everything else (a bird not running yet, restarting,
//! moving) still goes through the Registry, which waits for it.
//!
//! The Peers run on the node's links arbiter and the Registry on the
//! arbiter that started the node (see "Failure detection off the work
//! threads" in docs/ARCHITECTURE.md), so the map sits behind a `RwLock`:
//! readers (one per call or cast) do not block each other, and the Registry
//! writes once per bird start or stop.
//!
//! It also holds what an accepted *data link* (docs/ARCHITECTURE.md §26)
//! needs to reach its birds: the bird arbiters (a data link runs on the
//! arbiter of its lane) and the data-link sessions of the authenticated
//! control links, by session id.

use super::kinds::LocalBird;
use crate::core::data_links::auth::Session;
use crate::wire::message::MacTag;
use actix::ArbiterHandle;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// A running bird (a clone shares it).
#[derive(Clone)]
pub(crate) struct Running {
    pub bird: LocalBird,
}

/// Each running bird (which start of it runs is in its handle).
type Map = HashMap<Arc<str>, Running>;

/// The data-link session of one authenticated control link.
#[derive(Clone)]
pub(crate) struct DataSession {
    pub session: Session,
    /// The control link's id (a replaced link must not remove its
    /// successor's entry).
    pub link: u64,
    /// Closes when the control link stops: its data links close then.
    pub alive: watch::Receiver<()>,
    /// The peer (its data links' frames prove it alive to the Ring).
    pub peer: crate::core::crdt::NodeName,
}

/// Shared view of the running birds (clones share it).
#[derive(Clone, Default)]
pub(crate) struct Directory {
    birds: Arc<RwLock<Map>>,
    /// The bird arbiters, in lane order (empty: birds on the Registry's).
    arbiters: Arc<[ArbiterHandle]>,
    /// The arbiter the node was started on (the Registry's; with no bird
    /// arbiters, the birds'): data links run there when there are no lanes
    /// (§35).
    home: Option<ArbiterHandle>,
    sessions: Arc<Mutex<HashMap<MacTag, DataSession>>>,
}

impl Directory {
    pub(crate) fn new(arbiters: Vec<ArbiterHandle>) -> Self {
        Directory {
            arbiters: arbiters.into(),
            home: actix::Arbiter::try_current(),
            ..Directory::default()
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        // A panic while holding the lock leaves a map that is still valid
        // (every operation is a single insert or remove).
        self.birds.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The bird arbiters, one per lane.
    pub(crate) fn arbiters(&self) -> &[ArbiterHandle] {
        &self.arbiters
    }

    /// The arbiter the node was started on, if known.
    pub(crate) fn home(&self) -> Option<&ArbiterHandle> {
        self.home.as_ref()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<MacTag, DataSession>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the session of an authenticated control link.
    pub(crate) fn session_up(&self, entry: DataSession) {
        self.sessions().insert(entry.session.id, entry);
    }

    /// Forgets the session of control link `link`, if it is still its own.
    pub(crate) fn session_down(&self, id: &MacTag, link: u64) {
        let mut sessions = self.sessions();
        if sessions.get(id).is_some_and(|s| s.link == link) {
            sessions.remove(id);
        }
    }

    /// The live session named `id`.
    pub(crate) fn session(&self, id: &MacTag) -> Option<DataSession> {
        self.sessions().get(id).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.birds.read().unwrap_or_else(|e| e.into_inner())
    }

    /// `running` runs as `name`; how many birds run here now.
    pub(crate) fn insert(&self, name: Arc<str>, running: Running) -> usize {
        let mut birds = self.write();
        birds.insert(name, running);
        birds.len()
    }

    /// How many birds run here.
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// `instance` of `name`, if that is the one running here.
    pub(crate) fn instance(&self, name: &str, instance: u64) -> Option<Running> {
        match self.read().get(name) {
            Some(running) if running.bird.instance() == instance => Some(running.clone()),
            _ => None,
        }
    }

    /// Whichever instance of `name` runs here.
    pub(crate) fn any_instance(&self, name: &str) -> Option<Running> {
        self.read().get(name).cloned()
    }

    /// Takes `instance` of `name` out, if that is the one running here.
    pub(crate) fn remove(&self, name: &str, instance: u64) -> Option<Running> {
        let mut birds = self.write();
        match birds.get(name) {
            Some(running) if running.bird.instance() == instance => birds.remove(name),
            _ => None,
        }
    }

    /// Takes every bird out, in name order (not hash order, like
    /// everything the simulation replays).
    pub(crate) fn drain(&self) -> Vec<(Arc<str>, Running)> {
        let mut all: Vec<_> = self.write().drain().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The names of the birds running here.
    pub(crate) fn names(&self) -> Vec<String> {
        self.read().keys().map(|n| n.to_string()).collect()
    }

    /// The bird, if it runs here, is of `kind`, and its mailbox is open.
    pub(crate) fn get(&self, name: &str, kind: &str) -> Option<Running> {
        let running = self.any_instance(name)?;
        (running.bird.kind() == kind && running.bird.connected()).then_some(running)
    }

    /// As [`Directory::get`], with the bird's name as the directory holds
    /// it (shared, not copied: a link names the bird in an error reply).
    pub(crate) fn get_named(&self, name: &str, kind: &str) -> Option<(Arc<str>, Running)> {
        let (name, running) = {
            let birds = self.read();
            let (name, running) = birds.get_key_value(name)?;
            (name.clone(), running.clone())
        };
        (running.bird.kind() == kind && running.bird.connected()).then_some((name, running))
    }
}
