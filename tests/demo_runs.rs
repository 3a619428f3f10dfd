//! The examples run end to end: the demo narrates its five steps and exits
//! 0, and `flock_node` explains itself and refuses bad flags.
//!
//! Each test builds the example the way `cargo test --workspace` does (the
//! same profile and feature set, so under it that is a no-op; on its own it
//! may take minutes, with a generous limit of its own) and then runs the
//! executable as a child process with a deadline.

#[path = "support/processes.rs"]
mod processes;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs example `NAME` with `ARGS`, killing it after `limit`.
fn run_example(name: &str, args: &[&str], limit: Duration) -> Output {
    let exe = processes::build_example(name);
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo starts");
    // Drain both pipes in threads so a chatty child never blocks on them.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child can be waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "example {name} still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

#[test]
fn demo_narrates_failover_and_return_then_exits_zero() {
    let started = Instant::now();
    let out = run_example("demo", &[], Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "all 3 nodes up and linked",
        "100 birds started",
        "called all 100 birds",
        "with SIGKILL",
        "every bird answered again",
        "rejoined",
        "back to node2",
        "100 of 100 birds run where they ran before the kill",
        "all nodes stopped cleanly (node1 exit 0, node2 exit 0, node3 exit 0)",
        "demo finished",
    ] {
        assert!(
            stdout.contains(line),
            "no {line:?} in the narration:\n{stdout}"
        );
    }
    // Every line is timestamped: `[  1.234s] ...` or an indented table row.
    for line in stdout.lines() {
        assert!(
            line.starts_with('[') || line.starts_with("    "),
            "untimestamped line {line:?}"
        );
    }
    eprintln!("demo test took {:?}", started.elapsed());
}

#[test]
fn flock_node_help_explains_subcommands_and_environment() {
    let out = run_example("flock_node", &["--help"], Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--help failed: {out:?}");
    for word in [
        "node",
        "run",
        "call",
        "status",
        "stop",
        "FLOCK_NAME",
        "FLOCK_LISTEN",
        "FLOCK_SEEDS",
        "FLOCK_COOKIE",
        "FLOCK_AE_INTERVAL_MS",
        "RUST_LOG",
    ] {
        assert!(
            stdout.contains(word),
            "--help does not mention {word}:\n{stdout}"
        );
    }
}

#[test]
fn flock_node_refuses_an_unknown_flag_with_exit_code_2() {
    let out = run_example("flock_node", &["--bogus"], Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("unexpected argument '--bogus'"),
        "unclear message:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn flock_node_refuses_a_node_without_a_name_with_exit_code_2() {
    let out = run_example("flock_node", &["node"], Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("`node` needs a name"), "{stderr}");
}

#[test]
fn flock_node_client_without_a_cluster_fails_within_its_wait() {
    let started = Instant::now();
    let out = run_example(
        "flock_node",
        &["--seeds", "127.0.0.1:9", "--wait-secs", "1", "call"],
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("no node answered within 1s"), "{stderr}");
    eprintln!("took {:?}", started.elapsed());
}
