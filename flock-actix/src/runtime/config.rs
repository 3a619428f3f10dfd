//! Node configuration and its builder.

use crate::core::anti_entropy::AntiEntropyConfig;
use crate::core::membership::MembershipConfig;
use crate::core::placement::{DEFAULT_SHARDS, MAX_WEIGHT};
use crate::core::supervision::Backoff;
use crate::error::{Error, Result};
use crate::net::{Network, TcpNetwork};
use crate::wire::codec::{DEFAULT_MAX_FRAME, PRE_AUTH_MAX_FRAME};
use std::sync::Arc;
use std::time::Duration;

/// The longest `call_timeout` and `handshake_timeout`: `u32::MAX`
/// milliseconds, the largest timeout a call carries on the wire. Anything
/// longer would be cut short remotely, and `Duration::MAX` would overflow
/// `Instant + Duration`.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

/// The largest `max_frame`: a frame's length header is a `u32`.
const MAX_FRAME_LIMIT: usize = u32::MAX as usize;

/// Everything a node needs to know, with production defaults.
#[derive(Clone)]
pub struct FlockConfig {
    /// The node's name, unique in the cluster, e.g. `node1@127.0.0.1`.
    pub name: String,
    /// The address to listen on; port 0 picks a free one.
    pub listen: String,
    /// The address peers dial to reach this node, if not the bound one
    /// (behind NAT, or to pick the interface). `None`: the bound address, or
    /// for an unspecified IP (`0.0.0.0`) the local address that routes to
    /// the seeds.
    pub advertise: Option<String>,
    /// Addresses of nodes to join through (any one that answers is enough).
    pub seeds: Vec<String>,
    /// The cluster's name, 1 to 255 bytes; nodes of other clusters are refused.
    pub cluster: String,
    /// The shared secret every node proves it knows.
    pub cookie: Vec<u8>,
    /// Placement weight: the node's relative share of birds; 0 for a client
    /// node that routes calls but hosts no birds.
    pub weight: u32,
    /// The cluster-wide shard count (every node must use the same).
    pub shards: u32,
    /// How long a call waits for its reply unless told otherwise; above zero
    /// and at most `u32::MAX` milliseconds (≈ 49.7 days).
    pub call_timeout: Duration,
    /// Failure detection and reconnection timing.
    pub membership: MembershipConfig,
    /// Registry replication timing and buffering.
    pub anti_entropy: AntiEntropyConfig,
    /// Restart delays for birds that panic.
    pub backoff: Backoff,
    /// How long a new owner waits for the state of a bird that moved here
    /// from a node that is still up (kinds with `#[flock_bird(handoff)]`)
    /// before it hatches the bird from its arguments. Calls wait meanwhile.
    pub handoff_wait: Duration,
    /// Arbiters (threads) the node's birds are spread over; 0 runs them on
    /// the arbiter that started the node.
    pub arbiters: usize,
    /// The largest frame accepted from an authenticated peer: at least the
    /// pre-authentication cap (64 KiB) and at most `u32::MAX` bytes.
    pub max_frame: usize,
    /// How long a new connection may take to authenticate; above zero and
    /// at most `u32::MAX` milliseconds (≈ 49.7 days).
    pub handshake_timeout: Duration,
    /// The network to use (TCP unless a test swaps it).
    pub network: Arc<dyn Network>,
    /// Where the node reads the wall clock (CRDT timestamps, incarnations),
    /// in milliseconds since the Unix epoch; `None`: the system clock.
    /// Hidden: a seam for the project's deterministic simulation
    /// (tests/sim), which drives it from a paused tokio clock and steps it
    /// back to replay clock faults; not an application setting.
    #[doc(hidden)]
    pub wall_clock: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// Whether the Ring (with every link) and the CrdtReplica run on
    /// threads of their own (the default; docs/ARCHITECTURE.md §20). Hidden:
    /// the deterministic simulation runs whole nodes on one thread under a
    /// paused tokio clock, which other threads' runtimes would not follow.
    #[doc(hidden)]
    pub service_threads: bool,
    /// Speak exactly this protocol version (`None`: N−1 and N, preferring
    /// N). Hidden: a seam for mixed-version tests, where `Some(1)` makes a
    /// node behave on the wire like a build of protocol 1 (today's v1
    /// `Hello`, no kind announcement, refusing v2); not an application
    /// setting.
    #[doc(hidden)]
    pub protocol_version: Option<u32>,
    /// Judge peers of this build by SWIM probes (docs/ARCHITECTURE.md §34;
    /// the default). Hidden: a seam for rolling-upgrade tests, where
    /// `false` makes a node behave like a build before SWIM (it sends no
    /// probe frames, drops those it receives, and judges every peer by
    /// heartbeats); not an application setting.
    #[doc(hidden)]
    pub swim: bool,

    /// Calls and casts on *data links*, one per peer and per lane of the
    /// peer, opened on demand (docs/ARCHITECTURE.md §26). On by default
    /// since a call's wait in a data link's socket counts against its
    /// deadline (§32); `FlockBuilder::data_links(false)` keeps every call on
    /// the control link.
    #[doc(hidden)]
    pub data_links: bool,
    /// A data link with nothing in flight and no traffic for this long is
    /// closed.
    #[doc(hidden)]
    pub data_idle_ms: u64,
    /// Bytes of calls and casts a data link may hold while its peer reads
    /// slower than this node writes (flow control, docs/ARCHITECTURE.md
    /// §26), and a peer's messages may wait for its data links to open;
    /// past it a call fails at once and a cast is dropped (logged and
    /// counted in `flock_casts_dropped_total`).
    #[doc(hidden)]
    pub data_queue_bytes: usize,
}

