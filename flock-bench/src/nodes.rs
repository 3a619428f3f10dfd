//! Issue #10 target 3: a hundred node processes on this machine
//! (`FLOCK_BENCH_NODES`, default 100): formation time, idle CPU of the whole
//! cluster, and the time until every node drops a SIGKILLed and a
//! SIGSTOPped node. Every phase is bounded; a phase that does not finish is
//! reported with how far it got.

use crate::Row;
use crate::benches::{pause, smoke, spawn_node};
use crate::procs::{Child, Members};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long one phase may take.
const PHASE: Duration = Duration::from_secs(60);
/// How long one poll round waits for the slowest node's answer.
const ROUND: Duration = Duration::from_secs(5);

fn node_count() -> usize {
    std::env::var("FLOCK_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { 5 } else { 100 })
        .max(3)
}

/// Asks every node in `nodes` (by index) about `who` at once and collects
/// the answers within [`ROUND`]; `None` for a node that did not answer.
fn poll(children: &mut [Child], nodes: &[usize], who: &str) -> Vec<Option<Members>> {
    for &i in nodes {
        children[i].send_line(&format!("members {who}"));
    }
    let deadline = Instant::now() + ROUND;
    nodes
        .iter()
        .map(|&i| {
            let left = deadline.saturating_duration_since(Instant::now());
            Some(Members::parse(&children[i].try_expect("MEMBERS ", left)?))
        })
        .collect()
}

/// utime + stime of a process in clock ticks (/proc/PID/stat fields 14, 15).
fn cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count fields after its ')'.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn clock_ticks() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Raises the soft open-file limit to the hard one (inherited by the
/// children); each node holds a socket per peer, both ends on this machine.
fn raise_nofile(need: u64) -> (u64, u64) {
    #[allow(unsafe_code)]
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_cur < need {
            r.rlim_cur = r.rlim_max.min(need.max(r.rlim_cur));
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        (r.rlim_cur, r.rlim_max)
    }
}

/// Polls until `done` holds for every answer, `PHASE` at most; the seconds
/// since `t0`, rounds taken, and the last answers.
fn until_all(
    children: &mut [Child],
    nodes: &[usize],
    who: &str,
    t0: Instant,
    done: impl Fn(&Members) -> bool,
) -> (Option<f64>, usize, Vec<Option<Members>>) {
    let mut rounds = 0;
    loop {
        let answers = poll(children, nodes, who);
        rounds += 1;
        if answers.iter().all(|a| a.as_ref().is_some_and(&done)) {
            return (Some(t0.elapsed().as_secs_f64()), rounds, answers);
        }
        if t0.elapsed() > PHASE {
            return (None, rounds, answers);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How far a phase got: nodes that answered and nodes for which `ok` held.
fn progress(answers: &[Option<Members>], ok: impl Fn(&Members) -> bool) -> serde_json::Value {
    let answered = answers.iter().flatten().count();
    let done = answers.iter().flatten().filter(|m| ok(m)).count();
    let mut ups: Vec<usize> = answers.iter().flatten().map(|m| m.up).collect();
    ups.sort();
    json!({"answered": answered, "done": done, "of": answers.len(),
        "up_min": ups.first(), "up_median": ups.get(ups.len() / 2), "up_max": ups.last()})
}

pub fn hundred_nodes() -> Vec<Row> {
    let n = node_count();
    let nofile = raise_nofile(8 * n as u64 + 256);
    eprintln!("   hundred_nodes: {n} nodes, open files {nofile:?}");
    let name = |i: usize| format!("n{i:03}@127.0.0.1");
    let t0 = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    for i in 0..n {
        let seeds: Vec<String> = children
            .first()
            .map(|c| vec![c.listen.clone()])
            .unwrap_or_default();
        children.push(spawn_node(&name(i), 1, &seeds, None));
    }
    let spawned = t0.elapsed().as_secs_f64();
    let all: Vec<usize> = (0..n).collect();
    let last = name(n - 1);
    let (formed, form_rounds, ans) = until_all(&mut children, &all, &last, t0, |m| m.up >= n);
    let form_progress = progress(&ans, |m| m.up >= n);
    eprintln!("   hundred_nodes: formed {formed:?} {form_progress}");

    // Idle CPU: no polling during the window.
    std::thread::sleep(pause(2000));
    let window = pause(10_000);
    let pids: Vec<i32> = children.iter().map(Child::pid).collect();
    let c0: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    let w0 = Instant::now();
    std::thread::sleep(window);
    let c1: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    let cores = (c1 - c0) as f64 / clock_ticks() / w0.elapsed().as_secs_f64();
    eprintln!("   hundred_nodes: idle cluster CPU {cores:.3} cores");

    // SIGKILL the last node: every other node must stop seeing it up.
    let others: Vec<usize> = (0..n - 1).collect();
    let t1 = Instant::now();
    children[n - 1].signal(libc::SIGKILL);
    let (killed, kill_rounds, ans) = until_all(&mut children, &others, &last, t1, |m| !m.sees);
    let kill_progress = progress(&ans, |m| !m.sees);
    eprintln!("   hundred_nodes: SIGKILL dropped {killed:?} {kill_progress}");

    // SIGSTOP the one before it.
    let stopped_name = name(n - 2);
    let rest: Vec<usize> = (0..n - 2).collect();
    let t2 = Instant::now();
    children[n - 2].signal(libc::SIGSTOP);
    let (stopped, stop_rounds, ans) =
        until_all(&mut children, &rest, &stopped_name, t2, |m| !m.sees);
    let stop_progress = progress(&ans, |m| !m.sees);
    eprintln!("   hundred_nodes: SIGSTOP dropped {stopped:?} {stop_progress}");
    let downs: u64 = ans.iter().flatten().map(|m| m.downs).sum();
    drop(children);

    let lay =
        format!("{n} node processes, default arbiters, weight 1, unpinned; seeded with the first");
    let v = |x: Option<f64>| x.map_or(vec![], |s| vec![s]);
    vec![
        Row::new(&format!("hundred_nodes_{n}_form"), "s", v(formed))
            .target("<= 10 s", formed.is_some_and(|s| s <= 10.0))
            .layout(&lay)
            .extra(json!({"nodes": n, "spawned_s": spawned, "poll_rounds": form_rounds,
                "progress": form_progress, "open_files": nofile}))
            .note("first spawn to every node answering that all N are up (spawning included; polled over stdin)"),
        Row::new(&format!("hundred_nodes_{n}_idle_cpu"), "cores", vec![cores])
            .target("<= 1 core", cores <= 1.0)
            .layout(&lay)
            .extra(json!({"nodes": n, "per_node_pct_of_core": cores * 100.0 / n as f64,
                "window_s": window.as_secs_f64(), "formed": formed.is_some()}))
            .note("utime+stime of all node processes over the window, as cores; no polling during it"),
        Row::new(&format!("hundred_nodes_{n}_sigkill"), "s", v(killed))
            .target("<= 1 s", killed.is_some_and(|s| s <= 1.0))
            .layout(&lay)
            .extra(json!({"nodes": n, "poll_rounds": kill_rounds, "progress": kill_progress}))
            .note("SIGKILL to every other node no longer listing it up"),
        Row::new(&format!("hundred_nodes_{n}_sigstop"), "s", v(stopped))
            .target("<= 2 s", stopped.is_some_and(|s| s <= 2.0))
            .layout(&lay)
            .extra(json!({"nodes": n, "poll_rounds": stop_rounds, "progress": stop_progress,
                "declared_down_lines_total": downs}))
            .note("SIGSTOP to every other node no longer listing it up"),
    ]
}
