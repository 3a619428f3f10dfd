//! Digest exchange: finding and repairing a difference between two replicas
//! that version vectors cannot show (docs/ARCHITECTURE.md §24).
//!
//! # Why
//!
//! A stop (remove) mints no dot. When only a third node holds a stop and
//! dies before relaying it, two replicas end up with the same causal
//! context, one still storing the stopped bird: nothing in the delta
//! protocol can tell them apart. Before, only the periodic full sync
//! (`full_sync_interval_ms`, 5 min) repaired it.
//!
//! # What
//!
//! Names are cut into `buckets` ranges (a power of two) by a stable hash of
//! the name. A [digest](digest) is one 64-bit hash per range of the
//! `(name, dots)` pairs stored in it: equal stores give equal digests, on
//! every build and process (xxh3, never a per-process keyed hasher). A
//! peer whose digest differs in some ranges is sent those ranges:
//! [`range`] cuts the stored entries of the first differing ranges that fit
//! a byte budget, with the sender's whole causal context (bounded, §4.7).
//!
//! # Why the receiver can join a range exactly
//!
//! A range with the sender's whole context cannot be joined as it is: the
//! context speaks for names the range does not list, and a join would read
//! each of those as removed (the problem of a full-state chunk, §16). So
//! the receiver builds, with [`repair`], the delta a full-state join would
//! have been *restricted to the range's names*: the sender's entries there,
//! with a context of exactly their dots plus the dots the receiver stores
//! under those names that the sender has seen and no longer stores (its
//! removals). A dot belongs to one name, so this delta says nothing about
//! any other name. Joining it gives the receiver `mine ⊔ theirs` on those
//! names; the receiver answers with its own ranges, which gives the sender
//! the same, and the two agree on every range that was exchanged.

use super::chunk::{name_bound, size_bound};
use crate::core::crdt::{BirdMap, Dot, ReplicaId};
use std::collections::BTreeSet;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Fewest ranges a digest is cut into.
pub const MIN_BUCKETS: u32 = 16;
/// Most ranges a digest is cut into (a digest of 32 KiB), and the most a
/// received digest or range may name.
pub const MAX_BUCKETS: u32 = 4_096;
/// Names per range aimed at: the count grows with the registry so that a
/// repaired range stays small (≈ 27 KB at ≈ 107 B per bird).
const NAMES_PER_BUCKET: usize = 256;
/// Seed of the name → range hash, so that it is independent of placement's
/// name hash (which is unseeded xxh3).
const BUCKET_SEED: u64 = 0x6469_6765_7374; // "digest"

/// The number of ranges for a registry of `names` names: a power of two
/// between [`MIN_BUCKETS`] and [`MAX_BUCKETS`].
pub fn buckets_for(names: usize) -> u32 {
    let wanted = (names / NAMES_PER_BUCKET).max(1).next_power_of_two();
    u32::try_from(wanted)
        .unwrap_or(MAX_BUCKETS)
        .clamp(MIN_BUCKETS, MAX_BUCKETS)
}

/// Whether `buckets` is a count a peer may use: a power of two up to
/// [`MAX_BUCKETS`].
pub fn valid_buckets(buckets: u32) -> bool {
    buckets.is_power_of_two() && buckets <= MAX_BUCKETS
}

/// The range of `name` among `buckets` (a power of two).
pub fn bucket_of(name: &str, buckets: u32) -> u32 {
    // The mask keeps the value below `buckets`, so it fits a u32.
    (xxh3_64_with_seed(name.as_bytes(), BUCKET_SEED) & u64::from(buckets.saturating_sub(1))) as u32
}

/// The hash of one stored name and its dots. Entries need not be hashed: a
/// dot names one add, so equal dots carry equal entries.
fn name_hash<'a>(
    name: &str,
    dots: impl Iterator<Item = (&'a ReplicaId, u64)>,
    buf: &mut Vec<u8>,
) -> u64 {
    buf.clear();
    buf.extend_from_slice(&(name.len() as u64).to_le_bytes());
    buf.extend_from_slice(name.as_bytes());
    for (replica, counter) in dots {
        buf.extend_from_slice(&(replica.node.len() as u64).to_le_bytes());
        buf.extend_from_slice(replica.node.as_bytes());
        buf.extend_from_slice(&replica.incarnation.to_le_bytes());
        buf.extend_from_slice(&counter.to_le_bytes());
    }
    xxh3_64(buf)
}

/// One hash per range of the `(name, dots)` pairs `state` stores (touch
/// markers, which mean the same as an absent name, are left out). The
/// per-name hashes are added, so the result does not depend on the order
/// names are visited in. `buckets` must be [valid](valid_buckets).
pub fn digest(state: &BirdMap, buckets: u32) -> Vec<u64> {
    let mut hashes = vec![0u64; buckets as usize];
    let mut buf = Vec::new();
    // Read in place, one name's run of dots at a time (markers have none).
    let mut dots = state.store.dots().peekable();
    let mut run = Vec::new();
    while let Some((name, replica, counter, _)) = dots.next() {
        run.clear();
        run.push((replica, counter));
        while let Some((_, replica, counter, _)) = dots.next_if(|(n, ..)| *n == name) {
            run.push((replica, counter));
        }
        let slot = &mut hashes[bucket_of(name, buckets) as usize];
        *slot = slot.wrapping_add(name_hash(name, run.iter().copied(), &mut buf));
    }
    hashes
}

