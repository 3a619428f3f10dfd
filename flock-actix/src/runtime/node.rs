//! What every actor of one node shares: configuration, identity, the
//! published placement view and peer links, and the actors' addresses.

use super::config::FlockConfig;
use super::kinds::KindTable;
use super::peer::Peer;
use super::registry::Registry;
use super::replica::CrdtReplica;
use super::ring::Ring;
use crate::core::crdt::NodeName;
use crate::core::handshake::{HandshakeConfig, NonceCache};
use crate::core::membership::NodeInfo;
use crate::core::placement::{Member, Placement};
use actix::Addr;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One placement table and the number of times it was rebuilt.
#[derive(Debug)]
pub(crate) struct View {
    /// Grows by one on every rebuild, so cached routes can tell they are stale.
    pub epoch: u64,
    pub placement: Placement,
}

/// The node's actors.
pub(crate) struct Actors {
    pub ring: Addr<Ring>,
    pub replica: Addr<CrdtReplica>,
    pub registry: Addr<Registry>,
}

/// The links to peers that completed the handshake, by node name.
pub(crate) type Links = HashMap<NodeName, Addr<Peer>>;

pub(crate) struct Node {
    pub config: FlockConfig,
    pub me: NodeInfo,
    pub kinds: KindTable,
    /// Published by the Ring actor, read lock-free by `FlockAddr`s.
    pub view: ArcSwap<View>,
    /// Published by the Ring actor, read lock-free by callers and the replica.
    pub links: ArcSwap<Links>,
    pub actors: OnceLock<Actors>,
    /// Recently seen handshake nonces (shared by all accepted connections).
    pub nonces: Mutex<NonceCache>,
    started: Instant,
    stopping: AtomicBool,
    /// Links whose handshake is under way (either direction).
    handshaking: AtomicUsize,
}

/// How many handshake nonces are remembered, and for how long.
const NONCE_CACHE: (usize, u64) = (4096, 60_000);

impl Node {
    pub(crate) fn new(config: FlockConfig, me: NodeInfo, kinds: KindTable) -> crate::Result<Self> {
        // Until the Ring builds the first view, this node is the only member.
        let placement =
            Placement::new(config.shards, [Member::new(me.id.node.clone(), me.weight)])?;
        Ok(Node {
            config,
            me,
            kinds,
            view: ArcSwap::from_pointee(View {
                epoch: 0,
                placement,
            }),
            links: ArcSwap::from_pointee(Links::new()),
            actors: OnceLock::new(),
            nonces: Mutex::new(NonceCache::new(NONCE_CACHE.0, NONCE_CACHE.1)),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            handshaking: AtomicUsize::new(0),
        })
    }

    pub(crate) fn name(&self) -> &NodeName {
        &self.me.id.node
    }

    /// The node's actors, or `None` before they are wired up.
    pub(crate) fn actors(&self) -> Option<&Actors> {
        self.actors.get()
    }

    /// Monotonic milliseconds since the node started: the time of the
    /// membership, anti-entropy and supervision state machines.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A link started its handshake (`true`) or finished or abandoned it.
    pub(crate) fn handshaking(&self, started: bool) {
        if started {
            self.handshaking.fetch_add(1, Ordering::Relaxed);
        } else {
            self.handshaking.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether any link is still proving itself.
    pub(crate) fn any_handshake_under_way(&self) -> bool {
        self.handshaking.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(crate) fn handshake_config(&self) -> HandshakeConfig {
        HandshakeConfig {
            cluster: self.config.cluster.clone(),
            cookie: self.config.cookie.clone(),
            me: self.me.id.clone(),
            listen: self.me.addr.clone(),
            weight: self.me.weight,
            shards: self.config.shards,
        }
    }

    pub(crate) fn link(&self, node: &str) -> Option<Addr<Peer>> {
        self.links.load().get(node).cloned()
    }
}

/// Wall-clock milliseconds since the Unix epoch: CRDT timestamps and
/// incarnations (a restarted node must get a larger one).
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh 32-byte handshake nonce from the OS.
pub(crate) fn nonce() -> crate::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n)
        .map_err(|e| crate::Error::Io {
            kind: std::io::ErrorKind::Other,
            message: format!("no randomness for a handshake nonce: {e}"),
        })
        .map(|()| n)
}
