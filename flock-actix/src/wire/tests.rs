//! Tests of the message encoding and the frame codec.

use super::codec::{DEFAULT_MAX_FRAME, FrameCodec, HEADER_LEN, PRE_AUTH_MAX_FRAME};
use super::message::{
    MemberInfo, MemberStatus, Message, PROTOCOL_VERSION, RejectReason, RemoteError, peek_version,
};
use crate::core::crdt::{BirdMap, BirdSpec, CausalContext, Dot, Entry, ReplicaId};
use crate::error::Error;
use bytes::{BufMut, BytesMut};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use serde::Serialize;
use std::sync::Arc;
use tokio_util::codec::{Decoder, Encoder};

// ---- strategies ----

fn text() -> impl Strategy<Value = String> {
    // Arbitrary Unicode, short: multi-byte characters exercise str lengths.
    ".{0,10}"
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn replica_id() -> impl Strategy<Value = ReplicaId> {
    (text(), any::<u64>()).prop_map(|(node, incarnation)| ReplicaId {
        node: Arc::from(node),
        incarnation,
    })
}

fn dot() -> impl Strategy<Value = Dot> {
    (replica_id(), any::<u64>()).prop_map(|(replica, counter)| Dot { replica, counter })
}

fn entry() -> impl Strategy<Value = Entry> {
    (text(), bytes(16), any::<u64>()).prop_map(|(kind, args, ts)| Entry {
        spec: BirdSpec { kind, args },
        ts,
    })
}

fn bird_map() -> impl Strategy<Value = BirdMap> {
    (
        btree_map(text(), vec((dot(), entry()), 0..3), 0..4),
        btree_map(replica_id(), any::<u64>(), 0..3),
        btree_set(dot(), 0..3),
    )
        .prop_map(|(store, vv, cloud)| BirdMap {
            store: store.into(),
            ctx: CausalContext {
                vv,
                cloud,
                floors: Default::default(),
            },
        })
}

fn remote_error() -> impl Strategy<Value = RemoteError> {
    prop_oneof![
        text().prop_map(|bird| RemoteError::NotFound { bird }),
        text().prop_map(|kind| RemoteError::UnknownKind { kind }),
        (text(), text()).prop_map(|(kind, msg)| RemoteError::UnknownMessage { kind, msg }),
        text().prop_map(RemoteError::Decode),
        text().prop_map(RemoteError::Encode),
        text().prop_map(|bird| RemoteError::BirdPanicked { bird }),
        (text(), text()).prop_map(|(bird, owner)| RemoteError::Moved { bird, owner }),
        Just(RemoteError::Timeout),
        text().prop_map(|bird| RemoteError::NotRunning { bird }),
        text().prop_map(RemoteError::Internal),
        (text(), text(), text()).prop_map(|(bird, expected, actual)| RemoteError::WrongKind {
            bird,
            expected,
            actual
        }),
        Just(RemoteError::LinkClosed),
        Just(RemoteError::NotSent),
    ]
}

fn reject_reason() -> impl Strategy<Value = RejectReason> {
    prop_oneof![
        any::<u32>().prop_map(|ours| RejectReason::Version { ours }),
        text().prop_map(|ours| RejectReason::Cluster { ours }),
        any::<u32>().prop_map(|ours| RejectReason::Shards { ours }),
        Just(RejectReason::AuthFailed),
        text().prop_map(RejectReason::Protocol),
    ]
}

fn member() -> impl Strategy<Value = MemberInfo> {
    (replica_id(), text(), any::<u32>(), any::<bool>()).prop_map(|(id, addr, weight, leaving)| {
        MemberInfo {
            id,
            addr,
            weight,
            status: if leaving {
                MemberStatus::Leaving
            } else {
                MemberStatus::Alive
            },
        }
    })
}

/// Every variant of [`Message`].
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            replica_id(),
            text(),
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(version, cluster, id, listen, weight, shards, nonce)| {
                Message::Hello {
                    version,
                    cluster,
                    id,
                    listen,
                    weight,
                    shards,
                    nonce,
                }
            }),
        (
            any::<u32>(),
            replica_id(),
            text(),
            any::<u32>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(version, id, listen, weight, nonce)| Message::Challenge {
                version,
                id,
                listen,
                weight,
                nonce,
            }),
        any::<[u8; 32]>().prop_map(|mac| Message::Proof { mac }),
        any::<[u8; 32]>().prop_map(|mac| Message::Welcome { mac }),
        reject_reason().prop_map(|reason| Message::Reject { reason }),
        vec(member(), 0..4).prop_map(|members| Message::Members { members }),
        any::<u64>().prop_map(|seq| Message::Heartbeat { seq }),
        any::<u64>().prop_map(|seq| Message::HeartbeatAck { seq }),
        replica_id().prop_map(|id| Message::Leave { id }),
        replica_id().prop_map(|id| Message::LeaveAck { id }),
        (any::<u64>(), any::<u64>(), bird_map()).prop_map(|(from_seq, to_seq, delta)| {
            Message::SyncDeltas {
                from_seq,
                to_seq,
                delta,
            }
        }),
        (any::<u64>(), bird_map()).prop_map(|(seq, state)| Message::SyncFull { seq, state }),
        any::<u64>().prop_map(|seq| Message::SyncAck { seq }),
        (
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            any::<u64>(),
            bird_map()
        )
            .prop_map(|(session, index, last, seq, part)| Message::SyncChunk {
                session,
                index,
                last,
                seq,
                part,
            }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(session, index)| Message::SyncChunkAck { session, index }),
        (text(), text(), proptest::option::of(bytes(64)))
            .prop_map(|(bird, kind, state)| Message::Handoff { bird, kind, state }),
        text().prop_map(|bird| Message::HandoffAck { bird }),
        proptest::collection::vec(text(), 0..4).prop_map(|kinds| Message::Kinds { kinds }),
        (any::<[u8; 32]>(), any::<u32>(), any::<[u8; 32]>()).prop_map(|(session, shard, nonce)| {
            Message::DataHello {
                session,
                shard,
                nonce,
            }
        }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(lanes, lane, nonce, mac)| Message::DataChallenge {
                lanes,
                lane,
                nonce,
                mac
            }),
        any::<[u8; 32]>().prop_map(|mac| Message::DataProof { mac }),
        (
            any::<u64>(),
            text(),
            text(),
            text(),
            bytes(64),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(|(id, bird, kind, msg, payload, timeout_ms, forwarded)| {
                Message::Call {
                    id,
                    bird,
                    kind,
                    msg,
                    payload,
                    timeout_ms,
                    forwarded,
                }
            }),
        (
            any::<u64>(),
            prop_oneof![bytes(64).prop_map(Ok), remote_error().prop_map(Err)]
        )
            .prop_map(|(id, result)| Message::Reply { id, result }),
        (text(), text(), text(), bytes(64)).prop_map(|(bird, kind, msg, payload)| {
            Message::Cast {
                bird,
                kind,
                msg,
                payload,
            }
        }),
    ]
}

