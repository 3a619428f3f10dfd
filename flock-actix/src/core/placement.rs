//! Placement: which node owns a bird name.
//!
//! Every node must compute the same owner for a name from the same member
//! set, whatever order it learned the members in, in whatever process, build
//! or Rust version it runs. Placement is two steps:
//!
//! 1. **name → shard**: the name is hashed with XXH3-64 (a specified hash,
//!    stable across processes, platforms and Rust versions; never
//!    the standard library's default hasher), and the hash picks one of `shards` shards with jump
//!    consistent hash (Lamping & Veach, 2014). The shard count is fixed for
//!    the whole cluster (nodes with different counts refuse each other in
//!    the handshake), so a name's shard never changes.
//! 2. **shard → node**: weighted rendezvous (highest-random-weight) hashing
//!    over the members that can host birds, precomputed into a table on every
//!    membership change, so a lookup is one hash, one jump and one index.
//!    A member of weight `w` takes part as `w` sub-members; a shard goes to
//!    the sub-member with the highest score `mix(seed(node, i), shard)`. The
//!    score is a 64-bit integer (no floating point, whose `ln` may differ in
//!    the last bit between platforms); ties go to the smaller `(name, i)`.
//!
//! Rendezvous gives the movement guarantees: when a node joins, only the
//! shards it now wins move (to it); when a node leaves, only its shards move;
//! no shard ever moves between two nodes that both stayed. Jump hash is *not*
//! used over the node list itself: it can only remove the last bucket, so a
//! node leaving from the middle would move over half of all names.
//!
//! # Balance and cost (measured by the tests and `examples/placement_figures.rs`)
//!
//! With `S` shards over `n` equal nodes the busiest node carries about
//! `1 + 1.5·√(n/S)` of the mean, so the default is [`DEFAULT_SHARDS`] =
//! 65 536: for 10 nodes and 100 000 names the worst of 20 random node sets
//! stays near 1.04 (16 384 shards reach about 1.06). The table is 2 bytes per
//! shard (128 KiB); rebuilding it at 50 nodes costs 3.3 M integer mixes, a few
//! milliseconds. See `docs/ARCHITECTURE.md` for the recorded figures.
//!
//! # The jump-consistent-hash overflow guard
//!
//! `jump-consistent-hash` 0.1.0 computes `k * C + 1` with a checked `+`, so a
//! debug build panics when the wrapping product is `u64::MAX`. That happens
//! for a handful of keys per shard count, whose linear-congruential chain
//! passes through the one bad state within the iterations jump hash runs.
//! [`JumpGuard`] finds those keys once per shard count (by replaying the
//! chain with wrapping arithmetic) and [`shard_of_hash`] remaps them, so no
//! name can panic placement, and release and debug builds agree.

use crate::core::crdt::NodeName;
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex, OnceLock};
use xxhash_rust::xxh3::xxh3_64;

mod kinds;
pub use kinds::{HostedMember, KindPlacement};

/// The default number of shards (see the module docs for why so many).
pub const DEFAULT_SHARDS: u32 = 65_536;

/// The most shards a cluster may use (the table holds one entry per shard).
pub const MAX_SHARDS: u32 = 1 << 22;

/// The largest weight of one member. Rebuild cost grows with the sum of
/// weights, and weights are meant as small ratios (1, 2, 4), not capacities.
pub const MAX_WEIGHT: u32 = 64;

/// The most members that can host birds at once (the table stores `u16`).
pub const MAX_MEMBERS: usize = u16::MAX as usize;

/// A member as placement sees it: a name and a weight (0: hosts no birds).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The node's name, stable across restarts.
    pub name: NodeName,
    /// Its relative share of shards; 0 for client-only nodes.
    pub weight: u32,
}

impl Member {
    /// A member with the given name and weight.
    pub fn new(name: impl Into<NodeName>, weight: u32) -> Self {
        Member {
            name: name.into(),
            weight,
        }
    }
}

