//! The benchmarks. Each returns rows; every flock figure is measured next to
//! its baseline in the same run, alternating runs so noise hits both.

use crate::birds::{HATCHED, Ping, Sink, rss_bytes};
use crate::messages;
use crate::procs::{Child, pin_current_thread};
use crate::{Row, median, stats};
use flock_actix::prelude::*;
use serde_json::json;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

pub const NAMES: &[&str] = &[
    "local_call",
    "remote_call_rtt",
    "remote_call_concurrent",
    "remote_cast_throughput",
    "spawn_rate",
    "failover_kill",
    "failover_silent",
    "rebalance_join",
    "memory_per_bird",
    "sync_bytes",
    "peer_cast_throughput",
    "placement_rebuild",
    "registry_layout",
    "registry_memory",
    "million_birds",
    "hundred_nodes",
    "rolling_restart",
    "sim_nodes",
];

/// Issue #10's benches, run by `scale`; the long ones are left out of `all`
/// (minutes each at scale 1.0). `smoke` runs them at their smallest size
/// (1k birds, 5 nodes: a few seconds each).
pub const SCALE: &[&str] = &[
    "placement_rebuild",
    "registry_layout",
    "registry_memory",
    "million_birds",
    "hundred_nodes",
    "sim_nodes",
];
pub const LONG: &[&str] = &[
    "million_birds",
    "hundred_nodes",
    "registry_memory",
    "rolling_restart",
    "sim_nodes",
];

/// Why the actix-telepathy row is not measured (see docs/BENCHMARKS.md).
#[cfg(not(feature = "telepathy"))]
pub const TELEPATHY_NOTE: &str = "actix-telepathy rows need `--features telepathy` \
    (a bench-only dependency, ≈ 3 min to build in release here; kept out of the default build and CI)";

/// Set by `smoke`: one warm-up and one measured round, small sizes, short pauses.
pub static SMOKE: AtomicBool = AtomicBool::new(false);

pub(crate) fn smoke() -> bool {
    SMOKE.load(Relaxed)
}

/// Measured rounds (`n`, or 1 in a smoke run); every bench runs one more,
/// round 0, as a warm-up and discards it.
pub(crate) fn rounds(n: usize) -> usize {
    if smoke() { 1 } else { n }
}

/// A settling pause: a tenth of it in a smoke run, where figures do not count.
pub(crate) fn pause(ms: u64) -> Duration {
    Duration::from_millis(if smoke() { ms / 10 } else { ms })
}

/// The arbiters the host processes run: the node's default unless
/// FLOCK_BENCH_HOST_ARBITERS sets a number (an experiment; rows then say so).
fn host_arbiters() -> String {
    std::env::var("FLOCK_BENCH_HOST_ARBITERS").unwrap_or_else(|_| "default".into())
}

/// Whether nodes carry calls and casts on data links (docs/ARCHITECTURE.md
/// §26): the library's default (on since stop 18) unless FLOCK_BENCH_DATA_LINKS
/// says `0` (off) or anything else (on).
pub(crate) fn data_links() -> bool {
    std::env::var("FLOCK_BENCH_DATA_LINKS")
        .map_or(flock_actix::FlockConfig::new("").data_links, |v| v != "0")
}

/// `hosts: default arbiters (2); <pinning>`, from what the hosts reported.
pub(crate) fn layout(hosts: &[&Child], pinning: &str) -> String {
    let mut infos: Vec<&str> = hosts.iter().map(|h| h.info.as_str()).collect();
    infos.dedup();
    format!("hosts: {}; {pinning}", infos.join(" / "))
}

pub(crate) const COOKIE: &str = "bench-cookie";

/// Scale factor for sizes (FLOCK_BENCH_SCALE, default 1.0).
pub(crate) fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("FLOCK_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { 0.01 } else { 1.0 });
    ((n as f64 * s) as usize).max(1)
}

