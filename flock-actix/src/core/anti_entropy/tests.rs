//! Behaviours of the anti-entropy bookkeeping.

use super::*;
use crate::core::crdt::{BirdSpec, Replica};
use proptest::prelude::*;

fn rid(node: &str, incarnation: u64) -> ReplicaId {
    ReplicaId {
        node: node.into(),
        incarnation,
    }
}

fn spec(k: u8) -> BirdSpec {
    BirdSpec {
        kind: format!("kind{k}"),
        args: vec![k],
    }
}

fn config(max_buffered_deltas: usize) -> AntiEntropyConfig {
    AntiEntropyConfig {
        interval_ms: 100,
        retry_ms: 1_000,
        max_buffered_deltas,
        full_sync_interval_ms: 60_000,
    }
}

/// A node with a replica and its bookkeeping.
struct Node {
    replica: Replica,
    ae: AntiEntropy,
}

impl Node {
    fn new(name: &str, max_buffered: usize) -> Self {
        Self {
            replica: Replica::new(rid(name, 1)),
            ae: AntiEntropy::new(config(max_buffered)).unwrap(),
        }
    }

    fn add(&mut self, name: &str, k: u8) -> u64 {
        let delta = self.replica.add(name, spec(k), 0).unwrap();
        self.ae.record(delta)
    }

    fn poll(&mut self, now: u64) -> Vec<(ReplicaId, SyncMessage)> {
        self.ae.poll(now, self.replica.state())
    }
}

/// The receiver side: join, and return the seq to acknowledge.
fn receive(replica: &mut Replica, from: &ReplicaId, msg: &SyncMessage) -> u64 {
    match msg {
        SyncMessage::Deltas { to_seq, delta, .. } => {
            replica.join(from, delta).unwrap();
            *to_seq
        }
        SyncMessage::Full { seq, state } => {
            replica.join(from, state).unwrap();
            *seq
        }
    }
}

#[test]
fn config_validation_rejects_out_of_range_values() {
    assert!(AntiEntropyConfig::default().validate().is_ok());
    for bad in [
        AntiEntropyConfig {
            interval_ms: 0,
            ..config(10)
        },
        AntiEntropyConfig {
            retry_ms: 50,
            ..config(10)
        },
        config(0),
        AntiEntropyConfig {
            full_sync_interval_ms: 999,
            ..config(10)
        },
    ] {
        assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
        assert!(matches!(
            AntiEntropy::new(bad),
            Err(Error::InvalidConfig(_))
        ));
    }
}

#[test]
fn new_peer_gets_full_state() {
    let mut a = Node::new("a", 10);
    a.add("x", 1);
    a.add("y", 1);
    a.ae.peer_up(&rid("b", 1));
    let out = a.poll(0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, rid("b", 1));
    match &out[0].1 {
        SyncMessage::Full { seq, state } => {
            assert_eq!(*seq, 2);
            assert_eq!(state, a.replica.state());
        }
        other => panic!("expected a full state, got {other:?}"),
    }
}

#[test]
fn new_peer_gets_full_state_even_before_any_local_delta() {
    // The state may hold what this node learnt from others.
    let mut a = Node::new("a", 10);
    let mut other = Replica::new(rid("c", 1));
    a.replica
        .join(&rid("c", 1), &other.add("x", spec(1), 0).unwrap())
        .unwrap();
    a.ae.peer_up(&rid("b", 1));
    match &a.poll(0)[..] {
        [(_, SyncMessage::Full { seq: 0, state })] => assert!(state.contains("x")),
        other => panic!("expected a full state, got {other:?}"),
    }
    assert!(a.ae.on_ack(&rid("b", 1), 0));
    assert!(a.poll(5_000).is_empty(), "acknowledged");
}

#[test]
fn caught_up_peer_gets_only_unacked_deltas_joined() {
    let mut a = Node::new("a", 10);
    let mut b = Replica::new(rid("b", 1));
    a.ae.peer_up(b.id());
    a.add("x", 1);
    let out = a.poll(0);
    let ack = receive(&mut b, &rid("a", 1), &out[0].1);
    assert!(a.ae.on_ack(b.id(), ack));
    a.add("y", 1);
    a.add("z", 1);
    let delta_z = a.replica.remove("x");
    a.ae.record(delta_z);
    let out = a.poll(100);
    match &out[..] {
        [
            (
                _,
                SyncMessage::Deltas {
                    from_seq,
                    to_seq,
                    delta,
                },
            ),
        ] => {
            assert_eq!((*from_seq, *to_seq), (2, 4));
            assert!(!delta.contains("x"));
            assert!(delta.contains("y") && delta.contains("z"));
            let ack = receive(&mut b, &rid("a", 1), &out[0].1);
            assert_eq!(ack, 4);
        }
        other => panic!("expected one delta interval, got {other:?}"),
    }
    assert_eq!(b.state(), a.replica.state());
}