/// The stable 64-bit hash of a bird name: XXH3-64 of its UTF-8 bytes.
pub fn name_hash(name: &str) -> u64 {
    xxh3_64(name.as_bytes())
}

/// The placement table for one member set: `shard → member`.
///
/// Build a new one on every membership change; lookups are O(1).
#[derive(Debug, Clone)]
pub struct Placement {
    shards: u32,
    guard: Arc<JumpGuard>,
    /// Members sorted by name, weight > 0 only.
    hosts: Vec<Member>,
    /// `shard → index into hosts`; empty when there are no hosts.
    table: Vec<u16>,
}

impl Placement {
    /// Builds the table for `members` over `shards` shards.
    ///
    /// Members may come in any order; a name listed twice keeps its largest
    /// weight. Members of weight 0 host nothing. An empty result is valid:
    /// [`Placement::owner`] then answers [`Error::NoNodes`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `shards` is 0 or above [`MAX_SHARDS`], a
    /// weight is above [`MAX_WEIGHT`], or there are more than
    /// [`MAX_MEMBERS`] hosts.
    pub fn new(shards: u32, members: impl IntoIterator<Item = Member>) -> Result<Self> {
        let guard = JumpGuard::shared(shards)?;
        let hosts = sorted_hosts(members)?;
        let subs = sub_members(&hosts);
        // No hosts, no table: `owner` then answers `NoNodes`.
        let table = if subs.is_empty() {
            Vec::new()
        } else {
            (0..shards).map(|shard| best_of(shard, &subs)).collect()
        };
        Ok(Placement {
            shards,
            guard,
            hosts,
            table,
        })
    }

    /// The table for `members`, computed from this one: exactly what
    /// [`Placement::new`] would build for them, at the cost of the change.
    ///
    /// A view change usually adds or removes one member. Rendezvous hashing
    /// lets the table follow it without rescoring every shard against every
    /// member (`O(shards × members)`, ≈ 0.1 s at 1,000 members):
    ///
    /// - a shard whose owner stayed (same name, same weight) can only move to
    ///   a member that is *new* (or whose weight changed), so it is rescored
    ///   against its owner and the new members only;
    /// - a shard whose owner left (or changed weight) is rescored against
    ///   every member, as in a full build; there are `shards / members` of
    ///   them per leaving member.
    ///
    /// So a join costs `O(shards × (1 + new weight))` and a leave
    /// `O(shards + shards/members × members)` = `O(shards)`. Members that
    /// stayed keep their relative order (hosts are sorted by name), and ties
    /// are broken by the same `(name, i)` rule, so the result is identical to
    /// a full build (a property test checks it over random sequences of
    /// changes).
    ///
    /// # Errors
    /// As [`Placement::new`].
    pub fn next(&self, members: impl IntoIterator<Item = Member>) -> Result<Self> {
        let hosts = sorted_hosts(members)?;
        if hosts == self.hosts {
            return Ok(self.clone());
        }
        if self.table.is_empty() || hosts.is_empty() {
            return Placement::new(self.shards, hosts);
        }
        // From here on both the old and the new host lists are non-empty.
        // Old host index → new index, for hosts that stayed unchanged.
        let kept: Vec<Option<u16>> = self
            .hosts
            .iter()
            .map(|m| {
                hosts
                    .binary_search_by(|h| h.name.cmp(&m.name))
                    .ok()
                    .filter(|&j| hosts[j].weight == m.weight)
                    .map(|j| j as u16)
            })
            .collect();
        let unchanged = |j: usize| {
            self.hosts
                .binary_search_by(|h| h.name.cmp(&hosts[j].name))
                .is_ok_and(|i| self.hosts[i].weight == hosts[j].weight)
        };
        let subs = sub_members(&hosts);
        let fresh: Vec<Sub> = subs
            .iter()
            .copied()
            .filter(|s| !unchanged(usize::from(s.host)))
            .collect();
        // Where each host's sub-members start in `subs` (they are grouped by
        // host, in host order).
        let mut first_sub = vec![0usize; hosts.len() + 1];
        for s in &subs {
            first_sub[usize::from(s.host) + 1] += 1;
        }
        for j in 0..hosts.len() {
            first_sub[j + 1] += first_sub[j];
        }
        let table = self
            .table
            .iter()
            .enumerate()
            .map(|(shard, &old)| {
                let shard = shard as u32;
                match kept[usize::from(old)] {
                    None => best_of(shard, &subs),
                    Some(owner) => {
                        let own =
                            &subs[first_sub[usize::from(owner)]..first_sub[usize::from(owner) + 1]];
                        let mut best = Best::of(shard, own);
                        best.offer(shard, &fresh);
                        best.host
                    }
                }
            })
            .collect();
        Ok(Placement {
            shards: self.shards,
            guard: self.guard.clone(),
            hosts,
            table,
        })
    }

