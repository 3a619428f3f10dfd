//! The Flock walkthrough: a node program with subcommands, mirroring the
//! Makefile targets of Elixir's Flock.
//!
//! ```text
//! make node1        # in three terminals: nodes on 127.0.0.1:4001..4003
//! make node2
//! make node3
//! make run num=10   # start bird:1 .. bird:10, from a client node
//! make call         # call every bird: "bird bird:1 replied node1@127.0.0.1"
//! make status       # members, each node's share of the load, birds per node
//! make stop         # stop every bird
//! ```
//!
//! Every bird logs `bird bird:6 running on node node3@127.0.0.1` every 10 s.
//! Kill a node (Ctrl-C leaves gracefully, `kill -9` crashes it) and `make
//! call` again: its birds answer from the other nodes. Start it again and
//! about a third of the birds move back to it.
//!
//! `run`, `call`, `status` and `stop` join the cluster as client nodes
//! (weight 0: they route calls but host no birds), wait until linked to a
//! node and until their copy of the registry is in sync, act, leave and exit.

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use flock_actix::MemberState;
use flock_actix::prelude::*;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The bird

/// The example bird: logs where it runs every 10 s, answers `Ping` with the
/// name of its node.
#[flock_bird(kind = "walkthrough.MyBird", messages(Ping))]
struct MyBird {
    name: String,
}

impl Actor for MyBird {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!("bird {} started on node {}", self.name, node_name());
        ctx.run_interval(Duration::from_secs(10), |bird, _| {
            log::info!("bird {} running on node {}", bird.name, node_name());
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // With "started", lets a log tell how many instances of a bird run.
        log::info!("bird {} stopped on node {}", self.name, node_name());
    }
}

impl Bird for MyBird {
    type Args = ();
    fn hatch(name: &str, _args: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(MyBird {
            name: name.to_owned(),
        })
    }
}

/// Answered with the name of the node the bird runs on.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct Ping;

impl Handler<Ping> for MyBird {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        node_name()
    }
}

fn node_name() -> String {
    current_node().map(|n| n.to_string()).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Command line

/// A flock-actix node and the client commands of the walkthrough.
#[derive(Parser, Debug)]
#[command(
    name = "flock_node",
    version,
    after_help = "\
Every option can also come from the environment variable shown with it.
Logging is set with RUST_LOG (default: info for `node`, warn for the rest),
e.g. RUST_LOG=flock_actix=debug.

Walkthrough (see the Makefile):
  make node1 / node2 / node3   nodes on 127.0.0.1:4001..4003
  make run num=10              start bird:1..bird:10
  make call                    call every bird
  make status                  members, load shares, birds per node
  make stop                    stop every bird"
)]
struct Cli {
    #[command(flatten)]
    opts: Opts,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug)]
struct Opts {
    /// This node's name, unique in the cluster (required for `node`; client
    /// commands default to client-PID@127.0.0.1)
    #[arg(long, env = "FLOCK_NAME", global = true)]
    name: Option<String>,

    /// The address to listen on, HOST:PORT (port 0 picks a free one)
    #[arg(long, env = "FLOCK_LISTEN", global = true, default_value = "127.0.0.1:0",
          value_parser = host_port)]
    listen: String,

    /// Addresses of nodes to join through, comma-separated; this node's own
    /// listen address is skipped
    #[arg(
        long,
        env = "FLOCK_SEEDS",
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:4001,127.0.0.1:4002,127.0.0.1:4003",
        value_parser = host_port
    )]
    seeds: Vec<String>,

    /// The cluster cookie every node must share
    #[arg(
        long,
        env = "FLOCK_COOKIE",
        global = true,
        default_value = "flock-walkthrough",
        hide_env_values = true
    )]
    cookie: String,

    /// How often registry changes are sent to peers, in milliseconds
    #[arg(long = "ae-interval-ms", env = "FLOCK_AE_INTERVAL_MS", global = true,
          default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    ae_interval_ms: u64,

    /// How long client commands wait for the cluster, in seconds
    #[arg(long, env = "FLOCK_WAIT_SECS", global = true, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    wait_secs: u64,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a node that hosts birds, until Ctrl-C (which leaves gracefully)
    Node {
        /// Placement weight: the node's relative share of the birds
        #[arg(long, env = "FLOCK_WEIGHT", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        weight: u32,
        /// Keep the registry on disk in this directory, so that it survives
        /// a restart of every node (one directory per node)
        #[arg(long, env = "FLOCK_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Start bird:1 .. bird:NUM from a client node
    Run {
        /// How many birds to start
        #[arg(long, short, default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=100_000))]
        num: u64,
    },
    /// Call every bird in the registry and print which node replied
    Call,
    /// Show the members, each node's share of the load and its birds
    Status,
    /// Stop the named birds, or every bird in the registry if none is named
    Stop {
        /// Birds to stop, e.g. bird:1 bird:2 (default: all)
        names: Vec<String>,
    },
}

