//! Fuzzes the frame decoder: arbitrary bytes into `FrameCodec` (as a stream
//! under both caps, including `decode_eof`) and into `Message::decode`,
//! `Message::decode_first` and `peek_version`. Any panic, hang or runaway
//! allocation is a bug; errors are the expected outcome.
#![no_main]

use bytes::BytesMut;
use flock_actix::wire::FrameCodec;
use flock_actix::wire::message::{Message, peek_version};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    // The whole input as one frame payload.
    if let Ok(msg) = Message::decode(data) {
        // Whatever decodes must re-encode and decode to the same message.
        let again = Message::decode(&msg.encode().expect("re-encode")).expect("re-decode");
        assert_eq!(again, msg);
        let mut codec = FrameCodec::new();
        codec.set_max_frame(u32::MAX as usize).expect("cap");
        let mut buf = BytesMut::new();
        codec.encode(&msg, &mut buf).expect("frame");
        assert_eq!(codec.decode(&mut buf).expect("unframe"), Some(msg));
    }
    let _ = Message::decode_first(data);
    let _ = peek_version(data);

    // The whole input as a byte stream, pre-auth cap and a small post-auth cap.
    for max in [64 * 1024, 1024] {
        let mut codec = FrameCodec::new();
        codec.set_max_frame(max).expect("cap");
        let mut buf = BytesMut::from(data);
        // Each successful frame consumes at least the 4-byte header, so this
        // bound is never the reason the loop ends early.
        for _ in 0..=data.len() {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let _ = codec.decode_eof(&mut buf);
                    break;
                }
                Err(_) => break,
            }
        }
    }
});
