//! `sim_nodes` (issue #10 target 4): many complete nodes in one process over
//! the in-memory network, on a paused tokio clock (the deterministic
//! simulation's technique: every actor of every node on one thread, time
//! jumps to the next timer whenever all of them are idle), so the figures are
//! in *cluster* time and do not depend on how loaded the machine is.
//!
//! For each size N (`FLOCK_BENCH_SIM_NODES`, a comma list; default
//! 25,50,100; smoke: 5; 200 and more by hand): nodes boot seeded by the first one; then
//! - formation: cluster time until every node sees N members up;
//! - idle: frames and bytes per node per second over 10 s of cluster time;
//! - one start: bytes per node until every node's registry holds the bird;
//! - a join and a leave of one more node: bytes per node and cluster time
//!   until every node agrees.
//!
//! Frames are counted by wrapping the memory network in the library's
//! `CountingNetwork` (every frame any node writes, by variant). The real time
//! each phase took is reported too: it is what the simulation costs, and it
//! is how a thousand nodes was judged (see docs/BENCHMARKS.md).

use crate::Row;
use crate::benches::{COOKIE, smoke};
use crate::birds::Sink;
use crate::counting::CountingNetwork;
use flock_actix::prelude::*;
use flock_actix::testing::MemoryNetwork;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// Cluster time every phase may take.
const PHASE: Duration = Duration::from_secs(120);
/// A fixed wall-clock origin for the nodes' hybrid timestamps.
const EPOCH_MS: u64 = 1_800_000_000_000;
/// Cluster time measured while idle.
const IDLE: Duration = Duration::from_secs(10);

fn sizes() -> Vec<usize> {
    if let Ok(v) = std::env::var("FLOCK_BENCH_SIM_NODES") {
        return v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if smoke() { vec![5] } else { vec![25, 50, 100] }
}

/// What one size measured.
#[derive(Default, Debug)]
struct Figures {
    form_ms: f64,
    idle_frames_per_node_s: f64,
    idle_bytes_per_node_s: f64,
    start_bytes_per_node: f64,
    start_ms: f64,
    join_bytes_per_node: f64,
    join_ms: f64,
    leave_bytes_per_node: f64,
    leave_ms: f64,
    real_s: f64,
    /// Which phase did not finish within [`PHASE`], if any.
    stalled: Option<String>,
}

struct Cluster {
    net: CountingNetwork,
    origin: Instant,
    nodes: Vec<Flock>,
}

fn addr(i: usize) -> String {
    format!("s{i}:1")
}

impl Cluster {
    async fn boot(&mut self, i: usize) -> flock_actix::Result<()> {
        let origin = self.origin;
        let clock: Arc<dyn Fn() -> u64 + Send + Sync> = Arc::new(move || {
            EPOCH_MS + u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
        });
        let seeds = if i == 0 { vec![] } else { vec![addr(0)] };
        let node = Flock::builder(format!("sim{i}"))
            .listen(addr(i))
            .cookie(COOKIE)
            .seeds(seeds)
            .network(Arc::new(self.net.clone()))
            .arbiters(0)
            .configure(|c| {
                c.wall_clock = Some(clock);
                c.service_threads = false;
            })
            .bird::<Sink>()
            .start()
            .await?;
        self.nodes.push(node);
        Ok(())
    }

    /// (frames, bytes) written since the last call, by every node.
    fn take_tally(&self) -> (u64, u64) {
        let mut t = self.net.tally.lock().unwrap_or_else(|e| e.into_inner());
        let sum = t.values().fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2));
        t.clear();
        sum
    }

    /// Waits until every node sees `n` members up; the cluster time it took.
    async fn agree_on(&self, n: usize) -> Option<f64> {
        self.until_every_node(Duration::from_millis(50), |node| async move {
            node.up_count().await.unwrap_or(0) == n
        })
        .await
    }

    /// Waits until every node's registry lists `name`.
    async fn everyone_knows(&self, name: &str) -> Option<f64> {
        self.until_every_node(Duration::from_millis(20), |node| async move {
            let birds = node.birds().await.unwrap_or_default();
            birds.iter().any(|(b, _)| b == name)
        })
        .await
    }

    /// Polls every `every` (at most [`PHASE`]) until `holds` is true of
    /// every node; the cluster time it took, `None` past the limit.
    async fn until_every_node<F, Fut>(&self, every: Duration, holds: F) -> Option<f64>
    where
        F: Fn(Flock) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let t = Instant::now();
        loop {
            let mut all = true;
            for node in &self.nodes {
                if !holds(node.clone()).await {
                    all = false;
                    break;
                }
            }
            if all {
                return Some(t.elapsed().as_secs_f64() * 1e3);
            }
            if t.elapsed() > PHASE {
                return None;
            }
            sleep(every).await;
        }
    }
}

