//! DNS discovery against a real DNS server: dnsmasq, serving a hosts file on
//! a loopback address. The discovery name first resolves to two nodes, which
//! find each other; then a third address is added to the record and the
//! running nodes find the third node, which knows nobody, without restarts.
//!
//! Needs `dnsmasq` (`apt-get install -y dnsmasq`; `.ci/run` installs it).
//! Without it the test is skipped with a message, except under CI where a
//! missing server is a failure.

#[path = "../../tests/support/mod.rs"]
mod support;

use flock_actix::{DnsDiscovery, NameserverResolver, Resolve};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const NAME: &str = "flock-headless.flock.test";

/// A dnsmasq answering only from its hosts file, killed on drop.
struct Dnsmasq {
    child: Child,
    hosts: PathBuf,
    addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts dnsmasq on 127.0.0.1 at a free port, or `None` if it is not
    /// installed.
    fn start(ips: &[&str]) -> Option<Dnsmasq> {
        let dir = std::env::temp_dir().join(format!(
            "{}-{}",
            support::unique("flock-dns"),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = dir.join("hosts");
        write_hosts(&hosts, ips);
        // A free UDP port (released just before dnsmasq takes it).
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--pid-file=",
                "--user=root",
                "--local-ttl=0",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        match child {
            Ok(child) => Some(Dnsmasq {
                child,
                hosts,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("cannot run dnsmasq: {e}"),
        }
    }

    /// Rewrites the record and has dnsmasq re-read it (SIGHUP).
    fn set(&self, ips: &[&str]) {
        write_hosts(&self.hosts, ips);
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -HUP dnsmasq failed");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.hosts.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn write_hosts(path: &PathBuf, ips: &[&str]) {
    let text: String = ips.iter().map(|ip| format!("{ip} {NAME}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Waits until `resolver` answers exactly `count` addresses for the name.
async fn wait_answers(resolver: &NameserverResolver, count: usize) {
    wait_until(
        Duration::from_secs(10),
        &format!("dnsmasq to answer {count} addresses"),
        || async { matches!(resolver.resolve(NAME, 1).await, Ok(a) if a.len() == count) },
    )
    .await;
}

#[actix_rt::test]
async fn a_node_added_to_the_dns_record_is_found_without_restarts() {
    init_logs();
    let Some(dns) = Dnsmasq::start(&["127.0.0.11", "127.0.0.12"]) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "dnsmasq is missing under CI: .ci/run must install it"
        );
        eprintln!("skipping: dnsmasq is not installed (apt-get install -y dnsmasq)");
        return;
    };
    let resolver = NameserverResolver::new(dns.addr);
    wait_answers(&resolver, 2).await;

    // Every node listens on the same port at its own address, as pods do.
    let port = std::net::TcpListener::bind("127.0.0.11:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let node = |i: u8, discover: bool| {
        let resolver = resolver.clone();
        TestNode::start(&format!("node{i}@127.0.0.{}", 10 + i), vec![], move |b| {
            let b = b.listen(format!("127.0.0.{}:{port}", 10 + i));
            if discover {
                b.discovery(discovery(port, resolver))
            } else {
                b
            }
        })
    };
    let first = node(1, true);
    let second = node(2, true);
    wait_up(&[&first, &second], 2).await;

    // A third node that knows nobody and resolves nothing: only being
    // found through the record can bring it in.
    let third = node(3, false);
    assert_eq!(first.flock.up_count().await.unwrap(), 2);
    dns.set(&["127.0.0.11", "127.0.0.12", "127.0.0.13"]);
    wait_up(&[&first, &second, &third], 3).await;
}

/// Discovery of [`NAME`] every 200 ms through `resolver`.
fn discovery(port: u16, resolver: NameserverResolver) -> DnsDiscovery {
    DnsDiscovery::new(&format!("{NAME}:{port}"))
        .unwrap()
        .interval(Duration::from_millis(200))
        .resolver(Arc::new(resolver))
}

async fn wait_up(nodes: &[&TestNode], up: usize) {
    wait_until(
        Duration::from_secs(10),
        &format!("{up} nodes to see each other"),
        || async {
            for n in nodes {
                if n.flock.up_count().await.unwrap_or(0) != up {
                    return false;
                }
            }
            true
        },
    )
    .await;
}
