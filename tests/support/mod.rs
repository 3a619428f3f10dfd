//! Shared test support: a test bird, in-process nodes on real TCP, and
//! waiting for conditions with deadlines.
#![allow(dead_code, unreachable_pub)]

use flock_actix::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many `Echo` birds were hatched, per name (for restart assertions).
pub static HATCHED: AtomicU64 = AtomicU64::new(0);

/// A bird that reports where it runs, counts, panics and quits on request.
#[flock_bird(kind = "test.Echo", messages(Ping, Where, Add, Get, Boom, Quit))]
pub struct Echo {
    name: String,
    count: u64,
}

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Bird for Echo {
    type Args = u64;
    fn hatch(name: &str, start: u64, _nest: &Nest) -> Result<Self, HatchError> {
        HATCHED.fetch_add(1, Ordering::Relaxed);
        Ok(Echo {
            name: name.to_owned(),
            count: start,
        })
    }
}

/// Answered with the bird's name.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
pub struct Ping;

impl Handler<Ping> for Echo {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        self.name.clone()
    }
}

/// Answered with the node the bird runs on.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
pub struct Where;

impl Handler<Where> for Echo {
    type Result = String;
    fn handle(&mut self, _: Where, _: &mut Context<Self>) -> String {
        current_node().map(|n| n.to_string()).unwrap_or_default()
    }
}

/// Adds to the counter (a cast).
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Add(pub u64);

impl Handler<Add> for Echo {
    type Result = ();
    fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) {
        self.count += n;
    }
}

/// Answered with the counter.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
pub struct Get;

impl Handler<Get> for Echo {
    type Result = u64;
    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> u64 {
        self.count
    }
}

/// Panics in the handler.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Boom;

impl Handler<Boom> for Echo {
    type Result = ();
    fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
        panic!("boom, as asked");
    }
}

/// Stops the bird of its own accord.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Quit;

impl Handler<Quit> for Echo {
    type Result = ();
    fn handle(&mut self, _: Quit, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

pub fn init_logs() {
    let _ = env_logger::builder()
        .is_test(true)
        .filter_level(log::LevelFilter::Warn)
        .parse_env("RUST_LOG")
        .try_init();
}

/// Waits until `cond` holds, polling every 20 ms, failing after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node running in its own thread and actix System, over real TCP.
pub struct TestNode {
    pub flock: Flock,
    system: actix::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestNode {
    /// Starts node `name` with `seeds`; `edit` adjusts the builder.
    pub fn start(
        name: &str,
        seeds: Vec<String>,
        edit: impl FnOnce(FlockBuilder) -> FlockBuilder + Send + 'static,
    ) -> TestNode {
        let (tx, rx) = std::sync::mpsc::channel();
        let name = name.to_owned();
        let thread = std::thread::spawn(move || {
            let sys = actix::System::new();
            sys.block_on(async move {
                let builder = Flock::builder(name)
                    .listen("127.0.0.1:0")
                    .seeds(seeds)
                    .cookie("test-cookie")
                    .arbiters(1)
                    .bird::<Echo>();
                // FLOCK_TEST_DATA_LINKS=1 runs a multi-node suite over data
                // links (§26), 0 without them; unset: the library's default.
                let builder = match std::env::var("FLOCK_TEST_DATA_LINKS") {
                    Ok(v) => builder.data_links(v != "0"),
                    Err(_) => builder,
                };
                let flock = edit(builder).start().await;
                tx.send((flock, actix::System::current())).unwrap();
            });
            sys.run().unwrap();
        });
        let (flock, system) = rx.recv().unwrap();
        TestNode {
            flock: flock.expect("node starts"),
            system,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> String {
        self.flock.listen_addr().to_owned()
    }

    pub fn name(&self) -> String {
        self.flock.name().to_owned()
    }

    /// Stops the node abruptly: links close, nothing is handed over.
    pub fn kill(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.flock.shutdown();
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Starts `n` nodes `node1..noden`, each seeded with the first, and waits
/// until every node sees all of them up.
pub async fn cluster(n: usize) -> Vec<TestNode> {
    cluster_with(n, |b| b).await
}

pub async fn cluster_with(
    n: usize,
    edit: impl Fn(FlockBuilder) -> FlockBuilder + Send + Sync + Clone + 'static,
) -> Vec<TestNode> {
    let first = TestNode::start("node1@127.0.0.1", vec![], edit.clone());
    let seed = first.addr();
    let mut nodes = vec![first];
    for i in 2..=n {
        let edit = edit.clone();
        nodes.push(TestNode::start(
            &format!("node{i}@127.0.0.1"),
            vec![seed.clone()],
            edit,
        ));
    }
    let flocks: Vec<Flock> = nodes.iter().map(|n| n.flock.clone()).collect();
    meshed(&flocks, Duration::from_secs(10)).await;
    nodes
}

/// Waits (up to `limit`) until every one of `flocks` sees all of them up.
pub async fn meshed(flocks: &[Flock], limit: Duration) {
    wait_until(limit, "every node to see the full mesh", || {
        let flocks = flocks.to_vec();
        async move {
            for f in &flocks {
                if f.up_count().await.unwrap_or(0) != flocks.len() {
                    return false;
                }
            }
            true
        }
    })
    .await;
}

/// A shared counter of names, for unique bird names across tests.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// `prefix:1` .. `prefix:n`.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}:{i}")).collect()
}

/// `n` fresh names (`prefix-K:i`) that `owner` owns in `via`'s view.
pub fn names_owned_by(via: &Flock, owner: &str, prefix: &str, n: usize) -> Vec<String> {
    let prefix = unique(prefix);
    (0..)
        .map(|i| format!("{prefix}:{i}"))
        .filter(|name| via.owner_of(name).as_deref() == Ok(owner))
        .take(n)
        .collect()
}

/// Starts an `Echo` bird for every name through `flock`.
pub async fn start_all(flock: &Flock, names: &[String]) {
    for n in names {
        flock.start::<Echo>(n, 0).await.unwrap();
    }
}

/// Every bird answers `Where` through `via`, from the owner in `via`'s view.
pub async fn all_answer_from_owner(via: &Flock, names: &[String]) -> bool {
    for n in names {
        let Ok(owner) = via.owner_of(n) else {
            return false;
        };
        let got = via
            .addr::<Echo>(n)
            .send_timeout(Where, Duration::from_secs(1))
            .await;
        if got.as_deref() != Ok(owner.as_str()) {
            return false;
        }
    }
    true
}

/// How many birds run on each node, if every name runs exactly once.
pub async fn instances(
    nodes: &[&Flock],
    names: &[String],
) -> Option<std::collections::HashMap<String, usize>> {
    let mut seen = std::collections::HashSet::new();
    let mut per_node = std::collections::HashMap::new();
    for f in nodes {
        let local = f.local_birds().await.ok()?;
        per_node.insert(f.name().to_owned(), local.len());
        for b in local {
            if !seen.insert(b) {
                return None;
            }
        }
    }
    (seen.len() == names.len() && names.iter().all(|n| seen.contains(n))).then_some(per_node)
}
