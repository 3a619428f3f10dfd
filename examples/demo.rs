//! The flock-actix demo: a three-node cluster on 127.0.0.1, in one command.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! The demo re-runs its own binary three times as node processes
//! (`demo --child NAME --listen ADDR --seeds A,B`, a hidden mode) and joins
//! the cluster itself as a client node (weight 0: it routes calls but hosts
//! no birds). It then narrates, with the seconds elapsed since the start:
//!
//! 1. the nodes come up and link; 100 birds start; where they run;
//! 2. every bird is called and answers with the name of its node;
//! 3. one node is killed with SIGKILL; how long until every bird answers
//!    again, and where its birds went;
//! 4. the node restarts; how many birds move back to it;
//! 5. every node shuts down cleanly.
//!
//! No process outlives the demo: each node exits when its standard input (a
//! pipe held by the demo) closes, which happens however the demo ends, even
//! on Ctrl-C or `kill -9`; and a drop guard kills the nodes on any error.
//! Node logs (`RUST_LOG`, default `info`) are kept in memory; if a step
//! fails, the last lines of each node's log are printed with the error.
//! Every step has a 15 s limit; the demo exits 1 naming the step that failed.

use flock_actix::prelude::*;
use flock_actix::{MemberEvent, MemberState};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many birds the demo starts.
const BIRDS: usize = 100;
/// The longest any one step may take.
const STEP_LIMIT: Duration = Duration::from_secs(15);
/// The cluster cookie of the demo's nodes.
const COOKIE: &str = "flock-demo-cookie";
/// The node processes' names.
const NODES: [&str; 3] = ["node1@127.0.0.1", "node2@127.0.0.1", "node3@127.0.0.1"];
/// The node the demo kills and restarts.
const VICTIM: usize = 1;
/// The demo's own (client) node.
const CLIENT: &str = "demo@127.0.0.1";

// ---------------------------------------------------------------------------
// The bird

/// A bird that tells where it runs.
#[flock_bird(kind = "demo.Greeter", messages(Where))]
struct Greeter;

impl Actor for Greeter {
    type Context = Context<Self>;
}

impl Bird for Greeter {
    type Args = ();
    fn hatch(_name: &str, _args: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Greeter)
    }
}

/// Answered with the name of the node the bird runs on.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct Where;

impl Handler<Where> for Greeter {
    type Result = String;
    fn handle(&mut self, _: Where, _: &mut Context<Self>) -> String {
        current_node().map(|n| n.to_string()).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Narration

fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Prints a line with the seconds elapsed since the demo started.
macro_rules! say {
    ($($arg:tt)*) => {{
        println!("[{:7.3}s] {}", started().elapsed().as_secs_f64(), format!($($arg)*));
        let _ = std::io::stdout().flush();
    }};
}

/// An indented table of birds per node, with shares.
fn table(per_node: &BTreeMap<String, usize>, total: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "             {:<18} {:>5}  {:>7}",
        "node", "birds", "share"
    );
    for (node, n) in per_node {
        let pct = 100.0 * *n as f64 / total.max(1) as f64;
        let _ = writeln!(out, "             {node:<18} {n:>5}  {pct:>5.1} %");
    }
    out.trim_end().to_owned()
}

fn short(node: &str) -> &str {
    node.split('@').next().unwrap_or(node)
}

// ---------------------------------------------------------------------------
// Entry point

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child_main(&args[1..]);
    }
    if !args.is_empty() {
        eprintln!("usage: demo (no arguments; see the top of examples/demo.rs)");
        return ExitCode::from(2);
    }
    parent_main()
}

// ---------------------------------------------------------------------------
// Node processes