#[test]
fn peer_is_not_sent_to_before_the_interval_nor_when_it_has_everything() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    assert_eq!(a.poll(1_000).len(), 1);
    a.ae.on_ack(&b, 1);
    a.add("y", 1);
    assert!(a.poll(1_099).is_empty(), "interval not elapsed");
    assert_eq!(a.poll(1_100).len(), 1);
    a.ae.on_ack(&b, 2);
    assert!(a.poll(5_000).is_empty(), "everything acknowledged");
}

#[test]
fn unacked_deltas_are_resent_only_after_retry() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    a.poll(0);
    a.ae.on_ack(&b, 1);
    a.add("y", 1);
    assert_eq!(a.poll(100).len(), 1);
    // The send got lost: nothing new, so wait for the retry interval.
    assert!(a.poll(200).is_empty());
    assert!(a.poll(1_099).is_empty());
    let out = a.poll(1_100);
    assert!(matches!(
        out[..],
        [(
            _,
            SyncMessage::Deltas {
                from_seq: 2,
                to_seq: 2,
                ..
            }
        )]
    ));
    // New data goes out at the next interval, with the unacked ones.
    a.add("z", 1);
    let out = a.poll(1_200);
    assert!(matches!(
        out[..],
        [(
            _,
            SyncMessage::Deltas {
                from_seq: 2,
                to_seq: 3,
                ..
            }
        )]
    ));
}

#[test]
fn full_state_in_flight_is_not_resent_before_retry() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    assert_eq!(a.poll(0).len(), 1);
    a.add("y", 1);
    assert!(a.poll(100).is_empty(), "waiting for the full state's ack");
    assert!(matches!(
        a.poll(1_000)[..],
        [(_, SyncMessage::Full { seq: 2, .. })]
    ));
    // The full state's ack arrives; the deltas after it are still buffered.
    a.add("z", 1);
    assert!(a.ae.on_ack(&b, 2));
    assert!(matches!(
        a.poll(1_100)[..],
        [(
            _,
            SyncMessage::Deltas {
                from_seq: 3,
                to_seq: 3,
                ..
            }
        )]
    ));
}

#[test]
fn late_delta_ack_does_not_complete_a_pending_full_state() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    a.add("y", 1);
    a.poll(0);
    assert!(!a.ae.on_ack(&b, 1), "older than the full state sent");
    assert_eq!(a.ae.acked("b"), None);
    assert!(a.ae.on_ack(&b, 2));
    assert_eq!(a.ae.acked("b"), Some(2));
}

#[test]
fn restarted_peer_gets_full_state() {
    let mut a = Node::new("a", 10);
    a.ae.peer_up(&rid("b", 1));
    a.add("x", 1);
    a.poll(0);
    assert!(a.ae.on_ack(&rid("b", 1), 1));
    a.add("y", 1);
    a.ae.peer_down("b");
    assert!(a.poll(100).is_empty(), "down peers are not sent to");
    a.ae.peer_up(&rid("b", 2));
    assert_eq!(a.ae.acked("b"), None);
    assert!(matches!(
        a.poll(200)[..],
        [(_, SyncMessage::Full { seq: 2, .. })]
    ));
}

#[test]
fn reconnected_peer_of_same_incarnation_resumes_with_deltas() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    a.poll(0);
    a.ae.on_ack(&b, 1);
    a.ae.peer_down("b");
    a.add("y", 1);
    a.ae.peer_up(&b);
    assert!(matches!(
        a.poll(10)[..],
        [(
            _,
            SyncMessage::Deltas {
                from_seq: 2,
                to_seq: 2,
                ..
            }
        )]
    ));
}

#[test]
fn stale_and_foreign_acks_are_ignored() {
    let mut a = Node::new("a", 10);
    a.ae.peer_up(&rid("b", 2));
    a.add("x", 1);
    a.poll(0);
    assert!(!a.ae.on_ack(&rid("b", 1), 1), "old incarnation");
    assert!(!a.ae.on_ack(&rid("c", 1), 1), "unknown node");
    assert!(!a.ae.on_ack(&rid("b", 2), 9), "beyond our seq");
    assert_eq!(a.ae.acked("b"), None);
    a.ae.peer_up(&rid("b", 1));
    assert!(
        a.ae.on_ack(&rid("b", 2), 1),
        "a stale peer_up changed nothing"
    );
}

