//! The handshake across protocol versions: v2 links announce kinds, v1
//! links do not, N and N−1 negotiate down, anything else is refused.

use super::*;
use crate::wire::message::PROTOCOL_VERSION;
use std::sync::Arc;

const NOW: u64 = 1_000_000;

fn cfg(node: &str, versions: Versions, kinds: &[&str]) -> HandshakeConfig {
    HandshakeConfig {
        cluster: "flock".into(),
        cookie: b"c00k1e".to_vec(),
        me: ReplicaId {
            node: Arc::from(node),
            incarnation: 7,
        },
        listen: format!("{node}:4369"),
        weight: 1,
        shards: 64,
        versions,
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
    }
}

fn v1() -> Versions {
    Versions::exactly(1)
}

fn set(kinds: &[&str]) -> Option<BTreeSet<String>> {
    Some(kinds.iter().map(|k| k.to_string()).collect())
}

/// Every message of one handshake in order, and both results. Steps
/// through the wire encoding (first frames version-first, as the codec).
struct Run {
    sent: Vec<&'static str>,
    initiator: Result<PeerInfo>,
    acceptor: Result<PeerInfo>,
}

fn run(mut ini: Initiator, hello: Message, mut acc: Acceptor) -> Run {
    let mut replay = NonceCache::new(16, 60_000);
    let mut sent = vec![hello.name()];
    let (mut to_acceptor, mut first) = (Some(hello), true);
    let mut to_initiator: Option<Message> = None;
    let (mut i_done, mut a_done) = (None, None);
    for _ in 0..10 {
        if let Some(msg) = to_acceptor.take() {
            let bytes = msg.encode().unwrap();
            let decoded = if std::mem::take(&mut first) {
                Message::decode_first(&bytes)
            } else {
                Message::decode(&bytes)
            };
            let result = decoded.and_then(|m| acc.on_message(m, &mut replay, NOW));
            match result {
                Ok(o) => {
                    a_done = o.done.map(Ok).or(a_done);
                    to_initiator = o.send;
                }
                Err(e) => {
                    to_initiator = reject_for(&e);
                    a_done = Some(Err(e));
                }
            }
            if let Some(m) = &to_initiator {
                sent.push(m.name());
            }
        } else if let Some(msg) = to_initiator.take() {
            match ini.on_message(msg) {
                Ok(o) => {
                    i_done = o.done.map(Ok).or(i_done);
                    to_acceptor = o.send;
                }
                Err(e) => i_done = Some(Err(e)),
            }
            if let Some(m) = &to_acceptor {
                sent.push(m.name());
            }
        } else {
            break;
        }
    }
    Run {
        sent,
        initiator: i_done.expect("the initiator finished"),
        acceptor: a_done.expect("the acceptor finished"),
    }
}

fn dial(i: HandshakeConfig, a: HandshakeConfig) -> Run {
    let (ini, hello) = Initiator::start(i, [1; 32]);
    run(ini, hello, Acceptor::new(a, [2; 32]))
}

#[test]
fn two_v2_nodes_speak_v2_and_announce_their_kinds() {
    let r = dial(
        cfg("a", Versions::CURRENT, &["cart", "room"]),
        cfg("b", Versions::CURRENT, &["room"]),
    );
    assert_eq!(
        r.sent,
        ["Hello", "Challenge", "Proof", "Welcome", "Kinds", "Kinds"]
    );
    let (i, a) = (r.initiator.unwrap(), r.acceptor.unwrap());
    assert_eq!((i.version, a.version), (2, 2));
    assert_eq!(i.kinds, set(&["room"]));
    assert_eq!(a.kinds, set(&["cart", "room"]));
    // A node hosting nothing (a client) announces an empty list, which is
    // not "hosts everything".
    let r = dial(
        cfg("a", Versions::CURRENT, &[]),
        cfg("b", Versions::CURRENT, &["x"]),
    );
    assert_eq!(r.acceptor.unwrap().kinds, set(&[]));
}

#[test]
fn a_v2_acceptor_speaks_v1_to_a_v1_initiator() {
    let r = dial(
        cfg("old", v1(), &["cart"]),
        cfg("new", Versions::CURRENT, &["cart"]),
    );
    // Exactly the v1 exchange: no Kinds, which a v1 node could not decode.
    assert_eq!(r.sent, ["Hello", "Challenge", "Proof", "Welcome"]);
    let (i, a) = (r.initiator.unwrap(), r.acceptor.unwrap());
    assert_eq!((i.version, i.kinds), (1, None));
    assert_eq!((a.version, a.kinds), (1, None));
}

