//! Scenarios as data, and a seeded generator of random bounded ones.
#![allow(unreachable_pub)]

use std::fmt;

/// One step of a scenario. Nodes are indices `0..nodes`, names indices
/// into the harness's name table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `Flock::start` of bird `name`, asked of node `node`.
    Start { node: usize, name: usize },
    /// `Flock::stop` of bird `name`, asked of node `node`.
    Stop { node: usize, name: usize },
    /// A call to bird `name` from node `node` (answered or timed out later).
    Call { node: usize, name: usize },
    /// Cuts the link between two nodes (silent: nothing is delivered).
    Cut(usize, usize),
    /// Cuts every link of a node.
    Isolate(usize),
    /// Restores every link.
    Heal,
    /// Stops a node at once (its sockets close, like a process exit).
    Kill(usize),
    /// Starts a killed node again on the same name and address, with its
    /// wall clock `clock_back_ms` behind the others'.
    Restart { node: usize, clock_back_ms: u64 },
    /// Starts a killed node again on the same name and address, but with
    /// the wrong cluster cookie: every handshake with it fails until it is
    /// killed and restarted right (issue #9 item 5).
    RestartWithWrongCookie(usize),
    /// Lets simulated time pass.
    Advance(u64),
    /// Starts a second process with node `n`'s name (another address) next
    /// to it, lets it run a few seconds and stops it (issue #9 item 6). The
    /// process refused for the taken name must log so at error level.
    Twin(usize),
}

/// A scenario: a cluster size and the steps to run on it.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: Option<u64>,
    pub nodes: usize,
    pub ops: Vec<Op>,
    /// Every node's `forget_down_after_ms`, if not the harness's.
    pub forget_down_ms: Option<u64>,
    /// Every node's `full_sync_interval_ms`, if not the harness's.
    pub full_sync_ms: Option<u64>,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seed {
            Some(seed) => writeln!(f, "scenario (seed {seed}, {} nodes):", self.nodes)?,
            None => writeln!(f, "scenario ({} nodes):", self.nodes)?,
        }
        for (i, op) in self.ops.iter().enumerate() {
            writeln!(f, "  {i:3}: {op:?}")?;
        }
        Ok(())
    }
}

/// splitmix64: small, seedable and the same on every platform, so a seed
/// names one scenario for good.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

/// How many bird names a generated scenario uses.
pub const NAMES: usize = 20;

/// A random scenario over 3 to 5 nodes and [`NAMES`] names: 20 to 60 steps
/// of starts, stops, calls, partitions, kills, restarts (sometimes with the
/// clock stepped back or the wrong cookie) and time passing; it always ends
/// healed, with every node running right, after enough time to converge.
pub fn generate(seed: u64) -> Scenario {
    let mut rng = Rng::new(seed);
    let nodes = 3 + rng.index(3);
    let steps = 20 + rng.index(41);
    let mut alive = vec![true; nodes];
    // Running with the wrong cookie: killed and restarted right at the end.
    let mut wrong = vec![false; nodes];
    let mut ops = Vec::with_capacity(steps + nodes + 2);
    let pick_alive = |rng: &mut Rng, alive: &[bool]| {
        let live: Vec<usize> = (0..alive.len()).filter(|&i| alive[i]).collect();
        live[rng.index(live.len())]
    };
    for _ in 0..steps {
        let roll = rng.below(100);
        let op = match roll {
            0..=24 => Op::Start {
                node: pick_alive(&mut rng, &alive),
                name: rng.index(NAMES),
            },
            25..=36 => Op::Stop {
                node: pick_alive(&mut rng, &alive),
                name: rng.index(NAMES),
            },
            37..=51 => Op::Call {
                node: pick_alive(&mut rng, &alive),
                name: rng.index(NAMES),
            },
            52..=71 => Op::Advance(50 + rng.below(6_000)),
            72..=76 => {
                let a = rng.index(nodes);
                let b = (a + 1 + rng.index(nodes - 1)) % nodes;
                Op::Cut(a, b)
            }
            77..=81 => Op::Isolate(rng.index(nodes)),
            82..=89 => Op::Heal,
            90..=94 => {
                let live = alive.iter().filter(|&&a| a).count();
                if live <= 1 {
                    Op::Advance(500)
                } else {
                    let n = pick_alive(&mut rng, &alive);
                    alive[n] = false;
                    wrong[n] = false;
                    Op::Kill(n)
                }
            }
            _ => match (0..nodes).find(|&i| !alive[i]) {
                Some(n) if rng.below(6) == 0 => {
                    alive[n] = true;
                    wrong[n] = true;
                    Op::RestartWithWrongCookie(n)
                }
                Some(n) => {
                    alive[n] = true;
                    let clock_back_ms = if rng.below(4) == 0 {
                        1 + rng.below(120_000)
                    } else {
                        0
                    };
                    Op::Restart {
                        node: n,
                        clock_back_ms,
                    }
                }
                None => Op::Advance(200),
            },
        };
        ops.push(op);
    }
    ops.push(Op::Heal);
    for (n, wrong) in wrong.iter().enumerate() {
        if *wrong {
            ops.push(Op::Kill(n));
        }
    }
    for (n, alive) in alive.iter().zip(&wrong).map(|(a, w)| a & !w).enumerate() {
        if !alive {
            ops.push(Op::Restart {
                node: n,
                clock_back_ms: 0,
            });
        }
    }
    // Drawn last, so that the steps above stay what they were before twins
    // existed: a seed keeps naming the scenario it named. On by default since
    // the Ring judges a second link's incarnation before its duplicate-link
    // rule (`a_twin_of_the_node_every_peer_dialled_is_refused_loudly`, seed
    // 96); `FLOCK_SIM_TWINS=0` turns them off.
    if std::env::var("FLOCK_SIM_TWINS").map_or(true, |v| v != "0") && rng.below(8) == 0 {
        ops.push(Op::Twin(rng.index(nodes)));
    }
    ops.push(Op::Advance(20_000));
    Scenario {
        seed: Some(seed),
        nodes,
        ops,
        forget_down_ms: None,
        full_sync_ms: None,
    }
}

#[test]
fn a_seed_always_generates_the_same_scenario() {
    for seed in 0..50 {
        assert_eq!(generate(seed).ops, generate(seed).ops);
    }
    assert_ne!(generate(1).ops, generate(2).ops);
}
