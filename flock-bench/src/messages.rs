//! The message rows: local calls, remote call latency, 64 concurrent callers
//! and one-way casts. Every remote row measures three systems in the same
//! round, in an order that rotates from round to round: flock-actix, the
//! flock-frame baseline and the raw-bytes floor (see `raw.rs`), all with the
//! same CPU pinning. Round 0 is a warm-up and is discarded.

use crate::Row;
use crate::benches::{
    in_system, layout, names, node, pct, rounds, scale, spawn_node, start_birds, sweep, wait_up,
};
use crate::birds::{Cast32, Ping, Sink};
use crate::procs::{Child, cpus};
use crate::raw::{Client, FlockFrames, Protocol, RawBytes};
use flock_actix::prelude::*;
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const FRAMES: &str = FlockFrames::NAME;
const FLOOR: &str = RawBytes::NAME;

/// `n` calls through `call`, one at a time: (mean ns per call over an
/// untimed loop, then p50 and p99 in ns of a second, per-call timed loop).
/// The mean carries no clock overhead; the percentiles carry the same
/// ≈ 2 clock reads per call on both sides.
async fn local_pass<F, Fut>(n: usize, call: F) -> (f64, f64, f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Instant::now();
    for _ in 0..n {
        call().await;
    }
    let mean = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call().await;
        lat.push(t.elapsed());
    }
    (mean, pct(&mut lat, 0.5) * 1e3, pct(&mut lat, 0.99) * 1e3)
}

/// Samples of one system over the measured rounds.
#[derive(Default)]
struct Samples {
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
}

pub fn local_call() -> Vec<Row> {
    let mut rows = Vec::new();
    // The node default spreads birds over one arbiter per CPU, so the caller
    // (this thread) and the bird are on different threads; arbiters(0) puts
    // the bird on the caller's thread.
    let variants: [(Option<usize>, &str, usize, f64, &str); 2] = [
        (
            None,
            "local_call",
            scale(20_000),
            1.3,
            "default arbiters: bird on a node arbiter, caller on another thread; actix actor on an Arbiter",
        ),
        (
            Some(0),
            "local_call_same_thread",
            scale(100_000),
            1.1,
            "arbiters(0): bird on the caller's thread; actix actor on the caller's thread",
        ),
    ];
    for (arbiters, bench, n, limit, lay) in variants {
        let runs = rounds(5);
        let (f, b) = in_system(None, move || async move {
            let flock = node("local@127.0.0.1", 1, arbiters, vec![]).await;
            flock.start::<Sink>("b0", 0).await.expect("start");
            let addr = flock.addr::<Sink>("b0");
            let t = Instant::now();
            while addr.send(Ping).await.is_err() {
                assert!(t.elapsed() < Duration::from_secs(10));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let arbiter = Arbiter::new();
            let plain = if arbiters == Some(0) {
                Sink::create(|_| Sink { n: 0, bird: false })
            } else {
                Sink::start_in_arbiter(&arbiter.handle(), |_| Sink { n: 0, bird: false })
            };
            let (mut f, mut b) = (Samples::default(), Samples::default());
            for r in 0..=runs {
                for k in 0..2 {
                    let (s, out) = if (r + k) % 2 == 0 {
                        let a = addr.clone();
                        let s = local_pass(n, move || {
                            let a = a.clone();
                            async move {
                                a.send(Ping).await.expect("flock call");
                            }
                        })
                        .await;
                        (s, &mut f)
                    } else {
                        let p = plain.clone();
                        let s = local_pass(n, move || {
                            let p = p.clone();
                            async move {
                                p.send(Ping).await.expect("actix call");
                            }
                        })
                        .await;
                        (s, &mut b)
                    };
                    if r > 0 {
                        out.a.push(s.0);
                        out.b.push(s.1);
                        out.c.push(s.2);
                    }
                }
            }
            arbiter.stop();
            flock.shutdown();
            (f, b)
        });
        let row = Row::new(bench, "ns/call", f.a).baseline("actix Addr::send", b.a);
        let ratio = row.ratio.unwrap_or(f64::NAN);
        rows.push(
            row.target(&format!("mean ratio <= {limit}"), ratio <= limit)
                .layout(lay)
                .extra(json!({"calls_per_run": n, "arbiters": arbiters}))
                .note("mean over an untimed loop of sequential calls"),
        );
        for (q, fv, bv) in [("p50", f.b, b.b), ("p99", f.c, b.c)] {
            rows.push(
                Row::new(&format!("{bench}_{q}"), &format!("ns {q}"), fv)
                    .baseline("actix Addr::send", bv)
                    .no_target("none in #12")
                    .layout(lay)
                    .note("per-call clock reads on both sides"),
            );
        }
    }
    rows
}

/// Runs round 0 (a warm-up, discarded) and `runs` measured rounds of three
/// systems, `measure(0..3)`, in an order that rotates from round to round;
/// each system's samples.
pub(crate) async fn rotate<T>(
    runs: usize,
    mut measure: impl AsyncFnMut(usize) -> T,
) -> [Vec<T>; 3] {
    let mut s = [vec![], vec![], vec![]];
    for r in 0..=runs {
        for k in 0..3 {
            let sys = (r + k) % 3;
            let v = measure(sys).await;
            if r > 0 {
                s[sys].push(v);
            }
        }
    }
    s
}

/// Per-call latencies of `n` sequential flock calls over 64 birds.
pub(crate) async fn flock_rtt(addrs: &[FlockAddr<Sink>], n: usize) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        addrs[i % addrs.len()]
            .send(Ping)
            .await
            .expect("remote call");
        lat.push(t.elapsed());
    }
    lat
}

