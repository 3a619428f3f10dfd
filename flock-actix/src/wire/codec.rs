//! The length-delimited frame codec.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes: one
//! encoded [`Message`]. Decoding is delegated to tokio-util's
//! [`LengthDelimitedCodec`] (which is plain sans-io code over a
//! [`BytesMut`]; no tokio runtime is involved, so the fuzz target and the
//! property tests drive [`FrameCodec`] directly).
//!
//! # Size limits
//!
//! Before the handshake has authenticated the peer, frames are capped at
//! [`PRE_AUTH_MAX_FRAME`] (64 KiB): an unauthenticated stranger must not make
//! us reserve megabytes. After authentication the runtime raises the cap with
//! [`FrameCodec::set_max_frame`] (default [`DEFAULT_MAX_FRAME`], 32 MiB). The
//! cap must be the same on every node, since it is also enforced on the
//! sending side ([`Encoder`]): we never send a frame the peer would refuse.
//!
//! # Errors
//!
//! - A declared length over the cap: [`crate::error::LinkError::FrameTooLarge`], decided from
//!   the 4-byte header alone, before any of the payload is buffered or any
//!   space is reserved for it.
//! - A complete frame that is not a valid message: [`Error::Decode`]. The bad
//!   frame has been consumed and the codec is back at a frame boundary, so it
//!   is not left in a corrupted state; the runtime closes the connection
//!   anyway, since a peer that sends garbage cannot be trusted with more.
//! - Incomplete input (even 0–3 header bytes): `Ok(None)`, wait for more.
//! - The stream ends inside a frame: [`Error::Io`] from `decode_eof`.

use super::message::Message;
use crate::error::{Error, Result};
use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, length_delimited};

/// Frame size cap before the peer is authenticated: 64 KiB.
pub const PRE_AUTH_MAX_FRAME: usize = 64 * 1024;

/// Default frame size cap after authentication: 32 MiB.
pub const DEFAULT_MAX_FRAME: usize = 32 * 1024 * 1024;

/// Length of the frame header (big-endian `u32` length).
pub const HEADER_LEN: usize = 4;

/// Frames [`Message`]s on a byte stream: decoder and encoder.
///
/// A codec made with [`FrameCodec::connection`] reads the first frame it
/// decodes version-first ([`Message::decode_first`]): a peer speaking
/// another protocol version gets [`crate::error::LinkError::VersionMismatch`] naming both
/// versions, whatever the layout of the rest of its `Hello`.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    /// The next frame is a connection's first: read its version first.
    first: bool,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec for a fresh connection, capped at [`PRE_AUTH_MAX_FRAME`].
    pub fn new() -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(HEADER_LEN)
            .big_endian()
            .max_frame_length(PRE_AUTH_MAX_FRAME)
            .new_codec();
        FrameCodec {
            inner,
            first: false,
        }
    }

    /// A codec for the start of a connection: like [`FrameCodec::new`], but
    /// the first frame is decoded with [`Message::decode_first`], so a peer
    /// of another protocol version is told apart from a malformed one.
    pub fn connection() -> Self {
        FrameCodec {
            first: true,
            ..Self::new()
        }
    }

    /// The frame size cap in force, in bytes (payload, excluding the header).
    pub fn max_frame(&self) -> usize {
        self.inner.max_frame_length()
    }

    /// Sets the frame size cap, for both directions; called after
    /// authentication to raise it from [`PRE_AUTH_MAX_FRAME`].
    ///
    /// Errors: [`Error::InvalidConfig`] if `max` is 0 or does not fit the
    /// 4-byte length header; the cap is then unchanged.
    pub fn set_max_frame(&mut self, max: usize) -> Result<()> {
        if max == 0 || max > u32::MAX as usize {
            return Err(Error::InvalidConfig(format!(
                "max frame size must be in 1..={}, got {max}",
                u32::MAX
            )));
        }
        self.inner.set_max_frame_length(max);
        Ok(())
    }

    /// The declared length of the frame at the start of `src`, if its header
    /// is complete. Only meaningful at a frame boundary.
    fn declared_len(src: &[u8]) -> Option<usize> {
        let header: [u8; HEADER_LEN] = src.get(..HEADER_LEN)?.try_into().ok()?;
        Some(u32::from_be_bytes(header) as usize)
    }
}

