//! The dot store's in-memory layout: `name → [(dot, entry)]`, compact.
//!
//! Every node holds the whole registry, so its bytes per bird are paid on
//! every node (issue #10, docs/ARCHITECTURE.md §28.1). The logical
//! content is the `BTreeMap<String, Vec<(Dot, Entry)>>` the join is written
//! against, and that is also what goes on the wire and to disk: the encoding
//! is that map's, byte for byte (see the `Serialize` impl). In memory:
//!
//! - one heap slot per name (56 bytes), holding the name and, in the common
//!   case of one dot, that dot's entry inline; the ordered set holds one
//!   pointer per name, so a B-tree node carries 11 names in 88 bytes;
//! - replica ids and kinds interned: a dot's replica and an entry's kind are
//!   `u32` indices into two small tables of this store, not an `Arc` and a
//!   `String` per entry;
//! - start arguments of up to [`INLINE_ARGS`] bytes inline, longer ones as
//!   one boxed slice;
//! - a delta's touch marker and a name with several dots told by a reserved
//!   kind index (the several dots kept in a side map), not by an enum tag.
//!
//! Readers get the logical form materialized ([`Store::get`],
//! [`Store::iter`]); the hot scans (every dot, every kind) read it in place.

use super::dot::{Dot, ReplicaId};
use super::map::{BirdSpec, Entry};
use serde::de::{MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::ops::Bound;
use std::sync::Arc;

/// The dots of one name with their entries, in their stored order.
pub type DotList = Vec<(Dot, Entry)>;

/// A table of distinct values, each named by its index.
#[derive(Debug, Clone)]
struct Interner<T: Eq + Hash + Clone> {
    items: Vec<T>,
    index: HashMap<T, u32>,
    /// The index interned last (see `intern_by`).
    last: u32,
}

impl<T: Eq + Hash + Clone> Default for Interner<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
            last: 0,
        }
    }
}

impl<T: Eq + Hash + Clone> Interner<T> {
    fn intern(&mut self, value: &T) -> u32 {
        self.intern_by(value, T::clone)
    }

    /// Interns the value `value` stands for, made by `make` only if new:
    /// a kind is looked up by its `&str`, with no `Arc` made per entry.
    /// The last value interned is tried first: entries come in runs of one
    /// replica and one kind (a batch of starts, a peer's delta), and an
    /// equality test is cheaper than hashing the value.
    fn intern_by<Q>(&mut self, value: &Q, make: impl FnOnce(&Q) -> T) -> u32
    where
        Q: Eq + Hash + ?Sized,
        T: Borrow<Q>,
    {
        if let Some(last) = self.items.get(self.last as usize)
            && last.borrow() == value
        {
            return self.last;
        }
        if let Some(&i) = self.index.get(value) {
            self.last = i;
            return i;
        }
        // More distinct values than fit in memory otherwise: every value
        // costs more than a byte, and `Store::collect` drops unused ones.
        let i = u32::try_from(self.items.len())
            .ok()
            .filter(|&i| i < MANY)
            .expect("fewer than 2^32 - 2 interned values");
        let value = make(value);
        self.items.push(value.clone());
        self.index.insert(value, i);
        self.last = i;
        i
    }

