//! Full state in bounded chunks: cutting a state into parts on the sender,
//! assembling them on the receiver.
//!
//! # Why the receiver assembles before joining
//!
//! A part holds a run of names and a piece of the causal context. Joining a
//! part on its own would be wrong either way: with the sender's whole
//! context, the join would delete every name of the receiver that is not in
//! the part (its dot is in the context, and the part does not list it);
//! with only a piece of the context, later parts' entries could be dropped
//! as "already seen". So the receiver [`Assembler`] buffers the parts of one
//! transfer and hands the state over only once every part has arrived; the
//! runtime joins it then, in one join, exactly as it joined a single
//! `SyncFull` before. Parts may arrive in any order and more than once.
//!
//! # Consistency without a snapshot
//!
//! The sender does not copy its (possibly million-bird) state: it snapshots
//! only the context `C0` when a transfer starts and cuts the names from the
//! live state as each part is sent, in name order. The assembled state
//! `A` = (names as they were when their part was cut, `C0` ∪ their dots) is a
//! lattice element between the state at the start and at the end of the
//! transfer (`S0 ≤ A ≤ S_end`): a name removed after `C0` was taken is
//! missing from its part while `C0` holds its dot, which is exactly a remove;
//! an add made after `C0` comes with its dot. Hence acknowledging the
//! transfer's `seq` (taken with `C0`) is sound: `A` includes every delta up to
//! it. `tests::a_transfer_cut_from_a_changing_state_lies_between_its_start_and_end`
//! checks this law.

use crate::core::crdt::store::{DotsRef, Store};
use crate::core::crdt::{BirdMap, CausalContext, Dot, Entry, NodeName, ReplicaId};
use std::collections::{BTreeMap, BTreeSet};

/// Upper bound, in bytes, of a chunk message's encoding besides its items:
/// the message envelope, the variant name, `session`, `index`, `last`,
/// `seq` and the part's map/array headers (≈ 60 bytes), rounded up.
pub(crate) const CHUNK_OVERHEAD: usize = 128;

/// Most parts one transfer may have. A part carries at least one name or
/// context item, so an honest sender needs more only beyond a billion birds;
/// a chunk past it is ignored rather than buffered.
pub const MAX_CHUNKS: u32 = 1 << 30;

/// MessagePack cost bound of a string of `len` bytes (header ≤ 5 bytes).
pub(super) fn str_bound(len: usize) -> usize {
    len + 5
}

/// Cost bound of a replica id: array header, name, incarnation (≤ 9).
fn replica_bound(id: &ReplicaId) -> usize {
    1 + str_bound(id.node.len()) + 9
}

/// Cost bound of a context entry `replica → n`.
fn vv_entry_bound(replica: &ReplicaId) -> usize {
    replica_bound(replica) + 9
}

/// Cost bound of a cloud dot.
pub(super) fn dot_bound(dot: &Dot) -> usize {
    1 + replica_bound(&dot.replica) + 9
}

/// Cost bound of a name with its dot list.
pub(super) fn name_bound(name: &str, list: &[(Dot, Entry)]) -> usize {
    name_bound_of(
        name,
        list.iter()
            .map(|(dot, entry)| (&dot.replica, entry.spec.kind.len(), entry.spec.args.len())),
    )
}

/// Cost bound of a name with its dots read in place (the same bound as
/// [`name_bound`], with nothing materialized).
pub(super) fn name_bound_in_place(name: &str, dots: DotsRef<'_>) -> usize {
    name_bound_of(
        name,
        dots.iter().map(|d| (d.replica, d.kind.len(), d.args.len())),
    )
}

/// Cost bound of a name whose dots are given as `(replica, kind length,
/// arguments length)`.
fn name_bound_of<'a>(
    name: &str,
    dots: impl Iterator<Item = (&'a ReplicaId, usize, usize)>,
) -> usize {
    str_bound(name.len())
        + 5
        + dots
            .map(|(replica, kind, args)| {
                // (dot, entry): array headers, the dot, the spec, ts.
                4 + replica_bound(replica) + 9 + str_bound(kind) + str_bound(args) + 9
            })
            .sum::<usize>()
}

/// An upper bound of the encoded size of `map`'s items (its names and
/// context), without the envelope: what decides whether a delta interval
/// fits in one frame. One pass over the map, read in place.
pub(crate) fn size_bound(map: &BirdMap) -> usize {
    let ctx = &map.ctx;
    ctx.vv.keys().map(vv_entry_bound).sum::<usize>()
        + ctx.cloud.iter().map(dot_bound).sum::<usize>()
        + map
            .store
            .views()
            .map(|(name, dots)| name_bound_in_place(name, dots))
            .sum::<usize>()
}

/// Where the sender is in cutting its state: the context items not sent
/// yet, then the names after `after`.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    ctx_rest: CausalContext,
    /// The last name sent; `None` before the first.
    after: Option<String>,
}

