use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The defaults: period 200 ms, suspicion 800 ms (down 1 s after a miss).
fn config() -> SwimConfig {
    SwimConfig::from_membership(200, 1_000)
}

fn id(name: &str) -> ReplicaId {
    ReplicaId {
        node: name.into(),
        incarnation: 7,
    }
}

/// A detector for "me" probing `members`.
fn detector(members: &[&str]) -> Detector {
    let mut d = Detector::new(config(), id("me"), 1);
    for m in members {
        d.add(id(m));
    }
    d
}

fn suspect(node: &str, inc: u64) -> Probe {
    Probe::Suspect {
        node: id(node),
        inc,
    }
}

fn name(i: usize) -> String {
    format!("n{i:03}")
}

/// `n` detectors that all probe each other, over a network that delivers
/// every frame at once (in the same step), with nodes that can be stopped
/// (they neither tick nor answer) and links that can be cut (silently).
struct Cluster {
    nodes: Vec<Detector>,
    now: u64,
    stopped: BTreeSet<usize>,
    cut: BTreeSet<(usize, usize)>,
    /// (time, observer, event)
    events: Vec<(u64, usize, Out)>,
}

impl Cluster {
    fn new(n: usize, seed: u64) -> Self {
        let mut nodes: Vec<Detector> = (0..n)
            .map(|i| Detector::new(config(), id(&name(i)), seed.wrapping_add(i as u64)))
            .collect();
        for (i, d) in nodes.iter_mut().enumerate() {
            for j in (0..n).filter(|&j| j != i) {
                d.add(id(&name(j)));
            }
        }
        Cluster {
            nodes,
            now: 0,
            stopped: BTreeSet::new(),
            cut: BTreeSet::new(),
            events: Vec::new(),
        }
    }

    fn index(name: &str) -> usize {
        name[1..].parse().unwrap()
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        !self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Ticks every running node, then delivers until nothing is in flight.
    fn step(&mut self) {
        let mut mail: Vec<(usize, usize, Probe)> = Vec::new();
        for i in 0..self.nodes.len() {
            if self.stopped.contains(&i) {
                continue;
            }
            let outs = self.nodes[i].tick(self.now);
            self.route(i, outs, &mut mail);
        }
        let mut rounds = 0;
        while !mail.is_empty() {
            rounds += 1;
            assert!(rounds < 100, "frames keep bouncing");
            for (from, to, probe) in std::mem::take(&mut mail) {
                if self.stopped.contains(&to) || !self.linked(from, to) {
                    continue;
                }
                let outs = self.nodes[to].on_probe(&name(from).into(), probe, self.now);
                self.route(to, outs, &mut mail);
            }
        }
    }

    fn route(&mut self, from: usize, outs: Vec<Out>, mail: &mut Vec<(usize, usize, Probe)>) {
        for out in outs {
            match out {
                Out::Send(to, p) => mail.push((from, Self::index(&to), p)),
                Out::Broadcast(p) => {
                    for to in self.nodes[from].members() {
                        mail.push((from, Self::index(to), p.clone()));
                    }
                }
                other => self.events.push((self.now, from, other)),
            }
        }
    }

    /// Runs until `until_ms` in steps of a quarter period (the shell's tick).
    fn run(&mut self, until_ms: u64) {
        while self.now < until_ms {
            self.now += 50;
            self.step();
        }
    }

    /// When each node declared `victim` down (nodes that did not: absent).
    fn downs_of(&self, victim: usize) -> BTreeMap<usize, u64> {
        let v: NodeName = name(victim).into();
        self.events
            .iter()
            .filter(|(_, _, e)| *e == Out::Down(v.clone()))
            .map(|(t, by, _)| (*by, *t))
            .collect()
    }

    fn any_event(&self, matches: impl Fn(&Out) -> bool) -> bool {
        self.events.iter().any(|(_, _, e)| matches(e))
    }
}

#[test]
fn the_timing_follows_the_membership_knobs() {
    let c = SwimConfig::from_membership(200, 1_000);
    assert_eq!(
        (c.period_ms, c.ack_timeout_ms, c.suspicion_ms),
        (200, 100, 800)
    );
    assert_eq!(c.suspicion_max_ms, 1_200);
    // A suspicion never stands for less than one period.
    assert_eq!(SwimConfig::from_membership(100, 200).suspicion_ms, 100);
}

#[test]
fn a_healthy_cluster_suspects_nobody() {
    let mut c = Cluster::new(20, 3);
    c.run(20_000);
    assert!(
        c.events.is_empty(),
        "events in a healthy cluster: {:?}",
        &c.events[..c.events.len().min(5)]
    );
}

#[test]
fn a_member_that_answers_an_indirect_probe_is_not_suspected() {
    let mut c = Cluster::new(5, 11);
    // n000's own link to n001 is dead both ways; everybody else's is fine.
    c.cut.insert((0, 1));
    c.run(10_000);
    assert!(!c.any_event(|e| matches!(e, Out::Suspected(_) | Out::Down(_))));
    // ...but n000 learns that its link to n001 is broken.
    assert!(
        c.events
            .iter()
            .any(|(_, by, e)| *by == 0 && *e == Out::LinkBroken("n001".into()))
    );
}

#[test]
fn a_member_nobody_reaches_is_suspected_then_down_everywhere() {
    let mut c = Cluster::new(5, 5);
    c.run(1_000);
    c.stopped.insert(4);
    let stop = c.now;
    c.run(stop + 3_000);
    let downs = c.downs_of(4);
    assert_eq!(downs.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3]);
    // The first probe of it came within two rounds of four periods; then a
    // period, and a suspicion confirmed by others.
    for t in downs.values() {
        assert!(
            *t - stop <= 8 * 200 + 200 + 1_600,
            "down after {} ms",
            t - stop
        );
    }
}

