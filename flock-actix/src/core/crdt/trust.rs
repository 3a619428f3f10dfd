//! What a replica accepts about dots it did not mint: the trust rule of the
//! registry CRDT (docs/ARCHITECTURE.md §4.6 argues it).
//!
//! A causal context is a claim: "these dots exist, and the ones not in my
//! store were removed". Joining a claim about dots that were never minted
//! is harmful twice over: the claimed dots of a live replica are treated as
//! seen, so its next adds are dropped everywhere as already removed, and a
//! claim about *this* replica's dots makes its own next dot look old (or
//! wraps its counter). So a replica accepts a claim about the dots of `X`
//! only as far as `X` could have minted them as far as it knows:
//!
//! - dots of **this replica**: never beyond what it minted; a message
//!   claiming more is refused whole (no honest peer can hold such a dot);
//! - dots of **the sender** (the authenticated peer the message came
//!   from): all of them; they only speak for the sender's own future;
//! - dots of a **dead incarnation** (a newer incarnation of its node has
//!   spoken to this node, or the runtime retired it): all of them; it will
//!   never mint again, so no future add can be lost;
//! - dots of **any other replica `X` this node has heard from** (a link to
//!   it came up, or it sent something): up to the highest counter `X`
//!   itself has shown this node (its *vouched* counter). Beyond that, the
//!   claim is cut off. It is not kept for later: a claim kept until `X`
//!   mints that far would remove `X`'s next adds as surely as one applied
//!   at once. An honest claim that was cut off (it overtook `X`'s own
//!   delta) comes again with the sender's retransmission or next full
//!   state, when `X` has shown the dots;
//! - dots of **a replica whose link is down** in this node's view: all of
//!   them, until it speaks again. This is what relaying needs: a change its
//!   origin told one peer before crashing reaches the others through that
//!   peer, and the origin cannot vouch for it any more. The price: while a
//!   node is unreachable, a liar can make this node drop that node's adds
//!   made during the same outage (docs/ARCHITECTURE.md §4.6);
//! - dots of **a replica this node has never heard from**: all of them.
//!   Such a replica is gone (a client that started birds and exited before
//!   this node joined) or not connected yet; a node that joins must learn
//!   the birds of the gone ones from its peers' full states. The price: a
//!   liar can make this node drop the adds of a live replica that has not
//!   connected to it yet (a node that just joined, for its first moments).
//!
//! Floors (folded incarnations) are claims too: a floor `f` for node `N`
//! is accepted only up to the newest incarnation of `N` that has spoken, so
//! a floor can never cover a live incarnation, nor a future one.

use super::dot::{NodeName, ReplicaId};
use super::map::BirdMap;
use std::collections::{BTreeMap, BTreeSet};

/// What this replica knows about who could have minted what.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trust {
    /// The replica that owns this knowledge (its own dots are checked, not
    /// trusted).
    me: Option<ReplicaId>,
    /// Highest counter each live replica has shown this node itself.
    vouched: BTreeMap<ReplicaId, u64>,
    /// Newest incarnation of each node that has spoken to this node (or was
    /// retired up to); every older incarnation of it is dead.
    newest: BTreeMap<NodeName, u64>,
    /// Nodes whose link is down in this node's view: their claims are
    /// relayed by others, so they are accepted until the node speaks again.
    down: BTreeSet<NodeName>,
}

impl Trust {
    pub(crate) fn new(me: &ReplicaId) -> Self {
        let mut newest = BTreeMap::new();
        newest.insert(me.node.clone(), me.incarnation);
        let mut vouched = BTreeMap::new();
        vouched.insert(me.clone(), 0);
        Trust {
            me: Some(me.clone()),
            vouched,
            newest,
            down: BTreeSet::new(),
        }
    }

    /// How far claims about `replica`'s dots are accepted now.
    pub(crate) fn limit(&self, replica: &ReplicaId) -> u64 {
        if self.is_dead(replica) || self.down.contains(&replica.node) {
            return u64::MAX;
        }
        self.vouched.get(replica).copied().unwrap_or(u64::MAX)
    }

    /// How high a floor for `node` is accepted now: up to its newest
    /// incarnation that spoke (the floor then folds only dead ones).
    pub(crate) fn floor_limit(&self, node: &str) -> u64 {
        self.newest.get(node).copied().unwrap_or(0)
    }

    /// Whether a newer incarnation of `replica`'s node is known.
    pub(crate) fn is_dead(&self, replica: &ReplicaId) -> bool {
        self.newest
            .get(&replica.node)
            .is_some_and(|&n| replica.incarnation < n)
    }

    /// This replica minted its `counter`-th dot: claims about its own dots
    /// are accepted up to there (beyond, the replica refuses the message).
    pub(crate) fn minted(&mut self, me: &ReplicaId, counter: u64) {
        self.vouched.insert(me.clone(), counter);
    }

    /// Records what `sender` showed about itself in `msg`: its incarnation
    /// (every older one of its node is dead) and its own highest dot.
    /// Returns whether claims about its dots are accepted further now.
    pub(crate) fn vouch(&mut self, sender: &ReplicaId, msg: &BirdMap) -> bool {
        if self.me.as_ref() == Some(sender) {
            return false;
        }
        self.saw_incarnation(sender);
        if self.is_dead(sender) {
            return false;
        }
        let shown = msg.max_counter_of(sender);
        let mine = self.vouched.entry(sender.clone()).or_insert(0);
        let grew = shown > *mine;
        if grew {
            *mine = shown;
        }
        grew
    }

    /// `replica` is alive and talks to this node: from now on claims about
    /// its dots are accepted only as far as it shows them, and every older
    /// incarnation of its node is dead.
    pub(crate) fn saw_incarnation(&mut self, replica: &ReplicaId) {
        self.down.remove(&replica.node);
        if !self.is_dead(replica) {
            self.vouched.entry(replica.clone()).or_insert(0);
        }
        self.newest_is(&replica.node, replica.incarnation);
    }

    /// Every incarnation of `node` below `incarnation` is dead.
    fn newest_is(&mut self, node: &NodeName, incarnation: u64) {
        let newest = self.newest.entry(node.clone()).or_insert(0);
        if incarnation > *newest {
            *newest = incarnation;
            // Dead incarnations need no vouched counter any more.
            self.vouched
                .retain(|r, _| r.node != *node || r.incarnation >= incarnation);
        }
    }

    /// The link to `node` is down: claims about its dots, relayed by
    /// others, are accepted until it speaks again (this node's own name is
    /// ignored).
    pub(crate) fn down(&mut self, node: &str) {
        if self.me.as_ref().is_some_and(|me| &*me.node == node) {
            return;
        }
        self.down.insert(node.into());
    }

    /// The newest known incarnation of `node` will never mint again (it
    /// left for good): claims about it are accepted in full, as for a dead
    /// incarnation, and a later incarnation of the node is still trusted
    /// only for what it shows.
    pub(crate) fn retire(&mut self, node: &str) {
        let Some(&newest) = self.newest.get(node) else {
            return;
        };
        if self.me.as_ref().is_some_and(|me| &*me.node == node) {
            return;
        }
        self.newest_is(&node.into(), newest.saturating_add(1));
    }
}