/// A host node with 64 birds, the two baseline servers (all pinned to
/// `server_cpus`) and a weight-0 client node in this process.
pub(crate) struct Remote {
    pub(crate) host: Child,
    pub(crate) servers: (Child, Child),
    pub(crate) flock: Flock,
    pub(crate) birds: Vec<String>,
}

pub(crate) async fn remote(server_cpus: Option<&[usize]>, birds: &[String]) -> Remote {
    let host = spawn_node("host1@127.0.0.1", 1, &[], server_cpus);
    let frames = Child::spawn("frames", &[FlockFrames::SERVER.into()], server_cpus);
    let floor = Child::spawn("rawbytes", &[RawBytes::SERVER.into()], server_cpus);
    let flock = node("client@127.0.0.1", 0, Some(0), vec![host.listen.clone()]).await;
    wait_up(&flock, 2, Duration::from_secs(10)).await;
    start_birds(&flock, birds).await;
    sweep(&flock, birds, 8, Duration::from_secs(10)).await;
    Remote {
        host,
        servers: (frames, floor),
        flock,
        birds: birds.to_vec(),
    }
}

pub fn remote_call_rtt() -> Vec<Row> {
    let n = scale(20_000);
    let runs = rounds(5);
    let mut rows = Vec::new();
    // Every process of a row on the same CPUs: the host and both baseline
    // servers on vCPU 1; the caller on vCPU 1 too ("one vCPU") or on 0.
    let two = cpus() >= 2;
    let configs: Vec<(&str, usize, &str)> = if two {
        vec![
            ("one_vcpu", 1, "every process pinned to vCPU 1"),
            (
                "cross_vcpu",
                0,
                "caller pinned to vCPU 0, host and servers to vCPU 1",
            ),
        ]
    } else {
        vec![("one_vcpu", 0, "one vCPU on this machine")]
    };
    for (tag, caller_cpu, pinning) in configs {
        let (p50, p99, lay) = in_system(Some(vec![caller_cpu]), move || async move {
            let server_cpu = [usize::from(two)];
            let rm = remote(Some(&server_cpu), &names("b", 64)).await;
            let lay = layout(&[&rm.host], pinning);
            let mut fc = Client::<FlockFrames>::connect(&rm.servers.0.listen).await;
            let mut rc = Client::<RawBytes>::connect(&rm.servers.1.listen).await;
            let addrs: Vec<FlockAddr<Sink>> = rm.birds.iter().map(|b| rm.flock.addr(b)).collect();
            let s = rotate(runs, async |sys| {
                let mut lat = match sys {
                    0 => flock_rtt(&addrs, n).await,
                    1 => fc.rtt(n).await,
                    _ => rc.rtt(n).await,
                };
                (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
            })
            .await;
            let p50 = s.clone().map(|v| v.iter().map(|x| x.0).collect::<Vec<_>>());
            let p99 = s.map(|v| v.iter().map(|x| x.1).collect::<Vec<_>>());
            rm.flock.shutdown();
            (p50, p99, lay)
        });
        // Issue #12's targets, against the raw-bytes floor.
        let targets: [(&str, Option<f64>); 2] = match tag {
            "cross_vcpu" => [("p50", Some(1.1)), ("p99", None)],
            _ => [("p50", Some(1.2)), ("p99", Some(1.5))],
        };
        for ([f, b, raw], (q, limit)) in [p50, p99].into_iter().zip(targets) {
            let row = Row::new(&format!("remote_call_rtt_{tag}_{q}"), &format!("us {q}"), f)
                .baseline(FRAMES, b)
                .floor(FLOOR, raw)
                .layout(&lay)
                .extra(json!({"calls_per_run": n, "caller_cpu": caller_cpu, "birds": 64}));
            let x = row.floor_ratio.unwrap_or(f64::NAN);
            rows.push(match limit {
                Some(l) => row.target(&format!("{q} <= {l} x raw bytes"), x <= l),
                None => row.no_target("none in #12"),
            });
        }
    }
    rows
}

pub fn remote_call_concurrent() -> Vec<Row> {
    let total = scale(100_000);
    let conc = 64;
    let runs = rounds(5);
    let (s, lay) = in_system(None, move || async move {
        let rm = remote(None, &names("b", 64)).await;
        let lay = layout(&[&rm.host], "unpinned");
        let mut fc = Client::<FlockFrames>::connect(&rm.servers.0.listen).await;
        let mut rc = Client::<RawBytes>::connect(&rm.servers.1.listen).await;
        let s = rotate(runs, async |sys| match sys {
            0 => flock_concurrent(&rm, conc, total).await,
            1 => fc.concurrent(conc, total).await,
            _ => rc.concurrent(conc, total).await,
        })
        .await;
        rm.flock.shutdown();
        (s, lay)
    });
    let [f, b, raw] = s;
    let row = Row::new("remote_call_concurrent", "calls/s", f)
        .baseline(&format!("{FRAMES}, 64 pipelined on one connection"), b)
        .floor(&format!("{FLOOR}, 64 pipelined on one connection"), raw);
    let ratio = row.ratio.unwrap_or(f64::NAN);
    vec![
        row.target(">= 1.0 x flock frames", ratio >= 1.0)
            .layout(&lay)
            .extra(json!({"callers": conc, "calls_per_run": total})),
    ]
}

/// `total` calls from `conc` concurrent callers; calls/s.
async fn flock_concurrent(rm: &Remote, conc: usize, total: usize) -> f64 {
    let t = Instant::now();
    let left = Rc::new(Cell::new(total));
    let mut tasks = Vec::new();
    for c in 0..conc {
        let a = rm.flock.addr::<Sink>(&rm.birds[c % rm.birds.len()]);
        let left = left.clone();
        tasks.push(tokio::task::spawn_local(async move {
            while left.get() > 0 {
                left.set(left.get() - 1);
                a.send(Ping).await.expect("call");
            }
        }));
    }
    for task in tasks {
        task.await.expect("caller");
    }
    total as f64 / t.elapsed().as_secs_f64()
}

pub fn remote_cast_throughput() -> Vec<Row> {
    let total = scale(500_000);
    let frames_total = scale(2_000_000);
    let floor_total = scale(16_000_000);
    let nbirds = 16;
    let runs = rounds(5);
    let (s, lay) = in_system(None, move || async move {
        let mut rm = remote(None, &names("c", nbirds)).await;
        let lay = layout(&[&rm.host], "unpinned");
        let addrs: Vec<FlockAddr<Sink>> = rm.birds.iter().map(|b| rm.flock.addr(b)).collect();
        let mut fc = Client::<FlockFrames>::connect(&rm.servers.0.listen).await;
        let mut rc = Client::<RawBytes>::connect(&rm.servers.1.listen).await;
        let s = rotate(runs, async |sys| match sys {
            0 => flock_casts(&mut rm.host, &addrs, total).await,
            1 => fc.casts(frames_total, nbirds).await,
            _ => rc.casts(floor_total, nbirds).await,
        })
        .await;
        rm.flock.shutdown();
        (s, lay)
    });
    let [f, b, raw] = s;
    let row = Row::new("remote_cast_throughput", "msg/s", f)
        .baseline(&format!("{FRAMES}, streamed"), b)
        .floor(&format!("{FLOOR}, streamed"), raw);
    let v = row.value;
    vec![
        row.target(">= 4M msg/s", v >= 4e6)
            .layout(&lay)
            .extra(json!({
                "casts_per_run": total, "frames_casts_per_run": frames_total,
                "floor_casts_per_run": floor_total, "birds": nbirds, "payload_bytes": 32,
            })),
    ]
}

/// Sends `total` 32-byte casts round-robin; msg/s until the host counted all.
pub(crate) async fn flock_casts(host: &mut Child, addrs: &[FlockAddr<Sink>], total: usize) -> f64 {
    let payload = vec![7u8; 32];
    let before = host.stats().casts;
    let t = Instant::now();
    for i in 0..total {
        addrs[i % addrs.len()].do_send(Cast32(payload.clone()));
        if i % 1024 == 1023 {
            tokio::task::yield_now().await;
        }
    }
    let target = before + total as u64;
    let limit = Duration::from_secs(120);
    while host.stats().casts < target {
        assert!(
            t.elapsed() < limit,
            "casts not all counted within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    total as f64 / t.elapsed().as_secs_f64()
}
