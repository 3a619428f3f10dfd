//! The dot store `name → {dot → entry}` with its causal context: an add-wins
//! observed-remove map.
//!
//! # Semantics
//!
//! Every add of a name mints a fresh dot and stores `(dot, entry)` under the
//! name; the dot also enters the causal context. A remove (and an add, which
//! replaces) discards the dots of the name that *this replica has observed*,
//! and keeps them in the context so that joins know they were removed. No
//! tombstone stays in the store.
//!
//! **Add wins.** A remove only removes the adds it has observed. An add that
//! is concurrent with the remove (its dot is not in the remover's context)
//! survives every join, on every node.
//!
//! **Conflict rule.** Two concurrent adds of one name leave two dots under
//! the name. The visible value (the *winner*) is the entry with the highest
//! `(ts, dot)`: the larger timestamp wins, and a timestamp tie is broken by
//! the dot, ordered by node name, then incarnation, then counter. Every node
//! sees the same dots, so every node picks the same winner. The losing dots
//! stay stored until a later add or remove of the name observes and
//! discards them (the state stays a CRDT; only the *view* picks a winner).
//!
//! # Join
//!
//! The join is the dot-store join of the delta-state paper: keep my dots that
//! the other side also has or has not seen; take the other side's dots that I
//! also have or have not seen; union the contexts.
//!
//! # Cost of a join, and touch markers
//!
//! A join must find every name of mine that the other side's context removes.
//! Scanning my whole store would make joining a one-bird delta into a
//! 100k-bird state cost 100k steps, so [`BirdMap::join`] looks only at:
//!
//! 1. the names the other side's store lists, and
//! 2. the other side's *removed dots* (its context minus its store's dots),
//!    enumerated when the context is small (a delta). A removed dot I have
//!    never seen cannot be in my store; one I hold under a name of step 1 is
//!    already handled. Only a removed dot that I have seen but do not hold
//!    under a listed name is ambiguous (I may hold it under another name, or
//!    have dropped it already); then, and when the other side's context has
//!    more dots than my store has names (a full state), the join falls back
//!    to scanning my store ([`Changes::scanned_whole_state`] says so).
//!
//! For step 2 to find removals without scanning, a delta from
//! [`Replica::remove`](super::Replica::remove) lists the removed name with an
//! **empty dot list** (a *touch marker*). A marker is a hint only: as a state
//! it means the same as an absent name, and a join is correct with or without
//! it. Full states never hold markers; deltas joined into a delta interval
//! keep them (see [`BirdMap::join_delta`]).
//!
//! So a delta join costs `O(d · log n)` for a delta with `d` dots into a state
//! of `n` names, except when it carries a removed dot the receiver has seen
//! but no longer holds under the names the delta lists: a duplicate delivery
//! (a retransmitted delta interval) or a removal that reached the receiver by
//! another path. Those fall back to `O(n)`. A full-state join is `O(n + m)`.

use super::context::CausalContext;
use super::dot::{Dot, ReplicaId};
use super::store::Store;
use super::trust::Trust;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// What the runtime needs to start a bird anywhere: its kind's wire tag and
/// its serialized start arguments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BirdSpec {
    /// The bird kind's stable wire tag.
    pub kind: String,
    /// The start arguments, serialized by the bird's kind.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
}

impl BirdSpec {
    /// A name and its spec copied out of the store's view read in place
    /// (`BirdMap::specs`), the name shared: what the Registry is told.
    pub(crate) fn named((name, kind, args): (&str, &str, &[u8])) -> (Arc<str>, BirdSpec) {
        let spec = BirdSpec {
            kind: kind.to_owned(),
            args: args.to_vec(),
        };
        (Arc::from(name), spec)
    }
}

/// One add of a bird: the spec plus the timestamp used to order concurrent adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The bird's spec as given to `add`.
    pub spec: BirdSpec,
    /// Milliseconds (hybrid: never below the replica's last timestamp + 1).
    pub ts: u64,
}

/// The add-wins observed-remove map. A full state and a delta have the same
/// type, as in the delta-state paper: a delta is a small state.
///
/// `PartialEq` compares representations: two full states are equal exactly
/// when they hold the same dots (contexts are kept canonical), but a delta
/// with a touch marker differs from the same delta without it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BirdMap {
    /// `name → [(dot, entry)]`, sorted by dot; usually one element. In a full
    /// state a name whose list is empty is not stored (no tombstones); a
    /// delta may list a name with an empty list as a *touch marker* (see the
    /// module docs), which means the same as an absent name.
    /// Kept in a compact layout (see [`super::store`]); encoded as the
    /// `BTreeMap<String, Vec<(Dot, Entry)>>` it denotes.
    pub(crate) store: Store,
    /// Every dot this state has seen, including those of removed adds.
    pub(crate) ctx: CausalContext,
}

