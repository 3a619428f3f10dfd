use super::direct::{LaneQueue, Phase, Pushed, may_go_direct};
use super::{DataLanes, Effect, LanesConfig, lane_of};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Brings a new queue to a phase.
type Reach = fn(&mut LaneQueue<u32>);

#[test]
fn a_queue_takes_pushes_only_while_open() {
    // (phase, how it is reached, push accepted)
    let table: [(&str, Reach, bool); 3] = [
        ("waiting", |_| {}, false),
        ("open", |q| q.open(), true),
        (
            "closed",
            |q| {
                q.open();
                q.close();
            },
            false,
        ),
    ];
    for (what, reach, accepted) in table {
        let mut q = LaneQueue::new(100);
        reach(&mut q);
        let pushed = q.push(1, 7);
        assert_eq!(
            matches!(pushed, Pushed::Queued { .. }),
            accepted,
            "{what}: {pushed:?}"
        );
        if !accepted {
            assert_eq!(pushed, Pushed::NotOpen(7), "{what}");
        }
    }
}

#[test]
fn a_closed_queue_never_opens_again() {
    let mut q = LaneQueue::<u32>::new(100);
    q.close();
    q.open();
    assert_eq!(q.phase(), Phase::Closed);
}

#[test]
fn only_the_first_push_after_a_drain_wakes_the_link() {
    let mut q = LaneQueue::new(100);
    q.open();
    assert_eq!(q.push(1, 1), Pushed::Queued { wake: true });
    assert_eq!(q.push(1, 2), Pushed::Queued { wake: false });
    let mut got = Vec::new();
    // Partly drained: still scheduled, the next push wakes nobody.
    assert!(q.take(1, &mut got));
    assert_eq!(q.push(1, 3), Pushed::Queued { wake: false });
    assert!(!q.take(10, &mut got));
    assert_eq!(got, vec![1, 2, 3]);
    assert_eq!(q.push(1, 4), Pushed::Queued { wake: true });
}

#[test]
fn a_full_queue_refuses_but_always_takes_one_message() {
    let mut q = LaneQueue::new(10);
    q.open();
    assert_eq!(q.push(50, 1), Pushed::Queued { wake: true });
    assert_eq!(q.push(1, 2), Pushed::Full(2));
    let mut got = Vec::new();
    q.take(1, &mut got);
    assert_eq!(q.bytes(), 0);
    assert_eq!(q.push(6, 3), Pushed::Queued { wake: true });
    assert_eq!(q.push(4, 4), Pushed::Queued { wake: false });
    assert_eq!(q.push(1, 5), Pushed::Full(5));
}

#[test]
fn closing_returns_what_was_queued_in_order() {
    let mut q = LaneQueue::new(100);
    q.open();
    for i in 1..=3 {
        q.push(1, i);
    }
    assert_eq!(q.close(), vec![1, 2, 3]);
    assert!(q.is_empty());
    assert_eq!(q.push(1, 4), Pushed::NotOpen(4));
}

#[test]
fn an_idle_report_is_stale_once_anything_was_pushed() {
    let mut q = LaneQueue::new(100);
    q.open();
    let seen = q.pushes();
    assert!(q.quiet_since(seen));
    q.push(1, 1);
    let mut got = Vec::new();
    q.take(10, &mut got);
    // Empty again, but something passed since the report.
    assert!(!q.quiet_since(seen));
    assert!(q.quiet_since(q.pushes()));
}

#[test]
fn the_direct_path_waits_for_every_ticket() {
    assert!(may_go_direct(0));
    assert!(!may_go_direct(1));
}

/// A message: (sender, bird's shard, sequence of that sender to that bird).
type Msg = (u8, u32, u32);

/// What the control `Peer` finds in its mailbox.
enum Mail {
    Msg(Msg),
    Up { link: u64, lanes: u32, lane: u32 },
    Down(u64),
    Idle { link: u64, pushes: u64 },
}

#[derive(Debug, Clone)]
enum Op {
    Send { sender: u8, shard: u32 },
    Peer,
    LinkUp(usize),
    Drain(usize, usize),
    LinkFails(usize),
    IdleReport(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u32..4).prop_map(|(sender, shard)| Op::Send { sender, shard }),
        3 => Just(Op::Peer),
        1 => (0usize..6).prop_map(Op::LinkUp),
        2 => (0usize..6, 1usize..4).prop_map(|(i, k)| Op::Drain(i, k)),
        1 => (0usize..6).prop_map(Op::LinkFails),
        1 => (0usize..6).prop_map(Op::IdleReport),
    ]
}