pub fn run(name: &str) -> Vec<Row> {
    match name {
        "local_call" => messages::local_call(),
        "remote_call_rtt" => messages::remote_call_rtt(),
        "remote_call_concurrent" => messages::remote_call_concurrent(),
        "remote_cast_throughput" => messages::remote_cast_throughput(),
        "spawn_rate" => spawn_rate(),
        "failover_kill" => failover(false),
        "failover_silent" => failover(true),
        "rebalance_join" => rebalance_join(),
        "memory_per_bird" => memory_per_bird(),
        "sync_bytes" => sync_bytes(),
        "placement_rebuild" => crate::scale::placement_rebuild(),
        "registry_layout" => crate::layout::registry_layout(),
        "registry_memory" => crate::scale::registry_memory(),
        "million_birds" => crate::scale::million_birds(),
        "hundred_nodes" => crate::nodes::hundred_nodes(),
        "rolling_restart" => crate::rolling::rolling_restart(),
        "sim_nodes" => crate::simnodes::sim_nodes(),
        #[cfg(feature = "telepathy")]
        "peer_cast_throughput" => crate::telepathy::peer_rows(),
        #[cfg(not(feature = "telepathy"))]
        "peer_cast_throughput" => {
            vec![Row::new("peer_cast_throughput", "msg/s", vec![]).note(TELEPATHY_NOTE)]
        }
        _ => vec![],
    }
}

/// Runs `f` in a fresh thread (pinned to `cpus` if given) inside its own
/// actix System.
pub(crate) fn in_system<F, Fut, R>(cpus: Option<Vec<usize>>, f: F) -> R
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R>,
    R: Send + 'static,
{
    std::thread::spawn(move || {
        if let Some(c) = cpus {
            assert!(pin_current_thread(&c), "cannot pin the caller to {c:?}");
        }
        let sys = actix::System::new();
        let r = sys.block_on(f());
        System::current().stop();
        r
    })
    .join()
    .expect("bench thread")
}

// ---------------------------------------------------------------- children

/// The child node: `__node NAME WEIGHT ARBITERS|default SEEDS(comma list or -)
/// [OPTIONS]`, OPTIONS a comma list of `count` (count frames written, for the
/// largest frame) and `alloc` (count live heap bytes, reported in `STATS`).
/// Answers `names` on stdin with `NAMES <birds in its registry view>` and
/// `members NAME` with `MEMBERS <up> <NAME up: 0|1> <downs> <links lost>
/// <frames refused> <largest refused> <largest written>`; on `leave` it
/// leaves the cluster gracefully, prints `LEFT` and exits.
pub fn node_main(args: &[String]) {
    let opts = args.get(4).cloned().unwrap_or_default();
    if opts.split(',').any(|o| o == "alloc") {
        crate::tap::ALLOC_ON.store(true, Relaxed);
    }
    let (names_tx, mut names_rx) = tokio::sync::mpsc::channel::<String>(4);
    crate::procs::serve_stdin(Some(names_tx));
    let name = args[0].clone();
    let weight: u32 = args[1].parse().expect("weight");
    let arbiters: Option<usize> = args[2].parse().ok();
    let seeds: Vec<String> = if args[3] == "-" {
        vec![]
    } else {
        args[3].split(',').map(str::to_owned).collect()
    };
    let sys = actix::System::new();
    sys.block_on(async move {
        let mut b = Flock::builder(name)
            .listen("127.0.0.1:0")
            .seeds(seeds)
            .cookie(COOKIE)
            .weight(weight)
            .bird::<Sink>()
            .bird::<crate::rolling::Counter>();
        if let Some(n) = arbiters {
            b = b.arbiters(n);
        }
        b = b.data_links(data_links());
        let net = crate::counting::CountingNetwork::default();
        let max_written = net.max.clone();
        if opts.split(',').any(|o| o == "count") {
            b = b.network(std::sync::Arc::new(net));
        }
        let flock = b.start().await.expect("node starts");
        let n = flock.config().arbiters;
        let links = if data_links() { ", data links" } else { "" };
        let layout = match arbiters {
            Some(_) => format!("arbiters({n}){links}"),
            None => format!("default arbiters ({n}){links}"),
        };
        println!("LISTEN {} {layout}", flock.listen_addr());
        let f = flock.clone();
        actix::spawn(async move {
            while let Some(cmd) = names_rx.recv().await {
                if cmd == "leave" {
                    // `rolling_restart`: a graceful leave, then exit.
                    let _ = f.leave().await;
                    f.shutdown();
                    // The links close gracefully (the writers flush, then
                    // linger at most 1 s): replies to calls that arrived
                    // before the leave completed are still delivered.
                    tokio::time::sleep(Duration::from_millis(1_000)).await;
                    println!("LEFT");
                    std::process::exit(0);
                } else if let Some(who) = cmd.strip_prefix("members") {
                    let who = who.trim();
                    let m = f.members().await.unwrap_or_default();
                    let up =
                        |m: &&flock_actix::MemberView| m.status == flock_actix::MemberState::Up;
                    let c = crate::tap::counters();
                    println!(
                        "MEMBERS {} {} {} {} {} {} {}",
                        m.iter().filter(up).count(),
                        u8::from(m.iter().filter(up).any(|m| m.name == who)),
                        c[0],
                        c[1],
                        c[2],
                        c[3],
                        max_written.load(Relaxed)
                    );
                } else {
                    // A count, not a listing: a poll of a million-name
                    // registry must not be a million strings on the
                    // replica's arbiter that is busy receiving them.
                    let n = f.bird_count().await.unwrap_or(0);
                    println!("NAMES {n}");
                }
            }
        });
        // Keep the handle alive for the life of the process.
        std::mem::forget(flock);
    });
    let _ = sys.run();
}

