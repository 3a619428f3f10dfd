use super::*;
use crate::error::Error;
use proptest::prelude::*;

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let hex: String = std::fs::read_to_string(path)
        .expect("fixture")
        .split_whitespace()
        .collect();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    // Without the 4-byte length header.
    bytes[4..].to_vec()
}

fn body(msg: &Message) -> Vec<u8> {
    msg.encode().expect("encode").to_vec()
}

fn written(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    f(&mut buf);
    buf.to_vec()
}

#[test]
fn the_golden_call_cast_and_reply_are_read_without_the_general_decoder_and_written_back_the_same() {
    for name in ["call", "cast", "reply_ok"] {
        let frame = Bytes::from(golden(name));
        let user = read(&frame).unwrap_or_else(|| panic!("{name} read on the fast path"));
        let msg = Message::decode(&frame).expect("decodes");
        assert_eq!(user.clone().into_message(), msg, "{name}");
        let again = written(|buf| match &user {
            UserIn::Call(c) => write_call(
                &CallOut {
                    id: c.id,
                    bird: c.bird.as_str(),
                    kind: c.kind.as_str(),
                    msg: c.msg.as_str(),
                    payload: &c.payload,
                    timeout_ms: c.timeout_ms,
                    forwarded: c.forwarded,
                },
                buf,
            ),
            UserIn::Cast(c) => write_cast(
                c.bird.as_str(),
                c.kind.as_str(),
                c.msg.as_str(),
                &c.payload,
                buf,
            ),
            UserIn::Reply { id, result } => write_reply_ok(*id, result.as_ref().unwrap(), buf),
        });
        assert_eq!(again, frame.to_vec(), "{name} written byte for byte");
    }
}

#[test]
fn an_error_reply_and_other_messages_take_the_general_decoder() {
    let err = Message::Reply {
        id: 3,
        result: Err(RemoteError::Timeout),
    };
    assert_eq!(read(&Bytes::from(body(&err))), None);
    assert_eq!(
        decode(Bytes::from(body(&err))).unwrap(),
        Ok(UserIn::Reply {
            id: 3,
            result: Err(RemoteError::Timeout)
        })
    );
    let beat = Message::Heartbeat { seq: 9 };
    assert_eq!(decode(Bytes::from(body(&beat))).unwrap(), Err(beat));
}

#[test]
fn a_name_that_is_not_utf8_is_refused_with_the_decoders_error() {
    let mut frame = golden("cast");
    // The bird's name starts after the prefix and its fixstr marker.
    frame[CAST.len() + 1] = 0xff;
    let frame = Bytes::from(frame);
    assert_eq!(read(&frame), None);
    assert!(matches!(decode(frame), Err(Error::Decode(_))));
}

#[test]
fn trailing_bytes_and_truncation_are_refused() {
    let mut long = golden("call");
    long.push(0);
    assert!(matches!(decode(Bytes::from(long)), Err(Error::Decode(_))));
    let call = golden("call");
    for cut in 0..call.len() {
        let frame = Bytes::copy_from_slice(&call[..cut]);
        assert_eq!(read(&frame), None, "cut at {cut}");
        assert!(decode(frame).is_err(), "cut at {cut}");
    }
}

/// Names of lengths around every MessagePack size class.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:.]{0,40}",
        (250usize..=260).prop_map(|n| "n".repeat(n)),
        (65_530usize..=65_540).prop_map(|n| "é".repeat(n / 2)),
        Just(String::new()),
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (65_530usize..=65_540).prop_map(|n| vec![7u8; n]),
    ]
}

fn uint() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..300,
        65_530u64..65_540,
        (u32::MAX as u64 - 3)..(u32::MAX as u64 + 3),
        any::<u64>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn what_is_written_is_what_rmp_serde_writes_and_reads_back_the_same(
        id in uint(), bird in name(), kind in name(), msg in name(), payload in payload(),
        timeout_ms in any::<u32>(), forwarded in any::<bool>(),
    ) {
        let call = Message::Call {
            id, bird: bird.clone(), kind: kind.clone(), msg: msg.clone(),
            payload: payload.clone(), timeout_ms, forwarded,
        };
        let mine = written(|buf| write_call(&CallOut {
            id, bird: &bird, kind: &kind, msg: &msg, payload: &payload, timeout_ms, forwarded,
        }, buf));
        prop_assert_eq!(&mine, &body(&call));
        prop_assert_eq!(read(&Bytes::from(mine)).map(UserIn::into_message), Some(call));

        let cast = Message::Cast {
            bird: bird.clone(), kind: kind.clone(), msg: msg.clone(), payload: payload.clone(),
        };
        let mine = written(|buf| write_cast(&bird, &kind, &msg, &payload, buf));
        prop_assert_eq!(&mine, &body(&cast));
        prop_assert_eq!(read(&Bytes::from(mine)).map(UserIn::into_message), Some(cast));

        let reply = Message::Reply { id, result: Ok(payload.clone()) };
        let mine = written(|buf| write_reply_ok(id, &payload, buf));
        prop_assert_eq!(&mine, &body(&reply));
        prop_assert_eq!(read(&Bytes::from(mine)).map(UserIn::into_message), Some(reply));
    }

    /// Hostile input: the fast reader never panics, and whatever it reads
    /// the general decoder reads the same (it only ever agrees or steps
    /// aside).
    #[test]
    fn the_fast_reader_only_ever_agrees_with_the_general_decoder(
        which in 0usize..3, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(), extra in prop::collection::vec(any::<u8>(), 0..3),
    ) {
        let mut frame = golden(["call", "cast", "reply_ok"][which]);
        for (at, byte) in flips {
            let at = at % frame.len();
            frame[at] = byte;
        }
        frame.truncate(cut % (frame.len() + 1));
        frame.extend_from_slice(&extra);
        let frame = Bytes::from(frame);
        if let Some(user) = read(&frame) {
            prop_assert_eq!(Message::decode(&frame).ok(), Some(user.into_message()));
        }
        // And the combined decoder answers exactly as the general one.
        let general = Message::decode(&frame).map(UserIn::from_message);
        prop_assert_eq!(decode(frame).map_err(|e| e.to_string()), general.map_err(|e| e.to_string()));
    }
}