#[test]
fn a_v2_initiator_refused_by_a_v1_acceptor_dials_again_at_v1() {
    let new = cfg("new", Versions::CURRENT, &["cart"]);
    let r = dial(new.clone(), cfg("old", v1(), &["cart"]));
    assert_eq!(r.sent, ["Hello", "Reject"]);
    // Both name both versions.
    assert_eq!(
        r.acceptor,
        Err(Error::Link(crate::error::LinkError::VersionMismatch {
            ours: 1,
            theirs: 2
        }))
    );
    let Err(Error::Link(crate::error::LinkError::VersionMismatch { ours, theirs })) = r.initiator
    else {
        panic!("{:?}", r.initiator)
    };
    assert_eq!((ours, theirs), (2, 1));
    // The runtime asks the policy for the next offer, and dials again.
    let offer = new.versions.fallback(ours, theirs);
    assert_eq!(offer, Some(1));
    let (ini, hello) = Initiator::offering(new, [3; 32], 1);
    let r = run(
        ini,
        hello,
        Acceptor::new(cfg("old", v1(), &["cart"]), [4; 32]),
    );
    assert_eq!(r.sent, ["Hello", "Challenge", "Proof", "Welcome"]);
    assert_eq!(r.initiator.unwrap().version, 1);
    assert_eq!(r.acceptor.unwrap().version, 1);
}

#[test]
fn versions_outside_n_minus_one_to_n_are_refused_naming_both() {
    for theirs in [0, PROTOCOL_VERSION + 1, 9] {
        let (ini, mut hello) = Initiator::start(cfg("x", Versions::CURRENT, &[]), [1; 32]);
        if let Message::Hello { version, .. } = &mut hello {
            *version = theirs;
        }
        let r = run(
            ini,
            hello,
            Acceptor::new(cfg("b", Versions::CURRENT, &[]), [2; 32]),
        );
        assert_eq!(
            r.acceptor,
            Err(Error::Link(crate::error::LinkError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs
            })),
            "v{theirs}"
        );
        assert_eq!(r.sent, ["Hello", "Reject"]);
    }
    // N−1 gets through the codec's version-first read; older does not.
    let (_, hello) = Initiator::start(cfg("x", v1(), &[]), [1; 32]);
    assert!(Message::decode_first(&hello.encode().unwrap()).is_ok());
}

#[test]
fn a_challenge_at_another_version_than_offered_is_refused() {
    let (mut ini, _) = Initiator::start(cfg("a", Versions::CURRENT, &[]), [1; 32]);
    let challenge = Message::Challenge {
        version: 1,
        id: ReplicaId {
            node: Arc::from("b"),
            incarnation: 1,
        },
        listen: "b:1".into(),
        weight: 1,
        nonce: [2; 32],
    };
    assert_eq!(
        ini.on_message(challenge),
        Err(Error::Link(crate::error::LinkError::VersionMismatch {
            ours: 2,
            theirs: 1
        }))
    );
}

#[test]
fn an_announcement_beyond_the_bounds_is_refused() {
    let too_many: Vec<String> = (0..=MAX_ANNOUNCED_KINDS).map(|i| format!("k{i}")).collect();
    let too_long = vec!["k".repeat(MAX_NAME_BYTES + 1)];
    for kinds in [too_many, too_long, vec![String::new()]] {
        let mut big = cfg("a", Versions::CURRENT, &[]);
        big.kinds = kinds.iter().cloned().collect();
        // Our own configuration is checked...
        assert!(matches!(big.validate(), Err(Error::InvalidConfig(_))));
        // ...and a peer's announcement (as if its validation were skipped).
        let r = dial(big, cfg("b", Versions::CURRENT, &[]));
        assert!(
            matches!(r.acceptor, Err(Error::Decode(_))),
            "{:?}",
            r.acceptor
        );
        assert_eq!(r.sent.last(), Some(&"Reject"));
        assert!(matches!(
            r.initiator,
            Err(Error::Link(crate::error::LinkError::Rejected { .. }))
        ));
    }
}

#[test]
fn kinds_out_of_turn_are_unexpected() {
    let mut acc = Acceptor::new(cfg("b", Versions::CURRENT, &[]), [2; 32]);
    let kinds = Message::Kinds { kinds: vec![] };
    assert_eq!(
        acc.on_message(kinds, &mut NonceCache::new(4, 1), NOW),
        Err(Error::Link(crate::error::LinkError::UnexpectedMessage {
            expected: "Hello",
            got: "Kinds"
        }))
    );
}
