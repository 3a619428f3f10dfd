//! DNS discovery: the shell around [`core::discovery`](crate::core::discovery).
//!
//! A task resolves one `host:port` name (e.g. a Kubernetes headless service,
//! `flock-headless.ns.svc.cluster.local:4001`) every few seconds and hands
//! every address of the answer to the Ring, whose membership dials those it
//! has no link or pending dial to. So a scaled-up deployment's new pods are
//! found without restarts, and pods that went away stop being dialled.
//!
//! Names are resolved by the system resolver (`getaddrinfo`, honouring
//! `/etc/resolv.conf` search domains) unless a [`Resolve`] is given; with the
//! `dns` feature, [`NameserverResolver`] asks one DNS server directly.

use super::node::Node;
use crate::core::discovery::{Discovery, DiscoveryConfig};
use crate::error::{Error, Result};
use crate::net::BoxFuture;
use actix::Message;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one resolution may take before it counts as failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves a host name to addresses.
pub trait Resolve: Send + Sync + 'static {
    /// Every address `host` resolves to, each with `port`. A name without
    /// addresses is `Ok` and empty where the resolver can tell.
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`), the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// A resolver that asks one DNS server directly over UDP, with no cache
/// (feature `dns`): for a cluster DNS the system resolver does not use, and
/// for tests.
#[cfg(feature = "dns")]
#[derive(Clone)]
pub struct NameserverResolver {
    resolver: hickory_resolver::TokioResolver,
    server: SocketAddr,
}

#[cfg(feature = "dns")]
impl std::fmt::Debug for NameserverResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameserverResolver")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "dns")]
impl NameserverResolver {
    /// Asks the DNS server at `server` (e.g. `127.0.0.53:53`).
    pub fn new(server: SocketAddr) -> Self {
        use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
        use hickory_resolver::name_server::TokioConnectionProvider;
        use hickory_resolver::proto::xfer::Protocol;
        let mut config = ResolverConfig::new();
        config.add_name_server(NameServerConfig::new(server, Protocol::Udp));
        let mut opts = ResolverOpts::default();
        // Discovery re-resolves on its own schedule; a cache would only
        // delay seeing new pods.
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let resolver = hickory_resolver::TokioResolver::builder_with_config(
            config,
            TokioConnectionProvider::default(),
        )
        .with_options(opts)
        .build();
        NameserverResolver { resolver, server }
    }
}

#[cfg(feature = "dns")]
impl Resolve for NameserverResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let resolver = self.resolver.clone();
        let server = self.server;
        // A trailing dot: the name is absolute, no search domains.
        let host = if host.ends_with('.') {
            host.to_owned()
        } else {
            format!("{host}.")
        };
        Box::pin(async move {
            match resolver.lookup_ip(host.as_str()).await {
                Ok(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
                Err(e) if e.is_no_records_found() => Ok(Vec::new()),
                Err(e) => Err(io::Error::other(format!(
                    "DNS server {server} could not resolve {host}: {e}"
                ))),
            }
        })
    }
}

/// Discovery of peers through a DNS name that resolves to many addresses.
#[derive(Clone)]
pub struct DnsDiscovery {
    host: String,
    port: u16,
    config: DiscoveryConfig,
    resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DnsDiscovery {
    /// Discovery through `name` (`host:port`, e.g.
    /// `flock-headless.ns.svc.cluster.local:4001`), every 5 s, with the
    /// system resolver.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `name` is not `host:port`.
    pub fn new(name: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidConfig(format!(
                "discovery name {name:?} must be host:port, e.g. flock-headless.ns.svc.cluster.local:4001"
            ))
        };
        let (host, port) = name.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        // `[::1]:4001`: the resolver wants the address without brackets.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad());
        }
        Ok(DnsDiscovery {
            host: host.to_owned(),
            port,
            config: DiscoveryConfig::default(),
            resolver: Arc::new(SystemResolver),
        })
    }

    /// How often to resolve (default 5 s); after failures the delay doubles
    /// from this up to a minute (or this, if longer).
    pub fn interval(mut self, interval: Duration) -> Self {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.config.interval_ms = ms;
        self.config.max_backoff_ms = ms.max(DiscoveryConfig::default().max_backoff_ms);
        self
    }

    /// Every timing and limit at once.
    pub fn config(mut self, config: DiscoveryConfig) -> Self {
        self.config = config;
        self
    }

    /// Use another resolver (e.g. a `NameserverResolver`, with feature `dns`).
    pub fn resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Checks the timings and limits.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        self.config.validate()
    }

    /// Starts resolving for `node` on the current arbiter; stops when the
    /// node stops.
    pub(crate) fn spawn(self, node: Arc<Node>) -> Result<()> {
        let mut core = Discovery::new(self.config)?;
        actix::spawn(async move {
            let name = format!("{}:{}", self.host, self.port);
            while !node.is_stopping() {
                let now = node.now_ms();
                let answer = tokio::time::timeout(
                    RESOLVE_TIMEOUT,
                    self.resolver.resolve(&self.host, self.port),
                )
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
                let next_ms = match answer {
                    Ok(addrs) => {
                        let found = core.resolved(addrs.iter().map(|a| a.to_string()), now);
                        if !found.added.is_empty() || !found.removed.is_empty() {
                            tracing::info!(
                                "discovery {name}: {} address(es), new {:?}, gone {:?}",
                                found.current.len(),
                                found.added,
                                found.removed
                            );
                        }
                        if found.truncated > 0 {
                            tracing::warn!(
                                "discovery {name}: {} address(es) beyond the limit ignored",
                                found.truncated
                            );
                        }
                        let next_ms = found.next_ms;
                        if let Some(actors) = node.actors() {
                            actors.ring.do_send(Discovered {
                                current: found.current,
                                removed: found.removed,
                            });
                        }
                        next_ms
                    }
                    Err(e) => {
                        let next_ms = core.failed(now);
                        tracing::warn!(
                            "discovery {name}: resolution failed: {e}; retrying in {} ms",
                            next_ms.saturating_sub(now)
                        );
                        next_ms
                    }
                };
                let wait = next_ms.saturating_sub(node.now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        });
        Ok(())
    }
}

/// Discovery's latest answer, for the Ring: dial the `current` addresses it
/// does not know, stop dialling the `removed` ones.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Discovered {
    pub(crate) current: Vec<String>,
    pub(crate) removed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovery_name_must_be_host_and_port() {
        let d = DnsDiscovery::new("flock-headless.ns.svc.cluster.local:4001").unwrap();
        assert_eq!(
            (d.host.as_str(), d.port),
            ("flock-headless.ns.svc.cluster.local", 4001)
        );
        let d = DnsDiscovery::new("[::1]:4001").unwrap();
        assert_eq!((d.host.as_str(), d.port), ("::1", 4001));
        for bad in ["flock-headless", ":4001", "host:port", "host:70000", "[]:1"] {
            match DnsDiscovery::new(bad) {
                Err(Error::InvalidConfig(m)) => assert!(m.contains("host:port"), "{m}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn a_zero_interval_is_refused_before_the_node_starts() {
        let d = DnsDiscovery::new("flock:4001")
            .unwrap()
            .interval(Duration::ZERO);
        assert!(matches!(d.validate(), Err(Error::InvalidConfig(_))));
    }

    #[actix_rt::test]
    async fn the_system_resolver_answers_every_address_with_the_port() {
        let addrs = SystemResolver.resolve("127.0.0.1", 4001).await.unwrap();
        assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 4001))]);
    }
}
