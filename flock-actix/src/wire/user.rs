//! The frames of user traffic — [`Message::Call`], [`Message::Cast`] and
//! [`Message::Reply`] — read and written without copies (issue #12,
//! docs/ARCHITECTURE.md §37).
//!
//! These are most of what links carry, and decoding them through
//! [`Message::decode`] built three owned `String`s and a `Vec` per frame,
//! encoding built the same strings first. Here they are read straight from
//! the frame's [`Bytes`] (names as validated UTF-8 slices of it, the payload
//! as a slice of it) and written straight from borrowed parts.
//!
//! **The wire format does not change.** The writer emits the bytes
//! rmp-serde emits for the same `Message` (tests compare them, and the
//! golden fixtures), and the reader takes only that *canonical* form: the
//! exact variant prefix, each field in its expected MessagePack family, no
//! trailing bytes. Anything else — a form rmp-serde also accepts (a name
//! as `bin`, a struct as a map, a variant by index), a malformed frame, an
//! error reply — is handed to [`Message::decode`], which answers exactly
//! as before (a value or a clear [`Error::Decode`]). So the fast reader can
//! only ever agree with the old decoder or step aside (proptests below).

use super::message::{Message, RemoteError};
use super::mpack::Cursor;
use crate::error::Result;
use bytes::{BufMut, Bytes, BytesMut};

/// A name read from a frame: UTF-8 checked once, held as a slice of the
/// frame (no copy).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Name(Bytes);

impl Name {
    fn new(bytes: Bytes) -> Option<Name> {
        std::str::from_utf8(&bytes).ok()?;
        Some(Name(bytes))
    }

    /// The name. (Checked at construction; the check again here costs a
    /// few ns for a short name and keeps the crate free of `unsafe`.)
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Bytes::from(s.into_bytes()))
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inbound [`Message::Call`], its names and payload in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallIn {
    pub id: u64,
    pub bird: Name,
    pub kind: Name,
    pub msg: Name,
    pub payload: Bytes,
    pub timeout_ms: u32,
    pub forwarded: bool,
}

/// An inbound [`Message::Cast`], its names and payload in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CastIn {
    pub bird: Name,
    pub kind: Name,
    pub msg: Name,
    pub payload: Bytes,
}

/// A user frame as read: a call, a cast, or a reply (its `Ok` bytes in the
/// frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserIn {
    Call(CallIn),
    Cast(CastIn),
    Reply {
        id: u64,
        result: std::result::Result<Bytes, RemoteError>,
    },
}

impl UserIn {
    /// The same frame as a [`Message`] (copies; for the rare paths that
    /// take any message, such as a frame met during a handshake).
    pub(crate) fn into_message(self) -> Message {
        let s = |n: Name| n.as_str().to_owned();
        match self {
            UserIn::Call(c) => Message::Call {
                id: c.id,
                bird: s(c.bird),
                kind: s(c.kind),
                msg: s(c.msg),
                payload: c.payload.to_vec(),
                timeout_ms: c.timeout_ms,
                forwarded: c.forwarded,
            },
            UserIn::Cast(c) => Message::Cast {
                bird: s(c.bird),
                kind: s(c.kind),
                msg: s(c.msg),
                payload: c.payload.to_vec(),
            },
            UserIn::Reply { id, result } => Message::Reply {
                id,
                result: result.map(|b| b.to_vec()),
            },
        }
    }

    /// A decoded message as a user frame, if it is one (moves its strings
    /// and bytes, no copy).
    pub(crate) fn from_message(msg: Message) -> std::result::Result<UserIn, Message> {
        Ok(match msg {
            Message::Call {
                id,
                bird,
                kind,
                msg,
                payload,
                timeout_ms,
                forwarded,
            } => UserIn::Call(CallIn {
                id,
                bird: bird.into(),
                kind: kind.into(),
                msg: msg.into(),
                payload: payload.into(),
                timeout_ms,
                forwarded,
            }),
            Message::Cast {
                bird,
                kind,
                msg,
                payload,
            } => UserIn::Cast(CastIn {
                bird: bird.into(),
                kind: kind.into(),
                msg: msg.into(),
                payload: payload.into(),
            }),
            Message::Reply { id, result } => UserIn::Reply {
                id,
                result: result.map(Bytes::from),
            },
            other => return Err(other),
        })
    }
}

const CALL: &[u8] = b"\x81\xa4Call\x97";
const CAST: &[u8] = b"\x81\xa4Cast\x94";
const REPLY_OK: &[u8] = b"\x81\xa5Reply\x92";

/// Reads `frame` as a user frame in its canonical form; `None` if it is not
/// one (another message, another form of one, or malformed): then
/// [`Message::decode`] is the judge. Never panics.
pub(crate) fn read(frame: &Bytes) -> Option<UserIn> {
    let mut r = Reader {
        frame,
        cur: Cursor::new(frame),
    };
    let user = if r.prefix(CALL) {
        UserIn::Call(CallIn {
            id: r.uint()?,
            bird: r.str()?,
            kind: r.str()?,
            msg: r.str()?,
            payload: r.bin()?,
            timeout_ms: u32::try_from(r.uint()?).ok()?,
            forwarded: r.bool()?,
        })
    } else if r.prefix(CAST) {
        UserIn::Cast(CastIn {
            bird: r.str()?,
            kind: r.str()?,
            msg: r.str()?,
            payload: r.bin()?,
        })
    } else if r.prefix(REPLY_OK) {
        let id = r.uint()?;
        // Only `{"Ok": bin}`; an error reply takes the general decoder.
        if !r.prefix(b"\x81\xa2Ok") {
            return None;
        }
        UserIn::Reply {
            id,
            result: Ok(r.bin()?),
        }
    } else {
        return None;
    };
    r.cur.at_end().then_some(user)
}

