//! What every actor of one node shares: configuration, identity, the
//! published placement view and peer links, and the actors' addresses.

use super::config::FlockConfig;
use super::kinds::KindTable;
use super::peer::{Peer, PeerLink};
use super::registry::Registry;
use super::replica::CrdtReplica;
use super::ring::Ring;
use crate::core::crdt::NodeName;
use crate::core::handshake::{HandshakeConfig, NonceCache};
use crate::core::membership::NodeInfo;
use crate::core::placement::{HostedMember, KindPlacement, Member};
use actix::Addr;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
// tokio's `Instant` is the system's monotonic clock, except under a paused
// tokio clock (the deterministic simulation), which it then follows.
use tokio::time::Instant;

/// One placement table and the number of times it was rebuilt.
#[derive(Debug)]
pub(crate) struct View {
    /// Grows by one on every rebuild, so cached routes can tell they are stale.
    pub epoch: u64,
    /// One table per distinct set of nodes hosting a kind.
    pub placement: KindPlacement,
}

/// The published [`View`], and its epoch in an atomic of its own: the hot
/// path of a local call compares its cached route's epoch with one plain
/// load instead of an `ArcSwap` load (issue #12). `store` publishes the
/// view before its epoch, so an epoch read is never newer than the view.
pub(crate) struct ViewCell {
    view: ArcSwap<View>,
    epoch: AtomicU64,
}

