//! Runs a [`Scenario`] on whole nodes (Ring, CrdtReplica, Registry, Peers)
//! in one current-thread actix System over the in-memory network, on a
//! paused tokio clock, and checks the invariants after every step.
#![allow(unreachable_pub)]

use crate::scenario::{NAMES, Op, Scenario};
use flock_actix::prelude::*;
use flock_actix::testing::{Faults, FaultyNetwork, MemoryNetwork};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

/// The simulated bird: answers with its own name.
#[flock_bird(kind = "sim.Bird", messages(Ping))]
pub struct SimBird {
    name: String,
}

impl Actor for SimBird {
    type Context = Context<Self>;
}

impl Bird for SimBird {
    type Args = ();
    fn hatch(name: &str, (): (), _: &Nest) -> Result<Self, HatchError> {
        Ok(SimBird {
            name: name.to_owned(),
        })
    }
}

/// Answered with the bird's name.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
pub struct Ping;

impl Handler<Ping> for SimBird {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        self.name.clone()
    }
}

/// The simulated wall clock's origin (any fixed date works).
const EPOCH_MS: u64 = 1_800_000_000_000;
/// How long the cluster must be left alone (no start, stop, fault, kill or
/// restart) before the eventual invariants must hold: failure detection
/// (1 s), reconnection backoff (≤ 2 s), delta retries (2 s) and handover,
/// with margin, and one digest exchange (every 5 s by default: what repairs
/// a change only a node that then died had relayed, docs/ARCHITECTURE.md
/// §24). The nodes run the production full-sync period (300 s) unless
/// `FLOCK_SIM_FULL_SYNC_MS` or the scenario says otherwise, and the
/// production digest period unless `FLOCK_SIM_DIGEST_MS` says otherwise
/// (0: no digests, as before §24).
pub const QUIET_MS: u64 = 12_000;
/// How long a down member is remembered: 20 s, shorter than many generated
/// partitions and kills, so the sweep forgets members and heals partitions
/// that outlasted it (which split the cluster for good before configured
/// seeds stayed dialable), and checks that a member killed for longer is
/// no longer listed. `FLOCK_SIM_FORGET_MS` overrides it.
const FORGET_DOWN_MS: u64 = 20_000;
/// The call timeout of every node.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after its deadline a call may still be unanswered.
const CALL_GRACE: Duration = Duration::from_secs(1);
/// The longest one query of a node's state may take (simulated).
const QUERY_LIMIT: Duration = Duration::from_secs(5);

/// What the model knows about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unknown,
    /// Started with `Ok` and not stopped since: must survive every heal.
    Present,
    /// Stopped with `Ok` while the cluster was converged and whole: must
    /// stay absent.
    Absent,
}

struct Call {
    step: usize,
    name: String,
    deadline: Instant,
    outcomes: Vec<std::result::Result<String, String>>,
    /// When each outcome arrived (simulated ms since the start), for the
    /// fingerprint.
    answered_ms: Vec<u64>,
}

/// What one run saw, for the determinism check and the figures.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub trace: Vec<String>,
    pub converged_checks: usize,
    pub calls: usize,
    pub simulated_ms: u64,
}

struct Sim<'a> {
    scenario: &'a Scenario,
    memory: Arc<MemoryNetwork>,
    faults: Faults,
    nodes: Vec<Option<Flock>>,
    /// When each node not running was killed.
    killed_at: Vec<Option<Instant>>,
    cuts: HashSet<(usize, usize)>,
    isolated: HashSet<usize>,
    /// Nodes running with the wrong cookie: linked to nobody.
    wrong_cookie: HashSet<usize>,
    start: Instant,
    last_disturbance: Instant,
    /// Whether the last check found the whole cluster converged, with
    /// nothing disturbing it since.
    converged: bool,
    /// When the whole cluster last passed the convergence check.
    last_converged: Instant,
    model: Vec<(Expect, Instant)>,
    calls: Rc<RefCell<Vec<Call>>>,
    out: Outcome,
}

