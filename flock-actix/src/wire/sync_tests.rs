//! The sync reader (`wire::sync`) against rmp-serde, the old decoder: on
//! every frame they give the same message or the same error.

use super::message::Message;
use super::sync::{read, read_map};
use crate::core::crdt::store::tests::{dot, entry};
use crate::core::crdt::{BirdMap, BirdSpec, CausalContext, Dot, Entry, ReplicaId};
use crate::error::Error;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use serde::Serialize;
use serde::ser::SerializeMap;
use std::collections::BTreeMap;

// ---- strategies ----

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Short arbitrary Unicode (multi-byte characters exercise lengths).
        ".{0,6}",
        // Over 31 bytes: a `str8`, not a fixstr.
        "[a-z]{32,40}",
    ]
}

fn number() -> impl Strategy<Value = u64> {
    // Every width of MessagePack uint, and the edges.
    prop_oneof![
        0..128u64,
        128..65_536u64,
        any::<u32>().prop_map(u64::from),
        any::<u64>(),
        Just(u64::MAX),
    ]
}

/// A few replicas, as a real registry has: dots come in runs of one.
fn replicas() -> impl Strategy<Value = Vec<ReplicaId>> {
    vec(
        (text(), number()).prop_map(|(node, incarnation)| ReplicaId {
            node: node.into(),
            incarnation,
        }),
        1..4,
    )
}

fn args() -> impl Strategy<Value = Vec<u8>> {
    // Inline (up to 7 bytes) and boxed, and a `bin16`.
    prop_oneof![vec(any::<u8>(), 0..12), vec(any::<u8>(), 256..300),]
}

fn bird_map() -> impl Strategy<Value = BirdMap> {
    replicas().prop_flat_map(|ids| {
        let n = ids.len();
        let dot = move || (0..n, number());
        let entry = (prop_oneof![Just("k".to_owned()), text()], args(), number()).prop_map(
            |(kind, args, ts)| Entry {
                spec: BirdSpec { kind, args },
                ts,
            },
        );
        let ids2 = ids.clone();
        let ids3 = ids.clone();
        (
            // Touch markers (no dot), one dot, several.
            btree_map(text(), vec((dot(), entry), 0..4), 0..6),
            btree_map(0..n, number(), 0..3),
            btree_set(dot(), 0..6),
            btree_map(text(), number(), 0..2),
        )
            .prop_map(move |(store, vv, cloud, floors)| {
                let id = |r: usize| ids2[r].clone();
                let store: BTreeMap<String, Vec<(Dot, Entry)>> = store
                    .into_iter()
                    .map(|(name, list)| {
                        let list = list
                            .into_iter()
                            .map(|((r, counter), e)| {
                                let replica = id(r);
                                (Dot { replica, counter }, e)
                            })
                            .collect();
                        (name, list)
                    })
                    .collect();
                BirdMap {
                    store: store.into(),
                    ctx: CausalContext {
                        vv: vv.into_iter().map(|(r, n)| (ids3[r].clone(), n)).collect(),
                        cloud: cloud
                            .into_iter()
                            .map(|(r, counter)| Dot {
                                replica: ids3[r].clone(),
                                counter,
                            })
                            .collect(),
                        floors: floors.into_iter().map(|(n, f)| (n.into(), f)).collect(),
                    },
                }
            })
    })
}

/// The four messages that carry a map, around `map`.
fn messages(map: BirdMap, a: u64, b: u32) -> Vec<Message> {
    vec![
        Message::SyncDeltas {
            from_seq: a,
            to_seq: a.wrapping_add(1),
            delta: map.clone(),
        },
        Message::SyncFull {
            seq: a,
            state: map.clone(),
        },
        Message::SyncChunk {
            session: a,
            index: b,
            last: b.is_multiple_of(2),
            seq: 7,
            part: map.clone(),
        },
        Message::SyncRange {
            reply: !b.is_multiple_of(2),
            buckets: b,
            ranges: vec![0, b, u32::MAX],
            part: map,
        },
    ]
}