    fn get(&self, i: u32) -> &T {
        &self.items[i as usize]
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Longest start arguments kept inline in a slot (no allocation of their
/// own); longer ones are one boxed slice.
pub const INLINE_ARGS: usize = 7;

/// Start arguments: up to [`INLINE_ARGS`] bytes inline (a small integer id
/// in MessagePack, a small enum, an empty tuple), longer ones as one boxed
/// slice. 16 bytes either way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Args {
    Inline { len: u8, bytes: [u8; INLINE_ARGS] },
    Boxed(Box<[u8]>),
}

impl Args {
    fn as_slice(&self) -> &[u8] {
        match self {
            Args::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Args::Boxed(b) => b,
        }
    }
}

impl From<&[u8]> for Args {
    fn from(v: &[u8]) -> Self {
        match u8::try_from(v.len()) {
            Ok(len) if usize::from(len) <= INLINE_ARGS => {
                let mut bytes = [0; INLINE_ARGS];
                bytes[..v.len()].copy_from_slice(v);
                Args::Inline { len, bytes }
            }
            _ => Args::Boxed(v.into()),
        }
    }
}

impl From<Vec<u8>> for Args {
    fn from(v: Vec<u8>) -> Self {
        match u8::try_from(v.len()) {
            Ok(len) if usize::from(len) <= INLINE_ARGS => {
                let mut bytes = [0; INLINE_ARGS];
                bytes[..v.len()].copy_from_slice(&v);
                Args::Inline { len, bytes }
            }
            _ => Args::Boxed(v.into_boxed_slice()),
        }
    }
}

/// One stored `(dot, entry)`, with its replica and kind interned. In a
/// slot, a `kind` of [`MARKER`] or [`MANY`] says that the name has no dot
/// or several (see [`SlotInner`]); the other fields are then unused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    counter: u64,
    ts: u64,
    replica: u32,
    kind: u32,
    args: Args,
}

/// `Stored::kind` of a touch marker's slot: no dot.
const MARKER: u32 = u32::MAX;
/// `Stored::kind` of a slot whose name has several dots (concurrent adds
/// not resolved yet), kept in [`Inner::many`].
const MANY: u32 = u32::MAX - 1;

impl Stored {
    fn sentinel(kind: u32) -> Self {
        Stored {
            counter: 0,
            ts: 0,
            replica: 0,
            kind,
            args: Args::Inline {
                len: 0,
                bytes: [0; INLINE_ARGS],
            },
        }
    }
}

/// One name and its dots: the one heap allocation per name. The common
/// case, one dot, is inline; a delta's touch marker and a name with
/// several dots are told by a sentinel kind (an enum would cost 8 bytes
/// more per name for its tag).
#[derive(Debug, Clone)]
struct SlotInner {
    name: Box<str>,
    one: Stored,
}

/// A pointer-sized handle on a [`SlotInner`], ordered (and equal) by name.
#[derive(Debug, Clone)]
struct Slot(Box<SlotInner>);

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Slot {}

impl Borrow<str> for Slot {
    fn borrow(&self) -> &str {
        &self.0.name
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    // Names are unique in the set: ordering by name alone is total there,
    // and it is what `Borrow<str>` requires.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(&other.0.name)
    }
}

/// The compact dot store (see the module docs).
///
/// One pointer, and no allocation while empty: a `BirdMap` travels in
/// every sync message (whose size is its largest variant's), and most
/// deltas' stores are small or empty.
#[derive(Clone, Default)]
pub struct Store {
    inner: Option<Box<Inner>>,
}

#[derive(Debug, Clone, Default)]
struct Inner {
    slots: BTreeSet<Slot>,
    /// The dots of the names whose slot says [`MANY`]: rare, and short-lived.
    many: BTreeMap<Box<str>, Box<[Stored]>>,
    tables: Tables,
}

/// What an empty store reads.
static NO_SLOTS: BTreeSet<Slot> = BTreeSet::new();

/// The interned replica ids and kinds of one store.
#[derive(Debug, Clone, Default)]
struct Tables {
    replicas: Interner<ReplicaId>,
    kinds: Interner<Arc<str>>,
    /// Interned values after the last collection: the next one runs once
    /// the tables have grown past twice that (amortized O(1) per insert).
    collected_at: usize,
}

impl Tables {
    fn len(&self) -> usize {
        self.replicas.len() + self.kinds.len()
    }
}

/// Where another store's interned replicas and kinds are in this one's
/// tables (interned there as needed): to move slots between stores.
struct Remap {
    replicas: Vec<u32>,
    kinds: Vec<u32>,
}

impl Remap {
    fn new(into: &mut Tables, from: &Tables) -> Self {
        Remap {
            replicas: from
                .replicas
                .items
                .iter()
                .map(|r| into.replicas.intern(r))
                .collect(),
            kinds: from
                .kinds
                .items
                .iter()
                .map(|k| into.kinds.intern(k))
                .collect(),
        }
    }

    fn apply(&self, d: &mut Stored) {
        if d.kind != MARKER && d.kind != MANY {
            d.replica = self.replicas[d.replica as usize];
            d.kind = self.kinds[d.kind as usize];
        }
    }
}

/// Heap bytes of one name's slot besides its name and arguments (for
/// memory accounting: `flock-bench registry_layout`).
pub const SLOT_BYTES: usize = std::mem::size_of::<SlotInner>();

/// Interned values kept at least before a collection is considered.
const COLLECT_MIN: usize = 64;

impl Store {
    fn slots(&self) -> &BTreeSet<Slot> {
        self.inner.as_ref().map_or(&NO_SLOTS, |i| &i.slots)
    }

    fn inner_mut(&mut self) -> &mut Inner {
        self.inner.get_or_insert_with(Box::default)
    }

    /// The tables; a stored dot exists only once they do.
    fn tables(&self) -> &Tables {
        &self
            .inner
            .as_ref()
            .expect("a stored dot was interned, which created the tables")
            .tables
    }

    fn replica(&self, i: u32) -> &ReplicaId {
        self.tables().replicas.get(i)
    }