#[test]
fn peer_too_far_behind_gets_full_state() {
    let mut a = Node::new("a", 3);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    a.poll(0);
    a.ae.on_ack(&b, 1);
    for i in 0..5 {
        a.add(&format!("y{i}"), 1);
    }
    assert_eq!(a.ae.buffered(), 3, "the buffer is capped");
    assert_eq!(a.ae.buffered_range(), Some((4, 6)));
    assert!(matches!(
        a.poll(100)[..],
        [(_, SyncMessage::Full { seq: 6, .. })]
    ));
}

#[test]
fn buffer_trimmed_once_all_peers_acked() {
    let mut a = Node::new("a", 100);
    let (b, c) = (rid("b", 1), rid("c", 1));
    a.ae.peer_up(&b);
    a.ae.peer_up(&c);
    a.add("x", 1);
    a.poll(0);
    a.ae.on_ack(&b, 1);
    a.ae.on_ack(&c, 1);
    a.add("y", 1);
    a.add("z", 1);
    assert_eq!(a.ae.buffered_range(), Some((2, 3)));
    a.poll(100);
    a.ae.on_ack(&b, 3);
    assert_eq!(a.ae.buffered(), 2, "c has not acknowledged");
    a.ae.on_ack(&c, 2);
    assert_eq!(a.ae.buffered_range(), Some((3, 3)));
    a.ae.on_ack(&c, 3);
    assert_eq!(a.ae.buffered(), 0);
    // A down peer still holds deltas back; a forgotten one does not.
    a.ae.peer_down("c");
    a.add("w", 1);
    a.ae.on_ack(&b, 4);
    assert_eq!(a.ae.buffered(), 1);
    a.ae.forget_peer("c");
    assert_eq!(a.ae.buffered(), 0);
}

#[test]
fn full_state_in_flight_holds_back_trimming_of_later_deltas() {
    let mut a = Node::new("a", 100);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    a.poll(0);
    a.add("y", 1);
    assert_eq!(
        a.ae.buffered_range(),
        Some((2, 2)),
        "b will need seq 2 after the full state"
    );
    assert!(a.ae.on_ack(&b, 1));
    assert!(matches!(
        a.poll(100)[..],
        [(
            _,
            SyncMessage::Deltas {
                from_seq: 2,
                to_seq: 2,
                ..
            }
        )]
    ));
}

#[test]
fn empty_deltas_are_not_recorded() {
    let mut a = Node::new("a", 10);
    let delta = a.replica.remove("absent");
    assert_eq!(a.ae.record(delta), 0);
    assert_eq!(a.ae.buffered(), 0);
}

/// A message on the simulated network.
#[derive(Debug, Clone)]
enum Msg {
    Sync {
        from: ReplicaId,
        to: ReplicaId,
        msg: SyncMessage,
    },
    Ack {
        from: ReplicaId,
        to: ReplicaId,
        seq: u64,
    },
}

#[derive(Debug, Clone)]
enum NetOp {
    Add { n: usize, name: usize, k: u8 },
    Remove { n: usize, name: usize },
    Poll { n: usize, dt: u64 },
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Restart { n: usize },
}