fn frame(msg: &Message) -> BytesMut {
    let mut buf = BytesMut::new();
    FrameCodec::new().encode(msg, &mut buf).unwrap();
    buf
}

fn call(payload: Vec<u8>) -> Message {
    Message::Call {
        id: 42,
        bird: "counter7".into(),
        kind: "count".into(),
        msg: "incr".into(),
        payload,
        timeout_ms: 5_000,
        forwarded: false,
    }
}

/// Drives the codec over `buf` until it needs more input or fails; never
/// more iterations than bytes (each successful frame consumes ≥ 4 bytes).
fn drain(codec: &mut FrameCodec, buf: &mut BytesMut) {
    for _ in 0..=buf.len() {
        match codec.decode(buf) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

// ---- properties ----

proptest! {
    #[test]
    fn message_round_trips(msg in message()) {
        let bytes = msg.encode().unwrap();
        prop_assert_eq!(&Message::decode(&bytes).unwrap(), &msg);

        // And through the frame codec, several frames in one buffer.
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        codec.encode(&msg, &mut buf).unwrap();
        codec.encode(&msg, &mut buf).unwrap();
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(msg.clone()));
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(msg.clone()));
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), None);
        prop_assert!(buf.is_empty());

        // The first frames carry a peekable version.
        if let Message::Hello { version, .. } | Message::Challenge { version, .. } = &msg {
            prop_assert_eq!(peek_version(&bytes), Ok(*version));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        data in bytes(512),
        msg in message(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        declared in any::<u32>(),
    ) {
        // Raw garbage, to every entry point.
        let _ = Message::decode(&data);
        let _ = Message::decode_first(&data);
        let _ = peek_version(&data);

        // Garbage as a stream (random length prefixes included), pre- and
        // post-authentication caps.
        for max in [PRE_AUTH_MAX_FRAME, 1024] {
            let mut codec = FrameCodec::new();
            codec.set_max_frame(max).unwrap();
            let mut buf = BytesMut::from(&data[..]);
            drain(&mut codec, &mut buf);
            let _ = codec.decode_eof(&mut buf);
        }

        // A random length prefix followed by garbage.
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        buf.put_u32(declared);
        buf.extend_from_slice(&data);
        drain(&mut codec, &mut buf);

        // Near-valid input is where decoders break: a valid encoding with
        // some bytes overwritten, then truncated.
        let mut bytes = msg.encode().unwrap().to_vec();
        // A strict prefix of a valid encoding is never a message.
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(Message::decode(truncated).is_err());
        if !bytes.is_empty() {
            for (at, value) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *value;
            }
            let _ = Message::decode(&bytes);
            let _ = Message::decode_first(&bytes);
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::new();
            buf.put_u32(bytes.len() as u32);
            buf.extend_from_slice(&bytes);
            drain(&mut codec, &mut buf);
        }
    }
}