impl std::fmt::Debug for FlockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the cookie.
        f.debug_struct("FlockConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("seeds", &self.seeds)
            .field("cluster", &self.cluster)
            .field("weight", &self.weight)
            .field("shards", &self.shards)
            .field("call_timeout", &self.call_timeout)
            .field("handoff_wait", &self.handoff_wait)
            .field("membership", &self.membership)
            .field("anti_entropy", &self.anti_entropy)
            .field("backoff", &self.backoff)
            .field("arbiters", &self.arbiters)
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl FlockConfig {
    /// Defaults for a node called `name`: listens on `127.0.0.1:0`, no seeds,
    /// cluster `flock`, cookie `flock` (change it), weight 1.
    pub fn new(name: impl Into<String>) -> Self {
        FlockConfig {
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            advertise: None,
            seeds: Vec::new(),
            cluster: "flock".into(),
            cookie: b"flock".to_vec(),
            weight: 1,
            shards: DEFAULT_SHARDS,
            call_timeout: Duration::from_secs(5),
            membership: MembershipConfig::default(),
            anti_entropy: AntiEntropyConfig::default(),
            backoff: Backoff::default(),
            handoff_wait: Duration::from_millis(crate::core::lifecycle::HANDOFF_WAIT_MS),
            arbiters: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(5),
            network: Arc::new(TcpNetwork),
            wall_clock: None,
            service_threads: true,
            protocol_version: None,
            swim: true,

            data_links: true,
            data_idle_ms: 30_000,
            data_queue_bytes: 64 << 20,
        }
    }

    /// The protocol versions the node speaks.
    pub(crate) fn versions(&self) -> crate::core::handshake::Versions {
        self.protocol_version
            .map_or_else(Default::default, crate::core::handshake::Versions::exactly)
    }

    /// The wall clock in milliseconds since the Unix epoch: the configured
    /// one, else the system's.
    pub(crate) fn wall_ms(&self) -> u64 {
        self.wall_clock
            .as_ref()
            .map_or_else(super::node::wall_ms, |clock| clock())
    }

    /// Checks every value, naming the first bad one.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.name.is_empty() || self.name.len() > 255 {
            return bad(format!(
                "node name must be 1 to 255 bytes, got {:?}",
                self.name
            ));
        }
        if self.cookie.is_empty() {
            return bad("the cookie must not be empty".into());
        }
        // The handshake refuses an empty cluster name; refuse it here, where
        // the operator can still fix it, instead of at every connection.
        if self.cluster.is_empty() || self.cluster.len() > 255 {
            return bad(format!(
                "cluster name must be 1 to 255 bytes, got {:?}",
                self.cluster
            ));
        }
        if self.weight > MAX_WEIGHT {
            return bad(format!(
                "weight {} is above the maximum {MAX_WEIGHT}",
                self.weight
            ));
        }
        for (field, value) in [
            ("call_timeout", self.call_timeout),
            ("handshake_timeout", self.handshake_timeout),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return bad(format!(
                    "{field} must be above zero and at most {} ms (the largest a call \
                     carries on the wire, about 49.7 days), got {value:?}",
                    MAX_TIMEOUT.as_millis()
                ));
            }
        }
        if self.max_frame < PRE_AUTH_MAX_FRAME || self.max_frame > MAX_FRAME_LIMIT {
            return bad(format!(
                "max_frame must be between the pre-authentication cap {PRE_AUTH_MAX_FRAME} \
                 and {MAX_FRAME_LIMIT} (a frame length is a u32), got {}",
                self.max_frame
            ));
        }
        self.membership.validate()?;
        self.anti_entropy.validate()?;
        self.backoff.validate()?;
        self.versions().validate()?;
        crate::core::placement::shard_of_hash(0, self.shards).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every invalid value is refused, and the message names its field.
    #[test]
    fn validate_refuses_each_invalid_value_naming_its_field() {
        type Edit = fn(&mut FlockConfig);
        let table: [(&str, Edit); 12] = [
            ("node name", |c| c.name.clear()),
            ("node name", |c| c.name = "n".repeat(256)),
            ("cookie", |c| c.cookie.clear()),
            ("cluster name", |c| c.cluster.clear()),
            ("cluster name", |c| c.cluster = "c".repeat(256)),
            ("weight", |c| c.weight = MAX_WEIGHT + 1),
            ("call_timeout", |c| c.call_timeout = Duration::ZERO),
            ("call_timeout", |c| c.call_timeout = Duration::MAX),
            ("handshake_timeout", |c| {
                c.handshake_timeout = Duration::ZERO
            }),
            ("handshake_timeout", |c| {
                c.handshake_timeout = MAX_TIMEOUT + Duration::from_millis(1)
            }),
            ("max_frame", |c| c.max_frame = PRE_AUTH_MAX_FRAME - 1),
            ("max_frame", |c| c.max_frame = u32::MAX as usize + 1),
        ];
        assert_eq!(FlockConfig::new("n1").validate(), Ok(()));
        for (field, edit) in table {
            let mut config = FlockConfig::new("n1");
            edit(&mut config);
            match config.validate() {
                Err(Error::InvalidConfig(m)) => assert!(m.contains(field), "{field}: {m}"),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn validate_accepts_the_limits_themselves() {
        let mut config = FlockConfig::new("n".repeat(255));
        config.cluster = "c".repeat(255);
        config.call_timeout = MAX_TIMEOUT;
        config.handshake_timeout = Duration::from_millis(1);
        config.max_frame = u32::MAX as usize;
        assert_eq!(config.validate(), Ok(()));
        config.max_frame = PRE_AUTH_MAX_FRAME;
        assert_eq!(config.validate(), Ok(()));
    }
}
