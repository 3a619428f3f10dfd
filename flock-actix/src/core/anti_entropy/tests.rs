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
        ..AntiEntropyConfig::default()
    }
}

/// A node with a replica and its bookkeeping.
struct Node {
    replica: Replica,
    ae: AntiEntropy,
    assembler: Rx,
}

impl Node {
    fn new(name: &str, max_buffered: usize) -> Self {
        let config = config(max_buffered);
        Self {
            replica: Replica::new(rid(name, 1)),
            // As the runtime: one multi-part transfer at a time.
            assembler: Rx {
                assembler: Assembler::with_focus(config.retry_ms),
                ..Rx::default()
            },
            ae: AntiEntropy::new(config).unwrap(),
        }
    }

    fn add(&mut self, name: &str, k: u8) -> u64 {
        let delta = self.replica.add(name, spec(k), 0).unwrap();
        self.ae.record(delta)
    }

    fn poll(&mut self, now: u64) -> Vec<(ReplicaId, SyncMessage)> {
        self.ae.poll(now, self.replica.state())
    }

    /// Acknowledges every message of `out` as its receiver would.
    fn ack_all(&mut self, out: &[(ReplicaId, SyncMessage)]) {
        for (to, msg) in out {
            match msg {
                SyncMessage::Deltas { to_seq, .. } => {
                    self.ae.on_ack(to, *to_seq);
                }
                SyncMessage::Chunk { session, index, .. } => {
                    self.ae.on_chunk_ack(to, *session, *index);
                }
                SyncMessage::Full { .. }
                | SyncMessage::ChunkAck { .. }
                | SyncMessage::Digest { .. }
                | SyncMessage::Range { .. } => {}
            }
        }
    }
}

/// What a receiver keeps: transfers being assembled, and where each
/// sender's delta stream is joined up to.
#[derive(Default)]
struct Rx {
    assembler: Assembler,
    inbound: Inbound,
    /// The receiver's clock (a held transfer loses nothing to it but
    /// time; see `Assembler::with_focus`).
    now: u64,
}

/// The receiver side, as the runtime does it: join (a full state once all
/// its chunks are in), and return the acknowledgement to send back, if any
/// (a delta interval after a gap or withheld is not acknowledged).
fn receive(
    replica: &mut Replica,
    rx: &mut Rx,
    from: &ReplicaId,
    msg: &SyncMessage,
) -> Option<SyncMessage> {
    match msg.clone() {
        SyncMessage::Deltas {
            from_seq,
            to_seq,
            delta,
        } => {
            let clipped = replica.join(from, &delta).unwrap().clipped_claims();
            let upto = rx.inbound.on_deltas(from, from_seq, to_seq, clipped)?;
            Some(SyncMessage::Deltas {
                from_seq: upto,
                to_seq: upto,
                delta: BirdMap::default(),
            })
        }
        SyncMessage::Chunk {
            session,
            index,
            last,
            seq,
            part,
        } => match rx
            .assembler
            .on_chunk(from, session, index, last, seq, part, rx.now)
        {
            Assembled::Ignored | Assembled::Held => None,
            Assembled::Pending => Some(SyncMessage::ChunkAck { session, index }),
            Assembled::Complete { state, seq } => {
                replica.join(from, &state).unwrap();
                rx.inbound.on_full(from, seq);
                Some(SyncMessage::ChunkAck { session, index })
            }
        },
        SyncMessage::Full { .. }
        | SyncMessage::ChunkAck { .. }
        | SyncMessage::Digest { .. }
        | SyncMessage::Range { .. } => None,
    }
}