async fn measure(n: usize) -> Figures {
    let real = std::time::Instant::now();
    tokio::time::pause();
    let mut c = Cluster {
        net: CountingNetwork::over(Arc::new(MemoryNetwork::new())),
        origin: Instant::now(),
        nodes: Vec::new(),
    };
    let mut f = Figures::default();
    let stalled = |phase: &str| Some(phase.to_owned());
    let formed = Instant::now();
    for i in 0..n {
        if let Err(e) = c.boot(i).await {
            f.stalled = Some(format!("boot sim{i}: {e}"));
            return f;
        }
    }
    if c.agree_on(n).await.is_none() {
        f.stalled = stalled("formation");
        return f;
    }
    // From the first boot: the nodes boot one after another in cluster time.
    f.form_ms = formed.elapsed().as_secs_f64() * 1e3;
    sleep(Duration::from_secs(2)).await;

    c.take_tally();
    sleep(IDLE).await;
    let (frames, bytes) = c.take_tally();
    let per = (n as f64) * IDLE.as_secs_f64();
    (f.idle_frames_per_node_s, f.idle_bytes_per_node_s) = (frames as f64 / per, bytes as f64 / per);

    let started = c.nodes[0].start::<Sink>("sim-bird", 0).await;
    if started.is_err() {
        f.stalled = Some(format!("start: {started:?}"));
        return f;
    }
    let t = Instant::now();
    let Some(_) = c.everyone_knows("sim-bird").await else {
        f.stalled = stalled("one start");
        return f;
    };
    f.start_ms = t.elapsed().as_secs_f64() * 1e3;
    // Count what the start cost, heartbeats of the same span excluded.
    sleep(Duration::from_secs(1)).await;
    let span = t.elapsed().as_secs_f64();
    let (_, bytes) = c.take_tally();
    f.start_bytes_per_node = bytes as f64 / n as f64 - f.idle_bytes_per_node_s * span;

    let t = Instant::now();
    if let Err(e) = c.boot(n).await {
        f.stalled = Some(format!("join: {e}"));
        return f;
    }
    let Some(ms) = c.agree_on(n + 1).await else {
        f.stalled = stalled("join");
        return f;
    };
    f.join_ms = ms;
    sleep(Duration::from_secs(1)).await;
    let span = t.elapsed().as_secs_f64();
    let (_, bytes) = c.take_tally();
    f.join_bytes_per_node = bytes as f64 / (n + 1) as f64 - f.idle_bytes_per_node_s * span;

    let t = Instant::now();
    let leaver = c.nodes.pop().expect("the joiner");
    let _ = leaver.leave().await;
    let Some(ms) = c.agree_on(n).await else {
        f.stalled = stalled("leave");
        return f;
    };
    f.leave_ms = ms;
    sleep(Duration::from_secs(1)).await;
    let span = t.elapsed().as_secs_f64();
    let (_, bytes) = c.take_tally();
    f.leave_bytes_per_node = bytes as f64 / n as f64 - f.idle_bytes_per_node_s * span;

    for node in &c.nodes {
        node.shutdown();
    }
    f.real_s = real.elapsed().as_secs_f64();
    f
}

pub fn sim_nodes() -> Vec<Row> {
    let mut rows = Vec::new();
    for n in sizes() {
        let f = crate::benches::in_system(None, move || measure(n));
        eprintln!("sim_nodes {n}: {f:?}");
        let extra = json!({
            "nodes": n, "real_s": f.real_s, "stalled": f.stalled,
            "idle_bytes_per_node_s": f.idle_bytes_per_node_s,
            "start_ms": f.start_ms, "join_ms": f.join_ms, "leave_ms": f.leave_ms,
        });
        let lay = "one process, in-memory network, paused clock, every node's actors on one thread";
        let row = |name: &str, unit: &str, v: f64, note: &str| {
            Row::new(&format!("sim_nodes_{n}_{name}"), unit, vec![v])
                .no_target("issue #10 target 4 (reported; cluster time)")
                .layout(lay)
                .extra(extra.clone())
                .note(note)
        };
        if let Some(s) = &f.stalled {
            rows.push(row("stalled", "-", f64::NAN, &format!("stalled at: {s}")));
            continue;
        }
        rows.push(row(
            "formation",
            "ms",
            f.form_ms,
            "cluster time from the first node's boot until every node sees all members up",
        ));
        rows.push(row(
            "idle_frames",
            "frames/s/node",
            f.idle_frames_per_node_s,
            "frames each node writes per second when nothing happens",
        ));
        rows.push(row(
            "start_bytes",
            "B/node",
            f.start_bytes_per_node,
            "bytes per node for one start (idle traffic of the span subtracted)",
        ));
        rows.push(row(
            "join_bytes",
            "B/node",
            f.join_bytes_per_node,
            "bytes per node for one node joining (idle traffic subtracted)",
        ));
        rows.push(row(
            "leave_bytes",
            "B/node",
            f.leave_bytes_per_node,
            "bytes per node for one node leaving (idle traffic subtracted)",
        ));
    }
    rows
}