fn node_name(n: usize) -> String {
    format!("n{n}")
}

fn addr(n: usize) -> String {
    format!("n{n}:1")
}

/// Where a second process named like node `n` listens.
fn twin_addr(n: usize) -> String {
    format!("n{n}:2")
}

/// How long a twin process runs next to the node whose name it took: its
/// handshake, the peers taking it for a restart, the original redialling
/// (≤ 2 s of backoff) and being refused, with margin.
const TWIN_MS: u64 = 8_000;

pub fn bird_name(i: usize) -> String {
    format!("b{i:02}")
}

/// Runs `scenario`; `Err` names the step and the invariant that broke.
pub fn run(scenario: &Scenario) -> Result<Outcome, String> {
    crate::logs::install();
    let system = actix_rt::System::new();
    system.block_on(async {
        // The clock stands still and jumps to the next timer whenever every
        // task is idle: seconds of cluster time cost microseconds.
        tokio::time::pause();
        let now = Instant::now();
        let mut sim = Sim {
            scenario,
            memory: Arc::new(MemoryNetwork::new()),
            faults: Faults::new(),
            nodes: vec![None; scenario.nodes],
            killed_at: vec![None; scenario.nodes],
            cuts: HashSet::new(),
            isolated: HashSet::new(),
            wrong_cookie: HashSet::new(),
            start: now,
            last_disturbance: now,
            converged: false,
            last_converged: now,
            model: vec![(Expect::Unknown, now); NAMES],
            calls: Rc::default(),
            out: Outcome::default(),
        };
        let result = sim.run().await;
        for node in sim.nodes.iter().flatten() {
            node.shutdown();
        }
        let result = result.map_err(|e| {
            format!(
                "{e}\ntrace (step, simulated ms, operation -> result):\n  {}",
                sim.out.trace.join("\n  ")
            )
        });
        result.map(|()| {
            sim.out.calls = sim.calls.borrow().len();
            sim.out.simulated_ms = sim.elapsed_ms();
            sim.out
        })
    })
}