/// The decoders agree on `frame`: the same message, or the same error.
fn agree(frame: &[u8]) -> std::result::Result<(), TestCaseError> {
    let general = Message::decode_general(frame);
    if let Some(fast) = read(frame) {
        prop_assert_eq!(Ok(&fast), general.as_ref(), "read accepted: {:02x?}", frame);
    }
    prop_assert_eq!(Message::decode(frame), general);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_sync_frame_reads_as_the_old_decoder_decodes_it(
        map in bird_map(),
        a in number(),
        b in any::<u32>(),
    ) {
        for msg in messages(map, a, b) {
            let frame = msg.encode().expect("encodes");
            let fast = read(&frame);
            // The canonical form is always read, never handed on.
            prop_assert!(fast.is_some(), "{} stepped aside", msg.name());
            prop_assert_eq!(fast.as_ref(), Some(&msg));
            prop_assert_eq!(Message::decode_general(&frame), Ok(msg.clone()));
            // And what was read encodes to the same bytes again.
            let again = fast.expect("read").encode().expect("encodes");
            prop_assert_eq!(&again[..], &frame[..]);
        }
    }

    #[test]
    fn a_saved_map_reads_as_rmp_serde_decodes_it(
        map in bird_map(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = rmp_serde::to_vec(&map).expect("encodes");
        prop_assert_eq!(read_map(&bytes), Some(map));
        // A cut record: both refuse it.
        let cut = &bytes[..cut.index(bytes.len())];
        prop_assert!(read_map(cut).is_none());
        prop_assert!(rmp_serde::from_slice::<BirdMap>(cut).is_err());
    }

    #[test]
    fn other_forms_rmp_serde_accepts_are_decoded_by_rmp_serde(
        map in bird_map(),
        a in number(),
        b in any::<u32>(),
    ) {
        for msg in messages(map, a, b) {
            // Structs as maps with field names.
            let mut named = Vec::new();
            msg.serialize(&mut rmp_serde::Serializer::new(&mut named).with_struct_map())
                .expect("encodes");
            prop_assert!(read(&named).is_none());
            prop_assert_eq!(Message::decode(&named), Ok(msg));
        }
    }

    #[test]
    fn a_damaged_sync_frame_gets_the_old_decoders_answer(
        map in bird_map(),
        a in number(),
        b in any::<u32>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        for msg in messages(map, a, b) {
            let mut frame = msg.encode().expect("encodes").to_vec();
            for (at, byte, how) in &edits {
                let i = at.index(frame.len() + 1);
                match how {
                    0 if i < frame.len() => frame[i] = *byte,
                    1 => frame.insert(i, *byte),
                    _ => frame.truncate(i),
                }
            }
            agree(&frame)?;
        }
    }
}

/// Serializes `(name, list)` pairs as a map in the given order (repeats
/// and disorder included), as a hostile or foreign sender could.
struct Pairs(Vec<(String, Vec<(Dot, Entry)>)>);

impl Serialize for Pairs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A `SyncFull` frame around a store written as `pairs` and an empty context.
fn full_of(pairs: Vec<(String, Vec<(Dot, Entry)>)>) -> Vec<u8> {
    #[derive(Serialize)]
    enum Wire {
        #[allow(dead_code)]
        SyncFull {
            seq: u64,
            state: (Pairs, CausalContext),
        },
    }
    rmp_serde::to_vec(&Wire::SyncFull {
        seq: 1,
        state: (Pairs(pairs), CausalContext::default()),
    })
    .expect("encodes")
}

#[test]
fn names_out_of_order_or_repeated_are_left_to_the_old_decoder() {
    let a = ("a".to_owned(), vec![(dot("n1", 1), entry("k", 1))]);
    let b = ("b".to_owned(), vec![(dot("n1", 2), entry("k", 2))]);
    let b2 = ("b".to_owned(), vec![(dot("n2", 1), entry("j", 3))]);
    for pairs in [
        vec![b.clone(), a.clone()],
        vec![a.clone(), b.clone(), b2.clone()],
        vec![b2, a, b],
    ] {
        let frame = full_of(pairs.clone());
        assert!(read(&frame).is_none());
        let Ok(Message::SyncFull { state, .. }) = Message::decode(&frame) else {
            panic!("decodes");
        };
        // The last list of a repeated name wins, as in a `BTreeMap`.
        let want: BTreeMap<String, Vec<(Dot, Entry)>> = pairs.into_iter().collect();
        assert_eq!(state.store, want.into());
    }
}

#[test]
fn a_written_form_is_read_with_its_wider_integers_and_floors() {
    // A counter as a `uint64` of a small value, a name as `str8`: read.
    let mut map = BirdMap::default();
    map.store.insert("x", vec![(dot("n", 5), entry("k", 9))]);
    map.ctx.floors.insert("old".into(), 3);
    let msg = Message::SyncFull { seq: 2, state: map };
    let frame = msg.encode().expect("encodes").to_vec();
    let at = frame
        .windows(3)
        .position(|w| w == [0x01, 0x05, 0x92])
        .expect("incarnation 1, counter 5, then the entry");
    let mut wide = frame[..=at].to_vec();
    wide.extend([0xcf, 0, 0, 0, 0, 0, 0, 0, 5]);
    wide.extend(&frame[at + 2..]);
    assert_eq!(read(&wide).as_ref(), Some(&msg));
    // The same counter as a signed `int8`: rmp-serde's judgement.
    let mut signed = frame[..=at].to_vec();
    signed.extend([0xd0, 5]);
    signed.extend(&frame[at + 2..]);
    assert!(read(&signed).is_none());
    assert_eq!(Message::decode(&signed), Ok(msg));
}

#[test]
fn every_truncation_of_a_sync_frame_is_a_decode_error() {
    let mut map = BirdMap::default();
    for i in 0..5u64 {
        map.store.insert(
            &format!("bird-{i}"),
            vec![(dot("n", i + 1), entry("k", i)); (i % 3) as usize],
        );
        map.ctx.insert(dot("n", i + 1));
    }
    map.ctx.insert(dot("m", 9));
    for msg in messages(map, 300, 70_000) {
        let frame = msg.encode().expect("encodes");
        for end in 0..frame.len() {
            let cut = &frame[..end];
            assert!(read(cut).is_none());
            assert!(
                matches!(Message::decode(cut), Err(Error::Decode(_))),
                "{} cut at {end}",
                msg.name()
            );
        }
        // And a byte too many.
        let mut long = frame.to_vec();
        long.push(0);
        assert!(read(&long).is_none());
        assert!(matches!(Message::decode(&long), Err(Error::Decode(_))));
    }
}

#[test]
fn huge_declared_lengths_end_with_the_frame() {
    let prefix = b"\x81\xa8SyncFull\x92\x01\x92".to_vec();
    let cases: [&[u8]; 6] = [
        // 2^32 - 1 names, none there.
        b"\xdf\xff\xff\xff\xff",
        // One name of 4 GiB.
        b"\x81\xdb\xff\xff\xff\xff",
        // One name with 2^32 - 1 dots.
        b"\x81\xa1x\xdd\xff\xff\xff\xff",
        // An empty store, then a context with a huge cloud.
        b"\x80\x92\x80\xdd\xff\xff\xff\xff",
        // ... with 2^32 - 1 replicas in its version vector.
        b"\x80\x92\xdf\xff\xff\xff\xff",
        // One dot whose arguments are 4 GiB.
        b"\x81\xa1x\x91\x92\x92\x92\xa1n\x01\x01\x92\x92\xa1k\xc6\xff\xff\xff\xff",
    ];
    for tail in cases {
        let mut frame = prefix.clone();
        frame.extend_from_slice(tail);
        assert!(read(&frame).is_none(), "{tail:02x?}");
        assert!(
            matches!(Message::decode(&frame), Err(Error::Decode(_))),
            "{tail:02x?}"
        );
    }
}

#[test]
fn wrong_types_are_decode_errors() {
    let mut map = BirdMap::default();
    map.store.insert("x", vec![(dot("n", 1), entry("k", 1))]);
    let frame = Message::SyncFull { seq: 1, state: map }
        .encode()
        .expect("encodes")
        .to_vec();
    // The kind "k" (`a1 6b`) as a number, as nil, as an array.
    let at = frame
        .windows(2)
        .position(|w| w == [0xa1, b'k'])
        .expect("the kind");
    for bad in [&[0x07u8, 0x00][..], &[0xc0, 0xc0], &[0x90, 0xc0]] {
        let mut f = frame.clone();
        f[at..at + 2].copy_from_slice(bad);
        assert!(read(&f).is_none());
        assert!(matches!(Message::decode(&f), Err(Error::Decode(_))));
    }
    // A name that is not UTF-8.
    let at = frame
        .windows(2)
        .position(|w| w == [0xa1, b'x'])
        .expect("the name");
    let mut f = frame.clone();
    f[at + 1] = 0xff;
    assert!(read(&f).is_none());
    assert!(matches!(Message::decode(&f), Err(Error::Decode(_))));
}

/// What the hosts decode while a client registers: deltas of 10,000 new
/// names of one client replica (`start_many`'s batches), each with a cloud
/// of the 10,000 dots. Timed both ways in this process, and a target for
/// callgrind (`--toggle-collect` on `decode_general` and on `sync::read`):
/// `cargo test --release -p flock-actix --lib -- --ignored --nocapture
/// registration_deltas_decoded_both_ways` (`FLOCK_DELTAS`, default 20).
/// A measurement, not a check (it checks only that both agree).
#[test]
#[ignore = "a measurement: run it in release with --nocapture"]
fn registration_deltas_decoded_both_ways() {
    use crate::core::crdt::Replica;
    use std::time::Instant;
    let deltas: usize = std::env::var("FLOCK_DELTAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut client = Replica::new(ReplicaId {
        node: "client@127.0.0.1".into(),
        incarnation: 1_795_859_000_000,
    });
    let spec = BirdSpec {
        kind: "flock_bench::birds::Sink".into(),
        args: vec![0],
    };
    let frames: Vec<_> = (0..deltas)
        .map(|d| {
            let names: Vec<String> = (0..10_000).map(|i| format!("bird-{d}-{i}")).collect();
            let (delta, _) = client.add_new(names.iter().map(|n| (n.as_str(), &spec)), 1);
            Message::SyncDeltas {
                from_seq: d as u64,
                to_seq: d as u64,
                delta,
            }
            .encode()
            .expect("encodes")
        })
        .collect();
    let t = Instant::now();
    let old: Vec<Message> = frames
        .iter()
        .map(|f| Message::decode_general(f).expect("decodes"))
        .collect();
    let old_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let new: Vec<Message> = frames.iter().map(|f| read(f).expect("reads")).collect();
    let new_secs = t.elapsed().as_secs_f64();
    assert_eq!(old, new);
    println!(
        "{deltas} deltas of 10k names ({} B each): rmp-serde {old_secs:.3} s, read {new_secs:.3} s",
        frames[0].len()
    );
}
