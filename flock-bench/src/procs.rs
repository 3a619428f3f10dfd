//! Child processes: the harness re-runs its own binary with a hidden
//! subcommand. A child watches its stdin and exits when the pipe closes (the
//! parent died or dropped it); the parent kills it in `Drop`. Every wait on a
//! child is bounded.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// What a child node reports on `stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub hatched: u64,
    pub live: i64,
    pub casts: u64,
    pub rss: u64,
    /// Live heap bytes since the child turned its counting allocator on
    /// (0 when off).
    pub heap: i64,
}

/// What a child node answers to `members NAME`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Members {
    /// Members up in its view, itself included.
    pub up: usize,
    /// Whether NAME is up in its view.
    pub sees: bool,
    /// Its log-tap counters: peers declared down, links lost, frames
    /// refused for their size, the largest size refused.
    pub downs: u64,
    pub lost: u64,
    pub oversize: u64,
    pub max_refused: u64,
    /// The largest frame it wrote (0 unless it counts frames).
    pub max_written: u64,
}

impl Members {
    /// Parses what follows `MEMBERS ` (missing fields are 0).
    pub fn parse(s: &str) -> Members {
        let v: Vec<u64> = s
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let f = |i: usize| v.get(i).copied().unwrap_or(0);
        Members {
            up: f(0) as usize,
            sees: f(1) == 1,
            downs: f(2),
            lost: f(3),
            oversize: f(4),
            max_refused: f(5),
            max_written: f(6),
        }
    }
}

/// A running child process.
pub struct Child {
    proc: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: Receiver<String>,
    /// The address it listens on (nodes and raw servers).
    pub listen: String,
    /// What the child said about itself after its address (a node: its
    /// arbiter count).
    pub info: String,
    pub name: String,
}

impl Child {
    /// Starts `flock-bench <args>`, pinned to `cpus` if given (the child
    /// pins itself with `sched_setaffinity` before it starts any thread, see
    /// [`pin_from_env`]), and waits (at most 60 s) for its
    /// `LISTEN <addr> <info>` line.
    pub fn spawn(name: &str, args: &[String], cpus: Option<&[usize]>) -> Child {
        let exe = std::env::current_exe().expect("own executable");
        // FLOCK_BENCH_WRAP="valgrind --tool=callgrind" runs children under
        // a profiler (or any other wrapper command).
        let wrap = std::env::var("FLOCK_BENCH_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut cmd = match wrap.next() {
            Some(w) => {
                let mut cmd = Command::new(w);
                cmd.args(wrap).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        match cpus {
            Some(c) => {
                let list: Vec<String> = c.iter().map(usize::to_string).collect();
                cmd.env(PIN_ENV, list.join(","));
            }
            None => {
                cmd.env_remove(PIN_ENV);
            }
        }
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = cmd.spawn().expect("spawn child");
        let stdout = proc.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut child = Child {
            stdin: proc.stdin.take(),
            proc,
            lines,
            listen: String::new(),
            info: String::new(),
            name: name.to_owned(),
        };
        let l = child.expect("LISTEN ", Duration::from_secs(60));
        let (listen, info) = l.split_once(' ').unwrap_or((&l, ""));
        child.listen = listen.to_owned();
        child.info = info.trim().to_owned();
        child
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.proc.id()).unwrap_or(0)
    }

    /// Waits for a line starting with `prefix`; returns the rest.
    pub fn expect(&mut self, prefix: &str, limit: Duration) -> String {
        self.try_expect(prefix, limit)
            .unwrap_or_else(|| panic!("child {}: no {prefix:?} line within {limit:?}", self.name))
    }

    /// Waits for a line starting with `prefix`; `None` after `limit` (or if
    /// the child's stdout closed).
    pub fn try_expect(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.to_owned());
            }
        }
    }

    pub fn send_line(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Asks for the child's counters (bounded wait).
    pub fn stats(&mut self) -> Stats {
        self.send_line("stats");
        let s = self.expect("STATS ", Duration::from_secs(10));
        let v: Vec<&str> = s.split_whitespace().collect();
        Stats {
            hatched: v[0].parse().unwrap_or(0),
            live: v[1].parse().unwrap_or(0),
            casts: v[2].parse().unwrap_or(0),
            rss: v[3].parse().unwrap_or(0),
            heap: v.get(4).and_then(|h| h.parse().ok()).unwrap_or(0),
        }
    }

    /// Like [`Child::names`], `None` if no answer came within `limit` (a
    /// busy node answers late; the late line is skipped by the next wait).
    pub fn try_names(&mut self, limit: Duration) -> Option<usize> {
        self.send_line("names");
        self.try_expect("NAMES ", limit)?.trim().parse().ok()
    }

    /// Asks a child node about its membership view and log-tap counters.
    pub fn members(&mut self, name: &str, limit: Duration) -> Option<Members> {
        self.send_line(&format!("members {name}"));
        Some(Members::parse(&self.try_expect("MEMBERS ", limit)?))
    }

    /// How many birds the child node's registry view holds (bounded wait).
    pub fn names(&mut self) -> usize {
        self.send_line("names");
        let s = self.expect("NAMES ", Duration::from_secs(30));
        s.trim().parse().unwrap_or(0)
    }

    /// Sends a signal to the child.
    pub fn signal(&self, sig: i32) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stdin.take();
        // Under a profiler, let the child exit on its own (stdin closed) so
        // it can write its profile; otherwise kill it at once.
        if std::env::var_os("FLOCK_BENCH_WRAP").is_some() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.proc.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.proc.kill();
        // SIGKILL cannot be ignored; a stopped process dies too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The environment variable a child reads its CPU list from.
const PIN_ENV: &str = "FLOCK_BENCH_CPUS";

/// In a child, first thing in `main`: pin the process's main thread (and so
/// every thread it starts later) to the CPUs the parent asked for.
pub fn pin_from_env() {
    if let Ok(list) = std::env::var(PIN_ENV) {
        let cpus: Vec<usize> = list.split(',').filter_map(|c| c.parse().ok()).collect();
        assert!(
            pin_current_thread(&cpus),
            "cannot pin to CPUs {list}: sched_setaffinity failed"
        );
    }
}

/// The number of CPUs this machine lets the harness use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins the calling thread (and threads it creates later) to `cpus`;
/// false if the kernel refused (for example a CPU that does not exist).
pub fn pin_current_thread(cpus: &[usize]) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within
    // it; sched_setaffinity(0, ..) reads it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// In a child: exit when stdin closes; answer `stats` with `STATS ...`;
/// pass `names`, `leave` and `members NAME` on to the node's task (which prints
/// `NAMES n` / `MEMBERS ...`).
pub fn serve_stdin(names: Option<tokio::sync::mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "names" || line.trim() == "leave" || line.starts_with("members") {
                if let Some(tx) = &names {
                    let _ = tx.blocking_send(line.trim().to_owned());
                }
            } else if line.trim() == "stats" {
                use crate::birds::*;
                use std::sync::atomic::Ordering::Relaxed;
                println!(
                    "STATS {} {} {} {} {}",
                    HATCHED.load(Relaxed),
                    LIVE.load(Relaxed),
                    CASTS.load(Relaxed),
                    rss_bytes(),
                    crate::tap::HEAP.load(Relaxed)
                );
                if let Some(m) = mallinfo() {
                    eprintln!(
                        "MALLINFO pid {} rss {} {m}",
                        std::process::id(),
                        rss_bytes()
                    );
                }
            }
        }
        std::process::exit(0);
    });
}