/// How the visible map changed in a join: the runtime starts, stops or
/// restarts birds from this. Each list is sorted and names appear at most
/// once across the three lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Names that had no winner and now have one.
    pub added: Vec<String>,
    /// Names that had a winner and now have none.
    pub removed: Vec<String>,
    /// Names whose winning spec changed (a new winner with an equal spec is
    /// not reported: there is nothing to restart).
    pub replaced: Vec<String>,
    /// Whether the join had to scan the whole receiving store.
    scanned: bool,
    /// Whether the receiving state changed at all (store or context).
    inflated: bool,
    /// Whether claims the receiver does not accept were cut off.
    pub(crate) clipped: bool,
}

impl Changes {
    /// Whether the visible map is unchanged.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.replaced.is_empty()
    }

    /// Whether the join fell back to scanning the whole receiving store
    /// (expected for full states; for deltas, see the module docs). Useful
    /// as a metric.
    pub fn scanned_whole_state(&self) -> bool {
        self.scanned
    }

    /// Whether the receiving state changed at all, visibly or not (a new
    /// losing dot, a context that grew). A received delta that changed
    /// nothing carries nothing new: the runtime need not forward it (see
    /// [`crate::core::anti_entropy`]).
    pub fn state_changed(&self) -> bool {
        self.inflated
    }

    /// Whether [`Replica::join`](super::Replica::join) cut off claims about
    /// dots their replica has not shown this node yet (see
    /// `core::crdt::trust`). An honest sender's claim is cut off only when
    /// it overtook the origin's own delta: leave such a delta
    /// unacknowledged so that the sender sends it again.
    pub fn clipped_claims(&self) -> bool {
        self.clipped
    }
}

/// Size metrics of a [`BirdMap`], for tests and memory accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapSize {
    /// Names stored (including touch markers in a delta).
    pub names: usize,
    /// `(dot, entry)` pairs stored (more than `names` only while concurrent
    /// adds of one name are unresolved).
    pub dots: usize,
    /// Version-vector entries of the context.
    pub vv_entries: usize,
    /// Dots held out of order in the context's cloud.
    pub cloud_dots: usize,
    /// Floors of the context (nodes with folded incarnations).
    pub floors: usize,
}

/// The winning `(dot, entry)` of a dot list: highest `(ts, dot)`.
fn winner(list: &[(Dot, Entry)]) -> Option<&(Dot, Entry)> {
    list.iter()
        .max_by(|a, b| (a.1.ts, &a.0).cmp(&(b.1.ts, &b.0)))
}

impl BirdMap {
    /// The empty map (also the empty delta).
    pub fn new() -> Self {
        Self::default()
    }

    /// The visible spec of `name`: the winner, highest `(ts, dot)`.
    pub fn get(&self, name: &str) -> Option<BirdSpec> {
        self.store.winner_of(name).map(|(_, e)| e.spec)
    }

    /// The visible entry of `name` with its dot.
    pub fn get_entry(&self, name: &str) -> Option<(Dot, Entry)> {
        self.store.winner_of(name)
    }

    /// Whether `name` has a visible spec.
    pub fn contains(&self, name: &str) -> bool {
        self.store.has_dots(name)
    }