/// The ranges whose hashes differ, in order; `None` if the digests do not
/// have the same number of ranges.
pub fn differing(mine: &[u64], theirs: &[u64]) -> Option<Vec<u32>> {
    if mine.len() != theirs.len() {
        return None;
    }
    Some(
        (0u32..)
            .zip(mine.iter().zip(theirs))
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect(),
    )
}

/// Whether `ranges` is a valid list of ranges among `buckets`: strictly
/// increasing, each below `buckets`.
pub fn valid_ranges(buckets: u32, ranges: &[u32]) -> bool {
    valid_buckets(buckets)
        && ranges.windows(2).all(|w| w[0] < w[1])
        && ranges.last().is_none_or(|&r| r < buckets)
}

/// What to send a peer for the `wanted` ranges (sorted): the ranges
/// actually included, and a map holding the entries `state` stores under
/// their names, with `state`'s whole context. Ranges are taken in order
/// while the size bound of the result fits `budget`; at least one is taken
/// (it may not fit). The rest wait for the next digest.
pub fn range(state: &BirdMap, buckets: u32, wanted: &[u32], budget: usize) -> (Vec<u32>, BirdMap) {
    let mut sizes = vec![0usize; wanted.len()];
    for name in state.store.keys() {
        if let Ok(i) = wanted.binary_search(&bucket_of(name, buckets)) {
            let list = state.store.get(name).unwrap_or_default();
            let cost = name_bound(name, &list);
            sizes[i] = sizes[i].saturating_add(cost);
        }
    }
    let mut part = BirdMap {
        store: Default::default(),
        ctx: state.ctx.clone(),
    };
    let mut used = size_bound(&part);
    let mut taken = Vec::new();
    for (&bucket, &size) in wanted.iter().zip(&sizes) {
        if !taken.is_empty() && used.saturating_add(size) > budget {
            break;
        }
        used = used.saturating_add(size);
        taken.push(bucket);
    }
    for name in state.store.keys() {
        if state.store.has_dots(name) && taken.binary_search(&bucket_of(name, buckets)).is_ok() {
            part.store
                .insert(name, state.store.get(name).unwrap_or_default());
        }
    }
    (taken, part)
}

/// The delta that brings `mine` what a peer's [`range`] `part` (of
/// `ranges` among `buckets`) knows about those ranges' names and nothing
/// else: the peer's entries there, a context of exactly their dots plus
/// the dots `mine` stores under those names that the peer has seen and
/// does not store (its removals), and a touch marker for each name such a
/// removal concerns. Names of `part` outside `ranges` are ignored. See the
/// module docs for why joining it is exact.
pub fn repair(mine: &BirdMap, buckets: u32, ranges: &[u32], part: &BirdMap) -> BirdMap {
    let in_ranges = |name: &str| ranges.binary_search(&bucket_of(name, buckets)).is_ok();
    let mut delta = BirdMap::default();
    for (name, list) in part.store.iter() {
        if list.is_empty() || !in_ranges(name) {
            continue;
        }
        for (dot, _) in &list {
            delta.ctx.insert(dot.clone());
        }
        delta.store.insert(name, list);
    }
    for name in mine.store.keys() {
        if !in_ranges(name) {
            continue;
        }
        let theirs: BTreeSet<Dot> = part.store.dots_of(name).collect();
        let mut removed = false;
        for dot in mine.store.dots_of(name) {
            if part.ctx.contains(&dot) && !theirs.contains(&dot) {
                delta.ctx.insert(dot);
                removed = true;
            }
        }
        if removed {
            delta.store.touch(name);
        }
    }
    delta
}

/// Whether digests may be exchanged now: not while this replica is
/// changing. A digest compares whole registries, so while deltas of a third
/// node are on their way to both peers (a client recording a million
/// births) every digest differed, and each difference cost both sides a
/// scan of the differing ranges and a repair of entries already in flight:
/// at 1 M birds that was most of a host's replica arbiter. Digests are for
/// what deltas cannot show, which can wait until the registry is quiet,
/// but not forever: after `max_defer_ms` of constant change they go all
/// the same.
#[derive(Debug, Clone, Default)]
pub struct DigestGate {
    /// The replica's change counter at the last tick.
    seen: u64,
    /// When the counter last moved.
    changed_at: Option<u64>,
    /// Since when digests have been held back, if they are.
    held_since: Option<u64>,
    /// The last tick's answer.
    open: bool,
}

impl DigestGate {
    /// Called on every anti-entropy tick with the replica's change counter
    /// (bumped by every join and local change): whether digests may be sent
    /// and answered until the next tick. The registry counts as quiet once
    /// the counter has not moved for `quiet_ms`: a registry that converges
    /// in bursts (the tail of a million births reaching three hosts) has
    /// single quiet ticks, and each let a digest through that differed by
    /// what was still on its way — at 1 M birds those repairs delayed the
    /// hosts' births by ≈ 12 s (BENCHMARKS "Stop 19, at the end").
    pub fn tick(&mut self, generation: u64, now_ms: u64, quiet_ms: u64, max_defer_ms: u64) -> bool {
        if generation != self.seen {
            self.changed_at = Some(now_ms);
        }
        let quiet = generation == self.seen
            && self
                .changed_at
                .is_none_or(|t| now_ms >= t.saturating_add(quiet_ms));
        self.seen = generation;
        self.open = if quiet {
            self.held_since = None;
            true
        } else {
            let since = *self.held_since.get_or_insert(now_ms);
            if now_ms >= since.saturating_add(max_defer_ms) {
                self.held_since = Some(now_ms);
                true
            } else {
                false
            }
        };
        self.open
    }

    /// The last tick's answer: whether a peer's digest is answered now.
    pub fn is_open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