impl FrameCodec {
    /// The next frame's body, not decoded: the framing half of
    /// [`Decoder::decode`], with the same errors for it. For a reader that
    /// hands bulk frames to another thread to decode (see
    /// [`Message::is_bulk_sync`]). The first frame of a connection must go
    /// through [`Decoder::decode`] (it checks the version).
    pub fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>> {
        match self.inner.decode(src) {
            Ok(frame) => Ok(frame),
            Err(e) => {
                let too_large = e
                    .get_ref()
                    .is_some_and(|inner| inner.is::<length_delimited::LengthDelimitedCodecError>());
                // The inner codec checks the header before consuming it, so on
                // this error the header is still at the front of `src`.
                match (too_large, Self::declared_len(src)) {
                    (true, Some(size)) => {
                        Err(Error::Link(crate::error::LinkError::FrameTooLarge {
                            size,
                            max: self.max_frame(),
                        }))
                    }
                    _ => Err(e.into()),
                }
            }
        }
    }

    /// Whether the next frame is a connection's first.
    pub fn expects_first(&self) -> bool {
        self.first
    }
}

impl Decoder for FrameCodec {
    type Item = Message;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>> {
        match self.decode_frame(src)? {
            Some(frame) if std::mem::take(&mut self.first) => {
                Message::decode_first(&frame).map(Some)
            }
            Some(frame) => Message::decode(&frame).map(Some),
            None => Ok(None),
        }
    }
}

impl FrameCodec {
    /// Appends one frame whose body `write` appends (for the user frames
    /// written from borrowed parts, `wire::user`): the same header, cap
    /// and errors as [`Encoder::encode`], and `dst` unchanged on error.
    pub(crate) fn encode_with(
        &self,
        dst: &mut BytesMut,
        write: impl FnOnce(&mut BytesMut),
    ) -> Result<()> {
        let start = dst.len();
        dst.put_u32(0);
        write(dst);
        self.patch_len(dst, start)
    }

    /// Writes the length of the frame that starts at `start` into its
    /// header, or takes the frame out if it is above the cap.
    fn patch_len(&self, dst: &mut BytesMut, start: usize) -> Result<()> {
        let size = dst.len() - start - HEADER_LEN;
        let max = self.max_frame();
        if size > max {
            dst.truncate(start);
            return Err(Error::Link(crate::error::LinkError::FrameTooLarge {
                size,
                max,
            }));
        }
        // `max <= u32::MAX` (see `set_max_frame`), so this cannot truncate.
        let len = (size as u32).to_be_bytes();
        dst[start..start + HEADER_LEN].copy_from_slice(&len);
        Ok(())
    }
}

impl Encoder<&Message> for FrameCodec {
    type Error = Error;

    /// Encodes the message straight into `dst` behind a placeholder header,
    /// then patches the length in (no intermediate buffer). A message larger
    /// than the cap gives [`crate::error::LinkError::FrameTooLarge`] and leaves `dst` unchanged.
    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<()> {
        let start = dst.len();
        dst.put_u32(0);
        if let Err(e) = msg.encode_into(dst) {
            dst.truncate(start);
            return Err(e);
        }
        self.patch_len(dst, start)
    }
}

impl Encoder<Message> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<()> {
        Encoder::<&Message>::encode(self, &msg, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::PROTOCOL_VERSION;

    fn frame(body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(u32::try_from(body.len()).unwrap());
        buf.extend_from_slice(body);
        buf
    }

    #[test]
    fn a_connection_reads_its_first_frame_version_first() {
        // {"Hello": [3, {"new": "layout"}]}: a future Hello of another shape.
        let mut hello = vec![0x81, 0xa5];
        hello.extend_from_slice(b"Hello");
        hello.extend_from_slice(&[0x92, 0x03, 0x81, 0xa3]);
        hello.extend_from_slice(b"new");
        hello.push(0xa6);
        hello.extend_from_slice(b"layout");
        let mut buf = frame(&hello);
        assert_eq!(
            FrameCodec::connection().decode(&mut buf),
            Err(Error::Link(crate::error::LinkError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 3
            }))
        );
        // A plain codec sees only a malformed message.
        let mut buf = frame(&hello);
        assert!(matches!(
            FrameCodec::new().decode(&mut buf),
            Err(Error::Decode(_))
        ));
        // Only the first frame is read that way.
        let beat = Message::Heartbeat { seq: 3 }.encode().unwrap();
        let mut codec = FrameCodec::connection();
        let mut buf = frame(&beat);
        buf.extend_from_slice(&frame(&hello));
        assert_eq!(
            codec.decode(&mut buf),
            Ok(Some(Message::Heartbeat { seq: 3 }))
        );
        assert!(matches!(codec.decode(&mut buf), Err(Error::Decode(_))));
    }
}