    fn kind(&self, i: u32) -> &str {
        self.tables().kinds.get(i)
    }

    /// Number of names (touch markers included).
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Whether no name is stored.
    pub fn is_empty(&self) -> bool {
        self.slots().is_empty()
    }

    /// Whether `name` is stored (possibly as a touch marker).
    pub fn contains_key(&self, name: &str) -> bool {
        self.slots().contains(name)
    }

    /// Whether `name` is stored with at least one dot.
    pub fn has_dots(&self, name: &str) -> bool {
        self.slots()
            .get(name)
            .is_some_and(|s| s.0.one.kind != MARKER)
    }

    /// The dots of `name`, materialized.
    pub fn get(&self, name: &str) -> Option<DotList> {
        self.slots().get(name).map(|s| self.list(&s.0))
    }

    /// Stores `list` under `name`, replacing what was there. An empty list
    /// is a touch marker.
    pub fn insert(&mut self, name: &str, list: DotList) {
        let mut stored: Vec<Stored> = list
            .into_iter()
            .map(|(dot, entry)| self.intern(dot, entry))
            .collect();
        let name: Box<str> = name.into();
        let inner = self.inner_mut();
        let one = match stored.len() {
            0 => Stored::sentinel(MARKER),
            1 => stored.pop().expect("one"),
            _ => {
                inner.many.insert(name.clone(), stored.into_boxed_slice());
                Stored::sentinel(MANY)
            }
        };
        if one.kind != MANY {
            inner.many.remove(&name);
        }
        inner.slots.replace(Slot(Box::new(SlotInner { name, one })));
        self.maybe_collect();
    }

    /// Lists `name` as a touch marker unless it is stored already.
    pub fn touch(&mut self, name: &str) {
        if !self.contains_key(name) {
            self.insert(name, Vec::new());
        }
    }