/// Accepts `HOST:PORT` with a numeric port.
fn host_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_owned()),
        _ => Err(format!(
            "expected HOST:PORT, e.g. 127.0.0.1:4001, got {s:?}"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Node { .. }) && cli.opts.name.is_none() {
        Cli::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "`node` needs a name: --name node1@127.0.0.1 or FLOCK_NAME",
            )
            .exit();
    }
    let default_level = match cli.cmd {
        Cmd::Node { .. } => "info",
        _ => "warn",
    };
    let _ =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
            .format_timestamp_millis()
            .try_init();
    let system = actix::System::new();
    let result = system.block_on(async move {
        match cli.cmd {
            Cmd::Node { weight, data_dir } => node(&cli.opts, weight, data_dir).await,
            Cmd::Run { num } => client(&cli.opts, |f, o| run(f, o, num)).await,
            Cmd::Call => client(&cli.opts, call).await,
            Cmd::Status => client(&cli.opts, status).await,
            Cmd::Stop { names } => client(&cli.opts, |f, w| stop(f, w, names)).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

type Outcome = Result<(), String>;

/// A builder with the options common to nodes and clients.
fn builder(opts: &Opts, name: String) -> FlockBuilder {
    let seeds: Vec<String> = opts
        .seeds
        .iter()
        .filter(|s| **s != opts.listen)
        .cloned()
        .collect();
    let ae = opts.ae_interval_ms;
    Flock::builder(name)
        .listen(opts.listen.clone())
        .seeds(seeds)
        .cookie(&opts.cookie)
        .configure(move |c| {
            c.anti_entropy.interval_ms = ae;
            c.anti_entropy.retry_ms = c.anti_entropy.retry_ms.max(ae);
            c.anti_entropy.full_sync_interval_ms = c.anti_entropy.full_sync_interval_ms.max(ae);
        })
        .bird::<MyBird>()
}

// ---------------------------------------------------------------------------
// `node`

async fn node(opts: &Opts, weight: u32, data_dir: Option<std::path::PathBuf>) -> Outcome {
    let Some(name) = opts.name.clone() else {
        return Err("`node` needs a name: --name node1@127.0.0.1 or FLOCK_NAME".into());
    };
    let mut builder = builder(opts, name).weight(weight);
    if let Some(dir) = data_dir {
        builder = builder.data_dir(dir);
    }
    let flock = builder
        .start()
        .await
        .map_err(|e| format!("cannot start the node: {e}"))?;
    log::info!(
        "node {} up on {}, seeds {}; Ctrl-C to leave",
        flock.name(),
        flock.listen_addr(),
        flock.config().seeds.join(",")
    );
    wait_for_signal().await;
    log::info!(
        "node {} leaving: its birds move to the other nodes",
        flock.name()
    );
    let _ = flock.leave().await;
    flock.shutdown();
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = actix_rt::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = actix_rt::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_rt::signal::ctrl_c().await;
    }
}

// ---------------------------------------------------------------------------
// Client commands

/// Joins as a client node, waits for the cluster and the registry, runs
/// `act`, then leaves.
async fn client<F, Fut>(opts: &Opts, act: F) -> Outcome
where
    F: FnOnce(Flock, Duration) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("client-{}@127.0.0.1", std::process::id()));
    let wait = Duration::from_secs(opts.wait_secs);
    let flock = builder(opts, name)
        .weight(0)
        .arbiters(0)
        .start()
        .await
        .map_err(|e| format!("cannot start the client node: {e}"))?;
    let result = async {
        wait_until_linked(&flock, wait, &opts.seeds).await?;
        wait_registry_stable(&flock, wait, Duration::from_millis(opts.ae_interval_ms)).await?;
        act(flock.clone(), wait).await
    }
    .await;
    let _ = flock.leave().await;
    flock.shutdown();
    result
}

async fn wait_until_linked(flock: &Flock, wait: Duration, seeds: &[String]) -> Outcome {
    // A client hosts nothing itself: one host in its view means it linked
    // to the cluster.
    if flock.ready(1, wait).await.map_err(|e| e.to_string())? {
        return Ok(());
    }
    Err(format!(
        "no node answered within {wait:?} (seeds: {}); are the nodes running \
         (make node1 node2 node3) with the same cookie?",
        seeds.join(",")
    ))
}