/// `__mem_actix N`: RSS growth of N plain actix actors (the same `Sink`
/// type) on one arbiter, their addresses kept in a Vec.
pub fn mem_actix_main(args: &[String]) {
    crate::procs::serve_stdin(None);
    crate::tap::ALLOC_ON.store(true, Relaxed);
    let n: usize = args[0].parse().expect("n");
    println!("LISTEN -");
    let sys = actix::System::new();
    sys.block_on(async move {
        let arbiter = Arbiter::new();
        let ping = Sink::start_in_arbiter(&arbiter.handle(), |_| Sink { n: 0, bird: false });
        let _ = ping.send(Ping).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_bytes();
        let heap_before = crate::tap::HEAP.load(Relaxed);
        if let Some(m) = crate::birds::mallinfo() {
            eprintln!("ACTIX MALLINFO pid {} rss {before} {m}", std::process::id());
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            addrs.push(Sink::start_in_arbiter(&arbiter.handle(), |_| Sink {
                n: 0,
                bird: false,
            }));
        }
        // Every actor answers once, so all are really running.
        for a in addrs.iter().step_by(1) {
            let _ = a.send(Ping).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = rss_bytes();
        let heap_after = crate::tap::HEAP.load(Relaxed);
        if let Some(m) = crate::birds::mallinfo() {
            eprintln!("ACTIX MALLINFO pid {} rss {after} {m}", std::process::id());
        }
        println!("MEM {before} {after} {heap_before} {heap_after}");
        std::mem::forget(addrs);
    });
}

pub(crate) fn spawn_node(
    name: &str,
    weight: u32,
    seeds: &[String],
    cpus: Option<&[usize]>,
) -> Child {
    spawn_node_opts(name, weight, seeds, cpus, "-")
}

/// [`spawn_node`] with [`node_main`]'s OPTIONS (`count`, `alloc`).
pub(crate) fn spawn_node_opts(
    name: &str,
    weight: u32,
    seeds: &[String],
    cpus: Option<&[usize]>,
    opts: &str,
) -> Child {
    let seeds = if seeds.is_empty() {
        "-".to_owned()
    } else {
        seeds.join(",")
    };
    Child::spawn(
        name,
        &[
            "__node".into(),
            name.into(),
            weight.to_string(),
            host_arbiters(),
            seeds,
            opts.into(),
        ],
        cpus,
    )
}

/// `k` host children `host1..hostk`, each seeded with the first.
fn spawn_hosts(k: usize, cpus: Option<&[usize]>) -> Vec<Child> {
    let mut v: Vec<Child> = Vec::new();
    for i in 1..=k {
        let seeds: Vec<String> = v
            .first()
            .map(|c| vec![c.listen.clone()])
            .unwrap_or_default();
        v.push(spawn_node(&format!("host{i}@127.0.0.1"), 1, &seeds, cpus));
    }
    v
}

/// A node in this process; `arbiters: None` keeps the node's default.
pub(crate) async fn node(
    name: &str,
    weight: u32,
    arbiters: Option<usize>,
    seeds: Vec<String>,
) -> Flock {
    let mut b = Flock::builder(name)
        .listen("127.0.0.1:0")
        .seeds(seeds)
        .cookie(COOKIE)
        .weight(weight)
        .bird::<Sink>();
    if let Some(n) = arbiters {
        b = b.arbiters(n);
    }
    b.data_links(data_links())
        .start()
        .await
        .expect("bench node starts")
}

/// Three host processes, a client node in this process (run `r`), and `n`
/// birds named `prefix0..` started through it and born on the hosts.
async fn three_hosts_with_birds(
    r: usize,
    prefix: &str,
    n: usize,
) -> (Vec<Child>, Flock, Vec<String>) {
    let mut hosts = spawn_hosts(3, None);
    let flock = node(
        &format!("client{r}@127.0.0.1"),
        0,
        Some(0),
        vec![hosts[0].listen.clone()],
    )
    .await;
    wait_up(&flock, 4, Duration::from_secs(10)).await;
    let birds = names(prefix, n);
    start_birds(&flock, &birds).await;
    let limit = Duration::from_secs(60);
    let t = Instant::now();
    loop {
        let sum: i64 = hosts.iter_mut().map(|h| h.stats().live).sum();
        if sum >= n as i64 {
            break;
        }
        assert!(t.elapsed() < limit, "births not done");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (hosts, flock, birds)
}

pub(crate) async fn wait_up(flock: &Flock, n: usize, limit: Duration) {
    let t = Instant::now();
    while flock.up_count().await.unwrap_or(0) < n {
        assert!(
            t.elapsed() < limit,
            "cluster of {n} not up within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls `Ping` on every name with `conc` concurrent callers, retrying each
/// until it answers; the time until the last answered.
pub(crate) async fn sweep(
    flock: &Flock,
    names: &[String],
    conc: usize,
    limit: Duration,
) -> Duration {
    let t = Instant::now();
    let names: Rc<Vec<String>> = Rc::new(names.to_vec());
    let next = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (names, next, flock) = (names.clone(), next.clone(), flock.clone());
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= names.len() {
                    return true;
                }
                next.set(i + 1);
                let a = flock.addr::<Sink>(&names[i]);
                loop {
                    if a.send_timeout(Ping, Duration::from_secs(2)).await.is_ok() {
                        break;
                    }
                    if t.elapsed() > limit {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    for task in tasks {
        assert!(
            task.await.unwrap_or(false),
            "sweep not done within {limit:?}"
        );
    }
    t.elapsed()
}

/// Starts the birds with `start_many`, 10k per registry delta.
pub(crate) async fn start_birds(flock: &Flock, names: &[String]) {
    for chunk in names.chunks(10_000) {
        let results = flock
            .start_many::<Sink>(chunk.iter().map(|n| (n.clone(), 0)))
            .await
            .expect("start_many");
        assert!(results.iter().all(Result::is_ok), "every start recorded");
    }
}

pub(crate) fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

pub(crate) fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

// ---------------------------------------------------------------- cluster ops

/// 100k birds started with `start_many` (10k per call) through one of three
/// host nodes. Two rows from the same rounds: `registration_rate` (names/s
/// until every name is in every node's registry view and every bird hatched)
/// and `spawn_rate` (seconds until every bird also answered a call).
fn spawn_rate() -> Vec<Row> {
    let n = scale(100_000);
    let runs = rounds(5);
    let r = in_system(None, move || async move {
        let (mut run_t, mut ans_t, mut reg_t, mut vis_t) = (vec![], vec![], vec![], vec![]);
        let mut lay = String::new();
        for r in 0..=runs {
            let mut hosts = spawn_hosts(2, None);
            let arbiters = host_arbiters().parse().ok();
            let flock = node(
                &format!("host0-{r}@127.0.0.1"),
                1,
                arbiters,
                vec![hosts[0].listen.clone()],
            )
            .await;
            lay = format!(
                "this process (arbiters {}) + {}",
                flock.config().arbiters,
                layout(&hosts.iter().collect::<Vec<_>>(), "unpinned")
            );
            wait_up(&flock, 3, Duration::from_secs(10)).await;
            let birds = names(&format!("s{r}-"), n);
            let h0 = HATCHED.load(Relaxed);
            let t = Instant::now();
            start_birds(&flock, &birds).await;
            let reg = t.elapsed().as_secs_f64();
            let limit = Duration::from_secs(60);
            loop {
                let mut sum = HATCHED.load(Relaxed) - h0;
                for h in hosts.iter_mut() {
                    sum += h.stats().hatched;
                }
                if sum >= n as u64 {
                    break;
                }
                assert!(t.elapsed() < limit, "births not done within {limit:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let run = t.elapsed().as_secs_f64();
            // Every name in every node's view (polled only once births are
            // done, so the polling does not slow the births).
            loop {
                let mut seen = flock.birds().await.map_or(0, |v| v.len());
                for h in hosts.iter_mut() {
                    seen = seen.min(h.names());
                }
                if seen >= n {
                    break;
                }
                assert!(t.elapsed() < limit, "names not visible within {limit:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let vis = t.elapsed().as_secs_f64();
            sweep(&flock, &birds, 128, limit).await;
            if r > 0 {
                reg_t.push(reg);
                run_t.push(run);
                vis_t.push(vis);
                ans_t.push(t.elapsed().as_secs_f64());
            }
            flock.shutdown();
            drop(hosts);
        }
        (run_t, ans_t, reg_t, vis_t, lay)
    });
    let (run_t, ans_t, reg_t, vis_t, lay) = r;
    let v = median(&ans_t);
    let rate: Vec<f64> = vis_t.iter().map(|s| n as f64 / s).collect();
    let rv = median(&rate);
    vec![
        Row::new("registration_rate", "names/s", rate)
            .target(">= 200k names/s", rv >= 200_000.0)
            .layout(&lay)
            .extra(json!({"birds": n, "nodes": 3, "visible_and_started_s": stats(&vis_t),
                "start_many_returned_s": stats(&reg_t)}))
            .note("start_many (10k per call) on one of 3 host nodes until every name is in every node's registry view and every bird hatched"),
        Row::new("spawn_rate", "s", ans_t.clone())
            .target(&format!("{n} birds <= 2 s"), v <= 2.0)
            .layout(&lay)
            .extra(json!({"birds": n, "nodes": 3,
                "registered_s": stats(&reg_t), "registered_samples": reg_t,
                "all_running_s": stats(&run_t), "all_running_samples": run_t,
                "all_answered_s": stats(&ans_t),
                "starts_per_s_to_answered": n as f64 / v}))
            .note("value = from the first start to every bird answering a Ping (128 concurrent callers); the answer sweep is included"),
    ]
}

fn failover(silent: bool) -> Vec<Row> {
    let n = scale(10_000);
    let runs = rounds(3);
    let bench = if silent {
        "failover_silent"
    } else {
        "failover_kill"
    };
    let r = in_system(None, move || async move {
        let (mut ans, mut view, mut first, mut sweep_ref, mut share) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut lay = String::new();
        for r in 0..=runs {
            let (hosts, flock, birds) = three_hosts_with_birds(r, &format!("f{r}-"), n).await;
            lay = layout(&hosts.iter().collect::<Vec<_>>(), "unpinned");
            let limit = Duration::from_secs(60);
            let victim_name = hosts[2].name.clone();
            let victims: Vec<String> = birds
                .iter()
                .filter(|b| flock.owner_of(b).ok().as_deref() == Some(victim_name.as_str()))
                .cloned()
                .collect();
            share.push(victims.len() as f64 / n as f64);
            // Reference: the same sweep with nothing failing.
            sweep_ref.push(sweep(&flock, &victims, 128, limit).await.as_secs_f64());
            let probe = victims[0].clone();
            let t0 = Instant::now();
            hosts[2].signal(if silent { libc::SIGSTOP } else { libc::SIGKILL });
            // Time until this node's view moved the probe bird elsewhere,
            // measured alongside the sweep.
            let (f2, p2) = (flock.clone(), probe.clone());
            let vt = tokio::task::spawn_local(async move {
                loop {
                    if f2.owner_of(&p2).ok().as_deref() != Some(victim_name.as_str()) {
                        return t0.elapsed();
                    }
                    if t0.elapsed() > Duration::from_secs(30) {
                        return t0.elapsed();
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            });
            let (f3, p3) = (flock.clone(), probe.clone());
            let ft = tokio::task::spawn_local(async move {
                let a = f3.addr::<Sink>(&p3);
                loop {
                    if a.send_timeout(Ping, Duration::from_secs(2)).await.is_ok()
                        || t0.elapsed() > Duration::from_secs(30)
                    {
                        return t0.elapsed();
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            });
            sweep(&flock, &victims, 128, limit).await;
            ans.push(t0.elapsed().as_secs_f64());
            view.push(vt.await.expect("view").as_secs_f64());
            first.push(ft.await.expect("first").as_secs_f64());
            if silent {
                hosts[2].signal(libc::SIGCONT);
            }
            flock.shutdown();
            drop(hosts);
        }
        for v in [&mut ans, &mut view, &mut first, &mut sweep_ref, &mut share] {
            v.remove(0); // the warm-up round
        }
        (ans, view, first, sweep_ref, share, lay)
    });
    let (ans, view, first, sweep_ref, share, lay) = r;
    let (target, lim) = if silent {
        ("median <= 2 s", 2.0)
    } else {
        ("median <= 0.1 s", 0.1)
    };
    let v = median(&ans);
    vec![Row::new(bench, "s", ans).target(target, v <= lim).layout(&lay).extra(json!({
        "birds": n, "nodes": 3, "victim_share": share,
        "view_changed_s": stats(&view), "view_changed_samples": view,
        "first_victim_bird_answered_s": stats(&first), "first_samples": first,
        "healthy_sweep_of_same_birds_s": stats(&sweep_ref), "healthy_sweep_samples": sweep_ref,
    })).note("value = signal to every bird of the victim answering again (128 concurrent callers from a client node, retried); healthy_sweep is the same sweep before the failure")]
}

fn rebalance_join() -> Vec<Row> {
    let n = scale(10_000);
    let runs = rounds(3);
    let r = in_system(None, move || async move {
        let (mut frac, mut settle, mut settle_from_up) = (vec![], vec![], vec![]);
        let mut lay = String::new();
        for r in 0..=runs {
            let (mut hosts, flock, birds) = three_hosts_with_birds(r, &format!("j{r}-"), n).await;
            lay = layout(&hosts.iter().collect::<Vec<_>>(), "unpinned");
            let limit = Duration::from_secs(60);
            let before: Vec<String> = birds
                .iter()
                .map(|b| flock.owner_of(b).expect("owner"))
                .collect();
            let t0 = Instant::now();
            let seed = hosts[0].listen.clone();
            hosts.push(spawn_node("host4@127.0.0.1", 1, &[seed], None));
            wait_up(&flock, 5, Duration::from_secs(10)).await;
            let up = t0.elapsed();
            let after: Vec<String> = birds
                .iter()
                .map(|b| flock.owner_of(b).expect("owner"))
                .collect();
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            frac.push(moved as f64 / n as f64);
            let want: Vec<i64> = hosts
                .iter()
                .map(|h| after.iter().filter(|o| **o == h.name).count() as i64)
                .collect();
            loop {
                let live: Vec<i64> = hosts.iter_mut().map(|h| h.stats().live).collect();
                if live == want {
                    break;
                }
                assert!(
                    t0.elapsed() < limit,
                    "rebalance not settled: {live:?} vs {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            settle.push(t0.elapsed().as_secs_f64());
            settle_from_up.push((t0.elapsed() - up).as_secs_f64());
            flock.shutdown();
            drop(hosts);
        }
        for v in [&mut frac, &mut settle, &mut settle_from_up] {
            v.remove(0); // the warm-up round
        }
        (frac, settle, settle_from_up, lay)
    });
    let (frac, settle, from_up, lay) = r;
    let f = median(&frac);
    let s = median(&settle);
    vec![
        Row::new("rebalance_join", "fraction moved", frac.clone())
            .target("<= 1.05 x 0.25 = 0.2625", f <= 0.2625)
            .layout(&lay)
            .extra(json!({"birds": n, "ideal": 0.25, "ratio_to_ideal": f / 0.25})),
        Row::new("rebalance_join_settle", "s", settle)
            .target("<= 2 s", s <= 2.0)
            .layout(&lay)
            .extra(json!({"birds": n, "after_client_saw_4_hosts_s": stats(&from_up)}))
            .note("from spawning the 4th node process to every node running exactly the birds it owns (counted in each process)"),
    ]
}

// ---------------------------------------------------------------- memory & bytes

fn memory_per_bird() -> Vec<Row> {
    let n = scale(200_000);
    let runs = rounds(2);
    let r = in_system(None, move || async move {
        let (mut host_b, mut replica_b, mut actix_b, mut reg_s) = (vec![], vec![], vec![], vec![]);
        // Live heap bytes per bird (counting allocator), host and baseline.
        let (mut host_heap, mut actix_heap) = (vec![], vec![]);
        let mut lay = String::new();
        for r in 0..=runs {
            let mut host = spawn_node_opts("memhost@127.0.0.1", 1, &[], None, "alloc");
            lay = layout(&[&host], "unpinned");
            let mut client = spawn_node("memclient@127.0.0.1", 0, &[host.listen.clone()], None);
            let flock = node(
                &format!("driver{r}@127.0.0.1"),
                0,
                Some(0),
                vec![host.listen.clone()],
            )
            .await;
            wait_up(&flock, 3, Duration::from_secs(10)).await;
            tokio::time::sleep(pause(300)).await;
            let (hs0, c0) = (host.stats(), client.stats().rss);
            let h0 = hs0.rss;
            let birds = names("m", n);
            let t = Instant::now();
            start_birds(&flock, &birds).await;
            reg_s.push(t.elapsed().as_secs_f64());
            let limit = Duration::from_secs(120);
            loop {
                let st = host.stats();
                if st.live >= n as i64 {
                    break;
                }
                assert!(
                    t.elapsed() < limit,
                    "births not done within {limit:?} (round {r}): {st:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Let replication and acknowledgements finish: the delta buffers
            // empty once every peer acknowledged, and received deltas kept
            // for relaying expire after 5 s.
            tokio::time::sleep(pause(6000)).await;
            let (hs1, c1) = (host.stats(), client.stats().rss);
            let h1 = hs1.rss;
            host_b.push((h1 as f64 - h0 as f64) / n as f64);
            host_heap.push((hs1.heap - hs0.heap) as f64 / n as f64);
            replica_b.push((c1 as f64 - c0 as f64) / n as f64);
            flock.shutdown();
            drop((host, client));
            let mut m = Child::spawn("mem_actix", &["__mem_actix".into(), n.to_string()], None);
            let s = m.expect("MEM ", Duration::from_secs(120));
            let v: Vec<f64> = s
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0.0))
                .collect();
            actix_b.push((v[1] - v[0]) / n as f64);
            actix_heap.push((v.get(3).unwrap_or(&0.0) - v.get(2).unwrap_or(&0.0)) / n as f64);
        }
        for v in [
            &mut host_b,
            &mut replica_b,
            &mut actix_b,
            &mut reg_s,
            &mut host_heap,
            &mut actix_heap,
        ] {
            v.remove(0); // the warm-up round
        }
        (
            host_b, replica_b, actix_b, reg_s, lay, host_heap, actix_heap,
        )
    });
    let (host_b, replica_b, actix_b, reg_s, lay, host_heap, actix_heap) = r;
    let overhead: Vec<f64> = host_b.iter().zip(&actix_b).map(|(h, a)| h - a).collect();
    let o = median(&overhead);
    let heap_over: Vec<f64> = host_heap
        .iter()
        .zip(&actix_heap)
        .map(|(h, a)| h - a)
        .collect();
    let ho = median(&heap_over);
    vec![
        Row::new("memory_per_bird", "B/bird", host_b)
            .baseline("plain actix actor (same type, Addr kept)", actix_b.clone())
            .target("overhead <= 300 B/bird", o <= 300.0)
            .layout(&lay)
            .extra(json!({"birds": n, "overhead_b_per_bird": stats(&overhead),
                "overhead_samples": overhead, "starts_s": reg_s}))
            .note("RSS growth of the hosting node process per idle bird"),
        Row::new("memory_per_bird_heap", "B/bird", host_heap)
            .baseline("plain actix actor (same type, Addr kept)", actix_heap)
            .target("overhead <= 300 B/bird", ho <= 300.0)
            .layout(&lay)
            .extra(json!({"birds": n, "overhead_b_per_bird": stats(&heap_over),
                "overhead_samples": heap_over}))
            .note("live heap bytes (counting allocator) of the hosting node per idle bird, registry replica included, against the same count for plain actix actors"),
        Row::new("memory_registry_replica", "B/bird", replica_b)
            .extra(json!({"birds": n}))
            .note("RSS growth of a weight-0 node (registry CRDT replica only, no birds) per bird"),
    ]
}

fn sync_bytes() -> Vec<Row> {
    let sizes = [0usize, scale(1_000), scale(10_000), scale(50_000)];
    // One more sample per size than reported: the first is a warm-up.
    let per_size = rounds(5) + 1;
    let r = in_system(None, move || async move {
        let net = crate::counting::CountingNetwork::default();
        let tally = net.tally.clone();
        let mk = |name: &str, seeds: Vec<String>| {
            let net = net.clone();
            let name = name.to_owned();
            async move {
                Flock::builder(name)
                    .listen("127.0.0.1:0")
                    .seeds(seeds)
                    .cookie(COOKIE)
                    .arbiters(0)
                    .network(std::sync::Arc::new(net))
                    .bird::<Sink>()
                    .start()
                    .await
                    .expect("node")
            }
        };
        let a = mk("sa@127.0.0.1", vec![]).await;
        let seed = a.listen_addr().to_owned();
        let b = mk("sb@127.0.0.1", vec![seed.clone()]).await;
        let c = mk("sc@127.0.0.1", vec![seed]).await;
        wait_up(&a, 3, Duration::from_secs(10)).await;
        wait_up(&b, 3, Duration::from_secs(10)).await;
        wait_up(&c, 3, Duration::from_secs(10)).await;
        let mut have = 0usize;
        let mut out = Vec::new();
        let sync_bytes = |t: &crate::counting::Tally| -> (u64, u64) {
            let t = t.lock().unwrap_or_else(|e| e.into_inner());
            t.iter()
                .filter(|(k, _)| k.starts_with("Sync"))
                .fold((0, 0), |acc, (_, v)| (acc.0 + v.0, acc.1 + v.1))
        };
        for &size in &sizes {
            while have < size {
                a.start::<Sink>(&format!("x{have:07}"), 0)
                    .await
                    .expect("start");
                have += 1;
            }
            // Wait until every replica holds them, then for quiet.
            let t = Instant::now();
            for f in [&a, &b, &c] {
                while f.birds().await.map(|v| v.len()).unwrap_or(0) < have {
                    assert!(t.elapsed() < Duration::from_secs(60), "replication");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            tokio::time::sleep(pause(1000)).await;
            let mut samples = Vec::new();
            let mut detail = serde_json::Map::new();
            for k in 0..per_size {
                tally.lock().unwrap_or_else(|e| e.into_inner()).clear();
                a.start::<Sink>(&format!("y{size:07}-{k}"), 0)
                    .await
                    .expect("start");
                have += 1;
                tokio::time::sleep(pause(900)).await;
                let (frames, bytes) = sync_bytes(&tally);
                if k > 0 {
                    samples.push(bytes as f64);
                }
                if k == 1 {
                    for (name, (fr, by)) in tally.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        detail.insert(name.clone(), json!({"frames": fr, "bytes": by}));
                    }
                    detail.insert("sync_frames".into(), json!(frames));
                }
            }
            out.push((size, samples, detail));
        }
        for f in [&a, &b, &c] {
            f.shutdown();
        }
        out
    });
    let mut rows = Vec::new();
    let values: Vec<f64> = r.iter().map(|(_, s, _)| median(s)).collect();
    // "Independent of cluster size": the largest within 15% of the smallest
    // (MessagePack integers grow by a few bytes as counters pass 127/65535).
    let flat = values.iter().copied().fold(f64::MIN, f64::max)
        <= 1.15 * values.iter().copied().fold(f64::MAX, f64::min);
    for (size, samples, detail) in r {
        let v = median(&samples);
        rows.push(
            Row::new(&format!("sync_bytes_n{size}"), "B/start", samples)
                .target("<= 256 B/peer, flat in N", v / 2.0 <= 256.0 && flat)
                .layout("3 nodes in this process, arbiters(0)")
                .extra(json!({"cluster_birds": size, "nodes": 3, "peers": 2,
                    "bytes_per_peer": v / 2.0, "frames_in_window_first_sample": detail}))
                .note("same-length bird names; all Sync* frames (deltas + acks, 4-byte headers included) written by all 3 nodes in 0.9 s after one start on node A; target applied per peer (total / 2)"),
        );
    }
    rows
}