    /// Removes `name`; whether it was stored.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(inner) = self.inner.as_mut() else {
            return false;
        };
        let removed = inner.slots.remove(name);
        inner.many.remove(name);
        if inner.slots.is_empty() {
            self.inner = None;
        }
        removed
    }

    /// Removes every name.
    pub fn clear(&mut self) {
        *self = Store::default();
    }

    /// Keeps only the names for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &DotList) -> bool) {
        let drop: Vec<Box<str>> = self
            .iter()
            .filter(|(name, list)| !keep(name, list))
            .map(|(name, _)| name.into())
            .collect();
        for name in drop {
            self.remove(&name);
        }
    }

    /// Every name with its dots, materialized, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, DotList)> + '_ {
        self.slots().iter().map(|s| (&*s.0.name, self.list(&s.0)))
    }

    /// The names after `after` (all with `None`), with their dots, in name order.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, DotList)> + 'a {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.slots()
            .range::<str, _>((from, Bound::Unbounded))
            .map(|s| (&*s.0.name, self.list(&s.0)))
    }

    /// The names after `after` (all with `None`), each with its dots read
    /// in place, in name order: what a sender needs to size a chunk part
    /// without materializing a single name.
    pub fn views_after<'a>(
        &'a self,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, DotsRef<'a>)> + 'a {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.slots()
            .range::<str, _>((from, Bound::Unbounded))
            .map(|s| {
                let dots = DotsRef {
                    store: self,
                    dots: self.dots_in(&s.0),
                };
                (&*s.0.name, dots)
            })
    }

    /// Every name with its dots read in place, in name order.
    pub fn views(&self) -> impl Iterator<Item = (&str, DotsRef<'_>)> + '_ {
        self.views_after(None)
    }

    /// A copy of the names after `after` up to and including `through`,
    /// slot by slot: no name is materialized and re-interned, and the
    /// copy's tables hold only the replicas and kinds its dots use. What
    /// a sender cuts a chunk part with (a million names per transfer).
    pub fn copy_range(&self, after: Option<&str>, through: &str) -> Store {
        let Some(inner) = self.inner.as_deref() else {
            return Store::default();
        };
        if after.is_some_and(|a| a >= through) {
            return Store::default();
        }
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let range = (from, Bound::Included(through));
        let mut tables = Tables::default();
        // Old index → new, for the few replicas and kinds of this store.
        let mut replicas: Vec<Option<u32>> = vec![None; inner.tables.replicas.len()];
        let mut kinds: Vec<Option<u32>> = vec![None; inner.tables.kinds.len()];
        let mut remap = |d: &Stored| -> Stored {
            let mut d = d.clone();
            if d.kind != MARKER && d.kind != MANY {
                let r = &mut replicas[d.replica as usize];
                d.replica = *r.get_or_insert_with(|| {
                    tables.replicas.intern(inner.tables.replicas.get(d.replica))
                });
                let k = &mut kinds[d.kind as usize];
                d.kind =
                    *k.get_or_insert_with(|| tables.kinds.intern(inner.tables.kinds.get(d.kind)));
            }
            d
        };
        let mut many = BTreeMap::new();
        let slots: BTreeSet<Slot> = inner
            .slots
            .range::<str, _>(range)
            .map(|s| {
                if s.0.one.kind == MANY
                    && let Some(list) = inner.many.get(&s.0.name)
                {
                    let list: Box<[Stored]> = list.iter().map(&mut remap).collect();
                    many.insert(s.0.name.clone(), list);
                }
                Slot(Box::new(SlotInner {
                    name: s.0.name.clone(),
                    one: remap(&s.0.one),
                }))
            })
            .collect();
        if slots.is_empty() {
            return Store::default();
        }
        tables.collected_at = tables.len();
        Store {
            inner: Some(Box::new(Inner {
                slots,
                many,
                tables,
            })),
        }
    }

    /// Drops the touch markers (names with no dot): what a full state
    /// means by the same map.
    pub fn drop_markers(&mut self) {
        let Some(inner) = self.inner.as_deref_mut() else {
            return;
        };
        inner.slots.retain(|s| s.0.one.kind != MARKER);
        if inner.slots.is_empty() {
            self.inner = None;
        }
    }

    /// Keeps only the dots for which `keep(replica, counter)` holds, drops
    /// the names left with none (and touch markers), and sorts each
    /// remaining name's dots by dot: what joining this store into an empty
    /// one whose context has seen the dropped dots gives (see
    /// `BirdMap::join_owned`). Slot by slot, nothing materialized.
    pub fn retain_dots(&mut self, mut keep: impl FnMut(&ReplicaId, u64) -> bool) {
        let Some(inner) = self.inner.as_deref_mut() else {
            return;
        };
        let tables = &inner.tables;
        let many = &mut inner.many;
        let slots = std::mem::take(&mut inner.slots);
        inner.slots = slots
            .into_iter()
            .filter_map(|mut slot| {
                match slot.0.one.kind {
                    MARKER => return None,
                    MANY => {}
                    _ => {
                        let d = &slot.0.one;
                        return keep(tables.replicas.get(d.replica), d.counter).then_some(slot);
                    }
                }
                let list = many.remove(&slot.0.name).unwrap_or_default();
                let mut list: Vec<Stored> = list
                    .into_vec()
                    .into_iter()
                    .filter(|d| keep(tables.replicas.get(d.replica), d.counter))
                    .collect();
                // Stable, as the join's: equal dots keep their order.
                list.sort_by(|a, b| {
                    (tables.replicas.get(a.replica), a.counter)
                        .cmp(&(tables.replicas.get(b.replica), b.counter))
                });
                match list.len() {
                    0 => None,
                    1 => {
                        slot.0.one = list.pop().expect("one");
                        Some(slot)
                    }
                    _ => {
                        many.insert(slot.0.name.clone(), list.into_boxed_slice());
                        Some(slot)
                    }
                }
            })
            .collect();
        if inner.slots.is_empty() {
            self.inner = None;
        }
    }

    /// Moves every name of `other` in, replacing a name stored already
    /// (as [`insert`](Self::insert) would): slot by slot, with no name
    /// materialized.
    pub fn absorb(&mut self, other: Store) {
        let Some(mut theirs) = other.inner else {
            return;
        };
        let Some(mine) = self.inner.as_deref_mut() else {
            self.inner = Some(theirs);
            return;
        };
        let remap = Remap::new(&mut mine.tables, &theirs.tables);
        for (name, mut list) in std::mem::take(&mut theirs.many) {
            list.iter_mut().for_each(|d| remap.apply(d));
            mine.many.insert(name, list);
        }
        for mut slot in std::mem::take(&mut theirs.slots) {
            remap.apply(&mut slot.0.one);
            if slot.0.one.kind != MANY {
                mine.many.remove(&slot.0.name);
            }
            mine.slots.replace(slot);
        }
        self.maybe_collect();
    }

    /// The stores `parts` made one, a name in several taking the list of
    /// the last part that has it (as [`absorb`](Self::absorb)ing each in
    /// turn). When the parts hold disjoint runs of names, in any order (the
    /// parts of one transfer), the tree is built in one sorted pass over
    /// all their slots: absorbing each part into the growing whole cost a
    /// rebuild or an insert per name, a million per transfer.
    pub fn concat(parts: Vec<Store>) -> Store {
        let inners: Vec<Box<Inner>> = parts
            .into_iter()
            .filter_map(|p| p.inner)
            .filter(|i| !i.slots.is_empty())
            .collect();
        let mut order: Vec<usize> = (0..inners.len()).collect();
        order.sort_by(|&a, &b| inners[a].slots.first().cmp(&inners[b].slots.first()));
        let disjoint = order
            .windows(2)
            .all(|w| inners[w[0]].slots.last() < inners[w[1]].slots.first());
        if !disjoint {
            let mut out = Store::default();
            for inner in inners {
                out.absorb(Store { inner: Some(inner) });
            }
            return out;
        }
        let total = inners.iter().map(|i| i.slots.len()).sum();
        let mut slots = Vec::with_capacity(total);
        let mut many = BTreeMap::new();
        let mut tables = Tables::default();
        let mut inners: Vec<Option<Box<Inner>>> = inners.into_iter().map(Some).collect();
        for i in order {
            let mut inner = inners[i].take().expect("each part once");
            let remap = Remap::new(&mut tables, &inner.tables);
            for (name, mut list) in std::mem::take(&mut inner.many) {
                list.iter_mut().for_each(|d| remap.apply(d));
                many.insert(name, list);
            }
            for mut slot in std::mem::take(&mut inner.slots) {
                remap.apply(&mut slot.0.one);
                slots.push(slot);
            }
        }
        if slots.is_empty() {
            return Store::default();
        }
        tables.collected_at = tables.len();
        Store {
            inner: Some(Box::new(Inner {
                // Sorted already: collecting builds the tree in one pass.
                slots: slots.into_iter().collect(),
                many,
                tables,
            })),
        }
    }

    /// Every name, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.slots().iter().map(|s| &*s.0.name)
    }

    /// Every stored dot as `(name, replica, counter, ts)`, read in place.
    pub fn dots(&self) -> impl Iterator<Item = (&str, &ReplicaId, u64, u64)> + '_ {
        self.slots().iter().flat_map(move |s| {
            self.dots_in(&s.0)
                .iter()
                .map(move |d| (&*s.0.name, self.replica(d.replica), d.counter, d.ts))
        })
    }

    /// Every stored dot, in name order.
    pub fn all_dots(&self) -> impl Iterator<Item = Dot> + '_ {
        self.dots().map(|(_, replica, counter, _)| Dot {
            replica: replica.clone(),
            counter,
        })
    }

    /// Every stored dot as its interned replica and counter (cheap to sort
    /// and compare: two dots are equal exactly when these are).
    pub fn dot_keys(&self) -> Vec<(u32, u64)> {
        self.slots()
            .iter()
            .flat_map(|s| self.dots_in(&s.0).iter().map(|d| (d.replica, d.counter)))
            .collect()
    }

    /// The dots stored under `name`, read in place.
    pub fn dots_of<'a>(&'a self, name: &str) -> impl Iterator<Item = Dot> + 'a {
        self.slots()
            .get(name)
            .map_or(&[][..], |s| self.dots_in(&s.0))
            .iter()
            .map(|d| Dot {
                replica: self.replica(d.replica).clone(),
                counter: d.counter,
            })
    }

    /// Number of stored dots.
    pub fn dot_count(&self) -> usize {
        self.slots().iter().map(|s| self.dots_in(&s.0).len()).sum()
    }

    /// Every name with its visible kind (the winner's), read in place: what
    /// placement needs, without copying any arguments.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.slots()
            .iter()
            .filter_map(|s| self.winner(&s.0).map(|d| (&*s.0.name, self.kind(d.kind))))
    }

    /// Every name with its visible kind and start arguments (the
    /// winner's), read in place.
    pub fn specs(&self) -> impl Iterator<Item = (&str, &str, &[u8])> + '_ {
        self.slots().iter().filter_map(|s| {
            self.winner(&s.0)
                .map(|d| (&*s.0.name, self.kind(d.kind), d.args.as_slice()))
        })
    }

    /// As [`Store::specs`], from the first name after `after` (every name
    /// with `None`): an owned-set read made in slices resumes here.
    pub fn specs_after<'a>(
        &'a self,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a [u8])> + 'a {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.slots()
            .range::<str, _>((from, Bound::Unbounded))
            .filter_map(|s| {
                self.winner(&s.0)
                    .map(|d| (&*s.0.name, self.kind(d.kind), d.args.as_slice()))
            })
    }

    /// The winning `(dot, entry)` of `name`: highest `(ts, dot)`.
    pub fn winner_of(&self, name: &str) -> Option<(Dot, Entry)> {
        let slot = self.slots().get(name)?;
        self.winner(&slot.0).map(|d| self.expand(d))
    }

    /// The winner among `dots`, compared as the logical `(ts, Dot)`.
    fn winner<'a>(&'a self, slot: &'a SlotInner) -> Option<&'a Stored> {
        self.dots_in(slot).iter().max_by(|a, b| {
            let key = |d: &Stored| (d.ts, self.replica(d.replica), d.counter);
            key(a).cmp(&key(b))
        })
    }

    fn intern(&mut self, dot: Dot, entry: Entry) -> Stored {
        let tables = &mut self.inner_mut().tables;
        Stored {
            counter: dot.counter,
            ts: entry.ts,
            replica: tables.replicas.intern(&dot.replica),
            kind: tables
                .kinds
                .intern_by(entry.spec.kind.as_str(), |k| Arc::from(k)),
            args: entry.spec.args.into(),
        }
    }

    fn expand(&self, d: &Stored) -> (Dot, Entry) {
        (
            Dot {
                replica: self.replica(d.replica).clone(),
                counter: d.counter,
            },
            Entry {
                spec: BirdSpec {
                    kind: self.kind(d.kind).to_owned(),
                    args: d.args.as_slice().to_vec(),
                },
                ts: d.ts,
            },
        )
    }

    fn list(&self, slot: &SlotInner) -> DotList {
        self.dots_in(slot).iter().map(|d| self.expand(d)).collect()
    }

    /// The dots of a slot: none, its inline one, or those kept in `many`.
    fn dots_in<'a>(&'a self, slot: &'a SlotInner) -> &'a [Stored] {
        match slot.one.kind {
            MARKER => &[],
            MANY => self
                .inner
                .as_ref()
                .and_then(|i| i.many.get(&slot.name))
                .map_or(&[], |list| list),
            _ => std::slice::from_ref(&slot.one),
        }
    }

    /// Drops interned replica ids and kinds no stored dot uses any more
    /// (removed birds, folded incarnations), once the tables have doubled
    /// since the last time: they are fed by the network and must not grow
    /// without bound.
    fn maybe_collect(&mut self) {
        let Some(inner) = self.inner.as_deref_mut() else {
            return;
        };
        let old = &inner.tables;
        if old.len() < COLLECT_MIN.max(old.collected_at.saturating_mul(2)) {
            return;
        }
        let mut new = Tables::default();
        let mut reintern = |d: &mut Stored| {
            if d.kind != MARKER && d.kind != MANY {
                d.replica = new.replicas.intern(old.replicas.get(d.replica));
                d.kind = new.kinds.intern(old.kinds.get(d.kind));
            }
        };
        // Re-interning in place: a slot's order key (its name) is untouched.
        let slots = std::mem::take(&mut inner.slots);
        inner.slots = slots
            .into_iter()
            .map(|mut slot| {
                reintern(&mut slot.0.one);
                slot
            })
            .collect();
        for list in inner.many.values_mut() {
            list.iter_mut().for_each(&mut reintern);
        }
        new.collected_at = new.len();
        inner.tables = new;
    }
}