    /// The number of shards (cluster-wide).
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The members that host birds (weight > 0), sorted by name.
    pub fn hosts(&self) -> &[Member] {
        &self.hosts
    }

    /// The shard a name belongs to (independent of the member set).
    pub fn shard_of(&self, name: &str) -> u32 {
        self.guard.shard_of_hash(name_hash(name))
    }

    /// The node that owns `name`.
    ///
    /// # Errors
    /// [`Error::NoNodes`] if no member can host birds.
    pub fn owner(&self, name: &str) -> Result<&NodeName> {
        self.owner_of_shard(self.shard_of(name))
    }

    /// The node that owns `shard`.
    ///
    /// # Errors
    /// [`Error::NoNodes`] if no member can host birds.
    pub fn owner_of_shard(&self, shard: u32) -> Result<&NodeName> {
        let index = *self.table.get(shard as usize).ok_or(Error::NoNodes)?;
        Ok(&self.hosts[index as usize].name)
    }

    /// Adds to `set` the shards `me` owns in this table and did not own in
    /// `before`: after a view change only their names can be newly owned
    /// here (a name's shard never changes), so only they need reading.
    /// Two tables of different shard counts share nothing: every shard
    /// `me` owns counts.
    pub fn gained_into(&self, before: &Placement, me: &str, set: &mut ShardSet) {
        let Ok(mine) = self.hosts.binary_search_by(|h| (*h.name).cmp(me)) else {
            return;
        };
        let was = before
            .hosts
            .binary_search_by(|h| (*h.name).cmp(me))
            .ok()
            .filter(|_| before.shards == self.shards && !before.table.is_empty());
        for (shard, &owner) in self.table.iter().enumerate() {
            if usize::from(owner) == mine
                && was.is_none_or(|w| usize::from(before.table[shard]) != w)
            {
                set.insert(shard as u32);
            }
        }
    }

    /// How many shards each host owns, in [`Placement::hosts`] order.
    pub fn shard_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.hosts.len()];
        for &i in &self.table {
            counts[i as usize] += 1;
        }
        counts
    }
}

/// A set of shards (one bit each): the shards whose names an owned-set
/// read lists (`runtime::registry`, after a view change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSet {
    bits: Vec<u64>,
    len: usize,
}

impl ShardSet {
    /// The empty set over `shards` shards.
    pub fn new(shards: u32) -> Self {
        ShardSet {
            bits: vec![0; (shards as usize).div_ceil(64)],
            len: 0,
        }
    }

    /// Adds `shard` (ignored if out of range).
    pub fn insert(&mut self, shard: u32) {
        let (word, bit) = (shard as usize / 64, 1u64 << (shard % 64));
        if let Some(w) = self.bits.get_mut(word)
            && *w & bit == 0
        {
            *w |= bit;
            self.len += 1;
        }
    }

    /// Whether `shard` is in the set.
    pub fn contains(&self, shard: u32) -> bool {
        self.bits
            .get(shard as usize / 64)
            .is_some_and(|w| w & (1u64 << (shard % 64)) != 0)
    }