// ---- examples ----

#[test]
fn oversized_frame_is_rejected_before_buffering() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u32(PRE_AUTH_MAX_FRAME as u32 + 1);
    buf.put_slice(b"abc");
    assert_eq!(
        codec.decode(&mut buf),
        Err(Error::Link(crate::error::LinkError::FrameTooLarge {
            size: PRE_AUTH_MAX_FRAME + 1,
            max: PRE_AUTH_MAX_FRAME
        }))
    );
    // Nothing was reserved for the payload.
    assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());

    // A 4 GiB declaration after authentication: same, no allocation.
    let mut codec = FrameCodec::new();
    codec.set_max_frame(DEFAULT_MAX_FRAME).unwrap();
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u32(u32::MAX);
    assert_eq!(
        codec.decode(&mut buf),
        Err(Error::Link(crate::error::LinkError::FrameTooLarge {
            size: u32::MAX as usize,
            max: DEFAULT_MAX_FRAME
        }))
    );
    assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
}

#[test]
fn truncated_frame_waits_for_more() {
    let msg = call(vec![7; 100]);
    let whole = frame(&msg);
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for (i, byte) in whole.iter().enumerate() {
        buf.put_u8(*byte);
        let got = codec.decode(&mut buf).unwrap();
        if i + 1 < whole.len() {
            assert_eq!(got, None, "after {} of {} bytes", i + 1, whole.len());
        } else {
            assert_eq!(got, Some(msg.clone()));
        }
    }
    // The stream ending inside a frame is an I/O error, not a hang or panic.
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(&whole[..whole.len() - 1]);
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(Error::Io {
            kind: std::io::ErrorKind::Other,
            ..
        })
    ));
}

