//! Node configuration and its builder.

use crate::core::anti_entropy::AntiEntropyConfig;
use crate::core::membership::MembershipConfig;
use crate::core::placement::{DEFAULT_SHARDS, MAX_WEIGHT};
use crate::core::supervision::Backoff;
use crate::error::{Error, Result};
use crate::net::{Network, TcpNetwork};
use crate::wire::codec::DEFAULT_MAX_FRAME;
use std::sync::Arc;
use std::time::Duration;

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
    /// The cluster's name; nodes of other clusters are refused.
    pub cluster: String,
    /// The shared secret every node proves it knows.
    pub cookie: Vec<u8>,
    /// Placement weight: the node's relative share of birds; 0 for a client
    /// node that routes calls but hosts no birds.
    pub weight: u32,
    /// The cluster-wide shard count (every node must use the same).
    pub shards: u32,
    /// How long a call waits for its reply unless told otherwise.
    pub call_timeout: Duration,
    /// Failure detection and reconnection timing.
    pub membership: MembershipConfig,
    /// Registry replication timing and buffering.
    pub anti_entropy: AntiEntropyConfig,
    /// Restart delays for birds that panic.
    pub backoff: Backoff,
    /// Arbiters (threads) the node's birds are spread over; 0 runs them on
    /// the arbiter that started the node.
    pub arbiters: usize,
    /// The largest frame accepted from an authenticated peer.
    pub max_frame: usize,
    /// How long a new connection may take to authenticate.
    pub handshake_timeout: Duration,
    /// The network to use (TCP unless a test swaps it).
    pub network: Arc<dyn Network>,
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
            arbiters: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(5),
            network: Arc::new(TcpNetwork),
        }
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
        if self.weight > MAX_WEIGHT {
            return bad(format!(
                "weight {} is above the maximum {MAX_WEIGHT}",
                self.weight
            ));
        }
        if self.call_timeout.is_zero() {
            return bad("call_timeout must be above zero".into());
        }
        if self.max_frame < crate::wire::codec::PRE_AUTH_MAX_FRAME {
            return bad(format!(
                "max_frame {} is below the pre-authentication cap {}",
                self.max_frame,
                crate::wire::codec::PRE_AUTH_MAX_FRAME
            ));
        }
        self.membership.validate()?;
        self.anti_entropy.validate()?;
        self.backoff.validate()?;
        crate::core::placement::shard_of_hash(0, self.shards).map(|_| ())
    }
}