/// One decoded `(dot, entry)`, its replica and kind interned in the
/// [`StoreBuilder`] that made it.
pub(crate) struct BuiltDot(Stored);

/// Builds a [`Store`] from borrowed pieces of a frame, name by name in
/// increasing order, straight into the compact layout: what the sync
/// decoder (`wire::sync`) fills. No name, kind or replica is materialized
/// on the way: a kind is interned from its `&str`, a replica from its
/// `(&str, incarnation)`, and an `Arc` is made once per distinct replica.
/// The result is the store [`insert`](Store::insert)ing each name in turn
/// gives (the tests compare them).
pub(crate) struct StoreBuilder<'a> {
    slots: Vec<Slot>,
    many: BTreeMap<Box<str>, Box<[Stored]>>,
    tables: Tables,
    /// The replica interned last, tried first (dots come in runs of one).
    last: Option<(&'a str, u64, u32)>,
    /// `(node, incarnation)` → interned index, for the frame's few replicas.
    replicas: HashMap<(&'a str, u64), u32>,
}

impl<'a> StoreBuilder<'a> {
    pub(crate) fn new() -> Self {
        StoreBuilder {
            slots: Vec::new(),
            many: BTreeMap::new(),
            tables: Tables::default(),
            last: None,
            replicas: HashMap::new(),
        }
    }

    /// Interns one dot and its entry.
    pub(crate) fn dot(
        &mut self,
        (node, incarnation): (&'a str, u64),
        counter: u64,
        kind: &str,
        args: &[u8],
        ts: u64,
    ) -> BuiltDot {
        let replica = match self.last {
            Some((n, i, r)) if i == incarnation && n == node => r,
            _ => {
                let tables = &mut self.tables;
                let r = *self.replicas.entry((node, incarnation)).or_insert_with(|| {
                    tables.replicas.intern(&ReplicaId {
                        node: node.into(),
                        incarnation,
                    })
                });
                self.last = Some((node, incarnation, r));
                r
            }
        };
        BuiltDot(Stored {
            counter,
            ts,
            replica,
            kind: self.tables.kinds.intern_by(kind, |k| Arc::from(k)),
            args: args.into(),
        })
    }

    /// Stores the dots `dots` (drained; none: a touch marker) under
    /// `name`; `false`, with nothing stored, unless `name` comes after
    /// every name pushed before.
    pub(crate) fn push(&mut self, name: &str, dots: &mut Vec<BuiltDot>) -> bool {
        if self.slots.last().is_some_and(|s| &*s.0.name >= name) {
            return false;
        }
        let name: Box<str> = name.into();
        let one = match dots.len() {
            0 => Stored::sentinel(MARKER),
            1 => dots.pop().expect("one").0,
            _ => {
                let list = dots.drain(..).map(|d| d.0).collect();
                self.many.insert(name.clone(), list);
                Stored::sentinel(MANY)
            }
        };
        self.slots.push(Slot(Box::new(SlotInner { name, one })));
        true
    }

    /// The store.
    pub(crate) fn finish(self) -> Store {
        if self.slots.is_empty() {
            return Store::default();
        }
        let mut tables = self.tables;
        tables.collected_at = tables.len();
        Store {
            inner: Some(Box::new(Inner {
                // Increasing already (`push`): one pass builds the tree.
                slots: self.slots.into_iter().collect(),
                many: self.many,
                tables,
            })),
        }
    }
}

impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Store {}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, DotList)> for Store {
    fn from_iter<I: IntoIterator<Item = (String, DotList)>>(iter: I) -> Self {
        let mut store = Store::default();
        for (name, list) in iter {
            store.insert(&name, list);
        }
        store
    }
}

impl From<std::collections::BTreeMap<String, DotList>> for Store {
    fn from(map: std::collections::BTreeMap<String, DotList>) -> Self {
        map.into_iter().collect()
    }
}

// The encoding is exactly that of `BTreeMap<String, Vec<(Dot, Entry)>>`:
// the same serde calls with the same struct names and fields, written from
// borrowed views instead of materialized values.

#[derive(Serialize)]
#[serde(rename = "Dot")]
struct DotRef<'a> {
    replica: &'a ReplicaId,
    counter: u64,
}