    /// Adds every shard of `other`.
    pub fn extend(&mut self, other: &ShardSet) {
        if self.bits.len() < other.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        for (w, o) in self.bits.iter_mut().zip(&other.bits) {
            *w |= o;
        }
        self.len = self.bits.iter().map(|w| w.count_ones() as usize).sum();
    }

    /// How many shards are in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no shard.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Members as placement uses them: sorted by name, one per name (its largest
/// weight), weight > 0 only, checked against the limits. The order members
/// were learned in must not matter.
fn sorted_hosts(members: impl IntoIterator<Item = Member>) -> Result<Vec<Member>> {
    let mut hosts: Vec<Member> = Vec::new();
    for m in members {
        if m.weight > MAX_WEIGHT {
            return Err(Error::InvalidConfig(format!(
                "member {} has weight {}, the most is {MAX_WEIGHT}",
                m.name, m.weight
            )));
        }
        hosts.push(m);
    }
    // Heaviest first within a name, then keep the first of each name.
    hosts.sort_by(|a, b| a.name.cmp(&b.name).then(b.weight.cmp(&a.weight)));
    hosts.dedup_by(|later, first| later.name == first.name);
    hosts.retain(|m| m.weight > 0);
    if hosts.len() > MAX_MEMBERS {
        return Err(Error::InvalidConfig(format!(
            "{} members can host birds, the most is {MAX_MEMBERS}",
            hosts.len()
        )));
    }
    Ok(hosts)
}

/// One sub-member of a host: `weight` of them per host, in `(host, i)` order.
#[derive(Debug, Clone, Copy)]
struct Sub {
    host: u16,
    i: u32,
    seed: u64,
}

/// Every host's sub-members with their seeds, computed once per table: the
/// inner loop is then one mix per sub-member and shard.
fn sub_members(hosts: &[Member]) -> Vec<Sub> {
    hosts
        .iter()
        .enumerate()
        .flat_map(|(host, m)| {
            (0..m.weight).map(move |i| Sub {
                host: host as u16,
                i,
                seed: sub_member_seed(&m.name, i),
            })
        })
        .collect()
}

/// The best sub-member seen so far for one shard.
struct Best {
    score: u64,
    host: u16,
    i: u32,
}

impl Best {
    /// The best of `subs` (not empty) for `shard`.
    fn of(shard: u32, subs: &[Sub]) -> Best {
        let mut best = Best {
            score: 0,
            host: u16::MAX,
            i: u32::MAX,
        };
        best.offer(shard, subs);
        best
    }

    /// Keeps the better of itself and each of `subs`: the higher score, and
    /// on a tie the smaller `(host, i)` — the smaller `(name, i)`, whatever
    /// order members arrived in. A full build offers every sub-member in
    /// `(host, i)` order; an incremental one offers the owner's and the new
    /// ones', and must pick the same winner, so the tie rule is explicit.
    fn offer(&mut self, shard: u32, subs: &[Sub]) {
        let salt = mix(u64::from(shard));
        for s in subs {
            let score = mix(s.seed ^ salt);
            if score > self.score || (score == self.score && (s.host, s.i) < (self.host, self.i)) {
                *self = Best {
                    score,
                    host: s.host,
                    i: s.i,
                };
            }
        }
    }
}

/// The owner of `shard` by weighted rendezvous over `subs` (not empty).
fn best_of(shard: u32, subs: &[Sub]) -> u16 {
    Best::of(shard, subs).host
}

/// The seed of sub-member `i` of node `name`: XXH3-64 of the name's bytes,
/// a zero byte, and `i` as 4 little-endian bytes.
fn sub_member_seed(name: &str, i: u32) -> u64 {
    let mut bytes = Vec::with_capacity(name.len() + 5);
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&i.to_le_bytes());
    xxh3_64(&bytes)
}

/// SplitMix64's finalizer: a fixed, well-studied 64-bit bijective mixer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The multiplier of jump hash's linear congruential generator.
const JUMP_MUL: u64 = 2_862_933_555_777_941_757;