#[test]
fn a_suspicion_refuted_by_a_higher_incarnation_is_dropped() {
    let mut d = detector(&["x"]);
    let from: NodeName = "y".into();
    d.add(id("y"));
    let out = d.on_probe(&from, suspect("x", 0), 0);
    assert!(out.contains(&Out::Suspected("x".into())));
    assert!(d.is_suspected("x"));
    // The same incarnation does not refute.
    let x: NodeName = "x".into();
    d.on_probe(
        &x,
        Probe::Alive {
            node: id("x"),
            inc: 0,
        },
        100,
    );
    assert!(d.is_suspected("x"));
    let out = d.on_probe(
        &x,
        Probe::Alive {
            node: id("x"),
            inc: 1,
        },
        200,
    );
    assert_eq!(out, vec![Out::Refuted("x".into())]);
    assert!(!d.is_suspected("x"));
    // It is not declared down when the suspicion would have expired.
    assert!(!d.tick(5_000).iter().any(|o| matches!(o, Out::Down(_))));
}

#[test]
fn a_suspicion_of_an_older_incarnation_or_another_process_is_ignored() {
    let mut d = detector(&["x"]);
    let x: NodeName = "x".into();
    d.on_probe(
        &x,
        Probe::Alive {
            node: id("x"),
            inc: 3,
        },
        0,
    );
    let y: NodeName = "y".into();
    assert_eq!(d.on_probe(&y, suspect("x", 2), 10), vec![]);
    let other_process = ReplicaId {
        node: "x".into(),
        incarnation: 8,
    };
    assert_eq!(
        d.on_probe(
            &y,
            Probe::Suspect {
                node: other_process,
                inc: 9
            },
            10
        ),
        vec![]
    );
    assert!(!d.is_suspected("x"));
}

#[test]
fn a_suspicion_of_this_node_is_refuted_with_a_higher_incarnation() {
    let mut d = Detector::new(config(), id("me"), 1);
    d.add(id("y"));
    let y: NodeName = "y".into();
    let out = d.on_probe(&y, suspect("me", 0), 0);
    assert_eq!(
        out,
        vec![Out::Broadcast(Probe::Alive {
            node: id("me"),
            inc: 1
        })]
    );
    // A second copy of the same suspicion is already refuted.
    assert_eq!(d.on_probe(&y, suspect("me", 0), 1), vec![]);
    assert_eq!(d.incarnation(), 1);
}

#[test]
fn a_suspected_member_that_is_probed_hears_of_its_suspicion_from_the_prober() {
    let mut d = detector(&["x"]);
    d.on_probe(&"y".into(), suspect("x", 0), 0);
    let out = d.tick(0);
    assert!(
        matches!(&out[..], [Out::Send(a, Probe::Ping { .. }), Out::Send(b, Probe::Suspect { .. })] if &**a == "x" && &**b == "x"),
        "{out:?}"
    );
}

#[test]
fn a_suspicion_times_out_sooner_the_more_members_confirm_it() {
    let c = config();
    // (confirmations beyond the first, needed) -> timeout
    let table = [
        (0, 3, 1_200),
        (1, 3, 1_000),
        (2, 3, 884),
        (3, 3, 800),
        (0, 1, 1_200),
        (1, 1, 800),
        (0, 0, 800),
    ];
    for (extra, needed, want) in table {
        let by = (0..=extra).map(|i| NodeName::from(name(i))).collect();
        let s = Suspicion {
            since_ms: 0,
            by,
            needed,
        };
        assert_eq!(s.timeout_ms(&c), want, "{extra} confirmations of {needed}");
    }
}