/// Reads a frame body: a user frame without copies when it is one in its
/// canonical form, anything else through [`Message::decode`].
pub(crate) fn decode(frame: Bytes) -> Result<std::result::Result<UserIn, Message>> {
    if let Some(user) = read(&frame) {
        return Ok(Ok(user));
    }
    Message::decode(&frame).map(UserIn::from_message)
}

/// A [`Cursor`] over a frame whose strings and payloads are taken as
/// slices of the frame's `Bytes`.
struct Reader<'a> {
    frame: &'a Bytes,
    cur: Cursor<'a>,
}

impl Reader<'_> {
    fn prefix(&mut self, p: &[u8]) -> bool {
        self.cur.prefix(p)
    }

    fn uint(&mut self) -> Option<u64> {
        self.cur.uint()
    }

    fn bool(&mut self) -> Option<bool> {
        self.cur.bool()
    }

    /// A slice of the frame of a declared length (bounded by the frame:
    /// a hostile length is refused here, nothing is allocated).
    fn slice(&mut self, len: u64) -> Option<Bytes> {
        let r = self.cur.take(usize::try_from(len).ok()?)?;
        Some(self.frame.slice(r))
    }

    fn str(&mut self) -> Option<Name> {
        let len = self.cur.str_len()?;
        Name::new(self.slice(len)?)
    }

    fn bin(&mut self) -> Option<Bytes> {
        let len = self.cur.bin_len()?;
        self.slice(len)
    }
}

/// A call's envelope, borrowed from wherever its parts live (the caller's
/// `Arc<str>` name, the kind's static tags).
pub(crate) struct CallOut<'a> {
    pub id: u64,
    pub bird: &'a str,
    pub kind: &'a str,
    pub msg: &'a str,
    pub payload: &'a [u8],
    pub timeout_ms: u32,
    pub forwarded: bool,
}

/// Appends the body of a `Call` frame: the bytes `Message::Call` encodes to.
pub(crate) fn write_call(c: &CallOut<'_>, dst: &mut BytesMut) {
    dst.put_slice(CALL);
    put_uint(dst, c.id);
    put_str(dst, c.bird);
    put_str(dst, c.kind);
    put_str(dst, c.msg);
    put_bin(dst, c.payload);
    put_uint(dst, u64::from(c.timeout_ms));
    dst.put_u8(if c.forwarded { 0xc3 } else { 0xc2 });
}

/// Appends the body of a `Cast` frame: the bytes `Message::Cast` encodes to.
pub(crate) fn write_cast(bird: &str, kind: &str, msg: &str, payload: &[u8], dst: &mut BytesMut) {
    dst.put_slice(CAST);
    put_str(dst, bird);
    put_str(dst, kind);
    put_str(dst, msg);
    put_bin(dst, payload);
}

/// Appends the body of an `Ok` `Reply` frame.
pub(crate) fn write_reply_ok(id: u64, reply: &[u8], dst: &mut BytesMut) {
    dst.put_slice(REPLY_OK);
    put_uint(dst, id);
    dst.put_slice(b"\x81\xa2Ok");
    put_bin(dst, reply);
}

/// The smallest MessagePack form of `n`, as rmp-serde writes it.
fn put_uint(dst: &mut BytesMut, n: u64) {
    match n {
        0..=0x7f => dst.put_u8(n as u8),
        0x80..=0xff => {
            dst.put_u8(0xcc);
            dst.put_u8(n as u8);
        }
        0x100..=0xffff => {
            dst.put_u8(0xcd);
            dst.put_u16(n as u16);
        }
        0x1_0000..=0xffff_ffff => {
            dst.put_u8(0xce);
            dst.put_u32(n as u32);
        }
        _ => {
            dst.put_u8(0xcf);
            dst.put_u64(n);
        }
    }
}

fn put_str(dst: &mut BytesMut, s: &str) {
    match s.len() {
        n @ 0..=31 => dst.put_u8(0xa0 | n as u8),
        n => put_len(dst, n, [0xd9, 0xda, 0xdb]),
    }
    dst.put_slice(s.as_bytes());
}

fn put_bin(dst: &mut BytesMut, b: &[u8]) {
    put_len(dst, b.len(), [0xc4, 0xc5, 0xc6]);
    dst.put_slice(b);
}

/// The smallest of a family's 8-, 16- and 32-bit length headers for `n`
/// (a frame is at most `u32::MAX` bytes: the codec refuses more).
fn put_len(dst: &mut BytesMut, n: usize, [m8, m16, m32]: [u8; 3]) {
    if let Ok(n) = u8::try_from(n) {
        dst.put_u8(m8);
        dst.put_u8(n);
    } else if let Ok(n) = u16::try_from(n) {
        dst.put_u8(m16);
        dst.put_u16(n);
    } else {
        dst.put_u8(m32);
        dst.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
