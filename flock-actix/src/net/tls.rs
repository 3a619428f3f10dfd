//! Mutual TLS on every link (feature `tls`).
//!
//! [`TlsNetwork`] wraps another [`Network`] (TCP unless told otherwise): every
//! stream it hands up has completed a TLS 1.3 handshake in which *both* ends
//! presented a certificate chaining to the cluster CA. The cookie handshake
//! then runs inside the encrypted stream as before, so a node must hold a
//! CA-signed certificate *and* the cookie to join, and every frame after that
//! is confidential and integrity-protected. See docs/TLS.md.
//!
//! Nodes dial each other by address, not by a host name a certificate could
//! vouch for, so the dialler checks the server's certificate for one fixed
//! name every node certificate carries ([`DEFAULT_SERVER_NAME`] unless
//! [`TlsConfig::server_name`] changes it): what is proven is "a member of
//! this cluster's CA", which is what the cluster trusts.
//!
//! Inbound handshakes run inside [`Listener::accept`], several at once and
//! each under a deadline, so a client that stalls mid-handshake neither
//! blocks other nodes nor holds a slot forever.

use super::{BoxFuture, BoxStream, Listener, Network, TcpNetwork};
use crate::error::{Error, Result};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The name every node certificate carries as a DNS subject alternative
/// name unless [`TlsConfig::server_name`] picks another.
pub const DEFAULT_SERVER_NAME: &str = "flock-node";

/// Inbound TLS handshakes under way at once; further connections wait in
/// the kernel's backlog until one finishes.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// How long an inbound TLS handshake may take unless told otherwise.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A node's TLS identity and the cluster CA it trusts.
#[derive(Clone)]
pub struct TlsConfig {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsConfig")
            .field("ca_certificates", &self.roots.len())
            .field("chain_len", &self.chain.len())
            .field("server_name", &self.server_name)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// A configuration from PEM text: the cluster CA certificate(s), this
    /// node's certificate chain (its own certificate first) and its private
    /// key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming which input is empty or unreadable.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let ca = certificates("the cluster CA", ca_pem)?;
        let chain = certificates("the node certificate", cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            Error::InvalidConfig(format!(
                "TLS: cannot read the node's private key: {e} \
                 (expected a PEM block such as BEGIN PRIVATE KEY)"
            ))
        })?;
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| {
                Error::InvalidConfig(format!("TLS: the cluster CA certificate is unusable: {e}"))
            })?;
        }
        Ok(TlsConfig {
            roots: Arc::new(roots),
            chain,
            key: Arc::new(key),
            server_name: ServerName::try_from(DEFAULT_SERVER_NAME)
                .map_err(|e| Error::InvalidConfig(e.to_string()))?,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// [`TlsConfig::from_pem`] reading the three PEM files.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the file that cannot be read.
    pub fn from_pem_files(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| {
                Error::InvalidConfig(format!("TLS: cannot read {}: {e}", path.display()))
            })
        };
        Self::from_pem(
            &read(ca.as_ref())?,
            &read(cert.as_ref())?,
            &read(key.as_ref())?,
        )
    }

    /// The DNS name every node certificate carries and diallers check
    /// (default [`DEFAULT_SERVER_NAME`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `name` is not a valid DNS name.
    pub fn server_name(mut self, name: &str) -> Result<Self> {
        self.server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
            Error::InvalidConfig(format!("TLS: server name {name:?} is not a DNS name: {e}"))
        })?;
        Ok(self)
    }

    /// How long an inbound TLS handshake may take (default 5 s). Outbound
    /// ones are bounded by the node's `handshake_timeout`.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

fn certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidConfig(format!("TLS: cannot read {what}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "TLS: no certificate found in {what} (expected a PEM block BEGIN CERTIFICATE)"
        )));
    }
    Ok(certs)
}

/// A [`Network`] whose links are mutually authenticated TLS 1.3 streams.
#[derive(Clone)]
pub struct TlsNetwork {
    inner: Arc<dyn Network>,
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
    refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for TlsNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsNetwork")
            .field("server_name", &self.server_name)
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

impl TlsNetwork {
    /// TLS over TCP.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the key does not fit the certificate or
    /// the CA cannot verify clients.
    pub fn new(config: TlsConfig) -> Result<Self> {
        Self::over(Arc::new(TcpNetwork), config)
    }