#[test]
fn a_suspected_member_that_does_not_refute_is_down_after_the_suspicion_timeout() {
    // Two members: one other node can confirm; once it has, the timeout is
    // `suspicion_ms`.
    let mut d = detector(&["x", "y"]);
    d.on_probe(&"y".into(), suspect("x", 0), 1_000);
    assert!(d.tick(2_150).iter().all(|o| !matches!(o, Out::Down(_))));
    let out = d.tick(2_200);
    assert!(out.contains(&Out::Down("x".into())), "{out:?}");
    assert!(!d.is_member("x"));
    // Confirmed by as many suspecters as it has other members: down
    // `suspicion_ms` after the first.
    let mut d = detector(&["x", "y", "z"]);
    d.on_probe(&"y".into(), suspect("x", 0), 1_000);
    d.on_probe(&"z".into(), suspect("x", 0), 1_100);
    d.on_probe(&"q".into(), suspect("x", 0), 1_200);
    assert!(d.tick(1_750).iter().all(|o| !matches!(o, Out::Down(_))));
    assert!(d.tick(1_800).contains(&Out::Down("x".into())));
}

#[test]
fn a_node_that_misses_its_deadlines_probes_less_and_recovers() {
    let mut d = detector(&["x", "y"]);
    // Suspected twice by others: it was too slow for them.
    d.on_probe(&"y".into(), suspect("me", 0), 0);
    d.on_probe(&"y".into(), suspect("me", 1), 0);
    assert_eq!(d.health(), 2);
    // Its period is now three times as long.
    let pings = |d: &mut Detector, from: u64, to: u64| {
        let mut n = 0;
        let mut t = from;
        while t < to {
            t += 50;
            for o in d.tick(t) {
                if let Out::Send(who, Probe::Ping { .. }) = o {
                    n += 1;
                    d.heard(&who, t);
                }
            }
        }
        n
    };
    assert_eq!(pings(&mut d, 0, 600), 1);
    // Every answered probe brings it back towards health.
    pings(&mut d, 600, 3_000);
    assert_eq!(d.health(), 0);
    assert_eq!(pings(&mut d, 3_000, 4_000), 5);
}

#[test]
fn any_frame_from_the_target_answers_its_probe() {
    let mut d = detector(&["x"]);
    let out = d.tick(0);
    assert!(matches!(&out[..], [Out::Send(n, Probe::Ping { .. })] if &**n == "x"));
    d.heard("x", 20);
    // No indirect probes, no suspicion at the end of the period.
    assert_eq!(d.tick(150).len(), 0);
    let out = d.tick(200);
    assert!(!out.iter().any(|o| matches!(o, Out::Suspected(_))));
}

#[test]
fn a_late_tick_of_this_node_suspects_nobody() {
    let mut d = detector(&["x", "y"]);
    d.tick(0);
    // This node's thread was starved for 3 s: the acks wait in its mailbox.
    let out = d.tick(3_000);
    assert!(
        !out.iter().any(|o| matches!(o, Out::Suspected(_))),
        "{out:?}"
    );
}

#[test]
fn relays_are_bounded_and_expire() {
    let mut d = detector(&["x", "y"]);
    for seq in 0..5_000 {
        d.on_probe(
            &"y".into(),
            Probe::PingReq {
                seq,
                target: "x".into(),
            },
            0,
        );
    }
    assert_eq!(d.relays.len(), MAX_RELAYS);
    d.tick(1_000);
    assert!(d.relays.is_empty());
    // A ping request for a stranger is not relayed.
    let out = d.on_probe(
        &"y".into(),
        Probe::PingReq {
            seq: 1,
            target: "stranger".into(),
        },
        1_000,
    );
    assert_eq!(out, vec![]);
}

#[test]
fn probe_frames_have_pinned_bytes_and_garbage_is_ignored() {
    // Pinned: a change here is a wire change (ARCHITECTURE §13, §34).
    let ping = Probe::Ping { seq: 5 }.encode();
    assert_eq!(ping, [0x81, 0xa4, b'P', b'i', b'n', b'g', 0x91, 0x05]);
    let alive = Probe::Alive {
        node: id("a"),
        inc: 1,
    };
    assert_eq!(Probe::decode(&alive.encode()), Some(alive));
    assert_eq!(Probe::decode(&[0xc1]), None);
    assert_eq!(Probe::decode(b"\x81\xa5Later\x90"), None);
}