/// One calling node and one peer, as the shell wires them: senders, the
/// `Peer`'s mailbox and `DataLanes`, the tickets, a queue per data link,
/// the published lanes, and what each link and the control link wrote.
struct World {
    lanes_count: u32,
    bound: usize,
    tickets: usize,
    mailbox: VecDeque<Mail>,
    lanes: DataLanes<Msg>,
    queues: BTreeMap<u64, LaneQueue<Msg>>,
    /// Links by opening order, with the shard they announced.
    opened: Vec<(u64, u32)>,
    alive: BTreeSet<u64>,
    /// The link published per lane (its queue may have closed since).
    published: BTreeMap<u32, u64>,
    /// Written, in order: a data link's writes are read in order by the
    /// peer, and a sender only changes links once the old one is closed.
    wire: Vec<Msg>,
    failed: Vec<Msg>,
    /// Links that died (not closed for idleness).
    deaths: usize,
    sent: BTreeMap<(u8, u32), u32>,
    now: u64,
}

impl World {
    fn new(lanes_count: u32, bound: usize) -> Self {
        World {
            lanes_count,
            bound,
            tickets: 0,
            mailbox: VecDeque::new(),
            lanes: DataLanes::new(LanesConfig {
                idle_ms: 0,
                max_queued_bytes: 1 << 20,
            }),
            queues: BTreeMap::new(),
            opened: Vec::new(),
            alive: BTreeSet::new(),
            published: BTreeMap::new(),
            wire: Vec::new(),
            failed: Vec::new(),
            deaths: 0,
            sent: BTreeMap::new(),
            now: 0,
        }
    }

    /// A caller sends: direct when no ticket is out and its lane's queue
    /// is published and open, else to the `Peer` with a ticket.
    fn send(&mut self, sender: u8, shard: u32) {
        let seq = self.sent.entry((sender, shard)).or_default();
        *seq += 1;
        let mut msg = (sender, shard, *seq);
        let lane = lane_of(shard, self.lanes_count);
        if may_go_direct(self.tickets)
            && let Some(queue) = self
                .published
                .get(&lane)
                .and_then(|link| self.queues.get_mut(link))
        {
            match queue.push(1, msg) {
                Pushed::Queued { .. } => return,
                Pushed::NotOpen(m) | Pushed::Full(m) => msg = m,
            }
        }
        self.tickets += 1;
        self.mailbox.push_back(Mail::Msg(msg));
    }

    fn peer_step(&mut self) {
        let Some(mail) = self.mailbox.pop_front() else {
            return;
        };
        let effects = match mail {
            Mail::Msg(msg) => self.lanes.route(msg.1, 1, msg, self.now),
            Mail::Up { link, lanes, lane } => {
                let effects = self.lanes.up(link, lanes, lane, self.now);
                if let Some(lane) = self.lanes.up_lane(link) {
                    if let Some(q) = self.queues.get_mut(&link) {
                        q.open();
                    }
                    self.published.insert(lane, link);
                }
                effects
            }
            Mail::Down(link) => self.lanes.failed(link, self.now),
            Mail::Idle { link, pushes } => {
                let quiet = self
                    .queues
                    .get(&link)
                    .is_some_and(|q| q.quiet_since(pushes));
                if !quiet {
                    return;
                }
                let effects = self.lanes.idle(link, self.now);
                if effects.contains(&Effect::Close { link })
                    && let Some(q) = self.queues.get_mut(&link)
                {
                    assert!(q.close().is_empty(), "an idle close strands nothing");
                }
                effects
            }
        };
        for effect in effects {
            match effect {
                Effect::Open { link, shard } => {
                    self.queues.insert(link, LaneQueue::new(self.bound));
                    self.opened.push((link, shard));
                    self.alive.insert(link);
                }
                Effect::Send { link, item } => {
                    match self.queues.get_mut(&link).map(|q| q.push(1, item)) {
                        Some(Pushed::Queued { .. }) => {}
                        Some(Pushed::NotOpen(m) | Pushed::Full(m)) => self.failed.push(m),
                        None => self.failed.push(item),
                    }
                    self.tickets -= 1;
                }
                Effect::Control(item) => {
                    self.wire.push(item);
                    self.tickets -= 1;
                }
                Effect::Fail(item) => {
                    self.failed.push(item);
                    self.tickets -= 1;
                }
                Effect::Close { link } => self.stop(link),
            }
        }
    }

