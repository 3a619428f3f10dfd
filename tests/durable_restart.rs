//! A registry that survives a full restart, with real processes: three
//! `flock_node` nodes with data directories, 100 birds, 10 stopped, every
//! node SIGKILLed at once and started again: exactly the 90 run again, each
//! once, and the 10 stay stopped.

#[path = "support/processes.rs"]
mod processes;

use processes::{build_example, free_ports};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The node processes of one generation; SIGKILLed when dropped.
struct Nodes {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Nodes {
    fn start(bin: &Path, ports: &[u16], dir: &Path, generation: u32) -> Nodes {
        let seeds = seeds(ports);
        let mut children = Vec::new();
        let mut logs = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let log = dir.join(format!("node{}-gen{generation}.log", i + 1));
            let child = Command::new(bin)
                .arg("node")
                .args(["--name", &format!("node{}@127.0.0.1", i + 1)])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--seeds", &seeds])
                .arg("--data-dir")
                .arg(dir.join(format!("data{}", i + 1)))
                .env("RUST_LOG", "warn,flock_node=info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("log file"))
                .spawn()
                .expect("flock_node starts");
            children.push(child);
            logs.push(log);
        }
        Nodes { children, logs }
    }

    /// SIGKILLs every node at once, then reaps them.
    fn kill_all(mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        self.children.clear();
    }

    /// Instances of each bird running now, from the nodes' logs (each bird
    /// logs when it starts and when it stops), and whether any bird of
    /// `never` ever started.
    fn running(&self) -> BTreeMap<String, i64> {
        let mut count = BTreeMap::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            for line in text.lines() {
                let Some(rest) = line.split_once("bird ").map(|(_, r)| r) else {
                    continue;
                };
                if let Some((bird, _)) = rest.split_once(" started on node ") {
                    *count.entry(bird.to_owned()).or_default() += 1;
                } else if let Some((bird, _)) = rest.split_once(" stopped on node ") {
                    *count.entry(bird.to_owned()).or_default() -= 1;
                }
            }
        }
        count
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn seeds(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs a client command of `flock_node` against the cluster.
fn client(bin: &Path, ports: &[u16], args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .args(["--seeds", &seeds(ports), "--wait-secs", "30"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("client runs")
}

fn bird(i: usize) -> String {
    format!("bird:{i}")
}

/// Retries `f` every 200 ms until it returns `Ok`, failing with its last
/// error after `limit`.
fn within(limit: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if start.elapsed() > limit => panic!("after {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Exactly `live` run, once each, and none of `stopped` runs.
fn exactly_once(
    running: &BTreeMap<String, i64>,
    live: &[String],
    stopped: &[String],
) -> Result<(), String> {
    for b in live {
        let n = running.get(b).copied().unwrap_or(0);
        if n != 1 {
            return Err(format!("{b} runs {n} time(s)"));
        }
    }
    for b in stopped {
        if running.get(b).copied().unwrap_or(0) != 0 {
            return Err(format!("stopped {b} runs"));
        }
    }
    let extra: Vec<_> = running
        .iter()
        .filter(|(b, n)| **n != 0 && !live.contains(b))
        .collect();
    if !extra.is_empty() {
        return Err(format!("unexpected birds running: {extra:?}"));
    }
    Ok(())
}

#[test]
fn every_node_killed_at_once_comes_back_with_exactly_the_birds_not_stopped() {
    let dir = std::env::temp_dir().join(format!("flock-durable-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = build_example("flock_node");
    let ports = free_ports(3);
    let live: Vec<String> = (11..=100).map(bird).collect();
    let stopped: Vec<String> = (1..=10).map(bird).collect();

    let nodes = Nodes::start(&bin, &ports, &dir, 1);
    let out = client(&bin, &ports, &["run", "--num", "100"]);
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stop_args = vec!["stop"];
    stop_args.extend(stopped.iter().map(String::as_str));
    let out = client(&bin, &ports, &stop_args);
    assert!(
        out.status.success(),
        "stop failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    within(Duration::from_secs(30), || {
        exactly_once(&nodes.running(), &live, &stopped)
    });
    nodes.kill_all();

    let nodes = Nodes::start(&bin, &ports, &dir, 2);
    within(Duration::from_secs(60), || {
        exactly_once(&nodes.running(), &live, &stopped)
    });
    let started_again: Vec<String> = nodes
        .running()
        .keys()
        .filter(|b| stopped.contains(b))
        .cloned()
        .collect();
    assert!(
        started_again.is_empty(),
        "stopped birds started after the restart: {started_again:?}"
    );
    // And every one of the 90 answers a call, through a fresh client.
    let out = client(&bin, &ports, &["call"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "call failed: {stdout}");
    let mut replied: Vec<String> = stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("bird ")?
                .split_once(" replied ")
                .map(|(b, _)| b.to_owned())
        })
        .collect();
    replied.sort();
    let mut expected = live.clone();
    expected.sort();
    assert_eq!(replied, expected);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