#[test]
fn a_sigstopped_member_of_a_hundred_is_down_everywhere_within_two_seconds() {
    for seed in [1, 2, 3, 42, 1_000] {
        let mut c = Cluster::new(100, seed);
        c.run(2_000);
        let victim = (seed as usize * 7) % 100;
        c.stopped.insert(victim);
        let stop = c.now;
        c.run(stop + 2_000);
        let downs = c.downs_of(victim);
        let sus: Vec<_> = c
            .events
            .iter()
            .filter(|(t, _, _)| *t >= stop)
            .take(5)
            .collect();
        assert_eq!(
            downs.len(),
            99,
            "seed {seed}: {} nodes dropped it; {sus:?}",
            downs.len()
        );
        let worst = downs.values().max().unwrap() - stop;
        assert!(
            worst <= 2_000,
            "seed {seed}: last node dropped it after {worst} ms"
        );
        // Nobody else was even suspected.
        assert!(
            !c.any_event(
                |e| matches!(e, Out::Suspected(n) | Out::Down(n) if Cluster::index(n) != victim)
            ),
            "seed {seed}"
        );
    }
}

#[test]
fn idle_frames_per_node_do_not_grow_with_the_cluster() {
    // Frames sent per node per period, healthy cluster: a ping and its ack,
    // plus the acks of the pings it receives (one on average).
    for n in [10, 100] {
        let mut c = Cluster::new(n, 9);
        let mut sent = 0usize;
        for _ in 0..200 {
            c.now += 50;
            for i in 0..n {
                let outs = c.nodes[i].tick(c.now);
                for o in outs {
                    if let Out::Send(to, p) = o {
                        sent += 1;
                        let j = Cluster::index(&to);
                        for back in c.nodes[j].on_probe(&name(i).into(), p, c.now) {
                            if let Out::Send(_, Probe::Ack { seq }) = back {
                                sent += 1;
                                c.nodes[i].on_probe(&to, Probe::Ack { seq }, c.now);
                            }
                        }
                    }
                }
            }
        }
        let periods = 200 / 4;
        let per_node = sent as f64 / n as f64 / periods as f64;
        assert!(
            (1.9..=2.1).contains(&per_node),
            "n = {n}: {per_node} frames per node per period"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_member_is_probed_once_per_round(n in 1usize..40, seed in any::<u64>()) {
        let mut d = Detector::new(config(), id("me"), seed);
        for j in 0..n {
            d.add(id(&name(j)));
        }
        let mut probed = Vec::new();
        for period in 0..n as u64 {
            for o in d.tick(period * 200) {
                if let Out::Send(to, Probe::Ping { seq }) = o {
                    probed.push(to.to_string());
                    d.heard(&to, period * 200 + 1);
                    let _ = seq;
                }
            }
        }
        probed.sort();
        let all: Vec<String> = (0..n).map(name).collect();
        prop_assert_eq!(probed, all);
    }

    #[test]
    fn a_stopped_member_is_down_everywhere_and_nobody_else_is(
        n in 3usize..16,
        seed in any::<u64>(),
        victim in any::<prop::sample::Index>(),
        warmup in 0u64..40,
    ) {
        let victim = victim.index(n);
        let mut c = Cluster::new(n, seed);
        c.run(warmup * 50);
        c.stopped.insert(victim);
        let stop = c.now;
        // Someone probes it within two rounds of n − 1 periods; nobody
        // else may confirm (three nodes): the longest suspicion.
        let bound = (2 * n as u64) * 200 + 200 + 1_200 + 100;
        c.run(stop + bound);
        let downs = c.downs_of(victim);
        prop_assert_eq!(downs.len(), n - 1);
        prop_assert!(downs.values().all(|t| t - stop <= bound));
        prop_assert!(!c.any_event(|e| matches!(e, Out::Suspected(x) | Out::Down(x) | Out::LinkBroken(x) if Cluster::index(x) != victim)));
    }

    #[test]
    fn a_partition_takes_each_side_out_of_the_others_view(
        n in 2usize..10,
        cut in 1usize..9,
        seed in any::<u64>(),
    ) {
        let cut = cut.min(n - 1);
        let mut c = Cluster::new(n, seed);
        c.run(1_000);
        for a in 0..cut {
            for b in cut..n {
                c.cut.insert((a, b));
            }
        }
        let start = c.now;
        c.run(start + (2 * n as u64) * 200 + 200 + 1_200 + 100);
        for a in 0..cut {
            for b in cut..n {
                let sees = |x: usize, y: usize| c.events.iter().any(|(_, by, e)| *by == x && *e == Out::Down(name(y).into()));
                prop_assert!(sees(a, b), "{} still sees {}", a, b);
                prop_assert!(sees(b, a), "{} still sees {}", b, a);
            }
        }
        // Nobody dropped a member of its own side.
        let same_side = |x: usize, y: usize| (x < cut) == (y < cut);
        prop_assert!(!c.events.iter().any(|(_, by, e)| matches!(e, Out::Down(y) if same_side(*by, Cluster::index(y)))));
    }
}