/// Waits until this node's copy of the registry stopped changing for a few
/// anti-entropy intervals (the nodes send their full state to a new peer).
async fn wait_registry_stable(flock: &Flock, wait: Duration, ae: Duration) -> Outcome {
    let quiet = (ae * 3).max(Duration::from_millis(300));
    let deadline = Instant::now() + wait;
    let mut last = flock.birds().await.map_err(|e| e.to_string())?;
    last.sort();
    let mut since = Instant::now();
    loop {
        if since.elapsed() >= quiet {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the registry kept changing for {wait:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut now = flock.birds().await.map_err(|e| e.to_string())?;
        now.sort();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

/// `bird:2` before `bird:10`.
fn natural(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (head, tail) = name.split_at(name.len() - digits);
    (
        head.to_owned(),
        tail.parse().unwrap_or(u64::MAX),
        name.to_owned(),
    )
}

/// The names of the registry's `MyBird`s, in natural order.
async fn my_birds(flock: &Flock) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = flock
        .birds()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(_, kind)| kind == "walkthrough.MyBird")
        .map(|(name, _)| name)
        .collect();
    names.sort_by_key(|n| natural(n));
    Ok(names)
}

/// Pings every bird at once; the replies in the order of `names`.
async fn ping_all(
    flock: &Flock,
    names: &[String],
    timeout: Duration,
) -> Vec<Result<String, Error>> {
    let calls: Vec<_> = names
        .iter()
        .map(|n| {
            let addr = flock.addr::<MyBird>(n);
            actix::spawn(async move { addr.send_timeout(Ping, timeout).await })
        })
        .collect();
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        out.push(call.await.unwrap_or(Err(Error::Stopped)));
    }
    out
}

async fn run(flock: Flock, wait: Duration, num: u64) -> Outcome {
    let mut started = Vec::new();
    for i in 1..=num {
        let name = format!("bird:{i}");
        match flock.start::<MyBird>(&name, ()).await {
            Ok(()) => started.push(name),
            Err(Error::AlreadyExists { .. }) => println!("bird {name} already exists"),
            Err(e) => return Err(format!("starting {name}: {e}")),
        }
    }
    // Wait until each new bird answers: its owner has it, so the registry
    // change left this node (which is about to exit).
    let replies = ping_all(&flock, &started, wait).await;
    let mut failed = 0;
    for (name, reply) in started.iter().zip(replies) {
        match reply {
            Ok(node) => println!("started bird {name} on {node}"),
            Err(e) => {
                failed += 1;
                println!("bird {name} was started but does not answer: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} bird(s) did not answer within {wait:?}"));
    }
    Ok(())
}

async fn call(flock: Flock, wait: Duration) -> Outcome {
    let names = my_birds(&flock).await?;
    if names.is_empty() {
        println!("no birds in the registry (make run starts some)");
        return Ok(());
    }
    let replies = ping_all(&flock, &names, wait).await;
    let mut failed = 0;
    for (name, reply) in names.iter().zip(replies) {
        match reply {
            Ok(node) => println!("bird {name} replied {node}"),
            Err(e) => {
                failed += 1;
                println!("bird {name} failed: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} of {} bird(s) did not reply", names.len()));
    }
    Ok(())
}

async fn status(flock: Flock, wait: Duration) -> Outcome {
    let members = flock.members().await.map_err(|e| e.to_string())?;
    println!("members, as {} sees them:", flock.name());
    for m in &members {
        let role = if m.this_node {
            "this client"
        } else if m.weight == 0 {
            "client"
        } else {
            "host"
        };
        println!(
            "  {:<24} {:<16} weight {:<3} {:<8} {role}",
            m.name,
            m.addr,
            m.weight,
            format!("{:?}", m.status)
        );
    }
    let names = my_birds(&flock).await?;
    let replies = ping_all(&flock, &names, wait).await;
    let mut per_node: BTreeMap<String, Vec<&str>> = members
        .iter()
        .filter(|m| m.weight > 0 && m.status == MemberState::Up)
        .map(|m| (m.name.clone(), Vec::new()))
        .collect();
    let mut silent = Vec::new();
    for (name, reply) in names.iter().zip(replies) {
        match reply {
            Ok(node) => per_node.entry(node).or_default().push(name),
            Err(_) => silent.push(name.as_str()),
        }
    }
    println!("load: {} bird(s)", names.len());
    for (node, birds) in &per_node {
        let pct = 100.0 * birds.len() as f64 / names.len().max(1) as f64;
        let list = if birds.is_empty() {
            String::new()
        } else {
            format!(": {}", birds.join(" "))
        };
        println!(
            "  node {node} has {pct:.1} % of the load ({} out of {}){list}",
            birds.len(),
            names.len(),
        );
    }
    if !silent.is_empty() {
        println!("  no reply from: {}", silent.join(" "));
    }
    Ok(())
}

async fn stop(flock: Flock, wait: Duration, only: Vec<String>) -> Outcome {
    let names = if only.is_empty() {
        my_birds(&flock).await?
    } else {
        only
    };
    if names.is_empty() {
        println!("no birds to stop");
        return Ok(());
    }
    for name in &names {
        match flock.stop(name).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(format!("stopping {name}: {e}")),
        }
    }
    // Wait until every owner has heard: a call then finds no bird.
    let deadline = Instant::now() + wait;
    let mut running = names.clone();
    while !running.is_empty() {
        let replies = ping_all(&flock, &running, Duration::from_secs(1)).await;
        running = running
            .into_iter()
            .zip(replies)
            .filter(|(_, r)| !matches!(r, Err(Error::NotFound { .. })))
            .map(|(n, _)| n)
            .collect();
        if running.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "still running after {wait:?}: {}",
                running.join(" ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "stopped {} bird(s): {} .. {}",
        names.len(),
        names[0],
        names[names.len() - 1]
    );
    Ok(())
}
