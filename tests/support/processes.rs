//! Building example binaries and running child processes with deadlines,
//! for the end-to-end tests that drive real processes.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long building an example may take (nothing to do if
/// `cargo test --workspace` already built it).
pub const BUILD_LIMIT: Duration = Duration::from_secs(900);

/// Builds example `name` of the root package and returns its executable.
pub fn build_example(name: &str) -> PathBuf {
    let child = Command::new(env!("CARGO"))
        // The profile and feature set `cargo test --workspace` builds examples
        // with, so that under it this is a no-op.
        .args([
            "build",
            "--workspace",
            "--profile",
            "test",
            "--example",
            name,
        ])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cargo runs");
    let (status, out) = wait_with_output(child, BUILD_LIMIT)
        .unwrap_or_else(|| panic!("building the {name} example took over {BUILD_LIMIT:?}"));
    assert!(status.success(), "building the {name} example failed");
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the example's executable")
}

/// Waits for `child` (whose stdout is piped) up to `limit`, reading its
/// stdout meanwhile; kills it and returns None past the limit.
pub fn wait_with_output(mut child: Child, limit: Duration) -> Option<(ExitStatus, Vec<u8>)> {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Some((status, reader.join().unwrap_or_default()))
}

/// `n` distinct free ports on 127.0.0.1 (all bound at once, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind :0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// One example process: a flock node behind an HTTP server.
pub struct Server {
    /// Its flock node name.
    pub name: String,
    /// Its HTTP address (`127.0.0.1:port`).
    pub http: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// `http://<its address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// SIGKILL: no leave, no handover; the peers notice the closed links.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Fails the test if the process exited by itself.
    pub fn assert_running(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("server {} exited early: {status}", self.name);
        }
    }
}

/// Servers of one example and their directory: on drop every server is
/// killed, the tail of each log printed if the test is failing, and the
/// directory removed.
pub struct Cluster {
    /// The servers, `{prefix}1@127.0.0.1` first.
    pub servers: Vec<Server>,
    /// A fresh directory for logs and whatever else the servers keep.
    pub dir: PathBuf,
}

impl Cluster {
    /// Starts `n` servers of the example at `exe`, named
    /// `{prefix}1@127.0.0.1`…, on free ports, each seeded with the others
    /// (`--name`, `--http`, `--listen`, `--seeds`); `extra(i, dir, command)`
    /// adds server `i`'s own flags and environment.
    pub fn start(
        exe: &Path,
        n: usize,
        prefix: &str,
        extra: impl Fn(usize, &Path, &mut Command),
    ) -> Cluster {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{prefix}-e2e-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("test dir");
        let ports = free_ports(2 * n);
        let (http, flock) = ports.split_at(n);
        let mut cluster = Cluster {
            servers: Vec::new(),
            dir,
        };
        for i in 0..n {
            let name = format!("{prefix}{}@127.0.0.1", i + 1);
            let seeds: Vec<String> = (0..n)
                .filter(|&j| j != i)
                .map(|j| format!("127.0.0.1:{}", flock[j]))
                .collect();
            let log = cluster.dir.join(format!("{prefix}{}.log", i + 1));
            let out = std::fs::File::create(&log).expect("log file");
            let err = out.try_clone().expect("log file");
            let mut command = Command::new(exe);
            command
                .args(["--name", &name])
                .args(["--http", &format!("127.0.0.1:{}", http[i])])
                .args(["--listen", &format!("127.0.0.1:{}", flock[i])])
                .args(["--seeds", &seeds.join(",")])
                .env("RUST_LOG", "info,actix_server=warn")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            extra(i, &cluster.dir, &mut command);
            let child = command.spawn().expect("the example starts");
            cluster.servers.push(Server {
                name,
                http: format!("127.0.0.1:{}", http[i]),
                log,
                child: Some(child),
            });
        }
        cluster
    }

    /// The index of the server called `node`.
    pub fn index_of(&self, node: &str) -> usize {
        self.servers
            .iter()
            .position(|s| s.name == node)
            .unwrap_or_else(|| panic!("unknown node {node}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
        if std::thread::panicking() {
            for server in &self.servers {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of {} ----", server.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
