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
}

/// A running child process.
pub struct Child {
    proc: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: Receiver<String>,
    /// The address it listens on (nodes and raw servers).
    pub listen: String,
    pub name: String,
}

impl Child {
    /// Starts `flock-bench <args>`, pinned to `cpus` (a `taskset -c` list)
    /// if given, and waits (at most 60 s) for its `LISTEN <addr>` line.
    pub fn spawn(name: &str, args: &[String], cpus: Option<&str>) -> Child {
        let exe = std::env::current_exe().expect("own executable");
        // FLOCK_BENCH_WRAP="valgrind --tool=callgrind" runs children under
        // a profiler (or any other wrapper command).
        let wrap = std::env::var("FLOCK_BENCH_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut cmd = match (wrap.next(), cpus) {
            (Some(w), _) => {
                let mut cmd = Command::new(w);
                cmd.args(wrap).arg(exe);
                cmd
            }
            (None, Some(c)) if has_taskset() => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c).arg(exe);
                cmd
            }
            (None, _) => Command::new(exe),
        };
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
            name: name.to_owned(),
        };
        let l = child.expect("LISTEN ", Duration::from_secs(60));
        child.listen = l;
        child
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.proc.id()).unwrap_or(0)
    }

    /// Waits for a line starting with `prefix`; returns the rest.
    pub fn expect(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(_) => panic!("child {}: no {prefix:?} line within {limit:?}", self.name),
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
        }
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

pub fn has_taskset() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Pins the calling thread (and threads it creates later) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) {
    #[allow(unsafe_code)]
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within
    // it; sched_setaffinity(0, ..) reads it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// In a child: exit when stdin closes; answer `stats` with `STATS ...`.
pub fn serve_stdin() {
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "stats" {
                use crate::birds::*;
                use std::sync::atomic::Ordering::Relaxed;
                println!(
                    "STATS {} {} {} {}",
                    HATCHED.load(Relaxed),
                    LIVE.load(Relaxed),
                    CASTS.load(Relaxed),
                    rss_bytes()
                );
            }
        }
        std::process::exit(0);
    });
}
