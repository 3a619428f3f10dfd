//! Stopping an embedding app never removes a bird from the cluster.
//!
//! Two `examples/rooms_web` processes (actix-web with its default signal
//! handling, which stops the whole `System` on SIGINT) host 50 rooms. One
//! process is stopped and restarted again and again: by SIGINT, and by a
//! bare `System::stop()` (after which the process is killed: a stopped
//! system never ends actix-web's `main`). After every round each room is still in both
//! replicas and answers a ping through both servers: 0 lost.
//!
//! 20 rounds of each (issue #8), about half a second a round once the
//! example is built; `FLOCK_SHUTDOWN_ROUNDS=N` runs another number.

#[path = "support/processes.rs"]
mod processes;

use processes::{build_example, free_ports};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOMS: u64 = 50;
/// Rounds per way of stopping.
const DEFAULT_ROUNDS: usize = 20;
/// From a (re)start to both nodes up and every room answering.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// From `System::stop` to the node gone from its peer's view.
const ALONE_LIMIT: Duration = Duration::from_secs(3);
/// From the stop request to the process exit.
const EXIT_LIMIT: Duration = Duration::from_secs(15);

fn rounds() -> usize {
    std::env::var("FLOCK_SHUTDOWN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

/// One `rooms_web` process, restartable on the same ports.
struct Server {
    name: String,
    http: String,
    listen: String,
    seed: String,
    rooms: u64,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn spawn(&mut self, exe: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(exe)
            .args(["--name", &self.name, "--http", &self.http])
            .args(["--listen", &self.listen, "--seeds", &self.seed])
            .args(["--rooms", &self.rooms.to_string()])
            .env("RUST_LOG", "info,actix_server=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("the example starts");
        self.child = Some(child);
    }

    fn sigint(&self) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -INT {pid}");
    }

    /// Waits for the process to exit by itself.
    fn wait_exit(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        let start = Instant::now();
        while child.try_wait().expect("child can be waited for").is_none() {
            if start.elapsed() > EXIT_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {EXIT_LIMIT:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Sigint,
    SystemStop,
}

/// The two servers and their logs, killed and cleaned up on drop.
struct Pair {
    servers: Vec<Server>,
    dir: PathBuf,
}

impl Pair {
    fn start(exe: &Path, tag: &str) -> Pair {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("embedded-shutdown-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test dir");
        let ports = free_ports(4);
        let mut pair = Pair {
            servers: Vec::new(),
            dir,
        };
        for i in 0..2 {
            pair.servers.push(Server {
                name: format!("{tag}{i}@127.0.0.1"),
                http: format!("127.0.0.1:{}", ports[i]),
                listen: format!("127.0.0.1:{}", ports[2 + i]),
                seed: format!("127.0.0.1:{}", ports[2 + (1 - i)]),
                // The first creates the rooms; restarts of the second never do.
                rooms: if i == 0 { ROOMS } else { 0 },
                log: pair.dir.join(format!("{tag}{i}.log")),
                child: None,
            });
            pair.servers[i].spawn(exe);
        }
        pair
    }

    /// Waits until both servers see two members up and know and reach
    /// every room; panics naming what is missing.
    fn assert_settled(&self, round: usize) {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < SETTLE_LIMIT {
            match self.settled() {
                Ok(()) => return,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("round {round}: not settled within {SETTLE_LIMIT:?}: {last}");
    }

    fn settled(&self) -> Result<(), String> {
        for s in &self.servers {
            let health = get_json(&s.http, "/health").ok_or(format!("{} down", s.name))?;
            if health["up"] != 2 {
                return Err(format!("{} sees {} up", s.name, health["up"]));
            }
        }
        for s in &self.servers {
            let check = get_json(&s.http, "/check").ok_or(format!("{} down", s.name))?;
            if check["known"] != ROOMS || check["answering"] != ROOMS {
                return Err(format!(
                    "{}: {} rooms known, {} answering (of {ROOMS})",
                    s.name, check["known"], check["answering"]
                ));
            }
        }
        Ok(())
    }

    /// Stops and restarts the second server `rounds` times, checking every
    /// room after each round. A lost room never comes back, so `known`
    /// staying below 50 fails the round.
    fn bounce(&mut self, exe: &Path, how: Stop, rounds: usize) {
        self.assert_settled(0);
        for round in 1..=rounds {
            match how {
                Stop::Sigint => {
                    self.servers[1].sigint();
                    self.servers[1].wait_exit();
                }
                Stop::SystemStop => {
                    // The answer may or may not make it out before the stop.
                    let _ = http(&self.servers[1].http, "POST", "/system-stop");
                    // `#[actix_web::main]` blocks on main's future, which a
                    // stopped system never finishes: once the node is gone
                    // from its peer's view, the process is killed, as a
                    // process manager would.
                    self.wait_until_alone();
                    self.servers[1].kill();
                }
            }
            self.servers[1].spawn(exe);
            self.assert_settled(round);
        }
    }

    /// Waits (boundedly) until the first server sees itself alone: a node
    /// whose system stopped shuts itself down. Killed afterwards either way;
    /// what is checked is that no room was lost.
    fn wait_until_alone(&self) {
        let start = Instant::now();
        while start.elapsed() < ALONE_LIMIT {
            if get_json(&self.servers[0].http, "/health").is_some_and(|h| h["up"] == 1) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
        if std::thread::panicking() {
            for s in &self.servers {
                let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("---- last lines of {} ----", s.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-shot HTTP/1.0 request; the body, or `None` on any failure.
fn http(addr: &str, method: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_owned()))
}

fn get_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&http(addr, "GET", path)?).ok()
}

#[test]
fn sigint_to_an_actix_web_node_never_removes_a_bird_from_the_cluster() {
    let exe = build_example("rooms_web");
    let mut pair = Pair::start(&exe, "int");
    pair.bounce(&exe, Stop::Sigint, rounds());
}

#[test]
fn system_stop_in_an_actix_web_node_never_removes_a_bird_from_the_cluster() {
    let exe = build_example("rooms_web");
    let mut pair = Pair::start(&exe, "sys");
    pair.bounce(&exe, Stop::SystemStop, rounds());
}
