//! Mutual TLS on links (feature `tls`): a cluster over TLS serves calls, and
//! a node with a foreign certificate, or without TLS, is refused with an
//! error that says why. Certificates are made at test time with rcgen.

#[path = "../../tests/support/mod.rs"]
mod support;

use flock_actix::net::{
    BoxFuture, BoxStream, Listener, Network, TcpNetwork, TlsConfig, TlsNetwork,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A node certificate signed by this CA, in a configuration trusting `trust`.
    fn node(&self, node: &str, trust: &Ca) -> TlsConfig {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec![flock_actix::net::DEFAULT_SERVER_NAME.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, node);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        TlsConfig::from_pem(
            trust.cert.pem().as_bytes(),
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
        )
        .unwrap()
    }
}

fn tls_node(name: &str, seeds: Vec<String>, network: TlsNetwork) -> TestNode {
    TestNode::start(name, seeds, move |b| b.network(Arc::new(network)))
}

async fn wait_up(nodes: &[&TestNode], up: usize) {
    wait_until(Duration::from_secs(10), "the cluster to form", || async {
        for n in nodes {
            if n.flock.up_count().await.unwrap_or(0) != up {
                return false;
            }
        }
        true
    })
    .await;
}

async fn wait_refusals(network: &TlsNetwork, at_least: u64) {
    wait_until(Duration::from_secs(10), "TLS refusals", || async {
        network.refused() >= at_least
    })
    .await;
}

#[actix_rt::test]
async fn three_nodes_over_mutual_tls_form_a_cluster_and_serve_calls() {
    init_logs();
    let ca = Ca::new("cluster CA");
    let net = |n: &str| TlsNetwork::new(ca.node(n, &ca)).unwrap();
    let first = TestNode::start("node1@127.0.0.1", vec![], {
        let tls = ca.node("node1", &ca);
        move |b| b.tls(tls).unwrap()
    });
    let seed = vec![first.addr()];
    let second = tls_node("node2@127.0.0.1", seed.clone(), net("node2"));
    let third = tls_node("node3@127.0.0.1", seed, net("node3"));
    wait_up(&[&first, &second, &third], 3).await;

    let birds = names("sealed", 30);
    start_all(&first.flock, &birds).await;
    for via in [&first, &second, &third] {
        wait_until(Duration::from_secs(10), "owners to answer over TLS", || {
            all_answer_from_owner(&via.flock, &birds)
        })
        .await;
    }
}

#[actix_rt::test]
async fn a_node_with_a_certificate_from_another_ca_is_refused() {
    init_logs();
    let ca = Ca::new("cluster CA");
    let rogue = Ca::new("rogue CA");
    let guard = TlsNetwork::new(ca.node("node1", &ca)).unwrap();
    let first = tls_node("node1@127.0.0.1", vec![], guard.clone());
    let second = tls_node(
        "node2@127.0.0.1",
        vec![first.addr()],
        TlsNetwork::new(ca.node("node2", &ca)).unwrap(),
    );
    wait_up(&[&first, &second], 2).await;

    // An intruder that knows the cookie but whose certificate comes from
    // another CA (and that trusts the cluster CA, so only our side decides).
    let intruder = tls_node(
        "intruder@127.0.0.1",
        vec![first.addr()],
        TlsNetwork::new(rogue.node("intruder", &ca)).unwrap(),
    );
    wait_refusals(&guard, 1).await;
    assert_eq!(first.flock.up_count().await.unwrap(), 2);
    assert_eq!(second.flock.up_count().await.unwrap(), 2);
    assert_eq!(intruder.flock.up_count().await.unwrap(), 1);
}

#[actix_rt::test]
async fn a_dial_to_a_node_of_another_ca_fails_naming_the_ca() {
    init_logs();
    let ca = Ca::new("cluster CA");
    let rogue = Ca::new("rogue CA");
    let theirs = TlsNetwork::new(rogue.node("other", &rogue)).unwrap();
    let mut listener = theirs.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    actix_rt::spawn(async move { while listener.accept().await.is_ok() {} });

    let ours = TlsNetwork::new(ca.node("node1", &ca)).unwrap();
    let err = ours
        .connect(&addr)
        .await
        .err()
        .expect("the dial is refused");
    let text = err.to_string();
    assert!(text.contains(&addr), "{text}");
    assert!(text.contains("not signed by this cluster's CA"), "{text}");
    wait_refusals(&theirs, 1).await;
}

#[actix_rt::test]
async fn a_foreign_client_certificate_is_refused_by_the_listener_and_told_so() {
    init_logs();
    let ca = Ca::new("cluster CA");
    let rogue = Ca::new("rogue CA");
    let guard = TlsNetwork::new(ca.node("node1", &ca)).unwrap();
    let mut listener = guard.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let served = actix_rt::spawn(async move { listener.accept().await.is_ok() });

    // TLS 1.3 lets the client finish before the server has checked its
    // certificate, so the refusal reaches the client on its first read.
    let intruder = TlsNetwork::new(rogue.node("intruder", &ca)).unwrap();
    let mut stream = intruder.connect(&addr).await.unwrap();
    let _ = stream.write_all(b"hello").await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the refusal arrives");
    let err = read.expect_err("the read fails");
    assert!(err.to_string().to_lowercase().contains("alert"), "{err}");
    wait_refusals(&guard, 1).await;
    served.abort();
}

#[actix_rt::test]
async fn a_plaintext_node_is_refused_by_a_tls_cluster() {
    init_logs();
    let ca = Ca::new("cluster CA");
    let guard = TlsNetwork::new(ca.node("node1", &ca)).unwrap();
    let first = tls_node("node1@127.0.0.1", vec![], guard.clone());
    let plain = TestNode::start("plain@127.0.0.1", vec![first.addr()], |b| {
        b.network(Arc::new(TcpNetwork))
    });
    wait_refusals(&guard, 1).await;
    assert_eq!(first.flock.up_count().await.unwrap(), 1);
    assert_eq!(plain.flock.up_count().await.unwrap(), 1);
}

#[actix_rt::test]
async fn a_tls_node_is_refused_by_a_plaintext_cluster_with_a_clear_error() {
    init_logs();
    let plain = TestNode::start("plain@127.0.0.1", vec![], |b| b);
    let ca = Ca::new("cluster CA");
    let ours = TlsNetwork::new(ca.node("node1", &ca)).unwrap();
    let err = ours
        .connect(&plain.addr())
        .await
        .err()
        .expect("a plaintext node cannot complete a TLS handshake");
    assert!(err.to_string().contains("without TLS"), "{err}");

    // In a node: it keeps dialling and keeps failing; neither side admits
    // the other.
    let failed = Arc::new(AtomicU64::new(0));
    let counted = FailedDials {
        inner: ours,
        failed: failed.clone(),
    };
    let tls = TestNode::start("node1@127.0.0.1", vec![plain.addr()], move |b| {
        b.network(Arc::new(counted))
    });
    wait_until(Duration::from_secs(10), "two failed dials", || async {
        failed.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(tls.flock.up_count().await.unwrap(), 1);
    assert_eq!(plain.flock.up_count().await.unwrap(), 1);
}

/// A network that counts its failed dials, to wait for refusals to happen.
struct FailedDials {
    inner: TlsNetwork,
    failed: Arc<AtomicU64>,
}

impl Network for FailedDials {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        self.inner.bind(addr)
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let connect = self.inner.connect(addr);
        let failed = self.failed.clone();
        Box::pin(async move {
            let result = connect.await;
            if result.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        })
    }
}
