//! A real network between hosts: three node processes, each in its own Linux
//! network namespace, joined by veth pairs to a bridge in a fourth ("hub")
//! namespace. Pulling one node's cable (its veth down) is a real partition:
//! packets vanish, no socket closes, and only heartbeats can tell.
//!
//! Needs root (for `ip netns`); CI runs as root. Elsewhere it says so and
//! passes without running. Every address lives inside namespaces this test
//! creates and deletes; nothing leaves the machine.

#[path = "support/processes.rs"]
mod processes;

use processes::build_example;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const BIRDS: usize = 30;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The namespaces, bridge and veth pairs; all deleted on drop.
struct Hosts {
    tag: String,
    subnet: String,
    nodes: Vec<Child>,
}

impl Hosts {
    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    fn node_ip(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    fn create() -> Result<Hosts, String> {
        // Tests of this file run in parallel: one set of names each.
        static SETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let set = SETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let hosts = Hosts {
            tag: format!("flk{}{set}", pid % 100_000),
            subnet: format!("10.{}.{}", 213 + set, pid % 250),
            nodes: Vec::new(),
        };
        let hub = hosts.ns("hub");
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &hub,
            "addr",
            "add",
            &format!("{}.100/24", hosts.subnet),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 1..=NODES {
            let ns = hosts.ns(&format!("n{i}"));
            let (a, b) = (format!("{}a{i}", hosts.tag), format!("{}b{i}", hosts.tag));
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
            ip(&["link", "set", &a, "netns", &ns])?;
            ip(&["link", "set", &b, "netns", &hub])?;
            ip(&["-n", &hub, "link", "set", &b, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &b, "up"])?;
            let addr = format!("{}/24", hosts.node_ip(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &a])?;
            ip(&["-n", &ns, "link", "set", &a, "up"])?;
        }
        Ok(hosts)
    }

    /// Starts `node{i}` in each node namespace, listening on `listen(i)`.
    fn start_nodes(&mut self, bin: &PathBuf, listen: impl Fn(usize) -> String, seeds: &str) {
        for i in 1..=NODES {
            let child = Command::new("ip")
                .args(["netns", "exec", &self.ns(&format!("n{i}"))])
                .arg(bin)
                .arg("node")
                .args(["--name", &format!("node{i}@{}", self.node_ip(i))])
                .args(["--listen", &listen(i), "--seeds", seeds])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("node starts");
            self.nodes.push(child);
        }
    }

    /// Pulls (or plugs back) node `i`'s cable at the hub.
    fn cable(&self, i: usize, up: bool) {
        let b = format!("{}b{i}", self.tag);
        ip(&[
            "-n",
            &self.ns("hub"),
            "link",
            "set",
            &b,
            if up { "up" } else { "down" },
        ])
        .expect("veth state changes");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for child in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes its veth ends (and their peers).
        for i in 1..=NODES {
            let _ = ip(&["netns", "del", &self.ns(&format!("n{i}"))]);
        }
        let _ = ip(&["netns", "del", &self.ns("hub")]);
    }
}

/// Runs a client command of `flock_node` inside namespace `ns`.
fn client(bin: &PathBuf, ns: &str, listen: &str, seeds: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin)
        .args(args)
        .args(["--listen", listen, "--seeds", seeds, "--wait-secs", "5"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("client runs")
}

/// `bird → node` from the output of `flock_node call`.
fn replies(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("bird ")?;
            let (bird, node) = rest.split_once(" replied ")?;
            Some((bird.to_owned(), node.trim().to_owned()))
        })
        .collect()
}

/// Retries `f` until it returns `Some`, for at most `limit`.
fn within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_real_network_partition_is_served_on_both_sides_and_heals() {
    if !is_root() {
        eprintln!("not run: creating network namespaces needs root (CI runs as root)");
        return;
    }
    let bin = build_example("flock_node");
    let mut hosts = Hosts::create().expect("network namespaces (ip netns) work here");
    let seeds: Vec<String> = (1..=NODES)
        .map(|i| format!("{}:4001", hosts.node_ip(i)))
        .collect();
    let all_seeds = seeds.join(",");
    hosts.start_nodes(&bin, |i| seeds[i - 1].clone(), &all_seeds);
    let hub = hosts.ns("hub");
    let hub_listen = format!("{}.100:0", hosts.subnet);
    let num = BIRDS.to_string();
    within(Duration::from_secs(30), "the birds to start", || {
        let out = client(&bin, &hub, &hub_listen, &all_seeds, &["run", "--num", &num]);
        out.status.success().then_some(())
    });
    let node3 = format!("node3@{}", hosts.node_ip(3));
    let before = within(Duration::from_secs(20), "every bird to answer", || {
        let r = replies(&client(&bin, &hub, &hub_listen, &all_seeds, &["call"]));
        (r.len() == BIRDS && r.values().any(|n| *n == node3)).then_some(r)
    });

    // Pull node3's cable: each side must serve every bird on its own.
    hosts.cable(3, false);
    let majority = within(
        Duration::from_secs(20),
        "the majority to serve every bird",
        || {
            let r = replies(&client(&bin, &hub, &hub_listen, &all_seeds, &["call"]));
            (r.len() == BIRDS && r.values().all(|n| *n != node3)).then_some(r)
        },
    );
    let n3 = hosts.ns("n3");
    let n3_listen = format!("{}:0", hosts.node_ip(3));
    within(
        Duration::from_secs(20),
        "node3 alone to serve every bird",
        || {
            let r = replies(&client(&bin, &n3, &n3_listen, &seeds[2], &["call"]));
            (r.len() == BIRDS && r.values().all(|n| *n == node3)).then_some(())
        },
    );
    assert!(majority.len() == BIRDS);

    // Plug it back: one view again, every bird where it was before the split.
    hosts.cable(3, true);
    within(
        Duration::from_secs(30),
        "birds to return to their owners",
        || {
            let r = replies(&client(&bin, &hub, &hub_listen, &all_seeds, &["call"]));
            (r == before).then_some(())
        },
    );
    within(Duration::from_secs(20), "node3's view to agree", || {
        let r = replies(&client(&bin, &n3, &n3_listen, &seeds[2], &["call"]));
        (r == before).then_some(())
    });
}

#[test]
fn nodes_bound_to_every_interface_advertise_addresses_peers_can_dial() {
    if !is_root() {
        eprintln!("not run: creating network namespaces needs root (CI runs as root)");
        return;
    }
    let bin = build_example("flock_node");
    let mut hosts = Hosts::create().expect("network namespaces (ip netns) work here");
    let seeds: Vec<String> = (1..=NODES)
        .map(|i| format!("{}:4001", hosts.node_ip(i)))
        .collect();
    let all_seeds = seeds.join(",");
    hosts.start_nodes(&bin, |_| "0.0.0.0:4001".into(), &all_seeds);
    // A client that knows only node1 reaches node2 and node3 through the
    // addresses gossiped for them: these must be their interface addresses,
    // not 0.0.0.0 (which would be the client's own host).
    let hub = hosts.ns("hub");
    let hub_listen = format!("{}.100:0", hosts.subnet);
    within(
        Duration::from_secs(30),
        "every node up at its interface address, as seen through node1",
        || {
            let out = client(&bin, &hub, &hub_listen, &seeds[0], &["status"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (1..=NODES)
                .all(|i| {
                    text.lines().any(|l| {
                        l.contains(&format!("node{i}@"))
                            && l.contains(&format!("{} ", seeds[i - 1]))
                            && l.contains(" Up ")
                    })
                })
                .then_some(())
        },
    );
}
