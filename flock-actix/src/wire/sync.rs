//! The registry sync frames that carry a [`BirdMap`] — `SyncDeltas`,
//! `SyncFull`, `SyncChunk` and `SyncRange` — read from the frame's bytes
//! straight into the store's compact layout (issues #10 and #12,
//! docs/ARCHITECTURE.md §43).
//!
//! Through serde, a delta or a part cost a `String` and a `Vec` per name,
//! a `String` (the kind), a `Vec` (the arguments) and an `Arc<str>` (the
//! replica's node) per dot, an `Arc<str>` per dot of the context's cloud,
//! and then an interning and a B-tree insert per name. Here names, kinds
//! and node names are borrowed from the frame: a kind and a replica are
//! interned from their borrowed form (an `Arc` per *distinct* one), a
//! name's one dot goes inline into its slot (a list is built only for a
//! name with several), and the names, already in order on the wire, make
//! the tree in one pass.
//!
//! **The wire format does not change**, and neither does what is accepted.
//! This reader takes only the *canonical* form rmp-serde writes: the exact
//! variant prefix, every struct as an array of exactly its fields, each
//! field in its expected MessagePack family, the store's names strictly
//! increasing, no trailing bytes. Anything else — a form rmp-serde also
//! accepts (a struct as a map, an integer as a signed type, a name as
//! `bin`, names out of order or repeated), a malformed or truncated frame —
//! makes it step aside, and [`Message::decode_general`] is the judge: the
//! value it gives, or its error. So this reader can only agree with the old
//! decoder or step aside (proptests in `sync_tests`). It never panics, and
//! never allocates from a declared length: every item it reads consumes
//! input, so a hostile count ends with the frame.

use super::message::Message;
use super::mpack::Cursor;
use crate::core::crdt::store::{BuiltDot, StoreBuilder};
use crate::core::crdt::{BirdMap, CausalContext, Dot, ReplicaId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Reads `frame` as a sync frame carrying a map, in its canonical form;
/// `None` if it is not one (another message, another form, malformed).
pub(super) fn read(frame: &[u8]) -> Option<Message> {
    let mut r = Cursor::new(frame);
    if r.byte()? != 0x81 {
        return None;
    }
    let msg = match r.str()? {
        "SyncDeltas" => {
            fields(&mut r, 3)?;
            Message::SyncDeltas {
                from_seq: r.uint()?,
                to_seq: r.uint()?,
                delta: bird_map(&mut r)?,
            }
        }
        "SyncFull" => {
            fields(&mut r, 2)?;
            Message::SyncFull {
                seq: r.uint()?,
                state: bird_map(&mut r)?,
            }
        }
        "SyncChunk" => {
            fields(&mut r, 5)?;
            Message::SyncChunk {
                session: r.uint()?,
                index: u32_of(&mut r)?,
                last: r.bool()?,
                seq: r.uint()?,
                part: bird_map(&mut r)?,
            }
        }
        "SyncRange" => {
            fields(&mut r, 4)?;
            let reply = r.bool()?;
            let buckets = u32_of(&mut r)?;
            let n = r.array_len()?;
            let mut ranges = Vec::new();
            for _ in 0..n {
                ranges.push(u32_of(&mut r)?);
            }
            Message::SyncRange {
                reply,
                buckets,
                ranges,
                part: bird_map(&mut r)?,
            }
        }
        _ => return None,
    };
    r.at_end().then_some(msg)
}

/// Reads `bytes` as exactly one [`BirdMap`] in its canonical form (a saved
/// state's record, `runtime::durable`); `None` if it is not one, and then
/// rmp-serde is the judge, as for frames.
pub(crate) fn read_map(bytes: &[u8]) -> Option<BirdMap> {
    let mut r = Cursor::new(bytes);
    let map = bird_map(&mut r)?;
    r.at_end().then_some(map)
}

/// An array of exactly `n` items (a struct's fields).
fn fields(r: &mut Cursor<'_>, n: u64) -> Option<()> {
    (r.array_len()? == n).then_some(())
}

fn u32_of(r: &mut Cursor<'_>) -> Option<u32> {
    u32::try_from(r.uint()?).ok()
}

/// `ReplicaId { node, incarnation }`, borrowed.
fn replica<'a>(r: &mut Cursor<'a>) -> Option<(&'a str, u64)> {
    fields(r, 2)?;
    Some((r.str()?, r.uint()?))
}