    /// A data link stops: what its queue holds fails, the `Peer` hears.
    fn stop(&mut self, link: u64) {
        if self.alive.remove(&link) {
            if let Some(q) = self.queues.get_mut(&link) {
                self.failed.extend(q.close());
            }
            self.mailbox.push_back(Mail::Down(link));
        }
    }

    fn link(&self, i: usize) -> Option<(u64, u32)> {
        self.opened
            .get(i)
            .copied()
            .filter(|(link, _)| self.alive.contains(link))
    }

    fn apply(&mut self, op: Op) {
        self.now += 1;
        match op {
            Op::Send { sender, shard } => self.send(sender, shard),
            Op::Peer => self.peer_step(),
            Op::LinkUp(i) => {
                if let Some((link, shard)) = self.link(i)
                    && self.queues[&link].phase() == Phase::Waiting
                {
                    let lanes = self.lanes_count;
                    let lane = lane_of(shard, lanes);
                    self.mailbox.push_back(Mail::Up { link, lanes, lane });
                }
            }
            Op::Drain(i, k) => {
                if let Some((link, _)) = self.link(i)
                    && let Some(q) = self.queues.get_mut(&link)
                {
                    q.take(k, &mut self.wire);
                }
            }
            Op::LinkFails(i) => {
                if let Some((link, _)) = self.link(i) {
                    self.deaths += 1;
                    self.stop(link);
                }
            }
            Op::IdleReport(i) => {
                if let Some((link, _)) = self.link(i)
                    && let Some(q) = self.queues.get(&link)
                    && q.phase() == Phase::Open
                    && q.is_empty()
                {
                    let pushes = q.pushes();
                    self.mailbox.push_back(Mail::Idle { link, pushes });
                }
            }
        }
    }

    /// Runs until nothing moves: every mail handled, every link up, every
    /// queue drained.
    fn settle(&mut self) {
        for _ in 0..1000 {
            while !self.mailbox.is_empty() {
                self.peer_step();
            }
            let waiting: Vec<usize> = (0..self.opened.len())
                .filter(|&i| {
                    self.link(i)
                        .is_some_and(|(l, _)| self.queues[&l].phase() == Phase::Waiting)
                })
                .collect();
            for i in &waiting {
                self.apply(Op::LinkUp(*i));
            }
            for i in 0..self.opened.len() {
                self.apply(Op::Drain(i, usize::MAX));
            }
            if waiting.is_empty() && self.mailbox.is_empty() {
                return;
            }
        }
        panic!("the world does not settle");
    }
}

proptest! {
    /// Over random interleavings of sends, the `Peer`'s turns, links coming
    /// up, draining, dying and going idle: per sender and bird, what is
    /// written is in send order; nothing is written twice; once everything
    /// settled every message was written or failed, and failed only if a
    /// link died or its queue was full; no ticket is left out.
    #[test]
    fn per_sender_order_holds_and_nothing_is_lost_or_duplicated(
        ops in proptest::collection::vec(op(), 1..120),
        lanes_count in 1u32..4,
        bound in prop_oneof![Just(1usize << 20), 2usize..6],
    ) {
        let mut w = World::new(lanes_count, bound);
        for op in ops {
            w.apply(op);
        }
        w.settle();
        prop_assert_eq!(w.tickets, 0);
        let mut last: BTreeMap<(u8, u32), u32> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for &(sender, shard, seq) in &w.wire {
            prop_assert!(seen.insert((sender, shard, seq)), "written twice: {:?}", (sender, shard, seq));
            let prev = last.insert((sender, shard), seq).unwrap_or(0);
            prop_assert!(seq > prev, "{:?} overtook {}", (sender, shard, seq), prev);
        }
        for &m in &w.failed {
            prop_assert!(seen.insert(m), "failed and written, or failed twice: {:?}", m);
        }
        let total: u32 = w.sent.values().sum();
        prop_assert_eq!(seen.len(), total as usize, "every message written or failed");
        if w.deaths == 0 && bound >= 1 << 20 {
            prop_assert!(w.failed.is_empty(), "failed with no link dead: {:?}", w.failed);
        }
    }
}