#[test]
fn pre_auth_cap_is_64_kib_and_raises_after_auth() {
    let mut codec = FrameCodec::new();
    assert_eq!(codec.max_frame(), 64 * 1024);
    assert_eq!(PRE_AUTH_MAX_FRAME, 65_536);

    // Decode side: exactly the cap is allowed (waits for the payload), one
    // more byte is not.
    let mut buf = BytesMut::new();
    buf.put_u32(PRE_AUTH_MAX_FRAME as u32);
    assert_eq!(codec.decode(&mut buf), Ok(None));
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    buf.put_u32(PRE_AUTH_MAX_FRAME as u32 + 1);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(Error::Link(crate::error::LinkError::FrameTooLarge { .. }))
    ));

    // Encode side: we do not send what the peer would refuse, and a refused
    // message leaves the output buffer untouched.
    let big = call(vec![0; 100 * 1024]);
    let mut codec = FrameCodec::new();
    let mut out = BytesMut::new();
    out.put_slice(b"earlier frames");
    let err = codec.encode(&big, &mut out).unwrap_err();
    let Error::Link(crate::error::LinkError::FrameTooLarge { size, max }) = err else {
        panic!("expected FrameTooLarge, got {err:?}")
    };
    assert!(size > 100 * 1024);
    assert_eq!(max, PRE_AUTH_MAX_FRAME);
    assert_eq!(&out[..], b"earlier frames");

    // After authentication the cap is raised and the same message passes.
    codec.set_max_frame(DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(codec.max_frame(), 32 * 1024 * 1024);
    let mut out = BytesMut::new();
    codec.encode(&big, &mut out).unwrap();
    assert_eq!(codec.decode(&mut out), Ok(Some(big)));

    // The cap must fit the 4-byte header.
    assert!(matches!(
        codec.set_max_frame(0),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        codec.set_max_frame(u32::MAX as usize + 1),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(codec.max_frame(), DEFAULT_MAX_FRAME);
}

#[test]
fn undecodable_frame_is_consumed_and_the_codec_stays_usable() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    buf.put_u32(3);
    buf.put_slice(&[0xc1, 0xc1, 0xc1]); // 0xc1 is "never used" in MessagePack
    buf.extend_from_slice(&frame(&Message::Heartbeat { seq: 9 }));
    assert!(matches!(codec.decode(&mut buf), Err(Error::Decode(_))));
    assert_eq!(
        codec.decode(&mut buf),
        Ok(Some(Message::Heartbeat { seq: 9 }))
    );
    assert!(buf.is_empty());
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = Message::SyncAck { seq: 1 }.encode().unwrap();
    bytes.put_u8(0);
    assert_eq!(
        Message::decode(&bytes),
        Err(Error::Decode(
            "1 trailing bytes after a SyncAck message".into()
        ))
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // {"Members": [[[[…]]]]}: 100 000 nested arrays.
    let mut bytes = vec![0x81, 0xa7];
    bytes.extend_from_slice(b"Members");
    bytes.extend(std::iter::repeat_n(0x91, 100_000));
    bytes.push(0x90);
    assert!(matches!(Message::decode(&bytes), Err(Error::Decode(_))));
}

#[test]
fn huge_declared_lengths_inside_a_frame_do_not_allocate() {
    // A Call whose payload claims 4 GiB in a 40-byte frame.
    let mut bytes = vec![0x81, 0xa4];
    bytes.extend_from_slice(b"Call");
    bytes.extend_from_slice(&[0x97, 0x01, 0xa1, b'b', 0xa1, b'k', 0xa1, b'm']);
    bytes.extend_from_slice(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]);
    assert!(matches!(Message::decode(&bytes), Err(Error::Decode(_))));
    // An array claiming 4 G members.
    let mut bytes = vec![0x81, 0xa7];
    bytes.extend_from_slice(b"Members");
    bytes.extend_from_slice(&[0x91, 0xdd, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(Message::decode(&bytes), Err(Error::Decode(_))));
}

#[test]
fn first_frame_version_is_peeked_without_decoding_the_rest() {
    // A "future" Hello: version 3 followed by fields we do not know.
    let mut bytes = vec![0x81, 0xa5];
    bytes.extend_from_slice(b"Hello");
    bytes.extend_from_slice(&[0x92, 0x03, 0xc0]);
    assert_eq!(peek_version(&bytes), Ok(3));
    assert_eq!(
        Message::decode_first(&bytes),
        Err(Error::Link(crate::error::LinkError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: 3
        }))
    );
    // Large versions in wider integer encodings.
    let mut bytes = vec![0x81, 0xa9];
    bytes.extend_from_slice(b"Challenge");
    bytes.extend_from_slice(&[0x91, 0xce, 0x00, 0x01, 0x00, 0x00]);
    assert_eq!(peek_version(&bytes), Ok(65_536));
    // Not a first frame.
    let bytes = Message::Heartbeat { seq: 1 }.encode().unwrap();
    assert!(matches!(peek_version(&bytes), Err(Error::Decode(_))));
    assert_eq!(
        Message::decode_first(&bytes),
        Ok(Message::Heartbeat { seq: 1 })
    );
}

/// The same `Call` as [`Message::Call`], but with the payload as a plain
/// `Vec<u8>` (what one gets without `serde_bytes`).
#[derive(Serialize)]
enum WithoutSerdeBytes {
    Call {
        id: u64,
        bird: String,
        kind: String,
        msg: String,
        payload: Vec<u8>,
        timeout_ms: u32,
        forwarded: bool,
    },
}

#[test]
fn payload_is_carried_as_bin_not_array() {
    let payload = vec![0xAB; 1024];
    let msg = call(payload.clone());
    let with = msg.encode().unwrap();
    let without = rmp_serde::to_vec(&WithoutSerdeBytes::Call {
        id: 42,
        bird: "counter7".into(),
        kind: "count".into(),
        msg: "incr".into(),
        payload: payload.clone(),
        timeout_ms: 5_000,
        forwarded: false,
    })
    .unwrap();
    println!(
        "Call with a 1 KiB payload: {} bytes with serde_bytes, {} without",
        with.len(),
        without.len()
    );
    // bin16 marker, length 1024, then the payload verbatim.
    let mut bin = vec![0xc5, 0x04, 0x00];
    bin.extend_from_slice(&payload);
    assert!(with.windows(bin.len()).any(|w| w == &bin[..]));
    assert_eq!(with.len(), 1059);
    assert_eq!(without.len(), 2083);

    // The Ok side of a Reply is bin too.
    let reply = Message::Reply {
        id: 1,
        result: Ok(payload.clone()),
    };
    let bytes = reply.encode().unwrap();
    assert!(bytes.windows(bin.len()).any(|w| w == &bin[..]));
    // {"Reply": [1, {"Ok": bin16}]}: 16 bytes of framing around the payload.
    assert_eq!(bytes.len(), 1024 + 16);
}

#[test]
fn names_match_variants() {
    assert_eq!(call(vec![]).name(), "Call");
    assert_eq!(Message::SyncAck { seq: 0 }.name(), "SyncAck");
    // Header layout: 4-byte big-endian length.
    let f = frame(&Message::Heartbeat { seq: 1 });
    let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
    assert_eq!(len + HEADER_LEN, f.len());
}

/// New `RemoteError` variants are appended: the encodings of the older ones
/// (what a node of an older build sends and expects) are byte for byte the
/// same as before they were added.
#[test]
fn existing_remote_errors_keep_their_encoding() {
    let reply = |e: RemoteError| {
        Message::Reply {
            id: 7,
            result: Err(e),
        }
        .encode()
        .unwrap()
        .to_vec()
    };
    // {"Reply": [7, {"Err": {"Internal": "x"}}]}
    let mut internal = vec![0x81, 0xa5];
    internal.extend_from_slice(b"Reply");
    internal.extend_from_slice(&[0x92, 0x07, 0x81, 0xa3]);
    internal.extend_from_slice(b"Err");
    internal.extend_from_slice(&[0x81, 0xa8]);
    internal.extend_from_slice(b"Internal");
    internal.extend_from_slice(&[0xa1, b'x']);
    assert_eq!(reply(RemoteError::Internal("x".into())), internal);
    // {"Reply": [7, {"Err": "Timeout"}]}
    let mut timeout = vec![0x81, 0xa5];
    timeout.extend_from_slice(b"Reply");
    timeout.extend_from_slice(&[0x92, 0x07, 0x81, 0xa3]);
    timeout.extend_from_slice(b"Err");
    timeout.push(0xa7);
    timeout.extend_from_slice(b"Timeout");
    assert_eq!(reply(RemoteError::Timeout), timeout);
}

#[test]
fn registry_transfers_are_told_apart_from_their_tag_alone() {
    let bulk = [
        Message::SyncDeltas {
            from_seq: 1,
            to_seq: 2,
            delta: BirdMap::default(),
        },
        Message::SyncFull {
            seq: 1,
            state: BirdMap::default(),
        },
        Message::SyncChunk {
            session: 1,
            index: 0,
            last: true,
            seq: 1,
            part: BirdMap::default(),
        },
        Message::SyncDigest {
            hashes: vec![1; 16],
        },
        Message::SyncRange {
            reply: false,
            buckets: 16,
            ranges: vec![3],
            part: BirdMap::default(),
        },
    ];
    for msg in &bulk {
        assert!(
            Message::is_bulk_sync(&msg.encode().unwrap()),
            "{}",
            msg.name()
        );
    }
    let small = [
        Message::Heartbeat { seq: 1 },
        Message::SyncAck { seq: 1 },
        Message::SyncChunkAck {
            session: 1,
            index: 0,
        },
    ];
    for msg in &small {
        assert!(
            !Message::is_bulk_sync(&msg.encode().unwrap()),
            "{}",
            msg.name()
        );
    }
    assert!(!Message::is_bulk_sync(&[]));
    assert!(!Message::is_bulk_sync(&[0x81, 0xaa, b'S']));
}
