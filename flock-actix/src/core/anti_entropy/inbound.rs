//! The receiving side of delta intervals: what to acknowledge.
//!
//! A sender keeps up to `chunk_window` intervals in flight, each starting
//! after the last one sent (see `PeerState::next_intervals`), and counts an
//! acknowledgement of `seq` as "joined everything up to `seq`". So the
//! receiver acknowledges an interval only when it joins on to what it has
//! already joined from that sender: if one was withheld (claims cut off,
//! see the runtime's `SyncIn`) or lost, the ones after it are joined (a
//! join is always sound) but not acknowledged, until the sender goes back
//! to `acked+1` after `retry_ms` and re-sends the gap. A withheld interval
//! is withheld once: its re-send is acknowledged, so a claim about an
//! origin that crashed for good is not re-sent forever.
//!
//! Where a sender's stream starts is set by a completed full state (its
//! `seq`). A sender not known here (this table is bounded; or a node of an
//! earlier version) is taken as in order, as every delta was before.

use crate::core::crdt::{NodeName, ReplicaId};
use std::collections::BTreeMap;

/// Most senders tracked; past it, an unknown sender's intervals are taken
/// as in order (the behaviour of a single interval in flight).
pub const MAX_SENDERS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Position {
    incarnation: u64,
    /// Everything of this sender up to here is joined and acknowledged.
    joined: u64,
    /// An interval starting at `joined + 1` was withheld once.
    withheld: bool,
}

/// Per-sender position of the delta stream. Pure: the runtime asks it what
/// to acknowledge.
#[derive(Debug, Default)]
pub struct Inbound {
    senders: BTreeMap<NodeName, Position>,
}

