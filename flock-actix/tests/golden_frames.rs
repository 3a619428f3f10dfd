//! Golden frames: every wire message variant, with fixed contents, encoded as a
//! frame (4-byte length header + MessagePack body) and compared byte for byte
//! with the fixtures committed under `tests/golden/`.
//!
//! A difference means the wire format changed, so nodes built from this
//! commit may not understand nodes built from the last release (see "Wire
//! compatibility" in docs/ARCHITECTURE.md). If the change is intended, bump
//! `PROTOCOL_VERSION` as that section says, then rewrite the fixtures with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test -p flock-actix --test golden_frames
//! ```
//!
//! and commit them: the diff of `tests/golden/` is the wire change a reviewer
//! looks at.
//!
//! Each fixture is also decoded, so a frame from an older build that still
//! has its fixture here keeps decoding to the same value.

use bytes::BytesMut;
use flock_actix::core::crdt::{BirdMap, BirdSpec, Replica, ReplicaId};
use flock_actix::wire::message::PROTOCOL_VERSION;
use flock_actix::wire::{FrameCodec, MemberInfo, MemberStatus, Message, RejectReason, RemoteError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tokio_util::codec::{Decoder, Encoder};

/// Every case: a fixture name and the message it holds.
fn cases() -> Vec<(String, Message)> {
    let mut cases: Vec<(String, Message)> = vec![
        (
            "hello".into(),
            // The v1 first frames: v2 keeps their layout, and a v1 node
            // still sends exactly these.
            hello(1),
        ),
        (
            "challenge".into(),
            Message::Challenge {
                version: 1,
                id: replica("node2@10.0.0.2", 9),
                listen: "10.0.0.2:4001".into(),
                weight: 2,
                nonce: pattern(0x80),
            },
        ),
        ("proof".into(), Message::Proof { mac: pattern(0x20) }),
        ("welcome".into(), Message::Welcome { mac: pattern(0xa0) }),
        (
            "members".into(),
            Message::Members {
                members: vec![
                    MemberInfo {
                        id: replica("node1@10.0.0.1", 7),
                        addr: "10.0.0.1:4001".into(),
                        weight: 1,
                        status: MemberStatus::Alive,
                    },
                    MemberInfo {
                        id: replica("node2@10.0.0.2", 9),
                        addr: "10.0.0.2:4001".into(),
                        weight: 0,
                        status: MemberStatus::Leaving,
                    },
                ],
            },
        ),
        ("heartbeat".into(), Message::Heartbeat { seq: 300 }),
        ("heartbeat_ack".into(), Message::HeartbeatAck { seq: 300 }),
        (
            "leave".into(),
            Message::Leave {
                id: replica("node2@10.0.0.2", 9),
            },
        ),
        (
            "leave_ack".into(),
            Message::LeaveAck {
                id: replica("node2@10.0.0.2", 9),
            },
        ),
        (
            "sync_deltas".into(),
            Message::SyncDeltas {
                from_seq: 4,
                to_seq: 6,
                delta: sync_maps().0,
            },
        ),
        (
            "sync_full".into(),
            Message::SyncFull {
                seq: 6,
                state: sync_maps().1,
            },
        ),
        ("sync_ack".into(), Message::SyncAck { seq: 6 }),
        (
            "sync_chunk".into(),
            Message::SyncChunk {
                session: 3,
                index: 1,
                last: true,
                seq: 6,
                part: sync_maps().1,
            },
        ),
        (
            "sync_chunk_ack".into(),
            Message::SyncChunkAck {
                session: 3,
                index: 1,
            },
        ),
        (
            "handoff".into(),
            Message::Handoff {
                bird: "cart:17".into(),
                kind: "shop.cart.v1".into(),
                state: Some(vec![0x92, 0x01, 0x02]),
            },
        ),
        (
            "handoff_nothing".into(),
            Message::Handoff {
                bird: "cart:17".into(),
                kind: "shop.cart.v1".into(),
                state: None,
            },
        ),
        (
            "handoff_ack".into(),
            Message::HandoffAck {
                bird: "cart:17".into(),
            },
        ),
        ("hello_v2".into(), hello(PROTOCOL_VERSION)),
        (
            "kinds".into(),
            Message::Kinds {
                kinds: vec!["shop.cart.v1".into(), "shop.room.v1".into()],
            },
        ),
        (
            "sync_digest".into(),
            Message::SyncDigest {
                hashes: (0..16u64)
                    .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .collect(),
            },
        ),
        (
            "sync_range".into(),
            Message::SyncRange {
                reply: true,
                buckets: 16,
                ranges: vec![2, 11],
                part: sync_maps().1,
            },
        ),
        (
            "data_hello".into(),
            Message::DataHello {
                session: [0x5a; 32],
                shard: 517,
                nonce: [0x11; 32],
            },
        ),
        (
            "data_challenge".into(),
            Message::DataChallenge {
                lanes: 4,
                lane: 1,
                nonce: [0x22; 32],
                mac: [0x33; 32],
            },
        ),
        ("data_proof".into(), Message::DataProof { mac: [0x44; 32] }),
        (
            "call".into(),
            Message::Call {
                id: 42,
                bird: "cart:17".into(),
                kind: "shop.cart.v1".into(),
                msg: "add".into(),
                payload: vec![0x92, 0xa3, b'h', b'a', b't', 0x02],
                timeout_ms: 5_000,
                forwarded: true,
            },
        ),
        (
            "reply_ok".into(),
            Message::Reply {
                id: 42,
                result: Ok(vec![0xc3]),
            },
        ),
        (
            "cast".into(),
            Message::Cast {
                bird: "cart:17".into(),
                kind: "shop.cart.v1".into(),
                msg: "clear".into(),
                payload: vec![0x90],
            },
        ),
    ];
    for (name, reason) in reject_reasons() {
        cases.push((format!("reject_{name}"), Message::Reject { reason }));
    }
    for (name, error) in remote_errors() {
        cases.push((
            format!("reply_err_{name}"),
            Message::Reply {
                id: 43,
                result: Err(error),
            },
        ));
    }
    // A data link's clock stamp (ARCHITECTURE §32): a cast of the reserved
    // kind, so that an earlier build drops it instead of closing the link.
    cases.push((
        "data_sent_at".into(),
        Message::Cast {
            bird: String::new(),
            kind: "\0flock".into(),
            msg: "sent-at".into(),
            payload: 1_234_567_u64.to_be_bytes().to_vec(),
        },
    ));
    cases
}

fn reject_reasons() -> Vec<(&'static str, RejectReason)> {
    vec![
        ("version", RejectReason::Version { ours: 1 }),
        (
            "cluster",
            RejectReason::Cluster {
                ours: "prod".into(),
            },
        ),
        ("shards", RejectReason::Shards { ours: 65_536 }),
        ("auth_failed", RejectReason::AuthFailed),
        (
            "protocol",
            RejectReason::Protocol("expected Proof, got Heartbeat".into()),
        ),
    ]
}

fn remote_errors() -> Vec<(&'static str, RemoteError)> {
    vec![
        (
            "not_found",
            RemoteError::NotFound {
                bird: "cart:17".into(),
            },
        ),
        (
            "unknown_kind",
            RemoteError::UnknownKind {
                kind: "shop.cart.v1".into(),
            },
        ),
        (
            "unknown_message",
            RemoteError::UnknownMessage {
                kind: "shop.cart.v1".into(),
                msg: "add".into(),
            },
        ),
        ("decode", RemoteError::Decode("invalid type".into())),
        ("encode", RemoteError::Encode("invalid type".into())),
        (
            "bird_panicked",
            RemoteError::BirdPanicked {
                bird: "cart:17".into(),
            },
        ),
        (
            "moved",
            RemoteError::Moved {
                bird: "cart:17".into(),
                owner: "node3@10.0.0.3".into(),
            },
        ),
        ("timeout", RemoteError::Timeout),
        (
            "wrong_kind",
            RemoteError::WrongKind {
                bird: "cart:17".into(),
                expected: "shop.cart.v2".into(),
                actual: "shop.cart.v1".into(),
            },
        ),
        ("link_closed", RemoteError::LinkClosed),
        (
            "not_running",
            RemoteError::NotRunning {
                bird: "cart:17".into(),
            },
        ),
        ("internal", RemoteError::Internal("mailbox closed".into())),
        (
            "hatch_failed",
            RemoteError::HatchFailed {
                bird: "cart:17".into(),
                reason: "this node has no `Db` in its nest".into(),
            },
        ),
        ("not_sent", RemoteError::NotSent),
    ]
}

/// The fixed `Hello` of the fixtures, at `version` (the layout is the same
/// in v1 and v2).
fn hello(version: u32) -> Message {
    Message::Hello {
        version,
        cluster: "prod".into(),
        id: replica("node1@10.0.0.1", 7),
        listen: "10.0.0.1:4001".into(),
        weight: 1,
        shards: 65_536,
        nonce: pattern(0x00),
    }
}

/// Every `Message` variant's name ([`Message::name`]); the cases must cover
/// them all.
const MESSAGE_VARIANTS: [&str; 26] = [
    "Hello",
    "Challenge",
    "Proof",
    "Welcome",
    "Reject",
    "Members",
    "Heartbeat",
    "HeartbeatAck",
    "Leave",
    "LeaveAck",
    "SyncDeltas",
    "SyncFull",
    "SyncAck",
    "Call",
    "Reply",
    "Cast",
    "SyncChunk",
    "SyncChunkAck",
    "Handoff",
    "HandoffAck",
    "SyncDigest",
    "SyncRange",
    "Kinds",
    "DataHello",
    "DataChallenge",
    "DataProof",
];

/// Exhaustive on purpose (no `_` arm): a new `Message` variant fails to
/// compile here until it is listed, named in [`MESSAGE_VARIANTS`] and given
/// a case.
fn assert_variant_is_listed(msg: &Message) {
    match msg {
        Message::Hello { .. }
        | Message::Challenge { .. }
        | Message::Proof { .. }
        | Message::Welcome { .. }
        | Message::Reject { .. }
        | Message::Members { .. }
        | Message::Heartbeat { .. }
        | Message::HeartbeatAck { .. }
        | Message::Leave { .. }
        | Message::LeaveAck { .. }
        | Message::SyncDeltas { .. }
        | Message::SyncFull { .. }
        | Message::SyncAck { .. }
        | Message::Call { .. }
        | Message::Reply { .. }
        | Message::Cast { .. }
        | Message::SyncChunk { .. }
        | Message::SyncChunkAck { .. }
        | Message::Handoff { .. }
        | Message::HandoffAck { .. }
        | Message::SyncDigest { .. }
        | Message::SyncRange { .. }
        | Message::Kinds { .. }
        | Message::DataHello { .. }
        | Message::DataChallenge { .. }
        | Message::DataProof { .. } => {}
    }
}

/// Exhaustive on purpose: a new `RejectReason` needs a case in
/// [`reject_reasons`].
fn reject_variant(reason: &RejectReason) -> &'static str {
    match reason {
        RejectReason::Version { .. } => "version",
        RejectReason::Cluster { .. } => "cluster",
        RejectReason::Shards { .. } => "shards",
        RejectReason::AuthFailed => "auth_failed",
        RejectReason::Protocol(_) => "protocol",
    }
}