impl ViewCell {
    fn new(view: View) -> Self {
        ViewCell {
            epoch: AtomicU64::new(view.epoch),
            view: ArcSwap::from_pointee(view),
        }
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<std::sync::Arc<View>> {
        self.view.load()
    }

    pub(crate) fn load_full(&self) -> std::sync::Arc<View> {
        self.view.load_full()
    }

    /// Publishes `view` (only the Ring does).
    pub(crate) fn store(&self, view: std::sync::Arc<View>) {
        let epoch = view.epoch;
        self.view.store(view);
        self.epoch.store(epoch, Ordering::Release);
    }

    /// The epoch of the view last published.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

/// The node's actors.
pub(crate) struct Actors {
    pub ring: Addr<Ring>,
    pub replica: Addr<CrdtReplica>,
    pub registry: Addr<Registry>,
}

/// The links to peers that completed the handshake, by node name.
pub(crate) type Links = HashMap<NodeName, PeerLink>;

pub(crate) struct Node {
    pub config: FlockConfig,
    pub me: NodeInfo,
    pub kinds: KindTable,
    /// Membership events for applications, published by the Ring.
    pub events: super::events::EventHub,
    /// The context every `hatch` on this node gets.
    pub nest: std::sync::Arc<crate::nest::Nest>,
    /// Published by the Ring actor, read lock-free by `FlockAddr`s.
    pub view: ViewCell,
    /// Published by the Ring actor, read lock-free by callers and the replica.
    pub links: ArcSwap<Links>,
    pub actors: OnceLock<Actors>,
    /// Recently seen handshake nonces (shared by all accepted connections).
    pub nonces: Mutex<NonceCache>,
    started: Instant,
    stopping: AtomicBool,
    /// Set when `leave` begins: the node hands its birds over and goes.
    leaving: AtomicBool,
    /// Links whose handshake is under way (either direction), by link id.
    handshakes: Mutex<HashMap<u64, Handshaking>>,
}

/// What is known about a link whose handshake is under way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handshaking {
    /// Whether the other side dialled (a stranger, bounded by
    /// [`MAX_UNAUTHENTICATED`]).
    pub accepted: bool,
    /// The address this node dialled, for dialled links.
    pub dialed: Option<String>,
    /// The name the other side claims in its first handshake frame.
    pub claimed: Option<NodeName>,
}

/// The most accepted connections that may be in their handshake at once;
/// further strangers are closed on accept until some finish or time out, so
/// a flood of idle connections cannot exhaust memory or file descriptors.
pub(crate) const MAX_UNAUTHENTICATED: usize = 64;

/// How many handshake nonces are remembered, and for how long.
const NONCE_CACHE: (usize, u64) = (4096, 60_000);

impl Node {
    pub(crate) fn new(
        config: FlockConfig,
        me: NodeInfo,
        kinds: KindTable,
        nest: crate::nest::Nest,
    ) -> crate::Result<Self> {
        // Until the Ring builds the first view, this node is the only member.
        let placement = KindPlacement::new(
            config.shards,
            [HostedMember {
                member: Member::new(me.id.node.clone(), me.weight),
                kinds: Some(kinds.tags()),
            }],
        )?;
        Ok(Node {
            config,
            me,
            kinds,
            nest: std::sync::Arc::new(nest),
            events: super::events::EventHub::default(),
            view: ViewCell::new(View {
                epoch: 0,
                placement,
            }),
            links: ArcSwap::from_pointee(Links::new()),
            actors: OnceLock::new(),
            nonces: Mutex::new(NonceCache::new(NONCE_CACHE.0, NONCE_CACHE.1)),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            handshakes: Mutex::new(HashMap::new()),
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

    /// Microseconds since the node started (its monotonic clock, as a data
    /// link's stamps carry it; `core::data_links::age`).
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn handshakes(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Handshaking>> {
        self.handshakes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Link `link` started its handshake.
    pub(crate) fn handshake_started(&self, link: u64, state: Handshaking) {
        self.handshakes().insert(link, state);
    }

    /// The other side of link `link` claimed to be `name` (not proven yet).
    pub(crate) fn handshake_claims(&self, link: u64, name: &NodeName) {
        if let Some(h) = self.handshakes().get_mut(&link) {
            h.claimed = Some(name.clone());
        }
    }

    /// Link `link` finished or abandoned its handshake.
    pub(crate) fn handshake_ended(&self, link: u64) {
        self.handshakes().remove(&link);
    }

    /// How many accepted connections are still in their handshake.
    pub(crate) fn unauthenticated(&self) -> usize {
        self.handshakes().values().filter(|h| h.accepted).count()
    }

    /// Whether a link to peer `name` (listening on `addr`) is still proving
    /// itself: a link dialled to `addr`, or one whose other side claims `name`.
    pub(crate) fn handshake_under_way_with(&self, name: &NodeName, addr: Option<&str>) -> bool {
        self.handshakes().values().any(|h| {
            h.claimed.as_ref() == Some(name) || (addr.is_some() && h.dialed.as_deref() == addr)
        })
    }

    pub(crate) fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    pub(crate) fn set_leaving(&self) {
        self.leaving.store(true, Ordering::Release);
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
            versions: self.config.versions(),
            kinds: self.kinds.tags(),
        }
    }

    pub(crate) fn link(&self, node: &str) -> Option<Addr<Peer>> {
        self.links.load().get(node).map(|l| l.addr.clone())
    }

    /// The link to `node` with its callers' direct path (§35).
    pub(crate) fn peer_link(&self, node: &str) -> Option<PeerLink> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::core::crdt::ReplicaId;

    fn node() -> Node {
        let me = NodeInfo {
            id: ReplicaId {
                node: "me".into(),
                incarnation: 1,
            },
            addr: "me:1".into(),
            weight: 1,
        };
        Node::new(
            FlockConfig::new("me"),
            me,
            KindTable::default(),
            crate::nest::Nest::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_epoch_read_alone_follows_every_published_view() {
        let n = node();
        assert_eq!(n.view.epoch(), 0);
        for epoch in [1, 2, 7] {
            let placement = n.view.load().placement.clone();
            n.view.store(std::sync::Arc::new(View { epoch, placement }));
            assert_eq!(n.view.epoch(), epoch);
            assert_eq!(n.view.load().epoch, epoch);
        }
    }

    #[test]
    fn a_handshake_counts_only_for_the_peer_it_is_with() {
        let n = node();
        let a: NodeName = "a".into();
        let b: NodeName = "b".into();
        // A stranger in its handshake says nothing about peer a.
        n.handshake_started(
            1,
            Handshaking {
                accepted: true,
                ..Handshaking::default()
            },
        );
        assert!(!n.handshake_under_way_with(&a, Some("a:1")));
        // A dial to a's address counts for a, not for b.
        n.handshake_started(
            2,
            Handshaking {
                dialed: Some("a:1".into()),
                ..Handshaking::default()
            },
        );
        assert!(n.handshake_under_way_with(&a, Some("a:1")));
        assert!(!n.handshake_under_way_with(&b, Some("b:1")));
        // The stranger claims to be b.
        n.handshake_claims(1, &b);
        assert!(n.handshake_under_way_with(&b, None));
        assert_eq!(n.unauthenticated(), 1);
        n.handshake_ended(1);
        n.handshake_ended(2);
        assert!(!n.handshake_under_way_with(&a, Some("a:1")));
        assert_eq!(n.unauthenticated(), 0);
    }
}