#[derive(Serialize)]
#[serde(rename = "BirdSpec")]
struct SpecRef<'a> {
    kind: &'a str,
    #[serde(with = "serde_bytes")]
    args: &'a [u8],
}

#[derive(Serialize)]
#[serde(rename = "Entry")]
struct EntryRef<'a> {
    spec: SpecRef<'a>,
    ts: u64,
}

/// One name's dots, read in place (see [`Store::views_after`]).
#[derive(Clone, Copy)]
pub struct DotsRef<'a> {
    store: &'a Store,
    dots: &'a [Stored],
}

/// One stored dot read in place: its replica, counter and entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DotView<'a> {
    /// The replica that minted the dot.
    pub replica: &'a ReplicaId,
    /// Its counter.
    pub counter: u64,
    /// The entry's kind.
    pub kind: &'a str,
    /// The entry's start arguments.
    pub args: &'a [u8],
    /// The entry's timestamp.
    pub ts: u64,
}

impl<'a> DotsRef<'a> {
    /// The dots, in their stored order.
    pub fn iter(&self) -> impl Iterator<Item = DotView<'a>> + 'a {
        let store = self.store;
        self.dots.iter().map(move |d| DotView {
            replica: store.replica(d.replica),
            counter: d.counter,
            kind: store.kind(d.kind),
            args: d.args.as_slice(),
            ts: d.ts,
        })
    }