impl Inbound {
    /// No sender known.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&mut self, from: &ReplicaId) -> Option<&mut Position> {
        let fresh = Position {
            incarnation: from.incarnation,
            joined: 0,
            withheld: false,
        };
        if let Some(p) = self.senders.get_mut(&from.node) {
            if from.incarnation > p.incarnation {
                *p = fresh;
            }
            // An older incarnation's intervals are not tracked.
            return (p.incarnation == from.incarnation).then_some(p);
        }
        None
    }

    /// A full state of `from` up to its `seq` was joined (and is
    /// acknowledged): its delta stream continues at `seq + 1`.
    pub fn on_full(&mut self, from: &ReplicaId, seq: u64) {
        if let Some(p) = self.position(from) {
            p.joined = p.joined.max(seq);
            return;
        }
        if self.senders.len() < MAX_SENDERS || self.senders.contains_key(&from.node) {
            self.senders.insert(
                from.node.clone(),
                Position {
                    incarnation: from.incarnation,
                    joined: seq,
                    withheld: false,
                },
            );
        }
    }

    /// The interval `from_seq..=to_seq` of `from` was joined; `clipped`: the
    /// join cut claims off. Returns the seq to acknowledge, or `None` to
    /// acknowledge nothing (withheld for a re-send, or after a gap).
    pub fn on_deltas(
        &mut self,
        from: &ReplicaId,
        from_seq: u64,
        to_seq: u64,
        clipped: bool,
    ) -> Option<u64> {
        match self.senders.get(&from.node) {
            // An older incarnation's late interval: harmless to acknowledge.
            Some(p) if p.incarnation > from.incarnation => return Some(to_seq),
            None if self.senders.len() >= MAX_SENDERS => return Some(to_seq),
            None => {
                // Not known (no full state of it joined here): taken as in
                // order, from here on.
                self.senders.insert(
                    from.node.clone(),
                    Position {
                        incarnation: from.incarnation,
                        joined: from_seq.saturating_sub(1),
                        withheld: false,
                    },
                );
            }
            Some(_) => {}
        }
        let Some(p) = self.position(from) else {
            return Some(to_seq);
        };
        if from_seq > p.joined.saturating_add(1) {
            return None;
        }
        if clipped && !p.withheld && to_seq > p.joined {
            p.withheld = true;
            return None;
        }
        p.withheld = false;
        p.joined = p.joined.max(to_seq);
        Some(p.joined)
    }

    /// Whether the last interval of `from` was withheld for a re-send.
    pub fn withheld(&self, from: &str) -> bool {
        self.senders.get(from).is_some_and(|p| p.withheld)
    }

    /// A sender's link went down: a re-send after it comes back is joined
    /// and acknowledged even if clipped again.
    pub fn peer_down(&mut self, node: &str) {
        if let Some(p) = self.senders.get_mut(node) {
            p.withheld = false;
        }
    }

    /// A sender left the cluster for good.
    pub fn forget(&mut self, node: &str) {
        self.senders.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(node: &str, incarnation: u64) -> ReplicaId {
        ReplicaId {
            node: node.into(),
            incarnation,
        }
    }

    /// (from_seq, to_seq, clipped) → what is acknowledged, after a full
    /// state up to seq 10.
    #[test]
    fn intervals_are_acknowledged_only_when_they_join_on_to_what_was_joined() {
        type Steps = &'static [(u64, u64, bool, Option<u64>)];
        let table: &[(&str, Steps)] = &[
            (
                "in order",
                &[(11, 12, false, Some(12)), (13, 15, false, Some(15))],
            ),
            (
                "a gap is not acknowledged",
                &[(13, 15, false, None), (11, 15, false, Some(15))],
            ),
            (
                "a re-send of what was joined",
                &[(11, 12, false, Some(12)), (5, 12, false, Some(12))],
            ),
            (
                "an overlapping re-send moves on",
                &[(11, 12, false, Some(12)), (11, 14, false, Some(14))],
            ),
            (
                "withheld once, then the later ones wait for its re-send",
                &[
                    (11, 12, true, None),
                    (13, 14, false, None),
                    (11, 14, true, Some(14)),
                ],
            ),
            (
                "a clipped interval after an acknowledged one is withheld once",
                &[
                    (11, 12, false, Some(12)),
                    (13, 13, true, None),
                    (13, 13, true, Some(13)),
                ],
            ),
            (
                "a clipped re-send of joined seqs is acknowledged",
                &[(11, 12, false, Some(12)), (1, 12, true, Some(12))],
            ),
        ];
        for (what, steps) in table {
            let mut inbound = Inbound::new();
            let a = rid("a", 1);
            inbound.on_full(&a, 10);
            for (i, &(from, to, clipped, want)) in steps.iter().enumerate() {
                assert_eq!(
                    inbound.on_deltas(&a, from, to, clipped),
                    want,
                    "{what}: step {i}"
                );
            }
        }
    }

    #[test]
    fn a_new_incarnation_starts_over_and_an_old_one_is_not_tracked() {
        let mut inbound = Inbound::new();
        inbound.on_full(&rid("a", 1), 10);
        // The new incarnation's stream is known once its full state is in.
        inbound.on_full(&rid("a", 2), 3);
        assert_eq!(inbound.on_deltas(&rid("a", 2), 4, 4, false), Some(4));
        assert_eq!(inbound.on_deltas(&rid("a", 2), 9, 9, false), None);
        assert_eq!(inbound.on_deltas(&rid("a", 1), 11, 11, false), Some(11));
    }

    #[test]
    fn an_unknown_sender_is_taken_as_in_order() {
        let mut inbound = Inbound::new();
        assert_eq!(inbound.on_deltas(&rid("a", 1), 7, 9, false), Some(9));
        assert_eq!(inbound.on_deltas(&rid("a", 1), 12, 12, false), None);
        // Withheld once, as from a known sender.
        assert_eq!(inbound.on_deltas(&rid("b", 1), 7, 9, true), None);
        assert_eq!(inbound.on_deltas(&rid("b", 1), 7, 9, true), Some(9));
    }

    #[test]
    fn a_link_down_ends_a_withholding() {
        let mut inbound = Inbound::new();
        let a = rid("a", 1);
        inbound.on_full(&a, 0);
        assert_eq!(inbound.on_deltas(&a, 1, 1, true), None);
        assert!(inbound.withheld("a"));
        inbound.peer_down("a");
        assert_eq!(inbound.on_deltas(&a, 1, 1, true), None);
        inbound.forget("a");
        assert!(!inbound.withheld("a"));
    }
}