    /// TLS over another network (tests: over a fault-injecting one).
    ///
    /// # Errors
    /// As [`TlsNetwork::new`].
    pub fn over(inner: Arc<dyn Network>, config: TlsConfig) -> Result<Self> {
        // An explicit provider: never depend on a process-wide default that
        // another crate in the binary may or may not have installed.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let bad = |what: &str, e: rustls::Error| {
            Error::InvalidConfig(format!("TLS: cannot set up {what}: {e}"))
        };
        let verifier =
            WebPkiClientVerifier::builder_with_provider(config.roots.clone(), provider.clone())
                .build()
                .map_err(|e| Error::InvalidConfig(format!("TLS: the cluster CA: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad("the server side", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(config.chain.clone(), config.key.clone_key())
            .map_err(|e| bad("the node certificate", e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad("the client side", e))?
            .with_root_certificates(config.roots)
            .with_client_auth_cert(config.chain, config.key.clone_key())
            .map_err(|e| bad("the node certificate", e))?;
        Ok(TlsNetwork {
            inner,
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
            server_name: config.server_name,
            handshake_timeout: config.handshake_timeout,
            refused: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Inbound connections refused in the TLS handshake so far (no or a
    /// foreign certificate, plaintext, timeout).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Network for TlsNetwork {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let bind = self.inner.bind(addr);
        let acceptor = self.acceptor.clone();
        let timeout = self.handshake_timeout;
        let refused = self.refused.clone();
        Box::pin(async move {
            let inner = bind.await?;
            Ok(Box::new(TlsListener {
                inner,
                acceptor,
                timeout,
                refused,
                pending: FuturesUnordered::new(),
            }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let connect = self.inner.connect(addr);
        let connector = self.connector.clone();
        let name = self.server_name.clone();
        let addr = addr.to_owned();
        Box::pin(async move {
            let stream = connect.await?;
            match connector.connect(name, stream).await {
                Ok(tls) => Ok(Box::new(tls) as BoxStream),
                Err(e) => {
                    let e = explain(e);
                    tracing::warn!("TLS: the node at {addr} was refused: {e}");
                    Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("TLS handshake with {addr} failed: {e}"),
                    ))
                }
            }
        })
    }
}

/// Says what a failed handshake most likely means for an operator.
fn explain(e: io::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as Tls};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Tls>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => format!(
                "{e}: the other end closed the connection mid-handshake \
                 (a node without TLS, or one that refused our certificate?)"
            ),
            _ => e.to_string(),
        };
    };
    let hint = match tls {
        Tls::InvalidMessage(_) | Tls::InappropriateMessage { .. } => {
            "it does not speak TLS: is it a node without TLS? Every node of a cluster \
             must use TLS, or none"
        }
        Tls::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => {
            "its certificate is not signed by this cluster's CA"
        }
        Tls::InvalidCertificate(Cert::NotValidForName) => {
            "its certificate lacks the cluster's server name (see TlsConfig::server_name)"
        }
        Tls::InvalidCertificate(Cert::Expired | Cert::NotValidYet) => {
            "its certificate is outside its validity period"
        }
        Tls::NoCertificatesPresented => "it presented no certificate",
        Tls::AlertReceived(
            Alert::UnknownCA | Alert::BadCertificate | Alert::CertificateRequired,
        ) => "it refused our certificate: is this node's certificate signed by the cluster's CA?",
        _ => "",
    };
    if hint.is_empty() {
        tls.to_string()
    } else {
        format!("{tls}: {hint}")
    }
}

struct TlsListener {
    inner: Box<dyn Listener>,
    acceptor: TlsAcceptor,
    timeout: Duration,
    refused: Arc<AtomicU64>,
    pending: FuturesUnordered<BoxFuture<'static, io::Result<BoxStream>>>,
}

fn handshake(
    acceptor: &TlsAcceptor,
    timeout: Duration,
    stream: BoxStream,
) -> BoxFuture<'static, io::Result<BoxStream>> {
    let accept = acceptor.accept(stream);
    Box::pin(async move {
        match tokio::time::timeout(timeout, accept).await {
            Ok(Ok(tls)) => Ok(Box::new(tls) as BoxStream),
            Ok(Err(e)) => Err(io::Error::new(io::ErrorKind::PermissionDenied, explain(e))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TLS handshake within {timeout:?}"),
            )),
        }
    })
}

impl Listener for TlsListener {
    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<BoxStream>> {
        let TlsListener {
            inner,
            acceptor,
            timeout,
            refused,
            pending,
        } = self;
        Box::pin(async move {
            loop {
                let room = pending.len() < MAX_PENDING_HANDSHAKES;
                let busy = !pending.is_empty();
                // Both branches are cancel-safe: an accepted stream is pushed
                // before the next await, and a finished handshake is returned.
                tokio::select! {
                    accepted = inner.accept(), if room => {
                        pending.push(handshake(acceptor, *timeout, accepted?));
                    }
                    Some(done) = pending.next(), if busy => match done {
                        Ok(stream) => return Ok(stream),
                        Err(e) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                "TLS: refused an incoming connection on {}: {e}",
                                inner.local_addr()
                            );
                        }
                    },
                }
            }
        })
    }
}