impl Sim<'_> {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(&mut self) -> Result<(), String> {
        for n in 0..self.scenario.nodes {
            self.boot(n, 0)
                .await
                .map_err(|e| format!("boot n{n}: {e}"))?;
        }
        sleep(Duration::from_millis(QUIET_MS)).await;
        self.check(usize::MAX)
            .await
            .map_err(|e| format!("after boot: {e}"))?;
        for (i, op) in self.scenario.ops.iter().enumerate() {
            let note = self
                .apply(i, op)
                .await
                .map_err(|e| format!("step {i} {op:?}: {e}"))?;
            // Let the messages the step sent be handled before looking.
            sleep(Duration::from_millis(1)).await;
            self.check(i)
                .await
                .map_err(|e| format!("after step {i} {op:?} (t={} ms): {e}", self.elapsed_ms()))?;
            let print = self.fingerprint().await;
            self.out.trace.push(format!(
                "{i} t={} {op:?} -> {note} [state {print:016x}]",
                self.elapsed_ms()
            ));
        }
        if !self.converged {
            return Err("the scenario ended without the cluster converging".into());
        }
        Ok(())
    }

    async fn boot(&mut self, n: usize, clock_back_ms: u64) -> flock_actix::Result<()> {
        let cookie = if self.wrong_cookie.contains(&n) {
            "not the cluster's cookie"
        } else {
            "sim cookie"
        };
        let flock = self.launch(n, addr(n), clock_back_ms, cookie).await?;
        self.nodes[n] = Some(flock);
        self.killed_at[n] = None;
        Ok(())
    }

    /// Starts a process named like node `n`, listening on `listen`.
    async fn launch(
        &self,
        n: usize,
        listen: String,
        clock_back_ms: u64,
        cookie: &str,
    ) -> flock_actix::Result<Flock> {
        let network = Arc::new(FaultyNetwork::new(self.memory.clone(), self.faults.clone()));
        let origin = self.start;
        let clock: Arc<dyn Fn() -> u64 + Send + Sync> = Arc::new(move || {
            let elapsed = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
            (EPOCH_MS + elapsed).saturating_sub(clock_back_ms)
        });
        let seeds: Vec<String> = (0..self.scenario.nodes)
            .filter(|&m| m != n)
            .map(addr)
            .collect();
        let full_sync_ms = self
            .scenario
            .full_sync_ms
            .or_else(|| env_opt("FLOCK_SIM_FULL_SYNC_MS"));
        let digest_ms = env_opt("FLOCK_SIM_DIGEST_MS");
        let forget_ms = self.forget_ms();
        let mut last = None;
        // A killed node's listener goes away once its Ring has stopped.
        for _ in 0..20 {
            let started = Flock::builder(node_name(n))
                .listen(listen.clone())
                .cookie(cookie)
                .seeds(seeds.clone())
                .network(network.clone())
                .arbiters(0)
                .call_timeout(CALL_TIMEOUT)
                .configure(|c| {
                    c.wall_clock = Some(clock.clone());
                    c.service_threads = false;
                    if let Some(ms) = full_sync_ms {
                        c.anti_entropy.full_sync_interval_ms = ms;
                    }
                    if let Some(ms) = digest_ms {
                        c.anti_entropy.digest_interval_ms = ms;
                    }
                    c.membership.forget_down_after_ms = forget_ms;
                })
                .bird::<SimBird>()
                .start()
                .await;
            match started {
                Ok(flock) => return Ok(flock),
                Err(e) => last = Some(e),
            }
            sleep(Duration::from_millis(50)).await;
        }
        Err(last.unwrap_or(flock_actix::Error::Stopped))
    }

    fn forget_ms(&self) -> u64 {
        self.scenario
            .forget_down_ms
            .unwrap_or_else(|| env_or("FLOCK_SIM_FORGET_MS", FORGET_DOWN_MS))
    }

    fn node(&self, n: usize) -> Result<&Flock, String> {
        self.nodes[n]
            .as_ref()
            .ok_or_else(|| format!("the scenario uses n{n}, which is not running"))
    }

    fn disturb(&mut self) {
        self.last_disturbance = Instant::now();
        self.converged = false;
    }

    async fn apply(&mut self, step: usize, op: &Op) -> Result<String, String> {
        match *op {
            Op::Start { node, name } => {
                self.disturb();
                let r = self
                    .node(node)?
                    .start::<SimBird>(&bird_name(name), ())
                    .await;
                if r.is_ok() {
                    self.model[name] = (Expect::Present, Instant::now());
                }
                Ok(format!("{r:?}"))
            }
            Op::Stop { node, name } => {
                let whole = self.converged;
                self.disturb();
                let r = self.node(node)?.stop(&bird_name(name)).await;
                match &r {
                    // A stop that saw everything removes every add; one made
                    // in a partition or before convergence may miss an add
                    // that then survives (add-wins), so the model forgets.
                    Ok(()) if whole => self.model[name] = (Expect::Absent, Instant::now()),
                    Ok(()) => self.model[name] = (Expect::Unknown, Instant::now()),
                    Err(_) => {}
                }
                Ok(format!("{r:?}"))
            }
            Op::Call { node, name } => {
                let addr = self.node(node)?.addr::<SimBird>(&bird_name(name));
                let calls = self.calls.clone();
                let origin = self.start;
                let index = {
                    let mut calls = calls.borrow_mut();
                    calls.push(Call {
                        step,
                        name: bird_name(name),
                        deadline: Instant::now() + CALL_TIMEOUT,
                        outcomes: Vec::new(),
                        answered_ms: Vec::new(),
                    });
                    calls.len() - 1
                };
                actix::spawn(async move {
                    let r = addr.send(Ping).await.map_err(|e| format!("{e}"));
                    let at = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let mut calls = calls.borrow_mut();
                    calls[index].outcomes.push(r);
                    calls[index].answered_ms.push(at);
                });
                Ok("spawned".into())
            }
            Op::Cut(a, b) => {
                self.disturb();
                self.cuts.insert((a.min(b), a.max(b)));
                self.faults.cut(&addr(a), &addr(b));
                Ok(String::new())
            }
            Op::Isolate(n) => {
                self.disturb();
                self.isolated.insert(n);
                self.faults.isolate(&addr(n));
                Ok(String::new())
            }
            Op::Heal => {
                self.disturb();
                self.cuts.clear();
                self.isolated.clear();
                self.faults.heal_all();
                Ok(String::new())
            }
            Op::Kill(n) => {
                self.disturb();
                let flock = self.nodes[n]
                    .take()
                    .ok_or_else(|| format!("n{n} is not running"))?;
                flock.shutdown();
                self.killed_at[n] = Some(Instant::now());
                // What the killed node had not replicated yet may be gone.
                let since = self.last_converged;
                for (expect, at) in &mut self.model {
                    if *at >= since {
                        *expect = Expect::Unknown;
                    }
                }
                Ok(String::new())
            }
            Op::Restart {
                node,
                clock_back_ms,
            } => {
                self.disturb();
                if self.nodes[node].is_some() {
                    return Err(format!("n{node} is already running"));
                }
                self.wrong_cookie.remove(&node);
                // A restart takes a moment, and gets a new incarnation.
                sleep(Duration::from_millis(10)).await;
                self.boot(node, clock_back_ms)
                    .await
                    .map_err(|e| format!("restart: {e}"))?;
                Ok(String::new())
            }
            Op::RestartWithWrongCookie(node) => {
                self.disturb();
                if self.nodes[node].is_some() {
                    return Err(format!("n{node} is already running"));
                }
                self.wrong_cookie.insert(node);
                sleep(Duration::from_millis(10)).await;
                self.boot(node, 0)
                    .await
                    .map_err(|e| format!("restart: {e}"))?;
                Ok(String::new())
            }
            Op::Advance(ms) => {
                sleep(Duration::from_millis(ms)).await;
                Ok(String::new())
            }
            Op::Twin(n) => self.twin(n).await,
        }
    }

    /// Issue #9 item 6: a second live process with node `n`'s name runs
    /// for [`TWIN_MS`], then exits. It is never a silent split: within that
    /// time the process refused for the taken name (the older one: peers
    /// take the newer for a restart) must have logged so at error level.
    async fn twin(&mut self, n: usize) -> Result<String, String> {
        if self.nodes[n].is_none() {
            return Ok(format!("n{n} is not running: no twin"));
        }
        self.disturb();
        let mark = crate::logs::mark();
        // Started later: the newer incarnation.
        sleep(Duration::from_millis(10)).await;
        let twin = self
            .launch(n, twin_addr(n), 0, "sim cookie")
            .await
            .map_err(|e| format!("twin of n{n}: {e}"))?;
        let refused = format!("node {} is refused by", node_name(n));
        let taken = format!("node name {} is taken", node_name(n));
        let deadline = Instant::now() + Duration::from_millis(TWIN_MS);
        let mut found = None;
        while found.is_none() && Instant::now() < deadline {
            sleep(Duration::from_millis(100)).await;
            found = crate::logs::since(mark)
                .into_iter()
                .find(|line| line.contains(&refused) && line.contains(&taken));
        }
        twin.shutdown();
        self.disturb();
        let line = found.ok_or_else(|| {
            format!(
                "a second process named n{n} ran {TWIN_MS} ms next to it and no process \
                 logged at error level that it was refused for a taken name: a silent split"
            )
        })?;
        // The line names incarnations, which follow the simulated clock:
        // the trace keeps only what it says.
        Ok(format!(
            "refused loudly: {}",
            line.split(':').next().unwrap_or("")
        ))
    }

    /// Live nodes split by the current cuts; `None` unless every group is
    /// fully linked inside (a clean partition, where "one side" means
    /// something).
    fn components(&self) -> Option<Vec<Vec<usize>>> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].is_some())
            .collect();
        let linked = |a: usize, b: usize| {
            !self.wrong_cookie.contains(&a)
                && !self.wrong_cookie.contains(&b)
                && !self.isolated.contains(&a)
                && !self.isolated.contains(&b)
                && !self.cuts.contains(&(a.min(b), a.max(b)))
        };
        let mut seen = BTreeSet::new();
        let mut groups = Vec::new();
        for &n in &live {
            if !seen.insert(n) {
                continue;
            }
            let mut group = vec![n];
            let mut i = 0;
            while i < group.len() {
                for &m in &live {
                    if linked(group[i], m) && seen.insert(m) {
                        group.push(m);
                    }
                }
                i += 1;
            }
            group.sort_unstable();
            groups.push(group);
        }
        let clean = groups
            .iter()
            .all(|g| g.iter().all(|&a| g.iter().all(|&b| a == b || linked(a, b))));
        clean.then_some(groups)
    }

    async fn check(&mut self, step: usize) -> Result<(), String> {
        self.check_calls(step)?;
        if self.last_disturbance.elapsed() < Duration::from_millis(QUIET_MS) {
            return Ok(());
        }
        let Some(groups) = self.components() else {
            return Ok(());
        };
        // Replicas are only promised equal once every link is back: on one
        // side of a partition, a node that once heard from an unreachable
        // origin refuses that origin's dots relayed by others (the trust
        // model), so it may lag its side's other nodes until the heal.
        // `FLOCK_SIM_STRICT=1` checks it on each side anyway (seeds 45, 182).
        let strict = groups.len() == 1 || std::env::var_os("FLOCK_SIM_STRICT").is_some();
        for group in &groups {
            self.check_side(group, strict).await?;
        }
        if groups.len() == 1 {
            self.check_model(&groups[0]).await?;
            self.converged = true;
            self.last_converged = Instant::now();
        }
        self.out.converged_checks += 1;
        Ok(())
    }

    /// A hash of everything observable after a step: every node's whole
    /// replica (dots and context), its members and their status, the birds
    /// it runs, and every call's answers with the time they came. Two runs
    /// of one seed must agree on every step's print
    /// (`the_same_seed_replays_the_same_trace`).
    async fn fingerprint(&self) -> u64 {
        let mut seen = String::new();
        for (n, node) in self.nodes.iter().enumerate() {
            let Some(flock) = node else {
                seen.push_str(&format!("n{n} down\n"));
                continue;
            };
            let members = query(flock.members(), n, "members").await.map(|ms| {
                ms.into_iter()
                    .map(|m| format!("{}:{:?}", m.name, m.status))
                    .collect::<Vec<_>>()
            });
            let state = query(flock.replica_state(), n, "replica_state").await;
            let mut local = query(flock.local_birds(), n, "local_birds").await;
            if let Ok(local) = &mut local {
                local.sort();
            }
            seen.push_str(&format!("n{n} {members:?} {state:?} {local:?}\n"));
        }
        for call in self.calls.borrow().iter() {
            seen.push_str(&format!(
                "call {} {} {:?} {:?}\n",
                call.step, call.name, call.outcomes, call.answered_ms
            ));
        }
        fnv1a(seen.as_bytes())
    }

    /// Every call was answered at most once, by the bird it named, and
    /// every call past its deadline was answered or timed out.
    fn check_calls(&self, step: usize) -> Result<(), String> {
        let now = Instant::now();
        for call in self.calls.borrow().iter() {
            if call.outcomes.len() > 1 {
                return Err(format!(
                    "call from step {} to {} answered {} times: {:?}",
                    call.step,
                    call.name,
                    call.outcomes.len(),
                    call.outcomes
                ));
            }
            if call.outcomes.is_empty() && now > call.deadline + CALL_GRACE {
                return Err(format!(
                    "call from step {} to {} still unanswered at step {step}, past its deadline",
                    call.step, call.name
                ));
            }
            if let Some(Ok(answer)) = call.outcomes.first()
                && *answer != call.name
            {
                return Err(format!(
                    "call from step {} to {} was answered by bird {answer}",
                    call.step, call.name
                ));
            }
        }
        Ok(())
    }

    /// One side of a (possibly absent) partition, left alone long enough:
    /// its members see exactly each other up and run no bird twice; if
    /// `whole` (no partition), they also hold equal replicas and run every
    /// bird of the replica exactly once between them.
    async fn check_side(&self, group: &[usize], whole: bool) -> Result<(), String> {
        let want_up: BTreeSet<String> = group.iter().map(|&n| node_name(n)).collect();
        let mut replicas: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        let mut running: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &n in group {
            let flock = self.node(n)?;
            let members = query(flock.members(), n, "members").await?;
            let up: BTreeSet<String> = members
                .iter()
                .filter(|m| m.status == flock_actix::MemberState::Up)
                .map(|m| m.name.clone())
                .collect();
            if up != want_up {
                return Err(format!(
                    "n{n} sees {up:?} up, expected its side {want_up:?}"
                ));
            }
            // Issue #9 item 7: a member down for longer than
            // forget_down_after_ms is no longer listed (one membership
            // tick of margin).
            let forget = Duration::from_millis(self.forget_ms() + 500);
            for (dead, at) in self.killed_at.iter().enumerate() {
                if at.is_some_and(|at| at.elapsed() > forget)
                    && members.iter().any(|m| m.name == node_name(dead))
                {
                    return Err(format!(
                        "n{n} still lists n{dead}, killed more than {forget:?} ago"
                    ));
                }
            }
            let birds = query(flock.birds(), n, "birds").await?;
            replicas.insert(n, birds.into_iter().map(|(name, _)| name).collect());
            for name in query(flock.local_birds(), n, "local_birds").await? {
                running.entry(name).or_default().push(n);
            }
        }
        for (name, hosts) in &running {
            if hosts.len() > 1 {
                return Err(format!(
                    "{name} runs {} times on one side: on {hosts:?}",
                    hosts.len()
                ));
            }
        }
        if !whole {
            return Ok(());
        }
        let (_, replica) = replicas.iter().next().ok_or("an empty side")?;
        if replicas.values().any(|other| other != replica) {
            return Err(format!("replicas differ on one side: {replicas:?}"));
        }
        for (name, hosts) in &running {
            if !replica.contains(name) {
                return Err(format!(
                    "{name} runs on {hosts:?} but is not in the registry"
                ));
            }
        }
        if let Some(missing) = replica.iter().find(|name| !running.contains_key(*name)) {
            return Err(format!(
                "{missing} is in the registry of side {group:?} but runs nowhere"
            ));
        }
        Ok(())
    }

    /// The whole cluster, converged: no started bird was lost, no bird
    /// stopped in a converged cluster came back.
    async fn check_model(&self, group: &[usize]) -> Result<(), String> {
        let n = group[0];
        let birds = query(self.node(n)?.birds(), n, "birds").await?;
        let replica: BTreeSet<String> = birds.into_iter().map(|(name, _)| name).collect();
        for (i, (expect, _)) in self.model.iter().enumerate() {
            let name = bird_name(i);
            match expect {
                Expect::Present if !replica.contains(&name) => {
                    return Err(format!("{name} was started and never stopped, but is lost"));
                }
                Expect::Absent if replica.contains(&name) => {
                    return Err(format!("{name} was stopped, but came back"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// FNV-1a, 64 bits: a fixed, seedless hash, the same in every process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn env_or(key: &str, default: u64) -> u64 {
    env_opt(key).unwrap_or(default)
}

fn env_opt(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

async fn query<T>(
    f: impl std::future::Future<Output = flock_actix::Result<T>>,
    n: usize,
    what: &str,
) -> Result<T, String> {
    match timeout(QUERY_LIMIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("n{n}.{what}(): {e}")),
        Err(_) => Err(format!(
            "n{n}.{what}() did not answer within {QUERY_LIMIT:?}"
        )),
    }
}