    /// Number of dots (0 for a touch marker).
    pub fn len(&self) -> usize {
        self.dots.len()
    }

    /// Whether this is a touch marker (no dot).
    pub fn is_empty(&self) -> bool {
        self.dots.is_empty()
    }
}

/// One name's dot list, serialized as `Vec<(Dot, Entry)>`.
struct ListRef<'a> {
    store: &'a Store,
    dots: &'a [Stored],
}

/// One `(Dot, Entry)`, serialized as that tuple.
struct PairRef<'a> {
    store: &'a Store,
    d: &'a Stored,
}

impl Serialize for PairRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&DotRef {
            replica: self.store.replica(self.d.replica),
            counter: self.d.counter,
        })?;
        t.serialize_element(&EntryRef {
            spec: SpecRef {
                kind: self.store.kind(self.d.kind),
                args: self.d.args.as_slice(),
            },
            ts: self.d.ts,
        })?;
        t.end()
    }
}

impl Serialize for ListRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.dots.len()))?;
        for d in self.dots {
            seq.serialize_element(&PairRef {
                store: self.store,
                d,
            })?;
        }
        seq.end()
    }
}

impl Serialize for Store {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for slot in self.slots() {
            map.serialize_entry(
                &*slot.0.name,
                &ListRef {
                    store: self,
                    dots: self.dots_in(&slot.0),
                },
            )?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Store {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StoreVisitor;
        impl<'de> Visitor<'de> for StoreVisitor {
            type Value = Store;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of bird names to dot lists")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Store, A::Error> {
                // As `BTreeMap`'s own visitor: a repeated name keeps the last.
                let mut store = Store::default();
                while let Some((name, list)) = map.next_entry::<String, DotList>()? {
                    store.insert(&name, list);
                }
                Ok(store)
            }
        }
        d.deserialize_map(StoreVisitor)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The dot `counter` of `node`'s incarnation 1 (also for `wire::sync_tests`).
    pub(crate) fn dot(node: &str, counter: u64) -> Dot {
        Dot {
            replica: ReplicaId {
                node: node.into(),
                incarnation: 1,
            },
            counter,
        }
    }