/// A `str` that is mostly the one read before it (a dot's node name and
/// kind): the bytes equal to the last ones are not checked as UTF-8 again.
#[derive(Default)]
struct Repeated<'a>(&'a str);

impl<'a> Repeated<'a> {
    fn read(&mut self, r: &mut Cursor<'a>) -> Option<&'a str> {
        let len = r.str_len()?;
        let bytes = r.bytes(len)?;
        if bytes != self.0.as_bytes() {
            self.0 = std::str::from_utf8(bytes).ok()?;
        }
        Some(self.0)
    }
}

fn bird_map(r: &mut Cursor<'_>) -> Option<BirdMap> {
    fields(r, 2)?;
    let store = store(r)?;
    let ctx = context(r)?;
    Some(BirdMap { store, ctx })
}

/// The store: `{name: [[Dot, Entry], …], …}`, names increasing.
fn store<'a>(r: &mut Cursor<'a>) -> Option<crate::core::crdt::store::Store> {
    let names = r.map_len()?;
    let mut builder = StoreBuilder::new();
    // Reused for every name: a name's dots are moved out of it.
    let mut dots: Vec<BuiltDot> = Vec::new();
    let (mut node, mut kind) = (Repeated::default(), Repeated::default());
    for _ in 0..names {
        let name = r.str()?;
        let count = r.array_len()?;
        for _ in 0..count {
            // [Dot { replica, counter }, Entry { spec: { kind, args }, ts }]
            fields(r, 2)?;
            fields(r, 2)?;
            fields(r, 2)?;
            let replica = (node.read(r)?, r.uint()?);
            let counter = r.uint()?;
            fields(r, 2)?;
            fields(r, 2)?;
            let kind = kind.read(r)?;
            let args = r.bin()?;
            let ts = r.uint()?;
            dots.push(builder.dot(replica, counter, kind, args, ts));
        }
        if !builder.push(name, &mut dots) {
            return None;
        }
    }
    Some(builder.finish())
}

/// Replica ids made once per distinct `(node, incarnation)` of a context
/// (its cloud holds a dot per name of a delta, all of a few replicas).
#[derive(Default)]
struct Replicas<'a> {
    last: Option<(&'a str, u64, ReplicaId)>,
    seen: HashMap<(&'a str, u64), ReplicaId>,
}

impl<'a> Replicas<'a> {
    fn get(&mut self, (node, incarnation): (&'a str, u64)) -> ReplicaId {
        if let Some((n, i, id)) = &self.last
            && *n == node
            && *i == incarnation
        {
            return id.clone();
        }
        let id = self
            .seen
            .entry((node, incarnation))
            .or_insert_with(|| ReplicaId {
                node: node.into(),
                incarnation,
            })
            .clone();
        self.last = Some((node, incarnation, id.clone()));
        id
    }
}

/// The causal context: `[vv, cloud]` or `[vv, cloud, floors]` (floors are
/// left out while empty). Repeated keys keep the last value, as serde's
/// maps do.
fn context(r: &mut Cursor<'_>) -> Option<CausalContext> {
    let len = r.array_len()?;
    if len != 2 && len != 3 {
        return None;
    }
    let mut ids = Replicas::default();
    let mut vv = BTreeMap::new();
    for _ in 0..r.map_len()? {
        let id = ids.get(replica(r)?);
        vv.insert(id, r.uint()?);
    }
    let mut cloud = Vec::new();
    for _ in 0..r.array_len()? {
        fields(r, 2)?;
        let replica = ids.get(replica(r)?);
        cloud.push(Dot {
            replica,
            counter: r.uint()?,
        });
    }
    // In order on the wire: collecting checks that in one pass and builds
    // the set without a search per dot (and drops repeats, as inserting does).
    let cloud: BTreeSet<Dot> = cloud.into_iter().collect();
    let mut floors = BTreeMap::new();
    if len == 3 {
        for _ in 0..r.map_len()? {
            let node = r.str()?;
            floors.insert(node.into(), r.uint()?);
        }
    }
    Some(CausalContext { vv, cloud, floors })
}