/// Exhaustive on purpose: a new `RemoteError` needs a case in
/// [`remote_errors`].
fn remote_error_variant(error: &RemoteError) -> &'static str {
    match error {
        RemoteError::NotFound { .. } => "not_found",
        RemoteError::UnknownKind { .. } => "unknown_kind",
        RemoteError::UnknownMessage { .. } => "unknown_message",
        RemoteError::Decode(_) => "decode",
        RemoteError::Encode(_) => "encode",
        RemoteError::BirdPanicked { .. } => "bird_panicked",
        RemoteError::Moved { .. } => "moved",
        RemoteError::Timeout => "timeout",
        RemoteError::NotRunning { .. } => "not_running",
        RemoteError::Internal(_) => "internal",
        RemoteError::WrongKind { .. } => "wrong_kind",
        RemoteError::LinkClosed => "link_closed",
        RemoteError::HatchFailed { .. } => "hatch_failed",
        RemoteError::NotSent => "not_sent",
    }
}

fn replica(node: &str, incarnation: u64) -> ReplicaId {
    ReplicaId {
        node: node.into(),
        incarnation,
    }
}

/// 32 consecutive bytes from `start`: recognisable in a hex dump.
fn pattern(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// What the two sync messages carry, built through the CRDT's public API:
/// a delta with a touch marker (a remove), and a full state with two birds
/// (one added concurrently on two nodes), a version vector and a dot cloud
/// (a later dot of `b` seen without the one before it). Every part of
/// `BirdMap` is on the wire in one of the two.
fn sync_maps() -> (BirdMap, BirdMap) {
    let spec = |kind: &str, args: &[u8]| BirdSpec {
        kind: kind.into(),
        args: args.to_vec(),
    };
    const T: u64 = 1_700_000_000_000;
    let mut a = Replica::new(replica("node1@10.0.0.1", 7));
    let mut b = Replica::new(replica("node2@10.0.0.2", 9));
    let b_id = b.id().clone();
    a.add("cart:17", spec("shop.cart.v1", &[0xa2, b'e', b'u']), T)
        .unwrap();
    a.add("ticker:ada", spec("ticker", &[0xc0]), T + 2).unwrap();
    let concurrent = b
        .add("cart:17", spec("shop.cart.v1", &[0xa2, b'u', b's']), T + 1)
        .unwrap();
    b.add("tmp", spec("ticker", &[0xc0]), T + 3).unwrap();
    let removed = b.remove("tmp");
    let late = b.add("late", spec("ticker", &[0xc2]), T + 4).unwrap();
    a.join(&b_id, &concurrent).unwrap();
    a.join(&b_id, &late).unwrap();
    let mut delta = removed;
    delta.join(&late);
    (delta, a.state().clone())
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn encode_frame(msg: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    FrameCodec::new()
        .encode(msg, &mut buf)
        .unwrap_or_else(|e| panic!("encoding {}: {e}", msg.name()));
    buf.to_vec()
}

/// Hex, 32 bytes a line, so that a fixture's diff points at the bytes that
/// changed.
fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for line in bytes.chunks(32) {
        for b in line {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('\n');
    }
    out
}

fn from_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| {
            u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16)
                .unwrap_or_else(|e| panic!("bad hex {pair:?}: {e}"))
        })
        .collect()
}