    /// An entry of `kind` with two bytes of arguments, at `ts`.
    pub(crate) fn entry(kind: &str, ts: u64) -> Entry {
        Entry {
            spec: BirdSpec {
                kind: kind.into(),
                args: vec![1, 2],
            },
            ts,
        }
    }

    #[test]
    fn a_name_with_one_dot_costs_one_pointer_in_the_tree_and_one_slot() {
        assert_eq!(std::mem::size_of::<Slot>(), 8);
        assert_eq!(std::mem::size_of::<Store>(), 8);
        assert_eq!(std::mem::size_of::<Args>(), 16);
        assert_eq!(std::mem::size_of::<SlotInner>(), 56);
    }

    #[test]
    fn the_encoding_is_the_btreemaps() {
        let mut map = std::collections::BTreeMap::new();
        let mut long = entry("k", 5);
        long.spec.args = (0..40).collect();
        map.insert("b".to_owned(), vec![(dot("n1", 1), long)]);
        map.insert(
            "a".to_owned(),
            vec![
                (dot("n2", 3), entry("k2", 7)),
                (dot("n1", 2), entry("k", 6)),
            ],
        );
        map.insert("c".to_owned(), Vec::new());
        let store = Store::from(map.clone());
        let want = rmp_serde::to_vec(&map).expect("encodes");
        assert_eq!(rmp_serde::to_vec(&store).expect("encodes"), want);
        let back: Store = rmp_serde::from_slice(&want).expect("decodes");
        assert_eq!(back, store);
        assert_eq!(back.iter().collect::<Vec<_>>().len(), 3);
        assert_eq!(back.get("a"), map.get("a").cloned());
    }

    #[test]
    fn a_name_going_from_several_dots_to_one_or_none_keeps_no_side_entry() {
        let mut store = Store::default();
        let two = vec![(dot("n1", 1), entry("k", 1)), (dot("n2", 1), entry("k", 2))];
        store.insert("x", two.clone());
        assert_eq!(store.get("x"), Some(two));
        assert_eq!(store.dot_count(), 2);
        store.insert("x", vec![(dot("n2", 1), entry("k", 2))]);
        assert_eq!(store.get("x"), Some(vec![(dot("n2", 1), entry("k", 2))]));
        store.insert("y", vec![(dot("n1", 2), entry("k", 3)); 2]);
        store.insert("y", Vec::new());
        assert!(store.contains_key("y") && !store.has_dots("y"));
        assert_eq!(store.inner.as_ref().map(|i| i.many.len()), Some(0));
        store.insert("z", vec![(dot("n1", 3), entry("k", 4)); 2]);
        store.remove("z");
        assert_eq!(store.inner.as_ref().map(|i| i.many.len()), Some(0));
    }

    #[test]
    fn unused_replicas_and_kinds_are_dropped_from_the_tables() {
        let mut store = Store::default();
        for i in 0..1000u64 {
            let name = format!("n{i}");
            store.insert(&name, vec![(dot(&name, 1), entry(&name, i))]);
            store.remove(&name);
        }
        store.insert("kept", vec![(dot("x", 1), entry("k", 1))]);
        assert!(store.tables().len() <= 2 * COLLECT_MIN);
        assert_eq!(store.get("kept"), Some(vec![(dot("x", 1), entry("k", 1))]));
    }
}