    /// Number of names stored. For a full state this is the number of
    /// visible names; a delta's touch markers count too.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether this is the bottom element (no names, empty context): joining
    /// it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty() && self.ctx.is_empty()
    }

    /// The visible map, `(name, winning spec)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, BirdSpec)> + '_ {
        self.store
            .keys()
            .filter_map(|name| self.store.winner_of(name).map(|(_, e)| (name, e.spec)))
    }

    /// The visible names with their kinds, in name order: what placement
    /// needs, without copying any start arguments.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.store.kinds()
    }

    /// The visible names with their kinds and start arguments, in name
    /// order, read in place: a spec is copied only where the caller wants.
    pub fn specs(&self) -> impl Iterator<Item = (&str, &str, &[u8])> + '_ {
        self.store.specs()
    }

    /// As [`BirdMap::specs`], from the first name after `after` (every
    /// name with `None`).
    pub fn specs_after<'a>(
        &'a self,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a [u8])> + 'a {
        self.store.specs_after(after)
    }

    /// Every stored name with its dots and entries (losing dots and a
    /// delta's touch markers included), materialized, in name order.
    pub fn stored(&self) -> impl Iterator<Item = (&str, Vec<(Dot, Entry)>)> + '_ {
        self.store.iter()
    }

    /// The causal context: every dot this state has seen.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Size metrics (see [`MapSize`]). Costs one pass over the store.
    pub fn size(&self) -> MapSize {
        MapSize {
            names: self.store.len(),
            dots: self.store.dot_count(),
            vv_entries: self.ctx.len_vv(),
            cloud_dots: self.ctx.len_cloud(),
            floors: self.ctx.len_floors(),
        }
    }

    /// The highest counter of `replica` this map mentions, in its context
    /// or its store (a store dot outside the context is malformed, but it is
    /// a claim all the same).
    pub(crate) fn max_counter_of(&self, replica: &ReplicaId) -> u64 {
        let stored = self
            .store
            .dots()
            .filter(|(_, r, _, _)| *r == replica)
            .map(|(_, _, counter, _)| counter)
            .max()
            .unwrap_or(0);
        stored.max(self.ctx.max_counter(replica))
    }

    /// Whether every dot and floor of this map lies within what `trust`
    /// accepts now (see [`super::trust`]).
    pub(crate) fn within(&self, trust: &Trust) -> bool {
        // Stored dots come in long runs of one replica (a batch of starts,
        // a peer's whole state): its limit, three tree lookups, is looked
        // up once per run rather than once per dot (a million per state).
        let mut last: Option<(&ReplicaId, u64)> = None;
        self.ctx.within(trust)
            && self.store.dots().all(|(_, replica, counter, _)| {
                let limit = match last {
                    Some((r, limit)) if r == replica => limit,
                    _ => {
                        let limit = trust.limit(replica);
                        last = Some((replica, limit));
                        limit
                    }
                };
                counter <= limit
            })
    }

    /// The part of this map that `trust` accepts now: the restricted
    /// context, and the stored dots it still contains. The join is decided
    /// dot by dot, so joining `restrict` now and the whole map later gives
    /// the same state as joining the whole map at once.
    pub(crate) fn restrict(&self, trust: &Trust) -> BirdMap {
        let ctx = self.ctx.restrict(trust);
        let store = self
            .store
            .iter()
            .filter_map(|(name, list)| {
                let kept: Vec<(Dot, Entry)> = list
                    .iter()
                    .filter(|(d, _)| ctx.contains(d))
                    .cloned()
                    .collect();
                // A touch marker stays a marker; a name whose dots all went
                // is left out.
                (list.is_empty() || !kept.is_empty()).then(|| (name.to_owned(), kept))
            })
            .collect();
        BirdMap { store, ctx }
    }

    /// The largest timestamp stored (0 if none). One pass over the store.
    pub(crate) fn max_ts(&self) -> u64 {
        self.store.dots().map(|(_, _, _, ts)| ts).max().unwrap_or(0)
    }

    /// Joins `other` (a state or a delta) into `self` and reports how the
    /// visible map changed. Names left without dots are dropped (no
    /// tombstones). See the module docs for the cost.
    pub fn join(&mut self, other: &BirdMap) -> Changes {
        self.join_impl(other, false, false)
    }

    /// Joins two deltas into a delta interval: like [`join`](Self::join),
    /// but a name left without dots stays as a touch marker, so the interval
    /// still lets its receiver find the removal without a scan. Use it only
    /// to accumulate deltas, never on a replica's state.
    pub fn join_delta(&mut self, other: &BirdMap) -> Changes {
        self.join_impl(other, true, false)
    }

    /// [`join`](Self::join) that always scans: the reference the fast path
    /// is tested against.
    pub(crate) fn join_with_full_scan(&mut self, other: &BirdMap) -> Changes {
        self.join_impl(other, false, true)
    }

    /// [`join`](Self::join) of a state taken by value. Into an empty
    /// store (a node that joins the cluster takes its first full state) the
    /// other side's store is moved in, less the dots my context has seen,
    /// instead of being rebuilt name by name: a million names joined in a
    /// pass over slots rather than a million lookups, copies and inserts.
    /// The same state and changes as `join` (proptest
    /// `joining_a_state_by_value_equals_joining_it_by_reference`).
    pub(crate) fn join_owned(&mut self, other: BirdMap) -> Changes {
        if !self.store.is_empty() {
            return self.join(&other);
        }
        let BirdMap { mut store, ctx } = other;
        let seen = &self.ctx;
        store.retain_dots(|replica, counter| !seen.contains_dot(replica, counter));
        // Every name left gains a winner; nothing else had one.
        let mut changes = Changes {
            added: store.keys().map(str::to_owned).collect(),
            inflated: !store.is_empty(),
            ..Changes::default()
        };
        self.store = store;
        changes.inflated |= self.ctx.join(&ctx);
        changes
    }

    fn join_impl(&mut self, other: &BirdMap, keep_markers: bool, force_scan: bool) -> Changes {
        // Decided against the state before the join: it reads my store and
        // context as they were.
        let scan = force_scan || self.needs_scan(other);
        let mut changes = Changes {
            scanned: scan,
            ..Changes::default()
        };
        for (name, theirs) in other.store.iter() {
            self.join_name(name, &theirs, other, keep_markers, &mut changes);
        }
        if scan {
            let unlisted: Vec<String> = self
                .store
                .keys()
                .filter(|name| {
                    !other.store.contains_key(name)
                        && self.store.dots_of(name).any(|d| other.ctx.contains(&d))
                })
                .map(str::to_owned)
                .collect();
            for name in unlisted {
                self.join_name(&name, &[], other, keep_markers, &mut changes);
            }
        }
        changes.inflated |= self.ctx.join(&other.ctx);
        changes.added.sort_unstable();
        changes.removed.sort_unstable();
        changes.replaced.sort_unstable();
        changes
    }

    /// Whether some name of mine that `other` does not list may lose a dot
    /// to `other`'s context, so that the join must scan my store. See the
    /// module docs.
    fn needs_scan(&self, other: &BirdMap) -> bool {
        if self.store.is_empty() || other.ctx.is_empty() {
            return false;
        }
        // Enumerating a context bigger than my store costs more than a scan.
        if other.ctx.dot_count() > self.store.len() as u64 {
            return true;
        }
        // A delta of adds only (a `start_many` batch): no removed dot, so
        // nothing to look for. Two hash sets of the delta's dots cost
        // more than its whole join into a million-bird state otherwise.
        if other.removes_nothing() {
            return false;
        }
        let their_dots: HashSet<Dot> = other.store.all_dots().collect();
        let my_listed_dots: HashSet<Dot> = other
            .store
            .keys()
            .flat_map(|name| self.store.dots_of(name))
            .collect();
        other.ctx.dots().any(|dot| {
            !their_dots.contains(&dot) && self.ctx.contains(&dot) && !my_listed_dots.contains(&dot)
        })
    }

    /// Whether every dot of the context is a stored dot (no removed dot):
    /// the context holds exactly as many dots as the store, every stored
    /// dot is in the context, and no dot is stored twice.
    fn removes_nothing(&self) -> bool {
        if !self.ctx.floors.is_empty() {
            return false;
        }
        let mut stored = self.store.dot_keys();
        if stored.len() as u64 != self.ctx.dot_count() {
            return false;
        }
        stored.sort_unstable();
        if stored.windows(2).any(|w| w[0] == w[1]) {
            return false;
        }
        self.store
            .dots()
            .all(|(_, replica, counter, _)| self.ctx.contains_dot(replica, counter))
    }

    /// The dot-store join for one name; `theirs` is `other`'s list for it.
    fn join_name(
        &mut self,
        name: &str,
        theirs: &[(Dot, Entry)],
        other: &BirdMap,
        keep_markers: bool,
        changes: &mut Changes,
    ) {
        let mine_list = self.store.get(name).unwrap_or_default();
        let mine: &[(Dot, Entry)] = &mine_list;
        let has = |list: &[(Dot, Entry)], dot: &Dot| list.iter().any(|(d, _)| d == dot);
        let mut merged: Vec<(Dot, Entry)> = Vec::with_capacity(1);
        for (dot, entry) in mine {
            if has(theirs, dot) || !other.ctx.contains(dot) {
                merged.push((dot.clone(), entry.clone()));
            }
        }
        for (dot, entry) in theirs {
            if !has(mine, dot) && !self.ctx.contains(dot) {
                merged.push((dot.clone(), entry.clone()));
            }
        }
        merged.sort_by(|a, b| a.0.cmp(&b.0));
        let before = winner(mine).map(|(_, e)| &e.spec);
        let after = winner(&merged).map(|(_, e)| &e.spec);
        match (before, after) {
            (None, Some(_)) => changes.added.push(name.to_owned()),
            (Some(_), None) => changes.removed.push(name.to_owned()),
            (Some(a), Some(b)) if a != b => changes.replaced.push(name.to_owned()),
            _ => {}
        }
        // In a delta interval an emptied name stays as a touch marker (it is
        // listed by `other` or already stored here).
        changes.inflated |= merged.as_slice() != mine;
        if merged.is_empty() && !keep_markers {
            self.store.remove(name);
        } else if merged.as_slice() != mine || !self.store.contains_key(name) {
            self.store.insert(name, merged);
        }
    }
}