fn fixture_names_on_disk() -> BTreeSet<String> {
    std::fs::read_dir(golden_dir())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".hex").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_cases_cover_every_message_reject_reason_and_remote_error_variant() {
    let cases = cases();
    cases.iter().for_each(|(_, m)| assert_variant_is_listed(m));
    let messages: BTreeSet<&str> = cases.iter().map(|(_, m)| m.name()).collect();
    assert_eq!(messages, BTreeSet::from(MESSAGE_VARIANTS));
    let rejects: Vec<&str> = reject_reasons()
        .iter()
        .map(|(_, r)| reject_variant(r))
        .collect();
    assert_eq!(
        rejects,
        reject_reasons().iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    let errors: Vec<&str> = remote_errors()
        .iter()
        .map(|(_, e)| remote_error_variant(e))
        .collect();
    assert_eq!(
        errors,
        remote_errors().iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    let names: BTreeSet<&String> = cases.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), cases.len(), "two cases share a fixture name");
}

#[test]
fn every_message_encodes_to_its_golden_frame_and_the_golden_frame_decodes_back() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let dir = golden_dir();
    let cases = cases();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
        for stale in fixture_names_on_disk() {
            if !cases.iter().any(|(n, _)| *n == stale) {
                std::fs::remove_file(dir.join(format!("{stale}.hex"))).unwrap();
            }
        }
    }
    let mut failures = Vec::new();
    for (name, msg) in &cases {
        let path = dir.join(format!("{name}.hex"));
        let encoded = encode_frame(msg);
        if update {
            std::fs::write(&path, to_hex(&encoded)).unwrap();
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            failures.push(format!("{name}: no fixture {}", path.display()));
            continue;
        };
        let golden = from_hex(&text);
        if encoded != golden {
            failures.push(format!(
                "{name}: encodes differently from {}\n  golden:  {}\n  encoded: {}",
                path.display(),
                to_hex(&golden).replace('\n', ""),
                to_hex(&encoded).replace('\n', ""),
            ));
        }
        let mut buf = BytesMut::from(&golden[..]);
        match FrameCodec::new().decode(&mut buf) {
            Ok(Some(decoded)) if decoded == *msg && buf.is_empty() => {}
            other => failures.push(format!(
                "{name}: the golden frame does not decode back to the case: {other:?}"
            )),
        }
    }
    let stale: Vec<String> = fixture_names_on_disk()
        .into_iter()
        .filter(|f| !cases.iter().any(|(n, _)| n == f))
        .collect();
    if !stale.is_empty() {
        failures.push(format!(
            "fixtures without a case (a variant was removed or renamed: a breaking wire change): {stale:?}"
        ));
    }
    assert!(
        failures.is_empty(),
        "the wire format changed ({} differences). If intended, follow \"Wire compatibility\" in \
         docs/ARCHITECTURE.md and rerun with UPDATE_GOLDEN=1.\n{}",
        failures.len(),
        failures.join("\n")
    );
}