/// The multiplicative inverse of [`JUMP_MUL`] modulo 2^64 (Newton's method:
/// each step doubles the number of correct low bits).
const JUMP_MUL_INV: u64 = {
    let mut inv: u64 = JUMP_MUL; // correct to 3 bits for any odd number
    let mut i = 0;
    while i < 6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(JUMP_MUL.wrapping_mul(inv)));
        i += 1;
    }
    inv
};

/// The keys for which `jump_consistent_hash::hash(key, shards)` would overflow.
#[derive(Debug)]
pub struct JumpGuard {
    shards: u32,
    bad_keys: Vec<u64>,
}

/// What a bad key is replaced with (XORed in); checked not to be bad itself.
const REMAP: u64 = 0xA076_1D64_78BD_642F;

impl JumpGuard {
    /// Finds the overflowing keys for `shards` by replaying the generator.
    ///
    /// The crate's loop computes `k = k.wrapping_mul(C) + 1`, which overflows
    /// exactly when `k` (before the step) is `BAD = u64::MAX · C⁻¹`. A key
    /// overflows if its chain reaches `BAD` while the loop still runs. The
    /// loop runs at most `shards` steps (its bucket strictly grows), so the
    /// candidates are the `shards` predecessors of `BAD`; each is kept if
    /// replaying jump hash from it (wrapping) reaches `BAD` in time.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `shards` is 0 or above [`MAX_SHARDS`].
    pub fn new(shards: u32) -> Result<Self> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(Error::InvalidConfig(format!(
                "shard count must be in 1..={MAX_SHARDS}, got {shards}"
            )));
        }
        let bad = u64::MAX.wrapping_mul(JUMP_MUL_INV);
        let mut bad_keys = Vec::new();
        let mut candidate = bad;
        for steps_before in 0..shards {
            if reaches_within_loop(candidate, bad, steps_before, shards) {
                bad_keys.push(candidate);
            }
            // The predecessor p of c satisfies p·C + 1 = c.
            candidate = candidate.wrapping_sub(1).wrapping_mul(JUMP_MUL_INV);
        }
        Ok(JumpGuard { shards, bad_keys })
    }

    /// The guard for `shards`, built once per process and shared.
    fn shared(shards: u32) -> Result<Arc<Self>> {
        static CACHE: OnceLock<Mutex<Vec<Arc<JumpGuard>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        // A poisoned lock only means another thread panicked mid-push; the
        // vector is still a valid list of guards.
        let mut guards = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = guards.iter().find(|g| g.shards == shards) {
            return Ok(g.clone());
        }
        let guard = Arc::new(JumpGuard::new(shards)?);
        guards.push(guard.clone());
        Ok(guard)
    }

    /// The keys that would overflow jump hash for this shard count.
    pub fn bad_keys(&self) -> &[u64] {
        &self.bad_keys
    }

    /// The shard of a 64-bit name hash, never panicking.
    pub fn shard_of_hash(&self, hash: u64) -> u32 {
        let key = if self.bad_keys.contains(&hash) {
            hash ^ REMAP
        } else {
            hash
        };
        jump_consistent_hash::hash(key, self.shards as usize)
    }
}

/// Whether jump hash's loop, started from `key`, is still running when its
/// generator state equals `bad` after `steps_before` steps.
fn reaches_within_loop(key: u64, bad: u64, steps_before: u32, shards: u32) -> bool {
    let len = i64::from(shards);
    let (mut k, mut j, mut step) = (key, 0i64, 0u32);
    while j < len {
        if step == steps_before {
            return k == bad;
        }
        let b = j;
        k = k.wrapping_mul(JUMP_MUL).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((k >> 33) + 1) as f64)) as i64;
        step += 1;
    }
    false
}

/// Shard of a raw name hash for `shards` shards (uses the shared guard).
///
/// # Errors
/// [`Error::InvalidConfig`] for an out-of-range shard count.
pub fn shard_of_hash(hash: u64, shards: u32) -> Result<u32> {
    Ok(JumpGuard::shared(shards)?.shard_of_hash(hash))
}

#[cfg(test)]
mod tests;