impl Cursor {
    /// A cursor at the start of a transfer; `ctx` is the context snapshot `C0`.
    pub(crate) fn new(ctx: CausalContext) -> Self {
        Self {
            ctx_rest: ctx,
            after: None,
        }
    }

    /// Cuts the next part of at most `budget` bytes of items (at least one
    /// item, so an item bigger than the budget still travels, alone) from
    /// the live `state`. Returns the part and whether it is the last.
    pub(crate) fn next_part(&mut self, state: &BirdMap, budget: usize) -> (BirdMap, bool) {
        let mut part = BirdMap::default();
        let mut used = 0usize;
        let mut items = 0usize;
        let mut fits = |cost: usize| {
            let ok = items == 0 || used.saturating_add(cost) <= budget;
            if ok {
                used = used.saturating_add(cost);
                items += 1;
            }
            ok
        };
        // The context first: it is usually a handful of version-vector
        // entries, but a long dot cloud is cut like the names.
        while let Some((replica, _)) = self.ctx_rest.vv.first_key_value() {
            if !fits(vv_entry_bound(replica)) {
                return (part, false);
            }
            let (replica, n) = self.ctx_rest.vv.pop_first().expect("peeked");
            part.ctx.vv.insert(replica, n);
        }
        while let Some(dot) = self.ctx_rest.cloud.first() {
            if !fits(dot_bound(dot)) {
                return (part, false);
            }
            let dot = self.ctx_rest.cloud.pop_first().expect("peeked");
            part.ctx.cloud.insert(dot);
        }
        // The names: sized in place, then copied slot by slot in one go
        // (materializing each name, then interning it again into the part,
        // kept the sender's replica busy for seconds per million names).
        let mut last = None;
        let mut full = false;
        for (name, dots) in state.store.views_after(self.after.as_deref()) {
            if !fits(name_bound_in_place(name, dots)) {
                full = true;
                break;
            }
            last = Some(name);
        }
        if let Some(last) = last {
            part.store = state.store.copy_range(self.after.as_deref(), last);
            self.after = Some(last.to_owned());
        }
        if full {
            return (part, false);
        }
        (part, true)
    }
}

/// What [`Assembler::on_chunk`] made of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// Ignored (a transfer older than the one under way, or an index out of
    /// range); not acknowledged.
    Ignored,
    /// Buffered, or a duplicate of a part already held: acknowledge it.
    Pending,
    /// A part of a transfer that must wait while another peer's transfer
    /// has the focus (see [`Assembler::with_focus`]): not buffered and not
    /// acknowledged, so its sender sends it again after its retry time.
    Held,
    /// The last missing part: here is the whole state, to join, and the
    /// sender's `seq` it covers. Acknowledge the chunk after joining.
    Complete {
        /// The sender's delta sequence number when the transfer started.
        seq: u64,
        /// The assembled state.
        state: BirdMap,
    },
}

/// One transfer being received.
#[derive(Debug)]
struct Incoming {
    incarnation: u64,
    session: u64,
    seq: u64,
    got: BTreeSet<u32>,
    last: Option<u32>,
    /// The context so far: `C0` and the dots of the names received.
    ctx: CausalContext,
    /// The names of each part received, made one when the last arrives.
    parts: Vec<Store>,
    /// Complete and handed over: later duplicates are only acknowledged.
    done: bool,
}

impl Incoming {
    fn new(from: &ReplicaId, session: u64, seq: u64) -> Self {
        Self {
            incarnation: from.incarnation,
            session,
            seq,
            got: BTreeSet::new(),
            last: None,
            ctx: CausalContext::default(),
            parts: Vec::new(),
            done: false,
        }
    }
}

/// The receiving side of chunked transfers: at most one transfer per peer
/// node (a newer one replaces an unfinished older one), so what it buffers
/// is bounded by the peers' registries. See the module docs.
#[derive(Debug, Default)]
pub struct Assembler {
    incoming: BTreeMap<NodeName, Incoming>,
    /// With a focus: the peer whose multi-part transfer is being taken, and
    /// when its last part came. `None` inside: no transfer has it.
    focus: Option<(NodeName, u64)>,
    /// How long a focused transfer may go without a part before another
    /// may take the focus; `None`: no focus, every transfer at once.
    stale_ms: Option<u64>,
}

impl Assembler {
    /// No transfer under way; every transfer is taken as its parts come.
    pub fn new() -> Self {
        Self::default()
    }