/// A full state in one chunk, as `poll` sends it for a small state.
fn single_chunk(msg: &SyncMessage) -> (u64, &BirdMap) {
    match msg {
        SyncMessage::Chunk {
            index: 0,
            last: true,
            seq,
            part,
            ..
        } => (*seq, part),
        other => panic!("expected a one-chunk full state, got {other:?}"),
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
        AntiEntropyConfig {
            chunk_bytes: 1_000,
            ..config(10)
        },
        AntiEntropyConfig {
            chunk_window: 0,
            ..config(10)
        },
        AntiEntropyConfig {
            digest_interval_ms: 50,
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
    let (seq, part) = single_chunk(&out[0].1);
    assert_eq!(seq, 2);
    assert_eq!(part, a.replica.state());
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
    let out = a.poll(0);
    assert_eq!(out.len(), 1);
    let (seq, part) = single_chunk(&out[0].1);
    assert_eq!(seq, 0);
    assert!(part.contains("x"));
    assert!(
        !a.ae.on_ack(&rid("b", 1), 0),
        "a delta ack does not end a transfer"
    );
    a.ack_all(&out);
    assert_eq!(a.ae.acked("b"), Some(0));
    assert!(a.poll(5_000).is_empty(), "acknowledged");
}

#[test]
fn caught_up_peer_gets_only_unacked_deltas_joined() {
    let mut a = Node::new("a", 10);
    let mut b = Replica::new(rid("b", 1));
    let mut assembler = Rx::default();
    let from = a.replica.id().clone();
    a.ae.peer_up(b.id());
    a.add("x", 1);
    let out = a.poll(0);
    receive(&mut b, &mut assembler, &from, &out[0].1);
    a.ack_all(&out);
    assert_eq!(a.ae.acked("b"), Some(1));
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
            receive(&mut b, &mut assembler, &from, &out[0].1);
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
    let out = a.poll(1_000);
    assert_eq!(out.len(), 1);
    a.ack_all(&out);
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
    let out = a.poll(0);
    a.ack_all(&out);
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
    // New data goes as the next interval of the window an interval after
    // the last send (a busy peer is not sent the same deltas again every
    // interval, nor does it wait a round trip), then with the
    // unacknowledged ones at the next retry, from `acked+1`.
    a.add("z", 1);
    assert!(a.poll(1_199).is_empty());
    assert!(matches!(
        a.poll(1_200)[..],
        [(
            _,
            SyncMessage::Deltas {
                from_seq: 3,
                to_seq: 3,
                ..
            }
        )]
    ));
    assert!(a.poll(2_099).is_empty());
    let out = a.poll(2_100);
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
    // The retry re-sends the same chunk: the transfer covers seq 1.
    let out = a.poll(1_000);
    assert_eq!(single_chunk(&out[0].1).0, 1);
    // The chunk's ack arrives; the deltas after it are still buffered.
    a.add("z", 1);
    a.ack_all(&out);
    assert_eq!(a.ae.acked("b"), Some(1));
    assert!(matches!(
        a.poll(1_100)[..],
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
fn an_unacknowledged_part_is_re_sent_after_one_retry_time_then_after_two() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    assert_eq!(a.poll(0).len(), 1);
    // Retry times 1 s (the config): sent again at 1 s, then every 2 s —
    // the receiver is most likely busy with another transfer (§16.1).
    let schedule = [
        (999, false),
        (1_000, true),
        (2_999, false),
        (3_000, true),
        (4_999, false),
        (5_000, true),
        (7_000, true),
    ];
    for (now, resent) in schedule {
        assert_eq!(!a.poll(now).is_empty(), resent, "at {now} ms");
    }
}

#[test]
fn late_delta_ack_does_not_complete_a_pending_full_state() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    a.add("y", 1);
    let out = a.poll(0);
    assert!(!a.ae.on_ack(&b, 1), "older than the full state sent");
    assert!(!a.ae.on_ack(&b, 2), "a delta ack, not the transfer's");
    assert_eq!(a.ae.acked("b"), None);
    a.ack_all(&out);
    assert_eq!(a.ae.acked("b"), Some(2));
}

#[test]
fn restarted_peer_gets_full_state() {
    let mut a = Node::new("a", 10);
    a.ae.peer_up(&rid("b", 1));
    a.add("x", 1);
    let out = a.poll(0);
    a.ack_all(&out);
    assert_eq!(a.ae.acked("b"), Some(1));
    a.add("y", 1);
    a.ae.peer_down("b");
    assert!(a.poll(100).is_empty(), "down peers are not sent to");
    a.ae.peer_up(&rid("b", 2));
    assert_eq!(a.ae.acked("b"), None);
    let out = a.poll(200);
    assert_eq!(out[0].0, rid("b", 2));
    assert_eq!(single_chunk(&out[0].1).0, 2);
}

#[test]
fn reconnected_peer_of_same_incarnation_resumes_with_deltas() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    let out = a.poll(0);
    a.ack_all(&out);
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
    let out = a.poll(0);
    let (session, index) = match out[0].1 {
        SyncMessage::Chunk { session, index, .. } => (session, index),
        ref other => panic!("expected a chunk, got {other:?}"),
    };
    assert!(
        !a.ae.on_chunk_ack(&rid("b", 1), session, index),
        "old incarnation"
    );
    assert!(
        !a.ae.on_chunk_ack(&rid("c", 1), session, index),
        "unknown node"
    );
    assert!(
        !a.ae.on_chunk_ack(&rid("b", 2), session + 1, index),
        "another transfer"
    );
    assert!(!a.ae.on_ack(&rid("b", 2), 9), "beyond our seq");
    assert_eq!(a.ae.acked("b"), None);
    a.ae.peer_up(&rid("b", 1));
    assert!(
        a.ae.on_chunk_ack(&rid("b", 2), session, index),
        "a stale peer_up changed nothing"
    );
    assert_eq!(a.ae.acked("b"), Some(1));
}

#[test]
fn peer_too_far_behind_gets_full_state() {
    let mut a = Node::new("a", 3);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    let out = a.poll(0);
    a.ack_all(&out);
    for i in 0..5 {
        a.add(&format!("y{i}"), 1);
    }
    assert_eq!(a.ae.buffered(), 3, "the buffer is capped");
    assert_eq!(a.ae.buffered_range(), Some((4, 6)));
    assert_eq!(single_chunk(&a.poll(100)[0].1).0, 6);
}

#[test]
fn buffer_trimmed_once_all_peers_acked() {
    let mut a = Node::new("a", 100);
    let (b, c) = (rid("b", 1), rid("c", 1));
    a.ae.peer_up(&b);
    a.ae.peer_up(&c);
    a.add("x", 1);
    let out = a.poll(0);
    a.ack_all(&out);
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
    let out = a.poll(0);
    a.add("y", 1);
    assert_eq!(
        a.ae.buffered_range(),
        Some((2, 2)),
        "b will need seq 2 after the full state"
    );
    a.ack_all(&out);
    assert_eq!(a.ae.acked("b"), Some(1));
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
        ack: SyncMessage,
    },
}

#[derive(Debug, Clone)]
enum NetOp {
    Add {
        n: usize,
        name: usize,
        k: u8,
    },
    /// `count` births in one delta, names overlapping other batches (a
    /// re-add replaces): with a small chunk budget it is cut into parts.
    AddMany {
        n: usize,
        from: usize,
        count: usize,
    },
    Remove {
        n: usize,
        name: usize,
    },
    Poll {
        n: usize,
        dt: u64,
    },
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Restart {
        n: usize,
    },
}

fn net_op() -> impl Strategy<Value = NetOp> {
    prop_oneof![
        3 => (0..3usize, 0..4usize, 0..3u8).prop_map(|(n, name, k)| NetOp::Add { n, name, k }),
        1 => (0..3usize, 0..20usize, 1..40usize)
            .prop_map(|(n, from, count)| NetOp::AddMany { n, from, count }),
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
    fn new(max_buffered: usize, chunk_bytes: usize) -> Self {
        let mut nodes: Vec<Node> = NODES.iter().map(|n| Node::new(n, max_buffered)).collect();
        for node in &mut nodes {
            node.ae.config.chunk_bytes = chunk_bytes;
        }
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
        let budget = self.nodes[n].ae.config.chunk_bytes - chunk::CHUNK_OVERHEAD;
        for (to, msg) in self.nodes[n].poll(now) {
            if let SyncMessage::Deltas { delta, .. } = &msg {
                assert!(
                    chunk::size_bound(delta) <= budget,
                    "a delta batch over the budget"
                );
            }
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
                let node = &mut self.nodes[i];
                node.assembler.now = self.now;
                if let Some(ack) = receive(&mut node.replica, &mut node.assembler, &from, &msg) {
                    self.net.push(Msg::Ack {
                        from: to,
                        to: from,
                        ack,
                    });
                }
            }
            Msg::Ack { from, to, ack } => {
                if let Some(i) = self.index_of(&to) {
                    let node = &mut self.nodes[i];
                    match ack {
                        SyncMessage::Deltas { to_seq, .. } => {
                            node.ae.on_ack(&from, to_seq);
                        }
                        SyncMessage::ChunkAck { session, index } => {
                            node.ae.on_chunk_ack(&from, session, index);
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn apply(&mut self, op: &NetOp) {
        match *op {
            NetOp::Add { n, name, k } => {
                self.nodes[n].add(NAMES[name], k);
            }
            NetOp::AddMany { n, from, count } => {
                let node = &mut self.nodes[n];
                let mut batch = BirdMap::default();
                for i in from..from + count {
                    batch.join_delta(&node.replica.add(&format!("many-{i}"), spec(3), 0).unwrap());
                }
                node.ae.record(batch);
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
                node.ae.config.chunk_bytes = self.nodes[n].ae.config.chunk_bytes;
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
    /// and every buffer drains. With the smallest chunk budget, batches of
    /// births are cut into parts and intervals into bounded batches: no
    /// delta message is over the budget, and none is lost.
    #[test]
    fn anti_entropy_converges_over_a_lossy_network_with_restarts(
        ops in prop::collection::vec(net_op(), 0..80),
        max_buffered in 1..6usize,
        chunk_bytes in prop_oneof![Just(1_024usize), Just(1 << 20)],
    ) {
        let mut cluster = Cluster::new(max_buffered, chunk_bytes);
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
            prop_assert_eq!(first.get(&name), Some(spec(9)));
        }
    }
}

#[test]
fn every_peer_gets_a_periodic_full_state_even_when_caught_up() {
    let mut a = Node::new("a", 10);
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    a.add("x", 1);
    let out = a.poll(0);
    a.ack_all(&out);
    assert!(a.poll(59_999).is_empty());
    let out = a.poll(60_000);
    assert_eq!(single_chunk(&out[0].1).0, 1);
    a.ack_all(&out);
    assert!(a.poll(61_000).is_empty());
}

/// Node a with `max_buffered` deltas and a `chunk_bytes` budget, and its
/// peer b, which has acknowledged a's (empty) full state.
fn caught_up_peer(max_buffered: usize, chunk_bytes: usize) -> (Node, ReplicaId) {
    let mut a = Node::new("a", max_buffered);
    a.ae.config.chunk_bytes = chunk_bytes;
    let b = rid("b", 1);
    a.ae.peer_up(&b);
    let out = a.poll(0);
    a.ack_all(&out);
    (a, b)
}

/// One delta starting `n` birds on `a`.
fn batch_of(a: &mut Node, n: usize) -> BirdMap {
    let mut batch = BirdMap::default();
    for i in 0..n {
        batch.join_delta(&a.replica.add(&format!("bird-{i:03}"), spec(1), 0).unwrap());
    }
    batch
}

/// Polls `a` from `now` on (1 ms apart) until it sends nothing more to
/// `b`, delivering and acknowledging everything: asserts that everything is
/// a delta interval within the chunk budget, at most `chunk_window` in
/// flight, each starting where the last ended (the next go on the
/// acknowledgements, not an interval later). Returns the receiver's replica
/// and the number of batches.
fn drain_delta_batches(a: &mut Node, b: &ReplicaId, now: u64) -> (Replica, usize) {
    let mut rx = Rx::default();
    rx.inbound
        .on_full(a.replica.id(), a.ae.acked(&b.node).unwrap());
    drain_delta_batches_into(a, b, now, Replica::new(b.clone()), rx)
}

/// [`drain_delta_batches`] into a receiver that has already joined some.
fn drain_delta_batches_into(
    a: &mut Node,
    b: &ReplicaId,
    mut now: u64,
    mut b_replica: Replica,
    mut rx: Rx,
) -> (Replica, usize) {
    let budget = a.ae.config.chunk_bytes - chunk::CHUNK_OVERHEAD;
    let window = a.ae.config.chunk_window;
    let from = a.replica.id().clone();
    let mut batches = 0;
    let mut next = a.ae.acked(&b.node).unwrap() + 1;
    while let out @ [_, ..] = &a.poll(now)[..] {
        assert!(out.len() <= window, "at most {window} intervals in flight");
        for (_, msg) in out {
            let SyncMessage::Deltas {
                delta,
                from_seq,
                to_seq,
            } = msg
            else {
                panic!("expected deltas, got {out:?}");
            };
            assert_eq!(*from_seq, next, "each interval starts where the last ended");
            next = to_seq + 1;
            assert!(chunk::size_bound(delta) <= budget);
            let ack = receive(&mut b_replica, &mut rx, &from, msg).expect("acknowledged");
            a.ack_all(&[(b.clone(), ack)]);
            batches += 1;
        }
        now += 1;
    }
    (b_replica, batches)
}

#[test]
fn a_delta_too_big_for_one_chunk_goes_as_paced_batches_of_deltas() {
    let (mut a, b) = caught_up_peer(1_000, 1_024);
    assert_eq!(a.ae.acked("b"), Some(0));
    // One batch of 200 birds: one delta far over the chunk budget, cut
    // into parts when recorded.
    let batch = batch_of(&mut a, 200);
    let last = a.ae.record(batch);
    assert!(last > 10, "{last} parts");
    let (b_replica, batches) = drain_delta_batches(&mut a, &b, 100);
    assert!(batches > 10, "{batches} batches");
    assert_eq!(a.ae.acked("b"), Some(last));
    assert_eq!(b_replica.state(), a.replica.state());
}

#[test]
fn a_far_behind_peer_catches_up_by_bounded_delta_batches_not_a_full_state() {
    let (mut a, b) = caught_up_peer(10_000, 2_048);
    // b went away for a while; 500 starts later it is back.
    a.ae.peer_down("b");
    for i in 0..500 {
        a.add(&format!("late-{i:03}"), 1);
    }
    a.ae.peer_up(&b);
    let (b_replica, batches) = drain_delta_batches(&mut a, &b, 1_000);
    assert!(batches > 5, "{batches} batches");
    assert_eq!(a.ae.acked("b"), Some(500));
    assert_eq!(b_replica.state(), a.replica.state());
}

#[test]
fn an_unsplittable_delta_over_the_budget_goes_as_a_chunked_transfer() {
    let (mut a, _) = caught_up_peer(1_000, 1_024);
    // A delta with a folded context cannot list its removed dots: it is
    // kept whole, and being over the budget it goes as a full state.
    let mut batch = batch_of(&mut a, 200);
    batch.ctx.raise_floor(&"gone".into(), 3);
    assert_eq!(a.ae.record(batch), 1);
    let out = a.poll(100);
    assert!(!out.is_empty());
    assert!(
        out.iter()
            .all(|(_, m)| matches!(m, SyncMessage::Chunk { .. })),
        "{out:?}"
    );
}

/// A node and a peer that has acknowledged everything it was sent.
fn caught_up_pair() -> Node {
    let mut a = Node::new("a", 10);
    a.add("x", 1);
    a.ae.peer_up(&rid("b", 1));
    let out = a.poll(0);
    a.ack_all(&out);
    assert_eq!(a.ae.acked("b"), Some(a.ae.seq()));
    a
}

#[test]
fn a_caught_up_peer_is_sent_a_digest_once_per_digest_interval() {
    let mut a = caught_up_pair();
    let every = AntiEntropyConfig::default().digest_interval_ms;
    assert_eq!(a.ae.digests_due(10), vec![rid("b", 1)]);
    assert!(a.ae.digests_due(10 + every - 1).is_empty());
    assert_eq!(a.ae.digests_due(10 + every), vec![rid("b", 1)]);
}

#[test]
fn a_peer_with_something_in_flight_gets_no_digest_and_is_not_answered() {
    let mut a = caught_up_pair();
    a.add("y", 2);
    // The delta is on its way: a difference now is no news.
    assert!(a.ae.digests_due(10).is_empty());
    assert!(!a.ae.answer_digest(&rid("b", 1), 10));
    let out = a.poll(200);
    assert!(!out.is_empty());
    assert!(a.ae.digests_due(210).is_empty(), "still unacknowledged");
    a.ack_all(&out);
    assert_eq!(a.ae.digests_due(220), vec![rid("b", 1)]);
    // A down peer, an unknown one, another incarnation: none.
    a.ae.peer_down("b");
    assert!(a.ae.digests_due(100_000).is_empty());
    assert!(!a.ae.answer_digest(&rid("c", 1), 100_000));
}

#[test]
fn digests_are_answered_at_most_once_per_interval() {
    let mut a = caught_up_pair();
    let interval = config(10).interval_ms;
    assert!(a.ae.answer_digest(&rid("b", 1), 1_000));
    assert!(!a.ae.answer_digest(&rid("b", 1), 1_000 + interval - 1));
    assert!(
        !a.ae.answer_digest(&rid("b", 2), 1_000 + interval),
        "another incarnation"
    );
    assert!(a.ae.answer_digest(&rid("b", 1), 1_000 + interval));
}

#[test]
fn a_digest_interval_of_zero_sends_no_digest() {
    let mut a = Node::new("a", 10);
    a.ae = AntiEntropy::new(AntiEntropyConfig {
        digest_interval_ms: 0,
        ..config(10)
    })
    .unwrap();
    a.ae.peer_up(&rid("b", 1));
    let out = a.poll(0);
    a.ack_all(&out);
    assert!(a.ae.digests_due(1_000_000).is_empty());
    // Received ones are still answered.
    assert!(a.ae.answer_digest(&rid("b", 1), 1_000_000));
}

#[test]
fn a_catching_up_peer_has_a_window_of_intervals_in_flight_and_a_gap_is_resent() {
    let (mut a, b) = caught_up_peer(1_000, 1_024);
    a.ae.config.chunk_window = 3;
    let batch = batch_of(&mut a, 200);
    let last = a.ae.record(batch);
    // Three intervals at once, none acknowledged yet.
    let out = a.poll(100);
    assert_eq!(out.len(), 3, "a window of three");
    assert!(a.poll(101).is_empty(), "the window is full");
    // The first is lost: the receiver joins the others but acknowledges
    // nothing past the gap.
    let from = a.replica.id().clone();
    let mut b_replica = Replica::new(b.clone());
    let mut rx = Rx::default();
    rx.inbound.on_full(&from, 0);
    for (_, msg) in &out[1..] {
        assert!(receive(&mut b_replica, &mut rx, &from, msg).is_none());
    }
    assert_eq!(a.ae.acked("b"), Some(0));
    // After retry_ms the sender goes back to acked+1.
    assert!(a.poll(100 + 999).is_empty());
    let again = a.poll(100 + 1_000);
    let SyncMessage::Deltas { from_seq, .. } = &again[0].1 else {
        panic!("expected deltas, got {again:?}");
    };
    assert_eq!(*from_seq, 1, "re-sent from the gap");
    for (_, msg) in &again {
        let ack = receive(&mut b_replica, &mut rx, &from, msg).expect("joins on");
        a.ack_all(&[(b.clone(), ack)]);
    }
    // The receiver had joined the later intervals: its ack covers them.
    let SyncMessage::Deltas { to_seq, .. } = &out[2].1 else {
        unreachable!()
    };
    assert!(a.ae.acked("b").unwrap() >= *to_seq);
    let (rest, _) = drain_delta_batches_into(&mut a, &b, 2_000, b_replica, rx);
    assert_eq!(a.ae.acked("b"), Some(last));
    assert_eq!(rest.state(), a.replica.state());
}