/// Runs one node until its standard input closes (or says `stop`).
fn child_main(args: &[String]) -> ExitCode {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .try_init();
    let (Some(name), Some(listen), Some(seeds)) =
        (args.first(), flag(args, "--listen"), flag(args, "--seeds"))
    else {
        eprintln!("usage: demo --child NAME --listen ADDR --seeds A,B");
        return ExitCode::from(2);
    };
    let seeds: Vec<String> = seeds
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let system = actix::System::new();
    let flock = system.block_on(
        Flock::builder(name.as_str())
            .listen(listen)
            .seeds(seeds)
            .cookie(COOKIE)
            .arbiters(1)
            .bird::<Greeter>()
            .start(),
    );
    let flock = match flock {
        Ok(f) => f,
        Err(e) => {
            println!("FAILED {e}");
            return ExitCode::from(1);
        }
    };
    println!("READY {}", flock.listen_addr());
    let _ = std::io::stdout().flush();
    // Tell the parent how many members this node sees up, on every change.
    let reporter = flock.clone();
    system.block_on(async move {
        actix::spawn(async move {
            // Membership events, not polling: the subscription starts with
            // the members up now and follows every change.
            let mut events = reporter.events();
            let mut up = std::collections::BTreeSet::new();
            let mut last = None;
            while let Some(event) = events.next().await {
                match event {
                    MemberEvent::Up { name, .. } => {
                        up.insert(name);
                    }
                    MemberEvent::Down { name } | MemberEvent::Left { name } => {
                        up.remove(&name);
                    }
                    MemberEvent::Lagged { .. } => {
                        // Fell behind: read the whole state again.
                        let members = reporter.members().await.unwrap_or_default();
                        up = members
                            .into_iter()
                            .filter(|m| m.status == MemberState::Up)
                            .map(|m| m.name)
                            .collect();
                    }
                    _ => continue,
                }
                if last != Some(up.len()) {
                    last = Some(up.len());
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "UP {}", up.len());
                    let _ = out.flush();
                }
            }
        });
    });
    let handle = actix::System::current();
    let watcher = flock.clone();
    // The parent holds our stdin: end when it says `stop` or goes away.
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut stdin = std::io::stdin().lock();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.trim() == "stop" => break,
                Ok(_) => {}
            }
        }
        watcher.shutdown();
        handle.stop();
        // A backstop should the system not stop in time.
        std::thread::sleep(Duration::from_secs(3));
        std::process::exit(0);
    });
    match system.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node {name}: {e}");
            ExitCode::from(1)
        }
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// One node process, seen from the demo.
struct NodeProc {
    name: &'static str,
    addr: String,
    child: Child,
    /// Held open: the node exits when it closes.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// How many members the node last said it sees up.
    up: usize,
}

impl NodeProc {
    /// Takes in what the node printed since the last look.
    fn poll(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            if let Some(n) = line.strip_prefix("UP ").and_then(|n| n.parse().ok()) {
                self.up = n;
            }
        }
    }
}

/// The last lines a node logged, per node.
type Logs = Arc<Mutex<Vec<VecDeque<String>>>>;

/// How many log lines are kept per node.
const LOG_LINES: usize = 400;

/// Every node process; kills and reaps whichever still run when dropped.
struct Cluster {
    exe: PathBuf,
    logs: Logs,
    nodes: Vec<Option<NodeProc>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            kill(node);
        }
    }
}

fn kill(mut node: NodeProc) {
    drop(node.stdin.take());
    let _ = node.child.kill();
    let _ = node.child.wait();
}

/// A free port on 127.0.0.1 (free when asked; the node binds it right after).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

