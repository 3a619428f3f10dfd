//! Building example binaries and running child processes with deadlines,
//! for the end-to-end tests that drive real processes.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
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