fn net_op() -> impl Strategy<Value = NetOp> {
    prop_oneof![
        3 => (0..3usize, 0..4usize, 0..3u8).prop_map(|(n, name, k)| NetOp::Add { n, name, k }),
        2 => (0..3usize, 0..4usize).prop_map(|(n, name)| NetOp::Remove { n, name }),
        3 => (0..3usize, 0..300u64).prop_map(|(n, dt)| NetOp::Poll { n, dt }),
        4 => any::<usize>().prop_map(NetOp::Deliver),
        1 => any::<usize>().prop_map(NetOp::Duplicate),
        1 => any::<usize>().prop_map(NetOp::Drop),
        1 => (0..3usize).prop_map(|n| NetOp::Restart { n }),
    ]
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
const NODES: [&str; 3] = ["n1", "n2", "n3"];

struct Cluster {
    nodes: Vec<Node>,
    net: Vec<Msg>,
    now: u64,
}

impl Cluster {
    fn new(max_buffered: usize) -> Self {
        let mut nodes: Vec<Node> = NODES.iter().map(|n| Node::new(n, max_buffered)).collect();
        let ids: Vec<ReplicaId> = nodes.iter().map(|n| n.replica.id().clone()).collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            for (j, id) in ids.iter().enumerate() {
                if i != j {
                    node.ae.peer_up(id);
                }
            }
        }
        Self {
            nodes,
            net: vec![],
            now: 0,
        }
    }

    fn index_of(&self, id: &ReplicaId) -> Option<usize> {
        self.nodes.iter().position(|n| n.replica.id() == id)
    }

    fn poll(&mut self, n: usize) {
        let from = self.nodes[n].replica.id().clone();
        let now = self.now;
        for (to, msg) in self.nodes[n].poll(now) {
            self.net.push(Msg::Sync {
                from: from.clone(),
                to,
                msg,
            });
        }
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Sync { from, to, msg } => {
                // Messages to a dead incarnation are lost with it.
                let Some(i) = self.index_of(&to) else { return };
                let seq = receive(&mut self.nodes[i].replica, &from, &msg);
                self.net.push(Msg::Ack {
                    from: to,
                    to: from,
                    seq,
                });
            }
            Msg::Ack { from, to, seq } => {
                if let Some(i) = self.index_of(&to) {
                    self.nodes[i].ae.on_ack(&from, seq);
                }
            }
        }
    }

    fn apply(&mut self, op: &NetOp) {
        match *op {
            NetOp::Add { n, name, k } => {
                self.nodes[n].add(NAMES[name], k);
            }
            NetOp::Remove { n, name } => {
                let delta = self.nodes[n].replica.remove(NAMES[name]);
                self.nodes[n].ae.record(delta);
            }
            NetOp::Poll { n, dt } => {
                self.now += dt;
                self.poll(n);
            }
            NetOp::Deliver(_) | NetOp::Duplicate(_) | NetOp::Drop(_) if self.net.is_empty() => {}
            NetOp::Deliver(i) => {
                let msg = self.net.remove(i % self.net.len());
                self.deliver(msg);
            }
            NetOp::Duplicate(i) => {
                let msg = self.net[i % self.net.len()].clone();
                self.deliver(msg);
            }
            NetOp::Drop(i) => {
                self.net.remove(i % self.net.len());
            }
            NetOp::Restart { n } => {
                let old = self.nodes[n].replica.id().clone();
                let new = rid(&old.node, old.incarnation + 1);
                let mut node = Node::new(&old.node, self.nodes[n].ae.config.max_buffered_deltas);
                node.replica = Replica::new(new.clone());
                for (j, other) in self.nodes.iter_mut().enumerate() {
                    if j != n {
                        other.ae.peer_down(&old.node);
                        other.ae.peer_up(&new);
                        node.ae.peer_up(other.replica.id());
                    }
                }
                self.nodes[n] = node;
            }
        }
    }

    /// A reliable network until nothing is left to send; returns whether
    /// the first poll sent anything.
    fn quiesce(&mut self) -> bool {
        let mut first_sent = None;
        for _ in 0..20 {
            self.now += 1_000;
            for n in 0..self.nodes.len() {
                self.poll(n);
            }
            first_sent.get_or_insert(!self.net.is_empty());
            if self.net.is_empty() {
                return first_sent.unwrap_or(false);
            }
            while !self.net.is_empty() {
                let msg = self.net.remove(0);
                self.deliver(msg);
            }
        }
        panic!("anti-entropy did not quiesce");
    }

    /// A reliable network until quiet, then one periodic full sync.
    fn settle(&mut self) {
        self.quiesce();
        self.now += 60_000;
        assert!(self.quiesce(), "the periodic full sync sent nothing");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// End to end: mutations, polls, lost, duplicated and reordered messages
    /// and acks, restarts. Once the network is reliable, every node converges
    /// and every buffer drains.
    #[test]
    fn anti_entropy_converges_over_a_lossy_network_with_restarts(
        ops in prop::collection::vec(net_op(), 0..80),
        max_buffered in 1..6usize,
    ) {
        let mut cluster = Cluster::new(max_buffered);
        for op in &ops {
            cluster.apply(op);
        }
        // Every node adds one last bird: none may be lost.
        for n in 0..cluster.nodes.len() {
            cluster.nodes[n].add(&format!("last{n}"), 9);
        }
        cluster.settle();
        let first = cluster.nodes[0].replica.state().clone();
        for node in &cluster.nodes {
            prop_assert_eq!(node.replica.state(), &first);
            prop_assert_eq!(node.ae.buffered(), 0);
        }
        for n in 0..cluster.nodes.len() {
            let name = format!("last{}", n);
            prop_assert_eq!(first.get(&name), Some(&spec(9)));
        }
    }
}

#[test]
fn every_peer_gets_a_periodic_full_state_even_when_caught_up() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    a.poll(0);
    a.ae.on_ack(&b, 1);
    assert!(a.poll(59_999).is_empty());
    assert!(matches!(
        a.poll(60_000)[..],
        [(_, SyncMessage::Full { seq: 1, .. })]
    ));
    a.ae.on_ack(&b, 1);
    assert!(a.poll(61_000).is_empty());
}