impl Cluster {
    /// The last `n` lines each node logged, for an error report.
    fn log_tails(&self, n: usize) -> String {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, lines) in NODES.iter().zip(logs.iter()) {
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "--- last lines logged by {name}:");
            for line in lines.iter().skip(lines.len().saturating_sub(n)) {
                let _ = writeln!(out, "    {line}");
            }
        }
        out
    }

    /// Spawns node `i` on `addr` with the other nodes' addresses as seeds.
    fn spawn(&mut self, i: usize, addr: &str, seeds: &[String]) -> Result<(), String> {
        let name = NODES[i];
        let mut child = Command::new(&self.exe)
            .args([
                "--child",
                name,
                "--listen",
                addr,
                "--seeds",
                &seeds.join(","),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = self.logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
                let lines = &mut logs[i];
                if lines.len() == LOG_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.nodes[i] = Some(NodeProc {
            name,
            addr: addr.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            up: 0,
        });
        Ok(())
    }

    /// Waits for node `i` to say it is listening; `Ok(false)` if it could
    /// not bind its address.
    async fn ready(&mut self, i: usize) -> Result<bool, String> {
        let deadline = Instant::now() + STEP_LIMIT;
        let node = self.nodes[i].as_mut().expect("node was spawned");
        loop {
            match node.lines.try_recv() {
                Ok(line) if line.starts_with("READY") => return Ok(true),
                Ok(line) if line.starts_with("FAILED") => {
                    let failed = self.nodes[i].take().expect("node was spawned");
                    let gone = failed.addr.clone();
                    kill(failed);
                    if line.contains("ddress") && line.contains("in use") {
                        return Ok(false);
                    }
                    return Err(format!("{} could not start on {gone}: {line}", NODES[i]));
                }
                Ok(_) => {}
                Err(TryRecvError::Disconnected) => {
                    let status = node.child.wait().map_err(|e| e.to_string())?;
                    return Err(format!(
                        "{} exited before it was ready ({status})",
                        NODES[i]
                    ));
                }
                Err(TryRecvError::Empty) => {}
            }
            if Instant::now() > deadline {
                return Err(format!("{} not ready within {STEP_LIMIT:?}", NODES[i]));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts node `i` on `addr` (or, if it is taken, on a fresh port) and
    /// waits until it listens.
    async fn launch(&mut self, i: usize, addr: String, seeds: &[String]) -> Result<(), String> {
        let mut addr = addr;
        for _ in 0..3 {
            self.spawn(i, &addr, seeds)?;
            if self.ready(i).await? {
                let node = self.nodes[i].as_ref().expect("node is ready");
                say!(
                    "started {} (pid {}) listening on {}",
                    node.name,
                    node.child.id(),
                    node.addr
                );
                return Ok(());
            }
            addr = format!("127.0.0.1:{}", free_port()?);
        }
        Err(format!("{}: no free port after 3 tries", NODES[i]))
    }

    /// Waits until every running node sees `want` members up (itself and
    /// the client included).
    async fn wait_linked(&mut self, want: usize) -> Result<(), String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let mut behind = Vec::new();
            for node in self.nodes.iter_mut().flatten() {
                node.poll();
                if node.up != want {
                    behind.push(format!("{} sees {}", node.name, node.up));
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {STEP_LIMIT:?} waiting for every node to see {want} members up: {}",
                    behind.join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.addr.clone())
            .collect()
    }

    fn pid(&self, i: usize) -> u32 {
        self.nodes[i].as_ref().map_or(0, |n| n.child.id())
    }
}

// ---------------------------------------------------------------------------
// The demo proper

fn parent_main() -> ExitCode {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error"))
        .try_init();
    started();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("demo FAILED: cannot find its own binary: {e}");
            return ExitCode::from(1);
        }
    };
    let mut cluster = Cluster {
        exe,
        logs: Arc::new(Mutex::new(vec![VecDeque::new(); NODES.len()])),
        nodes: vec![None, None, None],
    };
    let system = actix::System::new();
    let result = system.block_on(run(&mut cluster));
    let tails = cluster.log_tails(20);
    drop(cluster);
    match result {
        Ok(()) => {
            say!("demo finished: every step passed, no node process left");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{tails}");
            eprintln!("demo FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

/// Waits until `check` returns `Some`, polling every 20 ms, for at most
/// [`STEP_LIMIT`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {STEP_LIMIT:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `Where` on every bird at once; the replies in the order of `names`.
async fn call_all(flock: &Flock, names: &[String]) -> Vec<Result<String, Error>> {
    let calls: Vec<_> = names
        .iter()
        .map(|n| {
            let addr = flock.addr::<Greeter>(n);
            actix::spawn(async move { addr.send_timeout(Where, Duration::from_secs(2)).await })
        })
        .collect();
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        out.push(call.await.unwrap_or(Err(Error::Stopped)));
    }
    out
}

/// Where each bird runs, by calling it: `Some` once every bird answered from
/// the node that owns it in the client's view.
async fn locate(flock: &Flock, names: &[String]) -> Option<BTreeMap<String, String>> {
    let replies = call_all(flock, names).await;
    let mut at = BTreeMap::new();
    for (name, reply) in names.iter().zip(replies) {
        let node = reply.ok()?;
        if flock.owner_of(name).ok()? != node {
            return None;
        }
        at.insert(name.clone(), node);
    }
    Some(at)
}

fn per_node(at: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut count: BTreeMap<String, usize> = NODES.iter().map(|n| ((*n).to_owned(), 0)).collect();
    for node in at.values() {
        *count.entry(node.clone()).or_default() += 1;
    }
    count
}

/// Whether the client sees exactly `hosts` as the nodes hosting birds, all up.
async fn sees_hosts(flock: &Flock, hosts: &[&str]) -> bool {
    let Ok(members) = flock.members().await else {
        return false;
    };
    let mut up: Vec<&str> = members
        .iter()
        .filter(|m| m.status == MemberState::Up && m.weight > 0)
        .map(|m| m.name.as_str())
        .collect();
    up.sort_unstable();
    up == hosts
}

async fn run(cluster: &mut Cluster) -> Result<(), String> {
    say!(
        "flock-actix demo: {} node processes on 127.0.0.1, this process joins as client node {CLIENT} (weight 0)",
        NODES.len()
    );

    // -- 1. Nodes up, birds started -------------------------------------
    let mut addrs = Vec::new();
    for _ in NODES {
        addrs.push(format!("127.0.0.1:{}", free_port()?));
    }
    for i in 0..NODES.len() {
        let seeds: Vec<String> = (0..NODES.len())
            .filter(|j| *j != i)
            .map(|j| addrs[j].clone())
            .collect();
        cluster.spawn(i, &addrs[i], &seeds)?;
    }
    for i in 0..NODES.len() {
        if !cluster.ready(i).await? {
            // Someone took the port between our look and the node's bind.
            let seeds: Vec<String> = cluster.addrs();
            cluster
                .launch(i, format!("127.0.0.1:{}", free_port()?), &seeds)
                .await?;
        } else {
            let node = cluster.nodes[i].as_ref().expect("node is ready");
            say!(
                "started {} (pid {}) listening on {}",
                node.name,
                node.child.id(),
                node.addr
            );
        }
    }
    let flock = Flock::builder(CLIENT)
        .listen("127.0.0.1:0")
        .seeds(cluster.addrs())
        .cookie(COOKIE)
        .weight(0)
        .arbiters(0)
        .call_timeout(Duration::from_secs(2))
        .configure(|c| c.anti_entropy.interval_ms = 20)
        .bird::<Greeter>()
        .start()
        .await
        .map_err(|e| format!("the client node could not start: {e}"))?;
    let result = scenario(cluster, &flock).await;
    flock.shutdown();
    result
}

async fn scenario(cluster: &mut Cluster, flock: &Flock) -> Result<(), String> {
    let all_hosts: Vec<&str> = NODES.to_vec();
    wait_for("the client to link to all 3 nodes", || async {
        sees_hosts(flock, &all_hosts).await.then_some(())
    })
    .await
    .map_err(|e| format!("step 1: {e}"))?;
    cluster
        .wait_linked(NODES.len() + 1)
        .await
        .map_err(|e| format!("step 1: {e}"))?;
    say!(
        "all {} nodes up and linked: each sees the other two and the client node",
        NODES.len()
    );

    let names: Vec<String> = (1..=BIRDS).map(|i| format!("bird:{i}")).collect();
    for name in &names {
        flock
            .start::<Greeter>(name, ())
            .await
            .map_err(|e| format!("step 1: starting {name}: {e}"))?;
    }
    let start_calls = Instant::now();
    let before = wait_for("every bird to answer from its owner", || {
        locate(flock, &names)
    })
    .await
    .map_err(|e| format!("step 1: {e}"))?;
    say!(
        "{BIRDS} birds started (bird:1 .. bird:{BIRDS}), all running within {:.3}s; placement:\n{}",
        start_calls.elapsed().as_secs_f64(),
        table(&per_node(&before), BIRDS)
    );

    // -- 2. Every bird called -------------------------------------------
    let t = Instant::now();
    let replies = call_all(flock, &names).await;
    let took = t.elapsed();
    let mut answered: BTreeMap<String, String> = BTreeMap::new();
    for (name, reply) in names.iter().zip(replies) {
        let node = reply.map_err(|e| format!("step 2: {name} did not answer: {e}"))?;
        answered.insert(name.clone(), node);
    }
    if answered != before {
        return Err("step 2: some bird answered from another node than its owner".into());
    }
    let examples: Vec<String> = names
        .iter()
        .take(4)
        .map(|n| format!("{n} → {}", answered[n]))
        .collect();
    let counts: Vec<String> = per_node(&answered)
        .iter()
        .map(|(n, c)| format!("{} from {}", c, short(n)))
        .collect();
    say!(
        "called all {BIRDS} birds in {:.1} ms: replies {}; e.g. {}, …",
        took.as_secs_f64() * 1000.0,
        counts.join(", "),
        examples.join(", ")
    );

    // -- 3. Kill a node -----------------------------------------------
    let victim = NODES[VICTIM];
    let victim_addr = cluster.nodes[VICTIM]
        .as_ref()
        .map(|n| n.addr.clone())
        .unwrap_or_default();
    let on_victim: Vec<&String> = before
        .iter()
        .filter(|(_, n)| n.as_str() == victim)
        .map(|(b, _)| b)
        .collect();
    say!(
        "killing {victim} (pid {}) with SIGKILL; it runs {} birds",
        cluster.pid(VICTIM),
        on_victim.len()
    );
    let killed_at = Instant::now();
    if let Some(mut node) = cluster.nodes[VICTIM].take() {
        node.child
            .kill()
            .map_err(|e| format!("step 3: cannot kill {victim}: {e}"))?;
        let _ = node.child.wait();
    }
    // Call the birds that have not answered since the kill, until all have.
    let mut pending: Vec<String> = names.clone();
    let mut after: BTreeMap<String, String> = BTreeMap::new();
    let mut failed_calls = 0;
    let mut last_answer = killed_at;
    let deadline = killed_at + STEP_LIMIT;
    while !pending.is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "step 3: {} birds still silent {STEP_LIMIT:?} after the kill, e.g. {}",
                pending.len(),
                pending[0]
            ));
        }
        let replies = call_all(flock, &pending).await;
        let mut still = Vec::new();
        for (name, reply) in pending.into_iter().zip(replies) {
            match reply {
                Ok(node) if node != victim => {
                    last_answer = Instant::now();
                    after.insert(name, node);
                }
                Ok(_) | Err(_) => {
                    failed_calls += 1;
                    still.push(name);
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut went: BTreeMap<String, usize> = BTreeMap::new();
    for b in &on_victim {
        *went.entry(after[*b].clone()).or_default() += 1;
    }
    let stayed = names
        .iter()
        .filter(|b| before[*b] != victim && before[*b] == after[*b])
        .count();
    let went: Vec<String> = went
        .iter()
        .map(|(n, c)| format!("{c} to {}", short(n)))
        .collect();
    say!(
        "every bird answered again {:.3}s after the kill ({failed_calls} calls that reached the dead node failed and were retried); \
         {}'s {} birds went {}; {stayed} of the other {} stayed where they were:\n{}",
        (last_answer - killed_at).as_secs_f64(),
        short(victim),
        on_victim.len(),
        went.join(", "),
        BIRDS - on_victim.len(),
        table(&per_node(&after), BIRDS)
    );
    if stayed != BIRDS - on_victim.len() {
        return Err("step 3: birds of the surviving nodes moved".into());
    }

    // -- 4. Restart the node --------------------------------------------
    let seeds: Vec<String> = cluster.addrs();
    say!("restarting {victim} on {victim_addr}");
    let restarted_at = Instant::now();
    cluster.launch(VICTIM, victim_addr, &seeds).await?;
    wait_for("the client to see the restarted node", || async {
        sees_hosts(flock, &all_hosts).await.then_some(())
    })
    .await
    .map_err(|e| format!("step 4: {e}"))?;
    cluster
        .wait_linked(NODES.len() + 1)
        .await
        .map_err(|e| format!("step 4: {e}"))?;
    say!(
        "{victim} rejoined (a new incarnation, linked to every node) {:.3}s after its restart",
        restarted_at.elapsed().as_secs_f64()
    );
    let back = wait_for("every bird to answer from its owner again", || {
        locate(flock, &names)
    })
    .await
    .map_err(|e| format!("step 4: {e}"))?;
    let moved = names.iter().filter(|b| after[*b] != back[*b]).count();
    let moved_to_victim = names
        .iter()
        .filter(|b| after[*b] != back[*b] && back[*b] == victim)
        .count();
    let home = names.iter().filter(|b| before[*b] == back[*b]).count();
    say!(
        "{moved} of {BIRDS} birds moved ({:.1} %), {moved_to_victim} of them back to {}; \
         {home} of {BIRDS} birds run where they ran before the kill:\n{}",
        100.0 * moved as f64 / BIRDS as f64,
        short(victim),
        table(&per_node(&back), BIRDS)
    );
    if moved != moved_to_victim {
        return Err("step 4: birds moved between the surviving nodes".into());
    }

    // -- 5. Clean shutdown ----------------------------------------------
    say!("shutting down the nodes");
    let mut codes = Vec::new();
    for node in cluster.nodes.iter_mut().flatten() {
        if let Some(stdin) = node.stdin.as_mut() {
            let _ = stdin.write_all(b"stop\n");
            let _ = stdin.flush();
        }
    }
    for (i, slot) in cluster.nodes.iter_mut().enumerate() {
        let Some(mut node) = slot.take() else {
            continue;
        };
        let deadline = Instant::now() + STEP_LIMIT;
        let status = loop {
            match node.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(None) => {
                    kill(node);
                    return Err(format!(
                        "step 5: {} did not exit within {STEP_LIMIT:?}",
                        NODES[i]
                    ));
                }
                Err(e) => return Err(format!("step 5: waiting for {}: {e}", NODES[i])),
            }
        };
        if !status.success() {
            return Err(format!("step 5: {} exited with {status}", NODES[i]));
        }
        codes.push(format!("{} exit 0", short(NODES[i])));
    }
    say!("all nodes stopped cleanly ({})", codes.join(", "));
    Ok(())
}