    /// No transfer under way; multi-part transfers are taken one at a
    /// time.
    ///
    /// A node that joins a cluster gets a full state from every peer at
    /// once; taken side by side, the transfers share the receiver and all
    /// finish at about the same time, so the node holds the registry only
    /// when all of them are in (issue #10: 1 M birds, four transfers of a
    /// million names). Taken one at a time, the first finishes in a
    /// fraction of that, and the others, which mostly repeat it, follow.
    /// Parts of the others are [`Assembled::Held`]: their senders send them
    /// again after their retry time. A transfer that goes `stale_ms`
    /// without a part loses the focus (its sender stalled or left), so no
    /// transfer waits forever. A transfer of one part is never held: it
    /// costs nothing to buffer, and small registries keep their latency.
    pub fn with_focus(stale_ms: u64) -> Self {
        Self {
            stale_ms: Some(stale_ms),
            ..Self::default()
        }
    }

    /// Whether a new part of a transfer from `node` may be taken now, and
    /// if so gives that transfer the focus.
    fn admit(&mut self, node: &NodeName, now_ms: u64) -> bool {
        let Some(stale_ms) = self.stale_ms else {
            return true;
        };
        let free = match &self.focus {
            None => true,
            Some((holder, _)) if holder == node => true,
            Some((_, at)) => now_ms >= at.saturating_add(stale_ms),
        };
        if free {
            self.focus = Some((node.clone(), now_ms));
        }
        free
    }

    /// Number of peers with a transfer under way (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.incoming.values().filter(|i| !i.done).count()
    }

    /// Takes part `index` of transfer `session` from `from`, at `now_ms`.
    #[allow(clippy::too_many_arguments)] // the chunk's fields, and the time
    pub fn on_chunk(
        &mut self,
        from: &ReplicaId,
        session: u64,
        index: u32,
        last: bool,
        seq: u64,
        part: BirdMap,
        now_ms: u64,
    ) -> Assembled {
        if index >= MAX_CHUNKS {
            return Assembled::Ignored;
        }
        let key = (from.incarnation, session);
        let seen = self.incoming.get(&from.node).map(|s| {
            let theirs = (s.incarnation, s.session);
            if key < theirs {
                Seen::Older
            } else if key == theirs && (s.done || s.got.contains(&index)) {
                Seen::Taken
            } else {
                Seen::New
            }
        });
        match seen {
            Some(Seen::Older) => return Assembled::Ignored,
            // Acknowledged again whether or not it has the focus: its sender
            // lost the first acknowledgement.
            Some(Seen::Taken) => return Assembled::Pending,
            Some(Seen::New) | None => {}
        }
        let whole = index == 0 && last;
        if !whole && !self.admit(&from.node, now_ms) {
            return Assembled::Held;
        }
        let slot = self
            .incoming
            .entry(from.node.clone())
            .or_insert_with(|| Incoming::new(from, session, seq));
        if key > (slot.incarnation, slot.session) {
            *slot = Incoming::new(from, session, seq);
        }
        // A part past the one flagged last (or a second, different last)
        // contradicts the sender; it cannot be placed, so it is not taken.
        if slot.last.is_some_and(|l| index > l || last)
            || (last && slot.got.last().is_some_and(|&max| max > index))
        {
            return Assembled::Ignored;
        }
        slot.got.insert(index);
        if last {
            slot.last = Some(index);
        }
        // The part's names are kept as they came, not materialized and
        // interned again (a million per transfer), and made one store in
        // one pass when the last part is in; their dots join the context
        // as `C0 ∪ their dots` (module docs). A touch marker means nothing
        // in a full state.
        let BirdMap {
            store: mut names,
            ctx,
        } = part;
        names.drop_markers();
        for (_, dots) in names.views() {
            for d in dots.iter() {
                if !slot.ctx.contains_dot(d.replica, d.counter) {
                    slot.ctx.insert(Dot {
                        replica: d.replica.clone(),
                        counter: d.counter,
                    });
                }
            }
        }
        slot.parts.push(names);
        slot.ctx.join(&ctx);
        match slot.last {
            Some(l) if slot.got.len() as u64 == u64::from(l) + 1 => {
                slot.done = true;
                let complete = Assembled::Complete {
                    seq: slot.seq,
                    state: BirdMap {
                        store: Store::concat(std::mem::take(&mut slot.parts)),
                        ctx: std::mem::take(&mut slot.ctx),
                    },
                };
                self.release_focus(&from.node);
                complete
            }
            _ => Assembled::Pending,
        }
    }

    /// Drops what is buffered from a node that left the cluster.
    pub fn forget(&mut self, node: &str) {
        self.incoming.remove(node);
        self.release_focus(node);
    }

    /// `node`'s transfer ended (complete, or its node left): another may
    /// take the focus at once.
    fn release_focus(&mut self, node: &str) {
        if self.focus.as_ref().is_some_and(|(n, _)| &**n == node) {
            self.focus = None;
        }
    }
}

/// What the assembler already knows of a part's transfer.
enum Seen {
    /// An earlier transfer (incarnation, session) than the one under way.
    Older,
    /// This part of the transfer under way, or of one already complete.
    Taken,
    /// A part not taken yet, or a newer transfer.
    New,
}

#[cfg(test)]
mod steps;
#[cfg(test)]
mod tests;
